/* tests/unit/analyze/capture_fixture.h - an empty proxy capture in memory for the analysis's
 * unit tests: cmocka's setup and teardown around <db>. Included by one test file each (the
 * functions are static), after <cmocka.h> and <sqlite3.h>. */
#ifndef SHUNT_TEST_CAPTURE_FIXTURE_H
#define SHUNT_TEST_CAPTURE_FIXTURE_H

#include "capture/db.h"

static sqlite3 *db;

/* A capture with its schema and its facts row (source 'proxy'), no traffic yet. */
static int setup(void **state)
{
    (void)state;
    char *err = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    if (sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("schema: %s", err);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO capture (id, shunt_version, command_line, source, "
                                  "started_us, body_limit) VALUES (1, 't', 't', 'proxy', 0, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sqlite3_close(db);
    db = NULL;
    return 0;
}

#endif
