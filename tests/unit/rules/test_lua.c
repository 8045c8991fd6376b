/* tests/unit/rules/test_lua.c - Lua rules called as the proxy calls them: edits and their
 * reports, a failing call rolled back even after the edit's store moved, the instruction
 * limit, stale header objects, reload keeping the old rules on a syntax error, and each
 * worker building its own state on its own thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "rules/lua.h"
#include "rules/options.h"

static const char head_text[] = "HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";

static struct shunt_http_header hdrs[16];
static struct shunt_http_head head;
static char dir[] = "/tmp/shunt-lua-test-XXXXXX";
static char path[300];

struct seen {
    char what[16][400], by[16][200];
    int n;
};

static void on_change(void *cctx, const char *what, const char *by)
{
    struct seen *s = cctx;
    if (s->n < 16) {
        snprintf(s->what[s->n], sizeof(s->what[0]), "%s", what);
        snprintf(s->by[s->n], sizeof(s->by[0]), "%s", by);
        s->n++;
    }
}

static void write_rules(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_error err;
    memset(&head, 0, sizeof(head));
    int r = shunt_http_parse_response(head_text, sizeof(head_text) - 1, 0, &head, hdrs, 16, &lim,
                                      &err);
    assert_int_equal(r, (int)sizeof(head_text) - 1);
    shunt_options_reset();
    shunt_log_threshold = SHUNT_LOG_ERROR + 1; /* quiet */
    return 0;
}

static const char *lines(const struct shunt_head_edit *e)
{
    static _Thread_local char out[8192];
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        if (!e->f[i].removed) {
            memcpy(out + n, e->f[i].line.base, e->f[i].line.len);
            n += e->f[i].line.len;
        }
    out[n] = '\0';
    return out;
}

/* Runs the response hook of <lx> on worker <worker>; returns the lines sent. */
static const char *respond(struct shunt_lua *lx, int worker, struct seen *seen)
{
    static _Thread_local struct shunt_edit_field fields[200];
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 200);
    struct shunt_head_ctx ctx = {0};
    ctx.status = 200;
    ctx.method = shunt_slice_make("GET", 3);
    ctx.url = shunt_slice_make("http://h/", 9);
    ctx.worker = worker;
    ctx.exchange = 1;
    memset(seen, 0, sizeof(*seen));
    shunt_lua_head_hook(lx, &e, &ctx, on_change, seen);
    const char *out = lines(&e);
    shunt_edit_dispose(&e);
    return out;
}

static struct shunt_lua *load(const char *text, int workers)
{
    char err[512];
    struct shunt_lua *lx = NULL;
    write_rules(text);
    assert_int_equal(shunt_lua_load(path, 0, workers, &lx, err, sizeof(err)), 0);
    return lx;
}

static void test_edits_are_made_and_reported_with_their_line(void **state)
{
    struct shunt_lua *lx = load("function on_response(s)\n"
                                "  s.response.headers:set('Server', 'IIS')\n"
                                "  s.response.headers:add('X-B', s.request.method)\n"
                                "  s:flag('hello')\n"
                                "end\n", 1);
    struct seen seen;
    assert_string_equal(respond(lx, 0, &seen),
                        "Server: IIS\r\nX-A: 1\r\nContent-Length: 0\r\nX-B: GET\r\n");
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.what[0], "set Server: IIS");
    assert_string_equal(seen.by[0], "rules.lua:2");
    assert_string_equal(seen.what[1], "add X-B: GET");
    assert_string_equal(seen.what[2], "flag: hello");
    assert_string_equal(seen.by[2], "rules.lua");
    shunt_lua_free(lx);
}

static void test_a_failing_call_is_rolled_back_even_after_the_store_moved(void **state)
{
    struct shunt_lua *lx = load("function on_response(s)\n"
                                "  local h = s.response.headers\n"
                                "  h:remove('X-A')\n"
                                "  for i = 1, 150 do h:add('X-' .. i, string.rep('v', 100)) end\n"
                                "  h:set('Server', 'changed')\n"
                                "  error('late')\n"
                                "end\n", 1);
    struct seen seen;
    assert_string_equal(respond(lx, 0, &seen), "Server: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n");
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.what[0], "error: rules.lua:6: late");
    shunt_lua_free(lx);
}

static void test_instruction_limit_and_stale_headers(void **state)
{
    struct shunt_lua *lx = load("kept = nil\n"
                                "function on_response(s)\n"
                                "  if kept then kept:get('Server') end\n"
                                "  kept = s.response.headers\n"
                                "  s.response.headers:add('X-Loop', '1')\n"
                                "  if s.request.url ~= 'x' then while true do end end\n"
                                "end\n", 1);
    struct seen seen;
    assert_string_equal(respond(lx, 0, &seen), "Server: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n");
    assert_int_equal(seen.n, 1);
    assert_non_null(strstr(seen.what[0], "rules.lua:6: instruction limit exceeded"));
    respond(lx, 0, &seen); /* the headers kept from the last call are dead */
    assert_non_null(strstr(seen.what[0], "rules.lua:3: headers used after their hook call"));
    shunt_lua_free(lx);
}

static void test_reload_keeps_the_old_rules_on_error_and_options_survive(void **state)
{
    struct shunt_lua *lx = load("local o = option('T', false)\n"
                                "function on_response(s)\n"
                                "  if o.on then s.response.headers:set('X-V', '1') end\n"
                                "end\n", 1);
    struct seen seen;
    assert_int_equal(shunt_options_set("T", 1), 0);
    assert_non_null(strstr(respond(lx, 0, &seen), "X-V: 1\r\n"));
    char err[512];
    write_rules("function on_response(s)\n  x = = 1\nend\n");
    assert_int_not_equal(shunt_lua_reload(lx, err, sizeof(err)), 0);
    assert_string_equal(err, "rules.lua:2: unexpected symbol near '='");
    assert_non_null(strstr(respond(lx, 0, &seen), "X-V: 1\r\n"));
    write_rules("local o = option('T', false)\n"
                "function on_response(s)\n"
                "  if o.on then s.response.headers:set('X-V', '2') end\n"
                "end\n");
    assert_int_equal(shunt_lua_reload(lx, err, sizeof(err)), 0);
    assert_non_null(strstr(respond(lx, 0, &seen), "X-V: 2\r\n")); /* T still on */
    shunt_lua_free(lx);
}

struct worker_arg {
    struct shunt_lua *lx;
    int index, ok;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct seen seen;
    a->ok = 1;
    for (int i = 0; i < 200; i++)
        if (strstr(respond(a->lx, a->index, &seen), "X-W: ") == NULL)
            a->ok = 0;
    return NULL;
}

static void test_workers_each_run_their_own_state_while_reloads_happen(void **state)
{
    struct shunt_lua *lx = load("function on_response(s) s.response.headers:set('X-W', 'a') end\n",
                                4);
    /* four workers on their own threads, reloads from this one meanwhile */
    struct worker_arg a[4];
    pthread_t t[4];
    for (int w = 0; w < 4; w++) {
        a[w] = (struct worker_arg){lx, w, 0};
        assert_int_equal(pthread_create(&t[w], NULL, worker, &a[w]), 0);
    }
    for (int round = 0; round < 10; round++) {
        char err[256];
        write_rules(round % 2 ? "function on_response(s) s.response.headers:set('X-W', 'a') end\n"
                              : "function on_response(s) s.response.headers:set('X-W', 'b') end\n");
        assert_int_equal(shunt_lua_reload(lx, err, sizeof(err)), 0);
    }
    for (int w = 0; w < 4; w++) {
        pthread_join(t[w], NULL);
        assert_true(a[w].ok);
    }
    shunt_lua_free(lx);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/rules.lua", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_edits_are_made_and_reported_with_their_line, setup),
        cmocka_unit_test_setup(test_a_failing_call_is_rolled_back_even_after_the_store_moved, setup),
        cmocka_unit_test_setup(test_instruction_limit_and_stale_headers, setup),
        cmocka_unit_test_setup(test_reload_keeps_the_old_rules_on_error_and_options_survive, setup),
        cmocka_unit_test_setup(test_workers_each_run_their_own_state_while_reloads_happen, setup),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return r;
}
