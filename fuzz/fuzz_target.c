/* fuzz/fuzz_target.c - libFuzzer driver for the request-target, authority and auth-scheme
 * readers (src/http/target.c, auth.c).
 *
 * The first byte picks: bit 0 a CONNECT (authority-form), bits 1-2 the authority flags, bits
 * 3-4 the default port (0, 80, 443, 65535). The rest, from an exact-size heap copy (so that
 * ASan catches a read past the end), is split as a target, its authority (or the whole input)
 * as an authority, and read as an auth field value. Every slice must stay in the input, the
 * results must be what the header promises, and a well-formed authority written back
 * ("[userinfo@]host[:port]", brackets for IPv6) must read the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/auth.h"
#include "http/target.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void check_in(struct shunt_slice s, const char *buf, size_t len)
{
    if (s.len == 0)
        return;
    CHECK(s.base >= buf && s.base <= buf + len);
    CHECK(s.len <= (size_t)(buf + len - s.base));
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_authority(struct shunt_slice a, int dflt, unsigned flags)
{
    struct shunt_authority au;
    const char *why = shunt_http_split_authority(a, dflt, flags, &au);
    check_in(au.host, a.base, a.len);
    check_in(au.userinfo, a.base, a.len);
    if (au.has_port)
        CHECK(au.port >= 1 && au.port <= 65535);
    else
        CHECK(au.port == dflt);
    /* the same input, the same answer */
    struct shunt_authority again;
    const char *why2 = shunt_http_split_authority(a, dflt, flags, &again);
    CHECK((why == NULL) == (why2 == NULL) && memcmp(&au, &again, sizeof(au)) == 0);
    if (why != NULL) {
        CHECK(why[0] != '\0');
        return;
    }
    CHECK(au.host.len > 0);
    for (size_t i = 0; i < au.host.len; i++) {
        unsigned char c = (unsigned char)au.host.base[i];
        CHECK(c > 0x20 && c < 0x7f && c != '@' && c != '/' && c != '?' && c != '#' &&
              c != '[' && c != ']');
        CHECK(au.ipv6 || c != ':');
    }
    if (au.userinfo.base != NULL)
        CHECK(flags & SHUNT_AUTHORITY_USERINFO);
    if (flags & SHUNT_AUTHORITY_NEED_PORT)
        CHECK(au.has_port);
    /* written back, it reads the same */
    size_t cap = a.len + 16;
    char *w = malloc(cap);
    CHECK(w != NULL);
    size_t n = 0; /* memcpy: user info may hold NUL bytes */
    if (au.userinfo.base != NULL) {
        memcpy(w, au.userinfo.base, au.userinfo.len);
        n = au.userinfo.len;
        w[n++] = '@';
    }
    if (au.ipv6)
        w[n++] = '[';
    memcpy(w + n, au.host.base, au.host.len);
    n += au.host.len;
    if (au.ipv6)
        w[n++] = ']';
    if (au.has_port)
        n += (size_t)snprintf(w + n, cap - n, ":%d", au.port);
    CHECK(n <= a.len);
    struct shunt_authority back;
    CHECK(shunt_http_split_authority(shunt_slice_make(w, n), dflt, flags, &back) == NULL);
    CHECK(back.port == au.port && back.has_port == au.has_port && back.ipv6 == au.ipv6);
    CHECK(back.host.len == au.host.len && memcmp(back.host.base, au.host.base, au.host.len) == 0);
    CHECK(back.userinfo.len == au.userinfo.len);
    free(w);
    char low[64];
    int ll = shunt_http_host_lower(au.host, low, sizeof(low));
    CHECK(ll == (au.host.len < sizeof(low) ? (int)au.host.len : -1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const int ports[4] = {0, 80, 443, 65535};
    int connect = data[0] & 1;
    unsigned flags = (data[0] >> 1) & 3;
    int dflt = ports[(data[0] >> 3) & 3];
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    struct shunt_slice in = shunt_slice_make(buf, len);

    struct shunt_target t;
    enum shunt_target_form f = shunt_http_split_target(in, connect, &t);
    CHECK(f == t.form);
    check_in(t.scheme, buf, len);
    check_in(t.authority, buf, len);
    check_in(t.path, buf, len);
    switch (f) {
    case SHUNT_TARGET_ORIGIN:
        CHECK(!connect && t.path.len == len && buf[0] == '/');
        break;
    case SHUNT_TARGET_ASTERISK:
        CHECK(!connect && len == 1);
        break;
    case SHUNT_TARGET_AUTHORITY:
        CHECK(connect && t.authority.len == len && len > 0);
        break;
    case SHUNT_TARGET_ABSOLUTE:
        CHECK(!connect && t.scheme.len > 0);
        /* scheme "://" authority path: the pieces tile the input */
        CHECK(t.scheme.len + 3 + t.authority.len + t.path.len == len);
        CHECK(memchr(t.authority.base ? t.authority.base : buf, '/', t.authority.len) == NULL);
        CHECK(t.path.len == 0 || t.path.base[0] == '/' || t.path.base[0] == '?' ||
              t.path.base[0] == '#');
        CHECK(t.https == (t.default_port == 443));
        break;
    case SHUNT_TARGET_INVALID:
        CHECK(t.authority.len == 0 && t.path.len == 0);
        break;
    }
    if (f == SHUNT_TARGET_ABSOLUTE || f == SHUNT_TARGET_AUTHORITY)
        check_authority(t.authority, dflt, flags);
    check_authority(in, dflt, flags);

    struct shunt_slice rest;
    struct shunt_slice s = shunt_http_auth_scheme(in, &rest);
    check_in(s, buf, len);
    check_in(rest, buf, len);
    for (size_t i = 0; i < s.len; i++)
        CHECK(is_tchar((unsigned char)s.base[i]));
    if (s.len == 0)
        CHECK(rest.len == 0);
    else
        CHECK(rest.len == 0 || (rest.base >= s.base + s.len && rest.base[0] != ',' &&
                                rest.base[0] != ' ' && rest.base[rest.len - 1] != ' '));
    char out[16];
    shunt_http_auth_scheme_copy(in, out, sizeof(out));
    CHECK(strlen(out) == (s.len < sizeof(out) ? s.len : sizeof(out) - 1));
    CHECK(s.len == 0 || memcmp(out, s.base, strlen(out)) == 0);
    free(buf);
    return 0;
}
