/* tests/unit/proxy/test_head.c - the heads a proxy sends, as a table: what goes upstream
 * (Proxy-Connection and Proxy-Authorization dropped, Host set or added, Via added, a
 * repeated Content-Length made one, origin-form) and what goes to the client (status line
 * repaired, Proxy-Support, Via, Content-Length), with the changes each records; and the
 * rules' edit on top of the builder's keeps both. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/head.h"

static struct shunt_http_header hdrs[32];
static struct shunt_http_head head;
static struct shunt_edit_field fields[40];
static struct shunt_arena arena;
static char notes[1024];

static void note(void *ud, const char *what, const char *by)
{
    size_t l = strlen(notes);
    snprintf(notes + l, sizeof(notes) - l, "%s[%s];", what, by);
}

static void parse(const char *text, int response)
{
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_error err;
    memset(&head, 0, sizeof(head));
    int r = response ? shunt_http_parse_response(text, strlen(text), 0, &head, hdrs, 32, &lim, &err)
                     : shunt_http_parse_request(text, strlen(text), 0, &head, hdrs, 32, &lim, &err);
    assert_int_equal(r, (int)strlen(text));
}

/* The head as it would go out: <start>, the lines of <e>, the empty line. */
static const char *wire(struct shunt_slice start, const struct shunt_head_edit *e)
{
    static char out[2048];
    struct shunt_slice l[40];
    size_t n = shunt_head_lines(e, l, 0), k = 0;
    memcpy(out, start.base, start.len);
    k = start.len;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + k, l[i].base, l[i].len);
        k += l[i].len;
    }
    memcpy(out + k, "\r\n", 3);
    return out;
}

static int setup(void **state)
{
    shunt_arena_init(&arena);
    notes[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    shunt_arena_dispose(&arena);
    return 0;
}

/* One case of the table: a request, the plan, what goes upstream and the notes. */
struct req_case {
    const char *in;
    const char *path; /* origin-form path, or NULL */
    const char *host; /* Host wanted, or NULL */
    int via;
    int needs_slash;
    const char *out;
    const char *notes;
};

static void run_request(const struct req_case *c)
{
    notes[0] = '\0';
    shunt_arena_reset(&arena);
    parse(c->in, 0);
    struct shunt_head_plan plan = {0};
    if (c->path != NULL)
        plan.path = shunt_slice_make(c->path, strlen(c->path));
    if (c->host != NULL)
        plan.host = shunt_slice_make(c->host, strlen(c->host));
    plan.host_by = "proxy";
    plan.via = c->via;
    plan.path_needs_slash = c->needs_slash;
    struct shunt_head_edit e;
    struct shunt_slice start = shunt_head_request_line(&head, c->in, &plan, &arena, note, NULL);
    shunt_head_request_fields(&head, &plan, &arena, &e, fields, 40, note, NULL);
    assert_string_equal(wire(start, &e), c->out);
    assert_string_equal(notes, c->notes);
    shunt_edit_dispose(&e);
}

static void test_request_table(void **state)
{
    static const struct req_case cases[] = {
        /* nothing to do: every byte as it came */
        {"GET / HTTP/1.1\r\nhost:  a.example \r\nX-A: 1\r\n\r\n", NULL, NULL, 0, 0,
         "GET / HTTP/1.1\r\nhost:  a.example \r\nX-A: 1\r\n\r\n", ""},
        /* a forward proxy: origin-form, Proxy-Connection and Proxy-Authorization dropped */
        {"GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\nProxy-Connection: "
         "keep-alive\r\nProxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n",
         "/x?y", "a.example", 0, 0,
         "GET /x?y HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n",
         "request line to origin-form[proxy];remove Proxy-Connection[proxy];"
         "remove Proxy-Authorization[proxy];"},
        /* Host set to the target's, in its place and its spelling; one differing only in
         * case is the same host and stays */
        {"GET http://b.example:81/ HTTP/1.1\r\nX-A: 1\r\nhOsT: a.example\r\nX-B: 2\r\n\r\n", "/",
         "b.example:81", 0, 0,
         "GET / HTTP/1.1\r\nX-A: 1\r\nhOsT: b.example:81\r\nX-B: 2\r\n\r\n",
         "request line to origin-form[proxy];set Host to the target's[proxy];"},
        {"GET / HTTP/1.1\r\nHost: A.Example\r\n\r\n", NULL, "a.example", 0, 0,
         "GET / HTTP/1.1\r\nHost: A.Example\r\n\r\n", ""},
        /* HTTP/1.0 without Host: added, before Via */
        {"GET / HTTP/1.0\r\nX-A: 1\r\n\r\n", NULL, "a.example", 1, 0,
         "GET / HTTP/1.0\r\nX-A: 1\r\nHost: a.example\r\nVia: 1.1 shunt\r\n\r\n",
         "add Host[proxy];add Via[--via];"},
        /* a length said twice with one value: one field, in the first one's place */
        {"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n",
         NULL, NULL, 0, 0,
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
         "Content-Length 5, 5 sent as one field (RFC 9110 8.6)[shunt];"},
        /* "http://h?q": the path gets its slash */
        {"GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n", "?q", "a", 0, 1,
         "GET /?q HTTP/1.1\r\nHost: a\r\n\r\n", "request line to origin-form[proxy];"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_request(&cases[i]);
    }
}

static void test_untouched_fields_go_out_as_one_run(void **state)
{
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nProxy-Connection: x\r\nC: 3\r\n\r\n";
    parse(in, 0);
    struct shunt_head_plan plan = {0};
    struct shunt_head_edit e;
    shunt_head_request_fields(&head, &plan, &arena, &e, fields, 40, NULL, NULL);
    struct shunt_slice l[40];
    size_t n = shunt_head_lines(&e, l, 0);
    /* two runs of the client's bytes, with no copy: before and after the dropped field */
    assert_int_equal(n, 2);
    assert_ptr_equal(l[0].base, strstr(in, "Host"));
    assert_int_equal(l[0].len, strlen("Host: a\r\nA: 1\r\nB: 2\r\n"));
    assert_ptr_equal(l[1].base, strstr(in, "C: 3"));
    shunt_edit_dispose(&e);
}

static void test_rules_edit_the_builders_head(void **state)
{
    const char *in = "GET http://b/ HTTP/1.1\r\nHost: a\r\nProxy-Connection: x\r\nX-A: 1\r\n\r\n";
    parse(in, 0);
    struct shunt_head_plan plan = {.host = SHUNT_SLICE_LIT("b"), .host_by = "proxy", .via = 1};
    struct shunt_head_edit e;
    shunt_head_request_fields(&head, &plan, &arena, &e, fields, 40, NULL, NULL);
    int found;
    struct shunt_slice h = shunt_edit_get(&e, "Host", 4, &found);
    assert_true(found && shunt_slice_eq(h, "b", 1)); /* the rules see the Host that goes */
    assert_int_equal(shunt_edit_set(&e, "X-A", 3, "2", 1), 0);
    assert_int_equal(shunt_edit_add(&e, "X-B", 3, "3", 1), 0);
    assert_string_equal(wire(SHUNT_SLICE_LIT("GET / HTTP/1.1\r\n"), &e),
                        "GET / HTTP/1.1\r\nHost: b\r\nX-A: 2\r\nVia: 1.1 shunt\r\nX-B: 3\r\n\r\n");
    shunt_edit_dispose(&e);
}

static void test_response_table(void **state)
{
    /* as it came */
    parse("HTTP/1.1 200 OK\r\nProxy-Connection: x\r\nContent-Length: 0\r\n\r\n", 1);
    struct shunt_head_plan plan = {0};
    struct shunt_head_edit e;
    const char *raw = "HTTP/1.1 200 OK\r\nProxy-Connection: x\r\nContent-Length: 0\r\n\r\n";
    struct shunt_slice st = shunt_head_status_line(&head, raw, &arena, note, NULL);
    shunt_head_response_fields(&head, &plan, &arena, &e, fields, 40, note, NULL);
    assert_string_equal(wire(st, &e), raw); /* responses keep Proxy-Connection, as before */
    assert_string_equal(notes, "");
    shunt_edit_dispose(&e);

    /* a status line without the SP before its empty reason; a 401 challenge in forward
     * mode; --via; a repeated length */
    raw = "HTTP/1.1 401\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n";
    parse(raw, 1);
    plan = (struct shunt_head_plan){.proxy_support = 1, .via = 1};
    st = shunt_head_status_line(&head, raw, &arena, note, NULL);
    shunt_head_response_fields(&head, &plan, &arena, &e, fields, 40, note, NULL);
    assert_string_equal(wire(st, &e),
                        "HTTP/1.1 401 \r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n"
                        "Proxy-Support: Session-Based-Authentication\r\nVia: 1.1 shunt\r\n\r\n");
    assert_string_equal(notes,
                        "status line \"HTTP/1.1 401\" sent as \"HTTP/1.1 401 \" (RFC 9112 4)[shunt];"
                        "Content-Length 0, 0 sent as one field (RFC 9110 8.6)[shunt];"
                        "add Proxy-Support: Session-Based-Authentication[proxy];add Via[--via];");
    shunt_edit_dispose(&e);

    /* a head already recorded (a held response released): no note again */
    notes[0] = '\0';
    st = shunt_head_status_line(&head, raw, &arena, NULL, NULL);
    assert_int_equal(st.len, 15);
    assert_string_equal(notes, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untouched_fields_go_out_as_one_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_edit_the_builders_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
