/* tests/unit/web/test_admin.c - the admin API: its checks (Host, Origin, token, percent-
 * decoding) as pure functions, then the server itself on loopback with a raw socket client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

/* Short deadlines, so that the slowloris tests do not wait seconds. The head deadline is long
 * enough for the eviction tests to tell the connections closed to make room from the others. */
#define ADMIN_HEAD_MS 1000
#define ADMIN_BODY_MS 300
#define ADMIN_IDLE_MS 600
#include "web/admin.c"

#define S(lit) SHUNT_SLICE_LIT(lit)

/* ------------------------------------------------------------------------ pure helpers */

static void test_authority_accepts_own_addresses(void **state)
{
    static const char *const good[] = {"127.0.0.1:8889", "localhost:8889", "LOCALHOST:8889",
                                       "[::1]:8889",     "10.0.0.5:8889"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!authority_ok(shunt_slice_make(good[i], strlen(good[i])), 8889, "10.0.0.5", AF_INET))
            fail_msg("refused \"%s\"", good[i]);
}

static void test_authority_refuses_others(void **state)
{
    static const char *const bad[] = {"evil.example:8889", "127.0.0.1:8888", "127.0.0.1",
                                      "localhost",         "127.0.0.1:",     "[::1]",
                                      "[::1]8889",         "127.0.0.1:08889x",
                                      "127.0.0.1:88890",   "127.0.0.2:8889", "[::2]:8889",
                                      "localhost.:8889",   "",               "[10.0.0.5]:8889",
                                      ":8889",             "127.0.0.1:+889"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (authority_ok(shunt_slice_make(bad[i], strlen(bad[i])), 8889, "10.0.0.5", AF_INET))
            fail_msg("accepted \"%s\"", bad[i]);
}

static void test_authority_without_port_only_on_80(void **state)
{
    assert_true(authority_ok(S("localhost"), 80, NULL, 0));
    assert_true(authority_ok(S("[::1]"), 80, NULL, 0));
    assert_false(authority_ok(S("localhost"), 8080, NULL, 0));
}

static void test_authority_ipv6_local_address(void **state)
{
    assert_true(authority_ok(S("[fd00::1]:9"), 9, "fd00::1", AF_INET6));
    assert_false(authority_ok(S("fd00::1:9"), 9, "fd00::1", AF_INET6));
}

static void test_origin(void **state)
{
    assert_true(origin_ok(S("http://127.0.0.1:8889"), 8889, NULL, 0));
    assert_true(origin_ok(S("HTTP://localhost:8889"), 8889, NULL, 0));
    assert_true(origin_ok(S("http://[::1]:8889"), 8889, NULL, 0));
    assert_false(origin_ok(S("null"), 8889, NULL, 0));
    assert_false(origin_ok(S("https://127.0.0.1:8889"), 8889, NULL, 0));
    assert_false(origin_ok(S("http://evil.example:8889"), 8889, NULL, 0));
    assert_false(origin_ok(S("http://127.0.0.1:8889/"), 8889, NULL, 0));
    assert_false(origin_ok(S("http://127.0.0.1:1234"), 8889, NULL, 0));
    assert_false(origin_ok(S("http://"), 8889, NULL, 0));
}

static void test_bearer(void **state)
{
    assert_true(bearer_ok(S("Bearer s3cret"), "s3cret", 6));
    assert_true(bearer_ok(S("bearer  s3cret"), "s3cret", 6));
    assert_false(bearer_ok(S("Bearer s3cre"), "s3cret", 6));
    assert_false(bearer_ok(S("Bearer s3crett"), "s3cret", 6));
    assert_false(bearer_ok(S("Bearer "), "s3cret", 6));
    assert_false(bearer_ok(S("Basic s3cret"), "s3cret", 6));
    assert_false(bearer_ok(S("Bearers3cret"), "s3cret", 6));
    assert_false(bearer_ok(S("s3cret"), "s3cret", 6));
}

static void test_json_content_type(void **state)
{
    assert_true(is_json_type(S("application/json")));
    assert_true(is_json_type(S("Application/JSON; charset=utf-8")));
    assert_true(is_json_type(S("application/json ;charset=utf-8")));
    assert_false(is_json_type(S("application/jsonx")));
    assert_false(is_json_type(S("text/plain")));
    assert_false(is_json_type(S("application/x-www-form-urlencoded")));
    assert_false(is_json_type(S("")));
}

static void test_pct_decode(void **state)
{
    char out[16];
    assert_int_equal(pct_decode(S("Add%20Server+x"), out, sizeof(out)), 14 - 2);
    assert_string_equal(out, "Add Server+x");
    assert_int_equal(pct_decode(S("a%2fb%2F"), out, sizeof(out)), 4);
    assert_string_equal(out, "a/b/");
    assert_int_equal(pct_decode(S("a%00"), out, sizeof(out)), SHUNT_EPARSE);
    assert_int_equal(pct_decode(S("a%2"), out, sizeof(out)), SHUNT_EPARSE);
    assert_int_equal(pct_decode(S("a%"), out, sizeof(out)), SHUNT_EPARSE);
    assert_int_equal(pct_decode(S("a%zz"), out, sizeof(out)), SHUNT_EPARSE);
    assert_int_equal(pct_decode(S("0123456789abcdef"), out, sizeof(out)), SHUNT_ETOOBIG);
}

static void test_quote_makes_printable(void **state)
{
    char q[16];
    quote(q, sizeof(q), S("a\xff\n"));
    assert_string_equal(q, "a??");
    quote(q, sizeof(q), S("0123456789abcdefghij"));
    assert_string_equal(q, "0123456789ab...");
}

/* ------------------------------------------------------------------------ the token */

/* Writes <len> bytes of <data> to a new file of mode <mode>; returns its path (static). */
static const char *token_file(const void *data, size_t len, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/shunt-token-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* Reads the token file holding <data>: the return value, the token in <buf>, why in <err>. */
static int read_token(const void *data, size_t len, mode_t mode, char *buf, char *err)
{
    const char *path = token_file(data, len, mode);
    int r = shunt_admin_token_read(path, buf, SHUNT_ADMIN_TOKEN_MAX + 1, err, 256);
    unlink(path);
    return r;
}

static void test_token_file_newlines(void **state)
{
    char buf[SHUNT_ADMIN_TOKEN_MAX + 1], err[256];
    static const char *const ok[] = {"s3cret", "s3cret\n", "s3cret\r\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(read_token(ok[i], strlen(ok[i]), 0600, buf, err), 0);
        assert_string_equal(buf, "s3cret");
    }
    assert_int_equal(read_token("s3cret\n", 7, 0400, buf, err), 0);
    /* one newline only; whatever else is in the token makes it invalid */
    assert_int_equal(read_token("s3cret\n\n", 8, 0600, buf, err), SHUNT_EINVAL);
    assert_string_equal(err, "the token must be printable ASCII without spaces");
    assert_string_equal(buf, "");
    assert_int_equal(read_token("s3\0cret", 7, 0600, buf, err), SHUNT_EINVAL);
    assert_int_equal(read_token(" s3cret", 7, 0600, buf, err), SHUNT_EINVAL);
}

static void test_token_file_empty_or_too_long(void **state)
{
    char buf[SHUNT_ADMIN_TOKEN_MAX + 1], err[256];
    static char big[SHUNT_ADMIN_TOKEN_MAX + 8];
    static const char *const empty[] = {"", "\n", "\r\n"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_int_equal(read_token(empty[i], strlen(empty[i]), 0600, buf, err), SHUNT_EINVAL);
        assert_string_equal(err, "the file holds no token");
    }
    memset(big, 'a', sizeof(big));
    memcpy(big + SHUNT_ADMIN_TOKEN_MAX, "\r\n", 2);
    assert_int_equal(read_token(big, SHUNT_ADMIN_TOKEN_MAX + 2, 0600, buf, err), 0);
    assert_int_equal(strlen(buf), SHUNT_ADMIN_TOKEN_MAX);
    memset(big, 'a', sizeof(big));
    assert_int_equal(read_token(big, SHUNT_ADMIN_TOKEN_MAX + 1, 0600, buf, err), SHUNT_EINVAL);
    assert_string_equal(err, "the token is over 1024 bytes");
    assert_int_equal(read_token(big, sizeof(big), 0600, buf, err), SHUNT_EINVAL);
    assert_string_equal(err, "the token is over 1024 bytes");
}

static void test_token_file_mode_and_absence(void **state)
{
    char buf[SHUNT_ADMIN_TOKEN_MAX + 1], err[256];
    assert_int_equal(read_token("s3cret\n", 7, 0640, buf, err), SHUNT_EINVAL);
    assert_string_equal(err, "other users may read or write it (mode 0640); chmod 600 it");
    assert_int_equal(read_token("s3cret\n", 7, 0602, buf, err), SHUNT_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(shunt_admin_token_read("/nonexistent/token", buf, sizeof(buf), err,
                                            sizeof(err)), -ENOENT);
    assert_string_equal(err, "cannot open it: no such file or directory");
}

static void test_token_check(void **state)
{
    char err[256];
    assert_int_equal(shunt_admin_token_check("a", err, sizeof(err)), 0);
    assert_int_equal(shunt_admin_token_check("", err, sizeof(err)), SHUNT_EINVAL);
    assert_string_equal(err, "the token is empty");
    assert_int_equal(shunt_admin_token_check("a\tb", err, sizeof(err)), SHUNT_EINVAL);
    assert_int_equal(shunt_admin_token_check("caf\xc3\xa9", err, sizeof(err)), SHUNT_EINVAL);
}

/* ------------------------------------------------------------------------ the server */

struct fake {
    int reloads;
    int reload_fails;
};

static int fake_reload(void *ud, char *err, size_t err_len)
{
    struct fake *f = ud;
    f->reloads++;
    if (f->reload_fails) {
        snprintf(err, err_len, "rules.lua:12: unexpected symbol near '}'");
        return SHUNT_EPARSE;
    }
    return 0;
}

static void fake_status(void *ud, struct shunt_admin_status *out)
{
    out->uptime_s = 12.3456;
    out->connections_open = 3;
    out->exchanges = 42;
    out->events_dropped = 1;
    out->capture = "cap.db";
    out->rules = NULL;
}

struct srv {
    struct shunt_admin *a;
    int port;
    struct fake fake;
};

static int start_with(struct srv *s, const char *token)
{
    struct shunt_admin_config cfg = {0};
    char err[256];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.listen;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cfg.token = token;
    cfg.reload = fake_reload;
    cfg.reload_ud = &s->fake;
    cfg.status = fake_status;
    int r = shunt_admin_start(&cfg, &s->a, &s->port, err, sizeof(err));
    if (r != 0)
        fail_msg("shunt_admin_start: %s", err);
    return 0;
}

static int setup(void **state)
{
    static struct srv s;
    memset(&s, 0, sizeof(s));
    signal(SIGPIPE, SIG_IGN);
    shunt_options_reset();
    assert_int_equal(shunt_options_declare("Add Server Header", 0), 0);
    assert_int_equal(shunt_options_declare("Slow/Path", 1), 1);
    start_with(&s, NULL);
    *state = &s;
    return 0;
}

static int teardown(void **state)
{
    struct srv *s = *state;
    shunt_admin_stop(s->a);
    shunt_options_reset();
    return 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads one response (head + Content-Length body) into <out>; returns its status, or 0 at
 * EOF before any byte. Reads the head a byte at a time and then exactly the body, so that a
 * pipelined response that arrived with it stays in the socket for the next call. */
static int read_response(int fd, char *out, size_t cap)
{
    size_t len = 0, want = 0;
    for (;;) {
        out[len] = '\0';
        if (want == 0) {
            char *end = strstr(out, "\r\n\r\n");
            if (end != NULL) {
                const char *cl = strstr(out, "Content-Length: ");
                want = (size_t)(end + 4 - out) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
            }
        }
        if (want > 0 && len >= want)
            return atoi(out + 9);
        size_t room = want > 0 ? want - len : 1;
        assert_true(len + room < cap);
        ssize_t n = recv(fd, out + len, room, 0);
        if (n <= 0) {
            if (len == 0)
                return 0;
            fail_msg("connection ended inside a response: %s", out);
        }
        len += (size_t)n;
    }
}

/* One request on a new connection; returns the status, the response in <out>. */
static int call(struct srv *s, const char *req, char *out, size_t cap)
{
    int fd = connect_to(s->port);
    send_str(fd, req);
    int st = read_response(fd, out, cap);
    close(fd);
    return st;
}

static char *reqf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *reqf(const char *fmt, ...)
{
    static char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return buf;
}

static void test_status(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"uptime_s\": 12.346,"));
    assert_non_null(strstr(out, "\"connections_open\": 3,"));
    assert_non_null(strstr(out, "\"exchanges\": 42,"));
    assert_non_null(strstr(out, "\"events_dropped\": 1,"));
    assert_non_null(strstr(out, "\"capture\": \"cap.db\","));
    assert_non_null(strstr(out, "\"rules\": null,"));
    assert_non_null(strstr(out, "\"version\": \"" SHUNT_VERSION "\""));
}

static void test_options_list_in_order(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("GET /api/options HTTP/1.1\r\nHost: localhost:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 200);
    const char *a = strstr(out, "\"name\": \"Add Server Header\",\n      \"on\": false,\n"
                                "      \"default\": false");
    const char *b = strstr(out, "\"name\": \"Slow/Path\",\n      \"on\": true,\n"
                                "      \"default\": true");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
}

static void test_option_switch_put_and_post(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("PUT /api/options/Add%%20Server%%20Header HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 12\r\n\r\n{\"on\": true}", s->port),
                          out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"on\": true"));
    assert_true(shunt_options_on(0));
    assert_int_equal(call(s, reqf("POST /api/options/Slow%%2FPath HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                  "Origin: http://127.0.0.1:%d\r\n"
                                  "Content-Length: 12\r\n\r\n{\"on\":false}", s->port, s->port),
                          out, sizeof(out)), 200);
    assert_false(shunt_options_on(1));
    assert_non_null(strstr(out, "\"name\": \"Slow/Path\""));
    assert_non_null(strstr(out, "\"default\": true"));
}

static void test_option_refusals(void **state)
{
    struct srv *s = *state;
    char out[4096];
    static const struct {
        const char *ct, *body, *path, *origin;
        int status;
        const char *msg;
    } cases[] = {
        {"application/json", "{\"on\": true}", "Nope", NULL, 404, "no option named 'Nope'"},
        {"application/json", "{\"on\": 1}", "Slow%2FPath", NULL, 400, "true or false"},
        {"application/json", "{\"on\": tru}", "Slow%2FPath", NULL, 400, "not valid JSON"},
        {"application/json", "[true]", "Slow%2FPath", NULL, 400, "must be a JSON object"},
        {"application/json", "", "Slow%2FPath", NULL, 400, "needs a JSON object"},
        {"application/json", "{\"on\":true,\"on\":false}", "Slow%2FPath", NULL, 400, "JSON"},
        {"text/plain", "{\"on\": true}", "Slow%2FPath", NULL, 415, "Content-Type"},
        {NULL, "{\"on\": true}", "Slow%2FPath", NULL, 415, "Content-Type"},
        {"application/json", "{\"on\": true}", "Slow%2FPath", "http://evil.example", 403,
         "cross-site"},
        {"application/json", "{\"on\": true}", "Slow%2FPath", "null", 403, "cross-site"},
        {"application/json", "{\"on\": true}", "a%zz", NULL, 400, "percent-encoding"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ct[64] = "", origin[128] = "";
        if (cases[i].ct)
            snprintf(ct, sizeof(ct), "Content-Type: %s\r\n", cases[i].ct);
        if (cases[i].origin)
            snprintf(origin, sizeof(origin), "Origin: %s\r\n", cases[i].origin);
        int st = call(s, reqf("PUT /api/options/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s"
                              "Content-Length: %zu\r\n\r\n%s", cases[i].path, s->port, ct,
                              origin, strlen(cases[i].body), cases[i].body),
                      out, sizeof(out));
        if (st != cases[i].status || strstr(out, cases[i].msg) == NULL)
            fail_msg("case %zu: want %d with '%s', got:\n%s", i, cases[i].status, cases[i].msg,
                     out);
    }
    assert_true(shunt_options_on(1)); /* none of them switched it */
}

static void test_wrong_host_refused(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("GET /api/options HTTP/1.1\r\nHost: rebind.example:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 403);
    assert_non_null(strstr(out, "not this admin API's address"));
    assert_int_equal(call(s, "GET /api/options HTTP/1.0\r\n\r\n", out, sizeof(out)), 400);
    assert_non_null(strstr(out, "Host"));
}

static void test_routes_and_methods(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("GET /nope HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port),
                          out, sizeof(out)), 404);
    assert_int_equal(call(s, reqf("DELETE /api/options HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 405);
    assert_non_null(strstr(out, "Allow: GET\r\n"));
    assert_int_equal(call(s, reqf("GET /api/reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 405);
    assert_non_null(strstr(out, "Allow: POST\r\n"));
    assert_int_equal(call(s, reqf("GET /api/status?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 200);
    assert_int_equal(call(s, reqf("GET /api/options/Slow%%2FPath HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%d\r\n\r\n", s->port), out, sizeof(out)), 200);
}

static void test_reload(void **state)
{
    struct srv *s = *state;
    char out[4096];
    const char *fmt = "POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(call(s, reqf(fmt, s->port), out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"ok\": true"));
    s->fake.reload_fails = 1;
    assert_int_equal(call(s, reqf(fmt, s->port), out, sizeof(out)), 422);
    assert_non_null(strstr(out, "\"error\": \"rules.lua:12: unexpected symbol near '}'\""));
    assert_int_equal(s->fake.reloads, 2);
}

static void test_reload_without_rules(void **state)
{
    struct srv *s = *state;
    shunt_admin_stop(s->a);
    struct shunt_admin_config cfg = {0};
    char err[256], out[4096];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.listen;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(shunt_admin_start(&cfg, &s->a, &s->port, err, sizeof(err)), 0);
    assert_int_equal(call(s, reqf("POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                                  s->port), out, sizeof(out)), 409);
    assert_non_null(strstr(out, "\"error\": \"no rules file\""));
    /* no status callback: zeros */
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"exchanges\": 0,"));
}

static void test_token(void **state)
{
    struct srv *s = *state;
    shunt_admin_stop(s->a);
    start_with(s, "s3cret");
    char out[4096];
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 401);
    assert_non_null(strstr(out, "WWW-Authenticate: Bearer"));
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Authorization: Bearer nope\r\n\r\n", s->port),
                          out, sizeof(out)), 401);
    assert_non_null(strstr(out, "wrong token"));
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Authorization: Bearer s3cret\r\n\r\n", s->port),
                          out, sizeof(out)), 200);
}

static void test_non_loopback_needs_token(void **state)
{
    struct shunt_admin_config cfg = {0};
    struct shunt_admin *a = NULL;
    char err[256];
    int port;
    assert_int_equal(shunt_addr_parse("0.0.0.0:0", &cfg.listen), 0);
    assert_int_equal(shunt_admin_start(&cfg, &a, &port, err, sizeof(err)), SHUNT_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "--admin-token"));
    cfg.token = "with space";
    assert_int_equal(shunt_admin_start(&cfg, &a, &port, err, sizeof(err)), SHUNT_EINVAL);
    cfg.token = "ok-token";
    assert_int_equal(shunt_admin_start(&cfg, &a, &port, err, sizeof(err)), 0);
    shunt_admin_stop(a);
}

static void test_port_in_use(void **state)
{
    struct srv *s = *state;
    struct shunt_admin_config cfg = {0};
    struct shunt_admin *a = NULL;
    char err[256];
    int port;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.listen;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_port = htons((uint16_t)s->port);
    assert_true(shunt_admin_start(&cfg, &a, &port, err, sizeof(err)) < 0);
    assert_null(a);
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
}

static void test_keep_alive_and_pipelining(void **state)
{
    struct srv *s = *state;
    char out[4096], two[1024];
    int fd = connect_to(s->port);
    snprintf(two, sizeof(two),
             "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
             "PUT /api/options/Add%%20Server%%20Header HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\n{\"on\"\r\n8\r\n: false}\r\n0\r\n\r\n",
             s->port, s->port);
    send_str(fd, two);
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"exchanges\": 42"));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"on\": false"));
    /* still open: one more, then Connection: close ends it */
    send_str(fd, reqf("GET /api/options HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Connection: close\r\n\r\n", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_int_equal(read_response(fd, out, sizeof(out)), 0);
    close(fd);
}

static void test_limits(void **state)
{
    struct srv *s = *state;
    char out[4096];
    assert_int_equal(call(s, reqf("PUT /api/options/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 65537\r\n\r\n",
                                  s->port), out, sizeof(out)), 413);
    /* a chunked body that grows past the limit */
    int fd = connect_to(s->port);
    send_str(fd, reqf("PUT /api/options/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                      s->port));
    static char chunk[8200];
    memset(chunk, ' ', sizeof(chunk));
    memcpy(chunk, "2000\r\n", 6);
    memcpy(chunk + 6 + 8192, "\r\n", 2);
    int st = 0;
    for (int i = 0; i < 9 && st == 0; i++) {
        if (send(fd, chunk, 6 + 8192 + 2, MSG_NOSIGNAL) < 0)
            break;
    }
    st = read_response(fd, out, sizeof(out));
    assert_int_equal(st, 413);
    close(fd);
    /* a head over 16 KiB */
    static char big[20000];
    int n = snprintf(big, sizeof(big), "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX: ",
                     s->port);
    memset(big + n, 'a', sizeof(big) - (size_t)n - 5);
    memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
    assert_int_equal(call(s, big, out, sizeof(out)), 431);
    assert_int_equal(call(s, "GET /api/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", out,
                          sizeof(out)), 400);
    assert_non_null(strstr(out, "malformed request: several Host fields"));
}

static void test_expect_continue(void **state)
{
    struct srv *s = *state;
    char out[4096];
    int fd = connect_to(s->port);
    send_str(fd, reqf("POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                      "Content-Length: 2\r\n\r\n", s->port));
    ssize_t n = recv(fd, out, sizeof(out) - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
    send_str(fd, "{}");
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    close(fd);
}

static void test_slow_request_times_out(void **state)
{
    struct srv *s = *state;
    char out[4096];
    int fd = connect_to(s->port);
    send_str(fd, "GET /api/status HTTP/1.1\r\nHost: 127");
    assert_int_equal(read_response(fd, out, sizeof(out)), 408); /* after ADMIN_HEAD_MS */
    assert_non_null(strstr(out, "the request head was not complete"));
    assert_int_equal(read_response(fd, out, sizeof(out)), 0);
    close(fd);
    fd = connect_to(s->port); /* idle: closed without a word after ADMIN_HEAD_MS */
    assert_int_equal(read_response(fd, out, sizeof(out)), 0);
    close(fd);
    fd = connect_to(s->port); /* a head, then a body that never comes */
    send_str(fd, reqf("POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 408); /* after ADMIN_BODY_MS */
    assert_non_null(strstr(out, "the request body was not complete"));
    close(fd);
}

/* A keep-alive connection waits ADMIN_IDLE_MS for its next request; once that request's
 * first byte arrives, its head has ADMIN_HEAD_MS. */
static void test_keep_alive_deadlines(void **state)
{
    struct srv *s = *state;
    char out[4096];
    int fd = connect_to(s->port);
    send_str(fd, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_int_equal(read_response(fd, out, sizeof(out)), 0); /* after ADMIN_IDLE_MS */
    close(fd);
    fd = connect_to(s->port);
    send_str(fd, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\nGET /", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_int_equal(read_response(fd, out, sizeof(out)), 408);
    close(fd);
}

/* Connects to <port> on loopback from the address 127.0.0.<host>. */
static int connect_from(int host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)host - 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Returns 1 when the server closed <fd>, 0 when it is still open (no wait: the server closes
 * a connection to make room before it reads the newcomer's request, so once the newcomer has
 * its answer, the FIN is there). */
static int closed_now(int fd)
{
    char ch;
    ssize_t n = recv(fd, &ch, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Idle connections from one address: past ADMIN_MAX_PENDING_PER_ADDR the oldest gives way,
 * so a new client on the same address (the user, on 127.0.0.1) is answered. */
static void test_idle_connections_give_way_per_address(void **state)
{
    struct srv *s = *state;
    enum { N = ADMIN_MAX_PENDING_PER_ADDR + 3 };
    int fds[N];
    char out[4096];
    for (int i = 0; i < N; i++)
        fds[i] = connect_from(1, s->port);
    int fd = connect_from(1, s->port);
    send_str(fd, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    /* the newest ADMIN_MAX_PENDING_PER_ADDR - 1 are open, besides the one answered */
    for (int i = 0; i < N; i++)
        if (closed_now(fds[i]) != (i < N - (ADMIN_MAX_PENDING_PER_ADDR - 1)))
            fail_msg("idle connection %d of %d: %s", i, N, closed_now(fds[i]) ? "closed" : "open");
    /* another address has a quota of its own */
    int other = connect_from(2, s->port);
    send_str(other, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port));
    assert_int_equal(read_response(other, out, sizeof(out)), 200);
    assert_false(closed_now(fds[N - 1]));
    close(other);
    close(fd);
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

/* All ADMIN_MAX_CLIENTS taken by idle connections from many addresses: the oldest of all gives
 * way to a new one. */
static void test_idle_connections_give_way_when_full(void **state)
{
    struct srv *s = *state;
    enum { PER = ADMIN_MAX_PENDING_PER_ADDR, HOSTS = ADMIN_MAX_CLIENTS / PER };
    int fds[HOSTS * PER];
    char out[4096];
    for (int h = 0; h < HOSTS; h++)
        for (int i = 0; i < PER; i++)
            fds[h * PER + i] = connect_from(10 + h, s->port);
    int fd = connect_from(9, s->port);
    send_str(fd, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port));
    assert_int_equal(read_response(fd, out, sizeof(out)), 200);
    assert_true(closed_now(fds[0]));
    for (int i = 1; i < HOSTS * PER; i++)
        if (closed_now(fds[i]))
            fail_msg("idle connection %d closed, only the oldest should be", i);
    close(fd);
    for (int i = 0; i < HOSTS * PER; i++)
        close(fds[i]);
}

static void test_stop_with_open_connections(void **state)
{
    struct srv *s = *state;
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = connect_to(s->port);
    send_str(fds[1], "GET /api/sta");
    char out[4096];
    assert_int_equal(call(s, reqf("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                                  s->port), out, sizeof(out)), 200);
    shunt_admin_stop(s->a);
    s->a = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recv(fds[i], out, sizeof(out), 0), 0);
        close(fds[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authority_accepts_own_addresses),
        cmocka_unit_test(test_authority_refuses_others),
        cmocka_unit_test(test_authority_without_port_only_on_80),
        cmocka_unit_test(test_authority_ipv6_local_address),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_json_content_type),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_quote_makes_printable),
        cmocka_unit_test(test_token_file_newlines),
        cmocka_unit_test(test_token_file_empty_or_too_long),
        cmocka_unit_test(test_token_file_mode_and_absence),
        cmocka_unit_test(test_token_check),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_list_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_switch_put_and_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_host_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_without_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup, teardown),
        cmocka_unit_test(test_non_loopback_needs_token),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_and_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_request_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_deadlines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connections_give_way_per_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_connections_give_way_when_full, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_open_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
