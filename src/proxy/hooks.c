/* src/proxy/hooks.c - the glue to the rules: the request hook and its verdicts, the connection
 * hook, the connection's authentication as the rules see it, and the heads the rules edit. */
#include <stdio.h>
#include <string.h>

#include "http/auth.h"
#include "http/status.h"
#include "proxy/session.h"

static void hook_change(void *cctx, const char *what, const char *by)
{
    struct hook_changes *hc = cctx;
    shunt_proxy__emit_change_by(hc->s, hc->in_request, what, by);
}

/* Tells the connection hook (rules' on_connect, on_close) about <s>. */
void shunt_proxy__tell_conn_hook(struct session *s, int opening)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    struct shunt_conn_info ci = {opening,
                                 s->id,
                                 s->w->index,
                                 s->peer_addr,
                                 s->peer_port,
                                 s->idx,
                                 shunt_closer_name((enum shunt_closer)s->conn.closer),
                                 shunt_close_how_name((enum shunt_close_how)s->conn.how)};
    cfg->conn_hook(cfg->conn_hook_ud, &ci);
}

static const char *auth_name(enum auth_state a)
{
    switch (a) {
    case AUTH_CHALLENGED: return "challenged";
    case AUTH_HANDSHAKE: return "handshake";
    case AUTH_DONE: return "authenticated";
    default: return "none";
    }
}

/* Asks the request hook about <h>, before it is routed; a mapped URL takes effect at once
 * (routing and the request line follow it). */
void shunt_proxy__ask_request_hook(struct session *s, const struct shunt_http_head *h,
                                   struct shunt_request_verdict *v)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    struct shunt_slice host = h->host, lower;
    struct route tmp;
    int absolute = 1; /* the target is the URL: absolute-form, or a CONNECT's authority (as
                         mitmproxy shows a CONNECT's URL) */
    if (s->ex.req_is_connect)
        host = h->target;
    else if (shunt_proxy__split_absolute(h->target, &tmp))
        host = tmp.authority;
    else
        absolute = 0;
    /* with the host without its port, as the filters' ~d sees it */
    struct shunt_slice u = shunt_exchange_hook_url(&s->ex, h->host, h->target, absolute, host, &lower);
    struct shunt_head_ctx ctx = {1,    h->method,  u, lower,
                                 0,    h->headers, h->n_headers, NULL, 0, s->id, s->w->index,
                                 s->idx, h->minor_version, {"", 0}, s->peer_port,
                                 auth_name(s->auth), s->auth_scheme, NULL};
    cfg->request_hook(cfg->request_hook_ud, &ctx, v);
    shunt_exchange_adopt_verdict(&s->ex, v);
    if (v->map_url != NULL && v->map_url_len > 0 && v->respond_status == 0 &&
        !s->ex.req_is_connect) { /* a tunnel has no URL to map */
        s->ex.mapped = shunt_slice_make(v->map_url, v->map_url_len);
        char what[700];
        snprintf(what, sizeof(what), "map %.*s to %.*s", (int)(u.len > 300 ? 300 : u.len),
                 u.base, (int)(v->map_url_len > 300 ? 300 : v->map_url_len), v->map_url);
        shunt_proxy__emit_change_by(s, 1, what, v->by ? v->by : "rule");
    }
}

/* Answers the request with a rule's response: <status>, the header lines <fields> (may be
 * empty), and <body>. The request never reaches a server. Without a request body the
 * connection lives on, as with a server's answer; a body that would have to be skipped
 * ends it. */
void shunt_proxy__respond_now(struct session *s, const struct shunt_http_head *h, int status,
                              const char *fields, size_t fields_len, const char *body,
                              size_t body_len, const char *by)
{
    shunt_proxy__emit_unsent_head(s);
    char what[64];
    snprintf(what, sizeof(what), "respond %d without the server", status);
    shunt_proxy__emit_change_by(s, 1, what, by ? by : "rule");
    int keep = s->ex.req_body.done && !s->ex.req_close;
    char line[64], tail[80];
    int ll = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
                      shunt_http_reason_phrase(status));
    int tl = snprintf(tail, sizeof(tail), "Content-Length: %zu\r\n%s\r\n", body_len,
                      keep ? "" : "Connection: close\r\n");
    uv_buf_t bufs[4] = {uv_buf_init(line, (unsigned)ll),
                        uv_buf_init((char *)fields, (unsigned)fields_len),
                        uv_buf_init(tail, (unsigned)tl),
                        uv_buf_init((char *)body, (unsigned)body_len)};
    s->ex.status = status;
    s->ex.resp_started = 1;
    s->ex.resp_bytes += (uint64_t)ll + fields_len + (uint64_t)tl + body_len;
    s->ex.resp_body.payload = body_len;
    s->ex.req_bytes += h->head_len;
    (void)send_client(s, bufs, 4); /* copies what it cannot send at once */
    shunt_proxy__emit_own_response(s, status, bufs, 3, body, body_len);
    if (keep)
        shunt_conn_consume(&s->conn, h->head_len);
    else
        s->ending = 1;
    s->ex.rq = RQ_DONE;
    s->ex.rs = RS_DONE;
    shunt_proxy__maybe_done(s);
}

void shunt_proxy__respond_verdict(struct session *s, const struct shunt_http_head *h,
                                  const struct shunt_request_verdict *v)
{
    char ct[200];
    int cl = 0;
    if (v->respond_type != NULL)
        cl = snprintf(ct, sizeof(ct), "Content-Type: %s\r\n", v->respond_type);
    shunt_proxy__respond_now(s, h, v->respond_status, ct,
                             cl > 0 && (size_t)cl < sizeof(ct) ? (size_t)cl : 0, v->respond_body,
                             v->respond_body_len, v->by);
}

/* The scheme of an Authorization or WWW-Authenticate value ("NTLM TlRMTVNT..." gives
 * "NTLM"): http/auth.h's, which the recorder shares. */
static void scheme_of(struct shunt_slice v, char *out, size_t cap)
{
    shunt_http_auth_scheme_copy(v, out, cap);
}

/* Follows the connection's authentication on a request: an Authorization starts (or
 * continues) a handshake. */
void shunt_proxy__auth_on_request(struct session *s, const struct shunt_http_head *h)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        if (!shunt_slice_ieq(h->headers[i].name, "Authorization", 13))
            continue;
        if (s->auth_scheme[0] == '\0')
            scheme_of(h->headers[i].value, s->auth_scheme, sizeof(s->auth_scheme));
        s->auth = AUTH_HANDSHAKE;
        return;
    }
}

/* ... and on a final response: a 401 with a challenge, or the end of a handshake. */
void shunt_proxy__auth_on_response(struct session *s, const struct shunt_http_head *h)
{
    if (h->status == 401) {
        for (size_t i = 0; i < h->n_headers; i++) {
            if (!shunt_slice_ieq(h->headers[i].name, "WWW-Authenticate", 16))
                continue;
            if (s->auth_scheme[0] == '\0')
                scheme_of(h->headers[i].value, s->auth_scheme, sizeof(s->auth_scheme));
            s->auth = AUTH_CHALLENGED;
            return;
        }
    } else if (s->auth == AUTH_HANDSHAKE) {
        s->auth = AUTH_DONE;
    }
}

/* The builder's notes go out as change events, when someone listens. */
shunt_head_note_cb shunt_proxy__head_notes(const struct session *s)
{
    return shunt_proxy__wants(s->w->cfg, SHUNT_EV_CHANGE) ? hook_change : NULL;
}

/* What the proxy adds or rewrites on the request routed by <rt>. */
struct shunt_head_plan shunt_proxy__request_plan(const struct session *s, const struct route *rt)
{
    struct shunt_head_plan plan = {0};
    plan.host = shunt_proxy__wanted_host(s, rt);
    plan.host_by = shunt_proxy__host_by(rt);
    plan.via = s->w->cfg->via;
    if (rt->absolute) {
        plan.path = rt->path;
        plan.path_needs_slash = rt->path_needs_slash;
    }
    return plan;
}

/* ... and on the response <h> to the client. */
static struct shunt_head_plan response_plan(const struct session *s,
                                            const struct shunt_http_head *h)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    int final = h->status >= 200 || h->status == 101;
    struct shunt_head_plan plan = {0};
    /* Proxy-Support is routine (by "proxy", not flag C): on by default in forward mode, it
     * is what a proxy that pairs connections owes the client; --no-proxy-support turns it
     * off. */
    plan.proxy_support = h->status == 401 && !cfg->reverse && cfg->proxy_support &&
                         shunt_head_has_session_auth_challenge(h);
    plan.via = cfg->via && final;
    return plan;
}

static size_t edit_cap(const struct session *s)
{
    return s->w->cfg->limits.max_headers + SHUNT_PROXY_EDIT_EXTRA;
}

/* The request's fields as they go upstream, in <e> (the caller disposes of it): the
 * builder's, then, when <out> is not NULL, the rules' edit of them. */
void shunt_proxy__request_fields(struct session *s, const struct shunt_http_head *h,
                                 const struct route *rt, struct shunt_head_edit *e,
                                 struct shunt_hook_out *out)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    struct shunt_head_plan plan = shunt_proxy__request_plan(s, rt);
    struct hook_changes hc = {s, 1};
    shunt_head_request_fields(h, &plan, &s->heads, e, s->w->edit_fields, edit_cap(s),
                              shunt_proxy__head_notes(s), &hc);
    if (out == NULL)
        return;
    /* the URL the rules see is absolute, as the capture stores it */
    int found;
    struct shunt_slice host = shunt_edit_get(e, "Host", 4, &found);
    struct shunt_slice u = shunt_exchange_hook_url(&s->ex, host, h->target, rt->absolute, host, NULL);
    struct shunt_head_ctx ctx = {1,          h->method,   u,
                                 shunt_slice_make(s->ex.route_host, strlen(s->ex.route_host)),
                                 0,          h->headers,  h->n_headers,
                                 NULL,       0,           s->id,
                                 s->w->index, s->idx,     h->minor_version,
                                 {"", 0},    s->peer_port, auth_name(s->auth),
                                 s->auth_scheme, out};
    cfg->head_hook(cfg->head_hook_ud, e, &ctx, shunt_proxy__head_notes(s), &hc);
    shunt_exchange_adopt_hook_out(&s->ex, out);
}

/* The response's fields as they go to the client, in <e> (the caller disposes of it): the
 * builder's, then, when <out> is not NULL, the rules' edit of them. */
void shunt_proxy__response_fields(struct session *s, const struct shunt_http_head *h,
                                  struct shunt_head_edit *e, struct shunt_hook_out *out)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    struct shunt_head_plan plan = response_plan(s, h);
    struct hook_changes hc = {s, 0};
    shunt_head_response_fields(h, &plan, &s->heads, e, s->w->edit_fields, edit_cap(s),
                               shunt_proxy__head_notes(s), &hc);
    if (out == NULL)
        return;
    struct shunt_head_ctx ctx = {0,
                                 shunt_slice_make(s->ex.method, strlen(s->ex.method)),
                                 s->ex.hook_url,
                                 shunt_slice_make(s->ex.route_host, strlen(s->ex.route_host)),
                                 h->status,
                                 NULL,
                                 0,
                                 h->headers,
                                 h->n_headers,
                                 s->id,
                                 s->w->index,
                                 s->idx,
                                 h->minor_version,
                                 h->reason,
                                 s->peer_port,
                                 auth_name(s->auth),
                                 s->auth_scheme,
                                 out};
    cfg->head_hook(cfg->head_hook_ud, e, &ctx, shunt_proxy__head_notes(s), &hc);
    shunt_exchange_adopt_hook_out(&s->ex, out);
}
