/* tests/unit/net/test_addr.c - listening addresses, CIDR allow-lists, loopback detection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "net/addr.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    assert_int_equal(shunt_addr_parse(text, &ss), 0);
    return ss;
}

static void test_parse_ipv4_and_port(void **state)
{
    struct sockaddr_storage ss = addr("127.0.0.1:8888");
    char buf[64];
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(shunt_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), 8888);
    assert_string_equal(buf, "127.0.0.1");
}

static void test_parse_ipv6_brackets(void **state)
{
    struct sockaddr_storage ss = addr("[::1]:0");
    char buf[64];
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(shunt_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "::1");
}

static void test_parse_localhost_is_ipv4_loopback(void **state)
{
    struct sockaddr_storage ss = addr("localhost:80");
    assert_true(shunt_addr_is_loopback((struct sockaddr *)&ss));
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {"127.0.0.1",   "127.0.0.1:",    "127.0.0.1:65536",
                                      "127.0.0.1:-1", "::1:80",       "[::1]80",
                                      "example.com:80", "1.2.3:80",   "[::1]:8x",
                                      ":80",         "[]:80"};
    struct sockaddr_storage ss;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (shunt_addr_parse(bad[i], &ss) != SHUNT_EADDR)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void test_cidr_match_v4(void **state)
{
    struct shunt_cidr net;
    assert_int_equal(shunt_cidr_parse("10.1.0.0/16", &net), 0);
    struct sockaddr_storage in = addr("10.1.200.3:1"), out = addr("10.2.0.1:1");
    assert_true(shunt_cidr_match(&net, (struct sockaddr *)&in));
    assert_false(shunt_cidr_match(&net, (struct sockaddr *)&out));
}

static void test_cidr_odd_prefix(void **state)
{
    struct shunt_cidr net;
    assert_int_equal(shunt_cidr_parse("192.168.1.128/25", &net), 0);
    struct sockaddr_storage a = addr("192.168.1.129:1"), b = addr("192.168.1.127:1");
    assert_true(shunt_cidr_match(&net, (struct sockaddr *)&a));
    assert_false(shunt_cidr_match(&net, (struct sockaddr *)&b));
}

static void test_cidr_v4_matches_v4_mapped_v6(void **state)
{
    struct shunt_cidr net;
    assert_int_equal(shunt_cidr_parse("127.0.0.0/8", &net), 0);
    struct sockaddr_storage m = addr("[::ffff:127.0.0.5]:1");
    assert_true(shunt_cidr_match(&net, (struct sockaddr *)&m));
    assert_true(shunt_addr_is_loopback((struct sockaddr *)&m));
}

static void test_cidr_v6_and_families(void **state)
{
    struct shunt_cidr net;
    assert_int_equal(shunt_cidr_parse("fd00::/8", &net), 0);
    struct sockaddr_storage a = addr("[fd12::1]:1"), b = addr("10.0.0.1:1");
    assert_true(shunt_cidr_match(&net, (struct sockaddr *)&a));
    assert_false(shunt_cidr_match(&net, (struct sockaddr *)&b));
}

static void test_cidr_bare_address_and_zero_prefix(void **state)
{
    struct shunt_cidr one, all;
    assert_int_equal(shunt_cidr_parse("10.0.0.7", &one), 0);
    assert_int_equal(one.prefix, 32);
    assert_int_equal(shunt_cidr_parse("0.0.0.0/0", &all), 0);
    struct sockaddr_storage a = addr("10.0.0.7:1"), b = addr("10.0.0.8:1");
    assert_true(shunt_cidr_match(&one, (struct sockaddr *)&a));
    assert_false(shunt_cidr_match(&one, (struct sockaddr *)&b));
    assert_true(shunt_cidr_match(&all, (struct sockaddr *)&b));
}

static void test_cidr_rejects(void **state)
{
    static const char *const bad[] = {"", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "x/8",
                                      "10.0.0.0/8x"};
    struct shunt_cidr net;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (shunt_cidr_parse(bad[i], &net) != SHUNT_EADDR)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void test_loopback(void **state)
{
    struct sockaddr_storage a = addr("127.9.9.9:1"), b = addr("[::1]:1"), c = addr("0.0.0.0:1"),
                            d = addr("[::]:1");
    assert_true(shunt_addr_is_loopback((struct sockaddr *)&a));
    assert_true(shunt_addr_is_loopback((struct sockaddr *)&b));
    assert_false(shunt_addr_is_loopback((struct sockaddr *)&c));
    assert_false(shunt_addr_is_loopback((struct sockaddr *)&d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4_and_port),
        cmocka_unit_test(test_parse_ipv6_brackets),
        cmocka_unit_test(test_parse_localhost_is_ipv4_loopback),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_cidr_match_v4),
        cmocka_unit_test(test_cidr_odd_prefix),
        cmocka_unit_test(test_cidr_v4_matches_v4_mapped_v6),
        cmocka_unit_test(test_cidr_v6_and_families),
        cmocka_unit_test(test_cidr_bare_address_and_zero_prefix),
        cmocka_unit_test(test_cidr_rejects),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
