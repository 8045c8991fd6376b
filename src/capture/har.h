/* src/capture/har.h - HAR 1.2 export of a capture, and import of a HAR (Chrome, Firefox,
 * Fiddler, mitmproxy, shunt) into a new capture, with the connections the HAR lets us infer.
 * docs/har.md says what each producer writes and every rule used here. */
#ifndef SHUNT_CAPTURE_HAR_H
#define SHUNT_CAPTURE_HAR_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture/filter.h"
#include "core/errors.h"
#include "core/slice.h"

/* A HAR whose input is larger than this is refused (bytes): jansson's offsets are ints, and a
 * file the scanner leaves to jansson's tree of the whole document takes ten times its size. */
#define SHUNT_HAR_MAX_INPUT ((size_t)1 << 31)
/* The timing inference looks back at most this many earlier entries to the same origin for
 * an idle connection (bounds the work on a hostile file). */
#define SHUNT_HAR_LOOKBACK 256

/* Who wrote a HAR, from log.creator.name: it decides what `connection` means. */
enum shunt_har_producer {
    SHUNT_HAR_OTHER,     /* anyone else: `connection` judged by its values */
    SHUNT_HAR_SHUNT,     /* shunt: `_shunt` carries the capture's own ids */
    SHUNT_HAR_CHROME,    /* "WebInspector" (Chrome, Edge, Opera DevTools) */
    SHUNT_HAR_FIREFOX,   /* "Firefox": `connection` is the server port */
    SHUNT_HAR_FIDDLER,   /* "Fiddler": `connection` is the client port */
    SHUNT_HAR_MITMPROXY, /* "mitmproxy ..." : no connection field */
};

/* What an entry tells about its connection, for shunt_har_infer_connections(). Plain data:
 * the caller fills the inputs, the function the outputs. */
struct shunt_har_conn_hint {
    /* in */
    int64_t start_us;   /* startedDateTime, wall-clock microseconds */
    int64_t end_us;     /* start_us + time */
    int opens;          /* 1: the entry opened its connection (timings.connect says so),
                           0: it reused one, -1: unknown */
    const char *key;    /* NUL-terminated identifier of the connection as the producer wrote it
                           (prefixed by its field so that key spaces never mix), or NULL when
                           the entry names none: then timings decide */
    const char *origin; /* NUL-terminated "scheme://host:port" the request went to */
    int multiplexed;    /* 1 for HTTP/2 and HTTP/3: a busy connection may take it */
    int key_may_repeat; /* 1 when <key> is a number that may name a later connection once this
                           one closed (a client port), 0 when it names one connection for the
                           whole file (a socket id, shunt's connection id) */
    int closes;         /* 1 when the entry's messages end its connection: Connection: close
                           in either, HTTP/1.0 without keep-alive, a response body delimited
                           by the close (RFC 9112 9.6, 9.3, 6.3) */
    int connects;       /* 1 when the timings measured a connect (> 0 ms) for this entry on the
                           connection <key> names; 0 when they did not, or describe another
                           connection (Fiddler's are about its own connection to the server) */
    /* out */
    size_t conn;        /* 1, 2, ...: the inferred connection, numbered by first use */
    size_t idx;         /* 1, 2, ...: the entry's place on that connection */
    int reused;         /* 1 when the connection carried something before this entry (or the
                           HAR says reused though its opening is not in the file) */
};

/*
 * Infers connections for <n> entries <h>, which must be sorted by start_us (stable).
 * Keyed entries: the first use of a key opens a connection; a later entry with the same key
 * joins it unless the key may repeat and that connection provably ended before the entry
 * started: the entry starts at or after the end of the connection's last entry, and an entry
 * on it closed it (closes) or this one connected anew on it (connects). Then it is a new
 * connection (a port given out again).
 * Unkeyed entries: opens != 0 opens a new connection; opens == 0 joins the connection of the
 * latest earlier unkeyed entry to the same origin whose connection is idle at this start
 * (its last entry ended; any, when multiplexed), looking back SHUNT_HAR_LOOKBACK entries,
 * else a new connection (reused, opened before the HAR began).
 * Returns the number of connections, or SHUNT_ENOMEM. Pure; any thread.
 */
SHUNT_MUST_CHECK long shunt_har_infer_connections(struct shunt_har_conn_hint *h, size_t n);

/* Returns the producer named by log.creator.name <name> (NULL gives SHUNT_HAR_OTHER). */
enum shunt_har_producer shunt_har_producer_of(const char *name);
/* Returns the static name of <p> ("chrome", "fiddler", ...). */
const char *shunt_har_producer_name(enum shunt_har_producer p);

/* Parses an ISO 8601 date-time as HAR writes it ("2024-05-01T10:00:00.123+02:00", "...Z";
 * any number of fraction digits, offsets +hh:mm, +hhmm or +hh; no offset means UTC) from
 * the <len> bytes at <s> into microseconds since the epoch. Returns 0, or -1 when malformed. */
SHUNT_MUST_CHECK int shunt_har_parse_time(const char *s, size_t len, int64_t *us);
/* Writes <us> as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, milliseconds) into <buf> (>= 32 bytes). */
void shunt_har_format_time(int64_t us, char *buf, size_t len);

/* Walks a raw head (start line, field lines, empty line) leniently: lines end in CRLF or LF,
 * a line without a colon is a field with an empty value. shunt_har_head_start() returns the
 * start line and sets *<pos> after it; shunt_har_head_next() then returns 1 with the next
 * field's <name> and <value> (optional whitespace trimmed), or 0 at the empty line or the end.
 * Slices point into <head>. Pure. */
struct shunt_slice shunt_har_head_start(const char *head, size_t len, size_t *pos);
int shunt_har_head_next(const char *head, size_t len, size_t *pos, struct shunt_slice *name,
                        struct shunt_slice *value);

/* ---------------------------------------------------------------- export */

/* What an export is asked for. */
struct shunt_har_export_opts {
    const char *version; /* shunt's version, for log.creator */
    int redact;          /* 1: credentials replaced by markers (shunt_har_redact_head()) */
};

/* The marker a redacted credential starts with: "<redacted>" or "<redacted: WHAT>". */
#define SHUNT_HAR_REDACTED "<redacted"

/*
 * Returns a new copy of the head (or heads: 1xx heads concatenated) <p>/<len> with its
 * credentials replaced by markers that keep what the analysis reads: Authorization and
 * Proxy-Authorization keep their scheme and, for NTLM and Negotiate, the leg
 * ("NTLM <redacted: type 1 NEGOTIATE>", "Negotiate <redacted: NegTokenInit (Kerberos
 * AP-REQ)>", "Basic <redacted>"); WWW-Authenticate and Proxy-Authenticate lose the NTLM or
 * Negotiate token they carry, nothing else; Cookie keeps the names ("a=<redacted>;
 * b=<redacted>") and Set-Cookie its name and attributes. Everything else is copied byte for
 * byte. Sets *<out_len>; free() the result; NULL when out of memory. Pure.
 */
char *shunt_har_redact_head(const char *p, size_t len, size_t *out_len);

/* What an export found out, for the caller to report. */
struct shunt_har_export_info {
    uint64_t n_entries;     /* entries written */
    int64_t events_dropped; /* capture.events_dropped: > 0 means the capture is incomplete */
};

/*
 * Writes the exchanges of the capture <db> that <f> selects (NULL: all) as a HAR 1.2 document
 * to <out>, as <o> asks (with o->redact every head, as sent and as received, goes through
 * shunt_har_redact_head(), and log.comment and log._shunt.redacted say so). Entries are
 * streamed in start order, so memory does not grow with the capture. Returns 0, or a negative
 * code with a one-line reason in <err> (without the file name). The caller's thread.
 */
SHUNT_MUST_CHECK int shunt_har_export(sqlite3 *db, const struct shunt_capture_filter *f,
                                      const struct shunt_har_export_opts *o, FILE *out,
                                      struct shunt_har_export_info *info, char *err,
                                      size_t err_len);

/*
 * Exports as shunt_har_export() into the file <path>: written to a temporary file beside it
 * (mode 0600: captures hold credentials), flushed to disk and renamed over <path>, so that a
 * reader never sees half a HAR and a failure leaves nothing. "-" writes to stdout.
 * Returns 0, or a negative code with a one-line reason naming the file in <err>.
 */
SHUNT_MUST_CHECK int shunt_har_export_file(sqlite3 *db, const struct shunt_capture_filter *f,
                                           const struct shunt_har_export_opts *o,
                                           const char *path,
                                           struct shunt_har_export_info *info, char *err,
                                           size_t err_len);

/* ---------------------------------------------------------------- import */

/* The capture row's facts that come from the importing command. */
struct shunt_har_import_opts {
    const char *shunt_version; /* capture.shunt_version */
    const char *command_line;  /* capture.command_line, as typed */
};

/* What an import did. */
struct shunt_har_import_info {
    enum shunt_har_producer producer;
    size_t n_entries;     /* exchanges written */
    size_t n_connections; /* connection rows written: those inferred, or for shunt's own HAR
                             those it carries */
};

/*
 * Parses the HAR in the <len> bytes at <buf> and writes it into <db>, an empty capture with
 * the schema (a file from shunt_capture_create(), or ":memory:" with the schema executed), in
 * one transaction. The entries are parsed one at a time, twice (to order them and infer the
 * connections, then to write them), so that memory holds <buf>, one entry's tree and a few
 * hundred bytes per entry; a document the scanner does not follow is parsed whole, as jansson's
 * tree (ten times <len>), with the same result. Returns 0, or a negative code with a one-line
 * reason in <err> that says where (JSON line and column, or "log.entries[N]") and what; then
 * nothing was written. The caller's thread.
 */
SHUNT_MUST_CHECK int shunt_har_import_buf(sqlite3 *db, const char *buf, size_t len,
                                          const struct shunt_har_import_opts *o,
                                          struct shunt_har_import_info *info, char *err,
                                          size_t err_len);

/*
 * Imports the HAR file <in> into the new capture file <out> (which must not exist), as
 * shunt_har_import_buf() from a read-only mapping of <in> whose pages are let go as they are
 * read: the file is never resident whole (<in> must not shrink meanwhile). On any failure
 * <out> is removed. Returns 0, or a negative code with a one-line reason naming the file in
 * <err>.
 */
SHUNT_MUST_CHECK int shunt_har_import_file(const char *in, const char *out,
                                           const struct shunt_har_import_opts *o,
                                           struct shunt_har_import_info *info, char *err,
                                           size_t err_len);

#endif
