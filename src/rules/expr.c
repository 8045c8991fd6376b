/* src/rules/expr.c - filter expressions: a recursive-descent compiler to a short linear
 * program with short-circuit jumps, and an evaluator that runs it without recursion. */
#include "rules/expr.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ================================================================ the compiled form */

/* What a term tests. */
enum kind {
    K_ALL,    /* ~all */
    K_REQ,    /* ~q: no response yet */
    K_RESP,   /* ~s: has a response */
    K_ERROR,  /* ~e */
    K_AUTH,   /* ~auth */
    K_ASSET,  /* ~a: response Content-Type of an asset (fixed regex) */
    K_CODE,   /* ~c N */
    K_CONN,   /* ~conn ID */
    K_CLOSED, /* ~closed client|server|proxy */
    K_METHOD, /* ~m RE */
    K_DOMAIN, /* ~d RE */
    K_URL,    /* ~u RE, and a bare regex */
    K_HEAD,   /* ~h RE */
    K_HEADQ,  /* ~hq RE */
    K_HEADS,  /* ~hs RE */
    K_TYPE,   /* ~t RE */
    K_TYPEQ,  /* ~tq RE */
    K_TYPES,  /* ~ts RE */
    K_BODY,   /* ~b RE */
    K_BODYQ,  /* ~bq RE */
    K_BODYS,  /* ~bs RE */
};

/* The argument a term takes. */
enum arg { A_NONE, A_REGEX, A_STATUS, A_CONN, A_CLOSED };

static const struct keyword {
    const char *name; /* without the ~ */
    enum kind kind;
    enum arg arg;
    uint32_t re_flags; /* PCRE2 options besides CASELESS */
    unsigned needs;    /* SHUNT_EXPR_NEED_* */
} keywords[] = {
    {"all", K_ALL, A_NONE, 0, 0},
    {"q", K_REQ, A_NONE, 0, 0},
    {"s", K_RESP, A_NONE, 0, 0},
    {"e", K_ERROR, A_NONE, 0, 0},
    {"auth", K_AUTH, A_NONE, 0, 0},
    {"a", K_ASSET, A_NONE, 0, SHUNT_EXPR_NEED_RESP_HEADERS},
    {"c", K_CODE, A_STATUS, 0, 0},
    {"conn", K_CONN, A_CONN, 0, 0},
    {"closed", K_CLOSED, A_CLOSED, 0, 0},
    {"m", K_METHOD, A_REGEX, 0, 0},
    {"d", K_DOMAIN, A_REGEX, 0, 0},
    {"u", K_URL, A_REGEX, 0, 0},
    /* mitmproxy: MULTILINE for headers, DOTALL for bodies. */
    {"h", K_HEAD, A_REGEX, PCRE2_MULTILINE,
     SHUNT_EXPR_NEED_REQ_HEADERS | SHUNT_EXPR_NEED_RESP_HEADERS},
    {"hq", K_HEADQ, A_REGEX, PCRE2_MULTILINE, SHUNT_EXPR_NEED_REQ_HEADERS},
    {"hs", K_HEADS, A_REGEX, PCRE2_MULTILINE, SHUNT_EXPR_NEED_RESP_HEADERS},
    {"t", K_TYPE, A_REGEX, 0, SHUNT_EXPR_NEED_REQ_HEADERS | SHUNT_EXPR_NEED_RESP_HEADERS},
    {"tq", K_TYPEQ, A_REGEX, 0, SHUNT_EXPR_NEED_REQ_HEADERS},
    {"ts", K_TYPES, A_REGEX, 0, SHUNT_EXPR_NEED_RESP_HEADERS},
    {"b", K_BODY, A_REGEX, PCRE2_DOTALL, SHUNT_EXPR_NEED_REQ_BODY | SHUNT_EXPR_NEED_RESP_BODY},
    {"bq", K_BODYQ, A_REGEX, PCRE2_DOTALL, SHUNT_EXPR_NEED_REQ_BODY},
    {"bs", K_BODYS, A_REGEX, PCRE2_DOTALL, SHUNT_EXPR_NEED_RESP_BODY},
};

/* mitmproxy's filters that shunt does not have, named in the error instead of "unknown". */
static const char *const foreign[] = {"http",   "tcp",    "udp",     "dns",     "websocket",
                                      "marked", "marker", "replay",  "replayq", "replays",
                                      "src",    "dst",    "comment", "meta"};

/* mitmproxy's ~a: the response Content-Type of CSS, JavaScript, images and fonts. */
static const char asset_re[] = "text/javascript|application/x-javascript|application/javascript|"
                               "text/css|image/.*|font/.*|application/font.*";

struct term {
    enum kind kind;
    pcre2_code *re; /* regex terms and ~a; NULL otherwise */
    int64_t num;    /* ~c status, ~conn id, ~closed enum shunt_expr_closed */
};

/*
 * The program: one register r, instructions in order. TERM sets r to the term's value; JF
 * jumps when r is false, JT when r is true (r unchanged: that is the value of the whole
 * `&` or `|` they short-circuit); NOT negates r. `a & b` is "a JF(end) b", `a | b` is
 * "a JT(end) b", so evaluation is a loop without recursion whatever the nesting.
 */
enum op { OP_TERM, OP_JF, OP_JT, OP_NOT };

struct insn {
    uint32_t op;  /* enum op */
    uint32_t arg; /* TERM: index in terms; JF, JT: target instruction */
};

struct shunt_expr {
    char *text;                  /* as compiled, NUL-terminated */
    struct insn *insns;          /* the program */
    size_t n_insns;
    struct term *terms;
    size_t n_terms;
    pcre2_match_context *mctx;   /* limits; read-only once compiled, shared by threads */
    unsigned needs;              /* SHUNT_EXPR_NEED_* */
};

/* ================================================================ per-thread state */

/* What a thread needs to evaluate: PCRE2 match data (PCRE2 keeps its backtracking frames
 * there between calls) and a buffer where a header line is put together as "Name: value". */
struct tstate {
    pcre2_match_data *md;
    char *line;
    size_t line_cap;
};

static pthread_key_t tkey;
static pthread_once_t tkey_once = PTHREAD_ONCE_INIT;
static int tkey_ok;

static void tstate_free(void *p)
{
    struct tstate *t = p;
    if (t == NULL)
        return;
    pcre2_match_data_free(t->md);
    free(t->line);
    free(t);
}

static void tkey_init(void)
{
    tkey_ok = pthread_key_create(&tkey, tstate_free) == 0;
}

/* Returns the calling thread's state, made on its first call; NULL when out of memory. */
static struct tstate *tstate_get(void)
{
    pthread_once(&tkey_once, tkey_init);
    if (!tkey_ok)
        return NULL;
    struct tstate *t = pthread_getspecific(tkey);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->md = pcre2_match_data_create(1, NULL); /* only "matched or not" is wanted */
    if (t->md == NULL || pthread_setspecific(tkey, t) != 0) {
        tstate_free(t);
        return NULL;
    }
    return t;
}

/* ================================================================ the compiler */

struct parser {
    const char *s;   /* the text */
    size_t len;      /* its bytes */
    size_t pos;      /* next byte to read */
    int depth;       /* parentheses and ! open around pos */
    struct shunt_expr *e;
    size_t cap_insns, cap_terms;
    pcre2_compile_context *cctx;
    struct shunt_expr_error *err;
    int oom;         /* an allocation failed (the error is then SHUNT_ENOMEM) */
};

static int fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a syntax error at byte <at>. Returns -1. */
static int fail(struct parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
    va_end(ap);
    p->err->offset = at;
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A character that ends a bare word (mitmproxy: anything but whitespace and ()~'"). */
static int ends_word(char c)
{
    return is_space(c) || c == '(' || c == ')' || c == '~' || c == '\'' || c == '"';
}

/* A character that may follow a number or a name argument. */
static int ends_token(char c)
{
    return ends_word(c) || c == '&' || c == '|' || c == '!';
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void skip_space(struct parser *p)
{
    while (p->pos < p->len && is_space(p->s[p->pos]))
        p->pos++;
}

/* The next significant character, or 0 at the end (a NUL in the text is read as a regex
 * character by the word scanner, never here: callers check pos < len first). */
static char peek(struct parser *p)
{
    skip_space(p);
    return p->pos < p->len ? p->s[p->pos] : 0;
}

static int at_end(struct parser *p)
{
    skip_space(p);
    return p->pos >= p->len;
}

/* Appends an instruction; returns its index, or SIZE_MAX when out of memory. */
static size_t emit(struct parser *p, enum op op, uint32_t arg)
{
    struct shunt_expr *e = p->e;
    if (e->n_insns == p->cap_insns) {
        size_t cap = p->cap_insns ? p->cap_insns * 2 : 16;
        struct insn *n = realloc(e->insns, cap * sizeof(*n));
        if (n == NULL) {
            p->oom = 1;
            return SIZE_MAX;
        }
        e->insns = n;
        p->cap_insns = cap;
    }
    e->insns[e->n_insns].op = op;
    e->insns[e->n_insns].arg = arg;
    return e->n_insns++;
}

static struct term *new_term(struct parser *p)
{
    struct shunt_expr *e = p->e;
    if (e->n_terms == p->cap_terms) {
        size_t cap = p->cap_terms ? p->cap_terms * 2 : 8;
        struct term *n = realloc(e->terms, cap * sizeof(*n));
        if (n == NULL) {
            p->oom = 1;
            return NULL;
        }
        e->terms = n;
        p->cap_terms = cap;
    }
    struct term *t = &e->terms[e->n_terms++];
    memset(t, 0, sizeof(*t));
    return t;
}

/* Points the jumps listed in insns[from..] whose target is the placeholder <mark> at the
 * instruction that comes next. */
static void patch(struct parser *p, size_t from, uint32_t mark)
{
    for (size_t k = from; k < p->e->n_insns; k++)
        if ((p->e->insns[k].op == OP_JF || p->e->insns[k].op == OP_JT) &&
            p->e->insns[k].arg == mark)
            p->e->insns[k].arg = (uint32_t)p->e->n_insns;
}

/*
 * Reads a regex argument at p->pos (after whitespace): a quoted string ('...' or "..."; a
 * backslash before the closing quote character or before a backslash stands for that
 * character, any other backslash is kept for the regex) or a bare word (up to whitespace or
 * one of ()~'"). Returns a new NUL-terminated pattern (free()) with its length in *<n> and
 * its byte offset in *<at>, or NULL with the error recorded.
 */
static char *read_regex_arg(struct parser *p, const char *term, size_t *n, size_t *at)
{
    skip_space(p);
    *at = p->pos;
    if (p->pos >= p->len) {
        fail(p, p->pos, "%s needs a regular expression", term);
        return NULL;
    }
    char c = p->s[p->pos];
    if (c == '\'' || c == '"') {
        size_t start = p->pos++, cap = 0;
        /* The decoded pattern is never longer than the quoted text. */
        char *out = malloc(p->len - start + 1);
        if (out == NULL) {
            p->oom = 1;
            return NULL;
        }
        while (p->pos < p->len && p->s[p->pos] != c) {
            char x = p->s[p->pos];
            if (x == '\\' && p->pos + 1 < p->len &&
                (p->s[p->pos + 1] == c || p->s[p->pos + 1] == '\\')) {
                out[cap++] = p->s[p->pos + 1];
                p->pos += 2;
                continue;
            }
            out[cap++] = x;
            p->pos++;
        }
        if (p->pos >= p->len) {
            free(out);
            fail(p, start, "unterminated string: no closing %c", c);
            return NULL;
        }
        p->pos++;
        out[cap] = '\0';
        *n = cap;
        return out;
    }
    if (c == '(' || c == ')' || c == '~') {
        fail(p, p->pos, "%s needs a regular expression before '%c' (quote one that starts "
                        "with it)", term, c);
        return NULL;
    }
    size_t start = p->pos;
    while (p->pos < p->len && !ends_word(p->s[p->pos]))
        p->pos++;
    char *out = malloc(p->pos - start + 1);
    if (out == NULL) {
        p->oom = 1;
        return NULL;
    }
    memcpy(out, p->s + start, p->pos - start);
    out[p->pos - start] = '\0';
    *n = p->pos - start;
    return out;
}

/* Compiles the regex <pat>/<n> for a term; the error names <term> and points at <at>. */
static pcre2_code *compile_re(struct parser *p, const char *term, const char *pat, size_t n,
                              uint32_t flags, size_t at)
{
    int code;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n,
                                   PCRE2_CASELESS | PCRE2_NEVER_UTF | flags, &code, &eoff,
                                   p->cctx);
    if (re == NULL) {
        if (code == PCRE2_ERROR_NOMEMORY) {
            p->oom = 1;
            return NULL;
        }
        PCRE2_UCHAR msg[120];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        fail(p, at, "%s: bad regular expression: %s (at offset %zu of the pattern)", term,
             (const char *)msg, (size_t)eoff);
        return NULL;
    }
    /* JIT is an optimisation: without it (no support, no executable memory) pcre2_match
     * interprets the same pattern. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* Reads a whole-number argument of <term> in [<min>, <max>]; <what> names it for errors. */
static int read_number_arg(struct parser *p, const char *term, const char *what, int64_t min,
                           int64_t max, int64_t *out)
{
    skip_space(p);
    size_t start = p->pos;
    int64_t v = 0;
    int over = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        int d = p->s[p->pos] - '0';
        if (v > (INT64_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
        p->pos++;
    }
    if (p->pos == start || (p->pos < p->len && !ends_token(p->s[p->pos])) || over || v < min ||
        v > max)
        return fail(p, start, "%s needs %s", term, what);
    *out = v;
    return 0;
}

static int parse_seq(struct parser *p);

/* term := '~' NAME [argument] | bare-regex (mitmproxy: a string alone is matched against the
 * URL). */
static int parse_term(struct parser *p)
{
    size_t at = p->pos;
    const struct keyword *kw = NULL;
    char name[16];
    if (p->s[p->pos] == '~') {
        size_t start = ++p->pos;
        while (p->pos < p->len && is_alnum(p->s[p->pos]))
            p->pos++;
        size_t n = p->pos - start;
        if (n == 0)
            return fail(p, at, "expected a filter name after ~");
        for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]) && n < sizeof(name); k++)
            if (strlen(keywords[k].name) == n && memcmp(keywords[k].name, p->s + start, n) == 0)
                kw = &keywords[k];
        if (kw == NULL) {
            for (size_t k = 0; k < sizeof(foreign) / sizeof(foreign[0]); k++)
                if (strlen(foreign[k]) == n && memcmp(foreign[k], p->s + start, n) == 0)
                    return fail(p, at, "~%s is a mitmproxy filter that shunt does not have",
                                foreign[k]);
            return fail(p, at, "unknown filter ~%.*s", n > 20 ? 20 : (int)n, p->s + start);
        }
        snprintf(name, sizeof(name), "~%s", kw->name);
    } else {
        for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
            if (keywords[k].kind == K_URL)
                kw = &keywords[k];
        snprintf(name, sizeof(name), "bare regex");
    }
    struct term *t = new_term(p);
    if (t == NULL)
        return -1;
    t->kind = kw->kind;
    p->e->needs |= kw->needs;
    switch (kw->arg) {
    case A_NONE:
        if (kw->kind == K_ASSET) {
            t->re = compile_re(p, name, asset_re, sizeof(asset_re) - 1, 0, at);
            if (t->re == NULL)
                return -1;
        }
        break;
    case A_STATUS:
        if (read_number_arg(p, name, "a status code (100-999)", 100, 999, &t->num) != 0)
            return -1;
        break;
    case A_CONN:
        if (read_number_arg(p, name, "a connection id (1, 2, ...)", 1, INT64_MAX, &t->num) != 0)
            return -1;
        break;
    case A_CLOSED: {
        static const char *const who[] = {"client", "server", "proxy"};
        skip_space(p);
        size_t start = p->pos;
        while (p->pos < p->len && is_alnum(p->s[p->pos]))
            p->pos++;
        size_t n = p->pos - start;
        for (int k = 0; k < 3; k++)
            if (strlen(who[k]) == n && strncasecmp(who[k], p->s + start, n) == 0)
                t->num = k + 1;
        if (t->num == 0 || (p->pos < p->len && !ends_token(p->s[p->pos])))
            return fail(p, start, "~closed needs client, server or proxy");
        break;
    }
    case A_REGEX: {
        size_t n, arg_at; /* a bare regex is its own argument: p->pos is still on it */
        char *pat = read_regex_arg(p, name, &n, &arg_at);
        if (pat == NULL)
            return -1;
        t->re = compile_re(p, name, pat, n, kw->re_flags, arg_at);
        free(pat);
        if (t->re == NULL)
            return -1;
        break;
    }
    }
    return emit(p, OP_TERM, (uint32_t)(t - p->e->terms)) == SIZE_MAX ? -1 : 0;
}

/* Says what is wrong when a filter was expected at p->pos (only ')', '&', '|' or the end
 * can be there). */
static int expected_filter(struct parser *p, const char *after)
{
    if (p->pos >= p->len)
        return fail(p, p->len, "expected a filter %s, found the end", after);
    return fail(p, p->pos, "expected a filter %s, found %c", after, p->s[p->pos]);
}

/* Can the next character start a filter (a term, `!` or `(`)? */
static int starts_filter(struct parser *p)
{
    char c = peek(p);
    return p->pos < p->len && c != ')' && c != '&' && c != '|';
}

/* not := '!' not | '(' seq ')' | term */
static int parse_not(struct parser *p, const char *after)
{
    if (!starts_filter(p))
        return expected_filter(p, after);
    char c = p->s[p->pos];
    if (c == '!' || c == '(') {
        if (++p->depth > SHUNT_EXPR_MAX_DEPTH)
            return fail(p, p->pos, "nested too deeply (more than %d levels of ( and !)",
                        SHUNT_EXPR_MAX_DEPTH);
        size_t open = p->pos++;
        if (c == '!') {
            if (parse_not(p, "after !") != 0 || emit(p, OP_NOT, 0) == SIZE_MAX)
                return -1;
        } else {
            if (parse_seq(p) != 0)
                return -1;
            /* parse_seq stops only at the end or at a ')'. */
            if (at_end(p))
                return fail(p, open, "this ( is never closed");
            p->pos++;
        }
        p->depth--;
        return 0;
    }
    return parse_term(p);
}

static int parse_and(struct parser *p);

/* or := and ('|' and)* ; each '|' is preceded by a JT to the end of the whole or. The jumps
 * wait for their target under a placeholder of their own level, so that the jumps of a
 * nested level (emitted after this level's <from>, patched before returning) never mix. */
static int parse_or(struct parser *p)
{
    size_t from = p->e->n_insns;
    const uint32_t mark = UINT32_MAX - 1;
    if (parse_and(p) != 0)
        return -1;
    while (peek(p) == '|' && p->pos < p->len) {
        p->pos++;
        if (emit(p, OP_JT, mark) == SIZE_MAX || parse_and(p) != 0)
            return -1;
    }
    patch(p, from, mark);
    return 0;
}

/* and := not ('&' not)* ; each '&' is preceded by a JF to the end. */
static int parse_and(struct parser *p)
{
    size_t from = p->e->n_insns;
    const uint32_t mark = UINT32_MAX - 2;
    if (parse_not(p, "here") != 0)
        return -1;
    while (peek(p) == '&' && p->pos < p->len) {
        p->pos++;
        if (emit(p, OP_JF, mark) == SIZE_MAX || parse_not(p, "after &") != 0)
            return -1;
    }
    patch(p, from, mark);
    return 0;
}

/*
 * seq := or or* : juxtaposed expressions are ANDed, and bind more loosely than | (mitmproxy
 * reads its input as one or more complete operator expressions: `~q ~d x | ~s` is
 * `~q & (~d x | ~s)`). mitmproxy allows juxtaposition only at the top level; shunt also
 * inside parentheses, with the same meaning.
 */
static int parse_seq(struct parser *p)
{
    size_t from = p->e->n_insns;
    const uint32_t mark = UINT32_MAX - 3;
    if (parse_or(p) != 0)
        return -1;
    while (starts_filter(p)) {
        if (emit(p, OP_JF, mark) == SIZE_MAX || parse_or(p) != 0)
            return -1;
    }
    patch(p, from, mark);
    return 0;
}

/* The 1-based column of byte <off> of <s>: UTF-8 continuation bytes do not count. */
static size_t column_of(const char *s, size_t off)
{
    size_t col = 1;
    for (size_t i = 0; i < off; i++)
        col += ((unsigned char)s[i] & 0xc0) != 0x80;
    return col;
}

int shunt_expr_compile_n(const char *text, size_t len, struct shunt_expr **out,
                         struct shunt_expr_error *err)
{
    struct parser p = {0};
    int rc = SHUNT_EPARSE;
    *out = NULL;
    memset(err, 0, sizeof(*err));
    p.s = text;
    p.len = len;
    p.err = err;
    if (len > SHUNT_EXPR_MAX_LEN) {
        fail(&p, SHUNT_EXPR_MAX_LEN, "expression too long (over %d bytes)", SHUNT_EXPR_MAX_LEN);
        goto done;
    }
    p.e = calloc(1, sizeof(*p.e));
    p.cctx = pcre2_compile_context_create(NULL);
    if (p.e == NULL || p.cctx == NULL)
        goto oom;
    p.e->text = malloc(len + 1);
    p.e->mctx = pcre2_match_context_create(NULL);
    if (p.e->text == NULL || p.e->mctx == NULL)
        goto oom;
    memcpy(p.e->text, text, len);
    p.e->text[len] = '\0';
    pcre2_set_match_limit(p.e->mctx, SHUNT_EXPR_MATCH_LIMIT);
    pcre2_set_heap_limit(p.e->mctx, SHUNT_EXPR_HEAP_LIMIT_KIB);
    if (at_end(&p)) {
        fail(&p, 0, "empty expression");
        goto done;
    }
    if (parse_seq(&p) != 0) {
        if (p.oom)
            goto oom;
        goto done;
    }
    if (!at_end(&p)) {
        /* parse_seq stops only at the end or at a ')' it did not open. */
        fail(&p, p.pos, "unexpected ) without a matching (");
        goto done;
    }
    *out = p.e;
    p.e = NULL;
    rc = 0;
    goto done;
oom:
    snprintf(err->message, sizeof(err->message), "out of memory");
    rc = SHUNT_ENOMEM;
done:
    if (rc == SHUNT_EPARSE)
        err->column = column_of(text, err->offset);
    pcre2_compile_context_free(p.cctx);
    shunt_expr_free(p.e);
    return rc;
}

int shunt_expr_compile(const char *text, struct shunt_expr **out, struct shunt_expr_error *err)
{
    return shunt_expr_compile_n(text, strlen(text), out, err);
}

void shunt_expr_free(struct shunt_expr *e)
{
    if (e == NULL)
        return;
    for (size_t k = 0; k < e->n_terms; k++)
        pcre2_code_free(e->terms[k].re);
    pcre2_match_context_free(e->mctx);
    free(e->terms);
    free(e->insns);
    free(e->text);
    free(e);
}

unsigned shunt_expr_needs(const struct shunt_expr *e)
{
    return e->needs;
}

int shunt_expr_uses_bodies(const struct shunt_expr *e)
{
    return (e->needs & (SHUNT_EXPR_NEED_REQ_BODY | SHUNT_EXPR_NEED_RESP_BODY)) != 0;
}

const char *shunt_expr_text(const struct shunt_expr *e)
{
    return e->text;
}

/* ================================================================ evaluation */

/* An evaluation in progress: the thread's state, fetched on the first regex. */
struct eval {
    const struct shunt_expr *e;
    struct tstate *ts;
    int ts_failed;
};

static int search(struct eval *ev, const pcre2_code *re, const char *p, size_t len)
{
    if (ev->ts == NULL) {
        if (ev->ts_failed)
            return 0;
        ev->ts = tstate_get();
        if (ev->ts == NULL) {
            ev->ts_failed = 1;
            return 0;
        }
    }
    /* rc 0 means "matched, ovector too small", which is all that is asked. */
    return pcre2_match(re, (PCRE2_SPTR)(p != NULL ? p : ""), len, 0, 0, ev->ts->md,
                       ev->e->mctx) >= 0;
}

static int search_slice(struct eval *ev, const pcre2_code *re, struct shunt_slice s)
{
    return search(ev, re, s.base, s.len);
}

/* Does <re> find something in one of the <n> fields, each seen as "Name: value"? */
static int search_headers(struct eval *ev, const pcre2_code *re, const struct shunt_http_header *h,
                          size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (ev->ts == NULL && !ev->ts_failed && (ev->ts = tstate_get()) == NULL)
            ev->ts_failed = 1;
        if (ev->ts == NULL)
            return 0;
        struct tstate *t = ev->ts;
        size_t need = h[k].name.len + 2 + h[k].value.len;
        if (need > t->line_cap) {
            /* Grows to the longest line this thread has seen, then never again. */
            size_t cap = need < 256 ? 256 : need;
            char *nl = realloc(t->line, cap);
            if (nl == NULL)
                continue;
            t->line = nl;
            t->line_cap = cap;
        }
        if (h[k].name.len)
            memcpy(t->line, h[k].name.base, h[k].name.len);
        t->line[h[k].name.len] = ':';
        t->line[h[k].name.len + 1] = ' ';
        if (h[k].value.len)
            memcpy(t->line + h[k].name.len + 2, h[k].value.base, h[k].value.len);
        if (search(ev, re, t->line, need))
            return 1;
    }
    return 0;
}

/* Does <re> find something in a Content-Type value among the <n> fields? */
static int search_type(struct eval *ev, const pcre2_code *re, const struct shunt_http_header *h,
                       size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (SHUNT_SLICE_IEQ_LIT(h[k].name, "content-type") && search_slice(ev, re, h[k].value))
            return 1;
    return 0;
}

static int eval_term(struct eval *ev, const struct term *t, const struct shunt_expr_subject *s)
{
    int resp = s->has_response != 0;
    switch (t->kind) {
    case K_ALL:
        return 1;
    case K_REQ:
        return !resp;
    case K_RESP:
        return resp;
    case K_ERROR:
        return s->error != 0;
    case K_AUTH:
        return s->auth != 0;
    case K_CODE:
        return resp && s->status == t->num;
    case K_CONN:
        return s->conn_id == t->num;
    case K_CLOSED:
        return s->closed == t->num;
    case K_METHOD:
        return search_slice(ev, t->re, s->method);
    case K_DOMAIN:
        return search_slice(ev, t->re, s->host);
    case K_URL:
        return search_slice(ev, t->re, s->url);
    case K_HEAD:
        return search_headers(ev, t->re, s->req_headers, s->n_req_headers) ||
               (resp && search_headers(ev, t->re, s->resp_headers, s->n_resp_headers));
    case K_HEADQ:
        return search_headers(ev, t->re, s->req_headers, s->n_req_headers);
    case K_HEADS:
        return resp && search_headers(ev, t->re, s->resp_headers, s->n_resp_headers);
    case K_TYPE:
        return search_type(ev, t->re, s->req_headers, s->n_req_headers) ||
               (resp && search_type(ev, t->re, s->resp_headers, s->n_resp_headers));
    case K_TYPEQ:
        return search_type(ev, t->re, s->req_headers, s->n_req_headers);
    case K_TYPES:
    case K_ASSET:
        return resp && search_type(ev, t->re, s->resp_headers, s->n_resp_headers);
    case K_BODY:
        return search_slice(ev, t->re, s->req_body) ||
               (resp && search_slice(ev, t->re, s->resp_body));
    case K_BODYQ:
        return search_slice(ev, t->re, s->req_body);
    case K_BODYS:
        return resp && search_slice(ev, t->re, s->resp_body);
    }
    return 0;
}

int shunt_expr_match(const struct shunt_expr *e, const struct shunt_expr_subject *s)
{
    struct eval ev = {e, NULL, 0};
    int r = 0;
    size_t pc = 0;
    while (pc < e->n_insns) {
        const struct insn *in = &e->insns[pc++];
        switch (in->op) {
        case OP_TERM:
            r = eval_term(&ev, &e->terms[in->arg], s);
            break;
        case OP_JF:
            if (!r)
                pc = in->arg;
            break;
        case OP_JT:
            if (r)
                pc = in->arg;
            break;
        case OP_NOT:
            r = !r;
            break;
        }
    }
    return r;
}
