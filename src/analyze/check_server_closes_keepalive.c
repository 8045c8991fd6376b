/* src/analyze/check_server_closes_keepalive.c - server-closes-keepalive: the server ends
 * connections the client wanted to keep (Connection: close, HTTP/1.0 without keep-alive,
 * bodies delimited by the close), and what the new connections cost. Source: RFC 9112 9.3
 * (persistence), 9.6 (tear-down), 6.3 (message body length); docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_server_closes_keepalive = {
    .id = "server-closes-keepalive",
    .title = "the server ends connections the client would have kept",
    .looks_for = "connections whose last response ended them (Connection: close, HTTP/1.0 "
                 "without Connection: keep-alive, or a body delimited by the close) although "
                 "the request asked for a persistent connection, followed by a new connection "
                 "to the same origin",
    .evidence = "the response heads as the client got them, the request heads, and the next "
                "connection to the same origin",
    .why = "HTTP/1.1 connections persist unless a side says otherwise (RFC 9112 9.3). A "
           "response with Connection: close, an HTTP/1.0 response without keep-alive, or a "
           "body without Content-Length or chunked framing (it ends when the connection does, "
           "RFC 9112 6.3) forces the client to open a new connection for the next request: a "
           "TCP (and TLS) handshake, and with NTLM or Negotiate a new authentication.",
    .fix = "let the server keep connections: remove the Connection: close it adds (an "
           "application setting, a MaxKeepAliveRequests or keepalive_requests limit of 1, an "
           "intermediary that downgrades to HTTP/1.0), and give bodies a Content-Length or "
           "chunked framing.",
    .proof = "shunt sessions FILE '~hs \"^connection: close\" | ~closed server' lists the "
             "responses; reproduce with shunt lab origin --close-after 1 (or --http10) and "
             "shunt lab client --proxy, then without the option: connections fall to one.",
    .run = run,
};

/* Is <why> (a reason of shunt_model_server_closes()) a body delimited by the close? */
static int forced_by_body(const char *why)
{
    return why[0] == 'a';
}

/* The server's close of <c> that this check counts (<forced>: the ones a body without a
 * length forced, or the others), with a new connection after it; NULL when it is not. */
static const char *counted(const struct shunt_model_conn *c, int forced)
{
    const char *why = c->selected ? shunt_check_server_ended(c) : NULL;
    if (why == NULL || forced_by_body(why) != forced || c->next == NULL)
        return NULL; /* the last connection of the run: nothing paid for its end */
    return why;
}

/*
 * Adds the finding about the closes the server chose (<forced> 0: Connection: close, HTTP/1.0
 * without keep-alive), or about those a response body without a length forced (<forced> 1):
 * only the close can end such a body, so those closes are a consequence of
 * unframed-or-overlong-body's finding, ranked after it (the finding's cause), and counted
 * here once, not there.
 */
static int report(const struct shunt_model *m, int forced, struct shunt_findings *out)
{
    size_t n = 0, n_close = 0, n_http10 = 0, handshakes = 0;
    int64_t lost_us = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        const char *why = counted(c, forced);
        if (why == NULL)
            continue;
        struct shunt_check_cost cost = shunt_check_reopen_cost(c);
        n++;
        n_close += why[0] == 'C';
        n_http10 += why[0] == 'H';
        lost_us = shunt_model_add(lost_us, cost.us);
        handshakes += cost.handshakes;
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_server_closes_keepalive,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "connections", lost_us, handshakes, n);
    char how[256];
    size_t o = 0;
    how[0] = '\0';
    if (forced) {
        f->cause = "unframed-or-overlong-body";
        snprintf(how, sizeof(how), "%zu with a body delimited by the close: no "
                 "Content-Length nor chunked framing, so only the close could end %s", n,
                 n == 1 ? "it" : "them");
    } else {
        if (n_close)
            o += (size_t)snprintf(how + o, sizeof(how) - o, "%zu with Connection: close",
                                  n_close);
        if (n_http10)
            snprintf(how + o, sizeof(how) - o, "%s%zu as HTTP/1.0 without keep-alive",
                     o ? ", " : "", n_http10);
    }
    shunt_finding_what(f, "The server ended %zu connection%s that the client asked to keep "
                       "(%s); the client had to open a new one%s%s.",
                       n, n == 1 ? "" : "s", how, n == 1 ? "" : " each time",
                       handshakes ? ", and authenticate it again" : "");
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++)
        if (counted(&m->conns[i], forced) != NULL)
            shunt_finding_example(f, m->conns[i].id, shunt_model_last(&m->conns[i])->id);
    return 0;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    int rc = report(m, 0, out);
    return rc != 0 ? rc : report(m, 1, out);
}
