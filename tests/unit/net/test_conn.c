/* tests/unit/net/test_conn.c - the connection object on a real loop, on loopback: FIN and
 * reset told apart, a send larger than the socket buffers queued then drained, the close
 * callback once, input buffers back to the pool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mem.h"
#include "net/conn.h"

#define PEER 1 /* closer codes of these tests */
#define SELF 2

/* One accepted connection and what its callbacks saw. */
struct fx {
    uv_loop_t loop;
    uv_tcp_t listener;
    struct shunt_conn_pool pool;
    struct shunt_conn conn;
    int accepted;
    int peer;      /* the other end: a plain blocking socket */
    size_t data;   /* bytes seen by on_data */
    int n_data, n_eof, n_drained, n_closed, n_shut, n_after_close;
    enum shunt_conn_how eof_how;
    int eof_err;
    int consume;   /* on_data consumes what came */
};

static struct fx *fx_of(struct shunt_conn *c)
{
    return SHUNT_CONTAINER_OF(c, struct fx, conn);
}

static void on_data(struct shunt_conn *c)
{
    struct fx *f = fx_of(c);
    f->n_data++;
    f->n_after_close += c->closing;
    f->data = shunt_conn_avail(c);
    if (f->consume) {
        f->data = 0;
        shunt_conn_consume(c, shunt_conn_avail(c));
    }
    uv_stop(c->tcp.loop);
}

static void on_eof(struct shunt_conn *c, enum shunt_conn_how how, int err)
{
    struct fx *f = fx_of(c);
    f->n_eof++;
    f->n_after_close += c->closing;
    f->eof_how = how;
    f->eof_err = err;
    uv_stop(c->tcp.loop);
}

static void on_drained(struct shunt_conn *c)
{
    struct fx *f = fx_of(c);
    f->n_drained++;
    f->n_after_close += c->closing;
    uv_stop(c->tcp.loop);
}

static void on_shut(struct shunt_conn *c)
{
    fx_of(c)->n_shut++;
    uv_stop(c->tcp.loop);
}

static void on_closed(struct shunt_conn *c)
{
    fx_of(c)->n_closed++;
}

static const struct shunt_conn_ops ops = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drained = on_drained,
    .on_shut = on_shut,
    .on_closed = on_closed,
};

static void on_connection(uv_stream_t *l, int status)
{
    struct fx *f = SHUNT_CONTAINER_OF(l, struct fx, listener);
    assert_int_equal(status, 0);
    assert_int_equal(shunt_conn_accept(&f->conn, l), 0);
    f->accepted = 1;
    uv_stop(l->loop);
}

/* A loop, a listener on 127.0.0.1, a peer socket (with a receive buffer of <rcvbuf> bytes
 * when not 0) connected to it, and the accepted side as a struct shunt_conn. */
static struct fx *fx_new(int rcvbuf)
{
    struct fx *f = shunt_xcalloc(sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    shunt_conn_pool_init(&f->pool, 4096, 4);
    assert_int_equal(shunt_conn_init(&f->conn, &f->loop, &ops, &f->pool, PEER, SELF), 0);
    f->conn.in_max = 16384;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_init(&f->loop, &f->listener), 0);
    assert_int_equal(uv_tcp_bind(&f->listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 8, on_connection), 0);
    int len = sizeof(sa);
    assert_int_equal(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len), 0);
    f->peer = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->peer >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(f->peer, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    assert_int_equal(connect(f->peer, (struct sockaddr *)&sa, sizeof(sa)), 0);
    while (!f->accepted)
        uv_run(&f->loop, UV_RUN_ONCE);
    return f;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void fx_free(struct fx *f)
{
    shunt_conn_close(&f->conn, 0);
    uv_close((uv_handle_t *)&f->listener, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_walk(&f->loop, close_walk, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(f->n_closed, 1);
    if (f->peer >= 0)
        close(f->peer);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
}

/* Runs the loop until a callback stops it (each one does). */
static void run(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void test_data_lands_in_the_input_and_the_buffer_goes_back(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_read_start(&f->conn);
    assert_int_equal(write(f->peer, "hello", 5), 5);
    run(f);
    assert_int_equal(f->n_data, 1);
    assert_int_equal(shunt_conn_avail(&f->conn), 5);
    assert_memory_equal(shunt_conn_data(&f->conn), "hello", 5);
    assert_int_equal(f->conn.bytes_in, 5);
    assert_int_equal(f->pool.n, 0); /* the buffer is the connection's */
    shunt_conn_consume(&f->conn, 5);
    assert_null(f->conn.in.base);
    assert_int_equal(f->pool.n, 1); /* ... and back in the pool once empty */
    fx_free(f);
}

static void test_fin_is_told_as_fin(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_read_start(&f->conn);
    assert_int_equal(shutdown(f->peer, SHUT_WR), 0);
    run(f);
    assert_int_equal(f->n_eof, 1);
    assert_int_equal(f->eof_how, SHUNT_CONN_HOW_FIN);
    assert_true(f->conn.rd_eof);
    assert_int_equal(f->conn.closer, PEER);
    assert_int_equal(f->conn.how, SHUNT_CONN_HOW_FIN);
    fx_free(f);
}

static void test_reset_is_told_as_reset(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_read_start(&f->conn);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(f->peer);
    f->peer = -1;
    run(f);
    assert_int_equal(f->n_eof, 1);
    assert_int_equal(f->eof_how, SHUNT_CONN_HOW_RST);
    assert_int_equal(f->eof_err, UV_ECONNRESET);
    assert_false(f->conn.rd_eof);
    assert_int_equal(f->conn.closer, PEER);
    assert_int_equal(f->conn.how, SHUNT_CONN_HOW_RST);
    fx_free(f);
}

/* A reset whose error a failed write consumed first: the read then returns a plain end of
 * file, and only the TCP state tells it was a reset. */
static void test_reset_consumed_by_a_write_is_still_a_reset(void **state)
{
    struct fx *f = fx_new(0);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(f->peer);
    f->peer = -1;
    /* take the pending ECONNRESET with a write of our own, behind the object's back */
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&f->conn.tcp, &fd), 0);
    for (int i = 0; i < 1000; i++) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
            break;
    }
    shunt_conn_read_start(&f->conn);
    run(f);
    assert_int_equal(f->n_eof, 1);
    assert_int_equal(f->eof_how, SHUNT_CONN_HOW_RST);
    fx_free(f);
}

struct reader {
    int fd;
    size_t want, got;
    int pattern_ok;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    char buf[65536];
    r->pattern_ok = 1;
    while (r->got < r->want) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (char)((r->got + (size_t)i) % 251))
                r->pattern_ok = 0;
        r->got += (size_t)n;
    }
    return NULL;
}

static void test_large_send_is_queued_then_drained(void **state)
{
    struct fx *f = fx_new(16384);
    size_t total = 8u << 20; /* far more than the socket buffers hold */
    char *big = malloc(total);
    for (size_t i = 0; i < total; i++)
        big[i] = (char)(i % 251);
    uv_buf_t b[2] = {uv_buf_init(big, (unsigned)(total / 2)),
                     uv_buf_init(big + total / 2, (unsigned)(total - total / 2))};
    assert_int_equal(shunt_conn_send(&f->conn, b, 2), 0);
    assert_true(shunt_conn_queued(&f->conn) > 0);
    assert_int_equal(f->conn.bytes_out, total);
    memset(big, 0, total); /* the remainder was copied: the caller's bytes are free */
    free(big);
    struct reader r = {f->peer, total, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_all, &r), 0);
    run(f);
    assert_int_equal(f->n_drained, 1);
    assert_int_equal(shunt_conn_queued(&f->conn), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.got, total);
    assert_true(r.pattern_ok);
    fx_free(f);
}

/* The lab origin's case: a small head copied, a large static body referred to. */
static void test_static_send_copies_only_the_head(void **state)
{
    struct fx *f = fx_new(16384);
    size_t total = 4u << 20;
    static char body[4u << 20];
    for (size_t i = 0; i < total; i++)
        body[i] = (char)(i % 251);
    char head[100];
    memcpy(head, body, sizeof(head));
    uv_buf_t b[3] = {uv_buf_init(head, sizeof(head)),
                     uv_buf_init(body + sizeof(head), (unsigned)(total / 2 - sizeof(head))),
                     uv_buf_init(body + total / 2, (unsigned)(total - total / 2))};
    assert_int_equal(shunt_conn_send_static(&f->conn, b, 3, 1), 0);
    assert_true(shunt_conn_queued(&f->conn) > 0);
    memset(head, 0, sizeof(head)); /* copied if it was not sent */
    struct reader r = {f->peer, total, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_all, &r), 0);
    run(f);
    assert_int_equal(f->n_drained, 1);
    pthread_join(th, NULL);
    assert_int_equal(r.got, total);
    assert_true(r.pattern_ok);
    fx_free(f);
}

static void test_shutdown_sends_fin_once(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_shutdown(&f->conn);
    shunt_conn_shutdown(&f->conn);
    run(f);
    assert_int_equal(f->n_shut, 1);
    assert_true(f->conn.shut_done);
    char c;
    assert_int_equal(read(f->peer, &c, 1), 0); /* the peer sees our FIN */
    fx_free(f);
}

static void test_close_calls_back_once_and_nothing_after(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_read_start(&f->conn);
    assert_int_equal(write(f->peer, "late", 4), 4);
    shunt_conn_close(&f->conn, 1);
    shunt_conn_close(&f->conn, 0);
    uv_close((uv_handle_t *)&f->listener, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing stops it but the end of the handles */
    assert_int_equal(f->n_closed, 1);
    assert_int_equal(f->n_data + f->n_eof + f->n_drained, 0);
    assert_int_equal(f->conn.closer, SELF);
    assert_int_equal(f->conn.how, SHUNT_CONN_HOW_RST);
    /* a reset close: the peer reads ECONNRESET, not an end of file */
    char c;
    assert_true(read(f->peer, &c, 1) < 0);
    f->n_closed = 0; /* fx_free closes again: a no-op that must not call back */
    shunt_conn_close(&f->conn, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_closed, 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->peer);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
}

static void test_full_input_stops_reading_until_consumed(void **state)
{
    struct fx *f = fx_new(0);
    shunt_conn_read_start(&f->conn);
    char chunk[32768];
    memset(chunk, 'a', sizeof(chunk));
    assert_int_equal(write(f->peer, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    while (!shunt_conn_in_full(&f->conn))
        run(f);
    assert_int_equal(f->conn.in.cap, 16384); /* grown to in_max, no further */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(f->conn.reading); /* stopped itself: no room */
    f->consume = 1;
    shunt_conn_consume(&f->conn, shunt_conn_avail(&f->conn));
    shunt_conn_read_start(&f->conn);
    while (f->conn.bytes_in < sizeof(chunk))
        run(f);
    assert_int_equal(f->conn.bytes_in, sizeof(chunk));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_lands_in_the_input_and_the_buffer_goes_back),
        cmocka_unit_test(test_fin_is_told_as_fin),
        cmocka_unit_test(test_reset_is_told_as_reset),
        cmocka_unit_test(test_reset_consumed_by_a_write_is_still_a_reset),
        cmocka_unit_test(test_large_send_is_queued_then_drained),
        cmocka_unit_test(test_static_send_copies_only_the_head),
        cmocka_unit_test(test_shutdown_sends_fin_once),
        cmocka_unit_test(test_close_calls_back_once_and_nothing_after),
        cmocka_unit_test(test_full_input_stops_reading_until_consumed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
