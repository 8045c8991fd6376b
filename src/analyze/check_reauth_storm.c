/* src/analyze/check_reauth_storm.c - reauth-storm: far more NTLM or Negotiate handshakes
 * than connections that needed one, and the time they cost. Source: MS docs on NTLM and
 * Kerberos over HTTP (connection-based authentication); docs/knowledge.md. */
#include <stdio.h>
#include <stdlib.h>

#include "analyze/check.h"

/* Repeated handshakes needed to speak: a few are the normal cost of a client that opens
 * several connections, or of one that was idle long enough to lose its connection. */
#define MIN_REPEATS 3

static int run(const struct shunt_model *m, struct shunt_findings *out);

static const char *const causes[] = {"wininet-auth-close", "server-closes-keepalive",
                                     "rule-closes-keepalive", "auth-connection-switch",
                                     "client-closes-early", "idle-timeout-race", "low-reuse",
                                     "via-breaks-auth-persistence",
                                     "unframed-or-overlong-body", "client-quirk", NULL};

const struct shunt_check shunt_check_reauth_storm = {
    .id = "reauth-storm",
    .title = "authentication handshakes far above one per connection's life",
    .looks_for = "NTLM and Negotiate handshakes (a fresh 401 challenge, or a first leg sent "
                 "unasked) that repeat one already done: on a connection the client opened to "
                 "the same origin after an authenticated one ended, or a second handshake on "
                 "a connection already authenticated; three or more",
    .evidence = "the request and response heads (Authorization, WWW-Authenticate, status), "
                "the order of connections to each origin, and connection close times",
    .why = "NTLM and Negotiate authenticate a connection, not a request: a connection that "
           "lives pays one handshake (one or two extra round trips, and on the server a "
           "domain controller or ticket check), and its later requests none. Many handshakes "
           "mean short connections, or a server that does not keep the authentication "
           "(IIS with authPersistSingleRequest=true, or authPersistNonNTLM=false for "
           "Kerberos, or requests that reach it with Via), or a proxy that does not pair "
           "connections.",
    .fix = "keep the connections alive: remove what closes them (the findings ranked with "
           "this one say what); on IIS keep authPersistNonNTLM=\"true\" and authPersistSingleRequest=\"false\"; behind a proxy, keep "
           "client and server connections paired.",
    .proof = "shunt connections FILE '~auth' before and after the fix: one handshake per "
             "connection, and few connections.",
    .caused_by = causes,
    .run = run,
};

/* Is the handshake that exchange <k> of <c> starts a repeat? Its connection's second or
 * later handshake is; its first is when the connection follows an authenticated one. */
static int repeats(const struct shunt_model_conn *c, size_t k, int follows)
{
    for (size_t j = 0; j < k; j++)
        if (c->ex[j].starts_handshake)
            return 1;
    return follows;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t handshakes = 0, requests = 0, conns = 0, reopened = 0, again = 0;
    int64_t lost_us = 0;
    /* follows[i]: connection i was opened to the origin of an authenticated connection that
     * had just ended, so its handshake repeats one the client had already done. */
    unsigned char *follows = calloc(m->n_conns ? m->n_conns : 1, 1);
    if (follows == NULL)
        return SHUNT_ENOMEM;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const struct shunt_model_exchange *l = shunt_model_last(c);
        if (c->next != NULL && l != NULL && l->auth_context && c->n_handshakes > 0)
            follows[c->next - m->conns] = 1;
    }
    /* Only the selected exchanges count: with a FILTER, the handshakes of the exchanges it
     * takes (a connection's first handshake outside the filter still makes a later one
     * inside it a repeat). */
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (!c->selected || c->n_handshakes == 0)
            continue;
        size_t mine = 0;
        for (size_t k = 0; k < c->n_ex; k++) {
            const struct shunt_model_exchange *e = &c->ex[k];
            if (!e->selected)
                continue;
            requests += e->status != 401 && e->status != 0;
            if (!e->starts_handshake)
                continue;
            mine++;
            if (!repeats(c, k, follows[i]))
                continue;
            int first = !repeats(c, k, 0); /* the connection's first: repeats by following */
            reopened += first;
            again += !first;
            lost_us = shunt_model_add(lost_us, c->handshake_us / (int64_t)c->n_handshakes);
            if (first)
                lost_us = shunt_model_add(lost_us, c->connect_us);
        }
        handshakes += mine;
        conns += mine > 0;
    }
    size_t repeated = reopened + again;
    if (repeated < MIN_REPEATS) {
        free(follows);
        return 0;
    }
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_reauth_storm,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL) {
        free(follows);
        return SHUNT_ENOMEM;
    }
    shunt_finding_measure(f, handshakes, "handshakes", lost_us, repeated, reopened);
    char how[256];
    if (reopened && again)
        snprintf(how, sizeof(how), "%zu on a new connection opened after an authenticated one "
                 "ended, %zu on connections already authenticated", reopened, again);
    else if (reopened)
        snprintf(how, sizeof(how), "each on a new connection opened after an authenticated "
                 "one ended");
    else
        snprintf(how, sizeof(how), "each on a connection already authenticated");
    shunt_finding_what(f, "%zu NTLM or Negotiate handshakes on %zu connection%s for %zu "
                       "request%s; %zu of them repeated one already done (%s).",
                       handshakes, conns, conns == 1 ? "" : "s", requests,
                       requests == 1 ? "" : "s", repeated, how);
    /* Examples: the exchanges whose handshake was a repeat, in capture order. */
    for (size_t i = 0; i < m->n_conns && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (!c->selected)
            continue;
        for (size_t k = 0; k < c->n_ex && f->n_exchanges < SHUNT_CHECK_EXAMPLES; k++)
            if (c->ex[k].selected && c->ex[k].starts_handshake && repeats(c, k, follows[i]))
                shunt_finding_example(f, c->id, c->ex[k].id);
    }
    free(follows);
    return 0;
}
