/* src/proxy/session.h - the session (one client connection and its upstreams) and what the
 * proxy's files that work on it share; not a public header (see internal.h). */
#ifndef SHUNT_PROXY_SESSION_H
#define SHUNT_PROXY_SESSION_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "http/parser.h"
#include "net/conn.h"
#include "proxy/exchange.h"
#include "proxy/head.h"
#include "proxy/internal.h"

#define MAX_UPSTREAMS 8 /* origins kept per client connection; the oldest idle one goes */

/* ------------------------------------------------------------------------ types */

/* What a session waits for, each with its own deadline (see shunt_proxy__arm()). */
enum timer_kind {
    T_NONE,
    /* the client side (TM_CLIENT) */
    T_FIRST, T_IDLE, T_HEADER, T_LINGER, T_TUNNEL,
    /* the upstream side of the exchange in flight (TM_UPSTREAM) */
    T_CONNECT, T_RESPONSE,
    /* a rule holds the exchange: s:delay (TM_HOLD) */
    T_DELAY,
    /* TLS (issue 12): an intercepted tunnel's first bytes and client handshake
     * (TM_CLIENT); the upstream's handshake (TM_UPSTREAM) */
    T_TLS, T_TLS_UP,
};

/* Where an intercepted CONNECT is (decision 4 of issue 12). */
enum icpt {
    ICPT_NONE,      /* plain HTTP (or a byte tunnel) */
    ICPT_PEEK,      /* answered 200; waiting for the client's first bytes */
    ICPT_HANDSHAKE, /* a ClientHello came: TLS with the client under way */
    ICPT_ON,        /* inside TLS: requests are parsed as on a plain connection */
};

/* The purposes: one deadline each, so that arming one never overwrites another. */
enum timer_purpose { TM_CLIENT, TM_UPSTREAM, TM_HOLD, TM_N };

struct deadline {
    enum timer_kind kind; /* T_NONE: not armed */
    uint64_t at;          /* loop ms when it expires */
};

/* The connection's authentication, as the rules see it (s.conn.auth). */
enum auth_state { AUTH_NONE, AUTH_CHALLENGED, AUTH_HANDSHAKE, AUTH_DONE };

/* A head that arrived in pieces, with a header array of its own so that the parser can resume
 * where it stopped (the worker's array is shared by every connection of the loop). Made on
 * the first incomplete parse, freed once the head is complete or the connection goes. */
struct partial {
    size_t last_len; /* bytes seen by the last parse */
    struct shunt_http_head head;
    struct shunt_http_header hdrs[];
};

struct upstream {
    struct shunt_conn conn; /* closer: SHUNT_CLOSER_SERVER or _PROXY; freed from on_closed */
    struct session *s; /* NULL once the session let go of it */
    uint64_t id;
    char host[256]; /* origin, as named in the request (lower case) */
    int port;
    struct partial *partial; /* a response head that arrived in pieces, or NULL */
    uint64_t n_exchanges;   /* requests sent on it */
    char addr[64]; /* remote address as text (the one being tried while connecting) */
    int remote_port;
    int local_port;
    unsigned tls : 1; /* TLS to the origin (intercepted CONNECT, --reverse https://) */
};

struct session {
    struct shunt_conn conn; /* the client's; closer: SHUNT_CLOSER_* of the capture */
    struct worker *w;
    struct session *prev, *next;
    uint64_t id;
    uv_timer_t timer;   /* one libuv timer for the earliest of <tm> */
    struct deadline tm[TM_N];
    uint64_t timer_due; /* loop ms when the libuv timer fires (<= every deadline) */
    char peer_addr[64];
    int peer_port;
    char local_addr[64];
    int local_port;

    struct upstream *ups[MAX_UPSTREAMS];
    int n_ups;
    struct upstream *cur; /* upstream of the exchange in flight, or of the last one */

    unsigned closing : 1;  /* shunt_proxy__session_close() called */
    unsigned tunnel : 1;   /* bytes flow both ways unparsed */
    unsigned ending : 1;   /* the connection ends after the exchange in flight */
    unsigned finishing : 1; /* no more exchanges; waiting for both sides to close */
    int refs_handles;          /* client connection and timer handles still open; freed at 0 */
    unsigned in_process : 1;   /* shunt_proxy__process_client() is running (it is not re-entered) */
    unsigned process_again : 1; /* ... and must go round again: an exchange completed */

    /* HTTPS interception (issue 12): the CONNECT's target, the client's SNI */
    enum icpt icpt;
    char icpt_host[256]; /* lower case, no brackets */
    int icpt_port;
    char icpt_sni[254];  /* the client's SNI when a valid host name (<= 253), else "" */
    unsigned icpt_plain : 1;   /* not TLS: a byte tunnel once the upstream connects */
    unsigned up_truncated : 1; /* the upstream's TLS ended without close_notify: so does
                                  the client's (mirrored) */

    /* the exchange in flight (one at a time), with its arena */
    struct shunt_exchange ex;
    /* the heads being built: lines written for a head that goes out at once (a kept head
     * is copied into the exchange's arena); reset before each head */
    struct shunt_arena heads;
    alignas(max_align_t) char heads_mem[256]; /* where <heads> starts: a request line fits */
    uint64_t idx; /* exchanges begun on this connection */
    size_t empty_lines;        /* CRLFs skipped before the request line being read (2.2) */
    struct partial *partial; /* a request head that arrived in pieces, or NULL */
    struct shunt_http_header *tr; /* a trailer section's fields (max_headers), on first use */
    char *trbuf;                  /* a trailer section rewritten, on first use */
    size_t trbuf_cap;
    enum auth_state auth;
    char auth_scheme[16];

    void *slots[SHUNT_PROXY_MAX_SUBS];  /* the subscribers' per-connection pointers */
};

/* Where a request goes, and how its start line and Host must change to get there. */
struct route {
    char host[256];          /* lower case, no brackets */
    int port;
    struct shunt_slice authority; /* as written in an absolute-form target */
    struct shunt_slice path;      /* origin-form to send ("/" when the target had none) */
    int absolute;                 /* the target was absolute-form */
    int path_needs_slash;         /* "http://h?q": the path is "/" + <path> */
};

/* A hook's change, reported as an event. */
struct hook_changes {
    struct session *s;
    int in_request;
};

typedef int (*parse_fn)(const char *, size_t, size_t, struct shunt_http_head *,
                        struct shunt_http_header *, size_t, const struct shunt_http_limits *,
                        struct shunt_http_error *);

/* ------------------------------------------------------------------------ functions */

/* Connections open and exchanges ended, over every worker (shunt_proxy_stats()). */
extern _Atomic uint64_t shunt_proxy__stat_open, shunt_proxy__stat_exchanges;

/* session.c: the exchange state machine, closing */
void shunt_proxy__tls_goodbye(struct shunt_conn *c, int mirror_truncation);
void shunt_proxy__session_close(struct session *s, int reset_client, int reset_upstreams);
void shunt_proxy__shutdown_client(struct session *s);
void shunt_proxy__check_finished(struct session *s);
void shunt_proxy__finish(struct session *s);
void shunt_proxy__mirror_client_fin(struct session *s);
void shunt_proxy__exchange_done(struct session *s);
void shunt_proxy__maybe_done(struct session *s);
void shunt_proxy__answer(struct session *s, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void shunt_proxy__begin_exchange(struct session *s, const struct shunt_http_head *h);
void shunt_proxy__route_on(struct session *s, struct upstream *u);
void shunt_proxy__send_request(struct session *s);
void shunt_proxy__process_upstream(struct upstream *u);
void shunt_proxy__process_client(struct session *s);

/* report.c: events to the subscribers */
void shunt_proxy__emit(struct session *s, struct shunt_event *ev);
void shunt_proxy__fill_conn_event(struct session *s, struct shunt_event *ev, enum shunt_ev_type t);
void shunt_proxy__emit_change_by(struct session *s, int in_request, const char *what,
                                 const char *by);
void shunt_proxy__emit_fix(struct session *s, int in_request, const char *what);
void shunt_proxy__emit_head(struct session *s, enum shunt_ev_type t,
                            const struct shunt_http_head *h, const char *raw, const uv_buf_t *iov,
                            size_t n_iov);
void shunt_proxy__emit_body(struct session *s, int from_client, const char *p, size_t n);
void shunt_proxy__emit_own_response(struct session *s, int status, const uv_buf_t *head, size_t n,
                                    const char *body, size_t body_len);
void shunt_proxy__emit_upstream_close(struct session *s, struct upstream *u);
void shunt_proxy__emit_exchange_done(struct session *s);
void shunt_proxy__emit_unsent_head(struct session *s);
void shunt_proxy__emit_tls(struct session *s, struct upstream *u, struct shunt_conn *c,
                           const char *error);
void shunt_proxy__emit_tls_timeout(struct session *s, struct upstream *u);

/* hooks.c: the rules glue */
void shunt_proxy__tell_conn_hook(struct session *s, int opening);
void shunt_proxy__ask_request_hook(struct session *s, const struct shunt_http_head *h,
                                   struct shunt_request_verdict *v);
void shunt_proxy__respond_now(struct session *s, const struct shunt_http_head *h, int status,
                              const char *fields, size_t fields_len, const char *body,
                              size_t body_len, const char *by);
void shunt_proxy__respond_verdict(struct session *s, const struct shunt_http_head *h,
                                  const struct shunt_request_verdict *v);
void shunt_proxy__auth_on_request(struct session *s, const struct shunt_http_head *h);
void shunt_proxy__auth_on_response(struct session *s, const struct shunt_http_head *h);
shunt_head_note_cb shunt_proxy__head_notes(const struct session *s);
struct shunt_head_plan shunt_proxy__request_plan(const struct session *s, const struct route *rt);
void shunt_proxy__request_fields(struct session *s, const struct shunt_http_head *h,
                                 const struct route *rt, struct shunt_head_edit *e,
                                 struct shunt_hook_out *out);
void shunt_proxy__response_fields(struct session *s, const struct shunt_http_head *h,
                                  struct shunt_head_edit *e, struct shunt_hook_out *out);

/* route.c: routing */
int shunt_proxy__split_absolute(struct shunt_slice t, struct route *rt);
struct shunt_slice shunt_proxy__target_of(const struct session *s, const struct shunt_http_head *h);
int shunt_proxy__route_request(struct session *s, const struct shunt_http_head *h,
                               struct route *rt);
const char *shunt_proxy__forbidden_upstream(const struct session *s, const struct sockaddr *sa,
                                            int *status);
struct shunt_slice shunt_proxy__wanted_host(const struct session *s, const struct route *rt);
const char *shunt_proxy__host_by(const struct route *rt);

/* framing.c: heads in pieces, body framing */
int shunt_proxy__parse_head(struct worker *w, parse_fn fn, struct partial **pp, const char *p,
                            size_t avail, struct shunt_http_head *h, struct shunt_http_error *e);
int shunt_proxy__parse_request(struct session *s, struct shunt_http_head *h,
                               struct shunt_http_error *e);
int shunt_proxy__prescan_body(struct session *s, struct shunt_http_body *b, const char *p, size_t n,
                              struct shunt_http_error *e);
long shunt_proxy__frame_body(struct session *s, struct shunt_http_body *body, const char *p,
                             size_t avail, int from_client, uv_buf_t *iov, size_t *n,
                             struct shunt_http_error *e);

/* upstream.c: the upstream side */
void shunt_proxy__upstream_close(struct upstream *u, int reset);
void shunt_proxy__shutdown_upstream(struct upstream *u);
struct upstream *shunt_proxy__find_upstream(struct session *s, const char *host, int port);
int shunt_proxy__wants_tls(const struct session *s);
void shunt_proxy__open_upstream(struct session *s, const struct route *rt);
void shunt_proxy__on_upstream_eof(struct upstream *u);

/* tunnel.c: tunnels and interception */
void shunt_proxy__keep_only_cur(struct session *s);
void shunt_proxy__establish_tunnel(struct session *s);
int shunt_proxy__pump(struct session *s, struct shunt_conn *from, struct shunt_conn *to,
                      int from_client);
void shunt_proxy__client_tls_timed_out(struct session *s);
void shunt_proxy__intercept_connect(struct session *s, const struct shunt_http_head *h,
                                    const struct route *rt);
void shunt_proxy__intercept_peek(struct session *s);
void shunt_proxy__intercept_peek_expired(struct session *s);
void shunt_proxy__plain_tunnel_failed(struct session *s, const char *why);
/* How long an intercepted tunnel waits for the client's first bytes before it takes the
 * silence for a server-first protocol and becomes a byte tunnel. */
#define SHUNT_PEEK_WINDOW_MS 1000

/* timers.c: deadlines */
void shunt_proxy__timer_cb(uv_timer_t *t);

/* ------------------------------------------------------------------------ static inlines */

static inline uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static inline void set_closer(struct session *s, enum shunt_closer who, enum shunt_close_how how)
{
    shunt_conn_set_closer(&s->conn, (int)who, (enum shunt_conn_how)how);
}

/* The most a connection's input grows to: a head at its limits, with room to spare. */
static inline size_t buf_max(const struct worker *w)
{
    const struct shunt_http_limits *l = &w->cfg->limits;
    size_t m = l->max_head + l->max_line + 4096;
    return m < SHUNT_PROXY_BUF ? SHUNT_PROXY_BUF : m;
}

/* Sends on the client's or an upstream's connection: tried at once, the rest copied and
 * queued (net/conn.h), so the caller's bytes are free on return. 0, or a libuv error. */
static inline int send_client(struct session *s, const uv_buf_t *bufs, unsigned n)
{
    return shunt_conn_send(&s->conn, bufs, n);
}

static inline int send_upstream(struct upstream *u, const uv_buf_t *bufs, unsigned n)
{
    return shunt_conn_send(&u->conn, bufs, n);
}

static inline size_t queued(const struct shunt_conn *c)
{
    return shunt_conn_queued(c);
}

static inline size_t iov_add(uv_buf_t *iov, size_t n, const char *base, size_t len)
{
    if (len == 0)
        return n;
    if (n > 0 && iov[n - 1].base + iov[n - 1].len == base)
        iov[n - 1].len += len;
    else
        iov[n++] = uv_buf_init((char *)base, (unsigned)len);
    return n;
}

static inline enum timer_purpose purpose_of(enum timer_kind k)
{
    switch (k) {
    case T_CONNECT:
    case T_RESPONSE:
    case T_TLS_UP: return TM_UPSTREAM;
    case T_DELAY: return TM_HOLD;
    default: return TM_CLIENT;
    }
}

static inline void shunt_proxy__disarm(struct session *s, enum timer_purpose p)
{
    s->tm[p].kind = T_NONE;
}

/*
 * Sets the deadline of <k>'s purpose; the other purposes keep theirs, except where one
 * wait replaces another by design: the client-side waits (idle, header, linger, tunnel)
 * and the exchange's wait for its upstream never run together (a request that begins
 * ends the idle wait, an exchange that ends its upstream wait), and a rule's hold stands
 * in for the response timeout while it lasts (the server has answered; the wait is the
 * rule's), so the response timeout is not armed during a held response.
 *
 * The deadlines share one libuv timer, which is lazy: it is restarted only when the new
 * deadline is earlier than the pending one; when it fires early it re-arms itself for the
 * earliest deadline left. Keep-alive traffic moves a deadline twice per exchange, and this
 * keeps that off the timer heap.
 */
static inline void shunt_proxy__arm(struct session *s, enum timer_kind k, uint64_t ms)
{
    enum timer_purpose p = purpose_of(k);
    if (p == TM_UPSTREAM && k == T_RESPONSE && s->ex.held == HOLD_RESPONSE)
        return; /* the hold's timer runs; the response timeout resumes at its release */
    if (p == TM_CLIENT) {
        shunt_proxy__disarm(s, TM_UPSTREAM);
        shunt_proxy__disarm(s, TM_HOLD);
    } else if (p == TM_UPSTREAM) {
        shunt_proxy__disarm(s, TM_CLIENT);
    } else {
        shunt_proxy__disarm(s, TM_CLIENT);
        shunt_proxy__disarm(s, TM_UPSTREAM);
    }
    uint64_t now = uv_now(&s->w->loop);
    s->tm[p].kind = k;
    s->tm[p].at = now + ms;
    if (!uv_is_active((uv_handle_t *)&s->timer) || s->timer_due > s->tm[p].at) {
        s->timer_due = s->tm[p].at;
        uv_timer_start(&s->timer, shunt_proxy__timer_cb, ms, 0);
    }
}

/* The kind armed on the client side, or T_NONE. */
static inline enum timer_kind client_wait(const struct session *s)
{
    return s->tm[TM_CLIENT].kind;
}

#endif
