/* src/capture/recorder.c - from proxy events to capture rows.
 *
 * Loop threads (shunt_recorder_on_event) assemble each exchange in the connection's slot as
 * its events arrive and push self-contained records to a bounded queue: one when the request
 * head is seen (the exchange's row, pending), one when the exchange is done (the row
 * complete); connection and upstream opens and closes are records of their own. The store
 * thread takes whatever is queued every few milliseconds and writes it in one transaction.
 * The loops never wait for it: when the queue is full a record is dropped and counted, and
 * the capture says it is incomplete.
 *
 * Most exchanges end within the batch in which they began: then the end's record, pushed
 * while the start's is still queued, marks that one to be skipped, and the row is written
 * once, complete. Otherwise the start's record writes the row pending and the end's
 * completes it by its id, which the loop thread gave it at the start.
 */
#include "capture/recorder.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "capture/db.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/version.h"
#include "http/auth.h"
#include "http/target.h"

/* ------------------------------------------------------------------------ records */

enum rkind {
    RK_CONN_OPEN,
    RK_CONN_CLOSE,
    RK_UP_OPEN,
    RK_UP_CLOSE,
    RK_EX_START, /* the request head was seen: the exchange's row, pending */
    RK_EX_SENT,  /* that head went out later: the pending row's head as sent */
    RK_EXCHANGE, /* the exchange ended: its row, complete */
    RK_TLS,      /* a TLS handshake ended: a tls row (its strings in the TF_* spans) */
};

/* exchanges.flags (schema.sql) */
#define FL_CHANGED 1  /* a rule, a user's option or a repair changed the message */
#define FL_ERROR 2
#define FL_TRUNCATED 4
#define FL_TUNNEL 8
#define FL_PENDING 16 /* the request head was seen, the exchange has not ended */
#define FL_ROUTINE 32 /* only the rewrites every forward proxy makes (changes by "proxy") */
#define FL_OWN 64     /* shunt answered itself: no server response reached the client */

/* The variable parts of a record, as spans into its data. */
enum xf {
    XF_METHOD,
    XF_URL,
    XF_HOST,
    XF_PATH,
    XF_VERSION,
    XF_REQ_HEAD,
    XF_REQ_SENT,
    XF_RESP_HEAD,
    XF_RESP_SENT,
    XF_INTERIM,
    XF_ERROR,
    XF_AUTH,
    XF_ADDR,      /* connection: client address; upstream: remote address */
    XF_ADDR2,     /* connection: listening address; upstream: origin host */
    XF_REQ_BODY,  /* from here on, each in a buffer of its own while being assembled */
    XF_RESP_BODY,
    XF_CHANGES,   /* "what\0by\0" + '0' or '1' (in_request), repeated */
    XF_COUNT
};
#define XF_OWN_BUFFER XF_REQ_BODY

/* An RK_TLS record's strings, in the spans an exchange's record uses for others. */
enum tf {
    TF_SNI = XF_METHOD,
    TF_ALPN,
    TF_VERSION,
    TF_CIPHER,
    TF_SUBJECT,
    TF_ISSUER,
    TF_SAN,
    TF_SHA256,
    TF_ERROR,
    TF_COUNT
};
_Static_assert((int)TF_COUNT <= (int)XF_COUNT, "an RK_TLS record's strings fit in its spans");
/* Bytes kept of each: a peer's certificate can say anything at any length (decision 7). */
#define TF_MAX 4096

#define SPAN_NULL UINT32_MAX

struct span {
    uint32_t off;
    uint32_t len; /* SPAN_NULL: SQL NULL */
};

struct rec {
    struct rec *next;
    enum rkind kind;
    int pooled; /* REC_POOLED bytes, from the pool (see rec_new()) */
    int skip;   /* RK_EX_START, RK_EX_SENT: the exchange's end came in the same batch */
    int update; /* RK_EXCHANGE: its row was written pending: complete it */
    uint32_t changes_from; /* RK_EXCHANGE: bytes of XF_CHANGES written with the row already */
    uint32_t changes_to;   /* RK_EX_START, RK_EX_SENT: bytes of the exchange's changes so far */
    uint64_t id; /* exchanges.id */
    uint64_t conn_id, up_id, idx;
    int64_t wall_us; /* when it happened */
    int port1, port2, port3;
    int closer, how, tunnel;
    uint64_t bytes_in, bytes_out;
    int status, reused, flags;
    uint64_t req_bytes, resp_bytes, req_body_size, resp_body_size, duration_us, n_exchanges;
    int64_t t_dns, t_connect, t_send, t_wait, t_receive, t_ssl;
    int req_trunc, resp_trunc;
    unsigned tls_close;              /* closes: SHUNT_TLS_* bits */
    int side, verify, insecure;      /* RK_TLS */
    int64_t not_before, not_after;   /* RK_TLS: unix seconds, 0 unknown */
    struct span f[XF_COUNT];
    size_t len;
    char data[];
};

/* A growable byte buffer for assembling. */
struct rbuf {
    char *p;
    size_t len, cap;
};

static void rbuf_add(struct rbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            fputs("shunt: out of memory\n", stderr);
            abort();
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void rbuf_free(struct rbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* The exchange being assembled on one client connection (its slot). */
struct pending {
    struct rbuf misc;                    /* heads and strings */
    struct rbuf own[XF_COUNT - XF_OWN_BUFFER]; /* bodies, changes */
    struct span f[XF_OWN_BUFFER];        /* spans into misc */
    int has_own[XF_COUNT - XF_OWN_BUFFER];
    int req_trunc, resp_trunc;
    int by_other;           /* a change by a rule, an option or a repair: flag C */
    int by_proxy;           /* a routine rewrite (by "proxy"): flag 32 unless C */
    int n_changes[2];       /* changes reported to the response [0] and request [1] head */
    int unexplained;        /* a head went out changed with no change reported for it: C */
    int answered;           /* shunt answered itself */
    uint64_t id;            /* the exchange's row id; 0 before its first record */
    /* The records that wrote the row early (start, head sent later): while one is still
     * queued (its batch is <gen>), the end's record can make it unnecessary. Dereferenced
     * under the queue's mutex only, and only while queued: the store thread frees them once
     * taken. */
    struct rec *early[2];
    uint64_t early_gen[2];
    uint32_t early_changes[2]; /* bytes of changes written with the row by each */
    int n_early;
    int start_lost; /* the start's record was dropped: no row to complete */
    uint64_t n_exchanges;
    char auth[16];
    /* The authority of the connection's CONNECT, for the URL of an https request inside
     * (an intercepted tunnel's requests are origin-form). Kept across exchanges. */
    char tunnel_auth[256];
};

/* ------------------------------------------------------------------------ the recorder */

struct shunt_recorder {
    sqlite3 *db;
    char path[1024];
    size_t body_limit;
    int64_t wall_offset_us; /* wall clock minus the events' monotonic clock */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rec *head, *tail; /* the queue */
    uint64_t gen;            /* batches taken so far: a record pushed now is taken in this one */
    _Atomic uint64_t next_id; /* the last exchange id given */
    size_t n_queued, bytes_queued;
    size_t max_records, max_bytes;
    int stop;
    _Atomic uint64_t dropped;
    pthread_t thread;
    pthread_t checkpointer; /* moves the WAL into the database, off the writer's path */
    pthread_cond_t ckpt_cv; /* wakes it to stop */
    sqlite3 *ckpt_db;       /* its own connection */
    struct rec **pool;      /* spare records of REC_POOLED bytes (under <mu>) */
    size_t n_pool;
    struct rec **returned;  /* the store thread's: records written, for the pool */
    size_t n_returned;
    int wal_frames;         /* frames in the WAL after the last commit (store thread) */
    int wal_restart_frames; /* WAL_RESTART_BYTES in frames */
    int failed; /* the store hit an SQLite error: recording stopped (logged) */

    sqlite3_stmt *st_conn_open, *st_conn_close, *st_up_open, *st_up_close, *st_exchange,
        *st_ex_update, *st_ex_sent, *st_body, *st_change, *st_auth, *st_dropped, *st_tls,
        *st_conn_tls, *st_conn_tls_close, *st_up_tls_close;
};

unsigned shunt_recorder_mask(void)
{
    return (1u << SHUNT_EV_CONN_OPEN) | (1u << SHUNT_EV_UPSTREAM_OPEN) |
           (1u << SHUNT_EV_REQUEST_HEAD) | (1u << SHUNT_EV_RESPONSE_HEAD) |
           (1u << SHUNT_EV_BODY) | (1u << SHUNT_EV_CHANGE) | (1u << SHUNT_EV_EXCHANGE_DONE) |
           (1u << SHUNT_EV_UPSTREAM_CLOSE) | (1u << SHUNT_EV_CONN_CLOSE) | (1u << SHUNT_EV_TLS);
}

uint64_t shunt_recorder_dropped(const struct shunt_recorder *r)
{
    return atomic_load(&((struct shunt_recorder *)r)->dropped);
}

static int64_t wall_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int64_t mono_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------ the record pool */

/*
 * Records are made by the loop threads and freed by the store thread. With malloc and free
 * that round trip crosses threads (and arenas): the loop thread's malloc never finds the
 * memory it gave away, and glibc trims what the store thread frees back to the system
 * between batches, only for the loop thread to fault it in and zero it again (perf: page
 * faults, _int_malloc and memset on the loop thread). So records up to REC_POOLED bytes
 * come back to a pool: the store thread returns each batch's under the queue's mutex, when
 * it takes the next; a loop thread takes REC_GRAB at a time into a cache of its own. Pool
 * and caches are arrays of pointers: moving records between them touches no record (a list
 * would chase one cache miss per record, under the mutex).
 */
#define REC_POOLED 2048
#define REC_POOL_KEEP 8192 /* records the pool keeps (16 MiB); more are freed */
#define REC_GRAB 32

/* A thread's spare records. Freed when the thread exits (a key's destructor), or with the
 * process: a spare record is no one's but the thread's. */
struct rec_cache {
    struct rec *r[REC_GRAB];
    size_t n;
};
static _Thread_local struct rec_cache rec_cache;
static pthread_key_t rec_cache_key;
static pthread_once_t rec_cache_once = PTHREAD_ONCE_INIT;

static void rec_cache_free(void *arg)
{
    struct rec_cache *c = arg;
    while (c->n > 0)
        free(c->r[--c->n]);
}

static void rec_cache_key_make(void)
{
    (void)pthread_key_create(&rec_cache_key, rec_cache_free);
}

/* A record of <data_len> bytes of data, its fields NULL. Loop threads. */
static struct rec *rec_new(struct shunt_recorder *rc, size_t data_len)
{
    struct rec *r;
    if (sizeof(*r) + data_len > REC_POOLED) {
        r = shunt_xcalloc(sizeof(*r) + data_len);
        r->pooled = 0;
    } else {
        struct rec_cache *c = &rec_cache;
        if (c->n == 0) {
            pthread_once(&rec_cache_once, rec_cache_key_make);
            pthread_setspecific(rec_cache_key, c); /* its destructor frees it at exit */
            pthread_mutex_lock(&rc->mu);
            size_t k = rc->n_pool < REC_GRAB ? rc->n_pool : REC_GRAB;
            rc->n_pool -= k;
            memcpy(c->r, rc->pool + rc->n_pool, k * sizeof(c->r[0]));
            c->n = k;
            pthread_mutex_unlock(&rc->mu);
        }
        r = c->n > 0 ? c->r[--c->n] : shunt_xcalloc(REC_POOLED);
        r->pooled = 1;
    }
    int pooled = r->pooled;
    memset(r, 0, offsetof(struct rec, f));
    r->pooled = pooled;
    r->len = data_len;
    for (int i = 0; i < XF_COUNT; i++)
        r->f[i].len = SPAN_NULL;
    return r;
}

/* A record the queue would not take. Loop threads. */
static void rec_drop(struct rec *r)
{
    if (r->pooled && rec_cache.n < REC_GRAB)
        rec_cache.r[rec_cache.n++] = r;
    else
        free(r);
}

/* A record the store thread is done with: kept for the pool, up to REC_POOL_KEEP waiting.
 * Store thread. */
static void rec_release(struct shunt_recorder *rc, struct rec *r)
{
    if (r->pooled && rc->n_returned < REC_POOL_KEEP)
        rc->returned[rc->n_returned++] = r;
    else
        free(r);
}

/* Moves the records released to the pool, up to REC_POOL_KEEP in it; those left in
 * rc->returned are for the caller to free, outside the mutex. Store thread, under the
 * mutex. */
static void pool_refill(struct shunt_recorder *rc)
{
    size_t room = REC_POOL_KEEP - rc->n_pool, k = rc->n_returned < room ? rc->n_returned : room;
    memcpy(rc->pool + rc->n_pool, rc->returned + rc->n_returned - k, k * sizeof(rc->pool[0]));
    rc->n_pool += k;
    rc->n_returned -= k;
}

/* Queues <r>, or drops it when the queue is full; returns 1 when queued. For the records of
 * an exchange, <p> is its pending state: an early record is remembered there, and the end's
 * record skips those still queued (see the file's comment). Loop threads. */
static int push(struct shunt_recorder *rc, struct rec *r, struct pending *p)
{
    size_t size = sizeof(*r) + r->len;
    int wake = 0;
    pthread_mutex_lock(&rc->mu);
    if (rc->n_queued >= rc->max_records || rc->bytes_queued + size > rc->max_bytes || rc->stop ||
        rc->failed) {
        pthread_mutex_unlock(&rc->mu);
        atomic_fetch_add(&rc->dropped, 1);
        rec_drop(r);
        return 0;
    }
    if (r->kind == RK_EX_START || r->kind == RK_EX_SENT) {
        p->early[p->n_early] = r;
        p->early_gen[p->n_early] = rc->gen;
        p->early_changes[p->n_early] = r->changes_to;
        p->n_early++;
    } else if (r->kind == RK_EXCHANGE && p != NULL) {
        /* A record taken by the store thread has written the row; one still queued is
         * skipped, and this one writes what it would have (the later ones are queued when
         * an earlier one is: batches are taken in order). */
        for (int i = 0; i < p->n_early; i++) {
            if (p->early_gen[i] == rc->gen) {
                p->early[i]->skip = 1;
            } else {
                r->update = 1;
                r->changes_from = p->early_changes[i];
            }
        }
    }
    r->next = NULL;
    if (rc->tail != NULL)
        rc->tail->next = r;
    else
        rc->head = r;
    rc->tail = r;
    rc->n_queued++;
    rc->bytes_queued += size;
    /* The store thread wakes by itself every few ms; a signal (a futex call) only when the
     * queue fills up faster than that. */
    wake = rc->n_queued == rc->max_records / 4;
    pthread_mutex_unlock(&rc->mu);
    if (wake)
        pthread_cond_signal(&rc->cv);
    return 1;
}


/* Appends <n> bytes to the misc buffer of <p> as field <x>. */
static void set_field(struct pending *p, enum xf x, const void *data, size_t n)
{
    p->f[x].off = (uint32_t)p->misc.len;
    p->f[x].len = (uint32_t)n;
    rbuf_add(&p->misc, data, n);
}

static void set_str(struct pending *p, enum xf x, const char *s)
{
    if (s != NULL)
        set_field(p, x, s, strlen(s));
}

/* Keeps the buffers for the connection's next exchange (no malloc per exchange), unless
 * one grew large (a big body): those go. */
static void rbuf_clear(struct rbuf *b)
{
    if (b->cap > 64 * 1024)
        rbuf_free(b);
    b->len = 0;
}

static void pending_reset(struct pending *p)
{
    rbuf_clear(&p->misc);
    for (int i = 0; i < XF_COUNT - XF_OWN_BUFFER; i++) {
        rbuf_clear(&p->own[i]);
        p->has_own[i] = 0;
    }
    for (int i = 0; i < XF_OWN_BUFFER; i++)
        p->f[i].len = SPAN_NULL;
    p->req_trunc = p->resp_trunc = 0;
    p->by_other = p->by_proxy = p->unexplained = p->answered = 0;
    p->n_changes[0] = p->n_changes[1] = 0;
    p->id = 0;
    p->n_early = 0;
    p->start_lost = 0;
    p->auth[0] = '\0';
}

static struct pending *pending_of(const struct shunt_event *ev)
{
    if (*ev->slot == NULL) {
        struct pending *p = shunt_xcalloc(sizeof(*p));
        for (int i = 0; i < XF_OWN_BUFFER; i++)
            p->f[i].len = SPAN_NULL;
        *ev->slot = p;
    }
    return *ev->slot;
}

/* ------------------------------------------------------------------------ assembling */

static int sent_differs(const struct shunt_event *ev)
{
    size_t off = 0;
    for (size_t i = 0; i < ev->sent.n_parts; i++) {
        const struct shunt_slice *s = &ev->sent.parts[i];
        if (off + s->len > ev->raw.len || memcmp(ev->raw.base + off, s->base, s->len) != 0)
            return 1;
        off += s->len;
    }
    return off != ev->raw.len;
}

static void add_sent(struct pending *p, enum xf x, const struct shunt_event *ev)
{
    p->f[x].off = (uint32_t)p->misc.len;
    size_t n = 0;
    for (size_t i = 0; i < ev->sent.n_parts; i++) {
        rbuf_add(&p->misc, ev->sent.parts[i].base, ev->sent.parts[i].len);
        n += ev->sent.parts[i].len;
    }
    p->f[x].len = (uint32_t)n;
}

/* The scheme of an Authorization or WWW-Authenticate value (http/auth.h, as the proxy reads
 * it: "Negotiate," is "Negotiate"). */
static void auth_scheme(const struct shunt_http_head *h, const char *name, size_t name_len,
                        char *out, size_t out_len)
{
    const struct shunt_http_header *f = shunt_http_find_header(h, name, name_len);
    if (f == NULL || out[0] != '\0')
        return;
    shunt_http_auth_scheme_copy(f->value, out, out_len);
}

/* The flags that the changes seen so far give (C, or routine) and an own answer. */
static int change_flags(const struct pending *p)
{
    int f = p->by_other || p->unexplained ? FL_CHANGED : p->by_proxy ? FL_ROUTINE : 0;
    return f | (p->answered ? FL_OWN : 0);
}

/* A head went out as <ev> says: kept when it differs from the one received; a difference
 * no change explains is shunt's, and counts as one (C). */
static void on_sent(struct pending *p, enum xf x, int in_request, const struct shunt_event *ev)
{
    if (!sent_differs(ev))
        return;
    add_sent(p, x, ev);
    if (p->n_changes[in_request] == 0)
        p->unexplained = 1;
}

static struct rbuf *changes_of(struct pending *p)
{
    return &p->own[XF_CHANGES - XF_OWN_BUFFER];
}

/* The row of an exchange whose request head was seen: pending, with what is known of the
 * request and the changes made to it so far. */
static void push_start(struct shunt_recorder *rc, struct pending *p, const struct shunt_event *ev)
{
    struct rbuf *ch = changes_of(p);
    struct rec *r = rec_new(rc, p->misc.len + ch->len);
    r->kind = RK_EX_START;
    r->id = p->id;
    r->conn_id = ev->conn_id;
    if (ev->sent.n_parts > 0) /* it went out: on the connection it names */
        r->up_id = ev->upstream_id;
    r->idx = ev->exchange;
    r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
    r->t_dns = r->t_connect = r->t_ssl = -1;
    r->flags = FL_PENDING | change_flags(p);
    if (p->misc.len > 0)
        memcpy(r->data, p->misc.p, p->misc.len);
    for (int i = 0; i < XF_OWN_BUFFER; i++)
        r->f[i] = p->f[i];
    if (ch->len > 0) {
        memcpy(r->data + p->misc.len, ch->p, ch->len);
        r->f[XF_CHANGES] = (struct span){(uint32_t)p->misc.len, (uint32_t)ch->len};
    }
    r->changes_to = (uint32_t)ch->len;
    if (!push(rc, r, p))
        p->start_lost = 1;
}

/* The pending row's head as sent, once it went out, with the changes made since. */
static void push_sent(struct shunt_recorder *rc, struct pending *p, const struct shunt_event *ev)
{
    if (p->start_lost || p->n_early == 0 || p->n_early == 2)
        return; /* no row to complete (the end's record writes it whole), or sent already */
    struct rbuf *ch = changes_of(p);
    uint32_t from = p->early_changes[p->n_early - 1];
    struct span sent = p->f[XF_REQ_SENT];
    size_t sl = sent.len == SPAN_NULL ? 0 : sent.len, cl = ch->len - from;
    struct rec *r = rec_new(rc, sl + cl);
    r->kind = RK_EX_SENT;
    r->id = p->id;
    r->up_id = ev->upstream_id;
    r->flags = FL_PENDING | change_flags(p);
    if (sent.len != SPAN_NULL) {
        memcpy(r->data, p->misc.p + sent.off, sl);
        r->f[XF_REQ_SENT] = (struct span){0, (uint32_t)sl};
    }
    if (cl > 0) {
        memcpy(r->data + sl, ch->p + from, cl);
        r->f[XF_CHANGES] = (struct span){(uint32_t)sl, (uint32_t)cl};
    }
    r->changes_to = (uint32_t)ch->len;
    push(rc, r, p);
}

static void on_request_head(struct shunt_recorder *rc, struct pending *p,
                            const struct shunt_event *ev)
{
    /* no reset here: the proxy reports its changes to a head before the head itself */
    if (ev->again && p->f[XF_REQ_HEAD].len != SPAN_NULL) {
        /* reported when it began to wait; now it went out */
        on_sent(p, XF_REQ_SENT, 1, ev);
        push_sent(rc, p, ev);
        return;
    }
    set_field(p, XF_REQ_HEAD, ev->raw.base, ev->raw.len);
    const struct shunt_http_head *h = ev->head;
    if (h == NULL)
        return; /* a request the parser rejected: its bytes are the evidence; it ends now */
    if (ev->sent.n_parts > 0) /* none: not sent (yet) */
        on_sent(p, XF_REQ_SENT, 1, ev);
    set_field(p, XF_METHOD, h->method.base, h->method.len);
    set_str(p, XF_VERSION, h->minor_version ? "HTTP/1.1" : "HTTP/1.0");
    struct shunt_slice t = h->target, auth = h->host, path = t;
    if (auth.base == NULL) /* an HTTP/1.0 request without Host: no pointer to step over */
        auth = shunt_slice_make("", 0);
    int is_connect = SHUNT_SLICE_IEQ_LIT(h->method, "CONNECT");
    /* absolute-form: http://, or https:// (a client inside an intercepted tunnel may send
     * one) */
    struct shunt_target st;
    enum shunt_target_form form = shunt_http_split_target(t, is_connect, &st);
    if (form == SHUNT_TARGET_ABSOLUTE &&
        (SHUNT_SLICE_IEQ_LIT(st.scheme, "http") || SHUNT_SLICE_IEQ_LIT(st.scheme, "https"))) {
        auth = st.authority;
        path = st.path.len > 0 ? st.path : SHUNT_SLICE_LIT("/");
        set_field(p, XF_URL, t.base, t.len);
    } else if (is_connect) {
        auth = t;
        path = shunt_slice_make(NULL, 0);
        set_field(p, XF_URL, t.base, t.len);
        if (t.len < sizeof(p->tunnel_auth)) { /* for the requests inside, if intercepted */
            memcpy(p->tunnel_auth, t.base, t.len);
            p->tunnel_auth[t.len] = '\0';
        }
    } else {
        /* origin-form: the URL is made whole from the scheme the request came in (https
         * inside TLS), the authority, and the target. Inside an intercepted tunnel the
         * authority is the CONNECT's, where shunt routed the request: the client's Host
         * may name another one (or leave out the port), and stays visible in the head.
         * Elsewhere (plain, --reverse https://) it is the Host. */
        int https = ev->scheme != NULL && strcmp(ev->scheme, "https") == 0;
        if (https && p->tunnel_auth[0] != '\0') {
            size_t al = strlen(p->tunnel_auth);
            /* https's own port left out, as a client writes the URL */
            if (al > 4 && memcmp(p->tunnel_auth + al - 4, ":443", 4) == 0)
                al -= 4;
            auth = shunt_slice_make(p->tunnel_auth, al);
        }
        const char *scheme = https ? "https://" : "http://";
        size_t sl = strlen(scheme);
        p->f[XF_URL].off = (uint32_t)p->misc.len;
        rbuf_add(&p->misc, scheme, sl);
        rbuf_add(&p->misc, auth.base, auth.len);
        rbuf_add(&p->misc, t.base, t.len);
        p->f[XF_URL].len = (uint32_t)(sl + auth.len + t.len);
    }
    /* host: lower case, without user info, port and IPv6 brackets, read as far as it goes
     * (a request the proxy refused is recorded too) */
    struct shunt_authority au;
    (void)shunt_http_split_authority(auth, 0, SHUNT_AUTHORITY_USERINFO, &au);
    size_t hl = au.host.len;
    set_field(p, XF_HOST, au.host.base, hl);
    for (char *c = p->misc.p + p->f[XF_HOST].off, *e = c + hl; c < e; c++)
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c;
    set_field(p, XF_PATH, path.base, path.len);
    auth_scheme(h, "Authorization", 13, p->auth, sizeof(p->auth));
    push_start(rc, p, ev);
}

static void on_response_head(struct pending *p, const struct shunt_event *ev)
{
    if (ev->own) { /* shunt's own answer: no head received, the one sent */
        add_sent(p, XF_RESP_SENT, ev);
        p->answered = 1;
        return;
    }
    const struct shunt_http_head *h = ev->head;
    if (h->status < 200 && h->status != 101) {
        /* interim: kept together, as received */
        struct span *f = &p->f[XF_INTERIM];
        if (f->len == SPAN_NULL) {
            f->off = (uint32_t)p->misc.len;
            f->len = 0;
        } else if (f->off + f->len != p->misc.len) {
            /* something came between two interim heads: copy the earlier ones to the end */
            struct rbuf tmp = {0};
            rbuf_add(&tmp, p->misc.p + f->off, f->len);
            f->off = (uint32_t)p->misc.len;
            rbuf_add(&p->misc, tmp.p, tmp.len);
            rbuf_free(&tmp);
        }
        rbuf_add(&p->misc, ev->raw.base, ev->raw.len);
        f->len += (uint32_t)ev->raw.len;
        return;
    }
    set_field(p, XF_RESP_HEAD, ev->raw.base, ev->raw.len);
    on_sent(p, XF_RESP_SENT, 0, ev);
    if (h->status == 401)
        auth_scheme(h, "WWW-Authenticate", 16, p->auth, sizeof(p->auth));
}

static void on_body(struct shunt_recorder *rc, struct pending *p, const struct shunt_event *ev)
{
    int x = (ev->from_client ? XF_REQ_BODY : XF_RESP_BODY) - XF_OWN_BUFFER;
    int *trunc = ev->from_client ? &p->req_trunc : &p->resp_trunc;
    p->has_own[x] = 1;
    if (ev->body_offset >= rc->body_limit) {
        *trunc = 1;
        return;
    }
    size_t room = rc->body_limit - (size_t)ev->body_offset, n = ev->data.len;
    if (n > room) {
        n = room;
        *trunc = 1;
    }
    rbuf_add(&p->own[x], ev->data.base, n);
}

static void on_change(struct pending *p, const struct shunt_event *ev)
{
    struct rbuf *b = changes_of(p);
    p->has_own[XF_CHANGES - XF_OWN_BUFFER] = 1;
    rbuf_add(b, ev->what, strlen(ev->what) + 1);
    rbuf_add(b, ev->by, strlen(ev->by) + 1);
    rbuf_add(b, ev->in_request ? "1" : "0", 1);
    if (strcmp(ev->by, "proxy") == 0)
        p->by_proxy = 1;
    else
        p->by_other = 1;
    p->n_changes[ev->in_request ? 1 : 0]++;
}

static void host_of_url(struct pending *p, const char *url);

static void on_exchange_done(struct shunt_recorder *rc, struct pending *p,
                             const struct shunt_event *ev)
{
    /* no head seen (a request rejected by the parser): the proxy's names for it */
    if (p->f[XF_METHOD].len == SPAN_NULL && ev->method != NULL && strcmp(ev->method, "-") != 0)
        set_str(p, XF_METHOD, ev->method);
    if (p->f[XF_URL].len == SPAN_NULL && ev->url != NULL && strcmp(ev->url, "-") != 0) {
        set_str(p, XF_URL, ev->url);
        if (p->f[XF_HOST].len == SPAN_NULL)
            host_of_url(p, ev->url);
    }
    size_t total = p->misc.len;
    for (int i = 0; i < XF_COUNT - XF_OWN_BUFFER; i++)
        total += p->own[i].len;
    if (ev->error != NULL)
        total += strlen(ev->error);
    size_t auth_len = strlen(p->auth);
    total += auth_len;

    struct rec *r = rec_new(rc, total);
    r->kind = RK_EXCHANGE;
    r->id = p->id ? p->id : atomic_fetch_add(&rc->next_id, 1) + 1;
    r->conn_id = ev->conn_id;
    /* shunt's own answer: no upstream answered, whichever the connection used last */
    r->up_id = p->answered ? 0 : ev->upstream_id;
    r->idx = ev->exchange;
    r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
    r->duration_us = ev->duration_us;
    r->status = ev->status;
    r->reused = ev->upstream_reused;
    r->req_bytes = ev->req_bytes;
    r->resp_bytes = ev->resp_bytes;
    r->req_body_size = ev->req_body_size;
    r->resp_body_size = ev->resp_body_size;
    r->t_dns = ev->t_dns_us;
    r->t_connect = ev->t_connect_us;
    r->t_send = ev->t_send_us;
    r->t_wait = ev->t_wait_us;
    r->t_receive = ev->t_receive_us;
    /* HAR 1.2: connect includes the TLS handshake; the capture keeps HAR's meaning. Only an
     * https exchange on a new upstream had one (an event of another kind may say 0). */
    int https = ev->scheme != NULL && strcmp(ev->scheme, "https") == 0;
    r->t_ssl = https && ev->t_connect_us >= 0 && ev->t_ssl_us >= 0 ? (int64_t)ev->t_ssl_us : -1;
    if (r->t_ssl > 0 && r->t_connect >= 0)
        r->t_connect += r->t_ssl;
    r->req_trunc = p->req_trunc;
    r->resp_trunc = p->resp_trunc;
    r->flags = change_flags(p) | (ev->error ? FL_ERROR : 0) |
               (p->req_trunc || p->resp_trunc ? FL_TRUNCATED : 0) | (ev->tunnel ? FL_TUNNEL : 0);
    if (p->misc.len > 0) /* an empty buffer may have no memory at all: memcpy(NULL) is UB */
        memcpy(r->data, p->misc.p, p->misc.len);
    size_t off = p->misc.len;
    for (int i = 0; i < XF_OWN_BUFFER; i++)
        r->f[i] = p->f[i];
    for (int i = 0; i < XF_COUNT - XF_OWN_BUFFER; i++) {
        if (!p->has_own[i])
            continue;
        if (p->own[i].len > 0)
            memcpy(r->data + off, p->own[i].p, p->own[i].len);
        r->f[XF_OWN_BUFFER + i] = (struct span){(uint32_t)off, (uint32_t)p->own[i].len};
        off += p->own[i].len;
    }
    if (ev->error != NULL) {
        size_t n = strlen(ev->error);
        memcpy(r->data + off, ev->error, n);
        r->f[XF_ERROR] = (struct span){(uint32_t)off, (uint32_t)n};
        off += n;
    }
    if (auth_len > 0) {
        memcpy(r->data + off, p->auth, auth_len);
        r->f[XF_AUTH] = (struct span){(uint32_t)off, (uint32_t)auth_len};
        off += auth_len;
    }
    p->n_exchanges = ev->exchange;
    push(rc, r, p);
    pending_reset(p);
}

/* The host and path of an exchange that has a URL but no head (a TLS handshake that failed
 * is an exchange with the URL "https://HOST[:PORT]/"): from the URL, as the views want. */
static void host_of_url(struct pending *p, const char *url)
{
    const char *a = strstr(url, "://");
    if (a == NULL)
        return;
    a += 3;
    size_t n = strcspn(a, "/?#");
    const char *hs = a, *he = a + n;
    if (n > 0 && hs[0] == '[') {
        const char *close = memchr(hs, ']', n);
        hs++;
        he = close ? close : he;
    } else {
        const char *colon = memchr(hs, ':', n);
        he = colon ? colon : he;
    }
    set_field(p, XF_HOST, hs, (size_t)(he - hs));
    for (char *c = p->misc.p + p->f[XF_HOST].off, *e = c + (he - hs); c < e; c++)
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c;
    if (p->f[XF_PATH].len == SPAN_NULL)
        set_str(p, XF_PATH, a[n] != '\0' ? a + n : "/");
}

/* A TLS handshake's end: one record with its facts, every string cut at TF_MAX. */
static void on_tls(struct shunt_recorder *rc, const struct shunt_event *ev)
{
    const struct shunt_tls_facts *t = ev->tls;
    if (t == NULL)
        return;
    const char *str[TF_COUNT - TF_SNI] = {t->sni,         t->alpn,       t->version,
                                          t->cipher,      t->cert_subject, t->cert_issuer,
                                          t->cert_san,    t->cert_sha256, t->error};
    size_t len[TF_COUNT - TF_SNI], total = 0;
    for (int i = 0; i < TF_COUNT - TF_SNI; i++) {
        len[i] = str[i] != NULL ? strnlen(str[i], TF_MAX) : 0;
        total += len[i];
    }
    struct rec *r = rec_new(rc, total);
    r->kind = RK_TLS;
    r->conn_id = ev->conn_id;
    r->up_id = t->side ? ev->upstream_id : 0;
    r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
    r->side = t->side ? 1 : 0;
    r->duration_us = t->handshake_us;
    r->verify = t->verify_result;
    r->insecure = t->insecure != 0;
    r->not_before = t->cert_not_before;
    r->not_after = t->cert_not_after;
    size_t off = 0;
    for (int i = 0; i < TF_COUNT - TF_SNI; i++) {
        /* "" is unknown (NULL in the row), but an error is never empty when there is one */
        if (str[i] == NULL || (len[i] == 0 && TF_SNI + i != TF_ERROR))
            continue;
        memcpy(r->data + off, str[i], len[i]);
        r->f[TF_SNI + i] = (struct span){(uint32_t)off, (uint32_t)len[i]};
        off += len[i];
    }
    push(rc, r, NULL);
}

/* A connection or upstream record, with up to two strings. */
static struct rec *rec_endpoints(struct shunt_recorder *rc, enum rkind kind, const char *a,
                                 const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    struct rec *r = rec_new(rc, la + lb);
    r->kind = kind;
    if (a != NULL) {
        memcpy(r->data, a, la);
        r->f[XF_ADDR] = (struct span){0, (uint32_t)la};
    }
    if (b != NULL) {
        memcpy(r->data + la, b, lb);
        r->f[XF_ADDR2] = (struct span){(uint32_t)la, (uint32_t)lb};
    }
    return r;
}

void shunt_recorder_on_event(const struct shunt_event *ev, void *ud)
{
    struct shunt_recorder *rc = ud;
    struct rec *r;
    switch (ev->type) {
    case SHUNT_EV_CONN_OPEN:
        r = rec_endpoints(rc, RK_CONN_OPEN, ev->peer_addr, ev->local_addr);
        r->conn_id = ev->conn_id;
        r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
        r->port1 = ev->peer_port;
        r->port2 = ev->local_port;
        push(rc, r, NULL);
        break;
    case SHUNT_EV_UPSTREAM_OPEN:
        r = rec_endpoints(rc, RK_UP_OPEN, ev->peer_addr, ev->origin_host);
        r->port3 = ev->origin_port;
        r->conn_id = ev->conn_id;
        r->up_id = ev->upstream_id;
        r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
        r->port1 = ev->peer_port;
        r->port2 = ev->local_port;
        push(rc, r, NULL);
        break;
    case SHUNT_EV_REQUEST_HEAD: {
        struct pending *p = pending_of(ev);
        if (p->id == 0 && ev->head != NULL)
            p->id = atomic_fetch_add(&rc->next_id, 1) + 1;
        on_request_head(rc, p, ev);
        break;
    }
    case SHUNT_EV_RESPONSE_HEAD:
        on_response_head(pending_of(ev), ev);
        break;
    case SHUNT_EV_BODY:
        if (!ev->tunnel)
            on_body(rc, pending_of(ev), ev);
        break;
    case SHUNT_EV_CHANGE:
        on_change(pending_of(ev), ev);
        break;
    case SHUNT_EV_EXCHANGE_DONE:
        on_exchange_done(rc, pending_of(ev), ev);
        break;
    case SHUNT_EV_UPSTREAM_CLOSE:
        r = rec_new(rc, 0);
        r->kind = RK_UP_CLOSE;
        r->up_id = ev->upstream_id;
        r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
        r->closer = ev->closer;
        r->how = ev->how;
        r->bytes_in = ev->bytes_in;
        r->bytes_out = ev->bytes_out;
        r->conn_id = ev->conn_id;
        r->tls_close = ev->tls_close;
        push(rc, r, NULL);
        break;
    case SHUNT_EV_CONN_CLOSE: {
        struct pending *p = *ev->slot;
        r = rec_new(rc, 0);
        r->kind = RK_CONN_CLOSE;
        r->conn_id = ev->conn_id;
        r->wall_us = (int64_t)ev->time_us + rc->wall_offset_us;
        r->closer = ev->closer;
        r->how = ev->how;
        r->bytes_in = ev->bytes_in;
        r->bytes_out = ev->bytes_out;
        r->tunnel = ev->tunnel;
        r->tls_close = ev->tls_close;
        r->n_exchanges = p ? p->n_exchanges : 0;
        push(rc, r, NULL);
        if (p != NULL) {
            rbuf_free(&p->misc);
            for (int i = 0; i < XF_COUNT - XF_OWN_BUFFER; i++)
                rbuf_free(&p->own[i]);
            free(p);
            *ev->slot = NULL;
        }
        break;
    }
    case SHUNT_EV_TLS:
        on_tls(rc, ev);
        break;
    }
}

/* ------------------------------------------------------------------------ the store thread */

static const char *closer_text(int c)
{
    return c == SHUNT_CLOSER_NONE ? NULL : shunt_closer_name((enum shunt_closer)c);
}

static const char *how_text(int h)
{
    return h == SHUNT_CLOSE_NONE ? NULL : shunt_close_how_name((enum shunt_close_how)h);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Binds field <x> of <r> as text (or blob) at parameter <i>; NULL when absent. The bytes
 * stay put until the statement is reset: SQLITE_STATIC. */
static void bind_span(sqlite3_stmt *st, int i, const struct rec *r, enum xf x, int blob)
{
    struct span f = r->f[x];
    if (f.len == SPAN_NULL)
        sqlite3_bind_null(st, i);
    else if (blob)
        sqlite3_bind_blob(st, i, r->data + f.off, (int)f.len, SQLITE_STATIC);
    else
        sqlite3_bind_text(st, i, r->data + f.off, (int)f.len, SQLITE_STATIC);
}

/* Steps <st> once and resets it. Every statement's parameters are all bound before each
 * run, so the bindings are not cleared (their SQLITE_STATIC pointers into a freed record
 * are never read again). */
static int run(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        shunt_log(SHUNT_LOG_ERROR, "capture: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Writes the changes of exchange record <r> from byte <from> of its XF_CHANGES on. */
static int write_changes(struct shunt_recorder *rc, const struct rec *r, uint32_t from)
{
    if (r->f[XF_CHANGES].len == SPAN_NULL || from >= r->f[XF_CHANGES].len)
        return 0;
    const char *p = r->data + r->f[XF_CHANGES].off + from;
    const char *end = r->data + r->f[XF_CHANGES].off + r->f[XF_CHANGES].len;
    while (p < end) {
        const char *what = p, *by = what + strlen(what) + 1, *inreq = by + strlen(by) + 1;
        sqlite3_stmt *st = rc->st_change;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
        sqlite3_bind_int(st, 2, *inreq == '1');
        sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
        if (run(rc->db, st) != 0)
            return -1;
        p = inreq + 1;
    }
    return 0;
}

/* A tls row; the client's side also marks its connection as TLS, unless what came was not
 * TLS at all (the tunnel stayed a tunnel). */
static int write_tls(struct shunt_recorder *rc, const struct rec *r)
{
    sqlite3_stmt *st = rc->st_tls;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->conn_id);
    if (r->up_id)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->up_id);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int(st, 3, r->side);
    sqlite3_bind_int64(st, 4, r->wall_us);
    for (int i = TF_SNI; i < TF_COUNT; i++)
        bind_span(st, 5 + (i - TF_SNI), r, (enum xf)i, 0);
    /* 5..13: sni, alpn, version, cipher, subject, issuer, san, sha256, error */
    if (r->not_before)
        sqlite3_bind_int64(st, 14, r->not_before);
    else
        sqlite3_bind_null(st, 14);
    if (r->not_after)
        sqlite3_bind_int64(st, 15, r->not_after);
    else
        sqlite3_bind_null(st, 15);
    sqlite3_bind_int64(st, 16, (sqlite3_int64)r->duration_us);
    if (r->side)
        sqlite3_bind_int(st, 17, r->verify);
    else
        sqlite3_bind_null(st, 17);
    sqlite3_bind_int(st, 18, r->insecure);
    if (run(rc->db, st) != 0)
        return -1;
    struct span e = r->f[TF_ERROR];
    if (r->side || (e.len != SPAN_NULL && e.len >= 7 && memcmp(r->data + e.off, "not TLS", 7) == 0))
        return 0;
    st = rc->st_conn_tls;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->conn_id);
    return run(rc->db, st);
}

static int write_rec(struct shunt_recorder *rc, const struct rec *r)
{
    sqlite3_stmt *st;
    switch (r->kind) {
    case RK_CONN_OPEN:
        st = rc->st_conn_open;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->conn_id);
        bind_span(st, 2, r, XF_ADDR, 0);
        sqlite3_bind_int(st, 3, r->port1);
        bind_span(st, 4, r, XF_ADDR2, 0);
        sqlite3_bind_int(st, 5, r->port2);
        sqlite3_bind_int64(st, 6, r->wall_us);
        return run(rc->db, st);
    case RK_CONN_CLOSE:
        st = rc->st_conn_close;
        sqlite3_bind_int64(st, 1, r->wall_us);
        bind_text_or_null(st, 2, closer_text(r->closer));
        bind_text_or_null(st, 3, how_text(r->how));
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->bytes_in);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->bytes_out);
        sqlite3_bind_int(st, 6, r->tunnel);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)r->n_exchanges);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)r->conn_id);
        if (run(rc->db, st) != 0)
            return -1;
        if (r->tls_close == 0)
            return 0;
        st = rc->st_conn_tls_close;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->tls_close);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->conn_id);
        return run(rc->db, st);
    case RK_UP_OPEN:
        st = rc->st_up_open;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->up_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->conn_id);
        bind_span(st, 3, r, XF_ADDR2, 0);
        sqlite3_bind_int(st, 4, r->port3);
        bind_span(st, 5, r, XF_ADDR, 0);
        sqlite3_bind_int(st, 6, r->port1);
        sqlite3_bind_int(st, 7, r->port2);
        sqlite3_bind_int64(st, 8, r->wall_us);
        return run(rc->db, st);
    case RK_UP_CLOSE:
        st = rc->st_up_close;
        sqlite3_bind_int64(st, 1, r->wall_us);
        bind_text_or_null(st, 2, closer_text(r->closer));
        bind_text_or_null(st, 3, how_text(r->how));
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->bytes_in);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->bytes_out);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->up_id);
        if (run(rc->db, st) != 0)
            return -1;
        if (r->tls_close == 0)
            return 0;
        st = rc->st_up_tls_close;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->tls_close);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->conn_id);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->up_id);
        return run(rc->db, st);
    case RK_TLS:
        return write_tls(rc, r);
    case RK_EX_START:
    case RK_EX_SENT:
    case RK_EXCHANGE:
        break;
    }
    if (r->skip)
        return 0; /* the exchange ended in this batch: its end's record writes the row */
    if (r->kind == RK_EX_SENT) {
        st = rc->st_ex_sent;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
        bind_span(st, 2, r, XF_REQ_SENT, 1);
        sqlite3_bind_int(st, 3, r->flags);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->up_id);
        if (run(rc->db, st) != 0)
            return -1;
        return write_changes(rc, r, 0);
    }
    /* The whole row; a start's record leaves the response's columns at their defaults. The
     * update binds the same parameters (its SET list has all but conn_id and idx). */
    st = r->update ? rc->st_ex_update : rc->st_exchange;
    int i = 1;
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->id);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->conn_id);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->idx);
    if (r->up_id) {
        sqlite3_bind_int64(st, i++, (sqlite3_int64)r->up_id);
        sqlite3_bind_int(st, i++, r->reused);
    } else {
        sqlite3_bind_null(st, i++);
        sqlite3_bind_null(st, i++);
    }
    sqlite3_bind_int64(st, i++, r->wall_us - (int64_t)r->duration_us);
    bind_span(st, i++, r, XF_METHOD, 0);
    bind_span(st, i++, r, XF_URL, 0);
    bind_span(st, i++, r, XF_HOST, 0);
    bind_span(st, i++, r, XF_PATH, 0);
    bind_span(st, i++, r, XF_VERSION, 0);
    if (r->status)
        sqlite3_bind_int(st, i++, r->status);
    else
        sqlite3_bind_null(st, i++);
    bind_span(st, i++, r, XF_REQ_HEAD, 1);
    bind_span(st, i++, r, XF_REQ_SENT, 1);
    bind_span(st, i++, r, XF_RESP_HEAD, 1);
    bind_span(st, i++, r, XF_RESP_SENT, 1);
    bind_span(st, i++, r, XF_INTERIM, 1);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->req_body_size);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->resp_body_size);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->req_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->resp_bytes);
    sqlite3_bind_int64(st, i++, r->t_dns);
    sqlite3_bind_int64(st, i++, r->t_connect);
    sqlite3_bind_int64(st, i++, r->t_send);
    sqlite3_bind_int64(st, i++, r->t_wait);
    sqlite3_bind_int64(st, i++, r->t_receive);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->duration_us);
    bind_span(st, i++, r, XF_ERROR, 0);
    sqlite3_bind_int(st, i++, r->flags);
    sqlite3_bind_int64(st, i++, r->t_ssl);
    if (run(rc->db, st) != 0)
        return -1;
    sqlite3_int64 id = (sqlite3_int64)r->id;
    if (r->kind == RK_EXCHANGE) {
        for (int dir = 0; dir < 2; dir++) {
            enum xf x = dir ? XF_RESP_BODY : XF_REQ_BODY;
            if (r->f[x].len == SPAN_NULL || r->f[x].len == 0)
                continue;
            st = rc->st_body;
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int(st, 2, dir);
            bind_span(st, 3, r, x, 1);
            sqlite3_bind_int(st, 4, dir ? r->resp_trunc : r->req_trunc);
            if (run(rc->db, st) != 0)
                return -1;
        }
    }
    if (write_changes(rc, r, r->changes_from) != 0)
        return -1;
    if (r->f[XF_AUTH].len != SPAN_NULL) {
        st = rc->st_auth;
        bind_span(st, 1, r, XF_AUTH, 0);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->conn_id);
        if (run(rc->db, st) != 0)
            return -1;
    }
    return 0;
}

/* Takes the whole queue. */
static struct rec *take(struct shunt_recorder *rc, int wait_ms, int *stop)
{
    pthread_mutex_lock(&rc->mu);
    if (rc->head == NULL && !rc->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_ms * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rc->cv, &rc->mu, &ts);
    }
    struct rec *all = rc->head;
    rc->head = rc->tail = NULL;
    rc->n_queued = rc->bytes_queued = 0;
    rc->gen++; /* what is pushed from now on comes in the next batch */
    *stop = rc->stop;
    pool_refill(rc); /* the last batch's records */
    pthread_mutex_unlock(&rc->mu);
    while (rc->n_returned > 0) /* the pool was full: these go */
        free(rc->returned[--rc->n_returned]);
    return all;
}

/* Counts the WAL's frames after each commit of the store thread (sqlite3_wal_hook). */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int n_frames)
{
    (void)db;
    (void)name;
    ((struct shunt_recorder *)ud)->wal_frames = n_frames;
    return SQLITE_OK;
}

/* The WAL's size at which the store thread finishes a checkpoint itself. Under steady load the checkpointer's passes never catch up with the
 * commits made while they run, and SQLite starts the WAL over only once all of it is in
 * the database; run between two transactions of the writer, this one completes (unless a
 * reader holds an old snapshot), costs little after the checkpointer's pass, and the next
 * commit writes the WAL from its start again. */
#define WAL_RESTART_BYTES (64 << 20)

static void store_batch(struct shunt_recorder *rc, struct rec *all, uint64_t *dropped_written)
{
    uint64_t dropped = atomic_load(&rc->dropped);
    if (all == NULL && dropped == *dropped_written)
        return;
    int ok = !rc->failed && sqlite3_exec(rc->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    for (struct rec *r = all, *next; r != NULL; r = next) {
        next = r->next;
        if (ok && write_rec(rc, r) != 0)
            ok = 0;
        rec_release(rc, r);
    }
    if (ok && dropped != *dropped_written) {
        sqlite3_bind_int64(rc->st_dropped, 1, (sqlite3_int64)dropped);
        ok = run(rc->db, rc->st_dropped) == 0;
        if (ok) {
            shunt_log(SHUNT_LOG_WARN,
                      "capture: %" PRIu64 " events dropped so far (the queue was full): %s is "
                      "incomplete",
                      dropped, rc->path);
            *dropped_written = dropped;
        }
    }
    if (ok && sqlite3_exec(rc->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        shunt_log(SHUNT_LOG_ERROR, "capture: %s: %s", rc->path, sqlite3_errmsg(rc->db));
        ok = 0;
    }
    if (ok && rc->wal_frames > rc->wal_restart_frames) {
        rc->wal_frames = 0;
        sqlite3_wal_checkpoint_v2(rc->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    if (!ok && !rc->failed) {
        sqlite3_exec(rc->db, "ROLLBACK", NULL, NULL, NULL);
        shunt_log(SHUNT_LOG_ERROR, "capture: writing %s failed; recording stops, traffic goes on",
                  rc->path);
        pthread_mutex_lock(&rc->mu);
        rc->failed = 1;
        pthread_mutex_unlock(&rc->mu);
    }
}

static void *store_main(void *arg)
{
    struct shunt_recorder *rc = arg;
    pthread_setname_np(pthread_self(), "shunt-store"); /* for top -H and perf */
    uint64_t dropped_written = 0;
    for (;;) {
        int stop;
        /* A commit at least every 20 ms while traffic flows: a crash loses no more. */
        struct rec *all = take(rc, 20, &stop);
        store_batch(rc, all, &dropped_written);
        if (stop) {
            all = take(rc, 0, &stop); /* whatever came in meanwhile */
            store_batch(rc, all, &dropped_written);
            return NULL;
        }
    }
}

/* Checkpoints the WAL every 500 ms from a connection of its own. PASSIVE never waits for
 * the writer, and the fsync it does stalls only this thread. */
static void *checkpoint_main(void *arg)
{
    struct shunt_recorder *rc = arg;
    pthread_setname_np(pthread_self(), "shunt-ckpt");
    /* A connection is in WAL mode only once it has read the database: until then each
     * checkpoint returns at once, having done nothing (the WAL grew without bound). */
    sqlite3_exec(rc->ckpt_db, "SELECT 1 FROM capture", NULL, NULL, NULL);
    for (;;) {
        pthread_mutex_lock(&rc->mu);
        if (!rc->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 500 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&rc->ckpt_cv, &rc->mu, &ts);
        }
        int stop = rc->stop;
        pthread_mutex_unlock(&rc->mu);
        if (stop)
            return NULL;
        int r = sqlite3_wal_checkpoint_v2(rc->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (r != SQLITE_OK)
            shunt_log(SHUNT_LOG_DEBUG, "capture: checkpoint: %s", sqlite3_errmsg(rc->ckpt_db));
    }
}

/* ------------------------------------------------------------------------ open, close */

static const char *const sql_conn_open =
    "INSERT INTO connections (id, client_addr, client_port, listen_addr, listen_port, opened_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char *const sql_conn_close =
    "UPDATE connections SET closed_us = ?1, closer = ?2, close_how = ?3, bytes_in = ?4,"
    " bytes_out = ?5, tunnel = ?6, n_exchanges = ?7 WHERE id = ?8";
static const char *const sql_up_open =
    "INSERT INTO upstreams (id, conn_id, host, port, addr, remote_port, local_port, opened_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char *const sql_up_close =
    "UPDATE upstreams SET closed_us = ?1, closer = ?2, close_how = ?3, bytes_in = ?4,"
    " bytes_out = ?5 WHERE id = ?6";
static const char *const sql_exchange =
    "INSERT INTO exchanges (id, conn_id, idx, upstream_id, upstream_reused, started_us, method,"
    " url, host, path, http_version, status, req_head, req_head_sent, resp_head, resp_head_sent,"
    " resp_interim, req_body_size, resp_body_size, req_bytes, resp_bytes, t_dns, t_connect,"
    " t_send, t_wait, t_receive, duration_us, error, flags, t_ssl) VALUES (?1, ?2, ?3, ?4, ?5,"
    " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24,"
    " ?25, ?26, ?27, ?28, ?29, ?30)";
/* the same parameters as sql_exchange; conn_id and idx (?2, ?3, bound but unused) do not
 * change, and their index is left alone */
static const char *const sql_ex_update =
    "UPDATE exchanges SET upstream_id = ?4, upstream_reused = ?5, started_us = ?6, method = ?7,"
    " url = ?8, host = ?9, path = ?10, http_version = ?11, status = ?12, req_head = ?13,"
    " req_head_sent = ?14, resp_head = ?15, resp_head_sent = ?16, resp_interim = ?17,"
    " req_body_size = ?18, resp_body_size = ?19, req_bytes = ?20, resp_bytes = ?21, t_dns = ?22,"
    " t_connect = ?23, t_send = ?24, t_wait = ?25, t_receive = ?26, duration_us = ?27,"
    " error = ?28, flags = ?29, t_ssl = ?30 WHERE id = ?1";
static const char *const sql_ex_sent =
    "UPDATE exchanges SET req_head_sent = ?2, flags = ?3, upstream_id = ?4 WHERE id = ?1";
static const char *const sql_body =
    "INSERT INTO bodies (exchange_id, direction, data, truncated) VALUES (?1, ?2, ?3, ?4)";
static const char *const sql_change =
    "INSERT INTO changes (exchange_id, in_request, what, by) VALUES (?1, ?2, ?3, ?4)";
static const char *const sql_auth =
    "UPDATE connections SET auth_scheme = ?1 WHERE id = ?2 AND auth_scheme IS NULL";
static const char *const sql_dropped = "UPDATE capture SET events_dropped = ?1 WHERE id = 1";
static const char *const sql_tls =
    "INSERT INTO tls (conn_id, upstream_id, side, time_us, sni, alpn, version, cipher,"
    " cert_subject, cert_issuer, cert_san, cert_sha256, error, cert_not_before, cert_not_after,"
    " handshake_us, verify_result, insecure) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
static const char *const sql_conn_tls = "UPDATE connections SET tls = 1 WHERE id = ?1";
/* The close bits go to the tls row of that side (the connection's row has no TLS facts). */
static const char *const sql_conn_tls_close =
    "UPDATE tls SET close_bits = ?1 WHERE conn_id = ?2 AND side = 0";
static const char *const sql_up_tls_close =
    "UPDATE tls SET close_bits = ?1 WHERE conn_id = ?2 AND upstream_id = ?3 AND side = 1";

int shunt_recorder_open(const struct shunt_recorder_config *cfg, struct shunt_recorder **out,
                        char *err, size_t err_len)
{
    *out = NULL;
    /* An exchange is one record holding both bodies' prefixes; a record the queue can never
     * take would be dropped every time. A quarter of the queue leaves room for the others. */
    size_t qbytes = cfg->queue_bytes ? cfg->queue_bytes : SHUNT_RECORDER_QUEUE_BYTES_DEFAULT;
    if (cfg->body_limit > qbytes / 4) {
        snprintf(err, err_len,
                 "%s: --body-limit %zu is over the %zu bytes the capture queue holds for one "
                 "exchange (a quarter of its %zu)",
                 cfg->path, cfg->body_limit, qbytes / 4, qbytes);
        return SHUNT_EINVAL;
    }
    struct shunt_recorder *rc = shunt_xcalloc(sizeof(*rc));
    snprintf(rc->path, sizeof(rc->path), "%s", cfg->path);
    rc->body_limit = cfg->body_limit;
    rc->max_records = cfg->queue_records ? cfg->queue_records : SHUNT_RECORDER_QUEUE_RECORDS_DEFAULT;
    rc->max_bytes = cfg->queue_bytes ? cfg->queue_bytes : SHUNT_RECORDER_QUEUE_BYTES_DEFAULT;
    rc->wall_offset_us = wall_now_us() - mono_now_us();
    if (shunt_capture_create(cfg->path, &rc->db, err, err_len) != 0) {
        free(rc);
        return SHUNT_EINVAL;
    }
    if (sqlite3_exec(rc->db, SHUNT_CAPTURE_DEFERRED_DROP, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: %s", cfg->path, sqlite3_errmsg(rc->db));
        sqlite3_close(rc->db);
        free(rc);
        return SHUNT_EINVAL;
    }
    struct {
        const char *sql;
        sqlite3_stmt **st;
    } stmts[] = {
        {sql_conn_open, &rc->st_conn_open}, {sql_conn_close, &rc->st_conn_close},
        {sql_up_open, &rc->st_up_open},     {sql_up_close, &rc->st_up_close},
        {sql_exchange, &rc->st_exchange},   {sql_ex_update, &rc->st_ex_update},
        {sql_ex_sent, &rc->st_ex_sent},     {sql_body, &rc->st_body},
        {sql_change, &rc->st_change},       {sql_auth, &rc->st_auth},
        {sql_dropped, &rc->st_dropped},     {sql_tls, &rc->st_tls},
        {sql_conn_tls, &rc->st_conn_tls},   {sql_conn_tls_close, &rc->st_conn_tls_close},
        {sql_up_tls_close, &rc->st_up_tls_close},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        if (sqlite3_prepare_v3(rc->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                               NULL) != SQLITE_OK) {
            snprintf(err, err_len, "%s: %s", cfg->path, sqlite3_errmsg(rc->db));
            goto fail;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(rc->db,
                           "INSERT INTO capture (id, shunt_version, command_line, source, "
                           "started_us, body_limit) VALUES (1, ?1, ?2, 'proxy', ?3, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: %s", cfg->path, sqlite3_errmsg(rc->db));
        goto fail;
    }
    sqlite3_bind_text(st, 1, SHUNT_VERSION, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cfg->command_line ? cfg->command_line : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, wall_now_us());
    sqlite3_bind_int64(st, 4, (sqlite3_int64)cfg->body_limit);
    int rc_step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc_step != SQLITE_DONE) {
        snprintf(err, err_len, "%s: %s", cfg->path, sqlite3_errmsg(rc->db));
        goto fail;
    }
    rc->pool = shunt_xcalloc(REC_POOL_KEEP * sizeof(rc->pool[0]));
    rc->returned = shunt_xcalloc(REC_POOL_KEEP * sizeof(rc->returned[0]));
    pthread_mutex_init(&rc->mu, NULL);
    pthread_cond_init(&rc->cv, NULL);
    pthread_cond_init(&rc->ckpt_cv, NULL);
    sqlite3_wal_hook(rc->db, on_wal_commit, rc);
    rc->wal_restart_frames = WAL_RESTART_BYTES / 4096;
    if (sqlite3_prepare_v2(rc->db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
            rc->wal_restart_frames = WAL_RESTART_BYTES / sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    /* The store thread takes no signals: SIGINT/SIGTERM are for the proxy's main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int created = pthread_create(&rc->thread, NULL, store_main, rc);
    if (created == 0 &&
        sqlite3_open_v2(cfg->path, &rc->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) == SQLITE_OK &&
        pthread_create(&rc->checkpointer, NULL, checkpoint_main, rc) == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        *out = rc;
        return 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (created == 0) { /* the checkpointer failed: stop the store thread again */
        pthread_mutex_lock(&rc->mu);
        rc->stop = 1;
        pthread_mutex_unlock(&rc->mu);
        pthread_cond_broadcast(&rc->cv);
        pthread_join(rc->thread, NULL);
        sqlite3_close(rc->ckpt_db);
        pthread_cond_destroy(&rc->ckpt_cv);
        snprintf(err, err_len, "%s: cannot start the checkpoint thread", cfg->path);
        goto fail;
    }
    if (created != 0) {
        snprintf(err, err_len, "%s: cannot start the store thread", cfg->path);
        goto fail;
    }
    *out = rc;
    return 0;
fail:
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        sqlite3_finalize(*stmts[i].st);
    sqlite3_close(rc->db);
    free(rc->pool);
    free(rc->returned);
    free(rc);
    return SHUNT_EINVAL;
}

int shunt_recorder_close(struct shunt_recorder *rc)
{
    if (rc == NULL)
        return 0;
    pthread_mutex_lock(&rc->mu);
    rc->stop = 1;
    pthread_mutex_unlock(&rc->mu);
    pthread_cond_broadcast(&rc->cv);
    pthread_cond_signal(&rc->ckpt_cv);
    pthread_join(rc->thread, NULL);
    pthread_join(rc->checkpointer, NULL);
    sqlite3_close(rc->ckpt_db);
    int ret = rc->failed ? SHUNT_EINVAL : 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(rc->db,
                           "UPDATE capture SET stopped_us = ?1, events_dropped = ?2 WHERE id = 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, wall_now_us());
        sqlite3_bind_int64(st, 2, (sqlite3_int64)atomic_load(&rc->dropped));
        if (sqlite3_step(st) != SQLITE_DONE)
            ret = SHUNT_EINVAL;
        sqlite3_finalize(st);
    }
    if (sqlite3_exec(rc->db, SHUNT_CAPTURE_DEFERRED_CREATE, NULL, NULL, NULL) != SQLITE_OK) {
        shunt_log(SHUNT_LOG_ERROR, "capture: %s: indexing: %s", rc->path, sqlite3_errmsg(rc->db));
        ret = SHUNT_EINVAL;
    }
    uint64_t dropped = atomic_load(&rc->dropped);
    if (dropped > 0)
        shunt_log(SHUNT_LOG_WARN, "capture: %s is incomplete: %" PRIu64 " events were dropped",
                  rc->path, dropped);
    sqlite3_stmt *all[] = {rc->st_conn_open, rc->st_conn_close, rc->st_up_open,
                           rc->st_up_close,  rc->st_exchange,   rc->st_ex_update,
                           rc->st_ex_sent,   rc->st_body,       rc->st_change,
                           rc->st_auth,      rc->st_dropped,    rc->st_tls,
                           rc->st_conn_tls,  rc->st_conn_tls_close, rc->st_up_tls_close};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    if (sqlite3_close(rc->db) != SQLITE_OK)
        ret = SHUNT_EINVAL;
    while (rc->n_returned > 0)
        free(rc->returned[--rc->n_returned]);
    while (rc->n_pool > 0)
        free(rc->pool[--rc->n_pool]);
    free(rc->returned);
    free(rc->pool);
    pthread_mutex_destroy(&rc->mu);
    pthread_cond_destroy(&rc->cv);
    pthread_cond_destroy(&rc->ckpt_cv);
    free(rc);
    return ret;
}
