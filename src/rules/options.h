/* src/rules/options.h - named toggles ("Add Server Header"), declared by rules (off unless
 * declared otherwise) and switched while the proxy runs, from the admin API or `shunt ctl`. */
#ifndef SHUNT_RULES_OPTIONS_H
#define SHUNT_RULES_OPTIONS_H

#include <stddef.h>

#include "core/errors.h"

#define SHUNT_OPTIONS_MAX 64
#define SHUNT_OPTION_NAME_MAX 80

/* Declares the option <name> with <default_on> unless it exists already, in which case its
 * current state is kept (a reload keeps what the user switched). Returns its index (>= 0),
 * SHUNT_EINVAL for an empty or over-long name, SHUNT_ETOOBIG when the table is full.
 * Any thread. */
SHUNT_MUST_CHECK int shunt_options_declare(const char *name, int default_on);

/* Returns 1 when option <index> is on, 0 otherwise. Any thread, lock-free. */
int shunt_options_on(int index);

/* Switches the option named <name>. Returns 0, or SHUNT_EINVAL when there is none. */
SHUNT_MUST_CHECK int shunt_options_set(const char *name, int on);

/* Calls <cb> for each option in declaration order with its name, state and default.
 * Any thread. */
void shunt_options_each(void (*cb)(void *ud, const char *name, int on, int default_on), void *ud);

/* Forgets every option (tests). */
void shunt_options_reset(void);

#endif
