/* src/lab/internal.h - what the lab's modules share and no other area sees. */
#ifndef SHUNT_LAB_INTERNAL_H
#define SHUNT_LAB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"

/* Decodes the base64 <in> (<len> chars, padding required, surrounding SP/HTAB ignored) into
 * <out> (<cap> bytes). Returns the decoded length (>= 0), or SHUNT_EINVAL when <in> is not
 * canonical base64 or does not fit. Pure; any thread. */
/* Writes <len> bytes of <in> as NUL-terminated base64 into <out> (<cap> bytes). Returns 0,
 * or SHUNT_ETOOBIG when it does not fit. */
SHUNT_MUST_CHECK int shunt_lab__b64_encode(const uint8_t *in, size_t len, char *out,
                                           size_t cap);

SHUNT_MUST_CHECK long shunt_lab__b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
