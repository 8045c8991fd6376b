/* fuzz/fuzz_analyze.c - libFuzzer driver for the analysis: the input is a HAR, imported into
 * an in-memory capture, loaded into the model, diagnosed (every check, the ranking, both
 * printers) and compared with itself and with an empty capture (shunt diff, both printers).
 * Whatever the HAR says (headers of any bytes, tokens cut short, status 0, a thousand
 * connections), the analysis must end without a crash, a leak or undefined behaviour; a
 * capture compared with itself has no difference; a finding's examples and counts are
 * consistent. */
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analyze/diagnose.h"
#include "analyze/diff.h"
#include "analyze/model.h"
#include "capture/db.h"
#include "capture/har.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static FILE *sink;

/* A model of <data> (a HAR), or of an empty capture when <data> is NULL; NULL when the HAR
 * does not import. */
static struct shunt_model *model_of(const uint8_t *data, size_t size)
{
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, NULL) == SQLITE_OK);
    struct shunt_model *m = NULL;
    char err[512];
    int ok = 1;
    if (data != NULL) {
        struct shunt_har_import_opts o = {"fuzz", "shunt diagnose fuzz.har"};
        struct shunt_har_import_info info;
        ok = shunt_har_import_buf(db, (const char *)data, size, &o, &info, err,
                                  sizeof(err)) == 0;
    }
    if (ok)
        CHECK(shunt_model_load(db, NULL, &m, err, sizeof(err)) == 0);
    sqlite3_close(db);
    return m;
}

static void diagnose(const struct shunt_model *m)
{
    struct shunt_findings fs = {0};
    CHECK(shunt_diagnose_run(m, &fs) == 0);
    for (size_t i = 0; i < fs.n; i++) {
        const struct shunt_finding *f = &fs.v[i];
        CHECK(f->count > 0 && f->unit != NULL && f->what[0] != '\0');
        CHECK(f->n_conns <= SHUNT_CHECK_EXAMPLES && f->n_exchanges <= SHUNT_CHECK_EXAMPLES);
        CHECK(f->lost_us >= 0);
        for (size_t k = 0; k < f->n_conns; k++)
            CHECK(shunt_model_conn_by_id(m, f->conns[k]) != NULL);
    }
    struct shunt_diagnose_info info = {"fuzz.har", 1, NULL};
    shunt_diagnose_print(sink, m, &fs, &info, 80);
    CHECK(shunt_diagnose_print_json(sink, m, &fs, &info) == 0);
    shunt_findings_dispose(&fs);
}

static void diff(const struct shunt_model *a, const struct shunt_model *b, int same)
{
    struct shunt_diff d;
    memset(&d, 0, sizeof(d));
    CHECK(shunt_diff_run(a, b, &d) == 0);
    if (same)
        CHECK(!shunt_diff_any(&d));
    struct shunt_diff_info info = {"a.har", "b.har", 1, 1};
    shunt_diff_print(sink, &d, &info, 80);
    CHECK(shunt_diff_print_json(sink, &d, &info) == 0);
    shunt_diff_dispose(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sink == NULL)
        CHECK((sink = fopen("/dev/null", "w")) != NULL);
    struct shunt_model *m = model_of(data, size);
    if (m == NULL)
        return 0;
    diagnose(m);
    struct shunt_model *empty = model_of(NULL, 0);
    diff(m, m, 1);
    diff(m, empty, 0);
    diff(empty, m, 0);
    shunt_model_free(empty);
    shunt_model_free(m);
    return 0;
}
