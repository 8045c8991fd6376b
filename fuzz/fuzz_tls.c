/* fuzz/fuzz_tls.c - libFuzzer driver for the server side of the TLS engine: what a client
 * sends into an intercepted tunnel (its ClientHello, then anything).
 *
 * The first byte picks how the rest is fed: 0 whole, else in pieces of 1..(byte & 63) bytes,
 * calling the handshake (and, once it is done, a read) after each piece, and draining what
 * the engine wrote as a connection would. Whatever comes, the engine must not crash, leak,
 * read out of bounds, or say nothing when it fails: an error has words, and the facts it
 * reports are strings. Leaves come from a CA made at start in a temporary folder. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ca.h"
#include "net/tls.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static struct shunt_ca *ca;
static struct shunt_tls_ctx *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static char dir[] = "/tmp/shunt-fuzz-tls.XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    setenv("XDG_DATA_HOME", dir, 1);
    char err[1024];
    if (shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)) != 0 ||
        (ctx = shunt_tls_ctx_server(ca, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    /* the CA's files are read once; the folder is not needed any more */
    char p[sizeof(dir) + 32];
    snprintf(p, sizeof(p), "%s/shunt/ca.pem", dir);
    remove(p);
    snprintf(p, sizeof(p), "%s/shunt/ca-key.pem", dir);
    remove(p);
    snprintf(p, sizeof(p), "%s/shunt/.lock", dir);
    remove(p);
    snprintf(p, sizeof(p), "%s/shunt", dir);
    remove(p);
    remove(dir);
    return 0;
}

static void drain(struct shunt_tls *t)
{
    const char *p;
    size_t n = shunt_tls_pending(t, &p);
    if (n > 0) {
        volatile char touch = p[0] ^ p[n - 1]; /* the bytes must be there */
        (void)touch;
        shunt_tls_drained(t, n);
    }
    CHECK(shunt_tls_pending(t, &p) == 0);
}

static void check_facts(struct shunt_tls *t)
{
    struct shunt_tls_facts f;
    shunt_tls_facts(t, &f);
    CHECK(f.side == 0);
    const char *s[] = {f.sni, f.alpn, f.version, f.cipher, f.cert_subject, f.cert_issuer,
                       f.cert_san, f.cert_sha256};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        CHECK(s[i] != NULL);
        CHECK(strlen(s[i]) < 4096);
    }
    if (f.error != NULL)
        CHECK(f.error[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = data[0] & 63;
    data++, size--;
    struct shunt_tls *t = shunt_tls_new_server(ctx, "fuzz.test");
    CHECK(t != NULL);
    int failed = 0;
    char buf[4096];
    for (size_t off = 0; off < size && !failed;) {
        size_t n = piece == 0 ? size - off : piece < size - off ? piece : size - off;
        char *copy = malloc(n); /* exact size: ASan sees any read past it */
        memcpy(copy, data + off, n);
        CHECK(shunt_tls_feed(t, copy, n) == 0);
        free(copy);
        off += n;
        enum shunt_tls_rc rc = shunt_tls_handshake(t);
        if (rc == SHUNT_TLS_ERROR) {
            failed = 1;
            CHECK(shunt_tls_error(t)[0] != '\0');
        } else if (rc == SHUNT_TLS_OK) {
            CHECK(shunt_tls_done(t));
            ssize_t r;
            while ((r = shunt_tls_read(t, buf, sizeof(buf))) > 0)
                CHECK((size_t)r <= sizeof(buf));
            if (r == SHUNT_TLS_ERROR)
                failed = 1;
        }
        drain(t);
    }
    check_facts(t);
    if (!failed && shunt_tls_done(t)) {
        shunt_tls_close_notify(t);
        drain(t);
    }
    shunt_tls_free(t);
    return 0;
}
