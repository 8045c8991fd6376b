/* tests/unit/net/test_conn_tls.c - the TLS layer of the connection object on a real loop:
 * two shunt_conn on loopback, one with a server engine (leaves from a CA made for the test)
 * and one with a client engine, exchange data both ways (more than an input buffer holds),
 * and end with close_notify, with a truncation, or with a failed handshake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/ca.h"
#include "net/conn.h"
#include "net/connect.h"
#include "net/tls.h"

static char dir[] = "/tmp/shunt-test-conn-tls.XXXXXX";
static struct shunt_ca *ca;
static struct shunt_tls_ctx *server_ctx, *client_ctx, *untrusting_ctx;

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    setenv("XDG_DATA_HOME", dir, 1);
    char empty[4200], ca_pem[4200], err[512] = "";
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    fclose(fopen(empty, "w"));
    setenv("SSL_CERT_FILE", empty, 1);
    setenv("SSL_CERT_DIR", dir, 1);
    if (shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)) != 0)
        return -1;
    snprintf(ca_pem, sizeof(ca_pem), "%s/shunt/ca.pem", dir);
    server_ctx = shunt_tls_ctx_server(ca, err, sizeof(err));
    client_ctx = shunt_tls_ctx_client(ca_pem, 0, err, sizeof(err));
    untrusting_ctx = shunt_tls_ctx_client(NULL, 0, err, sizeof(err));
    return server_ctx && client_ctx && untrusting_ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    shunt_tls_ctx_free(server_ctx);
    shunt_tls_ctx_free(client_ctx);
    shunt_tls_ctx_free(untrusting_ctx);
    shunt_ca_free(ca);
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* One side of the test: a conn and what happened to it. */
struct side {
    struct shunt_conn c;
    struct shunt_tls *tls;
    int tls_done, tls_ok, eof, eof_how, closed;
    char error[256];
    char *got;
    size_t n_got, cap_got;
    size_t consume_limit; /* 0: consume everything at once; else leave the rest (full) */
};

static uv_loop_t loop;
static uv_tcp_t listener;
static struct shunt_conn_pool pool;
static struct side srv, cli;
static const struct shunt_tls_ctx *want_client_ctx;
static int close_how; /* 0 close_notify then close, 1 truncate (close without close_notify) */
static int hold_server;  /* the server's owner does not consume: the input fills up */
static size_t held_cap;  /* the server's input buffer when reading stopped, full */

static void on_data(struct shunt_conn *c);

static struct side *side_of(struct shunt_conn *c)
{
    return c == &srv.c ? &srv : &cli;
}

static void on_data(struct shunt_conn *c)
{
    struct side *s = side_of(c);
    if (c == &srv.c && hold_server)
        return;
    size_t n = shunt_conn_avail(c);
    if (s->n_got + n > s->cap_got) {
        s->cap_got = (s->n_got + n) * 2;
        s->got = realloc(s->got, s->cap_got);
    }
    memcpy(s->got + s->n_got, shunt_conn_data(c), n);
    s->n_got += n;
    shunt_conn_consume(c, n);
}

static void on_eof(struct shunt_conn *c, enum shunt_conn_how how, int err)
{
    (void)err;
    struct side *s = side_of(c);
    s->eof = 1;
    s->eof_how = how;
    shunt_conn_close(c, 0);
}

static void on_closed(struct shunt_conn *c)
{
    side_of(c)->closed = 1;
    if (c == &srv.c)
        uv_close((uv_handle_t *)&listener, NULL);
}

static const struct shunt_conn_ops ops = {on_data, on_eof, NULL, NULL, NULL, NULL, on_closed};

static void on_tls_done(struct shunt_conn *c, int ok)
{
    struct side *s = side_of(c);
    s->tls_done++;
    s->tls_ok = ok;
    snprintf(s->error, sizeof(s->error), "%s", shunt_tls_error(shunt_conn_tls(c)));
    if (!ok) {
        shunt_conn_close(c, 0);
        return;
    }
    if (c == &cli.c) { /* the client sends a big request */
        size_t n = 300000;
        char *p = malloc(n);
        for (size_t i = 0; i < n; i++)
            p[i] = (char)('a' + i % 26);
        uv_buf_t b = uv_buf_init(p, (unsigned)n);
        assert_int_equal(shunt_conn_send(c, &b, 1), 0);
        free(p);
    }
}

static void on_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(shunt_conn_init(&srv.c, &loop, &ops, &pool, 1, 2), 0);
    assert_int_equal(shunt_conn_accept(&srv.c, l), 0);
    srv.tls = shunt_tls_new_server(server_ctx, "localhost");
    assert_int_equal(shunt_conn_start_tls(&srv.c, srv.tls, on_tls_done), 0);
}

static void on_connected(struct shunt_conn *c, const struct shunt_connect_result *r, void *ud)
{
    (void)ud;
    assert_int_equal(r->status, 0);
    cli.tls = shunt_tls_new_client((struct shunt_tls_ctx *)want_client_ctx, "localhost", NULL);
    assert_int_equal(shunt_conn_start_tls(c, cli.tls, on_tls_done), 0);
}

/* Runs the loop until the server got <want> bytes (or both closed), then ends as
 * close_how says, and runs until both are closed. */
static void run(size_t want)
{
    memset(&srv, 0, sizeof(srv));
    memset(&cli, 0, sizeof(cli));
    assert_int_equal(uv_loop_init(&loop), 0);
    shunt_conn_pool_init(&pool, 16384, 4);
    assert_int_equal(uv_tcp_init(&loop, &listener), 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_accept), 0);
    int len = sizeof(a);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&a, &len);
    assert_int_equal(shunt_conn_init(&cli.c, &loop, &ops, &pool, 1, 2), 0);
    struct shunt_connect_opts o = {.host = "127.0.0.1", .port = ntohs(a.sin_port),
                                   .timeout_ms = 5000, .cb = on_connected};
    assert_int_equal(shunt_connect_start(&cli.c, &o, NULL), 0);
    int ended = 0;
    for (int i = 0; i < 100000 && !(srv.closed && cli.closed); i++) {
        uv_run(&loop, UV_RUN_ONCE);
        if (hold_server && srv.c.in.base != NULL && srv.c.in.len - srv.c.in.off >= 300000)
            fail_msg("the server's input took all 300000 bytes: reading never stopped");
        if (hold_server && !srv.c.reading && shunt_conn_in_full(&srv.c)) {
            held_cap = srv.c.in.cap; /* the owner consumes now, and reads again */
            hold_server = 0;
            on_data(&srv.c);
            shunt_conn_read_start(&srv.c);
        }
        if (!ended && srv.n_got >= want && want > 0) {
            ended = 1;
            uv_buf_t b = uv_buf_init("bye", 3); /* an answer, then the end */
            assert_int_equal(shunt_conn_send(&srv.c, &b, 1), 0);
            if (close_how == 0)
                shunt_conn_shutdown(&srv.c);
            else
                shunt_conn_shutdown_truncated(&srv.c);
        }
    }
    assert_true(srv.closed && cli.closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    shunt_conn_pool_dispose(&pool);
}

static void test_data_both_ways_then_close_notify(void **state)
{
    (void)state;
    want_client_ctx = client_ctx;
    close_how = 0;
    hold_server = 0;
    run(300000);
    assert_int_equal(srv.tls_done, 1);
    assert_int_equal(cli.tls_done, 1);
    assert_true(srv.tls_ok && cli.tls_ok);
    assert_int_equal(srv.n_got, 300000);
    for (size_t i = 0; i < srv.n_got; i++)
        if (srv.got[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    assert_int_equal(cli.n_got, 3);
    assert_memory_equal(cli.got, "bye", 3);
    /* the client read close_notify first: its end of stream, not a truncation */
    assert_int_equal(cli.eof_how, SHUNT_CONN_HOW_FIN);
    assert_true(cli.c.tls_close & SHUNT_CONN_TLS_NOTIFY_IN);
    assert_false(cli.c.tls_close & SHUNT_CONN_TLS_TRUNCATED);
    assert_true(cli.c.tls_close & SHUNT_CONN_TLS_USED);
    assert_true(srv.c.tls_close & SHUNT_CONN_TLS_NOTIFY_OUT);
    assert_true(srv.c.bytes_in > 300000); /* TCP bytes: records and their overhead */
    free(srv.got);
    free(cli.got);
}

static void test_a_full_input_stops_reading_until_the_owner_consumes(void **state)
{
    (void)state;
    want_client_ctx = client_ctx;
    close_how = 0;
    hold_server = 1;
    held_cap = 0;
    run(300000);
    /* reading stopped with the input at most one read's plaintext past its maximum */
    assert_true(held_cap >= 16384 && held_cap <= 16384 + 2 * 16640);
    assert_int_equal(srv.n_got, 300000); /* and everything came once it consumed */
    for (size_t i = 0; i < srv.n_got; i++)
        if (srv.got[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    free(srv.got);
    free(cli.got);
}

static void test_truncation_is_told_apart(void **state)
{
    (void)state;
    want_client_ctx = client_ctx;
    close_how = 1;
    hold_server = 0;
    run(300000);
    assert_int_equal(cli.n_got, 3);
    assert_int_equal(cli.eof_how, SHUNT_CONN_HOW_FIN);
    assert_false(cli.c.tls_close & SHUNT_CONN_TLS_NOTIFY_IN);
    assert_true(cli.c.tls_close & SHUNT_CONN_TLS_TRUNCATED);
    assert_false(srv.c.tls_close & SHUNT_CONN_TLS_NOTIFY_OUT);
    free(srv.got);
    free(cli.got);
}

static void test_a_failed_handshake_is_told_once_on_both_sides(void **state)
{
    (void)state;
    want_client_ctx = untrusting_ctx; /* does not trust the test's CA */
    close_how = 0;
    hold_server = 0;
    run(0);
    assert_int_equal(cli.tls_done, 1);
    assert_false(cli.tls_ok);
    assert_string_equal(cli.error, "certificate verify failed: unable to get local issuer certificate");
    assert_int_equal(srv.tls_done, 1);
    assert_false(srv.tls_ok);
    assert_string_equal(srv.error, "the client rejected shunt's certificate (alert 48: unknown ca)");
    free(srv.got);
    free(cli.got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_both_ways_then_close_notify),
        cmocka_unit_test(test_a_full_input_stops_reading_until_the_owner_consumes),
        cmocka_unit_test(test_truncation_is_told_apart),
        cmocka_unit_test(test_a_failed_handshake_is_told_once_on_both_sides),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
