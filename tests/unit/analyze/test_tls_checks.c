/* tests/unit/analyze/test_tls_checks.c - the TLS facts of the model (the tls table) and the
 * checks that read them: tls-client-rejects-cert (the client refused shunt's certificate:
 * certain on unknown ca, less sure on other alerts or a close) and tls-upstream-cert-invalid
 * (an upstream's certificate failed verification), on a capture written row by row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/diagnose.h"
#include "analyze/model.h"
#include "capture/db.h"

#include "capture_fixture.h"

static void exec(const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
}

/* Connection <id> intercepted for <host>: its CONNECT (exchange <id>*10), then its client's
 * TLS (error <error>, NULL: done; at 1 ms) and the client's close at <closed_us>. */
static void intercepted(int id, const char *host, const char *error, int64_t closed_us)
{
    char *sql = sqlite3_mprintf(
        "INSERT INTO connections (id, client_addr, client_port, opened_us, closed_us,"
        " closer, close_how, tls, tunnel) VALUES (%d, '127.0.0.1', %d, 0, %lld, 'client',"
        " 'FIN', 1, 1);"
        "INSERT INTO exchanges (id, conn_id, idx, started_us, method, url, host, status,"
        " flags) VALUES (%d, %d, 1, 0, 'CONNECT', '%q:443', %Q, 200, 72);"
        "INSERT INTO tls (conn_id, side, time_us, sni, handshake_us, error) VALUES"
        " (%d, 0, 1000, %Q, 900, %Q);",
        id, 50000 + id, (long long)closed_us, id * 10, id, host, host, id, host, error);
    exec(sql);
    sqlite3_free(sql);
    if (error != NULL) { /* decision 5: the failure is an exchange too */
        sql = sqlite3_mprintf(
            "INSERT INTO exchanges (id, conn_id, idx, started_us, url, host, path, error,"
            " flags) VALUES (%d, %d, 2, 1000, 'https://%q/', %Q, '/',"
            " 'TLS with the client: ' || %Q, 2)",
            id * 10 + 1, id, host, host, error);
        exec(sql);
        sqlite3_free(sql);
    }
}

static struct shunt_model *load(void)
{
    struct shunt_model *m = NULL;
    char err[256] = "";
    if (shunt_model_load(db, NULL, &m, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    return m;
}

static const struct shunt_finding *find(const struct shunt_findings *fs, const char *id)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->v[i].check->id, id) == 0)
            return &fs->v[i];
    return NULL;
}

static void model_reads_the_tls_rows(void **state)
{
    (void)state;
    intercepted(1, "a.test", "the client rejected shunt's certificate (alert 48: unknown ca)",
                5000);
    exec("INSERT INTO tls (conn_id, upstream_id, side, time_us, sni, verify_result, insecure,"
         " close_bits) VALUES (1, 4, 1, 2000, 'a.test', 0, 1, 13)");
    struct shunt_model *m = load();
    assert_int_equal(m->n_tls, 2);
    assert_int_equal(m->tls[0].side, 0);
    assert_int_equal(m->tls[0].upstream_id, 0);
    assert_string_equal(m->tls[0].sni, "a.test");
    assert_string_equal(m->tls[0].error,
                        "the client rejected shunt's certificate (alert 48: unknown ca)");
    assert_int_equal(m->tls[0].verify_result, -1);
    assert_int_equal(m->tls[1].side, 1);
    assert_int_equal(m->tls[1].upstream_id, 4);
    assert_null(m->tls[1].error);
    assert_int_equal(m->tls[1].insecure, 1);
    assert_int_equal(m->tls[1].close_bits, 13);
    assert_int_equal(m->tls[1].time_us, 2000);
    shunt_model_free(m);
}

static void unknown_ca_is_certain(void **state)
{
    (void)state;
    intercepted(1, "a.test", "the client rejected shunt's certificate (alert 48: unknown ca)",
                5000);
    intercepted(2, "b.test", "the client rejected shunt's certificate (alert 48: unknown ca)",
                5000);
    struct shunt_model *m = load();
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    const struct shunt_finding *f = find(&fs, "tls-client-rejects-cert");
    assert_non_null(f);
    assert_int_equal(f->confidence, SHUNT_CONFIDENCE_CERTAIN);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->unit, "handshakes");
    assert_non_null(strstr(f->what, "a.test, b.test"));
    assert_non_null(strstr(f->what, "2 with an alert naming shunt's CA unknown"));
    assert_non_null(strstr(f->check->fix, "shunt ca"));
    assert_non_null(strstr(f->check->fix, "--intercept FILTER"));
    /* the example is the failure's exchange, not the CONNECT */
    assert_int_equal(f->conns[0], 1);
    assert_int_equal(f->exchanges[0], 11);
    assert_null(find(&fs, "tls-upstream-cert-invalid"));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

static void other_alerts_are_likely_and_a_close_possible(void **state)
{
    (void)state;
    intercepted(1, "a.test", "the client rejected shunt's certificate (alert 46: certificate "
                "unknown)", 5000);
    struct shunt_model *m = load();
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    const struct shunt_finding *f = find(&fs, "tls-client-rejects-cert");
    assert_non_null(f);
    assert_int_equal(f->confidence, SHUNT_CONFIDENCE_LIKELY);
    assert_non_null(strstr(f->what, "pins"));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
    exec("DELETE FROM tls; DELETE FROM exchanges; DELETE FROM connections");
    intercepted(1, "a.test", "the client closed the connection during the handshake", 5000);
    m = load();
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    f = find(&fs, "tls-client-rejects-cert");
    assert_non_null(f);
    assert_int_equal(f->confidence, SHUNT_CONFIDENCE_POSSIBLE);
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

/* Done, then closed by the client at once with no request: a pin checked after the
 * handshake (possible); closed idle seconds later: a preconnect, nothing to say. */
static void a_close_right_after_the_handshake_is_possible(void **state)
{
    (void)state;
    intercepted(1, "pinned.test", NULL, 1000 + 20000);
    intercepted(2, "idle.test", NULL, 1000 + 30000000);
    struct shunt_model *m = load();
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    const struct shunt_finding *f = find(&fs, "tls-client-rejects-cert");
    assert_non_null(f);
    assert_int_equal(f->confidence, SHUNT_CONFIDENCE_POSSIBLE);
    assert_int_equal(f->count, 1);
    assert_int_equal(f->conns[0], 1);
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

/* Not this pattern: a timeout, plain HTTP in the tunnel, a handshake followed by requests. */
static void other_failures_say_nothing(void **state)
{
    (void)state;
    intercepted(1, "a.test", "handshake timed out after 10 s", 5000);
    intercepted(2, "b.test", "not TLS: the client sent plain HTTP into the tunnel", 5000);
    intercepted(3, "c.test", NULL, 2000);
    exec("INSERT INTO exchanges (id, conn_id, idx, started_us, method, url, host, status) VALUES"
         " (31, 3, 2, 1500, 'GET', 'https://c.test/', 'c.test', 200)");
    struct shunt_model *m = load();
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    assert_null(find(&fs, "tls-client-rejects-cert"));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

static void upstream_verification_failure_is_its_own_finding(void **state)
{
    (void)state;
    intercepted(1, "old.test", NULL, 9000);
    exec("INSERT INTO upstreams (id, conn_id, host, port) VALUES (5, 1, 'old.test', 443);"
         "INSERT INTO tls (conn_id, upstream_id, side, time_us, sni, error, verify_result) VALUES"
         " (1, 5, 1, 3000, 'old.test', 'certificate verify failed: certificate has expired', 10);"
         "INSERT INTO exchanges (id, conn_id, idx, started_us, method, url, host, status, error,"
         " flags) VALUES (12, 1, 2, 2000, 'GET', 'https://old.test/', 'old.test', 502,"
         " 'TLS with the upstream: certificate verify failed: certificate has expired', 66);"
         /* off with --insecure-upstream: not a finding */
         "INSERT INTO tls (conn_id, upstream_id, side, time_us, sni, error, verify_result,"
         " insecure) VALUES (1, 6, 1, 3000, 'x.test', 'certificate verify failed', 10, 1)");
    struct shunt_model *m = load();
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    const struct shunt_finding *f = find(&fs, "tls-upstream-cert-invalid");
    assert_non_null(f);
    assert_int_equal(f->confidence, SHUNT_CONFIDENCE_CERTAIN);
    assert_int_equal(f->count, 1);
    assert_non_null(strstr(f->what, "certificate has expired (old.test)"));
    assert_null(f->explained_by);
    assert_int_equal(f->exchanges[0], 12);
    assert_null(find(&fs, "tls-client-rejects-cert"));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

/* A version-1 capture has no tls table of its own: its stand-in has no rows, no finding. */
static void no_tls_rows_no_findings(void **state)
{
    (void)state;
    exec("INSERT INTO connections (id, closer, close_how) VALUES (1, 'client', 'FIN');"
         "INSERT INTO exchanges (id, conn_id, idx, started_us, method, url, host, status)"
         " VALUES (1, 1, 1, 0, 'GET', 'http://a.test/', 'a.test', 200)");
    struct shunt_model *m = load();
    assert_int_equal(m->n_tls, 0);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    assert_null(find(&fs, "tls-client-rejects-cert"));
    assert_null(find(&fs, "tls-upstream-cert-invalid"));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(model_reads_the_tls_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_ca_is_certain, setup, teardown),
        cmocka_unit_test_setup_teardown(other_alerts_are_likely_and_a_close_possible, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_close_right_after_the_handshake_is_possible, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(other_failures_say_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_verification_failure_is_its_own_finding, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_tls_rows_no_findings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
