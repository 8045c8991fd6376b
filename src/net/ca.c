/* src/net/ca.c - shunt's CA (made on first use, or given) and its cache of leaf certificates. */
#include "net/ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/mem.h"

#define CA_DAYS 3650          /* the CA's validity: 10 years */
#define BACKDATE_S 3600       /* leaves (and the CA) start an hour ago: clients' clocks differ */
#define LEAF_REFRESH_S 86400  /* a cached leaf older than this is made again, so a proxy
                                 running for weeks never serves one near its end */
#define N_BUCKETS 2048        /* hash buckets of the cache (twice its size) */

/* One cached leaf: in a hash chain and in the LRU list. */
struct leaf {
    struct leaf *hnext;            /* same bucket */
    struct leaf *prev, *next;      /* LRU: head is the most recently used */
    X509 *cert;
    time_t made;
    char name[SHUNT_CA_NAME_MAX + 1]; /* lower case */
};

struct shunt_ca {
    X509 *cert;
    EVP_PKEY *key;      /* the CA's */
    EVP_PKEY *leaf_key; /* every leaf's: one EC P-256 key per process */
    X509 *leaf_template; /* what every leaf shares (make_leaf_template()) */
    EVP_MD *sha256_md;   /* fetched once: an implicit fetch per signature takes a lock */
    char cert_path[4096];
    char key_path[4096];
    char subject[512];
    char sha256[3 * 32];
    char key_type[80];
    int made, given;

    pthread_mutex_t lock; /* guards everything below */
    struct leaf *buckets[N_BUCKETS];
    struct leaf *lru_head, *lru_tail;
    size_t n_cached;
    uint64_t hits, misses, miss_ns_total, miss_ns_max;
};

static X509 *make_leaf_template(struct shunt_ca *ca);

/* ----------------------------------------------------------------------- helpers */

/* Appends OpenSSL's first queued error to <err> (after <what>), and clears the queue. */
static void ssl_err(char *err, size_t err_len, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, err_len, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
    ERR_clear_error();
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int shunt_ca_is_ip(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* Copies <name> lower-cased into <out> (SHUNT_CA_NAME_MAX + 1 bytes) when it can be a
 * certificate's name: an IP literal, or letters, digits, '-', '_' and '.' (a peer's SNI is
 * untrusted: nothing else may reach the SAN's text form). Returns 0 or SHUNT_EINVAL. */
static int clean_name(const char *name, char *out)
{
    size_t n = strlen(name);
    if (n == 0 || n > SHUNT_CA_NAME_MAX)
        return SHUNT_EINVAL;
    if (shunt_ca_is_ip(name)) {
        memcpy(out, name, n + 1);
        for (size_t i = 0; i < n; i++)
            if (out[i] >= 'A' && out[i] <= 'F')
                out[i] = (char)(out[i] - 'A' + 'a');
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return SHUNT_EINVAL;
        out[i] = c;
    }
    if (n > 1 && out[n - 1] == '.') /* "example.com." is example.com (RFC 6066 3: no dot) */
        n--;
    out[n] = '\0';
    if (out[0] == '.' || strstr(out, "..") != NULL)
        return SHUNT_EINVAL;
    return 0;
}

/* A random positive 128-bit serial (RFC 5280 4.1.2.2: at most 20 octets, positive). */
static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] &= 0x7f;
    b[0] |= 0x40; /* never a shorter encoding */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    if (bn == NULL)
        return -1;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ai != NULL ? 0 : -1;
}

/* Adds the extension <nid> with OpenSSL's configuration text <value>. */
static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (ex == NULL)
        return -1;
    int ok = X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    return ok == 1 ? 0 : -1;
}

static EVP_PKEY *new_p256(void)
{
    return EVP_EC_gen("P-256");
}

/* The leaves' key, made through the EC_KEY interface that OpenSSL 3 deprecates, on purpose:
 * X509_set_pubkey() encodes such a key directly, while a provider key goes through an
 * encoder and a decoder, which cost a leaf about 100 microseconds more (perf, 3.0.x). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static EVP_PKEY *new_leaf_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *k = EVP_PKEY_new();
    if (ec == NULL || k == NULL || EC_KEY_generate_key(ec) != 1 ||
        EVP_PKEY_assign_EC_KEY(k, ec) != 1) {
        EC_KEY_free(ec);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}
#pragma GCC diagnostic pop

static void name_oneline(const X509_NAME *n, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *p;
    long l = BIO_get_mem_data(b, &p);
    if (l > 0) {
        size_t k = (size_t)l < cap - 1 ? (size_t)l : cap - 1;
        memcpy(out, p, k);
        out[k] = '\0';
    }
    BIO_free(b);
}

/* ----------------------------------------------------------------------- making the CA */

static int write_file(const char *path, int mode, const char *data, size_t len, char *err,
                      size_t err_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return SHUNT_EINVAL;
    }
    (void)fchmod(fd, (mode_t)mode); /* the umask must not widen nor narrow it */
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            close(fd);
            return SHUNT_EINVAL;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return SHUNT_EINVAL;
    }
    return 0;
}

/* mkdir -p with mode 0700 for what it makes (the XDG spec's mode for $XDG_DATA_HOME). */
static int make_dirs(const char *dir, char *err, size_t err_len)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                snprintf(err, err_len, "cannot make %s: %s", p, strerror(errno));
                return SHUNT_EINVAL;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s is not a folder", dir);
        return SHUNT_EINVAL;
    }
    return 0;
}

static char *pem_of(int (*wr)(BIO *, void *), void *obj, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    char *out = NULL;
    if (wr(b, obj) == 1) {
        char *p;
        long l = BIO_get_mem_data(b, &p);
        out = malloc((size_t)l + 1);
        if (out != NULL) {
            memcpy(out, p, (size_t)l);
            out[l] = '\0';
            *len = (size_t)l;
        }
    }
    BIO_free(b);
    return out;
}

static int wr_x509(BIO *b, void *x) { return PEM_write_bio_X509(b, x); }
static int wr_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

/* Makes a new CA certificate for <key>. */
static X509 *make_ca_cert(EVP_PKEY *key)
{
    char host[256] = "localhost", cn[300];
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(cn, sizeof(cn), "shunt CA (%.50s)", host); /* a CN is at most 64 characters */
    X509 *x = X509_new();
    if (x == NULL || X509_set_version(x, 2) != 1 || set_random_serial(x) != 0)
        goto fail;
    X509_NAME *n = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"shunt", -1, -1,
                                   0) != 1 ||
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, n) != 1)
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)CA_DAYS * 86400) == NULL ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, &v3, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* Makes the CA's two files in <dir>. */
static int make_ca_files(const char *dir, const char *cert_path, const char *key_path, char *err,
                         size_t err_len)
{
    int r = SHUNT_ENOMEM;
    char *kp = NULL, *cp = NULL;
    size_t kl = 0, cl = 0;
    char tmp_c[4200], tmp_k[4200];
    snprintf(tmp_c, sizeof(tmp_c), "%s/.ca.pem.%ld", dir, (long)getpid());
    snprintf(tmp_k, sizeof(tmp_k), "%s/.ca-key.pem.%ld", dir, (long)getpid());
    EVP_PKEY *key = new_p256();
    X509 *x = key ? make_ca_cert(key) : NULL;
    if (x == NULL) {
        ssl_err(err, err_len, "cannot make the CA");
        goto out;
    }
    kp = pem_of(wr_key, key, &kl);
    cp = pem_of(wr_x509, x, &cl);
    if (kp == NULL || cp == NULL) {
        snprintf(err, err_len, "cannot make the CA: out of memory");
        goto out;
    }
    /* written aside and renamed: a reader never sees half a file; the key first, so a
     * certificate on disk always has its key */
    if ((r = write_file(tmp_k, 0600, kp, kl, err, err_len)) != 0 ||
        (r = write_file(tmp_c, 0644, cp, cl, err, err_len)) != 0)
        goto out;
    if (rename(tmp_k, key_path) != 0 || rename(tmp_c, cert_path) != 0) {
        snprintf(err, err_len, "cannot write the CA in %s: %s", dir, strerror(errno));
        r = SHUNT_EINVAL;
        goto out;
    }
    r = 0;
out:
    unlink(tmp_k);
    unlink(tmp_c);
    if (kp != NULL)
        OPENSSL_cleanse(kp, kl);
    free(kp);
    free(cp);
    X509_free(x);
    EVP_PKEY_free(key);
    return r;
}

/* ----------------------------------------------------------------------- loading */

static int load_cert(const char *path, X509 **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return SHUNT_EINVAL;
    }
    *out = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (*out == NULL) {
        char what[4200];
        snprintf(what, sizeof(what), "%s: not a PEM certificate", path);
        ssl_err(err, err_len, what);
        return SHUNT_EPARSE;
    }
    return 0;
}

/* A passphrase prompt would hang a proxy started in the background: refuse it. */
static int no_pass(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static int load_key(const char *path, EVP_PKEY **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return SHUNT_EINVAL;
    }
    *out = PEM_read_PrivateKey(f, NULL, no_pass, NULL);
    fclose(f);
    if (*out == NULL) {
        char what[4200];
        snprintf(what, sizeof(what),
                 "%s: not a PEM private key (or one protected by a passphrase)", path);
        ssl_err(err, err_len, what);
        return SHUNT_EPARSE;
    }
    return 0;
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Checks the loaded pair and fills the descriptive fields. */
static int check_pair(struct shunt_ca *ca, char *err, size_t err_len)
{
    if (X509_check_ca(ca->cert) < 1) {
        snprintf(err, err_len, "%s is not a CA certificate (it needs basicConstraints CA:TRUE; "
                 "a server's own certificate cannot sign others)", ca->cert_path);
        return SHUNT_EINVAL;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        snprintf(err, err_len, "the key in %s does not match the certificate in %s",
                 ca->key_path, ca->cert_path);
        return SHUNT_EINVAL;
    }
    name_oneline(X509_get_subject_name(ca->cert), ca->subject, sizeof(ca->subject));
    unsigned char md[32];
    unsigned int mdl = 0;
    X509_digest(ca->cert, EVP_sha256(), md, &mdl);
    for (unsigned i = 0; i < mdl && i < 32; i++)
        snprintf(ca->sha256 + 3 * i, 4, i + 1 < mdl ? "%02X:" : "%02X", md[i]);
    int bits = EVP_PKEY_get_bits(ca->key);
    switch (EVP_PKEY_get_base_id(ca->key)) {
    case EVP_PKEY_EC: {
        char g[64] = "";
        size_t gl = 0;
        EVP_PKEY_get_utf8_string_param(ca->key, "group", g, sizeof(g), &gl);
        snprintf(ca->key_type, sizeof(ca->key_type), "EC %s",
                 strcmp(g, "prime256v1") == 0 ? "P-256" : g);
        break;
    }
    case EVP_PKEY_RSA:
        snprintf(ca->key_type, sizeof(ca->key_type), "RSA %d", bits);
        break;
    default:
        snprintf(ca->key_type, sizeof(ca->key_type), "%s %d",
                 OBJ_nid2sn(EVP_PKEY_get_base_id(ca->key)), bits);
    }
    return 0;
}

int shunt_ca_default_dir(char *buf, size_t cap)
{
    const char *x = getenv("XDG_DATA_HOME");
    int n;
    if (x != NULL && x[0] == '/')
        n = snprintf(buf, cap, "%s/shunt", x);
    else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] != '/')
            return SHUNT_EINVAL;
        n = snprintf(buf, cap, "%s/.local/share/shunt", home);
    }
    return n > 0 && (size_t)n < cap ? 0 : SHUNT_EINVAL;
}

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

/* Opens (making when missing) the CA in the default folder: fills the paths and <made>. */
static int open_default(struct shunt_ca *ca, char *err, size_t err_len)
{
    char dir[4000];
    if (shunt_ca_default_dir(dir, sizeof(dir)) != 0) {
        snprintf(err, err_len, "no folder for the CA: set HOME or XDG_DATA_HOME (or give "
                 "--ca-cert and --ca-key)");
        return SHUNT_EINVAL;
    }
    snprintf(ca->cert_path, sizeof(ca->cert_path), "%s/ca.pem", dir);
    snprintf(ca->key_path, sizeof(ca->key_path), "%s/ca-key.pem", dir);
    if (path_exists(ca->cert_path) && path_exists(ca->key_path))
        return 0;
    int r = make_dirs(dir, err, err_len);
    if (r != 0)
        return r;
    /* two shunts starting at once must make one CA: the second waits and loads it */
    char lock_path[4100];
    snprintf(lock_path, sizeof(lock_path), "%s/.lock", dir);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", lock_path, strerror(errno));
        return SHUNT_EINVAL;
    }
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    int has_c = path_exists(ca->cert_path), has_k = path_exists(ca->key_path);
    if (has_c != has_k) {
        snprintf(err, err_len, "%s exists but %s does not: restore it, or remove both to make a "
                 "new CA (clients will have to trust the new one)",
                 has_c ? ca->cert_path : ca->key_path, has_c ? ca->key_path : ca->cert_path);
        r = SHUNT_EINVAL;
    } else if (!has_c) {
        r = make_ca_files(dir, ca->cert_path, ca->key_path, err, err_len);
        ca->made = r == 0;
    }
    close(fd); /* releases the lock */
    return r;
}

int shunt_ca_open(const char *cert_file, const char *key_file, struct shunt_ca **out, char *err,
                  size_t err_len)
{
    *out = NULL;
    if ((cert_file == NULL) != (key_file == NULL)) {
        snprintf(err, err_len, "give both --ca-cert and --ca-key, or neither");
        return SHUNT_EINVAL;
    }
    struct shunt_ca *ca = shunt_xcalloc(sizeof(*ca));
    pthread_mutex_init(&ca->lock, NULL);
    int r;
    if (cert_file != NULL) {
        ca->given = 1;
        snprintf(ca->cert_path, sizeof(ca->cert_path), "%s", cert_file);
        snprintf(ca->key_path, sizeof(ca->key_path), "%s", key_file);
    } else if ((r = open_default(ca, err, err_len)) != 0) {
        goto fail;
    }
    if ((r = load_cert(ca->cert_path, &ca->cert, err, err_len)) != 0 ||
        (r = load_key(ca->key_path, &ca->key, err, err_len)) != 0 ||
        (r = check_pair(ca, err, err_len)) != 0)
        goto fail;
    ca->leaf_key = new_leaf_key();
    if (ca->leaf_key != NULL)
        ca->leaf_template = make_leaf_template(ca);
    ca->sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (ca->leaf_key == NULL || ca->leaf_template == NULL || ca->sha256_md == NULL) {
        ssl_err(err, err_len, "cannot make the leaf key");
        r = SHUNT_ENOMEM;
        goto fail;
    }
    *out = ca;
    return 0;
fail:
    shunt_ca_free(ca);
    return r;
}

void shunt_ca_free(struct shunt_ca *ca)
{
    if (ca == NULL)
        return;
    for (struct leaf *l = ca->lru_head, *next; l != NULL; l = next) {
        next = l->next;
        X509_free(l->cert);
        free(l);
    }
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    EVP_PKEY_free(ca->leaf_key);
    X509_free(ca->leaf_template);
    EVP_MD_free(ca->sha256_md);
    pthread_mutex_destroy(&ca->lock);
    free(ca);
}

void shunt_ca_info(const struct shunt_ca *ca, struct shunt_ca_info *out)
{
    out->cert_path = ca->cert_path;
    out->key_path = ca->key_path;
    out->subject = ca->subject;
    out->sha256 = ca->sha256;
    out->not_before = asn1_unix(X509_get0_notBefore(ca->cert));
    out->not_after = asn1_unix(X509_get0_notAfter(ca->cert));
    out->key_type = ca->key_type;
    out->made = ca->made;
    out->given = ca->given;
}

char *shunt_ca_export(const struct shunt_ca *ca, int der, size_t *len)
{
    if (!der)
        return pem_of(wr_x509, ca->cert, len);
    unsigned char *p = NULL;
    int l = i2d_X509(ca->cert, &p);
    if (l <= 0)
        return NULL;
    char *out = malloc((size_t)l);
    if (out != NULL) {
        memcpy(out, p, (size_t)l);
        *len = (size_t)l;
    }
    OPENSSL_free(p);
    return out;
}

void shunt_ca_stats(struct shunt_ca *ca, struct shunt_ca_stats *out)
{
    pthread_mutex_lock(&ca->lock);
    out->hits = ca->hits;
    out->misses = ca->misses;
    out->miss_ns_total = ca->miss_ns_total;
    out->miss_ns_max = ca->miss_ns_max;
    out->cached = ca->n_cached;
    pthread_mutex_unlock(&ca->lock);
}

/* ----------------------------------------------------------------------- leaves */

/* What every leaf has in common, made once: the issuer and the extensions that do not name
 * the host (each parsed from text costs OpenSSL 3 fetches behind a lock). Copying the whole
 * template with X509_dup() would be worse: OpenSSL 3.0 decodes its public key through the
 * provider decoders on every copy. */
static X509 *make_leaf_template(struct shunt_ca *ca)
{
    X509 *x = X509_new();
    if (x == NULL || X509_set_version(x, 2) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_pubkey(x, ca->leaf_key) != 1)
        goto fail;
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_ext(x, &v3, NID_ext_key_usage, "serverAuth") != 0 ||
        add_ext(x, &v3, NID_subject_key_identifier, "hash") != 0)
        goto fail;
    /* The AKI points at the CA's Subject Key Identifier. A given CA may have none (a v1
     * certificate, or made with subjectKeyIdentifier=none): "keyid:always" would refuse it,
     * so its leaves carry no AKI (RFC 5280 4.2.1.1 allows that for such an issuer), and
     * chains are built by the issuer's name. */
    if (X509_get0_subject_key_id(ca->cert) != NULL &&
        add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* A SAN of one name: DNS, or IP for an address. */
static int add_san(X509 *x, const char *name)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_OCTET_STRING *ip = NULL;
    ASN1_IA5STRING *dns = NULL;
    int ok = 0;
    if (gens == NULL || g == NULL)
        goto out;
    if (shunt_ca_is_ip(name)) {
        if ((ip = a2i_IPADDRESS(name)) == NULL)
            goto out;
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        dns = ASN1_IA5STRING_new();
        if (dns == NULL || ASN1_STRING_set(dns, name, -1) != 1) {
            ASN1_IA5STRING_free(dns);
            goto out;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(gens, g) <= 0)
        goto out;
    g = NULL;
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
out:
    GENERAL_NAME_free(g);
    GENERAL_NAMES_free(gens);
    return ok ? 0 : -1;
}

static X509 *make_leaf(struct shunt_ca *ca, const char *name)
{
    X509 *x = X509_new();
    if (x == NULL || X509_set_version(x, 2) != 1 || set_random_serial(x) != 0 ||
        X509_set_issuer_name(x, X509_get_issuer_name(ca->leaf_template)) != 1 ||
        X509_set_pubkey(x, ca->leaf_key) != 1)
        goto fail;
    for (int i = 0; i < X509_get_ext_count(ca->leaf_template); i++)
        if (X509_add_ext(x, X509_get_ext(ca->leaf_template, i), -1) != 1)
            goto fail;
    X509_NAME *n = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"shunt", -1, -1,
                                   0) != 1)
        goto fail;
    /* RFC 5280 bounds a CN at 64 characters; clients read the SAN anyway */
    if (strlen(name) <= 64 &&
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
                                   0) != 1)
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)SHUNT_CA_LEAF_DAYS * 86400) == NULL ||
        add_san(x, name) != 0)
        goto fail;
    if (X509_sign(x, ca->key, ca->sha256_md) <= 0)
        goto fail;
    return x;
fail:
    ERR_clear_error();
    X509_free(x);
    return NULL;
}

static unsigned hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % N_BUCKETS;
}

/* Under the lock. */
static void lru_unlink(struct shunt_ca *ca, struct leaf *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        ca->lru_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        ca->lru_tail = l->prev;
    l->prev = l->next = NULL;
}

static void lru_push_front(struct shunt_ca *ca, struct leaf *l)
{
    l->prev = NULL;
    l->next = ca->lru_head;
    if (ca->lru_head)
        ca->lru_head->prev = l;
    ca->lru_head = l;
    if (ca->lru_tail == NULL)
        ca->lru_tail = l;
}

static void hash_remove(struct shunt_ca *ca, struct leaf *l)
{
    struct leaf **pp = &ca->buckets[hash_name(l->name)];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
}

static struct leaf *find(struct shunt_ca *ca, const char *name, unsigned h)
{
    for (struct leaf *l = ca->buckets[h]; l != NULL; l = l->hnext)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

int shunt_ca_leaf(struct shunt_ca *ca, const char *name, X509 **cert, EVP_PKEY **key)
{
    char clean[SHUNT_CA_NAME_MAX + 1];
    if (clean_name(name, clean) != 0)
        return SHUNT_EINVAL;
    unsigned h = hash_name(clean);
    time_t now = time(NULL);
    *key = ca->leaf_key;

    pthread_mutex_lock(&ca->lock);
    struct leaf *l = find(ca, clean, h);
    if (l != NULL && now - l->made < LEAF_REFRESH_S) {
        ca->hits++;
        lru_unlink(ca, l);
        lru_push_front(ca, l);
        X509_up_ref(l->cert);
        *cert = l->cert;
        pthread_mutex_unlock(&ca->lock);
        return 0;
    }
    pthread_mutex_unlock(&ca->lock);

    /* Signing runs outside the lock: another worker's lookup never waits for it. Two
     * workers missing the same name at once both sign; the second keeps the first's. */
    uint64_t t0 = now_ns();
    X509 *x = make_leaf(ca, clean);
    uint64_t dt = now_ns() - t0;
    if (x == NULL)
        return SHUNT_ENOMEM;

    pthread_mutex_lock(&ca->lock);
    ca->misses++;
    ca->miss_ns_total += dt;
    if (dt > ca->miss_ns_max)
        ca->miss_ns_max = dt;
    l = find(ca, clean, h);
    if (l != NULL && now - l->made < LEAF_REFRESH_S) {
        X509_free(x); /* another worker made it meanwhile */
        x = l->cert;
        lru_unlink(ca, l);
        lru_push_front(ca, l);
    } else {
        if (l != NULL) { /* too old: replaced */
            X509_free(l->cert);
            lru_unlink(ca, l);
        } else {
            if (ca->n_cached == SHUNT_CA_CACHE_MAX) {
                struct leaf *old = ca->lru_tail;
                lru_unlink(ca, old);
                hash_remove(ca, old);
                X509_free(old->cert);
                free(old);
                ca->n_cached--;
            }
            l = shunt_xcalloc(sizeof(*l));
            memcpy(l->name, clean, strlen(clean) + 1);
            l->hnext = ca->buckets[h];
            ca->buckets[h] = l;
            ca->n_cached++;
        }
        lru_push_front(ca, l);
        l->cert = x;
        l->made = now;
    }
    X509_up_ref(x);
    *cert = x;
    pthread_mutex_unlock(&ca->lock);
    return 0;
}
