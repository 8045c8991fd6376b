/* src/net/connect.c - resolve, then connect with address fallback and a timeout (see
 * connect.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "net/connect.h"

int shunt_conn__reopened(struct shunt_conn *c); /* conn.c */

/* A connect in progress. Heap: libuv holds its requests and timer until their callbacks,
 * which may come after the connection is gone; <refs> counts them. */
struct shunt_connect {
    struct shunt_conn *c;   /* NULL once ended or cancelled: callbacks only clean up */
    uv_loop_t *loop;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_timer_t timer;
    int refs;               /* pending: getaddrinfo, connect request, timer handle */
    unsigned has_timer : 1;
    unsigned resolving : 1; /* the getaddrinfo request is pending */
    void *owner_data;       /* c->tcp.data, kept while the handle carries <k> to reopened() */
    shunt_connect_check_cb check;
    shunt_connect_cb cb;
    void *ud;
    struct sockaddr_storage addrs[SHUNT_CONNECT_MAX_ADDRS];
    int n_addrs, next;      /* addresses known; index of the next to try */
    struct shunt_connect_result res;
};

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static void unref(struct shunt_connect *k)
{
    if (--k->refs == 0)
        free(k);
}

static void timer_closed(uv_handle_t *h)
{
    unref(SHUNT_CONTAINER_OF(h, struct shunt_connect, timer));
}

/* Lets go of the connection: no callback from now on. */
static void detach(struct shunt_connect *k)
{
    if (k->c != NULL) {
        k->c->_connect = NULL;
        k->c = NULL;
    }
    if (k->has_timer) {
        k->has_timer = 0;
        uv_close((uv_handle_t *)&k->timer, timer_closed);
    }
}

/* Ends the connect with <status> at <stage>: the one callback. */
static void end(struct shunt_connect *k, int status, enum shunt_connect_stage stage)
{
    struct shunt_conn *c = k->c;
    if (c == NULL)
        return;
    k->res.status = status;
    k->res.stage = stage;
    if (status == 0) {
        c->connected = 1;
        uv_tcp_nodelay(&c->tcp, 1);
    }
    struct shunt_connect_result r = k->res;
    shunt_connect_cb cb = k->cb;
    void *ud = k->ud;
    detach(k);
    cb(c, &r, ud);
}

static void connect_cb(uv_connect_t *req, int status);

/* Tries k->addrs[k->next] on the connection's current socket. Returns 0 when a connect is
 * under way, or the error that ended this address (the check's or the connect's), with the
 * stage in *<stage>. */
static int try_next(struct shunt_connect *k, enum shunt_connect_stage *stage)
{
    struct shunt_conn *c = k->c;
    const struct sockaddr *sa = (const struct sockaddr *)&k->addrs[k->next++];
    memcpy(&k->res.addr, sa, sizeof(k->res.addr));
    if (k->check != NULL) {
        int v = k->check(c, sa, k->ud);
        if (v != 0) {
            *stage = SHUNT_CONNECT_CHECK;
            return v;
        }
    }
    int r = uv_tcp_connect(&k->creq, &c->tcp, sa, connect_cb);
    if (r != 0) {
        *stage = SHUNT_CONNECT_CONNECT;
        return r;
    }
    k->refs++;
    return 0;
}

static void reopened(uv_handle_t *h);

/* After address <k->next - 1> failed with <status>: the next one on a new socket, or the
 * end. */
static void fail_or_next(struct shunt_connect *k, int status, enum shunt_connect_stage stage)
{
    if (stage == SHUNT_CONNECT_CHECK || k->next >= k->n_addrs) {
        end(k, status, stage);
        return;
    }
    /* The failed socket cannot connect again: close it and make a new one in the same
     * struct shunt_conn once libuv let go of it. */
    struct shunt_conn *c = k->c;
    c->_reopen = 1;
    k->refs++;
    k->owner_data = c->tcp.data;
    c->tcp.data = k; /* c->_connect is cleared if the connect ends before reopened() */
    uv_close((uv_handle_t *)&c->tcp, reopened);
}

static void reopened(uv_handle_t *h)
{
    struct shunt_conn *c = SHUNT_CONTAINER_OF(h, struct shunt_conn, tcp);
    struct shunt_connect *k = h->data;
    c->tcp.data = k->owner_data;
    /* <c> is alive here: its owner frees it from on_closed at the earliest, which comes
     * from here when the owner closed it meanwhile. */
    if (shunt_conn__reopened(c)) {
        unref(k);
        return;
    }
    int r = uv_tcp_init(k->loop, &c->tcp); /* a handle again, whatever comes next */
    c->tcp.data = k->owner_data;
    if (k->c != NULL) { /* not cancelled meanwhile */
        enum shunt_connect_stage stage = SHUNT_CONNECT_CONNECT;
        if (r == 0)
            r = try_next(k, &stage);
        if (r != 0)
            fail_or_next(k, r, stage);
    }
    unref(k);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct shunt_connect *k = SHUNT_CONTAINER_OF(req, struct shunt_connect, creq);
    if (k->c == NULL || status == UV_ECANCELED) {
        unref(k);
        return;
    }
    if (status == 0)
        end(k, 0, SHUNT_CONNECT_CONNECT);
    else
        fail_or_next(k, status, SHUNT_CONNECT_CONNECT);
    unref(k);
}

static void resolve_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct shunt_connect *k = SHUNT_CONTAINER_OF(req, struct shunt_connect, gai);
    k->resolving = 0;
    if (k->c != NULL) {
        if (status < 0 || res == NULL) {
            end(k, status < 0 ? status : UV_EAI_NONAME, SHUNT_CONNECT_RESOLVE);
        } else {
            for (struct addrinfo *a = res; a != NULL && k->n_addrs < SHUNT_CONNECT_MAX_ADDRS;
                 a = a->ai_next)
                if (a->ai_addrlen <= sizeof(k->addrs[0]))
                    memcpy(&k->addrs[k->n_addrs++], a->ai_addr, a->ai_addrlen);
            k->res.t_resolved_us = now_us();
            enum shunt_connect_stage stage = SHUNT_CONNECT_CONNECT;
            int r = k->n_addrs > 0 ? try_next(k, &stage) : UV_EAI_NONAME;
            if (r != 0)
                fail_or_next(k, r, k->n_addrs > 0 ? stage : SHUNT_CONNECT_RESOLVE);
        }
    }
    uv_freeaddrinfo(res);
    unref(k);
}

static void timer_cb(uv_timer_t *t)
{
    struct shunt_connect *k = SHUNT_CONTAINER_OF(t, struct shunt_connect, timer);
    end(k, UV_ETIMEDOUT, SHUNT_CONNECT_TIMEOUT);
}

int shunt_connect_start(struct shunt_conn *c, const struct shunt_connect_opts *o,
                        struct shunt_connect_result *r)
{
    struct shunt_connect *k = shunt_xcalloc(sizeof(*k));
    k->c = c;
    k->loop = c->tcp.loop;
    k->check = o->check;
    k->cb = o->cb;
    k->ud = o->ud;
    k->refs = 1; /* this call's, dropped at its end */
    enum shunt_connect_stage stage = SHUNT_CONNECT_CONNECT;
    int err = 0;
    struct sockaddr_storage ss;
    const struct sockaddr_storage *known = o->addrs;
    int n_known = o->n_addrs;
    if (known == NULL && (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&ss) == 0 ||
                          uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&ss) == 0)) {
        known = &ss;
        n_known = 1;
    }
    c->_connect = k;
    if (known != NULL && n_known > 0) {
        for (int i = 0; i < n_known && i < SHUNT_CONNECT_MAX_ADDRS; i++)
            k->addrs[k->n_addrs++] = known[i];
        err = try_next(k, &stage);
        if (err != 0 && stage != SHUNT_CONNECT_CHECK && k->n_addrs > 1) {
            /* the first failed at once: the others on a new socket, as after a refusal */
            fail_or_next(k, err, stage);
            err = 0;
        }
    } else {
        char port[16];
        snprintf(port, sizeof(port), "%d", o->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        err = uv_getaddrinfo(k->loop, &k->gai, resolve_cb, o->host, port, &hints);
        if (err != 0)
            stage = SHUNT_CONNECT_RESOLVE;
        else {
            k->refs++;
            k->resolving = 1;
        }
    }
    if (err != 0) {
        if (r != NULL) {
            *r = k->res;
            r->status = err;
            r->stage = stage;
        }
        c->_connect = NULL;
        k->c = NULL;
        unref(k);
        return err < 0 ? err : UV_ECONNREFUSED;
    }
    if (o->timeout_ms > 0) {
        uv_timer_init(k->loop, &k->timer);
        uv_timer_start(&k->timer, timer_cb, o->timeout_ms, 0);
        k->has_timer = 1;
        k->refs++;
    }
    unref(k);
    return 0;
}

void shunt_connect_cancel(struct shunt_conn *c)
{
    struct shunt_connect *k = c->_connect;
    if (k == NULL)
        return;
    /* A lookup still queued is dropped; one running completes and is ignored. The connect
     * request ends with UV_ECANCELED when the owner closes the socket. */
    if (k->resolving)
        uv_cancel((uv_req_t *)&k->gai);
    detach(k);
}
