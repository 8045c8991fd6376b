/* src/core/arena.c - the exchange's memory: chunks, large blocks, reset in one go. */
#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define ALIGN alignof(max_align_t)

struct shunt_arena_block {
    struct shunt_arena_block *next;
    size_t cap; /* bytes of <data> */
    alignas(max_align_t) char data[];
};

static struct shunt_arena_block *block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(struct shunt_arena_block))
        SHUNT_BUG_ON(1);
    struct shunt_arena_block *b = malloc(sizeof(*b) + cap);
    SHUNT_BUG_ON(b == NULL); /* as shunt_xcalloc: out of memory ends the process */
    b->next = NULL;
    b->cap = cap;
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

void shunt_arena_dispose(struct shunt_arena *a)
{
    free_list(a->_chunks);
    free_list(a->_large);
    memset(a, 0, sizeof(*a));
}

void shunt_arena_reset(struct shunt_arena *a)
{
    free_list(a->_large);
    a->_large = NULL;
    /* keep the oldest chunk (the last in the list): the next exchange starts in it */
    struct shunt_arena_block *keep = a->_chunks;
    while (keep != NULL && keep->next != NULL) {
        struct shunt_arena_block *n = keep->next;
        free(keep);
        keep = n;
    }
    a->_chunks = keep;
    a->_used = 0;
    a->_total = 0;
}

void *shunt_arena_alloc(struct shunt_arena *a, size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need < n) /* wrapped */
        SHUNT_BUG_ON(1);
    a->_total += n;
    if (need > SHUNT_ARENA_CHUNK / 4) {
        struct shunt_arena_block *b = block_new(need);
        b->next = a->_large;
        a->_large = b;
        return b->data;
    }
    if (a->_chunks == NULL || a->_chunks->cap - a->_used < need) {
        struct shunt_arena_block *c = block_new(SHUNT_ARENA_CHUNK);
        c->next = a->_chunks;
        a->_chunks = c;
        a->_used = 0;
    }
    void *p = a->_chunks->data + a->_used;
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
