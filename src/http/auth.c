/* src/http/auth.c - the authentication scheme of a credentials or challenge field value. */
#include "http/auth.h"

/* A tchar of RFC 9110 5.6.2: what an auth-scheme is made of. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    }
    return 0;
}

struct shunt_slice shunt_http_auth_scheme(struct shunt_slice v, struct shunt_slice *rest)
{
    size_t i = 0, n = v.len;
    /* WWW-Authenticate is a list (RFC 9110 11.6.1): empty elements and whitespace before
     * the first challenge are skipped (5.6.1: recipients accept them). */
    while (i < n && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ','))
        i++;
    size_t s = i;
    while (i < n && is_tchar((unsigned char)v.base[i]))
        i++;
    struct shunt_slice scheme = shunt_slice_make(v.base + s, i - s);
    if (rest != NULL) {
        size_t r = i;
        while (r < n && (v.base[r] == ' ' || v.base[r] == '\t'))
            r++;
        size_t e = n;
        while (e > r && (v.base[e - 1] == ' ' || v.base[e - 1] == '\t'))
            e--;
        /* "Negotiate, NTLM": the first challenge carries nothing; a scheme-less value
         * carries nothing either */
        if (scheme.len == 0 || (r < e && v.base[r] == ','))
            e = r;
        *rest = shunt_slice_make(v.base + r, e - r);
    }
    return scheme;
}

void shunt_http_auth_scheme_copy(struct shunt_slice v, char *out, size_t cap)
{
    struct shunt_slice s = shunt_http_auth_scheme(v, NULL);
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n > 0)
        memcpy(out, s.base, n);
    out[n] = '\0';
}
