/* src/capture/view.h - the capture views (`shunt sessions`, `show`, `connections`): reading a
 * capture file page by page, and the pure formatting helpers they share (flags, durations,
 * local times, the head diff, body previews as text or hex). */
#ifndef SHUNT_CAPTURE_VIEW_H
#define SHUNT_CAPTURE_VIEW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture/filter.h"
#include "core/errors.h"

/* The file a view reads when none is named. */
#define SHUNT_VIEW_DEFAULT_FILE "shunt.db"
/* Body bytes `show` previews before saying how many more there are. */
#define SHUNT_VIEW_PREVIEW_BYTES 2048

/* Which options a view accepts (shunt_view_args). */
#define SHUNT_VIEW_ACCEPT_FILTER 1u /* --host, --status, --conn */
#define SHUNT_VIEW_ACCEPT_PAGE 2u   /* --limit, --offset */
#define SHUNT_VIEW_ACCEPT_ID 4u     /* a positional exchange ID after the optional FILE */
#define SHUNT_VIEW_ACCEPT_EXPR 8u   /* a positional FILTER expression after the optional FILE */

/* What a view was asked for. Plain data, filled by shunt_view_args(). */
struct shunt_view_opts {
    const char *path;                    /* capture file; SHUNT_VIEW_DEFAULT_FILE if none given */
    int path_given;                      /* 1 when the command line named the file */
    struct shunt_capture_filter filter;  /* exchanges to take; zero: all (filter.expr is expr) */
    struct shunt_expr *expr;             /* the FILTER expression compiled, or NULL; owned */
    int64_t limit;                       /* rows at most; -1: no limit */
    int64_t offset;                      /* rows skipped first, >= 0 */
    int64_t id;                          /* `show`: the exchange id, > 0 */
    int json;                            /* --json: one JSON object on stdout */
};

/* ---------------------------------------------------------------- the views */

/*
 * Reads the command line of a view (argv[0] is the command name) into <o>, accepting the
 * options of <accept> (SHUNT_VIEW_ACCEPT_*) besides [FILE], --json and --help.
 * With SHUNT_VIEW_ACCEPT_EXPR the positionals are [FILE] [FILTER]: two are FILE then FILTER;
 * one alone is the FILTER when no such file exists and it reads as an expression (starts
 * with ~, !, ( or a quote, or holds whitespace), else the FILE. The FILTER is compiled into
 * o->expr; a syntax error is "filter: column N: message".
 * Returns 0, 1 when --help was asked for (nothing else is read), or SHUNT_EINVAL (or
 * SHUNT_ENOMEM) with a one-line reason in <err>. In every case <o> is then released with
 * shunt_view_opts_dispose().
 */
SHUNT_MUST_CHECK int shunt_view_args(struct shunt_view_opts *o, int argc, char **argv,
                                     unsigned accept, char *err, size_t err_len);

/* Frees what shunt_view_args() put in <o> (the compiled expression). */
void shunt_view_opts_dispose(struct shunt_view_opts *o);

/*
 * Prints one view of the capture <o->path> on stdout (through a pager when stdout is a
 * terminal and the view is taller than it), after warning on stderr when the capture is
 * incomplete. Each reads one snapshot of the file, so a capture being written is fine.
 * Returns 0; SHUNT_EINVAL when the input is wrong (no such file, not a capture, no such
 * exchange), SHUNT_EPARSE when SQLite fails on the file, SHUNT_ENOMEM: each with a one-line
 * reason in <err>. Main thread.
 */
SHUNT_MUST_CHECK int shunt_view_sessions(const struct shunt_view_opts *o, char *err,
                                         size_t err_len);
SHUNT_MUST_CHECK int shunt_view_show(const struct shunt_view_opts *o, char *err, size_t err_len);
SHUNT_MUST_CHECK int shunt_view_connections(const struct shunt_view_opts *o, char *err,
                                            size_t err_len);

/* A view command whole: reads the options <accept>s, prints <help> for --help, runs <view>,
 * and turns an error into one line "shunt CMD: reason" on stderr. Returns the exit status:
 * 0, 1 out of memory, 2 bad input. */
int shunt_view_main(const char *cmd, const char *help, unsigned accept,
                    int (*view)(const struct shunt_view_opts *o, char *err, size_t err_len),
                    int argc, char **argv);

/* ---------------------------------------------------------------- formatting helpers */

/* Bytes shunt_view_flags() writes at most, the NUL included. */
#define SHUNT_VIEW_FLAGS_LEN 8

/*
 * Writes into <buf> (SHUNT_VIEW_FLAGS_LEN bytes) the flag letters of an exchange from its
 * exchanges.flags <flags> (SHUNT_CAPTURE_FLAG_*), in this order: C changed by a rule, a
 * user's option or a repair of shunt's (flag 1), or else r forwarded with only the routine
 * forward-proxy rewrites (flag 32); E error (flag 2, or <error>); T a body truncated by the
 * capture (flag 4, or <truncated>); U became a tunnel (8); S answered by shunt, no server
 * response reached the client (64); P pending, no response yet (16). "-" when none.
 * Returns <buf>.
 */
char *shunt_view_flags(int64_t flags, int error, int truncated, char *buf);

/* Writes into <buf> the host of an exchange as the views show it: <host> (<host_len> bytes),
 * then ":port" when its URL <url> names a port other than its scheme's default (always for
 * a CONNECT target, "host:port"), so that two origins on one host read apart. "-" when
 * there is no host. Returns <buf>. */
char *shunt_view_host(const char *host, size_t host_len, const char *url, size_t url_len,
                      char *buf, size_t len);

/* Writes <us> microseconds as milliseconds with <decimals> decimals into <buf>; "-" when <us>
 * is negative (HAR's "does not apply"). Returns <buf>. */
char *shunt_view_ms(int64_t us, int decimals, char *buf, size_t len);

/* Writes a lifetime of <us> microseconds: "850.2ms", "12.35s", "3m05s", "2h07m"; "-" when
 * negative. Returns <buf>. */
char *shunt_view_lifetime(int64_t us, char *buf, size_t len);

/* Writes the wall-clock time <us> (microseconds since the epoch) in local time as
 * "HH:MM:SS.mmm", or with <date> as "YYYY-MM-DD HH:MM:SS.mmm". Returns <buf>. */
char *shunt_view_clock(int64_t us, int date, char *buf, size_t len);

/*
 * Copies <s> (<s_len> bytes, untrusted) into the <len> bytes of <buf>, NUL-terminated, so
 * that it cannot drive a terminal: C0 controls, DEL, C1 controls (U+0080 to U+009F) and
 * bytes that are not UTF-8 become \xNN, valid UTF-8 text stays. Cut at a character when
 * <buf> is short (4 * <s_len> + 1 bytes hold all). Returns the bytes written, NUL aside.
 * Every text from a capture shown on a terminal goes through this or shunt_view_fit().
 */
/* <s> (<s_len> bytes, untrusted) as a JSON string: its bytes that are not UTF-8 (and NUL)
 * become U+FFFD so that the output stays valid JSON (NUL too, when
 * there is such a byte). NULL when out of memory. */
json_t *shunt_view_json_text(const char *s, size_t s_len);

size_t shunt_view_escape(const char *s, size_t s_len, char *buf, size_t len);

/*
 * Copies <s> (<s_len> bytes of UTF-8 text) into <buf> for a table cell at most <width>
 * characters wide, escaped as shunt_view_escape() does, and a longer text is cut with "..." at
 * the end. Returns the width written, in characters (a UTF-8 sequence counts one).
 * <buf> must hold 4 * <width> + 4 bytes.
 */
size_t shunt_view_fit(const char *s, size_t s_len, size_t width, char *buf, size_t len);

/* True when the <len> bytes at <p> read as text: UTF-8 without control characters other
 * than tab, CR and LF. With <cut>, the bytes are a prefix of something longer, so a UTF-8
 * sequence cut at the very end is allowed. */
int shunt_view_is_text(const unsigned char *p, size_t len, int cut);

/* Writes the text <p> (shunt_view_is_text) line by line, each line after <indent>. */
void shunt_view_print_text(FILE *out, const unsigned char *p, size_t len, const char *indent);

/* Writes a hex dump of <p>, 16 bytes a line after <indent>: offset, hex in two groups of
 * eight, then the printable ASCII between bars (hexdump -C's layout). */
void shunt_view_hexdump(FILE *out, const unsigned char *p, size_t len, const char *indent);

/*
 * Writes a head line by line, marking how <b> differs from <a>: unchanged lines after two
 * spaces, lines of <a> missing from <b> after "- ", lines of <b> missing from <a> after
 * "+ " (a line diff over the longest common subsequence). <b> NULL prints <a> unchanged.
 * Lines are compared with their endings; a line ending in a bare LF is shown with "\n" at
 * its end, bytes outside printable ASCII as \xNN; the empty line that ends a head is not
 * shown. Returns the number of lines marked (>= 0), or SHUNT_ENOMEM.
 */
SHUNT_MUST_CHECK int shunt_view_head_diff(FILE *out, const char *a, size_t a_len, const char *b,
                                          size_t b_len);

#endif
