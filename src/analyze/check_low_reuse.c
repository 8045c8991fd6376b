/* src/analyze/check_low_reuse.c - low-reuse: few requests per connection overall, and what
 * the new connections cost, measured (connect time, handshakes). It speaks only about the
 * connections whose end no other check explains, so that a close is counted once.
 * Source: RFC 9112 9.3 (persistence), 9.4 (concurrency); docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

/* The threshold. At least MIN_REPLACED connections that ended and were replaced by a new one
 * to the same origin, and fewer than MAX_MEAN_X10 / 10 requests per connection on the
 * connections looked at: below that, a client or server that keeps connections would have
 * served the same requests on a fraction of them. A handful of replaced connections is the
 * normal life of a client (an idle close, a new tab). */
#define MIN_REPLACED 4
#define MAX_MEAN_X10 20

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_low_reuse = {
    .id = "low-reuse",
    .title = "few requests per connection",
    .looks_for = "fewer than 2 requests per connection (NTLM and Negotiate 401 legs not "
                 "counted as requests) over the connections whose end no other check "
                 "explains, with at least 4 of them ended and replaced by a new connection "
                 "of the same client to the same origin",
    .evidence = "the exchanges of each connection, each connection's upstream connect time "
                "and handshakes, and the next connection to the same origin",
    .why = "Each new connection pays a TCP handshake (and TLS, and with NTLM or Negotiate an "
           "authentication) that a kept connection would not (RFC 9112 9.3). These "
           "connections ended for reasons no other check names: a client that asks "
           "Connection: close or speaks HTTP/1.0 without keep-alive, a server that closes "
           "idle connections before the next request comes, or an intermediary that does "
           "not keep connections.",
    .fix = "keep connections for the next request: on the client, HTTP/1.1 without "
           "Connection: close and a pool that keeps idle connections; on the server, a "
           "keep-alive timeout longer than the pause between requests (nginx "
           "keepalive_timeout, Apache KeepAliveTimeout, IIS connectionTimeout) and no limit "
           "of one request per connection; intermediaries that keep connections both ways.",
    .proof = "shunt connections FILE shows the exchanges per connection, who closed each "
             "and how; after the fix, the same traffic through shunt proxy opens a few "
             "connections and each carries many exchanges.",
    .run = run,
};

/* Is <c> one of the connections this check looks at? Selected, with a request, HTTP/1.x,
 * not a tunnel, and its end not explained by another check. An HTTP/2 or HTTP/3 connection
 * carries every request to its origin at once (RFC 9113 9.1: one per origin); a browser's
 * one per origin, with a few requests each, is how it is meant to be used. */
static int looked_at(const struct shunt_model_conn *c)
{
    return c->selected && c->n_ex > 0 && !c->tunnel && !c->multiplexed &&
           shunt_check_end_claimed(c) == NULL;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t conns = 0, requests = 0, replaced = 0, handshakes = 0;
    size_t by_client = 0, by_server = 0, asked = 0; /* how the replaced ones ended */
    int64_t lost_us = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (!looked_at(c))
            continue;
        conns++;
        requests += shunt_check_requests_on(c);
        struct shunt_check_cost cost = shunt_check_reopen_cost(c);
        if (!cost.followed)
            continue;
        replaced++;
        lost_us = shunt_model_add(lost_us, cost.us);
        handshakes += cost.handshakes;
        if (!shunt_check_wants_keepalive(shunt_model_last(c)))
            asked++;
        else if (strcmp(c->closer, "server") == 0)
            by_server++;
        else if (strcmp(c->closer, "client") == 0)
            by_client++;
    }
    if (replaced < MIN_REPLACED || requests * 10 >= conns * MAX_MEAN_X10)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_low_reuse,
                                                SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, replaced, "connections", lost_us, handshakes, replaced);
    char how[256];
    size_t o = 0;
    how[0] = '\0';
    if (asked)
        o += (size_t)snprintf(how + o, sizeof(how) - o, "%zu after a request that asked to "
                              "close (Connection: close or HTTP/1.0)", asked);
    if (by_server)
        o += (size_t)snprintf(how + o, sizeof(how) - o, "%s%zu closed by the server between "
                              "requests", o ? ", " : "", by_server);
    if (by_client)
        o += (size_t)snprintf(how + o, sizeof(how) - o, "%s%zu closed by the client", o ? ", " : "",
                              by_client);
    if (replaced > asked + by_server + by_client)
        snprintf(how + o, sizeof(how) - o, "%s%zu closed by the proxy or unknown", o ? ", " : "",
                 replaced - asked - by_server - by_client);
    char auth[96] = "";
    if (handshakes)
        snprintf(auth, sizeof(auth), "; the new connections started %zu handshake%s again",
                 handshakes, handshakes == 1 ? "" : "s");
    shunt_finding_what(f, "%zu request%s on %zu connections (%.1f per connection); %zu of "
                       "those connections ended and the client opened a new one to the same "
                       "origin (%s)%s.",
                       requests, requests == 1 ? "" : "s", conns,
                       (double)requests / (double)conns, replaced, how, auth);
    for (size_t i = 0; i < m->n_conns && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (looked_at(c) && c->next != NULL)
            shunt_finding_example(f, c->id, shunt_model_last(c)->id);
    }
    return 0;
}
