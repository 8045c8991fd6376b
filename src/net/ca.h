/* src/net/ca.h - shunt's certificate authority: made on first use (or given), and the leaf
 * certificates it signs for intercepted hosts, cached in memory.
 *
 * The CA lives in $XDG_DATA_HOME/shunt/ (default ~/.local/share/shunt/): ca.pem (0644) and
 * ca-key.pem (0600) in a 0700 folder; EC P-256, 10 years, CN "shunt CA (<hostname>)". Or it
 * is given with --ca-cert/--ca-key (EC or RSA). Leaves share one EC P-256 key made when the
 * CA is opened (a key per leaf would cost a key generation per new host for nothing: the
 * key never leaves the process), are valid from an hour ago (clocks of clients differ) to
 * 30 days ahead, name the host in their SAN (DNS, or IP for an IP literal), and are kept in
 * an LRU of 1024 names behind a mutex, so every worker shares them. */
#ifndef SHUNT_NET_CA_H
#define SHUNT_NET_CA_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"

struct shunt_ca;
struct x509_st;     /* OpenSSL's X509, for net/tls.c only */
struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

#define SHUNT_CA_CACHE_MAX 1024 /* leaves kept, least recently used dropped first */
#define SHUNT_CA_LEAF_DAYS 30   /* leaf validity ahead of now */
#define SHUNT_CA_NAME_MAX 253   /* longest host name a leaf is made for (RFC 1035) */

/* Counters of the leaf cache (shunt_ca_stats()). */
struct shunt_ca_stats {
    uint64_t hits;          /* leaves found in the cache */
    uint64_t misses;        /* leaves made (signed) */
    uint64_t miss_ns_total; /* time spent making them, nanoseconds */
    uint64_t miss_ns_max;   /* the slowest one */
    size_t cached;          /* leaves in the cache now */
};

/* What `shunt ca` shows of the CA. Strings are the CA's: valid until it is freed. */
struct shunt_ca_info {
    const char *cert_path;  /* where ca.pem is (or the --ca-cert file) */
    const char *key_path;
    const char *subject;    /* RFC 2253 one-line */
    const char *sha256;     /* fingerprint, upper-case hex with colons (as browsers show it) */
    int64_t not_before;     /* unix seconds */
    int64_t not_after;
    const char *key_type;   /* "EC P-256", "RSA 2048", ... */
    int made;               /* 1: shunt_ca_open() made it just now (there was none) */
    int given;              /* 1: given with --ca-cert/--ca-key */
};

/* ----------------------------------------------------------------------- the CA */

/* Writes the folder of shunt's own CA into <buf>: $XDG_DATA_HOME/shunt when that is set and
 * absolute (the XDG spec ignores a relative one), else $HOME/.local/share/shunt. Returns 0,
 * or SHUNT_EINVAL when neither variable helps or <buf> is too small. */
SHUNT_MUST_CHECK int shunt_ca_default_dir(char *buf, size_t cap);

/* Opens the CA. With <cert_file> and <key_file> (both, or neither): loads them, checks the
 * certificate is a CA (basicConstraints CA:TRUE) and that the key is its key. Without: loads
 * the one in shunt_ca_default_dir(), making it first when there is none (folder 0700, key
 * 0600, certificate 0644; two processes making it at once make one). Also makes the
 * process's leaf key. Returns 0 with <*out> set, or a SHUNT_E* code with <err> saying why
 * in words ("~/.local/share/shunt/ca-key.pem: Permission denied", "the key does not match
 * the certificate"). Main thread; may take milliseconds (file I/O, key generation). */
SHUNT_MUST_CHECK int shunt_ca_open(const char *cert_file, const char *key_file,
                                   struct shunt_ca **out, char *err, size_t err_len);

/* Frees the CA, its leaf key and its cache. Accepts NULL. */
void shunt_ca_free(struct shunt_ca *ca);

/* Fills <out> (see struct shunt_ca_info). */
void shunt_ca_info(const struct shunt_ca *ca, struct shunt_ca_info *out);

/* The CA certificate encoded as PEM (<der> 0) or DER (1): returns a malloc'd buffer (the
 * caller frees it) with its length in <*len>, or NULL when out of memory. */
char *shunt_ca_export(const struct shunt_ca *ca, int der, size_t *len);

/* Reads the leaf cache's counters. Any thread. */
void shunt_ca_stats(struct shunt_ca *ca, struct shunt_ca_stats *out);

/* ----------------------------------------------------------------------- leaves */

/* The leaf for <name> (a host name, or an IP literal without brackets; case-insensitive):
 * from the cache, else made and cached. Returns 0 with <*cert> holding a new reference (the
 * caller X509_free()s it) and <*key> pointing at the process's leaf key (borrowed: lives as
 * long as the CA); or SHUNT_EINVAL when <name> cannot be a certificate's name (empty, too
 * long, characters no host name has), SHUNT_ENOMEM when signing failed. Any thread; a miss
 * signs outside the lock (about 0.1 ms with P-256), so other workers only wait for a
 * lookup. */
SHUNT_MUST_CHECK int shunt_ca_leaf(struct shunt_ca *ca, const char *name, struct x509_st **cert,
                                   struct evp_pkey_st **key);

/* Returns 1 when <name> is an IPv4 or IPv6 literal (no brackets). */
int shunt_ca_is_ip(const char *name);

#endif
