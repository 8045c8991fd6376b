/* fuzz/fuzz_capture.c - libFuzzer driver for every reader of a capture file: the input
 * becomes a capture (SQLite), which is then read by each view (sessions, connections, show;
 * text and JSON), the HAR export (plain and redacted), the model with every diagnose check
 * and both printers, and diff against itself. A capture file is untrusted input: whatever
 * its rows say (negative or extreme integers, text where a number belongs, NULLs, dangling
 * ids, duplicates, missing tables, a wrong user_version), every reader must end without a
 * crash, a leak or undefined behaviour, or refuse the file with a one-line reason.
 *
 * Two input modes:
 * - bytes that start with "SQLite format 3": a capture file as it is;
 * - anything else: a compact description of rows, written into a new capture made from the
 *   real schema (or, when the header asks, a loose one without types or constraints, so that
 *   ids may repeat, be NULL or be text):
 *       header  one byte: bits 0-2 a table to drop (1-6), bit 3 a user_version byte follows,
 *               bit 4 a wrong application_id, bit 5 the loose schema, bit 6 drop the indexes
 *       record  one byte: the table (mod 6), then one value per column of that table
 *       value   one byte whose low 3 bits give the type: 0 NULL, 1 int8, 2 int64 (8 bytes,
 *               little-endian), 3 an extreme integer (next byte picks INT64_MIN, INT64_MAX,
 *               -1, 0, 1, INT32_MAX + 1, ...), 4 text (length byte, bytes), 5 blob (two
 *               length bytes, bytes), 6 a double (8 bytes), 7 a plausible value for that
 *               column (next byte picks a head with NTLM or Negotiate legs, a closer, a
 *               method, ...), which lets the fuzzer reach the checks' deep states.
 *   fuzz/capture_seed.py turns a real capture into this form (the seeds in corpus/capture). */
#include <fcntl.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/diagnose.h"
#include "analyze/diff.h"
#include "analyze/model.h"
#include "capture/db.h"
#include "capture/har.h"
#include "capture/view.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static FILE *sink;
static char path[64];

/* ---------------------------------------------------------------- the tables */

struct table {
    const char *name;
    const char *const *cols;
    size_t n_cols;
};

#define COLS(...)                                                                                  \
    (const char *const[]){__VA_ARGS__},                                                            \
        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)

static const struct table tables[] = {
    {"capture", COLS("id", "shunt_version", "command_line", "source", "source_detail",
                     "started_us", "stopped_us", "body_limit", "events_dropped")},
    {"connections", COLS("id", "client_addr", "client_port", "listen_addr", "listen_port",
                         "opened_us", "closed_us", "closer", "close_how", "bytes_in",
                         "bytes_out", "tls", "tunnel", "n_exchanges", "auth_scheme")},
    {"upstreams", COLS("id", "conn_id", "host", "port", "addr", "remote_port", "local_port",
                       "opened_us", "closed_us", "closer", "close_how", "bytes_in",
                       "bytes_out")},
    {"exchanges", COLS("id", "conn_id", "idx", "upstream_id", "upstream_reused", "started_us",
                       "method", "url", "host", "path", "http_version", "status", "req_head",
                       "req_head_sent", "resp_head", "resp_head_sent", "resp_interim",
                       "req_body_size", "resp_body_size", "req_bytes", "resp_bytes",
                       "t_blocked", "t_dns", "t_connect", "t_send", "t_wait", "t_receive",
                       "duration_us", "error", "flags", "t_ssl")},
    {"bodies", COLS("exchange_id", "direction", "truncated", "data")},
    {"changes", COLS("id", "exchange_id", "in_request", "what", "by")},
    {"tls", COLS("id", "conn_id", "upstream_id", "side", "time_us", "sni", "alpn", "version",
                 "cipher", "cert_subject", "cert_issuer", "cert_san", "cert_sha256",
                 "cert_not_before", "cert_not_after", "handshake_us", "error", "verify_result",
                 "insecure", "close_bits")},
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static const int64_t extremes[] = {
    INT64_MIN, INT64_MAX, -1, 0, 1, 2, (int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1,
    INT32_MAX, INT32_MIN, INT64_MIN + 1, INT64_MAX - 1, (int64_t)1 << 53, 1700000000000000,
    401, 200, 65536, 86400000000,
};

/* Plausible values: what the proxy writes, so that the checks find their patterns. */
static const char *const plausible[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n"
        "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n"
        "Authorization: NTLM TlRMTVNTUAADAAAAGAAYAEAAAAAYABgAWAAAAA==\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n"
        "Authorization: Negotiate oYGZMIGWoAMKAQChCwYJKoZIgvcSAQIC\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        "Via: 1.1 p\r\nProxy-Connection: keep-alive\r\n\r\n",
    "GET / HTTP/1.0\r\nHost: a\r\nCookie: a=1; b=2\r\nAuthorization: Basic YTpi\r\n\r\n",
    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n"
        "Content-Length: 0\r\n\r\n",
    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM TlRMTVNTUAACAAAADAAMADgAAAAFgomi\r\n"
        "Content-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
        "WWW-Authenticate: Negotiate oRQwEqADCgEAoQsGCSqGSIL3EgECAg==\r\n\r\n",
    "HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/2.0\r\nContent-Length: 10\r\n"
        "Set-Cookie: s=1; Path=/; HttpOnly\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nKeep-Alive: timeout=5\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "client", "server", "proxy", "FIN", "RST", "timeout", "error", "proxy", "har", "NTLM",
    "Negotiate", "GET", "HEAD", "CONNECT", "POST", "http://a:80/x?q=1&r", "https://a/",
    "http://[::1]:99999/", "a", "127.0.0.1", "HTTP/1.1", "HTTP/1.0",
    "127.0.0.1:80 closed the connection without responding",
};
#define N_PLAUSIBLE (sizeof(plausible) / sizeof(plausible[0]))

/* The input, read from the front. */
struct in {
    const uint8_t *p;
    size_t n;
};

static int take(struct in *in, void *out, size_t len)
{
    if (in->n < len) {
        memset(out, 0, len);
        in->p += in->n;
        in->n = 0;
        return -1;
    }
    memcpy(out, in->p, len);
    in->p += len;
    in->n -= len;
    return 0;
}

static uint8_t byte(struct in *in)
{
    uint8_t b = 0;
    (void)take(in, &b, 1);
    return b;
}

/* Binds the next value of <in> to parameter <i> of <st>. */
static void bind_value(struct in *in, sqlite3_stmt *st, int i)
{
    uint8_t t = byte(in);
    switch (t & 7) {
    case 0:
        sqlite3_bind_null(st, i);
        break;
    case 1:
        sqlite3_bind_int64(st, i, (int8_t)byte(in));
        break;
    case 2: {
        uint8_t b[8];
        (void)take(in, b, 8);
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | b[k];
        sqlite3_bind_int64(st, i, (int64_t)v);
        break;
    }
    case 3:
        sqlite3_bind_int64(st, i, extremes[byte(in) % (sizeof(extremes) / sizeof(extremes[0]))]);
        break;
    case 4: {
        size_t len = byte(in);
        if (len > in->n)
            len = in->n;
        sqlite3_bind_text(st, i, (const char *)in->p, (int)len, SQLITE_TRANSIENT);
        in->p += len, in->n -= len;
        break;
    }
    case 5: {
        size_t len = byte(in);
        len |= (size_t)byte(in) << 8;
        if (len > in->n)
            len = in->n;
        sqlite3_bind_blob(st, i, len ? (const void *)in->p : "", (int)len, SQLITE_TRANSIENT);
        in->p += len, in->n -= len;
        break;
    }
    case 6: {
        double d;
        (void)take(in, &d, sizeof(d));
        sqlite3_bind_double(st, i, d);
        break;
    }
    default: {
        const char *s = plausible[byte(in) % N_PLAUSIBLE];
        /* Heads are BLOBs in a real capture; the type bit above says which. */
        if (t & 8)
            sqlite3_bind_blob(st, i, s, (int)strlen(s), SQLITE_STATIC);
        else
            sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        break;
    }
    }
}

/* Makes the capture file <path> from the row description <in>. */
static void build(struct in *in)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    /* Speed: the file is thrown away after the run. */
    CHECK(sqlite3_exec(db, "PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF", NULL, NULL,
                       NULL) == SQLITE_OK);
    uint8_t h = byte(in);
    if (h & 0x20) {
        /* Loose: the same tables and columns, no types, no keys, no constraints. */
        char sql[2048];
        for (size_t t = 0; t < N_TABLES; t++) {
            size_t o = (size_t)snprintf(sql, sizeof(sql), "CREATE TABLE %s (", tables[t].name);
            for (size_t c = 0; c < tables[t].n_cols; c++)
                o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s%s", c ? ", " : "",
                                      tables[t].cols[c]);
            snprintf(sql + o, sizeof(sql) - o, ")");
            CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
        }
        CHECK(sqlite3_exec(db, "PRAGMA application_id = 1936223860; PRAGMA user_version = 2;",
                           NULL, NULL, NULL) == SQLITE_OK);
    } else {
        CHECK(sqlite3_exec(db, shunt_capture_schema_sql, NULL, NULL, NULL) == SQLITE_OK);
    }
    if (h & 0x08) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", (int8_t)byte(in));
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    }
    if (h & 0x10)
        CHECK(sqlite3_exec(db, "PRAGMA application_id = 7", NULL, NULL, NULL) == SQLITE_OK);
    if ((h & 0x40) && !(h & 0x20))
        CHECK(sqlite3_exec(db, "DROP INDEX exchanges_conn; DROP INDEX upstreams_conn;",
                           NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *ins[N_TABLES];
    for (size_t t = 0; t < N_TABLES; t++) {
        char sql[512];
        size_t o = (size_t)snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO %s VALUES (",
                                    tables[t].name);
        for (size_t c = 0; c < tables[t].n_cols; c++)
            o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s?", c ? "," : "");
        snprintf(sql + o, sizeof(sql) - o, ")");
        CHECK(sqlite3_prepare_v2(db, sql, -1, &ins[t], NULL) == SQLITE_OK);
    }
    CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    for (size_t rows = 0; in->n > 0 && rows < 4096; rows++) {
        size_t t = byte(in) % N_TABLES;
        for (size_t c = 0; c < tables[t].n_cols; c++)
            bind_value(in, ins[t], (int)c + 1);
        (void)sqlite3_step(ins[t]); /* a NOT NULL or CHECK may refuse the row: fine */
        sqlite3_reset(ins[t]);
        sqlite3_clear_bindings(ins[t]);
    }
    CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    for (size_t t = 0; t < N_TABLES; t++)
        sqlite3_finalize(ins[t]);
    if ((h & 7) >= 1 && (h & 7) <= N_TABLES) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DROP TABLE %s", tables[(h & 7) - 1].name);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    }
    CHECK(sqlite3_close(db) == SQLITE_OK);
}

/* ---------------------------------------------------------------- the readers */

/* A one-line reason or nothing. */
static void check_err(int rc, const char *err)
{
    if (rc != 0) {
        CHECK(rc < 0);
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
    }
}

static void views(void)
{
    static int (*const view[])(const struct shunt_view_opts *, char *, size_t) = {
        shunt_view_sessions, shunt_view_connections, shunt_view_show};
    for (size_t v = 0; v < 3; v++)
        for (int json = 0; json < 2; json++) {
            static const int64_t ids[] = {1, 2, INT64_MAX};
            for (size_t k = 0; k < (v == 2 ? 3u - (size_t)json * 2 : 1u); k++) {
                struct shunt_view_opts o;
                memset(&o, 0, sizeof(o));
                o.path = path;
                o.path_given = 1;
                o.limit = -1;
                o.offset = v == 0 && k == 0 && json ? 1001 : 0; /* the dense page start */
                o.id = ids[k];
                o.json = json;
                char err[512] = "";
                check_err(view[v](&o, err, sizeof(err)), err);
                fflush(stdout);
            }
        }
}

static void export(void)
{
    sqlite3 *db;
    char err[512] = "";
    int rc = shunt_capture_open(path, 0, &db, err, sizeof(err));
    check_err(rc, err);
    if (rc != 0)
        return;
    for (int redact = 0; redact < 2; redact++) {
        struct shunt_har_export_info info;
        struct shunt_har_export_opts xo = {"fuzz", redact};
        err[0] = '\0';
        check_err(shunt_har_export(db, NULL, &xo, sink, &info, err, sizeof(err)), err);
    }
    sqlite3_close(db);
}

static void analyze(void)
{
    struct shunt_model *m = NULL;
    int from_har = 0;
    char err[1024] = "";
    int rc = shunt_analyze_load(path, NULL, &m, &from_har, err, sizeof(err));
    check_err(rc, err);
    if (rc != 0)
        return;
    struct shunt_findings fs = {0};
    CHECK(shunt_diagnose_run(m, &fs) == 0);
    for (size_t i = 0; i < fs.n; i++) {
        const struct shunt_finding *f = &fs.v[i];
        CHECK(f->count > 0 && f->unit != NULL && f->what[0] != '\0');
        CHECK(f->n_conns <= SHUNT_CHECK_EXAMPLES && f->n_exchanges <= SHUNT_CHECK_EXAMPLES);
        CHECK(f->lost_us >= 0);
    }
    struct shunt_diagnose_info info = {path, 0, NULL};
    shunt_diagnose_print(sink, m, &fs, &info, 80);
    CHECK(shunt_diagnose_print_json(sink, m, &fs, &info) == 0);
    shunt_findings_dispose(&fs);
    struct shunt_diff d;
    memset(&d, 0, sizeof(d));
    CHECK(shunt_diff_run(m, m, &d) == 0);
    CHECK(!shunt_diff_any(&d)); /* a capture compared with itself has no difference */
    struct shunt_diff_info di = {path, path, 0, 0};
    shunt_diff_print(sink, &d, &di, 80);
    CHECK(shunt_diff_print_json(sink, &d, &di) == 0);
    shunt_diff_dispose(&d);
    shunt_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sink == NULL) {
        CHECK((sink = fopen("/dev/null", "w")) != NULL);
        /* The views write to stdout (stderr is libFuzzer's: a view's warning goes there). */
        int null = open("/dev/null", O_WRONLY);
        CHECK(null >= 0 && dup2(null, STDOUT_FILENO) >= 0);
        close(null);
        /* In memory when the system has a tmpfs there. */
        snprintf(path, sizeof(path), "%s/fuzz_capture.%ld.db",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
        setenv("PAGER", "cat", 1);
    }
    unlink(path);
    static const char magic[] = "SQLite format 3";
    if (size >= sizeof(magic) && memcmp(data, magic, sizeof(magic)) == 0) {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    } else {
        struct in in = {data, size};
        build(&in);
    }
    views();
    export();
    analyze();
    unlink(path);
    return 0;
}
