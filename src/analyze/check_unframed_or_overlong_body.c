/* src/analyze/check_unframed_or_overlong_body.c - unframed-or-overlong-body: responses whose
 * body has no length (only the close ends it), and servers that send bytes after the declared
 * end of a body. Source: RFC 9112 6.3 (message body length), 9.3 (persistence), 11.2 (response
 * splitting); docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_unframed_or_overlong_body = {
    .id = "unframed-or-overlong-body",
    .title = "response bodies without a length, or longer than their length",
    .looks_for = "responses with a body but neither Content-Length nor chunked framing (the "
                 "close ends them), to requests that asked to keep the connection; and bytes "
                 "a server sent after the declared end of a response: a body longer than its "
                 "Content-Length (a HAR's content size), or, in a shunt capture, an upstream "
                 "connection that delivered more bytes than its responses' heads and bodies",
    .evidence = "the response heads as the client got them; for the surplus, the byte counts "
                "of the upstream connections (a shunt capture whose responses are framed by "
                "Content-Length) or the body sizes of a HAR",
    .why = "A body without Content-Length or chunked coding ends only when the connection "
           "does (RFC 9112 6.3): every such response costs its connection, and the client "
           "cannot tell a complete body from one cut short. Bytes after the declared end of a "
           "body belong to no response: a client reads them as the start of the next one, so "
           "browsers and most clients drop the connection (or, worse, pair a later request "
           "with them; RFC 9112 11.2). shunt passes such bytes on as the server sent them, so "
           "the client reacts through it as it would direct.",
    .fix = "give every body a length: a Content-Length that matches what is written, or "
           "chunked coding (an application that writes straight to the socket, a handler "
           "that sets Content-Length before compressing or appending, a filter that changes "
           "the body without fixing the length).",
    .proof = "shunt show FILE ID (an example exchange): the response head has no "
             "Content-Length nor Transfer-Encoding, or a Content-Length shorter than the body; "
             "after the fix, shunt diagnose on a new capture has no such finding, and "
             "server-closes-keepalive no close delimited bodies.",
    .run = run,
};

/* Is <e> a response whose body only the close ends, to a request that asked to keep the
 * connection? (A client that asked for the close loses nothing to the missing length.) */
static int unframed(const struct shunt_model_exchange *e)
{
    return e->selected && shunt_model_resp_unframed(e) && shunt_check_wants_keepalive(e);
}

/* Adds the finding about responses without a length, with how many ended a connection the
 * client then had to open again (server-closes-keepalive counts what those cost). */
static int report_unframed(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, reopened = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        for (size_t k = 0; k < c->n_ex; k++) {
            if (!unframed(&c->ex[k]))
                continue;
            n++;
            reopened += k + 1 == c->n_ex && c->next != NULL;
        }
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_unframed_or_overlong_body,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "exchanges", 0, 0, 0);
    shunt_finding_what(f, "%zu response%s had a body but neither Content-Length nor chunked "
                       "framing, so only the close could end %s; %zu ended a connection the "
                       "client then had to open again (server-closes-keepalive counts what "
                       "that cost).",
                       n, n == 1 ? "" : "s", n == 1 ? "it" : "them", reopened);
    for (size_t i = 0; i < m->n_ex && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++)
        if (unframed(&m->ex[i]))
            shunt_finding_example(f, m->ex[i].conn_id, m->ex[i].id);
    return 0;
}

/* Adds the finding about bytes after the end of a body: per exchange from a HAR's body sizes,
 * per connection from a shunt capture's upstream byte counts (a capture is one or the other;
 * the proxy records a body up to its length and passes the rest on outside the exchange, so
 * its exchanges never show an excess). */
static int report_overlong(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n_ex = 0, n_conns = 0, reopened = 0, handshakes = 0;
    int64_t bytes = 0, lost_us = 0;
    for (size_t i = 0; i < m->n_ex; i++)
        if (m->ex[i].selected && m->ex[i].body_excess > 0) {
            n_ex++;
            bytes = shunt_model_add(bytes, m->ex[i].body_excess);
        }
    for (size_t i = 0; i < m->n_conns; i++)
        if (m->conns[i].selected && m->conns[i].surplus_bytes > 0) {
            n_conns++;
            bytes = shunt_model_add(bytes, m->conns[i].surplus_bytes);
            /* the client that dropped the connection over them opened another */
            struct shunt_check_cost cost = shunt_check_reopen_cost(&m->conns[i]);
            if (strcmp(m->conns[i].closer, "client") == 0 && cost.followed) {
                reopened++;
                lost_us = shunt_model_add(lost_us, cost.us);
                handshakes += cost.handshakes;
            }
        }
    if (n_ex == 0 && n_conns == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_unframed_or_overlong_body,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    if (n_ex > 0) {
        shunt_finding_measure(f, n_ex, "exchanges", 0, 0, 0);
        shunt_finding_what(f, "%zu response%s carried %lld body byte%s beyond %s "
                           "Content-Length: a client reads them as the start of the next "
                           "response, and drops the connection.",
                           n_ex, n_ex == 1 ? "" : "s", (long long)bytes, bytes == 1 ? "" : "s",
                           n_ex == 1 ? "its" : "their");
        for (size_t i = 0; i < m->n_ex && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++)
            if (m->ex[i].selected && m->ex[i].body_excess > 0)
                shunt_finding_example(f, m->ex[i].conn_id, m->ex[i].id);
        return 0;
    }
    shunt_finding_measure(f, n_conns, "connections", lost_us, handshakes, reopened);
    shunt_finding_what(f, "On %zu connection%s the server sent %lld byte%s after the declared "
                       "end of its responses (their Content-Length); shunt passed them on, as "
                       "the server sent them, and the client dropped %zu of those connections "
                       "and opened another.",
                       n_conns, n_conns == 1 ? "" : "s", (long long)bytes,
                       bytes == 1 ? "" : "s", reopened);
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++)
        if (m->conns[i].selected && m->conns[i].surplus_bytes > 0)
            shunt_finding_example(f, m->conns[i].id, 0);
    return 0;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    int rc = report_unframed(m, out);
    return rc != 0 ? rc : report_overlong(m, out);
}
