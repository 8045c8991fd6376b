/* src/cli/cmd_sessions.c - `shunt sessions`: the exchanges of a capture, one a row. */
#include <stdio.h>

#include "capture/view.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt sessions [FILE] [FILTER] [--host H[:PORT]] [--status N] [--conn ID]\n"
    "                      [--changed] [--limit N] [--offset N] [--json]\n"
    "\n"
    "The exchanges of the capture FILE (default shunt.db), one a row, in id order: id,\n"
    "connection, index on it, client port, method, host (with :port when not the scheme's\n"
    "default; after https:// inside TLS), path, status (wait: no response yet), bytes sent\n"
    "to the client, duration in ms (waited so far, with +, when pending), and flags: C\n"
    "changed by a rule, an option or a repair of shunt's; r only the rewrites every forward\n"
    "proxy makes; E error; T a body truncated by the capture; U became a tunnel; S answered\n"
    "by shunt, not by a server; P pending, no response yet. On a terminal, long tables go\n"
    "through ${PAGER:-less} (with LESS=FRX unless set).\n"
    "\n"
    "FILTER is a filter expression (mitmproxy's language, docs/filters.md), e.g.\n"
    "'~d example\\.com & ~c 404', '~h \"server: iis\" | ~e', '~auth ~closed server'. It\n"
    "sees heads as sent (as received when unchanged). Alone, it is taken for the FILTER when\n"
    "no such file exists and it starts with ~ ! ( or a quote, or holds a space. The options\n"
    "below combine with it (AND).\n"
    "\n"
    "options:\n"
    "  --host H      only exchanges with host H (case-insensitive), any port; H:PORT\n"
    "                only that port (the scheme's default when the URL names none)\n"
    "  --changed     only exchanges with flag C (not those with only r)\n"
    "  --status N    only exchanges whose final status is N\n"
    "  --conn ID     only exchanges of client connection ID\n"
    "  --limit N     at most N rows\n"
    "  --offset N    skip the first N rows (of those the filter takes)\n"
    "  --json        {\"capture\": {...}, \"exchanges\": [...]} with every value in full\n"
    "  -h, --help    this text\n"
    "\n"
    "`shunt show FILE ID` shows one exchange whole. See docs/views.md.\n";

int shunt_cmd_sessions(int argc, char **argv)
{
    return shunt_view_main("sessions", help,
                           SHUNT_VIEW_ACCEPT_FILTER | SHUNT_VIEW_ACCEPT_PAGE |
                               SHUNT_VIEW_ACCEPT_EXPR,
                           shunt_view_sessions, argc, argv);
}
