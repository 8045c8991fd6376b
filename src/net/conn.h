/* src/net/conn.h - one TCP connection on a libuv loop: its socket, its input buffer, its
 * output queue, its end (FIN or reset, who closed first), and (issue 12, step 2) one
 * optional TLS layer. The proxy's client and upstream sides, the admin API and the lab
 * origin all read, write, shut down and close through it.
 *
 * Who owns what (after curl's lib/cfilters.h and haproxy's h1c/h1s split):
 * - The OWNER (a proxy session, an upstream, an admin client, an origin connection) embeds
 *   a struct shunt_conn and owns its memory. It gets itself back from a callback with
 *   SHUNT_CONTAINER_OF(c, struct owner, member), or through <data>. It frees that memory
 *   only from ops->on_closed (or later), never before: libuv still holds the handle.
 * - The CONNECTION owns the uv_tcp_t (embedded: never copy or move a struct shunt_conn),
 *   its input buffer (taken from the owner's struct shunt_conn_pool on the first read and
 *   given back whenever it is empty, so an idle connection holds none), the copies of
 *   writes that could not complete at once, the shutdown request, and a pending connect
 *   (net/connect.h), which shunt_conn_close() cancels.
 * - The POOL (the proxy worker's, the admin API's, the origin's) belongs to one loop and
 *   outlives every connection that uses it.
 *
 * Callbacks run on the loop thread, one at a time, never nested in a call the owner made
 * (except that shunt_conn_close() may run none: on_closed comes from the loop). After
 * shunt_conn_close() the only callback left is on_closed, once.
 *
 * The input buffer: bytes in [in.off, in.len) of in.base are unconsumed. Slices into it
 * stay valid until the next read (which may compact or grow it: ops->on_moved says so),
 * shunt_conn_consume() of all of it, or shunt_conn_release_input().
 *
 * TLS (decision 1, issue 12): with a layer started (shunt_conn_start_tls(), added by the
 * INTERCEPT part in conn.c), reads are ciphertext fed to the engine and the plaintext lands
 * in the same input buffer, so the owner's parsing does not change; sends are encrypted;
 * shutdown sends close_notify then FIN. Byte counts stay TCP bytes.
 */
#ifndef SHUNT_NET_CONN_H
#define SHUNT_NET_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/errors.h"

struct shunt_conn;
struct shunt_connect; /* net/connect.h */
struct shunt_tls;     /* net/tls.h */

/* How a connection ended, in the order of proxy/events.h's enum shunt_close_how (the proxy
 * relies on the values being the same). */
enum shunt_conn_how {
    SHUNT_CONN_HOW_NONE,
    SHUNT_CONN_HOW_FIN,     /* a FIN: an orderly end */
    SHUNT_CONN_HOW_RST,     /* a reset (or a read/write error) */
    SHUNT_CONN_HOW_TIMEOUT, /* the owner gave up waiting */
    SHUNT_CONN_HOW_ERROR,   /* the owner ended it on a protocol error */
};

/* Spare input buffers of one size, for the connections of one loop. Plain data: the owner
 * fills it (shunt_conn_pool_init) and frees it (shunt_conn_pool_dispose) once every
 * connection using it is closed. */
struct shunt_conn_pool {
    char **bufs; /* bufs[0..n) are free buffers of <size> bytes */
    size_t n;
    size_t max;  /* buffers kept at most; more are freed */
    size_t size; /* bytes per buffer: a connection's first input buffer */
};

/* A connection's input. */
struct shunt_conn_buf {
    char *base; /* NULL while the connection holds no buffer (idle) */
    size_t off; /* first unconsumed byte */
    size_t len; /* end of the bytes read */
    size_t cap; /* size of <base> */
};

/* What the connection tells its owner. on_data, on_eof and on_closed are required. */
struct shunt_conn_ops {
    /* Bytes were appended to c->in (c->in.len grew). */
    void (*on_data)(struct shunt_conn *c);
    /* The peer ended its side: <how> FIN (c->rd_eof is set; writing may go on) or RST
     * (<err> the libuv error, UV_ECONNRESET for a reset, even one the kernel reported as a
     * plain end of file; the owner should close). Reading has stopped. c->closer is already
     * c->peer_closer unless the owner had set it. */
    void (*on_eof)(struct shunt_conn *c, enum shunt_conn_how how, int err);
    /* Optional: the output queue became empty (every byte given to shunt_conn_send() was
     * handed to the kernel). Not called when a send completed at once. */
    void (*on_drained)(struct shunt_conn *c);
    /* Optional: the FIN asked for with shunt_conn_shutdown() went out (c->shut_done). */
    void (*on_shut)(struct shunt_conn *c);
    /* Optional: a queued write failed (the peer is gone); <err> is the libuv error; closer
     * is set to the peer, RST. NULL: on_eof(c, SHUNT_CONN_HOW_RST, err) is called instead. */
    void (*on_write_error)(struct shunt_conn *c, int err);
    /* Optional: the input's bytes moved (compaction or growth before a read): slices into
     * c->in made before are stale. Called before the read that follows. */
    void (*on_moved)(struct shunt_conn *c);
    /* The handle is closed: the owner may free the memory holding <c> now. Once. */
    void (*on_closed)(struct shunt_conn *c);
};

/* One connection. Fields without a leading underscore are for the owner to read; only the
 * functions below change them. */
struct shunt_conn {
    uv_tcp_t tcp; /* embedded; tcp.data is free for the owner */
    const struct shunt_conn_ops *ops;
    void *data;                   /* the owner's, untouched here */
    struct shunt_conn_pool *pool; /* where the input buffer comes from and goes back to */
    struct shunt_conn_buf in;     /* what was read and not consumed yet */
    size_t in_max;                /* the input buffer grows up to this (>= pool->size) */
    uint64_t bytes_in, bytes_out; /* TCP bytes read and given to the kernel or queued */
    int closer;                   /* who closed first: the owner's code, 0 while open */
    enum shunt_conn_how how;      /* how it was closed first (with <closer>) */
    int peer_closer;              /* <closer> when the peer ends it (e.g. "client") */
    int self_closer;              /* <closer> when shunt_conn_close() ends it ("proxy") */
    unsigned connected : 1;  /* accepted, or connected by net/connect.h */
    unsigned reading : 1;    /* uv_read_start in effect */
    unsigned rd_eof : 1;     /* the peer's FIN was read */
    unsigned wr_shut : 1;    /* shunt_conn_shutdown() was called (our FIN asked for) */
    unsigned shut_done : 1;  /* ... and went out (or could not: the peer is gone) */
    unsigned closing : 1;    /* shunt_conn_close() was called */
    unsigned _reopen : 1;    /* net/connect.h closes the socket to try the next address */
    unsigned _in_moved : 1;  /* on_moved is owed before the next on_data */
    uv_shutdown_t _sreq;
    struct shunt_connect *_connect; /* a connect in progress (net/connect.h), or NULL */
    /* The TLS layer (issue 12, decision 1; INTERCEPT adds it): NULL for plain TCP. When
     * set, read_cb feeds ciphertext to it and decrypts into <in>; send encrypts. */
    struct shunt_tls *_tls;
};

/* ----------------------------------------------------------------------- pools */

/* Makes <p> keep up to <max> spare buffers of <size> bytes. */
void shunt_conn_pool_init(struct shunt_conn_pool *p, size_t size, size_t max);
/* Frees the spare buffers of <p>. Call once no connection uses it. */
void shunt_conn_pool_dispose(struct shunt_conn_pool *p);

/* ----------------------------------------------------------------------- lifetime */

/*
 * Initialises <c> on <loop> (uv_tcp_init): not connected, not reading. <ops> (static,
 * outlives <c>) and <pool> are borrowed. <peer_closer>/<self_closer> are the owner's codes
 * for "the peer closed" and "we closed" (nonzero). Loop thread. Returns 0 or a libuv
 * error; on error <c> is unused (no on_closed).
 */
SHUNT_MUST_CHECK int shunt_conn_init(struct shunt_conn *c, uv_loop_t *loop,
                                     const struct shunt_conn_ops *ops,
                                     struct shunt_conn_pool *pool, int peer_closer,
                                     int self_closer);

/* Accepts a connection from <listener> into <c> (initialised) and sets TCP_NODELAY.
 * Returns 0, or a libuv error: then close <c>. */
SHUNT_MUST_CHECK int shunt_conn_accept(struct shunt_conn *c, uv_stream_t *listener);

/*
 * Closes <c> now: with a reset (SO_LINGER 0, RST) when <reset> and connected, else an
 * ordinary close (FIN, or RST when unread bytes remain: the kernel's choice). Records
 * self_closer and FIN/RST as who closed and how unless set before. Cancels a connect in
 * progress (its callback does not run), drops queued writes, gives the input buffer back.
 * on_closed follows from the loop. Calling it again does nothing.
 */
void shunt_conn_close(struct shunt_conn *c, int reset);

/* Records who closed and how, unless recorded already (the first closer wins). */
static inline void shunt_conn_set_closer(struct shunt_conn *c, int who, enum shunt_conn_how how)
{
    if (c->closer == 0) {
        c->closer = who;
        c->how = how;
    }
}

/* ----------------------------------------------------------------------- reading */

/* Starts reading (when not at EOF, closing or reading). Bytes land in c->in and on_data
 * follows. When the input buffer is full at <in_max>, reading stops by itself until the
 * owner consumes and calls this again. */
void shunt_conn_read_start(struct shunt_conn *c);
void shunt_conn_read_stop(struct shunt_conn *c);

/* Marks <n> unconsumed bytes consumed; gives the buffer back once it is empty. */
void shunt_conn_consume(struct shunt_conn *c, size_t n);
/* Drops whatever is unconsumed and gives the buffer back. */
void shunt_conn_release_input(struct shunt_conn *c);

/* ----------------------------------------------------------------------- writing */

/*
 * Sends <n> buffers: a synchronous try first (uv_try_write: the usual case, no copy); what
 * remains is copied and queued (one uv_write), so the caller's bytes are free on return.
 * Returns 0, or a libuv error when the peer is gone (then close <c>).
 */
SHUNT_MUST_CHECK int shunt_conn_send(struct shunt_conn *c, const uv_buf_t *bufs, unsigned n);

/* As shunt_conn_send(), except that bufs[<first_static>..<n>) are bytes that stay valid
 * and unchanged for the life of <c> (static data, e.g. the lab origin's body filler): what
 * the kernel does not take of them at once is queued without a copy. */
SHUNT_MUST_CHECK int shunt_conn_send_static(struct shunt_conn *c, const uv_buf_t *bufs,
                                            unsigned n, unsigned first_static);

/* Sends our FIN once queued writes are out (uv_shutdown); on_shut when it went out. Does
 * nothing when not connected, closing, or already shut. */
void shunt_conn_shutdown(struct shunt_conn *c);

/* ----------------------------------------------------------------------- TLS (step 2) */

/* shunt_conn_start_tls(c, tls, on_tls_done) is added here by the INTERCEPT part: see the
 * section "TLS layer" in conn.c for the hooks the read and write paths leave for it. */

/* ----------------------------------------------------------------------- inlines */

/* 1 when unconsumed input is waiting. */
static inline int shunt_conn_has_input(const struct shunt_conn *c)
{
    return c->in.base != NULL && c->in.off < c->in.len;
}

/* Unconsumed input: its start, and its length. */
static inline const char *shunt_conn_data(const struct shunt_conn *c)
{
    return c->in.base + c->in.off;
}
static inline size_t shunt_conn_avail(const struct shunt_conn *c)
{
    return c->in.len - c->in.off;
}

/* Drops the unconsumed input past its first <keep> bytes (used in place already: a body
 * decoded elsewhere), keeping the buffer. */
static inline void shunt_conn_truncate(struct shunt_conn *c, size_t keep)
{
    if (c->in.base != NULL && keep < c->in.len - c->in.off)
        c->in.len = c->in.off + keep;
}

/* 1 while net/connect.h connects it (lookup, addresses, timeout). */
static inline int shunt_conn_connecting(const struct shunt_conn *c)
{
    return c->_connect != NULL;
}

/* Bytes queued for the kernel (0: everything sent went out). */
static inline size_t shunt_conn_queued(const struct shunt_conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* 1 when the input buffer is at its maximum and full: reading waits for a consume. */
static inline int shunt_conn_in_full(const struct shunt_conn *c)
{
    return c->in.base != NULL && c->in.off == 0 && c->in.len == c->in.cap && c->in.cap >= c->in_max;
}

#endif
