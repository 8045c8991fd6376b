/* src/rules/lua.h - rules written in Lua (--rules FILE.lua), shaped like FiddlerScript:
 * option(name, default), on_connect(conn), on_request(s), on_response(s), on_close(conn),
 * s.request/s.response/s.conn, s:flag(text), s:respond(status, headers, body), s:delay(ms),
 * log(...). One Lua state per worker, sandboxed unless --unsafe-lua; a rule
 * that raises or runs away leaves the exchange unchanged; reload keeps the old rules when
 * the new file does not load. docs/lua.md has the rule writer's side. */
#ifndef SHUNT_RULES_LUA_H
#define SHUNT_RULES_LUA_H

#include <stddef.h>

#include "core/errors.h"
#include "http/edit.h"
#include "proxy/proxy.h"

/* Instructions one hook call may run before it is stopped (the file's top level gets ten
 * times as many). */
#define SHUNT_LUA_MAX_INSTRUCTIONS 1000000
/* Memory one Lua state may hold. */
#define SHUNT_LUA_MAX_MEMORY (64u * 1024 * 1024)

struct shunt_lua;

/*
 * Reads <path>, runs it once in a scratch state to check it (syntax, top-level errors,
 * options declared) and returns the rules in *<out>, for <n_workers> workers (ctx->worker
 * from 0 to n_workers - 1). <unsafe>: no sandbox (--unsafe-lua). Returns 0, or a negative
 * code with a one-line reason in <err> ("rules.lua:12: unexpected symbol near 'x'").
 * Main thread, before the proxy runs.
 */
SHUNT_MUST_CHECK int shunt_lua_load(const char *path, int unsafe, int n_workers,
                                    struct shunt_lua **out, char *err, size_t err_len);

/*
 * Reads and checks the file again; when it is good, every worker switches to it at its
 * next hook call (on its own thread). When it is not, the old rules keep running and the
 * reason is in <err>, with its line. Returns 0 or a negative code. Any thread but a
 * worker's (admin thread, main thread on SIGHUP); calls are serialised.
 */
SHUNT_MUST_CHECK int shunt_lua_reload(struct shunt_lua *lx, char *err, size_t err_len);

/* The rules file's path as given. */
const char *shunt_lua_path(const struct shunt_lua *lx);

/* The proxy's head hook (shunt_head_hook_cb) for the Lua rules: pass <lx> as its <ud>.
 * Runs on_request or on_response on the calling worker's own Lua state. */
void shunt_lua_head_hook(void *ud, struct shunt_head_edit *edit,
                         const struct shunt_head_ctx *ctx, shunt_head_change_cb change,
                         void *cctx);

/* The proxy's connection hook (shunt_conn_hook_cb) for the Lua rules: pass <lx> as its
 * <ud>. Runs on_connect or on_close, when the file defines them. */
void shunt_lua_conn_hook(void *ud, const struct shunt_conn_info *ci);

/* Closes every state. Once the workers have stopped; NULL is fine. */
void shunt_lua_free(struct shunt_lua *lx);

#endif
