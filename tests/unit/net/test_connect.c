/* tests/unit/net/test_connect.c - the connect helper on a real loop, on loopback: the next
 * address after a refused one, the timeout once, a cancel that calls nothing back, the
 * owner's check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mem.h"
#include "net/connect.h"

struct fx {
    uv_loop_t loop;
    struct shunt_conn_pool pool;
    struct shunt_conn conn;
    int n_cb, n_closed, n_checks;
    struct shunt_connect_result res;
    int refuse_check; /* the check refuses every address with this (0: none) */
};

static struct fx *fx_of(struct shunt_conn *c)
{
    return SHUNT_CONTAINER_OF(c, struct fx, conn);
}

static void on_data(struct shunt_conn *c) {}
static void on_eof(struct shunt_conn *c, enum shunt_conn_how how, int err) {}
static void on_closed(struct shunt_conn *c)
{
    fx_of(c)->n_closed++;
}

static const struct shunt_conn_ops ops = {
    .on_data = on_data, .on_eof = on_eof, .on_closed = on_closed};

static void done_cb(struct shunt_conn *c, const struct shunt_connect_result *r, void *ud)
{
    struct fx *f = ud;
    assert_ptr_equal(c, &f->conn);
    f->n_cb++;
    f->res = *r;
}

static int check_cb(struct shunt_conn *c, const struct sockaddr *sa, void *ud)
{
    struct fx *f = ud;
    f->n_checks++;
    return f->refuse_check;
}

static struct fx *fx_new(void)
{
    struct fx *f = shunt_xcalloc(sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    shunt_conn_pool_init(&f->pool, 4096, 1);
    assert_int_equal(shunt_conn_init(&f->conn, &f->loop, &ops, &f->pool, 1, 2), 0);
    return f;
}

static void fx_free(struct fx *f)
{
    shunt_conn_close(&f->conn, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
}

/* A listening socket on 127.0.0.1 with <backlog>; its address in *<sa>. */
static int listener(struct sockaddr_storage *sa, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(sa, 0, sizeof(*sa));
    uv_ip4_addr("127.0.0.1", 0, in);
    assert_int_equal(bind(fd, (struct sockaddr *)in, sizeof(*in)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t len = sizeof(*in);
    assert_int_equal(getsockname(fd, (struct sockaddr *)in, &len), 0);
    return fd;
}

/* An address of 127.0.0.1 where nothing listens (connects are refused). */
static void closed_port(struct sockaddr_storage *sa)
{
    int fd = listener(sa, 1);
    close(fd);
}

/* Runs the loop until the connect called back. */
static void wait_cb(struct fx *f)
{
    while (f->n_cb == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_connects_to_an_address(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa;
    int l = listener(&sa, 8);
    struct shunt_connect_opts o = {.addrs = &sa, .n_addrs = 1, .cb = done_cb, .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    assert_true(shunt_conn_connecting(&f->conn));
    assert_int_equal(f->n_cb, 0); /* never from inside the call */
    wait_cb(f);
    assert_int_equal(f->res.status, 0);
    assert_int_equal(f->res.stage, SHUNT_CONNECT_CONNECT);
    assert_true(f->conn.connected);
    assert_false(shunt_conn_connecting(&f->conn));
    fx_free(f);
    close(l);
}

static void test_falls_back_to_the_second_address(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa[2];
    closed_port(&sa[0]);
    int l = listener(&sa[1], 8);
    struct shunt_connect_opts o = {.addrs = sa, .n_addrs = 2, .check = check_cb, .cb = done_cb,
                                   .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    wait_cb(f);
    assert_int_equal(f->n_cb, 1);
    assert_int_equal(f->res.status, 0);
    assert_int_equal(f->n_checks, 2);
    assert_memory_equal(&f->res.addr, &sa[1], sizeof(struct sockaddr_in));
    assert_true(f->conn.connected);
    /* the connection is the second socket, and works */
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    assert_int_equal(uv_tcp_getpeername(&f->conn.tcp, (struct sockaddr *)&peer, &len), 0);
    assert_memory_equal(&peer, &sa[1], sizeof(struct sockaddr_in));
    fx_free(f);
    close(l);
}

static void test_every_address_refused_calls_back_once(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa[2];
    closed_port(&sa[0]);
    closed_port(&sa[1]);
    struct shunt_connect_opts o = {.addrs = sa, .n_addrs = 2, .cb = done_cb, .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until nothing is left to do */
    assert_int_equal(f->n_cb, 1);
    assert_int_equal(f->res.status, UV_ECONNREFUSED);
    assert_int_equal(f->res.stage, SHUNT_CONNECT_CONNECT);
    assert_false(f->conn.connected);
    fx_free(f);
}

/* A listener whose accept queue is full drops further SYNs: a connect that hangs. */
static int hanging_listener(struct sockaddr_storage *sa, int fillers[4])
{
    int l = listener(sa, 0);
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fillers[i], (struct sockaddr *)sa, sizeof(struct sockaddr_in));
    }
    return l;
}

static void test_timeout_fires_once(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa;
    int fillers[4];
    int l = hanging_listener(&sa, fillers);
    struct shunt_connect_opts o = {.addrs = &sa, .n_addrs = 1, .timeout_ms = 100, .cb = done_cb,
                                   .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    wait_cb(f);
    assert_int_equal(f->res.status, UV_ETIMEDOUT);
    assert_int_equal(f->res.stage, SHUNT_CONNECT_TIMEOUT);
    assert_false(f->conn.connected);
    fx_free(f); /* closing ends the pending connect: no second callback */
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(l);
}

static void test_close_cancels_without_a_callback(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa;
    int fillers[4];
    int l = hanging_listener(&sa, fillers);
    struct shunt_connect_opts o = {.addrs = &sa, .n_addrs = 1, .timeout_ms = 50, .cb = done_cb,
                                   .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    shunt_conn_close(&f->conn, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the timer's time passes too: it was stopped */
    assert_int_equal(f->n_cb, 0);
    assert_int_equal(f->n_closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(l);
}

static void test_close_during_lookup_cancels(void **state)
{
    struct fx *f = fx_new();
    struct shunt_connect_opts o = {.host = "localhost", .port = 9, .cb = done_cb, .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    shunt_conn_close(&f->conn, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the lookup ends (or is dropped), nothing calls */
    assert_int_equal(f->n_cb, 0);
    assert_int_equal(f->n_closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
}

static void test_close_between_two_addresses(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa[2];
    closed_port(&sa[0]);
    closed_port(&sa[1]);
    struct shunt_connect_opts o = {.addrs = sa, .n_addrs = 2, .cb = done_cb, .ud = f,
                                   .check = check_cb};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    /* run until the first address failed and the socket is being replaced */
    while (!f->conn._reopen && f->n_checks < 2)
        uv_run(&f->loop, UV_RUN_ONCE);
    shunt_conn_close(&f->conn, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_cb, 0);
    assert_int_equal(f->n_closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    shunt_conn_pool_dispose(&f->pool);
    free(f);
}

static void test_check_refusing_the_first_address_fails_at_once(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa;
    int l = listener(&sa, 8);
    f->refuse_check = 403;
    struct shunt_connect_opts o = {.addrs = &sa, .n_addrs = 1, .check = check_cb, .cb = done_cb,
                                   .ud = f};
    struct shunt_connect_result r;
    assert_true(shunt_connect_start(&f->conn, &o, &r) < 0);
    assert_int_equal(r.stage, SHUNT_CONNECT_CHECK);
    assert_int_equal(r.status, 403);
    assert_false(shunt_conn_connecting(&f->conn));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->n_cb, 0); /* an error returned is never called back */
    fx_free(f);
    close(l);
}

static void test_name_is_resolved(void **state)
{
    struct fx *f = fx_new();
    struct sockaddr_storage sa;
    int l = listener(&sa, 8);
    int port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    /* "localhost" may resolve to ::1 first, where nothing listens: the fallback covers it */
    struct shunt_connect_opts o = {.host = "localhost", .port = port, .timeout_ms = 5000,
                                   .cb = done_cb, .ud = f};
    assert_int_equal(shunt_connect_start(&f->conn, &o, NULL), 0);
    wait_cb(f);
    assert_int_equal(f->res.status, 0);
    assert_true(f->res.t_resolved_us > 0);
    fx_free(f);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connects_to_an_address),
        cmocka_unit_test(test_falls_back_to_the_second_address),
        cmocka_unit_test(test_every_address_refused_calls_back_once),
        cmocka_unit_test(test_timeout_fires_once),
        cmocka_unit_test(test_close_cancels_without_a_callback),
        cmocka_unit_test(test_close_during_lookup_cancels),
        cmocka_unit_test(test_close_between_two_addresses),
        cmocka_unit_test(test_check_refusing_the_first_address_fails_at_once),
        cmocka_unit_test(test_name_is_resolved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
