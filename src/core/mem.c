/* src/core/mem.c - aborting allocators for control structures. */
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *shunt_xcalloc(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL) {
        fputs("shunt: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *shunt_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = shunt_xcalloc(n);
    memcpy(p, s, n);
    return p;
}

void shunt__bug(const char *cond, const char *file, int line)
{
    /* not through the log module: it may be what is broken, and this must not allocate */
    fprintf(stderr, "shunt: BUG at %s:%d: %s\n", file, line, cond);
    abort();
}
