/* tests/unit/core/test_errors.c - names and messages of shunt's error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/errors.h"

static void shunt_codes_have_names_and_messages(void **state)
{
    assert_string_equal(shunt_err_name(SHUNT_EPARSE), "EPARSE");
    assert_string_equal(shunt_strerror(SHUNT_EPARSE), "cannot be parsed");
    assert_string_equal(shunt_err_name(SHUNT_EINVAL), "EINVAL");
    assert_string_equal(shunt_strerror(SHUNT_ETOOBIG), "over the configured limit");
    assert_string_equal(shunt_err_name(SHUNT_EDEPS), "EDEPS");
}

static void codes_are_distinct_and_below_errno(void **state)
{
#define XX(name, msg) SHUNT_##name,
    static const int codes[] = {SHUNT_ERRNO_MAP(XX)};
#undef XX
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        /* Between the base and the end marker, far below any negated errno value (libuv's
         * are above -4096), so that both kinds pass through the same int. */
        assert_in_range(-codes[i], 4096, -SHUNT__EBASE - 1);
        assert_in_range(codes[i] - SHUNT__EBASE, 1, SHUNT__ELAST - SHUNT__EBASE - 1);
        assert_non_null(shunt_strerror(codes[i]));
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void errno_codes_pass_through(void **state)
{
    assert_string_equal(shunt_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    assert_string_equal(shunt_err_name(-ECONNREFUSED), "ERRNO");
}

static void success_is_not_an_error(void **state)
{
    assert_string_equal(shunt_strerror(0), "success");
    assert_string_equal(shunt_err_name(0), "OK");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shunt_codes_have_names_and_messages),
        cmocka_unit_test(codes_are_distinct_and_below_errno),
        cmocka_unit_test(errno_codes_pass_through),
        cmocka_unit_test(success_is_not_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
