/* src/cli/cmd_export.c - `shunt export FILE --har OUT.har [FILTER]`: a capture as HAR 1.2. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "capture/db.h"
#include "capture/filter.h"
#include "capture/har.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt export FILE --har OUT.har [FILTER] [--redact] [--host H] [--status N]\n"
    "                    [--conn ID]\n"
    "\n"
    "Writes the exchanges of the capture FILE as a HAR 1.2 file that browsers' DevTools and\n"
    "other HAR viewers open. Every exchange is an entry: heads as sent, body prefixes,\n"
    "timings, `connection` and `_connectionId` (shunt's connection id), `serverIPAddress`,\n"
    "and shunt's own facts under `_shunt` (heads as received, changes made, who closed the\n"
    "connection and how). OUT.har is written 0600 (a capture holds credentials) and replaced\n"
    "atomically; `--har -` writes to stdout. docs/har.md describes every field.\n"
    "\n"
    "FILTER is a filter expression (docs/filters.md), e.g. '~d example\\.com & ~c 404':\n"
    "only the exchanges it takes; the options below combine with it (AND).\n"
    "\n"
    "options:\n"
    "  --har OUT.har     where to write (required)\n"
    "  --redact          replace credentials by markers that keep their scheme and leg:\n"
    "                    Authorization, Proxy-Authorization, Cookie, Set-Cookie, NTLM and\n"
    "                    Negotiate tokens (query strings and bodies stay as captured)\n"
    "  --host H          only exchanges with this host\n"
    "  --status N        only exchanges with this final status\n"
    "  --conn ID         only exchanges on this connection\n"
    "  -h, --help        this text\n"
    "\n"
    "examples:\n"
    "  shunt export shunt.db --har day.har --host example.com\n"
    "  shunt export shunt.db --har errors.har '~e | ~c 500'\n"
    "  shunt export shunt.db --har share.har --redact\n";

static int usage_error(const char *why)
{
    fprintf(stderr, "shunt export: %s\n(`shunt export --help` tells more)\n", why);
    return 2;
}

int shunt_cmd_export(int argc, char **argv)
{
    struct shunt_capture_filter f = {0};
    const char *file = NULL, *out = NULL, *filter = NULL;
    struct shunt_har_export_opts xo = {SHUNT_VERSION, 0};
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return 0;
        }
        int r = shunt_capture_filter_arg(&f, argc, argv, &i, err, sizeof(err));
        if (r < 0)
            return usage_error(err);
        if (r > 0)
            continue;
        if (strcmp(a, "--redact") == 0) {
            xo.redact = 1;
        } else if (strcmp(a, "--har") == 0) {
            if (i + 1 >= argc)
                return usage_error("--har needs a file name");
            out = argv[++i];
        } else if (strncmp(a, "--har=", 6) == 0) {
            out = a + 6;
        } else if (a[0] == '-' && a[1] != '\0') {
            snprintf(err, sizeof(err), "unknown option %s", a);
            return usage_error(err);
        } else if (file == NULL) {
            file = a;
        } else if (filter == NULL) {
            filter = a;
        } else {
            snprintf(err, sizeof(err), "unexpected argument '%s' (one FILE and one FILTER)", a);
            return usage_error(err);
        }
    }
    if (file == NULL)
        return usage_error("which capture? shunt export FILE --har OUT.har");
    if (out == NULL || *out == '\0')
        return usage_error("--har OUT.har is required");
    struct shunt_expr *expr = NULL;
    if (filter != NULL) {
        struct shunt_expr_error e;
        int rc = shunt_expr_compile(filter, &expr, &e);
        if (rc != 0) {
            if (rc == SHUNT_ENOMEM)
                fprintf(stderr, "shunt export: out of memory\n");
            else
                fprintf(stderr, "shunt export: filter: column %zu: %s\n", e.column, e.message);
            return rc == SHUNT_ENOMEM ? 1 : 2;
        }
        f.expr = expr;
    }

    sqlite3 *db;
    if (shunt_capture_open(file, 0, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "shunt export: %s\n", err);
        shunt_expr_free(expr);
        return 2;
    }
    struct shunt_har_export_info info;
    int rc = shunt_har_export_file(db, &f, &xo, out, &info, err, sizeof(err));
    sqlite3_close(db); /* before the expression: the SQL function holds it */
    shunt_expr_free(expr);
    if (rc != 0) {
        fprintf(stderr, "shunt export: %s\n", err);
        return 1;
    }
    if (info.events_dropped > 0)
        fprintf(stderr,
                "shunt export: warning: %s is incomplete: the recorder dropped %" PRId64
                " events, so exchanges may be missing (log._shunt.incomplete is true)\n",
                file, info.events_dropped);
    if (strcmp(out, "-") != 0)
        fprintf(stderr, "shunt export: %s: %" PRIu64 " entries%s\n", out, info.n_entries,
                xo.redact ? ", credentials redacted" : "");
    return 0;
}
