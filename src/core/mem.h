/* src/core/mem.h - allocation of small fixed-size control structures (aborts when out of memory). */
#ifndef SHUNT_CORE_MEM_H
#define SHUNT_CORE_MEM_H

#include <stddef.h>

/* Returns zeroed memory of <size> bytes; aborts the process when none is left. Anything sized
 * by a peer must not come from here: it has a limit and fails softly instead. */
void *shunt_xcalloc(size_t size);
/* Returns a copy of the NUL-terminated <s>; aborts when out of memory. */
char *shunt_xstrdup(const char *s);

/* Reports a broken invariant at <file>:<line> (the text of <cond>) and aborts. Never returns. */
void shunt__bug(const char *cond, const char *file, int line) __attribute__((noreturn));

/* States a can't-happen condition: when <cond> holds, the process stops with the place and
 * the condition instead of going on to corrupt memory. Active in every build (a test costs a
 * branch); not for validating input, which must fail softly (haproxy's BUG_ON, DEBUG_STRICT). */
#define SHUNT_BUG_ON(cond)                                                                         \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            shunt__bug(#cond, __FILE__, __LINE__);                                                 \
    } while (0)

/* Recovers the struct that embeds <ptr> as its field <member>. */
#define SHUNT_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
