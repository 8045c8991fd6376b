/* src/http/auth.h - the authentication scheme of an Authorization, Proxy-Authorization,
 * WWW-Authenticate or Proxy-Authenticate value (RFC 9110 11.6): one reading for the proxy,
 * the recorder, the HAR importer and the model (the proxy and the recorder read "Negotiate,"
 * differently before). Pure. */
#ifndef SHUNT_HTTP_AUTH_H
#define SHUNT_HTTP_AUTH_H

#include <stddef.h>

#include "core/slice.h"

/* The auth-scheme of the field value <v>: its first token, after any whitespace and empty list
 * elements (", Negotiate"), as written (case kept; schemes compare case-insensitively). In
 * *<rest> (may be NULL) what the first credentials or challenge carry after it (a token68
 * or auth-params, trimmed), empty when the next challenge follows at once ("Negotiate,
 * NTLM") or there is nothing. An empty slice when <v> starts with no token. */
struct shunt_slice shunt_http_auth_scheme(struct shunt_slice v, struct shunt_slice *rest);

/* The same scheme copied into <out> (<cap> >= 1 bytes), NUL-terminated, cut to <cap> - 1. */
void shunt_http_auth_scheme_copy(struct shunt_slice v, char *out, size_t cap);

#endif
