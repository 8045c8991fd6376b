/* src/capture/filter.c - the exchange filter of the capture views and the export: the simple
 * options as SQL, and a filter expression as an SQL function. */
#include "capture/filter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capture/har.h"
#include "http/target.h"

/* Appends the formatted text to <buf> at *<off>. Returns 0, or -1 when it does not fit. */
static int append(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= len - *off)
        return -1;
    *off += (size_t)w;
    return 0;
}

/* Writes the call of shunt_filter() for the exchange aliased <a>: the subject's columns, in
 * the order filter_fn() reads them, with NULL for what the expression does not read. */
static int expr_sql(const struct shunt_expr *e, const char *a, char *buf, size_t len, size_t *off)
{
    unsigned needs = shunt_expr_needs(e);
    char head[2][96], body[2][160];
    static const char *const dir_head[2] = {"req", "resp"};
    static const unsigned need_head[2] = {SHUNT_EXPR_NEED_REQ_HEADERS,
                                          SHUNT_EXPR_NEED_RESP_HEADERS};
    static const unsigned need_body[2] = {SHUNT_EXPR_NEED_REQ_BODY, SHUNT_EXPR_NEED_RESP_BODY};
    for (int d = 0; d < 2; d++) {
        if (needs & need_head[d])
            snprintf(head[d], sizeof(head[d]), "coalesce(%s.%s_head_sent, %s.%s_head)", a,
                     dir_head[d], a, dir_head[d]);
        else
            snprintf(head[d], sizeof(head[d]), "NULL");
        if (needs & need_body[d])
            snprintf(body[d], sizeof(body[d]),
                     "(SELECT shunt_fb.data FROM bodies shunt_fb WHERE shunt_fb.exchange_id = "
                     "%s.id AND shunt_fb.direction = %d)",
                     a, d);
        else
            snprintf(body[d], sizeof(body[d]), "NULL");
    }
    return append(buf, len, off,
                  "shunt_filter(%s.method, %s.url, %s.host, %s.status, "
                  "(%s.error IS NOT NULL OR (%s.flags & 2) != 0), %s, %s, %s.conn_id, "
                  "(SELECT shunt_fc.auth_scheme IS NOT NULL FROM connections shunt_fc "
                  "WHERE shunt_fc.id = %s.conn_id), "
                  "(SELECT shunt_fc.closer FROM connections shunt_fc "
                  "WHERE shunt_fc.id = %s.conn_id), %s, %s)",
                  a, a, a, a, a, a, head[0], head[1], a, a, a, body[0], body[1]);
}

int shunt_capture_filter_any(const struct shunt_capture_filter *f)
{
    return f->host != NULL || f->status != 0 || f->conn != 0 || f->expr != NULL || f->changed;
}

int shunt_capture_filter_sql(const struct shunt_capture_filter *f, const char *alias,
                             int first_param, char *buf, size_t len)
{
    int n = 0, used = 0;
    size_t off = 0;
    const char *parts[4];
    int params[4];
    if (f->host != NULL) {
        parts[n] = "%s%s.host = lower(?%d)"; /* hosts are stored in lower case, and a plain
                                                comparison can use exchanges_host */
        params[n++] = 1;
        if (f->port != 0) {
            parts[n] = "%sshunt_url_port(%s.url) = ?%d";
            params[n++] = 1;
        }
    }
    if (f->status != 0) {
        parts[n] = "%s%s.status = ?%d";
        params[n++] = 1;
    }
    if (f->conn != 0) {
        parts[n] = "%s%s.conn_id = ?%d";
        params[n++] = 1;
    }
    if (!shunt_capture_filter_any(f))
        return snprintf(buf, len, "1") < (int)len ? 0 : SHUNT_ETOOBIG;
    for (int k = 0; k < n; k++) {
        if (append(buf, len, &off, parts[k], k == 0 ? "(" : " AND ", alias,
                   first_param + used) != 0)
            return SHUNT_ETOOBIG;
        used += params[k];
    }
    if (f->changed && append(buf, len, &off, "%s(%s.flags & %d) != 0", n == 0 ? "(" : " AND ",
                             alias, SHUNT_CAPTURE_FLAG_CHANGED) != 0)
        return SHUNT_ETOOBIG;
    /* The expression last: SQLite tests the cheap, indexed conditions first. */
    if (f->expr != NULL &&
        (append(buf, len, &off, "%s", n == 0 && !f->changed ? "(" : " AND ") != 0 ||
         expr_sql(f->expr, alias, buf, len, &off) != 0))
        return SHUNT_ETOOBIG;
    if (append(buf, len, &off, ")") != 0)
        return SHUNT_ETOOBIG;
    return used;
}

/* What shunt_filter() holds: the expression, and room for the fields of two heads (one
 * row at a time: SQLite calls it on the thread that steps the statement). */
struct fctx {
    const struct shunt_expr *expr;
    struct shunt_http_header req[SHUNT_CAPTURE_FILTER_MAX_HEADERS];
    struct shunt_http_header resp[SHUNT_CAPTURE_FILTER_MAX_HEADERS];
};

static struct shunt_slice value_text(sqlite3_value *v)
{
    const unsigned char *p = sqlite3_value_text(v);
    return p ? shunt_slice_make((const char *)p, (size_t)sqlite3_value_bytes(v))
             : shunt_slice_make(NULL, 0);
}

static struct shunt_slice value_blob(sqlite3_value *v)
{
    const void *p = sqlite3_value_blob(v);
    return p ? shunt_slice_make(p, (size_t)sqlite3_value_bytes(v)) : shunt_slice_make(NULL, 0);
}

/*
 * Fills <h> (capacity SHUNT_CAPTURE_FILTER_MAX_HEADERS) with the fields of the stored head
 * <head> and returns their count. The strict parser first; a head it refuses (an import's
 * "HTTP/2" start line, more fields than <h> holds, a bare LF) is walked leniently instead,
 * as shunt_har_head_next() does, so that a filter still sees its fields.
 */
static size_t head_fields(struct shunt_slice head, int request, struct shunt_http_header *h)
{
    if (head.len == 0)
        return 0;
    const struct shunt_http_limits lim = {head.len, head.len, SHUNT_CAPTURE_FILTER_MAX_HEADERS};
    struct shunt_http_head hd;
    struct shunt_http_error err;
    int rc = request ? shunt_http_parse_request(head.base, head.len, 0, &hd, h,
                                                SHUNT_CAPTURE_FILTER_MAX_HEADERS, &lim, &err)
                     : shunt_http_parse_response(head.base, head.len, 0, &hd, h,
                                                 SHUNT_CAPTURE_FILTER_MAX_HEADERS, &lim, &err);
    if (rc > 0)
        return hd.n_headers;
    size_t pos, n = 0;
    struct shunt_slice name, value;
    (void)shunt_har_head_start(head.base, head.len, &pos);
    while (n < SHUNT_CAPTURE_FILTER_MAX_HEADERS &&
           shunt_har_head_next(head.base, head.len, &pos, &name, &value)) {
        h[n].name = name;
        h[n].value = value;
        h[n].line = shunt_slice_make(NULL, 0);
        n++;
    }
    return n;
}

/* shunt_filter(method, url, host, status, error, req_head, resp_head, conn_id, auth, closer,
 * req_body, resp_body): 1 when the exchange matches the expression, else 0. */
static void filter_fn(sqlite3_context *cx, int argc, sqlite3_value **v)
{
    struct fctx *f = sqlite3_user_data(cx);
    struct shunt_expr_subject s;
    memset(&s, 0, sizeof(s));
    s.method = value_text(v[0]);
    s.url = value_text(v[1]);
    s.host = value_text(v[2]);
    s.has_response = sqlite3_value_type(v[3]) != SQLITE_NULL;
    s.status = s.has_response ? sqlite3_value_int(v[3]) : 0;
    s.error = sqlite3_value_int(v[4]) != 0;
    s.req_headers = f->req;
    s.n_req_headers = head_fields(value_blob(v[5]), 1, f->req);
    s.resp_headers = f->resp;
    s.n_resp_headers = head_fields(value_blob(v[6]), 0, f->resp);
    s.conn_id = sqlite3_value_int64(v[7]);
    s.auth = sqlite3_value_int(v[8]) != 0;
    struct shunt_slice closer = value_text(v[9]);
    if (SHUNT_SLICE_IEQ_LIT(closer, "client"))
        s.closed = SHUNT_EXPR_CLOSED_CLIENT;
    else if (SHUNT_SLICE_IEQ_LIT(closer, "server"))
        s.closed = SHUNT_EXPR_CLOSED_SERVER;
    else if (SHUNT_SLICE_IEQ_LIT(closer, "proxy"))
        s.closed = SHUNT_EXPR_CLOSED_PROXY;
    s.req_body = value_blob(v[10]);
    s.resp_body = value_blob(v[11]);
    sqlite3_result_int(cx, shunt_expr_match(f->expr, &s));
}

int shunt_capture_url_port(const char *url, size_t len, int *named)
{
    if (named != NULL)
        *named = 0;
    if (url == NULL)
        return -1;
    /* http/target.h's reading, the proxy's: an absolute URL's authority, else (a CONNECT's
     * target) the URL up to any path is the authority */
    struct shunt_target t;
    struct shunt_slice auth;
    int dflt = -1;
    if (shunt_http_split_target(shunt_slice_make(url, len), 0, &t) == SHUNT_TARGET_ABSOLUTE) {
        auth = t.authority;
        if (t.default_port != 0)
            dflt = t.default_port;
    } else {
        size_t end = 0;
        while (end < len && url[end] != '/' && url[end] != '?' && url[end] != '#')
            end++;
        auth = shunt_slice_make(url, end);
    }
    struct shunt_authority au;
    (void)shunt_http_split_authority(auth, dflt, SHUNT_AUTHORITY_USERINFO, &au);
    if (au.ipv6 && memchr(auth.base, ']', auth.len) == NULL)
        return -1; /* an unclosed '[': no port can be told */
    if (!au.has_port)
        return dflt;
    if (named != NULL)
        *named = au.port != dflt;
    return au.port;
}

/* shunt_url_port(url): shunt_capture_url_port(), NULL when the URL says no port. */
static void url_port_fn(sqlite3_context *cx, int argc, sqlite3_value **v)
{
    (void)argc;
    const unsigned char *u = sqlite3_value_text(v[0]);
    int port = u ? shunt_capture_url_port((const char *)u, (size_t)sqlite3_value_bytes(v[0]),
                                          NULL)
                 : -1;
    if (port < 0)
        sqlite3_result_null(cx);
    else
        sqlite3_result_int(cx, port);
}

int shunt_capture_filter_register(sqlite3 *db, const struct shunt_capture_filter *f)
{
    if (f->host != NULL && f->port != 0) {
        int rc = sqlite3_create_function_v2(db, "shunt_url_port", 1,
                                            SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, url_port_fn,
                                            NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (f->expr == NULL)
        return SQLITE_OK;
    struct fctx *c = malloc(sizeof(*c));
    if (c == NULL)
        return SQLITE_NOMEM;
    c->expr = f->expr;
    /* SQLite calls free() on <c> when the function is replaced or the database closed, and
     * also when this call fails. */
    return sqlite3_create_function_v2(db, "shunt_filter", 12, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                      c, filter_fn, NULL, NULL, free);
}

int shunt_capture_filter_bind(const struct shunt_capture_filter *f, sqlite3_stmt *st,
                              int first_param)
{
    int p = first_param, rc = SQLITE_OK;
    if (f->host != NULL) {
        rc = sqlite3_bind_text(st, p++, f->host, f->host_len ? (int)f->host_len : -1,
                               SQLITE_STATIC);
        if (rc == SQLITE_OK && f->port != 0)
            rc = sqlite3_bind_int(st, p++, f->port);
    }
    if (rc == SQLITE_OK && f->status != 0)
        rc = sqlite3_bind_int(st, p++, f->status);
    if (rc == SQLITE_OK && f->conn != 0)
        rc = sqlite3_bind_int64(st, p++, f->conn);
    return rc;
}

/* Splits <h>, "host" or "host:port", into the host (*<host> and *<host_len>) and the port
 * (*<port>, 0 when none). An IPv6 literal names a port only in brackets, "[::1]:8080", and
 * its host loses them: the capture stores "::1". Returns 0, or SHUNT_EINVAL for a port out
 * of range or an empty host. */
static int host_and_port(const char *h, const char **host, size_t *host_len, int *port)
{
    size_t len = strlen(h);
    *host = h;
    *host_len = len;
    *port = 0;
    const char *colon = strrchr(h, ':');
    if (h[0] == '[') {
        const char *rb = strchr(h, ']');
        if (rb != NULL && (rb[1] == '\0' || rb[1] == ':')) {
            *host = h + 1;
            *host_len = (size_t)(rb - h) - 1;
            colon = rb[1] == ':' ? rb + 1 : NULL;
        } else {
            colon = NULL;
        }
    } else if (colon != NULL && memchr(h, ':', (size_t)(colon - h)) != NULL) {
        colon = NULL; /* a bare IPv6 address: no port */
    } else if (colon != NULL) {
        *host_len = (size_t)(colon - h);
    }
    if (colon != NULL) {
        const char *p = colon + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 5 || strspn(p, "0123456789") != n || atoi(p) < 1 || atoi(p) > 65535)
            return SHUNT_EINVAL;
        *port = atoi(p);
    }
    return *host_len > 0 ? 0 : SHUNT_EINVAL;
}

int shunt_capture_filter_arg(struct shunt_capture_filter *f, int argc, char **argv, int *i,
                             char *err, size_t err_len)
{
    const char *names[] = {"--host", "--status", "--conn"};
    const char *arg = argv[*i], *val = NULL;
    int which = -1;
    if (strcmp(arg, "--changed") == 0) {
        f->changed = 1;
        return 1;
    }
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(names[k]);
        if (strncmp(arg, names[k], l) == 0 && (arg[l] == '\0' || arg[l] == '=')) {
            which = k;
            val = arg[l] == '=' ? arg + l + 1 : NULL;
        }
    }
    if (which < 0)
        return 0;
    if (val == NULL) {
        if (*i + 1 >= argc) {
            snprintf(err, err_len, "%s needs a value", names[which]);
            return SHUNT_EINVAL;
        }
        val = argv[++*i];
    }
    if (which == 0) {
        if (*val == '\0') {
            snprintf(err, err_len, "--host needs a host name");
            return SHUNT_EINVAL;
        }
        if (host_and_port(val, &f->host, &f->host_len, &f->port) != 0) {
            snprintf(err, err_len, "--host %s: expected a host name, or HOST:PORT with a port "
                                   "from 1 to 65535", val);
            return SHUNT_EINVAL;
        }
        return 1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || v <= 0 ||
        (which == 1 && (v < 100 || v > 999))) {
        snprintf(err, err_len, "%s %s: expected %s", names[which], val,
                 which == 1 ? "a status code (100-999)" : "a connection id (1, 2, ...)");
        return SHUNT_EINVAL;
    }
    if (which == 1)
        f->status = (int)v;
    else
        f->conn = v;
    return 1;
}
