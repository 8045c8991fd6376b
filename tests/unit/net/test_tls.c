/* tests/unit/net/test_tls.c - the TLS engine: a client engine and a server engine handshake
 * in memory through a CA made for the test, and what they say when it fails. The file
 * includes tls.c to build a server engine on a context of its own (a fixed, expired
 * certificate), which no public function makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "net/ca.h"
#include "net/tls.c"

static char dir[] = "/tmp/shunt-test-tls.XXXXXX";
static struct shunt_ca *ca;
static struct shunt_tls_ctx *server_ctx, *client_ctx, *untrusting_ctx;
static char ca_pem[4200];

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    setenv("XDG_DATA_HOME", dir, 1);
    /* the system store must not matter: only the test's CA is trusted, and only when given */
    char empty[4200];
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    fclose(fopen(empty, "w"));
    setenv("SSL_CERT_FILE", empty, 1);
    setenv("SSL_CERT_DIR", dir, 1);
    char err[512] = "";
    if (shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)) != 0) {
        fprintf(stderr, "ca: %s\n", err);
        return -1;
    }
    snprintf(ca_pem, sizeof(ca_pem), "%s/shunt/ca.pem", dir);
    server_ctx = shunt_tls_ctx_server(ca, err, sizeof(err));
    client_ctx = shunt_tls_ctx_client(ca_pem, 0, err, sizeof(err));
    untrusting_ctx = shunt_tls_ctx_client(NULL, 0, err, sizeof(err));
    return server_ctx && client_ctx && untrusting_ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    shunt_tls_ctx_free(server_ctx);
    shunt_tls_ctx_free(client_ctx);
    shunt_tls_ctx_free(untrusting_ctx);
    shunt_ca_free(ca);
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Moves what <from> wrote to <to>. Returns the bytes moved. */
static size_t move(struct shunt_tls *from, struct shunt_tls *to)
{
    const char *p;
    size_t n = shunt_tls_pending(from, &p);
    if (n > 0) {
        assert_int_equal(shunt_tls_feed(to, p, n), 0);
        shunt_tls_drained(from, n);
    }
    return n;
}

/* Runs both handshakes until neither moves. Returns the client's and server's results. */
static void pump(struct shunt_tls *c, struct shunt_tls *s, enum shunt_tls_rc *rc,
                 enum shunt_tls_rc *rs)
{
    *rc = *rs = SHUNT_TLS_WANT;
    for (int i = 0; i < 20; i++) {
        if (*rc == SHUNT_TLS_WANT)
            *rc = shunt_tls_handshake(c);
        size_t m = move(c, s);
        if (*rs == SHUNT_TLS_WANT)
            *rs = shunt_tls_handshake(s);
        m += move(s, c);
        if (m == 0 && (*rc != SHUNT_TLS_WANT || *rs != SHUNT_TLS_WANT) && i > 2)
            break;
    }
    /* a last turn: the client may read the server's final flight (or alert) now */
    if (*rc == SHUNT_TLS_WANT)
        *rc = shunt_tls_handshake(c);
    move(c, s);
    if (*rs == SHUNT_TLS_WANT)
        *rs = shunt_tls_handshake(s);
}

/* Reads what is there into <buf> (NUL-terminated); returns the last read's result. */
static ssize_t read_all(struct shunt_tls *t, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while ((r = shunt_tls_read(t, buf + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    return got > 0 ? (ssize_t)got : r;
}

static void test_handshake_with_alpn_http11(void **state)
{
    (void)state;
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "a.test", NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "fallback.test");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_OK);
    assert_int_equal(rs, SHUNT_TLS_OK);
    assert_true(shunt_tls_done(c) && shunt_tls_done(s));
    assert_string_equal(shunt_tls_error(c), "");
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_int_equal(f.side, 0);
    assert_string_equal(f.sni, "a.test");
    assert_string_equal(f.alpn, "http/1.1");
    assert_string_equal(f.version, "TLSv1.3");
    assert_string_equal(f.cert_san, "DNS:a.test");
    assert_null(f.error);
    shunt_tls_facts(c, &f);
    assert_int_equal(f.side, 1);
    assert_string_equal(f.sni, "a.test");
    assert_string_equal(f.alpn, "http/1.1");
    assert_string_equal(f.cert_san, "DNS:a.test");
    assert_string_equal(f.cert_subject, "CN=a.test,O=shunt");
    assert_non_null(strstr(f.cert_issuer, "CN=shunt CA ("));
    assert_int_equal(strlen(f.cert_sha256), 95);
    assert_true(f.cert_not_after - f.cert_not_before == 30 * 86400 + 3600);
    assert_int_equal(f.verify_result, 0);
    assert_int_equal(f.insecure, 0);
    assert_null(f.error);

    /* application data both ways */
    assert_int_equal(shunt_tls_write(c, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    move(c, s);
    char buf[256];
    assert_int_equal(read_all(s, buf, sizeof(buf)), 18);
    assert_string_equal(buf, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(shunt_tls_write(s, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
    move(s, c);
    assert_int_equal(read_all(c, buf, sizeof(buf)), 19);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\n\r\n");
    shunt_tls_free(c);
    shunt_tls_free(s);
}

/* A client that offers no ALPN gets none; one that offers only h2 too (http/1.1 only). */
static void test_no_alpn_when_not_offered(void **state)
{
    (void)state;
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "a.test", NULL);
    SSL_set_alpn_protos(c->ssl, (const unsigned char *)"\x02h2", 3);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, NULL);
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rs, SHUNT_TLS_OK);
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_string_equal(f.alpn, "");
    shunt_tls_free(c);
    shunt_tls_free(s);
}

/* The client does not trust shunt's CA: the server side says the client rejected it. */
static void test_client_rejects_the_certificate(void **state)
{
    (void)state;
    struct shunt_tls *c = shunt_tls_new_client(untrusting_ctx, "a.test", NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "a.test");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_int_equal(rs, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(s),
                        "the client rejected shunt's certificate (alert 48: unknown ca)");
    assert_string_equal(shunt_tls_error(c),
                        "certificate verify failed: unable to get local issuer certificate");
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_string_equal(f.error, shunt_tls_error(s));
    assert_string_equal(f.sni, "a.test");
    shunt_tls_facts(c, &f);
    assert_int_equal(f.verify_result, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_string_equal(f.cert_san, "DNS:a.test"); /* the refused certificate, described */
    shunt_tls_free(c);
    shunt_tls_free(s);
}

/* --insecure-upstream: the same certificate is accepted, the result still recorded. */
static void test_insecure_accepts_and_records(void **state)
{
    (void)state;
    char err[256];
    struct shunt_tls_ctx *insecure = shunt_tls_ctx_client(NULL, 1, err, sizeof(err));
    struct shunt_tls *c = shunt_tls_new_client(insecure, "a.test", NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, NULL);
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_OK);
    assert_int_equal(rs, SHUNT_TLS_OK);
    struct shunt_tls_facts f;
    shunt_tls_facts(c, &f);
    assert_int_equal(f.insecure, 1);
    assert_int_equal(f.verify_result, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_null(f.error);
    shunt_tls_free(c);
    shunt_tls_free(s);
    shunt_tls_ctx_free(insecure);
}

/* The name verified is the one the client was promised: its SNI (shunt showed it a leaf for
 * that name) when there is one, not the CONNECT host. An origin whose certificate names
 * a.test, reached at a.test's address with the client's SNI b.test, fails naming b.test. */
static void test_wrong_name(void **state)
{
    (void)state;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    assert_int_equal(shunt_ca_leaf(ca, "a.test", &x, &k), 0);
    struct shunt_tls_ctx raw = {.server = 1};
    raw.ssl = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_cert_and_key(raw.ssl, x, k, NULL, 1), 1);
    struct shunt_tls *s = engine_new(&raw);
    SSL_set_accept_state(s->ssl);
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "a.test", "b.test");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(c),
                        "hostname mismatch: the certificate names a.test, not b.test");
    struct shunt_tls_facts f;
    shunt_tls_facts(c, &f);
    assert_int_equal(f.verify_result, X509_V_ERR_HOSTNAME_MISMATCH);
    assert_string_equal(f.sni, "b.test");
    shunt_tls_free(c);
    shunt_tls_free(s);

    /* the same origin with the SNI it has a certificate for passes, whatever the host */
    s = engine_new(&raw);
    SSL_set_accept_state(s->ssl);
    c = shunt_tls_new_client(client_ctx, "127.0.0.1", "a.test");
    pump(c, s, &rc, &rs);
    assert_string_equal(shunt_tls_error(c), "");
    assert_int_equal(rc, SHUNT_TLS_OK);
    shunt_tls_free(c);
    shunt_tls_free(s);

    /* no SNI (NULL): the host is checked */
    s = engine_new(&raw);
    SSL_set_accept_state(s->ssl);
    c = shunt_tls_new_client(client_ctx, "b.test", NULL);
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(c),
                        "hostname mismatch: the certificate names a.test, not b.test");
    shunt_tls_free(c);
    shunt_tls_free(s);
    SSL_CTX_free(raw.ssl);
    X509_free(x);
}

/* An IP literal: no SNI (RFC 6066), the leaf carries an IP SAN, the client checks it. */
static void test_ip_san(void **state)
{
    (void)state;
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "127.0.0.1", NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "127.0.0.1");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_string_equal(shunt_tls_error(c), "");
    assert_int_equal(rc, SHUNT_TLS_OK);
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_string_equal(f.sni, "");
    assert_string_equal(f.cert_san, "IP:127.0.0.1");
    shunt_tls_free(c);
    shunt_tls_free(s);

    /* the same leaf checked for another address fails, naming both */
    c = shunt_tls_new_client(client_ctx, "127.0.0.2", NULL);
    s = shunt_tls_new_server(server_ctx, "127.0.0.1");
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(c),
                        "hostname mismatch: the certificate names 127.0.0.1, not 127.0.0.2");
    shunt_tls_free(c);
    shunt_tls_free(s);
}

static int add_ext_for_test(X509 *x, X509V3_CTX *v3)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, NID_subject_alt_name, "DNS:old.test");
    if (e == NULL)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

/* A leaf signed by the test CA that expired yesterday, served by a context of its own. */
static void test_expired_leaf(void **state)
{
    (void)state;
    char key_path[4200];
    snprintf(key_path, sizeof(key_path), "%s/shunt/ca-key.pem", dir);
    FILE *f = fopen(key_path, "r");
    EVP_PKEY *cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(ca_pem, "r");
    X509 *cacert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"old.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(cacert));
    X509_gmtime_adj(X509_getm_notBefore(x), -10 * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), -86400);
    X509_set_pubkey(x, k);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, cacert, x, NULL, NULL, 0);
    assert_int_equal(add_ext_for_test(x, &v3), 0);
    assert_true(X509_sign(x, cakey, EVP_sha256()) > 0);

    struct shunt_tls_ctx raw = {.server = 1};
    raw.ssl = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(raw.ssl, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(raw.ssl, k), 1);
    struct shunt_tls *s = engine_new(&raw);
    SSL_set_accept_state(s->ssl);
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "old.test", NULL);
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(c), "certificate verify failed: certificate has expired");
    struct shunt_tls_facts fa;
    shunt_tls_facts(c, &fa);
    assert_int_equal(fa.verify_result, X509_V_ERR_CERT_HAS_EXPIRED);
    assert_true(fa.cert_not_after < (int64_t)time(NULL));
    assert_string_equal(fa.cert_subject, "CN=old.test");
    /* and the server hears why: the client's alert */
    assert_int_equal(rs, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(s),
                        "the client rejected shunt's certificate (alert 45: certificate expired)");
    shunt_tls_free(c);
    shunt_tls_free(s);
    SSL_CTX_free(raw.ssl);
    X509_free(x);
    X509_free(cacert);
    EVP_PKEY_free(k);
    EVP_PKEY_free(cakey);
}

static void handshake_ok(struct shunt_tls **c, struct shunt_tls **s)
{
    *c = shunt_tls_new_client(client_ctx, "a.test", NULL);
    *s = shunt_tls_new_server(server_ctx, NULL);
    enum shunt_tls_rc rc, rs;
    pump(*c, *s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_OK);
    assert_int_equal(rs, SHUNT_TLS_OK);
    move(*s, *c); /* session tickets */
    char buf[64];
    assert_int_equal(shunt_tls_read(*c, buf, sizeof(buf)), -SHUNT_TLS_WANT);
}

static void test_close_notify_both_ways(void **state)
{
    (void)state;
    struct shunt_tls *c, *s;
    handshake_ok(&c, &s);
    char buf[64];
    /* client first */
    assert_int_equal(shunt_tls_write(c, "bye", 3), 0);
    shunt_tls_close_notify(c);
    assert_true(shunt_tls_we_closed(c));
    shunt_tls_close_notify(c); /* once */
    move(c, s);
    assert_int_equal(shunt_tls_read(s, buf, sizeof(buf)), 3);
    assert_false(shunt_tls_peer_closed(s));
    assert_int_equal(shunt_tls_read(s, buf, sizeof(buf)), -SHUNT_TLS_CLOSED);
    assert_true(shunt_tls_peer_closed(s));
    assert_int_equal(shunt_tls_read(s, buf, sizeof(buf)), -SHUNT_TLS_CLOSED);
    /* then the server answers with its own */
    shunt_tls_close_notify(s);
    assert_true(move(s, c) > 0);
    assert_int_equal(shunt_tls_read(c, buf, sizeof(buf)), -SHUNT_TLS_CLOSED);
    assert_true(shunt_tls_peer_closed(c));
    assert_int_equal(shunt_tls_write(c, "x", 1), SHUNT_TLS_ERROR);
    shunt_tls_free(c);
    shunt_tls_free(s);

    /* server first */
    handshake_ok(&c, &s);
    shunt_tls_close_notify(s);
    move(s, c);
    assert_int_equal(shunt_tls_read(c, buf, sizeof(buf)), -SHUNT_TLS_CLOSED);
    assert_true(shunt_tls_peer_closed(c));
    assert_false(shunt_tls_peer_closed(s));
    shunt_tls_free(c);
    shunt_tls_free(s);
}

/* Data then nothing: the engine still waits (no close_notify came), which is what lets the
 * connection call a TCP close at that point a truncation. A record cut in half is too. */
static void test_truncation_is_not_a_close(void **state)
{
    (void)state;
    struct shunt_tls *c, *s;
    handshake_ok(&c, &s);
    char buf[64];
    assert_int_equal(shunt_tls_write(c, "partial", 7), 0);
    const char *p;
    size_t n = shunt_tls_pending(c, &p);
    assert_true(n > 10);
    assert_int_equal(shunt_tls_feed(s, p, n - 5), 0); /* the record's tail never comes */
    shunt_tls_drained(c, n);
    assert_int_equal(shunt_tls_read(s, buf, sizeof(buf)), -SHUNT_TLS_WANT);
    assert_false(shunt_tls_peer_closed(s));
    assert_string_equal(shunt_tls_error(s), "");
    shunt_tls_free(c);
    shunt_tls_free(s);
}

/* A second connection to the same upstream name resumes the first's session (what browsers
 * do; the upstream's certificate is neither parsed nor verified again), still with facts;
 * another name does not. */
static void test_upstream_session_resumed(void **state)
{
    (void)state;
    char err[256];
    struct shunt_tls_ctx *cc = shunt_tls_ctx_client(ca_pem, 0, err, sizeof(err));
    for (int i = 0; i < 3; i++) {
        const char *host = i < 2 ? "r.test" : "other.test";
        struct shunt_tls *c = shunt_tls_new_client(cc, host, NULL);
        struct shunt_tls *s = shunt_tls_new_server(server_ctx, NULL);
        enum shunt_tls_rc rc, rs;
        pump(c, s, &rc, &rs);
        assert_int_equal(rc, SHUNT_TLS_OK);
        move(s, c); /* the ticket (TLS 1.3 sends it after the handshake) */
        char buf[16];
        assert_int_equal(shunt_tls_read(c, buf, sizeof(buf)), -SHUNT_TLS_WANT);
        assert_int_equal(SSL_session_reused(c->ssl), i == 1);
        struct shunt_tls_facts f;
        shunt_tls_facts(c, &f);
        assert_int_equal(f.verify_result, 0);
        assert_string_equal(f.cert_san, i < 2 ? "DNS:r.test" : "DNS:other.test");
        assert_int_equal(strlen(f.cert_sha256), 95);
        shunt_tls_free(c);
        shunt_tls_free(s);
    }
    shunt_tls_ctx_free(cc);
}

/* A client resuming its session (a TLS 1.3 ticket, as curl and browsers reuse) skips the
 * certificate callback: the server's facts still carry the SNI, the leaf and that it was a
 * resumption. */
static void test_client_resumption_keeps_the_facts(void **state)
{
    (void)state;
    char err[256];
    struct shunt_tls_ctx *cc = shunt_tls_ctx_client(ca_pem, 0, err, sizeof(err));
    for (int i = 0; i < 2; i++) {
        struct shunt_tls *c = shunt_tls_new_client(cc, "resume.test", NULL);
        struct shunt_tls *s = shunt_tls_new_server(server_ctx, "fallback.test");
        enum shunt_tls_rc rc, rs;
        pump(c, s, &rc, &rs);
        assert_int_equal(rc, SHUNT_TLS_OK);
        assert_int_equal(rs, SHUNT_TLS_OK);
        move(s, c); /* the ticket */
        char buf[16];
        assert_int_equal(shunt_tls_read(c, buf, sizeof(buf)), -SHUNT_TLS_WANT);
        assert_int_equal(SSL_session_reused(s->ssl), i == 1);
        struct shunt_tls_facts f;
        shunt_tls_facts(s, &f);
        assert_string_equal(f.sni, "resume.test");
        assert_string_equal(f.cert_san, "DNS:resume.test");
        assert_int_equal(strlen(f.cert_sha256), 95);
        assert_true(f.cert_not_after > (int64_t)time(NULL));
        assert_int_equal(f.resumed, i == 1);
        shunt_tls_facts(c, &f);
        assert_int_equal(f.resumed, i == 1);
        shunt_tls_free(c);
        shunt_tls_free(s);
    }
    shunt_tls_ctx_free(cc);
}

/* The longest valid name (253 characters) is recorded whole and the leaf is made for it;
 * bytes outside printable ASCII (C0, DEL, and every byte >= 0x80: SNI is ASCII, RFC 6066 3)
 * are escaped. */
static void test_long_and_odd_sni(void **state)
{
    (void)state;
    char name[254];
    memset(name, 'a', 253);
    name[253] = '\0';
    for (int i = 63; i < 253; i += 64)
        name[i] = '.'; /* labels of 63 */
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, name, NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "fallback.test");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_string_equal(shunt_tls_error(c), "");
    assert_int_equal(rc, SHUNT_TLS_OK);
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_string_equal(f.sni, name);
    shunt_tls_facts(c, &f);
    assert_string_equal(f.sni, name);
    shunt_tls_free(c);
    shunt_tls_free(s);

    c = shunt_tls_new_client(client_ctx, "a.test", "caf\xc3\xa9\xc2\x85\x7f.test");
    s = shunt_tls_new_server(server_ctx, "a.test");
    pump(c, s, &rc, &rs);
    shunt_tls_facts(s, &f);
    assert_string_equal(f.sni, "caf\\xc3\\xa9\\xc2\\x85\\x7f.test");
    shunt_tls_free(c);
    shunt_tls_free(s);

    /* the escapes fit: 255 bytes that all need one */
    char raw[255], out[sizeof(((struct shunt_tls *)0)->sni)];
    memset(raw, 0x9b, sizeof(raw));
    copy_text(out, sizeof(out), raw, sizeof(raw));
    assert_int_equal(strlen(out), 4 * 255);
    /* and a buffer too small stops at a whole character, never half an escape */
    char small[6];
    copy_text(small, sizeof(small), "ab\x01", 3);
    assert_string_equal(small, "ab");
    copy_text(small, sizeof(small), "abcdefgh", 8);
    assert_string_equal(small, "abcde");
}

/* Without verification, a failure after an unverifiable certificate is told as what it was,
 * not as "certificate verify failed": here the server's flight arrives damaged after its
 * Certificate (TLS 1.3 sends each message in a record of its own: the last is Finished). */
static void test_insecure_failure_is_the_real_one(void **state)
{
    (void)state;
    char err[256];
    struct shunt_tls_ctx *insecure = shunt_tls_ctx_client(NULL, 1, err, sizeof(err));
    struct shunt_tls *c = shunt_tls_new_client(insecure, "a.test", NULL);
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, NULL);
    assert_int_equal(shunt_tls_handshake(c), SHUNT_TLS_WANT);
    move(c, s);
    assert_int_equal(shunt_tls_handshake(s), SHUNT_TLS_WANT);
    const char *p;
    size_t n = shunt_tls_pending(s, &p);
    assert_true(n > 100);
    char *copy = malloc(n);
    memcpy(copy, p, n);
    copy[n - 1] ^= 0x55; /* the Finished record's tag */
    shunt_tls_drained(s, n);
    assert_int_equal(shunt_tls_feed(c, copy, n), 0);
    free(copy);
    assert_int_equal(shunt_tls_handshake(c), SHUNT_TLS_ERROR);
    assert_int_not_equal(c->verify_err, 0); /* the certificate was not trusted, and let go */
    assert_null(strstr(shunt_tls_error(c), "certificate verify failed"));
    assert_string_equal(shunt_tls_error(c), "handshake failed: decryption failed or bad record mac");
    shunt_tls_free(c);
    shunt_tls_free(s);
    shunt_tls_ctx_free(insecure);
}

/* A client speaking plain HTTP into an intercepted tunnel. */
static void test_plain_http_is_named(void **state)
{
    (void)state;
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "a.test");
    const char req[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_int_equal(shunt_tls_feed(s, req, sizeof(req) - 1), 0);
    assert_int_equal(shunt_tls_handshake(s), SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(s), "not TLS: the client sent plain HTTP into the tunnel");
    shunt_tls_free(s);
}

/* What is not a TLS handshake is called plain HTTP only when it begins like a request line:
 * SMTP's "EHLO x" is not. */
static void test_not_tls_words(void **state)
{
    (void)state;
    static const struct {
        const char *first;
        int http;
    } cases[] = {
        {"EHLO x\r\n", 0},
        {"SSH-2.0-OpenSSH_9.2\r\n", 0},
        {"HELLO world", 0},
        {"get / HTTP/1.1\r\n", 0},
        {"POST /x HTTP/1.1\r\n", 1},
        {"CONNECT a.test:443 HTTP/1.1\r\n", 1},
        {"OPTIONS * HTTP/1.1\r\n", 1},
        {"PROPFIND /dav/ HTTP/1.1\r\n", 1},
        {"PURGE http://a.test/ HTTP/1.1\r\n", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shunt_tls *s = shunt_tls_new_server(server_ctx, "a.test");
        assert_int_equal(shunt_tls_feed(s, cases[i].first, strlen(cases[i].first)), 0);
        assert_int_equal(shunt_tls_handshake(s), SHUNT_TLS_ERROR);
        const char *want = cases[i].http
                               ? "not TLS: the client sent plain HTTP into the tunnel"
                               : "not TLS: the client's first bytes are not a TLS handshake";
        if (strcmp(shunt_tls_error(s), want) != 0)
            fail_msg("%s: %s", cases[i].first, shunt_tls_error(s));
        shunt_tls_free(s);
    }
}

/* A client sending a name no certificate can carry gets the fallback's (and a client that
 * checks the name it sent refuses it: shunt, as a client, would not vouch for it either). */
static void test_bad_sni_uses_the_fallback(void **state)
{
    (void)state;
    struct shunt_tls *c = shunt_tls_new_client(client_ctx, "a.test", "a,b.test");
    struct shunt_tls *s = shunt_tls_new_server(server_ctx, "a.test");
    enum shunt_tls_rc rc, rs;
    pump(c, s, &rc, &rs);
    assert_int_equal(rc, SHUNT_TLS_ERROR);
    assert_string_equal(shunt_tls_error(c),
                        "hostname mismatch: the certificate names a.test, not a,b.test");
    struct shunt_tls_facts f;
    shunt_tls_facts(s, &f);
    assert_string_equal(f.sni, "a,b.test");
    assert_string_equal(f.cert_san, "DNS:a.test");
    shunt_tls_free(c);
    shunt_tls_free(s);
}

static void test_looks_like_hello(void **state)
{
    (void)state;
    assert_int_equal(shunt_tls_looks_like_hello("\x16\x03\x01\x02\x00", 5), 1);
    assert_int_equal(shunt_tls_looks_like_hello("\x16\x03\x03", 3), 1);
    assert_int_equal(shunt_tls_looks_like_hello("\x16\x03", 2), -1);
    assert_int_equal(shunt_tls_looks_like_hello("\x16", 1), -1);
    assert_int_equal(shunt_tls_looks_like_hello("", 0), -1);
    assert_int_equal(shunt_tls_looks_like_hello("GET / HTTP/1.1\r\n", 16), 0);
    assert_int_equal(shunt_tls_looks_like_hello("G", 1), 0);
    assert_int_equal(shunt_tls_looks_like_hello("\x16\x02\x00", 3), 0);
    assert_int_equal(shunt_tls_looks_like_hello("\x16\x03\x07", 3), 0);
    assert_int_equal(shunt_tls_looks_like_hello("\x17\x03\x03", 3), 0); /* application data */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_with_alpn_http11),
        cmocka_unit_test(test_no_alpn_when_not_offered),
        cmocka_unit_test(test_client_rejects_the_certificate),
        cmocka_unit_test(test_insecure_accepts_and_records),
        cmocka_unit_test(test_insecure_failure_is_the_real_one),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_ip_san),
        cmocka_unit_test(test_expired_leaf),
        cmocka_unit_test(test_close_notify_both_ways),
        cmocka_unit_test(test_truncation_is_not_a_close),
        cmocka_unit_test(test_upstream_session_resumed),
        cmocka_unit_test(test_client_resumption_keeps_the_facts),
        cmocka_unit_test(test_plain_http_is_named),
        cmocka_unit_test(test_not_tls_words),
        cmocka_unit_test(test_bad_sni_uses_the_fallback),
        cmocka_unit_test(test_looks_like_hello),
        cmocka_unit_test(test_long_and_odd_sni),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
