/* src/core/arena.h - memory for everything that lives as long as one exchange (h2o's
 * req->pool): allocations come from chunks, nothing is freed one by one, and the end of the
 * exchange gives it all back at once with shunt_arena_reset(). An arena may start in a small
 * buffer of its owner's (shunt_arena_init_in()): a usual exchange (its names, a rewritten
 * request line) fits there and allocates nothing from the system, and an idle owner holds
 * no chunk, since a reset frees them all. */
#ifndef SHUNT_CORE_ARENA_H
#define SHUNT_CORE_ARENA_H

#include <stddef.h>

/* Size of a chunk; a request bigger than a quarter of it gets a block of its own. */
#define SHUNT_ARENA_CHUNK 4096

struct shunt_arena_block; /* private: a chunk or a large block */

/* Plain data; init, alloc, reset (as often as needed), dispose. Fields are private. */
struct shunt_arena {
    char *_base;                       /* where allocations come from now */
    size_t _used, _cap;                /* of <_base> */
    char *_inline;                     /* the owner's buffer, or NULL */
    size_t _inline_cap;
    struct shunt_arena_block *_chunks; /* chunks taken since the last reset, newest first */
    struct shunt_arena_block *_large;  /* blocks of one large allocation each */
    size_t _total;                     /* bytes handed out since the last reset */
};

/* Starts an empty arena; nothing is allocated until the first request. */
void shunt_arena_init(struct shunt_arena *a);

/* Starts an empty arena that hands out the <cap> bytes at <buf> (aligned for any type; the
 * caller's, which must outlive the arena) before it takes any chunk. */
void shunt_arena_init_in(struct shunt_arena *a, void *buf, size_t cap);

/* Frees everything the arena took from the system. */
void shunt_arena_dispose(struct shunt_arena *a);

/* Ends the lifetime of everything allocated so far: every pointer the arena handed out is
 * dead, every chunk freed; the next allocations start in the owner's buffer again. */
void shunt_arena_reset(struct shunt_arena *a);

/* Returns <n> bytes aligned for any type, valid until the next reset or dispose. Aborts
 * when out of memory (STYLE 4: what is sized by a peer is bounded before it gets here). */
void *shunt_arena_alloc(struct shunt_arena *a, size_t n);

/* Returns a copy of the <n> bytes at <p> with a NUL after them; valid until the next reset. */
char *shunt_arena_strndup(struct shunt_arena *a, const char *p, size_t n);

/* Returns how many bytes were handed out since the last reset (tests, statistics). */
size_t shunt_arena_used(const struct shunt_arena *a);

#endif
