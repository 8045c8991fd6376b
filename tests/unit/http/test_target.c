/* tests/unit/http/test_target.c - table-driven tests of request-target and authority
 * splitting (http/target.h): the one reading the proxy, the recorder, the HAR importer, the
 * model, the CLI, the lab and the rules share. Cases marked "was:" are where the copies it
 * replaced disagreed, and say which way it went. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/target.h"

/* An exact-size heap copy, so that ASan sees any read past the end. */
static struct shunt_slice heap(const char *s, char **owned)
{
    size_t n = strlen(s);
    *owned = malloc(n ? n : 1);
    assert_non_null(*owned);
    memcpy(*owned, s, n);
    return shunt_slice_make(*owned, n);
}

static void assert_slice(struct shunt_slice got, const char *want)
{
    if (want == NULL) {
        assert_null(got.base);
        assert_int_equal(got.len, 0);
        return;
    }
    assert_int_equal(got.len, strlen(want));
    if (got.len > 0)
        assert_memory_equal(got.base, want, got.len);
}

/* ---------------------------------------------------------------- targets */

struct target_case {
    const char *t;
    int connect;
    enum shunt_target_form form;
    const char *scheme, *authority, *path;
    int default_port, https;
};

static const struct target_case targets[] = {
    {"/", 0, SHUNT_TARGET_ORIGIN, "", "", "/", 0, 0},
    {"/a/b?q=1", 0, SHUNT_TARGET_ORIGIN, "", "", "/a/b?q=1", 0, 0},
    {"*", 0, SHUNT_TARGET_ASTERISK, "", "", "", 0, 0},
    {"**", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"http://h", 0, SHUNT_TARGET_ABSOLUTE, "http", "h", "", 80, 0},
    {"http://h/", 0, SHUNT_TARGET_ABSOLUTE, "http", "h", "/", 80, 0},
    {"HTTP://H:81/p?q", 0, SHUNT_TARGET_ABSOLUTE, "HTTP", "H:81", "/p?q", 80, 0},
    {"http://h?q", 0, SHUNT_TARGET_ABSOLUTE, "http", "h", "?q", 80, 0},
    {"http://h#f", 0, SHUNT_TARGET_ABSOLUTE, "http", "h", "#f", 80, 0},
    {"http://u:p@h:8/x", 0, SHUNT_TARGET_ABSOLUTE, "http", "u:p@h:8", "/x", 80, 0},
    {"http://[::1]:8/x", 0, SHUNT_TARGET_ABSOLUTE, "http", "[::1]:8", "/x", 80, 0},
    {"http://", 0, SHUNT_TARGET_ABSOLUTE, "http", "", "", 80, 0},
    {"https://h/", 0, SHUNT_TARGET_ABSOLUTE, "https", "h", "/", 443, 1},
    {"HttpS://h/", 0, SHUNT_TARGET_ABSOLUTE, "HttpS", "h", "/", 443, 1},
    {"ws://h/", 0, SHUNT_TARGET_ABSOLUTE, "ws", "h", "/", 80, 0},
    {"wss://h/", 0, SHUNT_TARGET_ABSOLUTE, "wss", "h", "/", 443, 1},
    {"ftp://h/", 0, SHUNT_TARGET_ABSOLUTE, "ftp", "h", "/", 0, 0},
    {"a+b.c-d://h", 0, SHUNT_TARGET_ABSOLUTE, "a+b.c-d", "h", "", 0, 0},
    {"1http://h/", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"http:/h/", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"http:", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"h:443", 0, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
    {"h:443", 1, SHUNT_TARGET_AUTHORITY, "", "h:443", "", 0, 0},
    /* a CONNECT's target is authority-form whatever it looks like */
    {"/x", 1, SHUNT_TARGET_AUTHORITY, "", "/x", "", 0, 0},
    {"", 1, SHUNT_TARGET_INVALID, "", "", "", 0, 0},
};

static void target_table(void **state)
{
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const struct target_case *c = &targets[i];
        char *owned;
        struct shunt_slice t = heap(c->t, &owned);
        struct shunt_target out;
        print_message("target \"%s\"%s\n", c->t, c->connect ? " (CONNECT)" : "");
        assert_int_equal(shunt_http_split_target(t, c->connect, &out), c->form);
        assert_int_equal(out.form, c->form);
        assert_slice(out.scheme, c->scheme[0] ? c->scheme : NULL);
        if (c->form == SHUNT_TARGET_ABSOLUTE || c->form == SHUNT_TARGET_AUTHORITY)
            assert_slice(out.authority, c->authority);
        else
            assert_int_equal(out.authority.len, 0);
        if (c->path[0] != '\0')
            assert_slice(out.path, c->path);
        else
            assert_int_equal(out.path.len, 0);
        assert_int_equal(out.default_port, c->default_port);
        assert_int_equal(out.https, c->https);
        free(owned);
    }
}

/* ---------------------------------------------------------------- authorities */

#define OK NULL
#define UI SHUNT_AUTHORITY_USERINFO
#define NP SHUNT_AUTHORITY_NEED_PORT

struct auth_case {
    const char *a;
    int dflt;
    unsigned flags;
    const char *why; /* NULL: well-formed */
    const char *host, *userinfo;
    int port, has_port, ipv6;
};

static const struct auth_case auths[] = {
    {"example.com", 80, 0, OK, "example.com", NULL, 80, 0, 0},
    {"Example.COM:8080", 80, 0, OK, "Example.COM", NULL, 8080, 1, 0}, /* case kept */
    {"127.0.0.1:1", 80, 0, OK, "127.0.0.1", NULL, 1, 1, 0},
    {"h:65535", 80, 0, OK, "h", NULL, 65535, 1, 0},
    {"under_score.test", 80, 0, OK, "under_score.test", NULL, 80, 0, 0},
    {"a%41b!$&'()*+,;=~-.", 80, 0, OK, "a%41b!$&'()*+,;=~-.", NULL, 80, 0, 0},
    {"[::1]", 80, 0, OK, "::1", NULL, 80, 0, 1},
    {"[::1]:8443", 443, 0, OK, "::1", NULL, 8443, 1, 1},
    {"[::ffff:1.2.3.4]:9", 80, 0, OK, "::ffff:1.2.3.4", NULL, 9, 1, 1},
    {"[FE80::A]", 80, 0, OK, "FE80::A", NULL, 80, 0, 1},
    /* was: the rules refused a port of more than 5 digits, the proxy took it; RFC 3986
     * 3.2.3: port = *DIGIT */
    {"h:000080", 80, 0, OK, "h", NULL, 80, 1, 0},
    /* CONNECT: the port is required (RFC 9112 3.2.3) */
    {"h:443", 0, NP, OK, "h", NULL, 443, 1, 0},
    {"h", 0, NP, "no port", "h", NULL, 0, 0, 0},
    {"[::1]", 0, NP, "no port", "::1", NULL, 0, 0, 1},
    /* user info: reported when allowed, else refused (the host read as if it were not
     * there). was: the recorder kept "user@host" as the host, the importer cut at the first
     * '@', the proxy refused */
    {"u:p@h:81", 80, UI, OK, "h", "u:p", 81, 1, 0},
    {"@h", 80, UI, OK, "h", "", 80, 0, 0},
    {"u@h", 80, 0, "user info in the host", "h", "u", 80, 0, 0},
    {"a@b@h", 80, UI, OK, "h", "a@b", 80, 0, 0},
    /* hosts */
    {"", 80, 0, "no host", NULL, NULL, 80, 0, 0},
    {":80", 80, 0, "no host", "", NULL, 80, 1, 0},
    {"[]", 80, 0, "no host", "", NULL, 80, 0, 1},
    {"u@", 80, UI, "no host", "", "u", 80, 0, 0},
    {"exa mple", 80, 0, "a character not allowed in a host", "exa mple", NULL, 80, 0, 0},
    {"a/b", 80, 0, "a character not allowed in a host", "a/b", NULL, 80, 0, 0},
    {"a\\b", 80, 0, "a character not allowed in a host", "a\\b", NULL, 80, 0, 0},
    {"h\"", 80, 0, "a character not allowed in a host", "h\"", NULL, 80, 0, 0},
    {"h\x80", 80, 0, "a character not allowed in a host", "h\x80", NULL, 80, 0, 0},
    /* was: the lab client read "::1:8080" as [::1]:8080; not an authority (RFC 3986 3.2.2:
     * an IPv6 address is in brackets) */
    {"::1:8080", 80, 0, "a character not allowed in a host", "::1", NULL, 8080, 1, 0},
    /* the port follows the last ':' (the rules' and the model's reading; the proxy's and the
     * recorder's took the first, which named a good port bad) */
    {"h:80.x:81", 80, 0, "a character not allowed in a host", "h:80.x", NULL, 81, 1, 0},
    {"[::1", 80, 0, "an unclosed [ in the host", "::1", NULL, 80, 0, 1},
    {"[::g]", 80, 0, "a character that is not allowed in an IPv6 address", "::g", NULL, 80, 0,
     1},
    {"[fe80::1%25eth0]", 80, 0, "a character that is not allowed in an IPv6 address",
     "fe80::1%25eth0", NULL, 80, 0, 1},
    /* ports. was: the model took "h:" for the default port, the proxy refused it */
    {"h:", 80, 0, "a malformed port", "h", NULL, 80, 0, 0},
    {"h:8a", 80, 0, "a malformed port", "h", NULL, 80, 0, 0},
    {"h:+80", 80, 0, "a malformed port", "h", NULL, 80, 0, 0},
    {"h:80:80", 80, 0, "a character not allowed in a host", "h:80", NULL, 80, 1, 0},
    {"[::1]x", 80, 0, "a malformed port", "::1", NULL, 80, 0, 1},
    {"[::1]:", 80, 0, "a malformed port", "::1", NULL, 80, 0, 1},
    {"h:0", 80, 0, "a port out of range", "h", NULL, 80, 0, 0},
    {"h:65536", 80, 0, "a port out of range", "h", NULL, 80, 0, 0},
    {"h:99999999999999999999999", 80, 0, "a port out of range", "h", NULL, 80, 0, 0},
};

static void authority_table(void **state)
{
    for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
        const struct auth_case *c = &auths[i];
        char *owned;
        struct shunt_slice a = heap(c->a, &owned);
        struct shunt_authority out;
        print_message("authority \"%s\"\n", c->a);
        const char *why = shunt_http_split_authority(a, c->dflt, c->flags, &out);
        if (c->why == NULL)
            assert_null(why);
        else
            assert_string_equal(why != NULL ? why : "(well-formed)", c->why);
        if (c->host != NULL)
            assert_slice(out.host, c->host);
        else
            assert_int_equal(out.host.len, 0);
        assert_slice(out.userinfo, c->userinfo);
        assert_int_equal(out.port, c->port);
        assert_int_equal(out.has_port, c->has_port);
        assert_int_equal(out.ipv6, c->ipv6);
        free(owned);
    }
}

static void host_lower(void **state)
{
    char out[8];
    assert_int_equal(shunt_http_host_lower(SHUNT_SLICE_LIT("ExA.CoM"), out, sizeof(out)), 7);
    assert_string_equal(out, "exa.com");
    assert_int_equal(shunt_http_host_lower(SHUNT_SLICE_LIT("FE80::A"), out, sizeof(out)), 7);
    assert_string_equal(out, "fe80::a");
    /* one byte too long for the NUL: refused, not cut (a cut host is another host) */
    assert_int_equal(shunt_http_host_lower(SHUNT_SLICE_LIT("abcdefgh"), out, sizeof(out)), -1);
    assert_string_equal(out, "");
    assert_int_equal(shunt_http_host_lower(shunt_slice_make(NULL, 0), out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(target_table),
        cmocka_unit_test(authority_table),
        cmocka_unit_test(host_lower),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
