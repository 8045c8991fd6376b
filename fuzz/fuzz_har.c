/* fuzz/fuzz_har.c - libFuzzer driver for the HAR importer: the input is a HAR file, parsed
 * and converted into an in-memory capture (":memory:" with the schema). Any input must give
 * 0 or a negative code with a one-line reason, never a crash, and on failure leave nothing
 * written. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, NULL) == SQLITE_OK);
    struct shunt_har_import_opts o = {"fuzz", "shunt import fuzz.har --capture :memory:"};
    struct shunt_har_import_info info;
    char err[512];
    err[0] = '\0';
    int rc = shunt_har_import_buf(db, (const char *)data, size, &o, &info, err, sizeof(err));
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
    sqlite3_close(db);
    return 0;
}
