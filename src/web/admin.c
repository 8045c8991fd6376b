/* src/web/admin.c - the admin API: JSON over HTTP/1.1 on its own thread and libuv loop, so
 * that the proxy's workers never wait for it. docs/admin.md describes the endpoints. */
#include "web/admin.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/version.h"
#include "http/parser.h"
#include "http/status.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/listen.h"
#include "rules/options.h"

/* Requests are small: a head of at most 16 KiB and a JSON body of at most 64 KiB. */
#define ADMIN_MAX_HEAD (16 * 1024)
#define ADMIN_MAX_LINE 8192
#define ADMIN_MAX_HEADERS 64
#define ADMIN_MAX_BODY (64 * 1024)
/* Input buffer: a head plus what follows it in the same reads. Body bytes are copied out as
 * they are framed, so the buffer never needs to hold a body. */
#define ADMIN_IN_CAP (2 * ADMIN_MAX_HEAD)
/* Open connections at most. When all are taken, the connection that has waited longest
 * without a complete request is closed to make room; when none is waiting, the new one is. */
#define ADMIN_MAX_CLIENTS 64
/* Connections from one address that have no complete request yet, at most: a new one closes
 * the one of them that has waited longest. An idle socket costs its client nothing, so a
 * cap that refused newcomers would let a few idle sockets lock the user out; closing the
 * oldest lets the user's next connection through (loopback clients all share 127.0.0.1). */
#define ADMIN_MAX_PENDING_PER_ADDR 8
/* Deadlines; a unit test that includes this file may define shorter ones first. */
#ifndef ADMIN_HEAD_MS
/* A request head must be complete this long after the connection is accepted, or after its
 * first byte on a keep-alive connection: idle sockets and slowloris. */
#define ADMIN_HEAD_MS 5000
#endif
#ifndef ADMIN_BODY_MS
/* A request body must be complete this long after its head. */
#define ADMIN_BODY_MS 10000
#endif
#ifndef ADMIN_WRITE_MS
/* A response must be taken by the client within this long. */
#define ADMIN_WRITE_MS 10000
#endif
#ifndef ADMIN_IDLE_MS
/* A keep-alive connection with no request in progress is closed after this long. */
#define ADMIN_IDLE_MS 60000
#endif
/* After a response that ends the connection, what the client still sends is read and
 * dropped for this long before closing: closing with unread bytes would send a RST that can
 * destroy the response before the client reads it (RFC 9112 9.6). */
#define ADMIN_LINGER_MS 2000
/* Longest piece of a peer's bytes quoted in an error message. */
#define ADMIN_QUOTE_MAX 120

struct client;

struct shunt_admin {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async; /* wakes the loop to close everything */
    pthread_t thread;
    int port;    /* the bound port */
    char *token; /* copy of cfg->token, or NULL: no Authorization needed */
    size_t token_len;
    int (*reload)(void *ud, char *err, size_t err_len);
    void *reload_ud;
    void (*status)(void *ud, struct shunt_admin_status *out);
    void *status_ud;
    struct shunt_conn_pool pool; /* input buffers of ADMIN_IN_CAP bytes */
    struct client *clients; /* open connections (list head) */
    size_t n_clients;
    uint64_t seq;       /* last pending_seq handed out */
    uint64_t n_evicted; /* pending connections closed to make room for new ones */
    int stopping; /* 1 once stop_async ran */
};

/* One client connection; freed once both handles are closed. */
struct client {
    struct shunt_conn conn; /* the socket and the input (net/conn.h) */
    uv_timer_t timer; /* request, write, idle or linger deadline: whichever applies */
    struct shunt_admin *admin;
    struct client *prev, *next;
    int open_handles;      /* handles not yet closed (2, then 0: free) */
    int closing;           /* 1 once client_close() ran */
    int eof;               /* the client shut its side down */
    int writes;            /* a final response queued, not yet written; reading waits */
    int close_after_write; /* the last response said Connection: close */
    int lingering;         /* that response is written and our side shut down: draining */
    char local_ip[64];     /* the address the client reached (our side), for the Host check */
    int local_family;      /* AF_INET or AF_INET6 */
    struct sockaddr_storage peer; /* the client's address (zeroed when unknown) */
    uint64_t pending_seq;  /* order in which it last began waiting for a request (accepted, or
                              a keep-alive response written): the smallest gives way first */
    int served;            /* a response was written: the next request waits ADMIN_IDLE_MS */

    /* The request being read. */
    int request_started; /* its first byte arrived */
    int in_body;         /* its head is parsed; body bytes are being framed */
    int sent_continue;   /* 100 Continue sent for it */
    int body_too_big;    /* its payload went over ADMIN_MAX_BODY */
    size_t last_len;     /* input bytes seen by the last incomplete parse of the head */
    struct shunt_http_head head;
    struct shunt_http_header hdrs[ADMIN_MAX_HEADERS];
    struct shunt_http_body body;
    size_t body_len;               /* payload bytes in body_buf */
    char body_buf[ADMIN_MAX_BODY]; /* the decoded payload */
};

/* The answer to one request, made by handle() and sent by send_reply(). */
struct reply {
    int status;
    json_t *json;      /* owned; the body */
    const char *extra; /* further header lines, each ending in CRLF, or NULL */
    int close;         /* the connection ends after this response */
};

static const struct shunt_http_limits admin_limits = {ADMIN_MAX_LINE, ADMIN_MAX_HEAD,
                                                      ADMIN_MAX_HEADERS};

/* ------------------------------------------------------------------------ pure helpers */

/* Writes the bytes of <s> into <dst> (<cap> bytes, NUL-terminated) with anything that is not
 * printable ASCII replaced by '?' and at most ADMIN_QUOTE_MAX bytes kept ("..." marks a
 * cut): peer bytes go into JSON strings, which must be valid UTF-8. */
static void quote(char *dst, size_t cap, struct shunt_slice s)
{
    size_t n = 0, max = cap - 1;
    if (max > ADMIN_QUOTE_MAX)
        max = ADMIN_QUOTE_MAX;
    for (size_t i = 0; i < s.len && n < max; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        dst[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (s.len > max && n >= 3)
        memcpy(dst + n - 3, "...", 3);
    dst[n] = '\0';
}

/* Returns 1 when <a> (<a_len> bytes) equals the NUL-free secret <b> (<b_len> bytes). Takes
 * the same time whatever <a> holds, so that the token cannot be guessed byte by byte. */
static int ct_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    unsigned diff = a_len != b_len;
    for (size_t i = 0; i < b_len; i++)
        diff |= (unsigned char)(i < a_len ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

/* Returns 1 when the Authorization value <v> is "Bearer <token>" (scheme case-insensitive,
 * RFC 9110 11.1; RFC 6750 2.1). */
static int bearer_ok(struct shunt_slice v, const char *token, size_t token_len)
{
    static const char scheme[] = "Bearer";
    size_t n = sizeof(scheme) - 1;
    if (v.len <= n || !shunt_slice_ieq(shunt_slice_make(v.base, n), scheme, n) || v.base[n] != ' ')
        return 0;
    size_t i = n;
    while (i < v.len && v.base[i] == ' ')
        i++;
    return ct_equal(v.base + i, v.len - i, token, token_len);
}

/* Returns 1 when the Content-Type value <v> is application/json, with parameters or not. */
static int is_json_type(struct shunt_slice v)
{
    static const char mt[] = "application/json";
    size_t n = sizeof(mt) - 1;
    if (v.len < n || !shunt_slice_ieq(shunt_slice_make(v.base, n), mt, n))
        return 0;
    size_t i = n;
    while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t'))
        i++;
    return i == v.len || v.base[i] == ';';
}

/*
 * Returns 1 when the authority <a> ("host[:port]", as in Host or an Origin) names this admin
 * API: host 127.0.0.1, localhost, [::1] or <local_ip> (the address the client connected to;
 * an IPv6 one in brackets), with port <port> (or no port when <port> is 80). Anything else
 * is a name the admin cannot vouch for: a DNS rebinding attack points such a name at
 * 127.0.0.1, and a page on it could then read and switch options.
 */
static int authority_ok(struct shunt_slice a, int port, const char *local_ip, int local_family)
{
    struct shunt_slice host, port_s = {NULL, 0};
    int bracketed = 0;
    if (a.len > 0 && a.base[0] == '[') {
        const char *close = memchr(a.base, ']', a.len);
        if (close == NULL)
            return 0;
        host = shunt_slice_make(a.base + 1, (size_t)(close - a.base - 1));
        size_t rest = a.len - (size_t)(close - a.base) - 1;
        if (rest > 0) {
            if (close[1] != ':')
                return 0;
            port_s = shunt_slice_make(close + 2, rest - 1);
        }
        bracketed = 1;
    } else {
        const char *colon = memchr(a.base, ':', a.len);
        host = shunt_slice_make(a.base, colon ? (size_t)(colon - a.base) : a.len);
        if (colon)
            port_s = shunt_slice_make(colon + 1, a.len - host.len - 1);
    }
    if (port_s.base == NULL) {
        if (port != 80)
            return 0;
    } else {
        if (port_s.len == 0 || port_s.len > 5)
            return 0;
        long p = 0;
        for (size_t i = 0; i < port_s.len; i++) {
            if (port_s.base[i] < '0' || port_s.base[i] > '9')
                return 0;
            p = p * 10 + (port_s.base[i] - '0');
        }
        if (p != port)
            return 0;
    }
    if (bracketed)
        return SHUNT_SLICE_IEQ_LIT(host, "::1") ||
               (local_family == AF_INET6 && local_ip != NULL &&
                shunt_slice_ieq(host, local_ip, strlen(local_ip)));
    return SHUNT_SLICE_IEQ_LIT(host, "127.0.0.1") || SHUNT_SLICE_IEQ_LIT(host, "localhost") ||
           (local_family == AF_INET && local_ip != NULL &&
            shunt_slice_eq(host, local_ip, strlen(local_ip)));
}

/* Returns 1 when the Origin value <o> is http://<authority> with an authority_ok() one
 * (RFC 6454 7: scheme "://" host [":" port], no path). "null" and other schemes fail. */
static int origin_ok(struct shunt_slice o, int port, const char *local_ip, int local_family)
{
    static const char scheme[] = "http://";
    size_t n = sizeof(scheme) - 1;
    if (o.len <= n || !shunt_slice_ieq(shunt_slice_make(o.base, n), scheme, n))
        return 0;
    return authority_ok(shunt_slice_make(o.base + n, o.len - n), port, local_ip, local_family);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes the path segment <s> (RFC 3986 2.1; '+' stays '+') into <out> (<cap>
 * bytes, NUL-terminated). Returns the decoded length, SHUNT_EPARSE for a malformed escape or
 * an encoded NUL, SHUNT_ETOOBIG when it does not fit. */
static int pct_decode(struct shunt_slice s, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.base[i];
        if (ch == '%') {
            int hi = i + 2 < s.len ? hexval(s.base[i + 1]) : -1;
            int lo = i + 2 < s.len ? hexval(s.base[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return SHUNT_EPARSE;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= cap)
            return SHUNT_ETOOBIG;
        out[n++] = ch;
    }
    out[n] = '\0';
    return (int)n;
}

/* ------------------------------------------------------------------------ the token */

int shunt_admin_token_check(const char *token, char *err, size_t err_len)
{
    size_t len = strlen(token);
    if (len == 0) {
        snprintf(err, err_len, "the token is empty");
        return SHUNT_EINVAL;
    }
    if (len > SHUNT_ADMIN_TOKEN_MAX) {
        snprintf(err, err_len, "the token is over %d bytes", SHUNT_ADMIN_TOKEN_MAX);
        return SHUNT_EINVAL;
    }
    for (const char *t = token; *t; t++) {
        if (*t <= 0x20 || *t >= 0x7f) {
            snprintf(err, err_len, "the token must be printable ASCII without spaces");
            return SHUNT_EINVAL;
        }
    }
    return 0;
}

/* Writes "<what>: <strerror(e)>" into <err>, the message's first letter lowered to fit in a
 * sentence. */
static void errno_msg(char *err, size_t err_len, const char *what, int e)
{
    int n = snprintf(err, err_len, "%s: %s", what, strerror(e));
    size_t at = strlen(what) + 2;
    if (n > 0 && at < err_len && (size_t)n > at && err[at] >= 'A' && err[at] <= 'Z')
        err[at] = (char)(err[at] - 'A' + 'a');
}

int shunt_admin_token_read(const char *path, char *buf, size_t cap, char *err, size_t err_len)
{
    char tmp[SHUNT_ADMIN_TOKEN_MAX + 3]; /* a longest token, CRLF, and a byte to tell more */
    struct stat st;
    size_t len = 0;
    int r = SHUNT_EINVAL;
    assert(cap > SHUNT_ADMIN_TOKEN_MAX);
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
        errno_msg(err, err_len, "cannot open it", errno);
        return r;
    }
    if (fstat(fd, &st) != 0) {
        r = -errno;
        errno_msg(err, err_len, "cannot read it", errno);
        goto done;
    }
    /* A pipe (`--admin-token-file <(pass show shunt)`) is its owner's alone: 0600. */
    if ((st.st_mode & 077) != 0) {
        snprintf(err, err_len, "other users may read or write it (mode %04o); chmod 600 it",
                 (unsigned)(st.st_mode & 07777));
        goto done;
    }
    while (len < sizeof(tmp)) {
        ssize_t n = read(fd, tmp + len, sizeof(tmp) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            errno_msg(err, err_len, "cannot read it", errno);
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len == sizeof(tmp)) {
        snprintf(err, err_len, "the token is over %d bytes", SHUNT_ADMIN_TOKEN_MAX);
        goto done;
    }
    if (len > 0 && tmp[len - 1] == '\n')
        len--;
    if (len > 0 && tmp[len - 1] == '\r')
        len--;
    if (len == 0) {
        snprintf(err, err_len, "the file holds no token");
        goto done;
    }
    if (len > SHUNT_ADMIN_TOKEN_MAX) {
        snprintf(err, err_len, "the token is over %d bytes", SHUNT_ADMIN_TOKEN_MAX);
        goto done;
    }
    if (memchr(tmp, '\0', len) != NULL) {
        snprintf(err, err_len, "the token must be printable ASCII without spaces");
        goto done;
    }
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    r = shunt_admin_token_check(buf, err, err_len);
done:
    close(fd);
    explicit_bzero(tmp, sizeof(tmp)); /* the secret stays in <buf> only */
    if (r != 0)
        explicit_bzero(buf, cap);
    return r;
}

/* ------------------------------------------------------------------------ JSON replies */

/* Returns a JSON string of <s>, made printable when it is not valid UTF-8 (an option name
 * comes from a rules file and may be any bytes). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j == NULL) {
        char q[ADMIN_QUOTE_MAX + 1];
        quote(q, sizeof(q), shunt_slice_make(s, strlen(s)));
        j = json_string(q);
    }
    return j;
}

static void reply_json(struct reply *rp, int status, json_t *j)
{
    json_decref(rp->json);
    rp->status = status;
    rp->json = j;
}

static void reply_err(struct reply *rp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets <rp> to <status> with {"error": message}. */
static void reply_err(struct reply *rp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(rp, status, json_pack("{s:o}", "error", jstr(msg)));
}

/* ------------------------------------------------------------------------ endpoints */

struct option_find {
    const char *name;
    json_t *found; /* {"name", "on", "default"} once found */
};

static void option_json_cb(void *ud, const char *name, int on, int default_on)
{
    json_array_append_new(ud, json_pack("{s:o,s:b,s:b}", "name", jstr(name), "on", on,
                                        "default", default_on));
}

static void option_find_cb(void *ud, const char *name, int on, int default_on)
{
    struct option_find *f = ud;
    if (f->found == NULL && strcmp(name, f->name) == 0)
        f->found = json_pack("{s:o,s:b,s:b}", "name", jstr(name), "on", on, "default", default_on);
}

/* Returns <s> seconds rounded to the millisecond (no libm: <s> is not negative). */
static double ms_round(double s)
{
    return s > 0 ? (double)(long long)(s * 1000.0 + 0.5) / 1000.0 : 0.0;
}

static void get_status(struct shunt_admin *a, struct reply *rp)
{
    struct shunt_admin_status st = {0};
    if (a->status != NULL)
        a->status(a->status_ud, &st);
    json_t *tls = json_null();
    if (st.intercept) /* the leaf cache's account: its hit rate, what a miss costs */
        tls = json_pack("{s:b,s:I,s:I,s:I,s:f,s:f}", "intercept", 1, "leaf_hits",
                        (json_int_t)st.tls_leaf_hits, "leaf_misses",
                        (json_int_t)st.tls_leaf_misses, "leaf_cached",
                        (json_int_t)st.tls_leaf_cached, "leaf_miss_avg_ms",
                        st.tls_leaf_miss_avg_ms, "leaf_miss_max_ms", st.tls_leaf_miss_max_ms);
    reply_json(rp, 200,
               json_pack("{s:f,s:I,s:I,s:I,s:o,s:o,s:s,s:o}", "uptime_s", ms_round(st.uptime_s),
                         "connections_open", (json_int_t)st.connections_open, "exchanges",
                         (json_int_t)st.exchanges, "events_dropped",
                         (json_int_t)st.events_dropped, "capture",
                         st.capture ? jstr(st.capture) : json_null(), "rules",
                         st.rules ? jstr(st.rules) : json_null(), "version", SHUNT_VERSION,
                         "tls", tls));
}

static void get_options(struct reply *rp)
{
    json_t *list = json_array();
    shunt_options_each(option_json_cb, list);
    reply_json(rp, 200, json_pack("{s:o}", "options", list));
}

/* Parses the request body as a JSON object; on failure sets a 400 in <rp> and returns NULL.
 * Returns a new reference. */
static json_t *body_object(struct client *c, struct reply *rp, const char *example)
{
    json_error_t je;
    if (c->body_len == 0) {
        reply_err(rp, 400, "the request needs a JSON object as its body, e.g. %s", example);
        return NULL;
    }
    json_t *j = json_loadb(c->body_buf, c->body_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        reply_err(rp, 400, "the body is not valid JSON: %s (line %d, column %d)", je.text,
                  je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_err(rp, 400, "the body must be a JSON object, e.g. %s", example);
        return NULL;
    }
    return j;
}

static void get_option(struct shunt_slice enc, struct reply *rp)
{
    char name[SHUNT_OPTION_NAME_MAX + 2], q[ADMIN_QUOTE_MAX + 1];
    int n = pct_decode(enc, name, sizeof(name));
    if (n == SHUNT_EPARSE) {
        reply_err(rp, 400, "malformed percent-encoding in the option name");
        return;
    }
    struct option_find f = {name, NULL};
    if (n > 0)
        shunt_options_each(option_find_cb, &f);
    if (f.found == NULL) {
        quote(q, sizeof(q), n >= 0 ? shunt_slice_make(name, (size_t)n) : enc);
        reply_err(rp, 404, "no option named '%s'", q);
        return;
    }
    reply_json(rp, 200, f.found);
}

static void set_option(struct client *c, struct shunt_slice enc, struct reply *rp)
{
    char name[SHUNT_OPTION_NAME_MAX + 2], q[ADMIN_QUOTE_MAX + 1];
    int n = pct_decode(enc, name, sizeof(name));
    if (n == SHUNT_EPARSE) {
        reply_err(rp, 400, "malformed percent-encoding in the option name");
        return;
    }
    json_t *j = body_object(c, rp, "{\"on\": true}");
    if (j == NULL)
        return;
    json_t *on = json_object_get(j, "on");
    if (!json_is_boolean(on)) {
        json_decref(j);
        reply_err(rp, 400, "the body needs \"on\": true or false");
        return;
    }
    int want = json_is_true(on);
    json_decref(j);
    if (n <= 0 || shunt_options_set(name, want) != 0) {
        quote(q, sizeof(q), n >= 0 ? shunt_slice_make(name, (size_t)n) : enc);
        reply_err(rp, 404, "no option named '%s'", q);
        return;
    }
    get_option(enc, rp);
}

static void post_reload(struct client *c, struct reply *rp)
{
    struct shunt_admin *a = c->admin;
    json_t *j = body_object(c, rp, "{}");
    if (j == NULL)
        return;
    json_decref(j);
    if (a->reload == NULL) {
        reply_err(rp, 409, "no rules file");
        return;
    }
    char err[512] = "";
    int r = a->reload(a->reload_ud, err, sizeof(err));
    err[sizeof(err) - 1] = '\0';
    if (r < 0) {
        reply_err(rp, 422, "%s", err[0] ? err : shunt_strerror(r));
        return;
    }
    reply_json(rp, 200, json_pack("{s:b}", "ok", 1));
}

/* Checks what every request must pass: a Host (and any Origin) naming this admin API, and
 * the token when there is one. Returns 1 when the request may go on; otherwise <rp> holds the
 * refusal. */
static int request_allowed(struct client *c, struct reply *rp)
{
    struct shunt_admin *a = c->admin;
    const struct shunt_http_head *h = &c->head;
    char q[ADMIN_QUOTE_MAX + 1];
    if (h->host.len == 0) {
        reply_err(rp, 400, "a Host field naming the admin API is required");
        return 0;
    }
    if (!authority_ok(h->host, a->port, c->local_ip, c->local_family)) {
        quote(q, sizeof(q), h->host);
        reply_err(rp, 403, "Host '%s' is not this admin API's address (use 127.0.0.1:%d)", q,
                  a->port);
        return 0;
    }
    /* Every Origin field is checked, not only the first one. */
    for (size_t i = 0; i < h->n_headers; i++) {
        if (!SHUNT_SLICE_IEQ_LIT(h->headers[i].name, "Origin"))
            continue;
        if (!origin_ok(h->headers[i].value, a->port, c->local_ip, c->local_family)) {
            quote(q, sizeof(q), h->headers[i].value);
            reply_err(rp, 403, "cross-site request refused: Origin '%s' is not this admin API",
                      q);
            return 0;
        }
    }
    if (a->token != NULL) {
        const struct shunt_http_header *auth = shunt_http_find_header(h, "Authorization", 13);
        if (auth == NULL || !bearer_ok(auth->value, a->token, a->token_len)) {
            reply_err(rp, 401, auth ? "wrong token" : "this admin API needs a token "
                                                      "(Authorization: Bearer TOKEN)");
            rp->extra = "WWW-Authenticate: Bearer realm=\"shunt\"\r\n";
            return 0;
        }
    }
    return 1;
}

/* Returns 1 when the request has a JSON Content-Type; otherwise sets a 415 in <rp>. */
static int json_content(struct client *c, struct reply *rp)
{
    const struct shunt_http_header *ct = shunt_http_find_header(&c->head, "Content-Type", 12);
    if (ct != NULL && is_json_type(ct->value))
        return 1;
    reply_err(rp, 415, "a request that changes something needs Content-Type: application/json");
    return 0;
}

static void handle(struct client *c, struct reply *rp)
{
    const struct shunt_http_head *h = &c->head;
    struct shunt_slice m = h->method, path = h->target;
    int is_get = shunt_slice_eq(m, "GET", 3); /* methods are case-sensitive (RFC 9110 9.1) */
    int is_put = shunt_slice_eq(m, "PUT", 3), is_post = shunt_slice_eq(m, "POST", 4);
    char q[ADMIN_QUOTE_MAX + 1];
    static const char opt_prefix[] = "/api/options/";
    size_t opt_len = sizeof(opt_prefix) - 1;

    if (!request_allowed(c, rp))
        return;
    if (path.len == 0 || path.base[0] != '/') {
        reply_err(rp, 400, "the request target must be a path (origin-form)");
        return;
    }
    const char *qm = memchr(path.base, '?', path.len);
    if (qm != NULL)
        path.len = (size_t)(qm - path.base);

    if (shunt_slice_eq(path, "/api/status", 11)) {
        if (!is_get)
            goto method;
        get_status(c->admin, rp);
    } else if (shunt_slice_eq(path, "/api/options", 12)) {
        if (!is_get)
            goto method;
        get_options(rp);
    } else if (path.len > opt_len && memcmp(path.base, opt_prefix, opt_len) == 0) {
        struct shunt_slice enc = shunt_slice_make(path.base + opt_len, path.len - opt_len);
        if (is_get)
            get_option(enc, rp);
        else if ((is_put || is_post) && json_content(c, rp))
            set_option(c, enc, rp);
        else if (!is_put && !is_post)
            goto method;
    } else if (shunt_slice_eq(path, "/api/reload", 11)) {
        if (!is_post)
            goto method;
        if (json_content(c, rp))
            post_reload(c, rp);
    } else {
        quote(q, sizeof(q), path);
        reply_err(rp, 404, "no such endpoint: %s (see docs/admin.md)", q);
    }
    return;
method:
    quote(q, sizeof(q), m);
    reply_err(rp, 405, "method %s not allowed here", q);
    rp->extra = shunt_slice_eq(path, "/api/reload", 11) ? "Allow: POST\r\n"
                : path.len > opt_len ? "Allow: GET, PUT, POST\r\n"
                                     : "Allow: GET\r\n";
}

/* ------------------------------------------------------------------------ connection */

static void client_unref(struct client *c)
{
    if (--c->open_handles == 0)
        free(c);
}

static void on_timer_closed(uv_handle_t *hd)
{
    client_unref(hd->data);
}

static void client_close(struct client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct shunt_admin *a = c->admin;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_clients--;
    shunt_conn_close(&c->conn, 0);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void process(struct client *c);
static void set_reading(struct client *c, int on);

static void on_timeout(uv_timer_t *t);

/* Ends the connection after its last response: shuts our side down, then reads and drops
 * what the client still sends until it closes or ADMIN_LINGER_MS passes. */
static void linger(struct client *c)
{
    if (c->eof) {
        client_close(c);
        return;
    }
    shunt_conn_shutdown(&c->conn);
    c->lingering = 1;
    shunt_conn_release_input(&c->conn);
    uv_timer_start(&c->timer, on_timeout, ADMIN_LINGER_MS, 0);
    set_reading(c, 1);
}

/* A final response is written whole: the connection lingers, or waits for the next
 * request. Does not process a pipelined one (the caller does). */
static void final_written(struct client *c)
{
    if (c->close_after_write) {
        linger(c);
        return;
    }
    c->served = 1;
    c->pending_seq = ++c->admin->seq; /* waiting again, for the next request */
    uv_timer_start(&c->timer, on_timeout, ADMIN_IDLE_MS, 0);
}

/* What was queued went out: the final response that waited for it is written. */
static void on_drained(struct shunt_conn *conn)
{
    struct client *c = SHUNT_CONTAINER_OF(conn, struct client, conn);
    if (c->writes == 0)
        return; /* a 100 Continue */
    c->writes = 0;
    final_written(c);
    if (c->closing || c->lingering)
        return;
    process(c); /* a pipelined request may be waiting */
    if (c->closing || c->writes > 0)
        return;
    if (c->eof)
        client_close(c);
    else
        set_reading(c, 1);
}

static void on_write_error(struct shunt_conn *conn, int err)
{
    client_close(SHUNT_CONTAINER_OF(conn, struct client, conn));
}

/* Sends <len> bytes of <data> (tried at once, the rest copied and queued). <final>: a final
 * response, which pauses reading until it is written, so that a client that sends without
 * reading holds one response. */
static void write_bytes(struct client *c, const char *data, size_t len, int final)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (shunt_conn_send(&c->conn, &b, 1) != 0) {
        client_close(c);
        return;
    }
    if (!final)
        return;
    if (shunt_conn_queued(&c->conn) == 0) {
        final_written(c); /* process() goes on with the next request, if any */
        return;
    }
    c->writes = 1;
    set_reading(c, 0);
    uv_timer_start(&c->timer, on_timeout, ADMIN_WRITE_MS, 0);
}

/* Sends <rp> (and frees its JSON). <keep>: the request allows keep-alive. */
static void send_reply(struct client *c, struct reply *rp, int keep)
{
    /* 15 digits: a rounded uptime prints as 12.345, not 12.345000000000001. */
    char *body = rp->json ? json_dumps(rp->json, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(rp->json);
    rp->json = NULL;
    if (body == NULL) { /* jansson ran out of memory */
        rp->status = 500;
        rp->close = 1;
    }
    keep = keep && !rp->close;
    const char *b = body ? body : "{\"error\": \"out of memory\"}";
    size_t blen = strlen(b);
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n"
                      "X-Content-Type-Options: nosniff\r\n"
                      "%s%s"
                      "\r\n",
                      rp->status, shunt_http_reason_phrase(rp->status), blen + 1,
                      rp->extra ? rp->extra : "",
                      !keep ? "Connection: close\r\n"
                      : c->head.minor_version == 0 ? "Connection: keep-alive\r\n"
                                                    : "");
    size_t total = (size_t)hl + blen + 1;
    char *all = malloc(total);
    if (all == NULL) {
        free(body);
        client_close(c);
        return;
    }
    memcpy(all, head, (size_t)hl);
    memcpy(all + hl, b, blen);
    all[total - 1] = '\n';
    free(body);
    if (!keep)
        c->close_after_write = 1;
    write_bytes(c, all, total, 1);
    free(all);
}

/* Answers a request that cannot be read through (bad head, body too large, timeout) with
 * <status> and <msg>, then closes. */
static void fail_request(struct client *c, int status, const char *msg)
{
    struct reply rp = {0};
    reply_err(&rp, status, "%s", msg);
    rp.close = 1;
    send_reply(c, &rp, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct client *c = SHUNT_CONTAINER_OF(t, struct client, timer);
    if (c->lingering) {
        client_close(c);
        return;
    }
    if (c->writes == 0 && c->request_started && !c->close_after_write) {
        char msg[96];
        if (c->in_body)
            snprintf(msg, sizeof(msg), "the request body was not complete within %d s of its head",
                     ADMIN_BODY_MS / 1000);
        else
            snprintf(msg, sizeof(msg), "the request head was not complete within %d s",
                     ADMIN_HEAD_MS / 1000);
        set_reading(c, 0);
        fail_request(c, 408, msg);
        return;
    }
    client_close(c); /* idle, or a client that does not read its response */
}

static void on_body_data(void *ud, const char *data, size_t len)
{
    struct client *c = ud;
    if (c->body_too_big || len > ADMIN_MAX_BODY - c->body_len) {
        c->body_too_big = 1;
        return;
    }
    memcpy(c->body_buf + c->body_len, data, len);
    c->body_len += len;
}

/* Parses and answers the requests buffered in <c>, in order, one at a time: stops when one
 * is incomplete or its response is still being written. */
static void process(struct client *c)
{
    struct shunt_http_error e;
    char msg[200];
    while (!c->closing && c->writes == 0 && !c->close_after_write) {
        if (!c->in_body) {
            if (!shunt_conn_has_input(&c->conn))
                return;
            if (!c->request_started) {
                c->request_started = 1;
                /* On a new connection the head deadline runs from the accept already. */
                if (c->served)
                    uv_timer_start(&c->timer, on_timeout, ADMIN_HEAD_MS, 0);
            }
            int r = shunt_http_parse_request(shunt_conn_data(&c->conn), shunt_conn_avail(&c->conn),
                                             c->last_len, &c->head, c->hdrs,
                                             ADMIN_MAX_HEADERS, &admin_limits, &e);
            if (r == 0) {
                c->last_len = shunt_conn_avail(&c->conn);
                return;
            }
            if (r < 0) {
                int st = e.reason == SHUNT_HTTP_R_HEAD_TOO_LARGE ||
                                 e.reason == SHUNT_HTTP_R_TOO_MANY_HEADERS
                             ? 431
                         : e.reason == SHUNT_HTTP_R_LINE_TOO_LONG ? 414
                                                                  : 400;
                snprintf(msg, sizeof(msg), "malformed request: %s (byte %zu)",
                         shunt_http_reason_str(e.reason), e.offset);
                fail_request(c, st, msg);
                return;
            }
            if (c->head.framing == SHUNT_HTTP_BODY_LENGTH &&
                c->head.content_length > ADMIN_MAX_BODY) {
                snprintf(msg, sizeof(msg), "the request body is over %d bytes", ADMIN_MAX_BODY);
                fail_request(c, 413, msg);
                return;
            }
            c->in_body = 1;
            uv_timer_start(&c->timer, on_timeout, ADMIN_BODY_MS, 0);
            c->sent_continue = 0;
            c->body_len = 0;
            c->body_too_big = 0;
            shunt_http_body_init(&c->body, c->head.framing, c->head.content_length,
                                 &admin_limits);
        }
        size_t off = c->head.head_len;
        long n = shunt_http_body_scan(&c->body, shunt_conn_data(&c->conn) + off,
                                      shunt_conn_avail(&c->conn) - off, on_body_data, c, &e);
        if (n < 0) {
            snprintf(msg, sizeof(msg), "malformed request body: %s (byte %zu)",
                     shunt_http_reason_str(e.reason), e.offset);
            fail_request(c, 400, msg);
            return;
        }
        if (c->body_too_big) {
            snprintf(msg, sizeof(msg), "the request body is over %d bytes", ADMIN_MAX_BODY);
            fail_request(c, 413, msg);
            return;
        }
        if (!c->body.done) {
            shunt_conn_truncate(&c->conn, off); /* the payload is in body_buf: only the head stays */
            if (c->head.expect_continue && !c->sent_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                c->sent_continue = 1;
                write_bytes(c, cont, sizeof(cont) - 1, 0);
            }
            return;
        }
        struct reply rp = {0};
        handle(c, &rp);
        send_reply(c, &rp, shunt_http_keeps_alive(&c->head));
        if (c->closing || c->lingering)
            return; /* the input went with it */
        shunt_conn_consume(&c->conn, off + (size_t)n);
        c->in_body = 0;
        c->last_len = 0;
        c->request_started = 0;
    }
}

static void on_data(struct shunt_conn *conn)
{
    struct client *c = SHUNT_CONTAINER_OF(conn, struct client, conn);
    if (c->lingering) {
        shunt_conn_release_input(conn); /* dropped */
        return;
    }
    process(c);
}

static void on_eof(struct shunt_conn *conn, enum shunt_conn_how how, int err)
{
    struct client *c = SHUNT_CONTAINER_OF(conn, struct client, conn);
    if (how == SHUNT_CONN_HOW_FIN && !c->lingering) {
        c->eof = 1;
        if (c->writes == 0)
            client_close(c);
        return;
    }
    client_close(c);
}

/* The input moved (compacted before a read): the parse of a head in progress restarts, and
 * a complete head whose body is being read is parsed again where it now is. */
static void on_moved(struct shunt_conn *conn)
{
    struct client *c = SHUNT_CONTAINER_OF(conn, struct client, conn);
    struct shunt_http_error e;
    c->last_len = 0;
    if (c->in_body) {
        int r = shunt_http_parse_request(shunt_conn_data(conn), shunt_conn_avail(conn), 0,
                                         &c->head, c->hdrs, ADMIN_MAX_HEADERS, &admin_limits, &e);
        assert(r > 0); /* the same bytes as before */
        (void)r;
    }
}

static void on_closed(struct shunt_conn *conn)
{
    client_unref(SHUNT_CONTAINER_OF(conn, struct client, conn));
}

static const struct shunt_conn_ops client_ops = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drained = on_drained,
    .on_write_error = on_write_error,
    .on_moved = on_moved,
    .on_closed = on_closed,
};

static void set_reading(struct client *c, int on)
{
    if (c->closing || (on && c->eof))
        return;
    if (on)
        shunt_conn_read_start(&c->conn);
    else
        shunt_conn_read_stop(&c->conn);
}

/* Returns 1 when <c> holds no complete request: it waits for a head, or reads one or a body.
 * Such a connection costs its client nothing to keep open, so it is the one to give way. */
static int pending(const struct client *c)
{
    return !c->closing && c->writes == 0 && !c->close_after_write && !c->lingering;
}

/* Returns 1 when <x> and <y> come from the same IP address (a zeroed address, unknown, matches
 * only another unknown one). */
static int same_peer(const struct client *x, const struct client *y)
{
    const struct sockaddr_storage *a = &x->peer, *b = &y->peer;
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return 1;
}

/* Returns the pending connection other than <c> that has waited longest, among those from
 * <c>'s address when <same> is 1, among all otherwise; NULL when there is none. Stores how
 * many there are in *<n>. */
static struct client *oldest_pending(struct shunt_admin *a, const struct client *c, int same,
                                     size_t *n)
{
    struct client *oldest = NULL;
    *n = 0;
    for (struct client *o = a->clients; o != NULL; o = o->next) {
        if (o == c || !pending(o) || (same && !same_peer(o, c)))
            continue;
        (*n)++;
        if (oldest == NULL || o->pending_seq < oldest->pending_seq)
            oldest = o;
    }
    return oldest;
}

/* Closes <victim> to make room for a new connection, and counts it. */
static void evict(struct shunt_admin *a, struct client *victim)
{
    if (a->n_evicted++ == 0) /* peer-triggered: said once, not once a connection */
        shunt_log(SHUNT_LOG_WARN, "admin API: idle connections closed to make room for new "
                  "ones (more than %d from one address, or %d in all)",
                  ADMIN_MAX_PENDING_PER_ADDR, ADMIN_MAX_CLIENTS);
    client_close(victim);
}

/* Makes room for the just accepted <c> (already counted in a->n_clients): when its address
 * has ADMIN_MAX_PENDING_PER_ADDR pending connections besides it, the one of them that has
 * waited longest is closed; then, when over ADMIN_MAX_CLIENTS, the pending one that has
 * waited longest of all. Returns 0, or -1 when none could give way (<c> must be closed). */
static int make_room(struct shunt_admin *a, struct client *c)
{
    size_t n;
    struct client *victim = oldest_pending(a, c, 1, &n);
    if (n >= ADMIN_MAX_PENDING_PER_ADDR)
        evict(a, victim);
    if (a->n_clients <= ADMIN_MAX_CLIENTS)
        return 0;
    victim = oldest_pending(a, c, 0, &n);
    if (victim == NULL)
        return -1;
    evict(a, victim);
    return 0;
}

static void on_connection(uv_stream_t *l, int status)
{
    struct shunt_admin *a = SHUNT_CONTAINER_OF(l, struct shunt_admin, listener);
    if (status < 0 || a->stopping)
        return;
    struct client *c = shunt_xcalloc(sizeof(*c));
    c->admin = a;
    if (shunt_conn_init(&c->conn, &a->loop, &client_ops, &a->pool, 1, 2) != 0) {
        free(c);
        return;
    }
    uv_timer_init(&a->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = a->clients;
    if (a->clients)
        a->clients->prev = c;
    a->clients = c;
    a->n_clients++;
    if (shunt_conn_accept(&c->conn, l) != 0) {
        client_close(c);
        return;
    }
    struct sockaddr_storage local;
    int len = sizeof(local);
    if (uv_tcp_getsockname(&c->conn.tcp, (struct sockaddr *)&local, &len) == 0) {
        c->local_family = local.ss_family;
        shunt_addr_format((struct sockaddr *)&local, c->local_ip, sizeof(c->local_ip));
    }
    len = sizeof(c->peer);
    if (uv_tcp_getpeername(&c->conn.tcp, (struct sockaddr *)&c->peer, &len) != 0)
        memset(&c->peer, 0, sizeof(c->peer));
    c->pending_seq = ++a->seq;
    if (make_room(a, c) != 0) {
        client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, ADMIN_HEAD_MS, 0);
    set_reading(c, 1);
}

/* ------------------------------------------------------------------------ thread */

static void stop_cb(uv_async_t *as)
{
    struct shunt_admin *a = SHUNT_CONTAINER_OF(as, struct shunt_admin, stop_async);
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->stop_async, NULL);
    while (a->clients != NULL)
        client_close(a->clients);
}

static void *admin_main(void *arg)
{
    struct shunt_admin *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    return NULL;
}

int shunt_admin_start(const struct shunt_admin_config *cfg, struct shunt_admin **out, int *port,
                      char *err, size_t err_len)
{
    const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen;
    char ip[64], where[80];
    *out = NULL;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        snprintf(err, err_len, "the admin API needs an IPv4 or IPv6 address");
        return SHUNT_EINVAL;
    }
    int p = shunt_addr_format(sa, ip, sizeof(ip));
    snprintf(where, sizeof(where), sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, p);
    const char *token = cfg->token != NULL && cfg->token[0] != '\0' ? cfg->token : NULL;
    if (!shunt_addr_is_loopback(sa) && token == NULL) {
        snprintf(err, err_len,
                 "the admin API on %s would be reachable from other hosts: give it a token "
                 "(--admin-token) or listen on loopback",
                 where);
        return SHUNT_EINVAL;
    }
    if (token != NULL && shunt_admin_token_check(token, err, err_len) != 0)
        return SHUNT_EINVAL;
    int fd = shunt_listen_open(sa, 128, 0); /* no SO_REUSEPORT: a second one fails here */
    if (fd < 0) {
        char why[128];
        shunt_listen_reason(fd, why, sizeof(why));
        snprintf(err, err_len, "cannot listen on %s for the admin API: %s", where, why);
        return fd;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);

    struct shunt_admin *a = shunt_xcalloc(sizeof(*a));
    a->port = shunt_addr_format((struct sockaddr *)&bound, ip, sizeof(ip));
    a->token = token ? shunt_xstrdup(token) : NULL;
    a->token_len = token ? strlen(token) : 0;
    a->reload = cfg->reload;
    a->reload_ud = cfg->reload_ud;
    a->status = cfg->status;
    a->status_ud = cfg->status_ud;
    shunt_conn_pool_init(&a->pool, ADMIN_IN_CAP, 4);
    int r = uv_loop_init(&a->loop);
    if (r != 0) {
        close(fd);
        snprintf(err, err_len, "admin API: %s", uv_strerror(r));
        goto fail_loop;
    }
    uv_tcp_init(&a->loop, &a->listener);
    uv_async_init(&a->loop, &a->stop_async, stop_cb);
    r = uv_tcp_open(&a->listener, fd);
    if (r != 0)
        close(fd); /* otherwise the handle owns it */
    else
        r = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
    if (r != 0) {
        snprintf(err, err_len, "cannot listen on %s for the admin API: %s", where,
                 uv_strerror(r));
        goto fail;
    }
    /* The admin thread takes no signals: the main thread waits for them with sigwait(). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = -pthread_create(&a->thread, NULL, admin_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        snprintf(err, err_len, "cannot start the admin thread: %s", strerror(-r));
        goto fail;
    }
    *out = a;
    if (port != NULL)
        *port = a->port;
    return 0;

fail:
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->stop_async, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
fail_loop:
    shunt_conn_pool_dispose(&a->pool);
    free(a->token);
    free(a);
    return r < 0 ? r : SHUNT_EINVAL;
}

void shunt_admin_stop(struct shunt_admin *a)
{
    if (a == NULL)
        return;
    uv_async_send(&a->stop_async);
    pthread_join(a->thread, NULL);
    uv_loop_close(&a->loop);
    shunt_conn_pool_dispose(&a->pool);
    free(a->token);
    free(a);
}
