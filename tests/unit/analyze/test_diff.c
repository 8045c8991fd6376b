/* tests/unit/analyze/test_diff.c - shunt diff's comparison on models built by hand: folding
 * of request targets, connection behaviour per side, early closes (by the client, inferred
 * when the closer is unknown, not when the response ended the connection), the ranking of
 * header differences (the story's Server first, presence before value, volatile values not
 * compared), statuses and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/diff.h"

/* ---------------------------------------------------------------- folding */

static void fold_table(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/item/123", "/item/{id}"},
        {"/item/123/", "/item/{id}/"},
        {"/o/550e8400-e29b-41d4-a716-446655440000/x", "/o/{id}/x"},
        {"/blob/deadbeef01", "/blob/{id}"},
        {"/blob/deadbeef", "/blob/deadbeef"},     /* a word, even in hex letters */
        {"/s/abcDEF123456ghiJ", "/s/{id}"},       /* a token of 16 with a digit */
        {"/s/abcdefghijklmnopq", "/s/abcdefghijklmnopq"},
        {"/v2/items", "/v2/items"},               /* short names with a digit stay */
        {"/report/2024.pdf", "/report/{id}.pdf"},
        {"/a.b.c", "/a.b.c"},
        {"http://Host:8080/item/7?x=1#frag", "/item/{id}?x={id}"},
        {"https://example.com", "/"},
        {"http://example.com?q=1", "/?q={id}"},
        {"/search?q=cats&page=2&flag", "/search?q=cats&page={id}&flag"},
        {"/p?id=550e8400-e29b-41d4-a716-446655440000", "/p?id={id}"},
        {"", "/"},
        {"127.0.0.1:443", "127.0.0.1:443"}, /* a CONNECT authority */
        {"*", "*"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = shunt_diff_fold_target(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    /* cut to fit, still terminated */
    assert_int_equal(shunt_diff_fold_target("/abcdefgh", 9, out, 5), 4);
    assert_string_equal(out, "/abc");
}

/* ---------------------------------------------------------------- models by hand */

#define MAX_CONNS 16
#define MAX_EX 64

/* A model with its storage; heads are string literals or the per-exchange buffers. */
struct fake {
    struct shunt_model m;
    struct shunt_model_conn c[MAX_CONNS];
    struct shunt_model_exchange e[MAX_EX];
    char req[MAX_EX][256], resp[MAX_EX][256];
};

/* Starts a new connection of <f>, closed by <closer> ("" unknown) with <how>. */
static void conn(struct fake *f, const char *closer, const char *how)
{
    assert_true(f->m.n_conns < MAX_CONNS);
    struct shunt_model_conn *c = &f->c[f->m.n_conns];
    memset(c, 0, sizeof(*c));
    c->id = (int64_t)f->m.n_conns + 1;
    c->client_addr = "127.0.0.1";
    c->closer = closer;
    c->close_how = how;
    c->host = "h";
    c->port = 80;
    c->ex = &f->e[f->m.n_ex];
    f->m.n_conns++;
}

/* Adds GET <path> to the last connection: request fields <reqf>, response <status> with
 * fields <respf> (status 0: no response). */
static void ex(struct fake *f, const char *path, const char *reqf, int status, const char *respf)
{
    assert_true(f->m.n_ex < MAX_EX && f->m.n_conns > 0);
    size_t i = f->m.n_ex++;
    struct shunt_model_exchange *e = &f->e[i];
    struct shunt_model_conn *c = &f->c[f->m.n_conns - 1];
    memset(e, 0, sizeof(*e));
    e->id = (int64_t)i + 1;
    e->conn_id = c->id;
    e->idx = (int64_t)c->n_ex + 1;
    e->method = "GET";
    e->host = "h";
    e->port = 80;
    e->status = status;
    snprintf(f->req[i], sizeof(f->req[i]), "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", path, reqf);
    e->req = e->req_up = shunt_slice_make(f->req[i], strlen(f->req[i]));
    if (status) {
        snprintf(f->resp[i], sizeof(f->resp[i]), "HTTP/1.1 %d X\r\n%s\r\n", status, respf);
        e->resp = e->resp_down = shunt_slice_make(f->resp[i], strlen(f->resp[i]));
    }
    c->n_ex++;
    c->n_handshakes += status == 401;
}

/* Links each connection to the next one as its successor (one client, one origin). */
static void done(struct fake *f)
{
    f->m.conns = f->c;
    f->m.ex = f->e;
    for (size_t i = 0; i + 1 < f->m.n_conns; i++)
        f->c[i].next = &f->c[i + 1];
}

#define SERVER "Server: Microsoft-IIS/6.0\r\nContent-Length: 2\r\n"
#define NO_SERVER "Content-Length: 2\r\n"

/* The working side: one connection, a 401 then <n> 200s with Server; the client closes it
 * at the end (no successor: not early). */
static void working(struct fake *f, int n)
{
    memset(f, 0, sizeof(*f));
    conn(f, "client", "FIN");
    ex(f, "/doc", "", 401, SERVER);
    for (int k = 0; k < n; k++)
        ex(f, "/doc", "Authorization: Negotiate x\r\n", 200, SERVER);
    done(f);
}

/* The failing side: <n> connections, each a 401 and a 200 without Server, each closed by
 * the client (<closer>; "" for a HAR that does not say). */
static void failing(struct fake *f, int n, const char *closer)
{
    memset(f, 0, sizeof(*f));
    for (int k = 0; k < n; k++) {
        conn(f, closer, closer[0] ? "FIN" : "");
        ex(f, "/doc", "", 401, NO_SERVER);
        ex(f, "/doc", "Authorization: Negotiate x\r\n", 200, NO_SERVER);
    }
    done(f);
}

static struct fake A, B;

static const struct shunt_diff_header *find(const struct shunt_diff *d, const char *name,
                                            enum shunt_diff_change change)
{
    for (size_t i = 0; i < d->n_h; i++)
        if (strcmp(d->h[i].name, name) == 0 && d->h[i].change == change)
            return &d->h[i];
    return NULL;
}

/* ---------------------------------------------------------------- the story */

static void story_ranks_the_server_header_first(void **state)
{
    (void)state;
    struct shunt_diff d;
    working(&A, 5);
    failing(&B, 5, "client");
    for (int order = 0; order < 2; order++) {
        memset(&d, 0, sizeof(d));
        assert_int_equal(shunt_diff_run(order ? &B.m : &A.m, order ? &A.m : &B.m, &d), 0);
        const struct shunt_diff_side *w = order ? &d.b : &d.a, *x = order ? &d.a : &d.b;
        assert_int_equal(w->n_conns, 1);
        assert_int_equal(w->n_ex, 6);
        assert_int_equal(w->early, 0);
        assert_int_equal(x->n_conns, 5);
        assert_int_equal(x->client_fin, 5);
        assert_int_equal(x->early, 4); /* the last close had no successor */
        assert_true(d.conns_differ);
        assert_true(d.by_origin);
        assert_int_equal(d.n_keys_shared, 1);
        assert_true(d.n_h >= 1);
        const struct shunt_diff_header *h = &d.h[0];
        assert_string_equal(h->name, "Server");
        assert_int_equal(h->part, SHUNT_DIFF_RESPONSE);
        assert_int_equal(h->change, SHUNT_DIFF_PRESENCE);
        assert_true(h->with_closes);
        /* 4 closes after a 200 without Server; 6 kept 200s (A's five, B's last), one
         * without: 4/4 - 1/6 */
        assert_int_equal(h->closed, 4);
        assert_int_equal(h->closed_with, 4);
        assert_int_equal(h->kept, 6);
        assert_int_equal(h->kept_with, 1);
        assert_true(h->score > 0.83 && h->score < 0.84);
        assert_true(shunt_diff_any(&d));
        /* the 401s are not compared with the 200s: no 401 is in the kept pool */
        shunt_diff_dispose(&d);
        assert_null(d.h);
    }
}

static void unknown_closer_is_inferred_from_the_successor(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    working(&A, 5);
    failing(&B, 5, "");
    assert_int_equal(shunt_diff_run(&A.m, &B.m, &d), 0);
    assert_int_equal(d.b.unknown, 5);
    assert_int_equal(d.b.early, 4);
    assert_string_equal(d.h[0].name, "Server");
    shunt_diff_dispose(&d);
}

static void a_trace_against_itself_is_no_difference(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    failing(&B, 4, "client");
    assert_int_equal(shunt_diff_run(&B.m, &B.m, &d), 0);
    assert_false(d.conns_differ);
    assert_int_equal(d.n_h, 0);
    assert_int_equal(d.n_only_a + d.n_only_b, 0);
    for (size_t i = 0; i < d.n_st; i++)
        assert_false(d.st[i].differs);
    assert_false(shunt_diff_any(&d));
    /* every field is still listed, with its presence on each side */
    assert_true(d.n_fields >= 3);
    shunt_diff_dispose(&d);
}

/* ---------------------------------------------------------------- ranking */

static void a_value_ranks_below_a_missing_field_of_equal_score(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    memset(&A, 0, sizeof(A));
    conn(&A, "client", "FIN");
    for (int k = 0; k < 4; k++)
        ex(&A, "/item/1", "", 200, "Server: IIS\r\nX-Backend: web-1\r\n" NO_SERVER);
    done(&A);
    memset(&B, 0, sizeof(B));
    for (int k = 0; k < 4; k++) {
        conn(&B, "client", "FIN");
        ex(&B, k % 2 ? "/item/22" : "/item/333", "", 200, "X-Backend: web-2\r\n" NO_SERVER);
    }
    done(&B);
    assert_int_equal(shunt_diff_run(&A.m, &B.m, &d), 0);
    assert_int_equal(d.n_keys_shared, 1); /* /item/N folded */
    const struct shunt_diff_header *s = find(&d, "Server", SHUNT_DIFF_PRESENCE);
    const struct shunt_diff_header *x = find(&d, "X-Backend", SHUNT_DIFF_VALUE);
    assert_non_null(s);
    assert_non_null(x);
    /* 3 closes (the fourth had no successor); kept: A's 4 and B's last: 3/3 - 1/5 */
    assert_int_equal(s->closed, 3);
    assert_true(s->score > 0.79 && s->score < 0.81);
    assert_true(s->score == x->score);
    assert_ptr_equal(s, &d.h[0]);
    assert_string_equal(x->value, "web-2");
    assert_string_equal(x->common_a, "web-1");
    assert_string_equal(x->common_b, "web-2");
    assert_true(x->rate_a == 0 && x->rate_b == 1);
    shunt_diff_dispose(&d);
}

static void values_that_change_every_time_are_not_compared(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    char f[64];
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
    conn(&A, "client", "FIN");
    conn(&B, "client", "FIN");
    for (int k = 0; k < 6; k++) {
        snprintf(f, sizeof(f), "X-Trace: a%d\r\nDate: %d\r\n", k, k);
        ex(&A, "/", "", 200, f);
        snprintf(f, sizeof(f), "X-Trace: b%d\r\nDate: %d\r\n", k, k + 100);
        ex(&B, "/", "", 200, f);
    }
    done(&A);
    done(&B);
    assert_int_equal(shunt_diff_run(&A.m, &B.m, &d), 0);
    assert_int_equal(d.n_h, 0);
    assert_false(shunt_diff_any(&d));
    for (size_t i = 0; i < d.n_fields; i++) {
        assert_false(d.fields[i].part == SHUNT_DIFF_RESPONSE && d.fields[i].values_compared);
        assert_null(d.fields[i].top[0][0]);
    }
    shunt_diff_dispose(&d);
}

static void a_response_that_ends_the_connection_is_no_early_close(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    memset(&A, 0, sizeof(A));
    conn(&A, "client", "FIN");
    for (int k = 0; k < 4; k++)
        ex(&A, "/", "", 200, "Content-Length: 2\r\n");
    done(&A);
    memset(&B, 0, sizeof(B));
    for (int k = 0; k < 4; k++) {
        conn(&B, k % 2 ? "server" : "client", "FIN");
        ex(&B, "/", "", 200, "Content-Length: 2\r\nConnection: close\r\n");
    }
    done(&B);
    assert_int_equal(shunt_diff_run(&A.m, &B.m, &d), 0);
    assert_int_equal(d.b.early, 0);
    assert_int_equal(d.b.server, 2);
    assert_true(d.conns_differ); /* 4 requests a connection against 1 */
    const struct shunt_diff_header *h = find(&d, "Connection", SHUNT_DIFF_PRESENCE);
    assert_non_null(h);
    assert_int_equal(h->closed, 0);
    assert_true(h->score == 0 && !h->with_closes);
    shunt_diff_dispose(&d);
}

static void statuses_and_requests_on_one_side(void **state)
{
    (void)state;
    struct shunt_diff d = {0};
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
    conn(&A, "client", "FIN");
    conn(&B, "client", "FIN");
    for (int k = 0; k < 19; k++) {
        ex(&A, "/x", "", 200, "");
        ex(&B, "/x", "", k == 0 ? 404 : 200, "");
    }
    ex(&A, "/only-a/7", "", 200, "");
    ex(&B, "/x", "", 0, ""); /* no response */
    done(&A);
    done(&B);
    assert_int_equal(shunt_diff_run(&A.m, &B.m, &d), 0);
    assert_int_equal(d.n_st, 3);
    assert_int_equal(d.st[0].status, 0);
    assert_true(d.st[0].differs); /* on one side only */
    assert_int_equal(d.st[1].status, 200);
    assert_int_equal(d.st[1].n_a, 20);
    assert_int_equal(d.st[1].n_b, 18);
    assert_true(d.st[1].differs); /* 100% against 90% */
    assert_int_equal(d.st[2].status, 404);
    assert_true(d.st[2].differs);
    assert_int_equal(d.n_only_a, 1);
    assert_string_equal(d.only_a[0].key, "GET h:80/only-a/{id}");
    assert_int_equal(d.n_only_b, 0);
    assert_int_equal(d.n_keys_shared, 1);
    shunt_diff_dispose(&d);
}

/* ---------------------------------------------------------------- printing */

/* Asserts that every line of <text> but the first two (the files) fits <width> columns
 * (bytes: the text here is ASCII). */
static void assert_lines_fit(const char *text, size_t width)
{
    size_t line = 0;
    for (const char *p = text; *p != '\0'; line++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (line >= 2 && len > width)
            fail_msg("line %zu is %zu columns: %.*s", line + 1, len, (int)len, p);
        p += len + (nl != NULL);
    }
}

/* A large capture: five-digit counts of closes and keeps. The line that says how the
 * feature goes with the closes was 85 columns. */
static void large_counts_fit_80_columns(void **state)
{
    (void)state;
    struct shunt_diff_header h[2] = {
        {.part = SHUNT_DIFF_RESPONSE, .change = SHUNT_DIFF_PRESENCE, .name = "Proxy-Support",
         .rate_a = 0.0001, .rate_b = 0.5, .closed = 24996, .closed_with = 24996,
         .kept = 50004, .kept_with = 50004, .score = 0},
        {.part = SHUNT_DIFF_REQUEST, .change = SHUNT_DIFF_PRESENCE, .name = "Authorization",
         .rate_a = 0.0001, .rate_b = 0.5, .closed = 24996, .closed_with = 0, .kept = 50004,
         .kept_with = 49996, .score = 0.9998, .with_closes = 0},
    };
    struct shunt_diff d = {.a = {.n_conns = 4, .n_ex = 50004},
                           .b = {.n_conns = 25000, .n_ex = 50000, .early = 24996},
                           .conns_differ = 1, .h = h, .n_h = 2};
    struct shunt_diff_info info = {"a.db", "b.db", 0, 0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    shunt_diff_print(f, &d, &info, 80);
    assert_int_equal(fclose(f), 0);
    assert_lines_fit(text, 80);
    assert_non_null(strstr(text, "    missing on 24996 of 24996 responses before an early close,\n"
                                 "    on 50004 of 50004 kept\n"));
    free(text);
}

/* 50 000 of 50 004 exchanges is not all of them: "100%" beside "4 (<1%)" said it was. */
static void a_share_short_of_all_is_not_100_percent(void **state)
{
    (void)state;
    struct shunt_diff_status st[2] = {{200, 50000, 25000, 1}, {401, 4, 25000, 1}};
    struct shunt_diff_header h = {.part = SHUNT_DIFF_RESPONSE, .change = SHUNT_DIFF_PRESENCE,
                                  .name = "Server", .rate_a = 50000.0 / 50004, .rate_b = 1};
    struct shunt_diff d = {.a = {.n_conns = 4, .n_ex = 50004},
                           .b = {.n_conns = 25000, .n_ex = 50000},
                           .st = st, .n_st = 2, .h = &h, .n_h = 1};
    struct shunt_diff_info info = {"a.db", "b.db", 0, 0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    shunt_diff_print(f, &d, &info, 80);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(text, "\n    on >99% of A's responses, 100% of B's\n"));
    assert_non_null(strstr(text, " 50000 (>99%)  25000 (50%)\n"));
    assert_non_null(strstr(text, "     4 (<1%)  25000 (50%)\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fold_table),
        cmocka_unit_test(story_ranks_the_server_header_first),
        cmocka_unit_test(unknown_closer_is_inferred_from_the_successor),
        cmocka_unit_test(a_trace_against_itself_is_no_difference),
        cmocka_unit_test(a_value_ranks_below_a_missing_field_of_equal_score),
        cmocka_unit_test(values_that_change_every_time_are_not_compared),
        cmocka_unit_test(a_response_that_ends_the_connection_is_no_early_close),
        cmocka_unit_test(statuses_and_requests_on_one_side),
        cmocka_unit_test(large_counts_fit_80_columns),
        cmocka_unit_test(a_share_short_of_all_is_not_100_percent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
