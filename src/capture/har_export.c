/* src/capture/har_export.c - a capture as HAR 1.2: one entry per exchange, streamed in start
 * order, with shunt's own facts under `_shunt`. docs/har.md describes every field. */
#include "capture/har.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base64.h"

/* ---------------------------------------------------------------- pure pieces */

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), after H. Hinnant's
 * "chrono-Compatible Low-Level Date Algorithms" (civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* <a> / <b> rounded down (<b> > 0), without the overflow of negating INT64_MIN. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return a % b < 0 ? q - 1 : q;
}

/* The times ISO 8601's four-digit years can write: 0000-01-01 to 9999-12-31T23:59:59.999. */
#define TIME_MIN_US INT64_C(-62167219200000000)
#define TIME_MAX_US INT64_C(253402300799999000)

void shunt_har_format_time(int64_t us, char *buf, size_t len)
{
    /* A capture file may hold any integer here: a time beyond the years a HAR can write is
     * written as the nearest one it can. */
    if (us < TIME_MIN_US)
        us = TIME_MIN_US;
    if (us > TIME_MAX_US)
        us = TIME_MAX_US;
    int64_t ms = floor_div(us, 1000);
    int64_t secs = floor_div(ms, 1000);
    int64_t days = floor_div(secs, 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d,
             (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
             (unsigned)(ms - secs * 1000));
}

/* The end of the line starting at <pos>: the offset of its LF, or <len>. */
static size_t line_end(const char *head, size_t len, size_t pos)
{
    const char *lf = pos < len ? memchr(head + pos, '\n', len - pos) : NULL;
    return lf ? (size_t)(lf - head) : len;
}

/* The line [<pos>, <lf>) without a CR before the LF. */
static size_t strip_cr(const char *head, size_t pos, size_t lf)
{
    return lf > pos && head[lf - 1] == '\r' ? lf - 1 : lf;
}

struct shunt_slice shunt_har_head_start(const char *head, size_t len, size_t *pos)
{
    size_t lf = line_end(head, len, 0);
    *pos = lf < len ? lf + 1 : len;
    return shunt_slice_make(head, strip_cr(head, 0, lf));
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int shunt_har_head_next(const char *head, size_t len, size_t *pos, struct shunt_slice *name,
                        struct shunt_slice *value)
{
    size_t p = *pos;
    if (p >= len)
        return 0;
    size_t lf = line_end(head, len, p);
    size_t e = strip_cr(head, p, lf);
    if (e == p) { /* the empty line ends the head */
        *pos = len;
        return 0;
    }
    *pos = lf < len ? lf + 1 : len;
    const char *colon = memchr(head + p, ':', e - p);
    size_t ne = colon ? (size_t)(colon - head) : e;
    size_t vs = colon ? ne + 1 : e;
    while (ne > p && is_ows(head[ne - 1]))
        ne--;
    while (vs < e && is_ows(head[vs]))
        vs++;
    while (e > vs && is_ows(head[e - 1]))
        e--;
    *name = shunt_slice_make(head + p, ne - p);
    *value = shunt_slice_make(head + vs, e - vs);
    return 1;
}

/* 1 when the <len> bytes at <s> are well-formed UTF-8 without NUL (RFC 3629 section 4). */
static int is_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------- JSON values */

/* A JSON string of <len> bytes: as they are when UTF-8, else read as ISO-8859-1, the
 * charset HTTP field values historically carry (RFC 9110 section 5.5). */
static json_t *jtext(const char *s, size_t len)
{
    if (s == NULL) /* an empty slice may have no base */
        s = "", len = 0;
    if (is_utf8((const unsigned char *)s, len))
        return json_stringn(s, len);
    char *u = malloc(len * 2 + 1);
    if (u == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) {
            u[o++] = ' '; /* a NUL is not kept in a HAR text field */
        } else if (c < 0x80) {
            u[o++] = (char)c;
        } else {
            u[o++] = (char)(0xc0 | (c >> 6));
            u[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    json_t *j = json_stringn(u, o);
    free(u);
    return j;
}

static json_t *jslice(struct shunt_slice s)
{
    return jtext(s.base, s.len);
}

/* A new string of the base64 (RFC 4648 section 4) of <len> bytes at <p>. */
static json_t *jbase64(const unsigned char *p, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = (len + 2) / 3 * 4;
    char *o = malloc(olen + 1);
    if (o == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        o[k++] = tab[(v >> 18) & 63];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        o[k++] = i + 2 < len ? tab[v & 63] : '=';
    }
    json_t *j = json_stringn(o, k);
    free(o);
    return j;
}

/* Milliseconds from microseconds: exact decimals, -1 kept as the integer -1. */
static json_t *jms(int64_t us)
{
    if (us < 0)
        return json_integer(-1);
    if (us % 1000 == 0)
        return json_integer(us / 1000);
    return json_real((double)us / 1000.0);
}

/* Sets <key> of <obj> to the bytes <p>/<len>: text when UTF-8, otherwise base64 with
 * "<enc_key>": "base64" beside it. */
static int set_bytes(json_t *obj, const char *key, const char *enc_key, const void *p, size_t len)
{
    if (is_utf8(p, len))
        return json_object_set_new(obj, key, json_stringn(p, len));
    if (json_object_set_new(obj, key, jbase64(p, len)) != 0)
        return -1;
    return json_object_set_new(obj, enc_key, json_string("base64"));
}

static json_t *jcolumn_text(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return jtext((const char *)sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
}

/* Column <col> as a JSON string: "" when NULL, text as jtext() makes it (never NULL but
 * out of memory: bytes that are not UTF-8 must not fail the export). */
static json_t *jcolumn_text_or_empty(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return jtext(s ? s : "", s ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

static json_t *jcolumn_int(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(st, col));
}

/* ---------------------------------------------------------------- heads */

/* A head from a BLOB column: bytes and length (NULL/0 when the column is NULL). */
struct blob {
    const char *p;
    size_t len;
};

static struct blob column_blob(sqlite3_stmt *st, int col)
{
    struct blob b = {sqlite3_column_blob(st, col), (size_t)sqlite3_column_bytes(st, col)};
    if (b.p == NULL)
        b.len = 0;
    return b;
}

static int name_is(struct shunt_slice n, const char *lit)
{
    return shunt_slice_ieq(n, lit, strlen(lit));
}

/* The value of the first field <name> in <head>, or an empty slice with base NULL. */
static struct shunt_slice find_field(struct blob head, const char *name)
{
    size_t pos;
    struct shunt_slice n, v;
    (void)shunt_har_head_start(head.p, head.len, &pos);
    while (shunt_har_head_next(head.p, head.len, &pos, &n, &v))
        if (name_is(n, name))
            return v;
    return shunt_slice_make(NULL, 0);
}

/* The <k>-th space-separated token of <line> (0-based); the last one takes the rest. */
static struct shunt_slice start_token(struct shunt_slice line, int k, int rest)
{
    if (line.base == NULL) /* no head: no token (and no offset on a NULL base) */
        return shunt_slice_make("", 0);
    size_t p = 0;
    for (int i = 0; i < k; i++) {
        while (p < line.len && line.base[p] != ' ')
            p++;
        if (p < line.len)
            p++;
    }
    size_t e = p;
    if (rest)
        e = line.len;
    else
        while (e < line.len && line.base[e] != ' ')
            e++;
    return shunt_slice_make(line.base + p, e - p);
}

/* The status code in the token <t>: its leading digits (at most three), 0 without any. Not
 * atoi(): the token is inside a BLOB, which has no NUL after it. */
static int status_of(struct shunt_slice t)
{
    int v = 0;
    for (size_t i = 0; i < t.len && i < 3 && t.base[i] >= '0' && t.base[i] <= '9'; i++)
        v = v * 10 + (t.base[i] - '0');
    return v;
}

/* headers: [{name, value}] in wire order. */
static json_t *headers_json(struct blob head)
{
    json_t *a = json_array();
    size_t pos;
    struct shunt_slice n, v;
    if (head.p == NULL)
        return a;
    (void)shunt_har_head_start(head.p, head.len, &pos);
    while (a != NULL && shunt_har_head_next(head.p, head.len, &pos, &n, &v)) {
        json_t *h = json_pack("{s:o,s:o}", "name", jslice(n), "value", jslice(v));
        if (json_array_append_new(a, h) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static struct shunt_slice trim(struct shunt_slice s)
{
    while (s.len > 0 && is_ows(s.base[0]))
        s.base++, s.len--;
    while (s.len > 0 && is_ows(s.base[s.len - 1]))
        s.len--;
    return s;
}

/* Splits <s> at the first <sep>: *<a> before it, *<b> after (empty when absent). */
static void split_at(struct shunt_slice s, char sep, struct shunt_slice *a, struct shunt_slice *b)
{
    const char *p = s.len ? memchr(s.base, sep, s.len) : NULL;
    if (p == NULL) {
        *a = s;
        *b = shunt_slice_make(s.base + s.len, 0);
        return;
    }
    *a = shunt_slice_make(s.base, (size_t)(p - s.base));
    *b = shunt_slice_make(p + 1, s.len - (size_t)(p - s.base) - 1);
}

/* Appends {name, value} of each "name=value" in <s> separated by <sep> to <a>. */
static int append_pairs(json_t *a, struct shunt_slice s, char sep, int trim_parts)
{
    while (s.len > 0) {
        struct shunt_slice part, rest, n, v;
        split_at(s, sep, &part, &rest);
        if (trim_parts)
            part = trim(part);
        if (part.len > 0) {
            split_at(part, '=', &n, &v);
            if (trim_parts)
                n = trim(n), v = trim(v);
            if (json_array_append_new(a, json_pack("{s:o,s:o}", "name", jslice(n), "value",
                                                   jslice(v))) != 0)
                return -1;
        }
        if (rest.base == s.base + s.len)
            break;
        s = rest;
    }
    return 0;
}

/* Request cookies: every pair of every Cookie field (RFC 6265 section 5.4). */
static json_t *request_cookies(struct blob head)
{
    json_t *a = json_array();
    size_t pos;
    struct shunt_slice n, v;
    if (head.p == NULL || a == NULL)
        return a;
    (void)shunt_har_head_start(head.p, head.len, &pos);
    while (shunt_har_head_next(head.p, head.len, &pos, &n, &v))
        if (name_is(n, "Cookie") && append_pairs(a, v, ';', 1) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Response cookies: one per Set-Cookie field (RFC 6265 section 5.2), with path, domain,
 * httpOnly and secure. Expires is left out: HAR wants ISO 8601 there, and a cookie date is
 * not one. */
static json_t *response_cookies(struct blob head)
{
    json_t *a = json_array();
    size_t pos;
    struct shunt_slice n, v;
    if (head.p == NULL || a == NULL)
        return a;
    (void)shunt_har_head_start(head.p, head.len, &pos);
    while (shunt_har_head_next(head.p, head.len, &pos, &n, &v)) {
        if (!name_is(n, "Set-Cookie"))
            continue;
        struct shunt_slice pair, attrs, cn, cv;
        split_at(v, ';', &pair, &attrs);
        split_at(trim(pair), '=', &cn, &cv);
        json_t *c = json_pack("{s:o,s:o}", "name", jslice(trim(cn)), "value", jslice(trim(cv)));
        while (c != NULL && attrs.len > 0) {
            struct shunt_slice at, rest, an, av;
            split_at(attrs, ';', &at, &rest);
            split_at(trim(at), '=', &an, &av);
            an = trim(an), av = trim(av);
            if (name_is(an, "Path"))
                json_object_set_new(c, "path", jslice(av));
            else if (name_is(an, "Domain"))
                json_object_set_new(c, "domain", jslice(av));
            else if (name_is(an, "HttpOnly"))
                json_object_set_new(c, "httpOnly", json_true());
            else if (name_is(an, "Secure"))
                json_object_set_new(c, "secure", json_true());
            if (rest.base == attrs.base + attrs.len)
                break;
            attrs = rest;
        }
        if (json_array_append_new(a, c) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* queryString: the pairs after '?' and before '#', as written (not percent-decoded, so
 * nothing is lost). */
static json_t *query_string(const char *url)
{
    json_t *a = json_array();
    const char *q = url ? strchr(url, '?') : NULL;
    if (q == NULL || a == NULL)
        return a;
    q++;
    size_t len = strcspn(q, "#");
    if (append_pairs(a, shunt_slice_make(q, len), '&', 0) != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* ---------------------------------------------------------------- redaction */

/* A growing output buffer; <bad> once an allocation failed. */
struct dbuf {
    char *p;
    size_t len, cap;
    int bad;
};

static void dput(struct dbuf *b, const void *s, size_t n)
{
    if (b->bad || n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->len + n + 1) * 2;
        char *q = realloc(b->p, nc);
        if (q == NULL) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void dputs(struct dbuf *b, const char *s)
{
    dput(b, s, strlen(s));
}

static int has_bytes(const unsigned char *p, size_t n, const char *what, size_t what_len)
{
    return memmem(p, n, what, what_len) != NULL;
}

/* The NTLM message in <p>/<n> ("NTLMSSP\0" then its type, MS-NLMP 2.2.1), or NULL. */
static const char *ntlm_type(const unsigned char *p, size_t n)
{
    const unsigned char *m = memmem(p, n, "NTLMSSP", 8);
    if (m == NULL || (size_t)(m - p) + 12 > n)
        return NULL;
    switch (m[8]) {
    case 1:
        return "type 1 NEGOTIATE";
    case 2:
        return "type 2 CHALLENGE";
    case 3:
        return "type 3 AUTHENTICATE";
    default:
        return "type ?";
    }
}

/* OIDs as DER (tag, length, value): SPNEGO 1.3.6.1.5.5.2 (RFC 4178), Kerberos 5
 * 1.2.840.113554.1.2.2 and its Microsoft alias 1.2.840.48018.1.2.2 (RFC 4121). */
static const char oid_spnego[] = "\x06\x06\x2b\x06\x01\x05\x05\x02";
static const char oid_krb5[] = "\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";
static const char oid_krb5_ms[] = "\x06\x09\x2a\x86\x48\x82\xf7\x12\x01\x02\x02";

/* Writes into <buf> what the NTLM or Negotiate token <tok> (base64) is, as the analysis
 * classifies legs (model.c): "type 1 NEGOTIATE", "NegTokenInit (Kerberos AP-REQ)",
 * "NegTokenResp", "Kerberos AP-REQ"...; "" when its bytes say nothing known. */
static void describe_token(struct shunt_slice tok, char *buf, size_t len)
{
    unsigned char b[4096]; /* enough for the OIDs and the NTLM header near the start */
    size_t n = shunt_base64_decode_prefix(tok.base, tok.len, b, sizeof(b));
    const char *ntlm = ntlm_type(b, n);
    buf[0] = '\0';
    if (ntlm != NULL && memcmp(b, "NTLMSSP", 8) == 0) {
        snprintf(buf, len, "%s", ntlm);
    } else if (n >= 1 && b[0] == 0x60) { /* InitialContextToken, RFC 2743 3.1 */
        int krb = has_bytes(b, n, oid_krb5, sizeof(oid_krb5) - 1) ||
                  has_bytes(b, n, oid_krb5_ms, sizeof(oid_krb5_ms) - 1);
        const char *inner = ntlm ? ntlm : krb ? "Kerberos AP-REQ" : NULL;
        if (has_bytes(b, n, oid_spnego, sizeof(oid_spnego) - 1))
            snprintf(buf, len, "NegTokenInit%s%s%s%s", inner ? " (" : "", ntlm ? "NTLM " : "",
                     inner ? inner : "", inner ? ")" : "");
        else if (krb)
            snprintf(buf, len, "Kerberos AP-REQ");
        else
            snprintf(buf, len, "InitialContextToken");
    } else if (n >= 1 && b[0] == 0xa1) { /* NegTokenResp, RFC 4178 4.2.2 */
        snprintf(buf, len, "NegTokenResp%s%s%s", ntlm ? " (NTLM " : "", ntlm ? ntlm : "",
                 ntlm ? ")" : "");
    }
}

/* "Scheme token" with the token replaced: a marker with what it is for NTLM and Negotiate;
 * a bare scheme (a challenge without a token) stays as it is. */
static void redact_credentials(struct dbuf *o, struct shunt_slice v)
{
    size_t i = 0;
    while (i < v.len && v.base[i] != ' ' && v.base[i] != '\t')
        i++;
    struct shunt_slice scheme = shunt_slice_make(v.base, i);
    struct shunt_slice tok = trim(shunt_slice_make(v.base + i, v.len - i));
    dput(o, scheme.base, scheme.len);
    if (tok.len == 0)
        return;
    char what[96] = "";
    if (name_is(scheme, "NTLM") || name_is(scheme, "Negotiate"))
        describe_token(tok, what, sizeof(what));
    dputs(o, " " SHUNT_HAR_REDACTED);
    if (what[0] != '\0') {
        dputs(o, ": ");
        dputs(o, what);
    }
    dputs(o, ">");
}

/* A challenge keeps its parameters (a realm is no secret) but loses an NTLM or Negotiate
 * token: the server's half of the handshake. */
static void redact_challenge(struct dbuf *o, struct shunt_slice v)
{
    size_t i = 0;
    while (i < v.len && v.base[i] != ' ' && v.base[i] != '\t')
        i++;
    struct shunt_slice scheme = shunt_slice_make(v.base, i);
    if ((name_is(scheme, "NTLM") || name_is(scheme, "Negotiate")) &&
        memchr(v.base, ',', v.len) == NULL)
        redact_credentials(o, v);
    else
        dput(o, v.base, v.len);
}

/* "a=1; b=2" as "a=<redacted>; b=<redacted>"; with <set_cookie>, only the first pair (the
 * attributes after it stay). */
static void redact_cookies(struct dbuf *o, struct shunt_slice v, int set_cookie)
{
    int first = 1;
    while (v.len > 0) {
        struct shunt_slice part, rest, n, val;
        split_at(v, ';', &part, &rest);
        if (!first)
            dputs(o, ";");
        if (first || !set_cookie) {
            struct shunt_slice t = trim(part);
            if (!first)
                dputs(o, " ");
            split_at(t, '=', &n, &val);
            if (memchr(t.base, '=', t.len) != NULL) {
                dput(o, n.base, n.len);
                dputs(o, "=");
            }
            if (t.len > 0)
                dputs(o, SHUNT_HAR_REDACTED ">");
        } else {
            dput(o, part.base, part.len);
        }
        first = 0;
        if (rest.base == v.base + v.len)
            break;
        v = rest;
    }
}

char *shunt_har_redact_head(const char *p, size_t len, size_t *out_len)
{
    struct dbuf o = {NULL, 0, 0, 0};
    size_t pos = 0;
    dput(&o, "", 0);
    while (pos < len) {
        size_t lf = line_end(p, len, pos);
        size_t e = strip_cr(p, pos, lf);
        size_t next = lf < len ? lf + 1 : len;
        const char *colon = memchr(p + pos, ':', e - pos);
        struct shunt_slice name = {0}, value = {0};
        int kind = 0; /* 1 credentials, 2 challenge, 3 Cookie, 4 Set-Cookie */
        if (colon != NULL) {
            name = trim(shunt_slice_make(p + pos, (size_t)(colon - (p + pos))));
            value = trim(shunt_slice_make(colon + 1, (size_t)(p + e - colon - 1)));
            if (name_is(name, "Authorization") || name_is(name, "Proxy-Authorization"))
                kind = 1;
            else if (name_is(name, "WWW-Authenticate") || name_is(name, "Proxy-Authenticate"))
                kind = 2;
            else if (name_is(name, "Cookie"))
                kind = 3;
            else if (name_is(name, "Set-Cookie"))
                kind = 4;
        }
        if (kind == 0 || value.len == 0) {
            dput(&o, p + pos, next - pos);
        } else {
            /* The name as it was, one space, the redacted value, the line's own ending. */
            dput(&o, p + pos, (size_t)(colon - (p + pos)) + 1);
            dputs(&o, " ");
            if (kind == 1)
                redact_credentials(&o, value);
            else if (kind == 2)
                redact_challenge(&o, value);
            else
                redact_cookies(&o, value, kind == 4);
            dput(&o, p + e, next - e);
        }
        pos = next;
    }
    if (o.p == NULL && !o.bad) {
        o.p = malloc(1);
        o.bad = o.p == NULL;
    }
    if (o.bad) {
        free(o.p);
        return NULL;
    }
    o.p[o.len] = '\0';
    *out_len = o.len;
    return o.p;
}

/* ---------------------------------------------------------------- entries */

enum col {
    C_ID, C_CONN, C_IDX, C_UPSTREAM, C_REUSED, C_STARTED, C_METHOD, C_URL, C_VERSION, C_STATUS,
    C_REQ_HEAD, C_REQ_SENT, C_RESP_HEAD, C_RESP_SENT, C_INTERIM, C_REQ_BODY_SIZE,
    C_RESP_BODY_SIZE, C_REQ_BYTES, C_RESP_BYTES, C_BLOCKED, C_DNS, C_CONNECT, C_SEND, C_WAIT,
    C_RECEIVE, C_ERROR, C_FLAGS, C_CLIENT_PORT, C_CLOSER, C_CLOSE_HOW, C_UP_ADDR, C_UP_PORT,
    C_HOST, C_PATH, C_DURATION,
    /* the connection row (C_C_ID NULL: the capture has none) */
    C_C_ID, C_C_ADDR, C_C_LISTEN_ADDR, C_C_LISTEN_PORT, C_C_OPENED, C_C_CLOSED, C_C_BYTES_IN,
    C_C_BYTES_OUT, C_C_TLS, C_C_TUNNEL, C_C_N, C_C_AUTH,
    /* the upstream row (C_U_ID NULL: none) */
    C_U_ID, C_U_HOST, C_U_PORT, C_U_REMOTE_PORT, C_U_OPENED, C_U_CLOSED, C_U_CLOSER,
    C_U_CLOSE_HOW, C_U_BYTES_IN, C_U_BYTES_OUT,
    /* 1 when the exchange is the first of its connection (by idx): it carries the
     * connection's upstreams that no exchange references */
    C_FIRST,
    C_SSL, /* e.t_ssl */
};

static const char select_sql[] =
    "SELECT e.id, e.conn_id, e.idx, e.upstream_id, e.upstream_reused, e.started_us, e.method,"
    " e.url, e.http_version, e.status, e.req_head, e.req_head_sent, e.resp_head,"
    " e.resp_head_sent, e.resp_interim, e.req_body_size, e.resp_body_size, e.req_bytes,"
    " e.resp_bytes, e.t_blocked, e.t_dns, e.t_connect, e.t_send, e.t_wait, e.t_receive,"
    " e.error, e.flags, c.client_port, c.closer, c.close_how, u.addr, u.local_port,"
    " e.host, e.path, e.duration_us,"
    " c.id, c.client_addr, c.listen_addr, c.listen_port, c.opened_us, c.closed_us, c.bytes_in,"
    " c.bytes_out, c.tls, c.tunnel, c.n_exchanges, c.auth_scheme,"
    " u.id, u.host, u.port, u.remote_port, u.opened_us, u.closed_us, u.closer, u.close_how,"
    " u.bytes_in, u.bytes_out,"
    " (SELECT x.id FROM exchanges x WHERE x.conn_id = e.conn_id ORDER BY x.idx, x.id LIMIT 1)"
    " = e.id, e.t_ssl"
    " FROM exchanges e LEFT JOIN connections c ON c.id = e.conn_id"
    " LEFT JOIN upstreams u ON u.id = e.upstream_id WHERE %s ORDER BY e.started_us, e.id";

/* The statements of one export. */
struct exporter {
    sqlite3 *db;
    sqlite3_stmt *rows;    /* select_sql */
    sqlite3_stmt *bodies;  /* the bodies of one exchange */
    sqlite3_stmt *changes; /* the changes of one exchange */
    sqlite3_stmt *orphans; /* the upstreams of one connection no exchange references */
    sqlite3_stmt *tls[3];  /* tls rows: the client's (tls_client_sql), the upstream's, the
                              others of the connection */
    int redact;            /* heads go through shunt_har_redact_head() */
};

/* The upstream rows of connection ?1 that no exchange of it references: a CONNECT's (shunt
 * answered the CONNECT itself, decision 3: its upstream_id is NULL), the one a 502 or 504
 * came after when the server closed or did not answer. The subquery does not depend on the
 * row, so it is read once per connection, through exchanges_conn. */
static const char orphans_sql[] =
    "SELECT id, host, port, addr, remote_port, local_port, opened_us, closed_us, closer,"
    " close_how, bytes_in, bytes_out FROM upstreams WHERE conn_id = ?1 AND id NOT IN"
    " (SELECT upstream_id FROM exchanges WHERE conn_id = ?1 AND upstream_id IS NOT NULL)"
    " ORDER BY id";

/* TLS handshakes (the tls table, its rows whole): entry._shunt.tls has the client side of
 * the exchange's connection and its upstream's side; the first entry of a connection has
 * the others in other_tls (an upstream no exchange references: one whose handshake failed
 * before shunt answered 502), and a whole export those of connections without exchanges in
 * log._shunt.tls. */
static const char tls_client_sql[] =
    "SELECT * FROM tls WHERE conn_id = ?1 AND side = 0 ORDER BY id LIMIT 1";
static const char tls_upstream_sql[] =
    "SELECT * FROM tls WHERE conn_id = ?1 AND upstream_id = ?2 AND side = 1 ORDER BY id LIMIT 1";
static const char tls_other_sql[] =
    "SELECT * FROM tls WHERE conn_id = ?1 AND id IS NOT (SELECT min(id) FROM tls WHERE"
    " conn_id = ?1 AND side = 0) AND NOT (side = 1 AND upstream_id IS NOT NULL AND id IN"
    " (SELECT min(t.id) FROM tls t JOIN exchanges x ON x.upstream_id = t.upstream_id WHERE"
    " t.conn_id = ?1 AND x.conn_id = ?1 AND t.side = 1 GROUP BY t.upstream_id)) ORDER BY id";
static const char lonely_tls_sql[] =
    "SELECT * FROM tls WHERE conn_id NOT IN (SELECT conn_id FROM exchanges) ORDER BY id";

/* The rows a whole export carries in log._shunt: connections that carried no exchange (a
 * client that connected and sent nothing, a TLS handshake that failed), and the upstreams of
 * such connections. */
static const char lonely_conns_sql[] =
    "SELECT id, client_addr, client_port, listen_addr, listen_port, opened_us, closed_us,"
    " closer, close_how, bytes_in, bytes_out, tls, tunnel, n_exchanges, auth_scheme"
    " FROM connections WHERE id NOT IN (SELECT conn_id FROM exchanges) ORDER BY id";
static const char lonely_ups_sql[] =
    "SELECT id, conn_id, host, port, addr, remote_port, local_port, opened_us, closed_us,"
    " closer, close_how, bytes_in, bytes_out"
    " FROM upstreams WHERE conn_id NOT IN (SELECT conn_id FROM exchanges) ORDER BY id";

/* The current row of <st> as an object keyed by the column names, each value as the
 * schema declares it (TEXT as text, anything else as an integer), null for NULL. */
static json_t *row_object(sqlite3_stmt *st)
{
    json_t *o = json_object();
    for (int k = 0; o != NULL && k < sqlite3_column_count(st); k++) {
        const char *type = sqlite3_column_decltype(st, k);
        json_t *v = type != NULL && strcmp(type, "TEXT") == 0 ? jcolumn_text(st, k)
                                                              : jcolumn_int(st, k);
        if (json_object_set_new(o, sqlite3_column_name(st, k), v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Every row of <st> (bound already) as an array of <row>(<st>, <ud>) objects (a NULL object
 * fails the append); NULL on failure. */
static json_t *rows_array_of(sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *st, void *ud),
                             void *ud)
{
    json_t *a = json_array();
    int rc;
    while (a != NULL && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_append_new(a, row(st, ud)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    if (a != NULL && rc != SQLITE_DONE) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *row_object_of(sqlite3_stmt *st, void *ud)
{
    (void)ud;
    return row_object(st);
}

/* Every row of <st> (bound already) as an array of row_object()s; NULL on failure. */
static json_t *rows_array(sqlite3_stmt *st)
{
    return rows_array_of(st, row_object_of, NULL);
}

/* <b> as the export writes it: with credentials redacted when <x> asks (then *<owned> is
 * the copy to free), else as it is. Returns 0, or -1 when out of memory. */
static int export_head(const struct exporter *x, struct blob *b, char **owned)
{
    *owned = NULL;
    if (!x->redact || b->p == NULL)
        return 0;
    size_t len;
    *owned = shunt_har_redact_head(b->p, b->len, &len);
    if (*owned == NULL)
        return -1;
    b->p = *owned;
    b->len = len;
    return 0;
}

/* A body row: data, length, truncated; data NULL when there is none. */
struct body {
    const void *data;
    size_t len;
    int truncated;
    int present;
};

/* Loads the request (<dir> 0) or response (1) body of exchange <id>. The data stays valid
 * until the statement is reset: the caller turns it into JSON before the next load. */
static int load_body(struct exporter *x, int64_t id, int dir, struct body *b)
{
    memset(b, 0, sizeof(*b));
    sqlite3_reset(x->bodies);
    sqlite3_bind_int64(x->bodies, 1, id);
    sqlite3_bind_int(x->bodies, 2, dir);
    int rc = sqlite3_step(x->bodies);
    if (rc == SQLITE_ROW) {
        b->data = sqlite3_column_blob(x->bodies, 0);
        b->len = (size_t)sqlite3_column_bytes(x->bodies, 0);
        b->truncated = sqlite3_column_int(x->bodies, 1);
        b->present = 1;
        if (b->data == NULL)
            b->data = "";
        return 0;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A change's text as the export writes it. With --redact, a rule's header edit ("set NAME:
 * VALUE", "add NAME: VALUE") goes through the head redactor like the heads themselves: a
 * rule that sets a credential would otherwise leave it in the change it recorded. */
static json_t *change_what(const struct exporter *x, sqlite3_stmt *st, int col)
{
    const char *w = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!x->redact || w == NULL || n < 4 ||
        (memcmp(w, "set ", 4) != 0 && memcmp(w, "add ", 4) != 0))
        return jcolumn_text(st, col);
    size_t rl;
    char *r = shunt_har_redact_head(w + 4, n - 4, &rl);
    if (r == NULL)
        return NULL;
    char *out = malloc(rl + 5);
    json_t *j = NULL;
    if (out != NULL) {
        memcpy(out, w, 4);
        memcpy(out + 4, r, rl);
        j = jtext(out, rl + 4);
    }
    free(out);
    free(r);
    return j;
}

/* One row of the changes statement: what, by whom, in which head. */
static json_t *change_object(sqlite3_stmt *st, void *ud)
{
    return json_pack("{s:o,s:o,s:b}", "what", change_what(ud, st, 0), "by",
                     jcolumn_text(st, 1), "in_request", sqlite3_column_int(st, 2) != 0);
}

static json_t *changes_json(struct exporter *x, int64_t id)
{
    sqlite3_reset(x->changes);
    sqlite3_bind_int64(x->changes, 1, id);
    return rows_array_of(x->changes, change_object, x);
}

static int64_t col64(sqlite3_stmt *st, int col)
{
    return sqlite3_column_int64(st, col);
}

/* The request object from the head as sent upstream. */
static json_t *request_json(struct exporter *x, sqlite3_stmt *st, struct blob sent)
{
    struct shunt_slice line = {0}, version = {0};
    size_t pos;
    if (sent.p != NULL) {
        line = shunt_har_head_start(sent.p, sent.len, &pos);
        version = start_token(line, 2, 1);
    }
    const char *url = (const char *)sqlite3_column_text(st, C_URL);
    /* No method and no head (a TLS handshake that failed, recorded as an exchange): "-", as
     * the proxy names it; HAR wants a string, and the import restores the NULL from _shunt. */
    json_t *method = sqlite3_column_type(st, C_METHOD) != SQLITE_NULL ? jcolumn_text(st, C_METHOD)
                     : line.base != NULL ? jslice(start_token(line, 0, 0))
                                         : json_string("-");
    json_t *ver = sqlite3_column_type(st, C_VERSION) != SQLITE_NULL ? jcolumn_text(st, C_VERSION)
                                                                    : jslice(version);
    /* No URL recorded (a request refused before its target was understood): the target as
     * the client wrote it, when that is an absolute URL. */
    json_t *jurl = url != NULL || !(line.base != NULL && memmem(line.base, line.len, "://", 3))
                       ? jcolumn_text_or_empty(st, C_URL)
                       : jslice(start_token(line, 1, 0));
    json_t *r = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "method", method, "url",
                          jurl, "httpVersion", ver, "cookies",
                          request_cookies(sent), "headers", headers_json(sent), "queryString",
                          query_string(url),
                          "headersSize", sent.p ? (json_int_t)sent.len : (json_int_t)-1,
                          "bodySize", (json_int_t)col64(st, C_REQ_BODY_SIZE));
    if (r == NULL)
        return NULL;
    struct body b;
    if (load_body(x, col64(st, C_ID), 0, &b) != 0)
        goto fail;
    if (b.present) {
        struct shunt_slice ct = find_field(sent, "Content-Type");
        json_t *pd = json_pack("{s:o}", "mimeType", jslice(ct));
        if (pd == NULL || json_object_set_new(r, "postData", pd) != 0)
            goto fail;
        if (set_bytes(pd, "text", "_encoding", b.data, b.len) != 0)
            goto fail;
        if (b.truncated && json_object_set_new(pd, "_truncated", json_true()) != 0)
            goto fail;
    }
    return r;
fail:
    json_decref(r);
    return NULL;
}

/* response.comment of an exchange still pending when the capture was exported. */
#define PENDING_COMMENT "pending: no response yet (the request was in flight when recorded)"

/* The response object from the head as sent to the client; status 0 and empty fields when
 * no response was sent (Chrome's way of writing a failed request). */
static json_t *response_json(struct exporter *x, sqlite3_stmt *st, struct blob sent)
{
    if (sent.p == NULL && sqlite3_column_type(st, C_STATUS) == SQLITE_NULL) {
        /* As Chrome and mitmproxy write a request without a response: `_error` says why, null
         * when nothing failed: the exchange was still pending (flag 16) when exported. */
        json_t *r = json_pack("{s:i,s:s,s:s,s:[],s:[],s:{s:i,s:s},s:s,s:i,s:i,s:o}", "status", 0,
                              "statusText", "", "httpVersion", "", "cookies", "headers",
                              "content", "size", 0, "mimeType", "x-unknown", "redirectURL", "",
                              "headersSize", -1, "bodySize", -1, "_error",
                              jcolumn_text(st, C_ERROR));
        if (r != NULL && (col64(st, C_FLAGS) & 16) &&
            json_object_set_new(r, "comment", json_string(PENDING_COMMENT)) != 0) {
            json_decref(r);
            return NULL;
        }
        return r;
    }
    struct shunt_slice line = {0};
    size_t pos;
    if (sent.p != NULL)
        line = shunt_har_head_start(sent.p, sent.len, &pos);
    int status = sqlite3_column_type(st, C_STATUS) != SQLITE_NULL
                     ? sqlite3_column_int(st, C_STATUS)
                     : status_of(start_token(line, 1, 0));
    struct shunt_slice ct = find_field(sent, "Content-Type");
    struct shunt_slice loc = find_field(sent, "Location");
    int64_t hs = sent.p ? (int64_t)sent.len : -1;
    int64_t wire = col64(st, C_RESP_BYTES);
    json_t *content = json_pack("{s:I,s:o}", "size", (json_int_t)col64(st, C_RESP_BODY_SIZE),
                                "mimeType", ct.base ? jslice(ct) : json_string("x-unknown"));
    json_t *r = json_pack("{s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "status", status,
                          "statusText", jslice(start_token(line, 2, 1)), "httpVersion",
                          jslice(start_token(line, 0, 0)), "cookies", response_cookies(sent),
                          "headers", headers_json(sent), "content", content, "redirectURL",
                          jslice(loc), "headersSize", (json_int_t)hs, "bodySize",
                          (json_int_t)(hs >= 0 && wire >= hs ? wire - hs : -1));
    if (r == NULL)
        return NULL;
    struct body b;
    if (load_body(x, col64(st, C_ID), 1, &b) != 0)
        goto fail;
    if (b.present) {
        if (set_bytes(content, "text", "encoding", b.data, b.len) != 0)
            goto fail;
        if (b.truncated && json_object_set_new(content, "_truncated", json_true()) != 0)
            goto fail;
    }
    return r;
fail:
    json_decref(r);
    return NULL;
}

/* The exchange row's own values, exactly: the HAR's fields derive from them (a time in
 * milliseconds, a status 0 for none, a URL rebuilt when the capture has none), and the import
 * of a shunt HAR reads these instead, so that the round trip gives the same rows. */
static json_t *exchange_row_json(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "method",
                     jcolumn_text(st, C_METHOD), "url", jcolumn_text(st, C_URL), "host",
                     jcolumn_text(st, C_HOST), "path", jcolumn_text(st, C_PATH), "http_version",
                     jcolumn_text(st, C_VERSION), "status", jcolumn_int(st, C_STATUS),
                     "started_us", (json_int_t)col64(st, C_STARTED), "duration_us",
                     (json_int_t)col64(st, C_DURATION), "req_body_size",
                     (json_int_t)col64(st, C_REQ_BODY_SIZE), "resp_body_size",
                     (json_int_t)col64(st, C_RESP_BODY_SIZE), "req_bytes",
                     (json_int_t)col64(st, C_REQ_BYTES), "resp_bytes",
                     (json_int_t)col64(st, C_RESP_BYTES));
}

/* The client connection's row, or null when the capture has none (events dropped). */
static json_t *connection_row_json(sqlite3_stmt *st)
{
    if (sqlite3_column_type(st, C_C_ID) == SQLITE_NULL)
        return json_null();
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:o}", "client_addr",
                     jcolumn_text(st, C_C_ADDR), "client_port", jcolumn_int(st, C_CLIENT_PORT),
                     "listen_addr", jcolumn_text(st, C_C_LISTEN_ADDR), "listen_port",
                     jcolumn_int(st, C_C_LISTEN_PORT), "opened_us", jcolumn_int(st, C_C_OPENED),
                     "closed_us", jcolumn_int(st, C_C_CLOSED), "closer", jcolumn_text(st, C_CLOSER),
                     "close_how", jcolumn_text(st, C_CLOSE_HOW), "bytes_in",
                     jcolumn_int(st, C_C_BYTES_IN), "bytes_out", jcolumn_int(st, C_C_BYTES_OUT),
                     "tls", (json_int_t)col64(st, C_C_TLS), "tunnel",
                     (json_int_t)col64(st, C_C_TUNNEL), "n_exchanges", (json_int_t)col64(st, C_C_N),
                     "auth_scheme", jcolumn_text(st, C_C_AUTH));
}

/* The upstream connection's row, or null when there is none (or the capture lacks it). */
static json_t *upstream_row_json(sqlite3_stmt *st)
{
    if (sqlite3_column_type(st, C_U_ID) == SQLITE_NULL)
        return json_null();
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "host",
                     jcolumn_text(st, C_U_HOST), "port", jcolumn_int(st, C_U_PORT), "addr",
                     jcolumn_text(st, C_UP_ADDR), "remote_port", jcolumn_int(st, C_U_REMOTE_PORT),
                     "local_port", jcolumn_int(st, C_UP_PORT), "opened_us",
                     jcolumn_int(st, C_U_OPENED), "closed_us", jcolumn_int(st, C_U_CLOSED),
                     "closer", jcolumn_text(st, C_U_CLOSER), "close_how",
                     jcolumn_text(st, C_U_CLOSE_HOW), "bytes_in", jcolumn_int(st, C_U_BYTES_IN),
                     "bytes_out", jcolumn_int(st, C_U_BYTES_OUT));
}

/* The first row of x->tls[<k>] bound to the exchange <st>'s connection (and upstream), as
 * an object; json null when none; NULL on failure. */
static json_t *tls_row(struct exporter *x, sqlite3_stmt *st, int k)
{
    sqlite3_stmt *t = x->tls[k];
    sqlite3_reset(t);
    sqlite3_bind_int64(t, 1, col64(st, C_CONN));
    if (k == 1)
        sqlite3_bind_int64(t, 2, col64(st, C_UPSTREAM));
    int rc = sqlite3_step(t);
    return rc == SQLITE_ROW ? row_object(t) : rc == SQLITE_DONE ? json_null() : NULL;
}

/* Adds to the entry's `_shunt` <s>: tls {client, upstream} when the exchange's connection
 * or upstream spoke TLS; other_tls on the first entry of a connection. Returns 0 or -1. */
static int tls_json(struct exporter *x, sqlite3_stmt *st, json_t *s)
{
    json_t *client = tls_row(x, st, 0);
    json_t *up =
        sqlite3_column_type(st, C_UPSTREAM) == SQLITE_NULL ? json_null() : tls_row(x, st, 1);
    if (client == NULL || up == NULL) {
        json_decref(client);
        json_decref(up);
        return -1;
    }
    if (json_is_null(client) && json_is_null(up)) {
        json_decref(client);
        json_decref(up);
    } else if (json_object_set_new(s, "tls",
                                   json_pack("{s:o,s:o}", "client", client, "upstream", up)) != 0) {
        return -1;
    }
    if (!sqlite3_column_int(st, C_FIRST))
        return 0;
    sqlite3_reset(x->tls[2]);
    sqlite3_bind_int64(x->tls[2], 1, col64(st, C_CONN));
    json_t *o = rows_array(x->tls[2]);
    if (o == NULL)
        return -1;
    if (json_array_size(o) == 0) {
        json_decref(o);
        return 0;
    }
    return json_object_set_new(s, "other_tls", o) != 0 ? -1 : 0;
}

static json_t *shunt_json(struct exporter *x, sqlite3_stmt *st)
{
    json_t *s = json_pack("{s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                          (json_int_t)col64(st, C_ID), "conn_id", (json_int_t)col64(st, C_CONN),
                          "idx", (json_int_t)col64(st, C_IDX), "upstream_id",
                          jcolumn_int(st, C_UPSTREAM), "upstream_reused",
                          jcolumn_int(st, C_REUSED), "client_port", jcolumn_int(st, C_CLIENT_PORT),
                          "upstream_port", jcolumn_int(st, C_UP_PORT), "closer",
                          jcolumn_text(st, C_CLOSER), "close_how", jcolumn_text(st, C_CLOSE_HOW),
                          "changes", changes_json(x, col64(st, C_ID)));
    if (s == NULL)
        return NULL;
    static const struct {
        int col;
        const char *key, *enc;
    } heads[] = {
        {C_REQ_HEAD, "request_head_received", "request_head_received_encoding"},
        {C_RESP_HEAD, "response_head_received", "response_head_received_encoding"},
        {C_REQ_SENT, "request_head_sent", "request_head_sent_encoding"},
        {C_RESP_SENT, "response_head_sent", "response_head_sent_encoding"},
        {C_INTERIM, "response_interim", "response_interim_encoding"},
    };
    for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
        struct blob b = column_blob(st, heads[k].col);
        char *owned;
        int rc = export_head(x, &b, &owned);
        if (rc == 0 && b.p != NULL)
            rc = set_bytes(s, heads[k].key, heads[k].enc, b.p, b.len);
        else if (rc == 0 && k < 2) /* the received heads are always there, null when none */
            rc = json_object_set_new(s, heads[k].key, json_null());
        free(owned);
        if (rc != 0)
            goto fail;
    }
    if (json_object_set_new(s, "error", jcolumn_text(st, C_ERROR)) != 0 ||
        json_object_set_new(s, "flags", json_integer(col64(st, C_FLAGS))) != 0 ||
        json_object_set_new(s, "exchange", exchange_row_json(st)) != 0 ||
        json_object_set_new(s, "connection", connection_row_json(st)) != 0 ||
        json_object_set_new(s, "upstream", upstream_row_json(st)) != 0)
        goto fail;
    if (tls_json(x, st, s) != 0)
        goto fail;
    if (sqlite3_column_int(st, C_FIRST)) {
        sqlite3_reset(x->orphans);
        sqlite3_bind_int64(x->orphans, 1, col64(st, C_CONN));
        json_t *o = rows_array(x->orphans);
        if (o == NULL)
            goto fail;
        if (json_array_size(o) == 0)
            json_decref(o);
        else if (json_object_set_new(s, "other_upstreams", o) != 0)
            goto fail;
    }
    return s;
fail:
    json_decref(s);
    return NULL;
}

static json_t *entry_of(struct exporter *x, sqlite3_stmt *st, struct blob req, struct blob resp);

/* The entry of the row <st>. */
static json_t *entry_json(struct exporter *x, sqlite3_stmt *st)
{
    struct blob req = column_blob(st, C_REQ_SENT), resp = column_blob(st, C_RESP_SENT);
    if (req.p == NULL)
        req = column_blob(st, C_REQ_HEAD);
    if (resp.p == NULL)
        resp = column_blob(st, C_RESP_HEAD);
    char *req_owned, *resp_owned = NULL;
    if (export_head(x, &req, &req_owned) != 0 || export_head(x, &resp, &resp_owned) != 0) {
        free(req_owned);
        return NULL;
    }
    json_t *e = entry_of(x, st, req, resp);
    free(req_owned);
    free(resp_owned);
    return e;
}

/* The entry of the row <st>, with the request and response heads <req> and <resp>. */
static json_t *entry_of(struct exporter *x, sqlite3_stmt *st, struct blob req, struct blob resp)
{
    char when[40], conn[24];
    shunt_har_format_time(col64(st, C_STARTED), when, sizeof(when));
    snprintf(conn, sizeof(conn), "%" PRId64, col64(st, C_CONN));
    static const char *const names[] = {"blocked", "dns", "connect", "send", "wait", "receive"};
    json_t *timings = json_object();
    int64_t total = 0;
    for (int k = 0; k < 6 && timings != NULL; k++) {
        int64_t us = col64(st, C_BLOCKED + k);
        if (us > 0 && __builtin_add_overflow(total, us, &total))
            total = INT64_MAX; /* a hostile file's timings: saturate rather than overflow */
        json_object_set_new(timings, names[k], jms(us));
    }
    /* the upstream's TLS handshake, which connect includes (HAR 1.2) */
    if (timings != NULL)
        json_object_set_new(timings, "ssl", jms(col64(st, C_SSL)));
    json_t *e = json_pack("{s:s,s:o,s:o,s:o,s:{},s:o}", "startedDateTime", when, "time",
                          jms(total), "request", request_json(x, st, req), "response",
                          response_json(x, st, resp), "cache", "timings", timings);
    if (e == NULL)
        return NULL;
    if (sqlite3_column_bytes(st, C_UP_ADDR) > 0 &&
        json_object_set_new(e, "serverIPAddress", jcolumn_text_or_empty(st, C_UP_ADDR)) != 0)
        goto fail;
    if (json_object_set_new(e, "connection", json_string(conn)) != 0 ||
        json_object_set_new(e, "_connectionId", json_string(conn)) != 0 ||
        json_object_set_new(e, "_shunt", shunt_json(x, st)) != 0)
        goto fail;
    return e;
fail:
    json_decref(e);
    return NULL;
}

/* The log's own `_shunt`: the capture row, with incomplete when events were dropped. */
static json_t *log_shunt(sqlite3 *db, int whole, int64_t *dropped)
{
    sqlite3_stmt *st = NULL;
    json_t *j = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT shunt_version, command_line, source, source_detail, body_limit,"
                           " events_dropped, started_us, stopped_us FROM capture WHERE id = 1",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *dropped = sqlite3_column_int64(st, 5);
        /* started_us and stopped_us (null: the proxy died, or still recording) keep what the
         * views read from the capture row (how long a pending request waited) */
        j = json_pack("{s:o,s:o,s:o,s:o,s:I,s:b,s:I,s:o,s:o}", "shunt_version",
                      jcolumn_text(st, 0), "command_line", jcolumn_text(st, 1), "source",
                      jcolumn_text(st, 2), "source_detail", jcolumn_text(st, 3), "body_limit",
                      (json_int_t)sqlite3_column_int64(st, 4), "incomplete", *dropped > 0,
                      "events_dropped", (json_int_t)*dropped, "started_us",
                      jcolumn_int(st, 6), "stopped_us", jcolumn_int(st, 7));
    } else if (rc == SQLITE_DONE) {
        *dropped = 0; /* a capture whose recorder never wrote its row: say nothing */
        j = json_object();
    }
    sqlite3_finalize(st);
    st = NULL;
    /* A whole export also carries the rows no entry does, so that the import gives every row
     * back; a filtered one is about the exchanges it selects. */
    static const struct {
        const char *key, *sql;
    } lonely[] = {{"connections", lonely_conns_sql},
                  {"upstreams", lonely_ups_sql},
                  {"tls", lonely_tls_sql}};
    for (size_t k = 0; whole && j != NULL && k < sizeof(lonely) / sizeof(lonely[0]); k++) {
        json_t *a = NULL;
        if (sqlite3_prepare_v2(db, lonely[k].sql, -1, &st, NULL) == SQLITE_OK)
            a = rows_array(st);
        sqlite3_finalize(st);
        st = NULL;
        if (a == NULL) {
            json_decref(j);
            return NULL;
        }
        if (json_array_size(a) == 0)
            json_decref(a);
        else if (json_object_set_new(j, lonely[k].key, a) != 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* fputs that remembers a failure in <*bad>. */
static void put(FILE *out, const char *s, int *bad)
{
    if (fputs(s, out) == EOF)
        *bad = 1;
}

/* log.comment of a redacted export (JSON text: no quote nor backslash in it). */
#define REDACTED_COMMENT                                                                           \
    "Credentials redacted by shunt export --redact: Authorization, Proxy-Authorization, "         \
    "Cookie and Set-Cookie values, and NTLM and Negotiate tokens, keep their scheme, leg and "    \
    "cookie names only. Query strings and bodies are as captured."

int shunt_har_export(sqlite3 *db, const struct shunt_capture_filter *f,
                     const struct shunt_har_export_opts *o, FILE *out,
                     struct shunt_har_export_info *info, char *err, size_t err_len)
{
    static const struct shunt_capture_filter any = {0};
    struct exporter x = {db, NULL, NULL, NULL, NULL, {NULL, NULL, NULL}, o->redact};
    char where[SHUNT_CAPTURE_FILTER_SQL_MAX], *sql = NULL;
    int nparams, bad = 0, rc = SHUNT_EINVAL, began = 0;
    json_t *ls = NULL, *creator = NULL;
    memset(info, 0, sizeof(*info));
    if (f == NULL)
        f = &any;
    nparams = shunt_capture_filter_sql(f, "e", 1, where, sizeof(where));
    if (nparams < 0) {
        snprintf(err, err_len, "filter too long");
        return nparams;
    }
    /* One read transaction: a consistent snapshot while a recorder may still be writing. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto sqlfail;
    began = 1;
    sql = sqlite3_mprintf(select_sql, where);
    if (sql == NULL || shunt_capture_filter_register(db, f) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &x.rows, NULL) != SQLITE_OK ||
        shunt_capture_filter_bind(f, x.rows, 1) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT data, truncated FROM bodies WHERE exchange_id = ?1 AND"
                           " direction = ?2",
                           -1, &x.bodies, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT what, by, in_request FROM changes WHERE exchange_id = ?1"
                           " ORDER BY id",
                           -1, &x.changes, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, orphans_sql, -1, &x.orphans, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, tls_client_sql, -1, &x.tls[0], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, tls_upstream_sql, -1, &x.tls[1], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, tls_other_sql, -1, &x.tls[2], NULL) != SQLITE_OK)
        goto sqlfail;
    ls = log_shunt(db, strcmp(where, "1") == 0, &info->events_dropped);
    if (ls == NULL)
        goto sqlfail;
    if (o->redact && json_object_set_new(ls, "redacted", json_true()) != 0)
        goto sqlfail;
    creator = json_pack("{s:s,s:s}", "name", "shunt", "version", o->version);
    char *cs = creator ? json_dumps(creator, JSON_COMPACT) : NULL;
    char *ss = json_dumps(ls, JSON_COMPACT);
    if (cs == NULL || ss == NULL) {
        free(cs);
        free(ss);
        snprintf(err, err_len, "out of memory");
        rc = SHUNT_ENOMEM;
        goto done;
    }
    put(out, "{\"log\":{\"version\":\"1.2\",\"creator\":", &bad);
    put(out, cs, &bad);
    if (o->redact)
        put(out, ",\"comment\":\"" REDACTED_COMMENT "\"", &bad);
    put(out, ",\"_shunt\":", &bad);
    put(out, ss, &bad);
    put(out, ",\"entries\":[", &bad);
    free(cs);
    free(ss);
    int step = SQLITE_DONE;
    while (!bad && (step = sqlite3_step(x.rows)) == SQLITE_ROW) {
        json_t *e = entry_json(&x, x.rows);
        if (e == NULL) {
            snprintf(err, err_len, "cannot convert exchange %" PRId64 " (out of memory, or %s)",
                     col64(x.rows, C_ID), sqlite3_errmsg(db));
            rc = SHUNT_ENOMEM;
            goto done;
        }
        put(out, info->n_entries ? ",\n" : "\n", &bad);
        if (json_dumpf(e, out, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0)
            bad = 1;
        json_decref(e);
        info->n_entries++;
    }
    if (!bad && step != SQLITE_DONE)
        goto sqlfail;
    put(out, "\n]}}\n", &bad);
    if (bad || fflush(out) != 0 || ferror(out)) {
        snprintf(err, err_len, "cannot write: %s", strerror(errno ? errno : EIO));
        rc = SHUNT_EINVAL;
        goto done;
    }
    rc = 0;
    goto done;
sqlfail:
    snprintf(err, err_len, "cannot read the capture: %s", sqlite3_errmsg(db));
    rc = SHUNT_EINVAL;
done:
    json_decref(creator);
    json_decref(ls);
    sqlite3_finalize(x.orphans);
    for (int k = 0; k < 3; k++)
        sqlite3_finalize(x.tls[k]);
    sqlite3_finalize(x.changes);
    sqlite3_finalize(x.bodies);
    sqlite3_finalize(x.rows);
    sqlite3_free(sql);
    if (began)
        (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

int shunt_har_export_file(sqlite3 *db, const struct shunt_capture_filter *f,
                          const struct shunt_har_export_opts *o, const char *path,
                          struct shunt_har_export_info *info, char *err, size_t err_len)
{
    char msg[512];
    if (strcmp(path, "-") == 0) {
        int rc = shunt_har_export(db, f, o, stdout, info, msg, sizeof(msg));
        if (rc != 0)
            snprintf(err, err_len, "-: %s", msg);
        return rc;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (tmp == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        return SHUNT_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot create a file beside it: %s", path, strerror(errno));
        free(tmp);
        return SHUNT_EINVAL;
    }
    FILE *out = fdopen(fd, "w");
    if (out == NULL) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    int rc = shunt_har_export(db, f, o, out, info, msg, sizeof(msg));
    if (rc != 0) {
        snprintf(err, err_len, "%s: %s", path, msg);
        fclose(out);
        goto fail;
    }
    if (fsync(fileno(out)) != 0 || fclose(out) != 0) {
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    unlink(tmp);
    free(tmp);
    return SHUNT_EINVAL;
}
