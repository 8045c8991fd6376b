/* tests/unit/http/test_status.c - one table of reason phrases for every answer shunt makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/status.h"

static void known_codes_have_rfc_9110_phrases(void **state)
{
    assert_string_equal(shunt_http_reason_phrase(200), "OK");
    assert_string_equal(shunt_http_reason_phrase(410), "Gone"); /* was "410 Error" */
    assert_string_equal(shunt_http_reason_phrase(413), "Content Too Large"); /* RFC 9110 15.5.14 */
    assert_string_equal(shunt_http_reason_phrase(508), "Loop Detected");      /* RFC 5842 7.2 */
    assert_string_equal(shunt_http_reason_phrase(101), "Switching Protocols");
}

static void other_codes_get_their_class(void **state)
{
    assert_string_equal(shunt_http_reason_phrase(199), "Informational");
    assert_string_equal(shunt_http_reason_phrase(299), "Success");
    assert_string_equal(shunt_http_reason_phrase(399), "Redirection");
    assert_string_equal(shunt_http_reason_phrase(499), "Client Error");
    assert_string_equal(shunt_http_reason_phrase(599), "Server Error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_codes_have_rfc_9110_phrases),
        cmocka_unit_test(other_codes_get_their_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
