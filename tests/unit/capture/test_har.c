/* tests/unit/capture/test_har.c - the pure pieces of HAR import and export: producers,
 * ISO 8601 times, lenient head walking, and connection inference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "capture/har.h"

static void producers_are_told_by_creator_name(void **state)
{
    assert_int_equal(shunt_har_producer_of("WebInspector"), SHUNT_HAR_CHROME);
    assert_int_equal(shunt_har_producer_of("Firefox"), SHUNT_HAR_FIREFOX);
    assert_int_equal(shunt_har_producer_of("Fiddler"), SHUNT_HAR_FIDDLER);
    assert_int_equal(shunt_har_producer_of("mitmproxy exporthar"), SHUNT_HAR_MITMPROXY);
    assert_int_equal(shunt_har_producer_of("mitmproxy har_dump"), SHUNT_HAR_MITMPROXY);
    assert_int_equal(shunt_har_producer_of("shunt"), SHUNT_HAR_SHUNT);
    assert_int_equal(shunt_har_producer_of("Charles Proxy"), SHUNT_HAR_OTHER);
    assert_int_equal(shunt_har_producer_of(NULL), SHUNT_HAR_OTHER);
    assert_string_equal(shunt_har_producer_name(SHUNT_HAR_FIDDLER), "fiddler");
}

static int64_t parse(const char *s)
{
    int64_t us = 0;
    if (shunt_har_parse_time(s, strlen(s), &us) != 0)
        return INT64_MIN;
    return us;
}

static void times_parse_in_every_producers_form(void **state)
{
    const int64_t base = INT64_C(1714557600000000); /* 2024-05-01T10:00:00Z */
    assert_int_equal(parse("2024-05-01T10:00:00Z"), base);
    assert_int_equal(parse("2024-05-01T10:00:00.123Z"), base + 123000);
    assert_int_equal(parse("2024-05-01T12:00:00.000+02:00"), base);
    assert_int_equal(parse("2024-05-01T09:30:00.5-0030"), base + 500000);
    assert_int_equal(parse("2024-05-01T10:00:00.1234567+00:00"), base + 123456);
    assert_int_equal(parse("2024-05-01T10:00:00.000123+00:00"), base + 123);
    assert_int_equal(parse("2024-05-01T11:00:00+01"), base);
    assert_int_equal(parse("2024-05-01T10:00:00"), base); /* no offset: UTC */
    assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse("1969-12-31T23:59:59.999Z"), -1000);
    assert_int_equal(parse("2024-02-29T00:00:00Z"), INT64_C(1709164800000000));
    const char *bad[] = {"", "yesterday", "2024-05-01", "2024-13-01T00:00:00Z",
                         "2024-05-01T24:00:00Z", "2024-05-01T10:00:00.Z",
                         "2024-05-01T10:00:00Zjunk", "2024-05-01T10:00:00+2", "2024-5-1T1:0:0Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i]), INT64_MIN);
}

static void times_format_with_milliseconds_in_utc(void **state)
{
    char buf[40];
    shunt_har_format_time(INT64_C(1714557600123456), buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T10:00:00.123Z");
    shunt_har_format_time(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    shunt_har_format_time(-1000, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    shunt_har_format_time(INT64_C(951782400000000), buf, sizeof(buf)); /* leap day 2000 */
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
    /* and back */
    int64_t us;
    assert_int_equal(shunt_har_parse_time(buf, strlen(buf), &us), 0);
    assert_int_equal(us, INT64_C(951782400000000));
}

/* Issue 10: a capture file may hold any integer as a time; INT64_MIN was negated (signed
 * overflow) and years beyond 9999 are no ISO 8601 a HAR reader takes. */
static void times_beyond_four_digit_years_are_clamped(void **state)
{
    char buf[40];
    shunt_har_format_time(INT64_MIN, buf, sizeof(buf));
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    shunt_har_format_time(INT64_MIN + 1, buf, sizeof(buf));
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    shunt_har_format_time(INT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    shunt_har_format_time(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void heads_are_walked_leniently(void **state)
{
    const char h[] = "GET / HTTP/1.1\r\nHost:  a \r\nX-Empty:\r\nno colon here\nBare: lf\r\n\r\n"
                     "body: not a field\r\n";
    size_t pos;
    struct shunt_slice n, v, line = shunt_har_head_start(h, sizeof(h) - 1, &pos);
    assert_int_equal(line.len, 14);
    assert_memory_equal(line.base, "GET / HTTP/1.1", 14);
    const char *want[][2] = {{"Host", "a"}, {"X-Empty", ""}, {"no colon here", ""},
                             {"Bare", "lf"}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(shunt_har_head_next(h, sizeof(h) - 1, &pos, &n, &v), 1);
        assert_int_equal(n.len, strlen(want[i][0]));
        assert_memory_equal(n.base, want[i][0], n.len);
        assert_int_equal(v.len, strlen(want[i][1]));
        if (v.len)
            assert_memory_equal(v.base, want[i][1], v.len);
    }
    assert_int_equal(shunt_har_head_next(h, sizeof(h) - 1, &pos, &n, &v), 0);
    assert_int_equal(shunt_har_head_next(h, sizeof(h) - 1, &pos, &n, &v), 0);
    /* a head cut short ends without an empty line */
    const char cut[] = "HTTP/1.1 200 OK\r\nA: 1";
    line = shunt_har_head_start(cut, sizeof(cut) - 1, &pos);
    assert_int_equal(line.len, 15);
    assert_int_equal(shunt_har_head_next(cut, sizeof(cut) - 1, &pos, &n, &v), 1);
    assert_int_equal(v.len, 1);
    assert_int_equal(shunt_har_head_next(cut, sizeof(cut) - 1, &pos, &n, &v), 0);
    line = shunt_har_head_start("", 0, &pos);
    assert_int_equal(line.len, 0);
    assert_int_equal(shunt_har_head_next("", 0, &pos, &n, &v), 0);
}

/* A hint: start and end in ms, opens, key, origin. */
#define H(s, e, o, k, org)                                                                         \
    {.start_us = (s) * 1000, .end_us = (e) * 1000, .opens = (o), .key = (k), .origin = (org)}

static void check(struct shunt_har_conn_hint *h, size_t n, const size_t *conns,
                  const size_t *idx, long want)
{
    assert_int_equal(shunt_har_infer_connections(h, n), want);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(h[i].conn, conns[i]);
        assert_int_equal(h[i].idx, idx[i]);
    }
}

static void keyed_connections_follow_the_key(void **state)
{
    struct shunt_har_conn_hint h[] = {
        H(0, 100, 1, "id:7", "https://a:443"),  H(5, 50, 1, "id:8", "https://a:443"),
        H(200, 210, 0, "id:7", "https://a:443"), H(220, 230, 1, "id:9", "https://b:443"),
        H(300, 310, -1, "id:8", "https://a:443"),
    };
    const size_t conns[] = {1, 2, 1, 3, 2}, idx[] = {1, 1, 2, 1, 2};
    check(h, 5, conns, idx, 3);
    assert_int_equal(h[0].reused, 0);
    assert_int_equal(h[2].reused, 1);
}

static void a_port_seen_again_after_its_connection_ended_is_a_new_connection(void **state)
{
    struct shunt_har_conn_hint h[] = {
        H(0, 50, 1, "c:50001", "http://a:80"),
        H(60, 90, 0, "c:50001", "http://a:80"),     /* reused: same connection */
        H(80, 95, 1, "c:50001", "http://a:80"),     /* connects, but it is busy: same */
        H(5000, 5050, 1, "c:50001", "http://a:80"), /* after the end, connects: new */
        H(5060, 5070, -1, "c:50001", "http://a:80"), /* nothing proven: stays */
    };
    for (size_t i = 0; i < 5; i++)
        h[i].key_may_repeat = 1;
    h[2].connects = h[3].connects = 1;
    const size_t conns[] = {1, 1, 1, 2, 2}, idx[] = {1, 2, 3, 1, 2};
    check(h, 5, conns, idx, 2);
}

static void a_port_is_split_only_when_its_connection_provably_ended(void **state)
{
    struct shunt_har_conn_hint h[] = {
        H(0, 50, 1, "c:1", "http://a:80"),      /* 1 */
        H(100, 120, 1, "c:1", "http://a:80"),   /* no proof it ended: 1 */
        H(200, 220, 0, "c:1", "http://a:80"),   /* closes it */
        H(210, 230, 0, "c:1", "http://a:80"),   /* before the close's end: 1 */
        H(300, 320, 0, "c:1", "http://a:80"),   /* after it: 2 */
        H(400, 420, 1, "c:1", "http://a:80"),   /* 2 */
        H(500, 520, 0, "id:9", "http://a:80"),  /* 3 */
        H(600, 620, 0, "id:9", "http://a:80"),  /* an id never repeats: 3 */
    };
    for (size_t i = 0; i < 6; i++)
        h[i].key_may_repeat = 1;
    h[2].closes = 1;
    h[6].closes = 1;
    const size_t conns[] = {1, 1, 1, 1, 2, 2, 3, 3}, idx[] = {1, 2, 3, 4, 1, 2, 1, 2};
    check(h, 8, conns, idx, 3);
}

static void timings_decide_without_a_key(void **state)
{
    struct shunt_har_conn_hint h[] = {
        H(0, 100, 1, NULL, "https://a:443"),   /* 1 */
        H(10, 60, 1, NULL, "https://a:443"),   /* 2 */
        H(70, 120, 0, NULL, "https://a:443"),  /* 2 is idle: 2 */
        H(80, 180, 0, NULL, "https://a:443"),  /* all busy: 3, reused */
        H(130, 140, 0, NULL, "https://a:443"), /* latest idle back: 2 */
        H(140, 150, 0, NULL, "https://b:443"), /* nothing to b yet: 4, reused */
        H(150, 160, -1, NULL, "https://a:443"), /* unknown: 5 */
    };
    const size_t conns[] = {1, 2, 2, 3, 2, 4, 5}, idx[] = {1, 1, 2, 1, 3, 1, 1};
    check(h, 7, conns, idx, 5);
    assert_int_equal(h[3].reused, 1);
    assert_int_equal(h[6].reused, 0);
}

static void multiplexed_entries_share_a_busy_connection(void **state)
{
    struct shunt_har_conn_hint h[] = {
        H(0, 100, 1, NULL, "https://a:443"),
        H(10, 60, 0, NULL, "https://a:443"),
        H(20, 60, 0, NULL, "https://a:443"),
    };
    h[1].multiplexed = h[2].multiplexed = 1;
    const size_t conns[] = {1, 1, 1}, idx[] = {1, 2, 3};
    check(h, 3, conns, idx, 1);
}

static void lookback_is_bounded(void **state)
{
    enum { N = SHUNT_HAR_LOOKBACK + 10 };
    static struct shunt_har_conn_hint h[N];
    /* One idle connection, then N-1 busy ones opened after it: the last reused entry is
     * further back than the bound allows, so it gets a connection of its own. */
    h[0] = (struct shunt_har_conn_hint)H(0, 1, 1, NULL, "http://a:80");
    for (size_t i = 1; i < N - 1; i++)
        h[i] = (struct shunt_har_conn_hint)H(10 + i, 100000, 1, NULL, "http://a:80");
    h[N - 1] = (struct shunt_har_conn_hint)H(5000, 5001, 0, NULL, "http://a:80");
    assert_int_equal(shunt_har_infer_connections(h, N), N);
    assert_int_equal(h[N - 1].conn, N);
}

static void no_entries_no_connections(void **state)
{
    assert_int_equal(shunt_har_infer_connections(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(producers_are_told_by_creator_name),
        cmocka_unit_test(times_parse_in_every_producers_form),
        cmocka_unit_test(times_format_with_milliseconds_in_utc),
        cmocka_unit_test(times_beyond_four_digit_years_are_clamped),
        cmocka_unit_test(heads_are_walked_leniently),
        cmocka_unit_test(keyed_connections_follow_the_key),
        cmocka_unit_test(a_port_seen_again_after_its_connection_ended_is_a_new_connection),
        cmocka_unit_test(a_port_is_split_only_when_its_connection_provably_ended),
        cmocka_unit_test(timings_decide_without_a_key),
        cmocka_unit_test(multiplexed_entries_share_a_busy_connection),
        cmocka_unit_test(lookback_is_bounded),
        cmocka_unit_test(no_entries_no_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
