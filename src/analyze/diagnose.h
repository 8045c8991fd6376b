/* src/analyze/diagnose.h - `shunt diagnose`: opening a capture or a HAR, running every check
 * of the knowledge base over it, ranking the findings by impact, printing them as an
 * expert's note or as JSON. */
#ifndef SHUNT_ANALYZE_DIAGNOSE_H
#define SHUNT_ANALYZE_DIAGNOSE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>

#include "analyze/check.h"
#include "analyze/model.h"
#include "core/errors.h"

/* What a run was about, for the heading of its report. */
struct shunt_diagnose_info {
    const char *path;   /* the file as named */
    int from_har;       /* 1 when it was a HAR, imported in memory */
    const char *filter; /* the FILTER expression as typed, or NULL */
};

/*
 * Opens <path> for analysis: a shunt capture (read-only), or a HAR (recognised by its first
 * byte '{' or its .har name) imported into a capture in memory. Sets *<from_har>.
 * Returns 0 with *<db> open (close with sqlite3_close()), or SHUNT_EINVAL with a one-line
 * reason naming the file in <err> (missing, not a capture, a HAR that does not parse).
 * Used by every command that analyses a capture (diagnose, diff).
 */
SHUNT_MUST_CHECK int shunt_analyze_open(const char *path, sqlite3 **db, int *from_har,
                                        char *err, size_t err_len);

/*
 * Opens <path> as shunt_analyze_open() does and loads it into a new model in *<m> (free with
 * shunt_model_free()) in one read snapshot, marking the exchanges <f> selects (NULL: all),
 * then closes the file. Returns 0; SHUNT_EINVAL when the file cannot be opened; another
 * negative code when the filter or the capture cannot be read. <err> then has one line that
 * names the file.
 */
SHUNT_MUST_CHECK int shunt_analyze_load(const char *path, const struct shunt_capture_filter *f,
                                        struct shunt_model **m, int *from_har, char *err,
                                        size_t err_len);

/*
 * Runs every check of shunt_checks over <m> into <out> (zeroed by the caller), then ranks
 * the findings: by handshakes lost, then time lost, then connections lost, then confidence;
 * a finding that another one explains (shunt_check.caused_by) comes right after it, with
 * explained_by set. Returns 0 or SHUNT_ENOMEM. Pure.
 */
SHUNT_MUST_CHECK int shunt_diagnose_run(const struct shunt_model *m, struct shunt_findings *out);

/* Writes the report as text, lines at most <width> columns (the prose is wrapped). */
void shunt_diagnose_print(FILE *f, const struct shunt_model *m, const struct shunt_findings *fs,
                          const struct shunt_diagnose_info *info, int width);

/* Writes the report as one JSON object (docs/diagnose.md). Returns 0 or SHUNT_ENOMEM. */
SHUNT_MUST_CHECK int shunt_diagnose_print_json(FILE *f, const struct shunt_model *m,
                                               const struct shunt_findings *fs,
                                               const struct shunt_diagnose_info *info);

#endif
