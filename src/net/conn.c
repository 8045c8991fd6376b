/* src/net/conn.c - one TCP connection on a libuv loop (see conn.h for who owns what). */
#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "net/conn.h"
#include "net/connect.h"

/* Room a read wants at least before the buffer is compacted or grown. */
#define MIN_READ_ROOM 2048

/* ----------------------------------------------------------------------- pools */

void shunt_conn_pool_init(struct shunt_conn_pool *p, size_t size, size_t max)
{
    p->bufs = max > 0 ? shunt_xcalloc(sizeof(*p->bufs) * max) : NULL;
    p->n = 0;
    p->max = max;
    p->size = size;
}

void shunt_conn_pool_dispose(struct shunt_conn_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->bufs[i]);
    free(p->bufs);
    p->bufs = NULL;
    p->n = p->max = 0;
}

/* ----------------------------------------------------------------------- the input buffer */

void shunt_conn_release_input(struct shunt_conn *c)
{
    struct shunt_conn_buf *b = &c->in;
    if (b->base == NULL)
        return;
    struct shunt_conn_pool *p = c->pool;
    if (b->cap == p->size && p->n < p->max)
        p->bufs[p->n++] = b->base;
    else
        free(b->base);
    b->base = NULL;
    b->off = b->len = b->cap = 0;
}

void shunt_conn_consume(struct shunt_conn *c, size_t n)
{
    c->in.off += n;
    assert(c->in.off <= c->in.len);
    if (c->in.off == c->in.len)
        shunt_conn_release_input(c);
}

/* Returns free space at the end of the input in *<out>, making some when it can: a buffer
 * from the pool, compaction, growth up to in_max. {NULL, 0} when full (UV_ENOBUFS). Notes
 * a move of the bytes in c->_in_moved (slices into them are stale). */
static void in_reserve(struct shunt_conn *c, uv_buf_t *out)
{
    struct shunt_conn_buf *b = &c->in;
    struct shunt_conn_pool *p = c->pool;
    if (b->base == NULL) {
        b->base = p->n > 0 ? p->bufs[--p->n] : malloc(p->size);
        b->cap = b->base ? p->size : 0;
        b->off = b->len = 0;
    }
    if (b->base != NULL && b->cap - b->len < MIN_READ_ROOM) {
        if (b->off > 0) {
            memmove(b->base, b->base + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
            c->_in_moved = 1;
        }
        if (b->cap - b->len < MIN_READ_ROOM && b->cap < c->in_max) {
            size_t ncap = b->cap * 2 > c->in_max ? c->in_max : b->cap * 2;
            char *n = realloc(b->base, ncap);
            if (n != NULL) {
                c->_in_moved = 1;
                b->base = n;
                b->cap = ncap;
            }
        }
    }
    if (b->base == NULL || b->len == b->cap)
        *out = uv_buf_init(NULL, 0);
    else
        *out = uv_buf_init(b->base + b->len, (unsigned)(b->cap - b->len));
}

/* ----------------------------------------------------------------------- lifetime */

int shunt_conn_init(struct shunt_conn *c, uv_loop_t *loop, const struct shunt_conn_ops *ops,
                    struct shunt_conn_pool *pool, int peer_closer, int self_closer)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->pool = pool;
    c->in_max = pool->size;
    c->peer_closer = peer_closer;
    c->self_closer = self_closer;
    return uv_tcp_init(loop, &c->tcp);
}

int shunt_conn_accept(struct shunt_conn *c, uv_stream_t *listener)
{
    int r = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (r != 0)
        return r;
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    return 0;
}

static void closed_cb(uv_handle_t *h)
{
    struct shunt_conn *c = SHUNT_CONTAINER_OF(h, struct shunt_conn, tcp);
    c->ops->on_closed(c);
}

void shunt_conn_close(struct shunt_conn *c, int reset)
{
    if (c->closing)
        return;
    c->closing = 1;
    shunt_conn_set_closer(c, c->self_closer, reset ? SHUNT_CONN_HOW_RST : SHUNT_CONN_HOW_FIN);
    if (c->_connect != NULL)
        shunt_connect_cancel(c);
    shunt_conn_release_input(c);
    c->reading = 0;
    /* Between two addresses net/connect.h has the handle closing already: its close
     * callback sees <closing> and hands the connection to on_closed. */
    if (c->_reopen)
        return;
    if (reset && c->connected && uv_tcp_close_reset(&c->tcp, closed_cb) == 0)
        return;
    uv_close((uv_handle_t *)&c->tcp, closed_cb);
}

/* Called by net/connect.h when the handle it closed between two addresses is closed:
 * returns 1 when the owner closed the connection meanwhile (on_closed has run). */
int shunt_conn__reopened(struct shunt_conn *c);
int shunt_conn__reopened(struct shunt_conn *c)
{
    c->_reopen = 0;
    if (c->closing) {
        c->ops->on_closed(c);
        return 1;
    }
    return 0;
}

/* ----------------------------------------------------------------------- reading */

/* After a read returned end-of-file, tells a FIN from a reset. The kernel hands out a reset
 * as ECONNRESET once; when something consumed that error first (a write that failed, say),
 * the next read returns 0 as for a FIN. The TCP state still tells, as long as we had not
 * sent our own FIN (<fin_sent>): CLOSE_WAIT after a FIN, CLOSE after a reset. (After our
 * FIN, a FIN also leaves the socket CLOSE: Linux moves it to a time-wait mini socket.) */
static int was_reset(uv_tcp_t *t, int fin_sent)
{
    if (fin_sent)
        return 0;
    uv_os_fd_t fd;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (uv_fileno((uv_handle_t *)t, &fd) != 0 ||
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return 0;
    return ti.tcpi_state == TCP_CLOSE;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct shunt_conn *c = SHUNT_CONTAINER_OF(h, struct shunt_conn, tcp);
    (void)hint;
    /* TLS layer: ciphertext would be read into a buffer of the layer's own here, and the
     * plaintext decrypted into c->in with in_reserve() in read_cb. */
    in_reserve(c, out);
    if (c->_in_moved) {
        c->_in_moved = 0;
        if (c->ops->on_moved != NULL)
            c->ops->on_moved(c);
    }
}

static void stop_reading(struct shunt_conn *c)
{
    if (c->reading) {
        c->reading = 0;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* The peer ended its side (<nread> UV_EOF) or the read failed. */
static void peer_end(struct shunt_conn *c, ssize_t nread)
{
    if (nread == UV_EOF && was_reset(&c->tcp, c->wr_shut))
        nread = UV_ECONNRESET;
    stop_reading(c);
    if (nread == UV_EOF) {
        c->rd_eof = 1;
        shunt_conn_set_closer(c, c->peer_closer, SHUNT_CONN_HOW_FIN);
        c->ops->on_eof(c, SHUNT_CONN_HOW_FIN, 0);
        return;
    }
    shunt_conn_set_closer(c, c->peer_closer, SHUNT_CONN_HOW_RST);
    c->ops->on_eof(c, SHUNT_CONN_HOW_RST, (int)nread);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct shunt_conn *c = SHUNT_CONTAINER_OF(st, struct shunt_conn, tcp);
    (void)buf;
    if (nread > 0) {
        c->bytes_in += (uint64_t)nread;
        /* TLS layer: feed buf->base[0..nread) to c->_tls here, decrypt into c->in. */
        c->in.len += (size_t)nread;
        c->ops->on_data(c);
        return;
    }
    if (c->in.base != NULL && c->in.off == c->in.len)
        shunt_conn_release_input(c);
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) { /* full: the owner consumes, then reads again */
        stop_reading(c);
        return;
    }
    peer_end(c, nread);
}

void shunt_conn_read_start(struct shunt_conn *c)
{
    if (c->reading || c->closing || c->rd_eof || !c->connected)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
        c->reading = 1;
}

void shunt_conn_read_stop(struct shunt_conn *c)
{
    if (!c->closing)
        stop_reading(c);
}

/* ----------------------------------------------------------------------- writing */

/* A write that could not complete at once, with a copy of its remaining bytes. */
struct wblock {
    uv_write_t req;
    size_t len;
    char data[];
};

static void write_cb(uv_write_t *req, int status)
{
    struct wblock *wb = SHUNT_CONTAINER_OF(req, struct wblock, req);
    struct shunt_conn *c = SHUNT_CONTAINER_OF(req->handle, struct shunt_conn, tcp);
    free(wb);
    if (c->closing || status == UV_ECANCELED)
        return;
    if (status < 0) {
        shunt_conn_set_closer(c, c->peer_closer, SHUNT_CONN_HOW_RST);
        if (c->ops->on_write_error != NULL)
            c->ops->on_write_error(c, status);
        else
            c->ops->on_eof(c, SHUNT_CONN_HOW_RST, status);
        return;
    }
    if (shunt_conn_queued(c) == 0 && c->ops->on_drained != NULL)
        c->ops->on_drained(c);
}

/* Sends <n> buffers on the socket as they are (the TLS layer sends its records through
 * here too): try first, then queue one write for what remains, copying the remainder of
 * bufs[0..<first_static>) and referring to that of the others (static bytes). */
static int raw_send(struct shunt_conn *c, const uv_buf_t *bufs, unsigned n, unsigned first_static)
{
    size_t total = 0, copy = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    c->bytes_out += total;
    if (total == 0)
        return 0;
    uv_stream_t *st = (uv_stream_t *)&c->tcp;
    int r = uv_try_write(st, bufs, n);
    if (r == (int)total)
        return 0;
    if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS)
        return r;
    size_t done = r > 0 ? (size_t)r : 0;
    /* the remainder: bufs[k] from offset <skip> on */
    unsigned k = 0;
    size_t skip = done;
    while (k < n && skip >= bufs[k].len) {
        skip -= bufs[k].len;
        k++;
    }
    for (unsigned i = k; i < n && i < first_static; i++)
        copy += bufs[i].len - (i == k ? skip : 0);
    unsigned n_ref = n > first_static ? n - (k > first_static ? k : first_static) : 0;
    struct wblock *wb = malloc(sizeof(*wb) + copy);
    uv_buf_t small[8], *out = small;
    if (n_ref + 1 > 8)
        out = malloc(sizeof(*out) * (n_ref + 1));
    if (wb == NULL || out == NULL) {
        free(wb);
        if (out != small)
            free(out);
        return UV_ENOMEM;
    }
    wb->len = 0;
    unsigned no = 0;
    for (unsigned i = k; i < n; i++) {
        size_t off = i == k ? skip : 0;
        if (i < first_static) {
            memcpy(wb->data + wb->len, bufs[i].base + off, bufs[i].len - off);
            wb->len += bufs[i].len - off;
            continue;
        }
        if (no == 0 && wb->len > 0)
            out[no++] = uv_buf_init(wb->data, (unsigned)wb->len);
        out[no++] = uv_buf_init(bufs[i].base + off, (unsigned)(bufs[i].len - off));
    }
    if (no == 0)
        out[no++] = uv_buf_init(wb->data, (unsigned)wb->len);
    r = uv_write(&wb->req, st, out, no, write_cb); /* libuv copies the array */
    if (out != small)
        free(out);
    if (r != 0) {
        free(wb);
        return r;
    }
    return 0;
}

int shunt_conn_send(struct shunt_conn *c, const uv_buf_t *bufs, unsigned n)
{
    /* TLS layer: encrypt <bufs> into c->_tls, then raw_send() the records. */
    return raw_send(c, bufs, n, n);
}

int shunt_conn_send_static(struct shunt_conn *c, const uv_buf_t *bufs, unsigned n,
                           unsigned first_static)
{
    return raw_send(c, bufs, n, first_static < n ? first_static : n);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct shunt_conn *c = SHUNT_CONTAINER_OF(req, struct shunt_conn, _sreq);
    (void)status;
    if (c->closing)
        return;
    c->shut_done = 1;
    if (c->ops->on_shut != NULL)
        c->ops->on_shut(c);
}

void shunt_conn_shutdown(struct shunt_conn *c)
{
    if (c->wr_shut || c->closing || !c->connected)
        return;
    c->wr_shut = 1;
    /* TLS layer: queue close_notify (shunt_tls_close_notify) and send it first. */
    if (uv_shutdown(&c->_sreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
        c->shut_done = 1; /* the peer is gone already */
}

/* ----------------------------------------------------------------------- TLS layer */

/* The INTERCEPT part adds shunt_conn_start_tls() here (issue 12, decision 1): bytes already
 * in c->in become the first ciphertext; alloc_cb then reads into the layer's buffer,
 * read_cb feeds the engine and decrypts into c->in (in_reserve()) before on_data;
 * shunt_conn_send() encrypts and raw_send()s the records; shunt_conn_shutdown() sends
 * close_notify first; peer_end() tells on_eof whether close_notify came first. */
