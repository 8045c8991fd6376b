/* src/proxy/route.c - where a request goes: its target and authority, the forward and reverse
 * routes, the Host it is sent with, and the upstreams a proxy must not reach (itself). */
#include <stdio.h>
#include <string.h>

#include "http/target.h"
#include "proxy/session.h"

/* Reads the authority <a> (host[:port], no user info) into <rt>: the host in lower case
 * without brackets, the port or <default_port>; 0 requires a port (CONNECT). Returns 0 or -1. */
static int parse_authority(struct shunt_slice a, int default_port, struct route *rt)
{
    struct shunt_authority au;
    if (shunt_http_split_authority(a, default_port,
                                   default_port == 0 ? SHUNT_AUTHORITY_NEED_PORT : 0, &au) != NULL ||
        shunt_http_host_lower(au.host, rt->host, sizeof(rt->host)) < 0)
        return -1;
    rt->port = au.port;
    return 0;
}

/* When <t> is an absolute-form http URL, fills the authority and path of <rt> and returns 1. */
int shunt_proxy__split_absolute(struct shunt_slice t, struct route *rt)
{
    struct shunt_target st;
    if (shunt_http_split_target(t, 0, &st) != SHUNT_TARGET_ABSOLUTE ||
        !SHUNT_SLICE_IEQ_LIT(st.scheme, "http"))
        return 0;
    rt->absolute = 1;
    rt->authority = st.authority;
    rt->path = st.path.len == 0 ? SHUNT_SLICE_LIT("/") : st.path;
    rt->path_needs_slash = st.path.len > 0 && st.path.base[0] != '/';
    return 1;
}

/* The request target the exchange goes to: the one a rule mapped it to, or its own. */
struct shunt_slice shunt_proxy__target_of(const struct session *s, const struct shunt_http_head *h)
{
    return s->ex.mapped.len ? s->ex.mapped : h->target;
}

/* Decides where <h> goes. Returns 0, or answers the client itself and returns -1. */
int shunt_proxy__route_request(struct session *s, const struct shunt_http_head *h, struct route *rt)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    struct shunt_slice t = shunt_proxy__target_of(s, h);
    memset(rt, 0, sizeof(*rt));
    if (SHUNT_SLICE_IEQ_LIT(h->method, "CONNECT")) {
        if (cfg->reverse) {
            shunt_proxy__answer(
                s, 405, "Method Not Allowed",
                "shunt: CONNECT needs a forward proxy; this one is a reverse proxy for %s:%d",
                cfg->reverse_host, cfg->reverse_port);
            return -1;
        }
        rt->authority = t;
        if (parse_authority(t, 0, rt) != 0) {
            shunt_proxy__answer(s, 400, "Bad Request",
                                "shunt: CONNECT needs a target of the form host:port, got \"%.*s\"",
                                (int)t.len, t.base);
            return -1;
        }
        return 0;
    }
    if (shunt_proxy__split_absolute(t, rt)) {
        if (memchr(rt->authority.base, '@', rt->authority.len) != NULL ||
            parse_authority(rt->authority, 80, rt) != 0) {
            shunt_proxy__answer(
                s, 400, "Bad Request",
                "shunt: cannot read the host and port in \"%.*s\" (user info is not allowed)",
                (int)t.len, t.base);
            return -1;
        }
    } else if (t.len >= 8 && shunt_slice_ieq(shunt_slice_make(t.base, 8), "https://", 8)) {
        shunt_proxy__answer(
            s, 501, "Not Implemented",
            "shunt: https:// in a request line is not supported; clients send CONNECT for "
            "https (curl -x does)");
        return -1;
    } else if (t.base[0] == '/' || shunt_slice_eq(t, "*", 1)) {
        if (!cfg->reverse && s->icpt != ICPT_ON) {
            shunt_proxy__answer(
                s, 400, "Bad Request",
                "shunt: this is a forward proxy: requests must use absolute-form "
                "(GET http://host:port/path HTTP/1.1, as curl -x sends them), or CONNECT; "
                "to serve origin-form requests start shunt with --reverse http://HOST:PORT");
            return -1;
        }
        rt->path = t;
    } else {
        shunt_proxy__answer(s, 400, "Bad Request",
                            "shunt: the request target \"%.*s\" is not a URL or path", (int)t.len,
                            t.base);
        return -1;
    }
    if (s->icpt == ICPT_ON && !rt->absolute && s->ex.mapped.len == 0) {
        /* inside an intercepted tunnel: the CONNECT named the origin (pairing: the tunnel's
         * requests go there, whatever their Host says, as they did through the tunnel) */
        snprintf(rt->host, sizeof(rt->host), "%s", s->icpt_host);
        rt->port = s->icpt_port;
    } else if (cfg->reverse && s->ex.mapped.len == 0) {
        snprintf(rt->host, sizeof(rt->host), "%s", cfg->reverse_host);
        rt->port = cfg->reverse_port;
    }
    return 0;
}

/* Returns 1 when <a> and <b> name the same address (ports aside), v4-mapped or not. */
static int same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    char ta[64], tb[64];
    if (shunt_addr_format(a, ta, sizeof(ta)) < 0 || shunt_addr_format(b, tb, sizeof(tb)) < 0)
        return 0;
    const char *pa = strncmp(ta, "::ffff:", 7) == 0 ? ta + 7 : ta;
    const char *pb = strncmp(tb, "::ffff:", 7) == 0 ? tb + 7 : tb;
    return strcmp(pa, pb) == 0;
}

/* Returns 1 when a connection to <sa> reaches the listener bound to <listener>: the same port,
 * and the same address, or either of them this machine's loopback or wildcard. */
static int reaches(const struct sockaddr *sa, const struct sockaddr *listener)
{
    char t[64];
    int lport = shunt_addr_format(listener, t, sizeof(t));
    int port = shunt_addr_format(sa, t, sizeof(t));
    return lport > 0 && port == lport &&
           (shunt_addr_is_local(listener) || shunt_addr_is_local(sa) || same_address(listener, sa));
}

/*
 * Says why the proxy must not connect to <sa> for the exchange in flight, with the status to
 * answer in *<status>, or returns NULL. Only destinations a client chose are checked (a
 * forward request's target, a --map-remote result); the --reverse origin is the user's own.
 * Three rules: the proxy never connects to itself (a request would come back to it as one
 * from itself, a CONNECT would tunnel into itself, one connection pair per hop: 508, RFC 5842
 * 7.2); the admin API is never an
 * upstream (a client would switch rules through it, without its token when it listens on
 * loopback); and a proxy that serves other machines (a listener beyond loopback) does not
 * hand them this machine's loopback services, unless --allow-loopback-upstream.
 */
const char *shunt_proxy__forbidden_upstream(const struct session *s, const struct sockaddr *sa,
                                            int *status)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    if (cfg->reverse && s->ex.mapped.len == 0)
        return NULL;
    *status = 508;
    struct sockaddr_storage own;
    int len = sizeof(own);
    if (uv_tcp_getsockname(&s->w->listener, (struct sockaddr *)&own, &len) == 0 &&
        reaches(sa, (const struct sockaddr *)&own))
        return "is this proxy itself: the request would loop";
    *status = 403;
    const struct sockaddr *adm = (const struct sockaddr *)&cfg->admin_addr;
    if (adm->sa_family != 0 && reaches(sa, adm))
        return "is shunt's own admin API";
    if (cfg->refuse_local_upstreams && shunt_addr_is_local(sa))
        return "is on this machine (a loopback address), and this proxy serves other machines: "
               "start it with --allow-loopback-upstream to let them reach it";
    return NULL;
}

/* The Host a request must carry to its origin, or an empty slice to keep its own: an
 * absolute-form target decides it (RFC 9112 3.2.2); --reverse-host too. */
struct shunt_slice shunt_proxy__wanted_host(const struct session *s, const struct route *rt)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    if (rt->absolute)
        return rt->authority;
    if (cfg->reverse && cfg->reverse_host_header)
        return shunt_slice_make(s->w->reverse_authority, strlen(s->w->reverse_authority));
    return (struct shunt_slice){NULL, 0};
}

/* Who changes the Host of a request routed by <rt>: the target, as every forward proxy
 * does (RFC 9112 3.2.2), or the user's --reverse-host. */
const char *shunt_proxy__host_by(const struct route *rt)
{
    return rt->absolute ? "proxy" : "--reverse-host";
}
