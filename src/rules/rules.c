/* src/rules/rules.c - quick header rules: parsing mitmproxy's "/FILTER/NAME/VALUE" and
 * applying them to heads. */
#include "rules/rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "http/target.h"

struct quick {
    enum shunt_quick_kind kind;
    struct shunt_expr *filter; /* NULL: every message */
    char *name, *value;
    char by[48]; /* "--modify-headers #2" */
};

struct respond {
    struct shunt_expr *filter; /* NULL: every request */
    int status;
    char *body;
    size_t body_len;
    const char *type;
    char by[40]; /* "--respond #1" */
};

struct map_remote {
    struct shunt_expr *filter; /* NULL: every request */
    pcre2_code *re;
    char *replacement; /* in PCRE2's syntax: mitmproxy's \1 became ${1} */
    char by[40];
};

struct map_local {
    struct shunt_expr *filter; /* NULL: every request */
    pcre2_code *re;
    char *path; /* a file, or a folder (then the rest of the URL names the file) */
    char *real; /* a folder's real path (no links, no dots): what it serves stays in it */
    int is_dir;
    char by[40];
};

struct shunt_rules {
    struct quick *q;
    size_t n, cap;
    struct respond *r;
    size_t n_r;
    struct map_remote *m;
    size_t n_m;
    struct map_local *l;
    size_t n_l;
};

static char *dup_n(const char *p, size_t n);

struct shunt_rules *shunt_rules_new(void)
{
    return shunt_xcalloc(sizeof(struct shunt_rules));
}

void shunt_rules_free(struct shunt_rules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        shunt_expr_free(r->q[i].filter);
        free(r->q[i].name);
        free(r->q[i].value);
    }
    free(r->q);
    for (size_t i = 0; i < r->n_r; i++) {
        shunt_expr_free(r->r[i].filter);
        free(r->r[i].body);
    }
    free(r->r);
    for (size_t i = 0; i < r->n_m; i++) {
        shunt_expr_free(r->m[i].filter);
        pcre2_code_free(r->m[i].re);
        free(r->m[i].replacement);
    }
    free(r->m);
    for (size_t i = 0; i < r->n_l; i++) {
        shunt_expr_free(r->l[i].filter);
        pcre2_code_free(r->l[i].re);
        free(r->l[i].path);
        free(r->l[i].real);
    }
    free(r->l);
    free(r);
}

int shunt_rules_empty(const struct shunt_rules *r)
{
    return r == NULL || r->n == 0;
}

int shunt_rules_responds(const struct shunt_rules *r)
{
    return r != NULL && (r->n_r > 0 || r->n_m > 0 || r->n_l > 0);
}

/* The parts of a "[/FILTER]/A/B" spec, mitmproxy's way: the first character is the
 * separator; with three parts the first is the filter. <b> runs to the end of the spec. */
struct spec_parts {
    const char *filter; /* NULL: none */
    size_t filter_len;
    const char *a;
    size_t a_len;
    const char *b;
};

/* Splits <spec>. Returns 0, or -1 when it has fewer than two parts. */
static int split_spec(const char *spec, struct spec_parts *p)
{
    size_t len = strlen(spec);
    if (len < 4)
        return -1;
    char sep = spec[0];
    const char *rem = spec + 1, *s1 = strchr(rem, sep), *s2 = s1 ? strchr(s1 + 1, sep) : NULL;
    if (s1 == NULL)
        return -1;
    memset(p, 0, sizeof(*p));
    if (s2 != NULL) {
        p->filter = rem;
        p->filter_len = (size_t)(s1 - rem);
        p->a = s1 + 1;
        p->a_len = (size_t)(s2 - s1 - 1);
        p->b = s2 + 1;
    } else {
        p->a = rem;
        p->a_len = (size_t)(s1 - rem);
        p->b = s1 + 1;
    }
    return 0;
}

/* Compiles the filter of <sp> into *<fx> (NULL without one) and, when <re> is not NULL, its
 * first part as a PCRE2 regex into *<re>. Returns 0, or SHUNT_EINVAL with "OPT SPEC: ...
 * column N: ..." in <err> and nothing left allocated. */
static int compile_parts(const char *opt, const char *spec, const struct spec_parts *sp,
                         pcre2_code **re, struct shunt_expr **fx, char *err, size_t err_len)
{
    *fx = NULL;
    if (re != NULL) {
        int ec;
        PCRE2_SIZE eo;
        *re = pcre2_compile((PCRE2_SPTR)sp->a, sp->a_len, 0, &ec, &eo, NULL);
        if (*re == NULL) {
            char msg[160];
            pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof(msg));
            snprintf(err, err_len, "%s %s: regex: column %zu: %s", opt, spec, (size_t)eo + 1,
                     msg);
            return SHUNT_EINVAL;
        }
    }
    struct shunt_expr_error ee;
    if (sp->filter != NULL && sp->filter_len > 0 &&
        shunt_expr_compile_n(sp->filter, sp->filter_len, fx, &ee) != 0) {
        if (re != NULL) {
            pcre2_code_free(*re);
            *re = NULL;
        }
        snprintf(err, err_len, "%s %s: filter: column %zu: %s", opt, spec, ee.column, ee.message);
        return SHUNT_EINVAL;
    }
    return 0;
}

int shunt_rules_add_map_remote(struct shunt_rules *r, const char *spec, char *err,
                               size_t err_len)
{
    struct spec_parts sp;
    if (split_spec(spec, &sp) != 0) {
        snprintf(err, err_len, "--map-remote %s: expected [/FILTER]/REGEX/REPLACEMENT", spec);
        return SHUNT_EINVAL;
    }
    const char *repl = sp.b;
    if (sp.a_len == 0 || *repl == '\0') {
        snprintf(err, err_len, "--map-remote %s: the regex and the replacement must not be empty",
                 spec);
        return SHUNT_EINVAL;
    }
    pcre2_code *re;
    struct shunt_expr *fx;
    if (compile_parts("--map-remote", spec, &sp, &re, &fx, err, err_len) != 0)
        return SHUNT_EINVAL;
    /* mitmproxy's replacement is Python's: \1 is group 1, and $ is literal */
    size_t rl = strlen(repl);
    char *out = shunt_xcalloc(rl * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < rl; i++) {
        if (repl[i] == '\\' && i + 1 < rl && repl[i + 1] >= '0' && repl[i + 1] <= '9') {
            o += (size_t)snprintf(out + o, rl * 4 + 1 - o, "${%c}", repl[i + 1]);
            i++;
        } else if (repl[i] == '$') {
            out[o++] = '$';
            out[o++] = '$';
        } else {
            out[o++] = repl[i];
        }
    }
    struct map_remote *nm = realloc(r->m, (r->n_m + 1) * sizeof(*nm));
    if (nm == NULL) {
        free(out);
        pcre2_code_free(re);
        shunt_expr_free(fx);
        snprintf(err, err_len, "out of memory");
        return SHUNT_ENOMEM;
    }
    r->m = nm;
    struct map_remote *m = &r->m[r->n_m++];
    m->filter = fx;
    m->re = re;
    m->replacement = out;
    snprintf(m->by, sizeof(m->by), "--map-remote #%zu", r->n_m);
    return 0;
}

int shunt_rules_add_map_local(struct shunt_rules *r, const char *spec, char *err,
                              size_t err_len)
{
    struct spec_parts sp;
    if (split_spec(spec, &sp) != 0) {
        snprintf(err, err_len, "--map-local %s: expected [/FILTER]/REGEX/PATH", spec);
        return SHUNT_EINVAL;
    }
    const char *path = sp.b;
    if (sp.a_len == 0 || *path == '\0') {
        snprintf(err, err_len, "--map-local %s: the regex and the path must not be empty", spec);
        return SHUNT_EINVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        snprintf(err, err_len, "--map-local %s: %s: %s", spec, path,
                 errno == ENOENT ? "no such file or folder" : "not a file or a folder");
        return SHUNT_EINVAL;
    }
    pcre2_code *re;
    struct shunt_expr *fx;
    if (compile_parts("--map-local", spec, &sp, &re, &fx, err, err_len) != 0)
        return SHUNT_EINVAL;
    struct map_local *nl = realloc(r->l, (r->n_l + 1) * sizeof(*nl));
    if (nl == NULL) {
        pcre2_code_free(re);
        shunt_expr_free(fx);
        snprintf(err, err_len, "out of memory");
        return SHUNT_ENOMEM;
    }
    r->l = nl;
    struct map_local *m = &r->l[r->n_l++];
    m->filter = fx;
    m->re = re;
    m->path = dup_n(path, strlen(path));
    size_t pl = strlen(m->path);
    while (pl > 1 && m->path[pl - 1] == '/')
        m->path[--pl] = '\0';
    m->is_dir = S_ISDIR(st.st_mode);
    m->real = m->is_dir ? realpath(m->path, NULL) : NULL;
    if (m->is_dir && m->real == NULL) {
        snprintf(err, err_len, "--map-local %s: %s: %s", spec, path, strerror(errno));
        return SHUNT_EINVAL; /* the rules are freed whole by the caller */
    }
    snprintf(m->by, sizeof(m->by), "--map-local #%zu", r->n_l);
    return 0;
}

/* A Content-Type from a file name's extension. */
static const char *type_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
                 {".json", "application/json"},         {".js", "text/javascript"},
                 {".css", "text/css"},                  {".txt", "text/plain; charset=utf-8"},
                 {".xml", "application/xml"},           {".png", "image/png"},
                 {".jpg", "image/jpeg"},                {".gif", "image/gif"},
                 {".svg", "image/svg+xml"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

int shunt_rules_add_respond(struct shunt_rules *r, const char *spec, char *err, size_t err_len)
{
    struct spec_parts sp;
    if (split_spec(spec, &sp) != 0) {
        snprintf(err, err_len, "--respond %s: expected [/FILTER]/STATUS/FILE", spec);
        return SHUNT_EINVAL;
    }
    const char *status_s = sp.a, *path = sp.b;
    size_t status_len = sp.a_len;
    int status = 0;
    for (size_t i = 0; i < status_len; i++) {
        if (status_s[i] < '0' || status_s[i] > '9' || status > 999) {
            status = -1;
            break;
        }
        status = status * 10 + (status_s[i] - '0');
    }
    if (status < 100 || status > 999) {
        snprintf(err, err_len, "--respond %s: \"%.*s\" is not a status code (100-999)", spec,
                 (int)status_len, status_s);
        return SHUNT_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "--respond %s: %s: cannot read it", spec, path);
        return SHUNT_EINVAL;
    }
    size_t cap = 4096, n = 0;
    char *body = malloc(cap);
    for (;;) {
        if (body == NULL)
            break;
        if (n == cap) {
            if (cap >= (16u << 20)) {
                fclose(f);
                free(body);
                snprintf(err, err_len, "--respond %s: %s is over 16 MiB", spec, path);
                return SHUNT_EINVAL;
            }
            char *nb = realloc(body, cap * 2);
            if (nb == NULL) {
                free(body);
                body = NULL;
                break;
            }
            body = nb;
            cap *= 2;
        }
        size_t got = fread(body + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (body == NULL || failed) {
        free(body);
        snprintf(err, err_len, "--respond %s: %s: cannot read it", spec, path);
        return SHUNT_EINVAL;
    }
    struct shunt_expr *fx;
    if (compile_parts("--respond", spec, &sp, NULL, &fx, err, err_len) != 0) {
        free(body);
        return SHUNT_EINVAL;
    }
    struct respond *nr = realloc(r->r, (r->n_r + 1) * sizeof(*nr));
    if (nr == NULL) {
        free(body);
        shunt_expr_free(fx);
        snprintf(err, err_len, "out of memory");
        return SHUNT_ENOMEM;
    }
    r->r = nr;
    struct respond *x = &r->r[r->n_r++];
    memset(x, 0, sizeof(*x));
    x->filter = fx;
    x->status = status;
    x->body = body;
    x->body_len = n;
    x->type = type_of(path);
    snprintf(x->by, sizeof(x->by), "--respond #%zu", r->n_r);
    return 0;
}

/* Largest file --map-local serves. */
#define MAP_LOCAL_MAX (16u * 1024 * 1024)

/* Reads the regular file <path> whole into a new buffer; with <nofollow>, not through a link.
 * Returns 0, or -1 (no such file, a link, not a regular file, too large, unreadable). */
static int slurp(const char *path, int nofollow, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAP_LOCAL_MAX) {
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = malloc(n + 1);
    while (buf != NULL && got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (buf == NULL || got != n) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/*
 * The file a folder rule serves for <rest> (the URL after the match, or the regex's first
 * group), as mitmproxy's map_local picks it: the query goes, %XX are decoded, slashes at the
 * ends go; empty: index.html; a name that is a folder: its index.html. No name may leave the
 * folder: "." and ".." segments, NUL and backslashes are refused. Returns 0 with the path
 * in <out>, or -1.
 */
static int folder_file(const struct map_local *m, const char *rest, size_t rest_len, char *out,
                       size_t cap)
{
    char dec[1024];
    size_t n = 0;
    for (size_t i = 0; i < rest_len && rest[i] != '?' && rest[i] != '#'; i++) {
        char c = rest[i];
        if (c == '%' && i + 2 < rest_len && hexval(rest[i + 1]) >= 0 && hexval(rest[i + 2]) >= 0) {
            c = (char)(hexval(rest[i + 1]) * 16 + hexval(rest[i + 2]));
            i += 2;
        }
        if (c == '\0' || c == '\\' || n + 1 >= sizeof(dec))
            return -1;
        dec[n++] = c;
    }
    size_t a = 0;
    while (a < n && dec[a] == '/')
        a++;
    while (n > a && dec[n - 1] == '/')
        n--;
    /* every segment must be a name: no "", ".", ".." */
    for (size_t i = a; i < n;) {
        size_t j = i;
        while (j < n && dec[j] != '/')
            j++;
        size_t sl = j - i;
        if (sl == 0 || (sl == 1 && dec[i] == '.') || (sl == 2 && dec[i] == '.' && dec[i + 1] == '.'))
            return -1;
        i = j + 1;
    }
    int l = n > a ? snprintf(out, cap, "%s/%.*s", m->path, (int)(n - a), dec + a)
                  : snprintf(out, cap, "%s/index.html", m->path);
    if (l < 0 || (size_t)l >= cap)
        return -1;
    struct stat st;
    if (n > a && stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        if ((size_t)l + 12 >= cap)
            return -1;
        memcpy(out + l, "/index.html", 12);
    }
    return 0;
}

/* --map-local: when <m>'s regex matches <url>, answers with the file it names (200), or with
 * 404 when there is no such file. Returns 1 when it answered. */
static int map_local(const struct map_local *m, struct shunt_slice url,
                     struct shunt_request_verdict *out)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
    if (md == NULL)
        return 0;
    int rc = pcre2_match(m->re, (PCRE2_SPTR)url.base, url.len, 0, 0, md, NULL);
    if (rc <= 0) {
        pcre2_match_data_free(md);
        return 0;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    const char *rest = url.base + ov[1];
    size_t rest_len = url.len - ov[1];
    if (rc >= 2 && ov[2] != PCRE2_UNSET) { /* a group names the file */
        rest = url.base + ov[2];
        rest_len = ov[3] - ov[2];
    }
    char path[1400];
    int ok;
    if (m->is_dir) {
        ok = folder_file(m, rest, rest_len, path, sizeof(path)) == 0;
    } else {
        snprintf(path, sizeof(path), "%s", m->path);
        ok = 1;
    }
    pcre2_match_data_free(md);
    char *body = NULL;
    size_t len = 0;
    char *real = NULL;
    if (ok && m->is_dir) {
        /* The name has no dot segments, but the folder may hold symbolic links: what the
         * links lead to must still be inside the folder (a link to /etc/passwd is not
         * served). The resolved path is opened with O_NOFOLLOW. */
        size_t rl = strlen(m->real);
        real = realpath(path, NULL);
        ok = real != NULL && strncmp(real, m->real, rl) == 0 &&
             (real[rl] == '/' || (rl == 1 && m->real[0] == '/'));
    }
    if (ok && slurp(real != NULL ? real : path, real != NULL, &body, &len) == 0) {
        out->respond_status = 200;
        out->respond_type = type_of(path);
    } else {
        static const char nf[] = "shunt: --map-local: no such file for this URL\n";
        body = dup_n(nf, sizeof(nf) - 1);
        len = sizeof(nf) - 1;
        out->respond_status = 404;
        out->respond_type = "text/plain; charset=utf-8";
    }
    free(real);
    out->respond_body = body;
    out->respond_body_len = len;
    out->respond_body_free = 1;
    out->by = m->by;
    return 1;
}

/*
 * Says what is wrong with the absolute http:// URL <u> (<n> bytes) as a request target, or
 * returns NULL: the authority is a host (a name, an IPv4 address or a bracketed IPv6 one) with
 * an optional port of digits, no user info (RFC 3986 3.2); the rest is visible ASCII (no
 * space, CR, LF or other control byte: RFC 9112 3.2 leaves no room for them).
 */
static const char *bad_url(const char *u, size_t n)
{
    struct shunt_target t; /* absolute-form: the caller checked the "http://" */
    (void)shunt_http_split_target(shunt_slice_make(u, n), 0, &t);
    struct shunt_authority au;
    const char *why = shunt_http_split_authority(t.authority, 80, 0, &au);
    if (why != NULL) /* the proxy would refuse it: the same reading says why */
        return why;
    for (size_t k = 0; k < t.path.len; k++)
        if ((unsigned char)t.path.base[k] <= 0x20 || (unsigned char)t.path.base[k] >= 0x7f)
            return "a space, control or non-ASCII byte";
    return NULL;
}

void shunt_rules_request_hook(void *ud, const struct shunt_head_ctx *ctx,
                              struct shunt_request_verdict *out)
{
    const struct shunt_rules *r = ud;
    struct shunt_expr_subject sub = {0};
    sub.method = ctx->method;
    sub.url = ctx->url;
    sub.host = ctx->host;
    sub.conn_id = (int64_t)ctx->conn_id;
    sub.req_headers = ctx->req_headers;
    sub.n_req_headers = ctx->n_req_headers;
    /* A CONNECT has no URL to map, locally or elsewhere (mitmproxy's map_remote and
     * map_local leave it alone too): only --respond may refuse it. */
    int tunnel = shunt_slice_ieq(ctx->method, "CONNECT", 7);
    /* --map-remote: the first rule whose filter and regex match maps the URL; the result
     * lives in this thread's buffer until the next call here */
    static _Thread_local char mapped[4096];
    for (size_t i = 0; i < r->n_m && !tunnel; i++) {
        const struct map_remote *m = &r->m[i];
        if (m->filter != NULL && !shunt_expr_match(m->filter, &sub))
            continue;
        PCRE2_SIZE outlen = sizeof(mapped);
        int n = pcre2_substitute(m->re, (PCRE2_SPTR)ctx->url.base, ctx->url.len, 0, 0, NULL, NULL,
                                 (PCRE2_SPTR)m->replacement, PCRE2_ZERO_TERMINATED,
                                 (PCRE2_UCHAR *)mapped, &outlen);
        if (n <= 0)
            continue; /* no match (0) or an error (a URL too long for the buffer) */
        if (outlen < 8 || strncmp(mapped, "http://", 7) != 0)
            continue; /* only http:// targets: a mapping elsewhere is ignored, not half done */
        const char *why = bad_url(mapped, outlen);
        if (why != NULL) {
            /* The replacement can carry the client's bytes (a Host captured in reverse
             * mode): none may reach a request line unchecked. Refused, not sent elsewhere. */
            char msg[300];
            int l = snprintf(msg, sizeof(msg), "shunt: %s made an invalid URL: %s\n", m->by, why);
            out->respond_status = 400;
            out->respond_body = dup_n(msg, l > 0 && (size_t)l < sizeof(msg) ? (size_t)l : 0);
            out->respond_body_len = strlen(out->respond_body);
            out->respond_body_free = 1;
            out->respond_type = "text/plain; charset=utf-8";
            out->by = m->by;
            return;
        }
        out->map_url = mapped;
        out->map_url_len = outlen;
        out->by = m->by;
        break;
    }
    for (size_t i = 0; i < r->n_l && !tunnel; i++) {
        const struct map_local *m = &r->l[i];
        if (m->filter != NULL && !shunt_expr_match(m->filter, &sub))
            continue;
        if (map_local(m, ctx->url, out))
            return;
    }
    for (size_t i = 0; i < r->n_r; i++) {
        const struct respond *x = &r->r[i];
        if (x->filter != NULL && !shunt_expr_match(x->filter, &sub))
            continue;
        out->respond_status = x->status;
        out->respond_body = x->body;
        out->respond_body_len = x->body_len;
        out->respond_type = x->type;
        out->by = x->by;
        return;
    }
}

static char *dup_n(const char *p, size_t n)
{
    char *s = shunt_xcalloc(n + 1);
    memcpy(s, p, n);
    return s;
}

int shunt_rules_add_quick(struct shunt_rules *r, enum shunt_quick_kind kind, const char *spec,
                          char *err, size_t err_len)
{
    const char *opt = kind == SHUNT_QUICK_MODIFY ? "--modify-headers" : "--add-header";
    size_t len = strlen(spec);
    if (len < 3) {
        snprintf(err, err_len, "%s %s: expected [/FILTER]/NAME/VALUE", opt, spec);
        return SHUNT_EINVAL;
    }
    char sep = spec[0];
    /* As mitmproxy splits it: on the separator, at most three parts from the left, so
     * that the value may hold the separator ("/~s/Server/Microsoft-IIS/6.0"); with two
     * parts there is no filter. */
    const char *parts[3];
    size_t lens[3];
    const char *rem = spec + 1, *s1 = strchr(rem, sep), *s2 = s1 ? strchr(s1 + 1, sep) : NULL;
    if (s1 == NULL) {
        snprintf(err, err_len, "%s %s: expected [%cFILTER]%cNAME%cVALUE", opt, spec, sep, sep,
                 sep);
        return SHUNT_EINVAL;
    }
    if (s2 != NULL) {
        parts[0] = rem;
        lens[0] = (size_t)(s1 - rem);
        parts[1] = s1 + 1;
        lens[1] = (size_t)(s2 - s1 - 1);
        parts[2] = s2 + 1;
    } else {
        parts[0] = NULL;
        lens[0] = 0;
        parts[1] = rem;
        lens[1] = (size_t)(s1 - rem);
        parts[2] = s1 + 1;
    }
    lens[2] = strlen(parts[2]);
    if (lens[1] == 0) {
        snprintf(err, err_len, "%s %s: the header name is empty", opt, spec);
        return SHUNT_EINVAL;
    }
    for (size_t i = 0; i < lens[1]; i++) {
        char c = parts[1][i];
        if (c <= ' ' || c == ':' || c == 127) {
            snprintf(err, err_len, "%s %s: \"%.*s\" is not a header name", opt, spec,
                     (int)lens[1], parts[1]);
            return SHUNT_EINVAL;
        }
    }
    for (size_t i = 0; i < lens[2]; i++) {
        if (parts[2][i] == '\r' || parts[2][i] == '\n') {
            snprintf(err, err_len, "%s: the value holds a line break", opt);
            return SHUNT_EINVAL;
        }
    }
    if (shunt_edit_frames(parts[1], lens[1])) {
        snprintf(err, err_len,
                 "%s %s: %.*s frames the message; shunt forwards bodies framed as received, "
                 "so no rule may change it",
                 opt, spec, (int)lens[1], parts[1]);
        return SHUNT_EINVAL;
    }
    if (kind == SHUNT_QUICK_ADD && lens[2] == 0) {
        snprintf(err, err_len, "%s %s: the value is empty", opt, spec);
        return SHUNT_EINVAL;
    }
    struct shunt_expr *filter = NULL;
    if (parts[0] != NULL && lens[0] > 0) {
        struct shunt_expr_error ee;
        if (shunt_expr_compile_n(parts[0], lens[0], &filter, &ee) != 0) {
            snprintf(err, err_len, "%s %s: filter: column %zu: %s", opt, spec, ee.column,
                     ee.message);
            return SHUNT_EINVAL;
        }
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        struct quick *q = realloc(r->q, r->cap * sizeof(*q));
        if (q == NULL) {
            shunt_expr_free(filter);
            snprintf(err, err_len, "out of memory");
            return SHUNT_ENOMEM;
        }
        r->q = q;
    }
    struct quick *q = &r->q[r->n++];
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    q->filter = filter;
    q->name = dup_n(parts[1], lens[1]);
    q->value = dup_n(parts[2], lens[2]);
    size_t same = 0;
    for (size_t i = 0; i < r->n; i++)
        same += r->q[i].kind == kind;
    snprintf(q->by, sizeof(q->by), "%s #%zu", opt, same);
    return 0;
}

void shunt_rules_apply(const struct shunt_rules *r, struct shunt_head_edit *edit,
                       const struct shunt_expr_subject *subject, shunt_rules_change_cb cb,
                       void *ud)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        const struct quick *q = &r->q[i];
        if (q->filter != NULL && !shunt_expr_match(q->filter, subject))
            continue;
        size_t nl = strlen(q->name), vl = strlen(q->value);
        unsigned before = edit->changes;
        const char *verb;
        if (q->kind == SHUNT_QUICK_ADD) {
            if (shunt_edit_add(edit, q->name, nl, q->value, vl) != 0)
                continue;
            verb = "add";
        } else if (vl == 0) {
            if (shunt_edit_remove(edit, q->name, nl) == 0)
                continue;
            verb = "remove";
        } else {
            if (shunt_edit_set(edit, q->name, nl, q->value, vl) != 0)
                continue;
            verb = "set";
        }
        if (edit->changes == before || cb == NULL) /* described only for a listener */
            continue;
        char what[200];
        if (vl == 0)
            snprintf(what, sizeof(what), "%s %s", verb, q->name);
        else
            snprintf(what, sizeof(what), "%s %s: %s", verb, q->name, q->value);
        cb(ud, what, q->by);
    }
}

void shunt_rules_head_hook(void *ud, struct shunt_head_edit *edit,
                           const struct shunt_head_ctx *ctx, shunt_head_change_cb change,
                           void *cctx)
{
    /* What the filters see. At response time the request's fields are gone (the worker's
     * header array holds the response's), so ~hq only matches at request time. */
    struct shunt_expr_subject sub = {0};
    sub.method = ctx->method;
    sub.url = ctx->url;
    sub.host = ctx->host;
    sub.conn_id = (int64_t)ctx->conn_id;
    if (ctx->is_request) {
        sub.req_headers = ctx->req_headers;
        sub.n_req_headers = ctx->n_req_headers;
    } else {
        sub.has_response = 1;
        sub.status = ctx->status;
        sub.resp_headers = ctx->resp_headers; /* as received, before any rule */
        sub.n_resp_headers = ctx->n_resp_headers;
    }
    shunt_rules_apply(ud, edit, &sub, change, cctx);
}
