/* src/analyze/check_wininet_auth_close.c - wininet-auth-close: the client closes a healthy
 * connection with a FIN right after a non-401 response in an authentication context, because
 * that response has no Server header (or names IIS 1.0-3.0). Source: the story
 * (story/ie-closes-ports-on-200.txt), "Why does IE keep closing out valid ports on a 200/OK
 * response?", the IE Support Team; docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_wininet_auth_close = {
    .id = "wininet-auth-close",
    .title = "the client closes authenticated connections after a response without Server",
    .looks_for = "connections the client closed with a FIN right after a non-401 response in an "
                 "authentication context (an NTLM or Negotiate challenge or leg on that "
                 "connection), when that response had no Server header or named IIS 1.0-3.0, "
                 "and the client then opened a new connection to the same origin",
    .evidence = "who closed each connection and how (a shunt capture); the response heads as "
                "the client got them; the next connection to the same origin. From a HAR "
                "(closer unknown), a new handshake on the next connection stands in for the "
                "FIN, and the finding is only likely",
    .why = "WinINet (Internet Explorer's HTTP stack, which other Windows applications use "
           "too) closes the connection gracefully after a non-401 response in an authentication context when it cannot "
           "tell that the server is IIS 4 or later: no Server header, or Microsoft-IIS/1.0 to "
           "3.0. NTLM and Negotiate authenticate the connection, so every next request pays a "
           "new TCP connection and a new handshake. A filter that strips Server (URLScan's "
           "RemoveServerHeader=1, IIS removeServerHeader=\"true\", a load balancer or WAF) "
           "triggers it.",
    .fix = "stop stripping the Server header (URLScan RemoveServerHeader=0; IIS request "
           "filtering removeServerHeader=\"false\"), or add one on the way out (any value "
           "but IIS 1.0-3.0, e.g. Microsoft-IIS/10.0).",
    .proof = "shunt proxy --rules examples/rules/add-server-header.lua, then shunt ctl option "
             "\"Add Server Header\" on: the client keeps one connection and one handshake.",
    .run = run,
};

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_fin = 0, n_missing = 0, n_old = 0, followed = 0, ended_handshake = 0;
    size_t handshakes = 0;
    int64_t lost_us = 0;
    int status = -1; /* the one status they all had, 0 when they differ */
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const struct shunt_model_exchange *l;
        int certain;
        if (!c->selected || !shunt_check_wininet_close(c, &l, &certain))
            continue;
        struct shunt_check_cost cost = shunt_check_reopen_cost(c);
        /* A close that nothing followed cost nothing: the client may simply have been done. */
        if (!cost.followed)
            continue;
        n++;
        n_fin += (size_t)certain;
        n_missing += (size_t)!l->has_server;
        n_old += (size_t)l->old_iis;
        ended_handshake += (l->auth & SHUNT_MODEL_AUTH_BOUND) != 0;
        status = status == -1 || status == l->status ? l->status : 0;
        followed++;
        lost_us = shunt_model_add(lost_us, cost.us);
        handshakes += cost.handshakes;
    }
    if (n == 0)
        return 0;
    enum shunt_confidence conf = n_fin == n && n >= 2 ? SHUNT_CONFIDENCE_CERTAIN
                                                      : SHUNT_CONFIDENCE_LIKELY;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_wininet_auth_close, conf);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "connections", lost_us, handshakes, followed);
    char after[64], server[128];
    if (status > 0)
        snprintf(after, sizeof(after), "a %d", status);
    else
        snprintf(after, sizeof(after), "a non-401 response");
    if (n_old == 0)
        snprintf(server, sizeof(server), "%s", n == 1 ? "that response had no Server header"
                                                      : "none of those responses had a Server "
                                                        "header");
    else if (n_missing == 0)
        snprintf(server, sizeof(server), "%s named IIS 1.0-3.0 as Server",
                 n == 1 ? "that response" : "each of those responses");
    else
        snprintf(server, sizeof(server), "%zu of those responses had no Server header, %zu "
                 "named IIS 1.0-3.0", n_missing, n_old);
    shunt_finding_what(f, "The client closed %zu connection%s %sright after %s %s; %s. %s "
                       "opened a new connection to the same origin%s.",
                       n, n == 1 ? "" : "s", n_fin == n ? "with a FIN " : "", after,
                       ended_handshake == n ? "that ended an authentication handshake"
                                            : "in an authentication context",
                       server, n == 1 ? "It then" : "Each time it",
                       handshakes ? " and started a new handshake" : "");
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const struct shunt_model_exchange *l;
        int certain;
        if (c->selected && shunt_check_wininet_close(c, &l, &certain) && c->next != NULL)
            shunt_finding_example(f, c->id, l->id);
    }
    return 0;
}
