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
