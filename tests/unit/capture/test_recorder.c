/* tests/unit/capture/test_recorder.c - the recorder on synthetic proxy events: what a TLS
 * connection leaves in a real capture file (the tls rows of both sides, the close bits, the
 * https URL of an origin-form request, the TLS time inside connect), read back with SQLite;
 * and a version-1 capture opened to write is migrated, to read is shadowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/db.h"
#include "capture/recorder.h"
#include "http/parser.h"

static char path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/shunt-test-recorder-%d.db", (int)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[300];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    return 0;
}

/* Runs <sql> on the capture and returns its first row's first column as text (a static
 * buffer; "NULL" for NULL, "" when no row). */
static const char *q(const char *sql)
{
    static char out[1024];
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, sizeof(out), "%s",
                 sqlite3_column_type(st, 0) == SQLITE_NULL ? "NULL"
                                                           : (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

struct req {
    char buf[512];
    struct shunt_http_head head;
    struct shunt_http_header fields[16];
    struct shunt_slice part;
};

static void parse(struct req *r, const char *text)
{
    snprintf(r->buf, sizeof(r->buf), "%s", text);
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    lim.max_headers = 16;
    struct shunt_http_error err;
    assert_true(shunt_http_parse_request(r->buf, strlen(r->buf), 0, &r->head, r->fields, 16, &lim,
                                         &err) > 0);
    r->part = shunt_slice_make(r->buf, strlen(r->buf));
}

/* One intercepted connection, in the order the proxy reports it: the CONNECT (answered by
 * shunt), the client's TLS, a request inside it in origin-form (<with_host> 0: without Host;
 * 2: in absolute-form; 3: with a Host naming another host, without port; 4: the CONNECT to
 * port 443 and a Host naming another host), its upstream with TLS, the end. */
static void record_tls_connection(int with_host)
{
    struct shunt_recorder_config cfg = {.path = path, .command_line = "test",
                                        .body_limit = 1024};
    struct shunt_recorder *rc;
    char err[256];
    assert_int_equal(shunt_recorder_open(&cfg, &rc, err, sizeof(err)), 0);
    void *slot = NULL;
    struct shunt_event ev;
#define EV(t)                                                                                      \
    do {                                                                                           \
        memset(&ev, 0, sizeof(ev));                                                                \
        ev.type = (t);                                                                             \
        ev.conn_id = 7;                                                                            \
        ev.slot = &slot;                                                                           \
        ev.time_us = 1000;                                                                         \
    } while (0)
    EV(SHUNT_EV_CONN_OPEN);
    ev.peer_addr = "127.0.0.1";
    ev.peer_port = 50001;
    ev.local_addr = "127.0.0.1";
    ev.local_port = 8888;
    shunt_recorder_on_event(&ev, rc);

    struct req connect;
    parse(&connect, with_host == 4 ? "CONNECT Shop.Test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n"
                                   : "CONNECT Shop.Test:8443 HTTP/1.1\r\nHost: shop.test:8443\r\n\r\n");
    EV(SHUNT_EV_REQUEST_HEAD);
    ev.exchange = 1;
    ev.raw = connect.part;
    ev.head = &connect.head;
    ev.scheme = "http";
    shunt_recorder_on_event(&ev, rc);
    EV(SHUNT_EV_EXCHANGE_DONE);
    ev.exchange = 1;
    ev.method = "CONNECT";
    ev.url = with_host == 4 ? "Shop.Test:443" : "Shop.Test:8443";
    ev.status = 200;
    ev.tunnel = 1;
    ev.scheme = "http";
    ev.t_dns_us = ev.t_connect_us = -1;
    ev.t_ssl_us = 0; /* a proxy that does not fill it: not a TLS time of 0 */
    shunt_recorder_on_event(&ev, rc);

    struct shunt_tls_facts client = {
        .side = 0, .sni = "shop.test", .alpn = "http/1.1", .version = "TLSv1.3",
        .cipher = "TLS_AES_128_GCM_SHA256", .cert_subject = "CN=shop.test",
        .cert_issuer = "CN=shunt CA (box)", .cert_san = "DNS:shop.test", .cert_sha256 = "aa:bb",
        .cert_not_before = 1795690800, .cert_not_after = 1798282800, .handshake_us = 2100};
    EV(SHUNT_EV_TLS);
    ev.tls = &client;
    shunt_recorder_on_event(&ev, rc);

    struct req get;
    parse(&get, with_host == 2 ? "GET https://shop.test:8443/cart?x=1 HTTP/1.1\r\nHost: "
                                 "shop.test:8443\r\n\r\n"
                : with_host >= 3 ? "GET /cart?x=1 HTTP/1.1\r\nHost: Bank.Example\r\n\r\n"
                : with_host ? "GET /cart?x=1 HTTP/1.1\r\nHost: shop.test:8443\r\n\r\n"
                            : "GET /cart?x=1 HTTP/1.0\r\n\r\n");
    EV(SHUNT_EV_UPSTREAM_OPEN);
    ev.upstream_id = 3;
    ev.peer_addr = "127.0.0.1";
    ev.peer_port = 8443;
    ev.local_port = 40001;
    ev.origin_host = "shop.test";
    ev.origin_port = 8443;
    shunt_recorder_on_event(&ev, rc);
    /* a certificate field as a hostile server may write it: long, with control bytes */
    char subject[6000];
    memset(subject, 'A', sizeof(subject) - 1);
    subject[0] = '\x1b';
    subject[sizeof(subject) - 1] = '\0';
    struct shunt_tls_facts up = {
        .side = 1, .sni = "shop.test", .alpn = "http/1.1", .version = "TLSv1.2",
        .cipher = "ECDHE-RSA-AES128-GCM-SHA256", .cert_subject = subject,
        .cert_issuer = "CN=Test CA", .cert_san = "", .cert_sha256 = "cc:dd",
        .handshake_us = 6500, .verify_result = 0};
    EV(SHUNT_EV_TLS);
    ev.upstream_id = 3;
    ev.tls = &up;
    shunt_recorder_on_event(&ev, rc);

    struct shunt_ev_iov sent = {&get.part, 1};
    EV(SHUNT_EV_REQUEST_HEAD);
    ev.exchange = 2;
    ev.upstream_id = 3;
    ev.raw = get.part;
    ev.head = &get.head;
    ev.sent = sent;
    ev.scheme = "https";
    shunt_recorder_on_event(&ev, rc);
    EV(SHUNT_EV_EXCHANGE_DONE);
    ev.exchange = 2;
    ev.upstream_id = 3;
    ev.method = "GET";
    ev.url = "/cart?x=1";
    ev.status = 0;
    ev.scheme = "https";
    ev.t_dns_us = 100;
    ev.t_connect_us = 3000;
    ev.t_ssl_us = 6500;
    ev.t_send_us = ev.t_wait_us = ev.t_receive_us = 0;
    ev.error = "upstream closed";
    shunt_recorder_on_event(&ev, rc);

    EV(SHUNT_EV_UPSTREAM_CLOSE);
    ev.upstream_id = 3;
    ev.closer = SHUNT_CLOSER_SERVER;
    ev.how = SHUNT_CLOSE_FIN;
    ev.tls_close = SHUNT_TLS_USED | SHUNT_TLS_TRUNCATED;
    shunt_recorder_on_event(&ev, rc);
    EV(SHUNT_EV_CONN_CLOSE);
    ev.closer = SHUNT_CLOSER_CLIENT;
    ev.how = SHUNT_CLOSE_FIN;
    ev.tls_close = SHUNT_TLS_USED | SHUNT_TLS_CLOSE_NOTIFY_IN | SHUNT_TLS_CLOSE_NOTIFY_OUT;
    shunt_recorder_on_event(&ev, rc);
    assert_null(slot);
    assert_int_equal(shunt_recorder_close(rc), 0);
#undef EV
}

static void tls_handshakes_are_rows_of_both_sides(void **state)
{
    (void)state;
    record_tls_connection(1);
    assert_string_equal(q("PRAGMA user_version"), "2");
    assert_string_equal(q("SELECT count(*) FROM tls"), "2");
    assert_string_equal(q("SELECT sni || ' ' || alpn || ' ' || version || ' ' || cipher || ' ' ||"
                          " cert_subject || ' ' || cert_issuer || ' ' || cert_san || ' ' ||"
                          " cert_sha256 || ' ' || cert_not_before || ' ' || cert_not_after ||"
                          " ' ' || handshake_us || ' ' || conn_id FROM tls WHERE side = 0"
                          " AND upstream_id IS NULL"),
                        "shop.test http/1.1 TLSv1.3 TLS_AES_128_GCM_SHA256 CN=shop.test "
                        "CN=shunt CA (box) DNS:shop.test aa:bb 1795690800 1798282800 2100 7");
    assert_string_equal(q("SELECT coalesce(error, 'none') || ' ' || coalesce(verify_result, 'n')"
                          " || ' ' || insecure FROM tls WHERE side = 0"),
                        "none n 0");
    assert_string_equal(q("SELECT upstream_id || ' ' || version || ' ' || verify_result || ' ' ||"
                          " handshake_us || ' ' || (cert_san IS NULL) || ' ' ||"
                          " (cert_not_before IS NULL) FROM tls WHERE side = 1"),
                        "3 TLSv1.2 0 6500 1 1");
    /* a peer's string is kept bounded, its bytes as they are (escaped when shown) */
    assert_string_equal(q("SELECT length(cert_subject) || ' ' || hex(substr(cert_subject, 1, 1))"
                          " FROM tls WHERE side = 1"),
                        "4096 1B");
    /* the client's TLS marks its connection */
    assert_string_equal(q("SELECT tls FROM connections WHERE id = 7"), "1");
}

static void close_bits_land_in_the_row_of_their_side(void **state)
{
    (void)state;
    record_tls_connection(1);
    assert_string_equal(q("SELECT close_bits FROM tls WHERE side = 0"), "11");
    assert_string_equal(q("SELECT close_bits FROM tls WHERE side = 1"), "12");
}

static void https_url_from_the_connect_and_tls_time_inside_connect(void **state)
{
    (void)state;
    record_tls_connection(1);
    assert_string_equal(q("SELECT url || ' ' || host || ' ' || path FROM exchanges WHERE idx = 2"),
                        "https://Shop.Test:8443/cart?x=1 shop.test /cart?x=1");
    assert_string_equal(q("SELECT t_connect || ' ' || t_ssl FROM exchanges WHERE idx = 2"),
                        "9500 6500");
    assert_string_equal(q("SELECT url || ' ' || t_ssl || ' ' || t_connect FROM exchanges"
                          " WHERE idx = 1"),
                        "Shop.Test:8443 -1 -1");
}

static void https_url_without_host_takes_the_connect_authority(void **state)
{
    (void)state;
    record_tls_connection(0);
    assert_string_equal(q("SELECT url || ' ' || host FROM exchanges WHERE idx = 2"),
                        "https://Shop.Test:8443/cart?x=1 shop.test");
}

/* The request went where the CONNECT said, whatever its Host names: the URL and host are
 * the CONNECT's (its port 443 left out), the Host stays in the head. */
static void https_url_is_the_connect_authority_not_the_host(void **state)
{
    (void)state;
    record_tls_connection(3);
    assert_string_equal(q("SELECT url || ' ' || host || ' ' || path FROM exchanges WHERE idx = 2"),
                        "https://Shop.Test:8443/cart?x=1 shop.test /cart?x=1");
    assert_string_equal(q("SELECT instr(req_head, 'Host: Bank.Example') > 0 FROM exchanges"
                          " WHERE idx = 2"),
                        "1");
    teardown(state);
    setup(state);
    record_tls_connection(4);
    assert_string_equal(q("SELECT url || ' ' || host FROM exchanges WHERE idx = 2"),
                        "https://Shop.Test/cart?x=1 shop.test");
}

/* An absolute-form https:// target inside the tunnel is the URL itself. */
static void https_absolute_target_is_the_url(void **state)
{
    (void)state;
    record_tls_connection(2);
    assert_string_equal(q("SELECT url || ' ' || host || ' ' || path FROM exchanges WHERE idx = 2"),
                        "https://shop.test:8443/cart?x=1 shop.test /cart?x=1");
}

/* A failure recorded as an exchange without a head (decision 5): its host from its URL. */
static void headless_failure_gets_host_and_path_from_its_url(void **state)
{
    (void)state;
    struct shunt_recorder_config cfg = {.path = path, .command_line = "test", .body_limit = 64};
    struct shunt_recorder *rc;
    char err[256];
    assert_int_equal(shunt_recorder_open(&cfg, &rc, err, sizeof(err)), 0);
    void *slot = NULL;
    struct shunt_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = SHUNT_EV_CONN_OPEN;
    ev.conn_id = 1;
    ev.slot = &slot;
    shunt_recorder_on_event(&ev, rc);
    struct shunt_tls_facts client = {.side = 0, .sni = "Pinned.Test", .alpn = "", .version = "",
                                     .cipher = "", .cert_subject = "", .cert_issuer = "",
                                     .cert_san = "", .cert_sha256 = "",
                                     .error = "the client rejected shunt's certificate (alert "
                                              "48: unknown ca)"};
    ev.type = SHUNT_EV_TLS;
    ev.tls = &client;
    shunt_recorder_on_event(&ev, rc);
    ev.type = SHUNT_EV_EXCHANGE_DONE;
    ev.tls = NULL;
    ev.exchange = 2;
    ev.method = "-";
    ev.url = "https://Pinned.Test:8443/";
    ev.error = "TLS with the client: the client rejected shunt's certificate (alert 48: "
               "unknown ca)";
    ev.t_dns_us = ev.t_connect_us = ev.t_ssl_us = -1;
    shunt_recorder_on_event(&ev, rc);
    ev.type = SHUNT_EV_CONN_CLOSE;
    ev.error = NULL;
    ev.tls_close = SHUNT_TLS_USED | SHUNT_TLS_TRUNCATED;
    shunt_recorder_on_event(&ev, rc);
    assert_int_equal(shunt_recorder_close(rc), 0);
    assert_string_equal(q("SELECT coalesce(method, 'NULL') || ' ' || url || ' ' || host || ' ' ||"
                          " path || ' ' || (flags & 2) FROM exchanges"),
                        "NULL https://Pinned.Test:8443/ pinned.test / 2");
    assert_string_equal(q("SELECT error || ' | ' || (version IS NULL) || ' ' || close_bits FROM tls"),
                        "the client rejected shunt's certificate (alert 48: unknown ca) | 1 12");
    assert_string_equal(q("SELECT tls FROM connections"), "1");
}

/* A version-1 capture, from the schema of version 1 as it was (tests/data/capture/; the
 * tests run from the top of the tree). */
static void make_v1(void)
{
    FILE *f = fopen("tests/data/capture/schema-v1.sql", "rb");
    assert_non_null(f);
    static char sql[16384];
    size_t n = fread(sql, 1, sizeof(sql) - 1, f);
    fclose(f);
    sql[n] = '\0';
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db,
                     "INSERT INTO connections (id) VALUES (1);"
                     " INSERT INTO exchanges (id, conn_id, idx, started_us, t_connect)"
                     " VALUES (1, 1, 1, 0, 5000);",
                     NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s", msg);
    sqlite3_close(db);
}

static void version_1_reads_with_no_tls_facts(void **state)
{
    (void)state;
    make_v1();
    sqlite3 *db;
    char err[256];
    assert_int_equal(shunt_capture_open(path, 0, &db, err, sizeof(err)), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT e.t_connect, e.t_ssl, (SELECT count(*) FROM tls)"
                                        " FROM exchanges e WHERE e.id = 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 5000);
    assert_int_equal(sqlite3_column_int(st, 1), -1);
    assert_int_equal(sqlite3_column_int(st, 2), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* the file itself is untouched */
    assert_string_equal(q("PRAGMA user_version"), "1");
    assert_string_equal(q("SELECT count(*) FROM sqlite_schema WHERE name = 'tls'"), "0");
}

/* The migrated file has the schema a new capture has: the same columns, in the same order. */
static void version_1_opened_to_write_is_migrated(void **state)
{
    (void)state;
    make_v1();
    sqlite3 *db;
    char err[256];
    assert_int_equal(shunt_capture_open(path, 1, &db, err, sizeof(err)), 0);
    sqlite3_close(db);
    assert_string_equal(q("PRAGMA user_version"), "2");
    assert_string_equal(q("SELECT t_ssl FROM exchanges WHERE id = 1"), "-1");
    sqlite3 *fresh;
    assert_int_equal(sqlite3_open(":memory:", &fresh), SQLITE_OK);
    assert_int_equal(sqlite3_exec(fresh, shunt_capture_schema_sql, NULL, NULL, NULL), SQLITE_OK);
    const char *tables[] = {"exchanges", "tls"};
    for (int t = 0; t < 2; t++) {
        char sql[256], want[2048] = "", got[2048] = "";
        snprintf(sql, sizeof(sql),
                 "SELECT group_concat(name || ':' || type || ':' || \"notnull\" || ':' ||"
                 " coalesce(dflt_value, ''), ',') FROM pragma_table_info('%s')",
                 tables[t]);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(fresh, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        snprintf(want, sizeof(want), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        snprintf(got, sizeof(got), "%s", q(sql));
        assert_string_equal(got, want);
    }
    assert_string_equal(q("SELECT count(*) FROM sqlite_schema WHERE name = 'tls_conn'"), "1");
    sqlite3_close(fresh);
    /* opened again, it is a version-2 file like any */
    assert_int_equal(shunt_capture_open(path, 1, &db, err, sizeof(err)), 0);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tls_handshakes_are_rows_of_both_sides, setup, teardown),
        cmocka_unit_test_setup_teardown(close_bits_land_in_the_row_of_their_side, setup, teardown),
        cmocka_unit_test_setup_teardown(https_url_is_the_connect_authority_not_the_host, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(https_url_from_the_connect_and_tls_time_inside_connect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(https_url_without_host_takes_the_connect_authority, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(https_absolute_target_is_the_url, setup, teardown),
        cmocka_unit_test_setup_teardown(headless_failure_gets_host_and_path_from_its_url, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(version_1_reads_with_no_tls_facts, setup, teardown),
        cmocka_unit_test_setup_teardown(version_1_opened_to_write_is_migrated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
