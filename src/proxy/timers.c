/* src/proxy/timers.c - what happens when a session's deadline passes: the libuv timer's callback
 * and each kind's expiry (timeouts answered 408 or 504, a rule's hold released). */

#include "core/mem.h"
#include "proxy/session.h"

static void expire(struct session *s, enum timer_kind k);

/* A rule's hold is over: the request goes on to its origin, or the response to the
 * client. */
static void release(struct session *s)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    if (s->ex.held == HOLD_REQUEST) {
        s->ex.held = HOLD_NONE;
        shunt_proxy__route_on(s, shunt_proxy__find_upstream(s, s->ex.route_host, s->ex.route_port));
        return;
    }
    if (s->ex.held != HOLD_RESPONSE || s->cur == NULL)
        return;
    struct upstream *u = s->cur;
    s->ex.held = HOLD_RELEASED;
    shunt_proxy__arm(s, T_RESPONSE, cfg->response_timeout_ms);
    shunt_proxy__process_upstream(u);
    if (!s->closing && u->s == s && u->conn.rd_eof && (u->conn.in.base == NULL || u->conn.in.off == u->conn.in.len))
        shunt_proxy__on_upstream_eof(u); /* the server's FIN came while it was held */
}

void shunt_proxy__timer_cb(uv_timer_t *t)
{
    struct session *s = SHUNT_CONTAINER_OF(t, struct session, timer);
    uint64_t now = uv_now(&s->w->loop);
    /* every deadline that is due fires, each once; a firing may close the session or arm
     * others, hence the checks between them */
    for (int p = 0; p < TM_N && !s->closing; p++) {
        enum timer_kind k = s->tm[p].kind;
        if (k != T_NONE && s->tm[p].at <= now) {
            s->tm[p].kind = T_NONE;
            expire(s, k);
        }
    }
    if (s->closing)
        return;
    uint64_t next = UINT64_MAX;
    for (int p = 0; p < TM_N; p++)
        if (s->tm[p].kind != T_NONE && s->tm[p].at < next)
            next = s->tm[p].at;
    if (next != UINT64_MAX &&
        (!uv_is_active((uv_handle_t *)&s->timer) || s->timer_due > next)) {
        s->timer_due = next;
        uv_timer_start(&s->timer, shunt_proxy__timer_cb, next > now ? next - now : 0, 0);
    }
}

/* What happens when the wait <k> is over. */
static void expire(struct session *s, enum timer_kind k)
{
    const struct shunt_proxy_config *cfg = s->w->cfg;
    switch (k) {
    case T_FIRST:
    case T_IDLE:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        shunt_proxy__finish(s);
        break;
    case T_HEADER:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        shunt_proxy__begin_exchange(s, NULL);
        shunt_proxy__answer(s, 408, "Request Timeout",
                            "shunt: the request head did not arrive within %.0f s",
                            (double)cfg->header_timeout_ms / 1000.0);
        break;
    case T_CONNECT:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        if (s->cur != NULL)
            shunt_proxy__upstream_close(s->cur, 0);
        shunt_proxy__answer(s, 504, "Gateway Timeout",
                            "shunt: connecting to %s:%d timed out after %.0f s", s->ex.route_host,
                            s->ex.route_port, (double)cfg->connect_timeout_ms / 1000.0);
        break;
    case T_RESPONSE:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        if (!s->ex.resp_started) {
            if (s->cur != NULL)
                shunt_proxy__upstream_close(s->cur, 0);
            shunt_proxy__answer(s, 504, "Gateway Timeout",
                                "shunt: %s:%d did not respond within %.0f s", s->ex.route_host,
                                s->ex.route_port, (double)cfg->response_timeout_ms / 1000.0);
        } else {
            s->ex.error = "response timed out";
            shunt_proxy__session_close(s, 0, 0);
        }
        break;
    case T_TUNNEL:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        shunt_proxy__session_close(s, 0, 0);
        break;
    case T_LINGER:
        shunt_proxy__session_close(s, 0, 0);
        break;
    case T_DELAY:
        release(s);
        break;
    case T_TLS:
        if (s->icpt == ICPT_PEEK) {
            shunt_proxy__intercept_peek_expired(s);
            break;
        }
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        shunt_proxy__client_tls_timed_out(s);
        break;
    case T_TLS_UP:
        set_closer(s, SHUNT_CLOSER_PROXY, SHUNT_CLOSE_TIMEOUT);
        if (s->cur != NULL) {
            shunt_proxy__emit_tls_timeout(s, s->cur);
            shunt_proxy__upstream_close(s->cur, 0);
        }
        shunt_proxy__answer(s, 504, "Gateway Timeout",
                            "shunt: TLS with the upstream: handshake timed out after %.0f s",
                            (double)cfg->tls_handshake_timeout_ms / 1000.0);
        break;
    case T_NONE:
        break;
    }
}
