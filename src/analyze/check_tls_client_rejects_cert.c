/* src/analyze/check_tls_client_rejects_cert.c - tls-client-rejects-cert: a client that shunt's
 * interception met refused the certificate shunt made for the host: it does not trust
 * shunt's CA, or it pins the server's certificate. Source: RFC 8446 6.2 (alerts
 * unknown_ca, bad_certificate, certificate_unknown), docs/knowledge.md. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_tls_client_rejects_cert = {
    .id = "tls-client-rejects-cert",
    .title = "the client rejected shunt's certificate (untrusted CA, or pinning)",
    .looks_for = "intercepted TLS handshakes with the client that failed because the client "
                 "refused the certificate shunt presented: its alert says unknown ca (48), bad "
                 "certificate (42), unsupported certificate (43) or certificate unknown (46), "
                 "or it closed the connection during the handshake; and handshakes the client "
                 "completed, then closed without sending a request",
    .evidence = "the tls table of a capture recorded with --intercept: the client side's "
                "handshakes with their errors, and the exchanges inside each connection",
    .why = "With --intercept shunt answers the client's TLS with a certificate for the host "
           "signed by shunt's own CA. A client that does not trust that CA aborts the "
           "handshake, naming the CA unknown (OpenSSL, curl) or the certificate bad or "
           "unknown (browsers, Java, .NET); a client that pins the server's certificate or "
           "key refuses any other, even one signed by a CA it trusts, and often just closes "
           "the connection, during the handshake or right after it without a request.",
    .fix = "make the client trust shunt's CA: `shunt ca` prints where it is and how to "
           "install it (curl --cacert, update-ca-certificates, certutil for the NSS "
           "databases of Chromium and Firefox, the platform's store for Java and .NET). A "
           "client that pins cannot be intercepted: leave its host out with --intercept "
           "FILTER, so that its tunnel stays a byte tunnel.",
    .proof = "shunt show FILE ID of the failed exchange prints the client's TLS facts and "
             "the alert; curl --cacert of shunt's CA through shunt proxy --intercept "
             "succeeds where curl without it fails with the same alert.",
    .run = run,
};

/* How sure the error <e> of a client-side handshake says the client refused the
 * certificate: CERTAIN for unknown ca, LIKELY for the other certificate alerts, POSSIBLE
 * for a close during the handshake; -1 when it says something else (a timeout, plain HTTP
 * in the tunnel, a protocol mismatch). */
static int judge(const char *e)
{
    if (strcasestr(e, "unknown ca") != NULL || strstr(e, "alert 48") != NULL)
        return SHUNT_CONFIDENCE_CERTAIN;
    static const char *const alerts[] = {"bad certificate", "alert 42", "unsupported certificate",
                                         "alert 43", "certificate unknown", "alert 46",
                                         "rejected shunt's certificate"};
    for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
        if (strcasestr(e, alerts[i]) != NULL)
            return SHUNT_CONFIDENCE_LIKELY;
    if (strncmp(e, "not TLS", 7) == 0 || strcasestr(e, "timed out") != NULL)
        return -1;
    if (strcasestr(e, "closed") != NULL || strcasestr(e, "eof") != NULL ||
        strcasestr(e, "reset") != NULL)
        return SHUNT_CONFIDENCE_POSSIBLE;
    return -1;
}

/* Closing a handshake this soon after it ended, without a request, is a verdict on it; an
 * idle connection closed later is a browser's preconnect it did not need. */
#define PIN_CLOSE_US 1000000

/* True when <c> carried no request after its TLS <t> was done: only the CONNECT (or no
 * exchange), and its client closed it within PIN_CLOSE_US of the handshake's end. */
static int no_request_inside(const struct shunt_model_conn *c, const struct shunt_model_tls *t)
{
    for (size_t k = 0; k < c->n_ex; k++)
        if (strcmp(c->ex[k].method, "CONNECT") != 0)
            return 0;
    return strcmp(c->closer, "client") == 0 && t->time_us >= 0 && c->closed_us >= t->time_us &&
           c->closed_us - t->time_us < PIN_CLOSE_US;
}

/* True when the handshake <t> on connection <c> counts under the FILTER: its connection has
 * a selected exchange, or without a FILTER (all selected) it has none at all. */
static int counts(const struct shunt_model *m, const struct shunt_model_conn *c)
{
    return c->selected || (c->n_ex == 0 && m->n_selected == m->n_ex);
}

/* The confidence for <t> (a client-side handshake), or -1 when it is not this pattern. */
static int judge_tls(const struct shunt_model *m, const struct shunt_model_tls *t,
                     const struct shunt_model_conn **conn)
{
    const struct shunt_model_conn *c = shunt_model_conn_by_id(m, t->conn_id);
    *conn = c;
    if (t->side != 0 || c == NULL || !counts(m, c))
        return -1;
    if (t->error != NULL)
        return judge(t->error);
    /* done, then nothing: a client that checks a pin once the handshake is over */
    return no_request_inside(c, t) ? SHUNT_CONFIDENCE_POSSIBLE : -1;
}

/* The exchange that records the failure on <c> (its error starts "TLS with the client"),
 * else its last one; 0 none. */
static int64_t failure_exchange(const struct shunt_model_conn *c)
{
    for (size_t k = 0; k < c->n_ex; k++)
        if (c->ex[k].error != NULL && strncmp(c->ex[k].error, "TLS with the client", 19) == 0)
            return c->ex[k].id;
    return c->n_ex ? c->ex[c->n_ex - 1].id : 0;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, by[3] = {0, 0, 0};
    int best = -1;
    const char *sni1 = NULL, *sni2 = NULL;
    size_t n_names = 0;
    for (size_t i = 0; i < m->n_tls; i++) {
        const struct shunt_model_conn *c;
        int j = judge_tls(m, &m->tls[i], &c);
        if (j < 0)
            continue;
        n++;
        by[j]++;
        best = j > best ? j : best;
        const char *sni = m->tls[i].sni[0] ? m->tls[i].sni : c->host;
        if (sni[0] && (sni1 == NULL || strcmp(sni, sni1) != 0) &&
            (sni2 == NULL || strcmp(sni, sni2) != 0)) {
            if (sni1 == NULL)
                sni1 = sni;
            else if (sni2 == NULL)
                sni2 = sni;
            n_names++;
        }
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f =
        shunt_finding_add(out, &shunt_check_tls_client_rejects_cert, (enum shunt_confidence)best);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "handshakes", 0, 0, 0);
    char names[200] = "";
    if (sni1 != NULL)
        snprintf(names, sizeof(names), " for %.80s%s%.80s%s", sni1, sni2 ? ", " : "",
                 sni2 ? sni2 : "", n_names > 2 ? " and others" : "");
    /* how each told, the surest first; the kinds it did not see are left out */
    static const char *const kind_names[3] = {"closed or done without a request",
                                              "with another certificate alert",
                                              "with an alert naming shunt's CA unknown"};
    char kinds[200] = "";
    size_t kl = 0;
    for (int k = SHUNT_CONFIDENCE_CERTAIN; k >= 0; k--)
        if (by[k] > 0 && kl < sizeof(kinds))
            kl += (size_t)snprintf(kinds + kl, sizeof(kinds) - kl, "%s%zu %s", kl ? ", " : "",
                                   by[k], kind_names[k]);
    shunt_finding_what(f, "The client refused shunt's certificate in %zu intercepted TLS "
                       "handshake%s%s (%s): %s.",
                       n, n == 1 ? "" : "s", names, kinds,
                       best == SHUNT_CONFIDENCE_CERTAIN
                           ? "it does not trust shunt's CA"
                           : "it does not trust shunt's CA, or it pins its server's certificate");
    /* examples: the surest first */
    for (int want = SHUNT_CONFIDENCE_CERTAIN; want >= 0; want--) {
        for (size_t i = 0; i < m->n_tls && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
            const struct shunt_model_conn *c;
            if (judge_tls(m, &m->tls[i], &c) == want)
                shunt_finding_example(f, c->id, failure_exchange(c));
        }
    }
    return 0;
}
