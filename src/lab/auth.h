/* src/lab/auth.h - the lab's authentication tokens. NTLM (NTLMSSP NEGOTIATE, CHALLENGE and
 * AUTHENTICATE messages) and Negotiate (SPNEGO NegTokenInit carrying a Kerberos AP-REQ, and
 * NegTokenResp) with their real framing, base64 as on the wire, and lab-only contents:
 * no real cryptography, but an AUTHENTICATE answers its connection's CHALLENGE and a token
 * from another connection fails, as it does for real. Pure functions: no I/O, no libuv. */
#ifndef SHUNT_LAB_AUTH_H
#define SHUNT_LAB_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"

/* Room for any token these functions write (base64, NUL-terminated). */
#define SHUNT_LAB_TOKEN_MAX 1024

enum shunt_lab_token_kind {
    SHUNT_LAB_TOKEN_INVALID = 0,     /* not base64, or not a message these functions know */
    SHUNT_LAB_TOKEN_NTLM_NEGOTIATE,  /* NTLMSSP type 1 (client) */
    SHUNT_LAB_TOKEN_NTLM_CHALLENGE,  /* NTLMSSP type 2 (server) */
    SHUNT_LAB_TOKEN_NTLM_AUTHENTICATE, /* NTLMSSP type 3 (client) */
    SHUNT_LAB_TOKEN_SPNEGO_INIT,     /* SPNEGO NegTokenInit with a Kerberos AP-REQ (client) */
    SHUNT_LAB_TOKEN_SPNEGO_RESP,     /* SPNEGO NegTokenResp, accept-completed (server) */
};

/* Which message the base64 token <b64> (<len> bytes, no scheme name) is. */
enum shunt_lab_token_kind shunt_lab_token_kind(const char *b64, size_t len);

/* The lab's algorithm (no cryptography) is described in auth.c and docs/lab.md. Names
 * (users, hosts) are 1 to 128 printable ASCII characters without spaces. Every function is
 * pure apart from the random challenge, and may be called from any thread. */

/* Client side. Each writes a NUL-terminated base64 token into <out> (<cap> bytes, at least
 * SHUNT_LAB_TOKEN_MAX) and returns 0, or a negative code (SHUNT_EINVAL: a bad input token). */
SHUNT_MUST_CHECK int shunt_lab_ntlm_negotiate(char *out, size_t cap);
/* Reads the server's CHALLENGE <b64> and writes the AUTHENTICATE for <user> ("DOMAIN\\user"
 * or "user") answering its challenge. */
SHUNT_MUST_CHECK int shunt_lab_ntlm_authenticate(const char *b64, size_t len, const char *user,
                                                 char *out, size_t cap);
/* NegTokenInit with an AP-REQ for <user> to HTTP/<host>. */
SHUNT_MUST_CHECK int shunt_lab_spnego_init(const char *user, const char *host, char *out,
                                           size_t cap);
/* Returns 0 when <b64> is an accept-completed NegTokenResp (the server's final leg). */
SHUNT_MUST_CHECK int shunt_lab_spnego_check_final(const char *b64, size_t len);

/* Server side. */
/* Writes a CHALLENGE with a fresh random 8-byte challenge, kept in <challenge>. */
SHUNT_MUST_CHECK int shunt_lab_ntlm_challenge(uint8_t challenge[8], char *out, size_t cap);
/* Returns 0 when <b64> is an AUTHENTICATE answering <challenge>, with its user in <user>
 * ("DOMAIN\\user", or "user" without a domain); SHUNT_EINVAL otherwise (another
 * connection's challenge, a malformed message, a user that does not fit <user_cap>), and
 * then <user> is "" (when <user_cap> > 0). */
SHUNT_MUST_CHECK int shunt_lab_ntlm_verify(const char *b64, size_t len,
                                           const uint8_t challenge[8], char *user,
                                           size_t user_cap);
/* Returns 0 when <b64> is a NegTokenInit listing Kerberos with a well-formed lab AP-REQ,
 * with the authenticator's user in <user>; SHUNT_EINVAL otherwise, <user> then "". */
SHUNT_MUST_CHECK int shunt_lab_spnego_verify(const char *b64, size_t len, char *user,
                                             size_t user_cap);
/* Writes the server's final, accept-completed NegTokenResp (with a lab AP-REP). */
SHUNT_MUST_CHECK int shunt_lab_spnego_final(char *out, size_t cap);

#endif
