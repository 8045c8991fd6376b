/* fuzz/fuzz_expr.c - libFuzzer driver for filter expressions: the input is an expression,
 * compiled and, when it compiles, evaluated against fixed exchanges (one at request time,
 * one with a response and bodies). Any input must compile or give SHUNT_EPARSE with a
 * one-line message at a column inside the text (or just after it), never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rules/expr.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define S(lit) {(lit), sizeof(lit) - 1}
#define H(n, v) {S(n), S(v), S(n ": " v "\r\n")}

static const struct shunt_http_header req[] = {
    H("Host", "example.com"), H("Content-Type", "application/json"),
    H("Authorization", "NTLM TlRMTVNTUAABAAAA")};
static const struct shunt_http_header resp[] = {
    H("Server", "nginx"), H("Content-Type", "text/html; charset=utf-8"),
    H("Set-Cookie", "a=b; Path=/")};

static const struct shunt_expr_subject subjects[] = {
    {.method = S("GET"), .url = S("http://example.com/index.html?q=1"), .host = S("example.com"),
     .req_headers = req, .n_req_headers = 1, .conn_id = 1},
    {.method = S("POST"), .url = S("http://example.com:8080/api"), .host = S("example.com"),
     .status = 404, .has_response = 1, .req_headers = req, .n_req_headers = 3,
     .resp_headers = resp, .n_resp_headers = 3, .req_body = S("{\"name\":\"Widget\"}"),
     .resp_body = S("<h1>Not \x00\xff Found</h1>"), .conn_id = 2, .auth = 1,
     .closed = SHUNT_EXPR_CLOSED_SERVER},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shunt_expr *e = NULL;
    struct shunt_expr_error err;
    int rc = shunt_expr_compile_n((const char *)data, size, &e, &err);
    if (rc == 0) {
        CHECK(e != NULL);
        for (size_t k = 0; k < sizeof(subjects) / sizeof(subjects[0]); k++) {
            int m = shunt_expr_match(e, &subjects[k]);
            CHECK(m == 0 || m == 1);
            CHECK(shunt_expr_match(e, &subjects[k]) == m);
        }
        shunt_expr_free(e);
        return 0;
    }
    CHECK(e == NULL);
    if (rc == SHUNT_ENOMEM)
        return 0;
    CHECK(rc == SHUNT_EPARSE);
    CHECK(err.column >= 1 && err.column <= size + 1 && err.offset <= size);
    CHECK(err.message[0] != '\0' && strchr(err.message, '\n') == NULL);
    return 0;
}
