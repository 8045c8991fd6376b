/* src/core/base64.c - reading base64 (RFC 4648) leniently. */
#include "core/base64.h"

#include <stdint.h>

int shunt_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

size_t shunt_base64_decode_prefix(const char *in, size_t len, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=' || c == ' ' || c == '\t')
            continue; /* padding and white space: skipped */
        int v = shunt_base64_value(c);
        if (v < 0)
            break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}
