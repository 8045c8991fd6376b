/* src/analyze/check.c - what every check shares: adding findings, their examples, and the
 * cost of a connection that ended. */
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
        return cost;
    cost.followed = 1;
    cost.us = n->connect_us + n->handshake_us;
    cost.handshakes = n->n_handshakes;
    return cost;
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
