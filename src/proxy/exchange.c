/* src/proxy/exchange.c - one exchange: its begin, its end, its arena. */
#include "proxy/exchange.h"

#include <stdlib.h>
#include <stddef.h>
#include <string.h>

void shunt_exchange_init(struct shunt_exchange *ex)
{
    memset(ex, 0, sizeof(*ex));
    shunt_arena_init_in(&ex->arena, ex->mem, sizeof(ex->mem));
}

void shunt_exchange_dispose(struct shunt_exchange *ex)
{
    shunt_arena_dispose(&ex->arena);
}

/* Everything but the arena back to zero: the idle values (RQ_IDLE, RS_NONE, HOLD_NONE). */
static void clear(struct shunt_exchange *ex)
{
    size_t from = offsetof(struct shunt_exchange, rq);
    memset((char *)ex + from, 0, sizeof(*ex) - from);
}

void shunt_exchange_begin(struct shunt_exchange *ex, struct shunt_slice method,
                          struct shunt_slice target, uint64_t now_us)
{
    shunt_arena_reset(&ex->arena);
    clear(ex);
    ex->active = 1;
    ex->t_start = now_us;
    if (method.base == NULL) {
        ex->method = ex->url = "-";
        return;
    }
    ex->method = shunt_exchange_copy(ex, method.base, method.len);
    ex->url = shunt_exchange_copy(ex, target.base, target.len);
}

void shunt_exchange_end(struct shunt_exchange *ex)
{
    shunt_arena_reset(&ex->arena);
    clear(ex);
}

char *shunt_exchange_copy(struct shunt_exchange *ex, const char *p, size_t n)
{
    return shunt_arena_strndup(&ex->arena, p, n);
}

void *shunt_exchange_alloc(struct shunt_exchange *ex, size_t n)
{
    return shunt_arena_alloc(&ex->arena, n);
}

void shunt_exchange_fail_at(struct shunt_exchange *ex, int code, size_t offset)
{
    if (ex->err_code != 0)
        return;
    ex->err_code = code;
    ex->err_offset = offset;
}

struct shunt_slice shunt_exchange_hook_url(struct shunt_exchange *ex, struct shunt_slice host,
                                           struct shunt_slice target, int absolute,
                                           struct shunt_slice lower_src,
                                           struct shunt_slice *lower)
{
    size_t ul = absolute ? target.len : 7 + host.len + target.len;
    size_t ll = 0;
    while (lower != NULL && ll < lower_src.len && lower_src.base[ll] != ':')
        ll++;
    char *url = shunt_exchange_alloc(ex, ul + 1 + ll), *p = url;
    if (!absolute) {
        memcpy(p, "http://", 7);
        if (host.len > 0)
            memcpy(p + 7, host.base, host.len);
        p += 7 + host.len;
    }
    if (target.len > 0)
        memcpy(p, target.base, target.len);
    url[ul] = '\0';
    ex->hook_url = shunt_slice_make(url, ul);
    if (lower != NULL) {
        char *l = url + ul + 1;
        for (size_t i = 0; i < ll; i++) {
            char c = lower_src.base[i];
            l[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        *lower = shunt_slice_make(l, ll);
    }
    return ex->hook_url;
}

void shunt_exchange_keep(struct shunt_exchange *ex, const struct shunt_head_edit *e)
{
    size_t need = 1;
    for (size_t i = 0; i < e->n; i++)
        if (!e->f[i].removed)
            need += e->f[i].line.len;
    char *kept = shunt_exchange_alloc(ex, need);
    size_t off = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (e->f[i].removed)
            continue;
        memcpy(kept + off, e->f[i].line.base, e->f[i].line.len);
        off += e->f[i].line.len;
    }
    ex->kept = shunt_slice_make(kept, off);
}

void shunt_exchange_adopt_verdict(struct shunt_exchange *ex, struct shunt_request_verdict *v)
{
    if (v->respond_body != NULL && v->respond_body_free) {
        char *b = shunt_exchange_copy(ex, v->respond_body, v->respond_body_len);
        free((char *)v->respond_body);
        v->respond_body = b;
        v->respond_body_free = 0;
    }
    if (v->map_url != NULL) /* the hook's own until its next call */
        v->map_url = shunt_exchange_copy(ex, v->map_url, v->map_url_len);
}

void shunt_exchange_adopt_hook_out(struct shunt_exchange *ex, struct shunt_hook_out *out)
{
    if (out->respond_fields != NULL) {
        char *f = shunt_exchange_copy(ex, out->respond_fields, out->respond_fields_len);
        free(out->respond_fields);
        out->respond_fields = f;
    }
    if (out->respond_body != NULL) {
        char *b = shunt_exchange_copy(ex, out->respond_body, out->respond_body_len);
        free(out->respond_body);
        out->respond_body = b;
    }
}

void shunt_exchange_fill_done(const struct shunt_exchange *ex, struct shunt_event *ev)
{
    ev->method = ex->method;
    ev->url = ex->url;
    ev->status = ex->status;
    ev->req_bytes = ex->req_bytes;
    ev->resp_bytes = ex->resp_bytes;
    ev->duration_us = ev->time_us - ex->t_start;
    ev->local_port = ex->upstream_port;
    ev->upstream_reused = ex->reused;
    ev->error = ex->error;
    ev->req_body_size = ex->req_body.payload;
    ev->resp_body_size = ex->resp_body.payload;
    uint64_t now = ev->time_us;
    ev->t_dns_us = ex->t_resolved ? (int64_t)(ex->t_resolved - ex->t_connect_start) : -1;
    ev->t_connect_us =
        ex->t_connected
            ? (int64_t)(ex->t_connected - (ex->t_resolved ? ex->t_resolved : ex->t_connect_start))
            : -1;
    uint64_t sent = ex->t_sent ? ex->t_sent : (ex->t_send_start ? now : 0);
    ev->t_send_us = ex->t_send_start ? (int64_t)(sent - ex->t_send_start) : 0;
    uint64_t first = ex->t_first_byte ? ex->t_first_byte : now;
    ev->t_wait_us = ex->t_sent && first > ex->t_sent ? (int64_t)(first - ex->t_sent) : 0;
    ev->t_receive_us = ex->t_first_byte ? (int64_t)(now - ex->t_first_byte) : 0;
}
