/* src/proxy/report.c - what the proxy reports: the events of a connection, of an exchange (heads,
 * bodies, changes, its end) and of a TLS handshake, handed to the subscribers. */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "net/tls.h"
#include "proxy/session.h"

/* Hands <ev> to the subscribers that want its type, each with its own slot of <s>. */
void shunt_proxy__emit(struct session *s, struct shunt_event *ev)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    for (size_t i = 0; i < cfg->n_subs; i++) {
        if (cfg->subs[i].mask & (1u << ev->type)) {
            ev->slot = &s->slots[i];
            cfg->subs[i].cb(ev, cfg->subs[i].ud);
        }
    }
}

void shunt_proxy__fill_conn_event(struct session *s, struct shunt_event *ev, enum shunt_ev_type t)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = t;
    ev->conn_id = s->id;
    ev->time_us = now_us();
    ev->exchange = s->idx;
    ev->upstream_id = s->cur ? s->cur->id : 0;
    ev->scheme = s->ex.https ? "https" : "http";
}

void shunt_proxy__emit_change_by(struct session *s, int in_request, const char *what,
                                 const char *by)
{
    if (!shunt_proxy__wants(s->w->cfg, SHUNT_EV_CHANGE))
        return;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_CHANGE);
    ev.what = what;
    ev.by = by;
    ev.in_request = in_request;
    shunt_proxy__emit(s, &ev);
}

/* A change shunt makes so that no one downstream can read a message otherwise than shunt
 * did (docs/framing.md): recorded as made by "shunt". */
void shunt_proxy__emit_fix(struct session *s, int in_request, const char *what)
{
    shunt_proxy__emit_change_by(s, in_request, what, "shunt");
}

void shunt_proxy__emit_head(struct session *s, enum shunt_ev_type t,
                            const struct shunt_http_head *h, const char *raw, const uv_buf_t *iov,
                            size_t n_iov)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    if (!shunt_proxy__wants(cfg, t))
        return;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, t);
    ev.raw = shunt_slice_make(raw, h->head_len);
    ev.head = h;
    ev.again = t == SHUNT_EV_REQUEST_HEAD && s->ex.head_emitted; /* announced early, now sent */
    struct shunt_slice *parts = s->w->iov_slices;
    for (size_t i = 0; i < n_iov; i++)
        parts[i] = shunt_slice_make(iov[i].base, iov[i].len);
    ev.sent.parts = parts;
    ev.sent.n_parts = n_iov;
    shunt_proxy__emit(s, &ev);
}

void shunt_proxy__emit_body(struct session *s, int from_client, const char *p, size_t n)
{
    if (n == 0 || !shunt_proxy__wants(s->w->cfg, SHUNT_EV_BODY))
        return;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_BODY);
    ev.from_client = from_client;
    ev.tunnel = s->tunnel;
    ev.data = shunt_slice_make(p, n);
    uint64_t *seen = from_client ? &s->ex.req_payload : &s->ex.resp_payload;
    ev.body_offset = *seen;
    *seen += n;
    shunt_proxy__emit(s, &ev);
}

/* Reports shunt's own answer as the client gets it: the head in <n> pieces, then the body.
 * No server sent it: the event's raw head is empty (events.h). */
void shunt_proxy__emit_own_response(struct session *s, int status, const uv_buf_t *head, size_t n,
                                    const char *body, size_t body_len)
{
    if (shunt_proxy__wants(s->w->cfg, SHUNT_EV_RESPONSE_HEAD)) {
        struct shunt_slice parts[4];
        SHUNT_BUG_ON(n > 4);
        struct shunt_event ev;
        shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_RESPONSE_HEAD);
        ev.raw = shunt_slice_make("", 0);
        ev.own = 1;
        ev.status = status;
        for (size_t i = 0; i < n; i++)
            parts[i] = shunt_slice_make(head[i].base, head[i].len);
        ev.sent.parts = parts;
        ev.sent.n_parts = n;
        shunt_proxy__emit(s, &ev);
    }
    shunt_proxy__emit_body(s, 0, body, body_len);
}

void shunt_proxy__emit_upstream_close(struct session *s, struct upstream *u)
{
    if (!u->conn.connected || !shunt_proxy__wants(s->w->cfg, SHUNT_EV_UPSTREAM_CLOSE))
        return;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_UPSTREAM_CLOSE);
    ev.upstream_id = u->id;
    ev.peer_addr = u->addr;
    ev.peer_port = u->remote_port;
    ev.local_port = u->local_port;
    ev.closer = (enum shunt_closer)u->conn.closer;
    ev.how = (enum shunt_close_how)u->conn.how;
    ev.bytes_in = u->conn.bytes_in;
    ev.bytes_out = u->conn.bytes_out;
    ev.tls_close = u->conn.tls_close;
    shunt_proxy__emit(s, &ev);
}

void shunt_proxy__emit_exchange_done(struct session *s)
{
    if (!s->ex.active)
        return;
    s->ex.active = 0;
    shunt_proxy__stat_exchanges++;
    if (!shunt_proxy__wants(s->w->cfg, SHUNT_EV_EXCHANGE_DONE))
        return;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_EXCHANGE_DONE);
    shunt_exchange_fill_done(&s->ex, &ev);
    ev.peer_port = s->peer_port;
    ev.tunnel = s->tunnel;
    shunt_proxy__emit(s, &ev);
}

/* Reports the head of a request that has not gone upstream with nothing as sent: one that
 * never will (a CONNECT, which shunt answers, a request that failed before it was sent, one
 * a rule answers), or one that waits (for its upstream to connect, for a rule's hold), so
 * that the capture shows it while it waits. The head is still at the front of the client
 * buffer. */
void shunt_proxy__emit_unsent_head(struct session *s)
{
    if (s->ex.head_emitted || !s->ex.active || s->conn.in.base == NULL ||
        !shunt_proxy__wants(s->w->cfg, SHUNT_EV_REQUEST_HEAD))
        return;
    struct shunt_http_head h;
    struct shunt_http_error e;
    if (shunt_proxy__parse_request(s, &h, &e) <= 0)
        return;
    shunt_proxy__emit_head(s, SHUNT_EV_REQUEST_HEAD, &h, s->conn.in.base + s->conn.in.off, NULL, 0);
    s->ex.head_emitted = 1;
}

/* Reports the end of a TLS handshake on <c> (the client's when <u> is NULL, else <u>'s),
 * the handshake time measured on the loop's clock; <error> replaces the engine's. */
void shunt_proxy__emit_tls(struct session *s, struct upstream *u, struct shunt_conn *c,
                           const char *error)
{
    if (!shunt_proxy__wants(s->w->cfg, SHUNT_EV_TLS))
        return;
    struct shunt_tls_facts f;
    if (shunt_conn_tls(c) != NULL) {
        shunt_tls_facts(shunt_conn_tls(c), &f);
        f.handshake_us = c->tls_handshake_us;
    } else {
        memset(&f, 0, sizeof(f));
        f.sni = f.alpn = f.version = f.cipher = "";
        f.cert_subject = f.cert_issuer = f.cert_san = f.cert_sha256 = "";
        f.side = u != NULL;
    }
    if (error != NULL)
        f.error = error;
    struct shunt_event ev;
    shunt_proxy__fill_conn_event(s, &ev, SHUNT_EV_TLS);
    ev.upstream_id = u != NULL ? u->id : 0;
    ev.tls = &f;
    shunt_proxy__emit(s, &ev);
}

void shunt_proxy__emit_tls_timeout(struct session *s, struct upstream *u)
{
    char why[64];
    snprintf(why, sizeof(why), "handshake timed out after %.0f s",
             (double)s->w->cfg->tls_handshake_timeout_ms / 1000.0);
    shunt_proxy__emit_tls(s, u, &u->conn, why);
}
