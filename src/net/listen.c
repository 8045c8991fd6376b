/* src/net/listen.c - listening sockets. */
#include "net/listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/addr.h"

static socklen_t addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int addr_port(const struct sockaddr *sa)
{
    return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                           : ((const struct sockaddr_in *)sa)->sin_port);
}

/* Returns a non-blocking, close-on-exec socket for <sa>'s family with the options asked for
 * set, or a negative errno. */
static int make_socket(const struct sockaddr *sa, int reuseaddr, int reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (reuseaddr)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    return fd;
}

int shunt_listen_open(const struct sockaddr *sa, int backlog, int reuseport)
{
    int fd = make_socket(sa, 1, reuseport);
    if (fd < 0)
        return fd;
    if (bind(fd, sa, addr_len(sa)) != 0 || listen(fd, backlog) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int shunt_listen_probe(struct sockaddr_storage *sa)
{
    struct sockaddr *s = (struct sockaddr *)sa;
    /* Port 0 asks for a port nobody uses: no SO_REUSEADDR, which would let the kernel pick
     * one that only sockets with the option share. */
    int fd = make_socket(s, addr_port(s) != 0, 0);
    if (fd < 0)
        return fd;
    int r = 0;
    socklen_t len = sizeof(*sa);
    if (bind(fd, s, addr_len(s)) != 0)
        r = -errno;
    else if (addr_port(s) == 0 && getsockname(fd, s, &len) != 0)
        r = -errno;
    close(fd);
    return r;
}

void shunt_listen_reason(int err, char *buf, size_t buf_len)
{
    if (err == -EADDRINUSE) {
        snprintf(buf, buf_len, "address already in use (another shunt?)");
        return;
    }
    snprintf(buf, buf_len, "%s", strerror(-err));
    if (buf[0] >= 'A' && buf[0] <= 'Z') /* strerror's capital, inside a sentence */
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

void shunt_listen_describe(const struct sockaddr *sa, int err, char *buf, size_t buf_len)
{
    char ip[64], why[128];
    int port = shunt_addr_format(sa, ip, sizeof(ip));
    shunt_listen_reason(err, why, sizeof(why));
    snprintf(buf, buf_len, sa->sa_family == AF_INET6 ? "cannot listen on [%s]:%d: %s"
                                                     : "cannot listen on %s:%d: %s",
             ip, port, why);
}
