/* tests/unit/rules/test_expr.c - filter expressions: every term, operators and precedence,
 * quoting, syntax and regex errors with their exact columns, hostile input, several threads
 * on one compiled expression, and evaluation without allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/expr.h"

/* ================================================================ counting allocations */

/* In the plain build, malloc and friends are wrapped to count the calls a thread makes, so
 * that "evaluation does not allocate" is checked, not assumed. The sanitizer build has its
 * own allocator: there the count stays 0 and the check is the plain build's. */
#if !defined(__SANITIZE_ADDRESS__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static _Thread_local unsigned long allocs;

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    allocs++;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}
#define ALLOCS() allocs
#else
#define ALLOCS() 0ul
#endif

/* ================================================================ subjects */

#define S(lit) {(lit), sizeof(lit) - 1}
#define H(n, v) {S(n), S(v), S(n ": " v "\r\n")}

static const struct shunt_http_header get_req[] = {
    H("Host", "Example.com"), H("User-Agent", "curl/8.0"), H("Accept", "*/*")};
static const struct shunt_http_header js_req[] = {H("Host", "example.com")};
static const struct shunt_http_header js_resp[] = {
    H("Server", "nginx"), H("Content-Type", "application/javascript; charset=utf-8"),
    H("Content-Length", "17")};
static const struct shunt_http_header post_req[] = {
    H("Host", "api.test:8080"), H("Content-Type", "application/json"),
    H("Authorization", "NTLM TlRMTVNTUAABAAAA")};
static const struct shunt_http_header post_resp[] = {H("Content-Type", "application/json")};
static const struct shunt_http_header nf_resp[] = {H("Server", "Apache"),
                                                   H("content-type", "text/html")};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The exchanges every table row is evaluated against, in this order. */
static const struct shunt_expr_subject subjects[] = {
    /* 0: a GET at request time, no response yet */
    {.method = S("GET"), .url = S("http://Example.com/index.html?q=1"), .host = S("example.com"),
     .req_headers = get_req, .n_req_headers = N(get_req), .conn_id = 1},
    /* 1: a script, 200; the client closed the connection */
    {.method = S("GET"), .url = S("http://example.com/app.js"), .host = S("example.com"),
     .status = 200, .has_response = 1, .req_headers = js_req, .n_req_headers = N(js_req),
     .resp_headers = js_resp, .n_resp_headers = N(js_resp), .resp_body = S("console.log('hi')"),
     .conn_id = 2, .closed = SHUNT_EXPR_CLOSED_CLIENT},
    /* 2: a POST with NTLM, 201; the server closed */
    {.method = S("POST"), .url = S("http://api.test:8080/items"), .host = S("api.test"),
     .status = 201, .has_response = 1, .req_headers = post_req, .n_req_headers = N(post_req),
     .resp_headers = post_resp, .n_resp_headers = N(post_resp),
     .req_body = S("{\"name\":\"Widget\"}"), .resp_body = S("{\"id\":7}"), .conn_id = 3,
     .auth = 1, .closed = SHUNT_EXPR_CLOSED_SERVER},
    /* 3: failed before any response; the proxy closed */
    {.method = S("GET"), .url = S("http://down.test/"), .host = S("down.test"), .error = 1,
     .conn_id = 4, .closed = SHUNT_EXPR_CLOSED_PROXY},
    /* 4: a 404 page on connection 2 */
    {.method = S("GET"), .url = S("http://example.com/missing"), .host = S("example.com"),
     .status = 404, .has_response = 1, .req_headers = js_req, .n_req_headers = N(js_req),
     .resp_headers = nf_resp, .n_resp_headers = N(nf_resp), .resp_body = S("<h1>Not Found</h1>"),
     .conn_id = 2, .closed = SHUNT_EXPR_CLOSED_CLIENT},
};
#define N_SUBJECTS N(subjects)

/* An expression and which subjects it takes: '1' or '0' per subject, in order. */
struct row {
    const char *expr;
    const char *want;
};

static struct shunt_expr *compile_ok(const char *text)
{
    struct shunt_expr *e = NULL;
    struct shunt_expr_error err;
    int rc = shunt_expr_compile(text, &e, &err);
    if (rc != 0)
        fail_msg("%s: rc %d, column %zu: %s", text, rc, err.column, err.message);
    assert_non_null(e);
    return e;
}

static void run_rows(const struct row *rows, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct shunt_expr *e = compile_ok(rows[k].expr);
        char got[N_SUBJECTS + 1];
        for (size_t i = 0; i < N_SUBJECTS; i++)
            got[i] = shunt_expr_match(e, &subjects[i]) ? '1' : '0';
        got[N_SUBJECTS] = '\0';
        if (strcmp(got, rows[k].want) != 0)
            fail_msg("%s: took %s, expected %s", rows[k].expr, got, rows[k].want);
        shunt_expr_free(e);
    }
}

/* ================================================================ terms */

static void test_every_term(void **state)
{
    static const struct row rows[] = {
        {"~all", "11111"},
        {"~q", "10010"},
        {"~s", "01101"},
        {"~c 200", "01000"},
        {"~c 201", "00100"},
        {"~c 404", "00001"},
        {"~e", "00010"},
        {"~m GET", "11011"},
        {"~m post", "00100"},     /* case-insensitive, as mitmproxy */
        {"~m ^P", "00100"},
        {"~d example", "11001"},
        {"~d ^EXAMPLE\\.com$", "11001"},
        {"~d api", "00100"},      /* host without its port */
        {"~u index", "10000"},
        {"~u \\.js$", "01000"},
        {"~u :8080/", "00100"},
        {"index\\.html", "10000"}, /* a bare regex is a URL regex */
        {"'example.com/index'", "10000"},
        {"~h user-agent", "10000"},
        {"~h '^server: nginx$'", "01000"}, /* "Name: value", one line */
        {"~h ^server:", "01001"},
        {"~hq server", "00000"},
        {"~hs server", "01001"},
        {"~hq '^host: example\\.com$'", "11001"},
        {"~h 'authorization: ntlm '", "00100"},
        {"~t json", "00100"},
        {"~tq json", "00100"},
        {"~ts json", "00100"},
        {"~t javascript", "01000"},
        {"~tq javascript", "00000"},
        {"~t html", "00001"},     /* the field name's case does not matter */
        {"~a", "01000"},
        {"~b Widget", "00100"},
        {"~bq widget", "00100"},
        {"~bs widget", "00000"},
        {"~bs '\"id\":7'", "00100"},
        {"~b console", "01000"},
        {"~b 'not.found'", "00001"}, /* . matches the space */
        {"~b ''", "11111"},       /* an empty regex matches an empty body too */
        {"~bs ''", "01101"},      /* but there is no response body without a response */
        {"~conn 2", "01001"},
        {"~conn 9", "00000"},
        {"~auth", "00100"},
        {"~closed client", "01001"},
        {"~closed Server", "00100"},
        {"~closed proxy", "00010"},
    };
    run_rows(rows, N(rows));
}

/* ================================================================ operators */

static void test_operators_and_precedence(void **state)
{
    static const struct row rows[] = {
        {"!~s", "10010"},
        {"! ~s", "10010"},
        {"!!~s", "01101"},
        {"~s & ~c 200", "01000"},
        {"~c 200 | ~c 404", "01001"},
        {"~c 200|~c 404", "01001"},
        {"~q&~d example", "10000"},
        /* ! binds tighter than &, & tighter than | */
        {"!~s & ~d example", "10000"},
        {"!~s | ~c 404", "10011"},
        {"~s & ~c 200 | ~e", "01010"},
        {"~e | ~s & ~c 200", "01010"},
        {"~e | ~c 200 & ~d nothing", "00010"},
        {"(~e | ~c 200) & ~d nothing", "00000"},
        {"!(~s | ~e)", "10000"},
        {"!(~q & ~d example)", "01111"},
        /* juxtaposition is & and binds loosest: ~s & (~c 404 | ~e) */
        {"~q ~d example", "10000"},
        {"~s ~c 404 | ~e", "00001"},
        {"~d example ~c 404", "00001"},
        {"~s (~c 200 | ~c 201) ~closed client", "01000"},
        {"(~s ~c 200) | ~e", "01010"},
        {"((((~c 404))))", "00001"},
        /* a bare argument runs to whitespace or ()~'": | and & inside it are the regex's */
        {"~d example.com|api", "11101"},
        {"~d api |~c 404", "00101"},
        {"~d api|~e", "00010"}, /* the regex "api|", which matches anything, and ~e */
        {"  ~c   404  ", "00001"},
        {"~c 404\n|\t~e", "00011"},
    };
    run_rows(rows, N(rows));
}

/* ================================================================ quoting */

static void test_quoted_arguments(void **state)
{
    static const struct shunt_http_header hq[] = {H("X-Note", "say \"hi\" it's 2\\3")};
    struct shunt_expr_subject s = {.method = S("GET"), .url = S("http://q.test/x.y/a b"),
                                   .host = S("q.test"), .req_headers = hq,
                                   .n_req_headers = N(hq)};
    static const struct {
        const char *expr;
        int want;
    } cases[] = {
        {"~u 'a b'", 1},              /* quotes keep whitespace */
        {"~u \"a b\"", 1},
        {"\"/x.y/a b\"", 1},          /* a quoted bare regex */
        {"~u 'x\\.y'", 1},            /* other backslashes are the regex's */
        {"~u \"x\\\\.y\"", 1},        /* \\ is one backslash: the regex x\.y */
        {"~u 'x\\\\.z'", 0},
        {"~h 'say \"hi\"'", 1},       /* the other quote needs no escape */
        {"~h \"say \\\"hi\\\"\"", 1}, /* \" inside "..." */
        {"~h 'it\\'s'", 1},           /* \' inside '...' */
        {"~h \"it's\"", 1},
        {"~h '2\\\\\\\\3'", 1},       /* \\\\ is \\: a literal backslash for the regex */
        {"~h '(hi'", -1},             /* a bad regex, quoted */
        {"~u ''", 1},
        {"~u '~(!&|)'", 0},           /* operators inside quotes are plain characters */
    };
    for (size_t k = 0; k < N(cases); k++) {
        struct shunt_expr *e = NULL;
        struct shunt_expr_error err;
        int rc = shunt_expr_compile(cases[k].expr, &e, &err);
        if (cases[k].want < 0) {
            assert_int_equal(rc, SHUNT_EPARSE);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: column %zu: %s", cases[k].expr, err.column, err.message);
        if (shunt_expr_match(e, &s) != cases[k].want)
            fail_msg("%s: expected %d", cases[k].expr, cases[k].want);
        shunt_expr_free(e);
    }
}

/* ================================================================ errors */

struct bad {
    const char *expr;
    size_t column;
    const char *message; /* exact, or the start of it when it ends in "..." */
};

static void check_bad(const struct bad *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct shunt_expr *e = (struct shunt_expr *)&e; /* must be reset to NULL */
        struct shunt_expr_error err;
        int rc = shunt_expr_compile(b[k].expr, &e, &err);
        if (rc != SHUNT_EPARSE)
            fail_msg("%s: rc %d, expected SHUNT_EPARSE", b[k].expr, rc);
        assert_null(e);
        size_t ml = strlen(b[k].message);
        int prefix = ml >= 3 && strcmp(b[k].message + ml - 3, "...") == 0;
        if (err.column != b[k].column ||
            (prefix ? strncmp(err.message, b[k].message, ml - 3) != 0
                    : strcmp(err.message, b[k].message) != 0))
            fail_msg("%s: column %zu: \"%s\"; expected column %zu: \"%s\"", b[k].expr,
                     err.column, err.message, b[k].column, b[k].message);
    }
}

static void test_syntax_errors_point_at_the_column(void **state)
{
    static const struct bad rows[] = {
        {"", 1, "empty expression"},
        {"   ", 1, "empty expression"},
        {"~x", 1, "unknown filter ~x"},
        {"~q & ~zz", 6, "unknown filter ~zz"},
        {"~c200", 1, "unknown filter ~c200"},
        {"~", 1, "expected a filter name after ~"},
        {"~q ~", 4, "expected a filter name after ~"},
        {"~src 10.0.0.1", 1, "~src is a mitmproxy filter that shunt does not have"},
        {"~q &", 5, "expected a filter after &, found the end"},
        {"& ~q", 1, "expected a filter here, found &"},
        {"~q | | ~s", 6, "expected a filter here, found |"},
        {"~q & & ~s", 6, "expected a filter after &, found &"},
        {"!", 2, "expected a filter after !, found the end"},
        {"~q ! ", 6, "expected a filter after !, found the end"},
        {"(~q", 1, "this ( is never closed"},
        {"~s & (~q | (~e)", 6, "this ( is never closed"},
        {"~q )", 4, "unexpected ) without a matching ("},
        {"(~q))", 5, "unexpected ) without a matching ("},
        {"()", 2, "expected a filter here, found )"},
        {"~c", 3, "~c needs a status code (100-999)"},
        {"~c 20x", 4, "~c needs a status code (100-999)"},
        {"~c 99", 4, "~c needs a status code (100-999)"},
        {"~c 1000", 4, "~c needs a status code (100-999)"},
        {"~c '200'", 4, "~c needs a status code (100-999)"},
        {"~c 99999999999999999999999", 4, "~c needs a status code (100-999)"},
        {"~conn 0", 7, "~conn needs a connection id (1, 2, ...)"},
        {"~conn x", 7, "~conn needs a connection id (1, 2, ...)"},
        {"~closed nobody", 9, "~closed needs client, server or proxy"},
        {"~closed", 8, "~closed needs client, server or proxy"},
        {"~d", 3, "~d needs a regular expression"},
        {"~d   ", 6, "~d needs a regular expression"},
        {"~d 'abc", 4, "unterminated string: no closing '"},
        {"~q \"abc\\\"", 4, "unterminated string: no closing \""},
        {"~d (x)", 4, "~d needs a regular expression before '(' (quote one that starts with it)"},
        {"~d ~q", 4, "~d needs a regular expression before '~' (quote one that starts with it)"},
        /* columns count characters: é is two bytes, one column */
        {"~d \xc3\xa9 ~x", 6, "unknown filter ~x"},
        {"\xc3\xa9\xc3\xa9 & (", 7, "expected a filter here, found the end"},
        {"\xc3\xa9\xc3\xa9 & (~q", 6, "this ( is never closed"},
    };
    check_bad(rows, N(rows));
}

static void test_regex_errors_point_at_the_argument(void **state)
{
    static const struct bad rows[] = {
        {"~d 'a(b'", 4, "~d: bad regular expression: missing closing parenthesis..."},
        {"~q & ~u [z-a]", 9, "~u: bad regular expression: range out of order in character "
                             "class (at offset 3 of the pattern)"},
        {"~h *x", 4, "~h: bad regular expression: quantifier does not follow a repeatable item..."},
        {"~b \\", 4, "~b: bad regular expression: \\ at end of pattern..."},
        {"a(~q", 2, "this ( is never closed"}, /* "a" then a group, not a regex error */
        {"~q [", 4, "bare regex: bad regular expression: missing terminating ]..."},
        {"~u (*UTF)x", 4, "~u needs a regular expression before '('..."},
        {"~u '(*UTF)x'", 4, "~u: bad regular expression: using UTF is disabled..."},
    };
    check_bad(rows, N(rows));
}

/* ================================================================ hostile input */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t k = 0; k < n; k++)
        memcpy(s + hl + k * ul, unit, ul);
    memcpy(s + hl + n * ul, tail, tl + 1);
    return s;
}

static void test_nesting_is_bounded(void **state)
{
    struct shunt_expr *e;
    struct shunt_expr_error err;
    /* As deep as allowed: fine. */
    char *open = repeat("", "(", SHUNT_EXPR_MAX_DEPTH, "");
    char *close = repeat("~c 404", ")", SHUNT_EXPR_MAX_DEPTH, "");
    char *ok = malloc(strlen(open) + strlen(close) + 1);
    assert_non_null(ok);
    strcpy(ok, open);
    strcat(ok, close);
    assert_int_equal(shunt_expr_compile(ok, &e, &err), 0);
    assert_int_equal(shunt_expr_match(e, &subjects[4]), 1);
    shunt_expr_free(e);
    free(open);
    free(close);
    free(ok);
    /* One deeper, with parentheses, with !, and mixed: refused at the 65th. */
    const char *units[] = {"(", "!", "!("};
    for (int u = 0; u < 3; u++) {
        char *deep = repeat("", units[u], 1000, "~q");
        assert_int_equal(shunt_expr_compile(deep, &e, &err), SHUNT_EPARSE);
        assert_null(e);
        assert_string_equal(err.message, "nested too deeply (more than 64 levels of ( and !)");
        assert_int_equal(err.column, 65); /* ( and ! count alike */
        free(deep);
    }
    /* An even number of ! within the bound is the term itself. */
    char *nots = repeat("", "!", 64, "~s");
    assert_int_equal(shunt_expr_compile(nots, &e, &err), 0);
    assert_int_equal(shunt_expr_match(e, &subjects[1]), 1);
    shunt_expr_free(e);
    free(nots);
}

static void test_length_is_bounded(void **state)
{
    struct shunt_expr *e;
    struct shunt_expr_error err;
    /* The longest accepted: ~1600 terms in one & chain, ~1600 juxtaposed, ~1600 in a |. */
    const char *units[] = {" & ~all", " ~all", " | ~e"};
    const char *want = "11111";
    for (int u = 0; u < 3; u++) {
        size_t ul = strlen(units[u]);
        char *s = repeat("~all", units[u], (SHUNT_EXPR_MAX_LEN - 4) / ul, "");
        assert_true(strlen(s) <= SHUNT_EXPR_MAX_LEN);
        assert_int_equal(shunt_expr_compile(s, &e, &err), 0);
        for (size_t i = 0; i < N_SUBJECTS; i++)
            assert_int_equal(shunt_expr_match(e, &subjects[i]), want[i] - '0');
        shunt_expr_free(e);
        free(s);
    }
    /* One byte more than the limit. */
    char *big = repeat("", "~", SHUNT_EXPR_MAX_LEN + 1, "");
    assert_int_equal(shunt_expr_compile(big, &e, &err), SHUNT_EPARSE);
    assert_null(e);
    assert_int_equal(err.column, SHUNT_EXPR_MAX_LEN + 1);
    assert_string_equal(err.message, "expression too long (over 8192 bytes)");
    free(big);
    /* A megabyte of garbage, and every byte value, never crash. */
    char *huge = repeat("", "(~", 1 << 19, "");
    assert_int_equal(shunt_expr_compile(huge, &e, &err), SHUNT_EPARSE);
    free(huge);
    char all[256];
    for (int c = 0; c < 256; c++)
        all[c] = (char)(c == 0 ? 1 : c);
    for (int c = 1; c < 256; c++) {
        if (shunt_expr_compile_n(all + c, (size_t)(256 - c), &e, &err) == 0) {
            (void)shunt_expr_match(e, &subjects[2]);
            shunt_expr_free(e);
        }
    }
    /* NUL bytes are regex characters, with the length given. */
    assert_int_equal(shunt_expr_compile_n("~b a\0b", 6, &e, &err), 0);
    struct shunt_expr_subject s = {.req_body = {"xa\0by", 5}};
    assert_int_equal(shunt_expr_match(e, &s), 1);
    s.req_body.len = 3;
    assert_int_equal(shunt_expr_match(e, &s), 0);
    shunt_expr_free(e);
}

static void test_catastrophic_regex_stops_at_the_limit(void **state)
{
    struct shunt_expr *e = compile_ok("~b '(a+)+$'");
    char body[64];
    memset(body, 'a', sizeof(body));
    body[sizeof(body) - 1] = 'b';
    struct shunt_expr_subject s = {.req_body = {body, sizeof(body)}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(shunt_expr_match(e, &s), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 10.0); /* 2^63 steps without the limit */
    shunt_expr_free(e);
}

/* ================================================================ what it needs */

static void test_needs_says_what_to_load(void **state)
{
    static const struct {
        const char *expr;
        unsigned needs;
        int bodies;
    } cases[] = {
        {"~q & ~c 200 | ~d x ~conn 3 ~auth ~closed client ~m GET ~u / ~e ~all", 0, 0},
        {"~h x", SHUNT_EXPR_NEED_REQ_HEADERS | SHUNT_EXPR_NEED_RESP_HEADERS, 0},
        {"~hq x", SHUNT_EXPR_NEED_REQ_HEADERS, 0},
        {"~hs x | ~a", SHUNT_EXPR_NEED_RESP_HEADERS, 0},
        {"~t x", SHUNT_EXPR_NEED_REQ_HEADERS | SHUNT_EXPR_NEED_RESP_HEADERS, 0},
        {"~tq x", SHUNT_EXPR_NEED_REQ_HEADERS, 0},
        {"!~ts x", SHUNT_EXPR_NEED_RESP_HEADERS, 0},
        {"~b x", SHUNT_EXPR_NEED_REQ_BODY | SHUNT_EXPR_NEED_RESP_BODY, 1},
        {"~q (~bq x)", SHUNT_EXPR_NEED_REQ_BODY, 1},
        {"~bs x", SHUNT_EXPR_NEED_RESP_BODY, 1},
    };
    for (size_t k = 0; k < N(cases); k++) {
        struct shunt_expr *e = compile_ok(cases[k].expr);
        assert_int_equal(shunt_expr_needs(e), cases[k].needs);
        assert_int_equal(shunt_expr_uses_bodies(e), cases[k].bodies);
        assert_string_equal(shunt_expr_text(e), cases[k].expr);
        shunt_expr_free(e);
    }
}

/* ================================================================ threads, allocation */

static const char threaded_expr[] =
    "(~h '^server: (nginx|apache)$' | ~b 'widget|console') & !~e | ~t json";
static const char threaded_want[] = "01101";

static void *eval_many(void *arg)
{
    const struct shunt_expr *e = arg;
    for (int round = 0; round < 20000; round++) {
        size_t i = (size_t)round % N_SUBJECTS;
        if (shunt_expr_match(e, &subjects[i]) != threaded_want[i] - '0')
            return (void *)1;
    }
    return NULL;
}

static void test_threads_share_one_compiled_expression(void **state)
{
    struct shunt_expr *e = compile_ok(threaded_expr);
    pthread_t th[8];
    for (int k = 0; k < 8; k++)
        assert_int_equal(pthread_create(&th[k], NULL, eval_many, e), 0);
    for (int k = 0; k < 8; k++) {
        void *r;
        assert_int_equal(pthread_join(th[k], &r), 0);
        assert_null(r);
    }
    shunt_expr_free(e);
}

static void test_evaluation_does_not_allocate(void **state)
{
    unsigned long at_start = ALLOCS();
    struct shunt_expr *e = compile_ok(threaded_expr);
#if !defined(__SANITIZE_ADDRESS__)
    assert_true(ALLOCS() > at_start); /* the counting works: compiling allocates */
#else
    (void)at_start;
#endif
    /* The first evaluation on this thread makes its state and line buffer. */
    for (size_t i = 0; i < N_SUBJECTS; i++)
        (void)shunt_expr_match(e, &subjects[i]);
    unsigned long before = ALLOCS();
    for (int round = 0; round < 1000; round++)
        for (size_t i = 0; i < N_SUBJECTS; i++)
            assert_int_equal(shunt_expr_match(e, &subjects[i]), threaded_want[i] - '0');
    assert_int_equal(ALLOCS() - before, 0);
    shunt_expr_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_term),
        cmocka_unit_test(test_operators_and_precedence),
        cmocka_unit_test(test_quoted_arguments),
        cmocka_unit_test(test_syntax_errors_point_at_the_column),
        cmocka_unit_test(test_regex_errors_point_at_the_argument),
        cmocka_unit_test(test_nesting_is_bounded),
        cmocka_unit_test(test_length_is_bounded),
        cmocka_unit_test(test_catastrophic_regex_stops_at_the_limit),
        cmocka_unit_test(test_needs_says_what_to_load),
        cmocka_unit_test(test_threads_share_one_compiled_expression),
        cmocka_unit_test(test_evaluation_does_not_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
