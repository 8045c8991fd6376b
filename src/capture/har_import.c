/* src/capture/har_import.c - a HAR (Chrome, Firefox, Fiddler, mitmproxy, shunt) as a new
 * capture: heads rebuilt from the HAR's fields, bodies decoded, connections inferred per
 * producer. docs/har.md gives the producers' fields and every rule used here. */
#include "capture/har.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h> /* isfinite, a macro: no libm */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture/db.h"
#include "core/base64.h"
#include "http/auth.h"
#include "http/target.h"

/* ---------------------------------------------------------------- producers */

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

enum shunt_har_producer shunt_har_producer_of(const char *name)
{
    if (name == NULL)
        return SHUNT_HAR_OTHER;
    if (strcasecmp(name, "shunt") == 0)
        return SHUNT_HAR_SHUNT;
    /* Chrome, Edge and Opera DevTools all write "WebInspector". */
    if (contains_nocase(name, "webinspector") || strncasecmp(name, "chrome", 6) == 0)
        return SHUNT_HAR_CHROME;
    if (contains_nocase(name, "firefox"))
        return SHUNT_HAR_FIREFOX;
    if (contains_nocase(name, "fiddler"))
        return SHUNT_HAR_FIDDLER;
    if (contains_nocase(name, "mitmproxy")) /* "mitmproxy exporthar", "mitmproxy har_dump" */
        return SHUNT_HAR_MITMPROXY;
    return SHUNT_HAR_OTHER;
}

const char *shunt_har_producer_name(enum shunt_har_producer p)
{
    static const char *const names[] = {"other", "shunt", "chrome", "firefox", "fiddler",
                                        "mitmproxy"};
    return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "other";
}

/* ---------------------------------------------------------------- time */

/* Days from 1970-01-01 to a civil date (H. Hinnant, days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly <n> digits at s[*i]; returns the value or -1. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

int shunt_har_parse_time(const char *s, size_t len, int64_t *us)
{
    size_t i = 0;
    int y = digits(s, len, &i, 4);
    if (y < 0 || i >= len || s[i++] != '-')
        return -1;
    int mo = digits(s, len, &i, 2);
    if (mo < 1 || mo > 12 || i >= len || s[i++] != '-')
        return -1;
    int d = digits(s, len, &i, 2);
    if (d < 1 || d > 31 || i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    int h = digits(s, len, &i, 2);
    if (h < 0 || h > 23 || i >= len || s[i++] != ':')
        return -1;
    int mi = digits(s, len, &i, 2);
    if (mi < 0 || mi > 59 || i >= len || s[i++] != ':')
        return -1;
    int se = digits(s, len, &i, 2);
    if (se < 0 || se > 60)
        return -1;
    int64_t frac = 0; /* microseconds; digits past the sixth are dropped */
    if (i < len && (s[i] == '.' || s[i] == ',')) {
        i++;
        int n = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n < 6)
                frac = frac * 10 + (s[i] - '0');
            n++, i++;
        }
        if (n == 0)
            return -1;
        for (; n < 6; n++)
            frac *= 10;
    }
    int64_t off = 0; /* seconds east of UTC */
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        int oh = digits(s, len, &i, 2), om = 0;
        if (oh < 0 || oh > 23)
            return -1;
        if (i < len && s[i] == ':')
            i++;
        if (i < len) {
            om = digits(s, len, &i, 2);
            if (om < 0 || om > 59)
                return -1;
        }
        off = sign * (oh * 3600 + om * 60);
    }
    if (i != len)
        return -1;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
                   se - off;
    *us = secs * 1000000 + frac;
    return 0;
}

/* ---------------------------------------------------------------- a string map */

/* Open addressing, string keys borrowed from the caller, values size_t. */
struct smap {
    const char **keys;
    size_t *vals;
    size_t cap; /* a power of two, more than twice the entries */
};

static int smap_init(struct smap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < n * 2 + 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof(*m->keys));
    m->vals = calloc(m->cap, sizeof(*m->vals));
    return m->keys && m->vals ? 0 : -1;
}

static void smap_dispose(struct smap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
}

/* The slot of <key>: where it is, or the empty one where it goes. */
static size_t smap_slot(const struct smap *m, const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    size_t i = (size_t)h & (m->cap - 1);
    while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* ---------------------------------------------------------------- connections */

#define NONE ((size_t)-1)

struct conn_state {
    int64_t last_end; /* end of the latest-ending entry on it */
    size_t n;         /* entries so far */
    int closed;       /* an entry on it ended it (hint.closes) */
};

long shunt_har_infer_connections(struct shunt_har_conn_hint *h, size_t n)
{
    struct smap keys = {0}, origins = {0};
    struct conn_state *conns = calloc(n + 1, sizeof(*conns));
    size_t *prev = calloc(n + 1, sizeof(*prev)); /* previous unkeyed entry, same origin */
    size_t n_conns = 0;
    long rc = SHUNT_ENOMEM;
    if (conns == NULL || prev == NULL || smap_init(&keys, n) != 0 || smap_init(&origins, n) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        size_t c = NONE;
        if (h[i].key != NULL) {
            size_t s = smap_slot(&keys, h[i].key);
            if (keys.keys[s] != NULL) {
                c = keys.vals[s];
                /* The key names a connection that provably ended before this entry began:
                 * a port given out again. Without that proof the key decides: a client that
                 * keeps its connection shows the same port on every request. */
                if (h[i].key_may_repeat && h[i].start_us >= conns[c].last_end &&
                    (conns[c].closed || h[i].connects))
                    c = NONE;
            }
            if (c == NONE) {
                c = ++n_conns;
                keys.keys[s] = h[i].key;
                keys.vals[s] = c;
            }
        } else {
            size_t s = smap_slot(&origins, h[i].origin);
            size_t j = origins.keys[s] ? origins.vals[s] : NONE;
            prev[i] = j;
            origins.keys[s] = h[i].origin;
            origins.vals[s] = i;
            if (h[i].opens == 0)
                for (int steps = 0; j != NONE && steps < SHUNT_HAR_LOOKBACK; steps++, j = prev[j])
                    if (h[i].multiplexed || conns[h[j].conn].last_end <= h[i].start_us) {
                        c = h[j].conn;
                        break;
                    }
            if (c == NONE)
                c = ++n_conns;
        }
        h[i].conn = c;
        h[i].idx = ++conns[c].n;
        h[i].reused = h[i].idx > 1 || h[i].opens == 0;
        if (conns[c].n == 1 || h[i].end_us > conns[c].last_end)
            conns[c].last_end = h[i].end_us;
        conns[c].closed |= h[i].closes;
    }
    rc = (long)n_conns;
done:
    smap_dispose(&origins);
    smap_dispose(&keys);
    free(prev);
    free(conns);
    return rc;
}

/* ---------------------------------------------------------------- bytes */

/* A growing byte buffer; <p> NUL-terminated when not NULL. */
struct dbuf {
    char *p;
    size_t len, cap;
    int oom; /* an append failed: the content is incomplete */
};

static void dbuf_add(struct dbuf *b, const void *data, size_t len)
{
    if (b->oom)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void dbuf_str(struct dbuf *b, const char *s)
{
    dbuf_add(b, s, strlen(s));
}

/* Appends <len> bytes with CR, LF and NUL turned into spaces, so that a field from the HAR
 * can never split into several lines of the rebuilt head. */
static void dbuf_field(struct dbuf *b, const char *s, size_t len)
{
    size_t start = b->len;
    dbuf_add(b, s, len);
    if (b->oom)
        return;
    for (size_t i = start; i < b->len; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n' || b->p[i] == '\0')
            b->p[i] = ' ';
}

static void dbuf_free(struct dbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Decodes base64 (RFC 4648 sections 4 and 5; whitespace skipped, padding optional) into <out>.
 * Returns 0, or -1 when malformed. */
static int base64_decode(const char *s, size_t len, struct dbuf *out)
{
    unsigned v = 0;
    int bits = 0, pad = 0;
    dbuf_add(out, "", 0);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\r' || c == '\n' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int x = shunt_base64_value(c);
        if (x < 0 || pad)
            return -1;
        v = (v << 6) | (unsigned)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char byte = (char)((v >> bits) & 0xff);
            dbuf_add(out, &byte, 1);
        }
    }
    return pad > 2 || out->oom ? -1 : 0;
}

/* ---------------------------------------------------------------- reading the HAR */

/* An import in progress. */
struct importer {
    char *err;
    size_t err_len;
    enum shunt_har_producer producer;
    int connection_is_id; /* `connection` names a connection (not a server port) */
};

__attribute__((format(printf, 2, 3))) static int fail(struct importer *im, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->err, im->err_len, fmt, ap);
    va_end(ap);
    /* The reason is one line: jansson quotes the bad token, raw newlines and all (found by
     * fuzz_har with {"log":"\<newline>"}); and it goes to a terminal: no control byte of an
     * untrusted file, C1 (a UTF-8 U+009B is 0xc2 0x9b) or other, reaches it. The reasons
     * are ASCII; what is not comes from the file. */
    for (char *p = im->err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
        else if ((unsigned char)*p >= 0x80)
            *p = '?';
    return SHUNT_EPARSE;
}

/* What one entry became, before it is written. */
struct ent {
    size_t src;       /* index in log.entries */
    json_t *j;        /* the entry while it is being written (a reference the writer holds),
                         else NULL: pass 1 keeps only the fields below */
    int64_t start_us; /* startedDateTime */
    int64_t time_us;  /* time */
    int64_t t[6];     /* blocked, dns, connect, send, wait, receive; -1 when not given */
    int64_t t_ssl;    /* timings.ssl (inside connect, HAR 1.2); -1 when not given */
    int has_connect;  /* timings.connect is a number (then in connect_ms) */
    double connect_ms;
    char *cid;        /* _connectionId as text (get_id()), owned; NULL when none */
    char *conn_field; /* connection as text (get_id()), owned; NULL when none */
    char *url;        /* request.url, owned (NUL-free: read_entry() checks) */
    char *key;        /* connection key, owned; NULL */
    char *origin;     /* "scheme://host:port", owned */
    char *host;       /* lower case, no port, owned; NULL when the URL has no authority */
    int port;         /* the URL's port (explicit or the scheme's), 0 when none */
    int tls;          /* https or wss */
    const char *path; /* into url: path and query (before '#'); NULL when none */
    size_t path_len;
    const char *authority; /* into url: host[:port], for CONNECT's target */
    size_t authority_len;
    int multiplexed;  /* httpVersion says HTTP/2 or HTTP/3 */
    int closes;       /* its messages end the connection (entry_closes()) */
    int connect;      /* a CONNECT: its URL may be the authority alone (host:port) */
};

/* The string value of <key> in <obj>: 1 with *<s>/<len>, 0 when absent or null, -1 when of
 * another type. */
static int get_str(json_t *obj, const char *key, const char **s, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

/* The number at <key> in <obj>: 1 with *<out>, 0 when absent or null, -1 when not a number. */
static int get_num(json_t *obj, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return isfinite(*out) ? 1 : -1;
}

/* Milliseconds to microseconds, -1 for any negative value. */
static int64_t ms_to_us(double ms)
{
    if (ms < 0)
        return -1;
    /* One day at most: no exchange's phase lasts longer, and the analysis sums these over
     * every entry (a HAR with a thousand timings of 285 years overflowed int64 there). */
    if (ms > 8.64e7)
        ms = 8.64e7;
    return (int64_t)(ms * 1000.0 + 0.5); /* rounded; no libm needed */
}

/* An identifier value (string or integer) of <key> in <obj> as text in <buf>; 0 when absent,
 * empty or of another type. */
static int get_id(json_t *obj, const char *key, char *buf, size_t len)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < len &&
        strlen(json_string_value(v)) == json_string_length(v)) {
        memcpy(buf, json_string_value(v), json_string_length(v) + 1);
        return 1;
    }
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 1;
    }
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Splits e->url into origin, host, port, path. A URL without "//" (data:, about:) keeps its
 * scheme as its origin and has no host, but a CONNECT's, which is its target in authority
 * form ("host:port", RFC 9112 3.2.3: mitmproxy and shunt write it so): then the path is that
 * target, as shunt records it. */
static int parse_url(struct ent *e)
{
    const char *u = e->url;
    const char *sep = strstr(u, "://");
    size_t slen = sep ? (size_t)(sep - u) : e->connect ? 0 : strcspn(u, ":");
    char scheme[16] = "";
    if (slen < sizeof(scheme))
        for (size_t i = 0; i < slen; i++)
            scheme[i] = (char)(u[i] >= 'A' && u[i] <= 'Z' ? u[i] + 32 : u[i]);
    e->tls = strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0;
    if (sep == NULL && !(e->connect && u[0] != '\0')) {
        e->origin = dup_n(u, slen);
        return e->origin ? 0 : -1;
    }
    const char *a = sep ? sep + 3 : u;
    size_t alen = strcspn(a, "/?#");
    int dflt = strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0 ? 443
               : strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0 ? 80
                                                                           : 0;
    /* read as far as it goes: a HAR may hold any URL a browser sent */
    struct shunt_authority au;
    (void)shunt_http_split_authority(shunt_slice_make(a, alen), dflt, SHUNT_AUTHORITY_USERINFO,
                                     &au);
    if (au.userinfo.base != NULL) { /* userinfo is not part of the origin */
        alen -= au.userinfo.len + 1;
        a += au.userinfo.len + 1;
    }
    e->authority = a;
    e->authority_len = alen;
    e->port = au.port;
    const char *hs = au.host.base ? au.host.base : a, *he = hs + au.host.len;
    e->host = dup_n(hs, (size_t)(he - hs));
    if (e->host == NULL)
        return -1;
    for (char *p = e->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    const char *path = a + alen;
    size_t plen = strcspn(path, "#");
    e->path = path;
    e->path_len = plen;
    if (e->connect) { /* the target is the authority */
        e->path = e->authority;
        e->path_len = e->authority_len;
    }
    size_t olen = slen + strlen(e->host) + 32;
    e->origin = malloc(olen);
    if (e->origin == NULL)
        return -1;
    snprintf(e->origin, olen, "%s://%s:%d", scheme, e->host, e->port);
    return 0;
}

/* Checks that <obj>.<key>, when present, is an array of {name, value} strings. */
static int check_pairs(struct importer *im, json_t *obj, const char *where, size_t src,
                       const char *key)
{
    json_t *a = json_object_get(obj, key);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fail(im, "log.entries[%zu].%s.%s is not an array", src, where, key);
    for (size_t k = 0; k < json_array_size(a); k++) {
        json_t *h = json_array_get(a, k);
        const char *s;
        size_t l;
        if (!json_is_object(h))
            return fail(im, "log.entries[%zu].%s.%s[%zu] is not an object", src, where, key, k);
        if (get_str(h, "name", &s, &l) != 1)
            return fail(im, "log.entries[%zu].%s.%s[%zu].name is missing or not a string", src,
                        where, key, k);
        if (get_str(h, "value", &s, &l) < 0)
            return fail(im, "log.entries[%zu].%s.%s[%zu].value is not a string", src, where,
                        key, k);
    }
    return 0;
}

/* The name the import gives the HTTP version <v> (<len> bytes, as a producer spelled it):
 * one spelling per version, "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3", whatever the
 * producer wrote (Chrome "http/1.1", "h2", "http/2.0", "h3"; Firefox "HTTP/2"; others
 * "HTTP/2.0", "h2c", drafts "h2-14", "h3-29"). NULL for anything else, kept as written. */
static const char *version_name(const char *v, size_t len)
{
    char low[16];
    if (v == NULL || len == 0 || len >= sizeof(low))
        return NULL;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
    low[len] = '\0';
    if (strcmp(low, "http/1.0") == 0)
        return "HTTP/1.0";
    if (strcmp(low, "http/1.1") == 0)
        return "HTTP/1.1";
    if (strcmp(low, "h2") == 0 || strcmp(low, "h2c") == 0 || strncmp(low, "h2-", 3) == 0 ||
        strcmp(low, "http/2") == 0 || strcmp(low, "http/2.0") == 0)
        return "HTTP/2";
    if (strcmp(low, "h3") == 0 || strncmp(low, "h3-", 3) == 0 || strcmp(low, "http/3") == 0 ||
        strcmp(low, "http/3.0") == 0)
        return "HTTP/3";
    return NULL;
}

/* 1 when the version <v> multiplexes requests on a connection: HTTP/2, HTTP/3, and the SPDY
 * and QUIC names older Chrome wrote ("spdy/3.1", "quic/1+spdy/3", "http/2+quic/43"). */
static int version_multiplexes(const char *v, size_t len)
{
    const char *n = version_name(v, len);
    if (n != NULL)
        return strcmp(n, "HTTP/2") == 0 || strcmp(n, "HTTP/3") == 0;
    char low[64];
    if (v == NULL || len >= sizeof(low))
        return 0;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
    low[len] = '\0';
    return strstr(low, "spdy") != NULL || strstr(low, "quic") != NULL;
}

/* 1 when a field <name> of the HAR headers <arr> lists <token> among its comma-separated
 * values (ASCII case ignored), as Connection does (RFC 9110 7.6.1). */
static int fields_have_token(json_t *arr, const char *name, const char *token)
{
    size_t tl = strlen(token);
    for (size_t k = 0; k < json_array_size(arr); k++) {
        json_t *h = json_array_get(arr, k);
        const char *n, *v;
        size_t nl, vl;
        if (get_str(h, "name", &n, &nl) != 1 || strcasecmp(n, name) != 0 ||
            get_str(h, "value", &v, &vl) != 1)
            continue;
        for (size_t i = 0; i < vl;) {
            while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                i++;
            size_t st = i;
            while (i < vl && v[i] != ',')
                i++;
            size_t e = i;
            while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (e - st == tl && strncasecmp(v + st, token, tl) == 0)
                return 1;
        }
    }
    return 0;
}

/* 1 when the HAR headers <arr> have a field <name>. */
static int has_field(json_t *arr, const char *name)
{
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const char *n;
        size_t nl;
        if (get_str(json_array_get(arr, k), "name", &n, &nl) == 1 && strcasecmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* 1 when the messages of an entry end its HTTP/1 connection, so that nothing can follow
 * them on it: Connection: close in the request or the response (RFC 9112 9.6), a request or
 * response of HTTP/1.0 without keep-alive (9.3), a response whose body is delimited by the
 * close (6.3: no Content-Length nor Transfer-Encoding where a body may follow). Nothing for
 * HTTP/2 and HTTP/3 (no such fields), without a response (how it ended is not known), nor
 * for a CONNECT's 2xx (a tunnel follows).
 * <status> is the response's. */
static int entry_closes(json_t *req, json_t *resp, int status)
{
    const char *m = "", *v = NULL, *rv = NULL;
    size_t ml = 0, vl = 0, rvl = 0;
    json_t *rq = json_object_get(req, "headers"), *rs = json_object_get(resp, "headers");
    (void)get_str(req, "method", &m, &ml);
    if (get_str(req, "httpVersion", &v, &vl) != 1)
        v = NULL, vl = 0;
    if (get_str(resp, "httpVersion", &rv, &rvl) != 1 || rvl == 0)
        rv = v, rvl = vl;
    if (version_multiplexes(v, vl) || version_multiplexes(rv, rvl) || status <= 0)
        return 0;
    /* A 2xx to CONNECT turns the connection into a tunnel right after its head (RFC 9110
     * 9.3.6): a Connection field in it ends nothing. Fiddler answers every CONNECT with
     * `Connection: close`, and its decrypted requests follow on the same client port. */
    if (strcasecmp(m, "CONNECT") == 0 && status >= 200 && status < 300)
        return 0;
    if (fields_have_token(rq, "Connection", "close") || fields_have_token(rs, "Connection", "close"))
        return 1;
    const char *qn = version_name(v, vl), *sn = version_name(rv, rvl);
    if ((qn != NULL && strcmp(qn, "HTTP/1.0") == 0 &&
         !fields_have_token(rq, "Connection", "keep-alive")) ||
        (sn != NULL && strcmp(sn, "HTTP/1.0") == 0 &&
         !fields_have_token(rs, "Connection", "keep-alive")))
        return 1;
    /* A body without a length is read until the close; not for a response that has no body
     * (1xx, 204, 304, to HEAD) nor one that turns the connection into a tunnel. */
    if (status < 200 || status == 204 || status == 304 || strcasecmp(m, "HEAD") == 0)
        return 0;
    return !has_field(rs, "Content-Length") && !has_field(rs, "Transfer-Encoding");
}

/* Reads and checks entry <src> into <e>: what the connection inference and the order need,
 * copied, so that <j> may be freed once this returns. */
static int read_entry(struct importer *im, json_t *j, size_t src, struct ent *e)
{
    const char *s;
    size_t l;
    double d;
    char id[64];
    e->src = src;
    if (!json_is_object(j))
        return fail(im, "log.entries[%zu] is not an object", src);
    int r = get_str(j, "startedDateTime", &s, &l);
    if (r != 1)
        return fail(im, "log.entries[%zu].startedDateTime is %s", src,
                    r == 0 ? "missing" : "not a string");
    if (shunt_har_parse_time(s, l, &e->start_us) != 0)
        return fail(im, "log.entries[%zu].startedDateTime is not an ISO 8601 date-time: \"%.40s\"",
                    src, s);
    json_t *req = json_object_get(j, "request"), *resp = json_object_get(j, "response");
    if (!json_is_object(req))
        return fail(im, "log.entries[%zu].request is %s", src, req ? "not an object" : "missing");
    if (!json_is_object(resp))
        return fail(im, "log.entries[%zu].response is %s", src,
                    resp ? "not an object" : "missing");
    if ((r = get_str(req, "method", &s, &l)) != 1 || l == 0)
        return fail(im, "log.entries[%zu].request.method is %s", src,
                    r < 0 ? "not a string" : "missing");
    e->connect = strcasecmp(s, "CONNECT") == 0;
    /* shunt's own HAR: the exchange row as recorded, which the HAR's fields derive from. */
    json_t *row = im->producer == SHUNT_HAR_SHUNT
                      ? json_object_get(json_object_get(j, "_shunt"), "exchange")
                      : NULL;
    if (!json_is_object(row))
        row = NULL;
    r = get_str(req, "url", &s, &l);
    /* A request refused before its URL was known has none in a shunt capture. */
    int no_url = row != NULL && r == 1 && l == 0 && json_is_null(json_object_get(row, "url"));
    if (!no_url && (r != 1 || l == 0 || strlen(s) != l))
        return fail(im, "log.entries[%zu].request.url is %s", src,
                    r < 0 ? "not a string" : r == 0 ? "missing" : "empty or holds a NUL");
    if ((e->url = dup_n(s, l)) == NULL)
        return fail(im, "out of memory");
    json_t *st = json_object_get(resp, "status");
    if (!json_is_number(st))
        return fail(im, "log.entries[%zu].response.status is %s", src,
                    st ? "not a number" : "missing");
    if (json_number_value(st) < 0 || json_number_value(st) > 999 ||
        json_number_value(st) != (double)(int)json_number_value(st))
        return fail(im, "log.entries[%zu].response.status %g is not a status code", src,
                    json_number_value(st));
    static const char *const names[] = {"blocked", "dns", "connect", "send", "wait", "receive"};
    json_t *t = json_object_get(j, "timings");
    if (t != NULL && !json_is_null(t) && !json_is_object(t))
        return fail(im, "log.entries[%zu].timings is not an object", src);
    for (int k = 0; k < 6; k++) {
        e->t[k] = k < 3 ? -1 : 0; /* the schema's defaults when the HAR leaves one out */
        if (t == NULL || (r = get_num(t, names[k], &d)) == 0)
            continue;
        if (r < 0)
            return fail(im, "log.entries[%zu].timings.%s is not a number", src, names[k]);
        e->t[k] = ms_to_us(d);
        if (k == 2) {
            e->has_connect = 1;
            e->connect_ms = d;
        }
    }
    e->t_ssl = -1;
    if (t != NULL && (r = get_num(t, "ssl", &d)) != 0) {
        if (r < 0)
            return fail(im, "log.entries[%zu].timings.ssl is not a number", src);
        e->t_ssl = d < 0 ? -1 : ms_to_us(d);
    }
    if ((r = get_num(j, "time", &d)) < 0)
        return fail(im, "log.entries[%zu].time is not a number", src);
    if (r == 1) {
        e->time_us = d < 0 ? 0 : ms_to_us(d);
    } else { /* HAR 1.2: the sum of the timings that are not -1 */
        e->time_us = 0;
        for (int k = 0; k < 6; k++)
            e->time_us += e->t[k] > 0 ? e->t[k] : 0;
    }
    /* shunt's row has the start to the microsecond and its own duration (time is the sum of
     * the timings, HAR's definition); both in range, as a capture may hold anything. */
    json_t *su = row ? json_object_get(row, "started_us") : NULL;
    json_t *du = row ? json_object_get(row, "duration_us") : NULL;
    if (json_is_integer(su) && json_integer_value(su) / 1000 == e->start_us / 1000)
        e->start_us = json_integer_value(su);
    if (json_is_integer(du) && json_integer_value(du) >= 0 &&
        json_integer_value(du) <= (INT64_C(1) << 53))
        e->time_us = json_integer_value(du);
    if (check_pairs(im, req, "request", src, "headers") != 0 ||
        check_pairs(im, resp, "response", src, "headers") != 0)
        return SHUNT_EPARSE;
    json_t *content = json_object_get(resp, "content");
    if (content != NULL && !json_is_null(content) && !json_is_object(content))
        return fail(im, "log.entries[%zu].response.content is not an object", src);
    if (content != NULL && get_str(content, "text", &s, &l) < 0)
        return fail(im, "log.entries[%zu].response.content.text is not a string", src);
    json_t *pd = json_object_get(req, "postData");
    if (pd != NULL && !json_is_null(pd) && !json_is_object(pd))
        return fail(im, "log.entries[%zu].request.postData is not an object", src);
    if (pd != NULL && get_str(pd, "text", &s, &l) < 0)
        return fail(im, "log.entries[%zu].request.postData.text is not a string", src);
    if (get_str(req, "httpVersion", &s, &l) == 1)
        e->multiplexed = version_multiplexes(s, l);
    e->closes = entry_closes(req, resp, (int)json_number_value(st));
    if (get_id(j, "_connectionId", id, sizeof(id)) && (e->cid = dup_n(id, strlen(id))) == NULL)
        return fail(im, "out of memory");
    if (get_id(j, "connection", id, sizeof(id)) &&
        (e->conn_field = dup_n(id, strlen(id))) == NULL)
        return fail(im, "out of memory");
    if (parse_url(e) != 0)
        return fail(im, "out of memory");
    return 0;
}

/* 1 when the entry's timings say it opened its connection, 0 reused, -1 unknown. Firefox
 * and Fiddler write 0, not -1, for a reused connection (see docs/har.md). */
static int opens(const struct importer *im, const struct ent *e)
{
    if (!e->has_connect)
        return -1;
    if (im->producer == SHUNT_HAR_FIREFOX || im->producer == SHUNT_HAR_FIDDLER)
        return e->connect_ms > 0;
    return e->connect_ms >= 0;
}

/* 1 when the key of <e> is a number that another connection may carry once this one closed:
 * a client port (Fiddler's `connection`, and any producer's that we cannot place). Socket
 * ids (`_connectionId`, old Chrome's `connection`) and shunt's ids name one connection. */
static int key_may_repeat(const struct importer *im, const struct ent *e)
{
    if (e->key == NULL || e->cid != NULL)
        return 0;
    return im->producer == SHUNT_HAR_FIDDLER || im->producer == SHUNT_HAR_OTHER;
}

/* 1 when the timings of <e> measured a connect (> 0 ms; 0 may be no connect at all) on the
 * connection its key names. Fiddler's timings are about its own connection to the server,
 * not the client's connection that its key (the client port) names. */
static int connects(const struct importer *im, const struct ent *e)
{
    return im->producer != SHUNT_HAR_FIDDLER && e->has_connect && e->connect_ms > 0;
}

/* Decides what `connection` means in this file (docs/har.md, "Connections"). */
static void judge_connection_field(struct importer *im, struct ent *ents, size_t n)
{
    switch (im->producer) {
    case SHUNT_HAR_SHUNT:
    case SHUNT_HAR_FIDDLER:
        im->connection_is_id = 1;
        return;
    case SHUNT_HAR_FIREFOX:
        im->connection_is_id = 0;
        return;
    default:
        break;
    }
    /* Current Chrome writes both `_connectionId` and `connection` = the server's port. */
    for (size_t i = 0; i < n; i++)
        if (ents[i].cid != NULL) {
            im->connection_is_id = 0;
            return;
        }
    /* Old Chrome wrote its connection id; a file whose every `connection` is its URL's port
     * holds ports. */
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].conn_field == NULL)
            continue;
        any = 1;
        char port[16];
        snprintf(port, sizeof(port), "%d", ents[i].port);
        if (strcmp(ents[i].conn_field, port) != 0) {
            im->connection_is_id = 1;
            return;
        }
    }
    im->connection_is_id = 0;
    (void)any;
}

/* The connection key of <e>: "id:" _connectionId, or "c:" connection when that names one. */
static int make_key(struct importer *im, struct ent *e)
{
    char key[80];
    if (e->cid != NULL)
        snprintf(key, sizeof(key), "id:%s", e->cid);
    else if (im->connection_is_id && e->conn_field != NULL)
        snprintf(key, sizeof(key), "c:%s", e->conn_field);
    else
        return 0;
    e->key = dup_n(key, strlen(key));
    return e->key ? 0 : -1;
}

static int by_start(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    if (x->start_us != y->start_us)
        return x->start_us < y->start_us ? -1 : 1;
    return x->src < y->src ? -1 : x->src > y->src;
}

/* ---------------------------------------------------------------- one entry at a time */

/*
 * A HAR is mostly its log.entries, and jansson's tree of a whole document takes ten times the
 * file. So a scanner finds the byte span of each element of the array jansson would take as
 * log.entries; the rest of the document (the skeleton: the file with that array emptied, a
 * few kilobytes) is parsed by jansson as a whole, and each entry alone from its span, twice:
 * once to read what the order and the connection inference need (pass 1, into struct ent),
 * once to write it (pass 2, in start order).
 *
 * The scanner only delimits. jansson still reads every byte: the skeleton, each span; the
 * scanner itself checks what lies between the spans (whitespace and commas). When the scanner
 * meets anything else it does not expect (a syntax error, a truncated file, a key written with
 * escapes at the top level or in log, since "l\u006fg" is "log" to jansson, nesting near
 * jansson's limit) or a span does not parse alone, the import starts over from jansson's tree
 * of the whole document, as before: the same result, the same error with line and column, at
 * the old cost in memory. The streamed import differs from the whole tree in memory only;
 * fuzz/fuzz_har.c checks that both give the same rows or the same error.
 *
 * Duplicate keys: jansson keeps the last value of a key, so the scanner takes the last "log"
 * of the top level and the last "entries" of that log. Earlier duplicates stay in the
 * skeleton, parsed whole and checked as before.
 */

/* Bytes read from a mapped input between two drops of its pages (a test sets it lower). */
#ifndef DROP_EVERY
#define DROP_EVERY ((size_t)8 << 20)
#endif

/* The input, when it is a read-only mapping of the file (shunt_har_import_file()): the pages
 * read are dropped from the process every DROP_EVERY bytes (the page cache keeps them, a
 * later read maps them again), so that the file is never resident whole, though both passes
 * and the scanner read all of it. */
struct mapping {
    void *base;  /* the mapping, page-aligned; NULL: the input is the caller's memory */
    size_t len;  /* its length */
    size_t read; /* bytes read since the last drop */
};

/* Counts <n> bytes read from <m> (NULL: not a mapping), dropping the pages read when due. */
static void map_read(struct mapping *m, size_t n)
{
    if (m == NULL || m->base == NULL)
        return;
    m->read += n;
    if (m->read >= DROP_EVERY) {
        (void)madvise(m->base, m->len, MADV_DONTNEED); /* a hint: failure costs memory only */
        m->read = 0;
    }
}

/* The byte range of one entry in the input. */
struct span {
    size_t off, len;
};

/* What the scanner found, offsets into the input after the byte order mark. */
struct scan {
    size_t open;    /* the entries array's '[' */
    size_t close;   /* its ']' */
    struct span *v; /* its elements, in order; malloc'ed */
    size_t n, cap;
    int found;      /* the last "log" is an object whose last "entries" is an array */
    struct mapping *map; /* the input's mapping, or NULL */
};

/* Nesting allowed inside the entries before the scanner leaves the file to the whole tree:
 * jansson refuses past JSON_PARSER_MAX_DEPTH counting the three levels above an entry (the
 * document, log, entries), which a span parsed alone would not count. */
#define SCAN_MAX_DEPTH (JSON_PARSER_MAX_DEPTH - 8)

/* JSON whitespace (RFC 8259 section 2), as jansson skips it. */
static size_t skip_ws(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Skips the string whose '"' is at p[*i]. Returns 0 with *i past its closing quote and *<esc>
 * 1 when it holds a backslash, or -1 when the input ends first. Escapes are not checked
 * (jansson does): a backslash just hides the byte after it. */
static int skip_string(const char *p, size_t len, size_t *i, int *esc)
{
    size_t k = *i + 1;
    *esc = 0;
    while (k < len) {
        const char *q = memchr(p + k, '"', len - k);
        if (q == NULL)
            return -1;
        /* the quote ends the string unless an odd run of backslashes precedes it */
        size_t at = (size_t)(q - p), bs = 0;
        while (at - bs > k && p[at - bs - 1] == '\\')
            bs++;
        if (memchr(p + k, '\\', at - k) != NULL)
            *esc = 1;
        k = at + 1;
        if (bs % 2 == 0) {
            *i = k;
            return 0;
        }
    }
    return -1;
}

/* Skips the value at p[*i], held by a container at nesting <depth> (1: the top-level object).
 * Returns 0 with *i past it, or -1: no value there, the input ends first, or nesting deeper
 * than SCAN_MAX_DEPTH. Only where the value ends is checked. */
static int skip_value(const char *p, size_t len, size_t *i, int depth)
{
    size_t k = *i;
    int esc;
    if (k >= len)
        return -1;
    if (p[k] == '"')
        return skip_string(p, len, i, &esc);
    if (p[k] != '{' && p[k] != '[') { /* a number or a literal: up to a delimiter */
        while (k < len && p[k] != ',' && p[k] != ']' && p[k] != '}' && p[k] != ' ' &&
               p[k] != '\t' && p[k] != '\n' && p[k] != '\r' && p[k] != '"' && p[k] != ':' &&
               p[k] != '{' && p[k] != '[')
            k++;
        if (k == *i)
            return -1;
        *i = k;
        return 0;
    }
    int d = depth;
    while (k < len) {
        char c = p[k];
        if (c == '"') {
            if (skip_string(p, len, &k, &esc) != 0)
                return -1;
            continue;
        }
        k++;
        if (c == '{' || c == '[') {
            if (++d > SCAN_MAX_DEPTH)
                return -1;
        } else if (c == '}' || c == ']') {
            if (--d == depth) {
                *i = k;
                return 0;
            }
        }
    }
    return -1;
}

/* Reads a member's key and colon at p[*i]. Returns 0 with the key's bytes in *<key>/<key_len>
 * and *i at the value, or -1 (also for a key with escapes: it may spell what we look for). */
static int scan_key(const char *p, size_t len, size_t *i, const char **key, size_t *key_len)
{
    size_t k = *i;
    int esc;
    if (k >= len || p[k] != '"' || skip_string(p, len, &k, &esc) != 0 || esc)
        return -1;
    *key = p + *i + 1;
    *key_len = k - *i - 2;
    k = skip_ws(p, len, k);
    if (k >= len || p[k] != ':')
        return -1;
    *i = skip_ws(p, len, k + 1);
    return 0;
}

/* After a member or an element: 1 with *i at the next one (a comma), 0 with *i past <close>,
 * -1 on anything else. */
static int scan_next(const char *p, size_t len, size_t *i, char close)
{
    size_t k = skip_ws(p, len, *i);
    if (k < len && p[k] == ',') {
        *i = skip_ws(p, len, k + 1);
        return 1;
    }
    if (k < len && p[k] == close) {
        *i = k + 1;
        return 0;
    }
    return -1;
}

/* Scans the entries array whose '[' is at p[*i]: its elements' spans into <sc>. */
static int scan_entries(const char *p, size_t len, size_t *i, struct scan *sc)
{
    size_t k = skip_ws(p, len, *i + 1);
    sc->open = *i;
    sc->n = 0;
    if (k < len && p[k] == ']') {
        sc->close = k;
        *i = k + 1;
        return 0;
    }
    for (;;) {
        size_t start = k;
        if (skip_value(p, len, &k, 3) != 0)
            return -1;
        if (sc->n == sc->cap) {
            size_t cap = sc->cap ? sc->cap * 2 : 1024;
            struct span *v = realloc(sc->v, cap * sizeof(*v));
            if (v == NULL)
                return -1;
            sc->v = v;
            sc->cap = cap;
        }
        sc->v[sc->n++] = (struct span){start, k - start};
        map_read(sc->map, k - start);
        int r = scan_next(p, len, &k, ']');
        if (r < 0)
            return -1;
        if (r == 0) {
            sc->close = k - 1;
            *i = k;
            return 0;
        }
    }
}

/* Walks the members of the object whose '{' is at p[*i], at nesting <depth> (1: the top
 * level; 2: log). Returns 0 with *i past its '}', or -1. */
static int scan_object(const char *p, size_t len, size_t *i, int depth, struct scan *sc)
{
    size_t k = skip_ws(p, len, *i + 1);
    int r = 1;
    if (k < len && p[k] == '}')
        r = 0, k++;
    while (r == 1) {
        const char *key;
        size_t kl;
        if (scan_key(p, len, &k, &key, &kl) != 0)
            return -1;
        if (depth == 1 && kl == 3 && memcmp(key, "log", 3) == 0) {
            sc->found = 0; /* the last "log" is the one */
            int r2 = k < len && p[k] == '{' ? scan_object(p, len, &k, 2, sc)
                                            : skip_value(p, len, &k, depth);
            if (r2 != 0)
                return -1;
        } else if (depth == 2 && kl == 7 && memcmp(key, "entries", 7) == 0) {
            sc->found = 0; /* the last "entries" is the one */
            if (k < len && p[k] == '[') {
                if (scan_entries(p, len, &k, sc) != 0)
                    return -1;
                sc->found = 1;
            } else if (skip_value(p, len, &k, depth) != 0) {
                return -1;
            }
        } else if (skip_value(p, len, &k, depth) != 0) {
            return -1;
        }
        r = scan_next(p, len, &k, '}');
    }
    *i = k;
    return r;
}

/* Scans the document at <p> (after the byte order mark). Returns 0 when <sc> holds the spans
 * of log.entries, -1 when the document is left to the whole tree. */
static int scan(const char *p, size_t len, struct scan *sc)
{
    size_t k = skip_ws(p, len, 0);
    if (k >= len || p[k] != '{' || scan_object(p, len, &k, 1, sc) != 0)
        return -1;
    return skip_ws(p, len, k) == len && sc->found ? 0 : -1;
}

/* jansson's tree of the document at <p> with the entries array emptied ("entries":[]), or
 * NULL when it does not parse (the whole tree will say why) or is out of memory. */
static json_t *load_skeleton(const char *p, size_t len, const struct scan *sc)
{
    size_t head = sc->open + 1, tail = len - sc->close;
    char *s = malloc(head + tail);
    if (s == NULL)
        return NULL;
    memcpy(s, p, head);
    memcpy(s + head, p + sc->close, tail);
    json_error_t je;
    json_t *root = json_loadb(s, head + tail, JSON_ALLOW_NUL, &je);
    free(s);
    /* The scanner and jansson must agree on which array is log.entries. */
    json_t *entries = json_object_get(json_object_get(root, "log"), "entries");
    if (root != NULL && !(json_is_array(entries) && json_array_size(entries) == 0)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Where the entries come from: jansson's tree of the whole document, or spans of the input. */
struct source {
    json_t *entries;          /* the tree's log.entries (borrowed), or NULL: spans */
    const char *buf;          /* the input after the byte order mark */
    const struct span *spans; /* the entries' spans in <buf> */
    struct mapping *map;      /* the input's mapping, or NULL */
};

/* Entry <i> of <s>: a new reference (json_decref() it), or NULL with *<je> said: the span is
 * not JSON alone, or out of memory. */
static json_t *source_entry(const struct source *s, size_t i, json_error_t *je)
{
    if (s->entries != NULL)
        return json_incref(json_array_get(s->entries, i));
    map_read(s->map, s->spans[i].len);
    return json_loadb(s->buf + s->spans[i].off, s->spans[i].len, JSON_ALLOW_NUL | JSON_DECODE_ANY,
                      je);
}

/* ---------------------------------------------------------------- writing */

enum stmt {
    S_CAPTURE, S_CONN, S_UPSTREAM, S_EXCHANGE, S_BODY, S_CHANGE, S_AUTH, S_OWN_CONN, S_OWN_UP,
    S_TLS, S_N
};

static const char *const stmt_sql[S_N] = {
    "INSERT INTO capture (id, shunt_version, command_line, source, source_detail, started_us,"
    " stopped_us, body_limit, events_dropped) VALUES (1, ?1, ?2, ?8, ?3, ?4, ?5, ?6, ?7)",
    "INSERT INTO connections (id, client_port, opened_us, closer, close_how, tls)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT OR IGNORE INTO upstreams (id, conn_id, host, port, addr, remote_port, local_port,"
    " opened_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "INSERT INTO exchanges (id, conn_id, idx, upstream_id, upstream_reused, started_us, method,"
    " url, host, path, http_version, status, req_head, req_head_sent, resp_head, resp_head_sent,"
    " resp_interim, req_body_size, resp_body_size, req_bytes, resp_bytes, t_blocked, t_dns,"
    " t_connect, t_send, t_wait, t_receive, duration_us, error, flags, t_ssl) VALUES (?1, ?2, ?3,"
    " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,"
    " ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
    "INSERT INTO bodies (exchange_id, direction, data, truncated) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO changes (exchange_id, in_request, what, by) VALUES (?1, ?2, ?3, ?4)",
    "UPDATE connections SET auth_scheme = ?2 WHERE id = ?1 AND auth_scheme IS NULL",
    /* shunt's own rows, as recorded (written after the totals, which they already have) */
    "INSERT OR IGNORE INTO connections (id, client_addr, client_port, listen_addr, listen_port,"
    " opened_us, closed_us, closer, close_how, bytes_in, bytes_out, tls, tunnel, n_exchanges,"
    " auth_scheme) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    "INSERT OR IGNORE INTO upstreams (id, conn_id, host, port, addr, remote_port, local_port,"
    " opened_us, closed_us, closer, close_how, bytes_in, bytes_out) VALUES (?1, ?2, ?3, ?4, ?5,"
    " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* a TLS handshake of shunt's HAR (`_shunt.tls`, other_tls, log._shunt.tls), as recorded */
    "INSERT OR IGNORE INTO tls (id, conn_id, upstream_id, side, time_us, sni, alpn, version,"
    " cipher, cert_subject, cert_issuer, cert_san, cert_sha256, cert_not_before, cert_not_after,"
    " handshake_us, error, verify_result, insecure, close_bits) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
    " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
};

/* Totals filled in once every exchange is written: each connection's and upstream's, from
 * one pass over the exchanges each (GROUP BY,
 * then UPDATE ... FROM, SQLite 3.33): a correlated subquery per row was quadratic for the
 * upstreams, which have no index on exchanges.upstream_id (8 000 connections: 15 s). */
static const char totals_sql[] =
    "WITH t AS (SELECT conn_id AS id, count(*) AS n, sum(req_bytes) AS i, sum(resp_bytes) AS o"
    "           FROM exchanges GROUP BY conn_id)"
    " UPDATE connections SET n_exchanges = t.n, bytes_in = t.i, bytes_out = t.o"
    " FROM t WHERE t.id = connections.id;"
    "WITH t AS (SELECT upstream_id AS id, sum(req_bytes) AS o, sum(resp_bytes) AS i"
    "           FROM exchanges WHERE upstream_id IS NOT NULL GROUP BY upstream_id)"
    " UPDATE upstreams SET bytes_out = t.o, bytes_in = t.i FROM t WHERE t.id = upstreams.id;";

struct writer {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    int64_t max_body; /* the largest body kept */
};

/* Binds text, or NULL when <s> is NULL. */
static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
    if (s == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, s, (int)len, SQLITE_TRANSIENT);
}

static int bind_blob(sqlite3_stmt *st, int i, const struct dbuf *b)
{
    if (b->p == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_blob(st, i, b->p, (int)b->len, SQLITE_TRANSIENT);
}

/* Binds the integer at <key> of <obj>, or NULL when it is absent or not an integer. */
static int bind_json_int(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return sqlite3_bind_int64(st, i, json_integer_value(v));
    return sqlite3_bind_null(st, i);
}

static int bind_json_text(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
    const char *s = NULL;
    size_t l = 0;
    if (get_str(obj, key, &s, &l) != 1)
        s = NULL;
    return bind_text(st, i, s, l);
}

/* Runs <st> once (bound already) and resets it. Returns the SQLite code. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* An HTTP version for a rebuilt start line: HTTP/1.x in capitals as on the wire (Chrome
 * writes "http/1.1"), other tokens as the HAR has them, "HTTP/1.1" when the HAR has none. */
static void add_version(struct dbuf *b, const char *v, size_t len)
{
    if (v == NULL || len == 0)
        dbuf_str(b, "HTTP/1.1");
    else if (len == 8 && strncasecmp(v, "http/1.", 7) == 0)
        dbuf_add(b, (char[]){'H', 'T', 'T', 'P', '/', '1', '.', v[7]}, 8);
    else
        dbuf_field(b, v, len);
}

/* Adds "name: value\r\n" for each header of <arr> but HTTP/2 pseudo-headers, then "\r\n". */
static void add_fields(struct dbuf *b, json_t *arr)
{
    for (size_t k = 0; k < json_array_size(arr); k++) {
        json_t *h = json_array_get(arr, k);
        const char *n = "", *v = "";
        size_t nl = 0, vl = 0;
        (void)get_str(h, "name", &n, &nl);
        (void)get_str(h, "value", &v, &vl);
        if (nl > 0 && n[0] == ':')
            continue;
        dbuf_field(b, n, nl);
        dbuf_str(b, ": ");
        dbuf_field(b, v, vl);
        dbuf_str(b, "\r\n");
    }
    dbuf_str(b, "\r\n");
}

/* A text field of the HAR as bytes: decoded from base64 when <enc> says so. */
static int text_bytes(json_t *obj, const char *key, const char *enc_key, struct dbuf *out,
                      int *present)
{
    const char *s, *enc;
    size_t l, el;
    *present = get_str(obj, key, &s, &l) == 1;
    if (!*present)
        return 0;
    if (get_str(obj, enc_key, &enc, &el) == 1 && strcasecmp(enc, "base64") == 0)
        return base64_decode(s, l, out);
    dbuf_add(out, s, l);
    return out->oom ? -1 : 0;
}

/* The first header named <name> of <arr>, or NULL. */
static const char *header_value(json_t *arr, const char *name, size_t *len)
{
    for (size_t k = 0; k < json_array_size(arr); k++) {
        json_t *h = json_array_get(arr, k);
        const char *n, *v;
        size_t nl, vl;
        if (get_str(h, "name", &n, &nl) == 1 && strcasecmp(n, name) == 0 &&
            get_str(h, "value", &v, &vl) == 1) {
            *len = vl;
            return v;
        }
    }
    return NULL;
}

static int64_t jint(json_t *obj, const char *key, int64_t dflt)
{
    double d;
    if (get_num(obj, key, &d) != 1 || d < -1 || d > 9.0e15)
        return dflt;
    return (int64_t)d;
}

/* Writes exchange <e> on connection <conn_id> (its <idx>-th) with upstream <up_id> (0: none). */
static int write_exchange(struct importer *im, struct writer *w, const struct ent *e,
                          const struct shunt_har_conn_hint *hint, int64_t conn_id,
                          int64_t up_id)
{
    json_t *req = json_object_get(e->j, "request"), *resp = json_object_get(e->j, "response");
    json_t *sh = im->producer == SHUNT_HAR_SHUNT ? json_object_get(e->j, "_shunt") : NULL;
    json_t *content = json_object_get(resp, "content");
    json_t *pd = json_object_get(req, "postData");
    json_t *rq_hdrs = json_object_get(req, "headers"), *rs_hdrs = json_object_get(resp, "headers");
    struct dbuf rq = {0}, rs = {0}, rq_sent = {0}, rs_sent = {0}, interim = {0}, qb = {0}, sb = {0};
    const char *method = "", *ver = NULL, *rver = NULL, *stext = NULL;
    size_t mlen = 0, vlen = 0, rvlen = 0, stlen = 0;
    int rc = SHUNT_EPARSE, status = (int)json_number_value(json_object_get(resp, "status"));
    int q_present = 0, s_present = 0;
    (void)get_str(req, "method", &method, &mlen);
    if (get_str(req, "httpVersion", &ver, &vlen) != 1 || vlen == 0)
        ver = NULL;
    if (get_str(resp, "httpVersion", &rver, &rvlen) != 1 || rvlen == 0)
        rver = ver, rvlen = vlen;
    /* One spelling per version (docs/har.md), in the column and the rebuilt heads alike. */
    const char *vn = version_name(ver, vlen), *rvn = version_name(rver, rvlen);
    if (vn != NULL)
        ver = vn, vlen = strlen(vn);
    if (rvn != NULL)
        rver = rvn, rvlen = strlen(rvn);
    if (get_str(resp, "statusText", &stext, &stlen) != 1)
        stext = "", stlen = 0;

    /* Heads: shunt's own as recorded; otherwise rebuilt from the HAR's fields. */
    if (sh != NULL) {
        static const struct {
            const char *key, *enc;
            int which;
        } heads[] = {
            {"request_head_received", "request_head_received_encoding", 0},
            {"response_head_received", "response_head_received_encoding", 1},
            {"request_head_sent", "request_head_sent_encoding", 2},
            {"response_head_sent", "response_head_sent_encoding", 3},
            {"response_interim", "response_interim_encoding", 4},
        };
        struct dbuf *outs[] = {&rq, &rs, &rq_sent, &rs_sent, &interim};
        for (size_t k = 0; k < 5; k++) {
            int present;
            if (text_bytes(sh, heads[k].key, heads[k].enc, outs[heads[k].which], &present) != 0) {
                rc = fail(im, "log.entries[%zu]._shunt.%s: invalid base64", e->src, heads[k].key);
                goto done;
            }
        }
    } else {
        dbuf_field(&rq, method, mlen);
        dbuf_str(&rq, " ");
        if (strcasecmp(method, "CONNECT") == 0 && e->authority != NULL)
            dbuf_field(&rq, e->authority, e->authority_len);
        else if (e->path != NULL)
            e->path_len ? dbuf_field(&rq, e->path, e->path_len) : dbuf_str(&rq, "/");
        else
            dbuf_field(&rq, e->url, strlen(e->url));
        dbuf_str(&rq, " ");
        add_version(&rq, ver, vlen);
        dbuf_str(&rq, "\r\n");
        add_fields(&rq, rq_hdrs);
        if (status > 0) {
            char code[16];
            add_version(&rs, rver, rvlen);
            snprintf(code, sizeof(code), " %03d ", status);
            dbuf_str(&rs, code);
            dbuf_field(&rs, stext, stlen);
            dbuf_str(&rs, "\r\n");
            add_fields(&rs, rs_hdrs);
        }
    }

    /* Bodies. */
    if (pd != NULL && text_bytes(pd, "text", "_encoding", &qb, &q_present) != 0) {
        rc = fail(im, "log.entries[%zu].request.postData.text: invalid base64", e->src);
        goto done;
    }
    if (content != NULL && text_bytes(content, "text", "encoding", &sb, &s_present) != 0) {
        rc = fail(im, "log.entries[%zu].response.content.text: invalid base64", e->src);
        goto done;
    }
    if (rq.oom || rs.oom || qb.oom || sb.oom) {
        rc = fail(im, "out of memory");
        goto done;
    }
    int64_t req_body = jint(req, "bodySize", -1), req_hs = jint(req, "headersSize", -1);
    int64_t resp_hs = jint(resp, "headersSize", -1), resp_bs = jint(resp, "bodySize", -1);
    int64_t csize = jint(content, "size", -1);
    int64_t req_body_size = req_body >= 0 ? req_body : (int64_t)qb.len;
    int64_t resp_body_size;
    size_t cel = 0;
    if (sh != NULL || header_value(rs_hdrs, "Content-Encoding", &cel) == NULL)
        resp_body_size = csize >= 0 ? csize : resp_bs >= 0 ? resp_bs : (int64_t)sb.len;
    else /* content.size is the decoded size; the capture keeps the body as on the wire */
        resp_body_size = resp_bs >= 0 ? resp_bs : csize >= 0 ? csize : (int64_t)sb.len;
    int64_t req_bytes, resp_bytes;
    if (sh != NULL) {
        req_bytes = (req_hs >= 0 ? req_hs : 0) + req_body_size;
        resp_bytes = resp_hs >= 0 && resp_bs >= 0 ? resp_hs + resp_bs : 0;
    } else {
        req_bytes = (req_hs >= 0 ? req_hs : (int64_t)rq.len) + req_body_size;
        resp_bytes = status > 0 ? (resp_hs >= 0 ? resp_hs : (int64_t)rs.len) +
                                      (resp_bs >= 0 ? resp_bs : resp_body_size)
                                : 0;
    }
    json_t *qtr = pd ? json_object_get(pd, "_truncated") : NULL;
    json_t *str = content ? json_object_get(content, "_truncated") : NULL;
    int q_trunc = json_is_true(qtr) || (q_present && (int64_t)qb.len < req_body_size);
    int s_trunc = json_is_true(str) ||
                  (s_present && sh == NULL && cel == 0 && (int64_t)sb.len < resp_body_size);

    const char *error = NULL;
    size_t elen = 0;
    json_t *errsrc = sh != NULL ? sh : resp;
    if (get_str(errsrc, sh != NULL ? "error" : "_error", &error, &elen) != 1 || elen == 0)
        error = NULL;
    int64_t flags;
    if (sh != NULL && json_is_integer(json_object_get(sh, "flags"))) {
        flags = json_integer_value(json_object_get(sh, "flags"));
    } else {
        /* No response and no error: the request was still in flight when the producer
         * wrote the file (Chrome and mitmproxy write it so): pending, flag 16. */
        flags = (error ? 2 : 0) | (q_trunc || s_trunc ? 4 : 0) |
                (strcasecmp(method, "CONNECT") == 0 || status == 101 ? 8 : 0) |
                (status == 0 && error == NULL ? 16 : 0);
    }

    sqlite3_stmt *st = w->st[S_EXCHANGE];
    json_t *shid = sh ? json_object_get(sh, "id") : NULL;
    sqlite3_bind_int64(st, 2, conn_id);
    sqlite3_bind_int64(st, 3, sh && json_is_integer(json_object_get(sh, "idx"))
                                  ? json_integer_value(json_object_get(sh, "idx"))
                                  : (int64_t)hint->idx);
    if (up_id > 0)
        sqlite3_bind_int64(st, 4, up_id);
    /* Reused: what timings.connect says (docs/har.md); unknown stays NULL unless an earlier
     * exchange on the same connection proves it. */
    if (sh != NULL)
        bind_json_int(st, 5, sh, "upstream_reused");
    else if (up_id > 0 && hint->opens >= 0)
        sqlite3_bind_int(st, 5, hint->opens == 0);
    else if (up_id > 0 && hint->idx > 1)
        sqlite3_bind_int(st, 5, 1);
    sqlite3_bind_int64(st, 6, e->start_us);
    bind_text(st, 7, method, mlen);
    bind_text(st, 8, e->url, strlen(e->url));
    bind_text(st, 9, e->host, e->host ? strlen(e->host) : 0);
    if (e->path != NULL)
        e->path_len ? bind_text(st, 10, e->path, e->path_len) : bind_text(st, 10, "/", 1);
    bind_text(st, 11, ver, vlen);
    if (status > 0)
        sqlite3_bind_int(st, 12, status);
    bind_blob(st, 13, &rq);
    bind_blob(st, 14, &rq_sent);
    bind_blob(st, 15, &rs);
    bind_blob(st, 16, &rs_sent);
    bind_blob(st, 17, &interim);
    sqlite3_bind_int64(st, 18, req_body_size);
    sqlite3_bind_int64(st, 19, resp_body_size);
    sqlite3_bind_int64(st, 20, req_bytes);
    sqlite3_bind_int64(st, 21, resp_bytes);
    for (int k = 0; k < 6; k++)
        sqlite3_bind_int64(st, 22 + k, e->t[k]);
    sqlite3_bind_int64(st, 28, e->time_us);
    bind_text(st, 29, error, elen);
    sqlite3_bind_int64(st, 30, flags);
    sqlite3_bind_int64(st, 31, e->t_ssl);
    /* shunt's own HAR: the row as recorded, where the HAR's fields had to bend it (a status
     * 0 for none, a method or URL the capture did not have, sizes HAR counts otherwise). */
    json_t *row = sh ? json_object_get(sh, "exchange") : NULL;
    if (json_is_object(row)) {
        static const struct {
            const char *key;
            int col, is_text;
        } cols[] = {
            {"method", 7, 1}, {"url", 8, 1}, {"host", 9, 1}, {"path", 10, 1},
            {"http_version", 11, 1}, {"status", 12, 0}, {"req_body_size", 18, 0},
            {"resp_body_size", 19, 0}, {"req_bytes", 20, 0}, {"resp_bytes", 21, 0},
        };
        for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
            json_t *v = json_object_get(row, cols[k].key);
            if (v == NULL)
                continue; /* not written: the HAR's value stands */
            if (cols[k].is_text)
                bind_json_text(st, cols[k].col, row, cols[k].key);
            else if (json_is_integer(v) || (json_is_null(v) && cols[k].col == 12))
                bind_json_int(st, cols[k].col, row, cols[k].key);
        }
    }
    int src = SQLITE_CONSTRAINT;
    if (json_is_integer(shid) && json_integer_value(shid) > 0) {
        sqlite3_bind_int64(st, 1, json_integer_value(shid));
        src = sqlite3_step(st);
        sqlite3_reset(st);
    }
    if (src == SQLITE_CONSTRAINT) { /* no id of its own, or taken: the next free one */
        sqlite3_bind_null(st, 1);
        src = sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_clear_bindings(st);
    if (src != SQLITE_DONE)
        goto sqlfail;
    int64_t xid = sqlite3_last_insert_rowid(w->db);

    struct {
        struct dbuf *b;
        int present, truncated;
    } bodies[2] = {{&qb, q_present, q_trunc}, {&sb, s_present, s_trunc}};
    for (int dir = 0; dir < 2; dir++) {
        if (!bodies[dir].present || bodies[dir].b->len == 0)
            continue;
        st = w->st[S_BODY];
        sqlite3_bind_int64(st, 1, xid);
        sqlite3_bind_int(st, 2, dir);
        sqlite3_bind_blob(st, 3, bodies[dir].b->p, (int)bodies[dir].b->len, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, bodies[dir].truncated);
        if (run(st) != SQLITE_OK)
            goto sqlfail;
        if ((int64_t)bodies[dir].b->len > w->max_body)
            w->max_body = (int64_t)bodies[dir].b->len;
    }

    json_t *changes = sh ? json_object_get(sh, "changes") : NULL;
    for (size_t k = 0; k < json_array_size(changes); k++) {
        json_t *c = json_array_get(changes, k);
        const char *what, *by;
        size_t wl, bl;
        if (get_str(c, "what", &what, &wl) != 1 || get_str(c, "by", &by, &bl) != 1) {
            rc = fail(im, "log.entries[%zu]._shunt.changes[%zu]: what and by must be strings",
                      e->src, k);
            goto done;
        }
        st = w->st[S_CHANGE];
        sqlite3_bind_int64(st, 1, xid);
        sqlite3_bind_int(st, 2, json_is_true(json_object_get(c, "in_request")));
        bind_text(st, 3, what, wl);
        bind_text(st, 4, by, bl);
        if (run(st) != SQLITE_OK)
            goto sqlfail;
    }

    /* The connection's auth scheme: the first token of the first Authorization seen. */
    size_t al = 0;
    const char *auth = header_value(rq_hdrs, "Authorization", &al);
    if (auth == NULL)
        auth = header_value(rq_hdrs, "Proxy-Authorization", &al);
    if (auth != NULL) {
        /* http/auth.h's reading, the recorder's: "Negotiate," is "Negotiate" */
        struct shunt_slice sc = shunt_http_auth_scheme(shunt_slice_make(auth, al), NULL);
        auth = sc.base ? sc.base : auth;
        size_t tl = sc.len;
        st = w->st[S_AUTH];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_text(st, 2, auth, tl);
        if (run(st) != SQLITE_OK)
            goto sqlfail;
    }
    rc = 0;
    goto done;
sqlfail:
    rc = fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
done:
    dbuf_free(&rq);
    dbuf_free(&rs);
    dbuf_free(&rq_sent);
    dbuf_free(&rs_sent);
    dbuf_free(&interim);
    dbuf_free(&qb);
    dbuf_free(&sb);
    return rc;
}

/* Inserts connection number <c> (first entry <e>) and returns its id in *<id>. */
static int write_conn(struct importer *im, struct writer *w, const struct ent *e, int64_t *id)
{
    json_t *sh = im->producer == SHUNT_HAR_SHUNT ? json_object_get(e->j, "_shunt") : NULL;
    sqlite3_stmt *st = w->st[S_CONN];
    int rc = SQLITE_CONSTRAINT;
    for (int attempt = 0; attempt < 2 && rc == SQLITE_CONSTRAINT; attempt++) {
        json_t *cid = sh ? json_object_get(sh, "conn_id") : NULL;
        if (attempt == 0 && !(json_is_integer(cid) && json_integer_value(cid) > 0))
            continue;
        if (attempt == 0)
            sqlite3_bind_int64(st, 1, json_integer_value(cid));
        else
            sqlite3_bind_null(st, 1);
        if (sh != NULL) {
            bind_json_int(st, 2, sh, "client_port");
            bind_json_text(st, 4, sh, "closer");
            bind_json_text(st, 5, sh, "close_how");
        } else if (im->producer == SHUNT_HAR_FIDDLER && e->conn_field != NULL) {
            char *end;
            long p = strtol(e->conn_field, &end, 10);
            if (*end == '\0' && p > 0 && p <= 65535)
                sqlite3_bind_int64(st, 2, p);
        }
        sqlite3_bind_int64(st, 3, e->start_us);
        sqlite3_bind_int(st, 6, e->tls);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (rc != SQLITE_DONE)
        return fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
    *id = sqlite3_last_insert_rowid(w->db);
    return 0;
}

/* Inserts the upstream of <e> on connection <conn_id> with id <want> (0: the next free one)
 * unless it exists; returns its id in *<id>. */
static int write_upstream(struct importer *im, struct writer *w, const struct ent *e,
                          int64_t conn_id, int64_t want, int64_t *id)
{
    json_t *sh = im->producer == SHUNT_HAR_SHUNT ? json_object_get(e->j, "_shunt") : NULL;
    sqlite3_stmt *st = w->st[S_UPSTREAM];
    const char *addr;
    size_t al;
    if (want > 0)
        sqlite3_bind_int64(st, 1, want);
    sqlite3_bind_int64(st, 2, conn_id);
    bind_text(st, 3, e->host, e->host ? strlen(e->host) : 0);
    if (e->port > 0) {
        sqlite3_bind_int(st, 4, e->port);
        sqlite3_bind_int(st, 6, e->port);
    }
    if (get_str(e->j, "serverIPAddress", &addr, &al) == 1 && al > 0) {
        if (al > 2 && addr[0] == '[' && addr[al - 1] == ']') /* some write [v6] */
            addr++, al -= 2;
        bind_text(st, 5, addr, al);
    }
    if (sh != NULL)
        bind_json_int(st, 7, sh, "upstream_port");
    sqlite3_bind_int64(st, 8, e->start_us);
    if (run(st) != SQLITE_OK)
        return fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
    *id = want > 0 ? want : sqlite3_last_insert_rowid(w->db);
    return 0;
}

/* A row of shunt's own (`_shunt.connection` or `_shunt.upstream`) kept until the totals are
 * made: the capture's row has totals of its own (bytes of tunnels, of a body the exchange
 * did not count), which the sums over the exchanges must not replace. */
struct own_row {
    int64_t id, conn_id;
    json_t *row; /* a reference */
};

/* A growing list of own_row. */
struct own_rows {
    struct own_row *v;
    size_t n, cap;
};

/* Appends <row> (a new reference is taken) with <id> on connection <conn_id>. Returns 0, or
 * -1 when out of memory. */
static int own_push(struct own_rows *o, int64_t id, int64_t conn_id, json_t *row)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct own_row *v = realloc(o->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = (struct own_row){id, conn_id, json_incref(row)};
    return 0;
}

static void own_dispose(struct own_rows *o)
{
    for (size_t k = 0; k < o->n; k++)
        json_decref(o->v[k].row);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

/* The integer at <key> of <obj> when it is one and > 0, else 0: an id of shunt's. */
static int64_t own_id(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* Keeps the upstream rows of the array <a> (objects with an id; others are ignored) on
 * connection <conn_id>, or on their own `conn_id` when <conn_id> is 0. */
static int own_upstreams(struct own_rows *o, json_t *a, int64_t conn_id)
{
    for (size_t k = 0; k < json_array_size(a); k++) {
        json_t *r = json_array_get(a, k);
        int64_t id = own_id(r, "id"), c = conn_id ? conn_id : own_id(r, "conn_id");
        if (json_is_object(r) && id > 0 && c > 0 && own_push(o, id, c, r) != 0)
            return -1;
    }
    return 0;
}

/* Binds the integer <key> of <row> to parameter <i>, or <dflt> when it is not an integer (a
 * NOT NULL column). */
static void bind_int_or(sqlite3_stmt *st, int i, json_t *row, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(row, key);
    sqlite3_bind_int64(st, i, json_is_integer(v) ? json_integer_value(v) : dflt);
}

/* Inserts the tls rows kept in <own> (<n>), each on its conn_id (the connection the import
 * gave the entry that carried it). A row without a valid side is not one of shunt's. */
static int write_tls(struct importer *im, struct writer *w, const struct own_row *own, size_t n)
{
    static const char *const text[] = {"sni", "alpn", "version", "cipher", "cert_subject",
                                       "cert_issuer", "cert_san", "cert_sha256"};
    for (size_t k = 0; k < n; k++) {
        json_t *r = own[k].row, *side = json_object_get(r, "side");
        if (!json_is_integer(side) || (json_integer_value(side) != 0 &&
                                       json_integer_value(side) != 1))
            continue;
        sqlite3_stmt *st = w->st[S_TLS];
        sqlite3_bind_int64(st, 1, own[k].id);
        sqlite3_bind_int64(st, 2, own[k].conn_id);
        bind_json_int(st, 3, r, "upstream_id");
        sqlite3_bind_int64(st, 4, json_integer_value(side));
        bind_json_int(st, 5, r, "time_us");
        for (int i = 0; i < 8; i++)
            bind_json_text(st, 6 + i, r, text[i]);
        bind_json_int(st, 14, r, "cert_not_before");
        bind_json_int(st, 15, r, "cert_not_after");
        bind_json_int(st, 16, r, "handshake_us");
        bind_json_text(st, 17, r, "error");
        bind_json_int(st, 18, r, "verify_result");
        bind_int_or(st, 19, r, "insecure", 0);
        bind_json_int(st, 20, r, "close_bits");
        if (run(st) != SQLITE_OK)
            return fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
    }
    return 0;
}

/* Keeps the tls rows of the array <a> (objects with an id; others are ignored) on connection
 * <conn_id>, or on their own `conn_id` when <conn_id> is 0. */
static int own_tls(struct own_rows *o, json_t *a, int64_t conn_id)
{
    for (size_t k = 0; k < json_array_size(a); k++) {
        json_t *r = json_array_get(a, k);
        int64_t id = own_id(r, "id"), c = conn_id ? conn_id : own_id(r, "conn_id");
        if (json_is_object(r) && id > 0 && c > 0 && own_push(o, id, c, r) != 0)
            return -1;
    }
    return 0;
}

/* Inserts the rows kept in <own> (<n>): connections (<up> 0) or upstreams (1). */
static int write_own(struct importer *im, struct writer *w, const struct own_row *own, size_t n,
                     int up)
{
    for (size_t k = 0; k < n; k++) {
        json_t *r = own[k].row;
        sqlite3_stmt *st = w->st[up ? S_OWN_UP : S_OWN_CONN];
        sqlite3_bind_int64(st, 1, own[k].id);
        if (!up) {
            bind_json_text(st, 2, r, "client_addr");
            bind_json_int(st, 3, r, "client_port");
            bind_json_text(st, 4, r, "listen_addr");
            bind_json_int(st, 5, r, "listen_port");
            bind_json_int(st, 6, r, "opened_us");
            bind_json_int(st, 7, r, "closed_us");
            bind_json_text(st, 8, r, "closer");
            bind_json_text(st, 9, r, "close_how");
            bind_json_int(st, 10, r, "bytes_in");
            bind_json_int(st, 11, r, "bytes_out");
            bind_int_or(st, 12, r, "tls", 0);
            bind_int_or(st, 13, r, "tunnel", 0);
            bind_int_or(st, 14, r, "n_exchanges", 0);
            bind_json_text(st, 15, r, "auth_scheme");
        } else {
            sqlite3_bind_int64(st, 2, own[k].conn_id);
            bind_json_text(st, 3, r, "host");
            bind_json_int(st, 4, r, "port");
            bind_json_text(st, 5, r, "addr");
            bind_json_int(st, 6, r, "remote_port");
            bind_json_int(st, 7, r, "local_port");
            bind_json_int(st, 8, r, "opened_us");
            bind_json_int(st, 9, r, "closed_us");
            bind_json_text(st, 10, r, "closer");
            bind_json_text(st, 11, r, "close_how");
            bind_json_int(st, 12, r, "bytes_in");
            bind_json_int(st, 13, r, "bytes_out");
        }
        if (run(st) != SQLITE_OK)
            return fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
    }
    return 0;
}

/* Writes everything (pass 2): each entry of <src> parsed again in turn, in the order of
 * <ents>, sorted; <hints> parallel to them. */
static int write_all(struct importer *im, struct writer *w, const struct source *src,
                     struct ent *ents, struct shunt_har_conn_hint *hints, size_t n,
                     size_t n_conns, json_t *lsh)
{
    int64_t *conn_ids = calloc(n_conns + 1, sizeof(*conn_ids));
    char **ukeys = calloc(n + 1, sizeof(*ukeys));
    struct own_row *own_c = calloc(n_conns + 1, sizeof(*own_c));
    struct own_rows own_u = {0}, lonely_c = {0}, own_t = {0};
    size_t n_own_c = 0;
    struct smap ups = {0};
    struct ent *e = NULL;
    int rc = SHUNT_ENOMEM;
    if (conn_ids == NULL || ukeys == NULL || own_c == NULL || smap_init(&ups, n) != 0) {
        rc = fail(im, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_decref(e ? e->j : NULL);
        if (e != NULL)
            e->j = NULL;
        e = &ents[i];
        e->j = source_entry(src, e->src, &je);
        if (e->j == NULL) { /* it parsed in pass 1: short of memory */
            rc = fail(im, "log.entries[%zu]: %s", e->src,
                      json_error_code(&je) == json_error_out_of_memory ? "out of memory"
                                                                       : je.text);
            goto done;
        }
        size_t c = hints[i].conn;
        json_t *sh = im->producer == SHUNT_HAR_SHUNT ? json_object_get(e->j, "_shunt") : NULL;
        json_t *cid = json_object_get(sh, "conn_id"), *crow = json_object_get(sh, "connection");
        if (conn_ids[c] == 0 && json_is_integer(cid) && json_integer_value(cid) > 0 &&
            (json_is_object(crow) || json_is_null(crow))) {
            /* shunt's row as recorded, kept for after the totals; none when the capture had
             * none (its recorder dropped it): then none is invented. */
            conn_ids[c] = json_integer_value(cid);
            if (json_is_object(crow))
                own_c[n_own_c++] = (struct own_row){conn_ids[c], 0, json_incref(crow)};
        } else if (conn_ids[c] == 0 && (rc = write_conn(im, w, e, &conn_ids[c])) != 0) {
            goto done;
        }
        int64_t up = 0;
        if (im->producer == SHUNT_HAR_SHUNT) {
            json_t *u = json_object_get(sh, "upstream_id"), *urow = json_object_get(sh, "upstream");
            if (json_is_integer(u) && json_integer_value(u) > 0 &&
                (json_is_object(urow) || json_is_null(urow))) {
                up = json_integer_value(u);
                ukeys[i] = malloc(32);
                if (ukeys[i] == NULL) {
                    rc = fail(im, "out of memory");
                    goto done;
                }
                snprintf(ukeys[i], 32, "%" PRId64, up);
                size_t s = smap_slot(&ups, ukeys[i]);
                if (ups.keys[s] == NULL) {
                    ups.keys[s] = ukeys[i];
                    if (json_is_object(urow) && own_push(&own_u, up, conn_ids[c], urow) != 0) {
                        rc = fail(im, "out of memory");
                        goto done;
                    }
                }
            } else if (json_is_integer(u) && json_integer_value(u) > 0 &&
                       (rc = write_upstream(im, w, e, conn_ids[c], json_integer_value(u), &up)) !=
                           0) {
                goto done;
            }
        } else if (e->host != NULL) {
            /* One upstream per origin on a connection, as shunt records it. */
            size_t kl = strlen(e->origin) + 24;
            ukeys[i] = malloc(kl);
            if (ukeys[i] == NULL) {
                rc = fail(im, "out of memory");
                goto done;
            }
            snprintf(ukeys[i], kl, "%" PRId64 "|%s", conn_ids[c], e->origin);
            size_t s = smap_slot(&ups, ukeys[i]);
            if (ups.keys[s] != NULL) {
                up = (int64_t)ups.vals[s];
            } else {
                if ((rc = write_upstream(im, w, e, conn_ids[c], 0, &up)) != 0)
                    goto done;
                ups.keys[s] = ukeys[i];
                ups.vals[s] = (size_t)up;
            }
        }
        /* The upstreams of the connection that no exchange references (the CONNECT's, one a
         * 502 came after), on its first exchange; written after the others (INSERT OR
         * IGNORE: an id an exchange's row has already is not replaced). */
        if (im->producer == SHUNT_HAR_SHUNT &&
            own_upstreams(&own_u, json_object_get(sh, "other_upstreams"), conn_ids[c]) != 0) {
            rc = fail(im, "out of memory");
            goto done;
        }
        /* Its TLS handshakes: the client's, its upstream's, and the connection's others. */
        if (im->producer == SHUNT_HAR_SHUNT) {
            json_t *t = json_object_get(sh, "tls"), *one = json_array();
            json_t *tc = json_object_get(t, "client"), *tu = json_object_get(t, "upstream");
            if (one == NULL || (tc != NULL && json_array_append(one, tc) != 0) ||
                (tu != NULL && json_array_append(one, tu) != 0) ||
                own_tls(&own_t, one, conn_ids[c]) != 0 ||
                own_tls(&own_t, json_object_get(sh, "other_tls"), conn_ids[c]) != 0) {
                json_decref(one);
                rc = fail(im, "out of memory");
                goto done;
            }
            json_decref(one);
        }
        if ((rc = write_exchange(im, w, e, &hints[i], conn_ids[c], up)) != 0)
            goto done;
    }
    /* A whole shunt export's rows that no entry carries: connections without an exchange and
     * their upstreams. */
    json_t *lc = json_object_get(lsh, "connections");
    for (size_t k = 0; k < json_array_size(lc); k++) {
        json_t *r = json_array_get(lc, k);
        int64_t id = own_id(r, "id");
        if (json_is_object(r) && id > 0 && own_push(&lonely_c, id, 0, r) != 0) {
            rc = fail(im, "out of memory");
            goto done;
        }
    }
    if (own_upstreams(&own_u, json_object_get(lsh, "upstreams"), 0) != 0 ||
        own_tls(&own_t, json_object_get(lsh, "tls"), 0) != 0) {
        rc = fail(im, "out of memory");
        goto done;
    }
    if (sqlite3_exec(w->db, totals_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(im, "cannot write the capture: %s", sqlite3_errmsg(w->db));
        goto done;
    }
    if ((rc = write_own(im, w, own_c, n_own_c, 0)) != 0 ||
        (rc = write_own(im, w, lonely_c.v, lonely_c.n, 0)) != 0 ||
        (rc = write_own(im, w, own_u.v, own_u.n, 1)) != 0 ||
        (rc = write_tls(im, w, own_t.v, own_t.n)) != 0)
        goto done;
    rc = 0;
done:
    if (e != NULL) {
        json_decref(e->j);
        e->j = NULL;
    }
    smap_dispose(&ups);
    for (size_t i = 0; ukeys != NULL && i < n; i++)
        free(ukeys[i]);
    for (size_t k = 0; k < n_own_c; k++)
        json_decref(own_c[k].row);
    own_dispose(&own_u);
    own_dispose(&lonely_c);
    own_dispose(&own_t);
    free(own_c);
    free(ukeys);
    free(conn_ids);
    return rc;
}

/* ---------------------------------------------------------------- the entry points */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parses <buf> into a JSON document, with the error said as a HAR reader would. */
static json_t *load_json(struct importer *im, const char *buf, size_t len)
{
    /* A UTF-8 byte order mark, which Windows tools (Fiddler, .NET's writers) put first, is
     * no part of the JSON (RFC 8259 8.1 lets a parser ignore it). */
    size_t bom = 0;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        bom = 3;
        buf += 3;
        len -= 3;
    }
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len) {
        fail(im, "empty, not a HAR");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL, &je);
    if (root != NULL)
        return root;
    enum json_error_code code = json_error_code(&je);
    int cut = code == json_error_premature_end_of_input ||
              (code == json_error_invalid_syntax && je.position >= (int)len);
    /* where the error is, in the file as given: past the byte order mark skipped above */
    je.position += (int)bom;
    if (je.line == 1)
        je.column += (int)(bom > 0);
    if (code == json_error_out_of_memory)
        fail(im, "out of memory");
    else if (cut)
        fail(im, "truncated JSON: %s at line %d column %d (byte %d)", je.text, je.line,
             je.column, je.position);
    else
        fail(im, "not JSON: %s at line %d column %d (byte %d)", je.text, je.line, je.column,
             je.position);
    return NULL;
}

/* Frees what pass 1 kept of <n> entries <ents>, and <ents>. */
static void free_ents(struct ent *ents, size_t n)
{
    for (size_t i = 0; ents != NULL && i < n; i++) {
        free(ents[i].cid);
        free(ents[i].conn_field);
        free(ents[i].url);
        free(ents[i].key);
        free(ents[i].origin);
        free(ents[i].host);
    }
    free(ents);
}

/* Imports as shunt_har_import_buf(). <whole_tree> 1 reads jansson's tree of the whole
 * document, the reference that the streamed reading (0: when the scanner can) must equal.
 * <map> describes <buf> when it is a read-only mapping of a file, else NULL. */
static int import_buf(sqlite3 *db, const char *buf, size_t len,
                      const struct shunt_har_import_opts *o, struct shunt_har_import_info *info,
                      char *err, size_t err_len, int whole_tree, struct mapping *map)
{
    struct importer im = {err, err_len, SHUNT_HAR_OTHER, 0};
    struct writer w = {db, {0}, 0};
    struct scan sc = {.map = map};
    struct source src = {.map = map};
    struct ent *ents = NULL;
    struct shunt_har_conn_hint *hints = NULL;
    size_t n = 0, bad;
    int rc = SHUNT_EPARSE, began = 0;
    json_t *root = NULL;
    memset(info, 0, sizeof(*info));
    if (len > SHUNT_HAR_MAX_INPUT)
        return fail(&im, "over %zu bytes, too large to import", SHUNT_HAR_MAX_INPUT);
    /* the byte order mark that load_json() skips */
    size_t bom = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
again:
    if (!whole_tree && scan(buf + bom, len - bom, &sc) == 0)
        root = load_skeleton(buf + bom, len - bom, &sc);
    if (root != NULL) {
        src.buf = buf + bom;
        src.spans = sc.v;
        n = sc.n;
    } else {
        whole_tree = 1;
        root = load_json(&im, buf, len);
        if (root == NULL)
            goto done;
    }
    json_t *log = json_object_get(root, "log");
    if (!json_is_object(root)) {
        fail(&im, "not a HAR: the top level is not an object");
        goto done;
    }
    if (!json_is_object(log)) {
        fail(&im, "not a HAR: %s", log ? "\"log\" is not an object" : "no \"log\" object");
        goto done;
    }
    json_t *entries = json_object_get(log, "entries");
    if (!json_is_array(entries)) {
        fail(&im, "not a HAR: log.entries is %s", entries ? "not an array" : "missing");
        goto done;
    }
    if (whole_tree) {
        src.entries = entries;
        n = json_array_size(entries);
    }

    /* Who wrote it, early: read_entry() takes shunt's own facts from a shunt HAR. A creator
     * of the wrong type is refused after pass 1, as before. */
    {
        const char *cn = NULL;
        size_t cl = 0;
        if (get_str(json_object_get(log, "creator"), "name", &cn, &cl) == 1 && strlen(cn) == cl)
            im.producer = shunt_har_producer_of(cn);
    }

    /* Pass 1. Every entry is parsed, even past one that read_entry() refuses: a syntax error
     * anywhere comes first, as when the whole document is parsed at once. */
    ents = calloc(n + 1, sizeof(*ents));
    hints = calloc(n + 1, sizeof(*hints));
    if (ents == NULL || hints == NULL) {
        fail(&im, "out of memory");
        goto done;
    }
    bad = n; /* the first entry read_entry() refused (its reason in err); n: none */
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *j = source_entry(&src, i, &je);
        if (j == NULL && json_error_code(&je) == json_error_out_of_memory) {
            fail(&im, "out of memory");
            goto done;
        }
        if (j == NULL) { /* not JSON alone: the whole tree says where and why */
            free_ents(ents, n);
            free(hints);
            json_decref(root);
            ents = NULL, hints = NULL, root = NULL, n = 0;
            whole_tree = 1;
            goto again;
        }
        if (bad == n && read_entry(&im, j, i, &ents[i]) != 0)
            bad = i;
        json_decref(j);
    }
    json_t *creator = json_object_get(log, "creator");
    const char *cname = NULL, *cver = NULL;
    size_t cnl = 0, cvl = 0;
    if (creator != NULL && !json_is_object(creator)) {
        fail(&im, "log.creator is not an object");
        goto done;
    }
    if (get_str(creator, "name", &cname, &cnl) < 0 ||
        get_str(creator, "version", &cver, &cvl) < 0) {
        fail(&im, "log.creator.name and .version must be strings");
        goto done;
    }
    if (bad < n)
        goto done;
    im.producer = shunt_har_producer_of(cname && strlen(cname) == cnl ? cname : NULL);
    info->producer = im.producer;

    qsort(ents, n, sizeof(*ents), by_start);
    judge_connection_field(&im, ents, n);
    int64_t first = n ? ents[0].start_us : now_us(), last = first;
    for (size_t i = 0; i < n; i++) {
        if (make_key(&im, &ents[i]) != 0) {
            rc = fail(&im, "out of memory");
            goto done;
        }
        hints[i].start_us = ents[i].start_us;
        hints[i].end_us = ents[i].start_us + ents[i].time_us;
        hints[i].opens = opens(&im, &ents[i]);
        hints[i].key = ents[i].key;
        hints[i].origin = ents[i].origin;
        hints[i].multiplexed = ents[i].multiplexed;
        hints[i].key_may_repeat = key_may_repeat(&im, &ents[i]);
        hints[i].closes = ents[i].closes;
        hints[i].connects = connects(&im, &ents[i]);
        if (hints[i].end_us > last)
            last = hints[i].end_us;
    }
    long n_conns = shunt_har_infer_connections(hints, n);
    if (n_conns < 0) {
        rc = fail(&im, "out of memory");
        goto done;
    }

    for (int k = 0; k < S_N; k++)
        if (sqlite3_prepare_v2(db, stmt_sql[k], -1, &w.st[k], NULL) != SQLITE_OK)
            goto sqlfail;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto sqlfail;
    began = 1;
    json_t *lsh = im.producer == SHUNT_HAR_SHUNT ? json_object_get(log, "_shunt") : NULL;
    if (!json_is_object(lsh))
        lsh = NULL;
    if ((rc = write_all(&im, &w, &src, ents, hints, n, (size_t)n_conns, lsh)) != 0)
        goto done;
    char detail[256];
    snprintf(detail, sizeof(detail), "%.*s%s%.*s", (int)(cname ? cnl : 7),
             cname ? cname : "unknown", cver ? " " : "", (int)(cver ? cvl : 0), cver ? cver : "");
    sqlite3_stmt *st = w.st[S_CAPTURE];
    bind_text(st, 1, o->shunt_version, strlen(o->shunt_version));
    bind_text(st, 2, o->command_line, strlen(o->command_line));
    bind_text(st, 3, detail, strlen(detail));
    bind_text(st, 8, "har", 3);
    sqlite3_bind_int64(st, 4, first);
    sqlite3_bind_int64(st, 5, last);
    /* shunt's own HAR that has the capture's times (stopped_us, null or not, says so) keeps
     * the capture's facts: its source (a proxy's capture: a connection without a close is
     * open, not unknown), what it says of itself, when it began and stopped (how long a
     * pending request waited); the command line is the import's. Not the source of a
     * redacted one: its heads are not the ones recorded, so they do not add up to the
     * recorded byte counts, which the analysis of a proxy's capture compares. */
    json_t *stopped = json_object_get(lsh, "stopped_us"), *started = json_object_get(lsh,
                                                                                  "started_us");
    const char *lsrc;
    size_t lsl;
    if (stopped != NULL && (json_is_integer(stopped) || json_is_null(stopped)) &&
        json_is_integer(started) && get_str(lsh, "source", &lsrc, &lsl) == 1 &&
        ((lsl == 5 && memcmp(lsrc, "proxy", 5) == 0) || (lsl == 3 && memcmp(lsrc, "har", 3) == 0))) {
        if (!json_is_true(json_object_get(lsh, "redacted"))) {
            bind_text(st, 8, lsrc, lsl);
            bind_json_text(st, 3, lsh, "source_detail");
        }
        sqlite3_bind_int64(st, 4, json_integer_value(started));
        if (json_is_integer(stopped))
            sqlite3_bind_int64(st, 5, json_integer_value(stopped));
        else
            sqlite3_bind_null(st, 5);
    }
    sqlite3_bind_int64(st, 6, lsh && jint(lsh, "body_limit", -1) >= 0 ? jint(lsh, "body_limit", 0)
                                                                        : w.max_body);
    sqlite3_bind_int64(st, 7, lsh && jint(lsh, "events_dropped", -1) > 0
                                  ? jint(lsh, "events_dropped", 0)
                                  : 0);
    if (run(st) != SQLITE_OK)
        goto sqlfail;
    /* The connection rows written: the inferred ones, but for shunt's own HAR those it had
     * (none for a row its recorder dropped, and those that carried no exchange too). */
    sqlite3_stmt *cn = NULL;
    int64_t n_rows = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM connections", -1, &cn, NULL) == SQLITE_OK &&
        sqlite3_step(cn) == SQLITE_ROW)
        n_rows = sqlite3_column_int64(cn, 0);
    sqlite3_finalize(cn);
    if (n_rows < 0)
        goto sqlfail;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto sqlfail;
    began = 0;
    info->n_entries = n;
    info->n_connections = (size_t)n_rows;
    rc = 0;
    goto done;
sqlfail:
    rc = fail(&im, "cannot write the capture: %s", sqlite3_errmsg(db));
done:
    if (began)
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    for (int k = 0; k < S_N; k++)
        sqlite3_finalize(w.st[k]);
    free_ents(ents, n);
    free(hints);
    json_decref(root);
    free(sc.v);
    return rc;
}

int shunt_har_import_buf(sqlite3 *db, const char *buf, size_t len,
                         const struct shunt_har_import_opts *o, struct shunt_har_import_info *info,
                         char *err, size_t err_len)
{
    return import_buf(db, buf, len, o, info, err, err_len, 0, NULL);
}


/* Removes the capture <path> and the files SQLite keeps beside it. */
static void remove_capture(const char *path)
{
    size_t l = strlen(path);
    char *p = malloc(l + sizeof("-journal"));
    unlink(path);
    if (p == NULL)
        return;
    memcpy(p, path, l);
    memcpy(p + l, "-wal", 5);
    unlink(p);
    memcpy(p + l, "-shm", 5);
    unlink(p);
    memcpy(p + l, "-journal", 9);
    unlink(p);
    free(p);
}

int shunt_har_import_file(const char *in, const char *out, const struct shunt_har_import_opts *o,
                          struct shunt_har_import_info *info, char *err, size_t err_len)
{
    char msg[512];
    struct mapping map = {NULL, 0, 0};
    sqlite3 *db = NULL;
    int rc = SHUNT_EINVAL;
    memset(info, 0, sizeof(*info));
    FILE *f = fopen(in, "rb");
    struct stat sb;
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        snprintf(err, err_len, "%s: %s", in, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, err_len, "%s: not a file", in);
        goto done;
    }
    if ((uint64_t)sb.st_size > SHUNT_HAR_MAX_INPUT) {
        snprintf(err, err_len, "%s: over %zu bytes, too large to import", in, SHUNT_HAR_MAX_INPUT);
        goto done;
    }
    /* Mapped, not read: the pages are the page cache's, and map_read() lets them go as the
     * import moves on. The file must not shrink meanwhile (SIGBUS), as with any mapping. */
    map.len = (size_t)sb.st_size;
    if (map.len > 0) {
        void *p = mmap(NULL, map.len, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        if (p == MAP_FAILED) {
            snprintf(err, err_len, "%s: %s", in, strerror(errno));
            goto done;
        }
        map.base = p;
    }
    if ((rc = shunt_capture_create(out, &db, err, err_len)) != 0)
        goto done;
    rc = import_buf(db, map.base ? map.base : "", map.len, o, info, msg, sizeof(msg), 0, &map);
    if (rc != 0)
        snprintf(err, err_len, "%s: %s", in, msg);
    if (sqlite3_close(db) != SQLITE_OK && rc == 0) {
        snprintf(err, err_len, "%s: cannot close: %s", out, sqlite3_errmsg(db));
        rc = SHUNT_EINVAL;
    }
    if (rc != 0)
        remove_capture(out);
done:
    if (f != NULL)
        fclose(f);
    if (map.base != NULL)
        munmap(map.base, map.len);
    return rc;
}
