/* src/cli/commands.h - the `shunt <command>` entry points, one file each. */
#ifndef SHUNT_CLI_COMMANDS_H
#define SHUNT_CLI_COMMANDS_H

#include "core/version.h"

/* Each takes the arguments after the command name (argv[0] is the command) and returns the
 * process exit status: 0 success, 1 failure, 2 bad usage. */
int shunt_cmd_proxy(int argc, char **argv);
int shunt_cmd_sessions(int argc, char **argv);
int shunt_cmd_show(int argc, char **argv);
int shunt_cmd_connections(int argc, char **argv);
int shunt_cmd_export(int argc, char **argv);
int shunt_cmd_import(int argc, char **argv);
int shunt_cmd_ctl(int argc, char **argv);
int shunt_cmd_lab(int argc, char **argv);
int shunt_cmd_diagnose(int argc, char **argv);
int shunt_cmd_diff(int argc, char **argv);
int shunt_cmd_ca(int argc, char **argv);

#endif
