/* src/core/mem.h - allocation of small fixed-size control structures (aborts when out of memory). */
#ifndef SHUNT_CORE_MEM_H
#define SHUNT_CORE_MEM_H

#include <stddef.h>

/* Returns zeroed memory of <size> bytes; aborts the process when none is left. Anything sized
 * by a peer must not come from here: it has a limit and fails softly instead. */
void *shunt_xcalloc(size_t size);
/* Returns a copy of the NUL-terminated <s>; aborts when out of memory. */
char *shunt_xstrdup(const char *s);

/* Recovers the struct that embeds <ptr> as its field <member>. */
#define SHUNT_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
