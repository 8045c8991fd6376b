/* tests/unit/lab/test_auth.c - the lab's NTLM and Negotiate tokens: round trips, tokens for
 * another challenge, hostile and truncated input, DER lengths. Includes auth.c to reach the
 * base64 and DER helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/auth.c"

/* ------------------------------------------------------------------------ helpers */

/* Decodes <b64> into <raw>, returning the length (the test fails on bad base64). */
static size_t decode(const char *b64, uint8_t *raw, size_t cap)
{
    long n = b64_decode(b64, strlen(b64), raw, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static void encode(const uint8_t *raw, size_t len, char *out, size_t cap)
{
    assert_int_equal(shunt_lab__b64_encode(raw, len, out, cap), 0);
}

/* A deterministic pseudo-random generator for the garbage tests. */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* ------------------------------------------------------------------------ base64 */

static void base64_round_trips_and_rejects_junk(void **state)
{
    uint8_t raw[64], back[64];
    char b64[128];
    for (size_t len = 1; len < 10; len++) {
        for (size_t i = 0; i < len; i++)
            raw[i] = (uint8_t)(i * 37 + len);
        encode(raw, len, b64, sizeof(b64));
        assert_int_equal(b64_decode(b64, strlen(b64), back, sizeof(back)), (long)len);
        assert_memory_equal(raw, back, len);
    }
    assert_int_equal(b64_decode("TlRMTVNTUAABAAAA", 16, back, sizeof(back)), 12);
    static const char *bad[] = {"", "A", "AB=", "A===", "AB=C", "AB*D", "ABC=ABCD", "====",
                                "TlRM TVNT"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_true(b64_decode(bad[i], strlen(bad[i]), back, sizeof(back)) < 0);
    /* Too large for the output. */
    assert_true(b64_decode("AAAAAAAA", 8, back, 5) < 0);
    assert_int_equal(shunt_lab__b64_encode(raw, 3, b64, 4), SHUNT_ETOOBIG);
}

/* ------------------------------------------------------------------------ NTLM */

static void ntlm_three_legs_round_trip(void **state)
{
    char t1[SHUNT_LAB_TOKEN_MAX], t2[SHUNT_LAB_TOKEN_MAX], t3[SHUNT_LAB_TOKEN_MAX];
    uint8_t challenge[8];
    char user[64];

    assert_int_equal(shunt_lab_ntlm_negotiate(t1, sizeof(t1)), 0);
    assert_int_equal(shunt_lab_token_kind(t1, strlen(t1)), SHUNT_LAB_TOKEN_NTLM_NEGOTIATE);
    uint8_t raw[256];
    size_t n = decode(t1, raw, sizeof(raw));
    assert_int_equal(n, 32);
    assert_memory_equal(raw, "NTLMSSP\0\1\0\0\0", 12);

    assert_int_equal(shunt_lab_ntlm_challenge(challenge, t2, sizeof(t2)), 0);
    assert_int_equal(shunt_lab_token_kind(t2, strlen(t2)), SHUNT_LAB_TOKEN_NTLM_CHALLENGE);
    n = decode(t2, raw, sizeof(raw));
    assert_memory_equal(raw + 24, challenge, 8);
    assert_int_equal(get32(raw + 8), 2);
    /* Target name "LAB" in UTF-16LE at the offset its security buffer gives. */
    assert_int_equal(get16(raw + 12), 6);
    assert_memory_equal(raw + get32(raw + 16), "L\0A\0B\0", 6);

    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "LAB\\alice", t3, sizeof(t3)), 0);
    assert_int_equal(shunt_lab_token_kind(t3, strlen(t3)), SHUNT_LAB_TOKEN_NTLM_AUTHENTICATE);
    assert_int_equal(shunt_lab_ntlm_verify(t3, strlen(t3), challenge, user, sizeof(user)), 0);
    assert_string_equal(user, "LAB\\alice");

    /* A user without a domain. */
    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "bob", t3, sizeof(t3)), 0);
    assert_int_equal(shunt_lab_ntlm_verify(t3, strlen(t3), challenge, user, sizeof(user)), 0);
    assert_string_equal(user, "bob");
}

static void ntlm_authenticate_for_another_challenge_fails(void **state)
{
    char t2a[SHUNT_LAB_TOKEN_MAX], t2b[SHUNT_LAB_TOKEN_MAX], t3[SHUNT_LAB_TOKEN_MAX];
    uint8_t ca[8], cb[8];
    char user[64];
    assert_int_equal(shunt_lab_ntlm_challenge(ca, t2a, sizeof(t2a)), 0);
    assert_int_equal(shunt_lab_ntlm_challenge(cb, t2b, sizeof(t2b)), 0);
    assert_memory_not_equal(ca, cb, 8);
    assert_int_equal(shunt_lab_ntlm_authenticate(t2a, strlen(t2a), "LAB\\alice", t3, sizeof(t3)), 0);
    assert_int_equal(shunt_lab_ntlm_verify(t3, strlen(t3), cb, user, sizeof(user)), SHUNT_EINVAL);
    assert_string_equal(user, "");
    /* Tampering with the user name breaks the response too. */
    uint8_t raw[512];
    size_t n = decode(t3, raw, sizeof(raw));
    raw[get32(raw + 40)] ^= 1;
    char t3x[SHUNT_LAB_TOKEN_MAX];
    encode(raw, n, t3x, sizeof(t3x));
    assert_int_equal(shunt_lab_ntlm_verify(t3x, strlen(t3x), ca, user, sizeof(user)), SHUNT_EINVAL);
    /* The user does not fit the caller's buffer. */
    assert_int_equal(shunt_lab_ntlm_verify(t3, strlen(t3), ca, user, 5), SHUNT_EINVAL);
}

static void ntlm_rejects_bad_input(void **state)
{
    char t2[SHUNT_LAB_TOKEN_MAX], t3[SHUNT_LAB_TOKEN_MAX], t1[SHUNT_LAB_TOKEN_MAX];
    uint8_t c[8];
    char user[64];
    assert_int_equal(shunt_lab_ntlm_challenge(c, t2, sizeof(t2)), 0);
    assert_int_equal(shunt_lab_ntlm_negotiate(t1, sizeof(t1)), 0);
    /* Authenticate against something that is not a CHALLENGE. */
    assert_int_equal(shunt_lab_ntlm_authenticate(t1, strlen(t1), "u", t3, sizeof(t3)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_ntlm_authenticate("!!!!", 4, "u", t3, sizeof(t3)), SHUNT_EINVAL);
    /* Bad user names. */
    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "", t3, sizeof(t3)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "\\x", t3, sizeof(t3)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "a b", t3, sizeof(t3)), SHUNT_EINVAL);
    /* Too small an output. */
    assert_int_equal(shunt_lab_ntlm_negotiate(t1, 10), SHUNT_ETOOBIG);

    /* Every truncation of a valid AUTHENTICATE is rejected (or at least does not verify). */
    assert_int_equal(shunt_lab_ntlm_authenticate(t2, strlen(t2), "LAB\\alice", t3, sizeof(t3)), 0);
    uint8_t raw[512];
    size_t n = decode(t3, raw, sizeof(raw));
    for (size_t k = 0; k < n; k++) {
        char b[SHUNT_LAB_TOKEN_MAX];
        encode(raw, k, b, sizeof(b));
        assert_int_equal(shunt_lab_ntlm_verify(b, strlen(b), c, user, sizeof(user)), SHUNT_EINVAL);
        assert_int_not_equal(shunt_lab_token_kind(b, strlen(b)), SHUNT_LAB_TOKEN_NTLM_AUTHENTICATE);
    }
    /* A security buffer pointing past the end. */
    uint8_t bad[512];
    memcpy(bad, raw, n);
    put32(bad + 24, 0xfffffff0u); /* NT response offset */
    char b[SHUNT_LAB_TOKEN_MAX];
    encode(bad, n, b, sizeof(b));
    assert_int_equal(shunt_lab_token_kind(b, strlen(b)), SHUNT_LAB_TOKEN_INVALID);
    assert_int_equal(shunt_lab_ntlm_verify(b, strlen(b), c, user, sizeof(user)), SHUNT_EINVAL);
    /* A length that overflows offset + length. */
    memcpy(bad, raw, n);
    put16(bad + 20, 0xffff);
    encode(bad, n, b, sizeof(b));
    assert_int_equal(shunt_lab_ntlm_verify(b, strlen(b), c, user, sizeof(user)), SHUNT_EINVAL);
    /* A user name with a non-ASCII character: response fixed up so only the name is wrong. */
    memcpy(bad, raw, n);
    size_t uoff = get32(bad + 40);
    bad[uoff + 1] = 0x01;
    ntlm_lab_response(c, bad + get32(bad + 32), get16(bad + 28), bad + uoff, get16(bad + 36),
                      bad + get32(bad + 24));
    encode(bad, n, b, sizeof(b));
    assert_int_equal(shunt_lab_ntlm_verify(b, strlen(b), c, user, sizeof(user)), SHUNT_EINVAL);
}

/* ------------------------------------------------------------------------ SPNEGO */

static void spnego_round_trip(void **state)
{
    char init[SHUNT_LAB_TOKEN_MAX], fin[SHUNT_LAB_TOKEN_MAX], user[64];
    assert_int_equal(shunt_lab_spnego_init("LAB\\alice", "origin.lab", init, sizeof(init)), 0);
    assert_int_equal(shunt_lab_token_kind(init, strlen(init)), SHUNT_LAB_TOKEN_SPNEGO_INIT);
    assert_int_equal(shunt_lab_spnego_verify(init, strlen(init), user, sizeof(user)), 0);
    assert_string_equal(user, "LAB\\alice");

    uint8_t raw[2048];
    size_t n = decode(init, raw, sizeof(raw));
    /* [APPLICATION 0], then the SPNEGO OID 1.3.6.1.5.5.2. */
    assert_int_equal(raw[0], 0x60);
    size_t at = raw[1] < 0x80 ? 2 : 2 + (raw[1] & 0x7f);
    assert_memory_equal(raw + at, "\x06\x06\x2b\x06\x01\x05\x05\x02", 8);
    /* The Kerberos OID and the service name are in there. */
    assert_non_null(memmem(raw, n, "\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02", 11));
    assert_non_null(memmem(raw, n, "\x1b\x04HTTP\x1b\x0aorigin.lab", 16));
    assert_non_null(memmem(raw, n, "\x01\x00\x6e", 3)); /* tok_id KRB_AP_REQ, AP-REQ */

    assert_int_equal(shunt_lab_spnego_final(fin, sizeof(fin)), 0);
    assert_int_equal(shunt_lab_token_kind(fin, strlen(fin)), SHUNT_LAB_TOKEN_SPNEGO_RESP);
    assert_int_equal(shunt_lab_spnego_check_final(fin, strlen(fin)), 0);
    n = decode(fin, raw, sizeof(raw));
    assert_int_equal(raw[0], 0xa1);
    assert_non_null(memmem(raw, n, "\xa0\x03\x0a\x01\x00", 5)); /* negState accept-completed */
    assert_non_null(memmem(raw, n, "\x02\x00\x6f", 3));         /* KRB_AP_REP, AP-REP */

    /* Each is refused by the other's checker. */
    assert_int_equal(shunt_lab_spnego_check_final(init, strlen(init)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_spnego_verify(fin, strlen(fin), user, sizeof(user)), SHUNT_EINVAL);
}

static void spnego_rejects_bad_names(void **state)
{
    char init[SHUNT_LAB_TOKEN_MAX];
    assert_int_equal(shunt_lab_spnego_init("", "h", init, sizeof(init)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_spnego_init("u", "", init, sizeof(init)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_spnego_init("a\nb", "h", init, sizeof(init)), SHUNT_EINVAL);
    char longname[AUTH_MAX_NAME + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(shunt_lab_spnego_init(longname, "h", init, sizeof(init)), SHUNT_EINVAL);
    assert_int_equal(shunt_lab_spnego_init("u", "h", init, 16), SHUNT_ETOOBIG);
}

static void spnego_long_form_lengths(void **state)
{
    /* Names long enough that the outer lengths need 0x81 and 0x82 forms. */
    char user[AUTH_MAX_NAME + 1], host[AUTH_MAX_NAME + 1], init[SHUNT_LAB_TOKEN_MAX], got[160];
    memset(user, 'u', AUTH_MAX_NAME);
    user[AUTH_MAX_NAME] = '\0';
    memset(host, 'h', AUTH_MAX_NAME);
    host[AUTH_MAX_NAME] = '\0';
    assert_int_equal(shunt_lab_spnego_init(user, host, init, sizeof(init)), 0);
    uint8_t raw[2048];
    size_t n = decode(init, raw, sizeof(raw));
    assert_true(n > 256);
    assert_int_equal(raw[1], 0x82);
    assert_int_equal((size_t)(raw[2] << 8 | raw[3]) + 4, n);
    assert_int_equal(shunt_lab_spnego_verify(init, strlen(init), got, sizeof(got)), 0);
    assert_string_equal(got, user);
    /* The user does not fit the caller's buffer. */
    assert_int_equal(shunt_lab_spnego_verify(init, strlen(init), got, 10), SHUNT_EINVAL);

    /* The writer: short form, 0x81, 0x82, 0x83. */
    static const struct { size_t n; uint8_t enc[4]; size_t len; } cases[] = {
        {0, {0x00}, 1},          {127, {0x7f}, 1},
        {128, {0x81, 0x80}, 2},  {255, {0x81, 0xff}, 2},
        {256, {0x82, 0x01, 0x00}, 3}, {70000, {0x83, 0x01, 0x11, 0x70}, 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct der_out d = {.len = 0};
        der_put_len(&d, cases[i].n);
        assert_int_equal(d.len, cases[i].len);
        assert_memory_equal(d.b, cases[i].enc, cases[i].len);
    }

    /* The reader. */
    uint8_t buf[300] = {0x04, 0x81, 0x80};
    struct der_in in = {buf, buf + 3 + 128}, v;
    assert_int_equal(der_get(&in, 0x04, &v), 0);
    assert_int_equal(v.end - v.p, 128);
    assert_ptr_equal(in.p, buf + 131);
    /* Non-minimal (0x81 0x05), indefinite (0x80), too many length bytes, past the end. */
    static const uint8_t bad[][7] = {
        {0x04, 0x81, 0x05, 1, 2, 3, 4}, {0x04, 0x80, 0, 0, 0, 0, 0},
        {0x04, 0x85, 1, 0, 0, 0, 0},    {0x04, 0x82, 0x00, 0x90, 0, 0, 0},
        {0x04, 0x05, 1, 2, 3, 4, 0},    {0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct der_in b = {bad[i], bad[i] + 6};
        assert_int_equal(der_get(&b, 0x04, &v), SHUNT_EINVAL);
        assert_ptr_equal(b.p, bad[i]);
    }
    /* A wrong tag. */
    struct der_in w = {buf, buf + 131};
    assert_int_equal(der_get(&w, 0x30, &v), SHUNT_EINVAL);
}

static void spnego_truncations_rejected(void **state)
{
    char init[SHUNT_LAB_TOKEN_MAX], fin[SHUNT_LAB_TOKEN_MAX], b[SHUNT_LAB_TOKEN_MAX], user[64];
    uint8_t raw[2048];
    assert_int_equal(shunt_lab_spnego_init("alice", "origin.lab", init, sizeof(init)), 0);
    size_t n = decode(init, raw, sizeof(raw));
    for (size_t k = 1; k < n; k++) {
        encode(raw, k, b, sizeof(b));
        assert_int_equal(shunt_lab_spnego_verify(b, strlen(b), user, sizeof(user)), SHUNT_EINVAL);
        assert_int_equal(shunt_lab_token_kind(b, strlen(b)), SHUNT_LAB_TOKEN_INVALID);
    }
    /* Trailing garbage after a complete token. */
    raw[n] = 0;
    encode(raw, n + 1, b, sizeof(b));
    assert_int_equal(shunt_lab_spnego_verify(b, strlen(b), user, sizeof(user)), SHUNT_EINVAL);

    assert_int_equal(shunt_lab_spnego_final(fin, sizeof(fin)), 0);
    n = decode(fin, raw, sizeof(raw));
    for (size_t k = 1; k < n; k++) {
        encode(raw, k, b, sizeof(b));
        assert_int_equal(shunt_lab_spnego_check_final(b, strlen(b)), SHUNT_EINVAL);
    }
    /* negState reject (2) instead of accept-completed. */
    uint8_t *ns = memmem(raw, n, "\xa0\x03\x0a\x01\x00", 5);
    assert_non_null(ns);
    ns[4] = 2;
    encode(raw, n, b, sizeof(b));
    assert_int_equal(shunt_lab_spnego_check_final(b, strlen(b)), SHUNT_EINVAL);
}

/* Single-byte mutations and random garbage: nothing crashes (ASan watches), and whatever is
 * accepted yields a sane user name. */
static void hostile_input_never_crashes(void **state)
{
    char tok[4][SHUNT_LAB_TOKEN_MAX], b[SHUNT_LAB_TOKEN_MAX * 2], user[64];
    uint8_t c[8];
    assert_int_equal(shunt_lab_ntlm_challenge(c, tok[0], sizeof(tok[0])), 0);
    assert_int_equal(shunt_lab_ntlm_authenticate(tok[0], strlen(tok[0]), "LAB\\alice", tok[1],
                                                 sizeof(tok[1])), 0);
    assert_int_equal(shunt_lab_spnego_init("alice", "h", tok[2], sizeof(tok[2])), 0);
    assert_int_equal(shunt_lab_spnego_final(tok[3], sizeof(tok[3])), 0);
    for (int t = 0; t < 4; t++) {
        uint8_t raw[2048], m[2048];
        size_t n = decode(tok[t], raw, sizeof(raw));
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(m, raw, n);
            int flips = 1 + (int)(rng() % 3);
            for (int f = 0; f < flips; f++)
                m[rng() % n] = (uint8_t)rng();
            encode(m, n, b, sizeof(b));
            size_t bl = strlen(b);
            (void)shunt_lab_token_kind(b, bl);
            if (shunt_lab_ntlm_verify(b, bl, c, user, sizeof(user)) == 0)
                assert_true(strlen(user) > 0);
            if (shunt_lab_spnego_verify(b, bl, user, sizeof(user)) == 0)
                assert_true(strlen(user) > 0);
            int r = shunt_lab_spnego_check_final(b, bl);
            assert_true(r == 0 || r == SHUNT_EINVAL);
            char out[SHUNT_LAB_TOKEN_MAX];
            r = shunt_lab_ntlm_authenticate(b, bl, "u", out, sizeof(out));
            assert_true(r == 0 || r == SHUNT_EINVAL);
        }
    }
    /* Pure garbage of every small length, and non-base64 text. */
    for (size_t len = 0; len < 200; len++) {
        uint8_t g[200];
        for (size_t i = 0; i < len; i++)
            g[i] = (uint8_t)rng();
        encode(g, len, b, sizeof(b));
        assert_int_equal(shunt_lab_token_kind(b, strlen(b)), SHUNT_LAB_TOKEN_INVALID);
        assert_int_equal(shunt_lab_token_kind((const char *)g, len), SHUNT_LAB_TOKEN_INVALID);
    }
    assert_int_equal(shunt_lab_token_kind(NULL, 0), SHUNT_LAB_TOKEN_INVALID);
    /* Far too long a token. */
    size_t big = 40000;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 'A', big);
    assert_int_equal(shunt_lab_token_kind(huge, big), SHUNT_LAB_TOKEN_INVALID);
    assert_int_equal(shunt_lab_spnego_verify(huge, big, user, sizeof(user)), SHUNT_EINVAL);
    free(huge);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_round_trips_and_rejects_junk),
        cmocka_unit_test(ntlm_three_legs_round_trip),
        cmocka_unit_test(ntlm_authenticate_for_another_challenge_fails),
        cmocka_unit_test(ntlm_rejects_bad_input),
        cmocka_unit_test(spnego_round_trip),
        cmocka_unit_test(spnego_rejects_bad_names),
        cmocka_unit_test(spnego_long_form_lengths),
        cmocka_unit_test(spnego_truncations_rejected),
        cmocka_unit_test(hostile_input_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
