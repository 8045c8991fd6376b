/* src/capture/filter.h - which exchanges of a capture a view or an export takes: the simple
 * options (--host, --status, --conn) until the filter expression language arrives. */
#ifndef SHUNT_CAPTURE_FILTER_H
#define SHUNT_CAPTURE_FILTER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"

/* Plain data; zero means "any". */
struct shunt_capture_filter {
    const char *host; /* exchanges.host equals this (ASCII case ignored), or NULL */
    int status;       /* exchanges.status equals this, or 0 */
    int64_t conn;     /* exchanges.conn_id equals this, or 0 */
};

/*
 * Writes into <buf> a condition over the exchanges table aliased <alias> ("e") that selects
 * what <f> asks for, with parameters numbered from <first_param>: e.g.
 * "(e.host = lower(?1) AND e.status = ?2)". "1" when <f> asks for nothing.
 * Returns the number of parameters used (>= 0), or SHUNT_ETOOBIG when <buf> is too small.
 */
SHUNT_MUST_CHECK int shunt_capture_filter_sql(const struct shunt_capture_filter *f,
                                              const char *alias, int first_param, char *buf,
                                              size_t len);

/* Binds the parameters that shunt_capture_filter_sql() wrote, from <first_param>.
 * Returns SQLITE_OK or SQLite's error. */
int shunt_capture_filter_bind(const struct shunt_capture_filter *f, sqlite3_stmt *st,
                              int first_param);

/* Parses the filter options at argv[*i] ("--host H", "--status N", "--conn ID", also as
 * "--opt=value") into <f>, advancing *<i> past the value. Returns 1 when argv[*i] was one
 * of them, 0 when not, or SHUNT_EINVAL with a one-line reason in <err>. */
SHUNT_MUST_CHECK int shunt_capture_filter_arg(struct shunt_capture_filter *f, int argc,
                                              char **argv, int *i, char *err, size_t err_len);

#endif
