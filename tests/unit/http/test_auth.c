/* tests/unit/http/test_auth.c - table-driven tests of the auth scheme of a field value
 * (http/auth.h), the one reading of the proxy, the recorder, the HAR importer and the model.
 * The "was:" cases are where those copies disagreed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/auth.h"

struct auth_case {
    const char *v;
    const char *scheme; /* what shunt_http_auth_scheme() returns */
    const char *rest;   /* and in *rest */
};

static const struct auth_case cases[] = {
    {"Negotiate", "Negotiate", ""},
    /* was: the recorder kept "Negotiate," (it cut at a space only), the proxy "Negotiate" */
    {"Negotiate,", "Negotiate", ""},
    {"Negotiate, NTLM", "Negotiate", ""},
    {"Negotiate ,NTLM", "Negotiate", ""},
    {"NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA=", "NTLM",
     "TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA="},
    {"NTLM\tTlRM==  ", "NTLM", "TlRM=="},
    {"Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "Negotiate", "YIIGhgYGKwYBBQUCoIIGejCCBnag"},
    /* was: both copies gave "" for leading whitespace; the model cut at a tab too */
    {"  NTLM abc", "NTLM", "abc"},
    {"\tBasic", "Basic", ""},
    /* empty list elements first (RFC 9110 5.6.1) */
    {", ,Negotiate", "Negotiate", ""},
    /* case is kept: schemes compare case-insensitively (RFC 9110 11.1) */
    {"negotiate", "negotiate", ""},
    {"BASIC realm=\"x\"", "BASIC", "realm=\"x\""},
    /* several challenges in one field: the first one */
    {"Basic realm=\"a, b\", NTLM", "Basic", "realm=\"a, b\", NTLM"},
    {"Bearer, Basic realm=\"x\"", "Bearer", ""},
    /* an auth-param alone (a list element after the challenge it belongs to) */
    {"realm=\"x\"", "realm", "=\"x\""},
    /* nothing that is a scheme */
    {"", "", ""},
    {"   ", "", ""},
    {",", "", ""},
    {"\"quoted\" x", "", ""},
    {"=abc", "", ""},
};

static void scheme_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct auth_case *c = &cases[i];
        size_t n = strlen(c->v);
        char *owned = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
        assert_non_null(owned);
        memcpy(owned, c->v, n);
        struct shunt_slice rest = {NULL, 99};
        print_message("value \"%s\"\n", c->v);
        struct shunt_slice s = shunt_http_auth_scheme(shunt_slice_make(owned, n), &rest);
        assert_int_equal(s.len, strlen(c->scheme));
        if (s.len > 0)
            assert_memory_equal(s.base, c->scheme, s.len);
        assert_int_equal(rest.len, strlen(c->rest));
        if (rest.len > 0)
            assert_memory_equal(rest.base, c->rest, rest.len);
        char out[64];
        memset(out, 'x', sizeof(out));
        shunt_http_auth_scheme_copy(shunt_slice_make(owned, n), out, sizeof(out));
        assert_string_equal(out, c->scheme);
        free(owned);
    }
}

/* The copy is cut to its buffer, NUL-terminated: the proxy keeps 32 bytes of a scheme. */
static void copy_is_cut(void **state)
{
    char out[5];
    shunt_http_auth_scheme_copy(SHUNT_SLICE_LIT("Negotiate abc"), out, sizeof(out));
    assert_string_equal(out, "Nego");
    char one[1];
    shunt_http_auth_scheme_copy(SHUNT_SLICE_LIT("NTLM"), one, sizeof(one));
    assert_string_equal(one, "");
    shunt_http_auth_scheme_copy(shunt_slice_make(NULL, 0), out, sizeof(out));
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scheme_table),
        cmocka_unit_test(copy_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
