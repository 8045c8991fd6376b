/* src/proxy/framing.c - reading heads that may come in pieces, and framing bodies: where a body
 * ends, its bytes to the BODY subscribers, its trailer section as the rules leave it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "proxy/session.h"

static struct shunt_http_header *trailer_fields(struct session *s);

/*
 * Parses the head at <p> (<avail> bytes) into <h>, whose fields point into the worker's
 * header array. A head complete in one read (the usual case) costs one parse and nothing
 * else; an incomplete one gets a struct partial (*<pp>) so that later calls resume.
 * Returns what the parser returns.
 */
int shunt_proxy__parse_head(struct worker *w, parse_fn fn, struct partial **pp, const char *p,
                            size_t avail, struct shunt_http_head *h, struct shunt_http_error *e)
{
    const struct shunt_proxy_config *cfg = w->cfg;
    size_t max = cfg->limits.max_headers;
    struct partial *pt = *pp;
    int r;
    if (pt == NULL) {
        r = fn(p, avail, 0, h, w->hdrs, max, &cfg->limits, e);
        if (r != 0)
            return r;
        pt = shunt_xcalloc(sizeof(*pt) + max * sizeof(pt->hdrs[0]));
        *pp = pt;
        r = fn(p, avail, 0, &pt->head, pt->hdrs, max, &cfg->limits, e);
    } else {
        r = fn(p, avail, pt->last_len, &pt->head, pt->hdrs, max, &cfg->limits, e);
        if (r > 0) {
            *h = pt->head;
            memcpy(w->hdrs, pt->hdrs, h->n_headers * sizeof(w->hdrs[0]));
            h->headers = w->hdrs;
        }
    }
    pt->last_len = avail;
    if (r != 0) {
        free(pt);
        *pp = NULL;
    }
    return r;
}

int shunt_proxy__parse_request(struct session *s, struct shunt_http_head *h,
                               struct shunt_http_error *e)
{
    return shunt_proxy__parse_head(s->w, shunt_http_parse_request, &s->partial,
                                   s->conn.in.base + s->conn.in.off,
                                   s->conn.in.len - s->conn.in.off, h, e);
}

/* A dry run of the body bytes already here, so that a malformed chunked body is refused
 * before anything reaches the other side. Returns 0 or -1 with <e> set. */
int shunt_proxy__prescan_body(struct session *s, struct shunt_http_body *b, const char *p, size_t n,
                              struct shunt_http_error *e)
{
    struct shunt_http_body copy = *b;
    long k = shunt_http_body_scan(&copy, p, n, NULL, NULL, e);
    if (k < 0)
        return -1;
    if (copy.at_trailers) { /* a trailer section already here is checked too */
        size_t nf;
        if (shunt_http_body_trailers(&copy, p + k, n - (size_t)k, trailer_fields(s),
                                     s->w->cfg->limits.max_headers, &nf, e) < 0) {
            e->offset += (size_t)k;
            return -1;
        }
    }
    return 0;
}

/* Returns a buffer of at least <need> bytes in *<p> (capacity *<cap>), grown as needed. */
static char *scratch(char **p, size_t *cap, size_t need)
{
    if (need > *cap) {
        free(*p);
        *p = shunt_xcalloc(need);
        *cap = need;
    }
    return *p;
}

/* Passes decoded body bytes (chunk framing removed) to the BODY subscribers. */
struct body_ctx {
    struct session *s;
    int from_client;
};

static void on_body_data(void *ud, const char *p, size_t n)
{
    struct body_ctx *c = ud;
    shunt_proxy__emit_body(c->s, c->from_client, p, n);
}

/* Scans body bytes, reporting the payload when someone listens. */
static long scan_body(struct session *s, struct shunt_http_body *body, const char *p, size_t n,
                      int from_client, struct shunt_http_error *e)
{
    if (!shunt_proxy__wants(s->w->cfg, SHUNT_EV_BODY))
        return shunt_http_body_scan(body, p, n, NULL, NULL, e);
    struct body_ctx c = {s, from_client};
    return shunt_http_body_scan(body, p, n, on_body_data, &c, e);
}

/* The array trailer fields are read into: max_headers entries, made on first use. */
static struct shunt_http_header *trailer_fields(struct session *s)
{
    if (s->tr == NULL)
        s->tr = shunt_xcalloc(s->w->cfg->limits.max_headers * sizeof(s->tr[0]));
    return s->tr;
}

/*
 * Frames the body bytes at <p> (<avail>) of <body> and appends what goes out to <iov> from
 * *<n> (at most two entries): the bytes that belong to the message, as they came, except a
 * trailer section, which waits in the buffer until it is whole and then goes out without
 * the fields shunt_head_trailer_forbidden() names, each drop recorded. Returns how many bytes of <p>
 * were framed (consume them), or -1 with <e> (offset relative to <p>) when the framing is
 * invalid.
 */
long shunt_proxy__frame_body(struct session *s, struct shunt_http_body *body, const char *p,
                             size_t avail, int from_client, uv_buf_t *iov, size_t *n,
                             struct shunt_http_error *e)
{
    long k = scan_body(s, body, p, avail, from_client, e);
    if (k < 0)
        return -1;
    *n = iov_add(iov, *n, p, (size_t)k);
    if (!body->at_trailers)
        return k;
    const char *t = p + k;
    size_t nf;
    struct shunt_http_header *f = trailer_fields(s);
    long tl = shunt_http_body_trailers(body, t, avail - (size_t)k, f,
                                       s->w->cfg->limits.max_headers, &nf, e);
    if (tl < 0) {
        e->offset += (size_t)k;
        return -1;
    }
    if (tl == 0)
        return k; /* the rest of the section is still to come */
    size_t drop = 0;
    for (size_t i = 0; i < nf; i++)
        drop += shunt_head_trailer_forbidden(f[i].name);
    if (drop == 0) {
        *n = iov_add(iov, *n, t, (size_t)tl);
        return k + tl;
    }
    /* rewritten into a buffer of its own: one iov entry whatever the fields */
    scratch(&s->trbuf, &s->trbuf_cap, (size_t)tl);
    size_t out = 0;
    for (size_t i = 0; i < nf; i++) {
        if (shunt_head_trailer_forbidden(f[i].name)) {
            char what[160];
            snprintf(what, sizeof(what), "drop trailer field %.*s (RFC 9110 6.5.1)",
                     (int)(f[i].name.len > 64 ? 64 : f[i].name.len), f[i].name.base);
            shunt_proxy__emit_fix(s, from_client, what);
            continue;
        }
        memcpy(s->trbuf + out, f[i].line.base, f[i].line.len);
        out += f[i].line.len;
    }
    memcpy(s->trbuf + out, "\r\n", 2);
    iov[(*n)++] = uv_buf_init(s->trbuf, (unsigned)(out + 2));
    return k + tl;
}
