/* src/http/target.c - request-target and authority splitting (RFC 9112 3.2, RFC 3986 3.2).
 * It was written six times (the proxy, the recorder, the HAR importer, the model, the CLI, the
 * lab, the rules), and the copies disagreed on user info, brackets and ports. */
#include "http/target.h"

#include <string.h>

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A byte of a reg-name (RFC 3986 3.2.2: unreserved / pct-encoded / sub-delims). */
static int is_regname(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~%!$&'()*+,;=", c) != NULL);
}

enum shunt_target_form shunt_http_split_target(struct shunt_slice t, int is_connect,
                                               struct shunt_target *out)
{
    memset(out, 0, sizeof(*out));
    if (is_connect) {
        out->authority = t;
        return out->form = t.len > 0 ? SHUNT_TARGET_AUTHORITY : SHUNT_TARGET_INVALID;
    }
    if (t.len == 0)
        return out->form = SHUNT_TARGET_INVALID;
    if (t.base[0] == '/') {
        out->path = t;
        return out->form = SHUNT_TARGET_ORIGIN;
    }
    if (t.len == 1 && t.base[0] == '*')
        return out->form = SHUNT_TARGET_ASTERISK;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://" (RFC 3986 3.1, 3.2) */
    size_t i = 0;
    if (!is_alpha((unsigned char)t.base[0]))
        return out->form = SHUNT_TARGET_INVALID;
    while (i < t.len && (is_alpha((unsigned char)t.base[i]) || is_digit((unsigned char)t.base[i]) ||
                         t.base[i] == '+' || t.base[i] == '-' || t.base[i] == '.'))
        i++;
    if (t.len - i < 3 || memcmp(t.base + i, "://", 3) != 0)
        return out->form = SHUNT_TARGET_INVALID;
    out->scheme = shunt_slice_make(t.base, i);
    if (SHUNT_SLICE_IEQ_LIT(out->scheme, "http") || SHUNT_SLICE_IEQ_LIT(out->scheme, "ws")) {
        out->default_port = 80;
    } else if (SHUNT_SLICE_IEQ_LIT(out->scheme, "https") ||
               SHUNT_SLICE_IEQ_LIT(out->scheme, "wss")) {
        out->default_port = 443;
        out->https = 1;
    }
    const char *a = t.base + i + 3, *end = t.base + t.len, *q = a;
    while (q < end && *q != '/' && *q != '?' && *q != '#')
        q++;
    out->authority = shunt_slice_make(a, (size_t)(q - a));
    out->path = shunt_slice_make(q, (size_t)(end - q));
    return out->form = SHUNT_TARGET_ABSOLUTE;
}

const char *shunt_http_split_authority(struct shunt_slice a, int default_port, unsigned flags,
                                       struct shunt_authority *out)
{
    const char *why = NULL;
    memset(out, 0, sizeof(*out));
    out->port = default_port;
    const char *p = a.base, *end = a.base + a.len;
    if (a.len == 0)
        return "no host";
    /* userinfo ends at the last '@': the host holds none (RFC 3986 3.2.1, 3.2.2) */
    for (const char *at = end; at > p; at--) {
        if (at[-1] == '@') {
            out->userinfo = shunt_slice_make(p, (size_t)(at - 1 - p));
            p = at;
            if (!(flags & SHUNT_AUTHORITY_USERINFO))
                why = "user info in the host";
            break;
        }
    }
    const char *hs, *he;
    if (p < end && *p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        out->ipv6 = 1;
        if (he == NULL) { /* the rest is the host, as far as it goes */
            out->host = shunt_slice_make(hs, (size_t)(end - hs));
            return why ? why : "an unclosed [ in the host";
        }
        p = he + 1;
        for (const char *c = hs; c < he && why == NULL; c++)
            if (!is_hex((unsigned char)*c) && *c != ':' && *c != '.')
                why = "a character that is not allowed in an IPv6 address";
    } else {
        /* the port follows the last ':' (a reg-name holds none: "h:80.x:81" is a bad host,
         * not a bad port) */
        hs = p;
        he = end;
        while (he > hs && he[-1] != ':')
            he--;
        he = he > hs ? he - 1 : end;
        p = he;
        for (const char *c = hs; c < he && why == NULL; c++)
            if (!is_regname((unsigned char)*c))
                why = "a character not allowed in a host";
    }
    out->host = shunt_slice_make(hs, (size_t)(he - hs));
    if (he == hs && why == NULL)
        why = "no host";
    if (p < end) { /* ":port" */
        if (*p != ':' || p + 1 == end)
            return why ? why : "a malformed port";
        long port = 0;
        for (const char *c = p + 1; c < end; c++) {
            if (!is_digit((unsigned char)*c))
                return why ? why : "a malformed port";
            if (port <= 65535)
                port = port * 10 + (*c - '0');
        }
        if (port < 1 || port > 65535)
            return why ? why : "a port out of range";
        out->port = (int)port;
        out->has_port = 1;
    } else if ((flags & SHUNT_AUTHORITY_NEED_PORT) && why == NULL) {
        why = "no port";
    }
    return why;
}

int shunt_http_host_lower(struct shunt_slice host, char *out, size_t cap)
{
    if (host.len >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return -1;
    }
    for (size_t i = 0; i < host.len; i++) {
        char c = host.base[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out[host.len] = '\0';
    return (int)host.len;
}
