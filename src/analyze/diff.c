/* src/analyze/diff.c - `shunt diff A B`: align, compare, rank (docs/diff.md). */
#include "analyze/diff.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyze/check.h"
#include "capture/har.h"
#include "capture/view.h"
#include "http/target.h"

/* Differences in scores below this are ties. */
#define SCORE_EPS 1e-9

/* ================================================================ folding */

/* A bounded output string: bytes past <cap> - 1 are dropped, the result is NUL-terminated. */
struct out {
    char *p;
    size_t cap, len;
};

/* Appends the <n> bytes at <s> to <o>, as many as fit. */
static void put(struct out *o, const char *s, size_t n)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* ASCII classes, whatever the locale. */
static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* True when <s> (<n> bytes) is 8-4-4-4-12 hex digits (RFC 9562 4). */
static int is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !is_hex(s[i]))
            return 0;
    return 1;
}

/* True when the <n> bytes at <s> look like an id rather than a name: a number, a UUID, 8 or
 * more hex digits with a digit among them, or 16 or more letters, digits, '-', '_' with both
 * a letter and a digit (a session or object token). Words ("items", "facade") are names. */
static int id_like(const char *s, size_t n)
{
    size_t digits = 0, hex = 0, token = 0, letters = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        digits += is_digit(s[i]);
        hex += is_hex(s[i]);
        letters += is_alpha(s[i]);
        token += is_digit(s[i]) || is_alpha(s[i]) || s[i] == '-' || s[i] == '_';
    }
    return digits == n || is_uuid(s, n) || (n >= 8 && hex == n && digits > 0) ||
           (n >= 16 && token == n && digits > 0 && letters > 0);
}

/* Writes the segment <s> (<n> bytes) folded: "{id}" when it (or the part before a ".ext" of
 * 1 to 5 letters) is id-like, otherwise unchanged. */
static void fold_segment(struct out *o, const char *s, size_t n)
{
    const char *dot = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == '.') {
            dot = s + i - 1;
            break;
        }
    size_t core = n;
    if (dot != NULL && dot > s) {
        size_t ext = n - (size_t)(dot - s) - 1, letters = 0;
        for (size_t i = 0; i < ext; i++)
            letters += is_alpha(dot[1 + i]);
        if (ext >= 1 && ext <= 5 && letters == ext)
            core = (size_t)(dot - s);
    }
    if (id_like(s, core)) {
        put(o, "{id}", 4);
        put(o, s + core, n - core);
    } else {
        put(o, s, n);
    }
}

size_t shunt_diff_fold_target(const char *target, size_t len, char *outbuf, size_t cap)
{
    struct out o = {outbuf, cap, 0};
    if (cap > 0)
        outbuf[0] = '\0';
    const char *p = target, *end = target + len;
    /* An absolute URL (forward proxies get them, RFC 9112 3.2.2): drop scheme and authority. */
    struct shunt_target t;
    if (shunt_http_split_target(shunt_slice_make(target, len), 0, &t) == SHUNT_TARGET_ABSOLUTE)
        p = t.path.len > 0 ? t.path.base : end;
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash != NULL)
        end = hash;
    if (p == end || *p == '?')
        put(&o, "/", 1);
    const char *q = memchr(p, '?', (size_t)(end - p));
    const char *path_end = q ? q : end;
    /* The path, segment by segment; a CONNECT authority is one segment. */
    while (p < path_end) {
        const char *slash = memchr(p, '/', (size_t)(path_end - p));
        const char *seg_end = slash ? slash : path_end;
        fold_segment(&o, p, (size_t)(seg_end - p));
        if (slash == NULL)
            break;
        put(&o, "/", 1);
        p = slash + 1;
    }
    if (q == NULL)
        return o.len;
    /* The query: names kept, each value folded as a segment is. */
    put(&o, "?", 1);
    p = q + 1;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *par_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(par_end - p));
        if (eq != NULL) {
            put(&o, p, (size_t)(eq - p) + 1);
            fold_segment(&o, eq + 1, (size_t)(par_end - eq - 1));
        } else {
            fold_segment(&o, p, (size_t)(par_end - p));
        }
        if (amp == NULL)
            break;
        put(&o, "&", 1);
        p = amp + 1;
    }
    return o.len;
}

/* ================================================================ records */

/* One exchange of either side, as the comparison sees it. */
struct rec {
    const struct shunt_model_exchange *e;
    int side;     /* 0 A, 1 B */
    char *key;    /* alignment key: "METHOD [origin]folded-target" */
    int closed;   /* the client closed early right after its response */
    int eligible; /* a response the client kept, comparable to one it closed after */
};

/* One distinct value of a field. */
struct val {
    char *text;
    size_t n[2];   /* messages of A and B with it */
    size_t closed; /* ... among the responses closed after */
    size_t kept;   /* ... among the eligible kept ones */
};

/* One field name in one part (request or response), pooled over both sides. */
struct fld {
    enum shunt_diff_part part;
    char *name;
    size_t present[2];
    size_t closed_present, kept_present;
    struct val *v;
    size_t n_v, cap_v;
    int overflow;      /* more than SHUNT_DIFF_MAX_VALUES distinct values */
    int presence_only; /* values change by nature; never compared */
    size_t last;       /* 1 + the record last counted, so that a message counts once */
};

struct ctx {
    struct rec *r;
    size_t n_r;
    struct fld *f;
    size_t n_f, cap_f;
    size_t *slots;   /* open-addressing index of <f> by part and name: 1 + index, 0 empty */
    size_t n_slots;  /* a power of 2, at least twice n_f */
    size_t n_closed, n_kept;
    size_t of[2][2]; /* messages by [part][side] */
    size_t cap_h;    /* capacity of the result's differences */
};

/* Makes room for element <n> of the array *<p> (capacity *<cap>). Returns 0 or -1. */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, nc * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* A new NUL-terminated copy of <s>, or NULL when out of memory. */
static char *dup_slice(struct shunt_slice s)
{
    char *c = malloc(s.len + 1);
    if (c != NULL) {
        if (s.len)
            memcpy(c, s.base, s.len);
        c[s.len] = '\0';
    }
    return c;
}

/* Did the client close the connection <c> early, right after the response of <e>? <e> is
 * its last exchange, got a response that did not itself end the connection (RFC 9112 9.3),
 * the closer was the client (or is unknown, as in most HARs), and a new connection to the
 * same origin followed (a close nothing followed may be a client that was done). */
static int closed_early(const struct shunt_model_conn *c, const struct shunt_model_exchange *e)
{
    if (c->tunnel || c->multiplexed || e != shunt_model_last(c) || e->status == 0 ||
        c->next == NULL)
        return 0; /* diagnose's notion of a replaced connection: a parallel one is not, nor
                     an HTTP/2 or HTTP/3 connection's end (model.h: multiplexed) */
    if (shunt_model_resp_closes(e) != NULL || c->surplus_bytes > 0)
        return 0; /* the response ended it, or bytes past its end made the client drop it */
    return strcmp(c->closer, "client") == 0 || shunt_model_closer_unknown(c);
}

/* Fills <s> with the connection behaviour of <m>. */
static void side_stats(const struct shunt_model *m, struct shunt_diff_side *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        if (c->n_ex == 0)
            continue;
        s->n_conns++;
        s->n_ex += c->n_ex;
        for (size_t k = 0; k < c->n_ex; k++)
            s->n_responses += c->ex[k].status != 0;
        if (strcmp(c->closer, "client") == 0)
            strcmp(c->close_how, "FIN") == 0 ? s->client_fin++ : s->client_rst++;
        else if (strcmp(c->closer, "server") == 0)
            s->server++;
        else if (strcmp(c->closer, "proxy") == 0)
            s->proxy++;
        else
            s->unknown++;
        s->early += (size_t)closed_early(c, shunt_model_last(c));
        s->handshakes += c->n_handshakes;
    }
    s->reqs_per_conn = s->n_conns ? (double)s->n_ex / (double)s->n_conns : 0;
    s->hs_per_req = s->n_ex ? (double)s->handshakes / (double)s->n_ex : 0;
}

/* Do two shares differ enough to tell? */
static int shares_differ(size_t x, size_t of_x, size_t y, size_t of_y, double min)
{
    double a = of_x ? (double)x / (double)of_x : 0, b = of_y ? (double)y / (double)of_y : 0;
    return fabs(a - b) >= min;
}

/* Connection behaviour differs: requests per connection by 10% or more, or the shares of
 * connections closed early by the client, closed by the server, or handshakes per request
 * by SHUNT_DIFF_MIN_RATE or more. */
static int conns_differ(const struct shunt_diff_side *a, const struct shunt_diff_side *b)
{
    if ((a->n_conns == 0) != (b->n_conns == 0))
        return 1;
    if (a->n_conns == 0)
        return 0;
    double hi = a->reqs_per_conn > b->reqs_per_conn ? a->reqs_per_conn : b->reqs_per_conn;
    return fabs(a->reqs_per_conn - b->reqs_per_conn) >= 0.1 * hi ||
           shares_differ(a->early, a->n_conns, b->early, b->n_conns, SHUNT_DIFF_MIN_RATE) ||
           shares_differ(a->server, a->n_conns, b->server, b->n_conns, SHUNT_DIFF_MIN_RATE) ||
           fabs(a->hs_per_req - b->hs_per_req) >= SHUNT_DIFF_MIN_RATE;
}

/* The request target of <e>, from its request line as the client sent it ("" without). */
static struct shunt_slice target_of(const struct shunt_model_exchange *e)
{
    struct shunt_slice none = {"", 0};
    if (e->req.base == NULL)
        return none;
    size_t pos = 0;
    struct shunt_slice l = shunt_har_head_start(e->req.base, e->req.len, &pos);
    const char *sp = memchr(l.base, ' ', l.len);
    if (sp == NULL)
        return none;
    const char *t = sp + 1, *end = l.base + l.len;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    return shunt_slice_make(t, (size_t)((sp2 ? sp2 : end) - t));
}

/* A new alignment key for <e>; NULL when out of memory. */
static char *make_key(const struct shunt_model_exchange *e, int by_origin)
{
    char folded[SHUNT_DIFF_MAX_KEY];
    struct shunt_slice t = target_of(e);
    (void)shunt_diff_fold_target(t.base, t.len, folded, sizeof(folded));
    size_t n = strlen(e->method) + strlen(e->host) + strlen(folded) + 16;
    char *k = malloc(n);
    if (k == NULL)
        return NULL;
    if (by_origin)
        snprintf(k, n, "%s %s:%d%s", e->method, e->host, e->port, folded);
    else
        snprintf(k, n, "%s %s", e->method, folded);
    return k;
}

/* Orders origins ("host:port" strings) in byte order. */
static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* A new sorted array of the origins ("host:port") of <m>'s exchanges, duplicates kept, in
 * *<out>; returns 0 or -1 when out of memory (nothing to free then). */
static int origins(const struct shunt_model *m, char ***out)
{
    char **v = calloc(m->n_ex + 1, sizeof(*v));
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < m->n_ex; i++) {
        size_t n = strlen(m->ex[i].host) + 16;
        if ((v[i] = malloc(n)) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return -1;
        }
        snprintf(v[i], n, "%s:%d", m->ex[i].host, m->ex[i].port);
    }
    if (m->n_ex > 1) /* qsort's base must not be NULL, even for nothing */
        qsort(v, m->n_ex, sizeof(*v), str_cmp);
    *out = v;
    return 0;
}

/* Do <a> and <b> have an origin (host and port) in common? 1 yes, 0 no, -1 out of memory. */
static int share_origin(const struct shunt_model *a, const struct shunt_model *b)
{
    char **x = NULL, **y = NULL;
    int found = -1;
    if (origins(a, &x) != 0 || origins(b, &y) != 0)
        goto done;
    found = 0;
    for (size_t i = 0, j = 0; i < a->n_ex && j < b->n_ex && !found;) {
        int r = strcmp(x[i], y[j]);
        found = r == 0;
        i += r <= 0;
        j += r >= 0;
    }
done:
    for (size_t i = 0; x != NULL && i < a->n_ex; i++)
        free(x[i]);
    for (size_t i = 0; y != NULL && i < b->n_ex; i++)
        free(y[i]);
    free(x);
    free(y);
    return found;
}

/* Orders records by key, then status. */
static int rec_cmp(const void *x, const void *y)
{
    const struct rec *a = *(const struct rec *const *)x, *b = *(const struct rec *const *)y;
    int r = strcmp(a->key, b->key);
    return r ? r : (a->e->status > b->e->status) - (a->e->status < b->e->status);
}

/* ================================================================ fields */

/* Fields whose values change by nature from message to message (dates, credentials, ids,
 * the origin itself): compared by presence only. */
static const char *const presence_only[] = {
    "Date", "Expires", "Last-Modified", "Age", "ETag", "Set-Cookie", "Cookie", "Authorization",
    "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate", "Host", "Keep-Alive",
    "X-Request-Id", "Request-Id", "X-Correlation-Id", "Traceparent", "Tracestate", "Referer",
    "If-None-Match", "If-Modified-Since", "Content-MD5", "Digest", NULL};

/* Fields clients read to decide what to do with a connection: among equal scores, first. */
static const char *const steers_connection[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Content-Length", "Transfer-Encoding",
    "Server", "Proxy-Support", "Persistent-Auth", "WWW-Authenticate", NULL};

/* True when <name> is in the NULL-terminated <list> (ASCII case ignored). */
static int in_list(const char *const *list, struct shunt_slice name)
{
    for (; *list != NULL; list++)
        if (shunt_slice_ieq(name, *list, strlen(*list)))
            return 1;
    return 0;
}

/* FNV-1a of <part> and <name> with ASCII case folded: field names are case-insensitive
 * (RFC 9110 5.1). */
static size_t name_hash(enum shunt_diff_part part, struct shunt_slice name)
{
    uint64_t h = 14695981039346656037u ^ (uint64_t)part;
    for (size_t i = 0; i < name.len; i++) {
        unsigned char ch = (unsigned char)name.base[i];
        h = (h ^ (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) * 1099511628211u;
    }
    return (size_t)h;
}

/* The slot of field <name> of <part> in <c>'s index: the one holding it, or the empty one
 * where it goes. */
static size_t *field_slot(const struct ctx *c, enum shunt_diff_part part, struct shunt_slice name)
{
    size_t mask = c->n_slots - 1;
    for (size_t k = name_hash(part, name) & mask;; k = (k + 1) & mask) {
        size_t *slot = &c->slots[k];
        const struct fld *f = *slot ? &c->f[*slot - 1] : NULL;
        if (f == NULL || (f->part == part && strlen(f->name) == name.len &&
                          shunt_slice_ieq(name, f->name, name.len)))
            return slot;
    }
}

/* Doubles <c>'s index (or makes it). Returns 0 or -1 when out of memory. */
static int grow_slots(struct ctx *c)
{
    size_t n = c->n_slots ? 2 * c->n_slots : 64;
    size_t *old = c->slots, n_old = c->n_slots;
    c->slots = calloc(n, sizeof(*c->slots));
    if (c->slots == NULL) {
        c->slots = old;
        return -1;
    }
    c->n_slots = n;
    for (size_t i = 0; i < n_old; i++)
        if (old[i]) {
            const struct fld *f = &c->f[old[i] - 1];
            *field_slot(c, f->part, shunt_slice_make(f->name, strlen(f->name))) = old[i];
        }
    free(old);
    return 0;
}

/* The field <name> of <part> in <c>, added when new; NULL when out of memory. Found through
 * a hash of the names: a HAR may hold a new name in every message. */
static struct fld *field(struct ctx *c, enum shunt_diff_part part, struct shunt_slice name)
{
    if (2 * (c->n_f + 1) > c->n_slots && grow_slots(c) != 0)
        return NULL;
    size_t *slot = field_slot(c, part, name);
    if (*slot)
        return &c->f[*slot - 1];
    if (grow((void **)&c->f, &c->cap_f, c->n_f, sizeof(*c->f)) != 0)
        return NULL;
    struct fld *f = &c->f[c->n_f];
    memset(f, 0, sizeof(*f));
    f->part = part;
    f->presence_only = in_list(presence_only, name);
    f->name = dup_slice(name);
    if (f->name == NULL)
        return NULL;
    c->n_f++;
    *slot = c->n_f;
    return f;
}

/* Counts <value> of <f> for record <r>. Returns 0 or -1 when out of memory. */
static int count_value(struct fld *f, const struct rec *r, struct shunt_slice value)
{
    if (f->presence_only || f->overflow)
        return 0;
    struct val *v = NULL;
    for (size_t i = 0; i < f->n_v && v == NULL; i++)
        if (shunt_slice_eq(value, f->v[i].text, strlen(f->v[i].text)))
            v = &f->v[i];
    if (v == NULL) {
        if (f->n_v == SHUNT_DIFF_MAX_VALUES) {
            f->overflow = 1;
            return 0;
        }
        if (grow((void **)&f->v, &f->cap_v, f->n_v, sizeof(*f->v)) != 0)
            return -1;
        v = &f->v[f->n_v];
        memset(v, 0, sizeof(*v));
        v->text = dup_slice(value);
        if (v->text == NULL)
            return -1;
        f->n_v++;
    }
    v->n[r->side]++;
    v->closed += (size_t)r->closed;
    v->kept += (size_t)r->eligible;
    return 0;
}

/* Counts every field of <head> (part <part>) for record <i>: each name once a message, with
 * its first value. Returns 0 or -1 when out of memory. */
static int count_head(struct ctx *c, size_t i, enum shunt_diff_part part, struct shunt_slice head)
{
    const struct rec *r = &c->r[i];
    size_t pos = 0;
    struct shunt_slice n, v;
    c->of[part][r->side]++;
    (void)shunt_har_head_start(head.base, head.len, &pos);
    while (shunt_har_head_next(head.base, head.len, &pos, &n, &v)) {
        /* Names and values are kept as C strings and compared by their length: a NUL
         * (never valid in a field, RFC 9110 5.5, but a capture file may hold anything) ends
         * them here, or the same field would count as a new one at every message. */
        n.len = strnlen(n.base, n.len);
        v.len = v.base ? strnlen(v.base, v.len) : 0;
        if (n.len == 0)
            continue;
        struct fld *f = field(c, part, n);
        if (f == NULL)
            return -1;
        if (f->last == i + 1)
            continue;
        f->last = i + 1;
        f->present[r->side]++;
        f->closed_present += (size_t)r->closed;
        f->kept_present += (size_t)r->eligible;
        if (count_value(f, r, v) != 0)
            return -1;
    }
    return 0;
}

/* Distinct values of <f> on <side>. */
static size_t n_values(const struct fld *f, int side)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_v; i++)
        n += f->v[i].n[side] > 0;
    return n;
}

/* Are the values of <f> worth comparing? Not for fields whose values change by nature, nor
 * when a side has more than 4 distinct values and more than one for every two messages
 * (request ids, timestamps, tokens). */
static int values_compared(const struct fld *f)
{
    if (f->presence_only || f->overflow)
        return 0;
    for (int s = 0; s < 2; s++) {
        size_t d = n_values(f, s);
        if (d > 4 && 2 * d > f->present[s])
            return 0;
    }
    return 1;
}

/* closed_with/closed - kept_with/kept; 0 when either is empty (nothing to tell apart). */
static double association(size_t closed_with, size_t closed, size_t kept_with, size_t kept)
{
    if (closed == 0 || kept == 0)
        return 0;
    return (double)closed_with / (double)closed - (double)kept_with / (double)kept;
}

/* <x> of <of> as a share; 0 when <of> is. */
static double rate(size_t x, size_t of)
{
    return of ? (double)x / (double)of : 0;
}

/* The most common value of <f> on <side> (ties: the first in byte order), or NULL. */
static const struct val *most_common(const struct fld *f, int side)
{
    const struct val *best = NULL;
    for (size_t i = 0; i < f->n_v; i++) {
        const struct val *v = &f->v[i];
        if (v->n[side] == 0)
            continue;
        if (best == NULL || v->n[side] > best->n[side] ||
            (v->n[side] == best->n[side] && strcmp(v->text, best->text) < 0))
            best = v;
    }
    return best;
}

/* The square root of <x> >= 0 by Newton's iteration: shunt links without libm. */
static double root(double x)
{
    if (x <= 0)
        return 0;
    double r = x > 1 ? x : 1; /* above the root: the iteration comes down to it */
    for (int i = 0; i < 64; i++) {
        double next = 0.5 * (r + x / r);
        if (next >= r)
            break;
        r = next;
    }
    return r;
}

/* The ends of the Wilson score interval of the share <x> of <n> (E. B. Wilson, 1927), <z>
 * standard errors wide: unlike x/n +- z*se it stays within 0..1 and does not shrink to a
 * point when x is 0 or n: one response of one is a share of 1 known very loosely. */
static void wilson(size_t x, size_t n, double z, double *lo, double *hi)
{
    if (n == 0) {
        *lo = 0, *hi = 1;
        return;
    }
    double p = (double)x / (double)n, nn = (double)n, z2 = z * z;
    double mid = p + z2 / (2 * nn), half = z * root(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *lo = (mid - half) / (1 + z2 / nn);
    *hi = (mid + half) / (1 + z2 / nn);
    if (*lo < 0)
        *lo = 0;
    if (*hi > 1)
        *hi = 1;
}

/* Scores <h> by how its feature (with <closed_with> and <kept_with> messages) goes with the
 * closes of <c>: the score itself, the closes it explains, and the bound it is ranked by. */
static void set_score(struct shunt_diff_header *h, const struct ctx *c, size_t closed_with,
                      size_t kept_with)
{
    double j = association(closed_with, c->n_closed, kept_with, c->n_kept);
    h->closed = c->n_closed;
    h->closed_with = closed_with;
    h->kept = c->n_kept;
    h->kept_with = kept_with;
    h->score = fabs(j);
    h->with_closes = j > SCORE_EPS;
    /* Say it the way round that goes with the closes: the feature, or its opposite. */
    int flip = !h->with_closes && h->score > SCORE_EPS;
    size_t cw = flip ? h->closed - closed_with : closed_with;
    size_t kw = flip ? h->kept - kept_with : kept_with;
    h->explains = h->score > SCORE_EPS ? cw : 0;
    double lo, hi, klo, khi;
    wilson(cw, h->closed, SHUNT_DIFF_Z, &lo, &hi);
    wilson(kw, h->kept, SHUNT_DIFF_Z, &klo, &khi);
    h->bound = h->score > SCORE_EPS && lo > khi ? lo - khi : 0;
    /* Ranked: enough closes and kept responses to score anything, and a score that rests on
     * enough of the closes (a score of 0 explains none: it is ranked, last). */
    h->ranked = h->closed >= SHUNT_DIFF_MIN_EVIDENCE && h->kept >= SHUNT_DIFF_MIN_EVIDENCE &&
                (h->explains >= SHUNT_DIFF_MIN_EVIDENCE || h->score <= SCORE_EPS);
}

/* Adds to <d> the differences of field <f>: its presence, then its values. Returns 0 or
 * SHUNT_ENOMEM. */
static int field_diffs(struct shunt_diff *d, struct ctx *c, const struct fld *f)
{
    size_t of_a = c->of[f->part][0], of_b = c->of[f->part][1];
    if (of_a == 0 || of_b == 0)
        return 0; /* one side has no such messages: nothing to compare the field with */
    double ra = rate(f->present[0], of_a), rb = rate(f->present[1], of_b);
    int one_side = (f->present[0] == 0) != (f->present[1] == 0);
    if (one_side || fabs(ra - rb) >= SHUNT_DIFF_MIN_RATE) {
        if (grow((void **)&d->h, &c->cap_h, d->n_h, sizeof(*d->h)) != 0)
            return SHUNT_ENOMEM;
        struct shunt_diff_header *h = &d->h[d->n_h];
        memset(h, 0, sizeof(*h));
        h->part = f->part;
        h->change = SHUNT_DIFF_PRESENCE;
        h->rate_a = ra;
        h->rate_b = rb;
        set_score(h, c, c->n_closed - f->closed_present, c->n_kept - f->kept_present);
        if ((h->name = strdup(f->name)) == NULL)
            return SHUNT_ENOMEM;
        d->n_h++;
    }
    if (one_side || f->present[0] == 0 || !values_compared(f))
        return 0;
    /* Values on one side only; the one whose presence best tells closes from keeps, and
     * among equals (a value on each side: their scores are opposite) the one that goes with
     * the closes, then the most common. */
    const struct val *best = NULL;
    double best_j = 0;
    for (size_t i = 0; i < f->n_v; i++) {
        const struct val *v = &f->v[i];
        if ((v->n[0] == 0) == (v->n[1] == 0))
            continue;
        double j = association(v->closed, c->n_closed, v->kept, c->n_kept);
        size_t n = v->n[0] + v->n[1], bn = best ? best->n[0] + best->n[1] : 0;
        int better = best == NULL || fabs(j) > fabs(best_j) + SCORE_EPS;
        if (!better && fabs(fabs(j) - fabs(best_j)) <= SCORE_EPS) {
            if (j > best_j + SCORE_EPS)
                better = 1;
            else if (fabs(j - best_j) <= SCORE_EPS)
                better = n > bn || (n == bn && strcmp(v->text, best->text) < 0);
        }
        if (better) {
            best = v;
            best_j = j;
        }
    }
    if (best == NULL)
        return 0;
    if (grow((void **)&d->h, &c->cap_h, d->n_h, sizeof(*d->h)) != 0)
        return SHUNT_ENOMEM;
    struct shunt_diff_header *h = &d->h[d->n_h];
    memset(h, 0, sizeof(*h));
    h->part = f->part;
    h->change = SHUNT_DIFF_VALUE;
    h->rate_a = rate(best->n[0], of_a);
    h->rate_b = rate(best->n[1], of_b);
    set_score(h, c, best->closed, best->kept);
    const struct val *ca = most_common(f, 0), *cb = most_common(f, 1);
    h->name = strdup(f->name);
    h->value = strdup(best->text);
    h->common_a = strdup(ca ? ca->text : "");
    h->common_b = strdup(cb ? cb->text : "");
    d->n_h++;
    if (h->name == NULL || h->value == NULL || h->common_a == NULL || h->common_b == NULL)
        return SHUNT_ENOMEM;
    return 0;
}

/* Ranking: the differences that rest on enough exchanges first, by the bound that takes
 * their number into account, then the score; the others after them, by score. Then a missing
 * field before a different value, the response before the request, the fields that steer
 * connections, the larger change in rate, the name. */
static int header_cmp(const void *x, const void *y)
{
    const struct shunt_diff_header *a = x, *b = y;
    if (a->ranked != b->ranked)
        return a->ranked ? -1 : 1;
    if (a->ranked && fabs(a->bound - b->bound) > SCORE_EPS)
        return a->bound > b->bound ? -1 : 1;
    if (fabs(a->score - b->score) > SCORE_EPS)
        return a->score > b->score ? -1 : 1;
    if (a->change != b->change)
        return a->change == SHUNT_DIFF_PRESENCE ? -1 : 1;
    if (a->part != b->part)
        return a->part == SHUNT_DIFF_RESPONSE ? -1 : 1;
    int sa = in_list(steers_connection, shunt_slice_make(a->name, strlen(a->name)));
    int sb = in_list(steers_connection, shunt_slice_make(b->name, strlen(b->name)));
    if (sa != sb)
        return sa ? -1 : 1;
    double da = fabs(a->rate_a - a->rate_b), db = fabs(b->rate_a - b->rate_b);
    if (fabs(da - db) > SCORE_EPS)
        return da > db ? -1 : 1;
    return strcasecmp(a->name, b->name);
}

/* Public view of field <f>: presence and its most common values per side. */
static int field_view(struct shunt_diff_field *out, const struct ctx *c, const struct fld *f)
{
    memset(out, 0, sizeof(*out));
    out->part = f->part;
    if ((out->name = strdup(f->name)) == NULL)
        return SHUNT_ENOMEM;
    out->values_compared = values_compared(f);
    for (int s = 0; s < 2; s++) {
        out->present[s] = f->present[s];
        out->of[s] = c->of[f->part][s];
        out->n_values[s] = n_values(f, s);
        if (!out->values_compared)
            continue;
        /* The top few by count, then byte order: a selection pass per place. */
        for (int k = 0; k < SHUNT_DIFF_TOP_VALUES; k++) {
            const struct val *best = NULL;
            for (size_t i = 0; i < f->n_v; i++) {
                const struct val *v = &f->v[i];
                int taken = 0;
                for (int t = 0; t < k; t++)
                    taken |= out->top[s][t] != NULL && strcmp(out->top[s][t], v->text) == 0;
                if (taken || v->n[s] == 0)
                    continue;
                if (best == NULL || v->n[s] > best->n[s] ||
                    (v->n[s] == best->n[s] && strcmp(v->text, best->text) < 0))
                    best = v;
            }
            if (best == NULL)
                break;
            if ((out->top[s][k] = strdup(best->text)) == NULL)
                return SHUNT_ENOMEM;
            out->top_n[s][k] = best->n[s];
        }
    }
    return 0;
}

/* Orders fields: the response's, then the request's, each by name. */
static int field_cmp(const void *x, const void *y)
{
    const struct fld *a = x, *b = y;
    if (a->part != b->part)
        return a->part == SHUNT_DIFF_RESPONSE ? -1 : 1;
    return strcasecmp(a->name, b->name);
}

/* ================================================================ the comparison */

/* Frees what <c> holds (records, fields and their values). */
static void ctx_dispose(struct ctx *c)
{
    for (size_t i = 0; i < c->n_r; i++)
        free(c->r[i].key);
    for (size_t i = 0; i < c->n_f; i++) {
        for (size_t k = 0; k < c->f[i].n_v; k++)
            free(c->f[i].v[k].text);
        free(c->f[i].v);
        free(c->f[i].name);
    }
    free(c->r);
    free(c->f);
    free(c->slots);
}

/* Adds the kinds of request seen on one side only, and counts the shared ones, walking
 * <by> (the records sorted by key). Returns 0 or SHUNT_ENOMEM. */
static int alignment(struct shunt_diff *d, struct rec **by, size_t n)
{
    size_t cap_a = 0, cap_b = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, cnt[2] = {0, 0};
        while (j < n && strcmp(by[j]->key, by[i]->key) == 0)
            cnt[by[j++]->side]++;
        if (cnt[0] && cnt[1]) {
            d->n_keys_shared++;
        } else {
            int s = cnt[0] ? 0 : 1;
            struct shunt_diff_only **v = s ? &d->only_b : &d->only_a;
            size_t *nv = s ? &d->n_only_b : &d->n_only_a;
            if (grow((void **)v, s ? &cap_b : &cap_a, *nv, sizeof(**v)) != 0)
                return SHUNT_ENOMEM;
            (*v)[*nv].n = cnt[s];
            if (((*v)[*nv].key = strdup(by[i]->key)) == NULL)
                return SHUNT_ENOMEM;
            (*nv)++;
        }
        i = j;
    }
    return 0;
}

/* Counts the statuses of both sides into <d>. Returns 0 or SHUNT_ENOMEM. */
static int statuses(struct shunt_diff *d, const struct ctx *c)
{
    size_t cap = 0;
    for (size_t i = 0; i < c->n_r; i++) {
        int st = c->r[i].e->status;
        size_t k = 0;
        while (k < d->n_st && d->st[k].status < st)
            k++;
        if (k == d->n_st || d->st[k].status != st) {
            if (grow((void **)&d->st, &cap, d->n_st, sizeof(*d->st)) != 0)
                return SHUNT_ENOMEM;
            memmove(&d->st[k + 1], &d->st[k], (d->n_st - k) * sizeof(*d->st));
            memset(&d->st[k], 0, sizeof(*d->st));
            d->st[k].status = st;
            d->n_st++;
        }
        if (c->r[i].side)
            d->st[k].n_b++;
        else
            d->st[k].n_a++;
    }
    for (size_t k = 0; k < d->n_st; k++) {
        struct shunt_diff_status *s = &d->st[k];
        s->differs = (s->n_a == 0) != (s->n_b == 0) ||
                     shares_differ(s->n_a, d->a.n_ex, s->n_b, d->b.n_ex, SHUNT_DIFF_MIN_STATUS);
    }
    return 0;
}

int shunt_diff_run(const struct shunt_model *a, const struct shunt_model *b,
                   struct shunt_diff *out)
{
    const struct shunt_model *m[2] = {a, b};
    struct ctx c;
    struct rec **by = NULL;
    int rc = SHUNT_ENOMEM;
    memset(&c, 0, sizeof(c));
    side_stats(a, &out->a);
    side_stats(b, &out->b);
    out->conns_differ = conns_differ(&out->a, &out->b);
    out->by_origin = share_origin(a, b);
    if (out->by_origin < 0)
        goto done;

    /* Every exchange of both sides, with its key and whether the client closed after it. */
    c.r = calloc(a->n_ex + b->n_ex + 1, sizeof(*c.r));
    by = malloc((a->n_ex + b->n_ex + 1) * sizeof(*by));
    if (c.r == NULL || by == NULL)
        goto done;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < m[s]->n_conns; i++) {
            const struct shunt_model_conn *cn = &m[s]->conns[i];
            for (size_t k = 0; k < cn->n_ex; k++) {
                struct rec *r = &c.r[c.n_r];
                r->e = &cn->ex[k];
                r->side = s;
                r->closed = closed_early(cn, r->e);
                if ((r->key = make_key(r->e, out->by_origin)) == NULL)
                    goto done;
                by[c.n_r] = r;
                c.n_closed += (size_t)r->closed;
                c.n_r++;
            }
        }

    /* Comparable responses: those of a key and status after which the client closed early
     * at least once (a 401 is not compared with a 200); all responses when there are none. */
    if (c.n_r > 1) /* qsort's base must not be NULL, even for nothing */
        qsort(by, c.n_r, sizeof(*by), rec_cmp);
    for (size_t i = 0; i < c.n_r;) {
        size_t j = i;
        int any = 0;
        while (j < c.n_r && rec_cmp(&by[i], &by[j]) == 0)
            any |= by[j++]->closed;
        for (size_t k = i; any && k < j; k++)
            by[k]->eligible = !by[k]->closed && by[k]->e->status != 0;
        i = j;
    }
    for (size_t i = 0; i < c.n_r; i++)
        c.n_kept += (size_t)c.r[i].eligible;
    if (c.n_kept == 0 && c.n_closed > 0)
        for (size_t i = 0; i < c.n_r; i++) {
            c.r[i].eligible = !c.r[i].closed && c.r[i].e->status != 0;
            c.n_kept += (size_t)c.r[i].eligible;
        }
    if (alignment(out, by, c.n_r) != 0 || statuses(out, &c) != 0)
        goto done;

    /* Every field of every head, as the client sent and got it. */
    for (size_t i = 0; i < c.n_r; i++) {
        const struct shunt_model_exchange *e = c.r[i].e;
        if (e->status != 0 && e->resp_down.base != NULL &&
            count_head(&c, i, SHUNT_DIFF_RESPONSE, e->resp_down) != 0)
            goto done;
    }
    for (size_t i = 0; i < c.n_f; i++)
        c.f[i].last = 0;
    for (size_t i = 0; i < c.n_r; i++)
        if (c.r[i].e->req.base != NULL &&
            count_head(&c, i, SHUNT_DIFF_REQUEST, c.r[i].e->req) != 0)
            goto done;
    if (c.n_f > 1) /* qsort's base must not be NULL, even for nothing */
        qsort(c.f, c.n_f, sizeof(*c.f), field_cmp); /* the index is stale from here on */
    out->fields = calloc(c.n_f + 1, sizeof(*out->fields));
    if (out->fields == NULL)
        goto done;
    for (size_t i = 0; i < c.n_f; i++) {
        out->n_fields++;
        if (field_view(&out->fields[i], &c, &c.f[i]) != 0 || field_diffs(out, &c, &c.f[i]) != 0)
            goto done;
    }
    if (out->n_h > 1) /* qsort's base must not be NULL, even for nothing */
        qsort(out->h, out->n_h, sizeof(*out->h), header_cmp);
    out->n_closed = c.n_closed;
    out->n_kept = c.n_kept;
    for (size_t i = 0; i < c.n_r; i++) {
        out->closed_of[c.r[i].side] += (size_t)c.r[i].closed;
        out->kept_of[c.r[i].side] += (size_t)c.r[i].eligible;
    }
    out->too_small = c.n_closed > 0 && (c.n_closed < SHUNT_DIFF_MIN_EVIDENCE ||
                                        c.n_kept < SHUNT_DIFF_MIN_EVIDENCE);
    rc = 0;
done:
    free(by);
    ctx_dispose(&c);
    return rc;
}

void shunt_diff_dispose(struct shunt_diff *d)
{
    for (size_t i = 0; i < d->n_h; i++) {
        free(d->h[i].name);
        free(d->h[i].value);
        free(d->h[i].common_a);
        free(d->h[i].common_b);
    }
    for (size_t i = 0; i < d->n_only_a; i++)
        free(d->only_a[i].key);
    for (size_t i = 0; i < d->n_only_b; i++)
        free(d->only_b[i].key);
    for (size_t i = 0; i < d->n_fields; i++) {
        free(d->fields[i].name);
        for (int s = 0; s < 2; s++)
            for (int k = 0; k < SHUNT_DIFF_TOP_VALUES; k++)
                free(d->fields[i].top[s][k]);
    }
    free(d->h);
    free(d->st);
    free(d->only_a);
    free(d->only_b);
    free(d->fields);
    memset(d, 0, sizeof(*d));
}

int shunt_diff_any(const struct shunt_diff *d)
{
    if (d->conns_differ || d->n_h || d->n_only_a || d->n_only_b)
        return 1;
    for (size_t i = 0; i < d->n_st; i++)
        if (d->st[i].differs)
            return 1;
    return 0;
}

/* ================================================================ text */

/* Differences and kinds of request listed in the text; --json has them all. */
#define PRINT_MAX_DIFFS 20
#define PRINT_MAX_ONLY 10

/* "request" or "response". */
static const char *part_name(enum shunt_diff_part p)
{
    return p == SHUNT_DIFF_REQUEST ? "request" : "response";
}

/* <one> when <n> is 1, else <many>. */
static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* Widest text cell, in characters; cells are cut to it whatever the width asked for. */
#define CELL_MAX 256
/* Bytes of a cell's buffer: shunt_view_fit() writes up to 4 bytes a character, and "...". */
#define CELL_LEN (4 * CELL_MAX + 4)

/* Copies <s> into <buf> (CELL_LEN bytes) for the terminal, cut with "..." to at most <width>
 * characters (CELL_MAX at most); returns the characters written. Bytes that are not printable
 * UTF-8 become \xNN (shunt_view_fit), so that names, values and request targets from a
 * hostile capture or HAR never drive the terminal, and a cut never splits a character. */
static size_t fit(char *buf, const char *s, size_t width)
{
    return shunt_view_fit(s, strlen(s), width < CELL_MAX ? width : CELL_MAX, buf, CELL_LEN);
}

/* Writes the file name <path> escaped as fit() does, but whole. */
static void put_path(FILE *f, const char *path)
{
    size_t n = strlen(path), w = 4 * n + 3;
    char *buf = malloc(4 * w + 4);
    if (buf == NULL) {
        fputs("?", f);
        return;
    }
    shunt_view_fit(path, n, w, buf, 4 * w + 4);
    fputs(buf, f);
    free(buf);
}

/* "100%", "9%", "<1%", ">99%": some is never 0%, and short of all is never 100%. */
static const char *pct(char *buf, size_t len, double r)
{
    if (r > 0 && r < 0.005)
        snprintf(buf, len, "<1%%");
    else if (r < 1 && r >= 0.995)
        snprintf(buf, len, ">99%%");
    else
        snprintf(buf, len, "%.0f%%", r * 100);
    return buf;
}

/* One row of the connection table: a label, then A's and B's columns. */
static void row(FILE *f, const char *label, const char *a, const char *b)
{
    fprintf(f, "  %-40s %12s %12s\n", label, a, b);
}

/* A row of counts. */
static void row_n(FILE *f, const char *label, size_t a, size_t b)
{
    char x[32], y[32];
    snprintf(x, sizeof(x), "%zu", a);
    snprintf(y, sizeof(y), "%zu", b);
    row(f, label, x, y);
}

/* A row of numbers written with <fmt>. */
static void row_f(FILE *f, const char *label, double a, double b, const char *fmt)
{
    char x[32], y[32];
    snprintf(x, sizeof(x), fmt, a);
    snprintf(y, sizeof(y), fmt, b);
    row(f, label, x, y);
}

/* The connection behaviour of both sides, and whether it differs. */
static void print_conns(FILE *f, const struct shunt_diff *d)
{
    const struct shunt_diff_side *a = &d->a, *b = &d->b;
    fprintf(f, "\n%-42s %12s %12s\n", "connection behaviour", "A", "B");
    row_n(f, "connections", a->n_conns, b->n_conns);
    row_f(f, "requests per connection", a->reqs_per_conn, b->reqs_per_conn, "%.1f");
    row_n(f, "closed by the client with a FIN", a->client_fin, b->client_fin);
    if (a->client_rst || b->client_rst)
        row_n(f, "closed by the client otherwise (reset)", a->client_rst, b->client_rst);
    row_n(f, "  early: a new connection followed", a->early, b->early);
    row_n(f, "closed by the server", a->server, b->server);
    if (a->proxy || b->proxy)
        row_n(f, "closed by the proxy", a->proxy, b->proxy);
    if (a->unknown || b->unknown)
        row_n(f, "closer not known (open, or a HAR)", a->unknown, b->unknown);
    row_n(f, "handshakes (NTLM, Negotiate)", a->handshakes, b->handshakes);
    row_f(f, "handshakes per request", a->hs_per_req, b->hs_per_req, "%.2f");
    if (!d->conns_differ)
        fputs("  => connection behaviour is the same.\n", f);
    else if (a->early != b->early)
        fprintf(f, "  => it differs: the client closed %zu %s early in %s, %zu in %s.\n",
                a->early > b->early ? a->early : b->early,
                plural(a->early > b->early ? a->early : b->early, "connection", "connections"),
                a->early > b->early ? "A" : "B", a->early > b->early ? b->early : a->early,
                a->early > b->early ? "B" : "A");
    else
        fputs("  => it differs (requests per connection, server closes or handshakes).\n", f);
}

/* One difference, in three lines (four when the counts are long), each at most <width>
 * columns: the name and the values are cut to fit. <rank> 0: listed, not ranked. */
static void print_header(FILE *f, size_t rank, const struct shunt_diff_header *h, int width)
{
    char x[16], y[16], head[64], tail[64], v[CELL_LEN], w[CELL_LEN];
    size_t wd = width > 40 ? (size_t)width : 40;
    if (rank > 0)
        snprintf(head, sizeof(head), "%2zu. %s header ", rank, part_name(h->part));
    else
        snprintf(head, sizeof(head), "  - %s header ", part_name(h->part));
    /* the score, and the exchanges it rests on (none without an early close) */
    if (h->closed == 0)
        snprintf(tail, sizeof(tail), "%s  (%.2f)", h->change == SHUNT_DIFF_VALUE ? " value" : "",
                 h->score);
    else
        snprintf(tail, sizeof(tail), "%s  (%.2f over %zu exchanges)",
                 h->change == SHUNT_DIFF_VALUE ? " value" : "", h->score, h->closed + h->kept);
    size_t room = wd > strlen(head) + strlen(tail) + 8 ? wd - strlen(head) - strlen(tail) : 8;
    fit(v, h->name, room);
    fprintf(f, "%s%s%s\n", head, v, tail);
    const char *msgs = h->part == SHUNT_DIFF_REQUEST ? "requests" : "responses";
    if (h->change == SHUNT_DIFF_PRESENCE) {
        fprintf(f, "    on %s of A's %s, %s of B's\n", pct(x, sizeof(x), h->rate_a), msgs,
                pct(y, sizeof(y), h->rate_b));
    } else {
        /* The two values share what the words leave; the one on one side only comes first,
         * the other gets at least half. */
        int on_b = h->rate_b > 0;
        const char *other = on_b ? h->common_a : h->common_b;
        pct(x, sizeof(x), on_b ? h->rate_b : h->rate_a);
        size_t words = strlen("    \"\" on  of B's ; A has \"\"") + strlen(x) + strlen(msgs);
        size_t avail = wd > words + 16 ? wd - words : 16;
        size_t hb = fit(w, other, avail / 2);
        size_t ha = fit(v, h->value, avail - hb);
        fit(w, other, avail - ha);
        fprintf(f, "    \"%s\" on %s of %s's %s; %s has \"%s\"\n", v, x, on_b ? "B" : "A", msgs,
                on_b ? "A" : "B", w);
    }
    if (h->closed == 0) {
        fputs("    no early close on either side: it explains none\n", f);
        return;
    }
    /* Say it the way round that goes with the closes; a large capture's counts take a
     * second line. */
    int flip = !h->with_closes && h->score > SCORE_EPS;
    const char *what = h->change == SHUNT_DIFF_PRESENCE ? (flip ? "present" : "missing")
                                                        : (flip ? "another value" : "that value");
    size_t cw = flip ? h->closed - h->closed_with : h->closed_with;
    size_t kw = flip ? h->kept - h->kept_with : h->kept_with;
    char closes[128], keeps[64];
    snprintf(closes, sizeof(closes), "    %s on %zu of %zu %s before an early close,", what, cw,
             h->closed, h->part == SHUNT_DIFF_REQUEST ? "exchanges" : "responses");
    snprintf(keeps, sizeof(keeps), "on %zu of %zu kept", kw, h->kept);
    fprintf(f, "%s%s%s\n", closes, strlen(closes) + 1 + strlen(keeps) <= wd ? " " : "\n    ",
            keeps);
}

void shunt_diff_print(FILE *f, const struct shunt_diff *d, const struct shunt_diff_info *info,
                      int width)
{
    char k[CELL_LEN];
    fputs("shunt diff: A ", f);
    put_path(f, info->path_a);
    fprintf(f, "%s\n            B ", info->har_a ? " (HAR)" : "");
    put_path(f, info->path_b);
    fprintf(f, "%s\n", info->har_b ? " (HAR)" : "");
    fprintf(f, "A: %zu %s on %zu %s; B: %zu %s on %zu %s\n", d->a.n_ex,
            plural(d->a.n_ex, "exchange", "exchanges"), d->a.n_conns,
            plural(d->a.n_conns, "connection", "connections"), d->b.n_ex,
            plural(d->b.n_ex, "exchange", "exchanges"), d->b.n_conns,
            plural(d->b.n_conns, "connection", "connections"));
    fprintf(f, "aligned by method, %s (ids folded): %zu in common\n",
            d->by_origin ? "origin, path and query" : "path and query", d->n_keys_shared);
    print_conns(f, d);
    if (d->too_small)
        fprintf(f,
                "\ntoo few exchanges to separate anything: %zu %s (A %zu, B %zu) and %zu\n"
                "comparable %s kept (A %zu, B %zu); a ranking needs at least %d of each,\n"
                "both traces together.\n",
                d->n_closed, plural(d->n_closed, "early close", "early closes"), d->closed_of[0],
                d->closed_of[1], d->n_kept, plural(d->n_kept, "response", "responses"),
                d->kept_of[0], d->kept_of[1], SHUNT_DIFF_MIN_EVIDENCE);
    size_t n_ranked = 0;
    for (size_t i = 0; i < d->n_h; i++)
        n_ranked += (size_t)d->h[i].ranked;
    if (d->n_h > 0 && (d->n_closed == 0 || n_ranked > 0)) {
        fputs("\ndifferences in headers, ranked by how well each tells the responses after\n"
              "which the client closed early from those after which it kept the connection:\n",
              f);
        /* Without an early close nothing is ranked on evidence: all are listed in order. */
        size_t n = d->n_closed == 0 ? d->n_h : n_ranked;
        for (size_t i = 0; i < n && i < PRINT_MAX_DIFFS; i++)
            print_header(f, i + 1, &d->h[i], width);
        if (n > PRINT_MAX_DIFFS)
            fprintf(f, "... and %zu more (--json lists them all)\n", n - PRINT_MAX_DIFFS);
    }
    if (d->n_closed > 0 && n_ranked < d->n_h) {
        if (d->too_small)
            fputs("\ndifferences in headers, not ranked (too few exchanges):\n", f);
        else
            fprintf(f,
                    "\n%s in headers, not ranked: each goes with fewer than %d of the\n"
                    "early closes, too few to tell it from chance:\n",
                    n_ranked ? "other differences" : "differences", SHUNT_DIFF_MIN_EVIDENCE);
        for (size_t i = n_ranked; i < d->n_h && i - n_ranked < PRINT_MAX_DIFFS; i++)
            print_header(f, 0, &d->h[i], width);
        if (d->n_h - n_ranked > PRINT_MAX_DIFFS)
            fprintf(f, "... and %zu more (--json lists them all)\n",
                    d->n_h - n_ranked - PRINT_MAX_DIFFS);
    }
    size_t n_st = 0;
    for (size_t i = 0; i < d->n_st; i++)
        n_st += (size_t)d->st[i].differs;
    if (n_st > 0) {
        fprintf(f, "\n%-42s %12s %12s\n", "statuses that differ (exchanges)", "A", "B");
        for (size_t i = 0; i < d->n_st; i++) {
            const struct shunt_diff_status *s = &d->st[i];
            char label[32], x[32], y[32], p[16];
            if (!s->differs)
                continue;
            if (s->status)
                snprintf(label, sizeof(label), "%d", s->status);
            else
                snprintf(label, sizeof(label), "no response");
            snprintf(x, sizeof(x), "%zu (%s)", s->n_a,
                     pct(p, sizeof(p), rate(s->n_a, d->a.n_ex)));
            snprintf(y, sizeof(y), "%zu (%s)", s->n_b,
                     pct(p, sizeof(p), rate(s->n_b, d->b.n_ex)));
            row(f, label, x, y);
        }
    }
    for (int s = 0; s < 2; s++) {
        const struct shunt_diff_only *o = s ? d->only_b : d->only_a;
        size_t n = s ? d->n_only_b : d->n_only_a;
        if (n == 0)
            continue;
        fprintf(f, "\nonly in %s (%zu %s):\n", s ? "B" : "A", n,
                plural(n, "kind of request", "kinds of request"));
        for (size_t i = 0; i < n && i < PRINT_MAX_ONLY; i++) {
            char count[48];
            snprintf(count, sizeof(count), " %6zu %s", o[i].n,
                     plural(o[i].n, "exchange", "exchanges"));
            size_t room = width > (int)strlen(count) + 22 ? (size_t)width - 2 - strlen(count) : 20;
            size_t kw = fit(k, o[i].key, room);
            fprintf(f, "  %s%*s%s\n", k, (int)(room - kw), "", count);
        }
        if (n > PRINT_MAX_ONLY)
            fprintf(f, "  ... and %zu more (--json lists them all)\n", n - PRINT_MAX_ONLY);
    }
    if (!shunt_diff_any(d))
        fputs("\nno difference.\n", f);
}

/* ================================================================ JSON */

/* A JSON string of <s> (NULL: JSON null): as it is when UTF-8, else read as ISO-8859-1, the
 * charset HTTP field values historically carry (RFC 9110 5.5), as the HAR export reads it.
 * A capture keeps wire bytes, and jansson refuses strings that are not UTF-8. NULL when out
 * of memory. */
static json_t *jstr(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t len = strlen(s), o = 0;
    char *u = malloc(2 * len + 1);
    if (u == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            u[o++] = (char)c;
        } else {
            u[o++] = (char)(0xc0 | (c >> 6));
            u[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    j = json_stringn(u, o);
    free(u);
    return j;
}

/* One side's connection behaviour as JSON (docs/diff.md); NULL when out of memory. */
static json_t *side_json(const struct shunt_diff_side *s)
{
    return json_pack("{s:I, s:I, s:I, s:f, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:f}",
                     "connections", (json_int_t)s->n_conns, "exchanges", (json_int_t)s->n_ex,
                     "responses", (json_int_t)s->n_responses, "requests_per_connection",
                     s->reqs_per_conn, "closed_by_client", "fin", (json_int_t)s->client_fin,
                     "other", (json_int_t)s->client_rst, "early", (json_int_t)s->early,
                     "closed_by_server", (json_int_t)s->server, "closed_by_proxy",
                     (json_int_t)s->proxy, "closer_unknown", (json_int_t)s->unknown,
                     "handshakes", (json_int_t)s->handshakes, "handshakes_per_request",
                     s->hs_per_req);
}

/* One difference as JSON (<rank> 0: not ranked, null); NULL when out of memory. */
static json_t *header_json(size_t rank, const struct shunt_diff_header *h)
{
    int val = h->change == SHUNT_DIFF_VALUE;
    return json_pack("{s:o, s:s, s:o, s:s, s:o, s:{s:f, s:o}, s:{s:f, s:o}, s:f, s:s, "
                     "s:{s:I, s:I}, s:{s:I, s:I}, s:I, s:I, s:f, s:b}",
                     "rank", rank ? json_integer((json_int_t)rank) : json_null(), "part",
                     part_name(h->part), "name", jstr(h->name),
                     "change", val ? "value" : "presence", "value", jstr(h->value), "a", "rate",
                     h->rate_a, "common", jstr(h->common_a), "b", "rate", h->rate_b, "common",
                     jstr(h->common_b), "score", h->score, "goes_with_closes",
                     h->score <= SCORE_EPS ? "nothing"
                     : h->with_closes      ? (val ? "value" : "absence")
                                           : (val ? "other values" : "presence"),
                     "closed", "of", (json_int_t)h->closed, "with", (json_int_t)h->closed_with,
                     "kept", "of", (json_int_t)h->kept, "with", (json_int_t)h->kept_with,
                     "rests_on", (json_int_t)(h->closed + h->kept), "explains",
                     (json_int_t)h->explains, "bound", h->bound, "ranked", h->ranked);
}

/* One field's presence and values on both sides as JSON; NULL when out of memory. */
static json_t *field_json(const struct shunt_diff_field *fd)
{
    json_t *sides[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        json_t *vals = fd->values_compared ? json_array() : json_null();
        for (int k = 0; vals != NULL && fd->values_compared && k < SHUNT_DIFF_TOP_VALUES; k++)
            if (fd->top[s][k] != NULL &&
                json_array_append_new(vals, json_pack("{s:o, s:I}", "value", jstr(fd->top[s][k]),
                                                      "count", (json_int_t)fd->top_n[s][k])) != 0) {
                json_decref(vals);
                vals = NULL;
            }
        if (vals == NULL) {
            json_decref(sides[0]);
            return NULL;
        }
        sides[s] = json_pack("{s:I, s:I, s:I, s:o}", "present", (json_int_t)fd->present[s],
                             "of", (json_int_t)fd->of[s], "distinct_values",
                             (json_int_t)fd->n_values[s], "values", vals);
        if (sides[s] == NULL) {
            json_decref(sides[0]);
            return NULL;
        }
    }
    return json_pack("{s:s, s:o, s:b, s:o, s:o}", "part", part_name(fd->part), "name",
                     jstr(fd->name), "values_compared", fd->values_compared, "a", sides[0], "b",
                     sides[1]);
}

/* Appends <j> to <arr>; returns -1 (and drops both) when <j> is NULL. */
static int append(json_t *arr, json_t *j)
{
    return j == NULL ? -1 : json_array_append_new(arr, j);
}

int shunt_diff_print_json(FILE *f, const struct shunt_diff *d, const struct shunt_diff_info *info)
{
    json_t *root = json_object(), *hs = json_array(), *st = json_array(), *oa = json_array(),
           *ob = json_array(), *fs = json_array();
    if (root == NULL || hs == NULL || st == NULL || oa == NULL || ob == NULL || fs == NULL)
        goto oom;
    for (size_t i = 0; i < d->n_h; i++)
        if (append(hs, header_json(d->n_closed == 0 || d->h[i].ranked ? i + 1 : 0, &d->h[i])) != 0)
            goto oom;
    for (size_t i = 0; i < d->n_st; i++)
        if (append(st, json_pack("{s:i, s:I, s:I, s:b}", "status", d->st[i].status, "a",
                                 (json_int_t)d->st[i].n_a, "b", (json_int_t)d->st[i].n_b,
                                 "differs", d->st[i].differs)) != 0)
            goto oom;
    for (size_t i = 0; i < d->n_only_a; i++)
        if (append(oa, json_pack("{s:o, s:I}", "request", jstr(d->only_a[i].key), "exchanges",
                                 (json_int_t)d->only_a[i].n)) != 0)
            goto oom;
    for (size_t i = 0; i < d->n_only_b; i++)
        if (append(ob, json_pack("{s:o, s:I}", "request", jstr(d->only_b[i].key), "exchanges",
                                 (json_int_t)d->only_b[i].n)) != 0)
            goto oom;
    for (size_t i = 0; i < d->n_fields; i++)
        if (append(fs, field_json(&d->fields[i])) != 0)
            goto oom;
    json_t *files = json_pack("{s:{s:o, s:b}, s:{s:o, s:b}}", "a", "file", jstr(info->path_a),
                              "from_har", info->har_a, "b", "file", jstr(info->path_b),
                              "from_har", info->har_b);
    json_t *conns = json_pack("{s:b, s:o, s:o}", "differ", d->conns_differ, "a",
                              side_json(&d->a), "b", side_json(&d->b));
    if (files == NULL || conns == NULL) {
        json_decref(files);
        json_decref(conns);
        goto oom;
    }
    json_object_set_new(root, "files", files);
    json_object_set_new(root, "different", json_boolean(shunt_diff_any(d)));
    json_object_set_new(root, "aligned_by",
                        json_string(d->by_origin ? "method, origin, path and query"
                                                 : "method, path and query"));
    json_object_set_new(root, "shared_requests", json_integer((json_int_t)d->n_keys_shared));
    json_t *ev = json_pack("{s:I, s:I, s:I, s:b, s:{s:{s:I, s:I}, s:{s:I, s:I}}}",
                           "early_closes", (json_int_t)d->n_closed, "kept_responses",
                           (json_int_t)d->n_kept, "needed", (json_int_t)SHUNT_DIFF_MIN_EVIDENCE,
                           "too_small", d->too_small, "by_trace", "a", "early_closes",
                           (json_int_t)d->closed_of[0], "kept_responses",
                           (json_int_t)d->kept_of[0], "b", "early_closes",
                           (json_int_t)d->closed_of[1], "kept_responses",
                           (json_int_t)d->kept_of[1]);
    if (ev == NULL)
        goto oom;
    json_object_set_new(root, "evidence", ev);
    json_object_set_new(root, "connections", conns);
    json_object_set_new(root, "differences", hs);
    json_object_set_new(root, "statuses", st);
    json_object_set_new(root, "only_in_a", oa);
    json_object_set_new(root, "only_in_b", ob);
    json_object_set_new(root, "fields", fs);
    json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', f);
    json_decref(root);
    return 0;
oom:
    json_decref(root);
    json_decref(hs);
    json_decref(st);
    json_decref(oa);
    json_decref(ob);
    json_decref(fs);
    return SHUNT_ENOMEM;
}
