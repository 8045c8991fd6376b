/* fuzz/fuzz_luapat.c - the rules' counted string patterns (src/rules/luapat.c) against Lua's
 * own string library: the same call in two states, one with the library's find, match,
 * gmatch and gsub, one with the counted ones, must give the same results or the same error.
 * The subject is what traffic sends (a header value), so a difference is a bug a client can
 * reach; the sanitizers watch the matcher itself.
 *
 * Input: byte 0 picks the function (find, match, gmatch, gsub, or find plain), byte 1 the
 * init position (-8..+23), byte 2 the pattern's length (up to 48 bytes), then the pattern,
 * then the subject (up to 256 bytes). The counted matcher runs first under a step budget; the
 * library runs only when it finished within it, since the library cannot be stopped (that
 * is the reason the counted one exists).
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/luapat.h"

#define BUDGET 200000 /* steps: far below what would make the library take long */

static lua_State *ref, *counted;
static size_t spent;

static void charge(lua_State *L, size_t steps)
{
    spent += steps;
    if (spent > BUDGET)
        luaL_error(L, "budget spent");
}

static const struct shunt_luapat_budget budget = {charge};

/* Runs the call; returns its results (or its error) as one comparable Lua string on the
 * stack of <L>, and sets *<err> when it raised. */
static const char *run(lua_State *L, int fn, int init, const char *p, size_t lp, const char *s,
                       size_t ls, size_t *len, int *err)
{
    static const char *const chunk =
        "local fn, s, p, init = ...\n"
        "local out = {}\n"
        "local function add(...) for i = 1, select('#', ...) do\n"
        "  local v = select(i, ...); out[#out + 1] = type(v) .. ':' .. tostring(v) end end\n"
        "if fn == 0 then add(string.find(s, p, init))\n"
        "elseif fn == 1 then add(string.match(s, p, init))\n"
        "elseif fn == 2 then local n = 0\n"
        "  for a, b, c in string.gmatch(s, p, init) do add(a, b, c); n = n + 1\n"
        "    if n > 64 then break end end\n"
        "elseif fn == 3 then add(string.gsub(s, p, '<%0|%1>', 7))\n"
        "elseif fn == 4 then add(string.gsub(s, p, {a = 'A', [''] = false}))\n"
        "else add(string.find(s, p, init, true)) end\n"
        "return table.concat(out, '\\n')\n";
    lua_settop(L, 0);
    if (luaL_loadstring(L, chunk) != LUA_OK)
        abort();
    lua_pushinteger(L, fn);
    lua_pushlstring(L, s, ls);
    lua_pushlstring(L, p, lp);
    lua_pushinteger(L, init);
    *err = lua_pcall(L, 4, 1, 0) != LUA_OK;
    return lua_tolstring(L, -1, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ref == NULL) {
        ref = luaL_newstate();
        luaL_openlibs(ref);
        counted = luaL_newstate();
        luaL_openlibs(counted);
        lua_getglobal(counted, "string");
        shunt_luapat__replace(counted, &budget);
        lua_pop(counted, 1);
    }
    if (size < 3)
        return 0;
    int fn = data[0] % 6;
    int init = (int)(data[1] % 32) - 8;
    size_t lp = data[2] % 49;
    if (3 + lp > size)
        return 0;
    const char *p = (const char *)data + 3, *s = p + lp;
    size_t ls = size - 3 - lp;
    if (ls > 256)
        ls = 256;

    spent = 0;
    size_t cl, rl;
    int cerr, rerr;
    const char *c = run(counted, fn, init, p, lp, s, ls, &cl, &cerr);
    if (cerr && c != NULL && strstr(c, "budget spent") != NULL)
        return 0; /* stopped, as it should be: the library might run for minutes here */
    const char *r = run(ref, fn, init, p, lp, s, ls, &rl, &rerr);
    if (cerr != rerr || (c == NULL) != (r == NULL) ||
        (c != NULL && (cl != rl || memcmp(c, r, cl) != 0))) {
        fprintf(stderr, "fuzz_luapat: fn %d init %d pattern \"%.*s\" subject \"%.*s\"\n", fn, init,
                (int)lp, p, (int)ls, s);
        fprintf(stderr, "  counted (%s): %.*s\n  library (%s): %.*s\n", cerr ? "error" : "ok",
                (int)cl, c ? c : "", rerr ? "error" : "ok", (int)rl, r ? r : "");
        abort();
    }
    return 0;
}
