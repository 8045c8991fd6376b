/* src/rules/luapat.h - Lua's string patterns with a step count, for the rules' sandbox:
 * string.find, match, gmatch and gsub (and their s:find method forms) speak the language of
 * Lua 5.4's string library and give its results, but each step of the backtracking matcher
 * is charged to a budget, so that a pattern like string.rep(".-", 30) .. "b" is stopped like
 * an endless loop instead of running for minutes inside one C call. Area-internal (rules/). */
#ifndef SHUNT_RULES_LUAPAT_H
#define SHUNT_RULES_LUAPAT_H

#include <stddef.h>

#include <lua.h>

/* Charges <steps> matcher steps to the budget of <L>'s hook call; raises a Lua error (and
 * does not return) when the budget is spent. MAY_LJMP */
typedef void (*shunt_luapat_charge_cb)(lua_State *L, size_t steps);

/* Where the steps go: a constant with process lifetime, shared by every state. */
struct shunt_luapat_budget {
    shunt_luapat_charge_cb charge;
};

/* Replaces find, match, gmatch and gsub in the table at the top of <L>'s stack (the string
 * library, which strings index as methods) with counting versions that call <b>->charge at
 * least every SHUNT_LUAPAT_BATCH steps. May raise (out of memory) like any table write. */
void shunt_luapat__replace(lua_State *L, const struct shunt_luapat_budget *b);

/* Steps counted before they are charged. */
#define SHUNT_LUAPAT_BATCH 4096

#endif
