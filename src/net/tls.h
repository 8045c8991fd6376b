/* src/net/tls.h - TLS as a transform of bytes: OpenSSL 3 on memory BIOs, with no I/O of its
 * own. The connection object (net/conn.h) feeds it what the socket read and writes out what
 * it produced; the engine never sees a socket or the loop, so it is tested and fuzzed on
 * its own. Contexts (the CA's leaves, the upstream trust) are made once and shared by every
 * connection of every worker; an engine belongs to one connection, on its loop's thread.
 *
 * CONTRACT (issue 12): written before the code; the TLS part implements it, the connection
 * layer calls it. Change it only together. */
#ifndef SHUNT_NET_TLS_H
#define SHUNT_NET_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/errors.h"

struct shunt_tls;       /* one connection's TLS: an SSL with its two memory BIOs */
struct shunt_tls_ctx;   /* shared settings for many connections (an SSL_CTX and more) */
struct shunt_ca;        /* shunt's CA and its cache of leaf certificates (net/ca.h) */

/* What a TLS handshake established (or why it failed): the record of the proxy's SHUNT_EV_TLS
 * event (proxy/events.h includes this header; the struct lives here because net/ must not
 * include proxy/). Strings are NUL-terminated, "" when unknown, never NULL. */
struct shunt_tls_facts {
    int side;                 /* 0: shunt was the server (the client's TLS, intercepted);
                                 1: shunt was the client (an upstream's TLS) */
    const char *sni;          /* the server name asked for (client side: what the client
                                 sent; upstream side: what shunt sent) */
    const char *alpn;         /* the protocol agreed ("http/1.1"), "" when none */
    const char *version;      /* "TLSv1.3", ... */
    const char *cipher;       /* "TLS_AES_128_GCM_SHA256", ... */
    /* the certificate the server side presented (upstream side: the origin's; client side:
     * the leaf shunt made) */
    const char *cert_subject; /* one-line RFC 2253 form */
    const char *cert_issuer;
    const char *cert_san;     /* "DNS:a.example, IP:127.0.0.1" */
    const char *cert_sha256;  /* fingerprint, lower-case hex with colons */
    int64_t cert_not_before;  /* unix seconds, 0 when unknown */
    int64_t cert_not_after;
    uint64_t handshake_us;    /* first byte of the handshake to its end */
    const char *error;        /* NULL when the handshake succeeded; else why, whole: "the
                                 client rejected shunt's certificate (alert 48: unknown
                                 ca)", "certificate verify failed: certificate has expired",
                                 "handshake timed out", "not TLS: the client sent plain
                                 HTTP into the tunnel" */
    int verify_result;        /* upstream side: X509_V_OK (0) or OpenSSL's X509_V_ERR_* */
    int insecure;             /* upstream side: verification was turned off */
    int resumed;              /* 1: the handshake resumed an earlier session (no certificate
                                 was sent: the cert_* fields are those of that session's) */
};

/* Results of the engine's steps. */
enum shunt_tls_rc {
    SHUNT_TLS_OK = 0,        /* done (handshake complete, bytes consumed) */
    SHUNT_TLS_WANT = 1,      /* needs more input from the peer: feed it and call again */
    SHUNT_TLS_CLOSED = 2,    /* the peer sent close_notify: no more application data */
    SHUNT_TLS_ERROR = -1,    /* fatal: shunt_tls_error() says why; send what is pending
                                (an alert) and close */
};

/* ----------------------------------------------------------------------- contexts */

/* Client side, towards upstreams: trusts the system store (and <extra_ca_file> when not
 * NULL: a PEM bundle, e.g. --upstream-cacert), offers ALPN http/1.1, TLS 1.2 and later.
 * <insecure>: no verification at all (--insecure-upstream). NULL on error, <err> (size
 * <err_len>) saying why. Main thread, once. */
struct shunt_tls_ctx *shunt_tls_ctx_client(const char *extra_ca_file, int insecure, char *err,
                                           size_t err_len);

/* Server side, for interception: presents a leaf made by <ca> for the SNI name (or, when
 * the client sent none, for the fallback name given to shunt_tls_new_server()), offers
 * ALPN http/1.1 only. <ca> must outlive the context. Main thread, once. */
struct shunt_tls_ctx *shunt_tls_ctx_server(struct shunt_ca *ca, char *err, size_t err_len);

void shunt_tls_ctx_free(struct shunt_tls_ctx *ctx);

/* ----------------------------------------------------------------------- one connection */

/* A server-side engine (shunt plays the origin to a client). <fallback_host> is the CONNECT
 * host: the leaf's name when the ClientHello carries no SNI (a client connecting to an IP
 * address). NULL when out of memory. */
struct shunt_tls *shunt_tls_new_server(struct shunt_tls_ctx *ctx, const char *fallback_host);

/* A client-side engine towards an upstream named <host> (a name or an IP literal): sends
 * <sni> as SNI when it is a name (not an IP literal; NULL: <host>), verifies the chain and
 * that the certificate names the name sent as SNI (DNS SAN), or <host> when no name is sent
 * (DNS or IP SAN), unless the context is insecure. When intercepting, <sni> is the client's:
 * shunt showed the client a leaf for that name, so that is the name it must verify. */
struct shunt_tls *shunt_tls_new_client(struct shunt_tls_ctx *ctx, const char *host,
                                       const char *sni);

void shunt_tls_free(struct shunt_tls *t);

/* Feeds <n> bytes read from the socket. Returns 0, or SHUNT_ENOMEM. */
SHUNT_MUST_CHECK int shunt_tls_feed(struct shunt_tls *t, const char *p, size_t n);

/* Advances the handshake with what was fed: SHUNT_TLS_OK once complete (call once more
 * is harmless), SHUNT_TLS_WANT, or SHUNT_TLS_ERROR. Produces output: drain it. */
enum shunt_tls_rc shunt_tls_handshake(struct shunt_tls *t);

/* Decrypts into <buf> (up to <cap> bytes): > 0 bytes read, or -SHUNT_TLS_WANT,
 * -SHUNT_TLS_CLOSED, SHUNT_TLS_ERROR (all <= 0). May produce output (a key update, an
 * alert): drain it. */
ssize_t shunt_tls_read(struct shunt_tls *t, char *buf, size_t cap);

/* Encrypts <n> bytes of application data; the records wait for shunt_tls_drain().
 * Returns 0, or SHUNT_TLS_ERROR. Never short: memory BIOs grow. */
int shunt_tls_write(struct shunt_tls *t, const char *p, size_t n);

/* Queues close_notify (once). */
void shunt_tls_close_notify(struct shunt_tls *t);

/* Ciphertext waiting to be sent: points <*p> at it and returns its length (0: none). The
 * bytes stay until shunt_tls_drained(t, n) says <n> of them were taken (copied or sent). */
size_t shunt_tls_pending(struct shunt_tls *t, const char **p);
void shunt_tls_drained(struct shunt_tls *t, size_t n);

/* 1 once the handshake completed. */
int shunt_tls_done(const struct shunt_tls *t);
/* 1 when the peer's close_notify was read; 1 when ours was queued. */
int shunt_tls_peer_closed(const struct shunt_tls *t);
int shunt_tls_we_closed(const struct shunt_tls *t);

/* Why the engine failed, whole, in words a user reads in a capture ("the client rejected
 * shunt's certificate (alert 48: unknown ca)", "certificate verify failed: certificate has
 * expired", "hostname mismatch: the certificate names a.test, not b.test"); "" when it did
 * not. Valid until the engine is freed. */
const char *shunt_tls_error(const struct shunt_tls *t);

/* Fills <out> with what the handshake established (or got to before failing). Strings
 * point into the engine: valid until it is freed. */
void shunt_tls_facts(struct shunt_tls *t, struct shunt_tls_facts *out);

/* 1 when the <n> bytes at <p> begin a TLS handshake record (0x16 0x03 0x0N): what a
 * tunnel's first bytes are checked with before it is intercepted. Needs 3 bytes; with
 * fewer returns -1 (not known yet), or 0 when those already rule it out ("G"). */
int shunt_tls_looks_like_hello(const char *p, size_t n);

/* 1 when the <n> bytes at <p> begin an HTTP request line: a known method (GET, POST, HEAD,
 * PUT, DELETE, OPTIONS, PATCH, CONNECT, TRACE) and a space, or another upper-case token, a
 * space and a target ("/", "*", "http..."); 0 otherwise ("EHLO x"). What tells "not TLS:
 * the client sent plain HTTP into the tunnel" from "not TLS: the client's first bytes are
 * not a TLS handshake". */
int shunt_tls_looks_like_http(const char *p, size_t n);

#endif
