/* tests/unit/net/test_listen.c - listening sockets: the probe that keeps a group of
 * SO_REUSEPORT sockets from joining another process's on a port in use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "net/addr.h"
#include "net/listen.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    assert_int_equal(shunt_addr_parse(text, &ss), 0);
    return ss;
}

static int port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* Port 0: the probe picks a free port, and a group of SO_REUSEPORT sockets binds it. */
static void test_probe_picks_a_port_for_the_group(void **state)
{
    static const char *const where[] = {"127.0.0.1:0", "[::1]:0"};
    for (size_t i = 0; i < 2; i++) {
        struct sockaddr_storage ss = addr(where[i]);
        assert_int_equal(shunt_listen_probe(&ss), 0);
        assert_true(port_of(&ss) > 0);
        int a = shunt_listen_open((struct sockaddr *)&ss, 16, 1);
        int b = shunt_listen_open((struct sockaddr *)&ss, 16, 1);
        assert_true(a >= 0);
        assert_true(b >= 0);
        /* now taken, for the probe of a second group */
        struct sockaddr_storage again = ss;
        assert_int_equal(shunt_listen_probe(&again), -EADDRINUSE);
        close(a);
        close(b);
        assert_int_equal(shunt_listen_probe(&again), 0); /* free again */
    }
}

/* A listener without SO_REUSEPORT is found too (the group's bind would also fail). */
static void test_probe_finds_a_plain_listener(void **state)
{
    struct sockaddr_storage ss = addr("127.0.0.1:0");
    assert_int_equal(shunt_listen_probe(&ss), 0);
    int fd = shunt_listen_open((struct sockaddr *)&ss, 16, 0);
    assert_true(fd >= 0);
    assert_int_equal(shunt_listen_probe(&ss), -EADDRINUSE);
    /* a listener on the wildcard address covers loopback too */
    close(fd);
    struct sockaddr_storage any = addr("0.0.0.0:0");
    set_port(&any, port_of(&ss));
    fd = shunt_listen_open((struct sockaddr *)&any, 16, 1);
    assert_true(fd >= 0);
    assert_int_equal(shunt_listen_probe(&ss), -EADDRINUSE);
    close(fd);
}

/* A connection of an earlier run, left in TIME_WAIT on the port, does not count. */
static void test_probe_ignores_time_wait(void **state)
{
    struct sockaddr_storage ss = addr("127.0.0.1:0");
    assert_int_equal(shunt_listen_probe(&ss), 0);
    int l = shunt_listen_open((struct sockaddr *)&ss, 16, 1);
    assert_true(l >= 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    int s = -1;
    for (int i = 0; i < 1000 && s < 0; i++) { /* the listener is non-blocking */
        s = accept(l, NULL, NULL);
        if (s < 0)
            usleep(1000);
    }
    assert_true(s >= 0);
    close(s); /* the server side closes first: its end goes to TIME_WAIT */
    char ch;
    assert_int_equal(recv(c, &ch, 1, 0), 0);
    close(c);
    close(l);
    assert_int_equal(shunt_listen_probe(&ss), 0);
}

static void test_describe(void **state)
{
    char buf[200];
    struct sockaddr_storage ss = addr("127.0.0.1:8888");
    shunt_listen_describe((struct sockaddr *)&ss, -EADDRINUSE, buf, sizeof(buf));
    assert_string_equal(buf, "cannot listen on 127.0.0.1:8888: address already in use "
                             "(another shunt?)");
    ss = addr("[::1]:80");
    shunt_listen_describe((struct sockaddr *)&ss, -EACCES, buf, sizeof(buf));
    assert_string_equal(buf, "cannot listen on [::1]:80: permission denied");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_picks_a_port_for_the_group),
        cmocka_unit_test(test_probe_finds_a_plain_listener),
        cmocka_unit_test(test_probe_ignores_time_wait),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
