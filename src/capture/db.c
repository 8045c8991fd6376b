/* src/capture/db.c - creating and opening capture files. */
#include "capture/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* The tls table's columns (schema.sql has the same: a version-1 file gets this table when
 * opened to write, and a stand-in of it in temp when opened to read). */
#define TLS_COLUMNS                                                                                \
    " (id INTEGER PRIMARY KEY, conn_id INTEGER NOT NULL, upstream_id INTEGER,"                   \
    " side INTEGER NOT NULL, time_us INTEGER, sni TEXT, alpn TEXT, version TEXT, cipher TEXT,"    \
    " cert_subject TEXT, cert_issuer TEXT, cert_san TEXT, cert_sha256 TEXT,"                      \
    " cert_not_before INTEGER, cert_not_after INTEGER, handshake_us INTEGER, error TEXT,"        \
    " verify_result INTEGER, insecure INTEGER NOT NULL DEFAULT 0, close_bits INTEGER)"

/* Version 1 to 2, in place. */
static const char migrate_1_sql[] =
    "BEGIN IMMEDIATE;"
    "ALTER TABLE exchanges ADD COLUMN t_ssl INTEGER NOT NULL DEFAULT -1;"
    "CREATE TABLE tls" TLS_COLUMNS ";"
    "CREATE INDEX tls_conn ON tls (conn_id);"
    "PRAGMA user_version = 2;"
    "COMMIT;";

/* A version-1 file read as it is: names of version 2 that shadow its own for this connection
 * only (unqualified names find temp first). SQLite flattens the view, so the indexes of
 * main.exchanges still serve. */
static const char shadow_1_sql[] =
    "CREATE TEMP TABLE tls" TLS_COLUMNS ";"
    "CREATE TEMP VIEW exchanges AS SELECT *, -1 AS t_ssl FROM main.exchanges;";

/* The first table of the schema of <version> that <db> lacks (a view of that name does not
 * count), or NULL when it has them all. The readers then only meet bad rows, never a missing
 * table. */
static const char *missing_table(sqlite3 *db, int version)
{
    static const char *const tables[] = {"capture", "connections", "upstreams", "exchanges",
                                         "bodies",  "changes",     "tls"};
    size_t n = version >= 2 ? 7 : 6;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return tables[0];
    const char *missing = NULL;
    for (size_t i = 0; i < n && missing == NULL; i++) {
        sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
            missing = tables[i];
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return missing;
}

int shunt_capture_create(const char *path, sqlite3 **out, char *err, size_t err_len)
{
    *out = NULL;
    /* Create the file ourselves: 0600 from the first byte (captures hold credentials), and
     * O_EXCL so that an existing file is never overwritten. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path,
                 errno == EEXIST ? "exists already (shunt never overwrites a capture: pick "
                                   "another name or remove it)"
                                 : strerror(errno));
        return SHUNT_EINVAL;
    }
    close(fd);
    /* No memory statistics: with them every allocation of SQLite's takes a global mutex
     * (the store thread's CPU per exchange: -0.2 us). Only possible before SQLite's first
     * use in the process, which this is for `shunt proxy` and `shunt import`; later it
     * fails harmlessly (SQLITE_MISUSE). */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3 *db = NULL;
    char *msg = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        goto fail;
    /* WAL: readers (sessions, the UI) never block the store thread. synchronous=NORMAL:
     * a commit survives the process being killed (the data is in the OS), which is the
     * crash that matters here; a power cut may lose the last commits, never the file.
     * No automatic checkpoints: their fsync would stall the writer, so the recorder runs
     * them from a thread of its own. */
    if (sqlite3_exec(db,
                     "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=0;"
                     " PRAGMA journal_size_limit=67108864;",
                     NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    if (sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    *out = db;
    return 0;
fail:
    snprintf(err, err_len, "%s: cannot create the capture: %s", path,
             msg ? msg : (db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_free(msg);
    sqlite3_close(db);
    unlink(path);
    return SHUNT_EINVAL;
}

int shunt_capture_open(const char *path, int writable, sqlite3 **out, char *err, size_t err_len)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return SHUNT_EINVAL;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, err_len, "%s: not a file", path);
        return SHUNT_EINVAL;
    }
    sqlite3 *db = NULL;
    int flags = (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    /* Before the first read: a writer (a recorder, a migration) may hold the lock a moment,
     * and the reads below would fail at once with "database is locked". */
    sqlite3_busy_timeout(db, 2000);
    int app = 0, version = 0;
    if (pragma_int(db, "PRAGMA application_id", &app) != 0 ||
        pragma_int(db, "PRAGMA user_version", &version) != 0) {
        snprintf(err, err_len, "%s: not a shunt capture (not an SQLite database: %s)", path,
                 sqlite3_errmsg(db));
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    if (app != SHUNT_CAPTURE_APP_ID) {
        snprintf(err, err_len, "%s: not a shunt capture (an SQLite database of something else)",
                 path);
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    if (version > SHUNT_CAPTURE_SCHEMA_VERSION) {
        snprintf(err, err_len,
                 "%s: made by a newer shunt (capture schema %d; this shunt reads up to %d)", path,
                 version, SHUNT_CAPTURE_SCHEMA_VERSION);
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    if (version < SHUNT_CAPTURE_SCHEMA_OLDEST) {
        snprintf(err, err_len, "%s: not a capture this shunt reads (capture schema %d)", path,
                 version);
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    const char *missing = missing_table(db, version);
    if (missing != NULL) {
        snprintf(err, err_len, "%s: not a shunt capture (no table %s)", path, missing);
        sqlite3_close(db);
        return SHUNT_EINVAL;
    }
    if (version == 1) {
        char *msg = NULL;
        if (sqlite3_exec(db, writable ? migrate_1_sql : shadow_1_sql, NULL, NULL, &msg) !=
            SQLITE_OK) {
            snprintf(err, err_len, "%s: cannot %s this capture of schema 1: %s", path,
                     writable ? "migrate" : "read", msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            if (writable)
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            sqlite3_close(db);
            return SHUNT_EINVAL;
        }
    }
    *out = db;
    return 0;
}
