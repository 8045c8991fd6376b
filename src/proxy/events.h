/* src/proxy/events.h - what the proxy reports as traffic flows: the interface that the
 * capture, the rules and the UI subscribe to. */
#ifndef SHUNT_PROXY_EVENTS_H
#define SHUNT_PROXY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"
#include "http/parser.h"
#include "net/tls.h"

/* Event types; a subscriber says which it wants with a mask of (1u << type). */
enum shunt_ev_type {
    SHUNT_EV_CONN_OPEN,      /* a client connection was accepted */
    SHUNT_EV_UPSTREAM_OPEN,  /* an upstream connection was established for a client one */
    SHUNT_EV_REQUEST_HEAD,   /* a request head: as received and as sent (see <again>) */
    SHUNT_EV_RESPONSE_HEAD,  /* a response head (1xx included): as received and as sent, or
                                shunt's own answer as sent (see <own>) */
    SHUNT_EV_BODY,           /* body bytes as on the wire, in either direction */
    SHUNT_EV_CHANGE,         /* shunt changed a head: which header, why */
    SHUNT_EV_EXCHANGE_DONE,  /* an exchange ended (complete, failed or cut short) */
    SHUNT_EV_UPSTREAM_CLOSE, /* an upstream connection closed */
    SHUNT_EV_CONN_CLOSE,     /* a client connection closed, with who closed first and how */
    SHUNT_EV_TLS,            /* a TLS handshake ended, done or failed, on the client
                                connection (upstream_id 0) or on an upstream (see <tls>) */
};

#define SHUNT_EV_MASK_ALL 0x3ffu

/* Who closed a connection first. */
enum shunt_closer { SHUNT_CLOSER_NONE, SHUNT_CLOSER_CLIENT, SHUNT_CLOSER_SERVER, SHUNT_CLOSER_PROXY };
/* How. */
enum shunt_close_how {
    SHUNT_CLOSE_NONE,
    SHUNT_CLOSE_FIN,
    SHUNT_CLOSE_RST,
    SHUNT_CLOSE_TIMEOUT,
    SHUNT_CLOSE_ERROR,
};

/* Returns "client", "server", "proxy" or "-". */
const char *shunt_closer_name(enum shunt_closer c);
/* Returns "FIN", "RST", "timeout", "error" or "-". */
const char *shunt_close_how_name(enum shunt_close_how h);

/* struct shunt_tls_facts (SHUNT_EV_TLS) is defined in net/tls.h, where the TLS engine that
 * fills it lives (net/ must not include proxy/). */

/* How a TLS connection ended (closes of a TLS connection; 0 for plain TCP). */
#define SHUNT_TLS_CLOSE_NOTIFY_IN  1u /* the peer sent close_notify */
#define SHUNT_TLS_CLOSE_NOTIFY_OUT 2u /* shunt sent close_notify */
#define SHUNT_TLS_TRUNCATED        4u /* TCP closed (FIN/RST) with no close_notify first */
#define SHUNT_TLS_USED             8u /* the connection carried TLS at all */

/* A head as it went out: the pieces handed to one writev, in order. */
struct shunt_ev_iov {
    const struct shunt_slice *parts;
    size_t n_parts;
};

/* One event. Every pointer is borrowed for the duration of the callback only; a subscriber
 * copies what it keeps. Fields not listed for a type are zero. */
struct shunt_event {
    enum shunt_ev_type type;
    uint64_t conn_id;     /* client connection id, unique in the process, from 1 */
    uint64_t upstream_id; /* upstream connection id (UPSTREAM_*, heads, DONE), 0 when none */
    uint64_t exchange;    /* exchange index on the client connection, from 1 (heads, BODY, DONE) */
    uint64_t time_us;     /* monotonic microseconds (uv_hrtime() / 1000) */
    void **slot;          /* this subscriber's pointer of per-connection storage: NULL at
                             CONN_OPEN, kept by the proxy, the subscriber's to free by the
                             time CONN_CLOSE returns */

    /* CONN_OPEN, UPSTREAM_OPEN, closes: the endpoints as text ("127.0.0.1", "::1") and ports */
    const char *peer_addr; /* client address (CONN_*) or upstream address (UPSTREAM_*) */
    int peer_port;
    const char *local_addr; /* our side of that connection */
    int local_port;

    /* UPSTREAM_OPEN: the origin as the request named it */
    const char *origin_host;
    int origin_port;

    /* REQUEST_HEAD, RESPONSE_HEAD
     *
     * A request head is reported as soon as the exchange waits for anything: at once with
     * <sent> when it goes out at once (the usual case); else first with <sent> empty (the
     * upstream is connecting, a rule holds the request, a CONNECT, a request shunt answers
     * itself) and, if it goes out later, a second time with <again> 1 and <sent> filled.
     *
     * A response head with <own> 1 is shunt's own answer (its 400, 403, 408, 502, 504...,
     * the 200 of a CONNECT, --respond, --map-local, s:respond): no server sent it; <raw> is
     * empty (not NULL), <head> NULL, <status> its status and <sent> the head as sent to the
     * client; its body follows as BODY events from_client 0. */
    struct shunt_slice raw;             /* head bytes as received */
    const struct shunt_http_head *head; /* parsed view of <raw>; NULL for a request the
                                           parser rejected (<raw>: the bytes it saw) and for
                                           an own response */
    struct shunt_ev_iov sent;           /* head as sent; no parts: not sent (yet) */
    int again;                          /* REQUEST_HEAD: reported before, unsent; now sent */
    const char *scheme;                 /* REQUEST_HEAD, EXCHANGE_DONE: "http", or "https"
                                           for an exchange inside TLS (intercepted, or
                                           --reverse https://) */
    int own;                            /* RESPONSE_HEAD: shunt's own answer */

    /* BODY */
    int from_client;         /* 1: client to upstream, 0: upstream to client */
    struct shunt_slice data; /* payload bytes: chunk framing removed (tunnels: raw bytes) */
    uint64_t body_offset;    /* payload bytes of this body before <data> */

    /* CHANGE */
    const char *what;  /* e.g. "remove Proxy-Connection", "add Proxy-Support" */
    const char *by;    /* who: "proxy" for exactly the rewrites every forward proxy makes
                          (request line to origin-form, Proxy-Connection and
                          Proxy-Authorization removed, Host set from the target); "shunt" for
                          a repair (docs/framing.md); a user's option ("--via",
                          "--proxy-support", "--reverse-host"); else the rule's name */
    int in_request;    /* 1: the request head, 0: the response head */

    /* EXCHANGE_DONE */
    const char *method;  /* NUL-terminated, whole ("-" when no head was read) */
    const char *url;     /* the request target as received, whole ("-" likewise) */
    int status;          /* final status sent to the client, 0 when none (RESPONSE_HEAD
                            with <own>: its status) */
    uint64_t req_bytes;  /* request bytes received from the client (head + body) */
    uint64_t resp_bytes; /* response bytes sent to the client (head + body) */
    uint64_t duration_us;
    int upstream_reused; /* 1 when the upstream connection had carried an exchange before */
    const char *error;   /* NULL, or what went wrong ("upstream refused", "client reset") */
    uint64_t req_body_size;  /* payload bytes of the request body */
    uint64_t resp_body_size; /* payload bytes of the response body */
    int64_t t_dns_us;        /* HAR timings, microseconds, -1 when not applicable: */
    int64_t t_connect_us;    /*   name resolution, TCP connect (new upstream only), */
    int64_t t_send_us;       /*   request head complete to request forwarded whole, */
    int64_t t_wait_us;       /*   to the first response byte, */
    int64_t t_receive_us;    /*   to the response forwarded whole */
    int64_t t_ssl_us;        /*   the upstream's TLS handshake (new upstream only; HAR
                                  counts it inside connect too) */

    /* UPSTREAM_CLOSE, CONN_CLOSE */
    enum shunt_closer closer;
    enum shunt_close_how how;
    uint64_t bytes_in;  /* bytes received from the peer of this connection */
    uint64_t bytes_out; /* bytes sent to it */
    int tunnel;         /* 1 when the connection became a byte tunnel (CONNECT, Upgrade) */
    unsigned tls_close; /* SHUNT_TLS_* bits: how the TLS of this connection ended */

    /* TLS */
    const struct shunt_tls_facts *tls;
};

/* Receives events. Called on a worker thread, from its loop: it must not block. */
typedef void (*shunt_event_cb)(const struct shunt_event *ev, void *ud);

/* A subscriber: the callback, its data and the event types it wants. */
struct shunt_event_sub {
    shunt_event_cb cb;
    void *ud;
    unsigned mask; /* (1u << SHUNT_EV_*) bits */
};

#endif
