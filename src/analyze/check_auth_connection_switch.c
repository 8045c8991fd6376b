/* src/analyze/check_auth_connection_switch.c - auth-connection-switch: an NTLM or Negotiate
 * leg sent on another connection than the challenge it answers. Source: MS-NLMP 1.3 and 3.1
 * (NTLM over HTTP is connection-oriented), RFC 4559 (Negotiate over HTTP: the handshake's
 * legs on one connection), and a proxy's pairing (DESIGN: faithful by default);
 * docs/knowledge.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_auth_connection_switch = {
    .id = "auth-connection-switch",
    .title = "authentication legs sent on another connection than their challenge",
    .looks_for = "NTLM or Negotiate legs on a connection that got no challenge for them, while "
                 "the challenge came on another connection of the same client to the same "
                 "origin: an answer to a server token (NTLM AUTHENTICATE, SPNEGO "
                 "NegTokenResp), or a leg the server refused with a new 401",
    .evidence = "the Authorization and WWW-Authenticate fields with their tokens, and which "
                "connection carried each exchange",
    .why = "NTLM, and Negotiate when it falls back to NTLM or needs more than one leg, "
           "authenticate the connection: the server keeps the handshake's state on the "
           "connection that got the challenge. A leg that arrives on another connection "
           "matches nothing, so it is refused with a new 401 and the handshake starts over, "
           "or fails. A pooling proxy or load balancer that does not pair client and server "
           "connections, or a client that opens a connection per request, does this.",
    .fix = "keep each client connection on one server connection for its whole life (connection "
           "affinity, 'Proxy-Support: Session-Based-Authentication', NTLM pass-through in the "
           "proxy or load balancer), or use Kerberos with a single leg, or Basic over TLS.",
    .proof = "shunt proxy pairs connections: send the client through it directly to the "
             "server (no pooling hop) and compare shunt connections FILE '~auth': each "
             "handshake stays on one connection. shunt lab client --split-handshake "
             "reproduces the break.",
    .run = run,
};

/* A challenge: a 401 offering NTLM or Negotiate, by origin and time. */
struct chal {
    const struct shunt_model_conn *c;
    const struct shunt_model_exchange *e;
};

static int key_cmp(const struct shunt_model_conn *x, int64_t tx, const struct shunt_model_conn *y,
                   int64_t ty)
{
    int r = strcmp(x->client_addr, y->client_addr);
    if (r == 0)
        r = strcmp(x->host, y->host);
    if (r == 0)
        r = (x->port > y->port) - (x->port < y->port);
    if (r == 0)
        r = (tx > ty) - (tx < ty);
    return r;
}

static int chal_cmp(const void *a, const void *b)
{
    const struct chal *x = a, *y = b;
    return key_cmp(x->c, x->e->started_us, y->c, y->e->started_us);
}

/* The latest challenge before <e> on <c>'s origin, on another connection than <c>; NULL. */
static const struct chal *challenge_elsewhere(const struct chal *v, size_t n,
                                              const struct shunt_model_conn *c,
                                              const struct shunt_model_exchange *e)
{
    size_t lo = 0, hi = n; /* first index whose key is >= (c, e->started_us) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(v[mid].c, v[mid].e->started_us, c, e->started_us) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo-- > 0) {
        const struct chal *x = &v[lo];
        if (strcmp(x->c->client_addr, c->client_addr) != 0 || strcmp(x->c->host, c->host) != 0 ||
            x->c->port != c->port)
            return NULL;
        if (x->c != c)
            return x;
        return NULL; /* the latest challenge was on this very connection */
    }
    return NULL;
}

/* An NTLM or Negotiate 401 challenge, over HTTP/1.x (the only version that binds a
 * handshake to its connection). */
static int is_challenge(const struct shunt_model_exchange *e)
{
    return shunt_model_http1(e) && e->status == 401 && (e->challenge & SHUNT_MODEL_AUTH_BOUND);
}

/* Is the leg at <c->ex[k]> sent away from its challenge, in a way that breaks? */
static const struct chal *switched(const struct chal *v, size_t n,
                                   const struct shunt_model_conn *c, size_t k)
{
    const struct shunt_model_exchange *e = &c->ex[k];
    if (!e->selected || e->leg == SHUNT_MODEL_LEG_NONE || !shunt_model_http1(e))
        return NULL;
    if (k > 0 && is_challenge(&c->ex[k - 1]))
        return NULL; /* it answers the challenge on its own connection */
    /* A first leg may open a handshake on any connection; it breaks nothing unless refused. */
    int refused = e->status == 401 && !e->challenge_token;
    if (e->leg != SHUNT_MODEL_LEG_CONTINUATION && !refused)
        return NULL;
    return challenge_elsewhere(v, n, c, e);
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n_chal = 0;
    for (size_t i = 0; i < m->n_ex; i++)
        n_chal += (size_t)is_challenge(&m->ex[i]);
    if (n_chal == 0)
        return 0;
    struct chal *v = malloc(n_chal * sizeof(*v));
    if (v == NULL)
        return SHUNT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < m->n_conns; i++)
        for (size_t j = 0; j < m->conns[i].n_ex; j++)
            if (is_challenge(&m->conns[i].ex[j]))
                v[k++] = (struct chal){&m->conns[i], &m->conns[i].ex[j]};
    if (n_chal > 1) /* qsort's base must not be NULL, even for nothing */
        qsort(v, n_chal, sizeof(*v), chal_cmp);

    size_t n = 0, n_cont = 0, n_refused = 0, n_ruled = 0;
    int on_request;
    const struct shunt_model_exchange *first_leg = NULL, *first_chal = NULL;
    int64_t lost_us = 0;
    struct shunt_finding *f = NULL;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        for (size_t j = 0; j < c->n_ex; j++) {
            const struct chal *x = switched(v, n_chal, c, j);
            if (x == NULL)
                continue;
            const struct shunt_model_exchange *e = &c->ex[j];
            if (f == NULL) {
                f = shunt_finding_add(out, &shunt_check_auth_connection_switch,
                                      SHUNT_CONFIDENCE_CERTAIN);
                if (f == NULL) {
                    free(v);
                    return SHUNT_ENOMEM;
                }
            }
            n++;
            n_cont += e->leg == SHUNT_MODEL_LEG_CONTINUATION;
            n_refused += e->status == 401;
            /* A rule of the user's ended the challenge's connection right after it: the
             * leg had nowhere else to go (rule-closes-keepalive's consequence). */
            n_ruled += shunt_model_last(x->c) == x->e &&
                       shunt_check_rule_closed(x->c, &on_request) != NULL;
            lost_us = shunt_model_add(lost_us, shunt_model_add(e->duration_us, x->e->duration_us));
            shunt_finding_example(f, c->id, e->id);
            if (n == 1) {
                first_leg = e;
                first_chal = x->e;
            }
        }
    }
    free(v);
    if (f == NULL)
        return 0;
    shunt_finding_measure(f, n, "legs", lost_us, n, 0);
    if (n_ruled == n)
        f->cause = "rule-closes-keepalive";
    if (n == 1)
        shunt_finding_what(f, "1 authentication leg went on another connection than the "
                           "challenge it answered (%s); the server %s. Exchange %lld on "
                           "connection %lld answered exchange %lld on connection %lld.",
                           n_cont ? "an answer to a server token, such as NTLM's AUTHENTICATE"
                                  : "a first leg",
                           n_refused ? "refused it with a new 401" : "did not refuse it",
                           (long long)first_leg->id, (long long)first_leg->conn_id,
                           (long long)first_chal->id, (long long)first_chal->conn_id);
    else
        shunt_finding_what(f, "%zu authentication legs went on another connection than the "
                           "challenge they answered (%zu answering a server token, such as "
                           "NTLM's AUTHENTICATE); the server refused %zu of them with a new "
                           "401. First: exchange %lld on connection %lld answered exchange "
                           "%lld on connection %lld.",
                           n, n_cont, n_refused, (long long)first_leg->id,
                           (long long)first_leg->conn_id, (long long)first_chal->id,
                           (long long)first_chal->conn_id);
    return 0;
}
