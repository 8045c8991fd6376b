/* src/cli/cmd_lab.c - `shunt lab origin|client|demo`: the lab's parts (src/lab/). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "lab/lab.h"

static const char help[] =
    "usage: shunt lab <part> [options]\n"
    "\n"
    "parts:\n"
    "  origin   an HTTP/1.1 server for experiments: connection-bound Negotiate/NTLM, with\n"
    "           or without a Server header, HTTP/1.0, pages by size, delay and status\n"
    "  client   a client with keep-alive policies (keepalive, http10, wininet) that does\n"
    "           the handshakes, directly or through a proxy, and sums up what it paid\n"
    "  demo     the story end to end: 50 connections and 50 handshakes, then one\n"
    "           toggle of the story's rule, then 1 and 1\n"
    "\n"
    "`shunt lab <part> --help` tells more.\n";

int shunt_cmd_lab(int argc, char **argv)
{
    if (argc < 2) {
        fputs(help, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(help, stdout);
        return 0;
    }
    if (strcmp(argv[1], "origin") == 0)
        return shunt_lab_origin_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "client") == 0)
        return shunt_lab_client_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "demo") == 0)
        return shunt_lab_demo_main(argc - 1, argv + 1);
    fprintf(stderr, "shunt lab: unknown part '%s'\n\n%s", argv[1], help);
    return 2;
}
