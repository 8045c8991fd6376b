/* src/capture/view.c - the capture views: reading a capture page by page, formatting it as
 * aligned tables, an exchange's detail or JSON, and paging it on a terminal. */
#include "capture/view.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "capture/db.h"
#include "core/log.h"

/* Rows read before a table prints its header: the widths of its columns come from them. */
#define FIRST_ROWS 200
/* Head diffs fall back to "all removed, all added" beyond this many line pairs. */
#define DIFF_MAX_CELLS (4u * 1024 * 1024)

/* ================================================================ pure formatting helpers */

char *shunt_view_flags(int64_t flags, int error, int truncated, char *buf)
{
    size_t n = 0;
    /* C and r exclude each other: r says that nothing but the routine rewrites happened. */
    if (flags & SHUNT_CAPTURE_FLAG_CHANGED)
        buf[n++] = 'C';
    else if (flags & SHUNT_CAPTURE_FLAG_ROUTINE)
        buf[n++] = 'r';
    if ((flags & SHUNT_CAPTURE_FLAG_ERROR) || error)
        buf[n++] = 'E';
    if ((flags & SHUNT_CAPTURE_FLAG_TRUNCATED) || truncated)
        buf[n++] = 'T';
    if (flags & SHUNT_CAPTURE_FLAG_TUNNEL)
        buf[n++] = 'U';
    if (flags & SHUNT_CAPTURE_FLAG_SELF)
        buf[n++] = 'S';
    if (flags & SHUNT_CAPTURE_FLAG_PENDING)
        buf[n++] = 'P';
    if (n == 0)
        buf[n++] = '-';
    buf[n] = '\0';
    return buf;
}

char *shunt_view_host(const char *host, size_t host_len, const char *url, size_t url_len,
                      char *buf, size_t len)
{
    int named = 0;
    int port = shunt_capture_url_port(url, url_len, &named);
    if (host_len == 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    /* An IPv6 literal takes brackets before a port, as in a URL (RFC 3986 3.2.2). */
    int v6 = memchr(host, ':', host_len) != NULL && host[0] != '[';
    if (named && port > 0)
        snprintf(buf, len, "%s%.*s%s:%d", v6 ? "[" : "", (int)host_len, host, v6 ? "]" : "",
                 port);
    else
        snprintf(buf, len, "%.*s", (int)host_len, host);
    return buf;
}

char *shunt_view_ms(int64_t us, int decimals, char *buf, size_t len)
{
    if (us < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.*f", decimals, (double)us / 1000.0);
    return buf;
}

char *shunt_view_lifetime(int64_t us, char *buf, size_t len)
{
    if (us < 0) {
        snprintf(buf, len, "-");
    } else if (us < 1000000) {
        snprintf(buf, len, "%.1fms", (double)us / 1000.0);
    } else if (us < 60 * INT64_C(1000000)) {
        snprintf(buf, len, "%.2fs", (double)us / 1e6);
    } else {
        int64_t s = us / 1000000;
        if (s < 3600)
            snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
        else
            snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s % 3600) / 60);
    }
    return buf;
}

char *shunt_view_clock(int64_t us, int date, char *buf, size_t len)
{
    /* Floor division, so that times before the epoch still print their own millisecond. */
    int64_t s = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        s--;
        rem += 1000000;
    }
    time_t t = (time_t)s;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "?");
        return buf;
    }
    if (date)
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(rem / 1000));
    else
        snprintf(buf, len, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(rem / 1000));
    return buf;
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at <p> (<avail> bytes readable), 0 when
 * there is none, or -1 when a valid start is cut by the end of the bytes. */
static int utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    int n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte (RFC 3629 4) */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    for (int k = 1; k < n; k++) {
        if ((size_t)k >= avail)
            return -1;
        unsigned char lim_lo = k == 1 ? lo : 0x80, lim_hi = k == 1 ? hi : 0xbf;
        if (p[k] < lim_lo || p[k] > lim_hi)
            return 0;
    }
    return n;
}

/* The character at <p> (<avail> bytes readable): its length in bytes, and in <*esc> whether
 * a terminal must not get it raw: C0 controls, DEL, C1 controls (U+0080 to U+009F, which
 * some terminals obey as ESC sequences: their first byte is escaped, then the second alone
 * is no UTF-8 either) and each byte that is not UTF-8. Valid UTF-8 text is kept. */
static size_t text_char(const unsigned char *p, size_t avail, int *esc)
{
    if (p[0] < 0x80) {
        *esc = p[0] < 0x20 || p[0] == 0x7f;
        return 1;
    }
    int n = utf8_seq(p, avail);
    *esc = n <= 0 || (p[0] == 0xc2 && p[1] < 0xa0);
    return *esc ? 1 : (size_t)n;
}

size_t shunt_view_escape(const char *s, size_t s_len, char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < s_len;) {
        int esc;
        size_t n = text_char(p + i, s_len - i, &esc), cb = esc ? 4 : n;
        if (o + cb + 1 > len)
            break;
        if (esc)
            snprintf(buf + o, len - o, "\\x%02x", p[i]);
        else
            memcpy(buf + o, p + i, n);
        o += cb;
        i += n;
    }
    if (len > 0)
        buf[o] = '\0';
    return o;
}

size_t shunt_view_fit(const char *s, size_t s_len, size_t width, char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    /* First pass: the width of the whole text once escaped. */
    size_t total = 0;
    for (size_t i = 0; i < s_len;) {
        int esc;
        i += text_char(p + i, s_len - i, &esc);
        total += esc ? 4 : 1;
    }
    size_t room = total <= width ? width : (width > 3 ? width - 3 : 0);
    size_t w = 0, o = 0;
    for (size_t i = 0; i < s_len;) {
        int esc;
        size_t n = text_char(p + i, s_len - i, &esc);
        size_t cw = esc ? 4 : 1, cb = esc ? 4 : n;
        if (w + cw > room || o + cb + 4 > len)
            break;
        if (esc)
            snprintf(buf + o, len - o, "\\x%02x", p[i]);
        else
            memcpy(buf + o, p + i, n);
        i += n;
        o += cb;
        w += cw;
    }
    if (total > width) {
        for (size_t k = 0; k < 3 && w < width && o + 1 < len; k++, w++)
            buf[o++] = '.';
    }
    buf[o] = '\0';
    return w;
}

int shunt_view_is_text(const unsigned char *p, size_t len, int cut)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        int n = utf8_seq(p + i, len - i);
        if (n < 0)
            return cut;
        if (n == 0 || (c == 0xc2 && p[i + 1] < 0xa0)) /* C1 controls are not text either */
            return 0;
        i += (size_t)n;
    }
    return 1;
}

/* Writes <p> with bytes outside printable ASCII (tab aside) as \xNN, so that wire bytes
 * never drive the terminal. */
static void put_escaped(FILE *out, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 0x20 && c < 0x7f) || c == '\t')
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
}

void shunt_view_print_text(FILE *out, const unsigned char *p, size_t len, const char *indent)
{
    /* A UTF-8 sequence cut by the end of a preview is left out. */
    size_t end = len;
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = p[len - back];
        if ((c & 0xc0) == 0x80)
            continue;
        if (c >= 0xc0 && utf8_seq(p + len - back, back) < 0)
            end = len - back;
        break;
    }
    size_t start = 0;
    while (start < end) {
        const unsigned char *nl = memchr(p + start, '\n', end - start);
        size_t stop = nl ? (size_t)(nl - p) : end;
        size_t line_end = stop;
        if (line_end > start && p[line_end - 1] == '\r')
            line_end--;
        fputs(indent, out);
        for (size_t i = start; i < line_end; i++) {
            if (p[i] == '\r')
                fputs("\\r", out);
            else
                fputc(p[i], out);
        }
        fputc('\n', out);
        start = nl ? stop + 1 : end;
    }
}

void shunt_view_hexdump(FILE *out, const unsigned char *p, size_t len, const char *indent)
{
    for (size_t off = 0; off < len; off += 16) {
        size_t n = len - off < 16 ? len - off : 16;
        fprintf(out, "%s%08zx ", indent, off);
        for (size_t k = 0; k < 16; k++) {
            if (k == 8)
                fputc(' ', out);
            if (k < n)
                fprintf(out, " %02x", p[off + k]);
            else
                fputs("   ", out);
        }
        fputs("  |", out);
        for (size_t k = 0; k < n; k++) {
            unsigned char c = p[off + k];
            fputc(c >= 0x20 && c < 0x7f ? c : '.', out);
        }
        fputs("|\n", out);
    }
}

/* A line of a head: its bytes with their ending. */
struct line {
    const char *p;
    size_t len; /* bytes, the CRLF or LF that ends it included */
};

/* Splits <len> bytes at <p> into lines. Returns a new array (free()) and its count in *<n>,
 * or NULL when out of memory. */
static struct line *split_lines(const char *p, size_t len, size_t *n)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += p[i] == '\n';
    struct line *v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return NULL;
    size_t k = 0, start = 0;
    while (start < len) {
        const char *nl = memchr(p + start, '\n', len - start);
        size_t stop = nl ? (size_t)(nl - p) + 1 : len;
        v[k].p = p + start;
        v[k].len = stop - start;
        k++;
        start = stop;
    }
    *n = k;
    return v;
}

static int line_eq(const struct line *x, const struct line *y)
{
    return x->len == y->len && memcmp(x->p, y->p, x->len) == 0;
}

/* Writes one line of a head after <mark>. The final empty line of an unchanged head is left
 * out (<last> says the line is the last of its head). */
static void put_line(FILE *out, const char *mark, const struct line *l, int last)
{
    size_t body = l->len;
    int lf = 0;
    if (body >= 2 && l->p[body - 2] == '\r' && l->p[body - 1] == '\n') {
        body -= 2;
    } else if (body >= 1 && l->p[body - 1] == '\n') {
        body -= 1;
        lf = 1;
    }
    if (body == 0 && !lf && mark[0] == ' ') {
        if (!last)
            fputc('\n', out); /* an empty line inside (between interim heads) */
        return;
    }
    fputs(mark, out);
    put_escaped(out, l->p, body);
    if (lf)
        fputs("\\n", out);
    fputc('\n', out);
}

int shunt_view_head_diff(FILE *out, const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t na = 0, nb = 0;
    struct line *la = split_lines(a, a_len, &na);
    struct line *lb = b ? split_lines(b, b_len, &nb) : NULL;
    uint32_t *t = NULL;
    int marked = 0;
    if (la == NULL || (b != NULL && lb == NULL))
        goto oom;
    if (b == NULL) {
        for (size_t i = 0; i < na; i++)
            put_line(out, "  ", &la[i], i + 1 == na);
        free(la);
        return 0;
    }
    /* Common prefix and suffix first: most heads differ in a few lines, and the LCS table
     * is then tiny. */
    size_t pre = 0, suf = 0;
    while (pre < na && pre < nb && line_eq(&la[pre], &lb[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre && line_eq(&la[na - 1 - suf], &lb[nb - 1 - suf]))
        suf++;
    size_t n = na - pre - suf, m = nb - pre - suf;
    for (size_t i = 0; i < pre; i++)
        put_line(out, "  ", &la[i], i + 1 == na);
    /* t[i][j]: the LCS length of a[pre+i..] and b[pre+j..] in the middle part. */
    size_t cells = (n + 1) * (m + 1);
    if (n > 0 && m > 0 && cells <= DIFF_MAX_CELLS) {
        t = calloc(cells, sizeof(*t));
        if (t == NULL)
            goto oom;
        for (size_t i = n; i-- > 0;)
            for (size_t j = m; j-- > 0;) {
                uint32_t *c = &t[i * (m + 1) + j];
                if (line_eq(&la[pre + i], &lb[pre + j]))
                    *c = t[(i + 1) * (m + 1) + j + 1] + 1;
                else {
                    uint32_t down = t[(i + 1) * (m + 1) + j], right = t[i * (m + 1) + j + 1];
                    *c = down >= right ? down : right;
                }
            }
    }
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (t != NULL && i < n && j < m && line_eq(&la[pre + i], &lb[pre + j])) {
            put_line(out, "  ", &la[pre + i], pre + i + 1 == na);
            i++;
            j++;
        } else if (i < n && (j == m || t == NULL ||
                             t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1])) {
            put_line(out, "- ", &la[pre + i], 0);
            i++;
            marked++;
        } else {
            put_line(out, "+ ", &lb[pre + j], 0);
            j++;
            marked++;
        }
    }
    for (size_t k = na - suf; k < na; k++)
        put_line(out, "  ", &la[k], k + 1 == na);
    free(t);
    free(la);
    free(lb);
    return marked;
oom:
    free(t);
    free(la);
    free(lb);
    return SHUNT_ENOMEM;
}

/* ================================================================ output and paging */

/* Where a view writes. On a terminal, output is held in memory until it is known to fit the
 * screen (then it goes to stdout) or not (then a pager gets it, as git does). */
struct out {
    FILE *f;        /* what the view writes to: mem while undecided, then stdout or pager */
    FILE *mem;      /* memory stream while undecided, or NULL */
    char *mem_buf;  /* its bytes */
    size_t mem_len; /* their count */
    size_t counted; /* bytes of mem_buf whose newlines are in lines */
    size_t lines;   /* newlines held so far */
    FILE *pager;    /* popen()'d pager, or NULL */
    int cols;       /* terminal width (or $COLUMNS, or 120 when not a terminal) */
    int rows;       /* terminal height; 0 when not a terminal */
};

static void out_init(struct out *o)
{
    memset(o, 0, sizeof(*o));
    o->f = stdout;
    struct winsize ws;
    if (isatty(STDOUT_FILENO)) {
        o->rows = 24;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
            o->cols = ws.ws_col;
            o->rows = ws.ws_row > 0 ? ws.ws_row : 24;
        }
        o->mem = open_memstream(&o->mem_buf, &o->mem_len);
        if (o->mem != NULL)
            o->f = o->mem;
    }
    if (o->cols == 0) {
        const char *c = getenv("COLUMNS");
        char *end;
        long v = c ? strtol(c, &end, 10) : 0;
        o->cols = (c != NULL && end != c && *end == '\0' && v >= 40 && v <= 10000) ? (int)v : 120;
    }
}

/* Sends what is held to stdout, or to the pager when <page>, and writes directly from then on. */
static void out_decide(struct out *o, int page)
{
    if (o->mem == NULL)
        return;
    fflush(o->mem);
    FILE *to = stdout;
    if (page) {
        const char *pager = getenv("PAGER");
        if (pager == NULL)
            pager = "less";
        if (*pager != '\0' && strcmp(pager, "cat") != 0) {
            /* git's choice: quit when it fits, keep colours, leave the screen as it is. */
            setenv("LESS", "FRX", 0);
            /* Quitting the pager early must end the view quietly, not kill it. */
            signal(SIGPIPE, SIG_IGN);
            fflush(stdout);
            o->pager = popen(pager, "w");
            if (o->pager != NULL)
                to = o->pager;
        }
    }
    fwrite(o->mem_buf, 1, o->mem_len, to);
    fclose(o->mem);
    free(o->mem_buf);
    o->mem = NULL;
    o->mem_buf = NULL;
    o->f = to;
}

/* Called between rows: pages as soon as the output held is taller than the screen. */
static void out_check(struct out *o)
{
    if (o->mem == NULL)
        return;
    fflush(o->mem);
    for (; o->counted < o->mem_len; o->counted++)
        o->lines += o->mem_buf[o->counted] == '\n';
    if (o->lines >= (size_t)o->rows)
        out_decide(o, 1);
}

/* True when writing failed (the pager quit, a closed pipe): the view stops reading. */
static int out_failed(struct out *o)
{
    return ferror(o->f);
}

static void out_close(struct out *o)
{
    out_check(o);
    out_decide(o, 0);
    fflush(o->f);
    if (o->pager != NULL) {
        pclose(o->pager);
        o->pager = NULL;
    }
}

/* ================================================================ the capture */

/* An open capture, read in one transaction (one snapshot, even while it is recorded). */
struct cap {
    sqlite3 *db;
    const char *path;
    json_t *facts; /* the capture table's row, for --json */
    int64_t events_dropped;
    int64_t stopped_us; /* capture.stopped_us; -1 while recording (or when the proxy died) */
    int64_t now_us;     /* the wall clock when the view began */
    int from_proxy;     /* capture.source is 'proxy': a NULL closed_us means still open */
    sqlite3_stmt *tls_rows; /* the tls rows of connection ?1 (tls_rows_json()), or NULL */
};

/* How long a pending exchange that began at <started_us> has waited: until the capture
 * stopped, or until now while it is being recorded. */
static int64_t waited_us(const struct cap *c, int64_t started_us)
{
    int64_t end = c->stopped_us >= 0 ? c->stopped_us : c->now_us;
    /* A capture is untrusted: a start before 1970 is no start, and end - start could
     * overflow (end >= 0 here, so it cannot once start >= 0). */
    return started_us >= 0 && end > started_us ? end - started_us : 0;
}

static int sql_fail(struct cap *c, char *err, size_t err_len)
{
    snprintf(err, err_len, "%s: cannot read the capture: %s", c->path, sqlite3_errmsg(c->db));
    return SHUNT_EPARSE;
}

/* A JSON value of column <i>: null, integer, real, or text (bytes that are not UTF-8 become
 * U+FFFD so that the output stays valid JSON). */
static json_t *col_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return json_null();
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    default:
        break;
    }
    const unsigned char *p = sqlite3_column_text(st, i);
    if (p == NULL)
        return json_null();
    json_t *s = shunt_view_json_text((const char *)p, (size_t)sqlite3_column_bytes(st, i));
    return s ? s : json_null();
}

json_t *shunt_view_json_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    char *fixed = malloc(len * 3 + 1);
    if (fixed == NULL)
        return NULL;
    size_t o = 0;
    for (size_t k = 0; k < len;) {
        int n = p[k] >= 0x80 ? utf8_seq(p + k, len - k) : 1;
        if (n == 1 && p[k] == 0)
            n = 0; /* NUL: not text either (jansson takes it when the rest is UTF-8) */
        if (n <= 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            k++;
        } else {
            memcpy(fixed + o, p + k, (size_t)n);
            o += (size_t)n;
            k += (size_t)n;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

static int64_t col_i64(sqlite3_stmt *st, int i, int64_t if_null)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? if_null : sqlite3_column_int64(st, i);
}

/* Column <i> as text, "" when NULL (valid until the next step). */
static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    const unsigned char *p = sqlite3_column_text(st, i);
    *len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return p ? (const char *)p : "";
}

/* ---------------------------------------------------------------- TLS facts */

/* The columns of the tls table as the views read them (a version-1 capture has a stand-in
 * of the table: no rows). */
#define TLS_COLS                                                                                   \
    "id, conn_id, upstream_id, side, time_us, sni, alpn, version, cipher, cert_subject,"          \
    " cert_issuer, cert_san, cert_sha256, cert_not_before, cert_not_after, handshake_us, error,"  \
    " verify_result, insecure, close_bits"
enum { T_ID, T_CONN, T_UP, T_SIDE, T_TIME, T_SNI, T_ALPN, T_VERSION, T_CIPHER, T_SUBJECT,
       T_ISSUER, T_SAN, T_SHA256, T_NOT_BEFORE, T_NOT_AFTER, T_HANDSHAKE, T_ERROR, T_VERIFY,
       T_INSECURE, T_CLOSE, T_N };

/* The current tls row of <st> (TLS_COLS) as an object keyed by column name. */
static json_t *tls_row_json(sqlite3_stmt *st)
{
    json_t *j = json_object();
    for (int i = 0; j != NULL && i < T_N; i++)
        json_object_set_new(j, sqlite3_column_name(st, i), col_json(st, i));
    return j;
}

/* Every tls row of connection <conn> in id order, as an array; NULL on failure. */
static json_t *tls_rows_json(struct cap *c, int64_t conn)
{
    if (c->tls_rows == NULL &&
        sqlite3_prepare_v2(c->db, "SELECT " TLS_COLS " FROM tls WHERE conn_id = ?1 ORDER BY id",
                           -1, &c->tls_rows, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(c->tls_rows);
    sqlite3_bind_int64(c->tls_rows, 1, conn);
    json_t *a = json_array();
    int rc;
    while (a != NULL && (rc = sqlite3_step(c->tls_rows)) == SQLITE_ROW)
        json_array_append_new(a, tls_row_json(c->tls_rows));
    if (a != NULL && rc != SQLITE_DONE) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* <a> + <b>, saturated: a capture's times may be anything. */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* Writes unix seconds <t> as a UTC date and time. */
static void put_utc(FILE *f, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[64];
    if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        fputs("?", f);
    else
        fputs(buf, f);
}

/* Writes " <label><text>" when column <i> of <st> has text; returns 1 when it did. */
static int put_fact(FILE *f, sqlite3_stmt *st, int i, const char *label)
{
    size_t l;
    const char *p = col_text(st, i, &l);
    if (sqlite3_column_type(st, i) == SQLITE_NULL || l == 0)
        return 0;
    fputs(label, f);
    put_escaped(f, p, l);
    return 1;
}

/* Prints the tls row <st> of one side of an exchange's connections: what was agreed, the
 * certificate, how it ended or why it failed. Every text is a peer's: escaped. */
static void tls_print(FILE *f, sqlite3_stmt *st)
{
    int up = sqlite3_column_int(st, T_SIDE) != 0, n = 0;
    fprintf(f, "TLS with the %s:", up ? "upstream" : "client");
    n += put_fact(f, st, T_VERSION, " ");
    n += put_fact(f, st, T_CIPHER, n ? ", " : " ");
    n += put_fact(f, st, T_ALPN, n ? ", ALPN " : " ALPN ");
    n += put_fact(f, st, T_SNI, up ? (n ? ", SNI sent " : " SNI sent ") : (n ? ", SNI " : " SNI "));
    char ms[32];
    fprintf(f, "%shandshake %s ms\n", n ? "; " : " ",
            shunt_view_ms(col_i64(st, T_HANDSHAKE, -1), 2, ms, sizeof(ms)));
    if (sqlite3_column_type(st, T_SUBJECT) != SQLITE_NULL ||
        sqlite3_column_type(st, T_SHA256) != SQLITE_NULL) {
        fprintf(f, "  certificate%s:", up ? " of the server" : " (shunt's)");
        if (!put_fact(f, st, T_SUBJECT, " "))
            fputs(" ?", f);
        put_fact(f, st, T_ISSUER, ", issued by ");
        fputc('\n', f);
        fputs("    valid ", f);
        put_utc(f, col_i64(st, T_NOT_BEFORE, 0));
        fputs(" to ", f);
        put_utc(f, col_i64(st, T_NOT_AFTER, 0));
        put_fact(f, st, T_SAN, "; ");
        fputc('\n', f);
        if (put_fact(f, st, T_SHA256, "    sha256 "))
            fputc('\n', f);
    }
    if (up) {
        int64_t v = col_i64(st, T_VERIFY, -1);
        if (col_i64(st, T_INSECURE, 0))
            fputs("  verification: off (--insecure-upstream)\n", f);
        else if (v > 0)
            fprintf(f, "  verification: failed (X509_V_ERR %" PRId64 ")\n", v);
        else if (v == 0 && sqlite3_column_type(st, T_ERROR) == SQLITE_NULL)
            fputs("  verification: chain and name verified\n", f);
    }
    if (put_fact(f, st, T_ERROR, "  failed: "))
        fputc('\n', f);
    if (sqlite3_column_type(st, T_CLOSE) != SQLITE_NULL) {
        unsigned b = (unsigned)col_i64(st, T_CLOSE, 0);
        fputs("  ended: ", f);
        if (b & 4)
            fputs("truncated (TCP closed without close_notify)", f);
        else if (b & 3)
            fprintf(f, "close_notify %s", (b & 3) == 3 ? "both ways"
                                          : (b & 1) ? "from the peer"
                                                    : "from shunt only");
        else if (b & 8)
            fputs("no close_notify either way", f);
        else
            fputs("-", f);
        fputc('\n', f);
    }
}

/* Opens <o->path>, starts the read transaction, reads the capture's facts and warns when
 * the capture is incomplete. Returns 0 or an error code with <err> set. */
static int cap_open(struct cap *c, const struct shunt_view_opts *o, char *err, size_t err_len)
{
    static const char facts_sql[] =
        "SELECT shunt_version, command_line, source, source_detail, started_us, stopped_us, "
        "body_limit, events_dropped FROM capture WHERE id = 1";
    static const char *const names[] = {"shunt_version", "command_line", "source",
                                        "source_detail", "started_us",  "stopped_us",
                                        "body_limit",    "events_dropped"};
    memset(c, 0, sizeof(*c));
    c->path = o->path;
    int missing = access(o->path, F_OK) != 0;
    if (shunt_capture_open(o->path, 0, &c->db, err, err_len) != 0) {
        if (missing && !o->path_given) {
            size_t l = strlen(err);
            snprintf(err + l, err_len - l, " (the default capture file; name one: FILE)");
        }
        return SHUNT_EINVAL;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, facts_sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    c->facts = json_object();
    json_t *file = json_string(o->path);
    json_object_set_new(c->facts, "file", file ? file : json_null());
    int rc = sqlite3_step(st);
    c->stopped_us = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (rc == SQLITE_ROW) {
        for (int i = 0; i < 8; i++)
            json_object_set_new(c->facts, names[i], col_json(st, i));
        c->events_dropped = col_i64(st, 7, 0);
        c->stopped_us = col_i64(st, 5, -1);
        size_t sl;
        const char *src = col_text(st, 2, &sl);
        c->from_proxy = sl == 5 && memcmp(src, "proxy", 5) == 0;
    } else if (rc != SQLITE_DONE) {
        goto fail;
    }
    sqlite3_finalize(st);
    json_object_set_new(c->facts, "incomplete", json_boolean(c->events_dropped > 0));
    if (!json_object_get(c->facts, "events_dropped"))
        json_object_set_new(c->facts, "events_dropped", json_integer(0));
    if (c->events_dropped > 0)
        shunt_log_raw("shunt: %s is incomplete: %" PRId64 " events were dropped while recording",
                      o->path, c->events_dropped);
    return 0;
fail:
    sqlite3_finalize(st);
    return sql_fail(c, err, err_len);
}

static void cap_close(struct cap *c)
{
    sqlite3_finalize(c->tls_rows);
    c->tls_rows = NULL;
    if (c->db != NULL)
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(c->db);
    c->db = NULL;
    json_decref(c->facts);
    c->facts = NULL;
}

/* Writes the opening of the --json object: {"capture": {...}, "<key>": */
static void json_open(struct out *o, struct cap *c, const char *key)
{
    fputs("{\"capture\": ", o->f);
    json_dumpf(c->facts, o->f, JSON_COMPACT);
    fprintf(o->f, ",\n \"%s\": ", key);
}

/* Streams the rows of <st> as the JSON array that closes what json_open() began, one row a
 * line, each made by <row> from the capture <c> (NULL: out of memory). Returns the last
 * sqlite3_step() result, or SHUNT_ENOMEM. */
static int json_rows(struct out *out, const struct cap *c, sqlite3_stmt *st,
                     json_t *(*row)(const struct cap *c, sqlite3_stmt *st))
{
    int rc, first = 1;
    fputs("[", out->f);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !out_failed(out)) {
        json_t *j = row(c, st);
        if (j == NULL) {
            rc = SHUNT_ENOMEM;
            break;
        }
        fputs(first ? "\n  " : ",\n  ", out->f);
        json_dumpf(j, out->f, JSON_COMPACT);
        json_decref(j);
        first = 0;
        out_check(out);
    }
    fputs(first ? "]}\n" : "\n ]}\n", out->f);
    return rc;
}

static size_t digits(int64_t v)
{
    size_t n = 1;
    for (; v >= 10; v /= 10)
        n++;
    return n;
}

/* ================================================================ arguments */

static int parse_count(const char *opt, const char *val, int64_t min, int64_t *out, char *err,
                       size_t err_len)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || v < min) {
        snprintf(err, err_len, "%s %s: expected a whole number (%" PRId64 " or more)", opt, val,
                 min);
        return SHUNT_EINVAL;
    }
    *out = v;
    return 0;
}

/* Does the command-line argument <a> read as a filter expression rather than a file name? */
static int reads_as_expr(const char *a)
{
    return a[0] == '~' || a[0] == '!' || a[0] == '(' || a[0] == '\'' || a[0] == '"' ||
           strpbrk(a, " \t\n") != NULL;
}

int shunt_view_args(struct shunt_view_opts *o, int argc, char **argv, unsigned accept, char *err,
                    size_t err_len)
{
    memset(o, 0, sizeof(*o));
    o->path = SHUNT_VIEW_DEFAULT_FILE;
    o->limit = -1;
    const char *pos[2];
    int n_pos = 0, options = 1;
    int max_pos = (accept & (SHUNT_VIEW_ACCEPT_ID | SHUNT_VIEW_ACCEPT_EXPR)) ? 2 : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                options = 0;
                continue;
            }
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
                return 1;
            if (strcmp(a, "--json") == 0) {
                o->json = 1;
                continue;
            }
            if (accept & SHUNT_VIEW_ACCEPT_FILTER) {
                int r = shunt_capture_filter_arg(&o->filter, argc, argv, &i, err, err_len);
                if (r < 0)
                    return r;
                if (r > 0)
                    continue;
            }
            int is_limit = strncmp(a, "--limit", 7) == 0 && (a[7] == '\0' || a[7] == '=');
            int is_offset = strncmp(a, "--offset", 8) == 0 && (a[8] == '\0' || a[8] == '=');
            if ((accept & SHUNT_VIEW_ACCEPT_PAGE) && (is_limit || is_offset)) {
                const char *name = is_limit ? "--limit" : "--offset";
                const char *val = strchr(a, '=');
                if (val != NULL) {
                    val++;
                } else if (i + 1 < argc) {
                    val = argv[++i];
                } else {
                    snprintf(err, err_len, "%s needs a value", name);
                    return SHUNT_EINVAL;
                }
                if (parse_count(name, val, is_limit ? 1 : 0, is_limit ? &o->limit : &o->offset,
                                err, err_len) != 0)
                    return SHUNT_EINVAL;
                continue;
            }
            snprintf(err, err_len, "unknown option '%s' (see --help)", a);
            return SHUNT_EINVAL;
        }
        if (n_pos == max_pos) {
            snprintf(err, err_len, "unexpected argument '%s' (see --help)", a);
            return SHUNT_EINVAL;
        }
        pos[n_pos++] = a;
    }
    if (accept & SHUNT_VIEW_ACCEPT_ID) {
        if (n_pos == 0) {
            snprintf(err, err_len, "which exchange? expected [FILE] ID");
            return SHUNT_EINVAL;
        }
        const char *id = pos[n_pos - 1];
        char *end;
        errno = 0;
        long long v = strtoll(id, &end, 10);
        if (errno != 0 || end == id || *end != '\0' || v <= 0) {
            if (n_pos == 1 && access(id, F_OK) == 0)
                snprintf(err, err_len, "which exchange of %s? expected [FILE] ID", id);
            else
                snprintf(err, err_len, "%s: expected an exchange id (1, 2, ...)", id);
            return SHUNT_EINVAL;
        }
        o->id = v;
        n_pos--;
    }
    const char *filter = NULL;
    if ((accept & SHUNT_VIEW_ACCEPT_EXPR) &&
        (n_pos == 2 || (n_pos == 1 && access(pos[0], F_OK) != 0 && reads_as_expr(pos[0])))) {
        filter = pos[--n_pos];
    }
    if (n_pos == 1) {
        o->path = pos[0];
        o->path_given = 1;
    }
    if (filter != NULL) {
        struct shunt_expr_error e;
        int rc = shunt_expr_compile(filter, &o->expr, &e);
        if (rc == SHUNT_ENOMEM) {
            snprintf(err, err_len, "out of memory");
            return rc;
        }
        if (rc != 0) {
            snprintf(err, err_len, "filter: column %zu: %s", e.column, e.message);
            return SHUNT_EINVAL;
        }
        o->filter.expr = o->expr;
    }
    return 0;
}

void shunt_view_opts_dispose(struct shunt_view_opts *o)
{
    shunt_expr_free(o->expr);
    o->expr = NULL;
    o->filter.expr = NULL;
}

/* ================================================================ sessions */

/* One exchange row of the table, as read. */
struct srow {
    int64_t id, conn, idx, port, status, bytes, dur_us; /* port, status: -1 when unknown */
    int64_t flags;                                       /* exchanges.flags */
    int pending;                                         /* flag P: no response yet */
    int64_t waited_us;                                   /* pending: waited so far */
    char *method, *host, *path;                          /* owned, never NULL; host as
                                                            shown (shunt_view_host) */
    char flags_txt[SHUNT_VIEW_FLAGS_LEN];
};

static char *dup_col(sqlite3_stmt *st, int i)
{
    size_t len;
    const char *p = col_text(st, i, &len);
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* Column <i> as a new string; "-" when it is NULL or empty (a request the parser refused has
 * no method and no path). */
static char *dup_or_dash(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_bytes(st, i) > 0)
        return dup_col(st, i);
    char *s = malloc(2);
    if (s != NULL)
        memcpy(s, "-", 2);
    return s;
}

/* The columns of the sessions query, in order. */
enum { S_ID, S_CONN, S_IDX, S_PORT, S_METHOD, S_HOST, S_PATH, S_STATUS, S_BYTES, S_DUR,
       S_FLAGS, S_ERROR, S_URL, S_STARTED, S_REQ_BYTES };

static int srow_read(const struct cap *c, sqlite3_stmt *st, struct srow *r)
{
    r->id = sqlite3_column_int64(st, S_ID);
    r->conn = sqlite3_column_int64(st, S_CONN);
    r->idx = sqlite3_column_int64(st, S_IDX);
    r->port = col_i64(st, S_PORT, -1);
    r->status = col_i64(st, S_STATUS, -1);
    r->bytes = sqlite3_column_int64(st, S_BYTES);
    r->dur_us = sqlite3_column_int64(st, S_DUR);
    r->flags = sqlite3_column_int64(st, S_FLAGS);
    r->pending = (r->flags & SHUNT_CAPTURE_FLAG_PENDING) != 0;
    r->waited_us = r->pending ? waited_us(c, sqlite3_column_int64(st, S_STARTED)) : 0;
    /* T comes from the flags alone: bodies.truncated sits after the body's bytes, and
     * reading it for every row tripled the time of a full listing; `show` does read it. */
    shunt_view_flags(r->flags, sqlite3_column_type(st, S_ERROR) != SQLITE_NULL, 0, r->flags_txt);
    r->method = dup_or_dash(st, S_METHOD);
    size_t hl, ul;
    const char *h = col_text(st, S_HOST, &hl), *u = col_text(st, S_URL, &ul);
    /* An exchange inside TLS reads apart from plain HTTP at a glance: its scheme before the
     * host (a plain one keeps the bare host, as it always had). */
    int https = ul >= 8 && strncasecmp(u, "https://", 8) == 0;
    r->host = malloc(hl + 24);
    if (r->host != NULL) {
        size_t k = https ? 8 : 0;
        memcpy(r->host, "https://", k);
        shunt_view_host(h, hl, u, ul, r->host + k, hl + 16);
        if (https && strcmp(r->host + k, "-") == 0)
            memmove(r->host, r->host + k, 2);
    }
    /* A CONNECT names no path: its target is the authority (the URL the capture keeps). */
    int connect = r->method && strcmp(r->method, "CONNECT") == 0;
    r->path = dup_or_dash(st, connect && sqlite3_column_bytes(st, S_PATH) == 0 ? S_URL : S_PATH);
    return r->method && r->host && r->path ? 0 : SHUNT_ENOMEM;
}

static void srow_dispose(struct srow *r)
{
    free(r->method);
    free(r->host);
    free(r->path);
    r->method = r->host = r->path = NULL;
}

/* The ms cell: the duration, or for a pending exchange the time waited so far and "+". */
static char *srow_ms(const struct srow *r, char *buf, size_t len)
{
    shunt_view_ms(r->pending ? r->waited_us : r->dur_us, 1, buf, len);
    if (r->pending) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "+");
    }
    return buf;
}

/* Column widths of the sessions table. */
struct swidth {
    size_t id, conn, idx, method, host, path, bytes, ms;
};

static void srow_print(FILE *f, const struct srow *r, const struct swidth *w)
{
    char method[64], host[4 * 60 + 4], path[4 * 1000 + 4], port[16], status[16], ms[32];
    size_t mw = shunt_view_fit(r->method, strlen(r->method), w->method, method, sizeof(method));
    size_t hw = shunt_view_fit(r->host, strlen(r->host), w->host, host, sizeof(host));
    size_t pw = shunt_view_fit(r->path, strlen(r->path), w->path, path, sizeof(path));
    snprintf(port, sizeof(port), r->port < 0 ? "-" : "%" PRId64, r->port);
    if (r->pending)
        snprintf(status, sizeof(status), "wait");
    else
        snprintf(status, sizeof(status), r->status < 0 ? "-" : "%" PRId64, r->status);
    srow_ms(r, ms, sizeof(ms));
    fprintf(f, "%*" PRId64 "  %*" PRId64 "  %*" PRId64 "  %5s  %s%*s  %s%*s  %s%*s  %6s  %*" PRId64
               "  %*s  %s\n",
            (int)w->id, r->id, (int)w->conn, r->conn, (int)w->idx, r->idx, port, method,
            (int)(w->method - mw), "", host, (int)(w->host - hw), "", path, (int)(w->path - pw),
            "", status, (int)w->bytes, r->bytes, (int)w->ms, ms, r->flags_txt);
}

/* The row as JSON, every value in full. */
static json_t *srow_json(sqlite3_stmt *st, const struct srow *r)
{
    json_t *j = json_object();
    size_t ul;
    const char *u = col_text(st, S_URL, &ul);
    int port = shunt_capture_url_port(u, ul, NULL);
    json_object_set_new(j, "id", json_integer(r->id));
    json_object_set_new(j, "conn", json_integer(r->conn));
    json_object_set_new(j, "idx", json_integer(r->idx));
    json_object_set_new(j, "client_port", col_json(st, S_PORT));
    json_object_set_new(j, "method", col_json(st, S_METHOD));
    json_object_set_new(j, "url", col_json(st, S_URL));
    json_object_set_new(j, "host", col_json(st, S_HOST));
    json_object_set_new(j, "port", port > 0 ? json_integer(port) : json_null());
    json_object_set_new(j, "path", col_json(st, S_PATH));
    json_object_set_new(j, "status", col_json(st, S_STATUS));
    json_object_set_new(j, "bytes", json_integer(r->bytes));
    json_object_set_new(j, "req_bytes", col_json(st, S_REQ_BYTES));
    json_object_set_new(j, "started_us", col_json(st, S_STARTED));
    json_object_set_new(j, "duration_us", r->pending ? json_null() : json_integer(r->dur_us));
    json_object_set_new(j, "pending", json_boolean(r->pending));
    json_object_set_new(j, "waiting_us", r->pending ? json_integer(r->waited_us) : json_null());
    json_object_set_new(j, "answered_by_shunt",
                        json_boolean((r->flags & SHUNT_CAPTURE_FLAG_SELF) != 0));
    json_object_set_new(j, "flags", json_string(strcmp(r->flags_txt, "-") ? r->flags_txt : ""));
    json_object_set_new(j, "error", col_json(st, S_ERROR));
    return j;
}

static json_t *srow_to_json(const struct cap *c, sqlite3_stmt *st)
{
    struct srow r;
    json_t *j = srow_read(c, st, &r) ? NULL : srow_json(st, &r);
    srow_dispose(&r);
    return j;
}

/*
 * Turns a large OFFSET over the whole table into a key: when the ids are dense (count equals
 * max - min + 1) row k is id min + k, so the page starts by a rowid seek instead of stepping
 * over k rows of a table whose rows hold whole heads. Counting walks the smallest index, a
 * fraction of the table. Returns the first id to show, or 0 to keep the OFFSET.
 */
static int64_t dense_start(sqlite3 *db, int64_t offset)
{
    const char *q[] = {"SELECT min(id) FROM exchanges", "SELECT max(id) FROM exchanges",
                       "SELECT count(*) FROM exchanges"};
    int64_t v[3] = {0, 0, -1};
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, q[k], -1, &st, NULL) != SQLITE_OK)
            return 0;
        if (sqlite3_step(st) == SQLITE_ROW)
            v[k] = col_i64(st, 0, -1);
        sqlite3_finalize(st);
    }
    /* Ids from the file may be anything: the dense case has them in [1, count]. */
    if (v[2] <= 0 || v[0] < 1 || v[1] < v[0] || v[1] - v[0] != v[2] - 1 || offset >= v[2])
        return 0;
    return v[0] + offset;
}

static int64_t max_of(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = col_i64(st, 0, 0);
    sqlite3_finalize(st);
    return v;
}

int shunt_view_sessions(const struct shunt_view_opts *o, char *err, size_t err_len)
{
    struct cap c;
    struct out out;
    struct srow rows[FIRST_ROWS];
    size_t n_rows = 0;
    sqlite3_stmt *st = NULL;
    int rc = cap_open(&c, o, err, err_len);
    if (rc != 0)
        goto done;
    char where[SHUNT_CAPTURE_FILTER_SQL_MAX], sql[SHUNT_CAPTURE_FILTER_SQL_MAX + 1024];
    int n = shunt_capture_filter_sql(&o->filter, "e", 1, where, sizeof(where));
    if (n < 0) {
        snprintf(err, err_len, "filter too long");
        rc = SHUNT_EINVAL;
        goto done;
    }
    if (shunt_capture_filter_register(c.db, &o->filter) != SQLITE_OK) {
        rc = sql_fail(&c, err, err_len);
        goto done;
    }
    int64_t offset = o->offset, start = 0;
    if (!shunt_capture_filter_any(&o->filter) && offset > 1000) {
        start = dense_start(c.db, offset);
        if (start > 0)
            offset = 0;
    }
    /* The flags say everything the columns show: no probe of changes or bodies per row. */
    snprintf(sql, sizeof(sql),
             "SELECT e.id, e.conn_id, e.idx, c.client_port, e.method, e.host, e.path, e.status, "
             "e.resp_bytes, e.duration_us, e.flags, e.error, e.url, e.started_us, e.req_bytes "
             "FROM exchanges e LEFT JOIN connections c ON c.id = e.conn_id "
             "WHERE %s AND e.id >= ?%d ORDER BY e.id LIMIT ?%d OFFSET ?%d",
             where, n + 1, n + 2, n + 3);
    if (sqlite3_prepare_v2(c.db, sql, -1, &st, NULL) != SQLITE_OK ||
        shunt_capture_filter_bind(&o->filter, st, 1) != SQLITE_OK ||
        sqlite3_bind_int64(st, n + 1, start) != SQLITE_OK ||
        sqlite3_bind_int64(st, n + 2, o->limit) != SQLITE_OK ||
        sqlite3_bind_int64(st, n + 3, offset) != SQLITE_OK) {
        rc = sql_fail(&c, err, err_len);
        goto done;
    }
    out_init(&out);
    if (o->json) {
        json_open(&out, &c, "exchanges");
        rc = json_rows(&out, &c, st, srow_to_json);
    } else {
        /* The first rows set the column widths; later rows stream in them. */
        struct swidth w = {digits(max_of(c.db, "SELECT max(id) FROM exchanges")),
                           digits(max_of(c.db, "SELECT max(conn_id) FROM exchanges")),
                           3, 6, 4, 4, 5, 5};
        if (w.id < 2)
            w.id = 2;
        if (w.conn < 4)
            w.conn = 4;
        size_t path_max = 4;
        while (n_rows < FIRST_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct srow *r = &rows[n_rows++];
            if (srow_read(&c, st, r) != 0) {
                rc = SHUNT_ENOMEM;
                break;
            }
            char ms[32];
            size_t l;
            if (digits(r->idx) > w.idx)
                w.idx = digits(r->idx);
            if ((l = strlen(r->method)) > w.method)
                w.method = l > 10 ? 10 : l;
            if ((l = strlen(r->host)) > w.host)
                w.host = l > 46 ? 46 : l; /* 40 for the name, 6 for ":65535" */
            if ((l = strlen(r->path)) > path_max)
                path_max = l;
            if (digits(r->bytes) > w.bytes)
                w.bytes = digits(r->bytes);
            if ((l = strlen(srow_ms(r, ms, sizeof(ms)))) > w.ms)
                w.ms = l;
        }
        if (rc == SHUNT_ENOMEM)
            goto done_out;
        /* The path takes what the terminal has left, at least 12 columns. */
        size_t fixed = w.id + w.conn + w.idx + 5 + w.method + w.host + 6 + w.bytes + w.ms + 5 +
                       10 * 2;
        w.path = (size_t)out.cols > fixed + 12 ? (size_t)out.cols - fixed : 12;
        if (w.path > path_max)
            w.path = path_max;
        if (w.path > 1000)
            w.path = 1000;
        fprintf(out.f, "%*s  %*s  %*s  %5s  %-*s  %-*s  %-*s  %6s  %*s  %*s  %s\n", (int)w.id,
                "id", (int)w.conn, "conn", (int)w.idx, "idx", "cport", (int)w.method, "method",
                (int)w.host, "host", (int)w.path, "path", "status", (int)w.bytes, "bytes",
                (int)w.ms, "ms", "flags");
        for (size_t k = 0; k < n_rows; k++)
            srow_print(out.f, &rows[k], &w);
        out_check(&out);
        if (n_rows == FIRST_ROWS) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW && !out_failed(&out)) {
                struct srow r;
                int bad = srow_read(&c, st, &r);
                if (!bad)
                    srow_print(out.f, &r, &w);
                srow_dispose(&r);
                if (bad) {
                    rc = SHUNT_ENOMEM;
                    break;
                }
                out_check(&out);
            }
        }
    }
done_out:
    out_close(&out);
    if (rc == SHUNT_ENOMEM) {
        snprintf(err, err_len, "out of memory");
    } else if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        rc = 0; /* SQLITE_ROW: stopped early because the output went away */
    } else {
        rc = sql_fail(&c, err, err_len);
    }
done:
    for (size_t k = 0; k < n_rows; k++)
        srow_dispose(&rows[k]);
    sqlite3_finalize(st);
    cap_close(&c);
    return rc;
}

/* ================================================================ show */

enum { X_ID, X_CONN, X_IDX, X_UP, X_REUSED, X_STARTED, X_METHOD, X_URL, X_HOST, X_PATH, X_VERSION,
       X_STATUS, X_REQ_HEAD, X_REQ_SENT, X_RESP_HEAD, X_RESP_SENT, X_INTERIM, X_REQ_BODY,
       X_RESP_BODY, X_REQ_BYTES, X_RESP_BYTES, X_BLOCKED, X_DNS, X_CONNECT, X_SEND, X_WAIT,
       X_RECEIVE, X_DURATION, X_ERROR, X_FLAGS, X_CPORT, X_UPORT, X_CADDR, X_UADDR, X_URPORT,
       X_SSL, X_N };

static const char *const x_names[X_N] = {
    "id", "conn", "idx", "upstream_id", "upstream_reused", "started_us", "method", "url", "host",
    "path", "http_version", "status", "req_head", "req_head_sent", "resp_head", "resp_head_sent",
    "resp_interim", "req_body_size", "resp_body_size", "req_bytes", "resp_bytes", "t_blocked",
    "t_dns", "t_connect", "t_send", "t_wait", "t_receive", "duration_us", "error", "flags",
    "client_port", "upstream_local_port", "client_addr", "upstream_addr", "upstream_port",
    "t_ssl"};

/* A body of the exchange as kept by the capture. */
struct body {
    int present;        /* a bodies row exists */
    unsigned char *data; /* its first bytes (all of them for --json), owned */
    size_t len;         /* bytes in data */
    int64_t kept;       /* bytes the capture kept */
    int truncated;      /* bodies.truncated */
};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns a new JSON string of <p> in base64 (RFC 4648 4), or NULL. */
static json_t *base64_json(const unsigned char *p, size_t len)
{
    size_t olen = (len + 2) / 3 * 4;
    char *s = malloc(olen + 1);
    if (s == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        s[o++] = b64[(v >> 18) & 63];
        s[o++] = b64[(v >> 12) & 63];
        s[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        s[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    json_t *j = json_stringn(s, o);
    free(s);
    return j;
}

/* Sets <key> in <obj> to the bytes as a string when they are text, otherwise sets
 * "<key>_base64"; null when <p> is NULL. */
static void set_bytes(json_t *obj, const char *key, const void *p, size_t len)
{
    if (p == NULL) {
        json_object_set_new(obj, key, json_null());
        return;
    }
    json_t *s = shunt_view_is_text(p, len, 0) ? json_stringn(p, len) : NULL;
    if (s != NULL) {
        json_object_set_new(obj, key, s);
        return;
    }
    char k[64];
    snprintf(k, sizeof(k), "%s_base64", key);
    json_object_set_new(obj, k, base64_json(p, len));
}

static void body_print(FILE *f, const char *which, const struct body *b, int64_t size)
{
    if (!b->present) {
        if (size == 0)
            fprintf(f, "%s body: none\n", which);
        else
            fprintf(f, "%s body: %" PRId64 " bytes, not kept by the capture\n", which, size);
        return;
    }
    int64_t whole = size > b->kept ? size : b->kept;
    int text = shunt_view_is_text(b->data, b->len, (int64_t)b->len < b->kept);
    fprintf(f, "%s body: %" PRId64 " bytes, %s:\n", which, whole, text ? "text" : "binary");
    if (text)
        shunt_view_print_text(f, b->data, b->len, "  ");
    else
        shunt_view_hexdump(f, b->data, b->len, "  ");
    int64_t more = whole - (int64_t)b->len;
    if (more > 0 && b->truncated)
        fprintf(f, "  ... %" PRId64 " more bytes (truncated: the capture kept the first %" PRId64
                   ")\n",
                more, b->kept);
    else if (more > 0)
        fprintf(f, "  ... %" PRId64 " more bytes\n", more);
}

static json_t *body_json(const struct body *b, int64_t size)
{
    if (!b->present)
        return json_null();
    json_t *j = json_object();
    json_object_set_new(j, "size", json_integer(size));
    json_object_set_new(j, "kept", json_integer(b->kept));
    json_object_set_new(j, "truncated", json_boolean(b->truncated));
    set_bytes(j, "data", b->data, b->len);
    return j;
}

/* The reason phrase in the status line at the start of <head>. */
static void reason_of(const char *head, size_t len, char *buf, size_t buf_len)
{
    buf[0] = '\0';
    const char *eol = memchr(head, '\n', len);
    size_t l = eol ? (size_t)(eol - head) : len;
    const char *sp = memchr(head, ' ', l);
    if (sp == NULL)
        return;
    const char *sp2 = memchr(sp + 1, ' ', l - (size_t)(sp + 1 - head));
    if (sp2 == NULL)
        return;
    size_t rl = l - (size_t)(sp2 + 1 - head);
    if (rl > 0 && sp2[1 + rl - 1] == '\r')
        rl--;
    shunt_view_fit(sp2 + 1, rl, 40, buf, buf_len);
}

/* ---------------------------------------------------------------- what happened to it */

/* Why shunt answered an exchange itself, as far as the capture tells. */
enum why {
    WHY_NONE,        /* a server answered, or nobody yet */
    WHY_RULE,        /* a rule's "respond N without the server" (--respond, --map-local, Lua) */
    WHY_PARSER,      /* the strict parser refused the request (head or body) */
    WHY_REFUSED,     /* shunt would not forward it (its target, a forbidden upstream) */
    WHY_UNREACHABLE, /* the upstream could not be resolved or connected to */
    WHY_CONNECT,     /* a CONNECT, which the proxy answers itself before the tunnel */
    WHY_OTHER,       /* anything else: the error says what */
};

static const char *const why_names[] = {NULL,     "rule",        "parser", "refused",
                                        "unreachable", "connect", "other"};

/*
 * The errors of shunt's own answers that say the request was not forwarded, by how they
 * begin: the texts of answer() in src/proxy/session.c without their "shunt: ". The capture
 * has no column for "not sent"; these texts are shunt's own and test_views_truth.py pins
 * them against real captures. <sent> is what the error tells: 0 not sent upstream, -1 the
 * error does not say.
 */
static const struct {
    const char *prefix;
    enum why why;
    int sent;
} answer_errors[] = {
    {"bad request body: ", WHY_PARSER, -1},
    {"cannot connect to ", WHY_UNREACHABLE, 0},
    {"cannot resolve ", WHY_UNREACHABLE, 0},
    {"connecting to ", WHY_UNREACHABLE, 0}, /* "... timed out after N s" */
    {"not forwarded to ", WHY_REFUSED, 0},
    {"CONNECT needs ", WHY_REFUSED, 0},
    {"cannot read the host and port ", WHY_REFUSED, 0},
    {"https:// in a request line ", WHY_REFUSED, 0},
    {"this is a forward proxy", WHY_REFUSED, 0},
    {"the request target ", WHY_REFUSED, 0},
    {"the request head did not arrive ", WHY_OTHER, 0},
};

/* What happened to an exchange's request and who answered it. */
struct fate {
    int pending;           /* flag P: no response yet */
    int64_t waited_us;     /* pending: waited so far (until the capture stopped, or now) */
    int self;              /* no server response reached the client: shunt answered */
    enum why why;          /* self: why */
    const char *rule;      /* WHY_RULE: the rule's name (changes.by), borrowed */
    const char *rule_what; /* WHY_RULE: "respond N without the server", borrowed */
    int sent;              /* the request went upstream: 1 yes, 0 no, -1 the capture cannot say */
    int quotes_error;      /* the "answered by shunt" line carries the error text */
};

static int starts_with(const char *s, size_t len, const char *prefix)
{
    size_t l = strlen(prefix);
    return len >= l && memcmp(s, prefix, l) == 0;
}

/*
 * Works out the fate of the exchange in row <st> (the show query) with its <changes>, in a
 * capture <c>. Shunt's own answer has flag S (64). Captures of older shunts have no such
 * flag: there a rule's "respond ... without the server", no upstream with a status, or a
 * CONNECT's 2xx tell the same, for captures that a proxy made (not imports).
 */
static void fate_of(const struct cap *c, sqlite3_stmt *st, json_t *changes, struct fate *fa)
{
    memset(fa, 0, sizeof(*fa));
    int64_t flags = col_i64(st, X_FLAGS, 0);
    int has_status = sqlite3_column_type(st, X_STATUS) != SQLITE_NULL;
    int status = sqlite3_column_int(st, X_STATUS);
    int has_up = sqlite3_column_type(st, X_UP) != SQLITE_NULL;
    int has_sent_head = sqlite3_column_type(st, X_REQ_SENT) != SQLITE_NULL;
    size_t ml, el;
    const char *method = col_text(st, X_METHOD, &ml);
    const char *error = col_text(st, X_ERROR, &el);
    int connect = ml == 7 && memcmp(method, "CONNECT", 7) == 0;
    fa->pending = (flags & SHUNT_CAPTURE_FLAG_PENDING) != 0;
    if (fa->pending)
        fa->waited_us = waited_us(c, col_i64(st, X_STARTED, 0));
    size_t k;
    json_t *one;
    json_array_foreach(changes, k, one)
    {
        const char *what = json_string_value(json_object_get(one, "what"));
        const char *in = json_string_value(json_object_get(one, "in"));
        if (what && in && strcmp(in, "request") == 0 && strncmp(what, "respond ", 8) == 0 &&
            strstr(what, " without the server") != NULL) {
            fa->rule = json_string_value(json_object_get(one, "by"));
            fa->rule_what = what;
        }
    }
    fa->self = (flags & SHUNT_CAPTURE_FLAG_SELF) != 0 ||
               (c->from_proxy && !fa->pending &&
                (fa->rule != NULL || (!has_up && has_status) ||
                 (connect && status >= 200 && status < 300)));
    fa->sent = has_sent_head || has_up ? 1 : -1;
    if (!fa->self)
        return;
    fa->why = WHY_OTHER;
    int unsent = 0; /* the reason says the request was not sent upstream */
    if (fa->rule != NULL) {
        fa->why = WHY_RULE;
        unsent = 1;
    } else if (connect && status >= 200 && status < 300) {
        fa->why = WHY_CONNECT;
        unsent = 1;
    } else if (el > 0 && starts_with(error, el, "bad request: ") && ml == 0) {
        /* no method: the head itself could not be read */
        fa->why = WHY_PARSER;
        unsent = 1;
        fa->quotes_error = 1;
    } else {
        for (size_t i = 0; el > 0 && i < sizeof(answer_errors) / sizeof(answer_errors[0]);
             i++) {
            if (!starts_with(error, el, answer_errors[i].prefix))
                continue;
            fa->why = answer_errors[i].why;
            unsent = answer_errors[i].sent == 0;
            break;
        }
        fa->quotes_error = el > 0;
    }
    if (!unsent)
        return;
    /* What the capture records wins over what the reason implies (only a hostile capture
     * has both): a head as sent went out, and so did a request with an upstream, except a
     * rule's answer, where an older capture named the connection's upstream (the header
     * line leaves it out), and a CONNECT, whose upstream is its tunnel: that one is not
     * said either way. */
    if (has_sent_head || (has_up && fa->why != WHY_RULE && fa->why != WHY_CONNECT))
        fa->sent = 1;
    else if (has_up && fa->why == WHY_CONNECT)
        fa->sent = -1;
    else
        fa->sent = 0;
}

/* Writes the line that says why shunt answered the exchange itself. */
static void fate_print(FILE *f, sqlite3_stmt *st, const struct fate *fa)
{
    size_t el, ul;
    const char *error = col_text(st, X_ERROR, &el), *url = col_text(st, X_URL, &ul);
    fputs("answered by shunt: ", f);
    switch (fa->why) {
    case WHY_RULE:
        fputs("the rule \"", f);
        put_escaped(f, fa->rule ? fa->rule : "?", strlen(fa->rule ? fa->rule : "?"));
        fputs("\" (", f);
        put_escaped(f, fa->rule_what, strlen(fa->rule_what));
        fputs(")", f);
        break;
    case WHY_CONNECT:
        fputs("it connected to ", f);
        put_escaped(f, ul ? url : "?", ul ? ul : 1);
        fputs(" and answered the CONNECT itself, as a proxy does", f);
        if (col_i64(st, X_FLAGS, 0) & SHUNT_CAPTURE_FLAG_TUNNEL)
            fputs("; the connection then became a tunnel", f);
        break;
    case WHY_PARSER: {
        /* "bad request: REASON (NAME) at byte N" reads as the parser's refusal */
        size_t skip = starts_with(error, el, "bad request: ") ? 13 : 0;
        fputs(skip ? "its parser refused the request: " : "its parser refused the request body: ",
              f);
        if (!skip && starts_with(error, el, "bad request body: "))
            skip = 18;
        put_escaped(f, error + skip, el - skip);
        break;
    }
    case WHY_UNREACHABLE:
        fputs("the upstream was unreachable: ", f);
        put_escaped(f, error, el);
        break;
    case WHY_REFUSED:
        fputs("it did not forward the request: ", f);
        put_escaped(f, error, el);
        break;
    default:
        if (el > 0)
            put_escaped(f, error, el);
        else
            fputs("no server response reached the client", f);
        break;
    }
    if (fa->sent == 0 && fa->why != WHY_CONNECT)
        fputs("; the request was not sent upstream", f);
    fputc('\n', f);
}

/* The reason a request that was not sent upstream gives in its head's title. */
static const char *not_sent_why(const struct fate *fa)
{
    switch (fa->why) {
    case WHY_RULE:
        return "a rule answered it";
    case WHY_PARSER:
        return "shunt's parser refused it";
    case WHY_REFUSED:
        return "shunt would not forward it";
    case WHY_UNREACHABLE:
        return "the upstream was unreachable";
    case WHY_CONNECT:
        return "a CONNECT is answered by the proxy";
    default:
        return "shunt answered it";
    }
}

static json_t *fate_json(sqlite3_stmt *st, const struct fate *fa)
{
    if (!fa->self)
        return json_null();
    json_t *j = json_object();
    json_object_set_new(j, "why", json_string(why_names[fa->why]));
    json_object_set_new(j, "rule", fa->rule ? json_string(fa->rule) : json_null());
    json_object_set_new(j, "rule_change", fa->rule_what ? json_string(fa->rule_what) : json_null());
    json_object_set_new(j, "error", col_json(st, X_ERROR));
    return j;
}

/* ---------------------------------------------------------------- show */

static void request_head_section(FILE *f, sqlite3_stmt *st, const struct fate *fa, int *oom)
{
    const void *r = sqlite3_column_blob(st, X_REQ_HEAD);
    size_t rl = (size_t)sqlite3_column_bytes(st, X_REQ_HEAD);
    const void *s = sqlite3_column_blob(st, X_REQ_SENT);
    size_t sl = (size_t)sqlite3_column_bytes(st, X_REQ_SENT);
    int has_sent = sqlite3_column_type(st, X_REQ_SENT) != SQLITE_NULL;
    if (sqlite3_column_type(st, X_REQ_HEAD) == SQLITE_NULL) {
        fprintf(f, "\nrequest head: none\n");
        return;
    }
    if (fa->pending && fa->sent != 1)
        fprintf(f, "\nrequest head (as received; not sent upstream yet):\n");
    else if (fa->sent == 0 && has_sent)
        fprintf(f, "\nrequest head (as received; \"- \" removed, \"+ \" added by shunt or a rule; "
                   "not sent upstream: %s):\n", not_sent_why(fa));
    else if (fa->sent == 0)
        fprintf(f, "\nrequest head (as received; not sent upstream: %s):\n", not_sent_why(fa));
    else if (has_sent)
        fprintf(f, "\nrequest head (as received; \"- \" removed, \"+ \" added when sent "
                   "upstream):\n");
    else if (fa->sent == 1)
        fprintf(f, "\nrequest head (as received, sent upstream unchanged):\n");
    else
        fprintf(f, "\nrequest head (as received):\n");
    if (shunt_view_head_diff(f, r ? r : "", rl, has_sent ? (s ? s : "") : NULL, sl) < 0)
        *oom = 1;
}

/* The response head the client received: the head as sent to it when the capture has one
 * (shunt's own answers have nothing else), else the head as received (sent unchanged). */
static void response_head_section(FILE *f, const struct cap *c, sqlite3_stmt *st,
                                  const struct fate *fa, int *oom)
{
    const void *r = sqlite3_column_blob(st, X_RESP_HEAD);
    size_t rl = (size_t)sqlite3_column_bytes(st, X_RESP_HEAD);
    const void *s = sqlite3_column_blob(st, X_RESP_SENT);
    size_t sl = (size_t)sqlite3_column_bytes(st, X_RESP_SENT);
    int has_recv = sqlite3_column_type(st, X_RESP_HEAD) != SQLITE_NULL;
    int has_sent = sqlite3_column_type(st, X_RESP_SENT) != SQLITE_NULL;
    if (fa->pending) {
        char since[64], waited[32];
        fprintf(f, "\nresponse: none yet; waiting since %s (%s%s)\n",
                shunt_view_clock(col_i64(st, X_STARTED, 0), 1, since, sizeof(since)),
                shunt_view_lifetime(fa->waited_us, waited, sizeof(waited)),
                c->stopped_us >= 0 ? " when the capture stopped" : " so far");
        return;
    }
    if (!has_recv && has_sent) {
        fprintf(f, "\nresponse head (sent by shunt; no server sent one):\n");
        if (shunt_view_head_diff(f, s ? s : "", sl, NULL, 0) < 0)
            *oom = 1;
        return;
    }
    if (!has_recv) {
        if (sqlite3_column_type(st, X_STATUS) == SQLITE_NULL)
            fprintf(f, "\nresponse head: none (the client received no response)\n");
        else
            fprintf(f, "\nresponse head: not in the capture (%s sent %d)\n",
                    fa->self ? "shunt" : "the client was", sqlite3_column_int(st, X_STATUS));
        return;
    }
    if (!has_sent)
        fprintf(f, "\nresponse head (as received, sent to the client unchanged):\n");
    else
        fprintf(f, "\nresponse head (as received; \"- \" removed, \"+ \" added when sent to the "
                   "client):\n");
    if (shunt_view_head_diff(f, r ? r : "", rl, has_sent ? (s ? s : "") : NULL, sl) < 0)
        *oom = 1;
}

/* Writes the changes of <changes> made by <routine> ("proxy": the rewrites every forward
 * proxy makes) or by anyone else, under <title>. */
static void changes_print(FILE *f, json_t *changes, int routine, const char *title)
{
    size_t k;
    json_t *one;
    int first = 1;
    json_array_foreach(changes, k, one)
    {
        if (json_is_true(json_object_get(one, "routine")) != routine)
            continue;
        if (first)
            fprintf(f, "\n%s:\n", title);
        first = 0;
        const char *what = json_string_value(json_object_get(one, "what"));
        const char *by = json_string_value(json_object_get(one, "by"));
        fprintf(f, "  %-8s  ", json_string_value(json_object_get(one, "in")));
        put_escaped(f, what ? what : "?", strlen(what ? what : "?"));
        if (!routine) {
            fputs("  (by ", f);
            put_escaped(f, by ? by : "?", strlen(by ? by : "?"));
            fputc(')', f);
        }
        fputc('\n', f);
    }
}

int shunt_view_show(const struct shunt_view_opts *o, char *err, size_t err_len)
{
    static const char ex_sql[] =
        "SELECT e.id, e.conn_id, e.idx, e.upstream_id, e.upstream_reused, e.started_us, "
        "e.method, e.url, e.host, e.path, e.http_version, e.status, e.req_head, e.req_head_sent, "
        "e.resp_head, e.resp_head_sent, e.resp_interim, e.req_body_size, e.resp_body_size, "
        "e.req_bytes, e.resp_bytes, e.t_blocked, e.t_dns, e.t_connect, e.t_send, e.t_wait, "
        "e.t_receive, e.duration_us, e.error, e.flags, c.client_port, u.local_port, "
        "c.client_addr, u.addr, u.remote_port, e.t_ssl "
        "FROM exchanges e LEFT JOIN connections c ON c.id = e.conn_id "
        "LEFT JOIN upstreams u ON u.id = e.upstream_id WHERE e.id = ?1";
    static const char changes_sql[] =
        "SELECT in_request, what, by FROM changes WHERE exchange_id = ?1 ORDER BY id";
    static const char bodies_sql[] =
        "SELECT direction, substr(data, 1, ?2), length(data), truncated FROM bodies "
        "WHERE exchange_id = ?1";
    /* The TLS of the exchange's client connection, and of its upstream: the upstream's row,
     * or when shunt answered after an upstream handshake failed (no upstream then), the
     * last failed one of the connection until the exchange ended. */
    static const char tls_sql[] =
        "SELECT * FROM (SELECT " TLS_COLS " FROM tls WHERE conn_id = ?1 AND side = 0"
        " ORDER BY id LIMIT 1) UNION ALL SELECT * FROM (SELECT " TLS_COLS " FROM tls"
        " WHERE conn_id = ?1 AND side = 1 AND (upstream_id = ?2 OR (?2 IS NULL AND ?3"
        " AND error IS NOT NULL AND time_us <= ?4)) ORDER BY id DESC LIMIT 1)";
    struct cap c;
    struct out out;
    struct body bodies[2];
    memset(bodies, 0, sizeof(bodies));
    sqlite3_stmt *st = NULL, *ch = NULL, *bo = NULL, *tl = NULL;
    int oom = 0, truncated = 0, n_changes = 0, n_routine = 0;
    json_t *tls_j[2] = {NULL, NULL};
    json_t *changes = NULL;
    int rc = cap_open(&c, o, err, err_len);
    if (rc != 0)
        goto done;
    if (sqlite3_prepare_v2(c.db, ex_sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c.db, changes_sql, -1, &ch, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c.db, bodies_sql, -1, &bo, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, o->id) != SQLITE_OK ||
        sqlite3_bind_int64(ch, 1, o->id) != SQLITE_OK ||
        sqlite3_bind_int64(bo, 1, o->id) != SQLITE_OK ||
        sqlite3_bind_int64(bo, 2, o->json ? INT32_MAX : SHUNT_VIEW_PREVIEW_BYTES) != SQLITE_OK)
        goto sql_error;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        snprintf(err, err_len, "no exchange %" PRId64 " in %s", o->id, o->path);
        rc = SHUNT_EINVAL;
        goto done;
    }
    if (rc != SQLITE_ROW)
        goto sql_error;
    /* Changes and bodies first: the flags and the fate need them. */
    changes = json_array();
    while ((rc = sqlite3_step(ch)) == SQLITE_ROW) {
        json_t *one = json_object();
        size_t bl;
        const char *by = col_text(ch, 2, &bl);
        /* "proxy": the rewrites every forward proxy makes (origin-form, Proxy-Connection,
         * Proxy-Authorization, Host), apart from what a rule, an option or a repair did. */
        int routine = bl == 5 && memcmp(by, "proxy", 5) == 0;
        json_object_set_new(one, "in", json_string(sqlite3_column_int(ch, 0) ? "request"
                                                                               : "response"));
        json_object_set_new(one, "what", col_json(ch, 1));
        json_object_set_new(one, "by", col_json(ch, 2));
        json_object_set_new(one, "routine", json_boolean(routine));
        json_array_append_new(changes, one);
        n_routine += routine;
        n_changes += !routine;
    }
    if (rc != SQLITE_DONE)
        goto sql_error;
    while ((rc = sqlite3_step(bo)) == SQLITE_ROW) {
        int dir = sqlite3_column_int(bo, 0);
        if (dir != 0 && dir != 1)
            continue;
        struct body *b = &bodies[dir];
        size_t len = (size_t)sqlite3_column_bytes(bo, 1);
        const void *p = sqlite3_column_blob(bo, 1);
        free(b->data);
        b->data = malloc(len + 1);
        if (b->data == NULL) {
            oom = 1;
            break;
        }
        if (len > 0)
            memcpy(b->data, p, len);
        b->len = len;
        b->present = 1;
        b->kept = sqlite3_column_int64(bo, 2);
        b->truncated = sqlite3_column_int(bo, 3) != 0;
        truncated |= b->truncated;
    }
    if (!oom && rc != SQLITE_DONE)
        goto sql_error;
    size_t el0;
    const char *err0 = col_text(st, X_ERROR, &el0);
    if (sqlite3_prepare_v2(c.db, tls_sql, -1, &tl, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(tl, 1, col_i64(st, X_CONN, 0)) != SQLITE_OK ||
        (sqlite3_column_type(st, X_UP) == SQLITE_NULL
             ? sqlite3_bind_null(tl, 2)
             : sqlite3_bind_int64(tl, 2, col_i64(st, X_UP, 0))) != SQLITE_OK ||
        sqlite3_bind_int(tl, 3, starts_with(err0, el0, "TLS with the upstream")) != SQLITE_OK ||
        sqlite3_bind_int64(tl, 4, sat_add(col_i64(st, X_STARTED, 0),
                                          col_i64(st, X_DURATION, 0))) != SQLITE_OK)
        goto sql_error;
    while ((rc = sqlite3_step(tl)) == SQLITE_ROW) {
        int side = sqlite3_column_int(tl, T_SIDE) != 0;
        if (tls_j[side] == NULL)
            tls_j[side] = tls_row_json(tl);
    }
    if (rc != SQLITE_DONE)
        goto sql_error;
    char flags[SHUNT_VIEW_FLAGS_LEN];
    shunt_view_flags(sqlite3_column_int64(st, X_FLAGS),
                     sqlite3_column_type(st, X_ERROR) != SQLITE_NULL, truncated, flags);
    struct fate fa;
    fate_of(&c, st, changes, &fa);
    size_t ul;
    const char *url = col_text(st, X_URL, &ul);
    out_init(&out);
    FILE *f = out.f;
    if (o->json) {
        json_t *x = json_object();
        for (int i = 0; i < X_N; i++) {
            if (i == X_REQ_HEAD || i == X_REQ_SENT || i == X_RESP_HEAD || i == X_RESP_SENT ||
                i == X_INTERIM) {
                set_bytes(x, x_names[i],
                          sqlite3_column_type(st, i) == SQLITE_NULL ? NULL
                          : sqlite3_column_blob(st, i) ? sqlite3_column_blob(st, i)
                                                       : "",
                          (size_t)sqlite3_column_bytes(st, i));
            } else if (i == X_REUSED) {
                json_object_set_new(x, x_names[i],
                                    sqlite3_column_type(st, i) == SQLITE_NULL
                                        ? json_null()
                                        : json_boolean(sqlite3_column_int(st, i)));
            } else if (i == X_FLAGS) {
                json_object_set_new(x, "flags", json_string(strcmp(flags, "-") ? flags : ""));
                json_object_set_new(x, "flags_bits", col_json(st, i));
            } else if (i == X_DURATION && fa.pending) {
                json_object_set_new(x, x_names[i], json_null()); /* not ended: no duration */
            } else {
                json_object_set_new(x, x_names[i], col_json(st, i));
            }
        }
        int port = shunt_capture_url_port(url, ul, NULL);
        json_object_set_new(x, "port", port > 0 ? json_integer(port) : json_null());
        json_object_set_new(x, "pending", json_boolean(fa.pending));
        json_object_set_new(x, "waiting_us", fa.pending ? json_integer(fa.waited_us)
                                                        : json_null());
        json_object_set_new(x, "answered_by_shunt", json_boolean(fa.self));
        json_object_set_new(x, "shunt_answer", fate_json(st, &fa));
        json_object_set_new(x, "sent_upstream", fa.sent < 0 ? json_null()
                                                            : json_boolean(fa.sent));
        json_object_set_new(x, "changes", json_incref(changes));
        json_object_set_new(x, "tls", json_pack("{s:O?,s:O?}", "client", tls_j[0], "upstream",
                                                tls_j[1]));
        json_object_set_new(x, "req_body", body_json(&bodies[0], col_i64(st, X_REQ_BODY, 0)));
        json_object_set_new(x, "resp_body", body_json(&bodies[1], col_i64(st, X_RESP_BODY, 0)));
        json_open(&out, &c, "exchange");
        json_dumpf(x, out.f, JSON_INDENT(2));
        fputs("}\n", out.f);
        json_decref(x);
        out_close(&out);
        rc = 0;
        goto done;
    }
    /* Summary: what, where it went, when, how long. */
    size_t ml;
    const char *method = col_text(st, X_METHOD, &ml);
    char reason[200] = "";
    int resp_col = sqlite3_column_type(st, X_RESP_SENT) != SQLITE_NULL ? X_RESP_SENT : X_RESP_HEAD;
    if (sqlite3_column_type(st, resp_col) != SQLITE_NULL)
        reason_of(sqlite3_column_blob(st, resp_col), (size_t)sqlite3_column_bytes(st, resp_col),
                  reason, sizeof(reason));
    fprintf(f, "exchange %" PRId64 ": ", o->id);
    put_escaped(f, ml ? method : "-", ml ? ml : 1);
    fputc(' ', f);
    put_escaped(f, ul ? url : "-", ul ? ul : 1);
    if (fa.pending)
        fprintf(f, " -> no response yet");
    else if (sqlite3_column_type(st, X_STATUS) == SQLITE_NULL)
        fprintf(f, " -> no response");
    else
        fprintf(f, " -> %d%s%s", sqlite3_column_int(st, X_STATUS), *reason ? " " : "", reason);
    fprintf(f, "  [%s]\n", flags);
    char cport[32], uport[32];
    snprintf(cport, sizeof(cport), sqlite3_column_type(st, X_CPORT) == SQLITE_NULL ? "?"
                                                                                    : "%" PRId64,
             col_i64(st, X_CPORT, 0));
    snprintf(uport, sizeof(uport), sqlite3_column_type(st, X_UPORT) == SQLITE_NULL ? "?"
                                                                                    : "%" PRId64,
             col_i64(st, X_UPORT, 0));
    fprintf(f, "connection %" PRId64 ", exchange %" PRId64 " on it; client port %s",
            col_i64(st, X_CONN, 0), col_i64(st, X_IDX, 0), cport);
    /* An older capture names the connection's upstream for a rule's answer: no server was
     * involved. Shunt's answer after the request went out (a 504, an upstream that closed)
     * has no upstream in the capture either, yet there was one. */
    if (sqlite3_column_type(st, X_UP) == SQLITE_NULL || fa.why == WHY_RULE) {
        fprintf(f, !fa.self ? ", no upstream\n"
                   : fa.sent == 0 ? ", answered by shunt (no upstream)\n"
                                  : ", answered by shunt\n");
    } else {
        int64_t reused = col_i64(st, X_REUSED, -1);
        fprintf(f, " -> upstream %" PRId64 " from local port %s (%s)\n", col_i64(st, X_UP, 0),
                uport, reused == 1 ? "reused" : reused == 0 ? "new" : "new or reused: unknown");
    }
    char when[64], took[32];
    fprintf(f, "started %s, ", shunt_view_clock(col_i64(st, X_STARTED, 0), 1, when, sizeof(when)));
    if (fa.pending)
        fprintf(f, "not ended yet");
    else
        fprintf(f, "took %s ms", shunt_view_ms(col_i64(st, X_DURATION, 0), 2, took, sizeof(took)));
    fprintf(f, "; %" PRId64 " bytes from the client, %" PRId64 " bytes to it\n",
            col_i64(st, X_REQ_BYTES, 0), col_i64(st, X_RESP_BYTES, 0));
    static const char *const phases[] = {"blocked", "dns", "connect", "send", "wait", "receive"};
    fprintf(f, "timings (ms):");
    for (int k = 0; k < 6; k++) {
        char ms[32];
        fprintf(f, "%s %s %s", k ? "," : "", phases[k],
                shunt_view_ms(col_i64(st, X_BLOCKED + k, -1), 2, ms, sizeof(ms)));
        if (k == 2 && col_i64(st, X_SSL, -1) >= 0) /* HAR 1.2: inside connect */
            fprintf(f, " (TLS %s)", shunt_view_ms(col_i64(st, X_SSL, -1), 2, ms, sizeof(ms)));
    }
    fputc('\n', f);
    if (sqlite3_reset(tl) == SQLITE_OK) {
        while (sqlite3_step(tl) == SQLITE_ROW)
            tls_print(f, tl);
    }
    if (sqlite3_column_type(st, X_ERROR) != SQLITE_NULL && !(fa.self && fa.quotes_error)) {
        size_t el;
        const char *e = col_text(st, X_ERROR, &el);
        fputs("error: ", f);
        put_escaped(f, e, el);
        fputc('\n', f);
    }
    if (fa.self)
        fate_print(f, st, &fa);
    request_head_section(f, st, &fa, &oom);
    if (n_changes > 0)
        changes_print(f, changes, 0, "changes");
    if (n_routine > 0)
        changes_print(f, changes, 1, "routine forward-proxy rewrites");
    if (sqlite3_column_type(st, X_INTERIM) != SQLITE_NULL) {
        fprintf(f, "\ninterim responses (1xx, as received):\n");
        const void *p = sqlite3_column_blob(st, X_INTERIM);
        if (shunt_view_head_diff(f, p ? p : "", (size_t)sqlite3_column_bytes(st, X_INTERIM), NULL,
                                 0) < 0)
            oom = 1;
    }
    response_head_section(f, &c, st, &fa, &oom);
    fputc('\n', f);
    body_print(f, "request", &bodies[0], col_i64(st, X_REQ_BODY, 0));
    body_print(f, "response", &bodies[1], col_i64(st, X_RESP_BODY, 0));
    out_close(&out);
    rc = 0;
    if (oom) {
        snprintf(err, err_len, "out of memory");
        rc = SHUNT_ENOMEM;
    }
    goto done;
sql_error:
    rc = sql_fail(&c, err, err_len);
done:
    json_decref(changes);
    free(bodies[0].data);
    free(bodies[1].data);
    sqlite3_finalize(st);
    sqlite3_finalize(ch);
    sqlite3_finalize(bo);
    sqlite3_finalize(tl);
    json_decref(tls_j[0]);
    json_decref(tls_j[1]);
    cap_close(&c);
    return rc;
}

/* ================================================================ connections */

enum { K_ID, K_PORT, K_UPS, K_EXCH, K_OPENED, K_CLOSED, K_CLOSER, K_HOW, K_AUTH, K_TLS,
       K_TUNNEL, K_ADDR, K_IN, K_OUT, K_UP_TLS };

/* One connection row of the table, as read. */
struct krow {
    int64_t id, port, exch;        /* port: -1 when unknown */
    int64_t opened, lifetime;      /* opened: -1 when unknown; lifetime: -1 when not closed */
    char *ups, *closer, *how, *auth; /* owned, never NULL */
    int tls, tunnel;
    int up_tls;                    /* an upstream of it spoke TLS (a tls row of side 1) */
    int open;                      /* still open (or open when the proxy died) */
};

static char *dup_or(sqlite3_stmt *st, int i, const char *if_null)
{
    if (sqlite3_column_type(st, i) != SQLITE_NULL)
        return dup_col(st, i);
    char *s = malloc(strlen(if_null) + 1);
    if (s != NULL)
        memcpy(s, if_null, strlen(if_null) + 1);
    return s;
}

static int krow_read(const struct cap *c, sqlite3_stmt *st, struct krow *r)
{
    r->id = sqlite3_column_int64(st, K_ID);
    r->port = col_i64(st, K_PORT, -1);
    /* Counted from the exchanges table: connections.n_exchanges is only final at the close. */
    r->exch = sqlite3_column_int64(st, K_EXCH);
    r->opened = col_i64(st, K_OPENED, -1);
    int64_t closed = col_i64(st, K_CLOSED, -1);
    r->lifetime = (r->opened >= 0 && closed >= r->opened) ? closed - r->opened : -1;
    /* The recorder writes a connection's row at its open and its close time at its end, so
     * in a proxy's capture no close time means open; an import just does not know. */
    r->open = c->from_proxy && sqlite3_column_type(st, K_CLOSED) == SQLITE_NULL &&
              sqlite3_column_type(st, K_CLOSER) == SQLITE_NULL;
    r->ups = dup_or(st, K_UPS, "-");
    r->closer = dup_or(st, K_CLOSER, r->open ? "open" : "?");
    r->how = dup_or(st, K_HOW, r->open ? "-" : "?");
    r->auth = dup_or(st, K_AUTH, "-");
    r->tls = sqlite3_column_int(st, K_TLS) != 0;
    r->tunnel = sqlite3_column_int(st, K_TUNNEL) != 0;
    r->up_tls = sqlite3_column_int(st, K_UP_TLS) != 0;
    return r->ups && r->closer && r->how && r->auth ? 0 : SHUNT_ENOMEM;
}

static void krow_dispose(struct krow *r)
{
    free(r->ups);
    free(r->closer);
    free(r->how);
    free(r->auth);
    r->ups = r->closer = r->how = r->auth = NULL;
}

static const char *mode_of(const struct krow *r)
{
    /* tls: the client's TLS (intercepted); up-tls: only shunt's to the upstream (--reverse
     * https://) */
    return r->tunnel ? (r->tls ? "tunnel+tls" : "tunnel")
                     : (r->tls ? "tls" : r->up_tls ? "up-tls" : "-");
}

/* Column widths of the connections table. */
struct kwidth {
    size_t id, ups, exch, closer, how, auth, mode;
};

static void krow_print(FILE *f, const struct krow *r, const struct kwidth *w)
{
    char port[16], opened[32], life[32], ups[4 * 40 + 4], closer[4 * 10 + 4], how[4 * 10 + 4],
        auth[4 * 16 + 4];
    snprintf(port, sizeof(port), r->port < 0 ? "-" : "%" PRId64, r->port);
    if (r->opened < 0)
        snprintf(opened, sizeof(opened), "-");
    else
        shunt_view_clock(r->opened, 0, opened, sizeof(opened));
    shunt_view_lifetime(r->lifetime, life, sizeof(life));
    size_t uw = shunt_view_fit(r->ups, strlen(r->ups), w->ups, ups, sizeof(ups));
    size_t cw = shunt_view_fit(r->closer, strlen(r->closer), w->closer, closer, sizeof(closer));
    size_t hw = shunt_view_fit(r->how, strlen(r->how), w->how, how, sizeof(how));
    size_t aw = shunt_view_fit(r->auth, strlen(r->auth), w->auth, auth, sizeof(auth));
    fprintf(f, "%*" PRId64 "  %5s  %s%*s  %*" PRId64 "  %12s  %8s  %s%*s  %s%*s  %s%*s  %s\n",
            (int)w->id, r->id, port, ups, (int)(w->ups - uw), "", (int)w->exch, r->exch, opened,
            life, closer, (int)(w->closer - cw), "", how, (int)(w->how - hw), "", auth,
            (int)(w->auth - aw), "", mode_of(r));
}

static json_t *krow_json(struct cap *c, sqlite3_stmt *st, const struct krow *r)
{
    json_t *j = json_object(), *ups = json_array();
    json_object_set_new(j, "id", json_integer(r->id));
    json_object_set_new(j, "client_addr", col_json(st, K_ADDR));
    json_object_set_new(j, "client_port", col_json(st, K_PORT));
    for (const char *p = r->ups; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            break;
        json_array_append_new(ups, json_integer(v));
        p = *end == ',' ? end + 1 : end;
    }
    json_object_set_new(j, "upstream_ports", ups);
    json_object_set_new(j, "exchanges", json_integer(r->exch));
    json_object_set_new(j, "opened_us", col_json(st, K_OPENED));
    json_object_set_new(j, "closed_us", col_json(st, K_CLOSED));
    json_object_set_new(j, "lifetime_us",
                        r->lifetime < 0 ? json_null() : json_integer(r->lifetime));
    json_object_set_new(j, "open", json_boolean(r->open));
    json_object_set_new(j, "closer", col_json(st, K_CLOSER));
    json_object_set_new(j, "close_how", col_json(st, K_HOW));
    json_object_set_new(j, "auth_scheme", col_json(st, K_AUTH));
    json_object_set_new(j, "tls", json_boolean(r->tls));
    json_object_set_new(j, "tunnel", json_boolean(r->tunnel));
    json_object_set_new(j, "bytes_in", col_json(st, K_IN));
    json_object_set_new(j, "bytes_out", col_json(st, K_OUT));
    /* its TLS handshakes, both sides, as the tls table has them (absent: none) */
    json_t *t = tls_rows_json(c, r->id);
    if (t == NULL) {
        json_decref(j);
        return NULL;
    }
    if (json_array_size(t) > 0)
        json_object_set_new(j, "tls_handshakes", t);
    else
        json_decref(t);
    return j;
}

static json_t *krow_to_json(const struct cap *c, sqlite3_stmt *st)
{
    struct krow r;
    json_t *j = krow_read(c, st, &r) ? NULL : krow_json((struct cap *)c, st, &r);
    krow_dispose(&r);
    return j;
}

int shunt_view_connections(const struct shunt_view_opts *o, char *err, size_t err_len)
{
    struct cap c;
    struct out out;
    struct krow rows[FIRST_ROWS];
    size_t n_rows = 0;
    sqlite3_stmt *st = NULL;
    int rc = cap_open(&c, o, err, err_len);
    if (rc != 0)
        goto done;
    /* --conn alone names the connection (even one without exchanges); other filters take
     * the connections with at least one exchange that matches. */
    const struct shunt_capture_filter *fl = &o->filter;
    struct shunt_capture_filter others = *fl; /* everything but --conn */
    others.conn = 0;
    int conn_only = fl->conn != 0 && !shunt_capture_filter_any(&others);
    char where[SHUNT_CAPTURE_FILTER_SQL_MAX], cond[SHUNT_CAPTURE_FILTER_SQL_MAX + 128],
        sql[SHUNT_CAPTURE_FILTER_SQL_MAX + 1024];
    int n = shunt_capture_filter_sql(fl, "e", 1, where, sizeof(where));
    if (n < 0) {
        snprintf(err, err_len, "filter too long");
        rc = SHUNT_EINVAL;
        goto done;
    }
    if (shunt_capture_filter_register(c.db, fl) != SQLITE_OK) {
        rc = sql_fail(&c, err, err_len);
        goto done;
    }
    if (conn_only)
        snprintf(cond, sizeof(cond), "c.id = ?1");
    else if (shunt_capture_filter_any(fl))
        snprintf(cond, sizeof(cond),
                 "EXISTS (SELECT 1 FROM exchanges e WHERE e.conn_id = c.id AND %s)", where);
    else
        snprintf(cond, sizeof(cond), "1");
    int np = conn_only ? 1 : n;
    snprintf(sql, sizeof(sql),
             "SELECT c.id, c.client_port, "
             "(SELECT group_concat(p, ',') FROM (SELECT u.local_port AS p FROM upstreams u "
             "WHERE u.conn_id = c.id AND u.local_port IS NOT NULL ORDER BY u.id)), "
             "(SELECT count(*) FROM exchanges x WHERE x.conn_id = c.id), "
             "c.opened_us, c.closed_us, c.closer, c.close_how, c.auth_scheme, c.tls, c.tunnel, "
             "c.client_addr, c.bytes_in, c.bytes_out, "
             "EXISTS (SELECT 1 FROM tls t WHERE t.conn_id = c.id AND t.side = 1) "
             "FROM connections c WHERE %s ORDER BY c.id LIMIT ?%d OFFSET ?%d",
             cond, np + 1, np + 2);
    if (sqlite3_prepare_v2(c.db, sql, -1, &st, NULL) != SQLITE_OK ||
        (conn_only ? sqlite3_bind_int64(st, 1, fl->conn)
                   : shunt_capture_filter_bind(fl, st, 1)) != SQLITE_OK ||
        sqlite3_bind_int64(st, np + 1, o->limit) != SQLITE_OK ||
        sqlite3_bind_int64(st, np + 2, o->offset) != SQLITE_OK) {
        rc = sql_fail(&c, err, err_len);
        goto done;
    }
    out_init(&out);
    if (o->json) {
        json_open(&out, &c, "connections");
        rc = json_rows(&out, &c, st, krow_to_json);
    } else {
        struct kwidth w = {digits(max_of(c.db, "SELECT max(id) FROM connections")), 8, 4, 6, 3, 4,
                           4};
        if (w.id < 2)
            w.id = 2;
        while (n_rows < FIRST_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct krow *r = &rows[n_rows++];
            if (krow_read(&c, st, r) != 0) {
                rc = SHUNT_ENOMEM;
                break;
            }
            size_t l;
            if ((l = strlen(r->ups)) > w.ups)
                w.ups = l > 40 ? 40 : l;
            if (digits(r->exch) > w.exch)
                w.exch = digits(r->exch);
            if ((l = strlen(r->closer)) > w.closer)
                w.closer = l > 10 ? 10 : l;
            if ((l = strlen(r->how)) > w.how)
                w.how = l > 10 ? 10 : l;
            if ((l = strlen(r->auth)) > w.auth)
                w.auth = l > 16 ? 16 : l;
        }
        if (rc == SHUNT_ENOMEM)
            goto done_out;
        fprintf(out.f, "%*s  %5s  %-*s  %*s  %12s  %8s  %-*s  %-*s  %-*s  %s\n", (int)w.id, "id",
                "cport", (int)w.ups, "upstream", (int)w.exch, "exch", "opened", "lifetime",
                (int)w.closer, "closer", (int)w.how, "how", (int)w.auth, "auth", "mode");
        for (size_t k = 0; k < n_rows; k++)
            krow_print(out.f, &rows[k], &w);
        out_check(&out);
        if (n_rows == FIRST_ROWS) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW && !out_failed(&out)) {
                struct krow r;
                int bad = krow_read(&c, st, &r);
                if (!bad)
                    krow_print(out.f, &r, &w);
                krow_dispose(&r);
                if (bad) {
                    rc = SHUNT_ENOMEM;
                    break;
                }
                out_check(&out);
            }
        }
    }
done_out:
    out_close(&out);
    if (rc == SHUNT_ENOMEM) {
        snprintf(err, err_len, "out of memory");
    } else if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        rc = 0;
    } else {
        rc = sql_fail(&c, err, err_len);
    }
done:
    for (size_t k = 0; k < n_rows; k++)
        krow_dispose(&rows[k]);
    sqlite3_finalize(st);
    cap_close(&c);
    return rc;
}

int shunt_view_main(const char *cmd, const char *help, unsigned accept,
                    int (*view)(const struct shunt_view_opts *o, char *err, size_t err_len),
                    int argc, char **argv)
{
    struct shunt_view_opts o;
    char err[512];
    int rc = shunt_view_args(&o, argc, argv, accept, err, sizeof(err));
    if (rc == 1)
        fputs(help, stdout);
    else if (rc == 0)
        rc = view(&o, err, sizeof(err));
    shunt_view_opts_dispose(&o);
    if (rc == 0 || rc == 1)
        return 0;
    fprintf(stderr, "shunt %s: %s\n", cmd, err);
    return rc == SHUNT_ENOMEM ? 1 : 2;
}
