/* src/proxy/upstream.c - the upstream side of a session: finding or opening the connection to an
 * origin (with its TLS), its I/O callbacks, and what its errors and ends do to the exchange. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "net/connect.h"
#include "net/tls.h"
#include "proxy/session.h"

static void upstream_ready(struct session *s, struct upstream *u);
static void upstream_start_tls(struct session *s, struct upstream *u);

static const struct shunt_conn_ops upstream_ops;

/* Closes <u>, with a reset when <reset>, and detaches it from its session; a connect in
 * progress is cancelled. The memory goes once the handle is closed (upstream_closed()). */
void shunt_proxy__upstream_close(struct upstream *u, int reset)
{
    if (u->conn.closing)
        return;
    struct session *s = u->s;
    shunt_conn_set_closer(&u->conn, SHUNT_CLOSER_PROXY,
                          reset ? SHUNT_CONN_HOW_RST : SHUNT_CONN_HOW_FIN);
    if (!reset) /* before the event: it reports the close_notify sent */
        shunt_proxy__tls_goodbye(&u->conn,
                                 s != NULL && (s->conn.tls_close & SHUNT_CONN_TLS_TRUNCATED));
    if (s != NULL) {
        shunt_proxy__emit_upstream_close(s, u);
        for (int i = 0; i < s->n_ups; i++) {
            if (s->ups[i] == u) {
                s->ups[i] = s->ups[--s->n_ups];
                break;
            }
        }
        if (s->cur == u)
            s->cur = NULL;
        u->s = NULL;
    }
    shunt_conn_close(&u->conn, reset);
}

void shunt_proxy__shutdown_upstream(struct upstream *u)
{
    if (u->s != NULL && (u->s->conn.tls_close & SHUNT_CONN_TLS_TRUNCATED))
        shunt_conn_shutdown_truncated(&u->conn); /* the client's truncation, mirrored */
    else
        shunt_conn_shutdown(&u->conn);
}

static uint64_t next_upstream_id(void)
{
    static _Atomic uint64_t n;
    return ++n;
}

/* Whether the exchange in flight wants TLS to its upstream: inside an intercepted tunnel
 * (unless a rule mapped the request to an http:// URL, or it is a CONNECT: a byte tunnel)
 * and to a --reverse https:// origin. */
int shunt_proxy__wants_tls(const struct session *s)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    return s->ex.mapped.len == 0 && !s->ex.req_is_connect &&
           (s->icpt == ICPT_ON || (cfg->reverse && cfg->reverse_tls));
}

/* An open upstream to host:port of the kind the exchange in flight wants: a TLS upstream
 * must not carry a CONNECT's tunnel or an http:// request, nor a plain one an https one. */
struct upstream *shunt_proxy__find_upstream(struct session *s, const char *host, int port)
{
    int want_tls = shunt_proxy__wants_tls(s);
    for (int i = 0; i < s->n_ups; i++) {
        struct upstream *u = s->ups[i];
        if (u->port == port && !!u->tls == want_tls && !u->conn.rd_eof && !u->conn.wr_shut &&
            strcmp(u->host, host) == 0)
            return u;
    }
    return NULL;
}

/* Before each address of a connect: where it goes, for the capture, and whether it may. */
static int upstream_check(struct shunt_conn *c, const struct sockaddr *sa, void *ud)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    u->remote_port = shunt_addr_format(sa, u->addr, sizeof(u->addr));
    int status = 0;
    return shunt_proxy__forbidden_upstream(u->s, sa, &status) != NULL ? status : 0;
}

/* <u> is connected: reads begin, and the request in flight (if it still waits) goes. */
static void upstream_connected(struct session *s, struct upstream *u)
{
    s->ex.t_connected = now_us();
    char local[64] = "";
    if (s->w->cfg->n_subs > 0) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getsockname(&u->conn.tcp, (struct sockaddr *)&ss, &len) == 0)
            u->local_port = shunt_addr_format((struct sockaddr *)&ss, local, sizeof(local));
    }
    if (shunt_proxy__wants(s->w->cfg, SHUNT_EV_UPSTREAM_OPEN)) {
        struct shunt_event ev;
        shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_UPSTREAM_OPEN);
        ev.upstream_id = u->id;
        ev.peer_addr = u->addr;
        ev.peer_port = u->remote_port;
        ev.local_addr = local;
        ev.local_port = u->local_port;
        ev.origin_host = u->host;
        ev.origin_port = u->port;
        shunt_proxy__emit(s, &ev);
    }
    shunt_conn_read_start(&u->conn);
    shunt_proxy__disarm(s, TM_UPSTREAM);
    if (u->tls) {
        upstream_start_tls(s, u); /* the request waits for the handshake */
        return;
    }
    if (s->icpt_plain) { /* not TLS into an intercepted tunnel: the bytes go through */
        s->icpt_plain = 0;
        s->ex.rq = RQ_DONE;
        s->ex.rs = RS_DONE;
        shunt_proxy__arm(s, T_TUNNEL, s->w->cfg->idle_timeout_ms);
        shunt_proxy__process_client(s);
        return;
    }
    upstream_ready(s, u);
}

/* <u> is ready for the request in flight (connected, its TLS done if any). */
static void upstream_ready(struct session *s, struct upstream *u)
{
    if (s->ex.rq != RQ_CONNECTING || s->cur != u)
        return;
    if (s->ex.req_is_connect)
        shunt_proxy__establish_tunnel(s);
    else
        shunt_proxy__send_request(s);
    shunt_proxy__process_client(s);
}

/* The connect of <u> ended as <r> says (<sync>: it could not start). */
static void upstream_connect_done(struct upstream *u, const struct shunt_connect_result *r,
                                  int sync)
{
    struct session *s = u->s;
    if (r->t_resolved_us != 0)
        s->ex.t_resolved = r->t_resolved_us;
    if (r->status == 0) {
        upstream_connected(s, u);
        return;
    }
    /* <u> stays readable until its handle is closed: the answers below name it */
    shunt_proxy__upstream_close(u, 0);
    switch (r->stage) {
    case SHUNT_CONNECT_RESOLVE:
        if (sync)
            shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: cannot resolve %s: %s", u->host,
                                uv_strerror(r->status));
        else
            shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: cannot resolve %s: %s (%s)", u->host,
                                uv_strerror(r->status), uv_err_name(r->status));
        break;
    case SHUNT_CONNECT_CHECK: {
        int status = 0;
        const char *why =
            shunt_proxy__forbidden_upstream(s, (const struct sockaddr *)&r->addr, &status);
        int v6 = strchr(u->addr, ':') != NULL;
        shunt_proxy__answer(s, status, status == 508 ? "Loop Detected" : "Forbidden",
                            "shunt: not forwarded to %s:%d (%s%s%s:%d): it %s", u->host, u->port,
                            v6 ? "[" : "", u->addr, v6 ? "]" : "", u->remote_port,
                            why ? why : "is refused");
        break;
    }
    case SHUNT_CONNECT_TIMEOUT: /* not asked for: the session's own timer bounds it */
    case SHUNT_CONNECT_CONNECT:
        shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: cannot connect to %s:%d: %s (%s)",
                            u->host, u->port, uv_strerror(r->status), uv_err_name(r->status));
        break;
    }
}

static void upstream_connect_cb(struct shunt_conn *c, const struct shunt_connect_result *r,
                                void *ud)
{
    upstream_connect_done(SHUNT_CONTAINER_OF(c, struct upstream, conn), r, 0);
}

/* Returns a new upstream of <s> for <host>:<port>, made its current one; not connected.
 * The client connection keeps it for its life (pairing). */
static struct upstream *upstream_new(struct session *s, const char *host, int port)
{
    if (s->n_ups == MAX_UPSTREAMS) {
        /* The table is full (a browser names many origins over one proxy connection): an
         * origin that is not in use gives way. Only the exchange in flight uses one. */
        for (int i = 0; i < s->n_ups; i++) {
            if (s->ups[i] != s->cur) {
                shunt_proxy__upstream_close(s->ups[i], 0);
                break;
            }
        }
    }
    SHUNT_BUG_ON(s->n_ups >= MAX_UPSTREAMS);
    struct upstream *u = shunt_xcalloc(sizeof(*u));
    if (shunt_conn_init(&u->conn, &s->w->loop, &upstream_ops, &s->w->pool, SHUNT_CLOSER_SERVER,
                        SHUNT_CLOSER_PROXY) != 0)
        abort(); /* uv_tcp_init fails only on bad flags */
    u->conn.in_max = buf_max(s->w);
    u->s = s;
    u->id = next_upstream_id();
    snprintf(u->host, sizeof(u->host), "%s", host);
    u->port = port;
    s->ups[s->n_ups++] = u;
    s->cur = u;
    return u;
}

/* Opens a new upstream connection for the exchange in flight: the --reverse origin's
 * address, an IP literal, or a name to resolve; the addresses in turn (net/connect.h). */
void shunt_proxy__open_upstream(struct session *s, const struct route *rt)
{
    struct worker *w = s->w;
    struct upstream *u = upstream_new(s, rt->host, rt->port);
    u->tls = shunt_proxy__wants_tls(s);
    s->ex.rq = RQ_CONNECTING;
    s->ex.t_connect_start = now_us();
    shunt_proxy__arm(s, T_CONNECT, w->cfg->connect_timeout_ms);
    struct shunt_connect_opts o = {
        .host = u->host,
        .port = u->port,
        .addrs = w->cfg->reverse && s->ex.mapped.len == 0 ? &w->reverse_addr : NULL,
        .n_addrs = 1,
        .timeout_ms = 0, /* T_CONNECT: the session's timer answers 504 */
        .check = upstream_check,
        .cb = upstream_connect_cb,
    };
    struct shunt_connect_result r;
    if (shunt_connect_start(&u->conn, &o, &r) != 0)
        upstream_connect_done(u, &r, 1);
}

static void upstream_tls_done(struct shunt_conn *c, int ok)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    struct session *s = u->s;
    const char *err = shunt_tls_error(shunt_conn_tls(c));
    if (!ok && err[0] == '\0') /* no alert, no error: the server went away */
        err = c->how == SHUNT_CONN_HOW_RST ? "the server reset the connection during the handshake"
                                           : "the server closed the connection during the handshake";
    shunt_proxy__emit_tls(s, u, c, ok ? NULL : err);
    if (ok) {
        s->ex.t_tls_done = now_us();
        shunt_proxy__disarm(s, TM_UPSTREAM);
        upstream_ready(s, u);
        return;
    }
    char why[1000];
    snprintf(why, sizeof(why), "%s", err);
    shunt_proxy__upstream_close(u, 0);
    if (s->ex.rq == RQ_CONNECTING && !s->ex.resp_started)
        shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: TLS with the upstream: %s", why);
}

/* <u> is connected and must speak TLS: the client's SNI (or the origin's name), the
 * origin's certificate checked against its name (net/tls.h); the request waits. */
static void upstream_start_tls(struct session *s, struct upstream *u)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    const char *sni = s->icpt == ICPT_ON && s->icpt_sni[0] != '\0' ? s->icpt_sni : NULL;
    struct shunt_tls *t = cfg->tls_upstream != NULL ? shunt_tls_new_client(cfg->tls_upstream, u->host, sni)
                                                    : NULL;
    if (t == NULL) {
        shunt_proxy__upstream_close(u, 0);
        shunt_proxy__answer(s, 502, "Bad Gateway",
                            "shunt: TLS with the upstream: cannot start it for %s", u->host);
        return;
    }
    shunt_proxy__arm(s, T_TLS_UP, cfg->tls_handshake_timeout_ms);
    int r = shunt_conn_start_tls(&u->conn, t, upstream_tls_done);
    if (r != 0) {
        char why[1000];
        snprintf(why, sizeof(why), "%s", r == SHUNT_TLS_ERROR ? shunt_tls_error(t) : uv_strerror(r));
        if (r == SHUNT_TLS_ERROR)
            shunt_proxy__emit_tls(s, u, &u->conn, NULL);
        shunt_proxy__upstream_close(u, 0);
        shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: TLS with the upstream: %s", why);
    }
}

/* Did the server of a reused connection close it (FIN or RST) on the request in flight
 * without a byte of response? That is the idle-timeout race: the server's keep-alive timer
 * fired as the request went out. A client talking to the server sees the close and retries
 * an idempotent request on a new connection (RFC 9112 9.3.1); a 502 of ours would stop it,
 * so the proxy mirrors the close instead. On a new connection the same close is a failure,
 * answered with a 502 naming it. */
static int raced_idle_close(const struct session *s, const struct upstream *u)
{
    /* not a byte for this exchange: a 100 Continue forwarded already is an answer */
    return s->ex.reused && s->ex.t_first_byte == 0 && !(u->conn.in.base != NULL && u->conn.in.off < u->conn.in.len);
}

/* A server that ends its connection without a response to a request whose body the client
 * cut short is not at fault: the request was incomplete (RFC 9112 8), so the client gets a
 * 400, not a 502. Returns 1 when it answered so. */
static int answer_cut_request(struct session *s, struct upstream *u)
{
    if (!s->ex.req_cut)
        return 0;
    char host[256];
    int port = u->port;
    snprintf(host, sizeof(host), "%s", u->host);
    shunt_proxy__upstream_close(u, 0);
    shunt_proxy__answer(s, 400, "Bad Request",
                        "shunt: bad request: the client closed after %" PRIu64
                        " bytes of the request body, "
                        "before its end; %s:%d got them and the close, and no response",
                        s->ex.req_body.payload, host, port);
    return 1;
}

/* A reset from the server, or a read or write on <u> that failed with <err> (net/conn.h
 * recorded the server as the closer, RST, unless someone closed before). */
static void on_upstream_error(struct upstream *u, int err)
{
    struct session *s = u->s;
    if (s == NULL) {
        shunt_proxy__upstream_close(u, 0);
        return;
    }
    if (u->conn.tls_close & SHUNT_CONN_TLS_TRUNCATED)
        s->up_truncated = 1;
    if (u == s->cur && s->ex.active && !s->ex.resp_started && !s->tunnel) {
        if (answer_cut_request(s, u))
            return;
        if (raced_idle_close(s, u)) {
            set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_RST);
            s->ex.error = "server reset the reused connection without responding";
            shunt_proxy__upstream_close(u, 0);
            shunt_proxy__session_close(s, 1,
                                       1); /* RST for RST: the client retries as it would direct */
            return;
        }
        shunt_proxy__upstream_close(u, 0);
        shunt_proxy__answer(s, 502, "Bad Gateway",
                            "shunt: %s:%d reset the connection before responding (%s)", u->host,
                            u->port, uv_err_name(err));
        return;
    }
    if (u != s->cur && !s->tunnel && s->n_ups > 1) {
        shunt_proxy__upstream_close(u, 0);
        return;
    }
    set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_RST);
    if (s->ex.active && s->ex.error == NULL)
        s->ex.error = "server reset the connection";
    shunt_proxy__upstream_close(u, 0);
    shunt_proxy__session_close(s, 1, 1); /* RST for RST */
}

/* The server's FIN (recorded by net/conn.h, as on_upstream_error()). */
void shunt_proxy__on_upstream_eof(struct upstream *u)
{
    struct session *s = u->s;
    if (s == NULL) {
        shunt_proxy__upstream_close(u, 0);
        return;
    }
    if (u->conn.tls_close & SHUNT_CONN_TLS_TRUNCATED)
        s->up_truncated = 1;
    if (s->tunnel) {
        shunt_proxy__shutdown_client(s); /* half-close, mirrored */
        if (s->conn.rd_eof)
            s->finishing = 1;
        shunt_proxy__check_finished(s);
        return;
    }
    if (s->finishing) {
        shunt_proxy__check_finished(s);
        return;
    }
    if (u != s->cur && s->n_ups > 1) {
        shunt_proxy__upstream_close(u, 0); /* another origin's idle connection: nothing to mirror */
        return;
    }
    if (s->ex.held == HOLD_RESPONSE)
        return; /* the response is all here: its end is handled when it is released */
    if (!s->ex.active || s->ex.rs == RS_NONE) {
        /* the server closed an idle connection: the client sees the same */
        set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_FIN);
        if (s->ex.active)
            s->ex.error = "server closed the connection before the request was sent";
        shunt_proxy__finish(s);
        return;
    }
    if (s->ex.rs == RS_WAIT) {
        int partial = u->conn.in.base != NULL && u->conn.in.off < u->conn.in.len;
        set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_FIN);
        if (answer_cut_request(s, u))
            return;
        if (raced_idle_close(s, u)) {
            s->ex.error = "server closed the reused connection without responding";
            shunt_proxy__upstream_close(u, 0);
            shunt_proxy__emit_exchange_done(
                s);                 /* ended now, not when the client gets round to closing */
            shunt_proxy__finish(s); /* FIN for FIN: the client retries as it would direct */
            return;
        }
        shunt_proxy__upstream_close(u, 0);
        shunt_proxy__answer(s, 502, "Bad Gateway", "shunt: %s:%d closed the connection %s", u->host,
                            u->port,
                            partial ? "in the middle of the response head" : "without responding");
        return;
    }
    set_closer(s, SHUNT_CLOSER_SERVER, SHUNT_CLOSE_FIN);
    if (s->ex.rs == RS_BODY && !shunt_http_body_eof(&s->ex.resp_body))
        s->ex.error = "server closed the connection before the end of the response body";
    s->ex.rs = RS_DONE;
    s->ending = 1;
    shunt_proxy__maybe_done(s);
}

static void upstream_on_data(struct shunt_conn *c)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    struct session *s = u->s;
    if (u == s->cur && (s->ex.rs == RS_WAIT || s->ex.rs == RS_BODY)) {
        if (s->ex.t_first_byte == 0)
            s->ex.t_first_byte = now_us();
        shunt_proxy__arm(s, T_RESPONSE, s->w->cfg->response_timeout_ms);
    }
    shunt_proxy__process_upstream(u);
}

static void upstream_on_eof(struct shunt_conn *c, enum shunt_conn_how how, int err)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    if (how == SHUNT_CONN_HOW_FIN)
        shunt_proxy__on_upstream_eof(u);
    else
        on_upstream_error(u, err);
}

/* What was queued for the server went out: more of the request body can follow. */
static void upstream_on_drained(struct shunt_conn *c)
{
    shunt_proxy__process_client(SHUNT_CONTAINER_OF(c, struct upstream, conn)->s);
}

static void upstream_on_shut(struct shunt_conn *c)
{
    shunt_proxy__check_finished(SHUNT_CONTAINER_OF(c, struct upstream, conn)->s);
}

static void upstream_on_moved(struct shunt_conn *c)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    free(u->partial);
    u->partial = NULL;
}

static void upstream_on_closed(struct shunt_conn *c)
{
    struct upstream *u = SHUNT_CONTAINER_OF(c, struct upstream, conn);
    free(u->partial);
    free(u);
}

/* Callbacks come only while the upstream is open, hence while u->s is set: shunt_proxy__upstream_close()
 * detaches it and closes the connection together. */
static const struct shunt_conn_ops upstream_ops = {
    .on_data = upstream_on_data,
    .on_eof = upstream_on_eof,
    .on_drained = upstream_on_drained,
    .on_shut = upstream_on_shut,
    .on_write_error = NULL, /* on_eof, RST: on_upstream_error() */
    .on_moved = upstream_on_moved,
    .on_closed = upstream_on_closed,
};
