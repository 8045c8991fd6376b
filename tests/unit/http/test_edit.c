/* tests/unit/http/test_edit.c - editing a head's fields: untouched fields keep their wire
 * bytes, set/add/remove do what rules expect, header injection is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/edit.h"

static const char head_text[] = "HTTP/1.1 200 OK\r\nserver:  nginx \r\nX-A: 1\r\nSet-Cookie: a\r\n"
                                "Set-Cookie: b\r\nContent-Length: 0\r\n\r\n";

static struct shunt_http_header hdrs[16];
static struct shunt_http_head head;
static struct shunt_edit_field fields[24];

static int setup(void **state)
{
    struct shunt_http_limits lim = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_error err;
    memset(&head, 0, sizeof(head));
    int r = shunt_http_parse_response(head_text, sizeof(head_text) - 1, 0, &head, hdrs, 16, &lim,
                                      &err);
    assert_int_equal(r, (int)sizeof(head_text) - 1);
    return 0;
}

/* The lines the edit would send, concatenated. */
static const char *lines(const struct shunt_head_edit *e)
{
    static char out[1024];
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (e->f[i].removed)
            continue;
        memcpy(out + n, e->f[i].line.base, e->f[i].line.len);
        n += e->f[i].line.len;
    }
    out[n] = '\0';
    return out;
}

static void test_untouched_fields_keep_their_bytes(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    assert_string_equal(lines(&e), "server:  nginx \r\nX-A: 1\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n"
                                   "Content-Length: 0\r\n");
    assert_int_equal(e.changes, 0);
    shunt_edit_dispose(&e);
}

static void test_set_replaces_first_in_place_keeps_its_name_and_drops_the_rest(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    assert_int_equal(shunt_edit_set(&e, "SET-COOKIE", 10, "c=1", 3), 0);
    assert_int_equal(shunt_edit_set(&e, "Server", 6, "IIS", 3), 0);
    assert_string_equal(lines(&e), "server: IIS\r\nX-A: 1\r\nSet-Cookie: c=1\r\nContent-Length: 0\r\n");
    assert_int_equal(e.changes, 3);
    shunt_edit_dispose(&e);
}

static void test_set_to_the_same_value_changes_nothing(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    assert_int_equal(shunt_edit_set(&e, "X-A", 3, "1", 1), 0);
    assert_int_equal(e.changes, 0);
    shunt_edit_dispose(&e);
}

static void test_add_appends_and_get_finds_the_first(void **state)
{
    struct shunt_head_edit e;
    int found;
    shunt_edit_init(&e, &head, fields, 24);
    assert_int_equal(shunt_edit_add(&e, "Set-Cookie", 10, "z", 1), 0);
    struct shunt_slice v = shunt_edit_get(&e, "set-cookie", 10, &found);
    assert_true(found);
    assert_int_equal(v.len, 1);
    assert_memory_equal(v.base, "a", 1);
    v = shunt_edit_get(&e, "X-Missing", 9, &found);
    assert_false(found);
    assert_int_equal(v.len, 0);
    shunt_edit_dispose(&e);
}

static void test_remove_removes_all_and_counts(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    assert_int_equal(shunt_edit_remove(&e, "set-cookie", 10), 2);
    assert_int_equal(shunt_edit_remove(&e, "nothing", 7), 0);
    assert_string_equal(lines(&e), "server:  nginx \r\nX-A: 1\r\nContent-Length: 0\r\n");
    shunt_edit_dispose(&e);
}

static void test_injection_and_bad_names_are_refused(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    assert_int_equal(shunt_edit_set(&e, "X-A", 3, "1\r\nEvil: 1", 10), SHUNT_EINVAL);
    assert_int_equal(shunt_edit_add(&e, "X-A", 3, "a\nb", 3), SHUNT_EINVAL);
    assert_int_equal(shunt_edit_add(&e, "X A", 3, "1", 1), SHUNT_EINVAL);
    assert_int_equal(shunt_edit_add(&e, "", 0, "1", 1), SHUNT_EINVAL);
    assert_int_equal(e.changes, 0);
    shunt_edit_dispose(&e);
}

static void test_many_additions_move_the_store_and_keep_every_line(void **state)
{
    struct shunt_head_edit e;
    shunt_edit_init(&e, &head, fields, 24);
    char name[16], value[64];
    for (int i = 0; i < 19; i++) {
        int nl = snprintf(name, sizeof(name), "X-%d", i);
        memset(value, 'a' + i, sizeof(value));
        assert_int_equal(shunt_edit_add(&e, name, (size_t)nl, value, sizeof(value)), 0);
    }
    assert_int_equal(shunt_edit_add(&e, "X-full", 6, "1", 1), SHUNT_ETOOBIG);
    for (int i = 0; i < 19; i++) {
        int found, nl = snprintf(name, sizeof(name), "X-%d", i);
        struct shunt_slice v = shunt_edit_get(&e, name, (size_t)nl, &found);
        assert_true(found);
        assert_int_equal(v.len, 64);
        assert_int_equal(v.base[0], 'a' + i);
        assert_int_equal(v.base[63], 'a' + i);
    }
    shunt_edit_dispose(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_untouched_fields_keep_their_bytes, setup),
        cmocka_unit_test_setup(test_set_replaces_first_in_place_keeps_its_name_and_drops_the_rest, setup),
        cmocka_unit_test_setup(test_set_to_the_same_value_changes_nothing, setup),
        cmocka_unit_test_setup(test_add_appends_and_get_finds_the_first, setup),
        cmocka_unit_test_setup(test_remove_removes_all_and_counts, setup),
        cmocka_unit_test_setup(test_injection_and_bad_names_are_refused, setup),
        cmocka_unit_test_setup(test_many_additions_move_the_store_and_keep_every_line, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
