/* tests/unit/net/test_ca.c - shunt's CA: made on first use with the right modes, loaded
 * again, or given (EC or RSA); leaves for names and addresses; the cache's counters; and the
 * cost of a miss, printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/ca.h"

static char dir[] = "/tmp/shunt-test-ca.XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", dir, rel);
}

static int mode_of(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (int)(st.st_mode & 0777);
}

static void test_made_on_first_use_with_modes(void **state)
{
    (void)state;
    char xdg[4200], p[4300];
    path(xdg, sizeof(xdg), "first/data"); /* neither folder exists yet */
    setenv("XDG_DATA_HOME", xdg, 1);
    umask(0); /* the modes must not depend on the umask */
    struct shunt_ca *ca = NULL;
    char err[512] = "";
    assert_int_equal(shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)), 0);
    umask(022);
    struct shunt_ca_info info;
    shunt_ca_info(ca, &info);
    assert_int_equal(info.made, 1);
    assert_int_equal(info.given, 0);
    snprintf(p, sizeof(p), "%s/shunt/ca.pem", xdg);
    assert_string_equal(info.cert_path, p);
    assert_int_equal(mode_of(p), 0644);
    snprintf(p, sizeof(p), "%s/shunt/ca-key.pem", xdg);
    assert_string_equal(info.key_path, p);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/shunt", xdg);
    assert_int_equal(mode_of(p), 0700);
    assert_string_equal(info.key_type, "EC P-256");
    char host[256] = "", want[300];
    gethostname(host, sizeof(host) - 1);
    snprintf(want, sizeof(want), "CN=shunt CA (%.50s),O=shunt", host);
    assert_string_equal(info.subject, want);
    assert_true(info.not_after - info.not_before >= 3650L * 86400);
    assert_true(info.not_before <= (int64_t)time(NULL));
    assert_int_equal(strlen(info.sha256), 95);

    /* the CA's extensions: CA:TRUE critical, keyCertSign|cRLSign, a key identifier */
    FILE *f = fopen(info.cert_path, "r");
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(x));
    X509_free(x);

    /* opened again: the same CA, not made */
    char sha[96];
    snprintf(sha, sizeof(sha), "%s", info.sha256);
    shunt_ca_free(ca);
    assert_int_equal(shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)), 0);
    shunt_ca_info(ca, &info);
    assert_int_equal(info.made, 0);
    assert_string_equal(info.sha256, sha);
    shunt_ca_free(ca);
}

/* No XDG_DATA_HOME (or a relative one, which the XDG spec says to ignore): ~/.local/share. */
static void test_default_dir_from_home(void **state)
{
    (void)state;
    char home[4200], want[4300], got[4300];
    path(home, sizeof(home), "home");
    setenv("HOME", home, 1);
    unsetenv("XDG_DATA_HOME");
    snprintf(want, sizeof(want), "%s/.local/share/shunt", home);
    assert_int_equal(shunt_ca_default_dir(got, sizeof(got)), 0);
    assert_string_equal(got, want);
    setenv("XDG_DATA_HOME", "relative/data", 1);
    assert_int_equal(shunt_ca_default_dir(got, sizeof(got)), 0);
    assert_string_equal(got, want);
    setenv("XDG_DATA_HOME", "/x/data", 1);
    assert_int_equal(shunt_ca_default_dir(got, sizeof(got)), 0);
    assert_string_equal(got, "/x/data/shunt");
}

/* A half CA (the key gone) is not silently replaced: clients trust the old certificate. */
static void test_half_a_ca_is_an_error(void **state)
{
    (void)state;
    char xdg[4200], p[4300];
    path(xdg, sizeof(xdg), "half");
    setenv("XDG_DATA_HOME", xdg, 1);
    struct shunt_ca *ca = NULL;
    char err[1024] = "";
    assert_int_equal(shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)), 0);
    shunt_ca_free(ca);
    snprintf(p, sizeof(p), "%s/shunt/ca-key.pem", xdg);
    assert_int_equal(unlink(p), 0);
    assert_int_not_equal(shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)), 0);
    assert_null(ca);
    assert_non_null(strstr(err, "ca.pem exists but"));
    assert_non_null(strstr(err, "ca-key.pem does not"));
}

static X509 *read_pem_cert(const char *p)
{
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static struct shunt_ca *open_in(const char *rel)
{
    char xdg[4200];
    path(xdg, sizeof(xdg), rel);
    setenv("XDG_DATA_HOME", xdg, 1);
    struct shunt_ca *ca = NULL;
    char err[512] = "";
    assert_int_equal(shunt_ca_open(NULL, NULL, &ca, err, sizeof(err)), 0);
    return ca;
}

/* Checks <leaf> was signed by <ca_cert> and carries <san> and serverAuth. */
static void check_leaf(X509 *leaf, X509 *ca_cert, const char *san_type, const char *san)
{
    EVP_PKEY *pub = X509_get0_pubkey(ca_cert);
    assert_int_equal(X509_verify(leaf, pub), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca_cert)), 0);
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
    if (strcmp(san_type, "DNS") == 0) {
        assert_int_equal(g->type, GEN_DNS);
        assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), san);
    } else {
        assert_int_equal(g->type, GEN_IPADD);
        X509_VERIFY_PARAM *vp = X509_VERIFY_PARAM_new();
        assert_int_equal(X509_check_ip_asc(leaf, san, 0), 1);
        X509_VERIFY_PARAM_free(vp);
    }
    GENERAL_NAMES_free(gens);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_non_null(X509_get0_authority_key_id(leaf));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                           X509_get0_subject_key_id(ca_cert)),
                     0);
    /* from an hour ago to 30 days ahead */
    time_t now = time(NULL);
    assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &now) < 0);
    time_t hour_ago = now - 3500;
    assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &hour_ago) < 0);
    time_t in29 = now + 29 * 86400, in31 = now + 31 * 86400;
    assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &in29) > 0);
    assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &in31) < 0);
}

static void test_leaf_for_a_name_and_an_ip(void **state)
{
    (void)state;
    struct shunt_ca *ca = open_in("leaves");
    struct shunt_ca_info info;
    shunt_ca_info(ca, &info);
    X509 *ca_cert = read_pem_cert(info.cert_path);
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    assert_int_equal(shunt_ca_leaf(ca, "WWW.Example.com", &leaf, &key), 0);
    check_leaf(leaf, ca_cert, "DNS", "www.example.com");
    assert_int_equal(X509_check_private_key(leaf, key), 1);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    X509_free(leaf);
    assert_int_equal(shunt_ca_leaf(ca, "127.0.0.1", &leaf, &key), 0);
    check_leaf(leaf, ca_cert, "IP", "127.0.0.1");
    X509_free(leaf);
    assert_int_equal(shunt_ca_leaf(ca, "::1", &leaf, &key), 0);
    check_leaf(leaf, ca_cert, "IP", "::1");
    X509_free(leaf);
    /* a name longer than a CN may be (64) still gets a leaf: SAN only */
    char longname[200];
    memset(longname, 'a', 150);
    memcpy(longname + 150, ".test", 6);
    assert_int_equal(shunt_ca_leaf(ca, longname, &leaf, &key), 0);
    check_leaf(leaf, ca_cert, "DNS", longname);
    X509_free(leaf);
    /* names no certificate can carry */
    const char *bad[] = {"", "a b.test", "a,b.test", "a/b", "*.test", ".test", "a..test",
                         "a\nb", "IP:1.2.3.4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(shunt_ca_leaf(ca, bad[i], &leaf, &key), SHUNT_EINVAL);
    char toolong[300];
    memset(toolong, 'a', 260);
    toolong[260] = '\0';
    assert_int_equal(shunt_ca_leaf(ca, toolong, &leaf, &key), SHUNT_EINVAL);
    X509_free(ca_cert);
    shunt_ca_free(ca);
}

static void test_cache_counts_hits_and_misses(void **state)
{
    (void)state;
    struct shunt_ca *ca = open_in("cache");
    X509 *a = NULL, *a2 = NULL, *b = NULL;
    EVP_PKEY *key = NULL;
    struct shunt_ca_stats st;
    shunt_ca_stats(ca, &st);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 0);
    assert_int_equal(shunt_ca_leaf(ca, "a.test", &a, &key), 0);
    assert_int_equal(shunt_ca_leaf(ca, "A.TEST", &a2, &key), 0); /* the same name */
    assert_ptr_equal(a, a2);
    assert_int_equal(shunt_ca_leaf(ca, "b.test", &b, &key), 0);
    assert_ptr_not_equal(a, b);
    shunt_ca_stats(ca, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.cached, 2);
    assert_true(st.miss_ns_total > 0 && st.miss_ns_max > 0);
    X509_free(a);
    X509_free(a2);
    X509_free(b);

    /* 1024 more names: a.test, least recently used, is dropped; b.test was used since */
    assert_int_equal(shunt_ca_leaf(ca, "b.test", &b, &key), 0);
    X509_free(b);
    uint64_t t0 = st.miss_ns_total;
    for (int i = 0; i < SHUNT_CA_CACHE_MAX - 1; i++) {
        char n[64];
        snprintf(n, sizeof(n), "host%d.test", i);
        X509 *x = NULL;
        assert_int_equal(shunt_ca_leaf(ca, n, &x, &key), 0);
        X509_free(x);
    }
    shunt_ca_stats(ca, &st);
    assert_int_equal(st.cached, SHUNT_CA_CACHE_MAX);
    uint64_t made = st.misses - 2;
    printf("leaf miss cost: %.3f ms on average over %llu leaves (slowest %.3f ms)\n",
           (double)(st.miss_ns_total - t0) / (double)made / 1e6, (unsigned long long)made,
           (double)st.miss_ns_max / 1e6);
    uint64_t misses = st.misses, hits = st.hits;
    assert_int_equal(shunt_ca_leaf(ca, "b.test", &b, &key), 0); /* still there */
    X509_free(b);
    assert_int_equal(shunt_ca_leaf(ca, "a.test", &a, &key), 0); /* made again */
    X509_free(a);
    shunt_ca_stats(ca, &st);
    assert_int_equal(st.hits, hits + 1);
    assert_int_equal(st.misses, misses + 1);
    assert_int_equal(st.cached, SHUNT_CA_CACHE_MAX);
    shunt_ca_free(ca);
}

/* Writes a self-signed CA (or, with <ca> 0, a plain certificate) for <key> to <p>. */
static void write_cert(const char *p, EVP_PKEY *key, int ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 99);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)(ca ? "Test RSA CA" : "not a ca"), -1, -1,
                               0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 365);
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                            ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(p, "w");
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
}

static void write_key(const char *p, EVP_PKEY *key)
{
    FILE *f = fopen(p, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void test_given_rsa_ca(void **state)
{
    (void)state;
    char cp[4300], kp[4300], other_kp[4300], leaf_cp[4300];
    path(cp, sizeof(cp), "rsa-ca.pem");
    path(kp, sizeof(kp), "rsa-ca-key.pem");
    path(other_kp, sizeof(other_kp), "other-key.pem");
    path(leaf_cp, sizeof(leaf_cp), "not-a-ca.pem");
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    EVP_PKEY *other = EVP_EC_gen("P-256");
    write_cert(cp, rsa, 1);
    write_key(kp, rsa);
    write_key(other_kp, other);
    write_cert(leaf_cp, other, 0);

    struct shunt_ca *ca = NULL;
    char err[1024] = "";
    assert_int_equal(shunt_ca_open(cp, kp, &ca, err, sizeof(err)), 0);
    struct shunt_ca_info info;
    shunt_ca_info(ca, &info);
    assert_int_equal(info.given, 1);
    assert_int_equal(info.made, 0);
    assert_string_equal(info.cert_path, cp);
    assert_string_equal(info.key_type, "RSA 2048");
    assert_string_equal(info.subject, "CN=Test RSA CA");
    X509 *ca_cert = read_pem_cert(cp);
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    assert_int_equal(shunt_ca_leaf(ca, "rsa.test", &leaf, &key), 0);
    check_leaf(leaf, ca_cert, "DNS", "rsa.test");
    X509_free(leaf);
    X509_free(ca_cert);
    shunt_ca_free(ca);

    /* the key of another certificate */
    assert_int_equal(shunt_ca_open(cp, other_kp, &ca, err, sizeof(err)), SHUNT_EINVAL);
    assert_null(ca);
    char want[9000];
    snprintf(want, sizeof(want), "the key in %s does not match the certificate in %s", other_kp,
             cp);
    assert_string_equal(err, want);
    /* a server's certificate is no CA */
    assert_int_equal(shunt_ca_open(leaf_cp, other_kp, &ca, err, sizeof(err)), SHUNT_EINVAL);
    assert_non_null(strstr(err, "is not a CA certificate"));
    /* unreadable, not PEM, half given */
    char missing[4300];
    path(missing, sizeof(missing), "missing.pem");
    assert_int_not_equal(shunt_ca_open(missing, kp, &ca, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s: No such file or directory", missing);
    assert_string_equal(err, want);
    assert_int_equal(shunt_ca_open(kp, kp, &ca, err, sizeof(err)), SHUNT_EPARSE);
    assert_non_null(strstr(err, "not a PEM certificate"));
    assert_int_equal(shunt_ca_open(cp, cp, &ca, err, sizeof(err)), SHUNT_EPARSE);
    assert_non_null(strstr(err, "not a PEM private key"));
    assert_int_equal(shunt_ca_open(cp, NULL, &ca, err, sizeof(err)), SHUNT_EINVAL);
    assert_string_equal(err, "give both --ca-cert and --ca-key, or neither");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(other);
}

/* A given CA without a Subject Key Identifier (v3 without it, or v1 with no extensions at
 * all) signs leaves with no Authority Key Identifier, and they verify up to it. */
static void test_given_ca_without_ski(void **state)
{
    (void)state;
    static const char *const kinds[] = {"noski", "v1"};
    for (int i = 0; i < 2; i++) {
        char cp[4300], kp[4300], csr[4300], cmd[30000];
        char rel[64];
        snprintf(rel, sizeof(rel), "%s-ca.pem", kinds[i]);
        path(cp, sizeof(cp), rel);
        snprintf(rel, sizeof(rel), "%s-ca-key.pem", kinds[i]);
        path(kp, sizeof(kp), rel);
        snprintf(rel, sizeof(rel), "%s.csr", kinds[i]);
        path(csr, sizeof(csr), rel);
        if (i == 0)
            snprintf(cmd, sizeof(cmd),
                     "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                     "-keyout '%s' -out '%s' -days 30 -subj '/CN=No SKI CA' "
                     "-addext basicConstraints=critical,CA:TRUE "
                     "-addext subjectKeyIdentifier=none -addext authorityKeyIdentifier=none "
                     ">/dev/null 2>&1",
                     kp, cp);
        else
            snprintf(cmd, sizeof(cmd),
                     "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                     "-keyout '%s' -subj '/CN=V1 CA' -out '%s' >/dev/null 2>&1 && "
                     "openssl x509 -req -in '%s' -signkey '%s' -days 30 -out '%s' "
                     ">/dev/null 2>&1",
                     kp, csr, csr, kp, cp);
        assert_int_equal(system(cmd), 0);
        X509 *ca_cert = read_pem_cert(cp);
        assert_null(X509_get0_subject_key_id(ca_cert));

        struct shunt_ca *ca = NULL;
        char err[1024] = "";
        if (shunt_ca_open(cp, kp, &ca, err, sizeof(err)) != 0)
            fail_msg("%s: %s", kinds[i], err);
        X509 *leaf = NULL;
        EVP_PKEY *key = NULL;
        assert_int_equal(shunt_ca_leaf(ca, "noski.test", &leaf, &key), 0);
        assert_null(X509_get0_authority_key_id(leaf));
        X509_STORE *store = X509_STORE_new();
        X509_STORE_add_cert(store, ca_cert);
        X509_STORE_CTX *sctx = X509_STORE_CTX_new();
        X509_STORE_CTX_init(sctx, store, leaf, NULL);
        X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(sctx);
        X509_VERIFY_PARAM_set1_host(vp, "noski.test", 0);
        X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
        if (X509_verify_cert(sctx) != 1)
            fail_msg("%s: %s", kinds[i],
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
        X509_STORE_CTX_free(sctx);
        X509_STORE_free(store);
        X509_free(leaf);
        X509_free(ca_cert);
        shunt_ca_free(ca);
    }
}

static void test_export_pem_and_der(void **state)
{
    (void)state;
    struct shunt_ca *ca = open_in("export");
    size_t pl = 0, dl = 0;
    char *pem = shunt_ca_export(ca, 0, &pl);
    char *der = shunt_ca_export(ca, 1, &dl);
    assert_non_null(pem);
    assert_non_null(der);
    assert_int_equal(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28), 0);
    const unsigned char *dp = (const unsigned char *)der;
    X509 *x = d2i_X509(NULL, &dp, (long)dl);
    assert_non_null(x);
    BIO *b = BIO_new_mem_buf(pem, (int)pl);
    X509 *y = PEM_read_bio_X509(b, NULL, NULL, NULL);
    assert_int_equal(X509_cmp(x, y), 0);
    BIO_free(b);
    X509_free(x);
    X509_free(y);
    free(pem);
    free(der);
    shunt_ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_made_on_first_use_with_modes),
        cmocka_unit_test(test_default_dir_from_home),
        cmocka_unit_test(test_half_a_ca_is_an_error),
        cmocka_unit_test(test_leaf_for_a_name_and_an_ip),
        cmocka_unit_test(test_cache_counts_hits_and_misses),
        cmocka_unit_test(test_given_rsa_ca),
        cmocka_unit_test(test_given_ca_without_ski),
        cmocka_unit_test(test_export_pem_and_der),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
