/* src/lab/client.c - `shunt lab client`: an HTTP/1.1 client with keep-alive policies
 * (keepalive, http10, and WinINet's rule from the story) that does the lab's Negotiate, NTLM
 * and Basic handshakes, directly or through a forward proxy, and sums up what it paid in
 * connections and handshakes. Blocking sockets, one thread per concurrent worker. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/version.h"
#include "http/parser.h"
#include "http/target.h"
#include "lab/auth.h"
#include "lab/internal.h"
#include "lab/lab.h"

/* Exit statuses (lab.h). */
#define CL_OK 0
#define CL_FAILED 1
#define CL_USAGE 2

#define CL_MAX_URLS 64
#define CL_MAX_WORKERS 1024
#define CL_MAX_REQUESTS 100000000ULL
/* 401 answers one request may get before it is given up (a challenge, NTLM's second leg,
 * and one more): a handshake that cannot complete ends instead of looping. */
#define CL_MAX_401 3
/* A worker's input buffer: a whole head (the parser's limit is 64 KiB) plus body bytes. */
#define CL_IN_CAP (128 * 1024)
/* WWW-Authenticate challenges kept from one response, and the room for each. */
#define CL_MAX_CHALLENGES 8
#define CL_CHALLENGE_CAP (SHUNT_LAB_TOKEN_MAX + 64)
/* Room for an Authorization field's value ("Negotiate " + token). */
#define CL_AUTHZ_CAP (SHUNT_LAB_TOKEN_MAX + 32)

static const char help[] =
    "usage: shunt lab client [options] URL...\n"
    "\n"
    "Sends --requests requests to the URLs (http:// only, used in turn) and tells what it\n"
    "cost: connections opened, who closed them, authentication handshakes, time.\n"
    "\n"
    "options:\n"
    "  --policy P         when a connection is kept for the next request:\n"
    "                       keepalive  whenever HTTP allows (the default): HTTP/1.1 without\n"
    "                                  Connection: close, HTTP/1.0 with keep-alive, known\n"
    "                                  framing\n"
    "                       http10     HTTP/1.0 requests without keep-alive: one connection\n"
    "                                  per request (once the server asks for NTLM or\n"
    "                                  Negotiate, the legs that must get a challenge on the\n"
    "                                  same connection ask Connection: Keep-Alive; the final\n"
    "                                  leg does not)\n"
    "                       wininet    like keepalive, except WinINet's rule: after an\n"
    "                                  NTLM/Negotiate handshake on the connection, a response\n"
    "                                  other than 401 without a Server header (or with\n"
    "                                  Microsoft-IIS/1.0, 2.0 or 3.0) is read whole and the\n"
    "                                  connection closed gracefully (FIN)\n"
    "  --user USER[:PASS] the credentials (default LAB\\alice:lab)\n"
    "  --max-per-conn N   close a connection (FIN) after its N-th final response, as a\n"
    "                     client with a limit of requests per connection would\n"
    "  --reset            end the connections the client itself closes with a reset (RST,\n"
    "                     SO_LINGER 0) instead of a FIN\n"
    "  --split-handshake  send each leg of a handshake on a new connection, as a pooling\n"
    "                     proxy that does not pair connections would: NTLM and Negotiate\n"
    "                     then fail (counted as auth failures), Basic works\n"
    "  --proxy HOST:PORT  send through this forward proxy (absolute-form targets)\n"
    "  --requests N       requests in all, across the workers (default 1)\n"
    "  --concurrency C    workers, each with its own connection (default 1)\n"
    "  --think MS         pause between two requests of a worker (default 0)\n"
    "  --timeout S        bound of each request, connect included (default 10)\n"
    "  --method M         GET (default) or HEAD\n"
    "  --json             print the summary as one JSON object\n"
    "  -v                 one line per request on stderr: worker, local port, request,\n"
    "                     status, whether the connection was kept or closed, and why\n"
    "  -h, --help         this text\n"
    "\n"
    "The client answers a 401 with WWW-Authenticate: Negotiate, NTLM or Basic (in that order\n"
    "of preference) on the same connection; an authenticated connection sends no further\n"
    "Authorization (NTLM and Negotiate are connection-bound), Basic is then sent up front.\n"
    "\n"
    "Exit status: 0 every request got a final response other than 401, 1 some failed\n"
    "(refused, timed out, reset, malformed, or 401 in the end), 2 bad usage. See\n"
    "docs/lab-client.md.\n";

enum policy { POLICY_KEEPALIVE, POLICY_HTTP10, POLICY_WININET };
static const char *const policy_names[] = {"keepalive", "http10", "wininet"};

/* Why a request failed; "auth" is a final 401. */
enum fail { F_NONE, F_CONNECT, F_TIMEOUT, F_RESET, F_CLOSED, F_BAD_RESPONSE, F_SEND, F_AUTH, F__N };
static const char *const fail_names[] = {"",       "connect", "timeout", "reset",
                                         "closed", "bad_response", "send", "auth"};

/* What the Authorization of the request being sent carries. */
enum leg { LEG_NONE, LEG_BASIC, LEG_NTLM1, LEG_NTLM3, LEG_NEGOTIATE };

/* Who ended a connection. */
enum closer { BY_CLIENT, BY_SERVER, AT_END, ON_ERROR };

/* One target, parsed from an http:// URL. */
struct url {
    const char *text;             /* as given */
    char host[256];               /* name or address, without brackets */
    char hostport[300];           /* the Host field: host[:port] as given */
    char path[2048];              /* origin-form target, "/" at least */
    struct sockaddr_storage addr; /* resolved */
    socklen_t addr_len;
};

/* The options and what all workers share. */
struct run {
    enum policy policy;
    struct url urls[CL_MAX_URLS];
    size_t n_urls;
    int has_proxy;
    char proxy[300];                    /* HOST:PORT as given */
    struct sockaddr_storage proxy_addr; /* when has_proxy */
    socklen_t proxy_addr_len;
    uint64_t n_requests;   /* in all */
    unsigned concurrency;  /* workers */
    unsigned think_ms;     /* pause between a worker's requests */
    double timeout_s;      /* per request */
    const char *method;    /* "GET" or "HEAD" */
    char user[256];        /* without the password */
    char pass[256];
    int split;             /* --split-handshake */
    unsigned max_per_conn; /* --max-per-conn: final responses a connection serves; 0 no limit */
    int reset;             /* --reset: the client's own closes are resets */
    int json;              /* --json */
    int verbose;           /* -v */
    atomic_ullong next;    /* index of the next request to send */
};

/* Counters, per worker and summed. */
struct stats {
    uint64_t requests, ok, failed;
    uint64_t statuses[1000];  /* by final status code */
    uint64_t fails[F__N];     /* by reason */
    uint64_t opened;          /* connections established */
    uint64_t closed[4];       /* by enum closer */
    uint64_t handshakes;      /* 401 challenges answered with a new authentication exchange */
    uint64_t auth_failures;   /* handshakes that ended in a final 401 or a bad final token */
    const char *scheme;       /* first scheme used, or NULL */
    int64_t latency_ms;       /* sum over requests */
};

/* A worker's connection. */
struct conn {
    int fd;            /* -1 when none */
    const struct url *dest; /* the origin it serves (one per connection, even via a proxy) */
    int port;          /* local port */
    unsigned n_sent;   /* requests sent on it */
    unsigned n_final;  /* final responses other than 401 read on it */
    int auth_ctx;      /* an NTLM/Negotiate Authorization was sent on it */
    int authenticated; /* an NTLM/Negotiate handshake completed on it */
};

struct worker {
    struct run *run;
    unsigned id;
    pthread_t thread;
    struct conn c;
    char *in;          /* CL_IN_CAP bytes; received and not yet consumed */
    size_t in_len;
    int basic_known;   /* the server asked for Basic: send it up front */
    int bound_seen;    /* the server asked for NTLM or Negotiate (http10: ask for keep-alive) */
    const char *why;   /* why the last connection closed, or "kept" */
    char err[512];     /* detail of the last failure */
    struct stats st;
};

/* The parts of a final response the client decides on; copied out of the input buffer. */
struct resp {
    int status;
    int keep;        /* HTTP lets the connection carry another message */
    int eof;         /* the server closed (close-delimited body) */
    int leftover;    /* bytes followed the response unasked */
    int has_server;
    char server[128];
    char challenges[CL_MAX_CHALLENGES][CL_CHALLENGE_CAP]; /* WWW-Authenticate items */
    size_t n_challenges;
    int nothing;     /* failure before any byte of a response arrived */
};

/* ------------------------------------------------------------------------------ helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits until <fd> is ready for <events> or <deadline> (now_ms()) passes. Returns 1 ready,
 * 0 timed out, -1 poll failed. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n > 0)
            return 1;
    }
}

/* Resolves <host>:<port> into <out>. Returns 0, or -1 after printing why. */
static int resolve(const char *host, const char *port, struct sockaddr_storage *out,
                   socklen_t *out_len, const char *what)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        fprintf(stderr, "shunt lab client: cannot resolve %s '%s': %s\n", what, host,
                rc != 0 ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *out_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Splits "host:port" or "[v6]:port" at <text> into <host> (<host_cap>) and <port> (6 bytes)
 * with http/target.h's reading. Returns 0, or -1 when malformed. <port_opt>: a missing port
 * is allowed (port left empty). */
static int split_hostport(const char *text, size_t len, char *host, size_t host_cap,
                          char port[6], int port_opt)
{
    struct shunt_authority au;
    if (shunt_http_split_authority(shunt_slice_make(text, len), 0,
                                   port_opt ? 0 : SHUNT_AUTHORITY_NEED_PORT, &au) != NULL ||
        au.host.len >= host_cap)
        return -1;
    memcpy(host, au.host.base, au.host.len);
    host[au.host.len] = '\0';
    port[0] = '\0';
    if (au.has_port)
        snprintf(port, 6, "%d", au.port);
    return 0;
}

/* Parses the http:// URL <text> into <u>. Returns 0, or -1 after printing why. */
static int parse_url(const char *text, struct url *u)
{
    u->text = text;
    if (strncasecmp(text, "https://", 8) == 0) {
        fprintf(stderr, "shunt lab client: %s: https:// is not supported, the lab client "
                        "speaks plain HTTP (use http://)\n", text);
        return -1;
    }
    if (strncasecmp(text, "http://", 7) != 0) {
        fprintf(stderr, "shunt lab client: %s: not a URL (want http://HOST[:PORT][/PATH])\n",
                text);
        return -1;
    }
    struct shunt_target t; /* absolute-form: the prefix says so */
    (void)shunt_http_split_target(shunt_slice_make(text, strlen(text)), 0, &t);
    const char *auth = t.authority.base;
    size_t alen = t.authority.len;
    if (auth[alen] == '#' || memchr(auth, '@', alen) != NULL) {
        fprintf(stderr, "shunt lab client: %s: want http://HOST[:PORT][/PATH] (no user info "
                        "or fragment)\n", text);
        return -1;
    }
    char port[6];
    if (split_hostport(auth, alen, u->host, sizeof(u->host), port, 1) != 0) {
        fprintf(stderr, "shunt lab client: %s: bad host or port\n", text);
        return -1;
    }
    if (port[0] == '\0')
        memcpy(port, "80", 3);
    snprintf(u->hostport, sizeof(u->hostport), "%.*s", (int)alen, auth);
    const char *path = auth + alen;
    if (strlen(path) + 2 > sizeof(u->path)) {
        fprintf(stderr, "shunt lab client: %s: the path is too long\n", text);
        return -1;
    }
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '#') {
            fprintf(stderr, "shunt lab client: %s: the path has a space, a control character "
                            "or a fragment\n", text);
            return -1;
        }
    }
    snprintf(u->path, sizeof(u->path), "%s%s", path[0] == '/' ? "" : "/", path);
    return resolve(u->host, port, &u->addr, &u->addr_len, "the host of");
}

/* Parses the unsigned decimal <text> into <out> within [<lo>, <hi>]. Returns 0 or -1. */
static int parse_num(const char *text, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* -------------------------------------------------------------------------- connections */

/* Ends the worker's connection: shutdown(SHUT_WR) then close(), so that the kernel sends a
 * FIN (a reset is sent only when unread bytes remain, which the callers avoid by reading
 * responses whole), or, for a close the client decided (<who> BY_CLIENT) under --reset,
 * close() with SO_LINGER {1, 0}, so that the kernel sends a RST. Counts it under <who>;
 * <why> is for -v. */
static void conn_close(struct worker *w, enum closer who, const char *why)
{
    if (w->c.fd < 0)
        return;
    if (who == BY_CLIENT && w->run->reset) {
        struct linger lg = {1, 0};
        setsockopt(w->c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    } else {
        shutdown(w->c.fd, SHUT_WR);
    }
    close(w->c.fd);
    w->st.closed[who]++;
    w->why = why;
    w->c = (struct conn){.fd = -1};
    w->in_len = 0;
}

/* Opens a connection to the proxy or to <u>. Returns 0, or an enum fail with w->err set. */
static int conn_open(struct worker *w, const struct url *u, int64_t deadline)
{
    const struct run *r = w->run;
    const struct sockaddr_storage *sa = r->has_proxy ? &r->proxy_addr : &u->addr;
    socklen_t sl = r->has_proxy ? r->proxy_addr_len : u->addr_len;
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(w->err, sizeof(w->err), "socket: %s", strerror(errno));
        return F_CONNECT;
    }
    int e = 0;
    if (connect(fd, (const struct sockaddr *)sa, sl) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            int ready = wait_fd(fd, POLLOUT, deadline);
            if (ready == 0) {
                close(fd);
                snprintf(w->err, sizeof(w->err), "connect timed out");
                return F_TIMEOUT;
            }
            socklen_t el = sizeof(e);
            if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
                e = errno;
        }
    }
    if (e != 0) {
        close(fd);
        snprintf(w->err, sizeof(w->err), "connect to %s: %s",
                 r->has_proxy ? r->proxy : u->hostport, strerror(e));
        return F_CONNECT;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&local, &ll) == 0)
        port = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
                                                 : ((struct sockaddr_in *)&local)->sin_port);
    w->c = (struct conn){.fd = fd, .port = port, .dest = u};
    w->in_len = 0;
    w->st.opened++;
    return 0;
}

/* Before reusing the connection: has the server closed it (or sent something) while it was
 * idle? Closes it then, counted. Returns 1 when it is still usable. */
static int conn_usable(struct worker *w)
{
    char b[512];
    ssize_t n = recv(w->c.fd, b, sizeof(b), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 1;
    if (n == 0)
        conn_close(w, BY_SERVER, "closed by the server while idle");
    else if (n < 0)
        conn_close(w, BY_SERVER, "reset by the server while idle");
    else
        conn_close(w, ON_ERROR, "unexpected bytes while idle");
    return 0;
}

/* Sends all of <p>/<len> before <deadline>. Returns 0, or an enum fail. */
static int send_all(struct worker *w, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(w->c.fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(w->c.fd, POLLOUT, deadline) <= 0) {
                snprintf(w->err, sizeof(w->err), "timed out sending the request");
                return F_TIMEOUT;
            }
            continue;
        }
        if (n <= 0) {
            snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
            return errno == ECONNRESET ? F_RESET : F_SEND;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into the input buffer. Returns >0 bytes read, 0 at EOF, or -(enum fail). */
static long fill(struct worker *w, int64_t deadline)
{
    if (w->in_len == CL_IN_CAP) {
        snprintf(w->err, sizeof(w->err), "response head over %d bytes", CL_IN_CAP);
        return -F_BAD_RESPONSE;
    }
    for (;;) {
        ssize_t n = recv(w->c.fd, w->in + w->in_len, CL_IN_CAP - w->in_len, 0);
        if (n >= 0) {
            w->in_len += (size_t)n;
            return (long)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(w->c.fd, POLLIN, deadline) <= 0) {
                snprintf(w->err, sizeof(w->err), "timed out waiting for the response");
                return -F_TIMEOUT;
            }
            continue;
        }
        snprintf(w->err, sizeof(w->err), "recv: %s", strerror(errno));
        return errno == ECONNRESET ? -F_RESET : -F_CLOSED;
    }
}

static void consume(struct worker *w, size_t n)
{
    memmove(w->in, w->in + n, w->in_len - n);
    w->in_len -= n;
}

/* Keeps the WWW-Authenticate items of <head> in <r>: each comma-separated element that
 * starts a challenge ("Negotiate", "NTLM <token>", "Basic realm=..."). */
static void keep_challenges(const struct shunt_http_head *head, struct resp *r)
{
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct shunt_http_header *h = &head->headers[i];
        if (!shunt_slice_ieq(h->name, "WWW-Authenticate", 16))
            continue;
        const char *p = h->value.base, *end = p + h->value.len;
        while (p < end && r->n_challenges < CL_MAX_CHALLENGES) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            size_t l = (size_t)(e - p);
            while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
                l--;
            if (l > 0 && l < CL_CHALLENGE_CAP) {
                memcpy(r->challenges[r->n_challenges], p, l);
                r->challenges[r->n_challenges++][l] = '\0';
            }
            p = comma ? comma + 1 : end;
        }
    }
}

/*
 * Reads one final response (1xx skipped) whole, body included, from the worker's connection.
 * <is_head>: the request was HEAD. Fills <r>. Returns 0, or an enum fail with w->err set;
 * r->nothing tells that not a byte of a response had arrived.
 */
static int read_response(struct worker *w, int is_head, int64_t deadline, struct resp *r)
{
    struct shunt_http_header hdrs[100];
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_error err;
    struct shunt_http_head head;
    memset(r, 0, sizeof(*r));
    r->nothing = 1;
    for (;;) {
        size_t last = 0;
        int hl;
        for (;;) {
            hl = shunt_http_parse_response(w->in, w->in_len, last, &head, hdrs, 100, &lim, &err);
            if (hl != 0)
                break;
            last = w->in_len;
            long n = fill(w, deadline);
            if (n < 0)
                return (int)-n;
            if (w->in_len > 0)
                r->nothing = 0;
            if (n == 0) {
                snprintf(w->err, sizeof(w->err), "the server closed %s",
                         r->nothing ? "before responding" : "in the middle of the head");
                return F_CLOSED;
            }
        }
        r->nothing = 0;
        if (hl < 0) {
            snprintf(w->err, sizeof(w->err), "bad response: %s at byte %zu",
                     shunt_http_reason_str(err.reason), err.offset);
            return F_BAD_RESPONSE;
        }
        if (head.status >= 100 && head.status < 200 && head.status != 101) {
            consume(w, (size_t)hl); /* interim: the final response follows (RFC 9110 15.2) */
            continue;
        }
        break;
    }
    r->status = head.status;
    r->keep = shunt_http_keeps_alive(&head);
    const struct shunt_http_header *sv = shunt_http_find_header(&head, "Server", 6);
    if (sv != NULL && sv->value.len > 0) {
        r->has_server = 1;
        snprintf(r->server, sizeof(r->server), "%.*s", (int)sv->value.len, sv->value.base);
    }
    keep_challenges(&head, r);
    enum shunt_http_framing fr = shunt_http_response_framing(&head, is_head, 0);
    if (head.status == 101) {
        /* Nothing here asks for an upgrade: what follows is not HTTP/1.1. */
        snprintf(w->err, sizeof(w->err), "unrequested 101 Switching Protocols");
        return F_BAD_RESPONSE;
    }
    uint64_t cl = head.content_length;
    consume(w, head.head_len);

    struct shunt_http_body body;
    shunt_http_body_init(&body, fr, cl, &lim);
    for (;;) {
        if (w->in_len > 0 && !body.done) {
            long n = shunt_http_body_scan(&body, w->in, w->in_len, NULL, NULL, &err);
            if (n < 0) {
                snprintf(w->err, sizeof(w->err), "bad body: %s", shunt_http_reason_str(err.reason));
                return F_BAD_RESPONSE;
            }
            consume(w, (size_t)n);
        }
        if (body.done)
            break;
        long n = fill(w, deadline);
        if (n < 0)
            return (int)-n;
        if (n == 0) {
            if (shunt_http_body_eof(&body)) {
                r->eof = 1;
                break;
            }
            snprintf(w->err, sizeof(w->err), "the server closed in the middle of the body");
            return F_CLOSED;
        }
    }
    if (fr == SHUNT_HTTP_BODY_CLOSE)
        r->keep = 0;
    if (w->in_len > 0)
        r->leftover = 1;
    return 0;
}

/* ------------------------------------------------------------------------------ policy */

/* WinINet's check (the story): no Server field, or one naming IIS 1.0, 2.0 or 3.0. */
static int server_unknown_or_old_iis(const struct resp *r)
{
    if (!r->has_server)
        return 1;
    return strcasecmp(r->server, "Microsoft-IIS/1.0") == 0 ||
           strcasecmp(r->server, "Microsoft-IIS/2.0") == 0 ||
           strcasecmp(r->server, "Microsoft-IIS/3.0") == 0;
}

/* After a whole response on the worker's connection: keeps or closes it by the policy. */
static void after_response(struct worker *w, const struct resp *r)
{
    const struct run *run = w->run;
    w->why = "kept";
    if (r->status != 401)
        w->c.n_final++;
    if (r->eof)
        conn_close(w, BY_SERVER, "closed by the server (body delimited by close)");
    else if (r->leftover)
        conn_close(w, ON_ERROR, "bytes after the response");
    else if (!r->keep)
        conn_close(w, BY_SERVER, "closed by the server (Connection: close or HTTP/1.0)");
    else if (run->policy == POLICY_HTTP10 && r->status != 401)
        conn_close(w, BY_CLIENT, "closed by the client (http10: one request per connection)");
    else if (run->policy == POLICY_WININET && w->c.auth_ctx && r->status != 401 &&
             server_unknown_or_old_iis(r))
        conn_close(w, BY_CLIENT, r->has_server
                                     ? "closed by the client (wininet: auth context, old IIS)"
                                     : "closed by the client (wininet: auth context, no "
                                       "Server header)");
    else if (run->max_per_conn > 0 && w->c.n_final >= run->max_per_conn)
        conn_close(w, BY_CLIENT, "closed by the client (--max-per-conn)");
}

/* Finds the challenge of <scheme> in <r>; returns its parameters ("" when bare), or NULL. */
static const char *find_challenge(const struct resp *r, const char *scheme)
{
    size_t sl = strlen(scheme);
    for (size_t i = 0; i < r->n_challenges; i++) {
        const char *c = r->challenges[i];
        if (strncasecmp(c, scheme, sl) == 0 && (c[sl] == '\0' || c[sl] == ' ')) {
            c += sl;
            while (*c == ' ')
                c++;
            return c;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------- requests */

/* Builds and sends the request for <u> carrying the leg <leg> of a handshake, with the
 * Authorization <authz> (NULL: none). */
static int send_request(struct worker *w, const struct url *u, enum leg leg, const char *authz,
                        int64_t deadline)
{
    const struct run *r = w->run;
    char req[8192];
    /* HTTP/1.0 closes after each response unless asked otherwise, and http10 asks nothing
     * (docs/lab-client.md). But a connection-bound handshake needs its legs on one
     * connection: once the server asked for NTLM or Negotiate, a request that will get a
     * challenge to answer on the same connection (the request without credentials, NTLM's
     * NEGOTIATE) asks for keep-alive, as HTTP/1.0 clients doing NTLM must; the final leg
     * (NTLM's AUTHENTICATE, Negotiate's token), which gets the response, does not. */
    int ask_keep = r->policy == POLICY_HTTP10 && w->bound_seen &&
                   (leg == LEG_NONE || leg == LEG_NTLM1);
    int n = snprintf(req, sizeof(req),
                     "%s %s%s%s HTTP/1.%c\r\nHost: %s\r\n"
                     "User-Agent: shunt-lab-client/" SHUNT_VERSION " (%s)\r\nAccept: */*\r\n"
                     "%s%s%s%s\r\n",
                     r->method, r->has_proxy ? "http://" : "", r->has_proxy ? u->hostport : "",
                     u->path, r->policy == POLICY_HTTP10 ? '0' : '1', u->hostport,
                     policy_names[r->policy], ask_keep ? "Connection: Keep-Alive\r\n" : "",
                     authz ? "Authorization: " : "", authz ? authz : "", authz ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(w->err, sizeof(w->err), "request too long");
        return F_SEND;
    }
    w->c.n_sent++;
    return send_all(w, req, (size_t)n, deadline);
}

/* Writes "Basic base64(user:pass)" into <authz> (CL_AUTHZ_CAP bytes). Returns 0, or -1 with
 * w->err set. */
static int basic_authz(struct worker *w, char *authz)
{
    char cred[520];
    int n = snprintf(cred, sizeof(cred), "%s:%s", w->run->user, w->run->pass);
    memcpy(authz, "Basic ", 6);
    if (n < 0 || (size_t)n >= sizeof(cred) ||
        shunt_lab__b64_encode((const uint8_t *)cred, (size_t)n, authz + 6, CL_AUTHZ_CAP - 6) != 0) {
        snprintf(w->err, sizeof(w->err), "Basic: credentials too long");
        return -1;
    }
    return 0;
}

/* Sets <authz> for the answer to the 401 <r>. <leg> is what the last request carried and
 * becomes what the next one carries. Returns 0, or F_AUTH with w->err set. */
static int answer_challenge(struct worker *w, const struct url *u, const struct resp *r,
                            enum leg *leg, char *authz)
{
    const struct run *run = w->run;
    char tok[SHUNT_LAB_TOKEN_MAX];
    const char *c;
    if (*leg == LEG_NTLM1) {
        c = find_challenge(r, "NTLM");
        if (c == NULL || *c == '\0') {
            snprintf(w->err, sizeof(w->err), "NTLM: no CHALLENGE in the 401");
            return F_AUTH;
        }
        if (shunt_lab_ntlm_authenticate(c, strlen(c), run->user, tok, sizeof(tok)) != 0) {
            snprintf(w->err, sizeof(w->err), "NTLM: a CHALLENGE that cannot be answered");
            return F_AUTH;
        }
        snprintf(authz, CL_AUTHZ_CAP, "NTLM %s", tok);
        *leg = LEG_NTLM3;
        return 0;
    }
    const char *scheme = NULL;
    if (find_challenge(r, "Negotiate") != NULL) {
        if (shunt_lab_spnego_init(run->user, u->host, tok, sizeof(tok)) != 0) {
            snprintf(w->err, sizeof(w->err), "Negotiate: cannot make a token");
            return F_AUTH;
        }
        snprintf(authz, CL_AUTHZ_CAP, "Negotiate %s", tok);
        *leg = LEG_NEGOTIATE;
        w->bound_seen = 1;
        scheme = "Negotiate";
    } else if (find_challenge(r, "NTLM") != NULL) {
        if (shunt_lab_ntlm_negotiate(tok, sizeof(tok)) != 0) {
            snprintf(w->err, sizeof(w->err), "NTLM: cannot make a NEGOTIATE");
            return F_AUTH;
        }
        snprintf(authz, CL_AUTHZ_CAP, "NTLM %s", tok);
        *leg = LEG_NTLM1;
        w->bound_seen = 1;
        scheme = "NTLM";
    } else if (find_challenge(r, "Basic") != NULL) {
        if (basic_authz(w, authz) != 0)
            return F_AUTH;
        *leg = LEG_BASIC;
        w->basic_known = 1;
        scheme = "Basic";
    } else {
        snprintf(w->err, sizeof(w->err), "401 without a Negotiate, NTLM or Basic challenge");
        return F_AUTH;
    }
    w->st.handshakes++;
    if (w->st.scheme == NULL)
        w->st.scheme = scheme;
    return 0;
}

/* Sends request number <idx> until it gets a final answer or fails, and counts it. */
static void do_request(struct worker *w, uint64_t idx)
{
    const struct run *run = w->run;
    const struct url *u = &run->urls[idx % run->n_urls];
    int64_t start = now_ms();
    int64_t deadline = start + (int64_t)(run->timeout_s * 1000.0);
    char authz[CL_AUTHZ_CAP];
    enum leg leg = LEG_NONE;
    int fail = F_NONE, n401 = 0, retried = 0, port = 0, status = 0;
    const char *note = "";
    struct resp *r = malloc(sizeof(*r));
    if (r == NULL) {
        fprintf(stderr, "shunt lab client: out of memory\n");
        abort();
    }
    w->err[0] = '\0';
    w->why = "kept";
    if (w->basic_known && basic_authz(w, authz) == 0)
        leg = LEG_BASIC; /* Basic is not bound to a connection: sent up front once known */

    for (;;) {
        if (w->c.fd >= 0 && strcmp(w->c.dest->hostport, u->hostport) != 0)
            conn_close(w, BY_CLIENT, "closed by the client (another origin)");
        if (w->c.fd >= 0 && run->split && w->c.n_sent > 0)
            conn_close(w, BY_CLIENT, "closed by the client (split handshake: new connection)");
        if (w->c.fd >= 0)
            (void)conn_usable(w);
        if (w->c.fd < 0) {
            fail = conn_open(w, u, deadline);
            if (fail != F_NONE)
                break;
        }
        int reused = w->c.n_sent > 0;
        port = w->c.port;
        if (leg == LEG_NTLM1 || leg == LEG_NTLM3 || leg == LEG_NEGOTIATE)
            w->c.auth_ctx = 1;
        fail = send_request(w, u, leg, leg == LEG_NONE ? NULL : authz, deadline);
        r->nothing = 1;
        if (fail == F_NONE)
            fail = read_response(w, strcmp(run->method, "HEAD") == 0, deadline, r);
        if (fail != F_NONE) {
            int server = fail == F_RESET || fail == F_CLOSED || fail == F_SEND;
            if (server && reused && r->nothing && !retried) {
                /* The server ended the idle connection as the request went out: retry once,
                 * on a new connection, as browsers do (RFC 9112 9.3.1). */
                conn_close(w, BY_SERVER, "closed by the server before responding");
                retried = 1;
                fail = F_NONE;
                if (leg == LEG_NTLM3)
                    leg = LEG_NONE; /* that connection's challenge is gone: start over */
                continue;
            }
            conn_close(w, server ? BY_SERVER : ON_ERROR, w->err);
            break;
        }
        status = r->status;
        if (r->status == 401) {
            w->c.authenticated = 0;
            n401++;
            int final_leg = leg == LEG_BASIC || leg == LEG_NTLM3 || leg == LEG_NEGOTIATE;
            if (final_leg || n401 > CL_MAX_401) {
                w->st.auth_failures++;
                snprintf(w->err, sizeof(w->err), "%s", final_leg ? "credentials refused"
                                                                 : "too many 401 answers");
                after_response(w, r);
                fail = F_AUTH;
                break;
            }
            after_response(w, r);
            if (leg == LEG_NONE && w->c.fd < 0 && run->policy == POLICY_HTTP10 &&
                !w->bound_seen &&
                (find_challenge(r, "Negotiate") != NULL || find_challenge(r, "NTLM") != NULL)) {
                /* An HTTP/1.0 connection ended with the challenge, and the handshake must
                 * happen on one connection: ask again, this time for keep-alive. */
                w->bound_seen = 1;
                continue;
            }
            fail = answer_challenge(w, u, r, &leg, authz);
            if (fail != F_NONE) {
                if (leg != LEG_NONE)
                    w->st.auth_failures++;
                break;
            }
            continue;
        }
        if (leg == LEG_NEGOTIATE) {
            const char *fin = find_challenge(r, "Negotiate");
            if (fin != NULL && *fin != '\0' &&
                shunt_lab_spnego_check_final(fin, strlen(fin)) != 0) {
                w->st.auth_failures++;
                snprintf(w->err, sizeof(w->err), "Negotiate: bad final token in the %d",
                         r->status);
                after_response(w, r);
                fail = F_AUTH;
                break;
            }
        }
        if ((leg == LEG_NTLM3 || leg == LEG_NEGOTIATE) && r->status < 400) {
            w->c.authenticated = 1;
            note = leg == LEG_NTLM3 ? " after NTLM" : " after Negotiate";
        } else if (leg == LEG_BASIC && n401 > 0) {
            note = " after Basic";
        }
        after_response(w, r);
        break;
    }

    int64_t took = now_ms() - start;
    w->st.requests++;
    w->st.latency_ms += took;
    if (fail == F_NONE) {
        w->st.ok++;
        w->st.statuses[status]++;
    } else {
        w->st.failed++;
        w->st.fails[fail]++;
        if (fail == F_AUTH)
            w->st.statuses[401]++;
    }
    if (run->verbose) {
        const char *conn = w->c.fd >= 0 ? "kept" : w->why;
        if (fail == F_NONE)
            fprintf(stderr, "shunt lab client: w%u :%d %s %s -> %d%s, %s (%lld ms)\n", w->id, port,
                    run->method, u->text, status, note, conn, (long long)took);
        else if (fail == F_AUTH)
            fprintf(stderr, "shunt lab client: w%u :%d %s %s -> 401, auth failed: %s; %s "
                            "(%lld ms)\n", w->id, port, run->method, u->text, w->err, conn,
                    (long long)took);
        else
            fprintf(stderr, "shunt lab client: w%u :%d %s %s -> failed (%s): %s (%lld ms)\n",
                    w->id, port, run->method, u->text, fail_names[fail], w->err,
                    (long long)took);
    }
    free(r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int first = 1;
    for (;;) {
        uint64_t idx = atomic_fetch_add(&w->run->next, 1);
        if (idx >= w->run->n_requests)
            break;
        if (!first && w->run->think_ms > 0)
            sleep_ms(w->run->think_ms);
        first = 0;
        do_request(w, idx);
    }
    conn_close(w, AT_END, "open at the end");
    return NULL;
}

/* ------------------------------------------------------------------------------ output */

static void print_text(const struct run *r, const struct stats *s, int64_t total_ms)
{
    printf("shunt lab client: policy %s, %llu request%s to %s", policy_names[r->policy],
           (unsigned long long)r->n_requests, r->n_requests == 1 ? "" : "s", r->urls[0].text);
    if (r->n_urls > 1)
        printf(" and %zu more URL%s", r->n_urls - 1, r->n_urls == 2 ? "" : "s");
    if (r->has_proxy)
        printf(" (through the proxy %s", r->proxy);
    else
        printf(" (direct");
    if (r->concurrency > 1)
        printf(", %u workers", r->concurrency);
    if (r->split)
        printf(", split handshake");
    if (r->max_per_conn > 0)
        printf(", at most %u per connection", r->max_per_conn);
    if (r->reset)
        printf(", closing with resets");
    printf(")\n");

    printf("  requests        %llu (%llu ok, %llu failed)   statuses", (unsigned long long)s->requests,
           (unsigned long long)s->ok, (unsigned long long)s->failed);
    int any = 0;
    for (int c = 0; c < 1000; c++) {
        if (s->statuses[c] > 0) {
            printf(" %d:%llu", c, (unsigned long long)s->statuses[c]);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    if (s->failed > 0) {
        printf("  failures       ");
        const char *sep = " ";
        for (int f = 1; f < F__N; f++) {
            if (s->fails[f] > 0) {
                printf("%s%s %llu", sep, fail_names[f], (unsigned long long)s->fails[f]);
                sep = ", ";
            }
        }
        printf("\n");
    }
    printf("  connections     %llu opened; closed by the client %llu, by the server %llu",
           (unsigned long long)s->opened, (unsigned long long)s->closed[BY_CLIENT],
           (unsigned long long)s->closed[BY_SERVER]);
    if (s->closed[ON_ERROR] > 0)
        printf(", on errors %llu", (unsigned long long)s->closed[ON_ERROR]);
    if (s->closed[AT_END] > 0)
        printf(", open at the end %llu", (unsigned long long)s->closed[AT_END]);
    printf("\n");
    printf("  handshakes      %llu", (unsigned long long)s->handshakes);
    if (s->scheme != NULL)
        printf(" (%s)", s->scheme);
    if (s->auth_failures > 0)
        printf(", %llu auth failure%s", (unsigned long long)s->auth_failures,
               s->auth_failures == 1 ? "" : "s");
    printf("\n");
    printf("  time            %.2f s total, %.1f ms per request\n", (double)total_ms / 1000.0,
           s->requests ? (double)s->latency_ms / (double)s->requests : 0.0);
}

static int print_json(const struct run *r, const struct stats *s, int64_t total_ms)
{
    json_t *o = json_object(), *st = json_object(), *fl = json_object(), *urls = json_array();
    if (o == NULL || st == NULL || fl == NULL || urls == NULL)
        goto fail;
    for (int c = 0; c < 1000; c++) {
        if (s->statuses[c] > 0) {
            char k[16];
            snprintf(k, sizeof(k), "%d", c);
            json_object_set_new(st, k, json_integer((json_int_t)s->statuses[c]));
        }
    }
    for (int f = 1; f < F__N; f++)
        if (s->fails[f] > 0)
            json_object_set_new(fl, fail_names[f], json_integer((json_int_t)s->fails[f]));
    for (size_t i = 0; i < r->n_urls; i++)
        json_array_append_new(urls, json_string(r->urls[i].text));
    json_object_set_new(o, "policy", json_string(policy_names[r->policy]));
    json_object_set_new(o, "urls", urls);
    json_object_set_new(o, "proxy", r->has_proxy ? json_string(r->proxy) : json_null());
    json_object_set_new(o, "concurrency", json_integer(r->concurrency));
    json_object_set_new(o, "split_handshake", json_boolean(r->split));
    json_object_set_new(o, "max_per_conn",
                        r->max_per_conn ? json_integer(r->max_per_conn) : json_null());
    json_object_set_new(o, "reset", json_boolean(r->reset));
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_object_set_new(o, "ok", json_integer((json_int_t)s->ok));
    json_object_set_new(o, "failed", json_integer((json_int_t)s->failed));
    json_object_set_new(o, "statuses", st);
    json_object_set_new(o, "failures", fl);
    json_object_set_new(o, "connections_opened", json_integer((json_int_t)s->opened));
    json_object_set_new(o, "closed_by_client", json_integer((json_int_t)s->closed[BY_CLIENT]));
    json_object_set_new(o, "closed_by_server", json_integer((json_int_t)s->closed[BY_SERVER]));
    json_object_set_new(o, "closed_on_error", json_integer((json_int_t)s->closed[ON_ERROR]));
    json_object_set_new(o, "open_at_end", json_integer((json_int_t)s->closed[AT_END]));
    json_object_set_new(o, "handshakes", json_integer((json_int_t)s->handshakes));
    json_object_set_new(o, "auth_failures", json_integer((json_int_t)s->auth_failures));
    json_object_set_new(o, "scheme", s->scheme ? json_string(s->scheme) : json_null());
    json_object_set_new(o, "total_ms", json_real((double)total_ms));
    json_object_set_new(o, "per_request_ms",
                        json_real(s->requests ? (double)s->latency_ms / (double)s->requests : 0));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o); /* it owns the others now */
    if (text == NULL) {
        fprintf(stderr, "shunt lab client: out of memory\n");
        return -1;
    }
    puts(text);
    free(text);
    return 0;

fail:
    json_decref(urls);
    json_decref(fl);
    json_decref(st);
    json_decref(o);
    fprintf(stderr, "shunt lab client: out of memory\n");
    return -1;
}

/* ------------------------------------------------------------------------------- usage */

/* Parses the command line into <r>. Returns 0, or an exit status after printing why (0 for
 * --help, with *<done> set). */
static int parse_args(int argc, char **argv, struct run *r, int *done)
{
    const char *user = "LAB\\alice:lab";
    r->policy = POLICY_KEEPALIVE;
    r->n_requests = 1;
    r->concurrency = 1;
    r->timeout_s = 10;
    r->method = "GET";
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        char opt[64];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            *done = 1;
            return CL_OK;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            r->verbose = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            r->json = 1;
            continue;
        }
        if (strcmp(a, "--split-handshake") == 0) {
            r->split = 1;
            continue;
        }
        if (strcmp(a, "--reset") == 0) {
            r->reset = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0') {
                fprintf(stderr, "shunt lab client: unknown option '%s' (see --help)\n", a);
                return CL_USAGE;
            }
            if (r->n_urls == CL_MAX_URLS) {
                fprintf(stderr, "shunt lab client: at most %d URLs\n", CL_MAX_URLS);
                return CL_USAGE;
            }
            if (parse_url(a, &r->urls[r->n_urls]) != 0)
                return CL_USAGE;
            r->n_urls++;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t ol = eq ? (size_t)(eq - a) : strlen(a);
        if (ol >= sizeof(opt)) {
            fprintf(stderr, "shunt lab client: unknown option '%s' (see --help)\n", a);
            return CL_USAGE;
        }
        memcpy(opt, a, ol);
        opt[ol] = '\0';
        static const char *const with_value[] = {"--policy", "--user", "--proxy",
                                                 "--requests", "--concurrency", "--think",
                                                 "--timeout", "--method", "--max-per-conn"};
        int known = 0;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            known |= strcmp(opt, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, "shunt lab client: unknown option '%s' (see --help)\n", a);
            return CL_USAGE;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "shunt lab client: %s needs a value\n", opt);
            return CL_USAGE;
        }
        unsigned long long v;
        if (strcmp(opt, "--policy") == 0) {
            int found = 0;
            for (int p = 0; p < 3; p++) {
                if (strcmp(val, policy_names[p]) == 0) {
                    r->policy = (enum policy)p;
                    found = 1;
                }
            }
            if (!found) {
                fprintf(stderr, "shunt lab client: unknown policy '%s' (keepalive, http10 or "
                                "wininet)\n", val);
                return CL_USAGE;
            }
        } else if (strcmp(opt, "--user") == 0) {
            user = val;
        } else if (strcmp(opt, "--proxy") == 0) {
            const char *p = strncasecmp(val, "http://", 7) == 0 ? val + 7 : val;
            size_t pl = strlen(p);
            if (pl > 0 && p[pl - 1] == '/')
                pl--;
            char host[256], port[6];
            if (split_hostport(p, pl, host, sizeof(host), port, 0) != 0) {
                fprintf(stderr, "shunt lab client: --proxy '%s': want HOST:PORT\n", val);
                return CL_USAGE;
            }
            snprintf(r->proxy, sizeof(r->proxy), "%.*s", (int)pl, p);
            if (resolve(host, port, &r->proxy_addr, &r->proxy_addr_len, "the proxy") != 0)
                return CL_USAGE;
            r->has_proxy = 1;
        } else if (strcmp(opt, "--requests") == 0) {
            if (parse_num(val, 1, CL_MAX_REQUESTS, &v) != 0) {
                fprintf(stderr, "shunt lab client: --requests '%s': want a number from 1 to "
                                "%llu\n", val, CL_MAX_REQUESTS);
                return CL_USAGE;
            }
            r->n_requests = v;
        } else if (strcmp(opt, "--concurrency") == 0) {
            if (parse_num(val, 1, CL_MAX_WORKERS, &v) != 0) {
                fprintf(stderr, "shunt lab client: --concurrency '%s': want a number from 1 to "
                                "%d\n", val, CL_MAX_WORKERS);
                return CL_USAGE;
            }
            r->concurrency = (unsigned)v;
        } else if (strcmp(opt, "--think") == 0) {
            if (parse_num(val, 0, 3600000, &v) != 0) {
                fprintf(stderr, "shunt lab client: --think '%s': want milliseconds (0 to "
                                "3600000)\n", val);
                return CL_USAGE;
            }
            r->think_ms = (unsigned)v;
        } else if (strcmp(opt, "--timeout") == 0) {
            char *end;
            double t = strtod(val, &end);
            if (end == val || *end != '\0' || !(t > 0 && t <= 3600)) {
                fprintf(stderr, "shunt lab client: --timeout '%s': want seconds (over 0, at "
                                "most 3600)\n", val);
                return CL_USAGE;
            }
            r->timeout_s = t;
        } else if (strcmp(opt, "--max-per-conn") == 0) {
            if (parse_num(val, 1, 1000000, &v) != 0) {
                fprintf(stderr, "shunt lab client: --max-per-conn '%s': want a number from 1 "
                                "to 1000000\n", val);
                return CL_USAGE;
            }
            r->max_per_conn = (unsigned)v;
        } else if (strcmp(opt, "--method") == 0) {
            if (strcasecmp(val, "GET") == 0)
                r->method = "GET";
            else if (strcasecmp(val, "HEAD") == 0)
                r->method = "HEAD";
            else {
                fprintf(stderr, "shunt lab client: --method '%s': GET or HEAD\n", val);
                return CL_USAGE;
            }
        }
    }
    if (r->n_urls == 0) {
        fprintf(stderr, "shunt lab client: no URL (see --help)\n");
        return CL_USAGE;
    }
    const char *colon = strchr(user, ':');
    size_t ul = colon ? (size_t)(colon - user) : strlen(user);
    if (ul == 0 || ul >= sizeof(r->user) || (colon && strlen(colon + 1) >= sizeof(r->pass))) {
        fprintf(stderr, "shunt lab client: --user '%s': want USER[:PASS]\n", user);
        return CL_USAGE;
    }
    memcpy(r->user, user, ul);
    r->user[ul] = '\0';
    snprintf(r->pass, sizeof(r->pass), "%s", colon ? colon + 1 : "");
    if (r->concurrency > r->n_requests)
        r->concurrency = (unsigned)r->n_requests;
    return 0;
}

/* ------------------------------------------------------------------------------- main */

int shunt_lab_client_main(int argc, char **argv)
{
    int rc = CL_USAGE, done = 0;
    unsigned started = 0;
    struct worker *ws = NULL;
    struct stats *sum = NULL;
    struct run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto oom;
    rc = parse_args(argc, argv, r, &done);
    if (rc != 0 || done)
        goto out;
    atomic_init(&r->next, 0);

    ws = calloc(r->concurrency, sizeof(*ws));
    sum = calloc(1, sizeof(*sum));
    if (ws == NULL || sum == NULL)
        goto oom;
    int64_t t0 = now_ms();
    for (unsigned i = 0; i < r->concurrency; i++) {
        struct worker *w = &ws[i];
        w->run = r;
        w->id = i;
        w->c.fd = -1;
        w->in = malloc(CL_IN_CAP);
        if (w->in == NULL)
            break;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fprintf(stderr, "shunt lab client: cannot start worker %u: %s\n", i, strerror(errno));
            free(w->in);
            w->in = NULL;
            break;
        }
        started++;
    }
    if (started == 0) {
        rc = CL_FAILED;
        goto out;
    }
    for (unsigned i = 0; i < started; i++) {
        struct worker *w = &ws[i];
        pthread_join(w->thread, NULL);
        const struct stats *s = &w->st;
        sum->requests += s->requests;
        sum->ok += s->ok;
        sum->failed += s->failed;
        for (int c = 0; c < 1000; c++)
            sum->statuses[c] += s->statuses[c];
        for (int f = 0; f < F__N; f++)
            sum->fails[f] += s->fails[f];
        sum->opened += s->opened;
        for (int k = 0; k < 4; k++)
            sum->closed[k] += s->closed[k];
        sum->handshakes += s->handshakes;
        sum->auth_failures += s->auth_failures;
        if (sum->scheme == NULL)
            sum->scheme = s->scheme;
        sum->latency_ms += s->latency_ms;
    }
    int64_t total = now_ms() - t0;
    if (r->json ? print_json(r, sum, total) != 0 : (print_text(r, sum, total), 0))
        rc = CL_FAILED;
    else
        rc = sum->failed == 0 && sum->requests == r->n_requests ? CL_OK : CL_FAILED;
    fflush(stdout);
    goto out;

oom:
    fprintf(stderr, "shunt lab client: out of memory\n");
    rc = CL_FAILED;
out:
    if (ws != NULL)
        for (unsigned i = 0; i < started; i++)
            free(ws[i].in);
    free(ws);
    free(sum);
    free(r);
    return rc;
}
