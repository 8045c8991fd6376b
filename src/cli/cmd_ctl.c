/* src/cli/cmd_ctl.c - `shunt ctl`: lists and switches options, reloads the rules and shows
 * the status of a running `shunt proxy`, through its admin API (a plain blocking client). */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "http/parser.h"
#include "net/addr.h"
#include "web/admin.h"

#define CTL_DEFAULT_ADMIN "127.0.0.1:8889"
#define CTL_TIMEOUT_S 10
/* Longest response read; the API's answers are a few KiB. */
#define CTL_MAX_RESPONSE (4 * 1024 * 1024)

/* Exit statuses (commands.h). */
#define CTL_OK 0
#define CTL_API_ERROR 1
#define CTL_USAGE 2

static const char help[] =
    "usage: shunt ctl [--admin ADDR:PORT] [--token T | --token-file FILE] [--json] COMMAND\n"
    "\n"
    "Talks to the admin API of a running `shunt proxy` (127.0.0.1:8889 unless it was started\n"
    "with another --admin ADDR:PORT, or with --no-admin).\n"
    "\n"
    "commands:\n"
    "  options              the rules' named options, on or off, with their defaults\n"
    "  option NAME on|off   switches the option NAME (quote a name with spaces); the next\n"
    "                       exchange, even on an open connection, sees the new state\n"
    "  reload               reloads the rules file; a broken file keeps the old rules\n"
    "  status               uptime, open connections, exchanges, dropped capture events\n"
    "\n"
    "options:\n"
    "  --admin ADDR:PORT    the admin API (default $SHUNT_ADMIN, else " CTL_DEFAULT_ADMIN ")\n"
    "  --token T            its token, when the proxy has one (default $SHUNT_ADMIN_TOKEN;\n"
    "                       ps shows T: prefer the variable or --token-file)\n"
    "  --token-file FILE    read the token from FILE (no access for group and others, e.g.\n"
    "                       mode 0600; a trailing newline is dropped)\n"
    "  --json               print the API's JSON answer as it is\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 done, 1 the API refused (its message is printed), 2 bad usage or the\n"
    "admin API cannot be reached. See docs/admin.md.\n";

struct ctl {
    const char *admin; /* "ADDR:PORT" as given; also the Host sent */
    const char *token; /* or NULL */
    int json;          /* --json */
    struct sockaddr_storage addr;
};

/* What one call to the API got back. */
struct answer {
    int status;  /* HTTP status */
    json_t *json; /* the parsed body, or NULL when it is not JSON */
};

/* ------------------------------------------------------------------------ HTTP client */

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends printf output to <buf> (<cap> bytes) at *<n>. Returns 0, or -1 when it does not
 * fit (then *<n> is unchanged). */
static int appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - *n)
        return -1;
    *n += (size_t)k;
    return 0;
}

static void body_data(void *ud, const char *data, size_t len)
{
    struct { char *p; size_t len; } *b = ud;
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* Prints "shunt ctl: cannot reach ..." for errno <e>. */
static void unreachable(const struct ctl *o, int e)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "%s", strerror(e));
    msg[0] = (char)tolower((unsigned char)msg[0]);
    fprintf(stderr, "shunt ctl: cannot reach the admin API at %s: %s (is shunt proxy running?)\n",
            o->admin, msg);
}

/*
 * Sends <method> <path> with the JSON <body> (or none when NULL) and reads the answer into
 * <ans> (ans->json is a new reference: json_decref() it). Returns 0, or an exit status after
 * printing why: CTL_USAGE when the admin API cannot be reached, CTL_API_ERROR when what came
 * back is not an HTTP response.
 */
static int call(const struct ctl *o, const char *method, const char *path, const char *body,
                struct answer *ans)
{
    char req[8192];
    int rc = CTL_API_ERROR, fd = -1;
    char *buf = NULL, *payload = NULL;
    ans->status = 0;
    ans->json = NULL;

    size_t n = 0;
    int ok = appendf(req, sizeof(req), &n,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shunt-ctl/" SHUNT_VERSION
                     "\r\nAccept: application/json\r\nConnection: close\r\n",
                     method, path, o->admin) == 0;
    if (ok && o->token != NULL)
        ok = appendf(req, sizeof(req), &n, "Authorization: Bearer %s\r\n", o->token) == 0;
    if (ok && body != NULL)
        ok = appendf(req, sizeof(req), &n,
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                     strlen(body)) == 0;
    if (ok)
        ok = appendf(req, sizeof(req), &n, "\r\n%s", body ? body : "") == 0;
    if (!ok) {
        fprintf(stderr, "shunt ctl: the request is too long (a long name or token?)\n");
        return CTL_USAGE;
    }

    fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        unreachable(o, errno);
        return CTL_USAGE;
    }
    struct timeval tv = {CTL_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() too */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    socklen_t alen = o->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in);
    if (connect(fd, (const struct sockaddr *)&o->addr, alen) != 0) {
        unreachable(o, errno == EINPROGRESS ? ETIMEDOUT : errno);
        rc = CTL_USAGE;
        goto done;
    }
    if (send_all(fd, req, n) != 0) {
        unreachable(o, errno);
        rc = CTL_USAGE;
        goto done;
    }

    /* Connection: close: the answer ends where the connection does. */
    size_t len = 0, cap = 16384;
    buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            goto oom;
        if (len == cap) {
            if (cap >= CTL_MAX_RESPONSE) {
                fprintf(stderr, "shunt ctl: the answer from %s is over %d bytes\n", o->admin,
                        CTL_MAX_RESPONSE);
                goto done;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (len == 0) {
                unreachable(o, errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno);
                rc = CTL_USAGE;
                goto done;
            }
            break; /* a reset after the answer: judge what arrived */
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }

    struct shunt_http_header hdrs[100];
    struct shunt_http_head head;
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_error e;
    int hl = shunt_http_parse_response(buf, len, 0, &head, hdrs, 100, &lim, &e);
    if (hl <= 0) {
        fprintf(stderr, "shunt ctl: %s did not answer with HTTP%s%s\n", o->admin,
                hl < 0 ? ": " : " (the answer was cut short)",
                hl < 0 ? shunt_http_reason_str(e.reason) : "");
        goto done;
    }
    struct shunt_http_body fr;
    shunt_http_body_init(&fr, head.framing, head.content_length, &lim);
    payload = malloc(len - (size_t)hl + 1);
    if (payload == NULL)
        goto oom;
    struct { char *p; size_t len; } pb = {payload, 0};
    long used = shunt_http_body_scan(&fr, buf + hl, len - (size_t)hl, body_data, &pb, &e);
    if (used < 0 || !(fr.done || shunt_http_body_eof(&fr))) {
        fprintf(stderr, "shunt ctl: the answer from %s was cut short\n", o->admin);
        goto done;
    }
    ans->status = head.status;
    ans->json = pb.len > 0 ? json_loadb(payload, pb.len, 0, NULL) : NULL;
    rc = 0;
    goto done;

oom:
    fprintf(stderr, "shunt ctl: out of memory\n");
done:
    free(payload);
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Returns the exit status for <ans>: 0 for a 2xx with a JSON body; otherwise prints the
 * API's error message and returns CTL_API_ERROR. */
static int check(const struct ctl *o, const struct answer *ans)
{
    const char *msg = json_string_value(json_object_get(ans->json, "error"));
    if (ans->status >= 200 && ans->status < 300 && ans->json != NULL)
        return 0;
    if (msg != NULL)
        fprintf(stderr, "shunt ctl: %s%s\n", msg,
                ans->status == 401 && o->token == NULL ? " (give it with --token T or "
                                                         "$SHUNT_ADMIN_TOKEN)"
                                                       : "");
    else
        fprintf(stderr, "shunt ctl: the admin API at %s answered %d without a JSON body\n",
                o->admin, ans->status);
    return CTL_API_ERROR;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

/* Writes the name <s> percent-encoded (all but RFC 3986 unreserved) into <out>. Returns 0, or
 * -1 when it does not fit. */
static int pct_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)ch;
        } else {
            if (n + 3 >= cap)
                return -1;
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ commands */

static int cmd_options(const struct ctl *o)
{
    struct answer ans;
    int rc = call(o, "GET", "/api/options", NULL, &ans);
    if (rc == 0)
        rc = check(o, &ans);
    json_t *list = json_object_get(ans.json, "options");
    if (rc == 0 && !json_is_array(list)) {
        fprintf(stderr, "shunt ctl: the answer has no \"options\" list\n");
        rc = CTL_API_ERROR;
    }
    if (rc != 0)
        goto done;
    if (o->json) {
        print_json(ans.json);
        goto done;
    }
    if (json_array_size(list) == 0) {
        printf("no options: the rules declare none (option(NAME, DEFAULT) in a rules file)\n");
        goto done;
    }
    int w = 6;
    size_t i;
    json_t *opt;
    json_array_foreach(list, i, opt) {
        const char *name = json_string_value(json_object_get(opt, "name"));
        if (name != NULL && (int)strlen(name) > w)
            w = (int)strlen(name);
    }
    printf("%-*s  %-5s  %s\n", w, "OPTION", "STATE", "DEFAULT");
    json_array_foreach(list, i, opt) {
        const char *name = json_string_value(json_object_get(opt, "name"));
        printf("%-*s  %-5s  %s\n", w, name ? name : "?",
               json_is_true(json_object_get(opt, "on")) ? "on" : "off",
               json_is_true(json_object_get(opt, "default")) ? "on" : "off");
    }
done:
    json_decref(ans.json);
    return rc;
}

static int cmd_option(const struct ctl *o, const char *name, const char *state)
{
    int on;
    if (strcmp(state, "on") == 0 || strcmp(state, "true") == 0)
        on = 1;
    else if (strcmp(state, "off") == 0 || strcmp(state, "false") == 0)
        on = 0;
    else {
        fprintf(stderr, "shunt ctl: option NAME on|off: '%s' is neither on nor off\n", state);
        return CTL_USAGE;
    }
    char enc[1024], path[1100];
    if (name[0] == '\0' || pct_encode(name, enc, sizeof(enc)) != 0) {
        fprintf(stderr, "shunt ctl: option NAME on|off: the name is %s\n",
                name[0] ? "too long" : "empty");
        return CTL_USAGE;
    }
    snprintf(path, sizeof(path), "/api/options/%s", enc);
    struct answer ans;
    int rc = call(o, "PUT", path, on ? "{\"on\": true}" : "{\"on\": false}", &ans);
    if (rc == 0)
        rc = check(o, &ans);
    if (rc == 0) {
        if (o->json) {
            print_json(ans.json);
        } else {
            const char *n = json_string_value(json_object_get(ans.json, "name"));
            printf("%s: %s\n", n ? n : name,
                   json_is_true(json_object_get(ans.json, "on")) ? "on" : "off");
        }
    }
    json_decref(ans.json);
    return rc;
}

static int cmd_reload(const struct ctl *o)
{
    struct answer ans;
    int rc = call(o, "POST", "/api/reload", "{}", &ans);
    if (rc == 0 && ans.status == 422) { /* the rules file is broken: say so plainly */
        const char *msg = json_string_value(json_object_get(ans.json, "error"));
        fprintf(stderr, "shunt ctl: reload failed, the old rules stay: %s\n",
                msg ? msg : "(no reason given)");
        rc = CTL_API_ERROR;
    } else if (rc == 0) {
        rc = check(o, &ans);
    }
    if (rc == 0) {
        if (o->json)
            print_json(ans.json);
        else
            printf("rules reloaded\n");
    }
    json_decref(ans.json);
    return rc;
}

static void print_uptime(double s)
{
    unsigned long t = s > 0 ? (unsigned long)s : 0;
    unsigned long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, sec = t % 60;
    if (d > 0)
        printf("%-17s %lud %02luh %02lum %02lus\n", "uptime", d, h, m, sec);
    else if (h > 0)
        printf("%-17s %luh %02lum %02lus\n", "uptime", h, m, sec);
    else if (m > 0)
        printf("%-17s %lum %02lus\n", "uptime", m, sec);
    else
        printf("%-17s %.1fs\n", "uptime", s);
}

static int cmd_status(const struct ctl *o)
{
    struct answer ans;
    int rc = call(o, "GET", "/api/status", NULL, &ans);
    if (rc == 0)
        rc = check(o, &ans);
    if (rc != 0)
        goto done;
    if (o->json) {
        print_json(ans.json);
        goto done;
    }
    const json_t *j = ans.json;
    const char *v = json_string_value(json_object_get(j, "version"));
    printf("%-17s %s\n", "version", v ? v : "?");
    print_uptime(json_number_value(json_object_get(j, "uptime_s")));
    static const struct { const char *key, *label; } counters[] = {
        {"connections_open", "connections open"},
        {"exchanges", "exchanges"},
        {"events_dropped", "events dropped"},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        printf("%-17s %" JSON_INTEGER_FORMAT "\n", counters[i].label,
               json_integer_value(json_object_get(j, counters[i].key)));
    const char *cap = json_string_value(json_object_get(j, "capture"));
    const char *rules = json_string_value(json_object_get(j, "rules"));
    printf("%-17s %s\n", "capture", cap ? cap : "none");
    printf("%-17s %s\n", "rules", rules ? rules : "none");
    json_t *tls = json_object_get(j, "tls");
    if (json_is_object(tls)) { /* interception: the leaf cache's account */
        json_int_t hits = json_integer_value(json_object_get(tls, "leaf_hits"));
        json_int_t misses = json_integer_value(json_object_get(tls, "leaf_misses"));
        printf("%-17s %" JSON_INTEGER_FORMAT " made (%.2f ms each on average, %.2f ms at most), "
               "%" JSON_INTEGER_FORMAT " from the cache (%.1f%% hits)\n",
               "https leaves", misses, json_number_value(json_object_get(tls, "leaf_miss_avg_ms")),
               json_number_value(json_object_get(tls, "leaf_miss_max_ms")), hits,
               hits + misses > 0 ? 100.0 * (double)hits / (double)(hits + misses) : 0.0);
    }
done:
    json_decref(ans.json);
    return rc;
}

/* ------------------------------------------------------------------------ arguments */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "shunt ctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(`shunt ctl --help` tells more)\n");
    return CTL_USAGE;
}

int shunt_cmd_ctl(int argc, char **argv)
{
    struct ctl o = {getenv("SHUNT_ADMIN"), getenv("SHUNT_ADMIN_TOKEN"), 0, {0}};
    const char *pos[4], *token_file = NULL;
    static char from_file[SHUNT_ADMIN_TOKEN_MAX + 1];
    int n_pos = 0, only_pos = 0, token_flag = 0;
    if (o.admin == NULL || o.admin[0] == '\0')
        o.admin = CTL_DEFAULT_ADMIN;
    if (o.token != NULL && o.token[0] == '\0')
        o.token = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
        } else if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(help, stdout);
            return CTL_OK;
        } else if (!only_pos && strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (!only_pos && (strcmp(a, "--admin") == 0 || strcmp(a, "--token") == 0)) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            if (a[2] == 'a')
                o.admin = argv[++i];
            else
                o.token = argv[++i], token_flag = 1;
        } else if (!only_pos && strncmp(a, "--admin=", 8) == 0) {
            o.admin = a + 8;
        } else if (!only_pos && strncmp(a, "--token=", 8) == 0) {
            o.token = a + 8;
            token_flag = 1;
        } else if (!only_pos && strcmp(a, "--token-file") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            token_file = argv[++i];
        } else if (!only_pos && strncmp(a, "--token-file=", 13) == 0) {
            token_file = a + 13;
        } else if (!only_pos && a[0] == '-' && a[1] != '\0' && n_pos == 0) {
            return usage_error("unknown option '%s'", a);
        } else {
            if (n_pos == (int)(sizeof(pos) / sizeof(pos[0])))
                return usage_error("too many arguments ('%s')", a);
            pos[n_pos++] = a;
        }
    }
    if (n_pos == 0) {
        fputs(help, stderr);
        return CTL_USAGE;
    }
    if (shunt_addr_parse(o.admin, &o.addr) != 0)
        return usage_error("--admin wants ADDR:PORT (e.g. 127.0.0.1:8889), not '%s'", o.admin);
    char err[256], msg[1400];
    if (token_file != NULL && token_flag)
        return usage_error("%s", "give the token once (--token or --token-file)");
    if (token_file != NULL) {
        if (shunt_admin_token_read(token_file, from_file, sizeof(from_file), err, sizeof(err))) {
            snprintf(msg, sizeof(msg), "--token-file %s: %s", token_file, err);
            return usage_error("%s", msg);
        }
        o.token = from_file;
    } else if (o.token != NULL && shunt_admin_token_check(o.token, err, sizeof(err)) != 0) {
        return usage_error("%s", err);
    }

    const char *cmd = pos[0];
    if (strcmp(cmd, "options") == 0 && n_pos == 1)
        return cmd_options(&o);
    if (strcmp(cmd, "option") == 0 && n_pos == 3)
        return cmd_option(&o, pos[1], pos[2]);
    if (strcmp(cmd, "reload") == 0 && n_pos == 1)
        return cmd_reload(&o);
    if (strcmp(cmd, "status") == 0 && n_pos == 1)
        return cmd_status(&o);
    if (strcmp(cmd, "option") == 0)
        return usage_error("%s", "usage: shunt ctl option NAME on|off (quote a NAME with spaces)");
    if (strcmp(cmd, "options") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "status") == 0)
        return usage_error("'%s' takes no arguments", cmd);
    return usage_error("unknown command '%s' (options, option, reload, status)", cmd);
}
