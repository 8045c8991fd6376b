/* src/cli/cmd_connections.c - `shunt connections`: the client connections of a capture. */
#include <stdio.h>

#include "capture/view.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt connections [FILE] [FILTER] [--conn ID] [--host H[:PORT]] [--status N]\n"
    "                         [--changed] [--limit N] [--offset N] [--json]\n"
    "\n"
    "The client connections of the capture FILE (default shunt.db), one a row, in id order:\n"
    "id, client port, the local ports of its upstream connections, exchanges, opened (local\n"
    "time), lifetime, who closed it first (client, server, proxy; open: not closed yet;\n"
    "? unknown), how (FIN, RST, timeout, error; ? unknown), the first authentication scheme\n"
    "seen, and the mode: tls (the client spoke TLS to shunt), up-tls (only the upstream),\n"
    "tunnel, tunnel+tls. Exchanges are counted as the capture holds them, pending ones too.\n"
    "\n"
    "FILTER is a filter expression (docs/filters.md): only connections with at least one\n"
    "exchange that it takes, e.g. '~auth & ~c 401' or '~closed server'.\n"
    "\n"
    "options:\n"
    "  --conn ID     only connection ID\n"
    "  --host H      only connections with an exchange for host H (H:PORT: that port)\n"
    "  --changed     only connections with an exchange with flag C\n"
    "  --status N    only connections with an exchange whose final status is N\n"
    "  --limit N     at most N rows\n"
    "  --offset N    skip the first N rows\n"
    "  --json        {\"capture\": {...}, \"connections\": [...]}, with each connection's\n"
    "                TLS handshakes (tls_handshakes: SNI, version, certificate, errors)\n"
    "  -h, --help    this text\n"
    "\n"
    "See docs/views.md.\n";

int shunt_cmd_connections(int argc, char **argv)
{
    return shunt_view_main("connections", help,
                           SHUNT_VIEW_ACCEPT_FILTER | SHUNT_VIEW_ACCEPT_PAGE |
                               SHUNT_VIEW_ACCEPT_EXPR,
                           shunt_view_connections, argc, argv);
}
