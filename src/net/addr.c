/* src/net/addr.c - socket address parsing and matching. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, int *port)
{
    char *end;
    if (*s == '\0')
        return SHUNT_EADDR;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
        return SHUNT_EADDR;
    *port = (int)v;
    return 0;
}

int shunt_addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *port_s;
    int port;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return SHUNT_EADDR;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_s = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || strchr(text, ':') != colon)
            return SHUNT_EADDR;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_s = colon + 1;
    }
    if (parse_port(port_s, &port) != 0)
        return SHUNT_EADDR;
    if (strcmp(host, "localhost") == 0)
        memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        return 0;
    }
    return SHUNT_EADDR;
}

int shunt_cidr_parse(const char *text, struct shunt_cidr *out)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    if (hl == 0 || hl >= sizeof(host))
        return SHUNT_EADDR;
    memcpy(host, text, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        return SHUNT_EADDR;
    }
    if (slash != NULL) {
        int p;
        if (parse_port(slash + 1, &p) != 0 || p > out->prefix)
            return SHUNT_EADDR;
        out->prefix = p;
    }
    return 0;
}

/* Returns the address bytes of <sa> and their family, unwrapping v4-mapped IPv6. */
static const unsigned char *addr_bytes(const struct sockaddr *sa, int *family)
{
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            *family = AF_INET;
            return b + 12;
        }
        *family = AF_INET6;
        return b;
    }
    *family = 0;
    return NULL;
}

int shunt_cidr_match(const struct shunt_cidr *net, const struct sockaddr *sa)
{
    int family;
    const unsigned char *b = addr_bytes(sa, &family);
    if (b == NULL || family != net->family)
        return 0;
    int bits = net->prefix;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        unsigned char m = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((b[i] & m) != (net->addr[i] & m))
            return 0;
    }
    return 1;
}

int shunt_addr_is_loopback(const struct sockaddr *sa)
{
    int family;
    const unsigned char *b = addr_bytes(sa, &family);
    if (b == NULL)
        return 0;
    if (family == AF_INET)
        return b[0] == 127;
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(b, one, 16) == 0;
}

int shunt_addr_is_local(const struct sockaddr *sa)
{
    int family;
    const unsigned char *b = addr_bytes(sa, &family);
    if (b == NULL)
        return 0;
    if (family == AF_INET)
        return b[0] == 127 || b[0] == 0;
    static const unsigned char zero[16];
    return shunt_addr_is_loopback(sa) || memcmp(b, zero, 16) == 0;
}

int shunt_addr_format(const struct sockaddr *sa, char *buf, size_t buf_len)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)buf_len) == NULL)
            return -1;
        return ntohs(a->sin_port);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, (socklen_t)buf_len) == NULL)
            return -1;
        return ntohs(a->sin6_port);
    }
    if (buf_len > 0)
        buf[0] = '\0';
    return -1;
}
