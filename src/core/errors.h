/* src/core/errors.h - shunt's error codes: one table, negative values, libuv's pass through. */
#ifndef SHUNT_CORE_ERRORS_H
#define SHUNT_CORE_ERRORS_H

#if defined(__GNUC__)
#define SHUNT_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SHUNT_MUST_CHECK
#endif

/* name, message. Values start at -20000 so that they never collide with libuv's
 * negated errno values, which functions in net/ and proxy/ return unchanged. */
#define SHUNT_ERRNO_MAP(XX)                                                                        \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(ETOOBIG, "over the configured limit")                                                       \
    XX(EPARSE, "cannot be parsed")                                                                 \
    XX(EADDR, "bad address")                                                                       \
    XX(EDEPS, "missing dependency")

enum shunt_err {
    SHUNT__EBASE = -20000,
#define XX(name, msg) SHUNT_##name,
    SHUNT_ERRNO_MAP(XX)
#undef XX
    SHUNT__ELAST
};

/* Returns a static message for <code>: a SHUNT_E* code, or a libuv/errno one. */
const char *shunt_strerror(int code);
/* Returns the static name of <code> ("EPARSE", "ECONNREFUSED", ...). */
const char *shunt_err_name(int code);

#endif
