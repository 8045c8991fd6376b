/* tests/unit/capture/test_view.c - the pure formatting helpers of the capture views: flags,
 * durations, times, table cells, text detection, hex dump, head diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/view.h"

/* Output of <call> (a statement writing to FILE *out) as a string, compared to <expect>. */
#define ASSERT_OUTPUT(expect, call)                                                                \
    do {                                                                                           \
        char *buf_ = NULL;                                                                         \
        size_t len_ = 0;                                                                           \
        FILE *out = open_memstream(&buf_, &len_);                                                  \
        assert_non_null(out);                                                                      \
        call;                                                                                      \
        fclose(out);                                                                               \
        assert_string_equal(buf_, (expect));                                                       \
        free(buf_);                                                                                \
    } while (0)

static void flags_letters_in_order_or_dash(void **state)
{
    char b[SHUNT_VIEW_FLAGS_LEN];
    assert_string_equal(shunt_view_flags(0, 0, 0, b), "-");
    assert_string_equal(shunt_view_flags(15, 0, 0, b), "CETU");
    assert_string_equal(shunt_view_flags(8, 1, 1, b), "ETU");
    assert_string_equal(shunt_view_flags(4, 0, 0, b), "T");
    /* issue 11: r is the routine forward-proxy rewrites alone, never beside C */
    assert_string_equal(shunt_view_flags(32, 0, 0, b), "r");
    assert_string_equal(shunt_view_flags(1 | 32, 0, 0, b), "C");
    assert_string_equal(shunt_view_flags(16, 0, 0, b), "P");
    assert_string_equal(shunt_view_flags(32 | 16, 0, 0, b), "rP");
    assert_string_equal(shunt_view_flags(2 | 64, 0, 0, b), "ES");
    assert_string_equal(shunt_view_flags(127, 0, 0, b), "CETUSP");
}

/* issue 11: the port beside the host when it is not the scheme's default */
static void host_with_the_port_when_not_the_default(void **state)
{
    char b[64];
#define HOST(h, u) shunt_view_host(h, strlen(h), u, strlen(u), b, sizeof(b))
    assert_string_equal(HOST("a.test", "http://a.test/x"), "a.test");
    assert_string_equal(HOST("a.test", "http://a.test:80/x"), "a.test");
    assert_string_equal(HOST("a.test", "http://a.test:8080/x"), "a.test:8080");
    assert_string_equal(HOST("a.test", "https://a.test/x"), "a.test");
    assert_string_equal(HOST("a.test", "https://a.test:443"), "a.test");
    assert_string_equal(HOST("a.test", "https://a.test:80/"), "a.test:80");
    assert_string_equal(HOST("a.test", "a.test:443"), "a.test:443"); /* a CONNECT target */
    assert_string_equal(HOST("::1", "http://[::1]:8080/"), "[::1]:8080");
    assert_string_equal(HOST("[::1]", "http://[::1]:8080/"), "[::1]:8080");
    assert_string_equal(HOST("::1", "http://[::1]/"), "::1");
    assert_string_equal(HOST("a.test", "http://a.test:x/"), "a.test");
    assert_string_equal(HOST("a.test", ""), "a.test");
    assert_string_equal(HOST("", "http://a.test:81/"), "-");
#undef HOST
}

static void ms_and_not_applicable(void **state)
{
    char b[32];
    assert_string_equal(shunt_view_ms(-1, 2, b, sizeof(b)), "-");
    assert_string_equal(shunt_view_ms(0, 2, b, sizeof(b)), "0.00");
    assert_string_equal(shunt_view_ms(12345, 1, b, sizeof(b)), "12.3");
    assert_string_equal(shunt_view_ms(520, 2, b, sizeof(b)), "0.52");
}

static void lifetime_units(void **state)
{
    char b[32];
    assert_string_equal(shunt_view_lifetime(-1, b, sizeof(b)), "-");
    assert_string_equal(shunt_view_lifetime(75500, b, sizeof(b)), "75.5ms");
    assert_string_equal(shunt_view_lifetime(2500000, b, sizeof(b)), "2.50s");
    assert_string_equal(shunt_view_lifetime(185 * INT64_C(1000000), b, sizeof(b)), "3m05s");
    assert_string_equal(shunt_view_lifetime(7620 * INT64_C(1000000), b, sizeof(b)), "2h07m");
}

static void clock_in_local_time(void **state)
{
    char b[64];
    setenv("TZ", "UTC", 1);
    tzset(); /* localtime_r() need not look at TZ again by itself */
    int64_t t = INT64_C(1795694400) * 1000000 + 3723 * INT64_C(1000000) + 4567;
    assert_string_equal(shunt_view_clock(t, 0, b, sizeof(b)), "13:02:03.004");
    assert_string_equal(shunt_view_clock(t, 1, b, sizeof(b)), "2026-11-26 13:02:03.004");
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    assert_string_equal(shunt_view_clock(t, 0, b, sizeof(b)), "14:02:03.004");
    setenv("TZ", "UTC", 1);
}

static void fit_cuts_with_dots_and_escapes_controls(void **state)
{
    char b[4 * 20 + 4];
    assert_int_equal(shunt_view_fit("/index.html", 11, 20, b, sizeof(b)), 11);
    assert_string_equal(b, "/index.html");
    assert_int_equal(shunt_view_fit("/a/very/long/path?q=1", 21, 10, b, sizeof(b)), 10);
    assert_string_equal(b, "/a/very...");
    assert_int_equal(shunt_view_fit("a\x1b[2Jb", 6, 20, b, sizeof(b)), 9);
    assert_string_equal(b, "a\\x1b[2Jb");
    /* A UTF-8 character is one column; an invalid byte is escaped. */
    assert_int_equal(shunt_view_fit("\xc3\xa9t\xc3\xa9", 5, 20, b, sizeof(b)), 3);
    assert_string_equal(b, "\xc3\xa9t\xc3\xa9");
    assert_int_equal(shunt_view_fit("a\xff", 2, 20, b, sizeof(b)), 5);
    assert_string_equal(b, "a\\xff");
    assert_int_equal(shunt_view_fit("", 0, 5, b, sizeof(b)), 0);
    assert_string_equal(b, "");
}

static void text_or_binary(void **state)
{
    const unsigned char *t = (const unsigned char *)"line 1\r\nline\t2\n\xc3\xa9";
    assert_true(shunt_view_is_text(t, strlen((const char *)t), 0));
    assert_false(shunt_view_is_text((const unsigned char *)"\x89PNG", 4, 0));
    assert_false(shunt_view_is_text((const unsigned char *)"a\0b", 3, 0));
    assert_false(shunt_view_is_text((const unsigned char *)"\x1b[31m", 5, 0));
    /* Overlong encodings and surrogates are not UTF-8 (RFC 3629 3, 10). */
    assert_false(shunt_view_is_text((const unsigned char *)"\xc0\xaf", 2, 0));
    assert_false(shunt_view_is_text((const unsigned char *)"\xed\xa0\x80", 3, 0));
    /* A character cut by the end of a preview is fine only when the body goes on. */
    assert_false(shunt_view_is_text((const unsigned char *)"ab\xc3", 3, 0));
    assert_true(shunt_view_is_text((const unsigned char *)"ab\xc3", 3, 1));
    assert_true(shunt_view_is_text((const unsigned char *)"", 0, 0));
}

static void text_lines_with_indent(void **state)
{
    ASSERT_OUTPUT("  a\n  b\n  \n  c\\rd\n",
                  shunt_view_print_text(out, (const unsigned char *)"a\r\nb\n\nc\rd", 9, "  "));
    /* The cut character at the end is left out. */
    ASSERT_OUTPUT("> ab\n",
                  shunt_view_print_text(out, (const unsigned char *)"ab\xe2\x82", 4, "> "));
}

static void hexdump_layout(void **state)
{
    unsigned char p[20];
    for (int i = 0; i < 20; i++)
        p[i] = (unsigned char)(0x3c + i);
    ASSERT_OUTPUT("  00000000  3c 3d 3e 3f 40 41 42 43  44 45 46 47 48 49 4a 4b"
                  "  |<=>?@ABCDEFGHIJK|\n"
                  "  00000010  4c 4d 4e 4f                                     "
                  "  |LMNO|\n",
                  shunt_view_hexdump(out, p, 20, "  "));
    ASSERT_OUTPUT("00000000  00 ff 0a                                          |...|\n",
                  shunt_view_hexdump(out, (const unsigned char *)"\x00\xff\n", 3, ""));
    ASSERT_OUTPUT("", shunt_view_hexdump(out, p, 0, ""));
}

static void head_unchanged_when_sent_is_null(void **state)
{
    const char *h = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    int n;
    ASSERT_OUTPUT("  GET / HTTP/1.1\n  Host: a\n",
                  n = shunt_view_head_diff(out, h, strlen(h), NULL, 0));
    assert_int_equal(n, 0);
}

static void head_diff_marks_removed_and_added_lines(void **state)
{
    const char *a = "GET http://a/x HTTP/1.1\r\nHost: a\r\nProxy-Connection: keep-alive\r\n"
                    "Accept: */*\r\n\r\n";
    const char *b = "GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nVia: 1.1 shunt\r\n\r\n";
    int n;
    ASSERT_OUTPUT("- GET http://a/x HTTP/1.1\n"
                  "+ GET /x HTTP/1.1\n"
                  "  Host: a\n"
                  "- Proxy-Connection: keep-alive\n"
                  "  Accept: */*\n"
                  "+ Via: 1.1 shunt\n",
                  n = shunt_view_head_diff(out, a, strlen(a), b, strlen(b)));
    assert_int_equal(n, 4);
}

static void head_diff_identical_heads_mark_nothing(void **state)
{
    const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    int n;
    ASSERT_OUTPUT("  HTTP/1.1 200 OK\n  Content-Length: 0\n",
                  n = shunt_view_head_diff(out, a, strlen(a), a, strlen(a)));
    assert_int_equal(n, 0);
}

static void head_diff_shows_line_endings_and_escapes(void **state)
{
    /* Only the line ending changed: both lines are shown, the bare LF marked. */
    const char *a = "HTTP/1.1 200 OK\nX: \x01\r\n\r\n";
    const char *b = "HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n";
    int n;
    ASSERT_OUTPUT("- HTTP/1.1 200 OK\\n\n"
                  "+ HTTP/1.1 200 OK\n"
                  "  X: \\x01\n",
                  n = shunt_view_head_diff(out, a, strlen(a), b, strlen(b)));
    assert_int_equal(n, 2);
}

static void head_diff_reordered_and_empty(void **state)
{
    const char *a = "A\r\nB\r\nC\r\n\r\n", *b = "C\r\nA\r\nB\r\n\r\n";
    int n;
    ASSERT_OUTPUT("+ C\n  A\n  B\n- C\n",
                  n = shunt_view_head_diff(out, a, strlen(a), b, strlen(b)));
    assert_int_equal(n, 2);
    ASSERT_OUTPUT("+ A\n", n = shunt_view_head_diff(out, "", 0, "A\r\n", 3));
    assert_int_equal(n, 1);
    /* A head cut before its end (no final line ending) still prints. */
    ASSERT_OUTPUT("  GET / HTTP/1.1\n  Hos\n",
                  n = shunt_view_head_diff(out, "GET / HTTP/1.1\r\nHos", 19, NULL, 0));
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_letters_in_order_or_dash),
        cmocka_unit_test(host_with_the_port_when_not_the_default),
        cmocka_unit_test(ms_and_not_applicable),
        cmocka_unit_test(lifetime_units),
        cmocka_unit_test(clock_in_local_time),
        cmocka_unit_test(fit_cuts_with_dots_and_escapes_controls),
        cmocka_unit_test(text_or_binary),
        cmocka_unit_test(text_lines_with_indent),
        cmocka_unit_test(hexdump_layout),
        cmocka_unit_test(head_unchanged_when_sent_is_null),
        cmocka_unit_test(head_diff_marks_removed_and_added_lines),
        cmocka_unit_test(head_diff_identical_heads_mark_nothing),
        cmocka_unit_test(head_diff_shows_line_endings_and_escapes),
        cmocka_unit_test(head_diff_reordered_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
