/* src/capture/filter.c - the simple exchange filter of the capture views. */
#include "capture/filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int shunt_capture_filter_sql(const struct shunt_capture_filter *f, const char *alias,
                             int first_param, char *buf, size_t len)
{
    int n = 0, used = 0;
    size_t off = 0;
    const char *parts[3];
    if (f->host != NULL)
        parts[n++] = "%s%s.host = lower(?%d)"; /* hosts are stored in lower case, and a
                                                  plain comparison can use exchanges_host */
    if (f->status != 0)
        parts[n++] = "%s%s.status = ?%d";
    if (f->conn != 0)
        parts[n++] = "%s%s.conn_id = ?%d";
    if (n == 0)
        return snprintf(buf, len, "1") < (int)len ? 0 : SHUNT_ETOOBIG;
    for (int k = 0; k < n; k++) {
        int w = snprintf(buf + off, len - off, parts[k], k == 0 ? "(" : " AND ", alias,
                         first_param + used);
        if (w < 0 || (size_t)w >= len - off)
            return SHUNT_ETOOBIG;
        off += (size_t)w;
        used++;
    }
    if (off + 2 > len)
        return SHUNT_ETOOBIG;
    buf[off++] = ')';
    buf[off] = '\0';
    return used;
}

int shunt_capture_filter_bind(const struct shunt_capture_filter *f, sqlite3_stmt *st,
                              int first_param)
{
    int p = first_param, rc = SQLITE_OK;
    if (f->host != NULL)
        rc = sqlite3_bind_text(st, p++, f->host, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && f->status != 0)
        rc = sqlite3_bind_int(st, p++, f->status);
    if (rc == SQLITE_OK && f->conn != 0)
        rc = sqlite3_bind_int64(st, p++, f->conn);
    return rc;
}

int shunt_capture_filter_arg(struct shunt_capture_filter *f, int argc, char **argv, int *i,
                             char *err, size_t err_len)
{
    const char *names[] = {"--host", "--status", "--conn"};
    const char *arg = argv[*i], *val = NULL;
    int which = -1;
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
        f->host = val;
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
