/* src/analyze/check_idle_timeout_race.c - idle-timeout-race: the server closes an idle
 * keep-alive connection just as the client reuses it, so the request sent on it gets no
 * response and goes again on a new connection. Source: RFC 9112 9.3.1 (retrying requests),
 * 9.6 (tear-down); nginx keepalive_timeout, Apache KeepAliveTimeout, IIS connectionTimeout;
 * docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_idle_timeout_race = {
    .id = "idle-timeout-race",
    .title = "the server closes idle connections just as the client reuses them",
    .looks_for = "a request sent on a reused connection (after a whole exchange) that got no "
                 "response because the server closed or reset the connection, followed by a "
                 "new connection of the same client to the same origin whose first request "
                 "is the same method and URL",
    .evidence = "the exchanges of each connection in order, their status and error (the "
                "proxy records why a request got no answer), who closed the connection and "
                "its upstream, and the next connection to the same origin. From a HAR "
                "(closer unknown), a failed request with an error is all there is, and the "
                "finding is only likely",
    .why = "A server closes a keep-alive connection that stayed idle longer than its "
           "keep-alive timeout (nginx keepalive_timeout, 75 s by default; Apache "
           "KeepAliveTimeout, 5 s; IIS connectionTimeout, 2 min). A client that keeps idle "
           "connections longer than that sometimes sends a request just as the close is on "
           "its way: the request meets a FIN or a reset, gets no response, and must be sent "
           "again on a new connection, which a client may do by itself only for an "
           "idempotent request (RFC 9112 9.3.1). Clients that do not retry show the user an error; "
           "those that do pay a new connection and, with NTLM or Negotiate, a new "
           "handshake.",
    .fix = "make the client's idle timeout for pooled connections shorter than the server's "
           "keep-alive timeout (or the server's longer: nginx keepalive_timeout, Apache "
           "KeepAliveTimeout, IIS connectionTimeout), honour Keep-Alive: timeout= when the "
           "server sends it, and retry idempotent requests that fail on a reused connection "
           "before any response byte (RFC 9112 9.3.1).",
    .proof = "shunt sessions FILE '~conn ID' on an example shows the unanswered request and "
             "its error; reproduce with shunt lab origin --idle-timeout S and shunt lab "
             "client --think MS through shunt proxy, MS around S*1000: well below, one "
             "connection; well above, the client sees the close first; near it, the race.",
    .run = run,
};

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_certain = 0, n_reset = 0, handshakes = 0;
    int64_t lost_us = 0, idle_min = -1, idle_max = -1;
    const char *first_error = ""; /* what the capture says of the first one */
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        int certain;
        const struct shunt_model_exchange *l = c->selected ? shunt_check_idle_race(c, &certain)
                                                           : NULL;
        if (l == NULL)
            continue;
        struct shunt_check_cost cost = shunt_check_reopen_cost(c);
        if (n == 0 && l->error != NULL)
            first_error = l->error;
        n++;
        n_certain += (size_t)certain;
        n_reset += strcmp(c->close_how, "RST") == 0 || strcmp(c->up_close_how, "RST") == 0;
        /* The request that failed, and the new connection that carried it again. */
        lost_us = shunt_model_add(lost_us, shunt_model_add(l->duration_us, cost.us));
        handshakes += cost.handshakes;
        /* How long the connection had been idle: from the end of the exchange before to
         * this request. Near the server's keep-alive timeout, by this check's nature. */
        const struct shunt_model_exchange *p = l - 1;
        int64_t idle = l->started_us - (p->started_us + p->duration_us);
        idle = idle < 0 ? 0 : idle;
        idle_min = idle_min < 0 || idle < idle_min ? idle : idle_min;
        idle_max = idle > idle_max ? idle : idle_max;
    }
    if (n == 0)
        return 0;
    enum shunt_confidence conf = n_certain == n ? SHUNT_CONFIDENCE_CERTAIN
                                                : SHUNT_CONFIDENCE_LIKELY;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_idle_timeout_race, conf);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "exchanges", lost_us, handshakes, n);
    char how[160], idle[96];
    if (n_certain < n)
        snprintf(how, sizeof(how), "the capture only says \"%.100s\"", first_error);
    else if (n_reset == n)
        snprintf(how, sizeof(how), "the server had reset the connection");
    else if (n_reset == 0)
        snprintf(how, sizeof(how), "the server had closed the connection (FIN)");
    else
        snprintf(how, sizeof(how), "the server had closed the connection (%zu with a FIN, %zu "
                 "reset)", n - n_reset, n_reset);
    if (idle_min / 1000 == idle_max / 1000)
        snprintf(idle, sizeof(idle), "%.0f ms", (double)idle_max / 1000.0);
    else
        snprintf(idle, sizeof(idle), "%.0f to %.0f ms", (double)idle_min / 1000.0,
                 (double)idle_max / 1000.0);
    shunt_finding_what(f, "%zu request%s sent on a reused connection after %s idle got no "
                       "response: %s. %s the client sent the same request again on a new "
                       "connection to the same origin%s.",
                       n, n == 1 ? "" : "s", idle, how, n == 1 ? "Then" : "Each time",
                       handshakes ? ", and authenticated again" : "");
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        int certain;
        const struct shunt_model_exchange *l = c->selected ? shunt_check_idle_race(c, &certain)
                                                           : NULL;
        if (l != NULL)
            shunt_finding_example(f, c->id, l->id);
    }
    return 0;
}
