/* src/analyze/check_client_closes_early.c - client-closes-early: the client closes or resets
 * connections that the server would have kept, and opens new ones to the same origin; the
 * story's closes (wininet-auth-close) are not counted here. Source: RFC 9112 9.3
 * (persistence), 9.6 (tear-down); docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_client_closes_early = {
    .id = "client-closes-early",
    .title = "the client closes connections the server would have kept",
    .looks_for = "connections the client closed (FIN) or reset (RST) right after a whole "
                 "response that let the connection persist (HTTP/1.1 without Connection: "
                 "close, a framed body), to a request that asked to keep it, followed by a "
                 "new connection to the same origin; the story's closes after a response "
                 "without Server in an authentication context are wininet-auth-close's",
    .evidence = "who closed each connection and how (a shunt capture: a HAR cannot say), the "
                "last request and response heads of each, and the next connection to the "
                "same origin",
    .why = "HTTP/1.1 lets a client keep a connection for the next request (RFC 9112 9.3), and "
           "nothing in these responses asked it to close, so the client decided to: a "
           "policy of its own (one request per connection, a maximum of requests per "
           "connection, a connection pool that is too small or discards connections), or "
           "code that closes or disposes of its connection or client object after each "
           "request. A reset rather than a FIN often means the client closed with unread "
           "bytes or SO_LINGER set to zero. Each close costs a new TCP (and TLS) handshake, "
           "and with NTLM or Negotiate a new authentication.",
    .fix = "let the client keep its connections: raise or remove its limit of requests per "
           "connection, reuse one client or session object (and its pool) instead of one "
           "per request, read every response whole before reusing or releasing the "
           "connection, and do not send Connection: close unless the connection is done.",
    .proof = "shunt connections FILE lists who closed each connection and after how many "
             "exchanges; shunt lab client --max-per-conn N (and --reset for RSTs) reproduces "
             "the pattern through shunt proxy, and the same run without the option keeps "
             "one connection.",
    .run = run,
};

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_fin = 0, n_rst = 0, handshakes = 0;
    size_t per_min = 0, per_max = 0; /* requests (shunt_check_requests_on) on each */
    int64_t lost_us = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (!c->selected || shunt_check_client_early(c) == NULL)
            continue;
        struct shunt_check_cost cost = shunt_check_reopen_cost(c); /* it was replaced */
        n++;
        n_fin += strcmp(c->close_how, "FIN") == 0;
        n_rst += strcmp(c->close_how, "RST") == 0;
        size_t per = shunt_check_requests_on(c);
        per_min = n == 1 || per < per_min ? per : per_min;
        per_max = per > per_max ? per : per_max;
        lost_us = shunt_model_add(lost_us, cost.us);
        handshakes += cost.handshakes;
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_client_closes_early,
                                                SHUNT_CONFIDENCE_LIKELY);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "connections", lost_us, handshakes, n);
    char how[160], after[96];
    if (n_rst == 0)
        snprintf(how, sizeof(how), "closed %zu connection%s with a FIN", n, n == 1 ? "" : "s");
    else if (n_fin == 0)
        snprintf(how, sizeof(how), "reset %zu connection%s (RST)", n, n == 1 ? "" : "s");
    else
        snprintf(how, sizeof(how), "ended %zu connections (%zu with a FIN, %zu reset)", n, n_fin,
                 n_rst);
    /* The same count of exchanges on every one hints at a per-connection limit. */
    if (per_min == per_max)
        snprintf(after, sizeof(after), "%s %zu request%s", n == 1 ? "after" : "each after exactly",
                 per_min, per_min == 1 ? "" : "s");
    else
        snprintf(after, sizeof(after), "after %zu to %zu requests", per_min, per_max);
    shunt_finding_what(f, "The client %s that the server would have kept: %s, %sright after a "
                       "whole response that let the connection persist, to a request that "
                       "asked to keep it. %s opened a new connection to the same origin%s.",
                       how, after, n == 1 ? "" : "each time ", n == 1 ? "It then" : "Each time it",
                       handshakes ? " and authenticated again" : "");
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const struct shunt_model_exchange *l = c->selected ? shunt_check_client_early(c) : NULL;
        if (l != NULL && c->next != NULL)
            shunt_finding_example(f, c->id, l->id);
    }
    return 0;
}
