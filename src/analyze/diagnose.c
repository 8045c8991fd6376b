/* src/analyze/diagnose.c - `shunt diagnose`: open, run every check, rank, print. */
#include "analyze/diagnose.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "capture/db.h"
#include "capture/har.h"
#include "capture/view.h"
#include "core/version.h"

/* ================================================================ opening */

/* Reads the whole file <path> (a HAR) into a new buffer; returns it with its length, or
 * NULL with <err> set. */
static char *slurp(const char *path, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    char *buf = NULL;
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > SHUNT_HAR_MAX_INPUT) {
        snprintf(err, err_len, "%s: %s", path, S_ISREG(sb.st_mode) ? "too large" : "not a file");
        goto done;
    }
    *len = (size_t)sb.st_size;
    buf = malloc(*len + 1);
    if (buf == NULL || fread(buf, 1, *len, f) != *len) {
        snprintf(err, err_len, "%s: %s", path, buf ? "cannot read it" : "out of memory");
        free(buf);
        buf = NULL;
    }
done:
    if (f != NULL)
        fclose(f);
    return buf;
}

/* Does <path> hold a HAR rather than a capture? Its first non-blank byte is '{', or, when it
 * cannot be read, its name ends in .har (the import then says why it cannot be read). */
static int looks_like_har(const char *path)
{
    size_t l = strlen(path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return l >= 4 && strcasecmp(path + l - 4, ".har") == 0;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xef ||
           c == 0xbb || c == 0xbf) /* blanks, and a UTF-8 byte order mark */
        ;
    fclose(f);
    return c == '{';
}

int shunt_analyze_open(const char *path, sqlite3 **db, int *from_har, char *err, size_t err_len)
{
    *db = NULL;
    *from_har = looks_like_har(path);
    if (!*from_har)
        return shunt_capture_open(path, 0, db, err, err_len) == 0 ? 0 : SHUNT_EINVAL;
    size_t len = 0;
    char *buf = slurp(path, &len, err, err_len);
    if (buf == NULL)
        return SHUNT_EINVAL;
    char msg[512];
    char *emsg = NULL;
    int rc = SHUNT_EINVAL;
    if (sqlite3_open(":memory:", db) != SQLITE_OK ||
        sqlite3_exec(*db, shunt_capture_schema_sql, NULL, NULL, &emsg) != SQLITE_OK) {
        snprintf(err, err_len, "%s: cannot make a capture in memory: %s", path,
                 emsg ? emsg : "out of memory");
        goto done;
    }
    struct shunt_har_import_opts o = {SHUNT_VERSION, "shunt diagnose"};
    struct shunt_har_import_info info;
    if (shunt_har_import_buf(*db, buf, len, &o, &info, msg, sizeof(msg)) != 0) {
        snprintf(err, err_len, "%s: %s", path, msg);
        goto done;
    }
    rc = 0;
done:
    sqlite3_free(emsg);
    free(buf);
    if (rc != 0) {
        sqlite3_close(*db);
        *db = NULL;
    }
    return rc;
}

int shunt_analyze_load(const char *path, const struct shunt_capture_filter *f,
                       struct shunt_model **m, int *from_har, char *err, size_t err_len)
{
    sqlite3 *db = NULL;
    char msg[512];
    *m = NULL;
    int rc = shunt_analyze_open(path, &db, from_har, err, err_len);
    if (rc != 0)
        return rc;
    if (f != NULL && shunt_capture_filter_register(db, f) != SQLITE_OK) {
        snprintf(err, err_len, "%s: %s", path, sqlite3_errmsg(db));
        rc = SHUNT_EPARSE;
        goto done;
    }
    /* One snapshot, even of a capture being recorded. */
    (void)sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    rc = shunt_model_load(db, f, m, msg, sizeof(msg));
    (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != 0)
        snprintf(err, err_len, "%s: %s", path, msg);
done:
    sqlite3_close(db);
    return rc;
}

/* ================================================================ running and ranking */

static int conf_rank(enum shunt_confidence c)
{
    return (int)c;
}

/* Impact order: handshakes lost, then time, then connections, then confidence, then the
 * table's order (the checks' addresses do not order; their index in the table does). */
static size_t table_index(const struct shunt_check *c)
{
    for (size_t i = 0; i < shunt_n_checks; i++)
        if (shunt_checks[i] == c)
            return i;
    return shunt_n_checks;
}

static int impact_cmp(const void *a, const void *b)
{
    const struct shunt_finding *x = a, *y = b;
    if (x->lost_handshakes != y->lost_handshakes)
        return x->lost_handshakes > y->lost_handshakes ? -1 : 1;
    if (x->lost_us != y->lost_us)
        return x->lost_us > y->lost_us ? -1 : 1;
    if (x->lost_connections != y->lost_connections)
        return x->lost_connections > y->lost_connections ? -1 : 1;
    if (x->confidence != y->confidence)
        return conf_rank(y->confidence) - conf_rank(x->confidence);
    size_t i = table_index(x->check), j = table_index(y->check);
    return (i > j) - (i < j);
}

/* Can <g> explain <f>? <f>'s own cause when its check set one, else its check's caused_by. */
static int may_explain(const struct shunt_finding *f, const struct shunt_finding *g)
{
    if (f == g)
        return 0;
    if (f->cause != NULL)
        return strcmp(f->cause, g->check->id) == 0;
    if (f->check->caused_by == NULL)
        return 0;
    for (const char *const *id = f->check->caused_by; *id != NULL; id++)
        if (strcmp(*id, g->check->id) == 0)
            return 1;
    return 0;
}

/* Orders the findings of <out> (ranked by impact) so that causes come first, each followed by
 * what it explains (explained_by set). One level: a finding that another one explains
 * explains nothing itself. A cause ranks where the first of its consequences would: what it
 * forces is its impact too (a body without a length ranks with the closes it forced). */
static int order_causes_first(struct shunt_findings *out)
{
    size_t n = out->n;
    struct shunt_finding *v = malloc(n * sizeof(*v));
    size_t *by = malloc(n * sizeof(*by)), *key = malloc(n * sizeof(*key));
    unsigned char *root = malloc(n), *done = calloc(n, 1);
    if (v == NULL || by == NULL || key == NULL || root == NULL || done == NULL) {
        free(v), free(by), free(key), free(root), free(done);
        return SHUNT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        root[i] = 1;
        for (size_t j = 0; j < n && root[i]; j++)
            root[i] = !may_explain(&out->v[i], &out->v[j]);
    }
    for (size_t i = 0; i < n; i++) {
        by[i] = n; /* none: it stands on its own */
        for (size_t j = 0; j < n && by[i] == n; j++)
            if (root[j] && may_explain(&out->v[i], &out->v[j]))
                by[i] = j;
    }
    for (size_t i = 0; i < n; i++)
        key[i] = i;
    for (size_t i = 0; i < n; i++)
        if (by[i] < n && i < key[by[i]])
            key[by[i]] = i;
    size_t k = 0;
    while (k < n) {
        /* the next cause, by where it ranks; then its consequences in rank order */
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && by[i] == n && (best == n || key[i] < key[best]))
                best = i;
        if (best == n)
            break; /* cannot happen: every consequence's cause stands on its own */
        done[best] = 1;
        size_t rank = ++k;
        v[rank - 1] = out->v[best];
        for (size_t j = 0; j < n; j++)
            if (by[j] == best) {
                done[j] = 1;
                v[k] = out->v[j];
                v[k].explained_by = out->v[best].check->id;
                v[k++].explained_rank = rank;
            }
    }
    memcpy(out->v, v, k * sizeof(*v));
    free(v), free(by), free(key), free(root), free(done);
    return 0;
}

int shunt_diagnose_run(const struct shunt_model *m, struct shunt_findings *out)
{
    for (size_t i = 0; i < shunt_n_checks; i++) {
        int rc = shunt_checks[i]->run(m, out);
        if (rc != 0)
            return rc;
    }
    if (out->n == 0)
        return 0;
    qsort(out->v, out->n, sizeof(*out->v), impact_cmp);
    return order_causes_first(out);
}

/* ================================================================ text */

/* Writes <text> wrapped at <width> columns: the first line after <first>, the others after
 * as many spaces as <indent>. Words longer than a line are not cut. */
static void wrap(FILE *f, const char *first, size_t indent, const char *text, int width)
{
    size_t col = strlen(first), w = width > 40 ? (size_t)width : 40;
    fputs(first, f);
    int line_empty = 1;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t wl = strcspn(p, " ");
        if (wl == 0)
            break;
        if (!line_empty && col + 1 + wl > w) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
            line_empty = 1;
        }
        if (!line_empty) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, wl, f);
        col += wl;
        line_empty = 0;
        p += wl;
    }
    fputc('\n', f);
}

static void put_ms(char *buf, size_t len, int64_t us)
{
    double ms = (double)us / 1000.0;
    if (ms < 10)
        snprintf(buf, len, "%.1f ms", ms);
    else if (ms < 10000)
        snprintf(buf, len, "%.0f ms", ms);
    else
        snprintf(buf, len, "%.1f s", ms / 1000.0);
}

/* "1, 2, 3" */
static void put_ids(char *buf, size_t len, const int64_t *ids, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)ids[i]);
}

/* The length of <unit> (a static plural noun, "connections") to print after <count>: the
 * plural less its final s for one ("1 connection"); JSON keeps the plural (docs/diagnose.md). */
static int unit_len(const char *unit, size_t count)
{
    size_t l = strlen(unit);
    return (int)(count == 1 && l > 1 && unit[l - 1] == 's' ? l - 1 : l);
}

void shunt_diagnose_print(FILE *f, const struct shunt_model *m, const struct shunt_findings *fs,
                          const struct shunt_diagnose_info *info, int width)
{
    fprintf(f, "shunt diagnose: %s%s: %zu exchange%s on %zu connection%s", info->path,
            info->from_har ? " (HAR)" : "", m->n_ex, m->n_ex == 1 ? "" : "s", m->n_conns,
            m->n_conns == 1 ? "" : "s");
    if (info->filter != NULL)
        fprintf(f, ", %zu taken by the filter", m->n_selected);
    fprintf(f, "; %zu checks, %zu finding%s\n", shunt_n_checks, fs->n, fs->n == 1 ? "" : "s");
    if (m->events_dropped > 0)
        fprintf(f, "(the capture is incomplete: %lld events were dropped while recording)\n",
                (long long)m->events_dropped);
    if (fs->n == 0) {
        fputs("no finding: none of the checks matched (shunt diagnose --help lists them).\n", f);
        return;
    }
    for (size_t i = 0; i < fs->n; i++) {
        const struct shunt_finding *x = &fs->v[i];
        char head[256], ms[32], ids[128], ex[128];
        size_t o = (size_t)snprintf(head, sizeof(head), "%zu. %s  (%s)  %zu %.*s", i + 1,
                                    x->check->id, shunt_confidence_name(x->confidence),
                                    x->count, unit_len(x->unit, x->count), x->unit);
        if (x->lost_handshakes || x->lost_us) {
            put_ms(ms, sizeof(ms), x->lost_us);
            if (x->lost_handshakes)
                o += (size_t)snprintf(head + o, sizeof(head) - o, ", ~%zu handshake%s and ~%s "
                                      "lost", x->lost_handshakes,
                                      x->lost_handshakes == 1 ? "" : "s", ms);
            else
                o += (size_t)snprintf(head + o, sizeof(head) - o, ", ~%s lost", ms);
        }
        fprintf(f, "\n%s\n", head);
        if (x->explained_by != NULL)
            fprintf(f, "   (a consequence of finding %zu, %s)\n", x->explained_rank,
                    x->explained_by);
        /* what happened names hosts, SNIs, errors and header values from the capture:
         * untrusted, escaped here once for every check */
        char what[4 * sizeof(x->what) + 1];
        shunt_view_escape(x->what, strnlen(x->what, sizeof(x->what)), what, sizeof(what));
        wrap(f, "   ", 3, what, width);
        if (x->n_conns || x->n_exchanges) {
            put_ids(ids, sizeof(ids), x->conns, x->n_conns);
            put_ids(ex, sizeof(ex), x->exchanges, x->n_exchanges);
            if (x->n_conns && x->n_exchanges)
                fprintf(f, "   examples: connection%s %s (exchange%s %s)\n",
                        x->n_conns == 1 ? "" : "s", ids, x->n_exchanges == 1 ? "" : "s", ex);
            else if (x->n_conns)
                fprintf(f, "   examples: connection%s %s\n", x->n_conns == 1 ? "" : "s", ids);
            else
                fprintf(f, "   examples: exchange%s %s\n", x->n_exchanges == 1 ? "" : "s", ex);
        }
        wrap(f, "   why: ", 8, x->check->why, width);
        wrap(f, "   fix: ", 8, x->check->fix, width);
        wrap(f, "   prove it: ", 8, x->check->proof, width);
    }
}

/* ================================================================ JSON */

static json_t *ids_json(const int64_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

int shunt_diagnose_print_json(FILE *f, const struct shunt_model *m,
                              const struct shunt_findings *fs,
                              const struct shunt_diagnose_info *info)
{
    json_t *root = json_object(), *checks = json_array(), *found = json_array();
    if (root == NULL || checks == NULL || found == NULL)
        goto oom;
    json_object_set_new(root, "capture",
                        json_pack("{s:s, s:s, s:b, s:I, s:I, s:b}", "file", info->path,
                                  "source", m->source, "from_har", info->from_har,
                                  "connections", (json_int_t)m->n_conns, "exchanges",
                                  (json_int_t)m->n_ex, "incomplete", m->events_dropped > 0));
    json_object_set_new(root, "filter", info->filter ? json_string(info->filter) : json_null());
    json_object_set_new(root, "selected_exchanges", json_integer((json_int_t)m->n_selected));
    for (size_t i = 0; i < shunt_n_checks; i++)
        json_array_append_new(checks, json_pack("{s:s, s:s}", "id", shunt_checks[i]->id,
                                                "title", shunt_checks[i]->title));
    json_object_set_new(root, "checks", checks);
    checks = NULL;
    for (size_t i = 0; i < fs->n; i++) {
        const struct shunt_finding *x = &fs->v[i];
        /* what happened may hold bytes that are not UTF-8 (a capture's, or a name cut by
         * its check): jansson refuses those */
        json_t *what = shunt_view_json_text(x->what, strnlen(x->what, sizeof(x->what)));
        if (what == NULL)
            goto oom;
        json_t *j = json_pack(
            "{s:I, s:s, s:s, s:s, s:I, s:s, s:o, s:{s:o, s:o}, s:{s:f, s:I, s:I}, s:s?, s:s, "
            "s:s, s:s}",
            "rank", (json_int_t)(i + 1), "id", x->check->id, "title", x->check->title,
            "confidence", shunt_confidence_name(x->confidence), "count", (json_int_t)x->count,
            "unit", x->unit, "what", what, "examples", "connections",
            ids_json(x->conns, x->n_conns), "exchanges", ids_json(x->exchanges, x->n_exchanges),
            "impact", "ms", (double)x->lost_us / 1000.0, "handshakes",
            (json_int_t)x->lost_handshakes, "connections", (json_int_t)x->lost_connections,
            "explained_by", x->explained_by, "why", x->check->why, "fix", x->check->fix, "proof",
            x->check->proof);
        if (j == NULL)
            goto oom;
        json_array_append_new(found, j);
    }
    json_object_set_new(root, "findings", found);
    found = NULL;
    json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', f);
    json_decref(root);
    return 0;
oom:
    json_decref(root);
    json_decref(checks);
    json_decref(found);
    return SHUNT_ENOMEM;
}
