/* src/proxy/session.c - one client connection and the upstream connections paired with it:
 * the exchange state machine (a request read, routed, sent and its response forwarded, one
 * at a time) and the end of exchanges and connections, with close mirroring (FIN for FIN, RST
 * for RST). The rest of a session's work is in the files session.h lists. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "proxy/session.h"

/* ------------------------------------------------------------------------ types */

/* The client's and the upstreams' connections (net/conn.h) record who closed them with the
 * capture's codes: the same values on both sides. */
_Static_assert((int)SHUNT_CONN_HOW_FIN == (int)SHUNT_CLOSE_FIN &&
                   (int)SHUNT_CONN_HOW_RST == (int)SHUNT_CLOSE_RST &&
                   (int)SHUNT_CONN_HOW_TIMEOUT == (int)SHUNT_CLOSE_TIMEOUT &&
                   (int)SHUNT_CONN_HOW_ERROR == (int)SHUNT_CLOSE_ERROR,
               "net/conn.h and proxy/events.h disagree on how a connection closed");
_Static_assert(SHUNT_CONN_TLS_NOTIFY_IN == SHUNT_TLS_CLOSE_NOTIFY_IN &&
                   SHUNT_CONN_TLS_NOTIFY_OUT == SHUNT_TLS_CLOSE_NOTIFY_OUT &&
                   SHUNT_CONN_TLS_TRUNCATED == SHUNT_TLS_TRUNCATED &&
                   SHUNT_CONN_TLS_USED == SHUNT_TLS_USED,
               "net/conn.h and proxy/events.h disagree on how a TLS connection ended");

static void update_reading(struct session *s);

_Atomic uint64_t shunt_proxy__stat_open, shunt_proxy__stat_exchanges;

void shunt_proxy_stats(struct shunt_proxy_stats *out)
{
    out->connections_open = shunt_proxy__stat_open;
    out->exchanges = shunt_proxy__stat_exchanges;
}

static uint64_t next_conn_id(void)
{
    static _Atomic uint64_t n;
    return ++n;
}

/* ------------------------------------------------------------------------ closing */

/* One of the session's two handles (its client connection, its timer) is closed; the
 * memory goes with the second. */
static void session_unref(struct session *s)
{
    if (--s->refs_handles == 0) {
        free(s->partial);
        free(s->tr);
        free(s->trbuf);
        shunt_exchange_dispose(&s->ex);
        shunt_arena_dispose(&s->heads);
        free(s);
    }
}

static void session_timer_closed(uv_handle_t *h)
{
    session_unref(h->data);
}

/* Before an ordinary close of a connection that carries TLS: close_notify (the FIN follows
 * with the close), unless the other side ended without one and that is mirrored. */
void shunt_proxy__tls_goodbye(struct shunt_conn *c, int mirror_truncation)
{
    if (shunt_conn_tls(c) == NULL || !c->tls_done || c->wr_shut)
        return;
    if (mirror_truncation)
        shunt_conn_shutdown_truncated(c);
    else
        shunt_conn_shutdown(c);
}

/* Closes the client connection and every upstream one, at once. */
void shunt_proxy__session_close(struct session *s, int reset_client, int reset_upstreams)
{
    if (s->closing)
        return;
    if (s->ex.active && s->ex.error == NULL)
        s->ex.error = "connection closed during the exchange";
    shunt_proxy__emit_exchange_done(s);
    while (s->n_ups > 0)
        shunt_proxy__upstream_close(s->ups[0], reset_upstreams);
    s->closing = 1;
    set_closer(s, SHUNT_CLOSER_PROXY, reset_client ? SHUNT_CLOSE_RST : SHUNT_CLOSE_FIN);
    if (!reset_client) /* before the event: it reports the close_notify sent */
        shunt_proxy__tls_goodbye(&s->conn, s->up_truncated);
    struct worker *w = s->w;
    if (shunt_proxy__wants(w->cfg, SHUNT_EV_CONN_CLOSE)) {
        struct shunt_event ev;
        shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_CONN_CLOSE);
        ev.peer_addr = s->peer_addr;
        ev.peer_port = s->peer_port;
        ev.local_addr = s->local_addr;
        ev.local_port = s->local_port;
        ev.closer = (enum shunt_closer)s->conn.closer;
        ev.how = (enum shunt_close_how)s->conn.how;
        ev.bytes_in = s->conn.bytes_in;
        ev.bytes_out = s->conn.bytes_out;
        ev.tunnel = s->tunnel;
        ev.tls_close = s->conn.tls_close;
        shunt_proxy__emit(s, &ev);
    }
    if (w->cfg->conn_hook != NULL)
        shunt_proxy__tell_conn_hook(s, 0);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    w->n_sessions--;
    shunt_proxy__stat_open--;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, session_timer_closed);
    shunt_conn_close(&s->conn, reset_client);
    if (w->draining && w->n_sessions == 0)
        shunt_proxy__close_all(w);
}

/* Our FIN to the client: once what is queued went out (client_on_shut() follows). */
void shunt_proxy__shutdown_client(struct session *s)
{
    if (s->up_truncated) /* the server's TLS ended with a bare TCP close: mirrored */
        shunt_conn_shutdown_truncated(&s->conn);
    else
        shunt_conn_shutdown(&s->conn);
}

/* Closes what has finished both ways: upstreams that sent and got FIN, then the client once
 * it sent FIN, got ours and no upstream remains. The client gets its FIN when the last
 * upstream is gone, which mirrors the server's FIN. */
void shunt_proxy__check_finished(struct session *s)
{
    if (s->closing || !(s->finishing || s->tunnel))
        return;
    for (int i = s->n_ups - 1; i >= 0; i--) {
        struct upstream *u = s->ups[i];
        if (u->conn.rd_eof && (u->conn.shut_done || !u->conn.connected))
            shunt_proxy__upstream_close(u, 0);
        else if (!u->conn.connected && !shunt_conn_connecting(&u->conn))
            shunt_proxy__upstream_close(u, 0);
    }
    if (s->n_ups == 0 && !s->conn.wr_shut && (s->finishing || s->tunnel))
        shunt_proxy__shutdown_client(s);
    if (s->conn.rd_eof && s->conn.shut_done && s->n_ups == 0)
        shunt_proxy__session_close(s, 0, 0);
}

/*
 * No more exchanges on this connection. When the client began it (its FIN), the upstreams
 * get FIN and the client gets its own once they answer with theirs; otherwise (the server
 * said close, or the proxy decided) both sides get FIN now. A linger timer bounds the wait.
 */
void shunt_proxy__finish(struct session *s)
{
    if (s->closing)
        return;
    if (!s->finishing) {
        s->finishing = 1;
        int unread = s->conn.in.base != NULL && s->conn.in.off < s->conn.in.len;
        shunt_conn_release_input(&s->conn);
        if (s->conn.rd_eof) {
            for (int i = s->n_ups - 1; i >= 0; i--) {
                if (s->ups[i]->conn.connected)
                    shunt_proxy__shutdown_upstream(s->ups[i]);
                else
                    shunt_proxy__upstream_close(s->ups[i], 0);
            }
        } else {
            while (s->n_ups > 0)
                shunt_proxy__upstream_close(s->ups[0], 0);
            if (queued(&s->conn) == 0 && !unread && s->idx > 0 && !s->ex.active) {
                /* Everything went out and nothing unread is waiting: close() sends the
                 * FIN at once, without a shutdown and a wait for the client's own. (With
                 * unread bytes close() would send a RST, hence the lingering path; so too
                 * before any exchange, when a request may be on its way.) */
                shunt_proxy__session_close(s, 0, 0);
                return;
            }
            shunt_proxy__shutdown_client(s);
        }
        /* a slow reader still getting the response is not lingering */
        shunt_proxy__arm(s, T_LINGER, queued(&s->conn) > 0 ? s->w->cfg->idle_timeout_ms : 5000);
    }
    shunt_proxy__check_finished(s);
    update_reading(s);
}

static int has_input(const struct session *s)
{
    return s->conn.in.base != NULL && s->conn.in.off < s->conn.in.len;
}

/* Passes the client's FIN on to the server, once everything the client sent before it has
 * been forwarded: pipelined requests still in the buffer go first. */
void shunt_proxy__mirror_client_fin(struct session *s)
{
    if (!s->conn.rd_eof || s->cur == NULL || has_input(s))
        return;
    if (s->tunnel || s->ex.rq == RQ_DONE)
        shunt_proxy__shutdown_upstream(s->cur);
}

/* Ends the exchange in flight and decides what the connection does next. */
void shunt_proxy__exchange_done(struct session *s)
{
    shunt_proxy__emit_exchange_done(s);
    shunt_exchange_end(&s->ex);
}

void shunt_proxy__maybe_done(struct session *s)
{
    if (s->closing || s->tunnel)
        return;
    if (s->ex.rs == RS_DONE && s->ex.rq == RQ_BODY) {
        /* The response came before the end of the request body (IIS answers a POST with its
         * NTLM challenge early, say): the body still goes to the server, which decides
         * whether the connection lives on. A client that stops sending meets the idle
         * timeout. */
        shunt_proxy__arm(s, T_IDLE, s->w->cfg->idle_timeout_ms);
        return;
    }
    if (s->ex.rq != RQ_DONE || s->ex.rs != RS_DONE)
        return;
    shunt_proxy__exchange_done(s);
    if (s->ending || s->w->draining || (s->conn.rd_eof && !has_input(s))) {
        shunt_proxy__finish(s);
        return;
    }
    shunt_proxy__arm(s, T_IDLE, s->w->cfg->idle_timeout_ms);
    shunt_proxy__process_client(s); /* a pipelined request may be waiting */
}

/* Counts the head of a request shunt answers before sending it anywhere (a refused or
 * unreachable upstream, a forbidden target): its bytes came from the client all the same,
 * and the capture's req_bytes must agree with the connection's bytes_in. */
static void count_unsent_head(struct session *s)
{
    if (s->ex.req_bytes != 0 || !s->ex.active || s->conn.in.base == NULL)
        return;
    struct shunt_http_head h;
    struct shunt_http_error e;
    if (shunt_proxy__parse_request(s, &h, &e) > 0)
        s->ex.req_bytes = h.head_len;
}

/* ------------------------------------------------------------------------ own answers */

/* Sends a short text response of the proxy's own and ends the connection after it. Used for
 * 400, 403, 408, 501, 502 and 504; the body says why, starting with "shunt:". */
void shunt_proxy__answer(struct session *s, int status, const char *reason, const char *fmt, ...)
{
    /* the body, whole (it names hosts and targets): "shunt: why" and a newline */
    va_list ap, ap2;
    if (s->icpt_plain) {
        /* an intercepted tunnel that stayed plain: the client has had its 200 and speaks
         * its own protocol, so no HTTP answer goes in its bytes; the failure is an exchange
         * and the client connection is reset, as for a tunnel whose upstream failed */
        char why[512];
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        (void)status;
        (void)reason;
        shunt_proxy__plain_tunnel_failed(s, strncmp(why, "shunt: ", 7) == 0 ? why + 7 : why);
        return;
    }
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int ml = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (ml < 0)
        ml = 0;
    /* in the arena: it may become the exchange's error text (valid until its end) */
    char *msg = shunt_exchange_alloc(&s->ex, (size_t)ml + 2);
    if (ml > 0)
        vsnprintf(msg, (size_t)ml + 1, fmt, ap2);
    va_end(ap2);
    msg[ml] = '\n';
    size_t bl = (size_t)ml + 1;
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, reason, bl);
    shunt_proxy__emit_unsent_head(s);
    count_unsent_head(s);
    if (!s->ex.resp_started && !s->conn.wr_shut && !s->closing) {
        uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init(msg, (unsigned)bl)};
        s->ex.status = status;
        s->ex.resp_bytes += (uint64_t)hl + bl;
        s->ex.resp_body.payload = bl;
        (void)send_client(s, bufs, 2); /* a client gone already changes nothing */
        shunt_proxy__emit_own_response(s, status, bufs, 1, msg, bl);
    }
    s->ex.resp_started = 1;
    msg[ml] = '\0';
    if (s->ex.error == NULL) /* the cause, for the event and -v: without "shunt: " */
        s->ex.error = strncmp(msg, "shunt: ", 7) == 0 ? msg + 7 : msg;
    s->ending = 1;
    set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_ERROR);
    s->ex.rq = RQ_DONE;
    s->ex.rs = RS_DONE;
    if (s->ex.active)
        shunt_proxy__maybe_done(s);
    else
        shunt_proxy__finish(s);
}

/* Starts an exchange: its index, start time and a printable method and URL for the log. */
void shunt_proxy__begin_exchange(struct session *s, const struct shunt_http_head *h)
{
    s->idx++;
    struct shunt_slice none = {NULL, 0};
    shunt_exchange_begin(&s->ex, h != NULL ? h->method : none, h != NULL ? h->target : none,
                         now_us());
    s->ex.https = s->icpt == ICPT_ON || (s->w->cfg->reverse && s->w->cfg->reverse_tls);
}

/* ------------------------------------------------------------------------ requests */

/* Sends the request in flight to its origin: on <u>, the upstream already open to it (at
 * once when connected, else once it is), or on a new one when <u> is NULL. Its route is in
 * s->ex.route_host and s->ex.route_port. */
void shunt_proxy__route_on(struct session *s, struct upstream *u)
{
    if (u == NULL || !u->conn.connected)
        shunt_proxy__emit_unsent_head(s); /* it waits for the connection: visible while it does */
    if (u == NULL) {
        struct route rt = {0};
        snprintf(rt.host, sizeof(rt.host), "%s", s->ex.route_host);
        rt.port = s->ex.route_port;
        shunt_proxy__open_upstream(s, &rt);
        return;
    }
    s->cur = u;
    s->ex.rq = RQ_CONNECTING;
    if (u->conn.connected) {
        if (s->ex.req_is_connect)
            shunt_proxy__establish_tunnel(s);
        else
            shunt_proxy__send_request(s);
    }
}

/*
 * RFC 9112 2.2: a server should ignore at least one empty line (CRLF) before a request
 * line; clients send one after a POST body. Consumes those at the front of the client
 * buffer, counted in s->empty_lines, at most max_head bytes of them per request so that
 * they cost no more than a head would. Returns 0 to parse on, 1 when more bytes are needed,
 * -1 when the request was refused.
 */
static int skip_empty_lines(struct session *s)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    const char *p = s->conn.in.base + s->conn.in.off;
    size_t avail = s->conn.in.len - s->conn.in.off, k = 0;
    while (k + 2 <= avail && p[k] == '\r' && p[k + 1] == '\n')
        k += 2;
    int cr_pending = k + 1 == avail && p[k] == '\r';
    if (k > 0) {
        free(s->partial); /* it parsed from a start that moves */
        s->partial = NULL;
        s->empty_lines += k / 2;
        shunt_conn_consume(&s->conn, k);
    }
    if (s->empty_lines * 2 > cfg->limits.max_head) {
        s->empty_lines = 0;
        shunt_proxy__begin_exchange(s, NULL);
        shunt_proxy__answer(
            s, 400, "Bad Request",
            "shunt: bad request: more than %zu bytes of empty lines before the request line "
            "(RFC 9112 2.2)",
            cfg->limits.max_head);
        return -1;
    }
    return k == avail || cr_pending ? 1 : 0;
}

static void start_request(struct session *s)
{
    struct shunt_http_head h;
    struct shunt_http_error e = {0};
    const struct shunt_proxy_config *cfg = s->w->cfg;
    int skip = skip_empty_lines(s);
    if (skip != 0) {
        if (skip > 0 && (client_wait(s) == T_IDLE || client_wait(s) == T_FIRST))
            shunt_proxy__arm(s, T_HEADER, cfg->header_timeout_ms);
        return;
    }
    int r = shunt_proxy__parse_request(s, &h, &e);
    size_t avail = s->conn.in.len - s->conn.in.off;
    if (r == 0) {
        if (client_wait(s) == T_IDLE || client_wait(s) == T_FIRST)
            shunt_proxy__arm(s, T_HEADER, cfg->header_timeout_ms);
        return;
    }
    if (r < 0) {
        s->empty_lines = 0;
        shunt_proxy__begin_exchange(s, NULL);
        s->ex.req_bytes = avail;
        if (shunt_proxy__wants(cfg, SHUNT_EV_REQUEST_HEAD)) { /* the evidence */
            struct shunt_event ev;
            shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_REQUEST_HEAD);
            ev.raw = shunt_slice_make(s->conn.in.base + s->conn.in.off, avail);
            shunt_proxy__emit(s, &ev);
        }
        shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
        shunt_proxy__answer(s, 400, "Bad Request", "shunt: bad request: %s (%s) at byte %zu",
                            shunt_http_reason_str(e.reason), shunt_http_reason_name(e.reason),
                            e.offset);
        return;
    }
    shunt_proxy__begin_exchange(s, &h);
    if (s->empty_lines > 0) {
        char what[96];
        snprintf(what, sizeof(what), "skip %zu empty line%s before the request line (RFC 9112 2.2)",
                 s->empty_lines, s->empty_lines == 1 ? "" : "s");
        shunt_proxy__emit_fix(s, 1, what);
        s->empty_lines = 0;
    }
    s->ex.req_is_head = SHUNT_SLICE_IEQ_LIT(h.method, "HEAD");
    s->ex.req_is_connect = SHUNT_SLICE_IEQ_LIT(h.method, "CONNECT");
    s->ex.req_upgrade = h.has_upgrade && h.conn_upgrade;
    s->ex.req_close = !shunt_http_keeps_alive(&h);
    struct shunt_request_verdict v = {0};
    if (cfg->request_hook != NULL)
        shunt_proxy__ask_request_hook(s, &h, &v);
    if (s->ex.req_is_connect && v.respond_status < 300) {
        /* A CONNECT can be refused by a rule (mitmproxy's block_list does the same), not
         * answered with a 2xx: the client would take it for an open tunnel. */
        v.respond_status = 0;
    }
    struct route rt;
    if (shunt_proxy__route_request(s, &h, &rt) != 0)
        return;
    shunt_http_body_init(&s->ex.req_body, h.framing, h.content_length, &cfg->limits);
    s->ex.req_body.hold_trailers = 1; /* see shunt_proxy__frame_body() */
    if (shunt_proxy__prescan_body(s, &s->ex.req_body, s->conn.in.base + s->conn.in.off + h.head_len,
                                  avail - h.head_len, &e)) {
        shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
        shunt_proxy__answer(
            s, 400, "Bad Request", "shunt: bad request body: %s (%s) at body byte %zu",
            shunt_http_reason_str(e.reason), shunt_http_reason_name(e.reason), e.offset);
        return;
    }
    snprintf(s->ex.route_host, sizeof(s->ex.route_host), "%s", rt.host);
    s->ex.route_port = rt.port;
    if (v.respond_status >= 100 && v.respond_status <= 999) {
        shunt_proxy__respond_verdict(s, &h, &v);
        return;
    }
    s->ex.req_kept = 0;
    if (s->ex.req_is_connect && cfg->tls_server != NULL && shunt_conn_tls(&s->conn) == NULL &&
        (cfg->intercept_hook == NULL || /* (a CONNECT inside TLS stays a tunnel in it) */
         cfg->intercept_hook(cfg->intercept_hook_ud, rt.host, rt.port))) {
        shunt_proxy__intercept_connect(s, &h, &rt);
        return;
    }
    if (cfg->head_hook == NULL || s->ex.req_is_connect) {
        shunt_proxy__route_on(s, shunt_proxy__find_upstream(s, rt.host, rt.port));
        return;
    }
    /* The rules see the request now, before it goes anywhere: they may answer it or hold
     * it. Their edit is sent at once when the upstream is connected, else kept. */
    shunt_proxy__auth_on_request(s, &h);
    struct shunt_hook_out out = {0};
    struct shunt_head_edit edit;
    shunt_arena_reset(&s->heads);
    shunt_proxy__request_fields(s, &h, &rt, &edit, &out);
    if (out.respond_status >= 100 && out.respond_status <= 999) {
        shunt_edit_dispose(&edit);
        shunt_proxy__respond_now(s, &h, out.respond_status, out.respond_fields,
                                 out.respond_fields_len, out.respond_body, out.respond_body_len,
                                 out.by);
        return;
    }
    struct upstream *u = shunt_proxy__find_upstream(s, rt.host, rt.port);
    if (out.delay_ms == 0 && u != NULL && u->conn.connected) {
        s->ex.live_edit = &edit;
        shunt_proxy__route_on(s, u);
        s->ex.live_edit = NULL;
        shunt_edit_dispose(&edit);
        return;
    }
    shunt_exchange_keep(&s->ex, &edit);
    s->ex.req_kept = 1;
    shunt_edit_dispose(&edit);
    if (out.delay_ms > 0) {
        char what[64];
        snprintf(what, sizeof(what), "hold the request %" PRIu64 " ms", out.delay_ms);
        shunt_proxy__emit_change_by(s, 1, what, out.by ? out.by : "rule");
        shunt_proxy__emit_unsent_head(s); /* visible while it is held */
        s->ex.held = HOLD_REQUEST;
        s->ex.rq = RQ_CONNECTING;
        shunt_proxy__arm(s, T_DELAY, out.delay_ms);
        return;
    }
    shunt_proxy__route_on(s, u);
}

/* ------------------------------------------------------------------------ heads */

/*
 * The heads shunt sends are built by proxy/head.c from the head as it came, a table of
 * what a proxy drops or rewrites, and a plan of what it adds; the rules, when there are
 * any, edit the result. Bytes go out as they came except what the table changes and what
 * a downstream parser could read otherwise than shunt did (docs/framing.md), each change
 * recorded.
 */

/* Appends the lines of <e> to <iov> from <n>. */
static size_t add_edit(struct session *s, uv_buf_t *iov, size_t n, const struct shunt_head_edit *e)
{
    struct shunt_slice *l = s->w->iov_slices;
    size_t k = shunt_head_lines(e, l, 0);
    for (size_t i = 0; i < k; i++)
        n = iov_add(iov, n, l[i].base, l[i].len);
    return n;
}

/* Sends the head of the request at the start of the client buffer to s->cur, as the
 * origin must see it: origin-form in forward mode, Host set to the target's, the headers
 * addressed to the proxy removed, everything else byte for byte. */
void shunt_proxy__send_request(struct session *s)
{
    struct worker *w = s->w;
    const struct shunt_proxy_config *cfg = w->cfg;
    struct upstream *u = s->cur;
    struct shunt_http_head h;
    struct shunt_http_error e;
    struct route rt;
    int r = shunt_proxy__parse_request(s, &h, &e); /* the same bytes as before: the same head */
    assert(r > 0);
    (void)r;
    memset(&rt, 0, sizeof(rt));
    shunt_proxy__split_absolute(shunt_proxy__target_of(s, &h),
                                &rt); /* start_request() checked the rest */
    if (s->ex.live_edit == NULL) /* else its lines are in <heads> */
        shunt_arena_reset(&s->heads);
    const char *p = s->conn.in.base + s->conn.in.off;
    uv_buf_t *iov = w->iov;
    size_t n = 0;
    struct hook_changes hc = {s, 1};
    struct shunt_head_plan plan = shunt_proxy__request_plan(s, &rt);
    struct shunt_slice line =
        shunt_head_request_line(&h, p, &plan, &s->heads, shunt_proxy__head_notes(s), &hc);
    iov[n++] = uv_buf_init((char *)line.base, (unsigned)line.len);
    if (s->ex.live_edit != NULL) { /* the rules' edit, made in start_request() */
        n = add_edit(s, iov, n, s->ex.live_edit);
    } else if (s->ex.req_kept) { /* ... or kept while the upstream connected or it was held */
        s->ex.req_kept = 0;
        n = iov_add(iov, n, s->ex.kept.base, s->ex.kept.len);
    } else {
        struct shunt_head_edit fields;
        shunt_proxy__request_fields(s, &h, &rt, &fields, NULL);
        n = add_edit(s, iov, n, &fields);
        shunt_edit_dispose(&fields);
    }
    n = iov_add(iov, n, p + h.head_len - 2, 2);
    shunt_proxy__emit_head(s, SHUNT_EV_REQUEST_HEAD, &h, p, iov, n);
    s->ex.head_emitted = 1;
    /* the body bytes that came with the head go in the same writev: one system call for a
     * small message; the body was prescanned, so this cannot fail */
    long fb = shunt_proxy__frame_body(s, &s->ex.req_body, p + h.head_len,
                                      s->conn.in.len - s->conn.in.off - h.head_len, 1, iov, &n, &e);
    size_t nb = fb > 0 ? (size_t)fb : 0;

    s->ex.req_bytes += h.head_len + nb;
    s->ex.t_send_start = now_us();
    u->n_exchanges++;
    s->ex.upstream_port = u->local_port;
    s->ex.reused = u->n_exchanges > 1;
    int wr = send_upstream(u, iov, (unsigned)n); /* copies what it cannot send at once */
    shunt_conn_consume(&s->conn, h.head_len + nb);
    s->ex.rs = RS_WAIT;
    shunt_proxy__arm(s, T_RESPONSE, cfg->response_timeout_ms);
    if (wr != 0) {
        shunt_proxy__upstream_close(u, 1);
        shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: cannot send the request to %s:%d: %s",
                            u->host, u->port, uv_strerror(wr));
        return;
    }
    if (s->ex.req_body.done) {
        s->ex.rq = RQ_DONE;
        s->ex.t_sent = now_us();
        shunt_proxy__mirror_client_fin(s);
    } else {
        s->ex.rq = RQ_BODY;
    }
}

/* Forwards the request body bytes in the client buffer. Returns 1 on progress. */
static int forward_request_body(struct session *s)
{
    struct upstream *u = s->cur;
    const char *p = s->conn.in.base + s->conn.in.off;
    size_t avail = s->conn.in.len - s->conn.in.off;
    struct shunt_http_error e = {0};
    uv_buf_t iov[2];
    size_t ni = 0;
    long n = shunt_proxy__frame_body(s, &s->ex.req_body, p, avail, 1, iov, &ni, &e);
    if (n < 0) {
        /* the head went out already: the origin gets a reset, the client a 400 */
        shunt_proxy__upstream_close(u, 1);
        shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
        shunt_proxy__answer(s, 400, "Bad Request", "shunt: bad request body: %s (%s)",
                            shunt_http_reason_str(e.reason), shunt_http_reason_name(e.reason));
        return 0;
    }
    if (n > 0) {
        s->ex.req_bytes += (uint64_t)n;
        int wr = send_upstream(u, iov, (unsigned)ni);
        shunt_conn_consume(&s->conn, (size_t)n);
        if (s->ex.rs == RS_WAIT) /* a slow upload is progress, not a silent server */
            shunt_proxy__arm(s, T_RESPONSE, s->w->cfg->response_timeout_ms);
        if (wr != 0) {
            shunt_proxy__upstream_close(u, 1);
            shunt_proxy__answer(s, 502, "Bad Gateway",
                                "shunt: the upstream went away while receiving the body");
            return 0;
        }
    }
    if (s->ex.req_body.done) {
        s->ex.rq = RQ_DONE;
        s->ex.t_sent = now_us();
        shunt_proxy__mirror_client_fin(s);
        shunt_proxy__maybe_done(s);
        return 0;
    }
    return n > 0;
}

/* ------------------------------------------------------------------------ responses */

/* Handles a response head at the start of <u>'s buffer. Returns 1 when it was consumed. */
static int handle_response_head(struct session *s, struct upstream *u)
{
    struct worker *w = s->w;
    const struct shunt_proxy_config *cfg = w->cfg;
    const char *p = u->conn.in.base + u->conn.in.off;
    size_t avail = u->conn.in.len - u->conn.in.off;
    struct shunt_http_head h;
    struct shunt_http_error e = {0};
    if (s->ex.held == HOLD_RESPONSE)
        return 0; /* a rule holds it */
    int r = shunt_proxy__parse_head(w, shunt_http_parse_response, &u->partial, p, avail, &h, &e);
    if (r == 0)
        return 0;
    if (r < 0) {
        shunt_proxy__upstream_close(u, 0);
        shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
        shunt_proxy__answer(s, 502, "Bad Gateway",
                            "shunt: the response from %s:%d cannot be parsed: %s (%s) at byte %zu",
                            u->host, u->port, shunt_http_reason_str(e.reason),
                            shunt_http_reason_name(e.reason), e.offset);
        return 0;
    }
    uv_buf_t *iov = w->iov;
    size_t n = 0;
    if (h.status == 101 && !s->ex.req_upgrade) {
        shunt_proxy__upstream_close(u, 0);
        shunt_proxy__answer(s, 502, "Bad Gateway",
                            "shunt: %s:%d switched protocols (101) without an Upgrade request",
                            u->host, u->port);
        return 0;
    }
    int final = h.status >= 200 || h.status == 101;
    enum shunt_http_framing fr = shunt_http_response_framing(&h, s->ex.req_is_head, s->ex.req_is_connect);
    if (final && fr == SHUNT_HTTP_BODY_CHUNKED) {
        struct shunt_http_body b;
        shunt_http_body_init(&b, fr, 0, &cfg->limits);
        b.hold_trailers = 1;
        if (shunt_proxy__prescan_body(s, &b, p + h.head_len, avail - (size_t)r, &e) != 0) {
            shunt_proxy__upstream_close(u, 0);
            shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
            shunt_proxy__answer(s, 502, "Bad Gateway",
                                "shunt: the response body from %s:%d is malformed: %s", u->host,
                                u->port, shunt_http_reason_str(e.reason));
            return 0;
        }
    }
    /* the lines shunt writes for this head; a head kept for a hold is in the exchange's */
    shunt_arena_reset(&s->heads);
    struct hook_changes hc = {s, 0};
    struct shunt_head_edit edit;
    int edited = 0;
    if (final && cfg->head_hook != NULL && s->ex.held == HOLD_RELEASED) {
        /* its time is up: the fields the rules made, the status line recorded already */
        s->ex.held = HOLD_NONE;
        struct shunt_slice sl = shunt_head_status_line(&h, p, &s->heads, NULL, NULL);
        iov[n++] = uv_buf_init((char *)sl.base, (unsigned)sl.len);
        n = iov_add(iov, n, s->ex.kept.base, s->ex.kept.len);
    } else {
        int hooked = final && cfg->head_hook != NULL;
        struct shunt_hook_out out = {0};
        if (hooked)
            shunt_proxy__auth_on_response(s, &h);
        struct shunt_slice sl =
            shunt_head_status_line(&h, p, &s->heads, shunt_proxy__head_notes(s), &hc);
        shunt_proxy__response_fields(s, &h, &edit, hooked ? &out : NULL);
        edited = 1;
        /* a rule that tells the client the connection ends makes it end, here */
        if (hooked)
            s->ex.rule_close = shunt_head_says_close(&edit) && shunt_http_keeps_alive(&h);
        if (out.delay_ms > 0) {
            /* the head stays in the upstream buffer, its fields here, until the time is up */
            shunt_exchange_keep(&s->ex, &edit);
            shunt_edit_dispose(&edit);
            char what[64];
            snprintf(what, sizeof(what), "hold the response %" PRIu64 " ms", out.delay_ms);
            shunt_proxy__emit_change_by(s, 0, what, out.by ? out.by : "rule");
            s->ex.held = HOLD_RESPONSE;
            shunt_proxy__arm(s, T_DELAY, out.delay_ms);
            return 0;
        }
        iov[n++] = uv_buf_init((char *)sl.base, (unsigned)sl.len);
        n = add_edit(s, iov, n, &edit);
    }
    n = iov_add(iov, n, p + h.head_len - 2, 2);
    shunt_proxy__emit_head(s, SHUNT_EV_RESPONSE_HEAD, &h, p, iov, n);
    size_t nb = 0;
    if (final && h.status != 101) {
        shunt_http_body_init(&s->ex.resp_body, fr, h.content_length, &cfg->limits);
        s->ex.resp_body.hold_trailers = 1;
        /* prescanned: cannot fail */
        long fb = shunt_proxy__frame_body(s, &s->ex.resp_body, p + h.head_len, avail - h.head_len,
                                          0, iov, &n, &e);
        nb = fb > 0 ? (size_t)fb : 0;
    }
    /* bytes past a whole message's end go with it, as forward_response_body() says why */
    size_t extra = final && h.status != 101 && s->ex.resp_body.done && s->ex.held == HOLD_NONE
                       ? avail - h.head_len - nb
                       : 0;
    n = iov_add(iov, n, p + h.head_len + nb, extra);
    size_t before = s->conn.bytes_out;
    int wr = send_client(s, iov, (unsigned)n); /* copies what it cannot send at once */
    if (edited)
        shunt_edit_dispose(&edit);
    s->ex.resp_bytes += s->conn.bytes_out - before - extra;
    shunt_conn_consume(&u->conn, h.head_len + nb + extra);
    s->ex.resp_started = 1;
    if (final)
        s->ex.status = h.status;
    if (wr != 0) {
        set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
        shunt_proxy__session_close(s, 0, 1);
        return 0;
    }
    if (!final) {
        s->ex.resp_started = 0; /* a 1xx is interim: the final answer is still to come */
        return 1;
    }
    if (h.status == 101) {
        s->ex.rs = RS_DONE;
        s->ex.rq = RQ_DONE;
        s->tunnel = 1;
        shunt_proxy__keep_only_cur(s);
        shunt_proxy__emit_exchange_done(s);
        shunt_proxy__arm(s, T_TUNNEL, cfg->idle_timeout_ms);
        if (!shunt_proxy__pump(s, &s->conn, &u->conn, 1))
            shunt_proxy__mirror_client_fin(s);
        return 1;
    }
    if (!shunt_http_keeps_alive(&h) || fr == SHUNT_HTTP_BODY_CLOSE) {
        /* Connection: close, HTTP/1.0 without keep-alive, or close-framed: the server
         * ends the connection, whoever's FIN goes out first */
        s->ending = 1;
        set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_FIN);
        shunt_conn_set_closer(&u->conn, SHUNT_CLOSER_SERVER, SHUNT_CONN_HOW_FIN);
    } else if (s->ex.req_close) {
        s->ending = 1; /* the client asked for close and the server kept it open */
    } else if (s->ex.rule_close) {
        s->ending = 1;
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_FIN);
    }
    s->ex.rs = s->ex.resp_body.done ? RS_DONE : RS_BODY;
    if (s->ex.rs == RS_DONE)
        shunt_proxy__maybe_done(s);
    return 1;
}

/* Forwards response body bytes in <u>'s buffer. Returns 1 on progress. */
static int forward_response_body(struct session *s, struct upstream *u)
{
    const char *p = u->conn.in.base + u->conn.in.off;
    size_t avail = u->conn.in.len - u->conn.in.off;
    struct shunt_http_error e = {0};
    uv_buf_t iov[3];
    size_t ni = 0;
    long n = shunt_proxy__frame_body(s, &s->ex.resp_body, p, avail, 0, iov, &ni, &e);
    if (n < 0) {
        /* the head went out already: mirror as a reset, which is what the client would
         * have needed to see to know the message is broken */
        s->ex.error = "malformed response body";
        shunt_exchange_fail_at(&s->ex, (int)e.reason, e.offset);
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_ERROR);
        shunt_proxy__session_close(s, 1, 1);
        return 0;
    }
    /* Bytes after the end of the body in the same read are no next response (the next
     * request has not gone out: exchanges on a connection are one at a time); they are a
     * server sending more than it declared, and go out with the body's end in the same
     * write, as the client would read them from the server: a client that checks for
     * excess (curl, browsers) sees it where it would, and drops the connection. */
    size_t out = s->ex.resp_body.done && s->ex.held == HOLD_NONE ? avail : (size_t)n;
    ni = iov_add(iov, ni, p + n, out - (size_t)n);
    if (out > 0) {
        s->ex.resp_bytes += (uint64_t)n;
        int wr = send_client(s, iov, (unsigned)ni);
        shunt_conn_consume(&u->conn, out);
        if (wr != 0) {
            set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
            shunt_proxy__session_close(s, 0, 1);
            return 0;
        }
    }
    if (s->ex.resp_body.done) {
        s->ex.rs = RS_DONE;
        shunt_proxy__maybe_done(s);
        return 0;
    }
    return n > 0;
}

void shunt_proxy__process_upstream(struct upstream *u)
{
    struct session *s = u->s;
    if (s == NULL || s->closing)
        return;
    for (;;) {
        if (s->closing || u->s == NULL)
            return;
        if (u->conn.in.base == NULL || u->conn.in.off == u->conn.in.len)
            break;
        if (s->tunnel) {
            shunt_proxy__pump(s, &u->conn, &s->conn, 0);
            break;
        }
        if (u == s->cur && (s->ex.rs == RS_NONE || s->ex.rs == RS_DONE) && !s->finishing &&
            s->ex.held == HOLD_NONE) {
            /* Bytes the server sent past the end of a response (a body longer than its
             * Content-Length, a 408 on an idle connection): the client of a paired
             * connection gets them as it would from the server, and reacts as it would
             * (most drop the connection). Dropping them here would hide the defect. */
            if (queued(&s->conn) > 0)
                break; /* resumes from client_on_drained */
            const char *p = u->conn.in.base + u->conn.in.off;
            size_t n = u->conn.in.len - u->conn.in.off;
            uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
            int r = send_client(s, &b, 1);
            shunt_conn_consume(&u->conn, n);
            if (r != 0) {
                set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
                shunt_proxy__session_close(s, 0, 1);
                return;
            }
            break;
        }
        if (u != s->cur || s->ex.rs == RS_NONE || s->ex.rs == RS_DONE || s->finishing) {
            /* bytes nobody can be given: another origin's idle connection, or a client
             * connection on its way out */
            shunt_conn_release_input(&u->conn);
            break;
        }
        if (queued(&s->conn) > 0)
            break; /* resumes from client_on_drained: the client reads slower than we get */
        if (s->ex.rs == RS_WAIT) {
            if (!handle_response_head(s, u))
                break;
            continue;
        }
        if (!forward_response_body(s, u))
            break;
    }
    if (!s->closing)
        update_reading(s);
}

/* ------------------------------------------------------------------------ the client side */

/* After the client's FIN, a request body that stopped short of its length is all there will
 * be: what came is forwarded, then the FIN, as the client did it, so that the server sees
 * the request end unfinished; nothing is added to make it look whole. When the server then
 * ends without a response, the client gets a 400 (answer_cut_request()). */
static void client_body_cut(struct session *s)
{
    if (s->closing || !s->conn.rd_eof || s->ex.rq != RQ_BODY ||
        (has_input(s) && !s->ex.req_body.at_trailers))
        return;
    shunt_conn_release_input(&s->conn); /* a trailer section cut short: it never goes out */
    s->ex.error = "client closed before the end of the request body";
    s->ex.req_cut = 1;
    s->ex.rq = RQ_DONE;
    shunt_proxy__mirror_client_fin(s);
    shunt_proxy__maybe_done(s);
}

/*
 * Works through what the client sent: request heads, bodies, tunnel bytes. Completing an
 * exchange calls back here (shunt_proxy__maybe_done() looks for a pipelined request), and an exchange the
 * proxy answers itself completes inside the call that started it; so a call made while one
 * is running only asks the running one to go round again. Ten thousand pipelined requests
 * answered by a rule are a loop, not ten thousand nested calls that overflow the stack.
 */
static void process_client_once(struct session *s);

void shunt_proxy__process_client(struct session *s)
{
    if (s->in_process) {
        s->process_again = 1;
        return;
    }
    s->in_process = 1;
    do {
        s->process_again = 0;
        process_client_once(s);
    } while (s->process_again && !s->closing);
    s->in_process = 0;
}

static void process_client_once(struct session *s)
{
    for (;;) {
        if (s->closing)
            return;
        if (s->finishing) {
            shunt_conn_release_input(&s->conn);
            break;
        }
        if (s->conn.in.base == NULL || s->conn.in.off == s->conn.in.len)
            break;
        if (s->icpt == ICPT_PEEK) {
            shunt_proxy__intercept_peek(s);
            if (s->icpt == ICPT_ON || s->icpt == ICPT_PEEK)
                break; /* more bytes needed */
            continue;
        }
        if (s->icpt == ICPT_HANDSHAKE)
            break;
        if (s->tunnel) {
            if (s->cur != NULL && s->cur->conn.connected)
                shunt_proxy__pump(s, &s->conn, &s->cur->conn, 1);
            break;
        }
        if (s->ex.rq == RQ_IDLE) {
            if (s->ending) {
                shunt_conn_release_input(&s->conn);
                break;
            }
            if (queued(&s->conn) > 0)
                break; /* a client that does not read its answers gets no more of them
                          until it does: resumes from client_on_drained */
            enum req_state before = s->ex.rq;
            uint64_t idx = s->idx;
            start_request(s);
            if (s->ex.rq == before && s->idx == idx) {
                if (s->conn.rd_eof) /* an unfinished head, and nothing more will come */
                    shunt_proxy__finish(s);
                break; /* more bytes needed */
            }
            continue;
        }
        if (s->ex.rq == RQ_BODY) {
            if (s->cur == NULL || queued(&s->cur->conn) > 0)
                break; /* resumes from upstream_on_drained */
            if (!forward_request_body(s))
                break;
            continue;
        }
        break; /* connecting, or waiting for the response */
    }
    client_body_cut(s);
    if (!s->closing)
        update_reading(s);
}

/* Decides, for the client and each upstream, whether to read: not while the other side
 * still has queued bytes (backpressure), nor while a buffer is full. */
static void update_reading(struct session *s)
{
    if (s->closing)
        return;
    int want = !s->conn.rd_eof && !shunt_conn_in_full(&s->conn);
    if (!s->finishing) {
        /* While connecting the head stays at the front of the buffer; reading on is
         * harmless since shunt_proxy__send_request() parses it again from wherever it is then. */
        if ((s->ex.rq == RQ_BODY || s->tunnel) && (s->cur == NULL || queued(&s->cur->conn) > 0))
            want = 0;
    }
    if (want)
        shunt_conn_read_start(&s->conn);
    else
        shunt_conn_read_stop(&s->conn);
    for (int i = 0; i < s->n_ups; i++) {
        struct upstream *u = s->ups[i];
        int uw = u->conn.connected && !u->conn.rd_eof && !shunt_conn_in_full(&u->conn);
        if (u == s->cur && queued(&s->conn) > 0)
            uw = 0; /* backpressure, for 1xx heads as for bodies */
        if (uw)
            shunt_conn_read_start(&u->conn);
        else
            shunt_conn_read_stop(&u->conn);
    }
}

/* The client's FIN (net/conn.h recorded it, and the client as the closer unless someone
 * closed before). */
static void on_client_eof(struct session *s)
{
    if (s->tunnel) {
        if (s->cur != NULL)
            shunt_proxy__shutdown_upstream(s->cur); /* half-close, mirrored */
        if (s->cur == NULL || s->cur->conn.rd_eof)
            s->finishing = 1;
        shunt_proxy__check_finished(s);
        return;
    }
    if (s->finishing) {
        shunt_proxy__check_finished(s);
        return;
    }
    switch (s->ex.rq) {
    case RQ_IDLE:
        if (s->conn.in.base != NULL && s->conn.in.off < s->conn.in.len && s->ex.active == 0) {
            /* an unfinished head: nothing was forwarded, nothing will be */
            shunt_conn_release_input(&s->conn);
        }
        shunt_proxy__finish(s);
        break;
    case RQ_CONNECTING:
        break; /* the request goes out once connected, then the FIN */
    case RQ_BODY:
        client_body_cut(s); /* unless bytes of the body still wait to go out */
        break;
    case RQ_DONE:
        shunt_proxy__mirror_client_fin(s); /* unless pipelined requests wait in the buffer */
        break;
    }
}

/* ------------------------------------------------------------------------ client I/O */

static void client_on_data(struct shunt_conn *c)
{
    shunt_proxy__process_client(SHUNT_CONTAINER_OF(c, struct session, conn));
}

static void client_on_eof(struct shunt_conn *c, enum shunt_conn_how how, int err)
{
    struct session *s = SHUNT_CONTAINER_OF(c, struct session, conn);
    if (how == SHUNT_CONN_HOW_FIN) {
        on_client_eof(s);
        return;
    }
    if (s->ex.active && s->ex.error == NULL)
        s->ex.error = "client reset the connection";
    shunt_proxy__session_close(s, 0, 1); /* RST for RST */
}

static void client_on_write_error(struct shunt_conn *c, int err)
{
    shunt_proxy__session_close(SHUNT_CONTAINER_OF(c, struct session, conn), 0, 1);
}

/* Everything queued for the client went out: the response can go on, and pipelined
 * requests held while the answers queued up. */
static void client_on_drained(struct shunt_conn *c)
{
    struct session *s = SHUNT_CONTAINER_OF(c, struct session, conn);
    if (s->cur != NULL)
        shunt_proxy__process_upstream(s->cur);
    if (!s->closing && s->ex.rq == RQ_IDLE && has_input(s))
        shunt_proxy__process_client(s);
    else if (!s->closing)
        update_reading(s);
}

static void client_on_shut(struct shunt_conn *c)
{
    shunt_proxy__check_finished(SHUNT_CONTAINER_OF(c, struct session, conn));
}

static void client_on_moved(struct shunt_conn *c)
{
    struct session *s = SHUNT_CONTAINER_OF(c, struct session, conn);
    free(s->partial); /* its slices pointed at the old place: parse again from the start */
    s->partial = NULL;
}

static void client_on_closed(struct shunt_conn *c)
{
    session_unref(SHUNT_CONTAINER_OF(c, struct session, conn));
}

static const struct shunt_conn_ops client_ops = {
    .on_data = client_on_data,
    .on_eof = client_on_eof,
    .on_drained = client_on_drained,
    .on_shut = client_on_shut,
    .on_write_error = client_on_write_error,
    .on_moved = client_on_moved,
    .on_closed = client_on_closed,
};

/* ------------------------------------------------------------------------ accept, drain */

static void refuse(struct session *s)
{
    static const char msg[] = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 38\r\nConnection: close\r\n\r\n"
                              "shunt: your address is not in --allow\n";
    uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
    shunt_log(SHUNT_LOG_WARN, "conn %" PRIu64 ": refused %s port %d: not in --allow", s->id,
              s->peer_addr, s->peer_port);
    (void)send_client(s, &b, 1);
    set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_FIN);
    shunt_proxy__finish(s);
}

void shunt_proxy__accept(struct worker *w)
{
    const struct shunt_proxy_config *cfg = w->cfg;
    struct session *s = shunt_xcalloc(sizeof(*s));
    s->w = w;
    shunt_exchange_init(&s->ex);
    shunt_arena_init_in(&s->heads, s->heads_mem, sizeof(s->heads_mem));
    if (shunt_conn_init(&s->conn, &w->loop, &client_ops, &w->pool, SHUNT_CLOSER_CLIENT,
                        SHUNT_CLOSER_PROXY) != 0) {
        free(s);
        return;
    }
    s->conn.in_max = buf_max(w);
    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
    s->refs_handles = 2;
    if (shunt_conn_accept(&s->conn, (uv_stream_t *)&w->listener) != 0) {
        s->closing = 1;
        uv_close((uv_handle_t *)&s->timer, session_timer_closed);
        shunt_conn_close(&s->conn, 0);
        return;
    }
    s->id = next_conn_id();
    s->next = w->sessions;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;
    shunt_proxy__stat_open++;
    /* The addresses cost two system calls a connection: only when someone reads them. */
    int allowed = cfg->n_allow == 0;
    if (cfg->n_allow > 0 || cfg->n_subs > 0 || cfg->head_hook != NULL || cfg->conn_hook != NULL) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getpeername(&s->conn.tcp, (struct sockaddr *)&ss, &len) == 0)
            s->peer_port = shunt_addr_format((struct sockaddr *)&ss, s->peer_addr,
                                             sizeof(s->peer_addr));
        for (size_t i = 0; i < cfg->n_allow && !allowed; i++)
            allowed = shunt_cidr_match(&cfg->allow[i], (struct sockaddr *)&ss);
        len = sizeof(ss);
        if (uv_tcp_getsockname(&s->conn.tcp, (struct sockaddr *)&ss, &len) == 0)
            s->local_port = shunt_addr_format((struct sockaddr *)&ss, s->local_addr,
                                              sizeof(s->local_addr));
    }
    if (shunt_proxy__wants(cfg, SHUNT_EV_CONN_OPEN)) {
        struct shunt_event ev;
        shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_CONN_OPEN);
        ev.peer_addr = s->peer_addr;
        ev.peer_port = s->peer_port;
        ev.local_addr = s->local_addr;
        ev.local_port = s->local_port;
        shunt_proxy__emit(s, &ev);
    }
    if (cfg->conn_hook != NULL)
        shunt_proxy__tell_conn_hook(s, 1);
    shunt_conn_read_start(&s->conn);
    if (!allowed) {
        refuse(s);
        return;
    }
    shunt_proxy__arm(s, T_FIRST, cfg->header_timeout_ms);
}

void shunt_proxy__drain(struct worker *w)
{
    struct session *s = w->sessions, *next;
    for (; s != NULL; s = next) {
        next = s->next;
        if (!s->ex.active && !s->tunnel) {
            set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_FIN);
            shunt_proxy__finish(s);
        } else {
            s->ending = 1;
        }
    }
}

void shunt_proxy__close_all(struct worker *w)
{
    while (w->sessions != NULL) {
        struct session *s = w->sessions;
        if (s->ex.active && s->ex.error == NULL)
            s->ex.error = w->draining ? "proxy stopping: the exchange had not ended when the grace "
                                     "period (--grace) ran out"
                                   : "proxy stopping";
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_FIN);
        shunt_proxy__session_close(s, 0, 0);
    }
    if (!uv_is_closing((uv_handle_t *)&w->grace_timer))
        uv_close((uv_handle_t *)&w->grace_timer, NULL);
}

size_t shunt_proxy__busy(const struct worker *w)
{
    size_t n = 0;
    for (const struct session *s = w->sessions; s != NULL; s = s->next)
        n += s->ex.active || s->tunnel;
    return n;
}
