/* tests/unit/rules/test_lua_sandbox.c - the Lua sandbox against hostile rules (issue 10):
 * every C function exposed to Lua refuses arguments of the wrong type with a Lua error and
 * the exposed metatables are out of reach; the instruction budget holds across coroutines,
 * string patterns, finalizers and close; the memory limit covers the C side; the known
 * crashes of Lua 5.4.4 fail as rule errors. Run under ASan too: a crash is a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "rules/lua.h"
#include "rules/options.h"

static const char head_text[] = "HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";

static struct shunt_http_header hdrs[16];
static struct shunt_http_head head;
static char dir[] = "/tmp/shunt-lua-sandbox-XXXXXX";
static char path[300];

struct seen {
    char what[16][600];
    int n;
};

static void on_change(void *cctx, const char *what, const char *by)
{
    struct seen *s = cctx;
    if (s->n < 16)
        snprintf(s->what[s->n++], sizeof(s->what[0]), "%s", what);
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

static struct shunt_lua *load(const char *text)
{
    char err[512];
    struct shunt_lua *lx = NULL;
    write_rules(text);
    int r = shunt_lua_load(path, 0, 1, &lx, err, sizeof(err));
    if (r != 0)
        fail_msg("load: %s", err);
    return lx;
}

/* Runs on_request (<request> 1) or on_response with s.request.url = <url>; the changes
 * reported land in <seen>; returns the head's lines afterwards. */
static const char *call(struct shunt_lua *lx, int request, const char *url, struct seen *seen)
{
    static struct shunt_edit_field fields[200];
    static char out[8192];
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 200);
    struct shunt_hook_out hout = {0};
    struct shunt_head_ctx ctx = {0};
    ctx.is_request = request;
    ctx.status = 200;
    ctx.method = shunt_slice_make("GET", 3);
    ctx.url = shunt_slice_make(url, strlen(url));
    ctx.exchange = 1;
    ctx.out = &hout;
    memset(seen, 0, sizeof(*seen));
    shunt_lua_head_hook(lx, &e, &ctx, on_change, seen);
    size_t n = 0;
    for (size_t i = 0; i < e.n; i++)
        if (!e.f[i].removed && n + e.f[i].line.len < sizeof(out)) {
            memcpy(out + n, e.f[i].line.base, e.f[i].line.len);
            n += e.f[i].line.len;
        }
    out[n] = '\0';
    shunt_edit_dispose(&e);
    free(hout.respond_fields);
    free(hout.respond_body);
    return out;
}

/* Asserts that the call made exactly one change, an error holding <want>. */
static void assert_error(const struct seen *seen, const char *want, const char *label)
{
    if (seen->n != 1 || strncmp(seen->what[0], "error: ", 7) != 0 ||
        strstr(seen->what[0], want) == NULL)
        fail_msg("%s: expected one error with \"%s\", got %d change(s), first \"%s\"", label,
                 want, seen->n, seen->n ? seen->what[0] : "");
}

/* ------------------------------------------------------------------------ item 2 */

/* Each case runs in on_request as cases[url](s) and must end in a Lua error holding the
 * expected text, with the head left as it was. */
static const struct {
    const char *code, *error;
} wrong_args[] = {
    {"getmetatable(s).__index('AAAAAAAA', 'conn')", "attempt to index a boolean value"},
    {"error('mt=' .. tostring(getmetatable(s)))", "mt=false"},
    {"error('mt=' .. tostring(getmetatable(s.request.headers)))", "mt=false"},
    {"error('mt=' .. tostring(getmetatable(option('O'))))", "mt=false"},
    {"setmetatable(s, {})", "cannot change a protected metatable"},
    {"s.flag('AAAAAAAA', 'x')", "bad argument #1 to 'flag' (session expected, got string)"},
    {"s.flag({}, 'x')", "bad argument #1 to 'flag' (session expected, got table)"},
    {"s:flag({})", "bad argument #1 to 'flag' (string expected, got table)"},
    {"s.respond(1, 200)", "bad argument #1 to 'respond' (session expected, got number)"},
    {"s:respond('x')", "bad argument #1 to 'respond' (number expected, got string)"},
    {"s:respond(200, 'x')", "bad argument #2 to 'respond' (table expected, got string)"},
    {"s:respond(200, {}, {})", "bad argument #3 to 'respond' (string expected"},
    {"s:respond(200, {[{}] = 'x'})", "header names must be strings"},
    {"s:respond(200, {{{}, 'x'}})", "a header name must be a string"},
    {"s:respond(200, {'x'})", "header 1 is not a {name, value} pair"},
    {"s.delay(nil, 5)", "bad argument #1 to 'delay' (session expected, got nil)"},
    {"s:delay({})", "bad argument #1 to 'delay' (number expected, got table)"},
    {"local h = s.request.headers; h.get('AAAAAAAA', 'x')", "shunt.headers expected, got string"},
    {"local h = s.request.headers; h.get(s, 'x')", "shunt.headers expected, got shunt.session"},
    {"local h = s.request.headers; h:get({})", "bad argument #1 to 'get' (string expected"},
    {"local h = s.request.headers; h.get_all(1, 'x')", "shunt.headers expected, got number"},
    {"local h = s.request.headers; h:get_all()", "bad argument #1 to 'get_all' (string expected"},
    {"local h = s.request.headers; h.list(option('O'))", "shunt.headers expected, got shunt.option"},
    {"local h = s.request.headers; h.add(nil, 'a', 'b')", "shunt.headers expected, got nil"},
    {"local h = s.request.headers; h:add('a', {})", "bad argument #2 to 'add' (string expected"},
    {"local h = s.request.headers; h.set(true, 'a', 'b')", "shunt.headers expected, got boolean"},
    {"local h = s.request.headers; h:set({}, 'b')", "bad argument #1 to 'set' (string expected"},
    {"local h = s.request.headers; h:set('a', {})", "bad argument #2 to 'set' (string expected"},
    {"local h = s.request.headers; h.remove('x', 'a')", "shunt.headers expected, got string"},
    {"local h = s.request.headers; h:remove()", "bad argument #1 to 'remove' (string expected"},
    {"option({})", "bad argument #1 to 'option' (string expected, got table)"},
    {"local o = option('O'); local _ = o[{}]", "bad argument #2 to 'index' (string expected, got table)"},
    {"log(setmetatable({}, {__tostring = function() return {} end}))", "'__tostring' must return a string"},
    {"require({})", "bad argument #1 to 'require' (string expected, got table)"},
    {"require('x\\0y')", "require 'x': not a module name"},
};

static void test_exposed_functions_refuse_wrong_arguments_with_a_lua_error(void **state)
{
    char src[16384];
    size_t n = (size_t)snprintf(src, sizeof(src), "local cases = {\n");
    for (size_t i = 0; i < sizeof(wrong_args) / sizeof(wrong_args[0]); i++)
        n += (size_t)snprintf(src + n, sizeof(src) - n, "  function(s) %s end,\n",
                              wrong_args[i].code);
    snprintf(src + n, sizeof(src) - n,
             "}\nfunction on_request(s)\n"
             "  s.request.headers:set('X-Touched', '1')\n"
             "  cases[tonumber(s.request.url)](s)\n"
             "end\n");
    struct shunt_lua *lx = load(src);
    for (size_t i = 0; i < sizeof(wrong_args) / sizeof(wrong_args[0]); i++) {
        char url[16], label[300];
        snprintf(url, sizeof(url), "%zu", i + 1);
        snprintf(label, sizeof(label), "case %zu (%s)", i + 1, wrong_args[i].code);
        struct seen seen;
        const char *lines = call(lx, 1, url, &seen);
        assert_error(&seen, wrong_args[i].error, label);
        if (strstr(lines, "X-Touched") != NULL)
            fail_msg("%s: the head was not rolled back", label);
    }
    shunt_lua_free(lx);
}

/* ------------------------------------------------------------------------ item 4 */

/* Each h:set() of a new value writes a new line into the edit's store and the old one stays:
 * with a 1 MiB value in a loop the store grew until malloc failed and the process aborted. */
static void test_header_edits_count_against_the_memory_limit(void **state)
{
    struct shunt_lua *lx = load("local big = string.rep('v', 1024 * 1024)\n"
                                "function on_request(s)\n"
                                "  local h = s.request.headers\n"
                                "  h:set('X-Small', 'changed')\n"
                                "  if s.request.url == 'big' then\n"
                                "    for i = 1, 100000 do h:set('X-Big', big .. i) end\n"
                                "  end\n"
                                "end\n");
    struct seen seen;
    const char *lines = call(lx, 1, "big", &seen);
    assert_error(&seen, "rules.lua:6: set X-Big: not enough memory (rules hold at most 64 MiB)",
                 "big");
    assert_string_equal(lines, "Server: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n");
    for (int i = 0; i < 2; i++) { /* the next calls of the state are unharmed */
        lines = call(lx, 1, "small", &seen);
        assert_int_equal(seen.n, 1);
        assert_string_equal(seen.what[0], "set X-Small: changed");
        assert_non_null(strstr(lines, "X-Small: changed\r\n"));
    }
    shunt_lua_free(lx);
}

/* ------------------------------------------------------------------------ item 5 */

/* The reproducers of the Lua 5.4.4 bugs that crash or corrupt memory (docs/lua.md, "Lua
 * 5.4.4"), each run in on_request: each must end in a Lua error, not in a crash. */
static const struct {
    const char *bug, *code, *error;
} lua544[] = {
    /* The crash needs ~20000 nested coroutines; each new coroutine is charged 1000
     * instructions, so the budget (a million) stops that many first (the next case), and a
     * shorter chain meets the missing coroutine.close. */
    {"1e64c139 nested coroutine.close overflows the C stack",
     "local coro = false\n"
     "for i = 1, 20000 do\n"
     "  local previous = coro\n"
     "  coro = coroutine.create(function()\n"
     "    local cc <close> = setmetatable({}, {__close = function()\n"
     "      if previous then assert(coroutine.close(previous)) end end})\n"
     "    coroutine.yield()\n"
     "  end)\n"
     "  assert(coroutine.resume(coro))\n"
     "end\n"
     "coroutine.close(coro)\n",
     "instruction limit exceeded"},
    {"1e64c139 (a chain the budget allows)",
     "local coro = false\n"
     "for i = 1, 100 do\n"
     "  local previous = coro\n"
     "  coro = coroutine.create(function()\n"
     "    local cc <close> = setmetatable({}, {__close = function()\n"
     "      if previous then assert(coroutine.close(previous)) end end})\n"
     "    coroutine.yield()\n"
     "  end)\n"
     "  assert(coroutine.resume(coro))\n"
     "end\n"
     "coroutine.close(coro)\n",
     "attempt to call a nil value (field 'close')"},
    {"3fe7be95 a __close overwrites the message handler of a closed coroutine",
     "local c = coroutine.create(function()\n"
     "  local clo <close> = setmetatable({}, {__close = function() local x = 134; error(x) end})\n"
     "  xpcall(coroutine.yield, function() return 'XXX' end)\n"
     "end)\n"
     "assert(coroutine.resume(c))\n"
     "coroutine.close(c)\n",
     "attempt to call a nil value (field 'close')"},
    {"983bc433 use after free in luaV_finishset (weak metatable)",
     "local mt = setmetatable({__newindex = {}}, {__mode = 'v'})\n"
     "local t = setmetatable({}, mt)\n"
     "local fill = {}\n"
     "for i = 1, 1e9 do fill[i] = string.rep('x', 4096) .. i; t[i] = 1 end\n",
     "setmetatable: __gc and __mode are not allowed (sandbox)"},
    {"983bc433 with __mode added once the metatable is in use",
     "local w = {}\n"
     "local mt = setmetatable({__newindex = {}}, w)\n"
     "w.__mode = 'v'\n",
     "__mode cannot be set in a metatable (sandbox)"},
    {"1f3c6f45 (CVE-2022-28805) _ENV <const>, patched by Debian",
     "local function foo() local _ENV <const> = 11; X = 'hi' end\n"
     "foo()\n",
     "attempt to index a number value"},
    {"25da574f error in error handling",
     "local ok, m = xpcall(error, error)\n"
     "error(tostring(m))\n",
     "error in error handling"},
};

static void test_lua_544_crash_reproducers_fail_with_an_error(void **state)
{
    for (size_t i = 0; i < sizeof(lua544) / sizeof(lua544[0]); i++) {
        char src[4096];
        snprintf(src, sizeof(src), "function on_request(s)\n%s\nend\n", lua544[i].code);
        struct shunt_lua *lx = load(src);
        struct seen seen;
        call(lx, 1, "x", &seen);
        assert_error(&seen, lua544[i].error, lua544[i].bug);
        shunt_lua_free(lx);
    }
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/rules.lua", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_exposed_functions_refuse_wrong_arguments_with_a_lua_error,
                               setup),
        cmocka_unit_test_setup(test_header_edits_count_against_the_memory_limit, setup),
        cmocka_unit_test_setup(test_lua_544_crash_reproducers_fail_with_an_error, setup),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return r;
}
