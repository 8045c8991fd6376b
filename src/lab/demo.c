/* src/lab/demo.c - `shunt lab demo`: the story, end to end on loopback. An origin that does
 * Negotiate and strips Server (URLscan), a proxy recording into a capture with the story's
 * rule loaded but off, a client with WinINet's keep-alive policy; then one switch of the
 * rule, through the admin API, and the same client again. Every part is this binary, run
 * as a child process; every child is ended by its pid before the demo returns. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lab/lab.h"

extern char **environ;

/* How long a child may take to say where it listens, and a client run to finish. */
#define START_TIMEOUT_MS 5000
#define RUN_TIMEOUT_MS 30000
#define DEMO_REQUESTS 50

/* The story's rule, as examples/rules/add-server-header.lua has it (a test keeps the two
 * the same): the demo writes it next to its capture, so that it runs from any folder. */
static const char story_rule[] =
    "local add_server = option(\"Add Server Header\", false)   -- a named toggle, off by default\n"
    "\n"
    "function on_response(s)\n"
    "  if add_server.on and not s.response.headers:get(\"Server\") then\n"
    "    s.response.headers:add(\"Server\", \"Microsoft-IIS/6.0\")\n"
    "  end\n"
    "end\n";

static const char help[] =
    "usage: shunt lab demo [--requests N] [--dir DIR]\n"
    "\n"
    "Replays the story (../shared/story): Internet Explorer closes a keep-alive connection\n"
    "after each 200 of a Kerberos handshake because URLscan stripped the Server header.\n"
    "On free loopback ports it starts `shunt lab origin --auth negotiate --no-server-header`,\n"
    "a `shunt proxy` with a capture, the admin API and the story's rule (off), then:\n"
    "  1. a client with WinINet's policy sends N requests (default 50) through the proxy:\n"
    "     one connection and one handshake each;\n"
    "  2. the capture shows each connection closed by the client with a FIN after its 200,\n"
    "     and shunt diagnose names the cause (wininet-auth-close);\n"
    "  3. the option \"Add Server Header\" is switched on through the admin API;\n"
    "  4. the same client again: one connection, one handshake;\n"
    "  5. where to look next.\n"
    "\n"
    "options:\n"
    "  --requests N   requests per client run (default 50)\n"
    "  --dir DIR      where the capture, the rule and the logs go (default: a new folder\n"
    "                 under $TMPDIR or /tmp, kept afterwards)\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit status: 0 when the story played out as it should, 1 otherwise.\n";

struct child {
    pid_t pid;
    int out; /* its stdout, or -1 */
    const char *name;
    char buf[4096]; /* what was read of its stdout and not used yet */
    size_t len;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Starts this binary with <argv> (argv[0] is ignored), stdout on a pipe (c->out), stderr
 * into <errlog> (truncated, or appended to with <append>; NULL: ours). The pipe is not
 * inherited by the other children. Returns 0, or -1 with the reason printed. */
static int start(const char *self, char *const argv[], const char *errlog, int append,
                 struct child *c)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "shunt lab demo: pipe: %s\n", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1); /* dup2 clears close-on-exec */
    if (errlog != NULL)
        posix_spawn_file_actions_addopen(&fa, 2, errlog,
                                         O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
                                         0600);
    int r = posix_spawn(&c->pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (r != 0) {
        close(p[0]);
        c->pid = 0;
        fprintf(stderr, "shunt lab demo: cannot start %s: %s\n", c->name, strerror(r));
        return -1;
    }
    c->out = p[0];
    return 0;
}

/* Reads <c>'s stdout until a line starts with <prefix>; returns the port at the end of that
 * line ("...:PORT"), or -1 after START_TIMEOUT_MS or when the child ends. */
static int await_port(struct child *c, const char *prefix)
{
    char *buf = c->buf;
    size_t len = c->len;
    int port = -1;
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = '\0';
            int found = strncmp(buf, prefix, strlen(prefix)) == 0;
            if (found) {
                const char *colon = strrchr(buf, ':');
                port = colon ? atoi(colon + 1) : -1;
            }
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len);
            if (found) {
                c->len = len;
                return port > 0 && port < 65536 ? port : -1;
            }
        }
        c->len = len;
        uint64_t now = now_ms();
        if (now >= deadline || len == sizeof(c->buf))
            return -1;
        struct pollfd pf = {c->out, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t n = read(c->out, buf + len, sizeof(c->buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
}

/* Ends <c> by its pid (SIGTERM, then SIGKILL after 3 s) and reaps it. */
static void stop(struct child *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGTERM);
    uint64_t deadline = now_ms() + 3000;
    int st;
    while (waitpid(c->pid, &st, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    c->pid = 0;
    if (c->out >= 0)
        close(c->out);
    c->out = -1;
}

/* Runs this binary with <argv> to its end; its stdout comes back in a new string (NULL on
 * failure), its exit status in *<status>. stderr goes to <errlog> (or stays ours). */
static char *run(const char *self, char *const argv[], const char *errlog, int *status)
{
    struct child c = {0, -1, argv[1], "", 0};
    *status = -1;
    if (start(self, argv, errlog, 1, &c) != 0)
        return NULL;
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    uint64_t deadline = now_ms() + RUN_TIMEOUT_MS;
    for (;;) {
        uint64_t now = now_ms();
        if (out == NULL || now >= deadline)
            break;
        if (len + 1 >= cap) {
            char *n2 = realloc(out, cap * 2);
            if (n2 == NULL)
                break;
            out = n2;
            cap *= 2;
        }
        struct pollfd pf = {c.out, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t n = read(c.out, out + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(c.out);
    if (now_ms() >= deadline)
        kill(c.pid, SIGKILL); /* a run that hangs: ours, by its pid */
    int st;
    while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (out != NULL)
        out[len] = '\0';
    return out;
}

/* What one client run reported (its --json). */
struct summary {
    long requests, ok, failed, conns, by_client, by_server, handshakes;
    double total_ms, per_request_ms;
};

static long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

static int client_run(const char *self, int proxy_port, int origin_port, const char *requests,
                      const char *errlog, struct summary *out)
{
    char proxy[32], url[64];
    snprintf(proxy, sizeof(proxy), "127.0.0.1:%d", proxy_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", origin_port);
    char *argv[] = {"shunt",    "lab",      "client", "--policy", "wininet", "--proxy", proxy,
                    "--requests", (char *)requests, "--json", url,    NULL};
    int status;
    char *text = run(self, argv, errlog, &status);
    if (text == NULL) {
        fprintf(stderr, "shunt lab demo: the client did not run\n");
        return -1;
    }
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    free(text);
    if (!json_is_object(o)) {
        json_decref(o);
        fprintf(stderr, "shunt lab demo: the client's summary is not JSON (exit %d)\n", status);
        return -1;
    }
    out->requests = jint(o, "requests");
    out->ok = jint(o, "ok");
    out->failed = jint(o, "failed");
    out->conns = jint(o, "connections_opened");
    out->by_client = jint(o, "closed_by_client");
    out->by_server = jint(o, "closed_by_server");
    out->handshakes = jint(o, "handshakes");
    json_t *t = json_object_get(o, "total_ms");
    out->total_ms = json_is_number(t) ? json_number_value(t) : 0;
    t = json_object_get(o, "per_request_ms");
    out->per_request_ms = json_is_number(t) ? json_number_value(t) : 0;
    json_decref(o);
    return 0;
}

static void print_summary(const struct summary *s)
{
    printf("   requests %ld (%ld ok)   connections %ld   handshakes %ld   closed by the client %ld\n"
           "   time %.0f ms in all, %.2f ms a request\n",
           s->requests, s->ok, s->conns, s->handshakes, s->by_client, s->total_ms,
           s->per_request_ms);
}

/* Shows the first rows of `shunt connections DB`, once every connection of the first run
 * is in the capture (the recorder writes from its own thread). */
static void show_connections(const char *self, const char *db, long want)
{
    char limit[16];
    snprintf(limit, sizeof(limit), "%ld", want);
    char *argv_json[] = {"shunt", "connections", (char *)db, "--json", "--limit", limit, NULL};
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        int st;
        char *t = run(self, argv_json, NULL, &st);
        long closed = 0;
        json_t *o = t != NULL ? json_loads(t, 0, NULL) : NULL;
        json_t *rows = json_object_get(o, "connections");
        for (size_t i = 0; i < json_array_size(rows); i++)
            closed += json_is_string(json_object_get(json_array_get(rows, i), "closer"));
        json_decref(o);
        free(t);
        if (closed >= want || now_ms() > deadline)
            break;
        usleep(50000);
    }
    char *argv[] = {"shunt", "connections", (char *)db, "--limit", "5", NULL};
    int st;
    char *t = run(self, argv, NULL, &st);
    if (t == NULL)
        return;
    for (char *line = strtok(t, "\n"); line != NULL; line = strtok(NULL, "\n"))
        printf("   %s\n", line);
    free(t);
    printf("   ... (%ld connections in all)\n", want);
}

/* Shows the first finding of `shunt diagnose DB`, which must be wininet-auth-close.
 * Returns 0, or -1 when the diagnosis is not the story's. */
static int show_diagnosis(const char *self, const char *db)
{
    char *argv[] = {"shunt", "diagnose", (char *)db, NULL};
    int st;
    char *t = run(self, argv, NULL, &st);
    if (t == NULL || st != 1 || strstr(t, "1. wininet-auth-close") == NULL) {
        fprintf(stderr, "shunt lab demo: diagnose did not name wininet-auth-close (exit %d)\n",
                st);
        free(t);
        return -1;
    }
    /* the finding: from "1. " to the blank line that ends it */
    char *from = strstr(t, "1. wininet-auth-close");
    char *end = strstr(from, "\n\n");
    if (end != NULL)
        end[1] = '\0';
    for (char *line = strtok(from, "\n"); line != NULL; line = strtok(NULL, "\n"))
        printf("   %s\n", line);
    printf("\n");
    free(t);
    return 0;
}

int shunt_lab_demo_main(int argc, char **argv)
{
    const char *requests = "50";
    const char *dir_opt = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
            requests = argv[++i];
            char *end;
            long n = strtol(requests, &end, 10);
            if (*end != '\0' || n < 1 || n > 10000) {
                fprintf(stderr, "shunt lab demo: --requests %s: expected 1 to 10000\n", requests);
                return 2;
            }
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_opt = argv[++i];
        } else {
            fprintf(stderr, "shunt lab demo: unknown option '%s'\n\n%s", argv[i], help);
            return 2;
        }
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) {
        fprintf(stderr, "shunt lab demo: cannot find my own binary: %s\n", strerror(errno));
        return 1;
    }
    self[sl] = '\0';
    char dir[1024];
    if (dir_opt != NULL) {
        snprintf(dir, sizeof(dir), "%s", dir_opt);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "shunt lab demo: --dir %s: %s\n", dir, strerror(errno));
            return 2;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/shunt-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "shunt lab demo: cannot make a folder in %s: %s\n",
                    tmp && *tmp ? tmp : "/tmp", strerror(errno));
            return 1;
        }
    }
    char db[1100], rule[1100], olog[1100], plog[1100], clog[1100];
    snprintf(db, sizeof(db), "%s/demo.db", dir);
    snprintf(rule, sizeof(rule), "%s/add-server-header.lua", dir);
    snprintf(olog, sizeof(olog), "%s/origin.log", dir);
    snprintf(plog, sizeof(plog), "%s/proxy.log", dir);
    snprintf(clog, sizeof(clog), "%s/client.log", dir);
    unlink(db); /* a --dir used before: a new capture */
    FILE *f = fopen(rule, "w");
    if (f == NULL || fputs(story_rule, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "shunt lab demo: cannot write %s\n", rule);
        return 1;
    }

    int ok = 0;
    uint64_t t0 = now_ms();
    static struct child origin = {0, -1, "the origin", "", 0}, proxy = {0, -1, "the proxy", "", 0};
    char *oargv[] = {"shunt", "lab", "origin", "--listen", "127.0.0.1:0", "--auth", "negotiate",
                     "--no-server-header", NULL};
    if (start(self, oargv, olog, 0, &origin) != 0)
        goto done;
    int oport = await_port(&origin, "shunt lab origin: listening on");
    if (oport < 0) {
        fprintf(stderr, "shunt lab demo: the origin did not start (see %s)\n", olog);
        goto done;
    }
    char *pargv[] = {"shunt", "proxy", "--listen", "127.0.0.1:0", "--capture", db,
                     "--admin", "127.0.0.1:0", "--rules", rule, "--workers", "1", NULL};
    if (start(self, pargv, plog, 0, &proxy) != 0)
        goto done;
    int pport = await_port(&proxy, "shunt: listening on");
    int aport = pport > 0 ? await_port(&proxy, "shunt: admin API on") : -1;
    if (pport < 0 || aport < 0) {
        fprintf(stderr, "shunt lab demo: the proxy did not start (see %s)\n", plog);
        goto done;
    }

    printf("shunt lab demo: the story, on loopback (../shared/story)\n\n"
           "   origin  127.0.0.1:%d  shunt lab origin --auth negotiate --no-server-header\n"
           "           (IIS with Windows authentication behind URLscan: no Server header)\n"
           "   proxy   127.0.0.1:%d  capture %s, admin API 127.0.0.1:%d,\n"
           "           rule add-server-header.lua (option \"Add Server Header\": off)\n\n",
           oport, pport, db, aport);

    struct summary before, after;
    printf("1) a client with WinINet's keep-alive policy sends %s requests through the proxy:\n",
           requests);
    fflush(stdout);
    if (client_run(self, pport, oport, requests, clog, &before) != 0)
        goto done;
    print_summary(&before);
    printf("   => a new connection and a new Negotiate handshake for every request.\n\n");

    printf("2) the capture's connections (shunt connections %s):\n", db);
    fflush(stdout);
    show_connections(self, db, before.conns);
    printf("   => each connection carried its handshake (401, then 200) and was closed by the\n"
           "      client with a FIN right after the 200: WinINet's rule for a response in an\n"
           "      authentication context whose Server header is missing.\n\n");

    printf("   what shunt diagnose makes of it (shunt diagnose %s):\n\n", db);
    fflush(stdout);
    if (show_diagnosis(self, db) != 0)
        goto done;

    printf("3) switching the option on through the admin API:\n"
           "   $ shunt ctl --admin 127.0.0.1:%d option \"Add Server Header\" on\n", aport);
    fflush(stdout);
    char admin[32];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", aport);
    char *cargv[] = {"shunt", "ctl", "--admin", admin, "option", "Add Server Header", "on", NULL};
    int st;
    char *ctl = run(self, cargv, NULL, &st);
    if (ctl == NULL || st != 0) {
        fprintf(stderr, "shunt lab demo: the admin API refused the switch (exit %d)\n", st);
        free(ctl);
        goto done;
    }
    for (char *line = strtok(ctl, "\n"); line != NULL; line = strtok(NULL, "\n"))
        printf("   %s\n", line);
    free(ctl);
    printf("\n4) the same client again:\n");
    fflush(stdout);
    if (client_run(self, pport, oport, requests, clog, &after) != 0)
        goto done;
    print_summary(&after);
    double saved = before.total_ms - after.total_ms;
    printf("   => %ld connection(s) and %ld handshake(s) instead of %ld and %ld; %.0f ms saved"
           " (%.0f%%).\n\n",
           after.conns, after.handshakes, before.conns, before.handshakes, saved,
           before.total_ms > 0 ? 100.0 * saved / before.total_ms : 0.0);

    ok = before.ok == before.requests && after.ok == after.requests &&
         before.conns == before.requests && before.handshakes == before.requests &&
         after.conns == 1 && after.handshakes == 1;
    printf("5) where to look next:\n"
           "   shunt diagnose %s          the findings, ranked, with the evidence\n"
           "   shunt sessions %s          every exchange, one a row\n"
           "   shunt connections %s       every connection: who closed it, and how\n"
           "   shunt show %s 2            one exchange: heads as received and as sent\n"
           "   shunt export %s --har demo.har\n"
           "   logs: %s, %s\n\n",
           db, db, db, db, db, olog, plog);
    printf("%s in %.1f s.\n", ok ? "The story played out" : "The story did NOT play out as it should",
           (double)(now_ms() - t0) / 1000.0);
done:
    stop(&proxy);
    stop(&origin);
    fflush(stdout);
    return ok ? 0 : 1;
}
