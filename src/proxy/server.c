/* src/proxy/server.c - the proxy's threads: one event loop per worker, each with its own
 * SO_REUSEPORT listening socket, and the graceful stop on SIGINT/SIGTERM. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/listen.h"
#include "proxy/internal.h"

static atomic_int workers_left;

const char *shunt_closer_name(enum shunt_closer c)
{
    static const char *const names[] = {"-", "client", "server", "proxy"};
    return (unsigned)c < 4 ? names[c] : "-";
}

const char *shunt_close_how_name(enum shunt_close_how h)
{
    static const char *const names[] = {"-", "FIN", "RST", "timeout", "error"};
    return (unsigned)h < 5 ? names[h] : "-";
}

void shunt_proxy_config_init(struct shunt_proxy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    struct sockaddr_in *a = (struct sockaddr_in *)&cfg->listen;
    a->sin_family = AF_INET;
    a->sin_port = htons(8888);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cfg->proxy_support = 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = n > 0 ? (int)n : 1;
    cfg->grace_s = 5;
    cfg->header_timeout_ms = 30000;
    cfg->idle_timeout_ms = 120000;
    cfg->connect_timeout_ms = 10000;
    cfg->response_timeout_ms = 120000;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->limits = SHUNT_HTTP_LIMITS_DEFAULT;
}

int shunt_proxy_subscribe(struct shunt_proxy_config *cfg, shunt_event_cb cb, void *ud,
                          unsigned mask)
{
    if (cfg->n_subs == SHUNT_PROXY_MAX_SUBS)
        return SHUNT_ETOOBIG;
    cfg->subs[cfg->n_subs++] = (struct shunt_event_sub){cb, ud, mask};
    return 0;
}

/* ------------------------------------------------------------------------ loop callbacks */

static void on_connection(uv_stream_t *l, int status)
{
    struct worker *w = SHUNT_CONTAINER_OF(l, struct worker, listener);
    if (status < 0) {
        shunt_log(SHUNT_LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    if (!w->draining)
        shunt_proxy__accept(w);
}

static void grace_cb(uv_timer_t *t)
{
    struct worker *w = SHUNT_CONTAINER_OF(t, struct worker, grace_timer);
    size_t busy = shunt_proxy__busy(w);
    if (busy > 0)
        shunt_log(SHUNT_LOG_WARN, "worker %d: %zu exchanges or tunnels still open after the grace"
                  " period; closing them", w->index, busy);
    shunt_proxy__close_all(w);
}

static void stop_cb(uv_async_t *a)
{
    struct worker *w = SHUNT_CONTAINER_OF(a, struct worker, stop_async);
    if (w->draining)
        return;
    w->draining = 1;
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    shunt_proxy__drain(w);
    if (w->n_sessions == 0)
        shunt_proxy__close_all(w);
    else
        uv_timer_start(&w->grace_timer, grace_cb, (uint64_t)(w->cfg->grace_s * 1000.0), 0);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "shunt-loop-%d", w->index); /* for top -H and perf */
    pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_sub(&workers_left, 1);
    return NULL;
}

/* ------------------------------------------------------------------------ setup */

static int resolve_reverse(const struct shunt_proxy_config *cfg, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char port[8];
    snprintf(port, sizeof(port), "%d", cfg->reverse_port);
    int r = getaddrinfo(cfg->reverse_host, port, &hints, &res);
    if (r != 0) {
        shunt_log(SHUNT_LOG_ERROR, "cannot resolve the --reverse origin %s: %s", cfg->reverse_host,
                  gai_strerror(r));
        return SHUNT_EADDR;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int shunt_proxy_run(const struct shunt_proxy_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    /* Blocked before anything is announced, so that a signal sent as soon as the listening
     * line is read waits for sigwait() below; the threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int n = cfg->workers > 0 ? cfg->workers : 1;
    struct sockaddr_storage addr = cfg->listen, rev;
    if (cfg->reverse && resolve_reverse(cfg, &rev) != 0)
        return SHUNT_EADDR;
    char rev_auth[300] = "";
    if (cfg->reverse) {
        const char *fmt = strchr(cfg->reverse_host, ':') ? "[%s]" : "%s";
        int l = snprintf(rev_auth, sizeof(rev_auth), fmt, cfg->reverse_host);
        if (cfg->reverse_port != 80 && l > 0)
            snprintf(rev_auth + l, sizeof(rev_auth) - (size_t)l, ":%d", cfg->reverse_port);
    }

    /* Every worker's socket has SO_REUSEPORT, which would let them join another shunt's on the
     * port: make sure nothing listens there first. Port 0 becomes the free port all share. */
    char msg[200];
    int r = shunt_listen_probe(&addr);
    if (r != 0) {
        shunt_listen_describe((struct sockaddr *)&addr, r, msg, sizeof(msg));
        shunt_log(SHUNT_LOG_ERROR, "%s", msg);
        return r;
    }

    struct worker *ws = shunt_xcalloc(sizeof(*ws) * (size_t)n);
    int started = 0;
    for (int i = 0; i < n; i++) {
        struct worker *w = &ws[i];
        w->cfg = cfg;
        w->index = i;
        w->reverse_addr = rev;
        memcpy(w->reverse_authority, rev_auth, sizeof(rev_auth));
        w->listen_fd = shunt_listen_open((struct sockaddr *)&addr, 4096, 1);
        if (w->listen_fd < 0) {
            r = w->listen_fd;
            shunt_listen_describe((struct sockaddr *)&addr, r, msg, sizeof(msg));
            shunt_log(SHUNT_LOG_ERROR, "%s", msg);
            break;
        }
        w->hdrs = shunt_xcalloc(sizeof(*w->hdrs) * cfg->limits.max_headers);
        /* room for the fields a hook may add (SHUNT_PROXY_EDIT_EXTRA) and a few more pieces */
        size_t pieces = cfg->limits.max_headers + SHUNT_PROXY_EDIT_EXTRA + 8;
        w->iov = shunt_xcalloc(sizeof(*w->iov) * pieces);
        w->iov_slices = shunt_xcalloc(sizeof(*w->iov_slices) * pieces);
        w->edit_fields = shunt_xcalloc(sizeof(*w->edit_fields) *
                                       (cfg->limits.max_headers + SHUNT_PROXY_EDIT_EXTRA));
        shunt_conn_pool_init(&w->pool, SHUNT_PROXY_BUF, SHUNT_PROXY_POOL);
        uv_loop_init(&w->loop);
        uv_tcp_init(&w->loop, &w->listener);
        uv_tcp_open(&w->listener, w->listen_fd);
        r = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection);
        if (r != 0) {
            shunt_log(SHUNT_LOG_ERROR, "listen: %s", uv_strerror(r));
            break;
        }
        uv_async_init(&w->loop, &w->stop_async, stop_cb);
        uv_timer_init(&w->loop, &w->grace_timer);
        started++;
    }
    if (r != 0) {
        for (int i = 0; i < n; i++)
            if (ws[i].listen_fd > 0)
                close(ws[i].listen_fd);
        return r; /* not worth unwinding the loops: the process exits */
    }

    char a[64];
    int port = shunt_addr_format((struct sockaddr *)&addr, a, sizeof(a));
    printf(addr.ss_family == AF_INET6 ? "shunt: listening on [%s]:%d\n" : "shunt: listening on %s:%d\n",
           a, port);
    if (cfg->announce != NULL)
        printf("%s\n", cfg->announce);
    fflush(stdout);
    if (cfg->reverse)
        shunt_log(SHUNT_LOG_INFO, "reverse proxy for %s:%d", cfg->reverse_host, cfg->reverse_port);

    atomic_store(&workers_left, started);
    for (int i = 0; i < started; i++)
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);

    int sig = 0;
    for (;;) {
        sigwait(&set, &sig);
        if (sig != SIGHUP)
            break;
        if (cfg->on_hup != NULL) /* reload: the connections go on */
            cfg->on_hup(cfg->on_hup_ud);
        else
            shunt_log(SHUNT_LOG_INFO, "SIGHUP: no rules file to reload");
    }
    shunt_log(SHUNT_LOG_INFO, "signal %d: no new connections; finishing open exchanges", sig);
    for (int i = 0; i < started; i++)
        uv_async_send(&ws[i].stop_async);
    /* A second signal stops at once. */
    struct timespec tick = {0, 50 * 1000 * 1000};
    sigdelset(&set, SIGHUP);
    while (atomic_load(&workers_left) > 0) {
        if (sigtimedwait(&set, NULL, &tick) > 0) {
            shunt_log(SHUNT_LOG_WARN, "second signal: exiting now");
            fflush(stdout);
            _exit(1);
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        uv_loop_close(&ws[i].loop);
        free(ws[i].hdrs);
        free(ws[i].iov);
        free(ws[i].iov_slices);
        free(ws[i].edit_fields);
        shunt_conn_pool_dispose(&ws[i].pool);
    }
    free(ws);
    return 0;
}
