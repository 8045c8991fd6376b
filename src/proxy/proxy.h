/* src/proxy/proxy.h - the proxy: configuration, and running it until a signal stops it. */
#ifndef SHUNT_PROXY_PROXY_H
#define SHUNT_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/errors.h"
#include "http/edit.h"
#include "http/parser.h"
#include "net/addr.h"
#include "proxy/events.h"

#define SHUNT_PROXY_MAX_ALLOW 32
#define SHUNT_PROXY_MAX_SUBS 8

/* What a head hook sees of the exchange besides the head it may edit. Slices are valid
 * during the call. */
struct shunt_head_ctx {
    int is_request;                          /* 1: the request head, 0: the response head */
    struct shunt_slice method, url, host;    /* the request's (url absolute when it was) */
    int status;                              /* the response's, 0 for a request */
    const struct shunt_http_header *req_headers; /* the request's fields (request time only) */
    size_t n_req_headers;
    const struct shunt_http_header *resp_headers; /* the response's, as received */
    size_t n_resp_headers;
    uint64_t conn_id;
    int worker;  /* index of the worker (thread) calling: per-thread state, e.g. a Lua state */
    uint64_t exchange; /* index of the exchange on its connection */
    int minor_version;         /* HTTP/1.<minor_version> of the head */
    struct shunt_slice reason; /* the response's reason phrase (empty for a request) */
    int client_port;           /* the client's port */
    const char *auth;          /* the connection's authentication: "none", "challenged",
                                  "handshake" (an Authorization went out, no answer yet) or
                                  "authenticated" */
    const char *auth_scheme;   /* "NTLM", "Negotiate", "Basic"... as first seen, or "" */
    struct shunt_hook_out *out; /* what the hook may ask besides edits; NULL: nothing */
};

/* What a head hook may ask besides editing the head (ctx->out). Starts zeroed. */
struct shunt_hook_out {
    int respond_status;   /* requests: answer with this (100-999) without the server */
    char *respond_fields; /* its header lines ("Name: value\r\n"...), no Content-Length,
                             Transfer-Encoding or Connection; malloc'd, the proxy frees */
    size_t respond_fields_len;
    char *respond_body; /* malloc'd, the proxy frees */
    size_t respond_body_len;
    const char *by;     /* the rule that answered (static or the hook's, valid while the
                           proxy runs) */
    uint64_t delay_ms;  /* hold the exchange this long before it goes on (latency) */
};

/* What a connection hook sees of a client connection. Strings valid during the call. */
struct shunt_conn_info {
    int opening;            /* 1: just accepted; 0: closed */
    uint64_t conn_id;
    int worker;
    const char *client_addr;
    int client_port;
    uint64_t exchanges;     /* exchanges begun on it */
    const char *closer;     /* closed: who closed first, as the capture names it ("client",
                               "server", "proxy") */
    const char *how;        /* closed: "FIN", "RST", "timeout" or "error" */
};

/* Told when a client connection opens and when it closes (Lua's on_connect, on_close).
 * Called on a worker thread; must not block. */
typedef void (*shunt_conn_hook_cb)(void *ud, const struct shunt_conn_info *ci);

/* Reports one change a hook made: <what> ("set Server: ..."), <by> (the rule). */
typedef void (*shunt_head_change_cb)(void *cctx, const char *what, const char *by);

/* Edits a head before it goes out (rules). Called on a worker thread; must not block.
 * <change> is NULL when nobody listens to changes: then they need no description. */
typedef void (*shunt_head_hook_cb)(void *ud, struct shunt_head_edit *edit,
                                   const struct shunt_head_ctx *ctx, shunt_head_change_cb change,
                                   void *cctx);

/* What a request hook decided before the request goes anywhere. */
struct shunt_request_verdict {
    int respond_status;       /* 0: on to the server; else answer with this status ourselves */
    const char *respond_body; /* the answer's body (the hook's; valid while the proxy runs,
                                 unless respond_body_free) */
    size_t respond_body_len;
    int respond_body_free;    /* 1: respond_body was malloc'd for this answer; the proxy frees
                                 it */
    const char *respond_type; /* its Content-Type, or NULL */
    const char *by;           /* the rule, for the change event */
    const char *map_url;      /* not NULL: send the request to this absolute http:// URL
                                 instead (--map-remote); the hook's, valid until its next call
                                 on this thread */
    size_t map_url_len;
};

/* Decides about a request before it is routed (--respond, --map-remote). Called on a
 * worker thread with ctx->is_request 1; must not block. */
typedef void (*shunt_request_hook_cb)(void *ud, const struct shunt_head_ctx *ctx,
                                      struct shunt_request_verdict *out);

/* Everything `shunt proxy` is told. Plain data, filled by the command line (cli/) and read
 * by every worker; not changed once the proxy runs. */
struct shunt_proxy_config {
    struct sockaddr_storage listen; /* where to accept clients */
    struct shunt_cidr allow[SHUNT_PROXY_MAX_ALLOW];
    size_t n_allow; /* 0: only loopback listening is allowed, and any client is accepted */

    int reverse;             /* 1: every request goes to reverse_host:reverse_port */
    char reverse_host[256];  /* origin host (name or literal, no brackets) */
    int reverse_port;
    int reverse_host_header; /* 1: rewrite Host to the origin's (--reverse-host) */

    /* Where a client may not send the proxy (a proxy serving other machines must not hand
     * them this machine's loopback services, its own admin API first). */
    int refuse_local_upstreams; /* 1: never connect to a loopback or unspecified address for
                                   a client's request (forward targets, --map-remote results);
                                   the --reverse origin is the user's and stays allowed */
    struct sockaddr_storage admin_addr; /* the admin API's address and port (ss_family 0:
                                           none): never an upstream, whatever the listener */

    int via;           /* 1: add a Via header (--via) */
    int proxy_support; /* 1: add Proxy-Support to NTLM/Negotiate 401s in forward mode */

    int workers;      /* event loops, one thread each */
    double grace_s;   /* how long in-flight exchanges may finish after SIGINT/SIGTERM */
    uint64_t header_timeout_ms;   /* a request head must arrive within this */
    uint64_t idle_timeout_ms;     /* keep-alive connections idle longer are closed */
    uint64_t connect_timeout_ms;  /* upstream connect (and name resolution) */
    uint64_t response_timeout_ms; /* upstream silence while a response is awaited */
    struct shunt_http_limits limits;

    int verbose; /* -v: one log line per exchange */

    struct shunt_event_sub subs[SHUNT_PROXY_MAX_SUBS]; /* event subscribers */
    size_t n_subs;

    const char *announce; /* a line printed on stdout right after the listening line, or NULL */
    void (*on_hup)(void *ud); /* SIGHUP (reload the rules); called on the main thread */
    void *on_hup_ud;

    shunt_request_hook_cb request_hook; /* canned responses; NULL: none */
    void *request_hook_ud;
    shunt_head_hook_cb head_hook; /* rules; NULL: heads go out as the fast path builds them */
    void *head_hook_ud;
    shunt_conn_hook_cb conn_hook; /* connection opened and closed; NULL: none */
    void *conn_hook_ud;

    /* HTTPS (docs/https.md). The contexts are made by the command line before the proxy
     * runs and shared read-only by every worker (net/tls.h). */
    struct shunt_tls_ctx *tls_server;   /* interception: leaves from shunt's CA; NULL: every
                                           CONNECT stays a byte tunnel */
    struct shunt_tls_ctx *tls_upstream; /* TLS to origins (intercepted CONNECTs, --reverse
                                           https://); NULL only when neither is used */
    /* Which CONNECTs to intercept when tls_server is set: returns 1 to intercept a tunnel to
     * <host>:<port> (host lower case, IP literals without brackets), 0 to keep it a tunnel.
     * NULL: intercept every one. Worker thread; must not block. */
    int (*intercept_hook)(void *ud, const char *host, int port);
    void *intercept_hook_ud;
    int reverse_tls;                 /* --reverse https://...: TLS to the reverse origin */
    int insecure_upstream;           /* --insecure-upstream: upstream certificates are not
                                        verified (said loudly at start and in the capture) */
    uint64_t tls_handshake_timeout_ms; /* either side's handshake must end within this */
};

/* Counters of the running proxy, for the admin API. */
struct shunt_proxy_stats {
    uint64_t connections_open; /* client connections open now */
    uint64_t exchanges;        /* exchanges finished since start */
};

/* Reads the counters. Any thread. */
void shunt_proxy_stats(struct shunt_proxy_stats *out);

/* Fills <cfg> with the defaults (127.0.0.1:8888, forward mode, 30/120/10/120 s, limits). */
void shunt_proxy_config_init(struct shunt_proxy_config *cfg);

/* Adds a subscriber to <cfg>. Returns 0, or SHUNT_ETOOBIG when the table is full. */
SHUNT_MUST_CHECK int shunt_proxy_subscribe(struct shunt_proxy_config *cfg, shunt_event_cb cb,
                                           void *ud, unsigned mask);

/*
 * Binds, starts cfg->workers event loops and serves until SIGINT or SIGTERM, then stops
 * accepting and lets in-flight exchanges finish for up to cfg->grace_s seconds.
 * Once listening, prints "shunt: listening on ADDR:PORT" on stdout.
 * Returns 0 after a clean stop, or a negative code when it could not start (the reason is
 * logged). Call from the main thread, once.
 */
SHUNT_MUST_CHECK int shunt_proxy_run(const struct shunt_proxy_config *cfg);

#endif
