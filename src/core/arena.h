/* src/core/arena.h - memory for everything that lives as long as one exchange (h2o's
 * req->pool): allocations come from chunks, nothing is freed one by one, and the end of the
 * exchange gives it all back at once with shunt_arena_reset(). The first chunk is kept
 * across resets, so a keep-alive connection's exchanges allocate nothing from the system
 * once the first one has warmed it. */
#ifndef SHUNT_CORE_ARENA_H
#define SHUNT_CORE_ARENA_H

#include <stddef.h>

/* Size of a chunk; a request bigger than a quarter of it gets a block of its own. */
#define SHUNT_ARENA_CHUNK 4096

struct shunt_arena_block; /* private: a chunk or a large block */

/* Plain data; init, alloc, reset (as often as needed), dispose. Fields are private. */
struct shunt_arena {
    struct shunt_arena_block *_chunks; /* newest first; the oldest is the one kept */
    struct shunt_arena_block *_large;  /* blocks of one large allocation each */
    size_t _used;                      /* bytes used in the newest chunk */
    size_t _total;                     /* bytes handed out since the last reset */
};

/* Starts an empty arena; nothing is allocated until the first request. */
void shunt_arena_init(struct shunt_arena *a);

/* Frees everything the arena holds. */
void shunt_arena_dispose(struct shunt_arena *a);

/* Ends the lifetime of everything allocated so far: every pointer the arena handed out is
 * dead. Keeps one chunk for what comes next. */
void shunt_arena_reset(struct shunt_arena *a);

/* Returns <n> bytes aligned for any type, valid until the next reset or dispose. Aborts
 * when out of memory (STYLE 4: what is sized by a peer is bounded before it gets here). */
void *shunt_arena_alloc(struct shunt_arena *a, size_t n);

/* Returns a copy of the <n> bytes at <p> with a NUL after them; valid until the next reset. */
char *shunt_arena_strndup(struct shunt_arena *a, const char *p, size_t n);

/* Returns how many bytes were handed out since the last reset (tests, statistics). */
size_t shunt_arena_used(const struct shunt_arena *a);

#endif
