/* src/cli/cmd_show.c - `shunt show`: one exchange of a capture, whole. */
#include <stdio.h>

#include "capture/view.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt show [FILE] ID [--json]\n"
    "\n"
    "Exchange ID of the capture FILE (default shunt.db): a summary (method, URL, status,\n"
    "connection and index on it, client port, upstream local port, new or reused upstream),\n"
    "HAR timings in ms (\"-\": does not apply; the TLS handshake inside connect), the TLS\n"
    "of the client's side and of the upstream's when there was (SNI, ALPN, version, cipher,\n"
    "the certificate: subject, issuer, names, validity, fingerprint; handshake time, how it\n"
    "ended or why it failed), why shunt answered it itself when it did\n"
    "(a rule, its parser's refusal, an unreachable upstream, a CONNECT, an error) and whether\n"
    "the request went upstream, the request head as received with the lines that differ in\n"
    "what was sent marked (\"- \" removed, \"+ \" added), the changes a rule, an option or\n"
    "a repair made, the routine forward-proxy rewrites apart, interim 1xx heads, the response\n"
    "head the client received (or how long a pending exchange has waited), and a preview of\n"
    "each body: text as text, anything else as a hex dump, the first 2048 bytes.\n"
    "\n"
    "options:\n"
    "  --json        {\"capture\": {...}, \"exchange\": {...}}: every column, the heads, the\n"
    "                bodies the capture kept (text, or base64 in *_base64)\n"
    "  -h, --help    this text\n"
    "\n"
    "`shunt sessions FILE` lists the ids. See docs/views.md.\n";

int shunt_cmd_show(int argc, char **argv)
{
    return shunt_view_main("show", help, SHUNT_VIEW_ACCEPT_ID, shunt_view_show, argc, argv);
}
