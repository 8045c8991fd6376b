/* bench/tls_load.c - a load generator for bench/tls.sh: HTTP/1.1 over TLS, directly or
 * through a forward proxy's CONNECT, new connections or keep-alive, for a fixed time.
 *
 * wrk cannot CONNECT through a proxy, and curl or openssl s_time start a process or a
 * connection at a time: this one keeps -c connections busy on one thread with epoll and
 * non-blocking OpenSSL. Every TLS connection is a full handshake (no session resumption, no
 * tickets: what a new host costs a proxy), certificates are not verified (the load side's
 * CPU is not what is measured). Prints one line:
 *   RESULT requests connections duration_us errors
 *
 * usage: tls_load -a ADDR:PORT [-x] [-t HOST:PORT] [-s] [-n NAMES] [-k N] [-c CONNS] [-d SEC]
 *   -a  where to connect (the proxy, or the TLS server)
 *   -x  send CONNECT -t HOST:PORT first (a forward proxy); with -p instead, plain HTTP
 *       requests in absolute form to http://HOST:PORT/ (no TLS)
 *   -s  speak TLS (after the CONNECT when -x)
 *   -n  SNI names: h0.bench.test .. h(N-1).bench.test in turn (0: SNI "bench.test")
 *   -k  requests per connection (0: keep it for the whole run)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum st { ST_CONNECTING, ST_PROXY_WRITE, ST_PROXY_READ, ST_HANDSHAKE, ST_WRITE, ST_READ };

struct conn {
    int fd;
    SSL *ssl;
    enum st st;
    char buf[16384];
    size_t len;     /* bytes in buf */
    size_t off;     /* bytes of the request written */
    int reqs;       /* requests done on this connection */
    long body_left; /* -1: head not complete yet */
};

static struct sockaddr_in addr;
static const char *target = "127.0.0.1:443";
static int via_connect, plain_proxy, use_tls, n_names, per_conn = 1, conns = 50;
static double seconds = 5;
static SSL_CTX *ctx;
static int ep;
static unsigned long long n_reqs, n_conns, n_errors, name_seq;
static char req[512];
static size_t req_len;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void arm(struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void start(struct conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->st = ST_CONNECTING;
    c->body_left = -1;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    n_conns++;
    arm(c, EPOLLOUT);
}

static void finish(struct conn *c, int error)
{
    if (error)
        n_errors++;
    if (c->ssl != NULL) {
        if (!error)
            SSL_shutdown(c->ssl); /* close_notify, as a browser closing a tab does */
        SSL_free(c->ssl);
    }
    close(c->fd); /* removes it from epoll */
    start(c);
}

static void begin_tls(struct conn *c)
{
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    char sni[64];
    if (n_names > 0)
        snprintf(sni, sizeof(sni), "h%llu.bench.test", name_seq++ % (unsigned long long)n_names);
    else
        snprintf(sni, sizeof(sni), "bench.test");
    SSL_set_tlsext_host_name(c->ssl, sni);
    SSL_set_connect_state(c->ssl);
    c->st = ST_HANDSHAKE;
}

/* Reads or writes through TLS or the socket: > 0 bytes, 0 would block, -1 error/EOF. */
static ssize_t io(struct conn *c, int wr, char *p, size_t n, unsigned *want)
{
    if (c->ssl == NULL || c->st == ST_PROXY_WRITE || c->st == ST_PROXY_READ) {
        ssize_t r = wr ? send(c->fd, p, n, MSG_NOSIGNAL) : recv(c->fd, p, n, 0);
        if (r > 0)
            return r;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *want = wr ? EPOLLOUT : EPOLLIN;
            return 0;
        }
        return -1;
    }
    int r = wr ? SSL_write(c->ssl, p, (int)n) : SSL_read(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        return 0;
    }
    ERR_clear_error();
    return -1;
}

/* The head is complete in c->buf: sets body_left from Content-Length. Returns -1 when the
 * response is not a 200. */
static int parse_head(struct conn *c, size_t head_len)
{
    if (c->len < 12 || memcmp(c->buf + 9, "200", 3) != 0)
        return -1;
    const char *cl = memmem(c->buf, head_len, "\r\nContent-Length:", 17);
    if (cl == NULL)
        cl = memmem(c->buf, head_len, "\r\ncontent-length:", 17);
    c->body_left = cl ? strtol(cl + 17, NULL, 10) : 0;
    c->body_left -= (long)(c->len - head_len);
    return 0;
}

static void step(struct conn *c)
{
    for (;;) {
        unsigned want = 0;
        ssize_t r;
        switch (c->st) {
        case ST_CONNECTING: {
            int err = 0;
            socklen_t l = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err != 0)
                return finish(c, 1);
            if (via_connect) {
                c->len = (size_t)snprintf(c->buf, sizeof(c->buf),
                                          "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target,
                                          target);
                c->off = 0;
                c->st = ST_PROXY_WRITE;
            } else if (use_tls) {
                begin_tls(c);
            } else {
                c->st = ST_WRITE;
            }
            continue;
        }
        case ST_PROXY_WRITE:
            r = io(c, 1, c->buf + c->off, c->len - c->off, &want);
            if (r < 0)
                return finish(c, 1);
            if (r == 0)
                return arm(c, want);
            c->off += (size_t)r;
            if (c->off == c->len) {
                c->len = 0;
                c->st = ST_PROXY_READ;
            }
            continue;
        case ST_PROXY_READ:
            r = io(c, 0, c->buf + c->len, sizeof(c->buf) - c->len - 1, &want);
            if (r < 0)
                return finish(c, 1);
            if (r == 0)
                return arm(c, want);
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            if (strstr(c->buf, "\r\n\r\n") == NULL)
                continue;
            if (memcmp(c->buf + 9, "200", 3) != 0)
                return finish(c, 1);
            c->len = 0;
            begin_tls(c);
            continue;
        case ST_HANDSHAKE: {
            int h = SSL_do_handshake(c->ssl);
            if (h == 1) {
                c->st = ST_WRITE;
                c->off = 0;
                continue;
            }
            int e = SSL_get_error(c->ssl, h);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return arm(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
            ERR_clear_error();
            return finish(c, 1);
        }
        case ST_WRITE:
            r = io(c, 1, req + c->off, req_len - c->off, &want);
            if (r < 0)
                return finish(c, 1);
            if (r == 0)
                return arm(c, want);
            c->off += (size_t)r;
            if (c->off == req_len) {
                c->st = ST_READ;
                c->len = 0;
                c->body_left = -1;
            }
            continue;
        case ST_READ:
            if (c->body_left < 0) {
                r = io(c, 0, c->buf + c->len, sizeof(c->buf) - c->len - 1, &want);
                if (r < 0)
                    return finish(c, 1);
                if (r == 0)
                    return arm(c, want);
                c->len += (size_t)r;
                c->buf[c->len] = '\0';
                char *end = strstr(c->buf, "\r\n\r\n");
                if (end == NULL) {
                    if (c->len + 1 >= sizeof(c->buf))
                        return finish(c, 1);
                    continue;
                }
                if (parse_head(c, (size_t)(end + 4 - c->buf)) != 0)
                    return finish(c, 1);
            } else if (c->body_left > 0) {
                r = io(c, 0, c->buf, sizeof(c->buf), &want);
                if (r < 0)
                    return finish(c, 1);
                if (r == 0)
                    return arm(c, want);
                c->body_left -= r;
            }
            if (c->body_left == 0) {
                n_reqs++;
                c->reqs++;
                if (per_conn > 0 && c->reqs >= per_conn)
                    return finish(c, 0);
                c->st = ST_WRITE;
                c->off = 0;
                c->body_left = -1;
            } else if (c->body_left < 0) {
                return finish(c, 1); /* more body than announced */
            }
            continue;
        }
    }
}

int main(int argc, char **argv)
{
    const char *a = "127.0.0.1:8888";
    int o;
    while ((o = getopt(argc, argv, "a:xpt:sn:k:c:d:")) != -1) {
        switch (o) {
        case 'a': a = optarg; break;
        case 'x': via_connect = 1; break;
        case 'p': plain_proxy = 1; break;
        case 't': target = optarg; break;
        case 's': use_tls = 1; break;
        case 'n': n_names = atoi(optarg); break;
        case 'k': per_conn = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        default: fprintf(stderr, "usage: see the file's comment\n"); return 2;
        }
    }
    char host[64];
    const char *colon = strrchr(a, ':');
    if (colon == NULL || (size_t)(colon - a) >= sizeof(host))
        return 2;
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return 2;
    if (plain_proxy)
        req_len = (size_t)snprintf(req, sizeof(req), "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n",
                                   target, target);
    else
        req_len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
                                   target);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)conns, sizeof(*cs));
    for (int i = 0; i < conns; i++)
        start(&cs[i]);
    double t0 = now(), end = t0 + seconds;
    struct epoll_event evs[256];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr);
    }
    double dt = now() - t0;
    printf("RESULT %llu %llu %.0f %llu\n", n_reqs, n_conns - (unsigned long long)conns, dt * 1e6,
           n_errors);
    return 0;
}
