/* fuzz/fuzz_proxy.c - the proxy itself under libFuzzer: a running `shunt proxy` (reverse
 * mode, one worker, a capture, quick and Lua rules) between a client and an origin that the
 * driver plays both of, from the fuzz input.
 *
 * The input is a script of steps, each an op byte and a length byte, then the bytes:
 *   op % 8 == 0..2  the client sends <len> bytes
 *   op % 8 == 3..4  the origin (its newest connection from the proxy) sends <len> bytes
 *   op % 8 == 5     the client half-closes (FIN)
 *   op % 8 == 6     the origin half-closes (FIN)
 *   op % 8 == 7     <len> odd: the client resets (RST) and the script ends; even: the origin
 *                   resets its newest connection
 * After each step the driver reads whatever both sides got (so the proxy never waits on a
 * full socket) until they are quiet for a millisecond. At the end the client half-closes and
 * both sides are read until the client's EOF or a bound. The fuzzer finds what the sanitizers
 * see in the proxy's thread: the session state machine, the parser on live buffers, the rules'
 * edits, the recorder. Timeouts are milliseconds, so no state waits long.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"

/* The proxy's thread keeps what it pools across inputs, which a per-input leak check would
 * take for leaks; the integration suite runs the binary with LeakSanitizer instead. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

static const char rules_lua[] =
    "local tag = option('Tag', true)\n"
    "function on_request(s)\n"
    "  local h = s.request.headers\n"
    "  if tag.on then h:set('X-Fuzz', s.request.method .. ' ' .. s.request.url) end\n"
    "  for _, f in ipairs(h:list()) do local _ = f.name .. (f.value or '') end\n"
    "  if h:get('X-Respond') then s:respond(299, {['X-A'] = h:get('X-Respond')}, 'r') end\n"
    "  local v = h:get('Cookie') or s.request.url\n"
    "  local a, b = v:match('^(%w+)=(.-);')\n"
    "  if a then h:set('X-Pair', a .. '|' .. b:gsub('%s+', ' ')) end\n"
    "end\n"
    "function on_response(s)\n"
    "  local h = s.response.headers\n"
    "  if not h:get('Server') then h:add('Server', 'Microsoft-IIS/6.0') end\n"
    "  h:remove('X-Drop')\n"
    "end\n";

static int origin_lfd = -1;
static int proxy_port;
static char *proxy_argv[40];

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

static void *run_proxy(void *arg)
{
    int argc = 0;
    while (proxy_argv[argc] != NULL)
        argc++;
    int r = shunt_cmd_proxy(argc, proxy_argv);
    fprintf(stderr, "fuzz_proxy: the proxy stopped (%d)\n", r);
    abort(); /* it must never stop by itself */
    return arg;
}

static int connect_proxy(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)proxy_port)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static char tmpdir[] = "/tmp/shunt-fuzz-proxy.XXXXXX";

/* The capture and the rules go with the process (the proxy's thread may still write: the
 * names go, the inodes last until it is gone too). */
static void remove_tmpdir(void)
{
    char path[64];
    static const char *const names[] = {"c.db", "c.db-wal", "c.db-shm", "c.db-journal", "r.lua"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    int origin_port;
    origin_lfd = listen_loopback(&origin_port);
    fcntl(origin_lfd, F_SETFL, O_NONBLOCK);
    int probe = listen_loopback(&proxy_port); /* a free port for the proxy */
    close(probe);

    const char *dir = mkdtemp(tmpdir);
    if (dir == NULL)
        abort();
    atexit(remove_tmpdir);
    static char capture[64], rules[64], listen[32], reverse[48];
    snprintf(capture, sizeof(capture), "%s/c.db", dir);
    snprintf(rules, sizeof(rules), "%s/r.lua", dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", proxy_port);
    snprintf(reverse, sizeof(reverse), "http://127.0.0.1:%d", origin_port);
    FILE *f = fopen(rules, "w");
    if (f == NULL || fputs(rules_lua, f) < 0 || fclose(f) != 0)
        abort();
    char *args[] = {"proxy", "--listen", listen, "--reverse", reverse, "--workers", "1",
                    "--no-admin", "--capture", capture, "--rules", rules,
                    "--modify-headers", "/~s/X-Seen/1", "--add-header", "/~q/Via/1.1 fuzz",
                    "--header-timeout", "0.05", "--idle-timeout", "0.05",
                    "--connect-timeout", "0.2", "--response-timeout", "0.05", "--grace", "0.1",
                    "--max-headers", "40", "--max-head", "8192", "--max-line", "2048", NULL};
    memcpy(proxy_argv, args, sizeof(args));
    pthread_t t;
    if (pthread_create(&t, NULL, run_proxy, NULL) != 0)
        abort();
    for (int i = 0; i < 1000; i++) { /* up to 10 s for it to listen */
        int fd = connect_proxy();
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(10000);
    }
    fprintf(stderr, "fuzz_proxy: the proxy did not listen on %s\n", listen);
    abort();
    (void)argc;
    (void)argv;
}

#define MAX_ORIGINS 8

struct play {
    int client;                   /* -1 once closed */
    int client_eof;
    int origins[MAX_ORIGINS];     /* the proxy's connections to the origin, newest last */
    int n_origins;
};

static void accept_origins(struct play *p)
{
    for (;;) {
        int fd = accept4(origin_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (p->n_origins == MAX_ORIGINS) {
            close(fd);
            continue;
        }
        p->origins[p->n_origins++] = fd;
    }
}

/* Reads what both sides got until nothing came for <quiet_ms>, or <bound_ms> passed. */
static void pump(struct play *p, int quiet_ms, int bound_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char buf[65536];
    for (;;) {
        accept_origins(p);
        struct pollfd fds[MAX_ORIGINS + 2];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = origin_lfd, .events = POLLIN};
        if (p->client >= 0 && !p->client_eof)
            fds[n++] = (struct pollfd){.fd = p->client, .events = POLLIN};
        for (int i = 0; i < p->n_origins; i++)
            if (p->origins[i] >= 0)
                fds[n++] = (struct pollfd){.fd = p->origins[i], .events = POLLIN};
        if (poll(fds, (nfds_t)n, quiet_ms) <= 0)
            return;
        for (int i = 1; i < n; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t k = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (k > 0)
                continue;
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (fds[i].fd == p->client) {
                p->client_eof = 1;
            } else {
                for (int j = 0; j < p->n_origins; j++) {
                    if (p->origins[j] == fds[i].fd) {
                        close(fds[i].fd);
                        p->origins[j] = -1;
                    }
                }
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > bound_ms)
            return;
    }
}

static int newest_origin(struct play *p, int wait)
{
    for (int tries = 0; tries < (wait ? 20 : 1); tries++) {
        accept_origins(p);
        for (int i = p->n_origins - 1; i >= 0; i--)
            if (p->origins[i] >= 0)
                return p->origins[i];
        if (wait)
            pump(p, 1, 2);
    }
    return -1;
}

static void send_all(int fd, const uint8_t *d, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0)
            return; /* the other side is gone or full: what did not go is dropped */
        d += k;
        n -= (size_t)k;
    }
}

static void reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct play p = {.client = connect_proxy()};
    if (p.client < 0)
        abort(); /* the proxy stopped listening */
    int one = 1;
    setsockopt(p.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    size_t i = 0;
    while (i + 2 <= size && p.client >= 0) {
        uint8_t op = data[i] % 8, len = data[i + 1];
        i += 2;
        size_t n = len < size - i ? len : size - i;
        const uint8_t *d = data + i;
        int fd;
        switch (op) {
        case 0: case 1: case 2:
            send_all(p.client, d, n);
            i += n;
            break;
        case 3: case 4:
            fd = newest_origin(&p, 1);
            if (fd >= 0)
                send_all(fd, d, n);
            i += n;
            break;
        case 5:
            shutdown(p.client, SHUT_WR);
            break;
        case 6:
            fd = newest_origin(&p, 0);
            if (fd >= 0)
                shutdown(fd, SHUT_WR);
            break;
        case 7:
            if (len & 1) {
                reset(p.client);
                p.client = -1;
            } else {
                for (int k = p.n_origins - 1; k >= 0; k--) {
                    if (p.origins[k] >= 0) {
                        reset(p.origins[k]);
                        p.origins[k] = -1;
                        break;
                    }
                }
            }
            break;
        }
        pump(&p, 1, 20);
    }
    if (p.client >= 0) {
        shutdown(p.client, SHUT_WR);
        pump(&p, 5, 100);
        close(p.client);
    }
    for (int k = 0; k < p.n_origins; k++)
        if (p.origins[k] >= 0)
            close(p.origins[k]);
    return 0;
}
