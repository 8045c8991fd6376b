/* src/analyze/checks.c - the knowledge base: every diagnose check, one line each. A new
 * check is a file src/analyze/check_<id>.c defining its struct shunt_check, and a line here. */
#include "analyze/check.h"

extern const struct shunt_check shunt_check_wininet_auth_close;
extern const struct shunt_check shunt_check_reauth_storm;
extern const struct shunt_check shunt_check_server_closes_keepalive;
extern const struct shunt_check shunt_check_rule_closes_keepalive;
extern const struct shunt_check shunt_check_client_closes_early;
extern const struct shunt_check shunt_check_idle_timeout_race;
extern const struct shunt_check shunt_check_auth_connection_switch;
extern const struct shunt_check shunt_check_hop_by_hop_misuse;
extern const struct shunt_check shunt_check_low_reuse;
extern const struct shunt_check shunt_check_unframed_or_overlong_body;
extern const struct shunt_check shunt_check_via_breaks_auth_persistence;
extern const struct shunt_check shunt_check_client_quirk;
extern const struct shunt_check shunt_check_tls_client_rejects_cert;
extern const struct shunt_check shunt_check_tls_upstream_cert_invalid;

const struct shunt_check *const shunt_checks[] = {
    &shunt_check_wininet_auth_close,
    &shunt_check_reauth_storm,
    &shunt_check_server_closes_keepalive,
    &shunt_check_rule_closes_keepalive,
    &shunt_check_client_closes_early,
    &shunt_check_idle_timeout_race,
    &shunt_check_auth_connection_switch,
    &shunt_check_hop_by_hop_misuse,
    &shunt_check_low_reuse,
    &shunt_check_unframed_or_overlong_body,
    &shunt_check_via_breaks_auth_persistence,
    &shunt_check_client_quirk,
    &shunt_check_tls_client_rejects_cert,
    &shunt_check_tls_upstream_cert_invalid,
};

const size_t shunt_n_checks = sizeof(shunt_checks) / sizeof(shunt_checks[0]);
