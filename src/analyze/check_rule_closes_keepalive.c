/* src/analyze/check_rule_closes_keepalive.c - rule-closes-keepalive: a rule of the user's in
 * shunt proxy said Connection: close (to the client, or to the server), so the connection
 * ended where neither peer would have ended it. Named as the rule's doing, so that no other
 * check blames the client or the server for it. Source: RFC 9112 9.6 (a proxy that sends
 * close must close), RFC 9110 7.6.1; the capture's changes table (docs/capture.md). */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_rule_closes_keepalive = {
    .id = "rule-closes-keepalive",
    .title = "a rule of yours in the proxy ends connections the peers would have kept",
    .looks_for = "connections whose last exchange wanted the connection kept (the client's "
                 "request asked to keep it, the server's response did not end it) and ended "
                 "because a rule of the proxy's (the changes table names it) made the head "
                 "it passed on say close: the response sent to the client (shunt then "
                 "closes the connection itself) or the request sent to the server (which "
                 "then closes it, as asked)",
    .evidence = "a shunt capture: the heads as each peer sent them and as shunt passed them "
                "on, and the changes each rule made",
    .why = "A proxy that tells the client Connection: close must close the connection after "
           "the response (RFC 9112 9.6), and a server asked to close does so. A rule that "
           "sets Connection: close therefore ends every connection it touches: neither the "
           "client nor the server chose that, and each new connection pays a TCP (and TLS) "
           "handshake, and with NTLM or Negotiate a new authentication.",
    .fix = "if the closes are not what you are testing, turn the rule off (its option, with "
           "shunt ctl option, or without --rules) or narrow its filter to the exchanges it "
           "is meant for.",
    .proof = "shunt show FILE ID (an example exchange) lists the rule's change; the same "
             "traffic through shunt proxy without the rule keeps its connections.",
    .run = run,
};

/* The rule that ended <c> when it is selected and a new connection followed; NULL else. */
static const char *counted(const struct shunt_model_conn *c, int *on_request)
{
    if (!c->selected || c->next == NULL)
        return NULL; /* a close nothing followed cost nothing */
    return shunt_check_rule_closed(c, on_request);
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_req = 0, handshakes = 0;
    int several = 0; /* more than one rule did it */
    const char *first = NULL;
    int64_t lost_us = 0;
    int on_request;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const char *rule = counted(c, &on_request);
        if (rule == NULL)
            continue;
        struct shunt_check_cost cost = shunt_check_reopen_cost(c);
        n++;
        n_req += (size_t)on_request;
        if (first == NULL)
            first = rule;
        several |= strcmp(first, rule) != 0;
        lost_us = shunt_model_add(lost_us, cost.us);
        handshakes += cost.handshakes;
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_rule_closes_keepalive,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "connections", lost_us, handshakes, n);
    char whose[192], where[192];
    if (!several)
        snprintf(whose, sizeof(whose), "Your rule %s", first);
    else
        snprintf(whose, sizeof(whose), "Rules of yours (%s and others)", first);
    if (n_req == 0)
        snprintf(where, sizeof(where), "Connection: close on the response sent to the client, "
                 "so shunt closed each connection itself");
    else if (n_req == n)
        snprintf(where, sizeof(where), "Connection: close on the request sent to the server, "
                 "which then closed each connection as asked");
    else
        snprintf(where, sizeof(where), "Connection: close on the response sent to the client "
                 "(%zu) or the request sent to the server (%zu)", n - n_req, n_req);
    shunt_finding_what(f, "%s ended %zu connection%s that the client asked to keep and the "
                       "server would have kept: it set %s. The client opened a new one%s%s; "
                       "neither it nor the server closed %s of its own accord.",
                       whose, n, n == 1 ? "" : "s", where, n == 1 ? "" : " each time",
                       handshakes ? " and authenticated again" : "", n == 1 ? "it" : "them");
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++)
        if (counted(&m->conns[i], &on_request) != NULL)
            shunt_finding_example(f, m->conns[i].id, shunt_model_last(&m->conns[i])->id);
    return 0;
}
