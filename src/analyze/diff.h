/* src/analyze/diff.h - `shunt diff A B`: two captures (or HARs) compared, exchanges aligned by
 * method and URL with ids folded, and the differences in headers ranked by how well they go
 * with the client closing its connections (docs/diff.md). Pure: two models in, a result out;
 * the printers write it as text or JSON. */
#ifndef SHUNT_ANALYZE_DIFF_H
#define SHUNT_ANALYZE_DIFF_H

#include <stddef.h>
#include <stdio.h>

#include "analyze/model.h"
#include "core/errors.h"

/* A presence rate must differ by this much (or the field be on one side only) to count. */
#define SHUNT_DIFF_MIN_RATE 0.1
/* A status's share of the exchanges must differ by this much (or be on one side only). */
#define SHUNT_DIFF_MIN_STATUS 0.05
/* Distinct values of a field kept per comparison; beyond, its values are "various". */
#define SHUNT_DIFF_MAX_VALUES 64
/* Bytes of a folded request target kept in an alignment key. */
#define SHUNT_DIFF_MAX_KEY 512
/* A difference is ranked only when its score rests on at least this many early closes and
 * this many comparable kept responses, and it explains at least this many of the closes;
 * below, the traces are too small to tell it from chance (docs/diff.md). */
#define SHUNT_DIFF_MIN_EVIDENCE 3
/* Standard errors taken off a score for how few exchanges it rests on: the ranking uses the
 * lower end of a Wilson interval of this width around each share (docs/diff.md). */
#define SHUNT_DIFF_Z 1.0

/* One side's connection behaviour. Connections without an exchange are left out. */
struct shunt_diff_side {
    size_t n_conns;        /* connections with at least one exchange */
    size_t n_ex;           /* their exchanges */
    size_t n_responses;    /* exchanges that got a response (status != 0) */
    size_t client_fin;     /* connections the client closed with a FIN */
    size_t client_rst;     /* ... with a reset (or another way) */
    size_t server;         /* connections the server closed */
    size_t proxy;          /* connections the proxy closed (errors, shutdown) */
    size_t unknown;        /* closer unknown: still open, or a HAR that does not say */
    size_t early;          /* closed by the client right after a response that did not end the
                              connection, and followed by a new connection to the same origin
                              (the closes diff explains); with the closer unknown, a response
                              that did not end it and a successor stand in for the client's close */
    size_t handshakes;     /* NTLM and Negotiate handshakes (shunt_model_conn.n_handshakes) */
    double reqs_per_conn;  /* n_ex / n_conns; 0 without connections */
    double hs_per_req;     /* handshakes / n_ex; 0 without exchanges */
};

/* Which head a field was read from. */
enum shunt_diff_part {
    SHUNT_DIFF_RESPONSE = 0, /* the response as the client got it */
    SHUNT_DIFF_REQUEST,      /* the request as the client sent it */
};

/* What differs about a field. */
enum shunt_diff_change {
    SHUNT_DIFF_PRESENCE = 0, /* how often it is there; the feature is its absence */
    SHUNT_DIFF_VALUE,        /* there on both sides, a value on one side only; the feature is
                                that value */
};

/* One ranked difference in a field. The "feature" of a message is the field's absence
 * (PRESENCE) or the field equal to <value> (VALUE). */
struct shunt_diff_header {
    enum shunt_diff_part part;
    enum shunt_diff_change change;
    char *name;             /* as first seen */
    char *value;            /* VALUE: the value on one side only that goes best with the
                               closes (or the most common one); NULL for PRESENCE */
    double rate_a, rate_b;  /* share of A's (B's) messages with the field (PRESENCE) or with
                               it equal to <value> (VALUE), 0..1 */
    char *common_a;         /* VALUE: the most common value on A; NULL for PRESENCE */
    char *common_b;         /* ... on B */
    size_t closed;          /* responses after which the client closed early, both sides */
    size_t closed_with;     /* ... that have the feature */
    size_t kept;            /* comparable responses after which it kept the connection */
    size_t kept_with;       /* ... that have the feature */
    double score;           /* |closed_with/closed - kept_with/kept|, 0..1; 0 when nothing
                               closed early (docs/diff.md) */
    int with_closes;        /* 1 when the feature goes with the closes, 0 when its opposite
                               does (or score is 0) */
    size_t explains;        /* early closes with the feature (or its opposite, whichever goes
                               with the closes): the evidence for it */
    double bound;           /* the score less what so few exchanges leave unsure: the sensitivity's
                               Wilson lower bound less the kept share's upper one (SHUNT_DIFF_Z),
                               0..1; ranked differences are ordered by it */
    int ranked;             /* rests on enough exchanges to be ranked (SHUNT_DIFF_MIN_EVIDENCE) */
};

/* How many exchanges of each side got one final status (0: no response). */
struct shunt_diff_status {
    int status;
    size_t n_a, n_b;
    int differs; /* on one side only, or shares differ by SHUNT_DIFF_MIN_STATUS or more */
};

/* A kind of request (an alignment key) seen on one side only. */
struct shunt_diff_only {
    char *key; /* "GET /item/{id}", with the origin when keys include it */
    size_t n;  /* exchanges */
};

/* Up to this many values of a field are reported per side. */
#define SHUNT_DIFF_TOP_VALUES 3

/* Every field seen, with its presence and values on each side (the --json "fields"). */
struct shunt_diff_field {
    enum shunt_diff_part part;
    char *name;
    size_t present[2];                        /* messages of A [0] and B [1] with it */
    size_t of[2];                             /* messages of A and B (responses or requests) */
    int values_compared;                      /* 0: a field whose values change by nature
                                                 (Date, tokens, ids) or vary too much */
    char *top[2][SHUNT_DIFF_TOP_VALUES];      /* most common values per side (when compared),
                                                 NULL-padded; owned by the field */
    size_t top_n[2][SHUNT_DIFF_TOP_VALUES];   /* their counts */
    size_t n_values[2];                       /* distinct values per side (at most the cap) */
};

/* The whole comparison. Zero it before shunt_diff_run(); dispose it with shunt_diff_dispose(). */
struct shunt_diff {
    struct shunt_diff_side a, b;
    int conns_differ;              /* connection behaviour differs (docs/diff.md: thresholds) */
    size_t n_closed, n_kept;       /* early closes, and comparable kept responses, that every
                                      score rests on (both traces together) */
    size_t closed_of[2], kept_of[2]; /* the same, of A [0] and of B [1] */
    int too_small;                 /* there are closes, but too few of them or of kept responses
                                      to rank any difference (SHUNT_DIFF_MIN_EVIDENCE) */
    int by_origin;                 /* keys include host and port (the traces share an origin) */
    size_t n_keys_shared;          /* alignment keys seen on both sides */
    struct shunt_diff_header *h;   /* ranked ones first, best explanation first; then those too
                                      thinly supported to rank, by score */
    size_t n_h;
    struct shunt_diff_status *st;  /* every status seen, in order */
    size_t n_st;
    struct shunt_diff_only *only_a, *only_b; /* sorted by key */
    size_t n_only_a, n_only_b;
    struct shunt_diff_field *fields; /* responses' then requests', by name */
    size_t n_fields;
};

/* Names the inputs of a run, for the printers. */
struct shunt_diff_info {
    const char *path_a, *path_b;
    int har_a, har_b; /* 1 when that side was a HAR */
};

/* ---------------------------------------------------------------- comparing */

/*
 * Folds the request target <target> (<len> bytes, origin-form or absolute-form) for
 * alignment into <out> (<cap> bytes, NUL-terminated, cut to fit): the scheme and authority
 * of an absolute URL and any fragment are dropped; each path segment, and each query value,
 * that is a number, a UUID, a run of 8 or more hex digits with a digit in it, or a token of
 * 16 or more letters, digits, '-' and '_' with a digit in it becomes "{id}" (a trailing
 * ".ext" of 1 to 5 letters is kept). Returns the length written. Pure.
 */
size_t shunt_diff_fold_target(const char *target, size_t len, char *out, size_t cap);

/*
 * Compares <a> and <b> into <out> (zeroed by the caller): connection behaviour, every field
 * of the requests and responses, statuses and alignment. Returns 0 or SHUNT_ENOMEM (then
 * <out> holds what was done; dispose it). Pure.
 */
SHUNT_MUST_CHECK int shunt_diff_run(const struct shunt_model *a, const struct shunt_model *b,
                                    struct shunt_diff *out);

/* Frees what <d> holds and zeroes it; a zeroed <d> is fine. */
void shunt_diff_dispose(struct shunt_diff *d);

/* True when <d> found any difference (the exit status is 1 then). Pure. */
int shunt_diff_any(const struct shunt_diff *d);

/* ---------------------------------------------------------------- printing */

/* Writes the comparison as text, lines at most <width> columns but for the file names. */
void shunt_diff_print(FILE *f, const struct shunt_diff *d, const struct shunt_diff_info *info,
                      int width);

/* Writes the comparison as one JSON object (docs/diff.md). Returns 0 or SHUNT_ENOMEM. */
SHUNT_MUST_CHECK int shunt_diff_print_json(FILE *f, const struct shunt_diff *d,
                                           const struct shunt_diff_info *info);

#endif
