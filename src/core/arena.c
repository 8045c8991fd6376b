/* src/core/arena.c - the exchange's memory: the owner's buffer, then chunks, large blocks
 * apart; reset in one go. */
#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define ALIGN alignof(max_align_t)

struct shunt_arena_block {
    struct shunt_arena_block *next;
    alignas(max_align_t) char data[];
};

static struct shunt_arena_block *block_new(size_t cap)
{
    SHUNT_BUG_ON(cap > SIZE_MAX - sizeof(struct shunt_arena_block));
    struct shunt_arena_block *b = malloc(sizeof(*b) + cap);
    SHUNT_BUG_ON(b == NULL); /* as shunt_xcalloc: out of memory ends the process */
    b->next = NULL;
    return b;
}

static void free_list(struct shunt_arena_block *b)
{
    while (b != NULL) {
        struct shunt_arena_block *n = b->next;
        free(b);
        b = n;
    }
}

void shunt_arena_init(struct shunt_arena *a)
{
    memset(a, 0, sizeof(*a));
}

void shunt_arena_init_in(struct shunt_arena *a, void *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    SHUNT_BUG_ON((uintptr_t)buf % ALIGN != 0);
    a->_inline = a->_base = buf;
    a->_inline_cap = a->_cap = cap;
}

void shunt_arena_dispose(struct shunt_arena *a)
{
    free_list(a->_chunks);
    free_list(a->_large);
    char *in = a->_inline;
    size_t cap = a->_inline_cap;
    memset(a, 0, sizeof(*a));
    a->_inline = a->_base = in;
    a->_inline_cap = a->_cap = cap;
}

void shunt_arena_reset(struct shunt_arena *a)
{
    shunt_arena_dispose(a);
}

void *shunt_arena_alloc(struct shunt_arena *a, size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    SHUNT_BUG_ON(need < n); /* wrapped */
    a->_total += n;
    if (need > SHUNT_ARENA_CHUNK / 4 && need > a->_cap - a->_used) {
        struct shunt_arena_block *b = block_new(need);
        b->next = a->_large;
        a->_large = b;
        return b->data;
    }
    if (a->_base == NULL || a->_cap - a->_used < need) {
        struct shunt_arena_block *c = block_new(SHUNT_ARENA_CHUNK);
        c->next = a->_chunks;
        a->_chunks = c;
        a->_base = c->data;
        a->_cap = SHUNT_ARENA_CHUNK;
        a->_used = 0;
    }
    void *p = a->_base + a->_used;
    a->_used += need;
    return p;
}

char *shunt_arena_strndup(struct shunt_arena *a, const char *p, size_t n)
{
    char *d = shunt_arena_alloc(a, n + 1);
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

size_t shunt_arena_used(const struct shunt_arena *a)
{
    return a->_total;
}
