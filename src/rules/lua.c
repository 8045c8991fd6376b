/* src/rules/lua.c - Lua rules: a checked source bundle shared by all workers (swapped on
 * reload under a mutex, announced by a generation counter), and one lua_State per worker,
 * built and used only on that worker's thread.
 *
 * Every call into Lua goes through lua_pcall. C functions marked MAY_LJMP may raise (and so
 * longjmp): they hold no C resource that the jump would leak when they do. */
#include "rules/lua.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "rules/luapat.h"
#include "rules/options.h"

#define MAY_LJMP /* this function may raise a Lua error (longjmp) */

#define MAX_FILE (4u * 1024 * 1024) /* a rules file or module */
#define MAX_MODULES 64
#define SNAP_STACK 64 /* fields saved on the stack before a hook call; more: malloc */
#define MAX_PEND 256  /* changes reported one by one per call; the rest are counted */

#define MT_HEADERS "shunt.headers"
#define MT_OPTION "shunt.option"
#define MT_SESSION "shunt.session"

/* A module the rules file required while it was checked (sandbox: the rules' folder). */
struct module {
    char *name;
    char *src;
    size_t len;
};

/* One checked version of the rules: what every worker builds its state from. */
struct bundle {
    char *src;
    size_t len;
    struct module mods[MAX_MODULES];
    size_t n_mods;
};

/* A change reported once the hook call succeeded. */
struct pending {
    char what[320];
    char by[160];
};

/* A growable byte buffer on the C side, owned by the state (not by a C frame that a Lua
 * error could jump over). Its bytes count against the state's memory limit. */
struct cbuf {
    char *p;
    size_t len, cap;
};

/* The C side of one lua_State (found through lua_getextraspace). */
struct lstate {
    lua_State *L;
    const struct shunt_lua *owner;
    struct bundle *bundle; /* while the state is built: modules come from here */
    int checking;          /* the scratch state of a load/reload: modules are read from disk */
    int ref_req, ref_resp; /* the hooks, LUA_NOREF when the file does not define them */
    int ref_connect, ref_close;
    size_t mem_used; /* Lua's heap plus what the C side holds for the rules (c_grow) */
    long left;    /* instructions the call under way may still run, all threads together */
    long limit;   /* what it started with */
    int exceeded; /* the instruction budget ran out in this call */
    char exceeded_at[160]; /* where: "rules.lua:7" */
    struct cbuf build; /* s:respond()'s header lines while they are built */
    size_t store_held; /* growth of the edit's store in the call under way, in mem_used */
    /* the hook call under way */
    struct shunt_head_edit *edit;
    const struct shunt_head_ctx *ctx;
    uint64_t serial; /* bumped each call: header objects kept from an older call are dead */
    int report;      /* someone listens to changes: describe them (else skip the formatting) */
    struct pending *pend;
    size_t n_pend, cap_pend;
    size_t n_pend_dropped; /* changes past MAX_PEND in the call */
    struct shunt_hook_out out; /* s:respond() and s:delay() of the call, given to the proxy
                                  once it succeeded */
};

/* A worker's slot: touched only by that worker's thread (and by shunt_lua_free at the end). */
struct wslot {
    struct lstate *st;
    uint64_t gen;
    char pad[48];
};

struct shunt_lua {
    char *path, *dir, *name; /* "rules/x.lua", "rules", "x.lua" */
    char chunk[300];         /* "@x.lua" */
    int unsafe;
    int n_workers;
    struct wslot *slots;
    pthread_mutex_t mu;        /* guards cur */
    pthread_mutex_t reload_mu; /* one reload at a time */
    struct bundle *cur;
    atomic_uint_fast64_t gen;
};

/* ------------------------------------------------------------------------ small things */

static struct lstate *state_of(lua_State *L)
{
    return *(struct lstate **)lua_getextraspace(L);
}

static void bundle_free(struct bundle *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n_mods; i++) {
        free(b->mods[i].name);
        free(b->mods[i].src);
    }
    free(b->src);
    free(b);
}

/* Reads a whole file (not on a worker thread). Returns a malloc'd buffer or NULL with
 * <err> set. */
static char *read_file(const char *path, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad || n > MAX_FILE) {
        snprintf(err, err_len, "%s: %s", path, bad ? "cannot read" : "larger than 4 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Rule errors reach the log at most 10 times a second, whatever the traffic. */
static void log_rule_error(const char *msg)
{
    static atomic_llong window;
    static atomic_int count, suppressed;
    long long now = (long long)time(NULL);
    long long w = atomic_load(&window);
    if (w != now && atomic_compare_exchange_strong(&window, &w, now)) {
        int s = atomic_exchange(&suppressed, 0);
        atomic_store(&count, 0);
        if (s > 0)
            shunt_log(SHUNT_LOG_WARN, "rules: %d more errors not logged", s);
    }
    if (atomic_fetch_add(&count, 1) < 10)
        shunt_log(SHUNT_LOG_WARN, "rules: %s (the exchange passes unchanged)", msg);
    else
        atomic_fetch_add(&suppressed, 1);
}

/* Each state gets at most SHUNT_LUA_MAX_MEMORY. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lstate *st = ud;
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        st->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && st->mem_used + (nsize - osize) > SHUNT_LUA_MAX_MEMORY)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p != NULL)
        st->mem_used = st->mem_used - osize + nsize;
    return p;
}

/* Makes room for <n> more bytes in <b>, counted against the memory limit of <st>. Returns 0,
 * or -1 when the limit or malloc says no. No Lua error. */
static int cbuf_reserve(struct lstate *st, struct cbuf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    if (n > SHUNT_LUA_MAX_MEMORY)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    if (st->mem_used + (cap - b->cap) > SHUNT_LUA_MAX_MEMORY)
        return -1;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    st->mem_used += cap - b->cap;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Appends <n> bytes to <b>, or raises "not enough memory". MAY_LJMP */
static void cbuf_add(lua_State *L, struct cbuf *b, const char *s, size_t n) MAY_LJMP
{
    if (cbuf_reserve(state_of(L), b, n) != 0)
        luaL_error(L, "not enough memory (rules hold at most %d MiB)",
                   (int)(SHUNT_LUA_MAX_MEMORY >> 20));
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Frees <b>'s bytes and gives them back to the state's memory limit. */
static void cbuf_dispose(struct lstate *st, struct cbuf *b)
{
    free(b->p);
    st->mem_used -= b->cap;
    memset(b, 0, sizeof(*b));
}

/* Instructions a thread runs between two looks at the shared budget. */
#define SLICE 1000

/* The instruction budget of a hook call, shared by every thread (coroutine) of the state:
 * each thread carries this count hook (lua_newthread copies its creator's), which charges
 * the instructions the thread ran since its last call to st->left. The first time the budget
 * runs out, the call is stopped; from then on the hook of every thread that runs again
 * fires at each instruction and raises, so that a rule catching the error with pcall, or
 * resuming another coroutine, cannot go on. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    struct lstate *st = state_of(L);
    int count = lua_gethookcount(L);
    if (!st->exceeded) {
        st->left -= count;
        if (st->left > 0) {
            if (count != SLICE) /* a thread stopped in an earlier call */
                lua_sethook(L, count_hook, LUA_MASKCOUNT, SLICE);
            return;
        }
        st->exceeded = 1;
        lua_getinfo(L, "Sl", ar);
        snprintf(st->exceeded_at, sizeof(st->exceeded_at), "%s:%d", ar->short_src,
                 ar->currentline);
    }
    if (count != 1)
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: instruction limit exceeded (%d instructions)", ar->short_src,
                    ar->currentline, (int)st->limit);
    lua_error(L);
}

/* Gives the next call (a hook, the top level, the finalizers of lua_close) <count>
 * instructions. The hook stays set between calls: threads kept from an earlier call run
 * only inside a later one, and count against its budget. */
static void budget(lua_State *L, long count)
{
    struct lstate *st = state_of(L);
    st->exceeded = 0;
    st->left = st->limit = count;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, SLICE); /* also restarts the thread's count */
}

/* The status of a call that returned <r>: a call whose budget ran out fails even when it
 * returned normally (a coroutine's resume, or a pcall, caught the error and the caller ran
 * out of Lua before its own hook fired), with the message on the stack. */
static int call_status(lua_State *L, int r)
{
    struct lstate *st = state_of(L);
    if (r == LUA_OK && st->exceeded) {
        lua_pushfstring(L, "%s: instruction limit exceeded (%d instructions)", st->exceeded_at,
                        (int)st->limit);
        return LUA_ERRRUN;
    }
    return r;
}

/* "rules.lua:12" for the Lua code calling the current C function, or "rules.lua". */
static void where(lua_State *L, char *out, size_t n)
{
    lua_Debug ar;
    struct lstate *st = state_of(L);
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(out, n, "%s:%d", ar.short_src, ar.currentline);
    else
        snprintf(out, n, "%s", st->owner->name);
}

/* Charges <n> instructions of work done outside the count hook's view to the call's budget;
 * raises once it is spent, naming <what> ("in a string pattern"). MAY_LJMP */
static void charge(lua_State *L, size_t n, const char *what) MAY_LJMP
{
    struct lstate *st = state_of(L);
    if (!st->exceeded) {
        st->left -= n > (size_t)st->left ? st->left : (long)n;
        if (st->left > 0)
            return;
        st->exceeded = 1;
        where(L, st->exceeded_at, sizeof(st->exceeded_at));
    }
    char at[160];
    where(L, at, sizeof(at));
    luaL_error(L, "%s: instruction limit exceeded%s (%d instructions)", at, what, (int)st->limit);
}

/* The string patterns' steps (rules/luapat.c) count as instructions. MAY_LJMP */
static void charge_steps(lua_State *L, size_t steps) MAY_LJMP
{
    charge(L, steps, " in a string pattern");
}

static const struct shunt_luapat_budget pattern_budget = {charge_steps};

/*
 * coroutine.create and coroutine.wrap, charged. A new thread's count hook fires only once
 * the thread ran SLICE instructions, so a thread that ends sooner would run uncharged, and
 * coroutines nested a few levels deep (80 threads of 999 instructions, each making 80 more)
 * would run for minutes on no budget at all. Each new thread is charged SLICE up front: the
 * most it can run before its own hook takes over the counting. MAY_LJMP
 */
static int charged_new_thread(lua_State *L) MAY_LJMP
{
    charge(L, SLICE, "");
    lua_pushvalue(L, lua_upvalueindex(1)); /* the library's create or wrap */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Queues a change for the change callback (sent once the call succeeded). No Lua error. */
static void pend(struct lstate *st, const char *what, const char *by)
{
    if (st->n_pend >= MAX_PEND) { /* a rule editing in a loop: report the first ones */
        st->n_pend_dropped++;
        return;
    }
    if (st->n_pend == st->cap_pend) {
        size_t cap = st->cap_pend ? st->cap_pend * 2 : 8;
        struct pending *p = realloc(st->pend, cap * sizeof(*p));
        if (p == NULL)
            return; /* the change is made; only its report is lost */
        st->pend = p;
        st->cap_pend = cap;
    }
    struct pending *p = &st->pend[st->n_pend++];
    snprintf(p->what, sizeof(p->what), "%s", what);
    snprintf(p->by, sizeof(p->by), "%s", by);
}

/* ------------------------------------------------------------------------ headers */

struct headers_ud {
    uint64_t serial;
};

/* The edit behind a headers object, or a Lua error when its hook call is over. MAY_LJMP */
static struct shunt_head_edit *check_headers(lua_State *L) MAY_LJMP
{
    struct headers_ud *h = luaL_checkudata(L, 1, MT_HEADERS);
    struct lstate *st = state_of(L);
    if (st->edit == NULL || h->serial != st->serial)
        luaL_error(L, "headers used after their hook call returned");
    return st->edit;
}

static int h_get(lua_State *L) MAY_LJMP
{
    struct shunt_head_edit *e = check_headers(L);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    int found;
    struct shunt_slice v = shunt_edit_get(e, name, nl, &found);
    if (found)
        lua_pushlstring(L, v.base, v.len);
    else
        lua_pushnil(L);
    return 1;
}

static int h_get_all(lua_State *L) MAY_LJMP
{
    struct shunt_head_edit *e = check_headers(L);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    lua_newtable(L);
    lua_Integer k = 1;
    for (size_t i = 0; i < e->n; i++) {
        const struct shunt_edit_field *f = &e->f[i];
        if (!f->removed && shunt_slice_ieq(f->name, name, nl)) {
            lua_pushlstring(L, f->value.base, f->value.len);
            lua_rawseti(L, -2, k++);
        }
    }
    return 1;
}

/* headers:list() -> { {name, value}, ... } in wire order */
static int h_list(lua_State *L) MAY_LJMP
{
    struct shunt_head_edit *e = check_headers(L);
    lua_newtable(L);
    lua_Integer k = 1;
    for (size_t i = 0; i < e->n; i++) {
        const struct shunt_edit_field *f = &e->f[i];
        if (f->removed)
            continue;
        lua_createtable(L, 2, 0);
        lua_pushlstring(L, f->name.base, f->name.len);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, f->value.base, f->value.len);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, k++);
    }
    return 1;
}

/* Refuses an edit of a field that frames the message (shunt_edit_frames()). MAY_LJMP */
static void check_not_framing(lua_State *L, const char *verb, const char *name, size_t nl)
{
    if (shunt_edit_frames(name, nl))
        luaL_error(L, "%s %s: rules cannot change Content-Length or Transfer-Encoding (the body "
                   "goes on framed as received; another length would desync the next hop)",
                   verb, name);
}

static int h_edit(lua_State *L, int set) MAY_LJMP
{
    struct shunt_head_edit *e = check_headers(L);
    size_t nl, vl;
    const char *name = luaL_checklstring(L, 2, &nl);
    const char *value = luaL_checklstring(L, 3, &vl);
    check_not_framing(L, set ? "set" : "add", name, nl);
    unsigned before = e->changes;
    /* The edit's store holds every line a rule writes (a set leaves the old line there):
     * it grows within what the state's memory limit leaves, and counts against it until the
     * call ends (the proxy frees the store with the head). */
    struct lstate *st = state_of(L);
    size_t cap0 = e->store_cap;
    e->store_max = cap0 + (SHUNT_LUA_MAX_MEMORY - (st->mem_used < SHUNT_LUA_MAX_MEMORY
                                                       ? st->mem_used
                                                       : SHUNT_LUA_MAX_MEMORY));
    int r = set ? shunt_edit_set(e, name, nl, value, vl) : shunt_edit_add(e, name, nl, value, vl);
    e->store_max = 0;
    st->mem_used += e->store_cap - cap0;
    st->store_held += e->store_cap - cap0;
    if (r == SHUNT_ENOMEM)
        return luaL_error(L, "%s %s: not enough memory (rules hold at most %d MiB)",
                          set ? "set" : "add", name, (int)(SHUNT_LUA_MAX_MEMORY >> 20));
    if (r == SHUNT_EINVAL)
        return luaL_error(L, "%s %s: not a header name, or the value holds CR, LF or NUL",
                          set ? "set" : "add", name);
    if (r != 0)
        return luaL_error(L, "%s %s: too many header fields", set ? "set" : "add", name);
    if (e->changes != before && state_of(L)->report) {
        char what[320], by[160];
        snprintf(what, sizeof(what), "%s %.*s: %.*s", set ? "set" : "add", (int)nl, name,
                 (int)vl, value);
        where(L, by, sizeof(by));
        pend(state_of(L), what, by);
    }
    return 0;
}

static int h_add(lua_State *L) MAY_LJMP
{
    return h_edit(L, 0);
}

static int h_set(lua_State *L) MAY_LJMP
{
    if (lua_isnoneornil(L, 3)) { /* set(name, nil) removes */
        lua_settop(L, 2);
        lua_pushnil(L);
    }
    if (lua_isnil(L, 3)) {
        struct shunt_head_edit *e = check_headers(L);
        size_t nl;
        const char *name = luaL_checklstring(L, 2, &nl);
        check_not_framing(L, "set", name, nl);
        if (shunt_edit_remove(e, name, nl) > 0 && state_of(L)->report) {
            char what[320], by[160];
            snprintf(what, sizeof(what), "remove %.*s", (int)nl, name);
            where(L, by, sizeof(by));
            pend(state_of(L), what, by);
        }
        return 0;
    }
    return h_edit(L, 1);
}

static int h_remove(lua_State *L) MAY_LJMP
{
    struct shunt_head_edit *e = check_headers(L);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    check_not_framing(L, "remove", name, nl);
    int n = shunt_edit_remove(e, name, nl);
    if (n > 0 && state_of(L)->report) {
        char what[320], by[160];
        snprintf(what, sizeof(what), "remove %.*s", (int)nl, name);
        where(L, by, sizeof(by));
        pend(state_of(L), what, by);
    }
    lua_pushinteger(L, n);
    return 1;
}

static int h_tostring(lua_State *L)
{
    lua_pushliteral(L, "headers");
    return 1;
}

static const luaL_Reg headers_methods[] = {
    {"get", h_get},   {"get_all", h_get_all}, {"list", h_list},
    {"add", h_add},   {"set", h_set},         {"remove", h_remove},
    {NULL, NULL},
};

/* ------------------------------------------------------------------------ globals */

/* option(name, default) -> an object whose .on is the toggle's state now. MAY_LJMP */
static int l_option(lua_State *L) MAY_LJMP
{
    const char *name = luaL_checkstring(L, 1);
    int def = lua_toboolean(L, 2);
    int idx = shunt_options_declare(name, def);
    if (idx < 0)
        return luaL_error(L, "option '%s': %s", name,
                          idx == SHUNT_ETOOBIG ? "too many options"
                                               : "the name is empty or too long");
    int *p = lua_newuserdatauv(L, sizeof(int), 1);
    *p = idx;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, MT_OPTION);
    return 1;
}

static int opt_index(lua_State *L) MAY_LJMP
{
    int *p = luaL_checkudata(L, 1, MT_OPTION);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "on") == 0)
        lua_pushboolean(L, shunt_options_on(*p));
    else if (strcmp(k, "name") == 0)
        lua_getiuservalue(L, 1, 1);
    else
        lua_pushnil(L);
    return 1;
}

/* log(...): one line at info level, "rules.lua:3: a b c". MAY_LJMP */
static int l_log(lua_State *L) MAY_LJMP
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    char at[160];
    where(L, at, sizeof(at));
    shunt_log(SHUNT_LOG_INFO, "%s: %s", at, lua_tostring(L, -1));
    return 0;
}

/* Finds the source of module <name>: read from the rules' folder while checking (and kept
 * in the bundle), taken from the bundle when a worker builds its state. MAY_LJMP */
static int l_require(lua_State *L) MAY_LJMP
{
    size_t nl;
    const char *name = luaL_checklstring(L, 1, &nl);
    struct lstate *st = state_of(L);
    if (nl != strlen(name)) /* a NUL inside: the name C sees would not be the rule's */
        return luaL_error(L, "require '%s': not a module name", name);
    lua_getfield(L, LUA_REGISTRYINDEX, "shunt.loaded");
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (nl == 0 || nl > 100 || name[0] == '.' || name[nl - 1] == '.' || strstr(name, ".."))
        return luaL_error(L, "require '%s': not a module name", name);
    for (size_t i = 0; i < nl; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return luaL_error(L, "require '%s': not a module name", name);
    }
    struct bundle *b = st->bundle;
    if (b == NULL)
        return luaL_error(L, "require '%s': modules are required at the top level of the rules"
                             " file", name);
    struct module *m = NULL;
    for (size_t i = 0; i < b->n_mods && m == NULL; i++)
        if (strcmp(b->mods[i].name, name) == 0)
            m = &b->mods[i];
    if (m == NULL) {
        if (!st->checking)
            return luaL_error(L, "require '%s': not found", name);
        if (b->n_mods == MAX_MODULES)
            return luaL_error(L, "require '%s': too many modules", name);
        char path[512], err[600];
        int l = snprintf(path, sizeof(path), "%s/", st->owner->dir);
        for (size_t i = 0; i < nl && (size_t)l + 5 < sizeof(path); i++)
            path[l++] = name[i] == '.' ? '/' : name[i];
        snprintf(path + l, sizeof(path) - (size_t)l, ".lua");
        size_t len;
        char *src = read_file(path, &len, err, sizeof(err));
        if (src == NULL)
            return luaL_error(L, "require '%s': %s", name, err);
        m = &b->mods[b->n_mods++]; /* owned by the bundle from here: a raise leaks nothing */
        m->src = src;
        m->len = len;
        m->name = strdup(name);
        if (m->name == NULL) {
            free(src);
            b->n_mods--;
            return luaL_error(L, "out of memory");
        }
    }
    char chunk[128];
    snprintf(chunk, sizeof(chunk), "@%s.lua", name);
    if (luaL_loadbufferx(L, m->src, m->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* Raises unless argument <arg> is a session object (a table with the session metatable):
 * the methods and __index never trust what they are given. MAY_LJMP */
static void check_session(lua_State *L, int arg) MAY_LJMP
{
    int ok = lua_type(L, arg) == LUA_TTABLE && lua_getmetatable(L, arg);
    if (ok) {
        luaL_getmetatable(L, MT_SESSION);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok)
        luaL_typeerror(L, arg, "session");
}

/* s:flag(text): marks the exchange. MAY_LJMP */
static int s_flag(lua_State *L) MAY_LJMP
{
    check_session(L, 1);
    const char *text = luaL_checkstring(L, 2);
    struct lstate *st = state_of(L);
    if (st->ctx == NULL)
        return luaL_error(L, "flag used after its hook call returned");
    if (st->report) {
        char what[320];
        snprintf(what, sizeof(what), "flag: %s", text);
        pend(st, what, st->owner->name);
    }
    return 0;
}

/* Longest s:delay(); a rule that wants more is a mistake. */
#define MAX_DELAY_MS 600000
/* Largest s:respond() body. */
#define MAX_RESPOND_BODY (16u * 1024 * 1024)

/* Appends "name: value\r\n" to <b> after checking both (no header injection); framing
 * fields are the proxy's and are skipped. The lines are built in C, not in a luaL_Buffer:
 * a luaL_Buffer must stay at the top of the stack, and the values read here are pushed
 * above it (its box then landed in their slot and was freed by their pop). MAY_LJMP */
static void respond_field(lua_State *L, struct cbuf *b, int name_idx, int value_idx) MAY_LJMP
{
    size_t nl, vl;
    name_idx = lua_absindex(L, name_idx);
    value_idx = lua_absindex(L, value_idx);
    if (lua_type(L, name_idx) != LUA_TSTRING)
        luaL_error(L, "s:respond: a header name must be a string");
    if (lua_isnil(L, value_idx))
        luaL_error(L, "s:respond: header %s has no value", lua_tostring(L, name_idx));
    /* A string or a number, converted without a metamethod: a __tostring could change the
     * header table while the names sorted from it are in use (and free their strings). */
    if (lua_type(L, value_idx) != LUA_TSTRING && lua_type(L, value_idx) != LUA_TNUMBER)
        luaL_error(L, "s:respond: the value of header %s must be a string or a number",
                   lua_tostring(L, name_idx));
    const char *n = lua_tolstring(L, name_idx, &nl);
    lua_pushvalue(L, value_idx); /* converted on a copy: the table keeps its number */
    const char *v = lua_tolstring(L, -1, &vl);
    if (nl == 0 || nl > 256)
        luaL_error(L, "s:respond: a header name must have 1 to 256 characters");
    if (!shunt_edit_field_valid(n, nl, "", 0))
        luaL_error(L, "s:respond: '%s' is not a header name", n);
    if (!shunt_edit_field_valid(n, nl, v, vl))
        luaL_error(L, "s:respond: the value of %s holds CR, LF or NUL", n);
    int framing = shunt_edit_frames(n, nl) ||
                  (nl == 10 && strncasecmp(n, "Connection", 10) == 0);
    if (!framing) { /* framing is the proxy's */
        cbuf_add(L, b, n, nl);
        cbuf_add(L, b, ": ", 2);
        cbuf_add(L, b, v, vl);
        cbuf_add(L, b, "\r\n", 2);
    }
    lua_pop(L, 1); /* the value's copy, popped once <v> is copied */
}

static int cmp_name(const void *a, const void *b)
{
    const struct shunt_slice *x = a, *y = b;
    int c = memcmp(x->base, y->base, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* s:respond(status [, headers [, body]]): answers the request without the server. <headers>
 * is a table, {["Content-Type"] = "text/plain"} (sent in name order) or a list of pairs,
 * {{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}} (sent as listed). MAY_LJMP */
static int s_respond(lua_State *L) MAY_LJMP
{
    check_session(L, 1);
    lua_Integer status = luaL_checkinteger(L, 2);
    struct lstate *st = state_of(L);
    if (st->ctx == NULL)
        return luaL_error(L, "s:respond used after its hook call returned");
    if (!st->ctx->is_request || st->ctx->out == NULL)
        return luaL_error(L, "s:respond is for on_request (the response is on its way)");
    if (status < 200 || status > 599)
        return luaL_error(L, "s:respond: status %d is not between 200 and 599", (int)status);
    size_t bl = 0;
    const char *body = lua_isnoneornil(L, 4) ? "" : luaL_checklstring(L, 4, &bl);
    if (bl > MAX_RESPOND_BODY)
        return luaL_error(L, "s:respond: the body is larger than 16 MiB");
    struct cbuf *b = &st->build;
    b->len = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_rawlen(L, 3) > 0) { /* a list of {name, value} */
            for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, 3); i++) {
                lua_rawgeti(L, 3, i);
                if (!lua_istable(L, -1))
                    luaL_error(L, "s:respond: header %d is not a {name, value} pair", (int)i);
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2);
                respond_field(L, b, -2, -1);
                lua_pop(L, 3);
            }
        } else { /* a map: in name order, so that the answer is the same every time */
            struct shunt_slice names[64];
            size_t n = 0;
            lua_pushnil(L);
            while (lua_next(L, 3) != 0) {
                if (lua_type(L, -2) != LUA_TSTRING)
                    luaL_error(L, "s:respond: header names must be strings");
                if (n == 64)
                    luaL_error(L, "s:respond: more than 64 headers");
                size_t kl;
                const char *k = lua_tolstring(L, -2, &kl); /* kept alive by the table */
                names[n++] = shunt_slice_make(k, kl);
                lua_pop(L, 1);
            }
            qsort(names, n, sizeof(names[0]), cmp_name);
            for (size_t i = 0; i < n; i++) {
                lua_pushlstring(L, names[i].base, names[i].len);
                lua_pushvalue(L, -1);
                lua_rawget(L, 3);
                respond_field(L, b, -2, -1);
                lua_pop(L, 2);
            }
        }
    }
    size_t fl = b->len;
    char *f = malloc(fl + 1), *bd = malloc(bl + 1);
    if (f == NULL || bd == NULL) {
        free(f);
        free(bd);
        return luaL_error(L, "not enough memory");
    }
    memcpy(f, b->p, fl);
    memcpy(bd, body, bl);
    if (b->cap > 64 * 1024)
        cbuf_dispose(st, b); /* a big answer's room is not kept between calls */
    free(st->out.respond_fields); /* a second s:respond() replaces the first */
    free(st->out.respond_body);
    st->out.respond_status = (int)status;
    st->out.respond_fields = f;
    st->out.respond_fields_len = fl;
    st->out.respond_body = bd;
    st->out.respond_body_len = bl;
    st->out.by = st->owner->name;
    return 0;
}

/* s:delay(ms): holds the exchange for <ms> milliseconds before it goes on (the request to
 * the server in on_request, the response to the client in on_response). Delays add up.
 * MAY_LJMP */
static int s_delay(lua_State *L) MAY_LJMP
{
    check_session(L, 1);
    lua_Number ms = luaL_checknumber(L, 2);
    struct lstate *st = state_of(L);
    if (st->ctx == NULL || st->ctx->out == NULL)
        return luaL_error(L, "s:delay used after its hook call returned");
    if (!(ms >= 0) || ms > MAX_DELAY_MS || st->out.delay_ms + (uint64_t)ms > MAX_DELAY_MS)
        return luaL_error(L, "s:delay: %f ms is not between 0 and %d", (double)ms,
                          MAX_DELAY_MS);
    st->out.delay_ms += (uint64_t)(ms + 0.5);
    if (st->out.by == NULL)
        st->out.by = st->owner->name;
    return 0;
}

static const luaL_Reg session_methods[] = {
    {"flag", s_flag},
    {"respond", s_respond},
    {"delay", s_delay},
    {NULL, NULL},
};

static int session_index(lua_State *L);

/* Metatable keys the sandbox keeps out of every metatable: __gc (a finalizer runs outside
 * any hook call: at a collection, at lua_close on reload) and __mode (weak tables; a weak
 * metatable reaches the use-after-free of Lua 5.4.4's luaV_finishset, see docs/lua.md). */
static int forbidden_key(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    const char *k = lua_tostring(L, idx);
    return strcmp(k, "__gc") == 0 || strcmp(k, "__mode") == 0;
}

/* The seal's __newindex: a sealed table (one used as a metatable) takes any new key but
 * __gc and __mode. Upvalue: none. MAY_LJMP */
static int seal_newindex(lua_State *L) MAY_LJMP
{
    if (forbidden_key(L, 2))
        return luaL_error(L, "%s cannot be set in a metatable (sandbox)", lua_tostring(L, 2));
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* The sandbox's setmetatable(t, mt). <mt> may not hold __gc or __mode, and is sealed so
 * that it never will: it gets a metatable of ours (the seal, upvalue 1) whose __newindex
 * refuses those keys, and rawset refuses them too. A table that already has a metatable of
 * its own cannot be sealed and so cannot be a metatable. MAY_LJMP */
static int sb_setmetatable(lua_State *L) MAY_LJMP
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        if (lua_getfield(L, 2, "__gc") != LUA_TNIL || lua_getfield(L, 2, "__mode") != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc and __mode are not allowed (sandbox)");
        lua_pop(L, 2);
        if (!lua_getmetatable(L, 2)) {
            lua_pushvalue(L, lua_upvalueindex(1));
            lua_setmetatable(L, 2);
        } else if (!lua_rawequal(L, -1, lua_upvalueindex(1))) {
            return luaL_error(L, "setmetatable: a table with a metatable of its own cannot be"
                                 " a metatable (sandbox)");
        }
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* The sandbox's rawset(t, k, v): as Lua's, but a sealed table takes no __gc or __mode.
 * Upvalue 1: the seal. MAY_LJMP */
static int sb_rawset(lua_State *L) MAY_LJMP
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (forbidden_key(L, 2) && lua_getmetatable(L, 1)) {
        if (lua_rawequal(L, -1, lua_upvalueindex(1)))
            return luaL_error(L, "%s cannot be set in a metatable (sandbox)",
                              lua_tostring(L, 2));
        lua_pop(L, 1);
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* Sets the globals of a sandboxed state: the safe parts of the standard library. */
static void open_sandbox(lua_State *L) MAY_LJMP
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},    {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const gone[] = {"dofile", "loadfile", "load", "collectgarbage", NULL};
    for (const char *const *g = gone; *g; g++) {
        lua_pushnil(L);
        lua_setglobal(L, *g);
    }
    /* coroutine.close reaches two crashes of Lua 5.4.4 (docs/lua.md, "Lua 5.4.4") */
    lua_getglobal(L, "coroutine");
    lua_pushnil(L);
    lua_setfield(L, -2, "close");
    static const char *const makers[] = {"create", "wrap", NULL};
    for (const char *const *m = makers; *m; m++) {
        lua_getfield(L, -1, *m);
        lua_pushcclosure(L, charged_new_thread, 1);
        lua_setfield(L, -2, *m);
    }
    lua_pop(L, 1);
    /* metatables without __gc or __mode: the seal, shared by both functions */
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, seal_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, sb_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_pushcclosure(L, sb_rawset, 1);
    lua_setglobal(L, "rawset");
    /* os: time, clock and date only */
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_createtable(L, 0, 3);
    static const char *const keep[] = {"time", "clock", "date", NULL};
    for (const char *const *k = keep; *k; k++) {
        lua_getfield(L, -2, *k);
        lua_setfield(L, -2, *k);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    /* string.dump makes bytecode, which is never loaded here anyway */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "shunt.loaded");
    lua_pushcfunction(L, l_require);
    lua_setglobal(L, "require");
}

/* The body of building a state, under lua_pcall: libraries, metatables, the file's top
 * level, the hooks it defines. Stack: [bundle src as light userdata]. MAY_LJMP */
static int build(lua_State *L) MAY_LJMP
{
    struct lstate *st = state_of(L);
    if (st->owner->unsafe) {
        luaL_openlibs(L);
        /* modules next to the rules file come first */
        lua_getglobal(L, "package");
        lua_pushfstring(L, "%s/?.lua;", st->owner->dir);
        lua_getfield(L, -2, "path");
        lua_concat(L, 2);
        lua_setfield(L, -2, "path");
        lua_pop(L, 1);
    } else {
        open_sandbox(L);
    }
    /* Lua 5.4.4 makes this message when a message handler fails, unprotected: pinned here,
     * it is found in the string table instead of allocated, which under the memory limit
     * could fail and panic the process (upstream 25da574f; docs/lua.md) */
    lua_pushliteral(L, "error in error handling");
    lua_setfield(L, LUA_REGISTRYINDEX, "shunt.errerr");
    /* string patterns count their steps as instructions, with or without the sandbox */
    lua_getglobal(L, "string");
    shunt_luapat__replace(L, &pattern_budget);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_option);
    lua_setglobal(L, "option");
    lua_pushcfunction(L, l_log);
    lua_setglobal(L, "log");
    lua_pushcfunction(L, l_log);
    lua_setglobal(L, "print");

    /* Each metatable is protected: getmetatable() gives false and setmetatable() refuses,
     * so that rules never hold the raw C functions (which could then be called with any
     * argument) nor change how the objects behave. */
    luaL_newmetatable(L, MT_HEADERS);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    luaL_newlib(L, headers_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, h_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newmetatable(L, MT_OPTION);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushcfunction(L, opt_index);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, MT_SESSION);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    luaL_newlib(L, session_methods);
    lua_pushcclosure(L, session_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    if (luaL_loadbufferx(L, st->bundle->src, st->bundle->len, st->owner->chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);

    static const struct {
        const char *name;
        size_t off;
    } hooks[] = {
        {"on_request", offsetof(struct lstate, ref_req)},
        {"on_response", offsetof(struct lstate, ref_resp)},
        {"on_connect", offsetof(struct lstate, ref_connect)},
        {"on_close", offsetof(struct lstate, ref_close)},
    };
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
        int *ref = (int *)((char *)st + hooks[i].off);
        int t = lua_getglobal(L, hooks[i].name);
        if (t == LUA_TFUNCTION)
            *ref = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (t != LUA_TNIL)
            return luaL_error(L, "%s is a %s, not a function", hooks[i].name,
                              lua_typename(L, t));
        else
            lua_pop(L, 1);
    }
    return 0;
}

static void state_free(struct lstate *st)
{
    if (st == NULL)
        return;
    /* No rule's Lua runs here in the sandbox: it refuses __gc (Lua runs finalizers with
     * hooks off, so no budget could stop one) and a call leaves no to-be-closed variable. */
    if (st->L != NULL)
        lua_close(st->L);
    free(st->build.p);
    free(st->pend);
    free(st);
}

/* Makes a state from <b> and runs its top level. Returns it, or NULL with <err>. */
static struct lstate *state_new(const struct shunt_lua *lx, struct bundle *b, int checking,
                                char *err, size_t err_len)
{
    struct lstate *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    st->owner = lx;
    st->bundle = b;
    st->checking = checking;
    st->ref_req = st->ref_resp = st->ref_connect = st->ref_close = LUA_NOREF;
    st->L = lua_newstate(l_alloc, st);
    if (st->L == NULL) {
        snprintf(err, err_len, "out of memory");
        free(st);
        return NULL;
    }
    *(struct lstate **)lua_getextraspace(st->L) = st;
    budget(st->L, SHUNT_LUA_MAX_INSTRUCTIONS * 10);
    lua_pushcfunction(st->L, build);
    int r = call_status(st->L, lua_pcall(st->L, 0, 0, 0));
    if (r != LUA_OK) {
        const char *m = lua_tostring(st->L, -1);
        snprintf(err, err_len, "%s", m ? m : "error object is not a string");
        state_free(st);
        return NULL;
    }
    lua_settop(st->L, 0);
    st->bundle = NULL;
    st->checking = 0;
    return st;
}

/* Reads and checks the file: a new bundle, or NULL with <err>. */
static struct bundle *check(const struct shunt_lua *lx, char *err, size_t err_len)
{
    struct bundle *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    b->src = read_file(lx->path, &b->len, err, err_len);
    if (b->src == NULL) {
        free(b);
        return NULL;
    }
    struct lstate *st = state_new(lx, b, 1, err, err_len);
    if (st == NULL) {
        bundle_free(b);
        return NULL;
    }
    if (st->ref_req == LUA_NOREF && st->ref_resp == LUA_NOREF && st->ref_connect == LUA_NOREF &&
        st->ref_close == LUA_NOREF)
        shunt_log(SHUNT_LOG_WARN,
                  "%s defines none of on_request, on_response, on_connect, on_close", lx->name);
    state_free(st);
    return b;
}

/* ------------------------------------------------------------------------ the API */

int shunt_lua_load(const char *path, int unsafe, int n_workers, struct shunt_lua **out,
                   char *err, size_t err_len)
{
    *out = NULL;
    if (n_workers < 1)
        n_workers = 1;
    struct shunt_lua *lx = shunt_xcalloc(sizeof(*lx));
    lx->path = shunt_xstrdup(path);
    const char *slash = strrchr(path, '/');
    lx->name = shunt_xstrdup(slash ? slash + 1 : path);
    lx->dir = shunt_xstrdup(path);
    if (slash != NULL)
        lx->dir[slash - path == 0 ? 1 : slash - path] = '\0';
    else
        strcpy(lx->dir, ".");
    snprintf(lx->chunk, sizeof(lx->chunk), "@%s", lx->name);
    lx->unsafe = unsafe;
    lx->n_workers = n_workers;
    lx->slots = shunt_xcalloc(sizeof(struct wslot) * (size_t)n_workers);
    pthread_mutex_init(&lx->mu, NULL);
    pthread_mutex_init(&lx->reload_mu, NULL);
    lx->cur = check(lx, err, err_len);
    if (lx->cur == NULL) {
        shunt_lua_free(lx);
        return SHUNT_EPARSE;
    }
    atomic_store(&lx->gen, 1);
    *out = lx;
    return 0;
}

int shunt_lua_reload(struct shunt_lua *lx, char *err, size_t err_len)
{
    pthread_mutex_lock(&lx->reload_mu);
    struct bundle *b = check(lx, err, err_len);
    if (b == NULL) {
        pthread_mutex_unlock(&lx->reload_mu);
        return SHUNT_EPARSE;
    }
    pthread_mutex_lock(&lx->mu);
    struct bundle *old = lx->cur;
    lx->cur = b;
    atomic_fetch_add(&lx->gen, 1);
    pthread_mutex_unlock(&lx->mu);
    bundle_free(old);
    pthread_mutex_unlock(&lx->reload_mu);
    return 0;
}

const char *shunt_lua_path(const struct shunt_lua *lx)
{
    return lx->path;
}

void shunt_lua_free(struct shunt_lua *lx)
{
    if (lx == NULL)
        return;
    for (int i = 0; i < lx->n_workers; i++)
        state_free(lx->slots[i].st);
    bundle_free(lx->cur);
    pthread_mutex_destroy(&lx->mu);
    pthread_mutex_destroy(&lx->reload_mu);
    free(lx->slots);
    free(lx->path);
    free(lx->dir);
    free(lx->name);
    free(lx);
}

/* The worker's state for generation <gen>: built here, on the worker's thread. When the new
 * source fails here (it passed the check), the old state stays. */
static void rebuild(struct shunt_lua *lx, struct wslot *w)
{
    char err[512];
    pthread_mutex_lock(&lx->mu);
    uint64_t gen = atomic_load(&lx->gen);
    struct lstate *st = state_new(lx, lx->cur, 0, err, sizeof(err));
    pthread_mutex_unlock(&lx->mu);
    if (st == NULL) {
        log_rule_error(err);
    } else {
        state_free(w->st);
        w->st = st;
    }
    w->gen = gen;
}

/* A field array saved before a hook call, to restore when the call fails. Owned fields are
 * kept as offsets into the store, which only grows (its prefix survives a move). */
struct snap {
    struct shunt_edit_field *f;
    size_t n, store_len;
    unsigned changes;
};

static void snap_take(struct snap *s, const struct shunt_head_edit *e)
{
    memcpy(s->f, e->f, e->n * sizeof(*e->f));
    for (size_t i = 0; i < e->n; i++) {
        struct shunt_edit_field *f = &s->f[i];
        if (!f->owned)
            continue;
        f->name.base = (const char *)(uintptr_t)(f->name.base - e->store);
        f->value.base = (const char *)(uintptr_t)(f->value.base - e->store);
        f->line.base = (const char *)(uintptr_t)(f->line.base - e->store);
    }
    s->n = e->n;
    s->store_len = e->store_len;
    s->changes = e->changes;
}

static void snap_restore(const struct snap *s, struct shunt_head_edit *e)
{
    memcpy(e->f, s->f, s->n * sizeof(*e->f));
    for (size_t i = 0; i < s->n; i++) {
        struct shunt_edit_field *f = &e->f[i];
        if (!f->owned)
            continue;
        f->name.base = e->store + (uintptr_t)f->name.base;
        f->value.base = e->store + (uintptr_t)f->value.base;
        f->line.base = e->store + (uintptr_t)f->line.base;
    }
    e->n = s->n;
    e->store_len = s->store_len;
    e->changes = s->changes;
}

/* Pushes a headers object for the current call. MAY_LJMP */
static void push_headers(lua_State *L, struct lstate *st) MAY_LJMP
{
    struct headers_ud *h = lua_newuserdatauv(L, sizeof(*h), 0);
    h->serial = st->serial;
    luaL_setmetatable(L, MT_HEADERS);
}

/* Builds s.request, s.response or s.conn of the call under way: <s> is built lazily, so
 * that a rule pays only for the parts it reads. Pushes the part, or nothing (returns 0)
 * for another key. MAY_LJMP */
static int push_part(lua_State *L, struct lstate *st, const char *k) MAY_LJMP
{
    const struct shunt_head_ctx *c = st->ctx;
    if (strcmp(k, "request") == 0) {
        lua_createtable(L, 0, 5);
        lua_pushlstring(L, c->method.base ? c->method.base : "", c->method.len);
        lua_setfield(L, -2, "method");
        lua_pushlstring(L, c->url.base ? c->url.base : "", c->url.len);
        lua_setfield(L, -2, "url");
        lua_pushlstring(L, c->host.base ? c->host.base : "", c->host.len);
        lua_setfield(L, -2, "host");
        if (c->is_request) {
            lua_pushfstring(L, "HTTP/1.%d", c->minor_version);
            lua_setfield(L, -2, "version");
            push_headers(L, st);
            lua_setfield(L, -2, "headers");
        }
        return 1;
    }
    if (strcmp(k, "response") == 0) {
        if (c->is_request)
            return 0; /* nil: no response yet */
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, c->status);
        lua_setfield(L, -2, "status");
        lua_pushlstring(L, c->reason.base ? c->reason.base : "", c->reason.len);
        lua_setfield(L, -2, "reason");
        lua_pushfstring(L, "HTTP/1.%d", c->minor_version);
        lua_setfield(L, -2, "version");
        push_headers(L, st);
        lua_setfield(L, -2, "headers");
        return 1;
    }
    if (strcmp(k, "conn") == 0) {
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, (lua_Integer)c->conn_id);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, (lua_Integer)c->exchange); /* this exchange's number, from 1 */
        lua_setfield(L, -2, "exchange");
        lua_pushinteger(L, c->exchange > 0 ? (lua_Integer)c->exchange - 1 : 0);
        lua_setfield(L, -2, "exchanges"); /* the exchanges before this one on the connection */
        lua_pushinteger(L, c->client_port);
        lua_setfield(L, -2, "client_port");
        lua_pushstring(L, c->auth ? c->auth : "none");
        lua_setfield(L, -2, "auth");
        lua_pushstring(L, c->auth_scheme ? c->auth_scheme : "");
        lua_setfield(L, -2, "auth_scheme");
        return 1;
    }
    return 0;
}

/* s.KEY: a method (flag, respond, delay) or a part built on first use and kept in s.
 * MAY_LJMP */
static int session_index(lua_State *L) MAY_LJMP
{
    check_session(L, 1);
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    const char *k = lua_tostring(L, 2);
    if (k == NULL)
        return 0;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) /* the methods */
        return 1;
    lua_pop(L, 1);
    struct lstate *st = state_of(L);
    if (st->ctx == NULL)
        return luaL_error(L, "s.%s used after its hook call returned", k);
    if (!push_part(L, st, k))
        return 0;
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1); /* built once per call */
    return 1;
}

/* The hook call under lua_pcall: makes s and calls the hook. Stack: [ref]. MAY_LJMP */
static int call_hook(lua_State *L) MAY_LJMP
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)lua_tointeger(L, 1));
    lua_createtable(L, 0, 3); /* s: its parts come on first use (session_index) */
    luaL_setmetatable(L, MT_SESSION);
    lua_call(L, 1, 0);
    return 0;
}

/* Hands what the call asked (s:respond, s:delay) to the proxy, which frees the buffers. */
static void give_out(struct lstate *st, struct shunt_hook_out *out)
{
    if (out == NULL) {
        free(st->out.respond_fields);
        free(st->out.respond_body);
    } else {
        if (st->out.respond_status != 0) {
            free(out->respond_fields); /* an earlier hook's answer gives way */
            free(out->respond_body);
            out->respond_status = st->out.respond_status;
            out->respond_fields = st->out.respond_fields;
            out->respond_fields_len = st->out.respond_fields_len;
            out->respond_body = st->out.respond_body;
            out->respond_body_len = st->out.respond_body_len;
            out->by = st->out.by;
        }
        if (st->out.delay_ms > 0) {
            out->delay_ms += st->out.delay_ms;
            if (out->by == NULL)
                out->by = st->out.by;
        }
    }
    memset(&st->out, 0, sizeof(st->out));
}

/* The calling worker's state, rebuilt first when the rules were reloaded; NULL when there
 * is none. */
static struct lstate *worker_state(struct shunt_lua *lx, int worker)
{
    if (worker < 0 || worker >= lx->n_workers)
        return NULL;
    struct wslot *w = &lx->slots[worker];
    if (w->gen != atomic_load_explicit(&lx->gen, memory_order_acquire))
        rebuild(lx, w);
    return w->st;
}

/* on_connect(conn) / on_close(conn) under lua_pcall. Stack: [ref, info]. MAY_LJMP */
static int call_conn_hook(lua_State *L) MAY_LJMP
{
    const struct shunt_conn_info *ci = lua_touserdata(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)lua_tointeger(L, 1));
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)ci->conn_id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, ci->client_addr ? ci->client_addr : "");
    lua_setfield(L, -2, "client_addr");
    lua_pushinteger(L, ci->client_port);
    lua_setfield(L, -2, "client_port");
    lua_pushinteger(L, (lua_Integer)ci->exchanges);
    lua_setfield(L, -2, "exchanges");
    if (!ci->opening) {
        lua_pushstring(L, ci->closer ? ci->closer : "none");
        lua_setfield(L, -2, "closer");
        lua_pushstring(L, ci->how ? ci->how : "none");
        lua_setfield(L, -2, "how");
    }
    lua_call(L, 1, 0);
    return 0;
}

void shunt_lua_conn_hook(void *ud, const struct shunt_conn_info *ci)
{
    struct shunt_lua *lx = ud;
    struct lstate *st = worker_state(lx, ci->worker);
    if (st == NULL)
        return;
    int ref = ci->opening ? st->ref_connect : st->ref_close;
    if (ref == LUA_NOREF)
        return;
    lua_State *L = st->L;
    budget(L, SHUNT_LUA_MAX_INSTRUCTIONS);
    lua_settop(L, 0);
    lua_pushcfunction(L, call_conn_hook);
    lua_pushinteger(L, ref);
    lua_pushlightuserdata(L, (void *)ci);
    int r = call_status(L, lua_pcall(L, 2, 0, 0));
    if (r != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        char what[400];
        snprintf(what, sizeof(what), "%s: %s", ci->opening ? "on_connect" : "on_close",
                 m ? m : r == LUA_ERRMEM ? "not enough memory" : "(error object is not a string)");
        log_rule_error(what);
    }
    lua_settop(L, 0);
}

void shunt_lua_head_hook(void *ud, struct shunt_head_edit *edit,
                         const struct shunt_head_ctx *ctx, shunt_head_change_cb change,
                         void *cctx)
{
    struct shunt_lua *lx = ud;
    struct lstate *st = worker_state(lx, ctx->worker);
    if (st == NULL)
        return;
    int ref = ctx->is_request ? st->ref_req : st->ref_resp;
    if (ref == LUA_NOREF)
        return; /* the file does not define this hook: nothing to do */

    struct shunt_edit_field stack[SNAP_STACK];
    struct snap snap = {stack, 0, 0, 0};
    if (edit->n > SNAP_STACK) {
        snap.f = malloc(edit->n * sizeof(*snap.f));
        if (snap.f == NULL)
            return;
    }
    snap_take(&snap, edit);

    lua_State *L = st->L;
    st->edit = edit;
    st->ctx = ctx;
    st->serial++;
    st->n_pend = st->n_pend_dropped = 0;
    st->report = change != NULL;
    memset(&st->out, 0, sizeof(st->out));
    budget(L, SHUNT_LUA_MAX_INSTRUCTIONS);
    lua_settop(L, 0);
    lua_pushcfunction(L, call_hook);
    lua_pushinteger(L, ref);
    int r = call_status(L, lua_pcall(L, 1, 0, 0));
    st->edit = NULL;
    st->ctx = NULL;
    st->serial++;
    st->mem_used -= st->store_held; /* the store is the proxy's again */
    st->store_held = 0;
    if (r == LUA_OK) {
        for (size_t i = 0; i < st->n_pend; i++) /* none when change is NULL */
            change(cctx, st->pend[i].what, st->pend[i].by);
        if (st->n_pend_dropped > 0) {
            char what[80];
            snprintf(what, sizeof(what), "%zu more changes not listed", st->n_pend_dropped);
            change(cctx, what, lx->name);
        }
        give_out(st, ctx->out);
    } else {
        free(st->out.respond_fields);
        free(st->out.respond_body);
        memset(&st->out, 0, sizeof(st->out));
        snap_restore(&snap, edit);
        const char *m = lua_tostring(L, -1);
        char what[400];
        snprintf(what, sizeof(what), "error: %s",
                 m ? m : r == LUA_ERRMEM ? "not enough memory" : "(error object is not a string)");
        log_rule_error(what + 7);
        if (change != NULL)
            change(cctx, what, lx->name);
    }
    lua_settop(L, 0);
    if (snap.f != stack)
        free(snap.f);
}
