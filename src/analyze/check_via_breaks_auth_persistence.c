/* src/analyze/check_via_breaks_auth_persistence.c - via-breaks-auth-persistence: requests that
 * reach an IIS server with Via make it treat them as coming through a proxy and drop the
 * connection's NTLM or Negotiate authentication after each, so every request on a kept
 * connection pays a new handshake. Source: Microsoft's IIS 5.0 metabase documentation
 * (AuthPersistSingleRequestIfProxy), the IIS 6.0 AuthPersistence documentation, and the ISA
 * Server team's "Excessive Authentication Traffic accessing an IIS site when using ISA Server
 * 2006 as Forward Proxy"; docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_via_breaks_auth_persistence = {
    .id = "via-breaks-auth-persistence",
    .title = "requests with Via make IIS authenticate every request again",
    .looks_for = "a fresh NTLM or Negotiate 401 challenge on a connection already "
                 "authenticated, to a request that reached the server with a Via field, from a "
                 "server that names itself Microsoft-IIS (or names nothing)",
    .evidence = "the request heads as the server got them (Via), the response heads as the "
                "server sent them (Server, WWW-Authenticate), and each connection's exchanges "
                "in order; certain when requests without Via to the same origin kept their "
                "authentication",
    .why = "IIS resets the authentication of a connection at the end of a request it "
           "believes came through a proxy, and a Via field is what says so: each next request "
           "on the connection gets a new 401 and a new handshake (IIS 5's "
           "AuthPersistSingleRequestIfProxy, on by default; the ISA Server team saw the same "
           "on IIS 6). Through a proxy that keeps client and server connections paired, as "
           "Proxy-Support: Session-Based-Authentication promises, that reset buys nothing.",
    .fix = "do not add Via on the way to the IIS server (the proxy's setting: shunt proxy "
           "without --via; Squid's via off; an ISA/TMG rule), or, on IIS 5, clear "
           "AuthPersistSingleRequestIfProxy in the AuthPersistence metabase property; check "
           "that IIS's authPersistSingleRequest is false.",
    .proof = "record the same client through shunt proxy --via and then without it: shunt "
             "connections FILE '~auth' shows one handshake per connection instead of one per "
             "request; shunt lab origin --auth ntlm --reauth-with-via reproduces the server.",
    .run = run,
};

/* How the server of exchange <e> names itself: 2 Microsoft-IIS, 1 nothing (a stripped
 * Server field, as in the story, may hide IIS), 0 anything else. */
static int iis_or_unnamed(const struct shunt_model_exchange *e)
{
    struct shunt_slice v;
    static const char iis[] = "Microsoft-IIS/";
    if (!shunt_model_field(e->resp, "Server", &v) || v.len == 0)
        return 1;
    return v.len >= sizeof(iis) - 1 && shunt_slice_ieq(shunt_slice_make(v.base, sizeof(iis) - 1),
                                                       iis, sizeof(iis) - 1)
               ? 2
               : 0;
}

/* A fresh challenge (no token) in a 401 of a connection-bound scheme, over HTTP/1.x (the
 * only version that binds a handshake to its connection). */
static int fresh_challenge(const struct shunt_model_exchange *e)
{
    return shunt_model_http1(e) && e->status == 401 && (e->challenge & SHUNT_MODEL_AUTH_BOUND) &&
           !e->challenge_token;
}

/* Has a handshake completed on <c> before its exchange <k>? (A leg answered with anything
 * but 401.) */
static int authenticated_before(const struct shunt_model_conn *c, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if ((c->ex[j].auth & SHUNT_MODEL_AUTH_BOUND) && c->ex[j].status != 0 &&
            c->ex[j].status != 401)
            return 1;
    return 0;
}

/* Exchange <k> of <c> is a handshake the Via forced: a fresh challenge on a connection
 * already authenticated, to a request the server got with Via, from IIS or an unnamed
 * server. Returns iis_or_unnamed() (> 0) when it is, 0 when not. */
static int forced(const struct shunt_model_conn *c, size_t k)
{
    const struct shunt_model_exchange *e = &c->ex[k];
    struct shunt_slice v;
    if (!e->selected || !fresh_challenge(e) || !shunt_model_field(e->req_up, "Via", &v) ||
        !authenticated_before(c, k))
        return 0;
    return iis_or_unnamed(e);
}

/* Did a request without Via to <host>:<port> use an authentication an earlier exchange on
 * its connection set up, without a new challenge? Then the server keeps authentication where
 * no Via is seen, and Via is the difference. */
static int persisted_without_via(const struct shunt_model *m, const char *host, int port)
{
    struct shunt_slice v;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (strcmp(c->host, host) != 0 || c->port != port)
            continue;
        for (size_t k = 1; k < c->n_ex; k++) {
            const struct shunt_model_exchange *e = &c->ex[k];
            if (shunt_model_http1(e) && e->status != 0 && e->status != 401 &&
                !(e->auth & SHUNT_MODEL_AUTH_BOUND) &&
                !shunt_model_field(e->req_up, "Via", &v) && authenticated_before(c, k))
                return 1;
        }
    }
    return 0;
}

/* The time the handshake that exchange <k> of <c> starts took: its 401 legs. */
static int64_t handshake_time(const struct shunt_model_conn *c, size_t k)
{
    int64_t us = 0;
    for (size_t j = k; j < c->n_ex && c->ex[j].status == 401; j++)
        us = shunt_model_add(us, c->ex[j].duration_us);
    return us;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_iis = 0, n_added = 0;
    int64_t lost_us = 0;
    const struct shunt_model_exchange *first = NULL;
    int contrast = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        for (size_t k = 1; k < c->n_ex; k++) {
            int who = forced(c, k);
            if (who == 0)
                continue;
            const struct shunt_model_exchange *e = &c->ex[k];
            struct shunt_slice v;
            n++;
            n_iis += who == 2;
            /* Not in the request the client sent: the proxy that recorded it added it. */
            n_added += !shunt_model_field(e->req, "Via", &v);
            lost_us = shunt_model_add(lost_us, handshake_time(c, k));
            if (first == NULL) {
                first = e;
                contrast = persisted_without_via(m, e->host, e->port);
            }
        }
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_via_breaks_auth_persistence,
                                                contrast ? SHUNT_CONFIDENCE_CERTAIN
                                                         : SHUNT_CONFIDENCE_LIKELY);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "handshakes", lost_us, n, 0);
    struct shunt_slice via, server;
    (void)shunt_model_field(first->req_up, "Via", &via);
    char who[160];
    if (n_iis == n && shunt_model_field(first->resp, "Server", &server))
        snprintf(who, sizeof(who), "The server (%.*s)", (int)(server.len > 60 ? 60 : server.len),
                 server.base);
    else if (n_iis == 0)
        snprintf(who, sizeof(who), "The server (no Server field: IIS's may have been stripped)");
    else
        snprintf(who, sizeof(who), "The server (IIS, or unnamed)");
    shunt_finding_what(f, "%s asked for a new NTLM or Negotiate handshake %zu time%s on "
                       "connections already authenticated, each time to a request that carried "
                       "Via (%.*s)%s%s.",
                       who, n, n == 1 ? "" : "s", (int)(via.len > 60 ? 60 : via.len), via.base,
                       n_added == n ? ", which the recording proxy added (shunt proxy --via)"
                                    : "",
                       contrast ? "; requests without Via to the same origin kept their "
                                  "authentication"
                                : "");
    for (size_t i = 0; i < m->n_conns && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++)
        for (size_t k = 1; k < m->conns[i].n_ex; k++)
            if (forced(&m->conns[i], k))
                shunt_finding_example(f, m->conns[i].id, m->conns[i].ex[k].id);
    return 0;
}
