/* fuzz/fuzz_har.c - libFuzzer driver for the HAR importer: the input is a HAR file, parsed
 * and converted into an in-memory capture (":memory:" with the schema). Any input must give
 * 0 or a negative code with a one-line reason, never a crash, and on failure leave nothing
 * written. Differential: the import as shunt runs it (entries parsed one at a time from the
 * spans the scanner finds) must write the same rows, or refuse with the same reason, as the
 * import from jansson's tree of the whole document. The importer is included, not linked, to
 * reach that second way in (import_buf()). */
#include "capture/har_import.c"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capture/db.h"
#include "capture/har.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static int64_t count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Every row of every table of <db> as bytes, appended to <out>. The capture's times are left
 * out when there is no exchange: they are the time of the import then. */
static void dump(sqlite3 *db, struct dbuf *out)
{
    static const char *const tables[] = {
        "SELECT id, shunt_version, command_line, source, source_detail, body_limit,"
        " events_dropped, CASE WHEN (SELECT count(*) FROM exchanges) > 0"
        " THEN started_us || ' ' || stopped_us END FROM capture",
        "SELECT * FROM connections ORDER BY id", "SELECT * FROM upstreams ORDER BY id",
        "SELECT * FROM exchanges ORDER BY id",   "SELECT * FROM bodies ORDER BY 1, 2",
        "SELECT * FROM changes ORDER BY 1, 2, 3, 4",
    };
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        sqlite3_stmt *st;
        CHECK(sqlite3_prepare_v2(db, tables[t], -1, &st, NULL) == SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                char type = (char)('0' + sqlite3_column_type(st, c));
                const void *p = sqlite3_column_blob(st, c);
                size_t len = (size_t)sqlite3_column_bytes(st, c);
                dbuf_add(out, &type, 1);
                dbuf_add(out, &len, sizeof(len));
                dbuf_add(out, p, len);
            }
            dbuf_add(out, "\n", 1);
        }
        sqlite3_finalize(st);
        dbuf_add(out, "|", 1);
    }
    CHECK(!out->oom);
}

/* Imports <data> into a new in-memory capture, whole (<whole_tree>) or streamed. */
static sqlite3 *import(const uint8_t *data, size_t size, int whole_tree, int *rc, char *err,
                       size_t err_len, struct shunt_har_import_info *info)
{
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, NULL) == SQLITE_OK);
    struct shunt_har_import_opts o = {"fuzz", "shunt import fuzz.har --capture :memory:"};
    err[0] = '\0';
    *rc = import_buf(db, (const char *)data, size, &o, info, err, err_len, whole_tree, NULL);
    return db;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shunt_har_import_info info, tinfo;
    char err[512], terr[512];
    int rc, trc;
    sqlite3 *db = import(data, size, 0, &rc, err, sizeof(err), &info);
    sqlite3 *tdb = import(data, size, 1, &trc, terr, sizeof(terr), &tinfo);
    if (rc == 0) {
        CHECK(count(db, "SELECT count(*) FROM capture") == 1);
        CHECK((size_t)count(db, "SELECT count(*) FROM exchanges") == info.n_entries);
        CHECK((size_t)count(db, "SELECT count(*) FROM connections") == info.n_connections);
        CHECK(count(db, "SELECT count(*) FROM exchanges e WHERE NOT EXISTS"
                        " (SELECT 1 FROM connections c WHERE c.id = e.conn_id)") == 0);
    } else {
        CHECK(rc < 0);
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        CHECK(count(db, "SELECT count(*) FROM capture") == 0);
        CHECK(count(db, "SELECT count(*) FROM exchanges") == 0);
    }
    /* streamed and whole: the same answer */
    CHECK(rc == trc && strcmp(err, terr) == 0);
    CHECK(info.producer == tinfo.producer && info.n_entries == tinfo.n_entries &&
          info.n_connections == tinfo.n_connections);
    struct dbuf a = {0}, b = {0};
    dump(db, &a);
    dump(tdb, &b);
    CHECK(a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0));
    dbuf_free(&a);
    dbuf_free(&b);
    sqlite3_close(tdb);
    sqlite3_close(db);
    return 0;
}
