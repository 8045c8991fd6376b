/* src/proxy/head.c - the heads a proxy sends, built from a table (see head.h). */
#include "proxy/head.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* What the proxy does to a field it finds, by direction (h2o's token flags). */
enum {
    F_DROP = 1,       /* addressed to the proxy, not to the next hop: removed */
    F_ONE_LENGTH = 2, /* Content-Length: said once when the message repeats it (RFC 9110 8.6) */
    F_HOST = 4,       /* Host: set to the one the route wants (RFC 9112 3.2.2) */
};

enum { D_REQUEST, D_RESPONSE };

static const struct token {
    const char *name;
    size_t len;
    unsigned char flags[2]; /* [D_REQUEST], [D_RESPONSE] */
    const char *what;       /* the change recorded for F_DROP */
} tokens[] = {
    {"Proxy-Connection", 16, {F_DROP, 0}, "remove Proxy-Connection"},
    {"Proxy-Authorization", 19, {F_DROP, 0}, "remove Proxy-Authorization"},
    {"Content-Length", 14, {F_ONE_LENGTH, F_ONE_LENGTH}, NULL},
    {"Host", 4, {F_HOST, 0}, NULL},
};

static const struct token *lookup(struct shunt_slice name)
{
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
        if (name.len == tokens[i].len && shunt_slice_ieq(name, tokens[i].name, tokens[i].len))
            return &tokens[i];
    return NULL;
}

static void say(shunt_head_note_cb note, void *ud, const char *what, const char *by)
{
    if (note != NULL)
        note(ud, what, by);
}

/* A field whose line the builder wrote: "<name>: <value>\r\n" in <a>. */
static struct shunt_edit_field own_field(struct shunt_arena *a, struct shunt_slice name,
                                         struct shunt_slice value)
{
    size_t len = name.len + value.len + 4;
    char *l = shunt_arena_alloc(a, len);
    memcpy(l, name.base, name.len);
    memcpy(l + name.len, ": ", 2);
    if (value.len > 0)
        memcpy(l + name.len + 2, value.base, value.len);
    memcpy(l + len - 2, "\r\n", 2);
    return (struct shunt_edit_field){shunt_slice_make(l, name.len),
                                     shunt_slice_make(l + name.len + 2, value.len),
                                     shunt_slice_make(l, len), 0, 0};
}

/* A field from a constant line "<name>: <value>\r\n". */
static struct shunt_edit_field const_field(const char *line, size_t name_len)
{
    size_t len = strlen(line);
    return (struct shunt_edit_field){shunt_slice_make(line, name_len),
                                     shunt_slice_make(line + name_len + 2, len - name_len - 4),
                                     shunt_slice_make(line, len), 0, 0};
}

/* Records that the Content-Length fields of <h> went out as one, with the values as they
 * came. */
static void note_one_length(const struct shunt_http_head *h, shunt_head_note_cb note, void *ud)
{
    if (note == NULL)
        return;
    char what[200];
    size_t wl = (size_t)snprintf(what, sizeof(what), "Content-Length ");
    int first = 1;
    for (size_t i = 0; i < h->n_headers && wl < sizeof(what); i++) {
        const struct shunt_http_header *f = &h->headers[i];
        if (!SHUNT_SLICE_IEQ_LIT(f->name, "Content-Length"))
            continue;
        wl += (size_t)snprintf(what + wl, sizeof(what) - wl, "%s%.*s", first ? "" : ", ",
                               (int)(f->value.len > 60 ? 60 : f->value.len), f->value.base);
        first = 0;
    }
    if (wl < sizeof(what))
        snprintf(what + wl, sizeof(what) - wl, " sent as one field (RFC 9110 8.6)");
    note(ud, what, "shunt");
}

/* The one builder: the fields of <h> through the table for direction <d>, then what
 * <plan> adds. */
static void build(int d, const struct shunt_http_head *h, const struct shunt_head_plan *plan,
                  struct shunt_arena *a, struct shunt_head_edit *e,
                  struct shunt_edit_field *fields, size_t cap, shunt_head_note_cb note,
                  void *ud)
{
    memset(e, 0, sizeof(*e));
    e->f = fields;
    e->cap = cap;
    int host_seen = 0, length_done = 0;
    for (size_t i = 0; i < h->n_headers && e->n < cap; i++) {
        const struct shunt_http_header *f = &h->headers[i];
        struct shunt_edit_field out = {f->name, f->value, f->line, 0, 0};
        const struct token *t = lookup(f->name);
        unsigned flags = t != NULL ? t->flags[d] : 0;
        if (flags & F_DROP) {
            say(note, ud, t->what, "proxy");
            continue;
        }
        if ((flags & F_ONE_LENGTH) && h->cl_repeated) {
            if (length_done++)
                continue; /* the first one's place has the one line */
            char v[24];
            int vl = snprintf(v, sizeof(v), "%" PRIu64, h->content_length);
            out = own_field(a, SHUNT_SLICE_LIT("Content-Length"),
                            shunt_slice_make(v, (size_t)vl));
            note_one_length(h, note, ud);
        }
        if ((flags & F_HOST) && plan->host.base != NULL) {
            host_seen = 1;
            if (!shunt_slice_ieq(f->value, plan->host.base, plan->host.len)) {
                out = own_field(a, f->name, plan->host); /* the client's spelling of Host */
                say(note, ud, "set Host to the target's", plan->host_by);
            }
        }
        e->f[e->n++] = out;
    }
    if (d == D_REQUEST && plan->host.base != NULL && !host_seen && e->n < cap) {
        e->f[e->n++] = own_field(a, SHUNT_SLICE_LIT("Host"), plan->host);
        say(note, ud, "add Host", plan->host_by);
    }
    if (d == D_RESPONSE && plan->proxy_support && e->n < cap) {
        /* Pairing makes connection-bound authentication work through the proxy; say so, as
         * Fiddler does, or .NET clients will not authenticate through a proxy. */
        e->f[e->n++] = const_field("Proxy-Support: Session-Based-Authentication\r\n", 13);
        say(note, ud, "add Proxy-Support: Session-Based-Authentication", "proxy");
    }
    if (plan->via && e->n < cap) {
        e->f[e->n++] = const_field("Via: 1.1 shunt\r\n", 3);
        say(note, ud, "add Via", "--via");
    }
}

void shunt_head_request_fields(const struct shunt_http_head *h,
                               const struct shunt_head_plan *plan, struct shunt_arena *a,
                               struct shunt_head_edit *e, struct shunt_edit_field *fields,
                               size_t cap, shunt_head_note_cb note, void *ud)
{
    build(D_REQUEST, h, plan, a, e, fields, cap, note, ud);
}

void shunt_head_response_fields(const struct shunt_http_head *h,
                                const struct shunt_head_plan *plan, struct shunt_arena *a,
                                struct shunt_head_edit *e, struct shunt_edit_field *fields,
                                size_t cap, shunt_head_note_cb note, void *ud)
{
    build(D_RESPONSE, h, plan, a, e, fields, cap, note, ud);
}

size_t shunt_head_lines(const struct shunt_head_edit *e, struct shunt_slice *out, size_t n)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct shunt_slice l = e->f[i].line;
        if (e->f[i].removed || l.len == 0)
            continue;
        if (n > 0 && out[n - 1].base + out[n - 1].len == l.base)
            out[n - 1].len += l.len;
        else
            out[n++] = l;
    }
    return n;
}

struct shunt_slice shunt_head_request_line(const struct shunt_http_head *h, const char *raw,
                                           const struct shunt_head_plan *plan,
                                           struct shunt_arena *a, shunt_head_note_cb note,
                                           void *ud)
{
    if (plan->path.base == NULL)
        return shunt_slice_make(raw, h->start_line.len + 2);
    size_t need = h->method.len + plan->path.len + 16;
    char *l = shunt_arena_alloc(a, need);
    int n = snprintf(l, need, "%.*s %s%.*s HTTP/1.%d\r\n", (int)h->method.len, h->method.base,
                     plan->path_needs_slash ? "/" : "", (int)plan->path.len, plan->path.base,
                     h->minor_version);
    say(note, ud, "request line to origin-form", "proxy");
    return shunt_slice_make(l, (size_t)n);
}

struct shunt_slice shunt_head_status_line(const struct shunt_http_head *h, const char *raw,
                                          struct shunt_arena *a, shunt_head_note_cb note,
                                          void *ud)
{
    if (h->start_line.len != 12)
        return shunt_slice_make(raw, h->start_line.len + 2);
    char *l = shunt_arena_alloc(a, 15);
    memcpy(l, raw, 12);
    memcpy(l + 12, " \r\n", 3);
    if (note != NULL) {
        char what[96];
        snprintf(what, sizeof(what), "status line \"%.12s\" sent as \"%.12s \" (RFC 9112 4)",
                 raw, raw);
        note(ud, what, "shunt");
    }
    return shunt_slice_make(l, 15);
}

/*
 * Returns 1 for a field that must not be forwarded in a trailer section: RFC 9110 6.5.1 and
 * 6.5.2 say a recipient must not merge, and a sender must not generate, trailers that frame
 * the message, route it, modify the request (controls, conditionals), authenticate, carry
 * response control data or say how to process the content. A recipient that merges them
 * anyway (some do) would read the message otherwise than shunt did. Cookies authenticate in
 * practice; Connection and its kin manage the connection, which the trailer section is too
 * late to change.
 */
int shunt_head_trailer_forbidden(struct shunt_slice name)
{
    static const char *const names[] = {
        /* framing */
        "Transfer-Encoding", "Content-Length", "Trailer",
        /* routing */
        "Host",
        /* request modifiers: controls and conditionals (RFC 9110 7.6.2, 10.1, 13) */
        "Cache-Control", "Expect", "Max-Forwards", "Pragma", "Range", "TE", "If-Match",
        "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
        /* authentication (RFC 9110 11) and state */
        "Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
        "Authentication-Info", "Proxy-Authentication-Info", "Cookie", "Set-Cookie",
        /* response control data (RFC 9110 15, 10.2) */
        "Age", "Expires", "Date", "Location", "Retry-After", "Vary", "Warning",
        /* how to process the content */
        "Content-Encoding", "Content-Type", "Content-Range",
        /* connection management */
        "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (shunt_slice_ieq(name, names[i], strlen(names[i])))
            return 1;
    return 0;
}

int shunt_head_has_session_auth_challenge(const struct shunt_http_head *h)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (SHUNT_SLICE_IEQ_LIT(h->headers[i].name, "Proxy-Support"))
            return 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct shunt_http_header *f = &h->headers[i];
        if (!SHUNT_SLICE_IEQ_LIT(f->name, "WWW-Authenticate"))
            continue;
        struct shunt_slice v = f->value;
        if ((v.len >= 4 && shunt_slice_ieq(shunt_slice_make(v.base, 4), "NTLM", 4) &&
             (v.len == 4 || v.base[4] == ' ')) ||
            (v.len >= 9 && shunt_slice_ieq(shunt_slice_make(v.base, 9), "Negotiate", 9) &&
             (v.len == 9 || v.base[9] == ' ')))
            return 1;
    }
    return 0;
}

int shunt_head_says_close(const struct shunt_head_edit *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct shunt_edit_field *f = &e->f[i];
        if (!f->removed && SHUNT_SLICE_IEQ_LIT(f->name, "Connection") &&
            shunt_http_list_has(f->value, "close", 5))
            return 1;
    }
    return 0;
}
