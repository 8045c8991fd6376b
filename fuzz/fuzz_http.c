/* fuzz/fuzz_http.c - libFuzzer driver for the HTTP/1.1 head parser and the body framer.
 *
 * The first byte picks the mode: (byte & 3) == 0 parses a request head, 1 a response head,
 * 2 frames a chunked body (passing over its trailers, and again holding them as the proxy
 * does, which must agree), 3 a Content-Length body of (byte >> 2) * 3 bytes. Bit 2 of the
 * first byte selects small limits for the head modes so that the limit paths are reached.
 * The rest is fed whole and then in pieces whose sizes come from the input itself; both
 * runs must agree exactly, and every length, offset and slice must stay within the input.
 * Each piecewise call sees an exact-size heap copy, so ASan catches any read past the end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_FIELDS 128

/* Piece sizes 1..32 taken from the input bytes, cycling. */
static size_t piece_size(const uint8_t *data, size_t size, size_t k)
{
    return size == 0 ? 1 : 1 + (data[(k * 7) % size] & 31);
}

static void check_slice(struct shunt_slice s, const char *buf, size_t len)
{
    if (s.len == 0)
        return;
    CHECK(s.base >= buf && s.base <= buf + len);
    CHECK(s.len <= (size_t)(buf + len - s.base));
}

struct run {
    int ret;
    struct shunt_http_error err;
    struct shunt_http_head head;
    struct shunt_http_header headers[MAX_FIELDS];
    char *buf; /* the copy the deciding call saw */
};

static int parse(int response, const char *buf, size_t len, size_t last_len, struct run *r,
                 const struct shunt_http_limits *lim)
{
    if (response)
        return shunt_http_parse_response(buf, len, last_len, &r->head, r->headers, MAX_FIELDS,
                                         lim, &r->err);
    return shunt_http_parse_request(buf, len, last_len, &r->head, r->headers, MAX_FIELDS, lim,
                                    &r->err);
}

static void check_head(int response, const struct run *r, size_t len,
                       const struct shunt_http_limits *lim)
{
    CHECK(r->ret == SHUNT_EPARSE || (r->ret >= 0 && (size_t)r->ret <= len));
    if (r->ret == SHUNT_EPARSE) {
        CHECK(r->err.reason != SHUNT_HTTP_R_NONE);
        CHECK(r->err.offset < len);
        return;
    }
    CHECK(r->err.reason == SHUNT_HTTP_R_NONE);
    if (r->ret == 0)
        return;
    const struct shunt_http_head *h = &r->head;
    size_t hl = h->head_len;
    CHECK(hl == (size_t)r->ret && hl <= lim->max_head);
    CHECK(h->n_headers <= lim->max_headers);
    CHECK(h->minor_version == 0 || h->minor_version == 1);
    CHECK(h->start_line.len <= lim->max_line);
    check_slice(h->method, r->buf, hl);
    check_slice(h->target, r->buf, hl);
    check_slice(h->reason, r->buf, hl);
    check_slice(h->start_line, r->buf, hl);
    check_slice(h->host, r->buf, hl);
    /* The slices give back the head byte for byte: start line, CRLF, lines, CRLF. */
    CHECK(h->start_line.base == r->buf);
    const char *next = r->buf + h->start_line.len + 2;
    for (size_t k = 0; k < h->n_headers; k++) {
        CHECK(h->headers[k].line.base == next);
        next += h->headers[k].line.len;
        check_slice(h->headers[k].name, r->buf, hl);
        check_slice(h->headers[k].value, r->buf, hl);
        check_slice(h->headers[k].line, r->buf, hl);
        CHECK(h->headers[k].name.len > 0);
        CHECK(h->headers[k].line.base[h->headers[k].line.len - 1] == '\n');
    }
    CHECK(next + 2 == r->buf + hl);
    CHECK(!(h->has_cl && h->has_te));
    if (h->framing == SHUNT_HTTP_BODY_LENGTH)
        CHECK(h->has_cl);
    if (h->framing == SHUNT_HTTP_BODY_CHUNKED)
        CHECK(h->has_te);
    if (response) {
        CHECK(h->status >= 100 && h->status <= 999);
    } else {
        CHECK(h->method.len > 0 && h->target.len > 0);
        CHECK(h->framing != SHUNT_HTTP_BODY_CLOSE);
    }
}

static void same_slice(struct shunt_slice a, const char *abuf, struct shunt_slice b,
                       const char *bbuf)
{
    CHECK(a.len == b.len);
    if (a.len > 0)
        CHECK(a.base - abuf == b.base - bbuf);
}

static void fuzz_head(int response, const uint8_t *data, size_t size,
                      const struct shunt_http_limits *lim)
{
    static struct run whole, step;
    const char *in = (const char *)data;

    whole.buf = malloc(size + 1);
    if (size > 0)
        memcpy(whole.buf, in, size);
    whole.ret = parse(response, whole.buf, size, 0, &whole, lim);
    check_head(response, &whole, size, lim);

    step.buf = NULL;
    step.ret = 0;
    size_t len = 0, last = 0;
    for (size_t k = 0; len < size || k == 0; k++) {
        len += piece_size(data, size, k);
        if (len > size)
            len = size;
        free(step.buf);
        step.buf = malloc(len + 1);
        if (len > 0)
            memcpy(step.buf, in, len);
        step.ret = parse(response, step.buf, len, last, &step, lim);
        check_head(response, &step, len, lim);
        last = len;
        if (step.ret != 0)
            break;
    }

    CHECK(step.ret == whole.ret);
    CHECK(step.err.reason == whole.err.reason);
    CHECK(step.err.offset == whole.err.offset);
    if (whole.ret > 0) {
        const struct shunt_http_head *a = &whole.head, *b = &step.head;
        CHECK(a->framing == b->framing && a->content_length == b->content_length);
        CHECK(a->n_headers == b->n_headers && a->status == b->status);
        CHECK(shunt_http_keeps_alive(a) == shunt_http_keeps_alive(b));
        same_slice(a->method, whole.buf, b->method, step.buf);
        same_slice(a->target, whole.buf, b->target, step.buf);
        same_slice(a->reason, whole.buf, b->reason, step.buf);
        same_slice(a->host, whole.buf, b->host, step.buf);
        for (size_t k = 0; k < a->n_headers; k++) {
            same_slice(a->headers[k].name, whole.buf, b->headers[k].name, step.buf);
            same_slice(a->headers[k].value, whole.buf, b->headers[k].value, step.buf);
            same_slice(a->headers[k].line, whole.buf, b->headers[k].line, step.buf);
        }
        (void)shunt_http_response_framing(a, data[0] & 1, data[0] & 2);
    }
    free(step.buf);
    free(whole.buf);
}

struct body_run {
    long total;  /* bytes that belong to the message, or SHUNT_EPARSE */
    size_t off;  /* absolute offset of the error */
    enum shunt_http_reason reason;
    int done;
    uint64_t payload;
    uint64_t seen; /* payload bytes the callback saw */
};

static void count(void *ud, const char *data, size_t len)
{
    CHECK(len > 0);
    CHECK(data != NULL);
    ((struct body_run *)ud)->seen += len;
}

/* Reads the trailer section of a held chunked <body> from <data>/<size> (prefixes growing
 * piece by piece from piece <*k>, as shunt_http_body_trailers() wants it whole). Returns its
 * length, 0 when the bytes end before it does, or SHUNT_EPARSE with <err>. */
static long read_trailers(struct shunt_http_body *body, const uint8_t *data, size_t size,
                          const uint8_t *all, size_t all_size, size_t *k,
                          struct shunt_http_error *err)
{
    struct shunt_http_header fields[8];
    size_t len = 0, nf = 0;
    long t = 0;
    while (len < size) {
        len += piece_size(all, all_size, (*k)++);
        if (len > size)
            len = size;
        char *p = malloc(len);
        memcpy(p, data, len);
        t = shunt_http_body_trailers(body, p, len, fields, 8, &nf, err);
        if (t > 0) {
            CHECK((size_t)t <= len && body->done && nf <= body->_lim.max_headers);
            for (size_t i = 0; i < nf; i++) {
                check_slice(fields[i].name, p, (size_t)t);
                check_slice(fields[i].value, p, (size_t)t);
                check_slice(fields[i].line, p, (size_t)t);
            }
        }
        free(p);
        if (t != 0)
            break;
    }
    /* a section that cannot fit is refused at its first byte too many, which may be the one
     * after those given */
    if (t < 0)
        CHECK(t == SHUNT_EPARSE && err->reason != SHUNT_HTTP_R_NONE && err->offset <= len);
    return t;
}

/* Frames <data> as one body: whole, or in pieces; with <hold>, a chunked scan stops in front
 * of the trailers (as the proxy reads a body whose trailers it must see), which are then
 * read whole by read_trailers(). */
static void feed_body(enum shunt_http_framing framing, uint64_t cl, const uint8_t *data,
                      size_t size, int whole, int hold, struct body_run *o)
{
    const struct shunt_http_limits lim = {64, 256, 4};
    struct shunt_http_body body;
    struct shunt_http_error err;
    size_t pos = 0, k = 0;

    memset(o, 0, sizeof(*o));
    shunt_http_body_init(&body, framing, cl, &lim);
    body.hold_trailers = hold;
    while (pos < size && !body.done) {
        long r;
        size_t n = size - pos;
        if (body.at_trailers) {
            r = read_trailers(&body, data + pos, n, data, size, &k, &err);
            if (r == 0)
                break; /* the section is not whole yet */
        } else {
            if (!whole && piece_size(data, size, k) < n)
                n = piece_size(data, size, k);
            k++;
            char *p = malloc(n);
            memcpy(p, data + pos, n);
            r = shunt_http_body_scan(&body, p, n, count, o, &err);
            free(p);
            if (r >= 0) {
                CHECK((size_t)r <= n);
                CHECK((size_t)r == n || body.done || body.at_trailers);
            } else {
                CHECK(err.offset < n);
            }
        }
        if (r < 0) {
            CHECK(r == SHUNT_EPARSE && err.reason != SHUNT_HTTP_R_NONE);
            o->total = r;
            o->reason = err.reason;
            o->off = pos + err.offset;
            return;
        }
        o->total += r;
        pos += (size_t)r;
    }
    o->done = body.done;
    o->payload = body.payload;
    CHECK(o->payload == o->seen);
    CHECK((size_t)o->total <= size);
    if (framing == SHUNT_HTTP_BODY_LENGTH)
        CHECK(o->done == (o->payload == cl));
}

static void fuzz_body(enum shunt_http_framing framing, uint64_t cl, const uint8_t *data,
                      size_t size)
{
    struct body_run a, b;
    feed_body(framing, cl, data, size, 1, 0, &a);
    feed_body(framing, cl, data, size, 0, 0, &b);
    CHECK(a.total == b.total && a.reason == b.reason && a.off == b.off);
    CHECK(a.done == b.done && a.payload == b.payload);
    if (framing != SHUNT_HTTP_BODY_CHUNKED)
        return;
    /* Holding the trailers accepts exactly what passing over them accepts: a message the
     * scan completes, the held reading completes to the same length, and the other way
     * round. One may refuse a section the other has not seen whole yet (the held reading
     * knows at max_head bytes that it cannot fit, the scan at the byte after), but never a
     * message the other completed. */
    struct body_run h;
    feed_body(framing, cl, data, size, 0, 1, &h);
    if (a.done || h.done)
        CHECK(a.done == h.done && a.total == h.total && a.payload == h.payload);
    if (h.total < 0)
        CHECK(!a.done);
    if (a.total < 0)
        CHECK(!h.done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct shunt_http_limits small = {64, 256, 4};
    const struct shunt_http_limits def = SHUNT_HTTP_LIMITS_DEFAULT;
    const struct shunt_http_limits *lim = (data[0] & 4) ? &small : &def;
    switch (data[0] & 3) {
    case 0:
        fuzz_head(0, data + 1, size - 1, lim);
        break;
    case 1:
        fuzz_head(1, data + 1, size - 1, lim);
        break;
    case 2:
        fuzz_body(SHUNT_HTTP_BODY_CHUNKED, 0, data + 1, size - 1);
        break;
    default:
        fuzz_body(SHUNT_HTTP_BODY_LENGTH, (uint64_t)(data[0] >> 2) * 3, data + 1, size - 1);
        break;
    }
    return 0;
}
