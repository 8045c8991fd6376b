/* src/cli/cmd_import.c - `shunt import IN.har --capture OUT.db`: a HAR as a new capture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/har.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt import IN.har --capture OUT.db\n"
    "\n"
    "Turns a HAR from Chrome, Firefox, Fiddler, mitmproxy or shunt into a new capture that\n"
    "sessions, show and connections read. Connections are inferred per producer\n"
    "(_connectionId, connection, or timings.connect); what a HAR cannot say, such as who\n"
    "closed a connection and how, stays unknown. OUT.db must not exist. docs/har.md gives\n"
    "the rules.\n"
    "\n"
    "options:\n"
    "  --capture OUT.db  the capture to create (required)\n"
    "  -h, --help        this text\n"
    "\n"
    "example:\n"
    "  shunt import chrome.har --capture chrome.db && shunt connections chrome.db\n";

static int usage_error(const char *why)
{
    fprintf(stderr, "shunt import: %s\n(`shunt import --help` tells more)\n", why);
    return 2;
}

/* The command line as typed, arguments joined by spaces (capture.command_line). */
static char *joined(int argc, char **argv)
{
    size_t len = strlen("shunt") + 1;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (s == NULL)
        return NULL;
    size_t o = 0;
    memcpy(s, "shunt", 5);
    o = 5;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        s[o++] = ' ';
        memcpy(s + o, argv[i], l);
        o += l;
    }
    s[o] = '\0';
    return s;
}

int shunt_cmd_import(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--capture") == 0) {
            if (i + 1 >= argc)
                return usage_error("--capture needs a file name");
            out = argv[++i];
        } else if (strncmp(a, "--capture=", 10) == 0) {
            out = a + 10;
        } else if (a[0] == '-' && a[1] != '\0') {
            snprintf(err, sizeof(err), "unknown option %s", a);
            return usage_error(err);
        } else if (in == NULL) {
            in = a;
        } else {
            snprintf(err, sizeof(err), "one HAR file only (%s and %s)", in, a);
            return usage_error(err);
        }
    }
    if (in == NULL)
        return usage_error("which HAR? shunt import IN.har --capture OUT.db");
    if (out == NULL || *out == '\0')
        return usage_error("--capture OUT.db is required");
    char *cmd = joined(argc, argv);
    if (cmd == NULL) {
        fputs("shunt import: out of memory\n", stderr);
        return 1;
    }
    struct shunt_har_import_opts o = {SHUNT_VERSION, cmd};
    struct shunt_har_import_info info;
    int rc = shunt_har_import_file(in, out, &o, &info, err, sizeof(err));
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "shunt import: %s\n", err);
        return 2;
    }
    fprintf(stderr, "shunt import: %s: %zu entries from %s, %zu connections\n", out,
            info.n_entries, shunt_har_producer_name(info.producer), info.n_connections);
    return 0;
}
