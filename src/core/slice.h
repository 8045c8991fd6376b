/* src/core/slice.h - a pointer and a length into bytes owned by someone else. */
#ifndef SHUNT_CORE_SLICE_H
#define SHUNT_CORE_SLICE_H

#include <stddef.h>
#include <string.h>

/* A borrowed run of bytes, not NUL-terminated. Valid as long as the buffer it points
 * into; whoever hands one out says until when. */
struct shunt_slice {
    const char *base; /* first byte; may be NULL when len is 0 */
    size_t len;       /* bytes */
};

#define SHUNT_SLICE_LIT(s) ((struct shunt_slice){(s), sizeof(s) - 1})

static inline struct shunt_slice shunt_slice_make(const char *base, size_t len)
{
    return (struct shunt_slice){base, len};
}

/* True when <a> equals the <len> bytes at <b>, case-sensitively. */
static inline int shunt_slice_eq(struct shunt_slice a, const char *b, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.base, b, len) == 0);
}

/* True when <a> equals the <len> bytes at <b>, ignoring ASCII case. */
static inline int shunt_slice_ieq(struct shunt_slice a, const char *b, size_t len)
{
    if (a.len != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a.base[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

#define SHUNT_SLICE_IEQ_LIT(a, lit) shunt_slice_ieq((a), (lit), sizeof(lit) - 1)

#endif
