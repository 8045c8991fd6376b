/* src/cli/main.c - `shunt <command>`: finds the command and hands it the arguments. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"proxy", shunt_cmd_proxy, "run the debugging proxy (forward, CONNECT, reverse)"},
    {"sessions", shunt_cmd_sessions, "list the exchanges of a capture, one a row"},
    {"show", shunt_cmd_show, "show one exchange of a capture: heads, changes, bodies"},
    {"connections", shunt_cmd_connections, "list the client connections of a capture"},
    {"export", shunt_cmd_export, "write a capture as HAR 1.2 (--har OUT.har)"},
    {"diagnose", shunt_cmd_diagnose, "findings on a capture or a HAR: what went wrong, why, the fix"},
    {"diff", shunt_cmd_diff, "what differs between two captures or HARs, ranked by what explains it"},
    {"import", shunt_cmd_import, "make a capture from a HAR (Chrome, Firefox, Fiddler, mitmproxy)"},
    {"ctl", shunt_cmd_ctl, "switch options, reload rules, show status of a running proxy"},
    {"ca", shunt_cmd_ca, "shunt's CA for HTTPS interception: where, fingerprint, how to trust it"},
    {"lab", shunt_cmd_lab, "an origin and a client for experiments (the story, on loopback)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shunt <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`shunt <command> --help` tells more. shunt %s\n", SHUNT_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("shunt %s\n", SHUNT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "shunt: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
