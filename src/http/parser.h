/* src/http/parser.h - strict, allocation-free HTTP/1.1 message parser (RFC 9112). */
#ifndef SHUNT_HTTP_PARSER_H
#define SHUNT_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"
#include "core/slice.h"

/*
 * Two parts:
 *  - shunt_http_parse_request()/shunt_http_parse_response() parse a message head that sits
 *    at the start of a buffer. They are re-entrant over a growing buffer: call again with
 *    the same bytes plus more, passing the length seen last time (<last_len>) so that the
 *    search for the end of the head resumes instead of restarting (picohttpparser's idea).
 *    Every name, value, method, target and reason is a slice into the caller's buffer;
 *    the parser allocates nothing and writes nothing into the buffer.
 *  - shunt_http_body_*() frame the body that follows: Content-Length, chunked (with
 *    extensions and trailers) or until close. They report how many of the offered bytes
 *    belong to the message, without copying or rewriting them, so a proxy can forward the
 *    wire bytes unchanged; decoded payload bytes are reported through an optional callback.
 *
 * Errors say where and why: a reason code and the byte offset (from the start of the head,
 * or from the start of the bytes offered to shunt_http_body_scan()).
 */

/* Limits; a message over one is rejected, with its own reason. */
struct shunt_http_limits {
    size_t max_line;    /* request line or status line, bytes without CRLF (default 8192) */
    size_t max_head;    /* whole head incl. start line and final CRLF (default 65536); also
                           the cap for a trailer section */
    size_t max_headers; /* header fields (default 100); also the cap for trailer fields */
};

#define SHUNT_HTTP_LIMITS_DEFAULT ((struct shunt_http_limits){8192, 65536, 100})

/* Why a message was rejected. */
#define SHUNT_HTTP_REASON_MAP(XX)                                                                  \
    XX(NONE, "no error")                                                                           \
    XX(BAD_METHOD, "invalid character in method")                                                  \
    XX(BAD_TARGET, "invalid character in request target")                                          \
    XX(BAD_VERSION, "unsupported or malformed HTTP version")                                       \
    XX(BAD_STATUS, "malformed status code")                                                        \
    XX(BAD_REASON, "invalid character in reason phrase")                                           \
    XX(BAD_START_LINE, "malformed start line")                                                     \
    XX(LINE_TOO_LONG, "start line or chunk-size line over the limit")                              \
    XX(HEAD_TOO_LARGE, "header section over the limit")                                            \
    XX(TOO_MANY_HEADERS, "too many header fields")                                                 \
    XX(BARE_CR, "CR not followed by LF")                                                           \
    XX(BARE_LF, "LF not preceded by CR")                                                           \
    XX(OBS_FOLD, "obsolete line folding")                                                          \
    XX(SPACE_BEFORE_COLON, "whitespace between field name and colon")                              \
    XX(BAD_HEADER_NAME, "invalid character in field name")                                         \
    XX(BAD_HEADER_VALUE, "invalid character in field value")                                       \
    XX(NO_COLON, "field line without a colon")                                                     \
    XX(TE_AND_CL, "Transfer-Encoding together with Content-Length")                                \
    XX(BAD_CONTENT_LENGTH, "malformed Content-Length")                                             \
    XX(CONFLICTING_CONTENT_LENGTH, "several differing Content-Length values")                      \
    XX(TE_NOT_CHUNKED, "Transfer-Encoding whose final coding is not chunked")                      \
    XX(TE_HTTP10, "Transfer-Encoding in an HTTP/1.0 message")                                      \
    XX(BAD_TRANSFER_ENCODING, "malformed Transfer-Encoding")                                       \
    XX(NO_HOST, "HTTP/1.1 request without Host")                                                   \
    XX(MULTIPLE_HOST, "several Host fields")                                                       \
    XX(BAD_CHUNK_SIZE, "malformed chunk size")                                                     \
    XX(CHUNK_SIZE_OVERFLOW, "chunk size overflows")                                                \
    XX(BAD_CHUNK_EXT, "malformed chunk extension")                                                 \
    XX(CHUNK_LINE_ENDING, "chunk not followed by CRLF")                                            \
    XX(BAD_TRAILER, "malformed trailer section")                                                  \
    XX(TE_CHUNKED_PARAMS, "chunked transfer coding with parameters")                               \
    XX(TE_CHUNKED_TWICE, "chunked transfer coding applied more than once")                         \
    XX(TE_UNKNOWN, "transfer coding shunt does not know")                                          \
    XX(BAD_HOST, "invalid Host value")

enum shunt_http_reason {
#define XX(name, msg) SHUNT_HTTP_R_##name,
    SHUNT_HTTP_REASON_MAP(XX)
#undef XX
};

/* Where and why a message was rejected. */
struct shunt_http_error {
    enum shunt_http_reason reason; /* SHUNT_HTTP_R_NONE when nothing went wrong */
    size_t offset;                 /* byte offset of the offending byte (see above) */
};

/* Returns the static description of <reason>. */
const char *shunt_http_reason_str(enum shunt_http_reason reason);
/* Returns the static name of <reason> ("BARE_CR"). */
const char *shunt_http_reason_name(enum shunt_http_reason reason);

/* One header field, slices into the parsed buffer. */
struct shunt_http_header {
    struct shunt_slice name;  /* field name as on the wire (case kept) */
    struct shunt_slice value; /* value without leading and trailing SP/HTAB */
    struct shunt_slice line;  /* the whole field line as on the wire, from the first byte of
                                 the name up to and including its CRLF */
};

/* Body framing of a message, derived from its head (RFC 9112 section 6.3). */
enum shunt_http_framing {
    SHUNT_HTTP_BODY_NONE,    /* no body: message ends with the head */
    SHUNT_HTTP_BODY_LENGTH,  /* Content-Length bytes follow */
    SHUNT_HTTP_BODY_CHUNKED, /* chunked transfer coding, then trailers */
    SHUNT_HTTP_BODY_CLOSE,   /* response body delimited by the server closing */
};

/* A parsed message head. All slices point into the buffer given to the parse call and are
 * valid as long as those bytes stay where they are. */
struct shunt_http_head {
    /* request only */
    struct shunt_slice method; /* token */
    struct shunt_slice target; /* request-target, as sent */
    /* response only */
    int status;                /* 100..999 */
    struct shunt_slice reason; /* may be empty */
    /* both */
    int minor_version;                 /* 0 or 1: HTTP/1.0 or HTTP/1.1 */
    struct shunt_slice start_line;     /* start line without its CRLF */
    struct shunt_http_header *headers; /* the caller's array, filled in wire order */
    size_t n_headers;                  /* fields found */
    size_t head_len;                   /* bytes of the head, through the empty line's CRLF */

    /* Derived from the fields while parsing (message semantics, RFC 9112 6, 9.3, 9.6). */
    enum shunt_http_framing framing; /* for a response: as if the request were not HEAD; see
                                        shunt_http_response_framing() */
    uint64_t content_length;         /* when framing == SHUNT_HTTP_BODY_LENGTH */
    unsigned conn_close : 1;         /* Connection has the "close" token */
    unsigned conn_keep_alive : 1;    /* Connection has the "keep-alive" token */
    unsigned conn_upgrade : 1;       /* Connection has the "upgrade" token */
    unsigned has_upgrade : 1;        /* an Upgrade field is present */
    unsigned expect_continue : 1;    /* request: Expect: 100-continue */
    unsigned has_te : 1;             /* Transfer-Encoding present */
    unsigned has_cl : 1;             /* Content-Length present */
    unsigned cl_repeated : 1;        /* Content-Length given more than once, in several fields
                                        or as a list, all with one value (RFC 9110 8.6): a
                                        proxy sends it as one field */
    struct shunt_slice host;         /* request: the Host value (empty when none) */

    /* Where validation of an incomplete head stopped, so that the next call over the same
     * bytes (<last_len>) resumes there; private, meaningful only between calls that return 0.
     * A head whose saved state does not match <last_len> is simply validated from the start. */
    size_t _scan_len;    /* <len> of the call that saved the state */
    size_t _scan_pos;    /* start of the first line not yet validated */
    size_t _scan_fields; /* field lines validated before _scan_pos */
    size_t _scan_check;  /* checksum of the three above */
};

/*
 * Parses a request head at the start of <buf> (<len> bytes).
 * <last_len> is the <len> of the previous call over the same message, 0 the first time.
 * Pass the same <head> to every call over one message: between calls that return 0 it keeps
 * the resume point (its private _scan_* fields), so a head arriving in many pieces is scanned
 * once overall. With <last_len> 0 <head> need not be initialised; with another <head> the
 * call is still correct, it just validates from the start.
 * <headers>/<max_headers> is the array to fill; the configured limit is lim->max_headers
 * and <max_headers> must be at least that.
 * Returns the head length (>0) when a complete head was parsed and <head> is filled;
 * 0 when more bytes are needed (nothing in the bytes so far is invalid); SHUNT_EPARSE with
 * <err> set when the head is invalid or over a limit. Errors are reported as early as the
 * bytes allow (a bare CR or a NUL in the start line is reported before the head is complete).
 * Also rejects: TE with CL, differing CLs, a request TE whose last coding isn't chunked,
 * chunked with parameters or applied twice (RFC 9112 6.1, 7), a request coding that is not
 * chunked, gzip, x-gzip, deflate, compress or x-compress, TE in HTTP/1.0, a 1.1 request
 * without Host, several Host fields, a Host that is not uri-host [":" port] (RFC 9112 3.2,
 * RFC 3986 3.2.2; see host_value() for the details). Any thread.
 */
SHUNT_MUST_CHECK int shunt_http_parse_request(const char *buf, size_t len, size_t last_len,
                                              struct shunt_http_head *head,
                                              struct shunt_http_header *headers,
                                              size_t max_headers,
                                              const struct shunt_http_limits *lim,
                                              struct shunt_http_error *err);

/*
 * Parses a response head at the start of <buf>, with the same contract as
 * shunt_http_parse_request(). A response whose Transfer-Encoding does not end in chunked
 * is framed by close (RFC 9112 6.3 rule 4), not rejected, whatever its codings; TE with CL,
 * chunked with parameters and chunked twice are rejected, as in requests.
 */
SHUNT_MUST_CHECK int shunt_http_parse_response(const char *buf, size_t len, size_t last_len,
                                               struct shunt_http_head *head,
                                               struct shunt_http_header *headers,
                                               size_t max_headers,
                                               const struct shunt_http_limits *lim,
                                               struct shunt_http_error *err);

/* Returns the framing of the response <head> given the request method: none for a response
 * to HEAD, for 1xx, 204 and 304, and for a 2xx to CONNECT; otherwise head->framing. */
enum shunt_http_framing shunt_http_response_framing(const struct shunt_http_head *head,
                                                    int request_was_head,
                                                    int request_was_connect);

/* Returns 1 when the connection may carry another message after this one, by the
 * message's version and Connection tokens (RFC 9112 9.3): 1.1 unless "close"; 1.0 only
 * with "keep-alive". A body framed by close also ends the connection (caller's part). */
int shunt_http_keeps_alive(const struct shunt_http_head *head);

/* Called by shunt_http_list_each() for each element; a non-zero return stops the walk. */
typedef int (*shunt_http_list_cb)(void *ctx, struct shunt_slice elem);

/* Calls <fn> on each non-empty element of the comma-separated list <v> (RFC 9110 5.6.1),
 * trimmed of OWS. Commas inside quoted strings do not split. Stops at the first non-zero
 * return of <fn> and returns it; 0 after the last element. */
int shunt_http_list_each(struct shunt_slice v, shunt_http_list_cb fn, void *ctx);

/* Returns 1 when the comma-separated list <value> (RFC 9110 5.6.1: OWS around elements,
 * commas inside quoted strings do not split) has the element <token> (<len> bytes, ASCII
 * case ignored): "close" in a Connection field, say. */
int shunt_http_list_has(struct shunt_slice value, const char *token, size_t len);

/* Finds the first field named <name> (case-insensitive); NULL when absent. */
const struct shunt_http_header *shunt_http_find_header(const struct shunt_http_head *head,
                                                       const char *name, size_t name_len);

/* ---------------------------------------------------------------- body framing */

/* Called with decoded payload bytes (chunk data without the framing). <data> points into
 * the bytes given to shunt_http_body_scan() and is valid during the call only. */
typedef void (*shunt_http_data_cb)(void *ud, const char *data, size_t len);

/* The state of one body being framed. Plain data: init, then scan repeatedly. */
struct shunt_http_body {
    enum shunt_http_framing framing;
    uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in the current chunk */
    uint64_t payload;   /* decoded payload bytes seen so far */
    int done;           /* 1 once the message is complete */
    int hold_trailers;  /* set by the caller after init: a chunked scan stops in front of the
                           trailer section instead of passing over it, so that the section
                           can be read whole with shunt_http_body_trailers() */
    int at_trailers;    /* 1 while a scan (hold_trailers) waits in front of the trailers */
    int _state;         /* chunked decoder state; private */
    size_t _line;       /* bytes of the current size/trailer line or section; private */
    size_t _n_trailers; /* trailer fields so far; private */
    uint64_t _size;     /* chunk size being accumulated; private */
    struct shunt_http_limits _lim;
};

/* Prepares <body> for a message framed as <framing> (with <content_length> for LENGTH).
 * A LENGTH of 0 and NONE are done at once. <lim> bounds chunk lines and trailers. */
void shunt_http_body_init(struct shunt_http_body *body, enum shunt_http_framing framing,
                          uint64_t content_length, const struct shunt_http_limits *lim);

/*
 * Frames body bytes: looks at <buf>/<len>, the bytes that follow what was scanned before.
 * Returns the number of leading bytes that belong to this message (>=0; fewer than <len>
 * only when the message ended inside <buf>, body->done is then 1), or SHUNT_EPARSE with
 * <err> (offset relative to <buf>) when the chunked framing is invalid. Bytes are never
 * modified. Decoded payload is passed to <on_data> (may be NULL). For CLOSE framing every
 * byte belongs to the body; call shunt_http_body_eof() when the peer closes.
 * Correct when bytes arrive one at a time.
 */
SHUNT_MUST_CHECK long shunt_http_body_scan(struct shunt_http_body *body, const char *buf,
                                           size_t len, shunt_http_data_cb on_data, void *ud,
                                           struct shunt_http_error *err);

/*
 * Reads the trailer section (RFC 9112 7.1.2: field lines, then the empty line) that starts
 * at <buf> (<len> bytes) of a chunked <body> whose scan stopped in front of it (at_trailers,
 * see hold_trailers). The section must come whole: call again with the same start and more
 * bytes while this returns 0; each call reads from the start (the section is bounded by
 * max_head bytes and max_headers fields). Fills <fields> (<max_fields> entries) with slices
 * into <buf> and *<n_fields>. Returns the section's length, final CRLF included (>0; body
 * is then done), 0 when more bytes are needed, or SHUNT_EPARSE with <err> (BAD_TRAILER, the
 * offset relative to <buf>; <body> stays failed). The same sections are accepted as by a
 * scan that passes over them. Any thread.
 */
SHUNT_MUST_CHECK long shunt_http_body_trailers(struct shunt_http_body *body, const char *buf,
                                               size_t len, struct shunt_http_header *fields,
                                               size_t max_fields, size_t *n_fields,
                                               struct shunt_http_error *err);

/* Tells <body> that the peer closed. Returns 1 when that completes the message (CLOSE
 * framing, or already done), 0 when the message was cut short. */
int shunt_http_body_eof(struct shunt_http_body *body);

#endif
