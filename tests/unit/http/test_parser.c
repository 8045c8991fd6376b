/* tests/unit/http/test_parser.c - table-driven tests of the HTTP/1.1 head parser and framer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/parser.h"

/*
 * Every table case runs (a) whole from a heap copy, (b) byte by byte, each prefix copied
 * against a PROT_NONE guard page and the same head reused so that parsing resumes over a
 * buffer that moves, (c) whole against the guard page, and (d) in 5-byte steps with the head
 * overwritten before each call so that the saved scan state is never trusted. All four must
 * agree on return, reason and offset (and, when complete, on every slice).
 */

/* ---------------------------------------------------------------- guard page */

static char *guard_map;   /* readable pages followed by one PROT_NONE page */
static char *guard_end;   /* first byte of the PROT_NONE page */
static size_t guard_room; /* readable bytes before guard_end */

static int group_setup(void **state)
{
    long page = sysconf(_SC_PAGESIZE);
    guard_room = 256 * 1024;
    guard_map = mmap(NULL, guard_room + (size_t)page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_map == MAP_FAILED)
        return -1;
    guard_end = guard_map + guard_room;
    if (mprotect(guard_end, (size_t)page, PROT_NONE) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    munmap(guard_map, guard_room + (size_t)sysconf(_SC_PAGESIZE));
    return 0;
}

/* Copies <len> bytes of <src> so that they end exactly at the guard page; reading one byte
 * past them faults. */
static const char *at_guard(const char *src, size_t len)
{
    assert_in_range(len, 0, guard_room);
    char *dst = guard_end - len;
    if (len > 0)
        memcpy(dst, src, len);
    return dst;
}

/* ---------------------------------------------------------------- head table */

enum kind { REQ, RESP };

#define WHOLE (-1L) /* expected return: the whole input is the head */
#define ANY (-1)    /* framing or keep-alive not checked */

struct head_case {
    const char *name;
    enum kind kind;
    const char *raw;
    size_t len;
    long ret; /* WHOLE, a head length, 0 (need more) or SHUNT_EPARSE */
    enum shunt_http_reason reason;
    size_t offset;
    int framing; /* expected head->framing, or ANY */
    uint64_t cl; /* expected content_length when framing is LENGTH */
    int keep;    /* expected shunt_http_keeps_alive(), or ANY */
    const struct shunt_http_limits *lim;
    int cl_rep;  /* expected cl_repeated when framing is LENGTH */
};

static const struct shunt_http_limits lim_line16 = {16, 65536, 100};
static const struct shunt_http_limits lim_head32 = {8192, 32, 100};
static const struct shunt_http_limits lim_fields2 = {8192, 65536, 2};
static const struct shunt_http_limits lim_chunkline8 = {8, 65536, 100};
static const struct shunt_http_limits lim_trailer8 = {8192, 8, 1};

#define RAW(s) (s), sizeof(s) - 1
#define NONE SHUNT_HTTP_BODY_NONE
#define LENGTH SHUNT_HTTP_BODY_LENGTH
#define CHUNKED SHUNT_HTTP_BODY_CHUNKED
#define CLOSE SHUNT_HTTP_BODY_CLOSE

/* A complete head making up the whole input. */
#define OK(n, k, s, fr, c, ka)                                                                     \
    {.name = n, .kind = k, .raw = s, .len = sizeof(s) - 1, .ret = WHOLE, .framing = fr, .cl = c,  \
     .keep = ka}
/* A complete head whose Content-Length is repeated with one value. */
#define OK_CL_REP(n, k, s, c)                                                                      \
    {.name = n, .kind = k, .raw = s, .len = sizeof(s) - 1, .ret = WHOLE, .framing = LENGTH,       \
     .cl = c, .keep = 1, .cl_rep = 1}
/* A complete head <h> followed by bytes <rest> that are not part of it. */
#define PIPE(n, k, h, rest, fr, c, ka)                                                             \
    {.name = n, .kind = k, .raw = h rest, .len = sizeof(h rest) - 1, .ret = sizeof(h) - 1,        \
     .framing = fr, .cl = c, .keep = ka}
/* An incomplete head with nothing wrong so far. */
#define MORE(n, k, s) {.name = n, .kind = k, RAW(s), .ret = 0, .framing = ANY, .keep = ANY}
/* A rejected head: the offending byte is the first one of <after>. */
#define ERR(n, k, before, after, r)                                                                \
    {.name = n, .kind = k, .raw = before after, .len = sizeof(before after) - 1,                  \
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_##r, .offset = sizeof(before) - 1,               \
     .framing = ANY, .keep = ANY}

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define P11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const struct head_case head_cases[] = {
    /* requests: framing and connection */
    OK("get_minimal", REQ, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", NONE, 0, 1),
    OK("get_http10_without_host", REQ, "GET / HTTP/1.0\r\n\r\n", NONE, 0, 0),
    OK("http10_keep_alive", REQ, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", NONE, 0, 1),
    OK("http10_keep_alive_and_close", REQ,
       "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", NONE, 0, 0),
    OK("http11_close", REQ, H11 "Connection: close\r\n\r\n", NONE, 0, 0),
    OK("connection_fields_combine", REQ,
       H11 "Connection: upgrade, foo\r\nConnection: CLOSE\r\nUpgrade: x\r\n\r\n", NONE, 0, 0),
    OK("connection_token_not_substring", REQ, H11 "Connection: closed, xclose\r\n\r\n", NONE,
       0, 1),
    OK("lowercase_method_is_a_token", REQ, "get /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, 1),
    OK("absolute_form_target", REQ, "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, 1),
    OK("connect_authority_form", REQ, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", NONE, 0,
       1),
    OK("host_empty_value", REQ, "GET / HTTP/1.1\r\nHost:\r\n\r\n", NONE, 0, 1),
    PIPE("post_content_length_pipelined", REQ, P11 "Content-Length: 5\r\n\r\n",
         "helloGET / HTTP/1.1\r\n", LENGTH, 5, 1),
    OK("content_length_zero", REQ, P11 "Content-Length: 0\r\n\r\n", LENGTH, 0, 1),
    OK_CL_REP("content_length_list_equal", REQ, P11 "Content-Length: 5 , 5,5\r\n\r\n", 5),
    OK_CL_REP("content_length_fields_equal", REQ,
              P11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n", 5),
    OK_CL_REP("content_length_list_and_field", REQ,
              P11 "Content-Length: 0, 0\r\nX: 1\r\nContent-Length: 00\r\n\r\n", 0),
    OK_CL_REP("response_content_length_repeated", RESP,
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 2),
    OK("content_length_max", REQ, P11 "Content-Length: 18446744073709551615\r\n\r\n", LENGTH,
       UINT64_MAX, 1),
    OK("content_length_leading_zeros", REQ, P11 "Content-Length: 007\r\n\r\n", LENGTH, 7, 1),
    ERR("content_length_list_differs", REQ, P11 "Content-Length: 5, ", "6\r\n\r\n",
        CONFLICTING_CONTENT_LENGTH),
    ERR("content_length_fields_differ", REQ, P11 "Content-Length: 5\r\nContent-Length: ",
        "6\r\n\r\n", CONFLICTING_CONTENT_LENGTH),
    ERR("content_length_not_digits", REQ, P11 "Content-Length: ", "abc\r\n\r\n",
        BAD_CONTENT_LENGTH),
    ERR("content_length_empty", REQ, P11 "Content-Length: ", "\r\n\r\n", BAD_CONTENT_LENGTH),
    ERR("content_length_overflow", REQ, P11 "Content-Length: 1844674407370955161",
        "6\r\n\r\n", BAD_CONTENT_LENGTH),
    ERR("content_length_plus_sign", REQ, P11 "Content-Length: ", "+5\r\n\r\n",
        BAD_CONTENT_LENGTH),
    ERR("content_length_negative", REQ, P11 "Content-Length: ", "-1\r\n\r\n",
        BAD_CONTENT_LENGTH),
    ERR("content_length_space_inside", REQ, P11 "Content-Length: 5 ", "5\r\n\r\n",
        BAD_CONTENT_LENGTH),
    ERR("content_length_trailing_comma", REQ, P11 "Content-Length: 5,", "\r\n\r\n",
        BAD_CONTENT_LENGTH),
    OK("te_chunked", REQ, P11 "Transfer-Encoding: chunked\r\n\r\n", CHUNKED, 0, 1),
    OK("te_chunked_case_insensitive", REQ, P11 "transfer-encoding: Chunked\r\n\r\n", CHUNKED, 0,
       1),
    OK("te_gzip_then_chunked", REQ, P11 "Transfer-Encoding: gzip, chunked\r\n\r\n", CHUNKED, 0,
       1),
    OK("te_fields_combine", REQ,
       P11 "Transfer-Encoding: gzip\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n", CHUNKED, 0,
       1),
    OK("te_parameters", REQ,
       P11 "Transfer-Encoding: gzip;q=\"a,b\" ; level=9, chunked\r\n\r\n", CHUNKED, 0, 1),
    OK("te_empty_elements_ignored", REQ, P11 "Transfer-Encoding: ,gzip,, chunked ,\r\n\r\n",
       CHUNKED, 0, 1),
    ERR("te_chunked_not_last", REQ, P11 "Transfer-Encoding: chunked, ", "gzip\r\n\r\n",
        TE_NOT_CHUNKED),
    ERR("te_gzip_only", REQ, P11 "Transfer-Encoding: ", "gzip\r\n\r\n", TE_NOT_CHUNKED),
    ERR("te_chunked_not_last_over_fields", REQ,
        P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: ", "gzip\r\n\r\n", TE_NOT_CHUNKED),
    ERR("te_chunked_twice", REQ, P11 "Transfer-Encoding: chunked, ", "chunked\r\n\r\n",
        TE_CHUNKED_TWICE),
    ERR("te_chunked_twice_over_fields", REQ,
        P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: ", "chunked\r\n\r\n",
        TE_CHUNKED_TWICE),
    /* issue 10: framing no one can read two ways */
    ERR("te_chunked_with_parameter", REQ, P11 "Transfer-Encoding: ", "chunked;foo=bar\r\n\r\n",
        TE_CHUNKED_PARAMS),
    ERR("te_chunked_with_quoted_parameter", REQ, P11 "Transfer-Encoding: gzip, ",
        "chunked ; a=\"b\"\r\n\r\n", TE_CHUNKED_PARAMS),
    ERR("te_unknown_coding", REQ, P11 "Transfer-Encoding: ", "foo, chunked\r\n\r\n",
        TE_UNKNOWN),
    ERR("te_identity_is_unknown", REQ, P11 "Transfer-Encoding: gzip, ",
        "identity, chunked\r\n\r\n", TE_UNKNOWN),
    OK("te_known_codings", REQ,
       P11 "Transfer-Encoding: x-gzip, Deflate, compress, X-Compress, chunked\r\n\r\n",
       CHUNKED, 0, 1),
    OK("response_te_unknown_coding_then_chunked", RESP,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo, chunked\r\n\r\n", CHUNKED, 0, 1),
    ERR("response_te_chunked_with_parameter", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: ",
        "chunked;q=1\r\n\r\n", TE_CHUNKED_PARAMS),
    ERR("response_te_chunked_twice", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, ",
        "chunked\r\n\r\n", TE_CHUNKED_TWICE),
    ERR("te_empty", REQ, P11 "Transfer-Encoding: ", "\r\n\r\n", BAD_TRANSFER_ENCODING),
    ERR("te_bad_coding", REQ, P11 "Transfer-Encoding: ", "@chunked\r\n\r\n",
        BAD_TRANSFER_ENCODING),
    ERR("te_parameter_without_name", REQ, P11 "Transfer-Encoding: chunked;", "\r\n\r\n",
        BAD_TRANSFER_ENCODING),
    ERR("te_parameter_without_value", REQ, P11 "Transfer-Encoding: gzip;a", "\r\n\r\n",
        BAD_TRANSFER_ENCODING),
    /* An unclosed quote runs to the end of the value, commas included. */
    ERR("te_parameter_open_quote", REQ, P11 "Transfer-Encoding: gzip;a=\"x, chunked", "\r\n\r\n",
        BAD_TRANSFER_ENCODING),
    ERR("te_after_cl", REQ, P11 "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n\r\n",
        TE_AND_CL),
    ERR("cl_after_te", REQ, P11 "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n\r\n",
        TE_AND_CL),
    ERR("te_in_http10", REQ, "POST / HTTP/1.0\r\n", "Transfer-Encoding: chunked\r\n\r\n",
        TE_HTTP10),
    OK("host_name_and_port", REQ, "GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", NONE, 0, 1),
    OK("host_reg_name_chars", REQ, "GET / HTTP/1.1\r\nHost: a-b.c_d~e!$&'()*+;=%41\r\n\r\n", NONE,
       0, 1),
    OK("host_ipv4", REQ, "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", NONE, 0, 1),
    OK("host_ipv6", REQ, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", NONE, 0, 1),
    OK("host_ipv6_no_port", REQ, "GET / HTTP/1.1\r\nHost: [fe80::1.2.3.4]\r\n\r\n", NONE, 0, 1),
    OK("host_empty_port", REQ, "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", NONE, 0, 1),
    OK("host_port_65535", REQ, "GET / HTTP/1.1\r\nHost: a:65535\r\n\r\n", NONE, 0, 1),
    ERR("host_space", REQ, "GET / HTTP/1.1\r\nHost: a", " b\r\n\r\n", BAD_HOST),
    ERR("host_slash", REQ, "GET / HTTP/1.1\r\nHost: a", "/b\r\n\r\n", BAD_HOST),
    ERR("host_userinfo", REQ, "GET / HTTP/1.1\r\nHost: user", "@a\r\n\r\n", BAD_HOST),
    ERR("host_comma", REQ, "GET / HTTP/1.1\r\nHost: a", ",b\r\n\r\n", BAD_HOST),
    ERR("host_bad_port", REQ, "GET / HTTP/1.1\r\nHost: a:8", "x\r\n\r\n", BAD_HOST),
    ERR("host_port_overflow", REQ, "GET / HTTP/1.1\r\nHost: a:6553", "6\r\n\r\n", BAD_HOST),
    ERR("host_two_ports", REQ, "GET / HTTP/1.1\r\nHost: a:1", ":2\r\n\r\n", BAD_HOST),
    ERR("host_bad_pct", REQ, "GET / HTTP/1.1\r\nHost: a", "%4g\r\n\r\n", BAD_HOST),
    ERR("host_ipv6_unclosed", REQ, "GET / HTTP/1.1\r\nHost: [::1", "\r\n\r\n", BAD_HOST),
    ERR("host_ipv6_bad_char", REQ, "GET / HTTP/1.1\r\nHost: [::", "g]\r\n\r\n", BAD_HOST),
    ERR("host_ipv6_empty", REQ, "GET / HTTP/1.1\r\nHost: [", "]\r\n\r\n", BAD_HOST),
    ERR("host_after_ipv6", REQ, "GET / HTTP/1.1\r\nHost: [::1]", "x\r\n\r\n", BAD_HOST),
    ERR("host_http10_checked_too", REQ, "GET / HTTP/1.0\r\nHost: a", "\\b\r\n\r\n", BAD_HOST),
    ERR("no_host", REQ, "GET / HTTP/1.1\r\nX: y\r\n", "\r\n", NO_HOST),
    ERR("multiple_host", REQ, H11, "Host: b\r\n\r\n", MULTIPLE_HOST),
    ERR("multiple_host_http10", REQ, "GET / HTTP/1.0\r\nHost: a\r\n", "host: a\r\n\r\n",
        MULTIPLE_HOST),

    /* requests: start line */
    ERR("method_bad_char", REQ, "G", "@T / HTTP/1.1\r\nHost: a\r\n\r\n", BAD_METHOD),
    ERR("method_empty", REQ, "", " / HTTP/1.1\r\n", BAD_START_LINE),
    ERR("leading_empty_line", REQ, "", "\r\nGET / HTTP/1.1\r\n", BAD_START_LINE),
    ERR("method_only", REQ, "GET", "\r\n", BAD_START_LINE),
    ERR("method_ctl_partial", REQ, "GE", "\x01", BAD_METHOD),
    ERR("target_del", REQ, "GET /a", "\x7f HTTP/1.1\r\n", BAD_TARGET),
    ERR("target_utf8", REQ, "GET /", "\xc3\xa9 HTTP/1.1\r\n", BAD_TARGET),
    ERR("target_nul_partial", REQ, "GET /", "\0", BAD_TARGET),
    ERR("target_tab", REQ, "GET /", "\t HTTP/1.1\r\n", BAD_TARGET),
    ERR("double_space_after_method", REQ, "GET ", " / HTTP/1.1\r\n", BAD_START_LINE),
    ERR("double_space_after_target", REQ, "GET / ", " HTTP/1.1\r\n", BAD_START_LINE),
    ERR("space_after_version", REQ, "GET / HTTP/1.1", " \r\n", BAD_START_LINE),
    ERR("space_in_target", REQ, "GET /a ", "b HTTP/1.1\r\n", BAD_VERSION),
    ERR("version_1_2", REQ, "GET / HTTP/1.", "2\r\n", BAD_VERSION),
    ERR("version_2_0", REQ, "GET / HTTP/", "2.0\r\n", BAD_VERSION),
    ERR("version_lowercase", REQ, "GET / ", "http/1.1\r\n", BAD_VERSION),
    ERR("version_1_10", REQ, "GET / HTTP/1.1", "0\r\n", BAD_VERSION),
    ERR("version_short", REQ, "GET / HTTP/1", "\r\n", BAD_VERSION),
    ERR("version_missing_http09", REQ, "GET /", "\r\n", BAD_START_LINE),
    ERR("bare_cr_in_start_line_partial", REQ, "GET /", "\rx", BARE_CR),
    ERR("bare_lf_after_start_line", REQ, "GET / HTTP/1.1", "\nHost: a\n\n", BARE_LF),
    {.name = "line_at_limit", .kind = REQ, RAW("GET /ab HTTP/1.1\r\nHost: a\r\n\r\n"),
     .ret = WHOLE, .framing = NONE, .keep = 1, .lim = &lim_line16},
    {.name = "line_too_long_partial", .kind = REQ, RAW("GET /abcdefghijkl"),
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_LINE_TOO_LONG, .offset = 16, .framing = ANY,
     .keep = ANY, .lim = &lim_line16},
    {.name = "line_too_long_by_one", .kind = REQ, RAW("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n"),
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_LINE_TOO_LONG, .offset = 16, .framing = ANY,
     .keep = ANY, .lim = &lim_line16},
    {.name = "status_line_too_long", .kind = RESP, RAW("HTTP/1.1 200 OKOK\r\n\r\n"),
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_LINE_TOO_LONG, .offset = 16, .framing = ANY,
     .keep = ANY, .lim = &lim_line16},

    /* requests: field lines */
    {.name = "head_at_limit", .kind = REQ, RAW(H11 "X:1\r\n\r\n"), .ret = WHOLE, .framing = NONE,
     .keep = 1, .lim = &lim_head32},
    {.name = "head_too_large_partial", .kind = REQ, RAW(H11 "X: 12345"), .ret = SHUNT_EPARSE,
     .reason = SHUNT_HTTP_R_HEAD_TOO_LARGE, .offset = 32, .framing = ANY, .keep = ANY,
     .lim = &lim_head32},
    {.name = "head_too_large_by_final_lf", .kind = REQ, RAW(H11 "X: 1\r\n\r\n"),
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_HEAD_TOO_LARGE, .offset = 32, .framing = ANY,
     .keep = ANY, .lim = &lim_head32},
    {.name = "fields_at_limit", .kind = REQ, RAW(H11 "A: 1\r\n\r\n"), .ret = WHOLE,
     .framing = NONE, .keep = 1, .lim = &lim_fields2},
    {.name = "too_many_headers", .kind = REQ, RAW(H11 "A: 1\r\nB: 2\r\n\r\n"),
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_TOO_MANY_HEADERS, .offset = 31,
     .framing = ANY, .keep = ANY, .lim = &lim_fields2},
    ERR("obs_fold_space", REQ, H11 "X: 1\r\n", " 2\r\n\r\n", OBS_FOLD),
    ERR("obs_fold_tab", REQ, H11 "X: 1\r\n", "\t2\r\n\r\n", OBS_FOLD),
    ERR("whitespace_before_first_field", REQ, "GET / HTTP/1.1\r\n", " Host: a\r\n\r\n",
        BAD_HEADER_NAME),
    ERR("space_before_colon", REQ, "GET / HTTP/1.1\r\nHost", " : a\r\n\r\n", SPACE_BEFORE_COLON),
    ERR("tab_before_colon", REQ, H11 "Content-Length", "\t: 5\r\n\r\n", SPACE_BEFORE_COLON),
    ERR("space_inside_name", REQ, H11 "Foo", " bar: x\r\n\r\n", BAD_HEADER_NAME),
    ERR("no_colon", REQ, H11 "Foo", "\r\n\r\n", NO_COLON),
    ERR("no_colon_trailing_space", REQ, H11 "Foo ", "\r\n\r\n", NO_COLON),
    ERR("name_bad_char", REQ, H11 "Fo", "(o: x\r\n\r\n", BAD_HEADER_NAME),
    ERR("name_utf8", REQ, H11 "X", "\xc3\xa9: x\r\n\r\n", BAD_HEADER_NAME),
    ERR("name_empty", REQ, H11, ": x\r\n\r\n", BAD_HEADER_NAME),
    ERR("value_nul", REQ, H11 "X: a", "\0b\r\n\r\n", BAD_HEADER_VALUE),
    ERR("value_del", REQ, H11 "X: a", "\x7f\r\n\r\n", BAD_HEADER_VALUE),
    ERR("value_ctl_partial", REQ, H11 "X: a", "\x1b", BAD_HEADER_VALUE),
    OK("value_obs_text_and_tab", REQ, H11 "X: caf\xc3\xa9\tb\xff\r\n\r\n", NONE, 0, 1),
    ERR("bare_cr_in_value", REQ, H11 "X: a", "\rb\r\n\r\n", BARE_CR),
    ERR("bare_lf_in_value", REQ, H11 "X: a", "\n\r\n", BARE_LF),
    ERR("bare_lf_final_line", REQ, H11, "\n", BARE_LF),
    ERR("bare_cr_final_line", REQ, H11, "\rx", BARE_CR),
    ERR("bare_cr_in_name", REQ, H11 "X", "\r: y\r\n\r\n", BARE_CR),
    ERR("bare_lf_in_name", REQ, H11 "X", "\n", BARE_LF),
    ERR("garbage_rejected_before_head_ends", REQ, H11 "X: 1\r\n", "\x16\x03\x01", BAD_HEADER_NAME),
    MORE("incomplete_head", REQ, H11),
    MORE("incomplete_final_cr", REQ, H11 "\r"),
    MORE("incomplete_start_line", REQ, "GET /index.html HTTP/1."),
    MORE("incomplete_field_name", REQ, H11 "Content-Le"),
    MORE("incomplete_space_after_name", REQ, H11 "Foo  "),
    MORE("empty_input", REQ, ""),

    /* responses */
    PIPE("response_content_length", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "abc",
         LENGTH, 3, 1),
    OK("response_close_delimited", RESP, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", CLOSE, 0, 1),
    OK("response_chunked", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       CHUNKED, 0, 1),
    OK("response_te_not_chunked_is_close", RESP,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", CLOSE, 0, 1),
    OK("response_te_chunked_then_gzip_is_close", RESP,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", CLOSE, 0, 1),
    OK("response_te_gzip_chunked", RESP,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", CHUNKED, 0, 1),
    OK("response_204_ignores_length", RESP,
       "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", NONE, 0, 1),
    OK("response_304", RESP, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", NONE, 0,
       1),
    OK("response_100", RESP, "HTTP/1.1 100 Continue\r\n\r\n", NONE, 0, 1),
    OK("response_101", RESP,
       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
       NONE, 0, 1),
    OK("response_without_reason_or_space", RESP, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
       LENGTH, 0, 1),
    OK("response_empty_reason", RESP, "HTTP/1.1 404 \r\n\r\n", CLOSE, 0, 1),
    OK("response_reason_obs_text", RESP, "HTTP/1.1 200 Tr\xe8s  bien\t!\r\n\r\n", CLOSE, 0, 1),
    OK("response_http10_keep_alive", RESP,
       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", LENGTH, 0, 1),
    OK("response_http10_default_close", RESP, "HTTP/1.0 200 OK\r\n\r\n", CLOSE, 0, 0),
    OK("response_status_999", RESP, "HTTP/1.1 999 X\r\n\r\n", CLOSE, 0, 1),
    OK("response_host_fields_not_checked", RESP, "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n",
       CLOSE, 0, 1),
    ERR("response_te_and_cl", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 3\r\n\r\n", TE_AND_CL),
    ERR("response_te_http10", RESP, "HTTP/1.0 200 OK\r\n", "Transfer-Encoding: chunked\r\n\r\n",
        TE_HTTP10),
    ERR("response_cl_conflict", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: ",
        "4\r\n\r\n", CONFLICTING_CONTENT_LENGTH),
    ERR("response_status_short", RESP, "HTTP/1.1 20", " OK\r\n\r\n", BAD_STATUS),
    ERR("response_status_long", RESP, "HTTP/1.1 200", "0 OK\r\n\r\n", BAD_STATUS),
    ERR("response_status_leading_zero", RESP, "HTTP/1.1 ", "099 X\r\n\r\n", BAD_STATUS),
    ERR("response_status_alpha", RESP, "HTTP/1.1 2", "x0 X\r\n\r\n", BAD_STATUS),
    ERR("response_status_cut", RESP, "HTTP/1.1 20", "\r\n\r\n", BAD_STATUS),
    ERR("response_double_space", RESP, "HTTP/1.1 ", " 200 OK\r\n\r\n", BAD_START_LINE),
    ERR("response_no_status", RESP, "HTTP/1.1", "\r\n\r\n", BAD_START_LINE),
    ERR("response_http2", RESP, "HTTP/", "2 200 OK\r\n\r\n", BAD_VERSION),
    ERR("response_version_suffix", RESP, "HTTP/1.1", "x 200 OK\r\n\r\n", BAD_VERSION),
    ERR("response_not_http", RESP, "", "ICY 200 OK\r\n\r\n", BAD_VERSION),
    ERR("response_reason_ctl", RESP, "HTTP/1.1 200 O", "\x01K\r\n\r\n", BAD_REASON),
    ERR("response_reason_del", RESP, "HTTP/1.1 200 O", "\x7f\r\n\r\n", BAD_REASON),
    ERR("response_bare_lf", RESP, "HTTP/1.1 200 OK", "\n\n", BARE_LF),
    ERR("response_bare_cr", RESP, "HTTP/1.1 200 OK", "\r\r\n", BARE_CR),
    ERR("response_obs_fold", RESP, "HTTP/1.1 200 OK\r\nX: 1\r\n", " 2\r\n\r\n", OBS_FOLD),
    ERR("response_space_before_colon", RESP, "HTTP/1.1 200 OK\r\nContent-Length",
        " : 3\r\n\r\n", SPACE_BEFORE_COLON),
    MORE("response_incomplete", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"),
};

#define N_HEAD_CASES (sizeof(head_cases) / sizeof(head_cases[0]))

/* ---------------------------------------------------------------- head runner */

#define MAX_FIELDS 128

struct outcome {
    int ret;
    struct shunt_http_error err;
    struct shunt_http_head head;
    struct shunt_http_header headers[MAX_FIELDS];
    const char *buf;
    size_t len; /* bytes given in the call that decided */
};

static int parse(const struct head_case *c, const char *buf, size_t len, size_t last_len,
                 struct shunt_http_head *head, struct shunt_http_header *headers,
                 struct shunt_http_error *err)
{
    const struct shunt_http_limits def = SHUNT_HTTP_LIMITS_DEFAULT;
    const struct shunt_http_limits *lim = c->lim != NULL ? c->lim : &def;
    if (c->kind == REQ)
        return shunt_http_parse_request(buf, len, last_len, head, headers, MAX_FIELDS, lim, err);
    return shunt_http_parse_response(buf, len, last_len, head, headers, MAX_FIELDS, lim, err);
}

/* Asserts that <s> lies within <buf>/<len> (an empty slice may sit at its end). */
static void assert_within(struct shunt_slice s, const char *buf, size_t len)
{
    if (s.len == 0 && s.base == NULL)
        return;
    uintptr_t off = (uintptr_t)s.base - (uintptr_t)buf; /* huge when before <buf> */
    assert_in_range(off, 0, len);
    assert_in_range(s.len, 0, len - off);
}

/* Asserts that slices <a> (into <abuf>) and <b> (into <bbuf>) sit at the same offsets. */
static void assert_same_slice(struct shunt_slice a, const char *abuf, struct shunt_slice b,
                              const char *bbuf)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0)
        assert_int_equal(a.base - abuf, b.base - bbuf);
}

static void check_outcome(const struct head_case *c, const struct outcome *o)
{
    long want = c->ret == WHOLE ? (long)c->len : c->ret;
    assert_int_equal(o->ret, want);
    if (o->ret == SHUNT_EPARSE) {
        assert_string_equal(shunt_http_reason_name(o->err.reason),
                            shunt_http_reason_name(c->reason));
        assert_int_equal(o->err.offset, c->offset);
        return;
    }
    assert_int_equal(o->err.reason, SHUNT_HTTP_R_NONE);
    if (o->ret == 0)
        return;
    const struct shunt_http_head *h = &o->head;
    assert_int_equal(h->head_len, (size_t)o->ret);
    if (c->framing != ANY)
        assert_int_equal(h->framing, c->framing);
    if (c->framing == LENGTH) {
        assert_int_equal(h->content_length, c->cl);
        assert_int_equal(h->cl_repeated, c->cl_rep);
    }
    if (c->keep != ANY)
        assert_int_equal(shunt_http_keeps_alive(h), c->keep);
    assert_ptr_equal(h->headers, o->headers);
    assert_within(h->method, o->buf, h->head_len);
    assert_within(h->target, o->buf, h->head_len);
    assert_within(h->reason, o->buf, h->head_len);
    assert_within(h->start_line, o->buf, h->head_len);
    assert_within(h->host, o->buf, h->head_len);
    for (size_t k = 0; k < h->n_headers; k++) {
        assert_within(h->headers[k].name, o->buf, h->head_len);
        assert_within(h->headers[k].value, o->buf, h->head_len);
        assert_within(h->headers[k].line, o->buf, h->head_len);
    }
}

static void assert_same_outcome(const struct outcome *a, const struct outcome *b)
{
    assert_int_equal(a->ret, b->ret);
    assert_int_equal(a->err.reason, b->err.reason);
    assert_int_equal(a->err.offset, b->err.offset);
    if (a->ret <= 0)
        return;
    const struct shunt_http_head *x = &a->head, *y = &b->head;
    assert_same_slice(x->method, a->buf, y->method, b->buf);
    assert_same_slice(x->target, a->buf, y->target, b->buf);
    assert_same_slice(x->reason, a->buf, y->reason, b->buf);
    assert_same_slice(x->start_line, a->buf, y->start_line, b->buf);
    assert_same_slice(x->host, a->buf, y->host, b->buf);
    assert_int_equal(x->status, y->status);
    assert_int_equal(x->minor_version, y->minor_version);
    assert_int_equal(x->n_headers, y->n_headers);
    assert_int_equal(x->framing, y->framing);
    assert_int_equal(x->content_length, y->content_length);
    assert_int_equal(x->cl_repeated, y->cl_repeated);
    assert_int_equal(shunt_http_keeps_alive(x), shunt_http_keeps_alive(y));
    for (size_t k = 0; k < x->n_headers; k++) {
        assert_same_slice(x->headers[k].name, a->buf, y->headers[k].name, b->buf);
        assert_same_slice(x->headers[k].value, a->buf, y->headers[k].value, b->buf);
        assert_same_slice(x->headers[k].line, a->buf, y->headers[k].line, b->buf);
    }
}

static void run_head_case(void **state)
{
    const struct head_case *c = *state;
    struct outcome *whole = calloc(1, sizeof(*whole));
    struct outcome *step = calloc(1, sizeof(*step));
    assert_non_null(whole);
    assert_non_null(step);

    /* (a) whole, from an exact-size heap copy */
    char *copy = malloc(c->len + 1);
    assert_non_null(copy);
    memcpy(copy, c->raw, c->len);
    whole->buf = copy;
    whole->len = c->len;
    whole->ret = parse(c, copy, c->len, 0, &whole->head, whole->headers, &whole->err);
    check_outcome(c, whole);

    /* (b) byte by byte, each prefix against the guard page, resuming */
    memset(step, 0, sizeof(*step));
    size_t last = 0;
    for (size_t n = c->len == 0 ? 0 : 1; n <= c->len; n++) {
        step->buf = at_guard(c->raw, n);
        step->len = n;
        step->ret = parse(c, step->buf, n, last, &step->head, step->headers, &step->err);
        last = n;
        if (step->ret != 0)
            break;
    }
    check_outcome(c, step);
    assert_same_outcome(whole, step);

    /* (c) whole, against the guard page */
    memset(step, 0, sizeof(*step));
    step->buf = at_guard(c->raw, c->len);
    step->len = c->len;
    step->ret = parse(c, step->buf, c->len, 0, &step->head, step->headers, &step->err);
    check_outcome(c, step);
    assert_same_outcome(whole, step);

    /* (d) 5 bytes at a time with a clobbered head: nothing saved may be trusted */
    last = 0;
    for (size_t n = c->len < 5 ? c->len : 5;; n = n + 5 < c->len ? n + 5 : c->len) {
        memset(&step->head, 0xa5, sizeof(step->head));
        step->buf = at_guard(c->raw, n);
        step->len = n;
        step->ret = parse(c, step->buf, n, last, &step->head, step->headers, &step->err);
        last = n;
        if (step->ret != 0 || n == c->len)
            break;
    }
    check_outcome(c, step);
    assert_same_outcome(whole, step);

    free(copy);
    free(step);
    free(whole);
}

/* ---------------------------------------------------------------- body table */

struct body_case {
    const char *name;
    enum shunt_http_framing framing;
    uint64_t cl;
    const char *raw;
    size_t len;
    long ret; /* WHOLE, bytes belonging to the message, or SHUNT_EPARSE */
    int done;
    enum shunt_http_reason reason;
    size_t offset;
    const char *payload; /* decoded payload expected, NULL when not checked */
    size_t payload_len;
    const struct shunt_http_limits *lim;
};

#define BOK(n, fr, c, s, p)                                                                        \
    {.name = n, .framing = fr, .cl = c, RAW(s), .ret = WHOLE, .done = 1, .payload = p,             \
     .payload_len = sizeof(p) - 1}
#define BPIPE(n, fr, c, s, rest, p)                                                                \
    {.name = n, .framing = fr, .cl = c, .raw = s rest, .len = sizeof(s rest) - 1,                  \
     .ret = sizeof(s) - 1, .done = 1, .payload = p, .payload_len = sizeof(p) - 1}
#define BMORE(n, fr, c, s, p)                                                                      \
    {.name = n, .framing = fr, .cl = c, RAW(s), .ret = WHOLE, .done = 0, .payload = p,             \
     .payload_len = sizeof(p) - 1}
#define BERR(n, before, after, r)                                                                  \
    {.name = n, .framing = CHUNKED, .raw = before after, .len = sizeof(before after) - 1,          \
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_##r, .offset = sizeof(before) - 1}
#define BERRL(n, before, after, r, l)                                                              \
    {.name = n, .framing = CHUNKED, .raw = before after, .len = sizeof(before after) - 1,          \
     .ret = SHUNT_EPARSE, .reason = SHUNT_HTTP_R_##r, .offset = sizeof(before) - 1, .lim = l}

static const struct body_case body_cases[] = {
    BOK("length", LENGTH, 5, "hello", "hello"),
    BPIPE("length_pipelined", LENGTH, 5, "hello", "GET / HTTP/1.1\r\n", "hello"),
    BMORE("length_partial", LENGTH, 10, "hello", "hello"),
    BPIPE("length_zero", LENGTH, 0, "", "GET", ""),
    BPIPE("none", NONE, 0, "", "abc", ""),
    BMORE("close_takes_everything", CLOSE, 0, "abc\r\n0\r\n\r\n", "abc\r\n0\r\n\r\n"),
    BOK("chunked", CHUNKED, 0, "5\r\nhello\r\n0\r\n\r\n", "hello"),
    BOK("chunked_hex_sizes", CHUNKED, 0, "A\r\n0123456789\r\nb\r\nhello world\r\n0\r\n\r\n",
        "0123456789hello world"),
    BOK("chunked_leading_zeros", CHUNKED, 0, "0005\r\nhello\r\n000\r\n\r\n", "hello"),
    BOK("chunked_data_with_crlf", CHUNKED, 0, "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"),
    BOK("chunked_ext_token", CHUNKED, 0, "5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello"),
    BOK("chunked_ext_bws", CHUNKED, 0, "5 ; foo = bar ;\tbaz\r\nhello\r\n0\r\n\r\n", "hello"),
    BOK("chunked_ext_quoted", CHUNKED, 0, "5;foo=\"a \\\" ;b\" ;x=\"\"\r\nhello\r\n0\r\n\r\n",
        "hello"),
    BOK("chunked_trailers", CHUNKED, 0, "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: a b\r\nZ:\r\n\r\n",
        "hello"),
    BPIPE("chunked_pipelined", CHUNKED, 0, "5\r\nhello\r\n0\r\nT: 1\r\n\r\n",
          "GET / HTTP/1.1\r\n\r\n", "hello"),
    BMORE("chunked_partial", CHUNKED, 0, "5\r\nhello\r\n3\r\nab", "helloab"),
    BMORE("chunked_max_size", CHUNKED, 0, "7fffffffffffffff\r\n", ""),
    BERR("chunk_size_empty", "", "\r\n", BAD_CHUNK_SIZE),
    BERR("chunk_size_not_hex", "", "x\r\n", BAD_CHUNK_SIZE),
    BERR("chunk_size_bad_suffix", "5", "x\r\nhello\r\n", BAD_CHUNK_SIZE),
    BERR("chunk_size_negative", "", "-5\r\n", BAD_CHUNK_SIZE),
    BERR("chunk_size_0x", "0", "x5\r\n", BAD_CHUNK_SIZE),
    BERR("chunk_size_bare_lf", "5", "\nhello\r\n", CHUNK_LINE_ENDING),
    BERR("chunk_size_bare_cr", "5\r", "xhello\r\n", CHUNK_LINE_ENDING),
    BERR("chunk_data_not_followed_by_crlf", "5\r\nhello", "X\r\n0\r\n\r\n", CHUNK_LINE_ENDING),
    BERR("chunk_data_bare_cr", "5\r\nhello\r", "X0\r\n\r\n", CHUNK_LINE_ENDING),
    BERR("chunk_data_bare_lf", "5\r\nhello", "\n0\r\n\r\n", CHUNK_LINE_ENDING),
    BERR("chunk_size_overflow", "800000000000000", "0\r\n", CHUNK_SIZE_OVERFLOW),
    BERR("chunk_size_overflow_long", "fffffffffffffff", "fffff\r\n", CHUNK_SIZE_OVERFLOW),
    BERR("chunk_ext_empty", "5;", "\r\nhello\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_no_name", "5;", "=x\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_empty_value", "5;a=", "\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_open_quote", "5;a=\"x", "\r\n", BAD_CHUNK_EXT),
    BERR("chunk_size_trailing_ws", "5 ", "\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_name_trailing_ws", "5;a ", "\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_value_trailing_ws", "5;a=b ", "\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_bad_char", "5;a", "@\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_after_quote", "5;a=\"b\"", "c\r\n", BAD_CHUNK_EXT),
    BERR("chunk_ext_bare_lf", "5;a", "\nhello", CHUNK_LINE_ENDING),
    BERRL("chunk_line_too_long", "00000000", "05\r\n", LINE_TOO_LONG, &lim_chunkline8),
    BERR("trailer_space_before_colon", "0\r\nX", " : y\r\n\r\n", BAD_TRAILER),
    BERR("trailer_obs_fold", "0\r\nX: y\r\n", " z\r\n\r\n", BAD_TRAILER),
    BERR("trailer_ctl", "0\r\nX: ", "\x01\r\n\r\n", BAD_TRAILER),
    BERR("trailer_bare_lf", "0\r\nX: y", "\n\r\n", BAD_TRAILER),
    BERR("trailer_no_colon", "0\r\nX", "\r\n\r\n", BAD_TRAILER),
    BERR("trailer_end_bare_cr", "0\r\n\r", "x", BAD_TRAILER),
    BERRL("trailer_count", "0\r\nA: 1\r\n", "B: 2\r\n\r\n", BAD_TRAILER, &lim_trailer8),
    BERRL("trailer_size", "0\r\nA: 12345", "6\r\n\r\n", BAD_TRAILER, &lim_trailer8),
};

#define N_BODY_CASES (sizeof(body_cases) / sizeof(body_cases[0]))

/* ---------------------------------------------------------------- body runner */

struct sink {
    char data[512];
    size_t len;
    int overflow;
};

static void collect(void *ud, const char *data, size_t len)
{
    struct sink *s = ud;
    if (s->len + len > sizeof(s->data)) {
        s->overflow = 1;
        return;
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
}

struct body_outcome {
    long ret;    /* bytes belonging in total, or SHUNT_EPARSE */
    size_t off;  /* absolute error offset */
    enum shunt_http_reason reason;
    int done;
    struct sink sink;
};

/* Feeds the case in pieces of <piece> bytes (0: whole), each piece against the guard page.
 * With <hold> (chunked only) the scan stops in front of the trailer section, which is then
 * read whole by shunt_http_body_trailers() from the bytes delivered so far, as a proxy that
 * rewrites trailers does: the outcome must be the same as without. */
static void feed_body(const struct body_case *c, size_t piece, int hold, struct body_outcome *o)
{
    const struct shunt_http_limits def = SHUNT_HTTP_LIMITS_DEFAULT;
    struct shunt_http_body body;
    struct shunt_http_error err;
    struct shunt_http_header fields[MAX_FIELDS];
    size_t pos = 0, consumed = 0;

    memset(o, 0, sizeof(*o));
    shunt_http_body_init(&body, c->framing, c->cl, c->lim != NULL ? c->lim : &def);
    body.hold_trailers = hold;
    do {
        pos += piece == 0 || c->len - pos < piece ? c->len - pos : piece;
        for (;;) {
            size_t avail = pos - consumed;
            const char *p = at_guard(c->raw + consumed, avail);
            if (body.at_trailers) {
                size_t nf = 99;
                long t = shunt_http_body_trailers(&body, p, avail, fields, MAX_FIELDS, &nf, &err);
                if (t < 0) {
                    o->ret = t;
                    o->reason = err.reason;
                    o->off = consumed + err.offset;
                    return;
                }
                if (t > 0) {
                    assert_true(body.done);
                    assert_in_range(t, 2, (long)avail);
                    for (size_t k = 0; k < nf; k++)
                        assert_within(fields[k].line, p, (size_t)t);
                    consumed += (size_t)t;
                } else {
                    assert_int_equal(nf, 0);
                }
                break;
            }
            long r = shunt_http_body_scan(&body, p, avail, collect, &o->sink, &err);
            if (r < 0) {
                o->ret = r;
                o->reason = err.reason;
                o->off = consumed + err.offset;
                assert_in_range(err.offset, 0, avail - 1);
                return;
            }
            assert_in_range(r, 0, (long)avail);
            assert_int_equal(err.reason, SHUNT_HTTP_R_NONE);
            if ((size_t)r < avail)
                assert_true(body.done || body.at_trailers);
            consumed += (size_t)r;
            if (!body.at_trailers)
                break;
            assert_true(hold);
        }
    } while (pos < c->len);
    o->ret = (long)consumed;
    o->done = body.done;
    assert_int_equal(body.payload, o->sink.len);
}

static void run_body_case(void **state)
{
    const struct body_case *c = *state;
    static const size_t pieces[] = {0, 1, 2, 3, 7};
    long want = c->ret == WHOLE ? (long)c->len : c->ret;

    for (int hold = 0; hold <= (c->framing == CHUNKED); hold++) {
        for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
            struct body_outcome o;
            feed_body(c, pieces[k], hold, &o);
            assert_int_equal(o.ret, want);
            if (want == SHUNT_EPARSE) {
                assert_string_equal(shunt_http_reason_name(o.reason),
                                    shunt_http_reason_name(c->reason));
                assert_int_equal(o.off, c->offset);
                continue;
            }
            assert_int_equal(o.done, c->done);
            assert_false(o.sink.overflow);
            if (c->payload != NULL) {
                assert_int_equal(o.sink.len, c->payload_len);
                assert_memory_equal(o.sink.data, c->payload, c->payload_len);
            }
        }
    }
}

/* ---------------------------------------------------------------- single behaviours */

static const struct shunt_http_limits lim_default = SHUNT_HTTP_LIMITS_DEFAULT;

#define ASSERT_SLICE(s, lit)                                                                       \
    do {                                                                                           \
        struct shunt_slice s_ = (s);                                                               \
        assert_int_equal(s_.len, sizeof(lit) - 1);                                                 \
        assert_memory_equal(s_.base, (lit), sizeof(lit) - 1);                                      \
    } while (0)

/* Held trailers: the scan stops right after the last chunk, reports nothing more until the
 * section is read, and the section's fields are sliced in wire order. */
static void body_trailers_held(void **state)
{
    (void)state;
    static const char raw[] = "5\r\nhello\r\n0;x=1\r\nX-Sum: 1\r\nContent-Length:  9 \r\n\r\nNEXT";
    struct shunt_http_body body;
    struct shunt_http_error err;
    struct shunt_http_header f[4];
    size_t nf = 0;
    shunt_http_body_init(&body, CHUNKED, 0, &lim_default);
    body.hold_trailers = 1;
    assert_int_equal(shunt_http_body_scan(&body, raw, sizeof(raw) - 1, NULL, NULL, &err), 17);
    assert_true(body.at_trailers);
    assert_false(body.done);
    assert_int_equal(shunt_http_body_scan(&body, raw + 17, 5, NULL, NULL, &err), 0);
    assert_int_equal(shunt_http_body_eof(&body), 0);
    /* incomplete, then whole: the same start, more bytes */
    assert_int_equal(shunt_http_body_trailers(&body, raw + 17, 20, f, 4, &nf, &err), 0);
    long t = shunt_http_body_trailers(&body, raw + 17, sizeof(raw) - 1 - 17, f, 4, &nf, &err);
    assert_int_equal(t, sizeof(raw) - 1 - 17 - 4);
    assert_true(body.done);
    assert_false(body.at_trailers);
    assert_int_equal(nf, 2);
    ASSERT_SLICE(f[0].name, "X-Sum");
    ASSERT_SLICE(f[1].name, "Content-Length");
    ASSERT_SLICE(f[1].value, "9");
    ASSERT_SLICE(f[1].line, "Content-Length:  9 \r\n");
    /* a body not stopped at its trailers has none to read */
    shunt_http_body_init(&body, CHUNKED, 0, &lim_default);
    assert_int_equal(shunt_http_body_trailers(&body, "\r\n", 2, f, 4, &nf, &err), SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_BAD_TRAILER);
}

static void request_slices_keep_wire_bytes(void **state)
{
    static const char raw[] = "PUT /a/b?c=d HTTP/1.1\r\n"
                              "Host:  example.com:8080 \r\n"
                              "X-Empty:\r\n"
                              "x-CASE: \t v1 \t v2\t \r\n"
                              "Expect: 100-Continue\r\n"
                              "Connection: Upgrade, Keep-Alive\r\n"
                              "Upgrade: h2c\r\n"
                              "Content-Length: 3\r\n"
                              "\r\n"
                              "abc";
    struct shunt_http_head head;
    struct shunt_http_header headers[8];
    struct shunt_http_error err;
    const char *buf = at_guard(raw, sizeof(raw) - 1);
    int r = shunt_http_parse_request(buf, sizeof(raw) - 1, 0, &head, headers, 8, &lim_default,
                                     &err);
    assert_int_equal(r, sizeof(raw) - 1 - 3);
    ASSERT_SLICE(head.method, "PUT");
    ASSERT_SLICE(head.target, "/a/b?c=d");
    ASSERT_SLICE(head.start_line, "PUT /a/b?c=d HTTP/1.1");
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(head.n_headers, 7);
    ASSERT_SLICE(headers[0].name, "Host");
    ASSERT_SLICE(headers[0].value, "example.com:8080");
    ASSERT_SLICE(headers[0].line, "Host:  example.com:8080 \r\n");
    ASSERT_SLICE(head.host, "example.com:8080");
    ASSERT_SLICE(headers[1].name, "X-Empty");
    assert_int_equal(headers[1].value.len, 0);
    ASSERT_SLICE(headers[1].line, "X-Empty:\r\n");
    ASSERT_SLICE(headers[2].name, "x-CASE");
    ASSERT_SLICE(headers[2].value, "v1 \t v2");
    ASSERT_SLICE(headers[2].line, "x-CASE: \t v1 \t v2\t \r\n");
    ASSERT_SLICE(headers[6].name, "Content-Length");
    ASSERT_SLICE(headers[6].value, "3");
    assert_int_equal(head.expect_continue, 1);
    assert_int_equal(head.conn_upgrade, 1);
    assert_int_equal(head.conn_keep_alive, 1);
    assert_int_equal(head.conn_close, 0);
    assert_int_equal(head.has_upgrade, 1);
    assert_int_equal(head.has_cl, 1);
    assert_int_equal(head.has_te, 0);
    assert_int_equal(head.framing, SHUNT_HTTP_BODY_LENGTH);
    assert_int_equal(head.content_length, 3);
    const struct shunt_http_header *h = shunt_http_find_header(&head, "x-case", 6);
    assert_ptr_equal(h, &headers[2]);
    assert_null(shunt_http_find_header(&head, "x-cas", 5));
}

static void response_slices(void **state)
{
    static const char raw[] = "HTTP/1.0 503 Service  Unavailable\r\nRetry-After: 5\r\n\r\n";
    struct shunt_http_head head;
    struct shunt_http_header headers[4];
    struct shunt_http_error err;
    const char *buf = at_guard(raw, sizeof(raw) - 1);
    int r = shunt_http_parse_response(buf, sizeof(raw) - 1, 0, &head, headers, 4, &lim_default,
                                      &err);
    assert_int_equal(r, sizeof(raw) - 1);
    assert_int_equal(head.status, 503);
    assert_int_equal(head.minor_version, 0);
    ASSERT_SLICE(head.reason, "Service  Unavailable");
    ASSERT_SLICE(head.start_line, "HTTP/1.0 503 Service  Unavailable");
    ASSERT_SLICE(headers[0].value, "5");
    assert_int_equal(head.framing, SHUNT_HTTP_BODY_CLOSE);
    assert_int_equal(shunt_http_keeps_alive(&head), 0);
    assert_int_equal(head.host.len, 0);
}

/* Parses <raw> as a response and returns its framing for the given request kind. */
static enum shunt_http_framing framing_of(const char *raw, int was_head, int was_connect)
{
    struct shunt_http_head head;
    struct shunt_http_header headers[4];
    struct shunt_http_error err;
    size_t len = strlen(raw);
    int r = shunt_http_parse_response(raw, len, 0, &head, headers, 4, &lim_default, &err);
    assert_int_equal(r, len);
    return shunt_http_response_framing(&head, was_head, was_connect);
}

static void response_framing_by_request(void **state)
{
    const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(framing_of(cl, 0, 0), SHUNT_HTTP_BODY_LENGTH);
    assert_int_equal(framing_of(cl, 1, 0), SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of(ch, 0, 0), SHUNT_HTTP_BODY_CHUNKED);
    assert_int_equal(framing_of(ch, 1, 0), SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 200 OK\r\n\r\n", 0, 0), SHUNT_HTTP_BODY_CLOSE);
    assert_int_equal(framing_of("HTTP/1.1 200 Connection established\r\n\r\n", 0, 1),
                     SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", 0, 1),
                     SHUNT_HTTP_BODY_LENGTH);
    assert_int_equal(framing_of("HTTP/1.1 204 No Content\r\n\r\n", 0, 0), SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 0, 0),
                     SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 103 Early Hints\r\n\r\n", 0, 0),
                     SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 199 X\r\n\r\n", 0, 0), SHUNT_HTTP_BODY_NONE);
    assert_int_equal(framing_of("HTTP/1.1 200 OK\r\n\r\n", 0, 1), SHUNT_HTTP_BODY_NONE);
}

static void body_eof_semantics(void **state)
{
    struct shunt_http_body body;
    struct shunt_http_error err;

    shunt_http_body_init(&body, SHUNT_HTTP_BODY_CLOSE, 0, &lim_default);
    assert_int_equal(shunt_http_body_scan(&body, "abc", 3, NULL, NULL, &err), 3);
    assert_int_equal(body.done, 0);
    assert_int_equal(shunt_http_body_eof(&body), 1);
    assert_int_equal(body.done, 1);

    shunt_http_body_init(&body, SHUNT_HTTP_BODY_LENGTH, 5, &lim_default);
    assert_int_equal(shunt_http_body_scan(&body, "abc", 3, NULL, NULL, &err), 3);
    assert_int_equal(body.remaining, 2);
    assert_int_equal(shunt_http_body_eof(&body), 0);

    shunt_http_body_init(&body, SHUNT_HTTP_BODY_CHUNKED, 0, &lim_default);
    assert_int_equal(shunt_http_body_scan(&body, "3\r\nab", 5, NULL, NULL, &err), 5);
    assert_int_equal(shunt_http_body_eof(&body), 0);
    assert_int_equal(shunt_http_body_scan(&body, "c\r\n0\r\n\r\n", 8, NULL, NULL, &err), 8);
    assert_int_equal(body.payload, 3);
    assert_int_equal(shunt_http_body_eof(&body), 1);

    shunt_http_body_init(&body, SHUNT_HTTP_BODY_NONE, 0, &lim_default);
    assert_int_equal(body.done, 1);
    assert_int_equal(shunt_http_body_eof(&body), 1);
}

static void body_error_is_sticky(void **state)
{
    struct shunt_http_body body;
    struct shunt_http_error err;
    shunt_http_body_init(&body, SHUNT_HTTP_BODY_CHUNKED, 0, &lim_default);
    assert_int_equal(shunt_http_body_scan(&body, "z", 1, NULL, NULL, &err), SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_BAD_CHUNK_SIZE);
    assert_int_equal(shunt_http_body_scan(&body, "0\r\n\r\n", 5, NULL, NULL, &err), SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_BAD_CHUNK_SIZE);
    assert_int_equal(shunt_http_body_eof(&body), 0);
}

/* Builds "GET / HTTP/1.1" with <n_fields> "Xn: v" fields (Host first) into <buf>. */
static size_t build_fields(char *buf, size_t cap, size_t n_fields)
{
    size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t k = 1; k < n_fields; k++)
        len += (size_t)snprintf(buf + len, cap - len, "X%zu: v\r\n", k);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    return len;
}

static void default_limits(void **state)
{
    static char buf[80000];
    struct shunt_http_head head;
    static struct shunt_http_header headers[200];
    struct shunt_http_error err;

    size_t len = build_fields(buf, sizeof(buf), 100);
    int r = shunt_http_parse_request(at_guard(buf, len), len, 0, &head, headers, 200,
                                     &lim_default, &err);
    assert_int_equal(r, len);
    assert_int_equal(head.n_headers, 100);

    len = build_fields(buf, sizeof(buf), 101);
    r = shunt_http_parse_request(at_guard(buf, len), len, 0, &head, headers, 200, &lim_default,
                                 &err);
    assert_int_equal(r, SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_TOO_MANY_HEADERS);

    /* The array capacity bounds the fields too, when it is the smaller. */
    len = build_fields(buf, sizeof(buf), 5);
    r = shunt_http_parse_request(at_guard(buf, len), len, 0, &head, headers, 4, &lim_default,
                                 &err);
    assert_int_equal(r, SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_TOO_MANY_HEADERS);

    /* A start line of exactly 8192 bytes is accepted; one more is not. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    memcpy(buf + 8192 - 9, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
    len = 8192 + 11 + 2;
    r = shunt_http_parse_request(at_guard(buf, len), len, 0, &head, headers, 200, &lim_default,
                                 &err);
    assert_int_equal(r, len);
    assert_int_equal(head.start_line.len, 8192);
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    r = shunt_http_parse_request(at_guard(buf, 8193), 8193, 0, &head, headers, 200,
                                 &lim_default, &err);
    assert_int_equal(r, SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_LINE_TOO_LONG);
    assert_int_equal(err.offset, 8192);

    /* A head over 65536 bytes is rejected before it ends. */
    len = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(buf + len, 'v', 70000 - len);
    r = shunt_http_parse_request(at_guard(buf, 70000), 70000, 0, &head, headers, 200,
                                 &lim_default, &err);
    assert_int_equal(r, SHUNT_EPARSE);
    assert_int_equal(err.reason, SHUNT_HTTP_R_HEAD_TOO_LARGE);
    assert_int_equal(err.offset, 65536);
}

/* A long head arriving in small pieces: each call returns 0 until the end, and the result
 * equals a whole parse. */
static void long_head_in_pieces(void **state)
{
    static char buf[40000];
    static struct shunt_http_header headers[100], headers2[100];
    struct shunt_http_head head, head2;
    struct shunt_http_error err;
    size_t len = build_fields(buf, sizeof(buf), 100);
    int r = 0;
    size_t last = 0;
    for (size_t n = 3; r == 0; n = n + 3 < len ? n + 3 : len) {
        r = shunt_http_parse_request(buf, n, last, &head, headers, 100, &lim_default, &err);
        last = n;
        if (n == len)
            break;
    }
    assert_int_equal(r, len);
    r = shunt_http_parse_request(buf, len, 0, &head2, headers2, 100, &lim_default, &err);
    assert_int_equal(r, len);
    assert_int_equal(head.n_headers, head2.n_headers);
    for (size_t k = 0; k < head.n_headers; k++) {
        assert_ptr_equal(headers[k].line.base, headers2[k].line.base);
        assert_int_equal(headers[k].line.len, headers2[k].line.len);
        assert_ptr_equal(headers[k].value.base, headers2[k].value.base);
    }
}

static void reason_names_and_strings(void **state)
{
    assert_string_equal(shunt_http_reason_name(SHUNT_HTTP_R_BARE_CR), "BARE_CR");
    assert_string_equal(shunt_http_reason_str(SHUNT_HTTP_R_BARE_LF), "LF not preceded by CR");
    assert_string_equal(shunt_http_reason_name(SHUNT_HTTP_R_NONE), "NONE");
    assert_string_equal(shunt_http_reason_name(SHUNT_HTTP_R_BAD_TRAILER), "BAD_TRAILER");
    assert_string_equal(shunt_http_reason_name((enum shunt_http_reason)999), "UNKNOWN");
}

/* Every reason code except NONE is produced by at least one table case. */
static void every_reason_is_covered(void **state)
{
#define XX(name, msg) +1
    enum { N_REASONS = 0 SHUNT_HTTP_REASON_MAP(XX) };
#undef XX
    int seen[N_REASONS] = {0};
    for (size_t k = 0; k < N_HEAD_CASES; k++)
        if (head_cases[k].ret == SHUNT_EPARSE)
            seen[head_cases[k].reason] = 1;
    for (size_t k = 0; k < N_BODY_CASES; k++)
        if (body_cases[k].ret == SHUNT_EPARSE)
            seen[body_cases[k].reason] = 1;
    for (int r = 1; r < N_REASONS; r++)
        if (!seen[r])
            fail_msg("reason %s has no test case", shunt_http_reason_name(r));
}

static void list_has_finds_whole_elements(void **state)
{
    (void)state;
#define HAS(v, t) shunt_http_list_has(SHUNT_SLICE_LIT(v), t, sizeof(t) - 1)
    assert_true(HAS("close", "close"));
    assert_true(HAS("  Keep-Alive ,\tCLOSE ", "close"));
    assert_true(HAS(",,close,,", "close"));
    assert_false(HAS("closed", "close"));
    assert_false(HAS("x-close", "close"));
    assert_false(HAS("\"a,close\"", "close")); /* inside a quoted string */
    assert_false(HAS("", "close"));
    assert_true(HAS("upgrade, \"q\\\",x\", close", "close"));
#undef HAS
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(request_slices_keep_wire_bytes),
        cmocka_unit_test(response_slices),
        cmocka_unit_test(response_framing_by_request),
        cmocka_unit_test(body_eof_semantics),
        cmocka_unit_test(body_trailers_held),
        cmocka_unit_test(body_error_is_sticky),
        cmocka_unit_test(default_limits),
        cmocka_unit_test(long_head_in_pieces),
        cmocka_unit_test(reason_names_and_strings),
        cmocka_unit_test(every_reason_is_covered),
        cmocka_unit_test(list_has_finds_whole_elements),
    };
    size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
    size_t n = N_HEAD_CASES + N_BODY_CASES + n_fixed;
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    char (*names)[96] = calloc(N_HEAD_CASES + N_BODY_CASES, sizeof(*names));
    if (tests == NULL || names == NULL)
        return 1;
    size_t t = 0;
    for (size_t k = 0; k < N_HEAD_CASES; k++, t++) {
        snprintf(names[t], sizeof(names[t]), "head/%s", head_cases[k].name);
        tests[t] = (struct CMUnitTest){.name = names[t], .test_func = run_head_case,
                                       .initial_state = (void *)&head_cases[k]};
    }
    for (size_t k = 0; k < N_BODY_CASES; k++, t++) {
        snprintf(names[t], sizeof(names[t]), "body/%s", body_cases[k].name);
        tests[t] = (struct CMUnitTest){.name = names[t], .test_func = run_body_case,
                                       .initial_state = (void *)&body_cases[k]};
    }
    for (size_t k = 0; k < n_fixed; k++)
        tests[t++] = fixed[k];
    int failed = _cmocka_run_group_tests("http_parser", tests, n, group_setup, group_teardown);
    free(names);
    free(tests);
    return failed;
}
