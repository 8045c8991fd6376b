/* tests/unit/analyze/test_model.c - the analysis model and the ranking of diagnose: field
 * lookups and list tokens, how a response ends its connection (RFC 9112 9.3, 6.3), and a
 * model loaded from a capture written row by row in memory: authentication legs and
 * challenges, handshake starts, authentication context, Server facts, successors, the
 * FILTER's selection; then shunt_diagnose_run's order on the story. */
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
#include "capture/har.h"

static struct shunt_slice S(const char *s)
{
    return shunt_slice_make(s, strlen(s));
}

/* ---------------------------------------------------------------- field lookups */

static void field_lookup_trims_and_ignores_case(void **state)
{
    (void)state;
    struct shunt_slice h = S("HTTP/1.1 200 OK\r\nserver:   Microsoft-IIS/6.0  \r\n"
                             "Set-Cookie: a=1\r\nSET-COOKIE: b=2\r\nX-Empty:\r\n\r\n");
    struct shunt_slice v;
    assert_int_equal(shunt_model_field(h, "Server", &v), 1);
    assert_int_equal(v.len, strlen("Microsoft-IIS/6.0"));
    assert_memory_equal(v.base, "Microsoft-IIS/6.0", v.len);
    assert_int_equal(shunt_model_field(h, "Set-Cookie", &v), 1);
    assert_memory_equal(v.base, "a=1", 3);
    assert_int_equal(shunt_model_field_count(h, "set-cookie"), 2);
    assert_int_equal(shunt_model_field(h, "X-Empty", &v), 1);
    assert_int_equal(v.len, 0);
    assert_int_equal(shunt_model_field(h, "Content-Length", &v), 0);
    assert_int_equal(shunt_model_field_count(h, "Content-Length"), 0);
    /* the status line is not a field, and an absent head has none */
    assert_int_equal(shunt_model_field(h, "HTTP/1.1 200 OK", &v), 0);
    assert_int_equal(shunt_model_field(shunt_slice_make(NULL, 0), "Server", &v), 0);
}

static void list_tokens_across_fields_and_quotes(void **state)
{
    (void)state;
    struct shunt_slice h = S("GET / HTTP/1.1\r\nConnection: TE\r\nConnection: keep-alive , "
                             "Close\r\nCache-Control: no-cache=\"a, close\"\r\n\r\n");
    assert_true(shunt_model_field_has_token(h, "Connection", "close"));
    assert_true(shunt_model_field_has_token(h, "connection", "te"));
    assert_true(shunt_model_field_has_token(h, "Connection", "keep-alive"));
    assert_false(shunt_model_field_has_token(h, "Connection", "upgrade"));
    /* a comma inside a quoted string does not split the list */
    assert_false(shunt_model_field_has_token(h, "Cache-Control", "close"));
    /* a token is a whole element, not a prefix */
    assert_false(shunt_model_field_has_token(S("X: 1\r\nConnection: closed\r\n\r\n"),
                                             "Connection", "close"));
}

/* ---------------------------------------------------------------- how a response ends */

static struct shunt_model_exchange resp(const char *method, int status, int http10,
                                        const char *head)
{
    struct shunt_model_exchange e;
    memset(&e, 0, sizeof(e));
    e.method = method;
    e.host = "";
    e.status = status;
    e.resp_http10 = http10;
    e.resp = e.resp_down = S(head);
    return e;
}

static void response_persistence_follows_rfc_9112(void **state)
{
    (void)state;
    struct shunt_model_exchange e;
    e = resp("GET", 200, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    e = resp("GET", 200, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    e = resp("GET", 200, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
    assert_string_equal(shunt_model_resp_closes(&e), "Connection: close");
    e = resp("GET", 200, 1, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert_string_equal(shunt_model_resp_closes(&e), "HTTP/1.0 without keep-alive");
    e = resp("GET", 200, 1, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    /* HTTP/1.0's own close wins over a Connection: close that only repeats it */
    e = resp("GET", 200, 1, "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n");
    assert_string_equal(shunt_model_resp_closes(&e), "HTTP/1.0 without keep-alive");
    e = resp("GET", 200, 0, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n");
    assert_string_equal(shunt_model_resp_closes(&e), "a body delimited by the close");
    /* no body, so no framing needed: HEAD, 204, 304, 1xx, a 2xx to CONNECT */
    e = resp("HEAD", 200, 0, "HTTP/1.1 200 OK\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    e = resp("GET", 204, 0, "HTTP/1.1 204 No Content\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    e = resp("GET", 304, 0, "HTTP/1.1 304 Not Modified\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    e = resp("CONNECT", 200, 0, "HTTP/1.1 200 Connection established\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
    /* no response: nothing to say */
    e = resp("GET", 0, 0, "HTTP/1.1 200 OK\r\n\r\n");
    assert_null(shunt_model_resp_closes(&e));
}

/* ---------------------------------------------------------------- a capture in memory */

/* Tokens with the real framing: NTLMSSP messages 1, 2, 3 (MS-NLMP 2.2.1), and SPNEGO
 * NegTokenInit (tag 0x60) and NegTokenResp (tag 0xa1) (RFC 4178 4.2). Only the first bytes
 * matter to the model. */
#define NTLM_1 "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAA="
#define NTLM_2 "TlRMTVNTUAACAAAADAAMADAAAAA="
#define NTLM_3 "TlRMTVNTUAADAAAAGAAYAEgAAAA="
#define SPNEGO_INIT "YIIBxQYGKwYBBQUCoIIBuTCCAbWgDTALBgkqhkiG9xIBAgI="
#define SPNEGO_RESP "oYGgMIGdoAMKAQChCwYJKoZIgvcSAQICooGIBIGFYIGC"

#include "capture_fixture.h"

/* A connection row: client 127.0.0.1:<port>, opened and closed at those microseconds (-1:
 * NULL), closed by <closer> (NULL: unknown) with <how>. */
static void add_conn(int64_t id, int port, int64_t opened, int64_t closed, const char *closer,
                     const char *how)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO connections (id, client_addr, client_port, "
                                        "opened_us, closed_us, closer, close_how) VALUES "
                                        "(?, '127.0.0.1', ?, ?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, port);
    sqlite3_bind_int64(st, 3, opened);
    if (closed >= 0)
        sqlite3_bind_int64(st, 4, closed);
    if (closer != NULL) {
        sqlite3_bind_text(st, 5, closer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, how, -1, SQLITE_STATIC);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* An exchange row: GET <path> on 127.0.0.1:8080, started at <t> for <dur> microseconds,
 * with an upstream connect time of <connect> (-1: reused), final <status>, the request's
 * extra fields <req> and the response head <resp_head> (NULL: none). */
static void add_ex(int64_t id, int64_t conn, int idx, int64_t t, int64_t dur, int64_t connect,
                   const char *path, const char *req, int status, const char *resp_head)
{
    char url[256], head[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:8080%s", path);
    snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n%s\r\n", path, req);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO exchanges (id, conn_id, idx, started_us, "
                                        "duration_us, t_connect, method, url, host, path, "
                                        "status, req_head, resp_head) VALUES "
                                        "(?, ?, ?, ?, ?, ?, 'GET', ?, '127.0.0.1', ?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, conn);
    sqlite3_bind_int(st, 3, idx);
    sqlite3_bind_int64(st, 4, t);
    sqlite3_bind_int64(st, 5, dur);
    sqlite3_bind_int64(st, 6, connect);
    sqlite3_bind_text(st, 7, url, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, path, -1, SQLITE_STATIC);
    if (status)
        sqlite3_bind_int(st, 9, status);
    sqlite3_bind_blob(st, 10, head, (int)strlen(head), SQLITE_TRANSIENT);
    if (resp_head)
        sqlite3_bind_blob(st, 11, resp_head, (int)strlen(resp_head), SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

#define BARE_401 "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\n" \
                 "WWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
#define NTLM_401 "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM " NTLM_2 "\r\n" \
                 "Content-Length: 0\r\n\r\n"
#define OK_BARE "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"

/* The story with NTLM, <n> times: a connection each, 401, 401 with the challenge, 200
 * without Server, then the client's FIN; the next connection opens right after. Times in
 * ms steps: connection k opens at k*100 ms. */
static void story(int n)
{
    for (int k = 0; k < n; k++) {
        int64_t t0 = (int64_t)k * 100000, c = k + 1, x = 3 * k + 1;
        add_conn(c, 50000 + k, t0, t0 + 90000, "client", "FIN");
        add_ex(x, c, 1, t0 + 1000, 2000, 500, "/doc", "", 401, BARE_401);
        add_ex(x + 1, c, 2, t0 + 4000, 3000, -1, "/doc", "Authorization: NTLM " NTLM_1 "\r\n",
               401, NTLM_401);
        add_ex(x + 2, c, 3, t0 + 8000, 1000, -1, "/doc", "Authorization: NTLM " NTLM_3 "\r\n",
               200, OK_BARE);
    }
}

static struct shunt_model *load(const struct shunt_capture_filter *f)
{
    struct shunt_model *m = NULL;
    char err[256] = "";
    if (shunt_model_load(db, f, &m, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    return m;
}

static void ntlm_legs_challenges_and_handshakes(void **state)
{
    (void)state;
    story(3);
    struct shunt_model *m = load(NULL);
    assert_int_equal(m->n_conns, 3);
    assert_int_equal(m->n_ex, 9);
    assert_int_equal(m->n_selected, 9);
    assert_string_equal(m->source, "proxy");
    for (size_t i = 0; i < 3; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        assert_int_equal(c->n_ex, 3);
        assert_string_equal(c->closer, "client");
        assert_string_equal(c->close_how, "FIN");
        assert_string_equal(c->host, "127.0.0.1");
        assert_int_equal(c->port, 8080);
        const struct shunt_model_exchange *e = c->ex;
        /* 1: no token, a bare challenge offering both schemes: the handshake starts here */
        assert_int_equal(e[0].leg, SHUNT_MODEL_LEG_NONE);
        assert_int_equal(e[0].challenge, SHUNT_MODEL_AUTH_NTLM | SHUNT_MODEL_AUTH_NEGOTIATE);
        assert_false(e[0].challenge_token);
        assert_true(e[0].starts_handshake);
        assert_true(e[0].auth_context);
        /* 2: NTLM NEGOTIATE answering the bare challenge: the same handshake */
        assert_int_equal(e[1].auth, SHUNT_MODEL_AUTH_NTLM);
        assert_int_equal(e[1].leg, SHUNT_MODEL_LEG_FIRST);
        assert_true(e[1].challenge_token);
        assert_false(e[1].starts_handshake);
        /* 3: AUTHENTICATE, then 200 without Server */
        assert_int_equal(e[2].leg, SHUNT_MODEL_LEG_CONTINUATION);
        assert_false(e[2].starts_handshake);
        assert_true(e[2].auth_context);
        assert_false(e[2].has_server);
        assert_int_equal(c->n_handshakes, 1);
        assert_int_equal(c->handshake_us, 2000 + 3000); /* the two 401 legs */
        assert_int_equal(c->connect_us, 500);
        /* successors: the same client address to the same origin, opened after */
        if (i < 2)
            assert_ptr_equal(c->next, &m->conns[i + 1]);
        else
            assert_null(c->next);
    }
    assert_ptr_equal(shunt_model_conn_by_id(m, 2), &m->conns[1]);
    assert_null(shunt_model_conn_by_id(m, 99));
    shunt_model_free(m);
}

static void negotiate_legs_and_a_second_handshake(void **state)
{
    (void)state;
    /* one connection: Negotiate sent unasked (a first leg), a 200 with the final token,
     * then a fresh bare challenge later on the same connection: two handshakes */
    add_conn(1, 50000, 0, -1, NULL, NULL);
    add_ex(1, 1, 1, 1000, 100, 300, "/a", "Authorization: Negotiate " SPNEGO_INIT "\r\n", 200,
           "HTTP/1.1 200 OK\r\nWWW-Authenticate: Negotiate " SPNEGO_RESP "\r\n"
           "Server: Microsoft-IIS/10.0\r\nContent-Length: 2\r\n\r\n");
    add_ex(2, 1, 2, 2000, 100, -1, "/b", "", 200,
           "HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/3.0\r\nContent-Length: 2\r\n\r\n");
    add_ex(3, 1, 3, 3000, 100, -1, "/c", "", 401,
           "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
           "Content-Length: 0\r\n\r\n");
    add_ex(4, 1, 4, 4000, 100, -1, "/c", "Authorization: Negotiate " SPNEGO_RESP "\r\n", 200,
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    /* and an exchange whose connection row is missing: left out */
    add_ex(5, 7, 1, 5000, 100, 300, "/lost", "", 200, OK_BARE);
    struct shunt_model *m = load(NULL);
    assert_int_equal(m->n_conns, 1);
    assert_int_equal(m->n_ex, 4);
    const struct shunt_model_conn *c = &m->conns[0];
    assert_string_equal(c->closer, "");
    assert_int_equal(c->closed_us, -1);
    assert_int_equal(c->ex[0].auth, SHUNT_MODEL_AUTH_NEGOTIATE);
    assert_int_equal(c->ex[0].leg, SHUNT_MODEL_LEG_FIRST);
    assert_true(c->ex[0].starts_handshake);
    assert_true(c->ex[0].challenge_token); /* the final leg on the 200 */
    assert_true(c->ex[0].has_server);
    assert_false(c->ex[0].old_iis); /* IIS 10.0 is not IIS 1.0 */
    assert_true(c->ex[1].old_iis);
    assert_true(c->ex[1].auth_context); /* the connection authenticated before it */
    assert_true(c->ex[2].starts_handshake);
    assert_int_equal(c->ex[3].leg, SHUNT_MODEL_LEG_CONTINUATION);
    assert_false(c->ex[3].starts_handshake);
    assert_int_equal(c->n_handshakes, 2);
    shunt_model_free(m);
}

/* Issue 10: a HAR exported with --redact keeps each token's leg in its marker, and the
 * model reads the leg from it as it did from the token. */
static void redacted_tokens_keep_their_legs(void **state)
{
    (void)state;
    static const char *const fields[] = {
        "Authorization: NTLM " NTLM_1 "\r\n", "Authorization: NTLM " NTLM_3 "\r\n",
        "Authorization: Negotiate " SPNEGO_INIT "\r\n",
        "Authorization: Negotiate " SPNEGO_RESP "\r\n", "Authorization: Negotiate garbage\r\n"};
    add_conn(1, 50000, 0, -1, NULL, NULL);
    for (int k = 0; k < 5; k++) {
        size_t len;
        char *red = shunt_har_redact_head(fields[k], strlen(fields[k]), &len);
        assert_non_null(red);
        assert_null(strstr(red, k < 4 ? (k < 2 ? "TlRM" : k == 2 ? "YII" : "oYG") : "garbage"));
        add_ex(2 * k + 1, 1, 2 * k + 1, 1000 * k, 100, -1, "/a", fields[k], 200, OK_BARE);
        add_ex(2 * k + 2, 1, 2 * k + 2, 1000 * k + 500, 100, -1, "/a", red, 200, OK_BARE);
        free(red);
    }
    struct shunt_model *m = load(NULL);
    assert_int_equal(m->n_ex, 10);
    static const enum shunt_model_leg want[] = {
        SHUNT_MODEL_LEG_FIRST, SHUNT_MODEL_LEG_CONTINUATION, SHUNT_MODEL_LEG_FIRST,
        SHUNT_MODEL_LEG_CONTINUATION, SHUNT_MODEL_LEG_UNKNOWN};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(m->ex[2 * k].leg, want[k]);
        assert_int_equal(m->ex[2 * k + 1].leg, want[k]);
        assert_int_equal(m->ex[2 * k + 1].auth, m->ex[2 * k].auth);
    }
    shunt_model_free(m);
}

static void filter_marks_what_it_takes(void **state)
{
    (void)state;
    story(2);
    struct shunt_capture_filter f = {.status = 200};
    struct shunt_model *m = load(&f);
    assert_int_equal(m->n_ex, 6); /* every exchange is loaded ... */
    assert_int_equal(m->n_selected, 2); /* ... the filter's are marked */
    for (size_t i = 0; i < m->n_ex; i++)
        assert_int_equal(m->ex[i].selected, m->ex[i].status == 200);
    assert_true(m->conns[0].selected && m->conns[1].selected);
    shunt_model_free(m);
    f = (struct shunt_capture_filter){.conn = 2};
    m = load(&f);
    assert_false(m->conns[0].selected);
    assert_true(m->conns[1].selected);
    shunt_model_free(m);
}

/* ---------------------------------------------------------------- ranking */

static const struct shunt_finding *find(const struct shunt_findings *fs, const char *id,
                                        size_t *at)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->v[i].check->id, id) == 0) {
            *at = i;
            return &fs->v[i];
        }
    return NULL;
}

static void story_ranks_cause_then_consequence(void **state)
{
    (void)state;
    story(5);
    struct shunt_model *m = load(NULL);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    size_t w = 99, r = 99;
    const struct shunt_finding *wf = find(&fs, "wininet-auth-close", &w);
    const struct shunt_finding *rf = find(&fs, "reauth-storm", &r);
    assert_non_null(wf);
    assert_non_null(rf);
    assert_int_equal(w, 0);
    assert_null(wf->explained_by);
    /* four closes were followed by a new connection: each cost its connect and two legs */
    assert_int_equal(wf->count, 4);
    assert_int_equal(wf->lost_handshakes, 4);
    assert_int_equal(wf->lost_connections, 4);
    assert_int_equal(wf->lost_us, 4 * (500 + 5000));
    assert_int_equal(wf->conns[0], 1);
    assert_int_equal(wf->exchanges[0], 3);
    /* the storm is the closes' consequence, ranked right after them */
    assert_int_equal(r, 1);
    assert_string_equal(rf->explained_by, "wininet-auth-close");
    assert_int_equal(rf->count, 5);
    assert_int_equal(rf->lost_handshakes, 4);
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

static void server_header_removes_the_story(void **state)
{
    (void)state;
    /* the same traffic, but every 200 names IIS 6.0: no wininet-auth-close */
    for (int k = 0; k < 4; k++) {
        int64_t t0 = (int64_t)k * 100000, c = k + 1, x = 2 * k + 1;
        add_conn(c, 50000 + k, t0, t0 + 90000, "client", "FIN");
        add_ex(x, c, 1, t0 + 1000, 2000, 500, "/doc", "", 401, BARE_401);
        add_ex(x + 1, c, 2, t0 + 4000, 1000, -1, "/doc", "Authorization: NTLM " NTLM_3 "\r\n",
               200, "HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/6.0\r\nContent-Length: 2\r\n\r\n");
    }
    struct shunt_model *m = load(NULL);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    size_t at;
    assert_null(find(&fs, "wininet-auth-close", &at));
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

/* Two connections of one client to one origin, one exchange each, both closed by the client
 * with a FIN: the first's exchange from 1 ms to 11 ms, closed at <closed_a> microseconds; the
 * second opened at <second_at>, its request right after. */
static size_t early_closes(int64_t closed_a, int64_t second_at)
{
    add_conn(1, 50000, 0, closed_a, "client", "FIN");
    add_ex(1, 1, 1, 1000, 10000, 300, "/a", "", 200, OK_BARE);
    add_conn(2, 50001, second_at, second_at + 100000, "client", "FIN");
    add_ex(2, 2, 1, second_at + 500, 1000, 300, "/b", "", 200, OK_BARE);
    struct shunt_model *m = load(NULL);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    size_t at;
    const struct shunt_finding *f = find(&fs, "client-closes-early", &at);
    size_t n = f ? f->count : 0;
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
    return n;
}

static void a_close_that_a_new_connection_follows_is_early(void **state)
{
    (void)state;
    /* the response ended at 11 ms, a new connection at 12 ms: it replaced this one, even
     * though the proxy recorded the close late (at 40 ms: both sides closed by then) */
    assert_int_equal(early_closes(40000, 12000), 1);
}

static void a_parallel_connection_replaces_nothing(void **state)
{
    (void)state;
    /* a browser: the second connection was opened at 5 ms, while the first was busy with
     * its request (the model still links it as the next); the first closed at exit, 300 ms */
    assert_int_equal(early_closes(300000, 5000), 0);
}

static void the_replacement_is_found_past_a_parallel_connection(void **state)
{
    (void)state;
    /* A's exchange runs 1-11 ms; B is opened at 5 ms, in parallel, and used; the client
     * closes A and opens C at 20 ms: C replaced A, B replaced nothing */
    add_conn(1, 50000, 0, 15000, "client", "FIN");
    add_ex(1, 1, 1, 1000, 10000, 300, "/a", "", 200, OK_BARE);
    add_conn(2, 50001, 5000, 300000, "client", "FIN");
    add_ex(2, 2, 1, 5500, 1000, 300, "/b", "", 200, OK_BARE);
    add_conn(3, 50002, 20000, 300000, "client", "FIN");
    add_ex(3, 3, 1, 20500, 1000, 300, "/c", "", 200, OK_BARE);
    struct shunt_model *m = load(NULL);
    assert_ptr_equal(m->conns[0].next, &m->conns[2]);
    shunt_model_free(m);
}

/* Issue 11, the CI failure: headless Chromium loading a page through the proxy. Connection 5
 * carries six requests and then sits idle; the browser opens connection 10 for a request
 * after 5's last response ended (5 was idle, not closed: a parallel connection, as a browser
 * opens them); at exit, 200 ms later, it closes every connection at once with a FIN (times
 * in the shape of the failing capture). 5's FIN came at exit: 10 was opened long before it
 * and replaced nothing. */
static void a_connection_opened_while_the_other_sat_idle_replaces_nothing(void **state)
{
    (void)state;
    const int64_t exit_at = 400000; /* every close, recorded within a millisecond */
    add_conn(5, 50005, 0, exit_at + 300, "client", "FIN");
    for (int k = 0; k < 6; k++) /* 10, 40, 70, 100, 130, 160 ms; the last ends at 161 ms */
        add_ex(1 + k, 5, k + 1, 10000 + 30000 * k, 1000, k ? -1 : 300, "/img", "", 200, OK_BARE);
    int64_t x = 7;
    for (int c = 6; c <= 9; c++) { /* the page's other parallel connections, busy meanwhile */
        add_conn(c, 50000 + c, 5000 * c, exit_at + 100 * c, "client", "FIN");
        for (int k = 0; k < 3; k++, x++)
            add_ex(x, c, k + 1, 5000 * c + 1000 + 40000 * k, 1000, k ? -1 : 300, "/img", "", 200,
                   OK_BARE);
    }
    /* opened 1 ms after 5's last response ended, 239 ms before the exit */
    add_conn(10, 50010, 161000 + 1000, exit_at + 200, "client", "FIN");
    add_ex(x, 10, 1, 162500, 1000, 300, "/favicon.ico", "", 404,
           "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    struct shunt_model *m = load(NULL);
    assert_int_equal(m->n_conns, 6);
    assert_null(shunt_model_conn_by_id(m, 5)->next);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    for (size_t i = 0; i < fs.n; i++)
        fail_msg("finding %s: %s", fs.v[i].check->id, fs.v[i].what);
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

/* Five runs of a command-line client, <apart> microseconds from one start to the next: each
 * opens a connection, sends one request (10 ms), closes it with a FIN at exit (1 ms later)
 * and the next run begins. Returns the findings' ids, space-separated, in <ids>. */
static void runs_of_a_client(int64_t apart, char *ids, size_t len)
{
    for (int k = 0; k < 5; k++) {
        int64_t t0 = k * apart;
        add_conn(k + 1, 50000 + k, t0, t0 + 12000, "client", "FIN");
        add_ex(k + 1, k + 1, 1, t0 + 500, 10000, 300, "/", "", 200, OK_BARE);
    }
    struct shunt_model *m = load(NULL);
    struct shunt_findings fs = {0};
    assert_int_equal(shunt_diagnose_run(m, &fs), 0);
    size_t o = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < fs.n && o < len; i++)
        o += (size_t)snprintf(ids + o, len - o, "%s%s", o ? " " : "", fs.v[i].check->id);
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
}

static void separate_runs_seconds_apart_replace_nothing(void **state)
{
    (void)state;
    char ids[256];
    /* 2 s apart, as curl run by hand or from a script with a pause: no blame */
    runs_of_a_client(2000000, ids, sizeof(ids));
    assert_string_equal(ids, "");
}

static void back_to_back_runs_are_replacements(void **state)
{
    (void)state;
    char ids[256];
    /* 20 ms apart (the next one opens 8 ms after the close): at the pace of the traffic */
    runs_of_a_client(20000, ids, sizeof(ids));
    assert_string_equal(ids, "client-closes-early");
}

/* The pace is the client's own: one that pauses 3 s between requests on a kept connection
 * and then opens a new one 3 s after closing it replaced it. */
static void the_pace_follows_the_pauses_on_kept_connections(void **state)
{
    (void)state;
    int64_t t = 0, x = 1;
    for (int c = 1; c <= 3; c++) {
        add_conn(c, 50000 + c, t, t + 3000000 + 20000, "client", "FIN");
        add_ex(x++, c, 1, t + 500, 10000, 300, "/", "", 200, OK_BARE);
        add_ex(x++, c, 2, t + 3010500, 10000, -1, "/", "", 200, OK_BARE);
        t += 6030000; /* the next connection opens 3 s after this one's close */
    }
    struct shunt_model *m = load(NULL);
    assert_ptr_equal(m->conns[0].next, &m->conns[1]);
    assert_ptr_equal(m->conns[1].next, &m->conns[2]);
    shunt_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(field_lookup_trims_and_ignores_case),
        cmocka_unit_test(list_tokens_across_fields_and_quotes),
        cmocka_unit_test(response_persistence_follows_rfc_9112),
        cmocka_unit_test_setup_teardown(ntlm_legs_challenges_and_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(negotiate_legs_and_a_second_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(redacted_tokens_keep_their_legs, setup, teardown),
        cmocka_unit_test_setup_teardown(filter_marks_what_it_takes, setup, teardown),
        cmocka_unit_test_setup_teardown(story_ranks_cause_then_consequence, setup, teardown),
        cmocka_unit_test_setup_teardown(server_header_removes_the_story, setup, teardown),
        cmocka_unit_test_setup_teardown(a_close_that_a_new_connection_follows_is_early, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_parallel_connection_replaces_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(the_replacement_is_found_past_a_parallel_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_connection_opened_while_the_other_sat_idle_replaces_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(separate_runs_seconds_apart_replace_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(back_to_back_runs_are_replacements, setup, teardown),
        cmocka_unit_test_setup_teardown(the_pace_follows_the_pauses_on_kept_connections, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
