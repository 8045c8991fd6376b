/* src/capture/filter.h - which exchanges of a capture a view or an export takes: the simple
 * options (--host, --status, --conn) and a filter expression (rules/expr.h), evaluated by
 * SQLite through a function that this module registers, so that LIMIT, OFFSET and EXISTS
 * apply to what the expression selects. */
#ifndef SHUNT_CAPTURE_FILTER_H
#define SHUNT_CAPTURE_FILTER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"
#include "rules/expr.h"

/* Bytes a condition from shunt_capture_filter_sql() takes at most, with an expression that
 * reads everything and an alias of up to 8 bytes. */
#define SHUNT_CAPTURE_FILTER_SQL_MAX 1536
/* Header fields of a head that an expression sees (the first ones, in wire order). */
#define SHUNT_CAPTURE_FILTER_MAX_HEADERS 256

/* Plain data; zero means "any". */
struct shunt_capture_filter {
    const char *host;             /* exchanges.host equals this (ASCII case ignored), or NULL */
    int status;                   /* exchanges.status equals this, or 0 */
    int64_t conn;                 /* exchanges.conn_id equals this, or 0 */
    const struct shunt_expr *expr; /* a filter expression the exchange must match, or NULL;
                                      borrowed: it must outlive the statements that use it.
                                      Needs shunt_capture_filter_register() on the database */
    size_t host_len;              /* bytes of <host> that name the host; 0: all of it */
    int port;                     /* with <host>: the URL's port equals this (the scheme's
                                     default when the URL names none), or 0. Needs
                                     shunt_capture_filter_register() on the database */
    int changed;                  /* 1: only exchanges with flag C (exchanges.flags & 1: a rule,
                                     an option or a repair changed a head), 0: any */
};

/* exchanges.flags bits (src/capture/schema.sql, docs/capture.md). */
#define SHUNT_CAPTURE_FLAG_CHANGED 1   /* C: a rule, a user's option or a repair changed it */
#define SHUNT_CAPTURE_FLAG_ERROR 2     /* E */
#define SHUNT_CAPTURE_FLAG_TRUNCATED 4 /* T: a body longer than the capture kept */
#define SHUNT_CAPTURE_FLAG_TUNNEL 8    /* U: became a tunnel (CONNECT, 101) */
#define SHUNT_CAPTURE_FLAG_PENDING 16  /* P: the request head was seen, the exchange has not
                                          ended (status NULL) */
#define SHUNT_CAPTURE_FLAG_ROUTINE 32  /* r: forwarded with only the rewrites every forward
                                          proxy makes (changes by 'proxy'); not C */
#define SHUNT_CAPTURE_FLAG_SELF 64     /* S: no server response reached the client; shunt
                                          answered itself */

/* 1 when <f> asks for anything (a host, a status, a connection, flag C or an expression),
 * 0 when it takes every exchange. Callers ask this, not the parameter count of
 * shunt_capture_filter_sql(): a condition such as --changed binds no parameter. */
int shunt_capture_filter_any(const struct shunt_capture_filter *f);

/*
 * Writes into <buf> a condition over the exchanges table aliased <alias> ("e") that selects
 * what <f> asks for, with parameters numbered from <first_param>: e.g.
 * "(e.host = lower(?1) AND e.status = ?2)". "1" when <f> asks for nothing. With an
 * expression the condition calls the SQL function shunt_filter() on the exchange's columns:
 * heads as sent when the capture has them (req_head_sent, resp_head_sent), else as received;
 * bodies (the captured prefix) only when the expression reads them.
 * Returns the number of parameters used (>= 0), or SHUNT_ETOOBIG when <buf> is too small.
 */
SHUNT_MUST_CHECK int shunt_capture_filter_sql(const struct shunt_capture_filter *f,
                                              const char *alias, int first_param, char *buf,
                                              size_t len);

/* Binds the parameters that shunt_capture_filter_sql() wrote, from <first_param>.
 * Returns SQLITE_OK or SQLite's error. */
int shunt_capture_filter_bind(const struct shunt_capture_filter *f, sqlite3_stmt *st,
                              int first_param);

/*
 * Registers on <db> the SQL functions that the conditions of shunt_capture_filter_sql() call:
 * shunt_url_port(url) (shunt_capture_url_port) when <f> names a port, and shunt_filter(),
 * which evaluates <f->expr>, when there is an expression. shunt_filter() holds <f->expr>
 * (borrowed) until <db> is closed or this is called again. Returns SQLITE_OK or SQLite's
 * error. The thread that uses <db>.
 */
int shunt_capture_filter_register(sqlite3 *db, const struct shunt_capture_filter *f);

/* Parses the filter options at argv[*i] ("--host H", "--host H:PORT", "--status N",
 * "--conn ID", also as "--opt=value", and "--changed") into <f>, advancing *<i> past the
 * value. Returns 1 when argv[*i] was one of them, 0 when not, or SHUNT_EINVAL with a one-line
 * reason in <err>. */
SHUNT_MUST_CHECK int shunt_capture_filter_arg(struct shunt_capture_filter *f, int argc,
                                              char **argv, int *i, char *err, size_t err_len);

/*
 * The port of the absolute URL <url> (<len> bytes) as the capture stores it: the port it
 * names ("http://h:8080/x": 8080; "[::1]:8443" in brackets), else its scheme's default
 * (http, ws: 80; https, wss: 443). A CONNECT's target "host:port" has no scheme: its port.
 * Sets *<named> (when not NULL) to 1 when the port must be shown beside the host, that is
 * when it is not the default of the URL's scheme (always for a CONNECT target).
 * Returns the port (1-65535), or -1 when the URL says none.
 */
int shunt_capture_url_port(const char *url, size_t len, int *named);

#endif
