/* src/analyze/model.c - loading a capture into the analysis model, and reading heads. */
#include "analyze/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "capture/har.h"
#include "http/auth.h"
#include "http/parser.h"
#include "http/target.h"

/* How much earlier than the end of a connection's last response its replacement may have
 * been opened: the proxy takes one time just after the response's last byte went out, the
 * other at accept, maybe on another thread; a client that reads the byte and opens its next
 * connection at once can be accepted first (by 0.9 ms, seen under the sanitizers on a busy
 * machine). */
#define SUCCESSOR_SLACK_US 5000
/* How late the proxy records a client's FIN (src/proxy/session.c): on the FIN it passes the
 * close on to the server and records the connection's close (session_close(), CONN_CLOSE)
 * only once the server answered with its own FIN and the proxy's FIN to the client went
 * out, or when its linger timer (5 s) gives up waiting. The server's answer takes a round
 * trip, which the connection's upstream connect time measures; CLOSE_LAG_FLOOR_US covers the
 * server waking up to close and both event loops on a busy machine. A FIN thus came no
 * earlier than the recorded close less CLOSE_LAG_FLOOR_US + 2 x the connect time, never less
 * than the close less LINGER_US. A reset is recorded as it is read. */
#define CLOSE_LAG_FLOOR_US 50000
#define LINGER_US 5000000
/* The pace of a client's traffic to an origin: how long after a connection's last exchange
 * a new connection may open and still be its replacement. Twice the longest pause the client
 * made between two requests on one connection to that origin (it came back after that
 * long, on a connection it kept), at least PACE_MIN_US: a client that needs a new connection
 * opens it at once, within milliseconds, and a second leaves room for a slow machine;
 * separate runs of a command-line client seconds apart are not that. At most PACE_MAX_US,
 * so that one long pause does not make every later connection a replacement. */
#define PACE_MIN_US 1000000
#define PACE_MAX_US 30000000

/* ================================================================ heads */

/* Makes room in the array *<p> (capacity *<cap>) for element <n>, doubling it. Returns 0,
 * or -1 when out of memory (the array is unchanged). */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 64;
    void *q = realloc(*p, nc * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int ieq(struct shunt_slice a, const char *b)
{
    return shunt_slice_ieq(a, b, strlen(b));
}

int shunt_model_field(struct shunt_slice head, const char *name, struct shunt_slice *value)
{
    if (head.base == NULL)
        return 0;
    size_t pos = 0;
    struct shunt_slice n, v;
    (void)shunt_har_head_start(head.base, head.len, &pos);
    while (shunt_har_head_next(head.base, head.len, &pos, &n, &v))
        if (ieq(n, name)) {
            *value = v;
            return 1;
        }
    return 0;
}

size_t shunt_model_field_count(struct shunt_slice head, const char *name)
{
    if (head.base == NULL)
        return 0;
    size_t pos = 0, count = 0;
    struct shunt_slice n, v;
    (void)shunt_har_head_start(head.base, head.len, &pos);
    while (shunt_har_head_next(head.base, head.len, &pos, &n, &v))
        count += ieq(n, name);
    return count;
}

/* Trims spaces and tabs at both ends of <s>. */
static struct shunt_slice trim(struct shunt_slice s)
{
    while (s.len > 0 && (s.base[0] == ' ' || s.base[0] == '\t'))
        s.base++, s.len--;
    while (s.len > 0 && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

int shunt_model_field_has_token(struct shunt_slice head, const char *name, const char *token)
{
    if (head.base == NULL)
        return 0;
    size_t pos = 0;
    struct shunt_slice n, v;
    (void)shunt_har_head_start(head.base, head.len, &pos);
    while (shunt_har_head_next(head.base, head.len, &pos, &n, &v))
        if (ieq(n, name) && shunt_http_list_has(v, token, strlen(token)))
            return 1;
    return 0;
}

/* True when the start line <line> of a head ends (response: begins) with HTTP/1.0. */
static int says_http10(struct shunt_slice head, int response)
{
    if (head.base == NULL)
        return 0;
    size_t pos = 0;
    struct shunt_slice l = shunt_har_head_start(head.base, head.len, &pos);
    if (response)
        return l.len >= 8 && memcmp(l.base, "HTTP/1.0", 8) == 0;
    l = trim(l);
    return l.len >= 8 && memcmp(l.base + l.len - 8, "HTTP/1.0", 8) == 0;
}

/* shunt_model_resp_closes()'s reason for a body that only the close delimits; compared by
 * address in shunt_model_resp_unframed(). */
static const char unframed_reason[] = "a body delimited by the close";

/* How the response head <h> of <e> (HTTP/1.0 when <http10>) ends its connection: a reason
 * of shunt_model_resp_closes(), or NULL. */
static const char *head_closes(const struct shunt_model_exchange *e, struct shunt_slice h,
                               int http10)
{
    struct shunt_slice v;
    /* HTTP/2 and HTTP/3 have no Connection field and frame every body (RFC 9113 8.2.2, 8.1;
     * RFC 9114 4.2, 4.1): none of RFC 9112's reasons to end a connection apply. */
    if (h.base == NULL || e->status == 0 || !shunt_model_http1(e))
        return NULL;
    /* HTTP/1.0 first: its Connection: close, if any, only repeats what the version says. */
    if (http10 && !shunt_model_field_has_token(h, "Connection", "keep-alive"))
        return "HTTP/1.0 without keep-alive";
    if (shunt_model_field_has_token(h, "Connection", "close"))
        return "Connection: close";
    /* RFC 9112 6.3: no body for HEAD, 1xx, 204, 304 and a 2xx to CONNECT; otherwise a
     * response without chunked or Content-Length runs until the connection closes. */
    if (strcmp(e->method, "HEAD") == 0 || strcmp(e->method, "CONNECT") == 0 || e->status < 200 ||
        e->status == 204 || e->status == 304)
        return NULL;
    if (shunt_model_field(h, "Transfer-Encoding", &v) || shunt_model_field(h, "Content-Length", &v))
        return NULL;
    return unframed_reason;
}

const char *shunt_model_resp_closes(const struct shunt_model_exchange *e)
{
    return head_closes(e, e->resp_down, e->resp_http10);
}

const char *shunt_model_server_closes(const struct shunt_model_exchange *e)
{
    return head_closes(e, e->resp, says_http10(e->resp, 1));
}

int shunt_model_resp_unframed(const struct shunt_model_exchange *e)
{
    return shunt_model_resp_closes(e) == unframed_reason;
}

/* ================================================================ authentication */

static unsigned scheme_bit(struct shunt_slice s)
{
    if (ieq(s, "NTLM"))
        return SHUNT_MODEL_AUTH_NTLM;
    if (ieq(s, "Negotiate"))
        return SHUNT_MODEL_AUTH_NEGOTIATE;
    if (ieq(s, "Basic"))
        return SHUNT_MODEL_AUTH_BASIC;
    return SHUNT_MODEL_AUTH_OTHER;
}

/* Splits "Scheme token" into its scheme and its token (empty when bare): http/auth.h's
 * reading, the proxy's and the recorder's. */
static void split_credentials(struct shunt_slice v, struct shunt_slice *scheme,
                              struct shunt_slice *token)
{
    *scheme = shunt_http_auth_scheme(v, token);
}

/* True when <s> starts with <prefix>. */
static int starts(struct shunt_slice s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.base, prefix, n) == 0;
}

/* What the NTLM or Negotiate token <tok> is (MS-NLMP 2.2.1: "NTLMSSP\0" then the message
 * type; RFC 4178 4.2: NegTokenInit inside an InitialContextToken [APPLICATION 0] = 0x60,
 * NegTokenResp = [1] = 0xa1). */
static enum shunt_model_leg classify_token(struct shunt_slice tok)
{
    /* A HAR written with --redact keeps what the token was in its marker
     * (shunt_har_redact_head(): "<redacted: type 1 NEGOTIATE>", "<redacted: NegTokenInit
     * (Kerberos AP-REQ)>"), so that the legs survive the redaction. */
    static const char mark[] = SHUNT_HAR_REDACTED ": ";
    if (tok.len >= sizeof(mark) - 1 && memcmp(tok.base, mark, sizeof(mark) - 1) == 0) {
        struct shunt_slice what = shunt_slice_make(tok.base + sizeof(mark) - 1,
                                                   tok.len - (sizeof(mark) - 1));
        if (starts(what, "type 1 ") || starts(what, "NegTokenInit") ||
            starts(what, "Kerberos AP-REQ") || starts(what, "InitialContextToken"))
            return SHUNT_MODEL_LEG_FIRST;
        if (starts(what, "type 3 ") || starts(what, "NegTokenResp"))
            return SHUNT_MODEL_LEG_CONTINUATION;
        return SHUNT_MODEL_LEG_UNKNOWN;
    }
    unsigned char b[12];
    size_t n = shunt_base64_decode_prefix(tok.base, tok.len, b, sizeof(b));
    if (n >= 12 && memcmp(b, "NTLMSSP", 8) == 0) {
        if (b[8] == 1)
            return SHUNT_MODEL_LEG_FIRST;
        if (b[8] == 3)
            return SHUNT_MODEL_LEG_CONTINUATION;
        return SHUNT_MODEL_LEG_UNKNOWN;
    }
    if (n >= 1 && b[0] == 0x60)
        return SHUNT_MODEL_LEG_FIRST;
    if (n >= 1 && b[0] == 0xa1)
        return SHUNT_MODEL_LEG_CONTINUATION;
    return SHUNT_MODEL_LEG_UNKNOWN;
}

struct chal_scan {
    unsigned schemes;
    int token;
};

/* One element of a WWW-Authenticate value: a challenge "Scheme [token | params]", or a
 * parameter of the previous one (Basic realm="a, b" splits too; harmless here). */
static int chal_el(void *arg, struct shunt_slice el)
{
    struct chal_scan *cs = arg;
    struct shunt_slice scheme, token;
    split_credentials(el, &scheme, &token);
    if (token.len > 0 && token.base[0] == '=')
        return 0; /* an auth-param of the previous challenge (realm="x") */
    unsigned bit = scheme_bit(scheme);
    cs->schemes |= bit;
    if ((bit & SHUNT_MODEL_AUTH_BOUND) && token.len > 0)
        cs->token = 1;
    return 0;
}

/* True when the protocol name <v> names the protocol <p> ("quic/", "spdy/": lower case,
 * with its slash), first or after a '+' ("http/2+quic/43"), ASCII case ignored. A word
 * elsewhere (a path in a request line without a version) names nothing. */
static int names_protocol(struct shunt_slice v, const char *p)
{
    size_t n = strlen(p);
    for (size_t i = 0; i + n <= v.len; i++)
        if ((i == 0 || v.base[i - 1] == '+') &&
            shunt_slice_ieq(shunt_slice_make(v.base + i, n), p, n))
            return 1;
    return 0;
}

/* The major version a protocol name says: 2 for HTTP/2 ("h2", "h2c", "HTTP/2", "HTTP/2.0"),
 * 3 for HTTP/3 ("h3", "h3-29", "HTTP/3"), 1 for anything else (HTTP/1.0, HTTP/1.1, nothing:
 * a capture of shunt's own, or a HAR that does not say). ASCII case ignored. The names older
 * Chrome wrote for Google's protocols multiplex as well and are no HTTP/1.x: Google's QUIC
 * ("quic/1+spdy/3", "http/2+quic/43") counts as HTTP/3, its descendant, and SPDY
 * ("spdy/3.1") as HTTP/2, which grew out of it (the names har_import.c's
 * version_multiplexes() knows). */
static int major_of(struct shunt_slice v)
{
    v = trim(v);
    while (v.len > 0 && v.base[v.len - 1] == '\r')
        v.len--;
    if (names_protocol(v, "quic/"))
        return 3;
    if (names_protocol(v, "spdy/"))
        return 2;
    if (v.len >= 2 && (v.base[0] == 'h' || v.base[0] == 'H') &&
        (v.base[1] == '2' || v.base[1] == '3') && (v.len == 2 || v.base[2] == 'c' ||
                                                    v.base[2] == '-'))
        return v.base[1] - '0';
    if (v.len >= 6 && shunt_slice_ieq(shunt_slice_make(v.base, 5), "HTTP/", 5) &&
        (v.base[5] == '2' || v.base[5] == '3') && (v.len == 6 || v.base[6] == '.'))
        return v.base[5] - '0';
    return 1;
}

/* The version <e> was exchanged in: the capture's http_version <ver> (NULL: not recorded),
 * else the request line's last word, else the status line's first. */
static int read_version(const struct shunt_model_exchange *e, const char *ver)
{
    if (ver != NULL && ver[0] != '\0')
        return major_of(shunt_slice_make(ver, strlen(ver)));
    size_t pos = 0;
    if (e->req.base != NULL) {
        struct shunt_slice l = trim(shunt_har_head_start(e->req.base, e->req.len, &pos));
        size_t i = l.len;
        while (i > 0 && l.base[i - 1] != ' ')
            i--;
        if (i > 0)
            return major_of(shunt_slice_make(l.base + i, l.len - i));
    }
    if (e->resp.base != NULL) {
        pos = 0;
        struct shunt_slice l = shunt_har_head_start(e->resp.base, e->resp.len, &pos);
        const char *sp = memchr(l.base, ' ', l.len);
        return major_of(shunt_slice_make(l.base, sp ? (size_t)(sp - l.base) : l.len));
    }
    return 1;
}

/* Reads the authentication and server facts of <e> from its heads. */
static void read_facts(struct shunt_model_exchange *e)
{
    struct shunt_slice v, scheme, token;
    e->req_http10 = says_http10(e->req, 0);
    e->resp_http10 = says_http10(e->resp_down, 1);
    if (shunt_model_field(e->req, "Authorization", &v)) {
        split_credentials(v, &scheme, &token);
        e->auth = scheme_bit(scheme);
        if (e->auth & SHUNT_MODEL_AUTH_BOUND)
            e->leg = classify_token(token);
    }
    if (e->resp_down.base != NULL) {
        size_t pos = 0;
        struct shunt_slice n;
        struct chal_scan cs = {0, 0};
        (void)shunt_har_head_start(e->resp_down.base, e->resp_down.len, &pos);
        while (shunt_har_head_next(e->resp_down.base, e->resp_down.len, &pos, &n, &v))
            if (ieq(n, "WWW-Authenticate"))
                (void)shunt_http_list_each(v, chal_el, &cs);
        e->challenge = cs.schemes;
        e->challenge_token = cs.token;
    }
    if (shunt_model_field(e->resp_down, "Server", &v) && v.len > 0) {
        e->has_server = 1;
        /* The story: WinINet treats IIS 1.0, 2.0 and 3.0 as if the type were unknown. */
        static const char *const old[] = {"Microsoft-IIS/1.0", "Microsoft-IIS/2.0",
                                          "Microsoft-IIS/3.0"};
        for (size_t k = 0; k < 3; k++) {
            size_t l = strlen(old[k]);
            if (v.len >= l && shunt_slice_ieq(shunt_slice_make(v.base, l), old[k], l) &&
                (v.len == l || v.base[l] == ' '))
                e->old_iis = 1;
        }
    }
}

/* ================================================================ loading */

static char *dup_text(sqlite3_stmt *st, int i)
{
    const unsigned char *p = sqlite3_column_text(st, i);
    size_t len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
    char *s = malloc(len + 1);
    if (s != NULL) {
        if (len)
            memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* Copies blob column <i> (cut at SHUNT_MODEL_MAX_HEAD) into *<out>; base NULL when NULL.
 * Returns 0 or SHUNT_ENOMEM. */
static int dup_head(sqlite3_stmt *st, int i, struct shunt_slice *out)
{
    *out = shunt_slice_make(NULL, 0);
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    const void *p = sqlite3_column_blob(st, i);
    size_t len = (size_t)sqlite3_column_bytes(st, i);
    if (len > SHUNT_MODEL_MAX_HEAD)
        len = SHUNT_MODEL_MAX_HEAD;
    char *c = malloc(len + 1);
    if (c == NULL)
        return SHUNT_ENOMEM;
    if (len)
        memcpy(c, p, len);
    c[len] = '\0';
    *out = shunt_slice_make(c, len);
    return 0;
}

static int64_t col_i64(sqlite3_stmt *st, int i, int64_t if_null)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? if_null : sqlite3_column_int64(st, i);
}

/* Column <i> as a time or a duration in [0, SHUNT_MODEL_MAX_US]; <if_unknown> when NULL or
 * negative (it may itself be -1, "unknown"). */
static int64_t col_us(sqlite3_stmt *st, int i, int64_t if_unknown)
{
    int64_t v = col_i64(st, i, -1);
    if (v < 0)
        return if_unknown;
    return v > SHUNT_MODEL_MAX_US ? SHUNT_MODEL_MAX_US : v;
}

/* Column <i> as an int in [<lo>, <hi>], <if_null> when NULL. */
static int col_int(sqlite3_stmt *st, int i, int lo, int hi, int if_null)
{
    int64_t v = col_i64(st, i, if_null);
    return v < lo ? lo : v > hi ? hi : (int)v;
}

/* The port of the absolute URL <url> ("http://h:p/..."), the scheme's default without one
 * (or with one that is not a port). */
static int url_port(const char *url)
{
    struct shunt_target t;
    if (shunt_http_split_target(shunt_slice_make(url, strlen(url)), 0, &t) != SHUNT_TARGET_ABSOLUTE)
        return 0;
    struct shunt_authority au;
    (void)shunt_http_split_authority(t.authority, t.default_port, SHUNT_AUTHORITY_USERINFO, &au);
    return au.port;
}

static int conn_cmp_id(const void *a, const void *b)
{
    int64_t x = ((const struct shunt_model_conn *)a)->id, y = ((const struct shunt_model_conn *)b)->id;
    return (x > y) - (x < y);
}

const struct shunt_model_conn *shunt_model_conn_by_id(const struct shunt_model *m, int64_t id)
{
    if (m->n_conns == 0)
        return NULL; /* conns is NULL then, which bsearch() must not be given */
    struct shunt_model_conn key;
    key.id = id;
    return bsearch(&key, m->conns, m->n_conns, sizeof(key), conn_cmp_id);
}

/* Opened time of a connection for ordering: its own, else its first exchange's start. */
static int64_t opened_at(const struct shunt_model_conn *c)
{
    if (c->opened_us >= 0)
        return c->opened_us;
    return c->n_ex ? c->ex[0].started_us : -1;
}

/* Connections grouped by client address and origin, then by opening time. */
static int conn_cmp_origin(const void *a, const void *b)
{
    const struct shunt_model_conn *x = *(const struct shunt_model_conn *const *)a,
                                  *y = *(const struct shunt_model_conn *const *)b;
    int r = strcmp(x->client_addr, y->client_addr);
    if (r == 0)
        r = strcmp(x->host, y->host);
    if (r == 0)
        r = (x->port > y->port) - (x->port < y->port);
    if (r == 0) {
        int64_t p = opened_at(x), q = opened_at(y);
        r = (p > q) - (p < q);
    }
    if (r == 0)
        r = (x->id > y->id) - (x->id < y->id);
    return r;
}

static int same_origin(const struct shunt_model_conn *x, const struct shunt_model_conn *y)
{
    return strcmp(x->client_addr, y->client_addr) == 0 && strcmp(x->host, y->host) == 0 &&
           x->port == y->port;
}

/* The pace of the traffic of <n> connections of one client to one origin (PACE_MIN_US): twice
 * the longest pause between two requests on one of them, from the end of the exchanges
 * before to the next one's start (overlapping exchanges, HTTP/2's streams, make no pause),
 * within [PACE_MIN_US, PACE_MAX_US]. */
static int64_t pace_of(struct shunt_model_conn *const *v, size_t n)
{
    int64_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        const struct shunt_model_conn *c = v[i];
        int64_t end = -1;
        for (size_t k = 0; k < c->n_ex; k++) {
            const struct shunt_model_exchange *e = &c->ex[k];
            if (end >= 0 && e->started_us - end > longest)
                longest = e->started_us - end;
            int64_t e_end = shunt_model_add(e->started_us, e->duration_us);
            end = e_end > end ? e_end : end;
        }
    }
    int64_t pace = longest > PACE_MAX_US / 2 ? PACE_MAX_US : 2 * longest;
    return pace < PACE_MIN_US ? PACE_MIN_US : pace;
}

/*
 * The index in <v> of the successor of v[i] among v[i+1 .. h-1] (one client's connections to
 * one origin, by opening time; <taken> marks those already someone's), or h for none.
 *
 * A replacement is opened because the connection ended, so after its end, and at the pace of
 * the traffic (<pace>, from the end of its last exchange), not any later connection:
 * - When the client closed it after a response, after the client's close. A client reads
 *   the response before it closes, so after the response's end (less SUCCESSOR_SLACK_US);
 *   and when the capture recorded the close, after the close less the time the proxy may
 *   have taken to record it (CLOSE_LAG_FLOOR_US, LINGER_US), which a connection a browser
 *   opened in parallel while this one sat idle, all of them closed together at exit, is not.
 * - With an unknown closer (a HAR), after the response's end. A connection still open
 *   when a proxy's capture stopped ended nothing and has no successor, nor has one the curl
 *   tool closed at exit (closed_by_curl_at_exit()).
 * - After a close by the server or the proxy, or a failed exchange, after the last
 *   exchange's start: the client may open its next connection before the proxy recorded
 *   the close.
 */
/* True when the curl command-line tool closed <c> at exit: the request of its last exchange
 * <l> says User-Agent "curl/VERSION" (the tool's default; libcurl in a program sends none of
 * its own), and nothing made curl drop it mid-run. The tool reuses a connection for every
 * URL of its run to the same origin and closes one earlier only when it cannot be reused: a
 * failed or unanswered exchange, a response that ends it (Connection: close, HTTP/1.0, a
 * body delimited by the close), bytes past a response's end. Then the next connection may
 * be its replacement in the same run. */
static int closed_by_curl_at_exit(const struct shunt_model_conn *c,
                                  const struct shunt_model_exchange *l)
{
    struct shunt_slice ua;
    if (l->status == 0 || l->error != NULL || c->surplus_bytes > 0 ||
        shunt_model_resp_closes(l) != NULL)
        return 0;
    return shunt_model_field(l->req, "User-Agent", &ua) && ua.len > 5 &&
           SHUNT_SLICE_IEQ_LIT(shunt_slice_make(ua.base, 5), "curl/");
}

static size_t successor_of(struct shunt_model_conn *const *v, size_t i, size_t h, int64_t pace,
                           const unsigned char *taken)
{
    const struct shunt_model_conn *c = v[i];
    const struct shunt_model_exchange *l = shunt_model_last(c);
    if (l == NULL || c->open)
        return h; /* a connection still open was not replaced */
    int by_client = strcmp(c->closer, "client") == 0;
    /* curl closed it at exit: the next connection is the next run of curl, not a
     * replacement, however soon it began (a shell loop starts it within milliseconds). */
    if (by_client && closed_by_curl_at_exit(c, l))
        return h;
    int64_t after = l->started_us;
    if ((by_client || shunt_model_closer_unknown(c)) && l->status != 0)
        after = c->last_end_us - SUCCESSOR_SLACK_US;
    if (by_client && c->closed_us >= 0) {
        int64_t lag = LINGER_US;
        if (strcmp(c->close_how, "RST") == 0)
            lag = CLOSE_LAG_FLOOR_US; /* recorded as it was read */
        else if (c->connect_us < (LINGER_US - CLOSE_LAG_FLOOR_US) / 2)
            lag = CLOSE_LAG_FLOOR_US + 2 * c->connect_us;
        if (c->closed_us - lag > after)
            after = c->closed_us - lag;
    }
    int64_t until = shunt_model_add(c->last_end_us, pace);
    for (size_t j = i + 1; j < h; j++) {
        int64_t at = opened_at(v[j]);
        if (at > until)
            break; /* sorted by opening time: every later one is later still */
        if (!taken[j] && v[j]->n_ex > 0 && at >= after)
            return j;
    }
    return h;
}

/* Fills each connection's derived fields: origin, auth context of its exchanges, handshakes
 * and their time, and the next connection to the same origin. Returns 0 or SHUNT_ENOMEM. */
static int derive(struct shunt_model *m)
{
    for (size_t i = 0; i < m->n_conns; i++) {
        struct shunt_model_conn *c = &m->conns[i];
        c->host = c->n_ex ? c->ex[0].host : "";
        c->port = c->n_ex ? c->ex[0].port : 0;
        c->connect_us = c->n_ex && c->ex[0].t_connect > 0 ? c->ex[0].t_connect : 0;
        int ctx = 0;
        c->last_end_us = -1;
        for (size_t k = 0; k < c->n_ex; k++) {
            struct shunt_model_exchange *e = &c->ex[k];
            c->selected |= e->selected;
            c->multiplexed |= !shunt_model_http1(e);
            int64_t end = shunt_model_add(e->started_us, e->duration_us);
            c->last_end_us = end > c->last_end_us ? end : c->last_end_us;
            /* Connection-bound authentication is HTTP/1.1's (RFC 4559, MS-NLMP over HTTP):
             * a multiplexed connection carries many users' requests, and servers refuse it
             * there (IIS falls back to HTTP/1.1 for Windows authentication; an HTTP/2 server
             * may answer HTTP_1_1_REQUIRED, RFC 9113 7), so an HTTP/2 or HTTP/3 exchange
             * neither starts a handshake nor makes an authentication context. */
            if (!shunt_model_http1(e))
                continue;
            int bare = e->status == 401 && (e->challenge & SHUNT_MODEL_AUTH_BOUND) &&
                       !e->challenge_token;
            if (e->status == 401 && (e->challenge & SHUNT_MODEL_AUTH_BOUND))
                c->handshake_us = shunt_model_add(c->handshake_us, e->duration_us);
            /* A fresh challenge to a request without credentials, or a first leg that no
             * fresh challenge on this connection asked for, starts a handshake. */
            const struct shunt_model_exchange *prev = k ? &c->ex[k - 1] : NULL;
            int prev_bare = prev && prev->status == 401 &&
                            (prev->challenge & SHUNT_MODEL_AUTH_BOUND) && !prev->challenge_token;
            if ((bare && !(e->auth & SHUNT_MODEL_AUTH_BOUND)) ||
                (e->leg == SHUNT_MODEL_LEG_FIRST && !prev_bare)) {
                c->n_handshakes++;
                e->starts_handshake = 1;
            }
            if ((e->auth | e->challenge) & SHUNT_MODEL_AUTH_BOUND)
                ctx = 1;
            e->auth_context = ctx;
        }
    }
    struct shunt_model_conn **v = malloc((m->n_conns ? m->n_conns : 1) * sizeof(*v));
    if (v == NULL)
        return SHUNT_ENOMEM;
    for (size_t i = 0; i < m->n_conns; i++)
        v[i] = &m->conns[i];
    qsort(v, m->n_conns, sizeof(*v), conn_cmp_origin);
    unsigned char *taken = calloc(m->n_conns ? m->n_conns : 1, 1);
    if (taken == NULL) {
        free(v);
        return SHUNT_ENOMEM;
    }
    /* Each connection's successor, among the connections of the same client to the same
     * origin (a run of v): the first one opened after it ended and at the pace of the
     * traffic (successor_of()), not already someone's successor. */
    for (size_t g = 0; g < m->n_conns;) {
        size_t h = g + 1;
        while (h < m->n_conns && same_origin(v[g], v[h]))
            h++;
        int64_t pace = pace_of(v + g, h - g);
        for (size_t i = g; i < h; i++) {
            size_t j = successor_of(v, i, h, pace, taken);
            if (j < h) {
                v[i]->next = v[j];
                taken[j] = 1;
            }
        }
        g = h;
    }
    free(taken);
    free(v);
    return 0;
}

/* ================================================================ byte counts */

static int ex_ptr_cmp(const void *a, const void *b)
{
    int64_t x = (*(struct shunt_model_exchange *const *)a)->id;
    int64_t y = (*(struct shunt_model_exchange *const *)b)->id;
    return (x > y) - (x < y);
}

/* The exchange <id> in <by_id> (<n> pointers sorted by id), or NULL. */
static struct shunt_model_exchange *exchange_of(struct shunt_model_exchange **by_id, size_t n,
                                                int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by_id[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && by_id[lo]->id == id ? by_id[lo] : NULL;
}

/* The response body bytes <e> recorded beyond its Content-Length (<body> bytes recorded in
 * all), or 0: only when the length is plain digits and nothing else frames or transforms the
 * body (Transfer-Encoding, Content-Encoding: then the sizes are not comparable), for a
 * response that has a body (RFC 9112 6.3). */
static int64_t body_excess(const struct shunt_model_exchange *e, int64_t body)
{
    struct shunt_slice h = e->resp, v;
    /* HTTP/1.x: there the bytes past a body's length are read as the next response; HTTP/2
     * and HTTP/3 frame each body, and a mismatch is a malformed stream (RFC 9113 8.1.1). */
    if (!shunt_model_http1(e))
        return 0;
    if (h.base == NULL || e->status < 200 || e->status == 204 || e->status == 304 ||
        strcmp(e->method, "HEAD") == 0 || shunt_model_field(h, "Transfer-Encoding", &v) ||
        shunt_model_field(h, "Content-Encoding", &v) ||
        shunt_model_field_count(h, "Content-Length") != 1 ||
        !shunt_model_field(h, "Content-Length", &v) || v.len == 0 || v.len > 15)
        return 0;
    int64_t len = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return 0;
        len = len * 10 + (v.base[i] - '0');
    }
    return body > len ? body - len : 0;
}

/* Sums up one upstream connection: <bytes_in> the server sent on it, <expected> the bytes of
 * the responses the proxy read on it (-1: not all of them are known). Adds what is left to
 * its client connection <c>. */
static void add_surplus(struct shunt_model_conn *c, int64_t bytes_in, int64_t expected)
{
    if (c != NULL && expected >= 0 && bytes_in > expected)
        c->surplus_bytes = shunt_model_add(c->surplus_bytes, bytes_in - expected);
}

/*
 * Reads what the byte counts of the capture say beyond the heads: each exchange's body bytes
 * past its Content-Length (a HAR can say so; a shunt capture stops at the length), and, in a
 * shunt capture, each connection's surplus: what the server sent on an upstream connection
 * beyond the responses the proxy read on it (status line and fields, 1xx heads, bodies). The
 * proxy passes those bytes on to the client as they came, outside any exchange, and records
 * them nowhere else. A response framed by chunked coding, a failed or tunnelled
 * exchange, an upstream whose count is missing, or one that spoke TLS (its count is of
 * TCP bytes: records and handshake, not responses) makes its upstream's surplus unknown: the
 * capture keeps decoded chunk sizes only, and an error leaves bytes read but not counted.
 * Returns 0, SHUNT_ENOMEM, or SHUNT_EPARSE (SQLite's message is on <db>).
 */
/* The TLS handshakes (the tls table). Returns 0, SHUNT_ENOMEM or SHUNT_EPARSE. */
static int read_tls(sqlite3 *db, struct shunt_model *m)
{
    static const char sql[] =
        "SELECT id, conn_id, upstream_id, side, time_us, sni, error, verify_result, insecure, "
        "close_bits FROM tls ORDER BY id";
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return SHUNT_EPARSE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&m->tls, &cap, m->n_tls, sizeof(*m->tls)) != 0) {
            sqlite3_finalize(st);
            return SHUNT_ENOMEM;
        }
        struct shunt_model_tls *t = &m->tls[m->n_tls];
        memset(t, 0, sizeof(*t));
        t->id = sqlite3_column_int64(st, 0);
        t->conn_id = sqlite3_column_int64(st, 1);
        t->upstream_id = col_i64(st, 2, 0);
        t->side = col_i64(st, 3, 0) != 0;
        t->time_us = col_us(st, 4, -1);
        t->verify_result = col_int(st, 7, -1, 1 << 20, -1);
        t->insecure = col_i64(st, 8, 0) != 0;
        t->close_bits = (unsigned)col_int(st, 9, 0, 255, 0);
        t->sni = dup_text(st, 5);
        if (sqlite3_column_type(st, 6) != SQLITE_NULL)
            t->error = dup_text(st, 6);
        m->n_tls++;
        if (t->sni == NULL || (sqlite3_column_type(st, 6) != SQLITE_NULL && t->error == NULL)) {
            sqlite3_finalize(st);
            return SHUNT_ENOMEM;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : SHUNT_EPARSE;
}

static int read_byte_counts(sqlite3 *db, struct shunt_model *m)
{
    static const char sql[] =
        "SELECT e.id, e.conn_id, e.upstream_id, e.resp_body_size, length(e.resp_head), "
        "length(e.resp_interim), e.error IS NOT NULL OR (e.flags & 8) != 0, "
        /* an upstream that spoke TLS counts TCP bytes: records, not the responses */
        "CASE WHEN EXISTS (SELECT 1 FROM tls t WHERE t.upstream_id = u.id) THEN NULL "
        "ELSE u.bytes_in END "
        "FROM exchanges e LEFT JOIN upstreams u ON u.id = e.upstream_id "
        "ORDER BY e.upstream_id, e.id";
    sqlite3_stmt *st = NULL;
    int proxy = strcmp(m->source, "proxy") == 0, rc;
    int64_t up = 0, bytes_in = -1, expected = -1;
    struct shunt_model_conn *upc = NULL;
    /* the model's exchanges by id, found by a binary search per row (a scan of the
     * connection's exchanges per row was quadratic on a long keep-alive connection) */
    struct shunt_model_exchange **by_id = malloc((m->n_ex ? m->n_ex : 1) * sizeof(*by_id));
    if (by_id == NULL)
        return SHUNT_ENOMEM;
    for (size_t i = 0; i < m->n_ex; i++)
        by_id[i] = &m->ex[i];
    if (m->n_ex > 1)
        qsort(by_id, m->n_ex, sizeof(*by_id), ex_ptr_cmp);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        free(by_id);
        return SHUNT_EPARSE;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t conn_id = sqlite3_column_int64(st, 1);
        struct shunt_model_exchange *e = exchange_of(by_id, m->n_ex, sqlite3_column_int64(st, 0));
        if (e == NULL)
            continue;
        int64_t body = col_i64(st, 3, 0);
        if (body < 0)
            body = 0; /* a size: a negative one is a hostile file's */
        e->body_excess = body_excess(e, body);
        int64_t u = col_i64(st, 2, 0);
        if (!proxy || u <= 0)
            continue;
        if (u != up) { /* the rows of one upstream come together */
            add_surplus(upc, bytes_in, expected);
            up = u;
            upc = (struct shunt_model_conn *)shunt_model_conn_by_id(m, conn_id);
            bytes_in = col_i64(st, 7, -1);
            expected = bytes_in >= 0 ? 0 : -1;
        }
        struct shunt_slice v;
        if (expected < 0 || sqlite3_column_type(st, 4) == SQLITE_NULL ||
            sqlite3_column_int(st, 6) != 0 || shunt_model_field(e->resp, "Transfer-Encoding", &v))
            expected = -1;
        else
            expected = shunt_model_add(shunt_model_add(expected, col_i64(st, 4, 0)),
                                       shunt_model_add(col_i64(st, 5, 0), body));
    }
    add_surplus(upc, bytes_in, expected);
    sqlite3_finalize(st);
    free(by_id);
    return rc == SQLITE_DONE ? 0 : SHUNT_EPARSE;
}

/* ================================================================ rules' changes */

/* True when <what> (a change's description) names a Connection field: "set Connection:
 * close", "remove Connection". Proxy-Connection is the routine rewrites' (by "proxy"). */
static int names_connection(const char *what)
{
    static const char word[] = "connection";
    for (const char *p = what; *p != '\0'; p++)
        if (strncasecmp(p, word, sizeof(word) - 1) == 0 && (p == what || p[-1] == ' '))
            return 1;
    return 0;
}

/*
 * Reads which user's rule changed each exchange's request and response (the changes table;
 * by "proxy" is a routine rewrite every forward proxy makes and "shunt" a repair: neither is
 * a rule of the user's): the first rule's name on each side, or the first one that changed
 * a Connection field. Returns 0, SHUNT_ENOMEM, or SHUNT_EPARSE (SQLite's message is on <db>).
 */
static int read_rules(sqlite3 *db, struct shunt_model *m)
{
    static const char sql[] =
        "SELECT exchange_id, in_request, what, by FROM changes "
        "WHERE by NOT IN ('proxy', 'shunt') ORDER BY exchange_id, id";
    sqlite3_stmt *st = NULL;
    int rc;
    if (m->n_ex == 0)
        return 0;
    struct shunt_model_exchange **by_id = malloc(m->n_ex * sizeof(*by_id));
    if (by_id == NULL)
        return SHUNT_ENOMEM;
    for (size_t i = 0; i < m->n_ex; i++)
        by_id[i] = &m->ex[i];
    qsort(by_id, m->n_ex, sizeof(*by_id), ex_ptr_cmp);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        free(by_id);
        return SHUNT_EPARSE;
    }
    const struct shunt_model_exchange *cur = NULL;
    int conn_named[2] = {0, 0}; /* the name kept on each side is a Connection change's */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct shunt_model_exchange *e = exchange_of(by_id, m->n_ex, sqlite3_column_int64(st, 0));
        const char *what = (const char *)sqlite3_column_text(st, 2);
        if (e == NULL || what == NULL)
            continue;
        if (e != cur) {
            cur = e;
            conn_named[0] = conn_named[1] = 0;
        }
        int side = sqlite3_column_int(st, 1) != 0, conn = names_connection(what);
        const char **slot = side ? &e->rule_req : &e->rule_resp;
        /* a Connection field's change wins over an earlier change of another field */
        if (*slot != NULL && (conn_named[side] || !conn))
            continue;
        char *by = dup_text(st, 3);
        if (by == NULL) {
            rc = SHUNT_ENOMEM;
            break;
        }
        free((char *)*slot);
        *slot = by;
        conn_named[side] = conn;
    }
    sqlite3_finalize(st);
    free(by_id);
    return rc == SQLITE_DONE ? 0 : rc == SHUNT_ENOMEM ? SHUNT_ENOMEM : SHUNT_EPARSE;
}

int shunt_model_load(sqlite3 *db, const struct shunt_capture_filter *f, struct shunt_model **out,
                     char *err, size_t err_len)
{
    static const char conn_sql[] =
        "SELECT id, client_addr, client_port, opened_us, closed_us, closer, close_how, tunnel "
        "FROM connections ORDER BY id";
    static const char up_sql[] =
        "SELECT conn_id, closer, close_how FROM upstreams ORDER BY conn_id, id";
    char where[SHUNT_CAPTURE_FILTER_SQL_MAX], sql[SHUNT_CAPTURE_FILTER_SQL_MAX + 512];
    sqlite3_stmt *st = NULL;
    int rc = SHUNT_ENOMEM;
    *out = NULL;
    struct shunt_model *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return SHUNT_ENOMEM;
    int n_params = f ? shunt_capture_filter_sql(f, "e", 1, where, sizeof(where)) : 0;
    if (n_params < 0) {
        snprintf(err, err_len, "filter too long");
        rc = SHUNT_EINVAL;
        goto fail;
    }
    if (f == NULL)
        snprintf(where, sizeof(where), "1");

    /* The capture's facts. */
    if (sqlite3_prepare_v2(db, "SELECT source, events_dropped FROM capture WHERE id = 1", -1, &st,
                           NULL) != SQLITE_OK)
        goto sql_fail;
    if (sqlite3_step(st) == SQLITE_ROW) {
        m->source = dup_text(st, 0);
        m->events_dropped = col_i64(st, 1, 0);
    } else {
        m->source = strdup(""); /* no row: an odd capture, still readable */
    }
    if (m->source == NULL)
        goto fail;
    sqlite3_finalize(st);
    st = NULL;
    int proxy = strcmp(m->source, "proxy") == 0;

    /* Connections, by id. */
    size_t cap = 0;
    if (sqlite3_prepare_v2(db, conn_sql, -1, &st, NULL) != SQLITE_OK)
        goto sql_fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&m->conns, &cap, m->n_conns, sizeof(*m->conns)) != 0)
            goto oom;
        struct shunt_model_conn *c = &m->conns[m->n_conns++];
        memset(c, 0, sizeof(*c));
        c->id = sqlite3_column_int64(st, 0);
        c->client_addr = dup_text(st, 1);
        c->client_port = col_int(st, 2, 0, 65535, 0);
        c->opened_us = col_us(st, 3, -1);
        c->closed_us = col_us(st, 4, -1);
        c->closer = dup_text(st, 5);
        c->close_how = dup_text(st, 6);
        c->tunnel = col_i64(st, 7, 0) != 0;
        /* The recorder writes a connection's row at its open and its close at its end, so in
         * a proxy's capture no close time and no closer means still open when the capture
         * stopped (or the proxy died); an import with neither just does not know. */
        c->open = proxy && sqlite3_column_type(st, 4) == SQLITE_NULL &&
                  sqlite3_column_type(st, 5) == SQLITE_NULL;
        c->up_closer = strdup("");
        c->up_close_how = strdup("");
        if (c->client_addr == NULL || c->closer == NULL || c->close_how == NULL ||
            c->up_closer == NULL || c->up_close_how == NULL)
            goto oom;
    }
    if (rc != SQLITE_DONE)
        goto sql_fail;
    sqlite3_finalize(st);
    st = NULL;

    /* How each connection's last upstream ended (rows by id: the last one wins). */
    if (sqlite3_prepare_v2(db, up_sql, -1, &st, NULL) != SQLITE_OK)
        goto sql_fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct shunt_model_conn *c =
            (struct shunt_model_conn *)shunt_model_conn_by_id(m, sqlite3_column_int64(st, 0));
        if (c == NULL)
            continue;
        char *who = dup_text(st, 1), *how = dup_text(st, 2);
        if (who == NULL || how == NULL) {
            free(who);
            free(how);
            goto oom;
        }
        free((char *)c->up_closer);
        free((char *)c->up_close_how);
        c->up_closer = who;
        c->up_close_how = how;
    }
    if (rc != SQLITE_DONE)
        goto sql_fail;
    sqlite3_finalize(st);
    st = NULL;

    /* Exchanges, by connection and index, each with whether the filter takes it. */
    snprintf(sql, sizeof(sql),
             "SELECT e.id, e.conn_id, e.idx, e.started_us, e.duration_us, e.t_connect, e.status, "
             "e.method, e.host, e.url, e.req_head, e.req_head_sent, e.resp_head, e.resp_head_sent, "
             "CASE WHEN %s THEN 1 ELSE 0 END, e.error, e.http_version FROM exchanges e "
             "ORDER BY e.conn_id, e.idx, e.id",
             where);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
        (f && shunt_capture_filter_bind(f, st, 1) != SQLITE_OK))
        goto sql_fail;
    cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t conn_id = sqlite3_column_int64(st, 1);
        if (shunt_model_conn_by_id(m, conn_id) == NULL)
            continue; /* an exchange without its connection: nothing to say about it */
        if (grow((void **)&m->ex, &cap, m->n_ex, sizeof(*m->ex)) != 0)
            goto oom;
        struct shunt_model_exchange *e = &m->ex[m->n_ex++];
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(st, 0);
        e->conn_id = conn_id;
        e->idx = sqlite3_column_int64(st, 2);
        e->started_us = col_us(st, 3, 0);
        e->duration_us = col_us(st, 4, 0);
        e->t_connect = col_us(st, 5, -1);
        e->status = col_int(st, 6, 0, 999, 0);
        e->method = dup_text(st, 7);
        e->host = dup_text(st, 8);
        e->url = dup_text(st, 9);
        if (e->method == NULL || e->host == NULL || e->url == NULL)
            goto oom;
        e->port = url_port(e->url);
        if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
            e->error = dup_text(st, 15);
            if (e->error == NULL)
                goto oom;
        }
        if (dup_head(st, 10, &e->req) != 0 || dup_head(st, 11, &e->req_up) != 0 ||
            dup_head(st, 12, &e->resp) != 0 || dup_head(st, 13, &e->resp_down) != 0)
            goto oom;
        if (e->req_up.base == NULL)
            e->req_up = e->req;
        if (e->resp_down.base == NULL)
            e->resp_down = e->resp;
        e->selected = sqlite3_column_int(st, 14) != 0;
        m->n_selected += (size_t)e->selected;
        e->http_major = read_version(e, (const char *)sqlite3_column_text(st, 16));
        read_facts(e);
    }
    if (rc != SQLITE_DONE)
        goto sql_fail;
    sqlite3_finalize(st);
    st = NULL;

    /* Each connection's run of exchanges (the array no longer moves). */
    for (size_t i = 0; i < m->n_ex;) {
        struct shunt_model_conn *c = (struct shunt_model_conn *)shunt_model_conn_by_id(m, m->ex[i].conn_id);
        c->ex = &m->ex[i];
        size_t j = i;
        while (j < m->n_ex && m->ex[j].conn_id == c->id)
            j++;
        c->n_ex = j - i;
        i = j;
    }
    rc = read_rules(db, m);
    if (rc == SHUNT_ENOMEM)
        goto oom;
    if (rc != 0)
        goto sql_fail;
    rc = read_tls(db, m);
    if (rc == SHUNT_ENOMEM)
        goto oom;
    if (rc != 0)
        goto sql_fail;
    rc = read_byte_counts(db, m); /* before derive(): successor_of() reads surplus_bytes */
    if (rc == SHUNT_ENOMEM)
        goto oom;
    if (rc != 0)
        goto sql_fail;
    if (derive(m) != 0)
        goto oom;
    *out = m;
    return 0;
sql_fail:
    snprintf(err, err_len, "cannot read the capture: %s", sqlite3_errmsg(db));
    rc = SHUNT_EPARSE;
    goto fail;
oom:
    rc = SHUNT_ENOMEM;
    snprintf(err, err_len, "out of memory");
fail:
    sqlite3_finalize(st);
    shunt_model_free(m);
    return rc;
}

void shunt_model_free(struct shunt_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_ex; i++) {
        struct shunt_model_exchange *e = &m->ex[i];
        free((char *)e->method);
        free((char *)e->url);
        free((char *)e->host);
        free((char *)e->error);
        free((char *)e->rule_req);
        free((char *)e->rule_resp);
        /* A head sent unchanged shares the bytes of the head received. */
        if (e->req_up.base != e->req.base)
            free((char *)e->req_up.base);
        if (e->resp_down.base != e->resp.base)
            free((char *)e->resp_down.base);
        free((char *)e->req.base);
        free((char *)e->resp.base);
    }
    for (size_t i = 0; i < m->n_conns; i++) {
        free((char *)m->conns[i].client_addr);
        free((char *)m->conns[i].closer);
        free((char *)m->conns[i].close_how);
        free((char *)m->conns[i].up_closer);
        free((char *)m->conns[i].up_close_how);
    }
    for (size_t i = 0; i < m->n_tls; i++) {
        free((char *)m->tls[i].sni);
        free((char *)m->tls[i].error);
    }
    free(m->tls);
    free(m->ex);
    free(m->conns);
    free(m->source);
    free(m);
}
