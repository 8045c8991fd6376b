/* src/analyze/model.h - a capture as the analysis sees it: client connections with their
 * exchanges in order, each exchange's heads with the facts the checks ask about (status,
 * authentication legs and challenges, Server, framing), who closed each connection and how.
 * Loaded once from a capture (SQLite), read by every check; no I/O after loading. */
#ifndef SHUNT_ANALYZE_MODEL_H
#define SHUNT_ANALYZE_MODEL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/filter.h"
#include "core/errors.h"
#include "core/slice.h"

/* Head bytes kept per head; longer heads are cut (a check reads fields, not megabytes). */
#define SHUNT_MODEL_MAX_HEAD (64u * 1024)
/* A capture file is untrusted input: loading clamps every time and duration it reads into
 * [0, SHUNT_MODEL_MAX_US] (2^53 microseconds: 285 years after the epoch), so that a time
 * plus a duration never overflows, and sums over many exchanges use shunt_model_add(). */
#define SHUNT_MODEL_MAX_US ((int64_t)1 << 53)

/* Authentication schemes, as bits (a response may offer several). */
#define SHUNT_MODEL_AUTH_NTLM 1u
#define SHUNT_MODEL_AUTH_NEGOTIATE 2u
#define SHUNT_MODEL_AUTH_BASIC 4u
#define SHUNT_MODEL_AUTH_OTHER 8u
/* The schemes that authenticate a connection rather than a request (NTLM, and Negotiate,
 * which wraps Kerberos or NTLM): a handshake is bound to the connection it ran on. */
#define SHUNT_MODEL_AUTH_BOUND (SHUNT_MODEL_AUTH_NTLM | SHUNT_MODEL_AUTH_NEGOTIATE)

/* What an Authorization token is, as far as its first bytes tell. */
enum shunt_model_leg {
    SHUNT_MODEL_LEG_NONE = 0,     /* no NTLM or Negotiate Authorization */
    SHUNT_MODEL_LEG_FIRST,        /* opens a handshake: NTLM NEGOTIATE (type 1), SPNEGO
                                     NegTokenInit or a raw Kerberos AP-REQ */
    SHUNT_MODEL_LEG_CONTINUATION, /* answers a server token: NTLM AUTHENTICATE (type 3),
                                     SPNEGO NegTokenResp */
    SHUNT_MODEL_LEG_UNKNOWN,      /* a token the model cannot classify */
};

/* One exchange. Plain data; strings and heads belong to the model. */
struct shunt_model_exchange {
    int64_t id;          /* exchanges.id */
    int64_t conn_id;     /* connections.id */
    int64_t idx;         /* 1, 2, ... on its connection */
    int64_t started_us;  /* request head complete, wall clock */
    int64_t duration_us; /* request head complete to exchange done, >= 0 */
    int64_t t_connect;   /* upstream connect time in microseconds; -1 when it reused one */
    int status;          /* final status sent to the client; 0 when none */
    int selected;        /* 1 when the FILTER takes it (always 1 without a FILTER) */
    const char *method;  /* never NULL ("" unknown) */
    const char *url;     /* absolute URL as recorded (http://host:port/path); never NULL */
    const char *host;    /* lower case, no port; never NULL */
    int port;            /* from the URL; 0 unknown */
    const char *error;   /* what went wrong, as the capture recorded it (the proxy's reason,
                            e.g. "127.0.0.1:80 closed the connection without responding", or
                            a HAR's response._error); NULL when nothing did */
    /* Heads, as the client sent the request and as the client got the response (the bytes
     * the client acted on), and as the server got the request and sent the response. Each
     * base is NULL when the head is absent. */
    struct shunt_slice req;      /* request as received from the client */
    struct shunt_slice req_up;   /* request as sent upstream (== req when unchanged) */
    struct shunt_slice resp;     /* response as received from the server */
    struct shunt_slice resp_down; /* response as sent to the client (== resp when unchanged) */
    /* Facts read from the heads at load time. */
    int http_major;           /* 1: HTTP/1.0 or HTTP/1.1 (0 or not said: read as HTTP/1.x);
                                 2: HTTP/2 (exchanges.http_version "h2", "HTTP/2.0", ...)
                                 or SPDY ("spdy/3.1"); 3: HTTP/3 ("h3", "h3-29", "HTTP/3")
                                 or Google's QUIC ("quic/1+spdy/3", "http/2+quic/43"). Only
                                 HTTP/1.x has
                                 Connection, close-delimited bodies and connection-bound
                                 authentication; see shunt_model_http1() */
    int req_http10;           /* the request line says HTTP/1.0 */
    int resp_http10;          /* the status line says HTTP/1.0 */
    unsigned auth;            /* scheme of the request's Authorization (SHUNT_MODEL_AUTH_*), 0 none */
    enum shunt_model_leg leg; /* what its NTLM or Negotiate token is */
    unsigned challenge;       /* schemes the response (to the client) offers in WWW-Authenticate */
    int challenge_token;      /* the NTLM or Negotiate challenge carries a token (a handshake
                                 in progress, or its final token on a 2xx) */
    int has_server;           /* the response to the client has a non-empty Server field */
    int old_iis;              /* ... and it names Microsoft-IIS/1.0, 2.0 or 3.0 */
    int auth_context;         /* a connection-bound handshake ran on the connection before or
                                 at this exchange (an NTLM or Negotiate challenge or leg) */
    int64_t body_excess;      /* response body bytes recorded beyond its Content-Length (a
                                 HAR's content.size can say so; a shunt capture stops at the
                                 length and counts the rest in its connection's surplus_bytes);
                                 0 none or not comparable (chunked, Content-Encoding) */
    int starts_handshake;     /* this exchange starts a connection-bound handshake (counted
                                 in its connection's n_handshakes) */
    /* The user's rule that changed the request as sent upstream, and the one that changed the
     * response as sent to the client (the changes table: by is neither "proxy", the routine
     * rewrites, nor "shunt", a repair): the rule's name, its change of a Connection field
     * first; NULL none. What a rule makes of a connection is not the client's doing nor the
     * server's. */
    const char *rule_req;
    const char *rule_resp;
};

/* One client connection. */
struct shunt_model_conn {
    int64_t id;              /* connections.id */
    const char *client_addr; /* never NULL ("" unknown) */
    int client_port;         /* 0 unknown */
    int64_t opened_us;       /* -1 unknown */
    int64_t closed_us;       /* -1 still open or unknown */
    const char *closer;      /* "client", "server", "proxy"; "" open or unknown */
    int open;                /* still open when the capture stopped: a proxy's capture with
                                no close time and no closer (docs/capture.md); an import
                                without them does not know (shunt_model_closer_unknown()) */
    const char *close_how;   /* "FIN", "RST", "timeout", "error"; "" unknown */
    /* Who ended its last upstream connection, and how (the upstreams table): the server's
     * own close even where the proxy, answering the client itself (a 502 after a reset),
     * is recorded as the connection's closer. "" unknown or no upstream. */
    const char *up_closer;
    const char *up_close_how;
    int tunnel;              /* became a byte tunnel */
    int multiplexed;         /* one of its exchanges is HTTP/2 or HTTP/3 (http_major > 1):
                                streams overlap on it, and it has no HTTP/1.1 keep-alive */
    int64_t last_end_us;     /* when the exchange that ended last ended (start + duration;
                                with multiplexing not always the last one begun); -1 none */
    struct shunt_model_exchange *ex; /* its exchanges in order (a run of the model's array) */
    size_t n_ex;
    int selected;            /* 1 when one of its exchanges is selected */
    const char *host;        /* host of its first exchange; "" when it has none */
    int port;                /* port of its first exchange; 0 when it has none */
    const struct shunt_model_conn *next; /* its successor, the connection that replaced it
                                            (docs/diagnose.md, "Successor"): the next one of
                                            the same client address to the same origin,
                                            opened after it ended (its client's close, as far
                                            as the recorded close time tells) and at the pace
                                            of that client's traffic; no other's successor;
                                            NULL none (a browser's parallel connection, or
                                            the next run of a command-line client seconds
                                            later, replaces nothing) */
    int64_t connect_us;      /* upstream connect time paid by its first exchange, >= 0 */
    size_t n_handshakes;     /* connection-bound handshakes started on it (a fresh NTLM or
                                Negotiate 401 challenge, or a first leg sent unasked) */
    int64_t handshake_us;    /* time its NTLM and Negotiate 401 legs took, >= 0 */
    int64_t surplus_bytes;   /* bytes its servers sent after the ends of the responses (a
                                shunt capture: the upstream byte count beyond the response
                                heads and bodies the proxy read; the proxy passes them on
                                to the client outside any exchange); 0 none,
                                or unknown (a HAR, chunked responses, a failed exchange) */
};

/* One TLS handshake, done or failed (the tls table: a version-1 capture, and a HAR not of
 * shunt's, have none). Plain data; strings belong to the model. */
struct shunt_model_tls {
    int64_t id;          /* tls.id */
    int64_t conn_id;     /* its client connection */
    int64_t upstream_id; /* its upstream connection; 0 for the client's side */
    int side;            /* 0: the client's TLS (shunt was the server, intercepting);
                            1: an upstream's (shunt was the client) */
    int64_t time_us;     /* when it ended, wall clock; -1 unknown */
    const char *sni;     /* the server name asked for; never NULL ("" none) */
    const char *error;   /* why it failed, whole (docs/capture.md); NULL when it succeeded */
    int verify_result;   /* upstream side: OpenSSL's X509_V_* (0 ok); -1 unknown */
    int insecure;        /* upstream side: verification was off (--insecure-upstream) */
    unsigned close_bits; /* how it ended (SHUNT_TLS_* of src/proxy/events.h); 0 unknown */
};

/* A loaded capture. */
struct shunt_model {
    struct shunt_model_conn *conns;   /* by id */
    size_t n_conns;
    struct shunt_model_exchange *ex;  /* by connection, then idx */
    size_t n_ex;
    size_t n_selected;                /* exchanges the FILTER takes */
    struct shunt_model_tls *tls;      /* TLS handshakes, by id */
    size_t n_tls;
    char *source;                     /* capture.source: "proxy" or "har" */
    int64_t events_dropped;           /* > 0: the capture is incomplete */
};

/* ---------------------------------------------------------------- loading */

/*
 * Reads the capture <db> (open, in a read transaction or not) into a new model in *<out>,
 * marking the exchanges that <f> selects (NULL: all; an expression needs
 * shunt_capture_filter_register() on <db> first). Returns 0, SHUNT_ENOMEM, or SHUNT_EPARSE
 * with SQLite's message in <err>. Free the model with shunt_model_free(). The caller's thread.
 */
SHUNT_MUST_CHECK int shunt_model_load(sqlite3 *db, const struct shunt_capture_filter *f,
                                      struct shunt_model **out, char *err, size_t err_len);

/* Frees <m> and everything in it; NULL is fine. */
void shunt_model_free(struct shunt_model *m);

/* ---------------------------------------------------------------- lookups */

/* The first field <name> (ASCII case ignored) of <head>: returns 1 with its value (optional
 * whitespace trimmed) in *<value>, or 0 when absent. Pure. */
int shunt_model_field(struct shunt_slice head, const char *name, struct shunt_slice *value);

/* Counts the fields <name> of <head>. Pure. */
size_t shunt_model_field_count(struct shunt_slice head, const char *name);

/* True when a field <name> of <head> lists <token> in its comma-separated values (ASCII case
 * ignored), as Connection does (RFC 9110 5.6.1). Pure. */
int shunt_model_field_has_token(struct shunt_slice head, const char *name, const char *token);

/* How the response of <e> (as sent to the client) ends its connection, RFC 9112 9.3 and
 * 6.3: returns a static reason ("Connection: close", "HTTP/1.0 without keep-alive", "a body
 * delimited by the close") or NULL when the connection may persist. Always NULL over HTTP/2
 * and HTTP/3: no Connection field, bodies framed by the streams (RFC 9113 8.2.2, 8.1). Pure. */
const char *shunt_model_resp_closes(const struct shunt_model_exchange *e);

/* How the response of <e> as the server sent it ends the connection (the reasons of
 * shunt_model_resp_closes()), or NULL: what the server did, before any rule of the proxy's
 * changed the head. NULL without a server response (shunt answered itself). Pure. */
const char *shunt_model_server_closes(const struct shunt_model_exchange *e);

/* True when the response of <e> (as sent to the client) ends its connection only because
 * its body has no length: shunt_model_resp_closes() says "a body delimited by the close".
 * Pure. */
int shunt_model_resp_unframed(const struct shunt_model_exchange *e);

/* The connection with id <id>, or NULL. */
const struct shunt_model_conn *shunt_model_conn_by_id(const struct shunt_model *m, int64_t id);

/* <a> + <b>, saturated at INT64_MIN and INT64_MAX instead of overflowing: the counts and
 * times summed come from a file that may say anything. */
static inline int64_t shunt_model_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* True when <e> is HTTP/1.x, where RFC 9112's rules apply (persistence, Connection and the
 * other hop-by-hop fields, message body length, connection-bound authentication). */
static inline int shunt_model_http1(const struct shunt_model_exchange *e)
{
    return e->http_major < 2;
}

/* True when who closed <c> is not known: an import (a HAR names no closer), not a proxy's
 * connection that is still open, which was not closed at all. */
static inline int shunt_model_closer_unknown(const struct shunt_model_conn *c)
{
    return c->closer[0] == '\0' && !c->open;
}

/* The last exchange of <c>, or NULL when it has none. */
static inline const struct shunt_model_exchange *
shunt_model_last(const struct shunt_model_conn *c)
{
    return c->n_ex ? &c->ex[c->n_ex - 1] : NULL;
}

#endif
