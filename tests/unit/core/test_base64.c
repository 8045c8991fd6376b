/* tests/unit/core/test_base64.c - reading base64 leniently, as tokens arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/base64.h"

static size_t dec(const char *in, unsigned char *out, size_t cap)
{
    return shunt_base64_decode_prefix(in, strlen(in), out, cap);
}

static void decodes_both_alphabets_and_skips_padding(void **state)
{
    unsigned char b[16];
    assert_int_equal(dec("TlRMTVNTUAAB", b, sizeof(b)), 9);
    assert_memory_equal(b, "NTLMSSP\0\x01", 9);
    assert_int_equal(dec("+/-_", b, sizeof(b)), 3); /* 62 63 62 63 */
    assert_memory_equal(b, "\xfb\xff\xbf", 3);
    assert_int_equal(dec("YQ==", b, sizeof(b)), 1);
    assert_int_equal(b[0], 'a');
    assert_int_equal(dec("Y W\tI=", b, sizeof(b)), 2);
    assert_memory_equal(b, "ab", 2);
}

static void stops_at_a_foreign_byte_and_at_the_cap(void **state)
{
    unsigned char b[4] = {0};
    assert_int_equal(dec("YWJj,ZGVm", b, sizeof(b)), 3);
    assert_memory_equal(b, "abc", 3);
    assert_int_equal(dec("YWJjZGVmZ2hp", b, 2), 2); /* a prefix: never past <cap> */
    assert_memory_equal(b, "ab", 2);
    assert_int_equal(dec("", b, sizeof(b)), 0);
    assert_int_equal(shunt_base64_decode_prefix(NULL, 0, b, sizeof(b)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_both_alphabets_and_skips_padding),
        cmocka_unit_test(stops_at_a_foreign_byte_and_at_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
