/* src/capture/db.h - capture files: creating one for recording, opening one to read, with
 * the checks that turn a wrong file into a one-line error. */
#ifndef SHUNT_CAPTURE_DB_H
#define SHUNT_CAPTURE_DB_H

#include <sqlite3.h>
#include <stddef.h>

#include "core/errors.h"

/* The schema this build writes and reads (src/capture/schema.sql, PRAGMA user_version).
 * Version 2 added the tls table and exchanges.t_ssl; a version-1 file still reads (see
 * shunt_capture_open()). */
#define SHUNT_CAPTURE_SCHEMA_VERSION 2
/* The oldest schema this build reads. */
#define SHUNT_CAPTURE_SCHEMA_OLDEST 1
/* PRAGMA application_id of a shunt capture: "shnt". */
#define SHUNT_CAPTURE_APP_ID 0x73686e74

/* The indexes a recording builds when it stops rather than on every insert (they cost the
 * store thread a third of its time under load); schema.sql has them too, so every other way
 * of making a capture (import, tests) gets them at once. A capture whose recorder was killed
 * lacks them: the views still work, --host and --status scan. */
#define SHUNT_CAPTURE_DEFERRED_DROP "DROP INDEX exchanges_host; DROP INDEX exchanges_status;"
#define SHUNT_CAPTURE_DEFERRED_CREATE                                                              \
    "CREATE INDEX IF NOT EXISTS exchanges_host ON exchanges (host);"                               \
    "CREATE INDEX IF NOT EXISTS exchanges_status ON exchanges (status);"

/* The schema's SQL text (generated from schema.sql at build time). */
extern const char shunt_capture_schema_sql[];

/*
 * Creates the capture file <path> (mode 0600; it must not exist: an existing file is never
 * overwritten) with the schema, in WAL mode, and returns it open in *<out>.
 * Returns 0, or a negative code with a one-line reason in <err> ("FILE: exists").
 * Any thread; the handle is then used by one thread at a time.
 */
SHUNT_MUST_CHECK int shunt_capture_create(const char *path, sqlite3 **out, char *err,
                                          size_t err_len);

/*
 * Opens the existing capture <path>, read-only unless <writable>, and checks that it is a
 * shunt capture whose schema this build reads. Returns 0 with *<out> set, or a negative code
 * with a one-line reason in <err> naming the file and the problem: missing, not SQLite, not
 * a capture (another application_id, a table of the schema missing), a schema version this
 * build does not read (older than 1, or made by a newer shunt). The rows are not checked:
 * every reader treats them as untrusted.
 *
 * A version-1 capture opened <writable> is migrated to the current schema first (the tls
 * table, exchanges.t_ssl: one transaction). Opened read-only it stays as it is, and the
 * connection gets temporary stand-ins that shadow the names of the current schema (an empty
 * temp.tls, a temp.exchanges view adding t_ssl = -1), so every reader's SQL runs unchanged
 * on it: no TLS facts, no TLS time.
 */
SHUNT_MUST_CHECK int shunt_capture_open(const char *path, int writable, sqlite3 **out, char *err,
                                        size_t err_len);

#endif
