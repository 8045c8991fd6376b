/* src/proxy/exchange.h - one request and its response on a client connection: their state,
 * timings, error, holds and what the rules made, and an arena for everything that lives as
 * long as the exchange (h2o's req->pool). Proxy-internal.
 *
 * Lifetime: shunt_exchange_begin() starts one, shunt_exchange_end() ends it; between the
 * two, whatever the exchange points at (method, URL, the URL the rules see, a mapped URL,
 * kept fields, error texts, every hook output) lives in its arena, under one rule: valid
 * until the exchange ends. The end resets the arena and every field; nothing is freed one
 * by one. The struct is embedded in the session (one exchange at a time per connection). */
#ifndef SHUNT_PROXY_EXCHANGE_H
#define SHUNT_PROXY_EXCHANGE_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/slice.h"
#include "http/edit.h"
#include "http/parser.h"
#include "proxy/events.h"
#include "proxy/proxy.h"

enum req_state {
    RQ_IDLE,       /* waiting for (more of) a request head */
    RQ_CONNECTING, /* head complete and left in the buffer; upstream connecting */
    RQ_BODY,       /* head sent; forwarding the body */
    RQ_DONE,       /* request forwarded whole */
};

enum resp_state {
    RS_NONE, /* no exchange */
    RS_WAIT, /* waiting for a (final) response head */
    RS_BODY, /* forwarding the body */
    RS_DONE, /* response delivered */
};

/* An exchange a rule holds for a while (latency simulation). */
enum hold {
    HOLD_NONE,
    HOLD_REQUEST,  /* the request waits before it is routed; its edited fields are kept */
    HOLD_RESPONSE, /* the response head waits in the upstream buffer; its fields are kept */
    HOLD_RELEASED, /* the response's time is up: send it with the kept fields */
};

/* The exchange's own buffer, where its arena starts: its names and a usual hook URL fit. */
#define SHUNT_EXCHANGE_MEM 256

struct shunt_exchange {
    struct shunt_arena arena; /* reset at each end */
    alignas(max_align_t) char mem[SHUNT_EXCHANGE_MEM]; /* the arena's first bytes */
    /* from here on, every field is zero between exchanges */
    enum req_state rq;
    enum resp_state rs;
    unsigned active : 1;      /* begun, and its DONE event is still owed */
    struct shunt_http_body req_body, resp_body;
    unsigned req_is_head : 1, req_is_connect : 1, req_upgrade : 1, resp_started : 1;
    unsigned req_close : 1;   /* the request asked to close after the response (RFC 9112 9.3) */
    unsigned head_emitted : 1; /* the REQUEST_HEAD event went out */
    unsigned req_cut : 1;     /* the client closed inside the request body */
    unsigned rule_close : 1;  /* a rule gave the response "Connection: close": end after it */
    unsigned req_kept : 1;    /* <kept> holds the request's fields */
    enum hold held;
    int status;
    uint64_t t_start;
    uint64_t req_bytes, resp_bytes;
    /* why it failed: a text for the event and -v (static, or in the arena), and, when a
     * parser said so, its reason code and the byte offset */
    const char *error;
    int err_code;     /* enum shunt_http_reason, 0: none */
    size_t err_offset;
    /* names, whole and NUL-terminated: "-" when there is no head to name it by */
    const char *method;
    const char *url;
    struct shunt_slice hook_url; /* the absolute URL the rules see */
    struct shunt_slice mapped;   /* the URL a request hook mapped it to (base NULL: not) */
    struct shunt_slice kept;     /* the head the rules made, kept across a connect or a hold */
    struct shunt_head_edit *live_edit; /* the request's edit, while it can be sent at once */
    /* its route */
    char route_host[256]; /* origin host (lower case) */
    int route_port;
    int upstream_port;    /* local port of the upstream that carried it */
    int reused;           /* that upstream had carried an exchange before */
    /* timings, monotonic microseconds (0: not yet) */
    uint64_t t_connect_start, t_resolved, t_connected, t_send_start, t_sent, t_first_byte;
    uint64_t req_payload, resp_payload; /* body bytes reported so far */
};

/* Prepares <ex> for its first exchange. */
void shunt_exchange_init(struct shunt_exchange *ex);

/* Frees what <ex> holds. */
void shunt_exchange_dispose(struct shunt_exchange *ex);

/* Begins an exchange at <now_us>, named by <method> and <target> (copied; "-" for both
 * when <method>.base is NULL: no head to name it by). */
void shunt_exchange_begin(struct shunt_exchange *ex, struct shunt_slice method,
                          struct shunt_slice target, uint64_t now_us);

/* Ends the exchange: every field back to its idle value, the arena reset (everything the
 * exchange pointed into is dead). */
void shunt_exchange_end(struct shunt_exchange *ex);

/* Records where and why a parser refused the exchange's messages: the first such place,
 * which the text in ex->error describes. */
void shunt_exchange_fail_at(struct shunt_exchange *ex, int code, size_t offset);

/* Returns a copy of <n> bytes at <p> (NUL after them), valid until the exchange ends. */
char *shunt_exchange_copy(struct shunt_exchange *ex, const char *p, size_t n);

/* Returns <n> bytes valid until the exchange ends. */
void *shunt_exchange_alloc(struct shunt_exchange *ex, size_t n);

/* Makes the URL the rules see, whole, in ex->hook_url (the response's hook sees the same):
 * <target> when <absolute>, else "http://" <host> <target>; then, when <lower> is not NULL,
 * <lower_src> in lower case up to its port, returned in *<lower>. Both valid until the
 * exchange ends. */
struct shunt_slice shunt_exchange_hook_url(struct shunt_exchange *ex, struct shunt_slice host,
                                           struct shunt_slice target, int absolute,
                                           struct shunt_slice lower_src,
                                           struct shunt_slice *lower);

/* Keeps the lines of <e> in ex->kept, for a send that happens later (a connect, a hold). */
void shunt_exchange_keep(struct shunt_exchange *ex, const struct shunt_head_edit *e);

/* What the hooks hand back goes into the arena as soon as they return, under one rule:
 * valid until the exchange ends. Their own allocations are freed here (a verdict's body
 * when respond_body_free; s:respond()'s fields and body), so that nothing after this point
 * frees a hook's output on some paths and forgets it on others. */
void shunt_exchange_adopt_verdict(struct shunt_exchange *ex, struct shunt_request_verdict *v);
void shunt_exchange_adopt_hook_out(struct shunt_exchange *ex, struct shunt_hook_out *out);

/* Fills the exchange's part of its EXCHANGE_DONE event <ev> (whose time_us is set): names,
 * status, bytes, duration, upstream, error, body sizes and HAR's timings (-1 for a phase
 * that did not happen). */
void shunt_exchange_fill_done(const struct shunt_exchange *ex, struct shunt_event *ev);

#endif
