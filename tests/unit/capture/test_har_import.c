/* tests/unit/capture/test_har_import.c - reading a HAR one entry at a time: the scanner that
 * finds the spans of log.entries (whitespace, escapes, duplicate keys, what it leaves to the
 * whole tree), and imports that stream equal imports from jansson's tree of the whole
 * document, from memory and from a mapped file whose pages are dropped as it is read.
 * Includes the importer to reach its statics. */
/* Before cmocka.h, whose fail() macro would rename the importer's. */
#define DROP_EVERY ((size_t)4096) /* drop the mapping's pages often */
#include "capture/har_import.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

/* Scans the NUL-terminated <doc>: the number of spans, or -1 when left to the whole tree. */
static long scan_of(const char *doc, struct scan *sc)
{
    memset(sc, 0, sizeof(*sc));
    if (scan(doc, strlen(doc), sc) != 0) {
        free(sc->v);
        sc->v = NULL;
        return -1;
    }
    return (long)sc->n;
}

static void assert_span(const char *doc, const struct scan *sc, size_t i, const char *want)
{
    assert_true(i < sc->n);
    assert_int_equal(sc->v[i].len, strlen(want));
    assert_memory_equal(doc + sc->v[i].off, want, strlen(want));
}

static void spans_are_found_through_whitespace_and_other_keys(void **state)
{
    struct scan sc;
    const char *doc = " \r\n{\t\"version\" : 1 , \"log\"\n:\n{ \"pages\": [{\"a\": [1, {}]}],"
                      "\"entries\" : [ {\"x\": 1} ,\n\t{\"y\": [2, {\"z\": null}]}\r\n] ,"
                      " \"creator\": {\"name\": \"n\"} } }  \n";
    assert_int_equal(scan_of(doc, &sc), 2);
    assert_span(doc, &sc, 0, "{\"x\": 1}");
    assert_span(doc, &sc, 1, "{\"y\": [2, {\"z\": null}]}");
    assert_int_equal(doc[sc.open], '[');
    assert_int_equal(doc[sc.close], ']');
    free(sc.v);
    doc = "{\"log\": {\"entries\": []}}";
    assert_int_equal(scan_of(doc, &sc), 0);
    assert_int_equal(sc.close, sc.open + 1);
    free(sc.v);
}

static void strings_hide_quotes_and_brackets(void **state)
{
    struct scan sc;
    const char *doc = "{\"c\": \"}]\\\"[{\\\\\", \"log\": {\"entries\": "
                      "[{\"u\": \"a\\\"]}\\\\\"}, \"]\\\\\", 1, null, [\"]\"]]}}";
    assert_int_equal(scan_of(doc, &sc), 5);
    assert_span(doc, &sc, 0, "{\"u\": \"a\\\"]}\\\\\"}");
    assert_span(doc, &sc, 1, "\"]\\\\\"");
    assert_span(doc, &sc, 2, "1");
    assert_span(doc, &sc, 3, "null");
    assert_span(doc, &sc, 4, "[\"]\"]");
    free(sc.v);
}

/* jansson keeps the last value of a duplicate key: the scanner takes the same. */
static void the_last_log_and_the_last_entries_are_taken(void **state)
{
    struct scan sc;
    const char *doc = "{\"log\": {\"entries\": [1]}, \"log\": {\"entries\": [2, 3],"
                      " \"entries\": [4]}}";
    assert_int_equal(scan_of(doc, &sc), 1);
    assert_span(doc, &sc, 0, "4");
    free(sc.v);
    /* the last log or entries is not a container: nothing to stream */
    assert_int_equal(scan_of("{\"log\": {\"entries\": [1]}, \"log\": 5}", &sc), -1);
    assert_int_equal(scan_of("{\"log\": {\"entries\": [1], \"entries\": {}}}", &sc), -1);
    assert_int_equal(scan_of("{\"log\": {\"entries\": [1]}, \"log\": {}}", &sc), -1);
}

static void what_the_scanner_does_not_expect_is_left_to_the_whole_tree(void **state)
{
    struct scan sc;
    static const char *const docs[] = {
        "",
        "[]",
        "{\"l\\u006fg\": {\"entries\": []}}",   /* a key with escapes may spell "log" */
        "{\"log\": {\"entri\\u0065s\": []}}",
        "{\"log\": {\"entries\": [1 2]}}",      /* no comma */
        "{\"log\": {\"entries\": [1,]}}",       /* trailing comma */
        "{\"log\": {\"entries\": [1]}} x",      /* after the document */
        "{\"log\": {\"entries\": [1]}, }",
        "{\"log\" {\"entries\": [1]}}",         /* no colon */
        "{\"log\": {\"entries\": [{\"a\": \"}]}", /* the string never ends */
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_int_equal(scan_of(docs[i], &sc), -1);
    /* nesting near jansson's limit, which counts the levels above the entry */
    size_t depth = JSON_PARSER_MAX_DEPTH;
    char *deep = malloc(2 * depth + 64);
    assert_non_null(deep);
    size_t l = (size_t)sprintf(deep, "{\"log\": {\"entries\": [");
    memset(deep + l, '[', depth);
    memset(deep + l + depth, ']', depth);
    strcpy(deep + l + 2 * depth, "]}}");
    assert_int_equal(scan_of(deep, &sc), -1);
    free(deep);
}

static void every_cut_of_a_document_is_left_to_the_whole_tree(void **state)
{
    struct scan sc;
    const char *doc = "{\"log\": {\"creator\": {\"name\": \"x\"}, \"entries\": [{\"a\": \"b\\\"\"},"
                      " {\"c\": [1, 2]}]}}";
    size_t len = strlen(doc);
    for (size_t cut = 0; cut < len; cut++) {
        char *p = malloc(cut + 1);
        assert_non_null(p);
        memcpy(p, doc, cut);
        p[cut] = '\0';
        assert_int_equal(scan_of(p, &sc), -1);
        free(p);
    }
    assert_int_equal(scan_of(doc, &sc), 2);
    free(sc.v);
}

/* ---------------------------------------------------------------- streamed == whole */

static sqlite3 *new_capture(void)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

/* The rows of the exchanges (their ids, connections, urls, heads), as text. */
static void rows_of(sqlite3 *db, struct dbuf *out)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id || ' ' || conn_id || ' ' || idx || ' ' ||"
                                        " url || ' ' || hex(req_head) || ' ' || started_us"
                                        " FROM exchanges ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        dbuf_str(out, (const char *)sqlite3_column_text(st, 0));
        dbuf_str(out, "\n");
    }
    sqlite3_finalize(st);
}

/* A HAR of <n> entries, out of start order, on a few connections. */
static void make_har(struct dbuf *b, size_t n)
{
    dbuf_str(b, "\xef\xbb\xbf{\"log\": {\"version\": \"1.2\", \"entries\": [\n");
    for (size_t i = 0; i < n; i++) {
        char e[512];
        snprintf(e, sizeof(e),
                 "%s{\"startedDateTime\": \"2024-05-01T10:00:%02zu.%03zuZ\", \"time\": 5,"
                 " \"_connectionId\": \"%zu\", \"request\": {\"method\": \"GET\","
                 " \"url\": \"http://h%zu.example/p/%zu?q=\\\"]}\", \"headers\":"
                 " [{\"name\": \"X\", \"value\": \"%zu\"}]}, \"response\": {\"status\": 200,"
                 " \"headers\": []}}\n",
                 i ? "," : "", (n - i) % 60, i % 1000, i % 7, i % 3, i, i);
        dbuf_str(b, e);
    }
    dbuf_str(b, "], \"creator\": {\"name\": \"WebInspector\", \"version\": \"1\"}}}\n");
    assert_false(b->oom);
}

static void streamed_imports_equal_the_whole_trees(void **state)
{
    struct dbuf har = {0}, a = {0}, b = {0};
    make_har(&har, 400); /* ~100 KB: the mapping's pages are dropped many times */
    struct shunt_har_import_opts o = {"test", "shunt import t.har --capture t.db"};
    struct shunt_har_import_info info, tinfo;
    char err[512];

    /* from memory: streamed, then the whole tree */
    sqlite3 *db = new_capture(), *tdb = new_capture();
    assert_int_equal(import_buf(db, har.p, har.len, &o, &info, err, sizeof(err), 0, NULL), 0);
    assert_int_equal(import_buf(tdb, har.p, har.len, &o, &tinfo, err, sizeof(err), 1, NULL), 0);
    assert_int_equal(info.n_entries, 400);
    assert_int_equal(info.n_connections, tinfo.n_connections);
    rows_of(db, &a);
    rows_of(tdb, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    sqlite3_close(db);
    sqlite3_close(tdb);

    /* from a mapped file */
    char in[] = "/tmp/shunt-test-har-XXXXXX", out[64];
    int fd = mkstemp(in);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, har.p, har.len), (ssize_t)har.len);
    close(fd);
    snprintf(out, sizeof(out), "%s.db", in);
    assert_int_equal(shunt_har_import_file(in, out, &o, &info, err, sizeof(err)), 0);
    assert_int_equal(info.n_entries, 400);
    assert_int_equal(sqlite3_open(out, &db), SQLITE_OK);
    dbuf_free(&a);
    rows_of(db, &a);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    sqlite3_close(db);
    remove_capture(out);
    unlink(in);
    dbuf_free(&a);
    dbuf_free(&b);
    dbuf_free(&har);
}

/* A syntax error after an entry read_entry() refuses wins, as in the whole tree; a span that
 * does not parse alone is worded by the whole tree, with line and column. */
static void errors_are_the_whole_trees(void **state)
{
    static const char *const docs[] = {
        "{\"log\": {\"entries\": [{}, {\"a\": tru}]}}",
        "{\"log\": {\"entries\": [{}, 1]}, \"x\": nul}",
        "{\"log\": {\"creator\": 5, \"entries\": [{}]}}",
        "{\"log\": {\"entries\": [{\"a\": 1}, {\"b\": \"\\u0000\"}, {}]}}",
        "{\"log\": {\"entries\": [{\"a\": 12345678901234567890}]}}",
        "{\"log\": {\"entries\": [{\"startedDateTime\": 1}]}}",
        "\xef\xbb\xbf{\"log\": {\"entries\": [\n{}, {\"a\": [}]}}",
    };
    struct shunt_har_import_opts o = {"test", "t"};
    struct shunt_har_import_info info;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char err[512], terr[512];
        sqlite3 *db = new_capture(), *tdb = new_capture();
        int rc = import_buf(db, docs[i], strlen(docs[i]), &o, &info, err, sizeof(err), 0, NULL);
        int trc =
            import_buf(tdb, docs[i], strlen(docs[i]), &o, &info, terr, sizeof(terr), 1, NULL);
        assert_int_equal(rc, SHUNT_EPARSE);
        assert_int_equal(trc, SHUNT_EPARSE);
        assert_string_equal(err, terr);
        sqlite3_close(db);
        sqlite3_close(tdb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_are_found_through_whitespace_and_other_keys),
        cmocka_unit_test(strings_hide_quotes_and_brackets),
        cmocka_unit_test(the_last_log_and_the_last_entries_are_taken),
        cmocka_unit_test(what_the_scanner_does_not_expect_is_left_to_the_whole_tree),
        cmocka_unit_test(every_cut_of_a_document_is_left_to_the_whole_tree),
        cmocka_unit_test(streamed_imports_equal_the_whole_trees),
        cmocka_unit_test(errors_are_the_whole_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
