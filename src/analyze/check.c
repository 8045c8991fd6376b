/* src/analyze/check.c - what every check shares: adding findings, their examples, the
 * cost of a connection that ended, and the patterns by which checks claim a connection's
 * end (so that no two checks count the same close, and none keeps a second copy). */
#include "analyze/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shunt_finding *shunt_finding_add(struct shunt_findings *out,
                                        const struct shunt_check *check,
                                        enum shunt_confidence confidence)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 16;
        void *p = realloc(out->v, cap * sizeof(*out->v));
        if (p == NULL)
            return NULL;
        out->v = p;
        out->cap = cap;
    }
    struct shunt_finding *f = &out->v[out->n++];
    memset(f, 0, sizeof(*f));
    f->check = check;
    f->confidence = confidence;
    f->unit = "connections";
    return f;
}

void shunt_finding_measure(struct shunt_finding *f, size_t count, const char *unit,
                           int64_t lost_us, size_t lost_handshakes, size_t lost_connections)
{
    f->count = count;
    f->unit = unit;
    f->lost_us = lost_us;
    f->lost_handshakes = lost_handshakes;
    f->lost_connections = lost_connections;
}

void shunt_finding_what(struct shunt_finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof(f->what), fmt, ap);
    va_end(ap);
}

void shunt_finding_example(struct shunt_finding *f, int64_t conn_id, int64_t exchange_id)
{
    int have = 0;
    for (size_t i = 0; i < f->n_conns; i++)
        have |= f->conns[i] == conn_id;
    if (conn_id > 0 && !have && f->n_conns < SHUNT_CHECK_EXAMPLES)
        f->conns[f->n_conns++] = conn_id;
    have = 0;
    for (size_t i = 0; i < f->n_exchanges; i++)
        have |= f->exchanges[i] == exchange_id;
    if (exchange_id > 0 && !have && f->n_exchanges < SHUNT_CHECK_EXAMPLES)
        f->exchanges[f->n_exchanges++] = exchange_id;
}

void shunt_findings_dispose(struct shunt_findings *out)
{
    free(out->v);
    out->v = NULL;
    out->n = out->cap = 0;
}

struct shunt_check_cost shunt_check_reopen_cost(const struct shunt_model_conn *c)
{
    struct shunt_check_cost cost = {0, 0, 0};
    const struct shunt_model_conn *n = c->next;
    if (n == NULL)
        return cost; /* nothing replaced it: its end cost nothing */
    cost.followed = 1;
    cost.us = shunt_model_add(n->connect_us, n->handshake_us);
    cost.handshakes = n->n_handshakes;
    return cost;
}

size_t shunt_check_requests_on(const struct shunt_model_conn *c)
{
    size_t n = 0;
    for (size_t k = 0; k < c->n_ex; k++)
        n += !(c->ex[k].status == 401 && (c->ex[k].challenge & SHUNT_MODEL_AUTH_BOUND));
    return n;
}

/* ================================================================ ends the checks claim */

static int is(const char *s, const char *want)
{
    return strcmp(s, want) == 0;
}

/* Does the request head <h> (HTTP/1.0 when <http10>) ask to keep its connection? */
static int asks_keepalive(struct shunt_slice h, int http10)
{
    if (shunt_model_field_has_token(h, "Connection", "close"))
        return 0;
    if (http10 && !shunt_model_field_has_token(h, "Connection", "keep-alive"))
        return 0;
    return 1;
}

int shunt_check_wants_keepalive(const struct shunt_model_exchange *e)
{
    return !shunt_model_http1(e) || asks_keepalive(e->req, e->req_http10);
}

/* Does the request of <e> as the server got it ask to keep the connection? (A rule may have
 * added Connection: close on the way; the version is the client's.) */
static int upstream_wants_keepalive(const struct shunt_model_exchange *e)
{
    return !shunt_model_http1(e) || asks_keepalive(e->req_up, e->req_http10);
}

const char *shunt_check_rule_closed(const struct shunt_model_conn *c, int *on_request)
{
    const struct shunt_model_exchange *l = shunt_model_last(c);
    if (l == NULL || c->tunnel || !shunt_model_http1(l) || l->status == 0 ||
        !shunt_check_wants_keepalive(l))
        return NULL;
    /* The request: the client asked to keep the connection, the server was asked to close
     * it, and a rule changed the request. */
    if (l->rule_req != NULL && !upstream_wants_keepalive(l)) {
        *on_request = 1;
        return l->rule_req;
    }
    /* The response: the server's let the connection persist, the one the client got ends
     * it, and a rule changed the response. */
    if (l->rule_resp != NULL && l->resp.base != NULL && shunt_model_server_closes(l) == NULL &&
        shunt_model_resp_closes(l) != NULL) {
        *on_request = 0;
        return l->rule_resp;
    }
    return NULL;
}

int shunt_check_wininet_close(const struct shunt_model_conn *c,
                              const struct shunt_model_exchange **last, int *certain)
{
    const struct shunt_model_exchange *l = shunt_model_last(c);
    if (l == NULL || c->tunnel || l->status == 0 || l->status == 401 || !l->auth_context ||
        !shunt_model_http1(l))
        return 0;
    if (l->has_server && !l->old_iis)
        return 0;
    /* A client that did not ask to keep the connection (HTTP/1.0 without keep-alive,
     * Connection: close) closed nothing it meant to keep: not WinINet's close. */
    if (!shunt_check_wants_keepalive(l))
        return 0;
    /* The response must not have ended the connection itself: then the client only obeyed. */
    if (shunt_model_resp_closes(l) != NULL)
        return 0;
    *last = l;
    if (is(c->closer, "client") && is(c->close_how, "FIN")) {
        *certain = 1;
        return 1;
    }
    /* Unknown closer (an imported HAR; not a connection still open in a proxy's capture,
     * which nobody closed): the next connection to the origin opened a new handshake,
     * which a client that kept the connection would not have needed. */
    *certain = 0;
    return shunt_model_closer_unknown(c) && c->next != NULL && c->next->n_handshakes > 0;
}

const char *shunt_check_server_ended(const struct shunt_model_conn *c)
{
    const struct shunt_model_exchange *l = shunt_model_last(c);
    if (l == NULL || c->tunnel || !shunt_check_wants_keepalive(l) ||
        !upstream_wants_keepalive(l) || is(c->closer, "proxy"))
        return NULL;
    /* The response as the server sent it: a Connection: close that a rule of the proxy's
     * added on the way is not the server's (shunt_check_rule_closed()). */
    return shunt_model_server_closes(l);
}

int shunt_check_handshake_moved(const struct shunt_model_conn *c)
{
    const struct shunt_model_exchange *l = shunt_model_last(c);
    return l != NULL && shunt_model_http1(l) && l->status == 401 &&
           (l->challenge & SHUNT_MODEL_AUTH_BOUND) && c->next != NULL && c->next->n_ex > 0 &&
           (c->next->ex[0].auth & SHUNT_MODEL_AUTH_BOUND);
}

const struct shunt_model_exchange *shunt_check_client_early(const struct shunt_model_conn *c)
{
    const struct shunt_model_exchange *l = shunt_model_last(c), *w;
    int certain, on_request;
    /* HTTP/1.x: RFC 9112's persistence is what says the client could have kept it. */
    if (l == NULL || c->tunnel || c->multiplexed || !is(c->closer, "client") ||
        !(is(c->close_how, "FIN") || is(c->close_how, "RST")))
        return NULL;
    /* A whole response (no error: the client did not abort one half-read) that let the
     * connection persist, to a request that wanted it to. */
    if (l->status == 0 || l->error != NULL || shunt_model_resp_closes(l) != NULL ||
        !shunt_check_wants_keepalive(l))
        return NULL;
    if (shunt_check_wininet_close(c, &w, &certain))
        return NULL; /* the story's close: wininet-auth-close explains it */
    if (c->surplus_bytes > 0)
        return NULL; /* the server sent more than it declared: unframed-or-overlong-body's */
    /* After an NTLM or Negotiate challenge the close is the handshake's business, not a
     * keep-alive policy: a handshake split over connections (auth-connection-switch's), a
     * refused token, a client without credentials giving up. */
    if (l->status == 401 && (l->challenge & SHUNT_MODEL_AUTH_BOUND))
        return NULL;
    /* A refused CONNECT ends its connection's use as a tunnel, whatever its framing. */
    if (is(l->method, "CONNECT"))
        return NULL;
    /* A known client's own rule (client-quirk names it), or a rule of the user's in the
     * proxy (rule-closes-keepalive), explains the close. */
    if (shunt_check_quirk_of(l) != NULL || shunt_check_rule_closed(c, &on_request) != NULL)
        return NULL;
    if (c->next == NULL)
        return NULL; /* nothing replaced it (model.h: a parallel connection is no successor) */
    return l;
}

const struct shunt_model_exchange *shunt_check_idle_race(const struct shunt_model_conn *c,
                                                         int *certain)
{
    const struct shunt_model_exchange *l = shunt_model_last(c);
    /* HTTP/1.x: over HTTP/2 and HTTP/3 a server ends an idle connection with GOAWAY, which
     * names the last stream it processed (RFC 9113 6.8): no request is lost to the race. */
    if (l == NULL || c->tunnel || c->multiplexed || c->n_ex < 2)
        return NULL;
    /* Reused: the exchange before it was whole. Unanswered: no response head came from the
     * server, and either no status at all or the proxy's own answer with its reason. */
    const struct shunt_model_exchange *prev = l - 1;
    if (prev->status == 0 || prev->error != NULL || l->resp.base != NULL ||
        (l->status != 0 && l->error == NULL))
        return NULL;
    /* The server ended it: the connection's closer, or, when the proxy answered the client
     * itself (a 502 after the server's reset), the closer of its upstream connection. A HAR
     * names no closer; its error is all there is. */
    if (is(c->closer, "server") || (is(c->closer, "proxy") && is(c->up_closer, "server")))
        *certain = 1;
    else if (shunt_model_closer_unknown(c) && l->error != NULL)
        *certain = 0;
    else
        return NULL;
    /* Sent again first thing on the next connection (RFC 9112 9.3.1). */
    const struct shunt_model_conn *n = c->next;
    if (n == NULL || n->n_ex == 0 || !is(n->ex[0].method, l->method) || !is(n->ex[0].url, l->url))
        return NULL;
    return l;
}

const char *shunt_check_end_claimed(const struct shunt_model_conn *c)
{
    const struct shunt_model_exchange *l;
    int certain, on_request;
    if (shunt_check_rule_closed(c, &on_request) != NULL)
        return "rule-closes-keepalive";
    if (shunt_check_wininet_close(c, &l, &certain))
        return "wininet-auth-close";
    if (shunt_check_server_ended(c) != NULL)
        return "server-closes-keepalive";
    if (c->surplus_bytes > 0 && is(c->closer, "client"))
        return "unframed-or-overlong-body";
    if ((l = shunt_model_last(c)) != NULL && shunt_check_quirk_of(l) != NULL)
        return "client-quirk";
    if (shunt_check_client_early(c) != NULL)
        return "client-closes-early";
    if (shunt_check_idle_race(c, &certain) != NULL)
        return "idle-timeout-race";
    if (shunt_check_handshake_moved(c))
        return "auth-connection-switch";
    return NULL;
}

const char *shunt_confidence_name(enum shunt_confidence c)
{
    switch (c) {
    case SHUNT_CONFIDENCE_CERTAIN:
        return "certain";
    case SHUNT_CONFIDENCE_LIKELY:
        return "likely";
    default:
        return "possible";
    }
}
