/* src/rules/expr.h - filter expressions (mitmproxy's language, plus shunt's own terms):
 * compiled once, evaluated against an exchange without allocating. docs/filters.md is the
 * reference for the language; this header is the API. */
#ifndef SHUNT_RULES_EXPR_H
#define SHUNT_RULES_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"
#include "core/slice.h"
#include "http/parser.h"

/*
 * Usage:
 *
 *     struct shunt_expr *e;
 *     struct shunt_expr_error err;
 *     if (shunt_expr_compile("~d example\\.com & ~c 404", &e, &err) != 0)
 *         printf("column %zu: %s\n", err.column, err.message);
 *     ...
 *     if (shunt_expr_match(e, &subject)) ...   (any thread, any number at once)
 *     shunt_expr_free(e);
 *
 * A compiled expression is immutable: several threads may evaluate the same one at once.
 * Each thread that evaluates keeps a small state of its own (PCRE2 match data and a line
 * buffer), made on its first evaluation and freed when the thread exits, so evaluation
 * itself does not allocate.
 */

/* Longest expression accepted, in bytes. */
#define SHUNT_EXPR_MAX_LEN 8192
/* Deepest nesting accepted: parentheses and `!` together. */
#define SHUNT_EXPR_MAX_DEPTH 64
/* PCRE2 match limit per regular expression and subject: a pathological pattern stops there
 * and counts as "no match" instead of running for minutes. */
#define SHUNT_EXPR_MATCH_LIMIT 1000000u
/* PCRE2 heap limit per match, KiB (the backtracking frames). */
#define SHUNT_EXPR_HEAP_LIMIT_KIB 16384u

/* Why an expression was refused. Plain data, filled by shunt_expr_compile(). */
struct shunt_expr_error {
    size_t column;     /* 1-based column of the offending character, in characters (UTF-8
                          sequences count one); length + 1 when the text ended too soon */
    size_t offset;     /* the same place as a byte offset into the text */
    char message[160]; /* one line, no trailing period: "unknown filter ~x" */
};

/* Who closed the connection first (shunt_expr_subject.closed). */
enum shunt_expr_closed {
    SHUNT_EXPR_CLOSED_NONE = 0,   /* still open, or unknown */
    SHUNT_EXPR_CLOSED_CLIENT = 1, /* the client */
    SHUNT_EXPR_CLOSED_SERVER = 2, /* the server (the upstream) */
    SHUNT_EXPR_CLOSED_PROXY = 3,  /* shunt itself (timeout, error, limit) */
};

/*
 * What an expression is evaluated against: one exchange, as far as it has got. Plain data
 * that the caller fills; every pointer is borrowed for the duration of the call. Slices may
 * be empty ({NULL, 0}).
 */
struct shunt_expr_subject {
    struct shunt_slice method; /* request method ("GET"); ~m */
    struct shunt_slice url;    /* absolute URL, "http://host:port/path?query" (what the
                                  capture stores in exchanges.url); ~u and a bare regex */
    struct shunt_slice host;   /* host without port, as the request named it; ~d */
    int status;                /* final response status, 0 when there is no response; ~c */
    int has_response;          /* 1 when a final response head exists; ~s, ~q, and the
                                  response side of ~h, ~t, ~b */
    int error;                 /* 1 when the exchange failed (exchanges.error); ~e */
    const struct shunt_http_header *req_headers; /* request fields in wire order; only name
                                                    and value are read (~h, ~hq, ~t, ~tq) */
    size_t n_req_headers;
    const struct shunt_http_header *resp_headers; /* response fields (~h, ~hs, ~t, ~ts, ~a);
                                                     ignored unless has_response */
    size_t n_resp_headers;
    struct shunt_slice req_body;  /* the captured part of the request body, decoded from
                                     chunked framing (not from Content-Encoding); ~b, ~bq */
    struct shunt_slice resp_body; /* the same for the response; ~b, ~bs */
    int64_t conn_id;              /* client connection id; ~conn */
    int auth;                     /* 1 when the connection is in or past an authentication
                                     handshake (a scheme was seen); ~auth */
    int closed;                   /* enum shunt_expr_closed; ~closed */
};

/* What an expression reads, so that a caller loads only that (shunt_expr_needs()). */
#define SHUNT_EXPR_NEED_REQ_HEADERS 1u  /* ~h ~hq ~t ~tq */
#define SHUNT_EXPR_NEED_RESP_HEADERS 2u /* ~h ~hs ~t ~ts ~a */
#define SHUNT_EXPR_NEED_REQ_BODY 4u     /* ~b ~bq */
#define SHUNT_EXPR_NEED_RESP_BODY 8u    /* ~b ~bs */

struct shunt_expr;

/* ---------------------------------------------------------------- compile and free */

/*
 * Compiles the NUL-terminated expression <text> (every regular expression in it included)
 * into *<out>. Returns 0; or SHUNT_EPARSE with <err> saying where and why (a syntax error,
 * a bad regular expression: at its argument's column, an expression over
 * SHUNT_EXPR_MAX_LEN or nested deeper than SHUNT_EXPR_MAX_DEPTH), *<out> NULL; or
 * SHUNT_ENOMEM. The result is freed with shunt_expr_free(). Any thread.
 */
SHUNT_MUST_CHECK int shunt_expr_compile(const char *text, struct shunt_expr **out,
                                        struct shunt_expr_error *err);

/* The same with the expression as <len> bytes at <text> (NUL bytes are ordinary characters
 * of a regular expression). */
SHUNT_MUST_CHECK int shunt_expr_compile_n(const char *text, size_t len, struct shunt_expr **out,
                                          struct shunt_expr_error *err);

/* Frees <e> (NULL is fine). No thread may be evaluating it. */
void shunt_expr_free(struct shunt_expr *e);

/* ---------------------------------------------------------------- evaluate */

/*
 * Returns 1 when the exchange <s> matches <e>, 0 when not. Does not allocate, except for the
 * calling thread's state on its first call (and its line buffer growing to the longest
 * header line seen); when that allocation fails, or a regular expression reaches
 * SHUNT_EXPR_MATCH_LIMIT, that regular expression does not match. Any thread, concurrently.
 */
int shunt_expr_match(const struct shunt_expr *e, const struct shunt_expr_subject *s);

/* Returns the SHUNT_EXPR_NEED_* bits of what <e> reads. */
unsigned shunt_expr_needs(const struct shunt_expr *e);

/* Returns 1 when <e> reads a body (~b, ~bq, ~bs), 0 when not: a caller that loads bodies
 * only for such expressions. */
int shunt_expr_uses_bodies(const struct shunt_expr *e);

/* Returns the expression's text as compiled (NUL-terminated, owned by <e>). */
const char *shunt_expr_text(const struct shunt_expr *e);

#endif
