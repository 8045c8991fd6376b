/* src/cli/cmd_proxy.c - `shunt proxy`: reads the options into a configuration and runs it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capture/recorder.h"
#include "cli/commands.h"
#include "core/log.h"
#include "http/target.h"
#include "net/ca.h"
#include "net/tls.h"
#include "net/listen.h"
#include "proxy/proxy.h"
#include "rules/lua.h"
#include "rules/rules.h"
#include "web/admin.h"

#include <time.h>

static const char help[] =
    "usage: shunt proxy [options]\n"
    "\n"
    "A forward proxy (absolute-form requests and CONNECT) on 127.0.0.1:8888, or with --reverse\n"
    "a reverse proxy for one origin. Each client connection gets its own upstream connection,\n"
    "kept for its life; closes are mirrored (FIN for FIN, RST for RST).\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT       where to listen (default 127.0.0.1:8888; [::1]:8888 for IPv6;\n"
    "                           port 0 picks a free one; a port in use is refused)\n"
    "  --allow CIDR[,CIDR]      clients allowed; required to listen on a non-loopback address\n"
    "  --allow-loopback-upstream\n"
    "                           let clients of a non-loopback listener reach this machine's\n"
    "                           loopback services through the proxy (refused by default;\n"
    "                           the admin API is never reachable through the proxy)\n"
    "                           (others get 403)\n"
    "  --reverse http://HOST:PORT  send every request to this origin; https://HOST[:PORT]\n"
    "                           speaks TLS to it (port 443 by default), verified as below\n"
    "  --reverse-host           with --reverse: set Host to the origin's (default: keep the\n"
    "                           client's)\n"
    "  --via                    add a Via header (off: Via makes IIS drop NTLM persistence)\n"
    "  --no-proxy-support       don't add Proxy-Support: Session-Based-Authentication to\n"
    "                           NTLM/Negotiate 401s (forward mode)\n"
    "  --workers N              event loops (default: the number of cores)\n"
    "  --grace SECONDS          on SIGINT/SIGTERM, time left to finish exchanges (default 5)\n"
    "  --header-timeout S       a request head must arrive within S (default 30)\n"
    "  --idle-timeout S         idle keep-alive connections close after S (default 120)\n"
    "  --connect-timeout S      upstream connect timeout (default 10)\n"
    "  --response-timeout S     upstream silence allowed while a response is due (default 120)\n"
    "  --tls-handshake-timeout S  a TLS handshake, with the client or an upstream, must end\n"
    "                           within S (default 10)\n"
    "  --max-line N             request/status line limit in bytes (default 8192)\n"
    "  --max-head N             header section limit in bytes (default 65536)\n"
    "  --max-headers N          header count limit (default 100)\n"
    "\n"
    "HTTPS (docs/https.md):\n"
    "  --intercept [FILTER]     decrypt CONNECT tunnels: shunt answers the client's TLS with a\n"
    "                           certificate for the host signed by its CA (`shunt ca` says\n"
    "                           where it is and how to trust it), and speaks TLS to the\n"
    "                           origin itself. FILTER: the hosts to intercept, comma-separated\n"
    "                           (example.com, *.example.com for the names below it,\n"
    "                           10.0.0.1, [::1], *; each with an optional :PORT); the other\n"
    "                           tunnels stay byte tunnels. Without\n"
    "                           FILTER every tunnel is intercepted. A tunnel whose first bytes\n"
    "                           are not TLS stays a tunnel\n"
    "  --ca-cert FILE --ca-key FILE\n"
    "                           sign with this CA (PEM; EC or RSA key) instead of shunt's own\n"
    "                           (made on first use in $XDG_DATA_HOME/shunt/)\n"
    "  --upstream-cacert FILE   trust the CAs in FILE (PEM) for origins too, besides the\n"
    "                           system's store (SSL_CERT_FILE, SSL_CERT_DIR replace that)\n"
    "  --insecure-upstream      do not verify origins' certificates (said at start and\n"
    "                           recorded in the capture): for test servers only\n"
    "\n"
    "  --capture [FILE]         record every connection and exchange into FILE (an SQLite\n"
    "                           capture, written 0600; default shunt.db; never overwritten)\n"
    "  --no-capture             don't record (the default)\n"
    "  --body-limit BYTES       bytes kept of each body in the capture (default 1048576;\n"
    "                           suffixes k, m; at most 64m)\n"
    "  --capture-queue N        records waiting for the store thread before new ones are\n"
    "                           dropped and the capture marked incomplete (default 65536)\n"
    "  --modify-headers [/FILTER]/NAME/VALUE\n"
    "                           set header NAME to VALUE on requests and responses that\n"
    "                           match FILTER (mitmproxy's syntax: the first character is the\n"
    "                           separator; an empty VALUE removes the header); repeatable\n"
    "  --add-header [/FILTER]/NAME/VALUE\n"
    "                           append a header without replacing; repeatable\n"
    "  --map-remote [/FILTER]/REGEX/REPLACEMENT\n"
    "                           send matching requests to the URL that replacing REGEX in\n"
    "                           theirs gives (\\1 for a group); repeatable, first match wins\n"
    "  --map-local [/FILTER]/REGEX/PATH\n"
    "                           answer matching requests from a local file, or from the file\n"
    "                           a folder holds under the rest of the URL (404 when there is\n"
    "                           none), without the server; repeatable, first match wins\n"
    "  --respond [/FILTER]/STATUS/FILE\n"
    "                           answer matching requests with STATUS and FILE's bytes, without\n"
    "                           the server (Fiddler's AutoResponder); repeatable\n"
    "  --rules FILE.lua         rules in Lua: option(), on_request(s), on_response(s) (see\n"
    "                           docs/lua.md); they run after the quick rules; reloaded on\n"
    "                           SIGHUP or `shunt ctl reload` (a broken file keeps the old)\n"
    "  --unsafe-lua             give the Lua rules io, os, load and require (no sandbox)\n"
    "  --admin ADDR:PORT        the admin API (options, reload, status; `shunt ctl`), default\n"
    "                           127.0.0.1:8889; elsewhere than loopback it needs --admin-token\n"
    "  --admin-token TOKEN      require Authorization: Bearer TOKEN on the admin API (ps\n"
    "                           shows it: prefer the two ways below)\n"
    "  --admin-token-file FILE  the same, with the token read from FILE (no access for group\n"
    "                           and others, e.g. mode 0600; a trailing newline is dropped)\n"
    "                           default: $SHUNT_ADMIN_TOKEN when it is set\n"
    "  --no-admin               no admin API\n"
    "  -v, --verbose            one line per exchange on stderr (-vv: debug)\n"
    "  -h, --help               this text\n"
    "\n"
    "examples:\n"
    "  shunt proxy &  curl -x http://127.0.0.1:8888 http://127.0.0.1:8080/\n"
    "  shunt proxy --listen 127.0.0.1:9000 --reverse http://127.0.0.1:8080 -v\n"
    "  shunt proxy --intercept '*.example.com' --capture &\n"
    "  curl --cacert ~/.local/share/shunt/ca.pem -x http://127.0.0.1:8888 https://www.example.com/\n";

/* -v: the exchange line. */
static void log_exchange(const struct shunt_event *ev, void *ud)
{
    (void)ud;
    shunt_log_raw("shunt: exchange conn=%" PRIu64 " client=%d upstream=%d idx=%" PRIu64
                  " %s %s %d bytes=%" PRIu64 " ms=%.1f%s%s",
                  ev->conn_id, ev->peer_port, ev->local_port, ev->exchange, ev->method, ev->url,
                  ev->status, ev->resp_bytes, (double)ev->duration_us / 1000.0,
                  ev->error ? " error=" : "", ev->error ? ev->error : "");
}

/* What the admin API's status reads. */
struct status_ctx {
    struct timespec started;
    struct shunt_recorder *recorder;
    const char *capture;
    const char *rules;
    struct shunt_ca *ca; /* interception's CA, or NULL */
};

/* Quick rules first, then Lua: one hook calling both. */
struct hooks {
    struct shunt_rules *quick; /* NULL: none */
    struct shunt_lua *lua;     /* NULL: no --rules */
};

static void both_hooks(void *ud, struct shunt_head_edit *edit, const struct shunt_head_ctx *ctx,
                       shunt_head_change_cb change, void *cctx)
{
    struct hooks *h = ud;
    if (h->quick != NULL)
        shunt_rules_head_hook(h->quick, edit, ctx, change, cctx);
    if (h->lua != NULL)
        shunt_lua_head_hook(h->lua, edit, ctx, change, cctx);
}

/* The admin API's reload (admin thread). */
static int reload_rules(void *ud, char *err, size_t err_len)
{
    return shunt_lua_reload(ud, err, err_len);
}

/* SIGHUP (main thread): the outcome goes to the log. */
static void hup_reload(void *ud)
{
    char err[512] = "";
    if (shunt_lua_reload(ud, err, sizeof(err)) != 0)
        shunt_log(SHUNT_LOG_ERROR, "reload: %s (the old rules keep running)", err);
    else
        shunt_log(SHUNT_LOG_WARN, "reload: rules reloaded from %s", shunt_lua_path(ud));
}

static void admin_status(void *ud, struct shunt_admin_status *out)
{
    struct status_ctx *c = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct shunt_proxy_stats st;
    shunt_proxy_stats(&st);
    memset(out, 0, sizeof(*out));
    out->uptime_s = (double)(now.tv_sec - c->started.tv_sec) +
                    (double)(now.tv_nsec - c->started.tv_nsec) / 1e9;
    out->connections_open = st.connections_open;
    out->exchanges = st.exchanges;
    out->events_dropped = c->recorder ? shunt_recorder_dropped(c->recorder) : 0;
    out->capture = c->capture;
    out->rules = c->rules;
    if (c->ca != NULL) {
        struct shunt_ca_stats cs;
        shunt_ca_stats(c->ca, &cs);
        out->intercept = 1;
        out->tls_leaf_hits = cs.hits;
        out->tls_leaf_misses = cs.misses;
        out->tls_leaf_cached = cs.cached;
        out->tls_leaf_miss_avg_ms = cs.misses ? (double)cs.miss_ns_total / cs.misses / 1e6 : 0;
        out->tls_leaf_miss_max_ms = (double)cs.miss_ns_max / 1e6;
    }
}

/* Sets admin->token from --admin-token or --admin-token-file (<opt>, with <val>), else from
 * $SHUNT_ADMIN_TOKEN. Returns 0, or -1 after printing why the token cannot be used. */
static int resolve_admin_token(const char *opt, const char *val, struct shunt_admin_config *admin)
{
    static char from_file[SHUNT_ADMIN_TOKEN_MAX + 1]; /* process lifetime, like the config */
    char err[256];
    const char *where = opt;
    if (opt != NULL && strcmp(opt, "--admin-token-file") == 0) {
        if (shunt_admin_token_read(val, from_file, sizeof(from_file), err, sizeof(err)) != 0) {
            fprintf(stderr, "shunt proxy: %s %s: %s\n", opt, val, err);
            return -1;
        }
        admin->token = from_file;
        return 0;
    }
    if (opt == NULL) {
        val = getenv("SHUNT_ADMIN_TOKEN");
        where = "SHUNT_ADMIN_TOKEN";
        if (val == NULL)
            return 0;
    }
    if (shunt_admin_token_check(val, err, sizeof(err)) != 0) {
        fprintf(stderr, "shunt proxy: %s: %s%s\n", where, err,
                opt == NULL && *val == '\0' ? " (unset it for no token)" : "");
        return -1;
    }
    admin->token = val;
    return 0;
}

/* Returns 1 when nothing listens on <sa> yet (shunt_listen_probe()), or a port 0; otherwise
 * prints why and returns 0. The proxy checks again when it binds; checking first keeps a
 * refused start from leaving a capture file behind. */
static int listen_free(const struct sockaddr_storage *sa)
{
    struct sockaddr_storage probe = *sa;
    char msg[200];
    int r = shunt_listen_probe(&probe);
    if (r == 0)
        return 1;
    shunt_listen_describe((const struct sockaddr *)sa, r, msg, sizeof(msg));
    fprintf(stderr, "shunt proxy: %s\n", msg);
    return 0;
}

static int bad(const char *opt, const char *val, const char *why)
{
    fprintf(stderr, "shunt proxy: %s %s: %s\n", opt, val ? val : "", why);
    return 2;
}

static int parse_num(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "1048576", "64k", "1m" */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *s == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    if (*end != '\0' || v > (1ull << 40) / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_reverse(struct shunt_proxy_config *cfg, const char *url)
{
    struct shunt_target t;
    int tls = strncmp(url, "https://", 8) == 0;
    if ((!tls && strncmp(url, "http://", 7) != 0) ||
        shunt_http_split_target(shunt_slice_make(url, strlen(url)), 0, &t) !=
            SHUNT_TARGET_ABSOLUTE)
        return -1;
    if (t.path.len > 0 && !(t.path.len == 1 && t.path.base[0] == '/'))
        return -1; /* a path would be silently ignored: refuse it */
    struct shunt_authority au;
    if (shunt_http_split_authority(t.authority, tls ? 443 : 80, 0, &au) != NULL ||
        au.host.len >= sizeof(cfg->reverse_host))
        return -1;
    memcpy(cfg->reverse_host, au.host.base, au.host.len);
    cfg->reverse_host[au.host.len] = '\0';
    cfg->reverse_port = au.port;
    cfg->reverse = 1;
    cfg->reverse_tls = tls;
    return 0;
}

/* ----------------------------------------------------------------------- --intercept FILTER */

#define MAX_INTERCEPT 64

/* One host pattern of --intercept: "example.com", "*.example.com" (any name below it, not
 * example.com itself, as in a certificate), "*" (any host), an IP literal; optional port. */
struct host_pattern {
    char host[256]; /* lower case; for a wildcard, the part after "*." */
    int wildcard;   /* 1: "*.host"; 2: "*" */
    int port;       /* 0: any */
};

static struct host_pattern intercept_pats[MAX_INTERCEPT];
static size_t n_intercept_pats;

/* Worker threads; reads only what the command line wrote before the proxy ran. */
static int intercept_match(void *ud, const char *host, int port)
{
    (void)ud;
    size_t hl = strlen(host);
    for (size_t i = 0; i < n_intercept_pats; i++) {
        const struct host_pattern *p = &intercept_pats[i];
        if (p->port != 0 && p->port != port)
            continue;
        if (p->wildcard == 2)
            return 1;
        if (p->wildcard == 1) {
            size_t pl = strlen(p->host);
            if (hl > pl + 1 && host[hl - pl - 1] == '.' &&
                strcasecmp(host + hl - pl, p->host) == 0)
                return 1;
        } else if (strcasecmp(host, p->host) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parses one pattern of FILTER into <out>. Returns NULL, or why it is not one. */
static const char *parse_pattern(const char *tok, struct host_pattern *out)
{
    char buf[300];
    memset(out, 0, sizeof(*out));
    if (strlen(tok) >= sizeof(buf))
        return "too long";
    snprintf(buf, sizeof(buf), "%s", tok);
    char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL)
            return "an IPv6 address needs its closing ]";
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return "expected :PORT after ]";
        if (!shunt_ca_is_ip(host))
            return "not an IPv6 address between [ ]";
    } else {
        port = strchr(buf, ':');
        if (port != NULL) {
            *port++ = '\0';
            if (strchr(port, ':') != NULL)
                return "an IPv6 address goes between [ ], e.g. [::1]:443";
        }
    }
    if (port != NULL) {
        double p;
        if (parse_num(port, 1, 65535, &p) != 0 || p != (int)p)
            return "expected a port from 1 to 65535 after :";
        out->port = (int)p;
    }
    if (strcmp(host, "*") == 0) {
        out->wildcard = 2;
        return NULL;
    }
    if (strncmp(host, "*.", 2) == 0) {
        out->wildcard = 1;
        host += 2;
    }
    if (*host == '\0')
        return "expected a host name";
    if (strlen(host) > 253)
        return "a host name has at most 253 characters";
    if (!shunt_ca_is_ip(host)) {
        for (const char *c = host; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_'))
                return "a host name has letters, digits, '-', '_' and '.' only (a wildcard "
                       "only as a first label: *.example.com)";
    } else if (out->wildcard) {
        return "an IP address takes no wildcard";
    }
    for (char *c = host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    snprintf(out->host, sizeof(out->host), "%.253s", host);
    return NULL;
}

/* Parses --intercept's FILTER. Returns 0, or 2 after saying what is wrong. */
static int parse_intercept(const char *filter)
{
    char buf[4096];
    if (strlen(filter) >= sizeof(buf))
        return bad("--intercept", NULL, "the host list is too long");
    snprintf(buf, sizeof(buf), "%s", filter);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t l = strlen(tok);
        while (l > 0 && tok[l - 1] == ' ')
            tok[--l] = '\0';
        if (*tok == '\0')
            continue;
        if (n_intercept_pats == MAX_INTERCEPT)
            return bad("--intercept", filter, "more than 64 host patterns");
        const char *why = parse_pattern(tok, &intercept_pats[n_intercept_pats]);
        if (why != NULL) {
            fprintf(stderr, "shunt proxy: --intercept %s: %s\n", tok, why);
            return 2;
        }
        n_intercept_pats++;
    }
    if (n_intercept_pats == 0)
        return bad("--intercept", filter, "expected host patterns, e.g. example.com,*.test:8443");
    return 0;
}

int shunt_cmd_proxy(int argc, char **argv)
{
    static struct shunt_proxy_config cfg; /* process lifetime: the workers read it */
    shunt_proxy_config_init(&cfg);
    const char *listen_text = "127.0.0.1:8888";
    int verbose = 0;
    struct shunt_recorder_config rec = {NULL, NULL, SHUNT_RECORDER_BODY_LIMIT_DEFAULT,
                                        SHUNT_RECORDER_QUEUE_RECORDS_DEFAULT,
                                        SHUNT_RECORDER_QUEUE_BYTES_DEFAULT};
    static struct shunt_rules *rules; /* process lifetime, like cfg */
    static struct shunt_admin_config admin = {0};
    static struct status_ctx status;
    const char *admin_text = "127.0.0.1:8889";
    int admin_on = 1, admin_explicit = 0, allow_loopback_upstream = 0;
    const char *lua_path = NULL;
    int unsafe_lua = 0;
    const char *token_opt = NULL, *token_val = NULL; /* --admin-token[-file] and its value */
    static struct hooks hooks;
    int intercept = 0;
    const char *ca_cert = NULL, *ca_key = NULL, *upstream_cacert = NULL;
    static struct shunt_ca *ca; /* process lifetime: the server context's leaves come from it */
    if (shunt_addr_parse(admin_text, &admin.listen) != 0)
        return 1;
    rules = shunt_rules_new();
    char cmdline[4096];
    size_t cl = (size_t)snprintf(cmdline, sizeof(cmdline), "shunt");
    for (int i = 0; i < argc && cl < sizeof(cmdline); i++) /* the capture keeps no token */
        cl += (size_t)snprintf(cmdline + cl, sizeof(cmdline) - cl, " %s",
                               i > 0 && strcmp(argv[i - 1], "--admin-token") == 0 ? "***"
                               : strncmp(argv[i], "--admin-token=", 14) == 0 ? "--admin-token=***"
                                                                              : argv[i]);
    for (int i = 1; i < argc; i++) {
        char *opt = argv[i], *val = NULL;
        char *eq = strncmp(opt, "--", 2) == 0 ? strchr(opt, '=') : NULL;
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        }
#define NEED_VAL()                                                                                 \
    do {                                                                                           \
        if (val == NULL) {                                                                         \
            if (i + 1 >= argc)                                                                     \
                return bad(opt, NULL, "needs a value");                                            \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)
        double d;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(opt, "-v") == 0 || strcmp(opt, "--verbose") == 0) {
            verbose++;
        } else if (strcmp(opt, "-vv") == 0) {
            verbose += 2;
        } else if (strcmp(opt, "--listen") == 0) {
            NEED_VAL();
            if (shunt_addr_parse(val, &cfg.listen) != 0)
                return bad(opt, val, "expected ADDR:PORT, e.g. 127.0.0.1:8888 or [::1]:8888");
            listen_text = val;
        } else if (strcmp(opt, "--allow-loopback-upstream") == 0) {
            allow_loopback_upstream = 1;
        } else if (strcmp(opt, "--allow") == 0) {
            NEED_VAL();
            char buf[1024];
            snprintf(buf, sizeof(buf), "%s", val);
            for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (cfg.n_allow == SHUNT_PROXY_MAX_ALLOW)
                    return bad(opt, val, "too many networks");
                if (shunt_cidr_parse(tok, &cfg.allow[cfg.n_allow]) != 0)
                    return bad(opt, tok, "expected a CIDR such as 10.0.0.0/8 or ::1/128");
                cfg.n_allow++;
            }
            if (cfg.n_allow == 0)
                return bad(opt, val, "expected at least one CIDR");
        } else if (strcmp(opt, "--reverse") == 0) {
            NEED_VAL();
            if (parse_reverse(&cfg, val) != 0)
                return bad(opt, val, "expected http://HOST:PORT or https://HOST[:PORT]");
        } else if (strcmp(opt, "--intercept") == 0) {
            /* FILTER is optional: "--intercept" alone, or followed by an option, is all */
            if (val == NULL && i + 1 < argc && argv[i + 1][0] != '-')
                val = argv[++i];
            intercept = 1;
            if (val != NULL && parse_intercept(val) != 0)
                return 2;
        } else if (strcmp(opt, "--ca-cert") == 0 || strcmp(opt, "--ca-key") == 0 ||
                   strcmp(opt, "--upstream-cacert") == 0) {
            NEED_VAL();
            if (*val == '\0')
                return bad(opt, val, "needs a file name");
            if (strcmp(opt, "--ca-cert") == 0)
                ca_cert = val;
            else if (strcmp(opt, "--ca-key") == 0)
                ca_key = val;
            else
                upstream_cacert = val;
        } else if (strcmp(opt, "--insecure-upstream") == 0) {
            cfg.insecure_upstream = 1;
        } else if (strcmp(opt, "--tls-handshake-timeout") == 0) {
            NEED_VAL();
            if (parse_num(val, 0.001, 86400, &d) != 0)
                return bad(opt, val, "expected seconds (> 0)");
            cfg.tls_handshake_timeout_ms = (uint64_t)(d * 1000.0 + 0.5);
            if (cfg.tls_handshake_timeout_ms == 0)
                cfg.tls_handshake_timeout_ms = 1;
        } else if (strcmp(opt, "--reverse-host") == 0) {
            cfg.reverse_host_header = 1;
        } else if (strcmp(opt, "--capture") == 0) {
            /* the name is optional: "--capture" alone, or followed by an option, is shunt.db */
            if (val == NULL && i + 1 < argc && argv[i + 1][0] != '-')
                val = argv[++i];
            rec.path = val != NULL ? val : "shunt.db";
            if (*rec.path == '\0')
                return bad(opt, val, "needs a file name");
        } else if (strcmp(opt, "--respond") == 0 || strcmp(opt, "--map-remote") == 0 ||
                   strcmp(opt, "--map-local") == 0) {
            NEED_VAL();
            char err[1200];
            int bad_rule = strcmp(opt, "--respond") == 0
                               ? shunt_rules_add_respond(rules, val, err, sizeof(err))
                           : strcmp(opt, "--map-remote") == 0
                               ? shunt_rules_add_map_remote(rules, val, err, sizeof(err))
                               : shunt_rules_add_map_local(rules, val, err, sizeof(err));
            if (bad_rule != 0) {
                fprintf(stderr, "shunt proxy: %s\n", err);
                return 2;
            }
        } else if (strcmp(opt, "--modify-headers") == 0 || strcmp(opt, "--add-header") == 0) {
            NEED_VAL();
            char err[512];
            enum shunt_quick_kind k =
                strcmp(opt, "--add-header") == 0 ? SHUNT_QUICK_ADD : SHUNT_QUICK_MODIFY;
            if (shunt_rules_add_quick(rules, k, val, err, sizeof(err)) != 0) {
                fprintf(stderr, "shunt proxy: %s\n", err);
                return 2;
            }
        } else if (strcmp(opt, "--rules") == 0) {
            NEED_VAL();
            if (*val == '\0')
                return bad(opt, val, "needs a file name");
            lua_path = val;
        } else if (strcmp(opt, "--unsafe-lua") == 0) {
            unsafe_lua = 1;
        } else if (strcmp(opt, "--admin") == 0) {
            NEED_VAL();
            if (shunt_addr_parse(val, &admin.listen) != 0)
                return bad(opt, val, "expected ADDR:PORT, e.g. 127.0.0.1:8889");
            admin_text = val;
            admin_on = admin_explicit = 1;
        } else if (strcmp(opt, "--admin-token") == 0 || strcmp(opt, "--admin-token-file") == 0) {
            NEED_VAL();
            if (token_opt != NULL) {
                fprintf(stderr, "shunt proxy: %s: give the token once (--admin-token or "
                        "--admin-token-file)\n", opt);
                return 2;
            }
            token_opt = opt;
            token_val = val;
        } else if (strcmp(opt, "--no-admin") == 0) {
            admin_on = 0;
        } else if (strcmp(opt, "--no-capture") == 0) {
            rec.path = NULL;
        } else if (strcmp(opt, "--body-limit") == 0) {
            NEED_VAL();
            if (parse_size(val, &rec.body_limit) != 0)
                return bad(opt, val, "expected a size in bytes (e.g. 1048576, 64k, 1m)");
        } else if (strcmp(opt, "--capture-queue") == 0) {
            NEED_VAL();
            if (parse_num(val, 1, 100000000, &d) != 0 || d != (double)(size_t)d)
                return bad(opt, val, "expected a number of records (1 or more)");
            rec.queue_records = (size_t)d;
        } else if (strcmp(opt, "--via") == 0) {
            cfg.via = 1;
        } else if (strcmp(opt, "--no-proxy-support") == 0) {
            cfg.proxy_support = 0;
        } else if (strcmp(opt, "--workers") == 0) {
            NEED_VAL();
            if (parse_num(val, 1, 256, &d) != 0 || d != (int)d)
                return bad(opt, val, "expected a whole number from 1 to 256");
            cfg.workers = (int)d;
        } else if (strcmp(opt, "--grace") == 0) {
            NEED_VAL();
            if (parse_num(val, 0, 86400, &cfg.grace_s) != 0)
                return bad(opt, val, "expected seconds");
        } else if (strcmp(opt, "--header-timeout") == 0 || strcmp(opt, "--idle-timeout") == 0 ||
                   strcmp(opt, "--connect-timeout") == 0 ||
                   strcmp(opt, "--response-timeout") == 0) {
            NEED_VAL();
            if (parse_num(val, 0.001, 86400, &d) != 0)
                return bad(opt, val, "expected seconds (> 0)");
            uint64_t ms = (uint64_t)(d * 1000.0 + 0.5);
            if (ms == 0)
                ms = 1;
            if (opt[2] == 'h')
                cfg.header_timeout_ms = ms;
            else if (opt[2] == 'i')
                cfg.idle_timeout_ms = ms;
            else if (opt[2] == 'c')
                cfg.connect_timeout_ms = ms;
            else
                cfg.response_timeout_ms = ms;
        } else if (strcmp(opt, "--max-line") == 0 || strcmp(opt, "--max-head") == 0 ||
                   strcmp(opt, "--max-headers") == 0) {
            NEED_VAL();
            int headers = strcmp(opt, "--max-headers") == 0;
            if (parse_num(val, headers ? 1 : 64, headers ? 10000 : 64 * 1024 * 1024, &d) != 0 ||
                d != (double)(size_t)d)
                return bad(opt, val, headers ? "expected 1 to 10000" : "expected 64 to 67108864");
            if (headers)
                cfg.limits.max_headers = (size_t)d;
            else if (strcmp(opt, "--max-line") == 0)
                cfg.limits.max_line = (size_t)d;
            else
                cfg.limits.max_head = (size_t)d;
        } else {
            fprintf(stderr, "shunt proxy: unknown option '%s' (see shunt proxy --help)\n", opt);
            return 2;
        }
#undef NEED_VAL
    }
    if (resolve_admin_token(token_opt, token_val, &admin) != 0)
        return 2;
    if (cfg.reverse_host_header && !cfg.reverse)
        return bad("--reverse-host", NULL, "only makes sense with --reverse");
    if ((ca_cert != NULL || ca_key != NULL) && !intercept)
        return bad(ca_cert ? "--ca-cert" : "--ca-key", NULL, "only makes sense with --intercept");
    if ((ca_cert == NULL) != (ca_key == NULL))
        return bad(ca_cert ? "--ca-cert" : "--ca-key", NULL,
                   "give both --ca-cert and --ca-key (the CA's certificate and its key)");
    if (intercept && cfg.reverse)
        return bad("--intercept", NULL, "is for a forward proxy's CONNECT tunnels, not --reverse");
    int tls_upstream = intercept || cfg.reverse_tls;
    if (upstream_cacert != NULL && !tls_upstream)
        return bad("--upstream-cacert", upstream_cacert,
                   "only makes sense with --intercept or --reverse https://");
    if (cfg.insecure_upstream && !tls_upstream)
        return bad("--insecure-upstream", NULL,
                   "only makes sense with --intercept or --reverse https://");
    cfg.refuse_local_upstreams =
        !shunt_addr_is_loopback((struct sockaddr *)&cfg.listen) && !allow_loopback_upstream;
    if (!shunt_addr_is_loopback((struct sockaddr *)&cfg.listen) && cfg.n_allow == 0) {
        fprintf(stderr,
                "shunt proxy: %s is not a loopback address: anyone who can reach it could use "
                "this proxy. Say who may, with --allow CIDR (e.g. --allow 10.0.0.0/8).\n",
                listen_text);
        return 2;
    }
    if (verbose >= 2)
        shunt_log_threshold = SHUNT_LOG_DEBUG;
    else if (verbose == 1)
        shunt_log_threshold = SHUNT_LOG_INFO;
    if (verbose && shunt_proxy_subscribe(&cfg, log_exchange, NULL, 1u << SHUNT_EV_EXCHANGE_DONE))
        return 1;
    if (unsafe_lua && lua_path == NULL)
        return bad("--unsafe-lua", NULL, "only makes sense with --rules FILE.lua");
    if (tls_upstream) { /* first: a bad --upstream-cacert must not leave a new CA behind */
        char err[1200];
        cfg.tls_upstream = shunt_tls_ctx_client(upstream_cacert, cfg.insecure_upstream, err,
                                                sizeof(err));
        if (cfg.tls_upstream == NULL) {
            fprintf(stderr, "shunt proxy: --upstream-cacert %s\n", err);
            return 2;
        }
        if (cfg.insecure_upstream)
            shunt_log(SHUNT_LOG_WARN,
                      "--insecure-upstream: origins' certificates are NOT verified: anyone "
                      "between shunt and them can read and change the traffic (test servers "
                      "only)");
    }
    if (intercept) {
        char err[9000];
        if (shunt_ca_open(ca_cert, ca_key, &ca, err, sizeof(err)) != 0) {
            fprintf(stderr, "shunt proxy: %s%s\n", ca_cert ? "--ca-cert/--ca-key: " : "CA: ",
                    err);
            return 2;
        }
        struct shunt_ca_info info;
        shunt_ca_info(ca, &info);
        if (info.made)
            shunt_log(SHUNT_LOG_WARN,
                      "there was no CA yet: made one in %s; clients must trust it (`shunt ca` "
                      "tells how)", info.cert_path);
        cfg.tls_server = shunt_tls_ctx_server(ca, err, sizeof(err));
        if (cfg.tls_server == NULL) {
            fprintf(stderr, "shunt proxy: --intercept: %s\n", err);
            return 1;
        }
        if (n_intercept_pats > 0) {
            cfg.intercept_hook = intercept_match;
            cfg.intercept_hook_ud = NULL;
        }
    }
    if (lua_path != NULL) {
        char err[600];
        if (shunt_lua_load(lua_path, unsafe_lua, cfg.workers, &hooks.lua, err, sizeof(err)) != 0) {
            fprintf(stderr, "shunt proxy: --rules %s\n", err);
            return 2;
        }
        if (unsafe_lua)
            shunt_log(SHUNT_LOG_WARN, "--unsafe-lua: the rules in %s run without a sandbox",
                      lua_path);
        cfg.on_hup = hup_reload;
        cfg.on_hup_ud = hooks.lua;
        cfg.conn_hook = shunt_lua_conn_hook; /* on_connect, on_close (a reload may add them) */
        cfg.conn_hook_ud = hooks.lua;
        admin.reload = reload_rules;
        admin.reload_ud = hooks.lua;
        status.rules = lua_path;
    }
    if (!shunt_rules_empty(rules))
        hooks.quick = rules;
    if (hooks.quick != NULL || hooks.lua != NULL) {
        cfg.head_hook = both_hooks;
        cfg.head_hook_ud = &hooks;
    }
    if (shunt_rules_responds(rules)) { /* canned responses decide before any server is asked */
        cfg.request_hook = shunt_rules_request_hook;
        cfg.request_hook_ud = rules;
    }
    if (!listen_free(&cfg.listen)) { /* before the capture file and the admin API are made */
        shunt_lua_free(hooks.lua);
        return 2;
    }
    struct shunt_recorder *recorder = NULL;
    if (rec.path != NULL) {
        char err[1200];
        rec.command_line = cmdline;
        if (shunt_recorder_open(&rec, &recorder, err, sizeof(err)) != 0) {
            fprintf(stderr, "shunt proxy: --capture %s\n", err);
            shunt_lua_free(hooks.lua);
            return 2;
        }
        if (shunt_proxy_subscribe(&cfg, shunt_recorder_on_event, recorder,
                                  shunt_recorder_mask()) != 0)
            return 1;
    }
    struct shunt_admin *adm = NULL;
    static char announce[128];
    if (admin_on) {
        char err[512];
        int port = 0;
        clock_gettime(CLOCK_MONOTONIC, &status.started);
        status.recorder = recorder;
        status.capture = rec.path;
        status.ca = cfg.tls_server != NULL ? ca : NULL;
        admin.status = admin_status;
        admin.status_ud = &status;
        if (shunt_admin_start(&admin, &adm, &port, err, sizeof(err)) != 0) {
            if (admin_explicit) {
                fprintf(stderr, "shunt proxy: --admin %s: %s\n", admin_text, err);
                shunt_recorder_close(recorder);
                shunt_lua_free(hooks.lua);
                return 2;
            }
            /* the default port is taken (another shunt?): go on without the admin API */
            shunt_log(SHUNT_LOG_WARN, "no admin API: %s (use --admin ADDR:PORT)", err);
        } else {
            char a[64];
            int unused = shunt_addr_format((struct sockaddr *)&admin.listen, a, sizeof(a));
            (void)unused;
            snprintf(announce, sizeof(announce),
                     admin.listen.ss_family == AF_INET6 ? "shunt: admin API on [%s]:%d"
                                                        : "shunt: admin API on %s:%d",
                     a, port);
            cfg.announce = announce;
            cfg.admin_addr = admin.listen; /* never an upstream: see forbidden_upstream() */
            if (admin.listen.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&cfg.admin_addr)->sin6_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in *)&cfg.admin_addr)->sin_port = htons((uint16_t)port);
        }
    }
    int r = shunt_proxy_run(&cfg);
    shunt_admin_stop(adm);
    shunt_tls_ctx_free(cfg.tls_server); /* the workers have stopped */
    shunt_tls_ctx_free(cfg.tls_upstream);
    if (ca != NULL) {
        /* the leaf cache's account, once, at the end: what bench/tls.sh reports */
        struct shunt_ca_stats st;
        shunt_ca_stats(ca, &st);
        if (st.misses > 0)
            shunt_log_raw("shunt: TLS leaf certificates: %" PRIu64 " made (%.3f ms each on "
                          "average, the slowest %.3f ms), %" PRIu64 " from the cache (hit rate "
                          "%.1f %%)",
                          st.misses, (double)st.miss_ns_total / (double)st.misses / 1e6,
                          (double)st.miss_ns_max / 1e6, st.hits,
                          100.0 * (double)st.hits / (double)(st.hits + st.misses));
    }
    shunt_ca_free(ca);
    shunt_lua_free(hooks.lua); /* the workers have stopped */
    if (shunt_recorder_close(recorder) != 0 && r == 0)
        r = 1;
    return r < 0 ? 2 : r == 0 ? 0 : 1; /* r < 0: it could not start, and said why */
}
