/* src/rules/rules.h - the rules a proxy applies to heads on their way out: quick header
 * rules from the command line (--modify-headers, --add-header), each with a filter. */
#ifndef SHUNT_RULES_RULES_H
#define SHUNT_RULES_RULES_H

#include <stddef.h>

#include "core/errors.h"
#include "http/edit.h"
#include "proxy/proxy.h"
#include "rules/expr.h"

struct shunt_rules;

enum shunt_quick_kind {
    SHUNT_QUICK_MODIFY, /* --modify-headers: set NAME to VALUE (replacing), empty VALUE removes */
    SHUNT_QUICK_ADD,    /* --add-header: append NAME: VALUE */
};

/* Returns a new, empty rule set. Free with shunt_rules_free(). */
struct shunt_rules *shunt_rules_new(void);
void shunt_rules_free(struct shunt_rules *r);

/* Returns 1 when <r> has no rule (the proxy then skips rules entirely). */
int shunt_rules_empty(const struct shunt_rules *r);

/*
 * Adds a quick rule written as mitmproxy writes it: "[/FILTER]/NAME/VALUE", the first
 * character being the separator ("/~s/Server/Microsoft-IIS/6.0", "|~q|X-A|1", "/X-A/1").
 * Without a filter the rule applies to requests and responses. Returns 0, or SHUNT_EINVAL
 * with a one-line reason in <err> (a bad filter names its column). Before the proxy runs.
 */
SHUNT_MUST_CHECK int shunt_rules_add_quick(struct shunt_rules *r, enum shunt_quick_kind kind,
                                           const char *spec, char *err, size_t err_len);

/*
 * Adds a canned response, Fiddler's AutoResponder: "[/FILTER]/STATUS/FILE" (mitmproxy-style
 * separators): requests matching FILTER get STATUS with FILE's bytes as the body, without
 * reaching a server. The file is read now (at most 16 MiB). Returns 0, or SHUNT_EINVAL with
 * a one-line reason in <err>.
 */
SHUNT_MUST_CHECK int shunt_rules_add_respond(struct shunt_rules *r, const char *spec, char *err,
                                             size_t err_len);

/*
 * Adds a URL mapping as mitmproxy's map_remote: "[/FILTER]/REGEX/REPLACEMENT": the first
 * matching request's URL (absolute: http://host:port/path) has REGEX replaced by REPLACEMENT
 * (\1 for a group, as in Python) and goes there instead; the result must be an http:// URL.
 * Returns 0, or SHUNT_EINVAL with a one-line reason in <err>.
 */
SHUNT_MUST_CHECK int shunt_rules_add_map_remote(struct shunt_rules *r, const char *spec,
                                                char *err, size_t err_len);

/*
 * Adds a local mapping as mitmproxy's map_local: "[/FILTER]/REGEX/PATH": requests matching
 * FILTER whose URL REGEX matches are answered from PATH without a server: a file is served
 * whole; in a folder, the part of the URL after the match (or REGEX's first group) names
 * the file (query dropped, %XX decoded, index.html for a folder or nothing), and no name
 * may leave the folder. No such file: 404. Files are read when requested (at most 16 MiB).
 * Returns 0, or SHUNT_EINVAL with a one-line reason in <err> (PATH must exist now).
 */
SHUNT_MUST_CHECK int shunt_rules_add_map_local(struct shunt_rules *r, const char *spec,
                                               char *err, size_t err_len);

/* Returns 1 when <r> has canned responses or URL mappings (the proxy then calls
 * shunt_rules_request_hook). */
int shunt_rules_responds(const struct shunt_rules *r);

/* The proxy's request hook (shunt_request_hook_cb) for a rule set: pass <r> as its <ud>. */
void shunt_rules_request_hook(void *ud, const struct shunt_head_ctx *ctx,
                              struct shunt_request_verdict *out);

/* Called for each change a rule makes: <what> ("set Server: Microsoft-IIS/6.0"), <by>
 * ("--modify-headers #1"). Both valid during the call. */
typedef void (*shunt_rules_change_cb)(void *ud, const char *what, const char *by);

/*
 * Applies the rules, in the order they were given, to the head in <edit> (a request when
 * <subject>->has_response is 0, a response otherwise), each rule whose filter matches
 * <subject>. Reports every change to <cb>. Any worker thread; no allocation unless a rule
 * changes something.
 */
void shunt_rules_apply(const struct shunt_rules *r, struct shunt_head_edit *edit,
                       const struct shunt_expr_subject *subject, shunt_rules_change_cb cb,
                       void *ud);

/* The proxy's head hook (shunt_head_hook_cb) for a rule set: pass <r> as its <ud>. */
void shunt_rules_head_hook(void *ud, struct shunt_head_edit *edit,
                           const struct shunt_head_ctx *ctx, shunt_head_change_cb change,
                           void *cctx);

#endif
