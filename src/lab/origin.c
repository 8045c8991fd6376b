/* src/lab/origin.c - `shunt lab origin`: an HTTP/1.1 server for experiments, with
 * connection-bound Negotiate and NTLM as IIS does them, a Server header or none (URLScan's
 * RemoveServerHeader=1), HTTP/1.0 answers, and pages by size, delay and status.
 *
 * One libuv loop. Each connection reads into a fixed buffer; requests are parsed there with
 * the strict parser (http/parser.h), answered in order (pipelining), their bodies read and
 * dropped. The response to a request is decided when its head is parsed (while the head's
 * slices are valid) and written once its body has been read (and its delay has passed). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/log.h"
#include "core/mem.h"
#include "http/parser.h"
#include "http/status.h"
#include "http/target.h"
#include "lab/auth.h"
#include "lab/internal.h"
#include "lab/lab.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/listen.h"

#define ORIGIN_DEFAULT_LISTEN "127.0.0.1:8080"
#define ORIGIN_DEFAULT_SERVER "Microsoft-IIS/6.0"
#define ORIGIN_DEFAULT_IDLE_S 120.0
/* Largest /bytes/N and /delay/MS. */
#define ORIGIN_MAX_BYTES (64u * 1024 * 1024)
#define ORIGIN_MAX_DELAY_MS 60000u
/* Request heads: line and head limits, field count; the input buffer holds a whole head. */
#define ORIGIN_MAX_LINE 8192
#define ORIGIN_MAX_HEAD 32768
#define ORIGIN_MAX_HEADERS 100
#define ORIGIN_IN_CAP (ORIGIN_MAX_HEAD + 4096)
/* How long a connection the origin ends keeps draining what the client still sends. */
#define ORIGIN_LINGER_MS 2000
/* Longest path kept for the log; longer ones are cut. */
#define ORIGIN_LOG_PATH 200
#define ORIGIN_MAX_SERVER_HEADER 512
/* The Basic password (any user name). */
#define ORIGIN_BASIC_PASSWORD "lab"

/* Exit statuses (lab.h). */
#define ORIGIN_OK 0
#define ORIGIN_FAIL 1
#define ORIGIN_USAGE 2

static const char help[] =
    "usage: shunt lab origin [options]\n"
    "\n"
    "An HTTP/1.1 server for experiments, IIS-like: connection-bound Windows authentication,\n"
    "a Server header or none, HTTP/1.0 answers, pages by size, delay and status.\n"
    "Prints 'shunt lab origin: listening on ADDR:PORT' on stdout once it listens; logs\n"
    "each connection on stderr. SIGINT or SIGTERM stops it (exit 0).\n"
    "\n"
    "paths:\n"
    "  /bytes/N             N bytes of body ('x'), at most 64 MiB\n"
    "  /delay/MS            answers after MS milliseconds, at most 60000\n"
    "  /status/CODE         answers with status CODE (200-599)\n"
    "  anything else        200 with a short text body\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT   where to listen (default " ORIGIN_DEFAULT_LISTEN "; port 0 picks a\n"
    "                       free one)\n"
    "  --auth SCHEME        negotiate, ntlm, basic or none (default none). negotiate and ntlm\n"
    "                       authenticate the connection, as IIS does: a request without\n"
    "                       credentials on a connection not yet authenticated gets 401; once\n"
    "                       the handshake passed, the connection's later requests need none.\n"
    "                       basic: every request needs a user (any) with password '"
    ORIGIN_BASIC_PASSWORD "'.\n"
    "                       Tokens are the lab's (docs/lab.md), not real Kerberos or NTLM.\n"
    "  --server-header V    the Server header of every response (default " ORIGIN_DEFAULT_SERVER ")\n"
    "  --no-server-header   no Server header at all (URLScan's RemoveServerHeader=1)\n"
    "  --http10             answer as HTTP/1.0: close after each response unless the client\n"
    "                       asked for Connection: keep-alive\n"
    "  --close-after N      close a connection after its N-th response\n"
    "  --reauth-with-via    a request that carries Via ends its connection's NTLM or\n"
    "                       Negotiate authentication: the next request gets a new 401, as\n"
    "                       IIS does for requests that came through a proxy\n"
    "  --idle-timeout S     close connections idle for S seconds (default 120; 0.5 works)\n"
    "  -q, --quiet          no line per request (connections and handshakes are still logged)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 cannot listen, 2 bad usage. See docs/lab.md.\n";

enum origin_auth { AUTH_NONE, AUTH_BASIC, AUTH_NTLM, AUTH_NEGOTIATE };

struct origin_cfg {
    struct sockaddr_storage addr;
    enum origin_auth auth;
    const char *server;    /* Server value, or NULL for none */
    int http10;            /* --http10 */
    unsigned long close_after; /* responses per connection; 0: no limit */
    int reauth_with_via;   /* --reauth-with-via: authentication lasts one request with Via */
    uint64_t idle_ms;      /* idle keep-alive timeout, ms (>= 1) */
    int quiet;             /* -q: no per-request lines */
};

struct origin {
    struct origin_cfg cfg;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    struct shunt_conn_pool pool; /* input buffers of ORIGIN_IN_CAP bytes */
    struct conn *conns;   /* open connections, newest first */
    unsigned long next_id; /* id of the next connection (from 1) */
    int stopping;         /* a signal came: no new connections */
};

/* The response decided for the request being read. */
struct response {
    int status;
    uint64_t body_len;     /* bytes of body ('x' for /bytes, else the text below) */
    int bytes_body;        /* body is body_len 'x' bytes */
    char text[160];        /* short text body when !bytes_body */
    char www_auth[SHUNT_LAB_TOKEN_MAX + 32]; /* WWW-Authenticate value, or "" */
    uint64_t delay_ms;     /* answer after this long */
    int is_head;           /* the request was HEAD: no body written */
    int keep_alive;        /* the connection carries on after this response */
    int keep_alive_header; /* send Connection: keep-alive (a 1.0 exchange kept alive) */
    const char *close_why; /* why the server closes after it, when !keep_alive */
    char method[16];       /* for the log */
    char path[ORIGIN_LOG_PATH + 1];
};

enum conn_state {
    ST_HEAD,  /* waiting for (more of) a request head */
    ST_BODY,  /* reading and dropping a request body */
    ST_DELAY, /* the response waits for its delay timer */
    ST_DONE,  /* no more requests on this connection (closing after the last write) */
};

struct conn {
    struct origin *o;
    struct conn *prev, *next;
    struct shunt_conn conn;   /* the socket and the input (net/conn.h) */
    uv_timer_t idle;          /* idle timeout, then the linger deadline */
    uv_timer_t delay;         /* /delay/MS */
    int open_handles;         /* handles not yet closed; freed at 0 */
    unsigned long id;
    int port;                 /* the client's port */
    enum conn_state st;
    int closed;               /* uv_close called */
    int lingering;            /* shut down, draining until the client closes */
    int peer_eof;             /* the client sent FIN */
    int end_logged;           /* the "closed" line was written */
    size_t writes;            /* 1 while responses are queued, not yet written */
    unsigned long n_responses;
    int finish_after_writes;  /* ST_DONE: shut down once writes reach 0 */
    /* authentication (connection-bound) */
    int challenged;           /* a 401 with a bare WWW-Authenticate was sent */
    int ntlm_pending;         /* a CHALLENGE was sent; <challenge> holds it */
    int authenticated;        /* the handshake passed: later requests need nothing */
    uint8_t challenge[8];
    /* the request being read */
    struct shunt_http_head head;
    struct shunt_http_header headers[ORIGIN_MAX_HEADERS];
    struct shunt_http_body body;
    size_t last_len;          /* parser resume point */
    struct response resp;
};

/* 64 KiB of 'x': every /bytes body is made of slices of it. */
static char xs[65536];

static const struct shunt_http_limits origin_limits = {ORIGIN_MAX_LINE, ORIGIN_MAX_HEAD,
                                                       ORIGIN_MAX_HEADERS};

/* ------------------------------------------------------------------------ logging */

#define CONN_LOG(c, fmt, ...)                                                                      \
    shunt_log_raw("origin: conn %lu port %d: " fmt, (c)->id, (c)->port, __VA_ARGS__)

static void conn_closed_log(struct conn *c, const char *how)
{
    if (c->end_logged)
        return;
    c->end_logged = 1;
    CONN_LOG(c, "closed by %s", how);
}

/* ------------------------------------------------------------------------ connection end */

static void conn_unref(struct conn *c)
{
    if (--c->open_handles == 0)
        free(c);
}

static void on_handle_close(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Closes every handle of <c> (unread bytes make the kernel send a reset); the struct goes
 * when the last close callback ran. Idempotent. */
static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    struct origin *o = c->o;
    if (c->prev)
        c->prev->next = c->next;
    else
        o->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    shunt_conn_close(&c->conn, 0);
    uv_close((uv_handle_t *)&c->idle, on_handle_close);
    uv_close((uv_handle_t *)&c->delay, on_handle_close);
}

static void set_reading(struct conn *c, int on)
{
    if (c->closed || c->peer_eof)
        return;
    if (on)
        shunt_conn_read_start(&c->conn);
    else
        shunt_conn_read_stop(&c->conn);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

/* The origin ends <c> gracefully: FIN after what was written, then it reads and drops
 * what the client still sends (so that no reset is provoked) until the client closes or
 * ORIGIN_LINGER_MS passes. */
static void conn_finish(struct conn *c, const char *why)
{
    if (c->closed || c->lingering)
        return;
    if (why != NULL) {
        char how[96];
        snprintf(how, sizeof(how), "server (%s)", why);
        conn_closed_log(c, how);
    }
    c->st = ST_DONE;
    uv_timer_stop(&c->delay);
    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    shunt_conn_shutdown(&c->conn); /* the drain ends at the client's EOF or the deadline */
    c->lingering = 1;
    shunt_conn_release_input(&c->conn);
    uv_timer_start(&c->idle, on_linger_timeout, ORIGIN_LINGER_MS, 0);
    set_reading(c, 1);
}

/* ------------------------------------------------------------------------ responses */

static void process(struct conn *c);

static void on_idle_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    char why[48];
    snprintf(why, sizeof(why), "idle %.3gs", (double)c->o->cfg.idle_ms / 1000.0);
    conn_finish(c, why);
}

/* (Re)arms the idle timeout when <c> waits for a request with nothing in flight. */
static void arm_idle(struct conn *c)
{
    if (c->closed || c->lingering)
        return;
    if (c->st == ST_HEAD && c->writes == 0)
        uv_timer_start(&c->idle, on_idle_timeout, c->o->cfg.idle_ms, 0);
    else
        uv_timer_stop(&c->idle);
}

/* Writes the response decided in c->resp. */
static void send_response(struct conn *c)
{
    const struct origin_cfg *cfg = &c->o->cfg;
    struct response *r = &c->resp;
    int no_body = r->status == 204 || r->status == 304;
    uint64_t blen = no_body ? 0 : r->body_len;

    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);

    size_t cap = 1024 + strlen(r->www_auth) + (cfg->server ? strlen(cfg->server) : 0);
    char *head = shunt_xcalloc(cap);
    int n = snprintf(head, cap,
                     "HTTP/1.%d %d %s\r\n"
                     "%s%s%s"
                     "Date: %s\r\n",
                     cfg->http10 ? 0 : 1, r->status, shunt_http_reason_phrase(r->status),
                     cfg->server ? "Server: " : "", cfg->server ? cfg->server : "",
                     cfg->server ? "\r\n" : "", date);
    size_t len = (size_t)n;
    if (!no_body)
        len += (size_t)snprintf(head + len, cap - len,
                                "Content-Type: text/plain\r\nContent-Length: %llu\r\n",
                                (unsigned long long)blen);
    if (r->www_auth[0] != '\0')
        len += (size_t)snprintf(head + len, cap - len, "WWW-Authenticate: %s\r\n",
                                r->www_auth);
    if (!r->keep_alive)
        len += (size_t)snprintf(head + len, cap - len, "Connection: close\r\n");
    else if (r->keep_alive_header)
        len += (size_t)snprintf(head + len, cap - len, "Connection: keep-alive\r\n");
    len += (size_t)snprintf(head + len, cap - len, "\r\n");

    /* the head and a text body are copied when the kernel does not take them at once; a
     * /bytes body is slices of <xs>, never copied */
    uv_buf_t one[2];
    uv_buf_t *bufs = one;
    unsigned nbufs = 1;
    one[0] = uv_buf_init(head, (unsigned)len);
    if (!r->is_head && blen > 0) {
        if (r->bytes_body) {
            size_t nb = (size_t)((blen + sizeof(xs) - 1) / sizeof(xs));
            bufs = shunt_xcalloc((nb + 1) * sizeof(uv_buf_t));
            bufs[0] = one[0];
            uint64_t left = blen;
            for (size_t i = 0; i < nb; i++) {
                size_t k = left < sizeof(xs) ? (size_t)left : sizeof(xs);
                bufs[1 + i] = uv_buf_init(xs, (unsigned)k);
                left -= k;
            }
            nbufs = (unsigned)(nb + 1);
        } else {
            one[1] = uv_buf_init(r->text, (unsigned)blen);
            nbufs = 2;
        }
    }

    c->n_responses++;
    if (!cfg->quiet)
        CONN_LOG(c, "%s %s -> %d", r->method, r->path, r->status);
    int wr = shunt_conn_send_static(&c->conn, bufs, nbufs, r->bytes_body ? 1 : nbufs);
    free(head);
    if (bufs != one)
        free(bufs);
    if (wr != 0) {
        conn_closed_log(c, "server (write failed)");
        conn_close(c);
        return;
    }
    c->writes = shunt_conn_queued(&c->conn) > 0;
    uv_timer_stop(&c->idle);
    if (!r->keep_alive) {
        c->st = ST_DONE;
        c->finish_after_writes = 1;
        char how[96];
        snprintf(how, sizeof(how), "server (%s)", r->close_why ? r->close_why : "close");
        conn_closed_log(c, how);
        if (c->writes == 0) /* written at once */
            conn_finish(c, NULL);
    }
    /* else: written at once, process() (or on_delay()) goes on; or on_drained() later */
}

/* Everything queued went out. */
static void on_drained(struct shunt_conn *conn)
{
    struct conn *c = SHUNT_CONTAINER_OF(conn, struct conn, conn);
    c->writes = 0;
    if (c->finish_after_writes) {
        conn_finish(c, NULL);
        return;
    }
    if (c->peer_eof && c->st == ST_HEAD) {
        conn_close(c);
        return;
    }
    arm_idle(c);
}

static void on_write_error(struct shunt_conn *conn, int status)
{
    struct conn *c = SHUNT_CONTAINER_OF(conn, struct conn, conn);
    conn_closed_log(c, status == UV_ECONNRESET || status == UV_EPIPE ? "client (reset)"
                                                                      : "server (write error)");
    conn_close(c);
}

/* ------------------------------------------------------------------------ requests */

/* Answers a malformed request with 400 and ends the connection. */
static void bad_request(struct conn *c, const struct shunt_http_error *err, const char *what)
{
    struct response *r = &c->resp;
    memset(r, 0, sizeof(*r));
    r->status = 400;
    if (err != NULL) {
        CONN_LOG(c, "bad %s (%s at byte %zu) -> 400", what, shunt_http_reason_name(err->reason),
                 err->offset);
        snprintf(r->text, sizeof(r->text), "400 Bad Request: %s\n",
                 shunt_http_reason_str(err->reason));
    } else {
        snprintf(r->text, sizeof(r->text), "400 Bad Request\n");
    }
    r->body_len = strlen(r->text);
    r->close_why = "bad request";
    snprintf(r->method, sizeof(r->method), "-");
    snprintf(r->path, sizeof(r->path), "-");
    shunt_conn_release_input(&c->conn);
    send_response(c);
}

/* Parses the decimal <s> (<len> bytes) into *<v>, refusing anything above <max>. */
static int parse_uint(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (x > max)
        return -1;
    *v = x;
    return 0;
}

static int has_prefix(const char *s, size_t len, const char *p)
{
    size_t pl = strlen(p);
    return len >= pl && memcmp(s, p, pl) == 0;
}

/* Fills c->resp's status and body from the request path <p>/<len> (query removed). */
static void route(struct conn *c, const char *p, size_t len)
{
    struct response *r = &c->resp;
    uint64_t v;
    r->status = 200;
    if (has_prefix(p, len, "/bytes/")) {
        if (parse_uint(p + 7, len - 7, ORIGIN_MAX_BYTES, &v) != 0) {
            r->status = 400;
            snprintf(r->text, sizeof(r->text), "400 Bad Request: /bytes/N takes N from 0 to %u\n",
                     ORIGIN_MAX_BYTES);
        } else {
            r->bytes_body = 1;
            r->body_len = v;
            return;
        }
    } else if (has_prefix(p, len, "/delay/")) {
        if (parse_uint(p + 7, len - 7, ORIGIN_MAX_DELAY_MS, &v) != 0) {
            r->status = 400;
            snprintf(r->text, sizeof(r->text),
                     "400 Bad Request: /delay/MS takes MS from 0 to %u\n", ORIGIN_MAX_DELAY_MS);
        } else {
            r->delay_ms = v;
            snprintf(r->text, sizeof(r->text), "delayed %llu ms\n", (unsigned long long)v);
        }
    } else if (has_prefix(p, len, "/status/")) {
        if (parse_uint(p + 8, len - 8, 599, &v) != 0 || v < 200) {
            r->status = 400;
            snprintf(r->text, sizeof(r->text),
                     "400 Bad Request: /status/CODE takes CODE from 200 to 599\n");
        } else {
            r->status = (int)v;
            snprintf(r->text, sizeof(r->text), "status %d\n", r->status);
        }
    } else {
        snprintf(r->text, sizeof(r->text), "hello from shunt lab origin\n");
    }
    r->body_len = strlen(r->text);
}

/* Sets a 401 answer asking for the configured scheme (with <token> when not NULL). */
static void unauthorized(struct conn *c, const char *token)
{
    struct response *r = &c->resp;
    const char *scheme = c->o->cfg.auth == AUTH_NTLM        ? "NTLM"
                         : c->o->cfg.auth == AUTH_NEGOTIATE ? "Negotiate"
                                                            : "Basic";
    r->status = 401;
    r->bytes_body = 0;
    r->delay_ms = 0;
    if (c->o->cfg.auth == AUTH_BASIC)
        snprintf(r->www_auth, sizeof(r->www_auth), "Basic realm=\"lab\"");
    else if (token != NULL)
        snprintf(r->www_auth, sizeof(r->www_auth), "%s %s", scheme, token);
    else
        snprintf(r->www_auth, sizeof(r->www_auth), "%s", scheme);
    snprintf(r->text, sizeof(r->text), "401 Unauthorized: this origin wants %s\n", scheme);
    r->body_len = strlen(r->text);
    if (token == NULL && c->o->cfg.auth != AUTH_BASIC)
        c->challenged = 1;
}

/* Splits the Authorization value <v> into scheme and token (either may be empty). */
static void split_credentials(struct shunt_slice v, struct shunt_slice *scheme,
                              struct shunt_slice *token)
{
    size_t i = 0;
    while (i < v.len && v.base[i] != ' ')
        i++;
    *scheme = shunt_slice_make(v.base, i);
    while (i < v.len && v.base[i] == ' ')
        i++;
    *token = shunt_slice_make(v.base + i, v.len - i);
}

/* Runs the connection's authentication for this request. Returns 1 when the request may
 * be served (c->resp may carry a WWW-Authenticate for it), 0 when c->resp is now a 401. */
static int authenticate(struct conn *c)
{
    const struct origin_cfg *cfg = &c->o->cfg;
    struct response *r = &c->resp;
    if (cfg->auth == AUTH_NONE || c->authenticated)
        return 1;
    const struct shunt_http_header *h = shunt_http_find_header(&c->head, "Authorization", 13);
    struct shunt_slice scheme = {NULL, 0}, token = {NULL, 0};
    if (h != NULL)
        split_credentials(h->value, &scheme, &token);

    if (cfg->auth == AUTH_BASIC) {
        uint8_t raw[512];
        long n = -1;
        if (h != NULL && SHUNT_SLICE_IEQ_LIT(scheme, "Basic"))
            n = shunt_lab__b64_decode(token.base, token.len, raw, sizeof(raw));
        const uint8_t *colon = n > 0 ? memchr(raw, ':', (size_t)n) : NULL;
        size_t pl = sizeof(ORIGIN_BASIC_PASSWORD) - 1;
        if (colon != NULL && (size_t)n - (size_t)(colon + 1 - raw) == pl &&
            memcmp(colon + 1, ORIGIN_BASIC_PASSWORD, pl) == 0)
            return 1;
        if (h != NULL)
            CONN_LOG(c, "Basic credentials %s -> 401", n < 0 ? "malformed" : "wrong");
        unauthorized(c, NULL);
        return 0;
    }

    const char *name = cfg->auth == AUTH_NTLM ? "NTLM" : "Negotiate";
    if (h == NULL || !shunt_slice_ieq(scheme, name, strlen(name)) || token.len == 0) {
        if (h != NULL)
            CONN_LOG(c, "Authorization '%.*s' is not %s -> 401", (int)(scheme.len > 40 ? 40 : scheme.len),
                     scheme.base, name);
        else
            CONN_LOG(c, "no credentials -> 401 %s", name);
        c->ntlm_pending = 0;
        unauthorized(c, NULL);
        return 0;
    }
    enum shunt_lab_token_kind kind = shunt_lab_token_kind(token.base, token.len);
    char user[160];

    if (cfg->auth == AUTH_NTLM) {
        if (kind == SHUNT_LAB_TOKEN_NTLM_NEGOTIATE) {
            char t2[SHUNT_LAB_TOKEN_MAX];
            if (shunt_lab_ntlm_challenge(c->challenge, t2, sizeof(t2)) != 0) {
                unauthorized(c, NULL);
                return 0;
            }
            c->ntlm_pending = 1;
            CONN_LOG(c, "%s", "NTLM negotiate -> challenge");
            unauthorized(c, t2);
            return 0;
        }
        if (kind == SHUNT_LAB_TOKEN_NTLM_AUTHENTICATE) {
            if (!c->ntlm_pending) {
                CONN_LOG(c, "%s", "NTLM authenticate on a connection without challenge -> 401");
                unauthorized(c, NULL);
                return 0;
            }
            c->ntlm_pending = 0;
            if (shunt_lab_ntlm_verify(token.base, token.len, c->challenge, user,
                                      sizeof(user)) != 0) {
                CONN_LOG(c, "%s", "NTLM authenticate does not answer this connection's challenge -> 401");
                unauthorized(c, NULL);
                return 0;
            }
            c->authenticated = 1;
            CONN_LOG(c, "NTLM authenticate user %s -> %d", user, r->status);
            return 1;
        }
        CONN_LOG(c, "%s", "NTLM token malformed or unexpected -> 401");
        c->ntlm_pending = 0;
        unauthorized(c, NULL);
        return 0;
    }

    /* Negotiate */
    if (!c->challenged) {
        CONN_LOG(c, "%s", "Negotiate token on a connection without challenge -> 401");
        unauthorized(c, NULL);
        return 0;
    }
    if (kind != SHUNT_LAB_TOKEN_SPNEGO_INIT ||
        shunt_lab_spnego_verify(token.base, token.len, user, sizeof(user)) != 0) {
        CONN_LOG(c, "%s", "Negotiate token malformed or not a Kerberos NegTokenInit -> 401");
        unauthorized(c, NULL);
        return 0;
    }
    char fin[SHUNT_LAB_TOKEN_MAX];
    if (shunt_lab_spnego_final(fin, sizeof(fin)) != 0) {
        unauthorized(c, NULL);
        return 0;
    }
    c->authenticated = 1;
    snprintf(r->www_auth, sizeof(r->www_auth), "Negotiate %s", fin);
    CONN_LOG(c, "Negotiate user %s -> %d", user, r->status);
    return 1;
}

/* Decides the response to the request whose head is in c->head (its slices valid now). */
static void on_head(struct conn *c)
{
    const struct origin_cfg *cfg = &c->o->cfg;
    struct response *r = &c->resp;
    const struct shunt_http_head *hd = &c->head;
    memset(r, 0, sizeof(*r));

    snprintf(r->method, sizeof(r->method), "%.*s", (int)(hd->method.len > 15 ? 15 : hd->method.len),
             hd->method.base);
    r->is_head = SHUNT_SLICE_IEQ_LIT(hd->method, "HEAD");
    /* The path: origin-form as is; absolute-form without scheme and authority. */
    const char *p = hd->target.base;
    size_t plen = hd->target.len;
    struct shunt_target tg;
    if (shunt_http_split_target(hd->target, 0, &tg) == SHUNT_TARGET_ABSOLUTE) {
        p = tg.path.base;
        plen = tg.path.len;
    }
    const char *q = plen > 0 ? memchr(p, '?', plen) : NULL;
    size_t route_len = q ? (size_t)(q - p) : plen;
    snprintf(r->path, sizeof(r->path), "%.*s",
             (int)(plen > ORIGIN_LOG_PATH ? ORIGIN_LOG_PATH : plen), plen ? p : "");

    /* Keep-alive (RFC 9112 9.3), then the origin's own policies. */
    int keep = shunt_http_keeps_alive(hd);
    r->close_why = hd->conn_close ? "client asked close" : "HTTP/1.0 client";
    if (cfg->http10) {
        keep = hd->conn_keep_alive && !hd->conn_close;
        r->close_why = hd->conn_close ? "client asked close" : "http10";
    }
    r->keep_alive_header = keep && (cfg->http10 || hd->minor_version == 0);
    if (keep && cfg->close_after > 0 && c->n_responses + 1 >= cfg->close_after) {
        keep = 0;
        r->close_why = "close-after";
    }
    if (keep && c->o->stopping) {
        keep = 0;
        r->close_why = "shutdown";
    }
    r->keep_alive = keep;

    route(c, plen ? p : "/", plen ? route_len : 1);
    if (authenticate(c) && cfg->reauth_with_via && c->authenticated &&
        shunt_http_find_header(hd, "Via", 3) != NULL) {
        /* IIS's authentication for a request by proxy (AuthPersistSingleRequestIfProxy, which
         * IIS 5 documents; docs/knowledge.md): served, then reset at the end of the request,
         * so the connection's next request must authenticate again. */
        c->authenticated = 0;
        c->challenged = 0;
        CONN_LOG(c, "%s", "Via: the authentication ends with this request");
    }
}

/* Consumes <n> bytes at the start of the input buffer. */
static void consume(struct conn *c, size_t n)
{
    if (n > 0)
        shunt_conn_consume(&c->conn, n);
}

static void on_delay(uv_timer_t *t)
{
    struct conn *c = t->data;
    c->st = ST_HEAD;
    send_response(c);
    if (c->st == ST_HEAD)
        process(c);
}

/* Handles every complete request in the input buffer, in order. */
static void process(struct conn *c)
{
    while (!c->closed && !c->lingering && (c->st == ST_HEAD || c->st == ST_BODY)) {
        if (c->st == ST_HEAD) {
            if (!shunt_conn_has_input(&c->conn))
                break;
            struct shunt_http_error err;
            int r = shunt_http_parse_request(shunt_conn_data(&c->conn), shunt_conn_avail(&c->conn),
                                             c->last_len, &c->head, c->headers,
                                             ORIGIN_MAX_HEADERS, &origin_limits, &err);
            if (r == 0) {
                c->last_len = shunt_conn_avail(&c->conn);
                if (shunt_conn_in_full(&c->conn)) { /* cannot happen: max_head is smaller */
                    bad_request(c, NULL, "request");
                    break;
                }
                break;
            }
            if (r < 0) {
                bad_request(c, &err, "request");
                break;
            }
            c->last_len = 0;
            on_head(c);
            if (c->head.expect_continue && c->head.minor_version == 1 &&
                c->head.framing != SHUNT_HTTP_BODY_NONE && c->resp.status < 400) {
                static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
                (void)uv_try_write((uv_stream_t *)&c->conn.tcp, &b, 1);
            }
            shunt_http_body_init(&c->body, c->head.framing, c->head.content_length,
                                 &origin_limits);
            consume(c, (size_t)r);
            c->st = ST_BODY;
        }
        if (!c->body.done) {
            struct shunt_http_error err;
            int has = shunt_conn_has_input(&c->conn);
            long n = shunt_http_body_scan(&c->body, has ? shunt_conn_data(&c->conn) : "",
                                          has ? shunt_conn_avail(&c->conn) : 0, NULL, NULL, &err);
            if (n < 0) {
                bad_request(c, &err, "request body");
                break;
            }
            consume(c, (size_t)n);
            if (!c->body.done)
                break;
        }
        if (c->resp.delay_ms > 0) {
            c->st = ST_DELAY;
            uv_timer_stop(&c->idle);
            uv_timer_start(&c->delay, on_delay, c->resp.delay_ms, 0);
            break;
        }
        c->st = ST_HEAD;
        send_response(c);
    }
    if (!c->closed && !c->lingering) {
        /* Read on while there is room; a full buffer waits for the body or delay to move. */
        set_reading(c, !shunt_conn_in_full(&c->conn));
        if (c->peer_eof && c->st == ST_HEAD && c->writes == 0) {
            conn_close(c);
            return;
        }
        arm_idle(c);
    }
}

/* ------------------------------------------------------------------------ I/O */

static void on_data(struct shunt_conn *conn)
{
    struct conn *c = SHUNT_CONTAINER_OF(conn, struct conn, conn);
    if (c->closed)
        return;
    if (c->lingering) {
        shunt_conn_release_input(conn); /* drained and dropped */
        return;
    }
    process(c);
}

static void on_eof(struct shunt_conn *conn, enum shunt_conn_how how, int err)
{
    struct conn *c = SHUNT_CONTAINER_OF(conn, struct conn, conn);
    if (how == SHUNT_CONN_HOW_FIN) {
        c->peer_eof = 1;
        if (c->lingering) {
            conn_close(c);
            return;
        }
        conn_closed_log(c, "client (FIN)");
        if (c->st == ST_HEAD && c->writes == 0) {
            conn_close(c);
            return;
        }
        /* Answer what was fully received; close once it is written. */
        process(c);
        return;
    }
    conn_closed_log(c, err == UV_ECONNRESET ? "client (reset)" : "client (read error)");
    conn_close(c);
}

/* The input moved: a head parse in progress starts over. */
static void on_moved(struct shunt_conn *conn)
{
    SHUNT_CONTAINER_OF(conn, struct conn, conn)->last_len = 0;
}

static void on_closed(struct shunt_conn *conn)
{
    conn_unref(SHUNT_CONTAINER_OF(conn, struct conn, conn));
}

static const struct shunt_conn_ops conn_ops = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drained = on_drained,
    .on_write_error = on_write_error,
    .on_moved = on_moved,
    .on_closed = on_closed,
};

static void on_connection(uv_stream_t *l, int status)
{
    struct origin *o = l->data;
    if (status < 0 || o->stopping)
        return;
    struct conn *c = shunt_xcalloc(sizeof(*c));
    c->o = o;
    if (shunt_conn_init(&c->conn, &o->loop, &conn_ops, &o->pool, 1, 2) != 0) {
        free(c);
        return;
    }
    uv_timer_init(&o->loop, &c->idle);
    uv_timer_init(&o->loop, &c->delay);
    c->idle.data = c->delay.data = c;
    c->open_handles = 3;
    c->id = o->next_id++;
    c->next = o->conns;
    if (o->conns)
        o->conns->prev = c;
    o->conns = c;
    if (shunt_conn_accept(&c->conn, l) != 0) {
        c->end_logged = 1;
        conn_close(c);
        return;
    }
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    char ip[64];
    if (uv_tcp_getpeername(&c->conn.tcp, (struct sockaddr *)&peer, &len) == 0)
        c->port = shunt_addr_format((struct sockaddr *)&peer, ip, sizeof(ip));
    CONN_LOG(c, "%s", "opened");
    set_reading(c, 1);
    arm_idle(c);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct origin *o = s->data;
    if (o->stopping)
        return;
    o->stopping = 1;
    shunt_log_raw("origin: %s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&o->listener, NULL);
    uv_close((uv_handle_t *)&o->sigint, NULL);
    uv_close((uv_handle_t *)&o->sigterm, NULL);
    while (o->conns != NULL) {
        conn_closed_log(o->conns, "server (shutdown)");
        conn_close(o->conns);
    }
}

/* ------------------------------------------------------------------------ options */

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "shunt lab origin: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see shunt lab origin --help)\n");
    return ORIGIN_USAGE;
}

/* Parses the command line into <cfg>. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, struct origin_cfg *cfg)
{
    const char *listen = ORIGIN_DEFAULT_LISTEN;
    cfg->auth = AUTH_NONE;
    cfg->server = ORIGIN_DEFAULT_SERVER;
    cfg->idle_ms = (uint64_t)(ORIGIN_DEFAULT_IDLE_S * 1000);
    int server_set = 0, no_server = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];
        /* --opt=value or --opt value */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq != NULL && (size_t)(eq - a) < sizeof(name)) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
            val = eq + 1;
            a = name;
        }
        int takes = strcmp(a, "--listen") == 0 || strcmp(a, "--auth") == 0 ||
                    strcmp(a, "--server-header") == 0 || strcmp(a, "--close-after") == 0 ||
                    strcmp(a, "--idle-timeout") == 0;
        if (takes && val == NULL) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value%s", a, "");
            val = argv[++i];
        } else if (!takes && val != NULL) {
            return usage_error("%s takes no value%s", a, "");
        }

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return ORIGIN_OK;
        } else if (strcmp(a, "--listen") == 0) {
            listen = val;
        } else if (strcmp(a, "--auth") == 0) {
            if (strcmp(val, "none") == 0)
                cfg->auth = AUTH_NONE;
            else if (strcmp(val, "basic") == 0)
                cfg->auth = AUTH_BASIC;
            else if (strcmp(val, "ntlm") == 0)
                cfg->auth = AUTH_NTLM;
            else if (strcmp(val, "negotiate") == 0)
                cfg->auth = AUTH_NEGOTIATE;
            else
                return usage_error("--auth: '%s' is not one of negotiate, ntlm, basic, none%s",
                                   val, "");
        } else if (strcmp(a, "--server-header") == 0) {
            size_t n = strlen(val);
            if (n == 0 || n > ORIGIN_MAX_SERVER_HEADER)
                return usage_error("--server-header: the value must have 1 to 512 characters%s%s",
                                   "", "");
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)val[k] < 0x20 || (unsigned char)val[k] == 0x7f)
                    return usage_error("--server-header: '%s' has a control character%s", val, "");
            cfg->server = val;
            server_set = 1;
        } else if (strcmp(a, "--no-server-header") == 0) {
            no_server = 1;
        } else if (strcmp(a, "--http10") == 0) {
            cfg->http10 = 1;
        } else if (strcmp(a, "--reauth-with-via") == 0) {
            cfg->reauth_with_via = 1;
        } else if (strcmp(a, "--close-after") == 0) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(val, &end, 10);
            if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 || n == 0 ||
                n > 1000000000ul)
                return usage_error("--close-after: '%s' is not a number of responses (1 or more)%s",
                                   val, "");
            cfg->close_after = n;
        } else if (strcmp(a, "--idle-timeout") == 0) {
            char *end;
            errno = 0;
            double s = strtod(val, &end);
            if (end == val || *end != '\0' || errno != 0 || !(s > 0) || s > 86400)
                return usage_error("--idle-timeout: '%s' is not a number of seconds (0 < S <= "
                                   "86400)%s", val, "");
            cfg->idle_ms = (uint64_t)(s * 1000 + 0.5);
            if (cfg->idle_ms == 0)
                cfg->idle_ms = 1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            cfg->quiet = 1;
        } else {
            return usage_error("unknown option '%s'%s", a, "");
        }
    }
    if (no_server && server_set)
        return usage_error("--server-header and --no-server-header contradict each other%s%s",
                           "", "");
    if (no_server)
        cfg->server = NULL;
    if (shunt_addr_parse(listen, &cfg->addr) != 0)
        return usage_error("--listen: '%s' is not ADDR:PORT (an IP address, or localhost)%s",
                           listen, "");
    return -1;
}

/* ------------------------------------------------------------------------ main */

int shunt_lab_origin_main(int argc, char **argv)
{
    struct origin *o = shunt_xcalloc(sizeof(*o));
    int rc = parse_args(argc, argv, &o->cfg);
    if (rc >= 0) {
        free(o);
        return rc;
    }
    memset(xs, 'x', sizeof(xs));
    o->next_id = 1;

    const struct sockaddr *sa = (const struct sockaddr *)&o->cfg.addr;
    char ip[64];
    int fd = shunt_listen_open(sa, 128, 0);
    if (fd < 0) {
        int port = shunt_addr_format(sa, ip, sizeof(ip));
        fprintf(stderr, "shunt lab origin: cannot listen on %s:%d: %s\n", ip, port,
                strerror(-fd));
        free(o);
        return ORIGIN_FAIL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);

    shunt_conn_pool_init(&o->pool, ORIGIN_IN_CAP, 16);
    int r = uv_loop_init(&o->loop);
    if (r != 0) {
        shunt_conn_pool_dispose(&o->pool);
        close(fd);
        fprintf(stderr, "shunt lab origin: %s\n", uv_strerror(r));
        free(o);
        return ORIGIN_FAIL;
    }
    uv_tcp_init(&o->loop, &o->listener);
    o->listener.data = o;
    r = uv_tcp_open(&o->listener, fd);
    if (r != 0)
        close(fd);
    else
        r = uv_listen((uv_stream_t *)&o->listener, 128, on_connection);
    if (r != 0) {
        fprintf(stderr, "shunt lab origin: cannot listen: %s\n", uv_strerror(r));
        rc = ORIGIN_FAIL;
        uv_close((uv_handle_t *)&o->listener, NULL);
        goto out;
    }
    uv_signal_init(&o->loop, &o->sigint);
    uv_signal_init(&o->loop, &o->sigterm);
    o->sigint.data = o->sigterm.data = o;
    uv_signal_start(&o->sigint, on_signal, SIGINT);
    uv_signal_start(&o->sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    int port = shunt_addr_format((struct sockaddr *)&bound, ip, sizeof(ip));
    printf(bound.ss_family == AF_INET6 ? "shunt lab origin: listening on [%s]:%d\n"
                                       : "shunt lab origin: listening on %s:%d\n",
           ip, port);
    fflush(stdout);
    shunt_log_raw("origin: auth %s, Server %s%s%s, %s, close-after %lu, idle timeout %.3gs",
                  o->cfg.auth == AUTH_NTLM        ? "ntlm"
                  : o->cfg.auth == AUTH_NEGOTIATE ? "negotiate"
                  : o->cfg.auth == AUTH_BASIC     ? "basic"
                                                  : "none",
                  o->cfg.server ? "'" : "", o->cfg.server ? o->cfg.server : "none",
                  o->cfg.server ? "'" : "", o->cfg.http10 ? "HTTP/1.0" : "HTTP/1.1",
                  o->cfg.close_after, (double)o->cfg.idle_ms / 1000.0);
    rc = ORIGIN_OK;
out:
    uv_run(&o->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&o->loop) != 0)
        shunt_log(SHUNT_LOG_WARN, "lab origin: handles left open at exit");
    shunt_conn_pool_dispose(&o->pool);
    free(o);
    return rc;
}
