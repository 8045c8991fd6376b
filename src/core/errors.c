/* src/core/errors.c - messages and names for shunt's error codes. */
#include "core/errors.h"

#include <string.h>

const char *shunt_strerror(int code)
{
    switch (code) {
#define XX(name, msg)                                                                              \
    case SHUNT_##name:                                                                             \
        return msg;
        SHUNT_ERRNO_MAP(XX)
#undef XX
    default:
        return code < 0 ? strerror(-code) : "success";
    }
}

const char *shunt_err_name(int code)
{
    switch (code) {
#define XX(name, msg)                                                                              \
    case SHUNT_##name:                                                                             \
        return #name;
        SHUNT_ERRNO_MAP(XX)
#undef XX
    default:
        return code < 0 ? "ERRNO" : "OK";
    }
}
