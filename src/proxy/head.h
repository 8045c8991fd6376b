/* src/proxy/head.h - the heads a proxy sends: the request head that goes upstream and the
 * response head that goes to the client, each made by one builder from the head as it came
 * and a table of what a proxy drops, rewrites or adds (h2o's build_request and its token
 * flags). Fields nobody changes keep their wire bytes. The result is an edit (http/edit.h),
 * which the rules may edit further before its lines go out: with rules or without, the same
 * builder decides what the proxy itself changes. */
#ifndef SHUNT_PROXY_HEAD_H
#define SHUNT_PROXY_HEAD_H

#include <stddef.h>

#include "core/arena.h"
#include "core/slice.h"
#include "http/edit.h"
#include "http/parser.h"

/* Tells of one change the builder made: <what> it did, and <by> whom it is recorded as made
 * ("proxy": routine; "shunt": a fix of an ambiguous message, docs/framing.md; or the option
 * that asked for it). <what> is valid for the call. */
typedef void (*shunt_head_note_cb)(void *ud, const char *what, const char *by);

/* What the builder does to one head besides what the table says. */
struct shunt_head_plan {
    /* request */
    struct shunt_slice path;  /* origin-form path to send (a forward proxy's absolute-form
                                 target); base NULL: the request line goes as it came */
    int path_needs_slash;     /* "http://h?q": the path is "/" + <path> */
    struct shunt_slice host;  /* the Host the origin must see; base NULL: the client's */
    const char *host_by;      /* who wants that Host: "proxy" or "--reverse-host" */
    /* both */
    int via;                  /* add "Via: 1.1 shunt" (--via) */
    /* response */
    int proxy_support;        /* add "Proxy-Support: Session-Based-Authentication" */
};

/* ------------------------------------------------------------------ start lines */

/* Returns the request line of <h> (whose head starts at <raw>) as it goes upstream: in
 * origin-form when <plan> has a path, written in <a>; else the bytes as they came. */
struct shunt_slice shunt_head_request_line(const struct shunt_http_head *h, const char *raw,
                                           const struct shunt_head_plan *plan,
                                           struct shunt_arena *a, shunt_head_note_cb note,
                                           void *ud);

/* Returns the status line of the response <h> (at <raw>) as it goes to the client: as it
 * came, or, for "HTTP/1.1 200" without the SP before its empty reason, with it (RFC 9112 4),
 * written in <a>. <note> may be NULL (a head already recorded). */
struct shunt_slice shunt_head_status_line(const struct shunt_http_head *h, const char *raw,
                                          struct shunt_arena *a, shunt_head_note_cb note,
                                          void *ud);

/* ------------------------------------------------------------------ fields */

/* Builds in <e> (on the caller's <fields>, <cap> entries: at least h->n_headers + 3) the
 * fields of the request <h> as they go upstream: the table applied (Proxy-Connection and
 * Proxy-Authorization dropped, a repeated Content-Length made one, Host set to
 * plan->host), then Host added when the head had none and plan->host is set, then Via.
 * Lines the builder writes live in <a>; dispose of <e> with shunt_edit_dispose() all the
 * same (the rules' lines live in its store). <note> may be NULL. */
void shunt_head_request_fields(const struct shunt_http_head *h,
                               const struct shunt_head_plan *plan, struct shunt_arena *a,
                               struct shunt_head_edit *e, struct shunt_edit_field *fields,
                               size_t cap, shunt_head_note_cb note, void *ud);

/* The same for the response <h> going to the client: a repeated Content-Length made one,
 * then Proxy-Support and Via as <plan> says. */
void shunt_head_response_fields(const struct shunt_http_head *h,
                                const struct shunt_head_plan *plan, struct shunt_arena *a,
                                struct shunt_head_edit *e, struct shunt_edit_field *fields,
                                size_t cap, shunt_head_note_cb note, void *ud);

/* Appends the lines of <e> that are not removed to <out> from index <n> (room for e->n
 * more), a run of lines adjacent in memory as one slice. Returns the new count. */
size_t shunt_head_lines(const struct shunt_head_edit *e, struct shunt_slice *out, size_t n);

/* ------------------------------------------------------------------ what heads say */

/* Returns 1 for a field that must not be forwarded in a trailer section (RFC 9110 6.5.1,
 * 6.5.2): the trailer part of the table. */
int shunt_head_trailer_forbidden(struct shunt_slice name);

/* Returns 1 when the response <h> challenges with a connection-bound scheme (NTLM,
 * Negotiate) and does not say Proxy-Support already: what a pairing proxy answers with
 * Proxy-Support. */
int shunt_head_has_session_auth_challenge(const struct shunt_http_head *h);

/* Returns 1 when the edited head has a Connection field with the token "close". */
int shunt_head_says_close(const struct shunt_head_edit *e);

#endif
