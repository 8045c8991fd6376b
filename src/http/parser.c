/* src/http/parser.c - strict, allocation-free HTTP/1.1 head parser and body framer (RFC 9112). */
#include "http/parser.h"

#include <limits.h>
#include <string.h>

/*
 * How the head parser stays consistent over a growing buffer: validation is one left-to-right
 * pass in which every decision about byte <i> depends only on bytes up to <i> + 1 (the byte
 * after a CR), and "need more" is returned only when such a byte is missing. So whatever a
 * call over a prefix rejects, a call over the whole rejects identically (same reason, same
 * offset), and feeding a head byte by byte gives the same answer as feeding it whole. Field
 * semantics (Content-Length, Transfer-Encoding, Host, ...) are checked once the head is
 * complete, after every line passed the syntax checks.
 */

/* ---------------------------------------------------------------- character classes */

#define C_TCHAR 0x01 /* tchar, RFC 9110 5.6.2 */
#define C_VCHAR 0x02 /* visible ASCII 0x21-0x7E: request-target bytes */
#define C_FVAL 0x04  /* field value and reason phrase: HTAB, SP, VCHAR, obs-text */
#define C_HEX 0x08   /* HEXDIG */
#define C_QDTEXT 0x10 /* quoted-string text: HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text */

#define IS_TCHAR_(c)                                                                               \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z') ||    \
     (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||         \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||          \
     (c) == '`' || (c) == '|' || (c) == '~')
#define IS_VCHAR_(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_FVAL_(c) ((c) == '\t' || (c) == ' ' || IS_VCHAR_(c) || (c) >= 0x80)
#define IS_HEX_(c)                                                                                 \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'F') || ((c) >= 'a' && (c) <= 'f'))
#define IS_QDTEXT_(c) (IS_FVAL_(c) && (c) != '"' && (c) != '\\')
#define CLS_(c)                                                                                    \
    ((IS_TCHAR_(c) ? C_TCHAR : 0) | (IS_VCHAR_(c) ? C_VCHAR : 0) | (IS_FVAL_(c) ? C_FVAL : 0) |   \
     (IS_HEX_(c) ? C_HEX : 0) | (IS_QDTEXT_(c) ? C_QDTEXT : 0))
#define R4_(b) CLS_(b), CLS_((b) + 1), CLS_((b) + 2), CLS_((b) + 3)
#define R16_(b) R4_(b), R4_((b) + 4), R4_((b) + 8), R4_((b) + 12)
#define R64_(b) R16_(b), R16_((b) + 16), R16_((b) + 32), R16_((b) + 48)

static const unsigned char cls[256] = {R64_(0), R64_(64), R64_(128), R64_(192)};

#define HAS(c, k) (cls[(unsigned char)(c)] & (k))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Returns the offset of the first byte at or after <i> that is not allowed in a field value
 * (HTAB, SP, VCHAR, obs-text), or <len>. Eight bytes at a time while none of them is below
 * 0x20 or DEL: values (cookies, user agents) are most of a head's bytes. */
static size_t skip_fval(const char *buf, size_t len, size_t i)
{
    while (len - i >= 8) {
        uint64_t x;
        memcpy(&x, buf + i, 8);
        /* High bit of a byte set when that byte is < 0x20 (or when it is DEL, after xor); the
         * ~x term keeps obs-text bytes (>= 0x80) out. */
        uint64_t ctl = (x - ONES * 0x20) & ~x & HIGHS;
        uint64_t y = x ^ (ONES * 0x7f);
        uint64_t del = (y - ONES) & ~y & HIGHS;
        if ((ctl | del) != 0)
            break;
        i += 8;
    }
    while (i < len && HAS(buf[i], C_FVAL))
        i++;
    return i;
}

/* ---------------------------------------------------------------- reasons */

const char *shunt_http_reason_str(enum shunt_http_reason reason)
{
    switch (reason) {
#define XX(name, msg)                                                                              \
    case SHUNT_HTTP_R_##name:                                                                      \
        return msg;
        SHUNT_HTTP_REASON_MAP(XX)
#undef XX
    }
    return "unknown reason";
}

const char *shunt_http_reason_name(enum shunt_http_reason reason)
{
    switch (reason) {
#define XX(name, msg)                                                                              \
    case SHUNT_HTTP_R_##name:                                                                      \
        return #name;
        SHUNT_HTTP_REASON_MAP(XX)
#undef XX
    }
    return "UNKNOWN";
}

/* Records <reason> at <offset> in <err> and returns SHUNT_EPARSE. */
static int fail(struct shunt_http_error *err, enum shunt_http_reason reason, size_t offset)
{
    err->reason = reason;
    err->offset = offset;
    return SHUNT_EPARSE;
}

/* ---------------------------------------------------------------- start line */

/* Outcome of looking at one byte of the start line that the current element does not simply
 * continue with. */
enum sl_byte { SL_MORE, SL_EOL, SL_OTHER };

/*
 * Classifies byte <i> of the start line (i < len): SL_EOL when it is the CR of the CRLF that
 * ends the line, SL_MORE when it is a CR whose next byte has not arrived, SL_OTHER for a
 * content byte within max_line. Returns SHUNT_EPARSE for a bare CR, a bare LF, or a content
 * byte past <max_line> (RFC 9112 2.2: a CR must be followed by LF; 3 and 4: line limit).
 */
static int sl_classify(const char *buf, size_t len, size_t i, size_t max_line,
                       struct shunt_http_error *err)
{
    if (buf[i] == '\r') {
        if (i + 1 >= len)
            return SL_MORE;
        if (buf[i + 1] != '\n')
            return fail(err, SHUNT_HTTP_R_BARE_CR, i);
        return SL_EOL;
    }
    if (buf[i] == '\n')
        return fail(err, SHUNT_HTTP_R_BARE_LF, i);
    if (i >= max_line)
        return fail(err, SHUNT_HTTP_R_LINE_TOO_LONG, max_line);
    return SL_OTHER;
}

/*
 * Matches "HTTP/1.0" or "HTTP/1.1" at <*pos> (RFC 9112 2.3: case-sensitive, one digit each).
 * Returns 1 when matched (*pos moved past it, *minor set), 0 when more bytes are needed,
 * SHUNT_EPARSE otherwise. A SP where the version starts is an extra separator.
 */
static int match_version(const char *buf, size_t len, size_t *pos, size_t max_line, int *minor,
                         struct shunt_http_error *err)
{
    static const char proto[] = "HTTP/1.";
    size_t i = *pos;
    for (size_t k = 0; k < 8; k++, i++) {
        if (i >= len)
            return 0;
        int r = sl_classify(buf, len, i, max_line, err);
        if (r < 0)
            return r;
        if (r == SL_MORE)
            return 0;
        char c = buf[i];
        if (r == SL_OTHER && (k < 7 ? c == proto[k] : (c == '0' || c == '1')))
            continue;
        if (r == SL_OTHER && k == 0 && c == ' ')
            return fail(err, SHUNT_HTTP_R_BAD_START_LINE, i);
        return fail(err, SHUNT_HTTP_R_BAD_VERSION, i);
    }
    *minor = buf[i - 1] - '0';
    *pos = i;
    return 1;
}

/*
 * Validates the request line "method SP request-target SP HTTP-version CRLF" (RFC 9112 3),
 * complete or not. Returns the offset of the line's CR when the line is complete and valid,
 * 0 when more bytes are needed, SHUNT_EPARSE at the first bad byte.
 */
static long scan_request_line(const char *buf, size_t len, size_t max_line,
                              struct shunt_http_error *err)
{
    size_t end = len < max_line ? len : max_line;
    size_t i = 0;
    int r, minor;

    while (i < end && HAS(buf[i], C_TCHAR))
        i++;
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL || (buf[i] == ' ' && i == 0))
        return fail(err, SHUNT_HTTP_R_BAD_START_LINE, i);
    if (buf[i] != ' ')
        return fail(err, SHUNT_HTTP_R_BAD_METHOD, i);

    size_t target = ++i;
    while (i < end && HAS(buf[i], C_VCHAR))
        i++;
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL || (buf[i] == ' ' && i == target))
        return fail(err, SHUNT_HTTP_R_BAD_START_LINE, i);
    if (buf[i] != ' ')
        return fail(err, SHUNT_HTTP_R_BAD_TARGET, i);

    i++;
    r = match_version(buf, len, &i, max_line, &minor, err);
    if (r <= 0)
        return r;
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL)
        return (long)i;
    return fail(err, buf[i] == ' ' ? SHUNT_HTTP_R_BAD_START_LINE : SHUNT_HTTP_R_BAD_VERSION, i);
}

/*
 * Validates the status line "HTTP-version SP status-code SP [reason-phrase] CRLF" (RFC 9112
 * 4); "HTTP/1.1 200" with neither SP nor reason is accepted too, as 4 recommends. Returns as
 * scan_request_line().
 */
static long scan_status_line(const char *buf, size_t len, size_t max_line,
                             struct shunt_http_error *err)
{
    size_t i = 0;
    int r, minor;

    r = match_version(buf, len, &i, max_line, &minor, err);
    if (r <= 0)
        return r;
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL)
        return fail(err, SHUNT_HTTP_R_BAD_START_LINE, i);
    if (buf[i] != ' ')
        return fail(err, SHUNT_HTTP_R_BAD_VERSION, i);
    i++;

    for (size_t k = 0; k < 3; k++, i++) {
        if (i == len)
            return 0;
        r = sl_classify(buf, len, i, max_line, err);
        if (r <= SL_MORE)
            return r;
        char c = buf[i];
        if (r == SL_OTHER && c >= (k == 0 ? '1' : '0') && c <= '9')
            continue;
        if (r == SL_OTHER && k == 0 && c == ' ')
            return fail(err, SHUNT_HTTP_R_BAD_START_LINE, i);
        return fail(err, SHUNT_HTTP_R_BAD_STATUS, i);
    }
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL)
        return (long)i;
    if (buf[i] != ' ')
        return fail(err, SHUNT_HTTP_R_BAD_STATUS, i);

    i = skip_fval(buf, len < max_line ? len : max_line, i + 1);
    if (i == len)
        return 0;
    r = sl_classify(buf, len, i, max_line, err);
    if (r <= SL_MORE)
        return r;
    if (r == SL_EOL)
        return (long)i;
    return fail(err, SHUNT_HTTP_R_BAD_REASON, i);
}

/* ---------------------------------------------------------------- field lines */

/*
 * Validates the field line starting at <pos> (its first byte is known to be neither CR, LF,
 * SP nor HTAB) and fills <h> with its slices. RFC 9112 5: field-name ":" OWS field-value OWS,
 * no whitespace before the colon (5.1), value bytes per RFC 9110 5.5. Returns the offset of
 * the next line when the line is complete and valid, 0 when more bytes are needed,
 * SHUNT_EPARSE at the first bad byte.
 */
static long scan_field_line(const char *buf, size_t len, size_t pos, struct shunt_http_header *h,
                            struct shunt_http_error *err)
{
    size_t i = pos;
    while (i < len && HAS(buf[i], C_TCHAR))
        i++;
    if (i == len)
        return 0;
    if (buf[i] != ':') {
        size_t j = i;
        if (IS_WS(buf[i])) {
            /* Whitespace then colon is the smuggling vector 5.1 names; whitespace then
             * another byte is a name with a space in it. The next non-blank byte decides. */
            while (j < len && IS_WS(buf[j]))
                j++;
            if (j == len)
                return 0;
            if (buf[j] == ':')
                return fail(err, SHUNT_HTTP_R_SPACE_BEFORE_COLON, i);
        }
        if (buf[j] == '\r') {
            if (j + 1 >= len)
                return 0;
            return fail(err, buf[j + 1] == '\n' ? SHUNT_HTTP_R_NO_COLON : SHUNT_HTTP_R_BARE_CR, j);
        }
        if (buf[j] == '\n')
            return fail(err, SHUNT_HTTP_R_BARE_LF, j);
        return fail(err, SHUNT_HTTP_R_BAD_HEADER_NAME, i);
    }
    if (i == pos)
        return fail(err, SHUNT_HTTP_R_BAD_HEADER_NAME, i);
    size_t name_end = i;

    i++;
    while (i < len && IS_WS(buf[i]))
        i++;
    size_t value = i;
    for (;;) {
        i = skip_fval(buf, len, i);
        if (i == len)
            return 0;
        if (buf[i] == '\r') {
            if (i + 1 >= len)
                return 0;
            if (buf[i + 1] != '\n')
                return fail(err, SHUNT_HTTP_R_BARE_CR, i);
            break;
        }
        if (buf[i] == '\n')
            return fail(err, SHUNT_HTTP_R_BARE_LF, i);
        return fail(err, SHUNT_HTTP_R_BAD_HEADER_VALUE, i);
    }
    size_t value_end = i;
    while (value_end > value && IS_WS(buf[value_end - 1]))
        value_end--;
    h->name = shunt_slice_make(buf + pos, name_end - pos);
    h->value = shunt_slice_make(buf + value, value_end - value);
    h->line = shunt_slice_make(buf + pos, i + 2 - pos);
    return (long)(i + 2);
}

/* Fills <h> from the field line at <pos>, already validated by an earlier call (the head
 * ends at <end>); returns the offset of the next line. */
static size_t slice_field_line(const char *buf, size_t pos, size_t end,
                               struct shunt_http_header *h)
{
    const char *colon = memchr(buf + pos, ':', end - pos);
    const char *lf = memchr(colon, '\n', (size_t)(buf + end - colon));
    const char *v = colon + 1, *e = lf - 1;
    while (v < e && IS_WS(*v))
        v++;
    while (e > v && IS_WS(e[-1]))
        e--;
    h->name = shunt_slice_make(buf + pos, (size_t)(colon - (buf + pos)));
    h->value = shunt_slice_make(v, (size_t)(e - v));
    h->line = shunt_slice_make(buf + pos, (size_t)(lf + 1 - (buf + pos)));
    return (size_t)(lf + 1 - buf);
}

/* ---------------------------------------------------------------- field semantics */

int shunt_http_list_each(struct shunt_slice v, shunt_http_list_cb fn, void *ctx)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (IS_WS(v.base[i]) || v.base[i] == ','))
            i++;
        if (i == v.len)
            break;
        size_t s = i;
        int quoted = 0;
        for (; i < v.len; i++) {
            char c = v.base[i];
            if (quoted && c == '\\' && i + 1 < v.len)
                i++;
            else if (c == '"')
                quoted = !quoted;
            else if (c == ',' && !quoted)
                break;
        }
        size_t e = i;
        while (e > s && IS_WS(v.base[e - 1]))
            e--;
        int r = fn(ctx, shunt_slice_make(v.base + s, e - s));
        if (r != 0)
            return r;
    }
    return 0;
}

struct sem {
    const char *buf;
    struct shunt_http_head *head;
    struct shunt_http_error *err;
    int is_response;
    size_t n_host;
    size_t n_codings_field; /* codings in the Transfer-Encoding field being read */
    size_t n_chunked;       /* "chunked" codings over all Transfer-Encoding fields */
    int last_chunked;       /* the last coding so far is chunked */
    size_t last_coding;     /* offset of the last coding */
};

#define OFF(s, p) ((size_t)((p) - (s)->buf))

static int elem_is(void *ctx, struct shunt_slice e)
{
    const struct shunt_slice *want = ctx;
    return shunt_slice_ieq(e, want->base, want->len);
}

int shunt_http_list_has(struct shunt_slice value, const char *token, size_t len)
{
    struct shunt_slice want = shunt_slice_make(token, len);
    return shunt_http_list_each(value, elem_is, &want) != 0;
}

static int conn_elem(void *ctx, struct shunt_slice e)
{
    struct shunt_http_head *head = ((struct sem *)ctx)->head;
    if (SHUNT_SLICE_IEQ_LIT(e, "close"))
        head->conn_close = 1;
    else if (SHUNT_SLICE_IEQ_LIT(e, "keep-alive"))
        head->conn_keep_alive = 1;
    else if (SHUNT_SLICE_IEQ_LIT(e, "upgrade"))
        head->conn_upgrade = 1;
    return 0;
}

static int expect_elem(void *ctx, struct shunt_slice e)
{
    if (SHUNT_SLICE_IEQ_LIT(e, "100-continue"))
        ((struct sem *)ctx)->head->expect_continue = 1;
    return 0;
}

/* Skips OWS in <e> from <i>. */
static size_t skip_ws(struct shunt_slice e, size_t i)
{
    while (i < e.len && IS_WS(e.base[i]))
        i++;
    return i;
}

/* Skips a token in <e> from <i>; returns <i> unchanged when there is none. */
static size_t skip_token(struct shunt_slice e, size_t i)
{
    while (i < e.len && HAS(e.base[i], C_TCHAR))
        i++;
    return i;
}

/* One transfer-coding: token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) )
 * (RFC 9112 7, RFC 9110 10.1.4). */
static int te_elem(void *ctx, struct shunt_slice e)
{
    struct sem *s = ctx;
    size_t i = skip_token(e, 0);
    if (i == 0)
        return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base));
    struct shunt_slice name = shunt_slice_make(e.base, i);
    int chunked = SHUNT_SLICE_IEQ_LIT(name, "chunked");
    int params = 0;
    for (;;) {
        i = skip_ws(e, i);
        if (i == e.len)
            break;
        if (e.base[i] != ';')
            return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base + i));
        params = 1;
        i = skip_ws(e, i + 1);
        size_t n = skip_token(e, i);
        if (n == i)
            return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base + i));
        i = skip_ws(e, n);
        if (i == e.len || e.base[i] != '=')
            return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base + i));
        i = skip_ws(e, i + 1);
        if (i < e.len && e.base[i] == '"') {
            for (i++; i < e.len && e.base[i] != '"'; i++) {
                if (e.base[i] == '\\' && i + 1 < e.len)
                    i++;
                else if (!HAS(e.base[i], C_QDTEXT))
                    break;
            }
            if (i == e.len || e.base[i] != '"')
                return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base + i));
            i++;
        } else {
            n = skip_token(e, i);
            if (n == i)
                return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING, OFF(s, e.base + i));
            i = n;
        }
    }
    /* RFC 9112 6.1: a sender must not apply chunked more than once; a recipient that
     * decodes it once and one that decodes it twice disagree on where the body ends. */
    if (chunked && s->n_chunked++ > 0)
        return fail(s->err, SHUNT_HTTP_R_TE_CHUNKED_TWICE, OFF(s, e.base));
    /* RFC 9112 7.1 defines no parameters for chunked: one that ignores them and one that
     * refuses the coding read the message differently. */
    if (chunked && params)
        return fail(s->err, SHUNT_HTTP_R_TE_CHUNKED_PARAMS, OFF(s, e.base));
    /* A request coding the proxy does not know may be one the server frames by (RFC 9112
     * 6.1: a server that does not understand a coding answers 501; a proxy in between must
     * not guess). The IANA registry's codings, other than the reserved ones. */
    if (!s->is_response && !chunked && !SHUNT_SLICE_IEQ_LIT(name, "gzip") &&
        !SHUNT_SLICE_IEQ_LIT(name, "x-gzip") && !SHUNT_SLICE_IEQ_LIT(name, "deflate") &&
        !SHUNT_SLICE_IEQ_LIT(name, "compress") && !SHUNT_SLICE_IEQ_LIT(name, "x-compress"))
        return fail(s->err, SHUNT_HTTP_R_TE_UNKNOWN, OFF(s, e.base));
    s->n_codings_field++;
    s->last_chunked = chunked;
    s->last_coding = OFF(s, e.base);
    return 0;
}

/* Content-Length = 1*DIGIT; a list of identical values is taken as one (RFC 9112 6.3
 * rule 5, RFC 9110 8.6). Empty elements are not accepted here. */
static int cl_field(struct sem *s, struct shunt_slice v)
{
    struct shunt_http_head *head = s->head;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        uint64_t n = 0;
        for (; i < v.len && v.base[i] >= '0' && v.base[i] <= '9'; i++) {
            unsigned d = (unsigned)(v.base[i] - '0');
            if (n > (UINT64_MAX - d) / 10)
                return fail(s->err, SHUNT_HTTP_R_BAD_CONTENT_LENGTH, OFF(s, v.base + i));
            n = n * 10 + d;
        }
        if (i == start)
            return fail(s->err, SHUNT_HTTP_R_BAD_CONTENT_LENGTH, OFF(s, v.base + i));
        if (head->has_cl && head->content_length != n)
            return fail(s->err, SHUNT_HTTP_R_CONFLICTING_CONTENT_LENGTH, OFF(s, v.base + start));
        if (head->has_cl)
            head->cl_repeated = 1;
        head->has_cl = 1;
        head->content_length = n;
        i = skip_ws(v, i);
        if (i == v.len)
            return 0;
        if (v.base[i] != ',')
            return fail(s->err, SHUNT_HTTP_R_BAD_CONTENT_LENGTH, OFF(s, v.base + i));
        i = skip_ws(v, i + 1);
    }
}

/*
 * Checks a Host value against RFC 9112 3.2: Host = uri-host [ ":" port ], with RFC 3986
 * 3.2.2's uri-host = IP-literal / IPv4address / reg-name. Returns the offset in <v> of the
 * first byte that breaks it, or -1 when the value is valid. An empty value is valid (3.2:
 * a target without authority). Stricter than the grammar, since a downstream parser could
 * read these otherwise: a comma (reg-name allows it, but a recipient that takes Host as a
 * list routes by the first element) and a port over 65535 (parsers overflow differently).
 */
static long host_value(struct shunt_slice v)
{
    const char *p = v.base;
    size_t i = 0, n = v.len;
    if (n == 0)
        return -1;
    if (p[0] == '[') {
        /* IP-literal: IPv6address / IPvFuture; their bytes are within these */
        for (i = 1; i < n && p[i] != ']'; i++) {
            char c = p[i];
            if (!(IS_HEX_(c) || c == ':' || c == '.' || c == 'v' || c == 'V'))
                return (long)i;
        }
        if (i == n || i == 1)
            return (long)i;
        i++;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            char c = p[i];
            if (c == '%') {
                if (i + 2 >= n || !IS_HEX_(p[i + 1]) || !IS_HEX_(p[i + 2]))
                    return (long)i;
                i += 2;
                continue;
            }
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != 0 && strchr("-._~!$&'()*+;=", c) != NULL))
                continue;
            return (long)i;
        }
    }
    if (i == n)
        return -1;
    if (p[i] != ':')
        return (long)i;
    uint32_t port = 0;
    for (size_t k = i + 1; k < n; k++) {
        if (p[k] < '0' || p[k] > '9')
            return (long)k;
        port = port * 10 + (uint32_t)(p[k] - '0');
        if (port > 65535)
            return (long)k;
    }
    return -1;
}

/* Reads the fields that bear on framing and connection handling, in wire order, then
 * derives the framing. */
static int interpret(struct sem *s)
{
    struct shunt_http_head *head = s->head;
    int r;

    for (size_t k = 0; k < head->n_headers; k++) {
        const struct shunt_http_header *h = &head->headers[k];
        struct shunt_slice n = h->name;
        size_t line = OFF(s, h->line.base);
        switch (n.len) {
        case 4:
            if (!s->is_response && SHUNT_SLICE_IEQ_LIT(n, "host")) {
                if (s->n_host++ > 0)
                    return fail(s->err, SHUNT_HTTP_R_MULTIPLE_HOST, line);
                long bad = host_value(h->value);
                if (bad >= 0) /* RFC 9112 3.2: an invalid Host value gets a 400 */
                    return fail(s->err, SHUNT_HTTP_R_BAD_HOST, OFF(s, h->value.base + bad));
                head->host = h->value;
            }
            break;
        case 6:
            if (!s->is_response && SHUNT_SLICE_IEQ_LIT(n, "expect"))
                (void)shunt_http_list_each(h->value, expect_elem, s);
            break;
        case 7:
            if (SHUNT_SLICE_IEQ_LIT(n, "upgrade"))
                head->has_upgrade = 1;
            break;
        case 10:
            if (SHUNT_SLICE_IEQ_LIT(n, "connection"))
                (void)shunt_http_list_each(h->value, conn_elem, s);
            break;
        case 14:
            if (SHUNT_SLICE_IEQ_LIT(n, "content-length")) {
                r = cl_field(s, h->value);
                if (r < 0)
                    return r;
                if (head->has_te)
                    return fail(s->err, SHUNT_HTTP_R_TE_AND_CL, line);
            }
            break;
        case 17:
            if (SHUNT_SLICE_IEQ_LIT(n, "transfer-encoding")) {
                /* RFC 9112 6.1: TE in HTTP/1.0 means the framing is faulty. */
                if (head->minor_version == 0)
                    return fail(s->err, SHUNT_HTTP_R_TE_HTTP10, line);
                /* RFC 9112 6.3 rule 3: TE with CL is a smuggling attempt; reject. */
                if (head->has_cl)
                    return fail(s->err, SHUNT_HTTP_R_TE_AND_CL, line);
                head->has_te = 1;
                s->n_codings_field = 0;
                r = shunt_http_list_each(h->value, te_elem, s);
                if (r < 0)
                    return r;
                if (s->n_codings_field == 0)
                    return fail(s->err, SHUNT_HTTP_R_BAD_TRANSFER_ENCODING,
                                OFF(s, h->value.base));
            }
            break;
        default:
            break;
        }
    }

    if (head->has_te) {
        if (s->last_chunked)
            head->framing = SHUNT_HTTP_BODY_CHUNKED;
        else if (s->is_response)
            head->framing = SHUNT_HTTP_BODY_CLOSE; /* RFC 9112 6.3 rule 4 */
        else
            return fail(s->err, SHUNT_HTTP_R_TE_NOT_CHUNKED, s->last_coding);
    } else if (head->has_cl) {
        head->framing = SHUNT_HTTP_BODY_LENGTH;
    } else {
        head->framing = s->is_response ? SHUNT_HTTP_BODY_CLOSE : SHUNT_HTTP_BODY_NONE;
    }
    if (s->is_response) {
        if ((head->status >= 100 && head->status < 200) || head->status == 204 ||
            head->status == 304)
            head->framing = SHUNT_HTTP_BODY_NONE; /* RFC 9112 6.3 rule 1 */
    } else if (head->minor_version == 1 && s->n_host == 0) {
        /* RFC 9112 3.2: a 1.1 request must carry Host. The offset is the empty line. */
        return fail(s->err, SHUNT_HTTP_R_NO_HOST, head->head_len - 2);
    }
    return 0;
}

/* ---------------------------------------------------------------- head parser */

static size_t scan_checksum(size_t len, size_t pos, size_t fields)
{
    return (len * 31u + pos) * 131u + fields + (size_t)0x5348554e54u;
}

/*
 * The whole head parse, shared by requests and responses. See shunt_http_parse_request().
 */
static int parse_head(int is_response, const char *buf, size_t len, size_t last_len,
                      struct shunt_http_head *head, struct shunt_http_header *headers,
                      size_t max_headers, const struct shunt_http_limits *lim,
                      struct shunt_http_error *err)
{
    size_t max_fields = max_headers < lim->max_headers ? max_headers : lim->max_headers;
    /* Bytes past max_head can't be part of an acceptable head: validating only up to there
     * makes "over the limit" fall out of the same left-to-right pass. */
    size_t max_head = lim->max_head < INT_MAX ? lim->max_head : INT_MAX; /* fits the return */
    size_t vlen = len < max_head ? len : max_head;
    size_t pos = 0, n = 0, first_new = 0;
    long r;

    err->reason = SHUNT_HTTP_R_NONE;
    err->offset = 0;

    if (last_len != 0 && last_len <= len && head->_scan_len == last_len &&
        head->_scan_pos <= last_len && head->_scan_fields <= max_fields &&
        head->_scan_check == scan_checksum(last_len, head->_scan_pos, head->_scan_fields)) {
        pos = head->_scan_pos;
        n = head->_scan_fields;
        first_new = n;
    }

    if (pos == 0) {
        r = is_response ? scan_status_line(buf, vlen, lim->max_line, err)
                        : scan_request_line(buf, vlen, lim->max_line, err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            goto need_more;
        pos = (size_t)r + 2;
    }

    for (;;) {
        if (pos >= vlen)
            goto need_more;
        char c = buf[pos];
        if (c == '\r') {
            if (pos + 1 >= vlen)
                goto need_more;
            if (buf[pos + 1] != '\n')
                return fail(err, SHUNT_HTTP_R_BARE_CR, pos);
            pos += 2;
            break;
        }
        if (c == '\n')
            return fail(err, SHUNT_HTTP_R_BARE_LF, pos);
        if (IS_WS(c)) {
            /* RFC 9112 5.2: obs-fold is rejected. Whitespace before the first field (2.2)
             * is not a fold of anything; it is a field line with a bad name. */
            return fail(err, n > 0 ? SHUNT_HTTP_R_OBS_FOLD : SHUNT_HTTP_R_BAD_HEADER_NAME, pos);
        }
        if (n >= max_fields)
            return fail(err, SHUNT_HTTP_R_TOO_MANY_HEADERS, pos);
        r = scan_field_line(buf, vlen, pos, &headers[n], err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            goto need_more;
        pos = (size_t)r;
        n++;
    }

    /* Complete: fill <head>. Lines validated by earlier calls are sliced again here, since
     * the buffer may have moved since. */
    *head = (struct shunt_http_head){0};
    head->headers = headers;
    head->n_headers = n;
    head->head_len = pos;
    const char *cr = memchr(buf, '\r', pos);
    head->start_line = shunt_slice_make(buf, (size_t)(cr - buf));
    if (is_response) {
        head->minor_version = buf[7] - '0';
        head->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
        if (head->start_line.len > 12)
            head->reason = shunt_slice_make(buf + 13, head->start_line.len - 13);
        else
            head->reason = shunt_slice_make(cr, 0);
    } else {
        const char *sp1 = memchr(buf, ' ', head->start_line.len);
        const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(cr - sp1 - 1));
        head->method = shunt_slice_make(buf, (size_t)(sp1 - buf));
        head->target = shunt_slice_make(sp1 + 1, (size_t)(sp2 - sp1 - 1));
        head->minor_version = cr[-1] - '0';
    }
    if (first_new > 0) {
        size_t p = (size_t)(cr - buf) + 2;
        for (size_t k = 0; k < first_new; k++)
            p = slice_field_line(buf, p, pos, &headers[k]);
    }

    struct sem s = {.buf = buf, .head = head, .err = err, .is_response = is_response};
    int rc = interpret(&s);
    if (rc < 0)
        return rc;
    return (int)pos;

need_more:
    if (len > max_head)
        return fail(err, SHUNT_HTTP_R_HEAD_TOO_LARGE, max_head);
    head->_scan_len = len;
    head->_scan_pos = pos;
    head->_scan_fields = n;
    head->_scan_check = scan_checksum(len, pos, n);
    return 0;
}

int shunt_http_parse_request(const char *buf, size_t len, size_t last_len,
                             struct shunt_http_head *head, struct shunt_http_header *headers,
                             size_t max_headers, const struct shunt_http_limits *lim,
                             struct shunt_http_error *err)
{
    return parse_head(0, buf, len, last_len, head, headers, max_headers, lim, err);
}

int shunt_http_parse_response(const char *buf, size_t len, size_t last_len,
                              struct shunt_http_head *head, struct shunt_http_header *headers,
                              size_t max_headers, const struct shunt_http_limits *lim,
                              struct shunt_http_error *err)
{
    return parse_head(1, buf, len, last_len, head, headers, max_headers, lim, err);
}

enum shunt_http_framing shunt_http_response_framing(const struct shunt_http_head *head,
                                                    int request_was_head,
                                                    int request_was_connect)
{
    /* RFC 9112 6.3 rules 1 and 2. */
    if (request_was_head)
        return SHUNT_HTTP_BODY_NONE;
    if ((head->status >= 100 && head->status < 200) || head->status == 204 ||
        head->status == 304)
        return SHUNT_HTTP_BODY_NONE;
    if (request_was_connect && head->status >= 200 && head->status < 300)
        return SHUNT_HTTP_BODY_NONE;
    return head->framing;
}

int shunt_http_keeps_alive(const struct shunt_http_head *head)
{
    if (head->conn_close)
        return 0;
    return head->minor_version >= 1 || head->conn_keep_alive;
}

const struct shunt_http_header *shunt_http_find_header(const struct shunt_http_head *head,
                                                       const char *name, size_t name_len)
{
    for (size_t k = 0; k < head->n_headers; k++)
        if (shunt_slice_ieq(head->headers[k].name, name, name_len))
            return &head->headers[k];
    return NULL;
}

/* ---------------------------------------------------------------- body framing */

/* Chunked decoder states (RFC 9112 7.1). */
enum {
    CH_SIZE_FIRST,  /* expecting the first hex digit of a chunk-size */
    CH_SIZE,        /* in the chunk-size */
    CH_SIZE_WS,     /* BWS after the size: only ';' may follow */
    CH_EXT_PRE,     /* after ';', BWS before the extension name */
    CH_EXT_NAME,    /* in the extension name */
    CH_EXT_POST,    /* BWS after the name: '=' or ';' follows */
    CH_EXT_PRE_VAL, /* after '=', BWS before the value */
    CH_EXT_TOKEN,   /* in a token value */
    CH_EXT_QUOTED,  /* in a quoted-string value */
    CH_EXT_ESC,     /* after a backslash in a quoted-string */
    CH_EXT_AFTER_Q, /* right after the closing quote */
    CH_EXT_WS,      /* BWS after a value: only ';' may follow */
    CH_SIZE_LF,     /* after the size line's CR */
    CH_DATA,        /* in chunk data, <remaining> bytes left */
    CH_DATA_CR,     /* expecting the CR after chunk data */
    CH_DATA_LF,     /* expecting the LF after chunk data */
    CH_TR_START,    /* at the start of a trailer line (or of the final empty line) */
    CH_TR_NAME,     /* in a trailer field name */
    CH_TR_VALUE,    /* in a trailer field value */
    CH_TR_LF,       /* after a trailer line's CR */
    CH_TR_END_LF,   /* after the CR of the final empty line */
    CH_DONE,
    CH_ERROR,
};

void shunt_http_body_init(struct shunt_http_body *body, enum shunt_http_framing framing,
                          uint64_t content_length, const struct shunt_http_limits *lim)
{
    *body = (struct shunt_http_body){0};
    body->framing = framing;
    body->_lim = *lim;
    body->_state = CH_SIZE_FIRST;
    if (framing == SHUNT_HTTP_BODY_LENGTH)
        body->remaining = content_length;
    if (framing == SHUNT_HTTP_BODY_NONE ||
        (framing == SHUNT_HTTP_BODY_LENGTH && content_length == 0))
        body->done = 1;
}

/* Marks <body> failed; later calls fail again with the same reason at offset 0. */
static long body_fail(struct shunt_http_body *body, struct shunt_http_error *err,
                      enum shunt_http_reason reason, size_t offset)
{
    body->_state = CH_ERROR;
    body->_size = (uint64_t)reason;
    return fail(err, reason, offset);
}

/* At the byte <c> (offset <i>) that can't continue a size or extension line: a CR starts the
 * line's end (*st becomes CH_SIZE_LF) and 0 is returned; a bare LF or anything else is
 * rejected, the latter with <reason>. */
static long line_end(struct shunt_http_body *body, struct shunt_http_error *err, unsigned char c,
                     size_t i, enum shunt_http_reason reason, int *st)
{
    if (c == '\r') {
        *st = CH_SIZE_LF;
        return 0;
    }
    return body_fail(body, err, c == '\n' ? SHUNT_HTTP_R_CHUNK_LINE_ENDING : reason, i);
}

/* The chunked framing, one state transition per byte except in chunk data. */
static long scan_chunked(struct shunt_http_body *body, const char *buf, size_t len,
                         shunt_http_data_cb on_data, void *ud, struct shunt_http_error *err)
{
    int st = body->_state;
    size_t i = 0;

    while (i < len) {
        if (st == CH_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > body->remaining)
                n = (size_t)body->remaining;
            if (on_data != NULL)
                on_data(ud, buf + i, n);
            body->remaining -= n;
            body->payload += n;
            i += n;
            if (body->remaining == 0)
                st = CH_DATA_CR;
            continue;
        }
        unsigned char c = (unsigned char)buf[i];
        /* Size and extension lines are bounded by max_line, CRLF excluded. */
        if (st <= CH_EXT_WS && c != '\r' && c != '\n' && ++body->_line > body->_lim.max_line)
            return body_fail(body, err, SHUNT_HTTP_R_LINE_TOO_LONG, i);
        /* The trailer section, final CRLF included, is bounded by max_head. */
        if (st >= CH_TR_START && st <= CH_TR_END_LF && ++body->_line > body->_lim.max_head)
            return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i);
        i++;
        switch (st) {
        case CH_SIZE_FIRST:
        case CH_SIZE: {
            unsigned d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                d = (c | 0x20) - 'a' + 10;
            else if (st == CH_SIZE_FIRST)
                return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_SIZE, i - 1);
            else {
                if (IS_WS(c)) {
                    st = CH_SIZE_WS;
                    continue;
                }
                if (c == ';') {
                    st = CH_EXT_PRE;
                    continue;
                }
                if (line_end(body, err, c, i - 1, SHUNT_HTTP_R_BAD_CHUNK_SIZE, &st) < 0)
                    return SHUNT_EPARSE;
                continue;
            }
            /* Sizes are kept below 2^63 so that they fit any signed 64-bit consumer. */
            if (body->_size >= ((uint64_t)1 << 59))
                return body_fail(body, err, SHUNT_HTTP_R_CHUNK_SIZE_OVERFLOW, i - 1);
            body->_size = body->_size * 16 + d;
            st = CH_SIZE;
            continue;
        }
        case CH_SIZE_WS:
        case CH_EXT_WS:
            if (IS_WS(c))
                continue;
            if (c == ';') {
                st = CH_EXT_PRE;
                continue;
            }
            return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
        case CH_EXT_PRE:
            if (IS_WS(c))
                continue;
            if (HAS(c, C_TCHAR)) {
                st = CH_EXT_NAME;
                continue;
            }
            return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
        case CH_EXT_NAME:
        case CH_EXT_TOKEN:
            if (HAS(c, C_TCHAR))
                continue;
            if (IS_WS(c)) {
                st = st == CH_EXT_NAME ? CH_EXT_POST : CH_EXT_WS;
                continue;
            }
            if (c == '=' && st == CH_EXT_NAME) {
                st = CH_EXT_PRE_VAL;
                continue;
            }
            if (c == ';') {
                st = CH_EXT_PRE;
                continue;
            }
            if (line_end(body, err, c, i - 1, SHUNT_HTTP_R_BAD_CHUNK_EXT, &st) < 0)
                return SHUNT_EPARSE;
            continue;
        case CH_EXT_POST:
            if (IS_WS(c))
                continue;
            if (c == '=') {
                st = CH_EXT_PRE_VAL;
                continue;
            }
            if (c == ';') {
                st = CH_EXT_PRE;
                continue;
            }
            return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
        case CH_EXT_PRE_VAL:
            if (IS_WS(c))
                continue;
            if (HAS(c, C_TCHAR)) {
                st = CH_EXT_TOKEN;
                continue;
            }
            if (c == '"') {
                st = CH_EXT_QUOTED;
                continue;
            }
            return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
        case CH_EXT_QUOTED:
            if (c == '"')
                st = CH_EXT_AFTER_Q;
            else if (c == '\\')
                st = CH_EXT_ESC;
            else if (!HAS(c, C_QDTEXT))
                return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
            continue;
        case CH_EXT_ESC:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!HAS(c, C_FVAL))
                return body_fail(body, err, SHUNT_HTTP_R_BAD_CHUNK_EXT, i - 1);
            st = CH_EXT_QUOTED;
            continue;
        case CH_EXT_AFTER_Q:
            if (IS_WS(c)) {
                st = CH_EXT_WS;
                continue;
            }
            if (c == ';') {
                st = CH_EXT_PRE;
                continue;
            }
            if (line_end(body, err, c, i - 1, SHUNT_HTTP_R_BAD_CHUNK_EXT, &st) < 0)
                return SHUNT_EPARSE;
            continue;
        case CH_SIZE_LF:
            if (c != '\n')
                return body_fail(body, err, SHUNT_HTTP_R_CHUNK_LINE_ENDING, i - 1);
            body->_line = 0;
            if (body->_size == 0) {
                st = CH_TR_START;
                if (body->hold_trailers) { /* the caller reads them whole */
                    body->_state = st;
                    body->at_trailers = 1;
                    return (long)i;
                }
            } else {
                body->remaining = body->_size;
                body->_size = 0;
                st = CH_DATA;
            }
            continue;
        case CH_DATA_CR:
            if (c != '\r')
                return body_fail(body, err, SHUNT_HTTP_R_CHUNK_LINE_ENDING, i - 1);
            st = CH_DATA_LF;
            continue;
        case CH_DATA_LF:
            if (c != '\n')
                return body_fail(body, err, SHUNT_HTTP_R_CHUNK_LINE_ENDING, i - 1);
            st = CH_SIZE_FIRST;
            continue;
        case CH_TR_START:
            if (c == '\r') {
                st = CH_TR_END_LF;
                continue;
            }
            /* Trailer fields follow the field syntax (RFC 9112 7.1.2), obs-fold excluded. */
            if (!HAS(c, C_TCHAR) || ++body->_n_trailers > body->_lim.max_headers)
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i - 1);
            st = CH_TR_NAME;
            continue;
        case CH_TR_NAME:
            if (c == ':') {
                st = CH_TR_VALUE;
                continue;
            }
            if (!HAS(c, C_TCHAR))
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i - 1);
            continue;
        case CH_TR_VALUE:
            if (c == '\r') {
                st = CH_TR_LF;
                continue;
            }
            if (!HAS(c, C_FVAL))
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i - 1);
            continue;
        case CH_TR_LF:
            if (c != '\n')
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i - 1);
            st = CH_TR_START;
            continue;
        case CH_TR_END_LF:
            if (c != '\n')
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, i - 1);
            body->_state = CH_DONE;
            body->done = 1;
            return (long)i;
        default:
            break;
        }
    }
    body->_state = st;
    return (long)i;
}

long shunt_http_body_scan(struct shunt_http_body *body, const char *buf, size_t len,
                          shunt_http_data_cb on_data, void *ud, struct shunt_http_error *err)
{
    err->reason = SHUNT_HTTP_R_NONE;
    err->offset = 0;
    if (body->_state == CH_ERROR)
        return fail(err, (enum shunt_http_reason)body->_size, 0);
    if (body->done || body->at_trailers || len == 0)
        return 0;
    if (len > LONG_MAX)
        len = LONG_MAX;

    switch (body->framing) {
    case SHUNT_HTTP_BODY_LENGTH: {
        size_t n = len;
        if ((uint64_t)n > body->remaining)
            n = (size_t)body->remaining;
        if (on_data != NULL && n > 0)
            on_data(ud, buf, n);
        body->remaining -= n;
        body->payload += n;
        if (body->remaining == 0)
            body->done = 1;
        return (long)n;
    }
    case SHUNT_HTTP_BODY_CLOSE:
        if (on_data != NULL)
            on_data(ud, buf, len);
        body->payload += len;
        return (long)len;
    case SHUNT_HTTP_BODY_CHUNKED:
        return scan_chunked(body, buf, len, on_data, ud, err);
    case SHUNT_HTTP_BODY_NONE:
    default:
        return 0;
    }
}

long shunt_http_body_trailers(struct shunt_http_body *body, const char *buf, size_t len,
                              struct shunt_http_header *fields, size_t max_fields,
                              size_t *n_fields, struct shunt_http_error *err)
{
    size_t max_head = body->_lim.max_head;
    size_t max_n = max_fields < body->_lim.max_headers ? max_fields : body->_lim.max_headers;
    /* bytes past max_head cannot belong to an acceptable section (as in parse_head()) */
    size_t vlen = len < max_head ? len : max_head;
    size_t pos = 0, n = 0;

    err->reason = SHUNT_HTTP_R_NONE;
    err->offset = 0;
    *n_fields = 0;
    if (body->_state == CH_ERROR)
        return fail(err, (enum shunt_http_reason)body->_size, 0);
    if (!body->at_trailers)
        return body->done ? 0 : body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, 0);
    for (;;) {
        if (pos >= vlen)
            goto more;
        char c = buf[pos];
        if (c == '\r') {
            if (pos + 1 >= vlen)
                goto more;
            if (buf[pos + 1] != '\n')
                return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, pos + 1);
            pos += 2;
            break;
        }
        /* a field line; no obs-fold, no whitespace first (RFC 9112 7.1.2, 5.2) */
        if (c == '\n' || IS_WS(c) || n >= max_n)
            return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, pos);
        long r = scan_field_line(buf, vlen, pos, &fields[n], err);
        if (r < 0)
            return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, err->offset);
        if (r == 0)
            goto more;
        pos = (size_t)r;
        n++;
    }
    body->at_trailers = 0;
    body->_state = CH_DONE;
    body->done = 1;
    *n_fields = n;
    return (long)pos;

more:
    /* max_head bytes and still not whole: it cannot fit. The offset is the byte that will
     * not fit, as a scan passing over the section reports it: with exactly max_head bytes
     * given, the one after them. */
    if (len >= max_head)
        return body_fail(body, err, SHUNT_HTTP_R_BAD_TRAILER, max_head);
    return 0;
}

int shunt_http_body_eof(struct shunt_http_body *body)
{
    if (body->done)
        return 1;
    if (body->framing == SHUNT_HTTP_BODY_CLOSE && body->_state != CH_ERROR) {
        body->done = 1;
        return 1;
    }
    return 0;
}
