/* src/http/target.h - request-target and authority splitting (RFC 9112 3.2, RFC 3986 3.2):
 * one reading for the proxy, the recorder, the CLI, the HAR importer, the model, the lab and
 * the rules. Pure: no I/O, no allocation; every slice points into the caller's bytes. */
#ifndef SHUNT_HTTP_TARGET_H
#define SHUNT_HTTP_TARGET_H

#include <stddef.h>

#include "core/slice.h"

/* The four forms of a request-target (RFC 9112 3.2.1-3.2.4). */
enum shunt_target_form {
    SHUNT_TARGET_INVALID = 0, /* none of the four */
    SHUNT_TARGET_ORIGIN,      /* "/path?query" */
    SHUNT_TARGET_ABSOLUTE,    /* "scheme://authority/path?query" (any scheme: see .scheme) */
    SHUNT_TARGET_AUTHORITY,   /* CONNECT's "host:port" */
    SHUNT_TARGET_ASTERISK,    /* "*" (OPTIONS) */
};

struct shunt_target {
    enum shunt_target_form form;
    struct shunt_slice scheme;    /* absolute-form: as written ("HTTP"), else empty */
    int default_port;             /* the scheme's port: 80 (http, ws), 443 (https, wss), else 0 */
    int https;                    /* the scheme is https or wss (ASCII case ignored) */
    struct shunt_slice authority; /* absolute-form: between "//" and the path, userinfo
                                     included; authority-form: the whole target */
    struct shunt_slice path;      /* origin-form: the whole target; absolute-form: from the
                                     first '/', '?' or '#' after the authority to the end
                                     (empty when the URL has none: "http://h"); else empty */
};

/* Splits the request-target <t> of a request whose method is CONNECT when <is_connect> (its
 * target is then authority-form, whatever it looks like) into <out>, and returns its form.
 * The authority is not checked here: shunt_http_split_authority() does that. */
enum shunt_target_form shunt_http_split_target(struct shunt_slice t, int is_connect,
                                               struct shunt_target *out);

/* Flags of shunt_http_split_authority(). */
#define SHUNT_AUTHORITY_USERINFO 1u  /* "userinfo@" is allowed (reported), else an error */
#define SHUNT_AUTHORITY_NEED_PORT 2u /* the port is required (CONNECT's authority-form) */

struct shunt_authority {
    struct shunt_slice userinfo; /* before the last '@'; base NULL when there is none */
    struct shunt_slice host;     /* as written (case kept), an IPv6 literal without brackets */
    int ipv6;                    /* the host was in brackets */
    int has_port;                /* a valid port was written */
    int port;                    /* that port, else <default_port> */
};

/* Splits the authority <a> ("[userinfo@]host[:port]", the host a reg-name, an IPv4 address
 * or an IPv6 literal in brackets, the port 1-65535, leading zeros allowed) into <out>.
 * Returns NULL when <a> is well-formed, else why not ("no host", "a malformed port", ...:
 * a phrase that follows "has "/"contains "): <out> is filled as far as it could be read
 * either way (a bad port gives <default_port>; an unclosed '[' the rest as the host), which is
 * what the readers of captured or imported traffic want. Any thread. */
const char *shunt_http_split_authority(struct shunt_slice a, int default_port, unsigned flags,
                                       struct shunt_authority *out);

/* Copies <host> into <out> (<cap> bytes) in ASCII lower case, NUL-terminated (hosts are
 * case-insensitive, RFC 3986 3.2.2). Returns its length, or -1 (and "" in <out> when <cap>
 * > 0) when it does not fit. */
int shunt_http_host_lower(struct shunt_slice host, char *out, size_t cap);

#endif
