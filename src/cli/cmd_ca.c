/* src/cli/cmd_ca.c - `shunt ca`: where shunt's CA is, what it is, how to trust it, export. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "net/ca.h"

static const char help[] =
    "usage: shunt ca [--ca-cert FILE --ca-key FILE] [--export pem|der [-o FILE]]\n"
    "\n"
    "Shows shunt's certificate authority: where it is, its subject, SHA-256 fingerprint and\n"
    "validity, and how to make clients trust it. `shunt proxy --intercept` signs a\n"
    "certificate for each intercepted host with it; a client trusts those only when it trusts\n"
    "this CA. When there is none yet, it is made (EC P-256, valid 10 years) in\n"
    "$XDG_DATA_HOME/shunt/ (default ~/.local/share/shunt/): ca.pem, and ca-key.pem readable\n"
    "by you only. Keep the key private: whoever holds it can intercept the TLS of every client\n"
    "that trusts the CA. Trust it only on machines you debug. docs/https.md tells more.\n"
    "\n"
    "options:\n"
    "  --ca-cert FILE       a CA of your own (PEM; basicConstraints CA:TRUE), with --ca-key\n"
    "  --ca-key FILE        its private key (PEM, EC or RSA, no passphrase)\n"
    "  --export pem|der     write the CA certificate (never the key) instead, to stdout or -o\n"
    "  -o, --output FILE    where --export writes (replaced)\n"
    "  -h, --help           this text\n"
    "\n"
    "examples:\n"
    "  shunt ca\n"
    "  shunt ca --export der -o shunt-ca.der     # for Windows, Android, macOS Keychain\n"
    "  shunt ca --export pem -o ca.pem && curl --cacert ca.pem -x http://127.0.0.1:8888 \\\n"
    "      https://example.com/\n";

static int usage(const char *why)
{
    fprintf(stderr, "shunt ca: %s\n(`shunt ca --help` tells more)\n", why);
    return 2;
}

static void fmt_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "?");
}

/* Writes <len> bytes to <path> (replaced), or to stdout when <path> is NULL. */
static int write_out(const char *path, const char *data, size_t len, int der)
{
    if (path == NULL && der && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "shunt ca: DER is binary: not writing it to a terminal (use -o FILE)\n");
        return 2;
    }
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (f == NULL) {
        fprintf(stderr, "shunt ca: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int ok = fwrite(data, 1, len, f) == len;
    ok = (path ? fclose(f) : fflush(f)) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "shunt ca: %s: %s\n", path ? path : "stdout", strerror(errno));
        return 1;
    }
    return 0;
}

static void show(const struct shunt_ca_info *in)
{
    char from[64], to[64];
    fmt_time(in->not_before, from, sizeof(from));
    fmt_time(in->not_after, to, sizeof(to));
    const char *p = in->cert_path;
    printf("shunt's CA:  %s%s\n", p, in->given ? " (given with --ca-cert)" : "");
    printf("key:         %s (%s; keep it private)\n", in->key_path, in->key_type);
    printf("subject:     %s\n", in->subject);
    printf("SHA-256:     %s\n", in->sha256);
    printf("valid:       %s to %s%s\n", from, to,
           in->not_after < (int64_t)time(NULL) ? " (EXPIRED: clients will refuse its leaves)"
                                               : "");
    printf("\n"
           "How to trust it (only on machines you debug):\n"
           "  curl       curl --cacert %s -x http://127.0.0.1:8888 https://example.com/\n"
           "  Debian     sudo cp %s /usr/local/share/ca-certificates/shunt.crt &&\n"
           "             sudo update-ca-certificates   (curl, wget, Python, most of the system)\n"
           "  Chromium   certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n shunt -i %s\n"
           "             (package libnss3-tools; restart Chromium)\n"
           "  Firefox    Settings > Privacy & Security > Certificates > View Certificates >\n"
           "             Authorities > Import %s, or with certutil on its profile:\n"
           "             certutil -d sql:PROFILE -A -t C,, -n shunt -i %s (about:profiles)\n"
           "  Node.js    NODE_EXTRA_CA_CERTS=%s\n"
           "  Python     REQUESTS_CA_BUNDLE=%s (requests)\n"
           "\n"
           "Then: shunt proxy --intercept (docs/https.md). To stop trusting it, remove it the\n"
           "same way (certutil -D -n shunt; rm the .crt and update-ca-certificates --fresh).\n",
           p, p, p, p, p, p, p);
}

int shunt_cmd_ca(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *export = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char **dst = NULL;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(opt, "--ca-cert") == 0) {
            dst = &cert;
        } else if (strcmp(opt, "--ca-key") == 0) {
            dst = &key;
        } else if (strcmp(opt, "--export") == 0) {
            dst = &export;
        } else if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0) {
            dst = &out;
        } else {
            char why[300];
            snprintf(why, sizeof(why), "unknown option '%.200s'", opt);
            return usage(why);
        }
        if (i + 1 >= argc || argv[i + 1][0] == '\0') {
            char why[300];
            snprintf(why, sizeof(why), "%s needs a value", opt);
            return usage(why);
        }
        *dst = argv[++i];
    }
    int der = 0;
    if (export != NULL) {
        if (strcmp(export, "der") == 0)
            der = 1;
        else if (strcmp(export, "pem") != 0)
            return usage("--export takes pem or der");
    } else if (out != NULL) {
        return usage("-o only makes sense with --export pem|der");
    }
    if ((cert == NULL) != (key == NULL))
        return usage("give both --ca-cert and --ca-key, or neither");

    struct shunt_ca *ca = NULL;
    char err[9000];
    if (shunt_ca_open(cert, key, &ca, err, sizeof(err)) != 0) {
        fprintf(stderr, "shunt ca: %s\n", err);
        return cert != NULL ? 2 : 1; /* a bad file given, or no CA could be made */
    }
    struct shunt_ca_info info;
    shunt_ca_info(ca, &info);
    if (info.made)
        fprintf(stderr, "shunt ca: there was no CA yet: made one in %s\n", info.cert_path);
    int r = 0;
    if (export != NULL) {
        size_t len = 0;
        char *data = shunt_ca_export(ca, der, &len);
        if (data == NULL) {
            fprintf(stderr, "shunt ca: out of memory\n");
            r = 1;
        } else {
            r = write_out(out, data, len, der);
        }
        free(data);
    } else {
        show(&info);
        if (fflush(stdout) != 0)
            r = 1;
    }
    shunt_ca_free(ca);
    return r;
}
