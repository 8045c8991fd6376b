/* src/core/base64.h - reading base64 (RFC 4648) leniently, as traffic carries it. */
#ifndef SHUNT_CORE_BASE64_H
#define SHUNT_CORE_BASE64_H

#include <stddef.h>

/* Returns the value (0..63) of the base64 digit <c> in either alphabet (RFC 4648 sections 4
 * and 5: "+/" or "-_" for 62 and 63), or -1 for any other byte. */
int shunt_base64_value(unsigned char c);

/*
 * Decodes the base64 text <in> (<len> bytes) into at most <cap> bytes of <out> and returns
 * how many it wrote. Lenient, for reading what peers sent (an authentication token, say):
 * both alphabets (RFC 4648 sections 4 and 5: "+/" and "-_"), '=' and white space skipped,
 * decoding stops at the first other byte or once <cap> bytes are written (a prefix is
 * enough to classify a token). A validating decoder must check canonical form itself.
 * Any thread.
 */
size_t shunt_base64_decode_prefix(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
