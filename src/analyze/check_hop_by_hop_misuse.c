/* src/analyze/check_hop_by_hop_misuse.c - hop-by-hop-misuse: Proxy-Connection, Keep-Alive on
 * HTTP/1.1, and Connection options that name end-to-end fields. Source: RFC 9110 7.6.1
 * (Connection), RFC 9112 9.3 and appendix C.2.2 (Keep-Alive, Proxy-Connection);
 * docs/knowledge.md. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"
#include "capture/har.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_hop_by_hop_misuse = {
    .id = "hop-by-hop-misuse",
    .title = "hop-by-hop fields misused",
    .looks_for = "requests that reach the server with Proxy-Connection (a forward proxy "
                 "removes it); HTTP/1.1 requests or responses with a Keep-Alive that their "
                 "Connection does not list (with Connection: keep-alive it is declared "
                 "hop-by-hop and harmless); Connection fields whose options name end-to-end fields "
                 "(Authorization, Content-Length, Host, Cookie, ...), in the heads as the "
                 "peers sent them",
    .evidence = "the request heads as the client sent them and the response heads as the "
                "server sent them",
    .why = "Connection lists the fields meant for the next hop only; every intermediary "
           "removes them, and the options it names (RFC 9110 7.6.1), so naming an end-to-end "
           "field there (Connection: close, Authorization) makes a proxy drop that field. "
           "Proxy-Connection was never standard and Keep-Alive belongs to HTTP/1.0's "
           "keep-alive (RFC 9112 appendix C.2.2): on HTTP/1.1 they mean nothing to a "
           "compliant peer, and old intermediaries act on them differently.",
    .fix = "send Connection with hop-by-hop options only (close, keep-alive, TE, Upgrade); "
           "drop Proxy-Connection from clients and Keep-Alive from HTTP/1.1 messages (the "
           "server or load balancer setting that adds it).",
    .proof = "shunt proxy --modify-headers '/Proxy-Connection/' (or /Keep-Alive/) removes the "
             "field on the way: the traffic must behave the same; shunt sessions FILE "
             "'~h \"^(proxy-connection|keep-alive):\"' lists the exchanges.",
    .run = run,
};

/* Fields that are meant for every recipient: naming one in Connection makes an intermediary
 * strip it. */
static const char *const end_to_end[] = {
    "Accept",        "Accept-Encoding", "Authorization",  "Cache-Control", "Content-Encoding",
    "Content-Length", "Content-Range",  "Content-Type",   "Cookie",        "Date",
    "ETag",          "Expect",          "Host",           "Last-Modified", "Location",
    "Range",         "Server",          "Set-Cookie",     "User-Agent",    "WWW-Authenticate",
};

/* Returns the first end-to-end field named by a Connection option of <head>, or NULL. */
static const char *named_end_to_end(struct shunt_slice head)
{
    for (size_t k = 0; k < sizeof(end_to_end) / sizeof(end_to_end[0]); k++)
        if (shunt_model_field_has_token(head, "Connection", end_to_end[k]))
            return end_to_end[k];
    return NULL;
}

/* True when the start line of <head> says HTTP/1.1 (request: at the end; response: first). */
static int is_http11(struct shunt_slice head, int response)
{
    if (head.base == NULL)
        return 0;
    size_t pos = 0;
    struct shunt_slice l = shunt_har_head_start(head.base, head.len, &pos);
    while (l.len && (l.base[l.len - 1] == ' ' || l.base[l.len - 1] == '\r'))
        l.len--;
    if (response)
        return l.len >= 8 && memcmp(l.base, "HTTP/1.1", 8) == 0;
    return l.len >= 8 && memcmp(l.base + l.len - 8, "HTTP/1.1", 8) == 0;
}

struct misuse {
    int proxy_conn, keep_alive_req, keep_alive_resp;
    const char *named; /* an end-to-end field named in Connection, or NULL */
};

/* Is there a Keep-Alive field in <head> that its Connection does not declare hop-by-hop?
 * Declared (Connection: keep-alive), as browsers send it and Apache httpd answers it on
 * HTTP/1.1 too, it is harmless: every intermediary removes it (RFC 9110 7.6.1). Undeclared,
 * one that does not know the field passes it on end to end. */
static int stray_keep_alive(struct shunt_slice head)
{
    struct shunt_slice v;
    return shunt_model_field(head, "Keep-Alive", &v) &&
           !shunt_model_field_has_token(head, "Connection", "keep-alive");
}

static int inspect(const struct shunt_model_exchange *e, struct misuse *u)
{
    struct shunt_slice v;
    memset(u, 0, sizeof(*u));
    /* HTTP/1.x only: HTTP/2 and HTTP/3 have no hop-by-hop fields at all (a message with
     * them is malformed, RFC 9113 8.2.2, RFC 9114 4.2), and a HAR's list of an HTTP/2
     * entry's fields is what the browser shows, not what went on the wire. */
    if (!shunt_model_http1(e))
        return 0;
    /* Proxy-Connection is what many clients (curl among them) send to a forward proxy,
     * which removes it: it is a defect only where it reaches a server, in the head as the
     * server got it (a HAR's head is both), on a request the server answered (one that
     * failed on the way, or a CONNECT, went no further than the proxy). */
    u->proxy_conn = e->resp.base != NULL && strcmp(e->method, "CONNECT") != 0 &&
                    shunt_model_field(e->req_up, "Proxy-Connection", &v);
    u->keep_alive_req = is_http11(e->req, 0) && stray_keep_alive(e->req);
    u->keep_alive_resp = is_http11(e->resp, 1) && stray_keep_alive(e->resp);
    u->named = named_end_to_end(e->req);
    if (u->named == NULL)
        u->named = named_end_to_end(e->resp);
    return u->proxy_conn || u->keep_alive_req || u->keep_alive_resp || u->named != NULL;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_pc = 0, n_ka = 0, n_named = 0;
    const char *named = NULL;
    struct misuse u;
    for (size_t i = 0; i < m->n_ex; i++) {
        const struct shunt_model_exchange *e = &m->ex[i];
        if (!e->selected || !inspect(e, &u))
            continue;
        n++;
        n_pc += (size_t)u.proxy_conn;
        n_ka += (size_t)(u.keep_alive_req || u.keep_alive_resp);
        if (u.named) {
            n_named++;
            if (named == NULL)
                named = u.named;
        }
    }
    if (n == 0)
        return 0;
    /* Naming an end-to-end field loses it at the next intermediary; the other two are
     * only noise to a compliant peer. */
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_hop_by_hop_misuse,
                                                n_named ? SHUNT_CONFIDENCE_CERTAIN
                                                        : SHUNT_CONFIDENCE_LIKELY);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "exchanges", 0, 0, 0);
    char parts[384];
    size_t o = 0;
    parts[0] = '\0';
    if (n_pc)
        o += (size_t)snprintf(parts + o, sizeof(parts) - o, "%zu request%s with "
                              "Proxy-Connection", n_pc, n_pc == 1 ? "" : "s");
    if (n_ka)
        o += (size_t)snprintf(parts + o, sizeof(parts) - o, "%s%zu HTTP/1.1 message%s with "
                              "Keep-Alive", o ? "; " : "", n_ka, n_ka == 1 ? "" : "s");
    if (n_named)
        snprintf(parts + o, sizeof(parts) - o, "%s%zu with a Connection option naming an "
                 "end-to-end field (%s)", o ? "; " : "", n_named, named);
    shunt_finding_what(f, "%zu exchange%s carried hop-by-hop fields that do not belong: %s.",
                       n, n == 1 ? "" : "s", parts);
    for (size_t i = 0; i < m->n_ex && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++)
        if (m->ex[i].selected && inspect(&m->ex[i], &u))
            shunt_finding_example(f, m->ex[i].conn_id, m->ex[i].id);
    return 0;
}
