/* src/proxy/internal.h - types shared by the proxy's own files (server.c, session.c); not a
 * public header. */
#ifndef SHUNT_PROXY_INTERNAL_H
#define SHUNT_PROXY_INTERNAL_H

#include <pthread.h>
#include <uv.h>

#include "net/conn.h"
#include "proxy/proxy.h"

struct session;

/* One event loop on its own thread, with its own listening socket (SO_REUSEPORT). */
struct worker {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;     /* wakes the loop to begin a graceful stop */
    uv_timer_t grace_timer;    /* ends whatever is still open after cfg->grace_s */
    const struct shunt_proxy_config *cfg;
    int listen_fd;
    int index;
    pthread_t thread;
    int draining;              /* 1 once a stop was asked for */
    struct session *sessions;  /* every open client connection (list head) */
    size_t n_sessions;
    struct shunt_conn_pool pool; /* spare input buffers of SHUNT_PROXY_BUF bytes */
    struct shunt_http_header *hdrs; /* parse scratch: cfg->limits.max_headers entries */
    uv_buf_t *iov;             /* head serialisation scratch: max_headers + 8 entries */
    struct shunt_slice *iov_slices;
    struct shunt_edit_field *edit_fields; /* a head hook's edit: max_headers + EXTRA */
    struct sockaddr_storage reverse_addr; /* resolved once at start (reverse mode) */
    char reverse_authority[300];          /* "host[:port]" for --reverse-host */
};

/* Size of a connection's input buffer; heads larger than this grow it up to the limits.
 * 64 KiB: a 64 KiB response crosses in two reads instead of five (bench/RESULTS.md); an idle
 * connection holds none, since an empty buffer goes back to the worker's pool. */
#define SHUNT_PROXY_BUF 65536
/* Fields a head hook may add to a head. */
#define SHUNT_PROXY_EDIT_EXTRA 48
/* Spare buffers a worker keeps (at most 4 MiB). */
#define SHUNT_PROXY_POOL 64

/* Accepts a client from <w>'s listener into a new session. Loop thread. */
void shunt_proxy__accept(struct worker *w);
/* Begins a graceful stop of every session of <w> (idle ones close, busy ones end after their
 * exchange). Loop thread. */
void shunt_proxy__drain(struct worker *w);
/* Returns how many sessions of <w> are in an exchange or a tunnel. Loop thread. */
size_t shunt_proxy__busy(const struct worker *w);
/* Closes every session of <w> at once. Loop thread. */
void shunt_proxy__close_all(struct worker *w);

static inline int shunt_proxy__wants(const struct shunt_proxy_config *cfg, enum shunt_ev_type t)
{
    for (size_t i = 0; i < cfg->n_subs; i++)
        if (cfg->subs[i].mask & (1u << t))
            return 1;
    return 0;
}

#endif
