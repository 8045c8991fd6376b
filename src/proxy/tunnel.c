/* src/proxy/tunnel.c - CONNECT and Upgrade tunnels (bytes both ways, unparsed) and HTTPS
 * interception: the ClientHello peek, the TLS with the client, its failures as exchanges. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "net/tls.h"
#include "proxy/session.h"

/* A tunnel uses one upstream; other origins' idle connections end here, since the client
 * connection can carry nothing else from now on. */
void shunt_proxy__keep_only_cur(struct session *s)
{
    for (int i = s->n_ups - 1; i >= 0; i--)
        if (s->ups[i] != s->cur)
            shunt_proxy__upstream_close(s->ups[i], 0);
}

/* The CONNECT target is reached: tell the client, then pass bytes both ways. */
void shunt_proxy__establish_tunnel(struct session *s)
{
    static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
    struct shunt_http_head h;
    struct shunt_http_error e;
    int r = shunt_proxy__parse_request(s, &h, &e);
    assert(r > 0);
    (void)r;
    s->ex.req_bytes += h.head_len;
    shunt_proxy__emit_unsent_head(s);
    s->cur->n_exchanges++;
    s->ex.upstream_port = s->cur->local_port;
    shunt_conn_consume(&s->conn, h.head_len);
    uv_buf_t b = uv_buf_init((char *)ok, sizeof(ok) - 1);
    s->ex.status = 200;
    s->ex.resp_bytes += b.len;
    s->ex.resp_started = 1;
    shunt_proxy__emit_own_response(s, 200, &b, 1, NULL, 0);
    if (send_client(s, &b, 1) != 0) {
        set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
        shunt_proxy__session_close(s, 0, 1);
        return;
    }
    s->ex.rq = RQ_DONE;
    s->ex.rs = RS_DONE;
    s->tunnel = 1;
    shunt_proxy__keep_only_cur(s);
    shunt_proxy__emit_exchange_done(s);
    shunt_proxy__arm(s, T_TUNNEL, s->w->cfg->idle_timeout_ms);
    if (!shunt_proxy__pump(s, &s->conn, &s->cur->conn, 1))
        shunt_proxy__mirror_client_fin(s);
}

/* Moves the input of <from> to <to>; returns 1 when something moved. */
int shunt_proxy__pump(struct session *s, struct shunt_conn *from, struct shunt_conn *to,
                      int from_client)
{
    if (!shunt_conn_has_input(from) || queued(to) > 0)
        return 0;
    const char *p = shunt_conn_data(from);
    size_t n = shunt_conn_avail(from);
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    shunt_proxy__emit_body(s, from_client, p, n);
    int r = shunt_conn_send(to, &b, 1);
    shunt_conn_consume(from, n);
    if (r != 0) {
        set_closer(s, from_client ? SHUNT_CLOSER_SERVER : SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
        shunt_proxy__session_close(s, !from_client, from_client);
        return 0;
    }
    shunt_proxy__arm(s, T_TUNNEL, s->w->cfg->idle_timeout_ms);
    if (from_client)
        shunt_proxy__mirror_client_fin(s);
    return 1;
}

/*
 * HTTPS interception (issue 12, decisions 4 and 5). A CONNECT that cfg->tls_server and the
 * intercept hook take is answered 200 at once (the CONNECT exchange, a tunnel answered by
 * shunt) and no upstream is opened yet. The client's first bytes decide: a TLS ClientHello
 * is terminated with a leaf for its SNI (net/conn.h's TLS layer on the client connection),
 * after which the connection is parsed as a plain one, each request an "https" exchange
 * routed to the CONNECT's host:port over an upstream opened lazily with TLS (the client's
 * SNI) and paired as always; anything else makes it the byte tunnel it would have been.
 * A handshake that fails is an exchange with the reason, and every handshake's end is a
 * SHUNT_EV_TLS event.
 */

/* The TLS with the client failed (<why>, the engine's words, or a timeout): an exchange of
 * its own, method "-" and the URL https://HOST[:PORT]/ of the CONNECT, with no status, and
 * the connection ends (the alert, if any, went out). */
static void client_tls_failed(struct session *s, const char *why)
{
    shunt_proxy__begin_exchange(s, NULL);
    s->ex.https = 1;
    int v6 = strchr(s->icpt_host, ':') != NULL;
    char port[16] = "";
    if (s->icpt_port != 443)
        snprintf(port, sizeof(port), ":%d", s->icpt_port);
    size_t need = 8 + strlen(s->icpt_host) + 2 + strlen(port) + 2;
    char *url = shunt_exchange_alloc(&s->ex, need);
    snprintf(url, need, "https://%s%s%s%s/", v6 ? "[" : "", s->icpt_host, v6 ? "]" : "", port);
    s->ex.url = url;
    need = strlen(why) + 32;
    char *err = shunt_exchange_alloc(&s->ex, need);
    snprintf(err, need, "TLS with the client: %s", why);
    s->ex.error = err;
    s->icpt = ICPT_NONE;
    set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_ERROR);
    shunt_proxy__session_close(s, 0, 0);
}

/* The upstream of an intercepted tunnel that stayed plain could not be reached (<why>):
 * an exchange of its own, method "-" and the CONNECT's authority, with the error, and the
 * client connection is reset (its 200 went out long ago: nothing else can tell it). */
void shunt_proxy__plain_tunnel_failed(struct session *s, const char *why)
{
    s->icpt_plain = 0;
    shunt_proxy__begin_exchange(s, NULL);
    int v6 = strchr(s->icpt_host, ':') != NULL;
    size_t need = strlen(s->icpt_host) + 2 + 16;
    char *url = shunt_exchange_alloc(&s->ex, need);
    snprintf(url, need, "%s%s%s:%d", v6 ? "[" : "", s->icpt_host, v6 ? "]" : "", s->icpt_port);
    s->ex.url = url;
    need = strlen(why) + 1;
    char *err = shunt_exchange_alloc(&s->ex, need);
    memcpy(err, why, need);
    s->ex.error = err;
    set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_RST);
    shunt_proxy__session_close(s, 1, 0);
}

/* Whether <n> is a DNS host name: 1 to 253 bytes of labels of 1 to 63 letters, digits,
 * hyphens (and underscores, seen in the wild), separated by dots. */
static int valid_host_name(const char *n)
{
    if (n == NULL || n[0] == '\0' || strlen(n) > 253)
        return 0;
    size_t label = 0;
    for (const char *p = n; *p != '\0'; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

static void client_tls_done(struct shunt_conn *c, int ok)
{
    struct session *s = SHUNT_CONTAINER_OF(c, struct session, conn);
    const char *why = shunt_tls_error(shunt_conn_tls(c));
    if (!ok && why[0] == '\0') /* no alert, no error: the client went away */
        why = c->how == SHUNT_CONN_HOW_RST ? "the client reset the connection during the handshake"
                                           : "the client closed the connection during the handshake";
    shunt_proxy__emit_tls(s, NULL, c, ok ? NULL : why);
    if (!ok) {
        client_tls_failed(s, why);
        return;
    }
    struct shunt_tls_facts f;
    shunt_tls_facts(shunt_conn_tls(c), &f);
    /* the engine escapes odd bytes (\xNN) for the record: such a name never goes upstream
     * (the CONNECT host does) */
    s->icpt_sni[0] = '\0';
    if (valid_host_name(f.sni))
        snprintf(s->icpt_sni, sizeof(s->icpt_sni), "%s", f.sni);
    s->icpt = ICPT_ON;
    /* now as a new connection: a request head is due */
    shunt_proxy__arm(s, T_FIRST, s->w->cfg->header_timeout_ms);
}

void shunt_proxy__client_tls_timed_out(struct session *s)
{
    char why[64];
    snprintf(why, sizeof(why), "handshake timed out after %.0f s",
             (double)s->w->cfg->tls_handshake_timeout_ms / 1000.0);
    shunt_proxy__emit_tls(s, NULL, &s->conn, why);
    client_tls_failed(s, why);
}

/* The CONNECT <h> to <rt> is intercepted: answered 200 now, as a tunnel shunt answered; its
 * bytes will tell whether TLS follows (shunt_proxy__intercept_peek()). */
void shunt_proxy__intercept_connect(struct session *s, const struct shunt_http_head *h,
                                    const struct route *rt)
{
    static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
    s->ex.req_bytes += h->head_len;
    shunt_proxy__emit_unsent_head(s);
    shunt_conn_consume(&s->conn, h->head_len);
    uv_buf_t b = uv_buf_init((char *)ok, sizeof(ok) - 1);
    s->ex.status = 200;
    s->ex.resp_bytes += b.len;
    s->ex.resp_started = 1;
    shunt_proxy__emit_own_response(s, 200, &b, 1, NULL, 0);
    if (send_client(s, &b, 1) != 0) {
        set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
        shunt_proxy__session_close(s, 0, 1);
        return;
    }
    /* the client connection carries this tunnel from now on: other origins' idle
     * connections end, as for a tunnel */
    s->cur = NULL;
    shunt_proxy__keep_only_cur(s);
    snprintf(s->icpt_host, sizeof(s->icpt_host), "%s", rt->host);
    s->icpt_port = rt->port;
    s->icpt = ICPT_PEEK;
    s->tunnel = 1; /* the CONNECT exchange is a tunnel's (flag U) */
    shunt_proxy__exchange_done(s);
    s->tunnel = 0;
    /* a short wait for the client's first bytes (a client-first protocol sends them at
     * once); the handshake has its own timeout from the ClientHello on */
    uint64_t peek_ms = s->w->cfg->tls_handshake_timeout_ms;
    if (peek_ms == 0 || peek_ms > SHUNT_PEEK_WINDOW_MS)
        peek_ms = SHUNT_PEEK_WINDOW_MS;
    shunt_proxy__arm(s, T_TLS, peek_ms);
}

/* An intercepted tunnel that carries no TLS: the byte tunnel it would have been, to the
 * CONNECT's target. */
static void become_byte_tunnel(struct session *s)
{
    s->icpt = ICPT_NONE;
    s->tunnel = 1;
    s->icpt_plain = 1;
    struct route rt;
    memset(&rt, 0, sizeof(rt));
    snprintf(rt.host, sizeof(rt.host), "%s", s->icpt_host);
    rt.port = s->icpt_port;
    shunt_proxy__open_upstream(s, &rt); /* then upstream_connected(): the bytes go through */
}

/* The first bytes of an intercepted tunnel are in: a ClientHello starts TLS with the client;
 * anything else makes a byte tunnel to the CONNECT's target (and the fact is reported). */
void shunt_proxy__intercept_peek(struct session *s)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    const char *p = shunt_conn_data(&s->conn);
    size_t n = shunt_conn_avail(&s->conn);
    int hello = shunt_tls_looks_like_hello(p, n);
    if (hello < 0)
        return; /* fewer than 3 bytes: not known yet */
    if (hello) {
        struct shunt_tls *t = shunt_tls_new_server(cfg->tls_server, s->icpt_host);
        if (t == NULL) {
            client_tls_failed(s, "out of memory");
            return;
        }
        s->icpt = ICPT_HANDSHAKE;
        shunt_proxy__arm(s, T_TLS, cfg->tls_handshake_timeout_ms);
        int r = shunt_conn_start_tls(&s->conn, t, client_tls_done);
        if (r == SHUNT_TLS_ERROR) {
            shunt_proxy__emit_tls(s, NULL, &s->conn, NULL);
            client_tls_failed(s, shunt_tls_error(t));
        } else if (r != 0) {
            set_closer(s, SHUNT_CLOSER_CLIENT, SHUNT_CLOSE_RST);
            shunt_proxy__session_close(s, 0, 1);
        }
        return;
    }
    shunt_proxy__emit_tls(s, NULL, &s->conn,
                          shunt_tls_looks_like_http(p, n)
                              ? "not TLS: the client sent plain HTTP into the tunnel"
                              : "not TLS: the client's first bytes are not a TLS handshake");
    become_byte_tunnel(s);
}

/* The peek window is over and the client has said nothing: a protocol whose server speaks
 * first (SMTP, IMAP, FTP, MySQL...) waits for a banner that only the origin can send, so
 * the tunnel becomes a byte tunnel now (recorded as such, not a TLS failure). */
void shunt_proxy__intercept_peek_expired(struct session *s)
{
    shunt_proxy__emit_tls(s, NULL, &s->conn,
                          "not TLS: the client sent nothing first (a server-first protocol?)");
    become_byte_tunnel(s);
}
