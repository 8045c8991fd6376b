/* src/net/connect.h - connecting a struct shunt_conn to a host and port: resolution
 * (uv_getaddrinfo) unless the address is known, then the addresses in turn (up to
 * SHUNT_CONNECT_MAX_ADDRS, each on a new socket, as curl does: ::1 after 127.0.0.1), all
 * within one timeout. One callback, exactly once, unless the connect is cancelled.
 *
 * Ownership: the connect is the connection's (c->_connect) while it runs; its memory is
 * the helper's own and outlives a cancel until libuv lets go of its requests, so the owner
 * may free the connection as soon as on_closed runs. shunt_conn_close() cancels it. */
#ifndef SHUNT_NET_CONNECT_H
#define SHUNT_NET_CONNECT_H

#include <stdint.h>
#include <sys/socket.h>

#include "net/conn.h"

#define SHUNT_CONNECT_MAX_ADDRS 4 /* addresses of a name tried, in the resolver's order */

/* Where a connect ended. */
enum shunt_connect_stage {
    SHUNT_CONNECT_RESOLVE, /* the name did not resolve */
    SHUNT_CONNECT_CHECK,   /* the owner's check refused the address */
    SHUNT_CONNECT_CONNECT, /* connected (status 0), or the last address failed */
    SHUNT_CONNECT_TIMEOUT, /* the timeout ran out (status UV_ETIMEDOUT) */
};

/* How a connect ended. */
struct shunt_connect_result {
    int status;                    /* 0, a libuv error, or the check's nonzero return */
    enum shunt_connect_stage stage;
    uint64_t t_resolved_us;        /* uv_hrtime()/1000 when the name resolved; 0: no lookup */
    struct sockaddr_storage addr;  /* the address last tried (family 0: none) */
};

/* Called once when the connect ends; <c> is connected (c->connected) when r->status is 0.
 * On failure <c> is not closed: the owner closes it. */
typedef void (*shunt_connect_cb)(struct shunt_conn *c, const struct shunt_connect_result *r,
                                 void *ud);
/* Called before each address is tried: 0 to try it, nonzero to end the connect with that
 * status (stage SHUNT_CONNECT_CHECK). Must not close <c>. */
typedef int (*shunt_connect_check_cb)(struct shunt_conn *c, const struct sockaddr *sa, void *ud);

struct shunt_connect_opts {
    const char *host;              /* a name or an IP literal (copied) */
    int port;
    const struct sockaddr_storage *addrs; /* NULL, or addresses to try in turn: no lookup */
    int n_addrs;                   /* entries of <addrs> (at most SHUNT_CONNECT_MAX_ADDRS used) */
    uint64_t timeout_ms;           /* for the whole connect, lookup included; 0: none */
    shunt_connect_check_cb check;  /* NULL: every address is fine */
    shunt_connect_cb cb;
    void *ud;
};

/*
 * Connects <c> (initialised with shunt_conn_init, not connected) as <o> says. Returns 0
 * and calls o->cb exactly once later (never from inside this call), unless cancelled. Or
 * returns a negative error and never calls it, with *<r> (may be NULL) saying where it
 * ended: a lookup that could not start, a check that refused the first address, a connect
 * that failed at once with no other address to try. Loop thread.
 */
SHUNT_MUST_CHECK int shunt_connect_start(struct shunt_conn *c, const struct shunt_connect_opts *o,
                                         struct shunt_connect_result *r);

/* Stops the connect of <c>, if any: its callback does not run. The socket may be half
 * connected: close <c>. shunt_conn_close() calls this. */
void shunt_connect_cancel(struct shunt_conn *c);

#endif
