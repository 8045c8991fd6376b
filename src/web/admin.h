/* src/web/admin.h - the admin API: a small JSON-over-HTTP server on its own thread and loop
 * (default 127.0.0.1:8889) to list and switch options, reload rules and read the status.
 * The web UI and `shunt ctl` talk to it. */
#ifndef SHUNT_WEB_ADMIN_H
#define SHUNT_WEB_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/errors.h"

struct shunt_admin;

/* What `GET /api/status` reports. */
struct shunt_admin_status {
    double uptime_s;
    uint64_t connections_open;
    uint64_t exchanges; /* completed since start */
    uint64_t events_dropped;
    const char *capture; /* capture file, or NULL */
    const char *rules;   /* rules file, or NULL */
    int intercept;       /* 1: HTTPS interception is on (the leaf counters below mean
                            something) */
    uint64_t tls_leaf_hits;      /* leaf certificates found in the cache */
    uint64_t tls_leaf_misses;    /* leaves made (signed) */
    uint64_t tls_leaf_cached;    /* leaves in the cache now */
    double tls_leaf_miss_avg_ms; /* what a miss cost, on average and at worst */
    double tls_leaf_miss_max_ms;
};

struct shunt_admin_config {
    struct sockaddr_storage listen; /* port 0: any free port */
    const char *token;              /* required (Authorization: Bearer TOKEN) when not NULL;
                                       a non-loopback listen address requires one */
    /* Reloads the rules; returns 0, or a negative code with a one-line reason in <err>
     * (e.g. "rules.lua:12: unexpected symbol"). Called on the admin thread. May be NULL. */
    int (*reload)(void *ud, char *err, size_t err_len);
    void *reload_ud;
    /* Fills the status. Called on the admin thread. */
    void (*status)(void *ud, struct shunt_admin_status *out);
    void *status_ud;
};

/* Longest admin token, in bytes. */
#define SHUNT_ADMIN_TOKEN_MAX 1024

/* ------------------------------------------------------------------------ the token */

/* Returns 0 when <token> can be an admin token (1 to SHUNT_ADMIN_TOKEN_MAX bytes of printable
 * ASCII without spaces, as a Bearer token must be), or SHUNT_EINVAL with a one-line reason
 * in <err> ("the token is empty"). Any thread. */
SHUNT_MUST_CHECK int shunt_admin_token_check(const char *token, char *err, size_t err_len);

/*
 * Reads an admin token from the file <path> into <buf> (<cap> bytes, at least
 * SHUNT_ADMIN_TOKEN_MAX + 1; NUL-terminated): the file's bytes without one trailing LF or
 * CRLF, so that `echo TOKEN > file` works. Returns 0, or a negative code with a one-line
 * reason in <err>: the file cannot be read, group or others may read or write it (a secret
 * kept from `ps` must not be handed to every user instead), it holds no token, or the token
 * fails shunt_admin_token_check(). Blocking file I/O: at startup, main thread.
 */
SHUNT_MUST_CHECK int shunt_admin_token_read(const char *path, char *buf, size_t cap, char *err,
                                            size_t err_len);

/* ------------------------------------------------------------------------ the server */

/*
 * Binds and starts the admin thread. Returns 0 with *<out> set and the bound port in
 * *<port>, or a negative code with a one-line reason in <err> (address in use, a
 * non-loopback address without a token). Main thread.
 */
SHUNT_MUST_CHECK int shunt_admin_start(const struct shunt_admin_config *cfg,
                                       struct shunt_admin **out, int *port, char *err,
                                       size_t err_len);

/* Stops the admin thread and frees <a> (NULL is fine). Main thread. */
void shunt_admin_stop(struct shunt_admin *a);

#endif
