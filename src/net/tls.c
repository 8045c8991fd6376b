/* src/net/tls.c - the TLS engine of net/tls.h: OpenSSL 3 through a BIO of our own that reads
 * what the connection fed and writes into a buffer the connection drains, so the engine does
 * no I/O and one code path serves the loop, the tests and the fuzzer. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/mem.h"
#include "net/ca.h"

#define N_SESSIONS 256 /* client side: upstream sessions kept for resumption */
#define SNI_MAX 255    /* RFC 6066 3: HostName is 1..2^16-1 bytes; OpenSSL takes up to 255 */
#define SNI_TEXT (4 * SNI_MAX + 1) /* an SNI as text: every byte may need an escape */

/* A session to resume with an upstream, under the name it was verified for. */
struct saved_session {
    char key[SHUNT_CA_NAME_MAX + 1 + SNI_TEXT]; /* host, '|', SNI sent */
    SSL_SESSION *sess;                     /* NULL: free slot */
};

struct shunt_tls_ctx {
    SSL_CTX *ssl;
    struct shunt_ca *ca; /* server side: where leaves come from */
    int server;
    int insecure;        /* client side: --insecure-upstream */
    /* Client side: the last session of each upstream name, so that a new connection to it
     * resumes (one round trip less, and no certificate to parse and verify again: what a
     * browser does too). Shared by every worker: under the lock. */
    pthread_mutex_t lock;
    struct saved_session sessions[N_SESSIONS];
    size_t next_victim; /* round robin when full */
};

/* A growable byte queue: bytes [off, len) wait. */
struct bytes {
    char *p;
    size_t off, len, cap;
};

struct shunt_tls {
    SSL *ssl;
    struct shunt_tls_ctx *ctx;
    struct bytes in;  /* ciphertext fed, not yet read by OpenSSL */
    struct bytes out; /* ciphertext OpenSSL wrote, not yet drained */
    int server;
    int done, peer_closed, we_closed, failed;
    int alert_in;          /* first fatal alert the peer sent, -1: none */
    int saw_input;         /* the first fed bytes were looked at */
    int first_is_hello;    /* server: they began a TLS handshake */
    int first_is_http;     /* server: they began an HTTP request line */
    uint64_t t_start_ns, t_done_ns;
    X509 *peer_leaf;       /* client side: the server's certificate as verified (kept even
                              when verification failed, for the facts) */
    X509 *own_leaf;        /* server side, resumed: the leaf of the name, for the facts (no
                              certificate was sent, so OpenSSL holds none) */
    int verify_err;        /* first verification error seen by the callback, 0: none */
    int verify_depth;
    char host[SHUNT_CA_NAME_MAX + 1];   /* client: the name checked; server: fallback */
    char sni[SNI_TEXT];                 /* client: what was sent; server: what came,
                                           escaped */
    char err[900];
    /* the facts' strings */
    int facts_made;
    char f_subject[1024], f_issuer[1024], f_san[2048], f_sha256[3 * 32 + 1];
    char f_version[32], f_cipher[128], f_alpn[64];
};

static const unsigned char alpn_h11[] = "\x08http/1.1";

/* ----------------------------------------------------------------------- small helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bytes_reserve(struct bytes *b, size_t n)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n <= b->cap)
        return 0;
    if (b->off > 0) { /* compact before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + n <= b->cap)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* RFC 8446 6 and RFC 5246 7.2 names of alerts, as "unknown ca". */
static const char *alert_name(int a)
{
    switch (a) {
    case 0: return "close notify";
    case 10: return "unexpected message";
    case 20: return "bad record mac";
    case 21: return "decryption failed";
    case 22: return "record overflow";
    case 30: return "decompression failure";
    case 40: return "handshake failure";
    case 41: return "no certificate";
    case 42: return "bad certificate";
    case 43: return "unsupported certificate";
    case 44: return "certificate revoked";
    case 45: return "certificate expired";
    case 46: return "certificate unknown";
    case 47: return "illegal parameter";
    case 48: return "unknown ca";
    case 49: return "access denied";
    case 50: return "decode error";
    case 51: return "decrypt error";
    case 60: return "export restriction";
    case 70: return "protocol version";
    case 71: return "insufficient security";
    case 80: return "internal error";
    case 86: return "inappropriate fallback";
    case 90: return "user canceled";
    case 100: return "no renegotiation";
    case 109: return "missing extension";
    case 110: return "unsupported extension";
    case 111: return "certificate unobtainable";
    case 112: return "unrecognized name";
    case 113: return "bad certificate status response";
    case 114: return "bad certificate hash value";
    case 115: return "unknown psk identity";
    case 116: return "certificate required";
    case 120: return "no application protocol";
    default: return "unknown alert";
    }
}

/* Alerts a client sends when it does not accept the server's certificate. */
static int is_cert_alert(int a)
{
    return a == 42 || a == 43 || a == 44 || a == 45 || a == 46 || a == 48;
}

/* Copies <n> bytes of peer text into <out> (size <cap>), every byte that is not printable
 * ASCII as \xNN: a peer's SNI and certificate fields are untrusted (shunt stores them whole
 * but never raw control bytes, C1 ones included). Both are ASCII by spec (RFC 6066 3, and
 * the RFC 2253 text escapes the rest), so a byte >= 0x80 is escaped too rather than decoded.
 * Stops at the last character that fits whole: room for an escape is needed only for one. */
static void copy_text(char *out, size_t cap, const char *s, size_t n)
{
    if (cap == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f) {
            if (cap - o < 5)
                break;
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        } else {
            if (cap - o < 2)
                break;
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static void append(char *out, size_t cap, const char *fmt, const char *s)
{
    size_t l = strlen(out);
    if (l < cap)
        snprintf(out + l, cap - l, fmt, s);
}

/* "DNS:a.test, IP:127.0.0.1" of <x> into <out>; with <names_only>, "a.test, 127.0.0.1". */
static void san_text(X509 *x, char *out, size_t cap, int names_only)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (gens == NULL)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[600] = "";
        if (g->type == GEN_DNS) {
            char v[512];
            copy_text(v, sizeof(v), (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                      (size_t)ASN1_STRING_length(g->d.dNSName));
            snprintf(one, sizeof(one), "%s%s", names_only ? "" : "DNS:", v);
        } else if (g->type == GEN_IPADD) {
            char v[INET6_ADDRSTRLEN] = "?";
            int l = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, d, v, sizeof(v));
            snprintf(one, sizeof(one), "%s%s", names_only ? "" : "IP:", v);
        } else {
            continue;
        }
        if (out[0] != '\0')
            append(out, cap, "%s", ", ");
        append(out, cap, "%s", one);
    }
    GENERAL_NAMES_free(gens);
}

static void name_text(const X509_NAME *n, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    char *p;
    long l = BIO_get_mem_data(b, &p);
    if (l > 0)
        copy_text(out, cap, p, (size_t)l);
    BIO_free(b);
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* ----------------------------------------------------------------------- the BIO */

static int bio_write(BIO *b, const char *p, int n)
{
    struct shunt_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (n <= 0)
        return 0;
    if (bytes_reserve(&t->out, (size_t)n) != 0)
        return -1;
    memcpy(t->out.p + t->out.len, p, (size_t)n);
    t->out.len += (size_t)n;
    return n;
}

static int bio_read(BIO *b, char *p, int n)
{
    struct shunt_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = t->in.len - t->in.off;
    if (avail == 0) {
        BIO_set_retry_read(b); /* not EOF: the connection will feed more */
        return -1;
    }
    size_t k = (size_t)n < avail ? (size_t)n : avail;
    memcpy(p, t->in.p + t->in.off, k);
    t->in.off += k;
    return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "shunt");
    if (m == NULL)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

/* ----------------------------------------------------------------------- callbacks */

static int engine_idx = -1; /* SSL ex_data slot of the engine (set with the first context) */
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void make_idx(void)
{
    engine_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct shunt_tls *engine_of(const SSL *ssl)
{
    return SSL_get_ex_data(ssl, engine_idx);
}

/* Keeps the first fatal alert the peer sent: the words of the error. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_ALERT) || !(where & SSL_CB_READ)) /* not the alerts we send */
        return;
    struct shunt_tls *t = engine_of(ssl);
    int desc = ret & 0xff;
    if (t != NULL && t->alert_in < 0 && desc != 0 && desc != 90) /* not close_notify,
                                                                     user_canceled */
        t->alert_in = desc;
}

/* Server side: takes the SNI from every ClientHello. The certificate callback below is
 * skipped when the client resumes a session (a TLS 1.3 ticket), and the SNI is still the
 * name the client asked for, the one the proxy sends upstream. RFC 6066 3: a list of
 * (type, length, name); host_name is type 0, the only one defined. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert, (void)arg;
    struct shunt_tls *t = engine_of(ssl);
    const unsigned char *p = NULL;
    size_t n = 0;
    if (t == NULL || !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n))
        return SSL_CLIENT_HELLO_SUCCESS;
    if (n < 2 || (size_t)(p[0] << 8 | p[1]) != n - 2)
        return SSL_CLIENT_HELLO_SUCCESS; /* malformed: OpenSSL rejects it itself */
    for (size_t i = 2; i + 3 <= n;) {
        size_t l = (size_t)(p[i + 1] << 8 | p[i + 2]);
        if (i + 3 + l > n)
            break;
        if (p[i] == TLSEXT_NAMETYPE_host_name) {
            copy_text(t->sni, sizeof(t->sni), (const char *)p + i + 3,
                      l < SNI_MAX ? l : SNI_MAX);
            break;
        }
        i += 3 + l;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The leaf for <sni> (NULL: none sent), else for the fallback name. Returns as shunt_ca_leaf(). */
static int leaf_for(struct shunt_tls *t, const char *sni, X509 **x, EVP_PKEY **k)
{
    int r = SHUNT_EINVAL;
    if (sni != NULL)
        r = shunt_ca_leaf(t->ctx->ca, sni, x, k);
    if (r == SHUNT_EINVAL && t->host[0] != '\0') /* no SNI, or one no certificate can carry */
        r = shunt_ca_leaf(t->ctx->ca, t->host, x, k);
    return r;
}

/* Server side: picks the leaf once the ClientHello's SNI is known. */
static int cert_cb(SSL *ssl, void *arg)
{
    (void)arg;
    struct shunt_tls *t = engine_of(ssl);
    if (t == NULL)
        return 0;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int r = leaf_for(t, sni, &x, &k);
    if (r != 0) {
        if (t->err[0] == '\0')
            snprintf(t->err, sizeof(t->err),
                     r == SHUNT_EINVAL ? "no certificate: the client asked for the name \"%s\", "
                                         "which a certificate cannot carry"
                                       : "no certificate: signing one for \"%s\" failed",
                     sni ? t->sni : t->host);
        return 0;
    }
    int ok = SSL_use_cert_and_key(ssl, x, k, NULL, 1);
    X509_free(x);
    return ok == 1;
}

/* Server side: http/1.1 when the client offers it; else no ALPN at all (RFC 7301 3.2 allows
 * going on without; a client that insists ends the handshake itself). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (l == 0 || i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Client side: remembers the server's certificate and the first failed check, and lets
 * OpenSSL decide (<ok> unchanged): SSL_VERIFY_NONE goes on, SSL_VERIFY_PEER stops. */
static int verify_cb(int ok, X509_STORE_CTX *sctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct shunt_tls *t = ssl ? engine_of(ssl) : NULL;
    if (t == NULL)
        return ok;
    if (t->peer_leaf == NULL) {
        STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);
        X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
        if (leaf == NULL && chain != NULL && sk_X509_num(chain) > 0)
            leaf = sk_X509_value(chain, 0);
        if (leaf != NULL && X509_up_ref(leaf) == 1)
            t->peer_leaf = leaf;
    }
    if (!ok && t->verify_err == 0) {
        t->verify_err = X509_STORE_CTX_get_error(sctx);
        t->verify_depth = X509_STORE_CTX_get_error_depth(sctx);
    }
    return ok;
}

/* The key of an upstream engine's session: host and SNI (a session is only resumed for the
 * name it was verified for). */
static void session_key(const struct shunt_tls *t, char *out, size_t cap)
{
    snprintf(out, cap, "%s|%s", t->host, t->sni);
}

/* Client side: OpenSSL has a session (TLS 1.2 after the handshake, TLS 1.3 with each
 * ticket). A copy is kept when it was verified (or verification is off): the connection's
 * own may yet be marked not resumable (see resume_session()). Returns 0: <sess> stays
 * OpenSSL's. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct shunt_tls *t = engine_of(ssl);
    if (t == NULL || t->ctx->server)
        return 0;
    struct shunt_tls_ctx *c = t->ctx;
    if (!c->insecure && SSL_get_verify_result(ssl) != X509_V_OK)
        return 0;
    char key[sizeof(c->sessions[0].key)];
    session_key(t, key, sizeof(key));
    pthread_mutex_lock(&c->lock);
    struct saved_session *slot = NULL;
    for (size_t i = 0; i < N_SESSIONS && slot == NULL; i++)
        if (c->sessions[i].sess != NULL && strcmp(c->sessions[i].key, key) == 0)
            slot = &c->sessions[i];
    for (size_t i = 0; i < N_SESSIONS && slot == NULL; i++)
        if (c->sessions[i].sess == NULL)
            slot = &c->sessions[i];
    if (slot == NULL) {
        slot = &c->sessions[c->next_victim];
        c->next_victim = (c->next_victim + 1) % N_SESSIONS;
    }
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy != NULL) {
        SSL_SESSION_free(slot->sess);
        slot->sess = copy;
        memcpy(slot->key, key, sizeof(key));
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Offers (a copy of) the saved session of <t>'s name, if any. A copy: OpenSSL marks the
 * session of a connection that ends without close_notify not resumable, and the saved one
 * is shared by every worker. */
static void resume_session(struct shunt_tls *t)
{
    struct shunt_tls_ctx *c = t->ctx;
    SSL_SESSION *copy = NULL;
    char key[sizeof(c->sessions[0].key)];
    session_key(t, key, sizeof(key));
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < N_SESSIONS; i++)
        if (c->sessions[i].sess != NULL && strcmp(c->sessions[i].key, key) == 0) {
            if (SSL_SESSION_is_resumable(c->sessions[i].sess))
                copy = SSL_SESSION_dup(c->sessions[i].sess);
            break;
        }
    pthread_mutex_unlock(&c->lock);
    if (copy != NULL) {
        SSL_set_session(t->ssl, copy); /* takes its own reference */
        SSL_SESSION_free(copy);
    }
    ERR_clear_error();
}

/* ----------------------------------------------------------------------- contexts */

static int init_common(void)
{
    pthread_once(&bio_once, make_bio_method);
    pthread_once(&idx_once, make_idx);
    return bio_method != NULL && engine_idx >= 0 ? 0 : -1;
}

static void ctx_err(char *err, size_t err_len, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, err_len, "%s%s%s", what, r ? ": " : "", r ? r : "");
    ERR_clear_error();
}

struct shunt_tls_ctx *shunt_tls_ctx_client(const char *extra_ca_file, int insecure, char *err,
                                           size_t err_len)
{
    if (init_common() != 0) {
        snprintf(err, err_len, "TLS: cannot set up OpenSSL");
        return NULL;
    }
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    if (s == NULL) {
        ctx_err(err, err_len, "TLS: cannot make a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_protos(s, alpn_h11, sizeof(alpn_h11) - 1);
    SSL_CTX_set_verify(s, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, verify_cb);
    /* the system store; SSL_CERT_FILE and SSL_CERT_DIR override it, as for openssl(1) */
    if (SSL_CTX_set_default_verify_paths(s) != 1)
        ERR_clear_error(); /* no system store: only --upstream-cacert is trusted */
    if (extra_ca_file != NULL) {
        FILE *f = fopen(extra_ca_file, "r");
        if (f == NULL) {
            snprintf(err, err_len, "%s: %m", extra_ca_file);
            SSL_CTX_free(s);
            return NULL;
        }
        fclose(f);
        if (SSL_CTX_load_verify_locations(s, extra_ca_file, NULL) != 1) {
            char what[600];
            snprintf(what, sizeof(what), "%s: no PEM certificate could be read", extra_ca_file);
            ctx_err(err, err_len, what);
            SSL_CTX_free(s);
            return NULL;
        }
    }
    struct shunt_tls_ctx *c = shunt_xcalloc(sizeof(*c));
    c->ssl = s;
    c->insecure = insecure;
    pthread_mutex_init(&c->lock, NULL);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(s, new_session_cb);
    return c;
}

struct shunt_tls_ctx *shunt_tls_ctx_server(struct shunt_ca *ca, char *err, size_t err_len)
{
    if (init_common() != 0) {
        snprintf(err, err_len, "TLS: cannot set up OpenSSL");
        return NULL;
    }
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (s == NULL) {
        ctx_err(err, err_len, "TLS: cannot make a context");
        return NULL;
    }
    struct shunt_tls_ctx *c = shunt_xcalloc(sizeof(*c));
    c->ssl = s;
    c->ca = ca;
    c->server = 1;
    pthread_mutex_init(&c->lock, NULL);
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    /* renegotiation would be a second handshake inside the stream the proxy parses */
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_client_hello_cb(s, client_hello_cb, NULL);
    SSL_CTX_set_cert_cb(s, cert_cb, c);
    SSL_CTX_set_alpn_select_cb(s, alpn_cb, NULL);
    /* one ticket, not OpenSSL's two: clients resume with one, and each costs a write */
    SSL_CTX_set_num_tickets(s, 1);
    return c;
}

void shunt_tls_ctx_free(struct shunt_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (size_t i = 0; i < N_SESSIONS; i++)
        SSL_SESSION_free(ctx->sessions[i].sess);
    SSL_CTX_free(ctx->ssl);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* ----------------------------------------------------------------------- engines */

static struct shunt_tls *engine_new(struct shunt_tls_ctx *ctx)
{
    struct shunt_tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ctx = ctx;
    t->alert_in = -1;
    t->server = ctx->server;
    t->ssl = SSL_new(ctx->ssl);
    BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
    if (b == NULL) {
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b); /* one BIO both ways: one reference, SSL_free frees it */
    SSL_set_ex_data(t->ssl, engine_idx, t);
    SSL_set_info_callback(t->ssl, info_cb);
    return t;
}

struct shunt_tls *shunt_tls_new_server(struct shunt_tls_ctx *ctx, const char *fallback_host)
{
    struct shunt_tls *t = engine_new(ctx);
    if (t == NULL)
        return NULL;
    if (fallback_host != NULL)
        snprintf(t->host, sizeof(t->host), "%s", fallback_host);
    SSL_set_accept_state(t->ssl);
    return t;
}

struct shunt_tls *shunt_tls_new_client(struct shunt_tls_ctx *ctx, const char *host,
                                       const char *sni)
{
    struct shunt_tls *t = engine_new(ctx);
    if (t == NULL)
        return NULL;
    if (sni == NULL || *sni == '\0')
        sni = host;
    /* The name verified is the SNI when it is a name: when intercepting, shunt showed the
     * client a leaf for its SNI, so that is the name shunt vouches for and must check, not
     * the CONNECT host (which may be an address, or another name). */
    const char *checked = shunt_ca_is_ip(sni) ? host : sni;
    snprintf(t->host, sizeof(t->host), "%s", checked);
    int ok = 1;
    /* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName" */
    if (!shunt_ca_is_ip(sni)) {
        snprintf(t->sni, sizeof(t->sni), "%s", sni);
        ok = SSL_set_tlsext_host_name(t->ssl, t->sni) == 1;
    }
    if (ok && shunt_ca_is_ip(checked))
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), checked) == 1;
    else if (ok) {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(t->ssl, checked) == 1;
    }
    if (!ok) {
        ERR_clear_error();
        shunt_tls_free(t);
        return NULL;
    }
    resume_session(t);
    SSL_set_connect_state(t->ssl);
    return t;
}

void shunt_tls_free(struct shunt_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    X509_free(t->peer_leaf);
    X509_free(t->own_leaf);
    free(t->in.p);
    free(t->out.p);
    free(t);
}

int shunt_tls_feed(struct shunt_tls *t, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (!t->saw_input) {
        t->saw_input = 1;
        t->first_is_hello = shunt_tls_looks_like_hello(p, n) != 0;
        t->first_is_http = shunt_tls_looks_like_http(p, n);
    }
    if (t->t_start_ns == 0)
        t->t_start_ns = now_ns();
    if (bytes_reserve(&t->in, n) != 0)
        return SHUNT_ENOMEM;
    memcpy(t->in.p + t->in.len, p, n);
    t->in.len += n;
    return 0;
}

/* Sets t->err (unless a callback already did) from what OpenSSL says after a failed call. */
static void set_failure(struct shunt_tls *t, int ssl_error)
{
    t->failed = 1;
    if (t->t_done_ns == 0)
        t->t_done_ns = now_ns();
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    const char *rs = e ? ERR_reason_error_string(e) : NULL;
    if (t->err[0] != '\0') {
        /* said by a callback */
    } else if (t->alert_in >= 0) {
        const char *who = t->server ? "the client" : "the server";
        if (t->server && !t->done && is_cert_alert(t->alert_in))
            snprintf(t->err, sizeof(t->err),
                     "the client rejected shunt's certificate (alert %d: %s)", t->alert_in,
                     alert_name(t->alert_in));
        else
            snprintf(t->err, sizeof(t->err), "%s %s (alert %d: %s)", who,
                     t->done ? "sent a fatal alert" : "ended the handshake", t->alert_in,
                     alert_name(t->alert_in));
    } else if (!t->server && (reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
                              (t->verify_err != 0 && !t->ctx->insecure))) {
        /* verify_err is kept when verification is off too (for the facts), where it is no
         * failure: whatever ended that handshake is told by the branches below */
        long v = t->verify_err ? t->verify_err : SSL_get_verify_result(t->ssl);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            char names[1024] = "";
            if (t->peer_leaf != NULL) {
                san_text(t->peer_leaf, names, sizeof(names), 1);
                if (names[0] == '\0') {
                    char cn[256] = "";
                    X509_NAME_get_text_by_NID(X509_get_subject_name(t->peer_leaf),
                                              NID_commonName, cn, sizeof(cn));
                    copy_text(names, sizeof(names), cn, strlen(cn));
                }
            }
            snprintf(t->err, sizeof(t->err), "hostname mismatch: the certificate names %.500s, not %.253s",
                     names[0] ? names : "no name", t->host);
        } else {
            snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        }
    } else if (t->server && t->saw_input && !t->first_is_hello && !t->done) {
        snprintf(t->err, sizeof(t->err), "%s",
                 t->first_is_http ? "not TLS: the client sent plain HTTP into the tunnel"
                                  : "not TLS: the client's first bytes are not a TLS handshake");
    } else if (rs != NULL) {
        snprintf(t->err, sizeof(t->err), "%s: %s", t->done ? "TLS error" : "handshake failed",
                 rs);
    } else {
        snprintf(t->err, sizeof(t->err), "%s (OpenSSL error %d)",
                 t->done ? "TLS error" : "handshake failed", ssl_error);
    }
    ERR_clear_error();
}

static void mark_done(struct shunt_tls *t)
{
    if (!t->done && SSL_is_init_finished(t->ssl)) {
        t->done = 1;
        t->t_done_ns = now_ns();
    }
}

enum shunt_tls_rc shunt_tls_handshake(struct shunt_tls *t)
{
    if (t->failed)
        return SHUNT_TLS_ERROR;
    if (t->done)
        return SHUNT_TLS_OK;
    if (t->t_start_ns == 0)
        t->t_start_ns = now_ns();
    ERR_clear_error(); /* the queue is per thread, shared by every connection of the loop */
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        mark_done(t);
        return SHUNT_TLS_OK;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return SHUNT_TLS_WANT;
    }
    set_failure(t, e);
    return SHUNT_TLS_ERROR;
}

ssize_t shunt_tls_read(struct shunt_tls *t, char *buf, size_t cap)
{
    if (t->failed)
        return SHUNT_TLS_ERROR;
    if (t->peer_closed)
        return -SHUNT_TLS_CLOSED;
    if (cap == 0)
        return -SHUNT_TLS_WANT;
    /* Nothing fed and nothing decrypted waiting: SSL_read would only say so, at the cost of
     * a call through the record layer (every read loop ends with one). */
    if (t->done && t->in.off == t->in.len && SSL_pending(t->ssl) == 0)
        return -SHUNT_TLS_WANT;
    ERR_clear_error();
    int r = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    mark_done(t);
    if (r > 0)
        return r;
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return -SHUNT_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        t->peer_closed = 1;
        ERR_clear_error();
        return -SHUNT_TLS_CLOSED;
    default:
        set_failure(t, e);
        return SHUNT_TLS_ERROR;
    }
}

int shunt_tls_write(struct shunt_tls *t, const char *p, size_t n)
{
    if (t->failed)
        return SHUNT_TLS_ERROR;
    if (!t->done || t->we_closed) {
        snprintf(t->err, sizeof(t->err), "%s",
                 t->done ? "TLS error: data written after close_notify"
                         : "TLS error: data written before the handshake completed");
        t->failed = 1;
        return SHUNT_TLS_ERROR;
    }
    ERR_clear_error();
    while (n > 0) {
        size_t w = 0;
        int r = SSL_write_ex(t->ssl, p, n, &w);
        if (r != 1) {
            set_failure(t, SSL_get_error(t->ssl, r));
            return SHUNT_TLS_ERROR;
        }
        p += w;
        n -= w;
    }
    return 0;
}

void shunt_tls_close_notify(struct shunt_tls *t)
{
    if (t->we_closed || t->failed || !t->done)
        return;
    t->we_closed = 1;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* 0: sent, the peer's not read yet; the record is in out */
    ERR_clear_error();
}

size_t shunt_tls_pending(struct shunt_tls *t, const char **p)
{
    if (t->out.p == NULL) { /* nothing written yet (NULL + 0 is undefined in C) */
        *p = "";
        return 0;
    }
    *p = t->out.p + t->out.off;
    return t->out.len - t->out.off;
}

void shunt_tls_drained(struct shunt_tls *t, size_t n)
{
    size_t have = t->out.len - t->out.off;
    t->out.off += n < have ? n : have;
    if (t->out.off == t->out.len)
        t->out.off = t->out.len = 0;
}

int shunt_tls_done(const struct shunt_tls *t)
{
    return t->done;
}

int shunt_tls_peer_closed(const struct shunt_tls *t)
{
    return t->peer_closed;
}

int shunt_tls_we_closed(const struct shunt_tls *t)
{
    return t->we_closed;
}

const char *shunt_tls_error(const struct shunt_tls *t)
{
    return t->err;
}

/* The certificate the facts describe: the server's (the client side: as verified). */
static X509 *facts_cert(struct shunt_tls *t)
{
    if (!t->server)
        return t->peer_leaf ? t->peer_leaf : SSL_get0_peer_certificate(t->ssl);
    X509 *x = SSL_get_certificate(t->ssl);
    if (x == NULL && t->own_leaf == NULL && t->done && SSL_session_reused(t->ssl)) {
        /* resumed: the certificate callback did not run; the leaf of the name is what the
         * client was shown when the session began (from the cache, or made again) */
        EVP_PKEY *k = NULL;
        if (leaf_for(t, SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name), &t->own_leaf,
                     &k) != 0)
            t->own_leaf = NULL;
    }
    return x ? x : t->own_leaf;
}

void shunt_tls_facts(struct shunt_tls *t, struct shunt_tls_facts *out)
{
    memset(out, 0, sizeof(*out));
    if (!t->facts_made) { /* made again until the handshake is over, then kept */
        t->facts_made = t->done || t->failed;
        t->f_alpn[0] = t->f_version[0] = t->f_cipher[0] = '\0';
        const unsigned char *a = NULL;
        unsigned al = 0;
        SSL_get0_alpn_selected(t->ssl, &a, &al);
        if (a != NULL)
            copy_text(t->f_alpn, sizeof(t->f_alpn), (const char *)a, al);
        const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
        if (c != NULL) {
            snprintf(t->f_cipher, sizeof(t->f_cipher), "%s", SSL_CIPHER_get_name(c));
            snprintf(t->f_version, sizeof(t->f_version), "%s", SSL_get_version(t->ssl));
        }
        X509 *x = facts_cert(t);
        t->f_subject[0] = t->f_issuer[0] = t->f_san[0] = t->f_sha256[0] = '\0';
        if (x != NULL) {
            name_text(X509_get_subject_name(x), t->f_subject, sizeof(t->f_subject));
            name_text(X509_get_issuer_name(x), t->f_issuer, sizeof(t->f_issuer));
            san_text(x, t->f_san, sizeof(t->f_san), 0);
            unsigned char md[32];
            unsigned mdl = 0;
            if (X509_digest(x, EVP_sha256(), md, &mdl) == 1)
                for (unsigned i = 0; i < mdl && i < 32; i++)
                    snprintf(t->f_sha256 + 3 * i, 4, i + 1 < mdl ? "%02x:" : "%02x", md[i]);
        }
        ERR_clear_error();
    }
    X509 *x = facts_cert(t);
    out->side = t->server ? 0 : 1;
    out->sni = t->sni;
    out->alpn = t->f_alpn;
    out->version = t->f_version;
    out->cipher = t->f_cipher;
    out->cert_subject = t->f_subject;
    out->cert_issuer = t->f_issuer;
    out->cert_san = t->f_san;
    out->cert_sha256 = t->f_sha256;
    if (x != NULL) {
        out->cert_not_before = asn1_unix(X509_get0_notBefore(x));
        out->cert_not_after = asn1_unix(X509_get0_notAfter(x));
    }
    uint64_t end = t->t_done_ns;
    if (t->t_start_ns != 0 && end >= t->t_start_ns)
        out->handshake_us = (end - t->t_start_ns) / 1000;
    out->error = t->err[0] != '\0' ? t->err : NULL;
    out->resumed = t->done && SSL_session_reused(t->ssl);
    if (!t->server) {
        out->verify_result = t->verify_err ? t->verify_err : (int)SSL_get_verify_result(t->ssl);
        out->insecure = t->ctx->insecure;
    }
}

int shunt_tls_looks_like_hello(const char *p, size_t n)
{
    /* RFC 8446 5.1: ContentType handshake (22), legacy_record_version 0x03 0x0N. What is
     * already there may rule it out before 3 bytes came. */
    if (n >= 1 && (unsigned char)p[0] != 0x16)
        return 0;
    if (n >= 2 && (unsigned char)p[1] != 0x03)
        return 0;
    if (n < 3)
        return -1;
    return (unsigned char)p[2] <= 0x04;
}

int shunt_tls_looks_like_http(const char *p, size_t n)
{
    /* RFC 9110 9.1: method SP request-target. A method of the registry, or any other upper
     * case token followed by a target of the origin, absolute or asterisk form: "EHLO x"
     * (SMTP) is not HTTP, "PROPFIND /dav/ HTTP/1.1" is. */
    static const char *const known[] = {"GET",     "POST",  "HEAD",    "PUT",   "DELETE",
                                        "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    size_t i = 0;
    while (i < n && i < 16 && p[i] >= 'A' && p[i] <= 'Z')
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return 0;
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
        if (strlen(known[k]) == i && memcmp(p, known[k], i) == 0)
            return 1;
    if (i + 1 >= n)
        return 0;
    char c = p[i + 1];
    return c == '/' || c == '*' ||
           (n - i - 1 >= 4 && strncasecmp(p + i + 1, "http", 4) == 0);
}
