/* src/analyze/check_tls_upstream_cert_invalid.c - tls-upstream-cert-invalid: shunt refused an
 * upstream's certificate (expired, another name, an unknown CA): which check failed, on which
 * servers. Source: RFC 5280 6 (path validation), RFC 6125 6 (the name), docs/knowledge.md. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "analyze/check.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_tls_upstream_cert_invalid = {
    .id = "tls-upstream-cert-invalid",
    .title = "an upstream's certificate failed verification",
    .looks_for = "TLS handshakes of shunt with an upstream (intercepted CONNECTs, --reverse "
                 "https://) that failed verifying the server's certificate: its chain "
                 "(expired, not yet valid, an issuer shunt does not trust, self-signed) or "
                 "its name",
    .evidence = "the tls table of a capture: the upstream side's handshakes with their error "
                "and OpenSSL's verify result",
    .why = "shunt verifies every upstream as a browser would: the chain up to a CA of the "
           "system's trust store (or --upstream-cacert), the validity dates, and the name "
           "asked for against the certificate's names. When one fails shunt does not talk to "
           "that server and answers the client with a 502 naming the check, so the client "
           "sees shunt's answer where it would have seen its own certificate error.",
    .fix = "fix the server's certificate: renew it when it expired, include the name clients "
           "use in its subjectAltName, serve the whole chain; for a server of a private CA "
           "give shunt that CA with --upstream-cacert FILE. --insecure-upstream turns "
           "verification off, for a test only.",
    .proof = "shunt show FILE ID of the 502 prints the upstream's certificate (subject, "
             "issuer, names, validity) and the failed check; openssl s_client -connect "
             "HOST:PORT -servername HOST -verify_return_error says the same.",
    .run = run,
};

/* True when the upstream handshake <t> failed on the certificate's verification. */
static int failed_verify(const struct shunt_model_tls *t)
{
    if (t->side != 1 || t->error == NULL || t->insecure)
        return 0;
    return t->verify_result > 0 || strcasestr(t->error, "certificate verify failed") != NULL ||
           strcasestr(t->error, "hostname mismatch") != NULL;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    size_t n = 0, n_kinds = 0;
    const struct shunt_model_tls *first = NULL, *other = NULL; /* two different errors */
    for (size_t i = 0; i < m->n_tls; i++) {
        const struct shunt_model_tls *t = &m->tls[i];
        const struct shunt_model_conn *c = shunt_model_conn_by_id(m, t->conn_id);
        if (c == NULL || !failed_verify(t) ||
            !(c->selected || (c->n_ex == 0 && m->n_selected == m->n_ex)))
            continue;
        n++;
        if (first == NULL) {
            first = t;
            n_kinds = 1;
        } else if (strcmp(t->error, first->error) != 0 &&
                   (other == NULL || strcmp(t->error, other->error) != 0)) {
            if (other == NULL)
                other = t;
            n_kinds++;
        }
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f =
        shunt_finding_add(out, &shunt_check_tls_upstream_cert_invalid, SHUNT_CONFIDENCE_CERTAIN);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "handshakes", 0, 0, 0);
    char more[200] = "";
    if (other != NULL)
        snprintf(more, sizeof(more), "; and %.80s (%.60s)%s", other->error,
                 other->sni[0] ? other->sni : "?", n_kinds > 2 ? ", and more" : "");
    shunt_finding_what(f, "shunt refused the certificate of the server in %zu upstream TLS "
                       "handshake%s: %.120s (%.60s)%s. Each of its clients got shunt's 502.",
                       n, n == 1 ? "" : "s", first->error, first->sni[0] ? first->sni : "?",
                       more);
    for (size_t i = 0; i < m->n_tls && f->n_conns < SHUNT_CHECK_EXAMPLES; i++) {
        const struct shunt_model_tls *t = &m->tls[i];
        const struct shunt_model_conn *c = shunt_model_conn_by_id(m, t->conn_id);
        if (c == NULL || !failed_verify(t) ||
            !(c->selected || (c->n_ex == 0 && m->n_selected == m->n_ex)))
            continue;
        int64_t ex = 0;
        for (size_t k = 0; k < c->n_ex && ex == 0; k++)
            if (c->ex[k].error != NULL && strncmp(c->ex[k].error, "TLS with the upstream", 21) == 0)
                ex = c->ex[k].id;
        shunt_finding_example(f, c->id, ex);
    }
    return 0;
}
