/* tests/unit/analyze/test_blame.c - whom diagnose blames (issue 11), on captures written row
 * by row in memory: a close that a body without a length forced ranks after that body; a
 * rule's Connection: close is the rule's, never the server's; WinINet's rule never counts a
 * client that did not ask to keep its connection; and the HTTP/1.1 rules (framing, hop-by-hop
 * fields, persistence, connection-bound authentication) are not applied to HTTP/2 and
 * HTTP/3 exchanges, whose connections multiplex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/diagnose.h"
#include "analyze/model.h"
#include "capture/db.h"

#include "capture_fixture.h"

/* A connection of client 127.0.0.1:<port>, opened and closed at those microseconds, closed by
 * <closer> (NULL: unknown) with <how>. */
static void conn(int64_t id, int64_t opened, int64_t closed, const char *closer, const char *how)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO connections (id, client_addr, client_port, "
                                        "opened_us, closed_us, closer, close_how) VALUES "
                                        "(?, '127.0.0.1', ?, ?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, 50000 + id);
    sqlite3_bind_int64(st, 3, opened);
    sqlite3_bind_int64(st, 4, closed);
    if (closer != NULL) {
        sqlite3_bind_text(st, 5, closer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, how, -1, SQLITE_STATIC);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* What one exchange row says. */
struct ex {
    int64_t id, conn, idx, t, dur;
    const char *version;   /* exchanges.http_version: "HTTP/1.1", "h2", ...; NULL none */
    const char *req;       /* the request head as the client sent it, whole */
    const char *req_sent;  /* as sent upstream; NULL unchanged */
    int status;
    const char *resp;      /* the response head as the server sent it; NULL none */
    const char *resp_sent; /* as sent to the client; NULL unchanged */
};

static void exchange(struct ex x)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO exchanges (id, conn_id, idx, started_us, "
                                        "duration_us, t_connect, method, url, host, path, "
                                        "http_version, status, req_head, req_head_sent, "
                                        "resp_head, resp_head_sent) VALUES (?, ?, ?, ?, ?, ?, "
                                        "'GET', 'http://127.0.0.1:8080/', '127.0.0.1', '/', ?, "
                                        "?, ?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, x.id);
    sqlite3_bind_int64(st, 2, x.conn);
    sqlite3_bind_int64(st, 3, x.idx);
    sqlite3_bind_int64(st, 4, x.t);
    sqlite3_bind_int64(st, 5, x.dur);
    sqlite3_bind_int64(st, 6, x.idx == 1 ? 300 : -1);
    if (x.version)
        sqlite3_bind_text(st, 7, x.version, -1, SQLITE_STATIC);
    if (x.status)
        sqlite3_bind_int(st, 8, x.status);
    const char *heads[] = {x.req, x.req_sent, x.resp, x.resp_sent};
    for (int k = 0; k < 4; k++)
        if (heads[k] != NULL)
            sqlite3_bind_blob(st, 9 + k, heads[k], (int)strlen(heads[k]), SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* A change row: <by> changed exchange <ex>'s request (<in_request>) or response. */
static void change(int64_t ex, int in_request, const char *what, const char *by)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO changes (exchange_id, in_request, what, by) "
                                        "VALUES (?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, ex);
    sqlite3_bind_int(st, 2, in_request);
    sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* Loads the capture and runs diagnose: the findings' ids in rank order, space-separated,
 * each "id<cause" when it is explained by the finding of check cause. */
static void run(char *ids, size_t len, struct shunt_findings *keep)
{
    struct shunt_model *m = NULL;
    char err[256] = "";
    if (shunt_model_load(db, NULL, &m, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    size_t o = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < fs.n && o < len; i++)
        o += (size_t)snprintf(ids + o, len - o, "%s%s%s%s", o ? " " : "", fs.v[i].check->id,
                              fs.v[i].explained_by ? "<" : "",
                              fs.v[i].explained_by ? fs.v[i].explained_by : "");
    if (keep != NULL)
        *keep = fs;
    else
        shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

#define REQ11 "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
#define OK11 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"

/* ---------------------------------------------------------------- cause before consequence */

#define CLOSE11 "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"
#define UNFRAMED11 "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"

/* Five connections the server ended, back to back: three with Connection: close, two with a
 * body only the close delimits. The closes the bodies forced are unframed-or-overlong-body's
 * consequence and rank right after it; the ones the server chose stand on their own. */
static void closes_a_body_forced_follow_the_body(void **state)
{
    (void)state;
    static const char *const resp[] = {CLOSE11, UNFRAMED11, CLOSE11, UNFRAMED11, CLOSE11, OK11};
    for (int k = 0; k < 6; k++) {
        int64_t t = k * 20000;
        conn(k + 1, t, t + 12000, "server", "FIN");
        exchange((struct ex){k + 1, k + 1, 1, t + 500, 10000, "HTTP/1.1", REQ11, NULL, 200,
                             resp[k], NULL});
    }
    char ids[512];
    struct shunt_findings fs;
    run(ids, sizeof(ids), &fs);
    assert_string_equal(ids, "server-closes-keepalive unframed-or-overlong-body "
                             "server-closes-keepalive<unframed-or-overlong-body");
    assert_int_equal(fs.v[0].count, 3);
    assert_non_null(strstr(fs.v[0].what, "(3 with Connection: close)"));
    assert_int_equal(fs.v[2].count, 2);
    assert_non_null(strstr(fs.v[2].what, "(2 with a body delimited by the close"));
    shunt_findings_dispose(&fs);
}

/* The client closed each connection after a response a rule of the user's made say
 * Connection: close (the server's did not): the rule's close, not the server's. */
static void a_rules_close_is_not_the_servers(void **state)
{
    (void)state;
    for (int k = 0; k < 5; k++) {
        int64_t t = k * 20000;
        conn(k + 1, t, t + 12000, "client", "FIN"); /* the client obeyed first */
        exchange((struct ex){k + 1, k + 1, 1, t + 500, 10000, "HTTP/1.1", REQ11, NULL, 200,
                             OK11,
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"});
        change(k + 1, 0, "set Connection: close", "force-connection-close.lua:7");
    }
    char ids[512];
    struct shunt_findings fs;
    run(ids, sizeof(ids), &fs);
    assert_string_equal(ids, "rule-closes-keepalive");
    assert_int_equal(fs.v[0].count, 4);
    assert_non_null(strstr(fs.v[0].what, "Your rule force-connection-close.lua:7 ended 4 "));
    shunt_findings_dispose(&fs);
}

/* ---------------------------------------------------------------- WinINet's rule */

/* The story's heads, but the client asked for no persistent connection: HTTP/1.0 without
 * keep-alive, or Connection: close. It closed what it never asked to keep. */
static void wininet_rule_needs_a_client_that_asked_to_keep(void **state)
{
    (void)state;
    static const char *const final_leg[] = {
        "GET / HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nAuthorization: NTLM "
        "TlRMTVNTUAADAAAAGAAYAEgAAAA=\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\nAuthorization: NTLM "
        "TlRMTVNTUAADAAAAGAAYAEgAAAA=\r\n\r\n",
    };
    for (int k = 0; k < 4; k++) {
        int64_t t = k * 20000, x = 3 * k + 1;
        conn(k + 1, t, t + 15000, "client", "FIN");
        exchange((struct ex){x, k + 1, 1, t + 500, 1000, "HTTP/1.1",
                             "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: "
                             "keep-alive\r\n\r\n",
                             NULL, 401,
                             "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\n"
                             "Content-Length: 0\r\n\r\n",
                             NULL});
        exchange((struct ex){x + 1, k + 1, 2, t + 2000, 1000, "HTTP/1.1",
                             "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: keep-alive\r\n"
                             "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAA="
                             "\r\n\r\n",
                             NULL, 401,
                             "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM "
                             "TlRMTVNTUAACAAAADAAMADAAAAA=\r\nContent-Length: 0\r\n\r\n",
                             NULL});
        /* an HTTP/1.1 200, framed, no Server: nothing in it ends the connection */
        exchange((struct ex){x + 2, k + 1, 3, t + 4000, 1000, NULL, final_leg[k % 2], NULL,
                             200, OK11, NULL});
    }
    char ids[512];
    run(ids, sizeof(ids), NULL);
    assert_null(strstr(ids, "wininet-auth-close"));
}

/* ---------------------------------------------------------------- HTTP/2 and HTTP/3 */

/* A browser's HTTP/2 traffic from a HAR: one connection per origin, streams overlapping on
 * it; a 404 without Content-Length (HTTP/2 frames every body); fields a HAR lists that are
 * HTTP/1.1's hop-by-hop ones. Then the browser's next connections to the origin, each with a
 * request or two (one per page, after the previous connection went idle and was closed).
 * None of HTTP/1.1's rules apply. */
static void http2_is_not_judged_by_http11_rules(void **state)
{
    (void)state;
    static const char *const versions[] = {"h2", "HTTP/2.0", "h3", "http/2"};
    int64_t x = 1;
    for (int c = 1; c <= 6; c++) {
        int64_t t = (c - 1) * 300000;
        const char *v = versions[c % 4];
        conn(c, t, -1, NULL, NULL); /* a HAR: the closer is not known */
        int n = c == 1 ? 8 : 1;
        for (int k = 0; k < n; k++, x++)
            exchange((struct ex){x, c, k + 1, t + 1000 + 500 * k, 20000, v,
                                 "GET / h2\r\nhost: 127.0.0.1:8080\r\n"
                                 "Connection: keep-alive, Cookie\r\nKeep-Alive: 300\r\n"
                                 "Proxy-Connection: keep-alive\r\n\r\n",
                                 NULL, k == 3 ? 404 : 200,
                                 k == 3 ? "h2 404 Not Found\r\ncontent-type: text/html\r\n\r\n"
                                        : "h2 200 OK\r\ncontent-type: text/html\r\n"
                                          "keep-alive: timeout=5\r\n\r\n",
                                 NULL});
    }
    char ids[512];
    run(ids, sizeof(ids), NULL);
    assert_string_equal(ids, "");
}

/* The same exchanges over HTTP/1.1 are judged: the rules apply to that version. */
static void the_same_over_http11_is_judged(void **state)
{
    (void)state;
    int64_t x = 1;
    for (int c = 1; c <= 6; c++) {
        int64_t t = (c - 1) * 300000;
        conn(c, t, -1, NULL, NULL);
        exchange((struct ex){x++, c, 1, t + 1000, 20000, "HTTP/1.1",
                             "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                             "Connection: keep-alive, Cookie\r\n\r\n",
                             NULL, 404, "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\n\r\n",
                             NULL});
    }
    char ids[512];
    run(ids, sizeof(ids), NULL);
    assert_non_null(strstr(ids, "unframed-or-overlong-body"));
    assert_non_null(strstr(ids, "hop-by-hop-misuse"));
}

static void versions_are_read_from_the_capture_or_the_heads(void **state)
{
    (void)state;
    static const struct {
        const char *column, *req;
        int major;
    } cases[] = {
        {"h2", REQ11, 2},         {"HTTP/2.0", REQ11, 2}, {"http/2", REQ11, 2},
        {"h3", REQ11, 3},         {"h3-29", REQ11, 3},    {"HTTP/3", REQ11, 3},
        {"HTTP/1.1", REQ11, 1},   {"HTTP/1.0", REQ11, 1}, {"h2x", REQ11, 1},
        {NULL, "GET / h2\r\n\r\n", 2}, {NULL, "GET / HTTP/2.0\r\n\r\n", 2},
        {NULL, REQ11, 1},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    conn(1, 0, -1, NULL, NULL);
    for (size_t k = 0; k < n; k++)
        exchange((struct ex){(int64_t)k + 1, 1, (int64_t)k + 1, 1000 * (int64_t)k, 100,
                             cases[k].column, cases[k].req, NULL, 200, OK11, NULL});
    struct shunt_model *m = NULL;
    char err[256];
    assert_int_equal(shunt_model_load(db, NULL, &m, err, sizeof(err)), 0);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(m->ex[k].http_major, cases[k].major);
    assert_true(m->conns[0].multiplexed);
    shunt_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(closes_a_body_forced_follow_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(a_rules_close_is_not_the_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(wininet_rule_needs_a_client_that_asked_to_keep, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http2_is_not_judged_by_http11_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(the_same_over_http11_is_judged, setup, teardown),
        cmocka_unit_test_setup_teardown(versions_are_read_from_the_capture_or_the_heads, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
