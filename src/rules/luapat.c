/* src/rules/luapat.c - Lua's string patterns, counted: the pattern language of Lua 5.4
 * (manual section 6.4.1) matched by the same backtracking method as its string library, with
 * every step charged to the rules' instruction budget.
 *
 * Why not the library's own functions: their matcher runs inside one C call, which the count
 * hook never interrupts, and its work grows as the subject length to the power of the number
 * of quantified items: string.rep(".-", 30) .. "b" over a few hundred bytes runs for minutes
 * and stalls every other connection of the worker. Here one step is one pass of match()'s
 * loop, one character scanned by a greedy item, %b or a back reference, or one character
 * copied by gsub; steps are charged in batches, and the charge raises once the call's
 * budget is spent. Everything else (the language, results, errors) follows the manual.
 *
 * Every function here may raise (MAY_LJMP) and holds no C resource: the matcher's state
 * lives on the C stack, gmatch's in a userdata. */
#include "rules/luapat.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

#define MAXCAPTURES 32   /* as LUA_MAXCAPTURES */
#define MAXDEPTH 200     /* nested match() calls, as the library's MAXCCALLS */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'
#define SPECIALS "^$*+?.([%-"

struct mstate {
    const char *src_init, *src_end; /* the subject */
    const char *p_end;              /* the pattern's end */
    lua_State *L;
    const struct shunt_luapat_budget *budget;
    size_t steps; /* counted, not yet charged */
    int depth;    /* match() calls still allowed */
    int level;    /* captures open or closed */
    struct {
        const char *init;
        ptrdiff_t len; /* or CAP_UNFINISHED, CAP_POSITION */
    } capture[MAXCAPTURES];
};

static unsigned char uc(char c)
{
    return (unsigned char)c;
}

/* Counts <n> steps, charging them once a batch is full. MAY_LJMP */
static void step(struct mstate *ms, size_t n)
{
    ms->steps += n;
    if (ms->steps >= SHUNT_LUAPAT_BATCH) {
        size_t s = ms->steps;
        ms->steps = 0;
        ms->budget->charge(ms->L, s);
    }
}

/* Charges what is left of the count (at the end of a search). MAY_LJMP */
static void settle(struct mstate *ms)
{
    size_t s = ms->steps;
    ms->steps = 0;
    if (s > 0)
        ms->budget->charge(ms->L, s);
}

static void prepare(struct mstate *ms, lua_State *L, const struct shunt_luapat_budget *b,
                    const char *s, size_t ls, const char *p, size_t lp)
{
    ms->L = L;
    ms->budget = b;
    ms->steps = 0;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
}

static void restart(struct mstate *ms)
{
    ms->level = 0;
    ms->depth = MAXDEPTH;
}

/* ------------------------------------------------------------------------ the matcher */

static int check_capture(struct mstate *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static int capture_to_close(struct mstate *ms)
{
    for (int level = ms->level - 1; level >= 0; level--)
        if (ms->capture[level].len == CAP_UNFINISHED)
            return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

/* The end of the single-character class starting at <p>. */
static const char *class_end(struct mstate *ms, const char *p)
{
    if (*p++ == ESC) {
        if (p == ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (p[-1] == '[') {
        if (*p == '^')
            p++;
        do { /* the first character is never the closing ']' */
            if (p == ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*p++ == ESC && p < ms->p_end)
                p++; /* an escape, such as %] */
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

/* <c> against the class letter <cl> (%a, %d...; upper case is the complement). */
static int match_class(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, still in 5.4's library */
    default: return cl == c;
    }
    if (isupper(cl))
        r = !r;
    return r != 0;
}

/* <c> against the set [...] from <p> (at '[') to <ec> (at ']'). */
static int match_set(int c, const char *p, const char *ec)
{
    int sig = 1;
    if (p[1] == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (match_class(c, uc(*p)))
                return sig;
        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if (uc(p[-2]) <= c && c <= uc(*p))
                return sig;
        } else if (uc(*p) == c) {
            return sig;
        }
    }
    return !sig;
}

static int single_match(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return 0;
    int c = uc(*s);
    switch (*p) {
    case '.': return 1;
    case ESC: return match_class(c, uc(p[1]));
    case '[': return match_set(c, p, ep - 1);
    default: return uc(*p) == c;
    }
}

static const char *match(struct mstate *ms, const char *s, const char *p);

static const char *match_balance(struct mstate *ms, const char *s, const char *p)
{
    if (p >= ms->p_end - 1)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    int b = *p, e = p[1], cont = 1;
    const char *start = s;
    while (++s < ms->src_end) {
        if (*s == e) {
            if (--cont == 0) {
                step(ms, (size_t)(s - start));
                return s + 1;
            }
        } else if (*s == b) {
            cont++;
        }
    }
    step(ms, (size_t)(s - start));
    return NULL;
}

/* <p> to <ep> repeated as often as possible, then one fewer each time the rest fails. */
static const char *max_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_match(ms, s + i, p, ep))
        i++;
    step(ms, (size_t)i);
    while (i >= 0) {
        const char *r = match(ms, s + i, ep + 1);
        if (r != NULL)
            return r;
        i--;
    }
    return NULL;
}

/* <p> to <ep> repeated as rarely as possible: one more each time the rest fails. */
static const char *min_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(ms, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single_match(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(struct mstate *ms, const char *s, const char *p, int what)
{
    int level = ms->level;
    if (level >= MAXCAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[level].init = s;
    ms->capture[level].len = what;
    ms->level = level + 1;
    const char *r = match(ms, s, p);
    if (r == NULL)
        ms->level--;
    return r;
}

static const char *end_capture(struct mstate *ms, const char *s, const char *p)
{
    int l = capture_to_close(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *r = match(ms, s, p);
    if (r == NULL)
        ms->capture[l].len = CAP_UNFINISHED;
    return r;
}

static const char *match_capture(struct mstate *ms, const char *s, int l)
{
    l = check_capture(ms, l);
    if (ms->capture[l].len == CAP_POSITION)
        return NULL; /* as in the library (its length reads as huge): a position never matches;
                        and no negative count reaches step() */
    size_t len = (size_t)ms->capture[l].len;
    step(ms, len);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* Matches the pattern from <p> against the subject from <s>: the end of the match, or NULL. */
static const char *match(struct mstate *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error(ms->L, "pattern too complex");
    while (p != ms->p_end) {
        step(ms, 1);
        const char *ep;
        switch (*p) {
        case '(':
            s = p[1] == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
                            : start_capture(ms, s, p + 1, CAP_UNFINISHED);
            goto done;
        case ')':
            s = end_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != ms->p_end)
                goto single; /* a '$' inside the pattern is a character */
            s = s == ms->src_end ? s : NULL;
            goto done;
        case ESC:
            switch (p[1]) {
            case 'b':
                s = match_balance(ms, s, p + 2);
                if (s == NULL)
                    goto done;
                p += 4;
                continue;
            case 'f': {
                p += 2;
                if (*p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                ep = class_end(ms, p);
                int prev = s == ms->src_init ? '\0' : uc(s[-1]);
                int cur = s < ms->src_end ? uc(*s) : '\0';
                if (!match_set(prev, p, ep - 1) && match_set(cur, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                goto done;
            }
            case '0': case '1': case '2': case '3': case '4':
            case '5': case '6': case '7': case '8': case '9':
                s = match_capture(ms, s, uc(p[1]));
                if (s == NULL)
                    goto done;
                p += 2;
                continue;
            default:
                goto single;
            }
        default:
        single:
            ep = class_end(ms, p);
            if (!single_match(ms, s, p, ep)) {
                if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero repetitions are fine */
                    p = ep + 1;
                    continue;
                }
                s = NULL;
                goto done;
            }
            switch (*ep) {
            case '?': {
                const char *r = match(ms, s + 1, ep + 1);
                if (r != NULL) {
                    s = r;
                    goto done;
                }
                p = ep + 1;
                continue;
            }
            case '+': s = max_expand(ms, s + 1, p, ep); goto done;
            case '*': s = max_expand(ms, s, p, ep); goto done;
            case '-': s = min_expand(ms, s, p, ep); goto done;
            default: s++; p = ep; continue;
            }
        }
    }
done:
    ms->depth++;
    return s;
}

/* ------------------------------------------------------------------------ captures */

/* Capture <i> of a match from <s> to <e>: its length with *cap set, or CAP_POSITION with
 * the position pushed. Capture 0 with no captures is the whole match. */
static ptrdiff_t one_capture(struct mstate *ms, int i, const char *s, const char *e,
                             const char **cap)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    ptrdiff_t len = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (len == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    else if (len == CAP_POSITION)
        lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    return len;
}

static void push_one_capture(struct mstate *ms, int i, const char *s, const char *e)
{
    const char *cap;
    ptrdiff_t l = one_capture(ms, i, s, e, &cap);
    if (l != CAP_POSITION)
        lua_pushlstring(ms->L, cap, (size_t)l);
}

static int push_captures(struct mstate *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s != NULL) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_one_capture(ms, i, s, e);
    return n;
}

/* ------------------------------------------------------------------------ the functions */

static const struct shunt_luapat_budget *budget_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The 0-based start of a 1-based position that may count from the end (manual 6.4). */
static size_t start_of(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len - (size_t)(-pos);
}

static int has_specials(const char *p, size_t l)
{
    size_t upto = 0;
    do { /* strpbrk stops at a NUL: look past each one */
        if (strpbrk(p + upto, SPECIALS) != NULL)
            return 1;
        upto += strlen(p + upto) + 1;
    } while (upto <= l);
    return 0;
}

static int find_aux(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_of(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (at != NULL) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(at - s) + lp));
            return 2;
        }
    } else {
        struct mstate ms;
        int anchor = *p == '^';
        if (anchor) {
            p++;
            lp--;
        }
        prepare(&ms, L, budget_of(L), s, ls, p, lp);
        const char *s1 = s + init;
        do {
            restart(&ms);
            const char *e = match(&ms, s1, p);
            if (e != NULL) {
                settle(&ms);
                if (find) {
                    lua_pushinteger(L, (s1 - s) + 1);
                    lua_pushinteger(L, e - s);
                    return push_captures(&ms, NULL, 0) + 2;
                }
                return push_captures(&ms, s1, e);
            }
        } while (s1++ < ms.src_end && !anchor);
        settle(&ms);
    }
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_aux(L, 1);
}

static int l_match(lua_State *L)
{
    return find_aux(L, 0);
}

struct gmatch {
    const char *src, *p, *lastmatch;
    struct mstate ms;
};

/* The iterator: upvalues budget, subject, pattern, state. */
static int gmatch_next(lua_State *L)
{
    struct gmatch *gm = lua_touserdata(L, lua_upvalueindex(4));
    gm->ms.L = L; /* the iterator may be called from another coroutine than its maker */
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        restart(&gm->ms);
        const char *e = match(&gm->ms, src, gm->p);
        if (e != NULL && e != gm->lastmatch) {
            settle(&gm->ms);
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    settle(&gm->ms);
    gm->src = gm->ms.src_end + 1; /* done: later calls find nothing at once */
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_of(luaL_optinteger(L, 3, 1), ls);
    if (init > ls)
        init = ls + 1; /* past the end: no match */
    lua_settop(L, 2);
    struct gmatch *gm = lua_newuserdatauv(L, sizeof(*gm), 0);
    prepare(&gm->ms, L, budget_of(L), s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1); /* budget, s, p, state: the strings stay alive with the iterator */
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/* Adds the replacement string (argument 3) with its %0-%9 and %% to <b>. */
static void add_string(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(news, ESC, l)) != NULL) {
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;
        if (*p == ESC) {
            luaL_addchar(b, *p);
        } else if (*p == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(uc(*p))) {
            const char *cap;
            ptrdiff_t len = one_capture(ms, *p - '1', s, e, &cap);
            if (len == CAP_POSITION)
                luaL_addvalue(b); /* the position pushed, right above the buffer */
            else
                luaL_addlstring(b, cap, (size_t)len);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        l -= (size_t)(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

/* Adds the replacement of the match from <s> to <e>; returns 1 when it changed the text.
 * Every value is pushed right above the buffer and added with luaL_addvalue, which is what
 * luaL_Buffer requires. */
static int add_value(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    switch (tr) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_one_capture(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_string(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int l_gsub(lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = *p == '^';
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                            tr == LUA_TTABLE,
                     3, "string/function/table");
    const struct shunt_luapat_budget *budget = budget_of(L);
    lua_settop(L, 4); /* the buffer goes right above the arguments */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    struct mstate ms;
    prepare(&ms, L, budget, src, srcl, p, lp);
    while (n < max_s) {
        restart(&ms);
        const char *e = match(&ms, src, p);
        if (e != NULL && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            step(&ms, 1);
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    settle(&ms);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void shunt_luapat__replace(lua_State *L, const struct shunt_luapat_budget *b)
{
    static const luaL_Reg fns[] = {
        {"find", l_find},
        {"match", l_match},
        {"gmatch", l_gmatch},
        {"gsub", l_gsub},
        {NULL, NULL},
    };
    lua_pushlightuserdata(L, (void *)b);
    luaL_setfuncs(L, fns, 1);
}
