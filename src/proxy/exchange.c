/* src/proxy/exchange.c - one exchange: its begin, its end, its arena. */
#include "proxy/exchange.h"

#include <string.h>

void shunt_exchange_init(struct shunt_exchange *ex)
{
    memset(ex, 0, sizeof(*ex));
    shunt_arena_init(&ex->arena);
}

void shunt_exchange_dispose(struct shunt_exchange *ex)
{
    shunt_arena_dispose(&ex->arena);
}

/* Everything but the arena back to zero: the idle values (RQ_IDLE, RS_NONE, HOLD_NONE). */
static void clear(struct shunt_exchange *ex)
{
    struct shunt_arena keep = ex->arena;
    memset(ex, 0, sizeof(*ex));
    ex->arena = keep;
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
