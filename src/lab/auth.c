/* src/lab/auth.c - the lab's NTLM and Negotiate tokens: real framing (MS-NLMP, RFC 4178,
 * RFC 4121/1964, RFC 4120), base64 as on the wire, lab-only contents (no cryptography).
 *
 * The lab's "proof" is a keyed mix, not a MAC: it only makes a token answer one challenge.
 *
 * NTLM NT response (24 bytes): for i in 0, 1, 2, bytes 8i..8i+7 are the little-endian
 * FNV-1a 64 hash of: the byte i, the 8-byte server challenge, the domain field's wire bytes,
 * one 0x00 byte, the user field's wire bytes. The LM response is 24 zero bytes. Strings are
 * UTF-16LE (NTLMSSP_NEGOTIATE_UNICODE). Anyone can compute it: it is NOT crypto.
 *
 * Kerberos AP-REQ: the Ticket names realm LAB and service HTTP/<host> (NT-SRV-INST); its
 * enc-part "cipher" is the plaintext "lab-ticket:HTTP/<host>"; the authenticator's
 * "cipher" is the plaintext "lab-authenticator:<user>". The AP-REP's "cipher" is
 * "lab-ap-rep". etype 18 is claimed but nothing is encrypted.
 *
 * Every parser here reads network input: each length is checked against the bytes that
 * remain before it is used, nothing recurses, and nothing is written past a caller's cap. */
#include "lab/auth.h"
#include "lab/internal.h"

#include <string.h>
#include <sys/random.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>

/* Largest decoded token accepted (a real Kerberos ticket with a PAC can reach 12 KiB; the
 * lab's are under 1 KiB). */
#define AUTH_MAX_RAW 16384
/* Longest user and host names put into a token. */
#define AUTH_MAX_NAME 128

/* ------------------------------------------------------------------------ base64 */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int shunt_lab__b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t need = (len + 2) / 3 * 4 + 1;
    if (out == NULL || cap < need)
        return SHUNT_ETOOBIG;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes the base64 <in> (<len> chars; padding required, as HTTP auth tokens carry it;
 * leading and trailing SP/HTAB ignored) into <out> (<cap> bytes). Returns the decoded
 * length (>= 0), or SHUNT_EINVAL for anything that is not canonical base64 or too large. */
static long b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (in == NULL)
        return SHUNT_EINVAL;
    while (len > 0 && (in[0] == ' ' || in[0] == '\t')) {
        in++;
        len--;
    }
    while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\t'))
        len--;
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return SHUNT_EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) /* data after '=' */
                return SHUNT_EINVAL;
            v[k] = b64_value(c);
            if (v[k] < 0)
                return SHUNT_EINVAL;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

long shunt_lab__b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    return b64_decode(in, len, out, cap);
}

/* ------------------------------------------------------------------------ small helpers */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Fills <buf> with <len> random bytes from the kernel. Returns 0 or SHUNT_EINVAL. */
static int random_bytes(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == len)
        return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SHUNT_EINVAL;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return got == len ? 0 : SHUNT_EINVAL;
}

/* True when <s> (<len> bytes) is a name the lab accepts: 1 to AUTH_MAX_NAME printable
 * ASCII characters, no spaces (names end up in log lines). */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > AUTH_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ NTLM */

/* MS-NLMP 2.2.2.5 NEGOTIATE flags used here. */
#define NTLM_UNICODE 0x00000001u
#define NTLM_OEM 0x00000002u
#define NTLM_REQUEST_TARGET 0x00000004u
#define NTLM_NTLM 0x00000200u
#define NTLM_ALWAYS_SIGN 0x00008000u
#define NTLM_TARGET_TYPE_DOMAIN 0x00010000u
#define NTLM_ESS 0x00080000u
#define NTLM_TARGET_INFO 0x00800000u

#define NTLM_FLAGS_NEGOTIATE                                                                       \
    (NTLM_UNICODE | NTLM_OEM | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN | NTLM_ESS)
#define NTLM_FLAGS_CHALLENGE                                                                       \
    (NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN |                          \
     NTLM_TARGET_TYPE_DOMAIN | NTLM_ESS | NTLM_TARGET_INFO)
#define NTLM_FLAGS_AUTHENTICATE (NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN | NTLM_ESS)

static const uint8_t ntlm_sig[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

/* The target (domain) the lab's CHALLENGE names, and the workstation its AUTHENTICATE does. */
#define LAB_DOMAIN "LAB"
#define LAB_WORKSTATION "LABCLIENT"

/* Fixed header sizes (MS-NLMP 2.2.1): without the optional Version field. */
#define NTLM_NEGOTIATE_LEN 32
#define NTLM_CHALLENGE_LEN 48
#define NTLM_AUTHENTICATE_LEN 64
#define NTLM_RESPONSE_LEN 24

/* A security buffer (len, maxlen, offset) checked against the message: sets *<p>, *<n>. */
static int ntlm_field(const uint8_t *msg, size_t len, size_t at, const uint8_t **p, size_t *n)
{
    if (at + 8 > len)
        return SHUNT_EINVAL;
    size_t flen = get16(msg + at);
    size_t off = get32(msg + at + 4);
    if (flen == 0) {
        *p = msg;
        *n = 0;
        return 0;
    }
    if (off > len || flen > len - off)
        return SHUNT_EINVAL;
    *p = msg + off;
    *n = flen;
    return 0;
}

/* Returns the message type (1, 2, 3) of the NTLMSSP message <msg>, after checking its
 * fixed header and every security buffer against its length; 0 when it is not one. */
static int ntlm_type(const uint8_t *msg, size_t len)
{
    if (len < 12 || memcmp(msg, ntlm_sig, 8) != 0)
        return 0;
    uint32_t type = get32(msg + 8);
    const uint8_t *p;
    size_t n;
    switch (type) {
    case 1:
        /* Domain and workstation fields follow the flags; very old clients omit them. */
        if (len < 16)
            return 0;
        if (len >= NTLM_NEGOTIATE_LEN &&
            (ntlm_field(msg, len, 16, &p, &n) != 0 || ntlm_field(msg, len, 24, &p, &n) != 0))
            return 0;
        return 1;
    case 2:
        if (len < 32 || ntlm_field(msg, len, 12, &p, &n) != 0)
            return 0;
        if (len >= NTLM_CHALLENGE_LEN && ntlm_field(msg, len, 40, &p, &n) != 0)
            return 0;
        return 2;
    case 3:
        if (len < 52)
            return 0;
        for (size_t at = 12; at <= 44; at += 8)
            if (ntlm_field(msg, len, at, &p, &n) != 0)
                return 0;
        return 3;
    default:
        return 0;
    }
}

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

/* The lab NT response (see the file comment) into <out>. */
static void ntlm_lab_response(const uint8_t challenge[8], const uint8_t *domain,
                              size_t domain_len, const uint8_t *user, size_t user_len,
                              uint8_t out[NTLM_RESPONSE_LEN])
{
    static const uint8_t zero = 0;
    for (uint8_t i = 0; i < 3; i++) {
        uint64_t h = fnv1a(FNV64_OFFSET, &i, 1);
        h = fnv1a(h, challenge, 8);
        h = fnv1a(h, domain, domain_len);
        h = fnv1a(h, &zero, 1);
        h = fnv1a(h, user, user_len);
        for (int k = 0; k < 8; k++)
            out[8 * i + k] = (uint8_t)(h >> (8 * k));
    }
}

/* Writes ASCII <s> (<len> bytes) as UTF-16LE at <p>; returns the bytes written. */
static size_t utf16le(uint8_t *p, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        p[2 * i] = (uint8_t)s[i];
        p[2 * i + 1] = 0;
    }
    return 2 * len;
}

/* Copies the string field <p>/<n> (UTF-16LE when <unicode>, else OEM) as ASCII into <out>
 * at *<o> (<cap> bytes with room for the NUL). Returns 0, or SHUNT_EINVAL for odd lengths,
 * non-printable or non-ASCII characters, or no room. */
static int ntlm_string(const uint8_t *p, size_t n, int unicode, char *out, size_t cap, size_t *o)
{
    size_t step = unicode ? 2 : 1;
    if (n % step != 0)
        return SHUNT_EINVAL;
    for (size_t i = 0; i < n; i += step) {
        unsigned c = unicode ? get16(p + i) : p[i];
        if (c < 0x21 || c > 0x7e || *o + 1 >= cap)
            return SHUNT_EINVAL;
        out[(*o)++] = (char)c;
    }
    out[*o] = '\0';
    return 0;
}

int shunt_lab_ntlm_negotiate(char *out, size_t cap)
{
    uint8_t m[NTLM_NEGOTIATE_LEN] = {0};
    memcpy(m, ntlm_sig, 8);
    put32(m + 8, 1);
    put32(m + 12, NTLM_FLAGS_NEGOTIATE);
    /* Domain and workstation fields empty, their offsets at the end of the message. */
    put32(m + 20, NTLM_NEGOTIATE_LEN);
    put32(m + 28, NTLM_NEGOTIATE_LEN);
    return shunt_lab__b64_encode(m, sizeof(m), out, cap);
}

int shunt_lab_ntlm_challenge(uint8_t challenge[8], char *out, size_t cap)
{
    uint8_t m[128] = {0};
    size_t o = NTLM_CHALLENGE_LEN;
    if (random_bytes(challenge, 8) != 0)
        return SHUNT_EINVAL;
    memcpy(m, ntlm_sig, 8);
    put32(m + 8, 2);
    /* TargetName: the domain, UTF-16LE. */
    size_t tn = utf16le(m + o, LAB_DOMAIN, sizeof(LAB_DOMAIN) - 1);
    put16(m + 12, (uint16_t)tn);
    put16(m + 14, (uint16_t)tn);
    put32(m + 16, (uint32_t)o);
    o += tn;
    put32(m + 20, NTLM_FLAGS_CHALLENGE);
    memcpy(m + 24, challenge, 8);
    /* TargetInfo (MS-NLMP 2.2.2.1): MsvAvNbDomainName, MsvAvNbComputerName, MsvAvEOL. */
    size_t ti = o;
    static const struct { uint16_t id; const char *v; } av[] = {{2, LAB_DOMAIN}, {1, "LABORIGIN"}};
    for (size_t i = 0; i < sizeof(av) / sizeof(av[0]); i++) {
        size_t vl = strlen(av[i].v);
        put16(m + o, av[i].id);
        put16(m + o + 2, (uint16_t)(2 * vl));
        o += 4;
        o += utf16le(m + o, av[i].v, vl);
    }
    put32(m + o, 0); /* MsvAvEOL, length 0 */
    o += 4;
    put16(m + 40, (uint16_t)(o - ti));
    put16(m + 42, (uint16_t)(o - ti));
    put32(m + 44, (uint32_t)ti);
    return shunt_lab__b64_encode(m, o, out, cap);
}

int shunt_lab_ntlm_authenticate(const char *b64, size_t len, const char *user, char *out,
                                size_t cap)
{
    uint8_t raw[AUTH_MAX_RAW];
    long n = b64_decode(b64, len, raw, sizeof(raw));
    if (n < 0 || ntlm_type(raw, (size_t)n) != 2 || user == NULL)
        return SHUNT_EINVAL;
    const uint8_t *challenge = raw + 24;

    const char *sep = strchr(user, '\\');
    const char *dom = sep ? user : "";
    size_t dom_len = sep ? (size_t)(sep - user) : 0;
    const char *name = sep ? sep + 1 : user;
    size_t name_len = strlen(name);
    if (!name_ok(name, name_len) || (sep != NULL && !name_ok(dom, dom_len)))
        return SHUNT_EINVAL;

    uint8_t m[NTLM_AUTHENTICATE_LEN + 2 * NTLM_RESPONSE_LEN + 6 * AUTH_MAX_NAME] = {0};
    size_t o = NTLM_AUTHENTICATE_LEN;
    memcpy(m, ntlm_sig, 8);
    put32(m + 8, 3);
    /* Payload order as Windows writes it: domain, user, workstation, LM, NT. */
    size_t dom_at = o;
    o += utf16le(m + o, dom, dom_len);
    size_t user_at = o;
    o += utf16le(m + o, name, name_len);
    size_t ws_at = o;
    o += utf16le(m + o, LAB_WORKSTATION, sizeof(LAB_WORKSTATION) - 1);
    size_t lm_at = o;
    o += NTLM_RESPONSE_LEN; /* zeros */
    size_t nt_at = o;
    ntlm_lab_response(challenge, m + dom_at, user_at - dom_at, m + user_at, ws_at - user_at,
                      m + nt_at);
    o += NTLM_RESPONSE_LEN;

    const struct { size_t at, off, len; } f[] = {
        {12, lm_at, NTLM_RESPONSE_LEN}, {20, nt_at, NTLM_RESPONSE_LEN},
        {28, dom_at, user_at - dom_at}, {36, user_at, ws_at - user_at},
        {44, ws_at, lm_at - ws_at},     {52, o, 0},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        put16(m + f[i].at, (uint16_t)f[i].len);
        put16(m + f[i].at + 2, (uint16_t)f[i].len);
        put32(m + f[i].at + 4, (uint32_t)f[i].off);
    }
    put32(m + 60, NTLM_FLAGS_AUTHENTICATE);
    return shunt_lab__b64_encode(m, o, out, cap);
}

int shunt_lab_ntlm_verify(const char *b64, size_t len, const uint8_t challenge[8], char *user,
                          size_t user_cap)
{
    uint8_t raw[AUTH_MAX_RAW];
    const uint8_t *nt, *dom, *name;
    size_t nt_len, dom_len, name_len;
    if (user == NULL || user_cap == 0)
        return SHUNT_EINVAL;
    user[0] = '\0';
    long n = b64_decode(b64, len, raw, sizeof(raw));
    if (n < 0 || ntlm_type(raw, (size_t)n) != 3)
        return SHUNT_EINVAL;
    size_t rl = (size_t)n;
    if (ntlm_field(raw, rl, 20, &nt, &nt_len) != 0 || ntlm_field(raw, rl, 28, &dom, &dom_len) != 0 ||
        ntlm_field(raw, rl, 36, &name, &name_len) != 0)
        return SHUNT_EINVAL;
    /* Flags sit at 60 in every AUTHENTICATE but the oldest (MS-NLMP 2.2.1.3). */
    int unicode = rl >= NTLM_AUTHENTICATE_LEN ? (get32(raw + 60) & NTLM_UNICODE) != 0 : 0;
    if (nt_len != NTLM_RESPONSE_LEN || name_len == 0)
        return SHUNT_EINVAL;

    uint8_t want[NTLM_RESPONSE_LEN];
    ntlm_lab_response(challenge, dom, dom_len, name, name_len, want);
    if (memcmp(want, nt, NTLM_RESPONSE_LEN) != 0)
        return SHUNT_EINVAL;

    size_t o = 0;
    user[0] = '\0';
    if (dom_len > 0) {
        if (ntlm_string(dom, dom_len, unicode, user, user_cap, &o) != 0 || o + 1 >= user_cap)
            goto fail;
        user[o++] = '\\';
        user[o] = '\0';
    }
    if (ntlm_string(name, name_len, unicode, user, user_cap, &o) != 0)
        goto fail;
    return 0;

fail:
    user[0] = '\0';
    return SHUNT_EINVAL;
}

/* ------------------------------------------------------------------------ DER */

/* An output buffer for DER; building fails softly (err) when it is full. */
struct der_out {
    uint8_t b[2048];
    size_t len;
    int err;
};

/* Writes a DER length (X.690 8.1.3: short form under 128, else long form, minimal). */
static void der_put_len(struct der_out *d, size_t n)
{
    uint8_t tmp[9];
    size_t k = 0;
    if (n < 128) {
        tmp[k++] = (uint8_t)n;
    } else {
        size_t bytes = 0;
        for (size_t v = n; v > 0; v >>= 8)
            bytes++;
        tmp[k++] = (uint8_t)(0x80 | bytes);
        for (size_t i = bytes; i > 0; i--)
            tmp[k++] = (uint8_t)(n >> (8 * (i - 1)));
    }
    if (d->err || d->len + k > sizeof(d->b)) {
        d->err = 1;
        return;
    }
    memcpy(d->b + d->len, tmp, k);
    d->len += k;
}

static void der_put(struct der_out *d, const void *p, size_t n)
{
    if (d->err || n > sizeof(d->b) - d->len) {
        d->err = 1;
        return;
    }
    if (n > 0)
        memcpy(d->b + d->len, p, n);
    d->len += n;
}

/* Appends the TLV <tag> <len(content)> <content>. */
static void der_tlv(struct der_out *d, uint8_t tag, const void *content, size_t n)
{
    der_put(d, &tag, 1);
    der_put_len(d, n);
    der_put(d, content, n);
}

/* Appends <tag> wrapping everything in <in> (which is consumed: in->len reset). */
static void der_wrap(struct der_out *d, uint8_t tag, const struct der_out *in)
{
    if (in->err)
        d->err = 1;
    der_tlv(d, tag, in->b, in->len);
}

/* Appends a small non-negative INTEGER. */
static void der_int(struct der_out *d, uint32_t v)
{
    uint8_t b[5];
    size_t n = 0;
    uint8_t tmp[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    size_t i = 0;
    while (i < 3 && tmp[i] == 0 && (tmp[i + 1] & 0x80) == 0)
        i++;
    if (tmp[i] & 0x80)
        b[n++] = 0;
    while (i < 4)
        b[n++] = tmp[i++];
    der_tlv(d, 0x02, b, n);
}

/* [ctx] INTEGER v */
static void der_ctx_int(struct der_out *d, uint8_t ctx, uint32_t v)
{
    struct der_out t = {.len = 0};
    der_int(&t, v);
    der_wrap(d, (uint8_t)(0xa0 | ctx), &t);
}

/* A view of DER input: [p, end). */
struct der_in {
    const uint8_t *p;
    const uint8_t *end;
};

/* Reads one TLV from <in>: requires the tag <tag>, sets <val> to its content and advances
 * <in> past it. Definite, minimal lengths of at most 4 bytes only (DER, X.690 10.1).
 * Returns 0 or SHUNT_EINVAL; on failure <in> is unchanged. */
static int der_get(struct der_in *in, uint8_t tag, struct der_in *val)
{
    const uint8_t *p = in->p;
    size_t left = (size_t)(in->end - p);
    if (left < 2 || p[0] != tag)
        return SHUNT_EINVAL;
    size_t n = p[1];
    size_t hdr = 2;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 4 || left < 2 + k) /* 0: indefinite form, not DER */
            return SHUNT_EINVAL;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = n << 8 | p[2 + i];
        if (n < 128 || (k > 1 && p[2] == 0)) /* not minimal */
            return SHUNT_EINVAL;
        hdr += k;
    }
    if (n > left - hdr)
        return SHUNT_EINVAL;
    val->p = p + hdr;
    val->end = val->p + n;
    in->p = val->end;
    return 0;
}

/* True when the next TLV of <in> has <tag>. */
static int der_peek(const struct der_in *in, uint8_t tag)
{
    return in->p < in->end && in->p[0] == tag;
}

/* Reads [ctx] INTEGER into *<v> (small non-negative values only). */
static int der_get_ctx_int(struct der_in *in, uint8_t ctx, uint32_t *v)
{
    struct der_in w, i;
    if (der_get(in, (uint8_t)(0xa0 | ctx), &w) != 0 || der_get(&w, 0x02, &i) != 0 || w.p != w.end)
        return SHUNT_EINVAL;
    size_t n = (size_t)(i.end - i.p);
    if (n == 0 || n > 5 || (i.p[0] & 0x80))
        return SHUNT_EINVAL;
    uint64_t x = 0;
    for (size_t k = 0; k < n; k++)
        x = x << 8 | i.p[k];
    if (x > UINT32_MAX)
        return SHUNT_EINVAL;
    *v = (uint32_t)x;
    return 0;
}

static int der_eq(const struct der_in *v, const void *p, size_t n)
{
    return (size_t)(v->end - v->p) == n && memcmp(v->p, p, n) == 0;
}

/* ------------------------------------------------------------------------ SPNEGO, Kerberos */

/* 1.3.6.1.5.5.2 (SPNEGO), 1.2.840.113554.1.2.2 (Kerberos V5, RFC 1964),
 * 1.3.6.1.4.1.311.2.2.10 (NTLMSSP), contents octets only. */
static const uint8_t oid_spnego[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const uint8_t oid_krb5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_ntlm[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};

#define LAB_REALM "LAB"
#define LAB_ETYPE 18 /* aes256-cts-hmac-sha1-96, claimed only */
#define TICKET_PREFIX "lab-ticket:"
#define AUTHENTICATOR_PREFIX "lab-authenticator:"
#define AP_REP_CIPHER "lab-ap-rep"

/* EncryptedData ::= SEQUENCE { etype [0], kvno [1] OPTIONAL, cipher [2] OCTET STRING } */
static void enc_data(struct der_out *d, const void *cipher, size_t n)
{
    struct der_out s = {.len = 0}, c = {.len = 0};
    der_ctx_int(&s, 0, LAB_ETYPE);
    der_ctx_int(&s, 1, 1);
    der_tlv(&c, 0x04, cipher, n);
    der_wrap(&s, 0xa2, &c);
    der_wrap(d, 0x30, &s);
}

/* Reads an EncryptedData; sets <cipher> to the cipher octets. */
static int get_enc_data(struct der_in *in, struct der_in *cipher)
{
    struct der_in s, w;
    uint32_t v;
    if (der_get(in, 0x30, &s) != 0 || der_get_ctx_int(&s, 0, &v) != 0)
        return SHUNT_EINVAL;
    if (der_peek(&s, 0xa1) && der_get_ctx_int(&s, 1, &v) != 0)
        return SHUNT_EINVAL;
    if (der_get(&s, 0xa2, &w) != 0 || der_get(&w, 0x04, cipher) != 0 || w.p != w.end ||
        s.p != s.end)
        return SHUNT_EINVAL;
    return 0;
}

/* Writes the GSS-API KRB5 token (RFC 1964 1.1, RFC 2743 3.1): [APPLICATION 0] { OID,
 * tok_id, <inner> }. */
static void krb5_gss(struct der_out *d, uint16_t tok_id, const struct der_out *inner)
{
    struct der_out t = {.len = 0};
    uint8_t id[2] = {(uint8_t)(tok_id >> 8), (uint8_t)tok_id};
    der_tlv(&t, 0x06, oid_krb5, sizeof(oid_krb5));
    der_put(&t, id, 2);
    der_put(&t, inner->b, inner->len);
    if (inner->err)
        t.err = 1;
    der_wrap(d, 0x60, &t);
}

/* Reads a KRB5 GSS token with <tok_id>; sets <inner> to what follows the tok_id. */
static int get_krb5_gss(struct der_in *in, uint16_t tok_id, struct der_in *inner)
{
    struct der_in t, oid;
    if (der_get(in, 0x60, &t) != 0 || der_get(&t, 0x06, &oid) != 0 ||
        !der_eq(&oid, oid_krb5, sizeof(oid_krb5)) || t.end - t.p < 2 ||
        t.p[0] != (uint8_t)(tok_id >> 8) || t.p[1] != (uint8_t)tok_id)
        return SHUNT_EINVAL;
    inner->p = t.p + 2;
    inner->end = t.end;
    return 0;
}

/* Writes a lab AP-REQ (RFC 4120 5.5.1) from <user> to HTTP/<host>. */
static void ap_req(struct der_out *d, const char *user, size_t user_len, const char *host,
                   size_t host_len)
{
    struct der_out sname = {.len = 0}, strs = {.len = 0}, tmp = {.len = 0};
    /* PrincipalName { name-type [0] 2 (NT-SRV-INST), name-string [1] { "HTTP", host } } */
    der_tlv(&strs, 0x1b, "HTTP", 4);
    der_tlv(&strs, 0x1b, host, host_len);
    der_ctx_int(&tmp, 0, 2);
    struct der_out seq = {.len = 0};
    der_wrap(&seq, 0x30, &strs);
    der_wrap(&tmp, 0xa1, &seq);
    der_wrap(&sname, 0x30, &tmp);

    /* Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno [0] 5, realm [1], sname [2], enc-part [3] } */
    struct der_out tk = {.len = 0}, w = {.len = 0}, enc = {.len = 0};
    der_ctx_int(&tk, 0, 5);
    der_tlv(&w, 0x1b, LAB_REALM, sizeof(LAB_REALM) - 1);
    der_wrap(&tk, 0xa1, &w);
    der_wrap(&tk, 0xa2, &sname);
    char cipher[sizeof(TICKET_PREFIX) + 5 + AUTH_MAX_NAME];
    size_t cl = 0;
    memcpy(cipher, TICKET_PREFIX "HTTP/", sizeof(TICKET_PREFIX) + 4);
    cl = sizeof(TICKET_PREFIX) + 4;
    memcpy(cipher + cl, host, host_len);
    cl += host_len;
    enc_data(&enc, cipher, cl);
    der_wrap(&tk, 0xa3, &enc);
    struct der_out tseq = {.len = 0}, ticket = {.len = 0};
    der_wrap(&tseq, 0x30, &tk);
    der_wrap(&ticket, 0x61, &tseq);

    /* AP-REQ ::= [APPLICATION 14] SEQUENCE { pvno [0] 5, msg-type [1] 14, ap-options [2]
     * BIT STRING (mutual-required), ticket [3], authenticator [4] EncryptedData } */
    struct der_out r = {.len = 0}, opt = {.len = 0}, auth = {.len = 0}, tw = {.len = 0};
    der_ctx_int(&r, 0, 5);
    der_ctx_int(&r, 1, 14);
    static const uint8_t bits[] = {0x00, 0x20, 0x00, 0x00, 0x00}; /* bit 2: mutual-required */
    der_tlv(&opt, 0x03, bits, sizeof(bits));
    der_wrap(&r, 0xa2, &opt);
    der_wrap(&tw, 0xa3, &ticket);
    der_put(&r, tw.b, tw.len);
    if (tw.err)
        r.err = 1;
    char acipher[sizeof(AUTHENTICATOR_PREFIX) + AUTH_MAX_NAME];
    memcpy(acipher, AUTHENTICATOR_PREFIX, sizeof(AUTHENTICATOR_PREFIX) - 1);
    memcpy(acipher + sizeof(AUTHENTICATOR_PREFIX) - 1, user, user_len);
    enc_data(&auth, acipher, sizeof(AUTHENTICATOR_PREFIX) - 1 + user_len);
    der_wrap(&r, 0xa4, &auth);
    struct der_out rseq = {.len = 0};
    der_wrap(&rseq, 0x30, &r);
    der_wrap(d, 0x6e, &rseq);
}

/* Checks a lab AP-REQ; copies the authenticator's user into <user> (<cap> bytes). */
static int get_ap_req(struct der_in *in, char *user, size_t cap)
{
    struct der_in a, s, w, bits, t, ts, realm, sn, names, str, cipher;
    uint32_t v;
    if (der_get(in, 0x6e, &a) != 0 || der_get(&a, 0x30, &s) != 0 || a.p != a.end)
        return SHUNT_EINVAL;
    if (der_get_ctx_int(&s, 0, &v) != 0 || v != 5 || der_get_ctx_int(&s, 1, &v) != 0 || v != 14)
        return SHUNT_EINVAL;
    if (der_get(&s, 0xa2, &w) != 0 || der_get(&w, 0x03, &bits) != 0 || w.p != w.end ||
        bits.p == bits.end)
        return SHUNT_EINVAL;
    /* ticket [3] Ticket */
    if (der_get(&s, 0xa3, &w) != 0 || der_get(&w, 0x61, &t) != 0 || w.p != w.end ||
        der_get(&t, 0x30, &ts) != 0 || t.p != t.end)
        return SHUNT_EINVAL;
    if (der_get_ctx_int(&ts, 0, &v) != 0 || v != 5)
        return SHUNT_EINVAL;
    if (der_get(&ts, 0xa1, &w) != 0 || der_get(&w, 0x1b, &realm) != 0 || w.p != w.end)
        return SHUNT_EINVAL;
    if (der_get(&ts, 0xa2, &w) != 0 || der_get(&w, 0x30, &sn) != 0 || w.p != w.end ||
        der_get_ctx_int(&sn, 0, &v) != 0 || der_get(&sn, 0xa1, &w) != 0 ||
        der_get(&w, 0x30, &names) != 0 || w.p != w.end || sn.p != sn.end)
        return SHUNT_EINVAL;
    /* The service must be HTTP/<something>. */
    if (der_get(&names, 0x1b, &str) != 0 || !der_eq(&str, "HTTP", 4) ||
        der_get(&names, 0x1b, &str) != 0 || str.p == str.end || names.p != names.end)
        return SHUNT_EINVAL;
    if (der_get(&ts, 0xa3, &w) != 0 || get_enc_data(&w, &cipher) != 0 || w.p != w.end ||
        ts.p != ts.end)
        return SHUNT_EINVAL;
    /* authenticator [4] */
    if (der_get(&s, 0xa4, &w) != 0 || get_enc_data(&w, &cipher) != 0 || w.p != w.end ||
        s.p != s.end)
        return SHUNT_EINVAL;
    size_t pl = sizeof(AUTHENTICATOR_PREFIX) - 1;
    size_t cl = (size_t)(cipher.end - cipher.p);
    if (cl <= pl || memcmp(cipher.p, AUTHENTICATOR_PREFIX, pl) != 0)
        return SHUNT_EINVAL;
    const char *u = (const char *)cipher.p + pl;
    size_t ul = cl - pl;
    if (!name_ok(u, ul) || ul + 1 > cap)
        return SHUNT_EINVAL;
    memcpy(user, u, ul);
    user[ul] = '\0';
    return 0;
}

int shunt_lab_spnego_init(const char *user, const char *host, char *out, size_t cap)
{
    if (user == NULL || host == NULL)
        return SHUNT_EINVAL;
    size_t ul = strlen(user), hl = strlen(host);
    if (!name_ok(user, ul) || !name_ok(host, hl))
        return SHUNT_EINVAL;

    struct der_out req = {.len = 0}, gss = {.len = 0};
    ap_req(&req, user, ul, host, hl);
    krb5_gss(&gss, 0x0100, &req); /* KRB_AP_REQ */

    /* NegTokenInit ::= SEQUENCE { mechTypes [0] MechTypeList, reqFlags [1] OPTIONAL,
     * mechToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OPTIONAL } (RFC 4178 4.2.1) */
    struct der_out mechs = {.len = 0}, ml = {.len = 0}, init = {.len = 0}, tok = {.len = 0};
    der_tlv(&mechs, 0x06, oid_krb5, sizeof(oid_krb5));
    der_tlv(&mechs, 0x06, oid_ntlm, sizeof(oid_ntlm));
    der_wrap(&ml, 0x30, &mechs);
    der_wrap(&init, 0xa0, &ml);
    der_wrap(&tok, 0x04, &gss);
    der_wrap(&init, 0xa2, &tok);

    /* InitialContextToken ::= [APPLICATION 0] { thisMech OID, [0] NegTokenInit } */
    struct der_out seq = {.len = 0}, body = {.len = 0}, ict = {.len = 0};
    der_wrap(&seq, 0x30, &init);
    der_tlv(&body, 0x06, oid_spnego, sizeof(oid_spnego));
    der_wrap(&body, 0xa0, &seq);
    der_wrap(&ict, 0x60, &body);
    if (ict.err)
        return SHUNT_ETOOBIG;
    return shunt_lab__b64_encode(ict.b, ict.len, out, cap);
}

/* Checks the NegTokenInit <raw>; copies the AP-REQ's user into <user> when non-NULL. */
static int spnego_init_check(const uint8_t *raw, size_t len, char *user, size_t cap)
{
    struct der_in in = {raw, raw + len}, ict, oid, w, seq, mt, mech, tok, inner;
    char scratch[AUTH_MAX_NAME + 1];
    if (user == NULL) {
        user = scratch;
        cap = sizeof(scratch);
    }
    if (der_get(&in, 0x60, &ict) != 0 || in.p != in.end || der_get(&ict, 0x06, &oid) != 0 ||
        !der_eq(&oid, oid_spnego, sizeof(oid_spnego)) || der_get(&ict, 0xa0, &w) != 0 ||
        ict.p != ict.end || der_get(&w, 0x30, &seq) != 0 || w.p != w.end)
        return SHUNT_EINVAL;
    /* mechTypes must list Kerberos. */
    if (der_get(&seq, 0xa0, &w) != 0 || der_get(&w, 0x30, &mt) != 0 || w.p != w.end)
        return SHUNT_EINVAL;
    int krb5 = 0;
    while (mt.p < mt.end) {
        if (der_get(&mt, 0x06, &mech) != 0)
            return SHUNT_EINVAL;
        krb5 |= der_eq(&mech, oid_krb5, sizeof(oid_krb5));
    }
    if (!krb5)
        return SHUNT_EINVAL;
    if (der_peek(&seq, 0xa1) && der_get(&seq, 0xa1, &w) != 0)
        return SHUNT_EINVAL;
    if (der_get(&seq, 0xa2, &w) != 0 || der_get(&w, 0x04, &tok) != 0 || w.p != w.end)
        return SHUNT_EINVAL;
    if (der_peek(&seq, 0xa3) && der_get(&seq, 0xa3, &w) != 0)
        return SHUNT_EINVAL;
    if (seq.p != seq.end)
        return SHUNT_EINVAL;
    if (get_krb5_gss(&tok, 0x0100, &inner) != 0 || tok.p != tok.end)
        return SHUNT_EINVAL;
    if (get_ap_req(&inner, user, cap) != 0 || inner.p != inner.end)
        return SHUNT_EINVAL;
    return 0;
}

int shunt_lab_spnego_verify(const char *b64, size_t len, char *user, size_t user_cap)
{
    uint8_t raw[AUTH_MAX_RAW];
    if (user == NULL || user_cap == 0)
        return SHUNT_EINVAL;
    user[0] = '\0';
    long n = b64_decode(b64, len, raw, sizeof(raw));
    if (n < 0)
        return SHUNT_EINVAL;
    if (spnego_init_check(raw, (size_t)n, user, user_cap) != 0) {
        user[0] = '\0';
        return SHUNT_EINVAL;
    }
    return 0;
}

int shunt_lab_spnego_final(char *out, size_t cap)
{
    /* AP-REP ::= [APPLICATION 15] SEQUENCE { pvno [0] 5, msg-type [1] 15, enc-part [2] } */
    struct der_out r = {.len = 0}, enc = {.len = 0}, seq = {.len = 0}, rep = {.len = 0};
    der_ctx_int(&r, 0, 5);
    der_ctx_int(&r, 1, 15);
    enc_data(&enc, AP_REP_CIPHER, sizeof(AP_REP_CIPHER) - 1);
    der_wrap(&r, 0xa2, &enc);
    der_wrap(&seq, 0x30, &r);
    der_wrap(&rep, 0x6f, &seq);
    struct der_out gss = {.len = 0};
    krb5_gss(&gss, 0x0200, &rep); /* KRB_AP_REP */

    /* NegTokenResp ::= SEQUENCE { negState [0] ENUMERATED, supportedMech [1] OID,
     * responseToken [2] OCTET STRING, mechListMIC [3] } (RFC 4178 4.2.2), as the
     * NegotiationToken choice [1]. */
    struct der_out f = {.len = 0}, w = {.len = 0}, body = {.len = 0}, tok = {.len = 0};
    static const uint8_t accept_completed = 0;
    der_tlv(&w, 0x0a, &accept_completed, 1);
    der_wrap(&f, 0xa0, &w);
    w.len = 0;
    der_tlv(&w, 0x06, oid_krb5, sizeof(oid_krb5));
    der_wrap(&f, 0xa1, &w);
    der_wrap(&tok, 0x04, &gss);
    der_wrap(&f, 0xa2, &tok);
    der_wrap(&body, 0x30, &f);
    struct der_out resp = {.len = 0};
    der_wrap(&resp, 0xa1, &body);
    if (resp.err)
        return SHUNT_ETOOBIG;
    return shunt_lab__b64_encode(resp.b, resp.len, out, cap);
}

/* Checks an accept-completed NegTokenResp <raw> with a Kerberos AP-REP if it has one. */
static int spnego_resp_check(const uint8_t *raw, size_t len)
{
    struct der_in in = {raw, raw + len}, r, seq, w, e, oid, tok, inner, a, s, cipher;
    uint32_t v;
    if (der_get(&in, 0xa1, &r) != 0 || in.p != in.end || der_get(&r, 0x30, &seq) != 0 ||
        r.p != r.end)
        return SHUNT_EINVAL;
    if (der_get(&seq, 0xa0, &w) != 0 || der_get(&w, 0x0a, &e) != 0 || w.p != w.end ||
        !der_eq(&e, "\0", 1))
        return SHUNT_EINVAL;
    if (der_get(&seq, 0xa1, &w) != 0 || der_get(&w, 0x06, &oid) != 0 || w.p != w.end ||
        !der_eq(&oid, oid_krb5, sizeof(oid_krb5)))
        return SHUNT_EINVAL;
    if (der_peek(&seq, 0xa2)) {
        if (der_get(&seq, 0xa2, &w) != 0 || der_get(&w, 0x04, &tok) != 0 || w.p != w.end ||
            get_krb5_gss(&tok, 0x0200, &inner) != 0 || tok.p != tok.end)
            return SHUNT_EINVAL;
        if (der_get(&inner, 0x6f, &a) != 0 || inner.p != inner.end ||
            der_get(&a, 0x30, &s) != 0 || a.p != a.end || der_get_ctx_int(&s, 0, &v) != 0 ||
            v != 5 || der_get_ctx_int(&s, 1, &v) != 0 || v != 15 || der_get(&s, 0xa2, &w) != 0 ||
            get_enc_data(&w, &cipher) != 0 || w.p != w.end || s.p != s.end)
            return SHUNT_EINVAL;
    }
    if (der_peek(&seq, 0xa3) && der_get(&seq, 0xa3, &w) != 0)
        return SHUNT_EINVAL;
    return seq.p == seq.end ? 0 : SHUNT_EINVAL;
}

int shunt_lab_spnego_check_final(const char *b64, size_t len)
{
    uint8_t raw[AUTH_MAX_RAW];
    long n = b64_decode(b64, len, raw, sizeof(raw));
    if (n < 0)
        return SHUNT_EINVAL;
    return spnego_resp_check(raw, (size_t)n);
}

/* ------------------------------------------------------------------------ classification */

enum shunt_lab_token_kind shunt_lab_token_kind(const char *b64, size_t len)
{
    uint8_t raw[AUTH_MAX_RAW];
    long n = b64_decode(b64, len, raw, sizeof(raw));
    if (n <= 0)
        return SHUNT_LAB_TOKEN_INVALID;
    switch (ntlm_type(raw, (size_t)n)) {
    case 1:
        return SHUNT_LAB_TOKEN_NTLM_NEGOTIATE;
    case 2:
        return SHUNT_LAB_TOKEN_NTLM_CHALLENGE;
    case 3:
        return SHUNT_LAB_TOKEN_NTLM_AUTHENTICATE;
    default:
        break;
    }
    if (spnego_init_check(raw, (size_t)n, NULL, 0) == 0)
        return SHUNT_LAB_TOKEN_SPNEGO_INIT;
    if (spnego_resp_check(raw, (size_t)n) == 0)
        return SHUNT_LAB_TOKEN_SPNEGO_RESP;
    return SHUNT_LAB_TOKEN_INVALID;
}
