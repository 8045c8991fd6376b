/* src/cli/cmd_diagnose.c - `shunt diagnose FILE [FILTER]`: the knowledge base's findings on a
 * capture or a HAR. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "analyze/diagnose.h"
#include "capture/view.h"
#include "cli/commands.h"

/* The help's lines fit this many columns. */
#define HELP_WIDTH 80

static const char help_head[] =
    "usage: shunt diagnose [FILE] [FILTER] [--host H[:PORT]] [--status N] [--conn ID]\n"
    "                      [--changed] [--json]\n"
    "\n"
    "Runs the knowledge base of checks over the capture FILE (default shunt.db), or\n"
    "over a HAR (imported in memory first), and prints each finding ranked by impact\n"
    "(handshakes and time lost): what happened and how often, example connections\n"
    "and exchanges, why, the fix, and how to prove it with shunt.\n"
    "\n"
    "FILTER is a filter expression (docs/filters.md) that limits the exchanges looked\n"
    "at, e.g. '~d intranet' or '~auth'; a connection is looked at whole when one of\n"
    "its exchanges is taken.\n"
    "\n"
    "checks:\n";

static const char help_tail[] =
    "\n"
    "options:\n"
    "  --host H      only exchanges with host H (case-insensitive), any port; H:PORT\n"
    "                only that port (the scheme's default when the URL names none)\n"
    "  --status N    only exchanges whose final status is N\n"
    "  --conn ID     only client connection ID\n"
    "  --changed     only exchanges with flag C (a rule, an option or a repair of\n"
    "                shunt's changed the message; not the routine proxy rewrites)\n"
    "  --json        one JSON object: {\"capture\", \"filter\", \"checks\",\n"
    "                \"findings\": [...]}\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status: 0 no finding, 1 findings, 2 bad input (no such file, not a capture\n"
    "or a HAR, a bad filter, an unknown option). See docs/diagnose.md.\n";

/* Prints <text> from column <col> on, wrapped at HELP_WIDTH with the next lines starting at
 * <col> too; a word longer than the room left is not cut. */
static void put_wrapped(const char *text, size_t col)
{
    size_t at = col;
    int line_empty = 1;
    for (const char *p = text; *p != '\0';) {
        size_t wl = strcspn(p, " ");
        if (wl > 0) {
            if (!line_empty && at + 1 + wl > HELP_WIDTH) {
                printf("\n%*s", (int)col, "");
                at = col;
                line_empty = 1;
            }
            printf("%s%.*s", line_empty ? "" : " ", (int)wl, p);
            at += wl + !line_empty;
            line_empty = 0;
        }
        p += wl + (p[wl] == ' ');
    }
    putchar('\n');
}

/* The help, with the checks' ids in a column as wide as the longest and their titles
 * wrapped beside it. */
static void print_help(void)
{
    size_t w = 0;
    for (size_t i = 0; i < shunt_n_checks; i++)
        if (strlen(shunt_checks[i]->id) > w)
            w = strlen(shunt_checks[i]->id);
    fputs(help_head, stdout);
    for (size_t i = 0; i < shunt_n_checks; i++) {
        printf("  %-*s  ", (int)w, shunt_checks[i]->id);
        put_wrapped(shunt_checks[i]->title, 2 + w + 2);
    }
    fputs(help_tail, stdout);
}

/* The FILTER as typed: the last positional argument when shunt_view_args() compiled one. */
static const char *filter_text(int argc, char **argv)
{
    const char *last = NULL;
    int options = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = 0;
        } else if (options && a[0] == '-' && a[1] != '\0') {
            if ((strcmp(a, "--host") == 0 || strcmp(a, "--status") == 0 ||
                 strcmp(a, "--conn") == 0) && i + 1 < argc)
                i++;
        } else {
            last = a;
        }
    }
    return last;
}

static int width_of_terminal(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col < 100 ? ws.ws_col : 100;
    return 80;
}

int shunt_cmd_diagnose(int argc, char **argv)
{
    struct shunt_view_opts o;
    struct shunt_model *m = NULL;
    struct shunt_findings fs = {0};
    char err[1024];
    int status = 2;
    int rc = shunt_view_args(&o, argc, argv, SHUNT_VIEW_ACCEPT_FILTER | SHUNT_VIEW_ACCEPT_EXPR,
                             err, sizeof(err));
    if (rc == 1) {
        print_help();
        status = 0;
        goto done;
    }
    if (rc != 0)
        goto fail;
    struct shunt_diagnose_info info = {o.path, 0, o.expr ? filter_text(argc, argv) : NULL};
    rc = shunt_analyze_load(o.path, &o.filter, &m, &info.from_har, err, sizeof(err));
    if (rc == SHUNT_EINVAL && !o.path_given) {
        size_t l = strlen(err);
        snprintf(err + l, sizeof(err) - l, " (the default capture file; name one: FILE)");
    }
    if (rc != 0)
        goto fail;
    if (shunt_diagnose_run(m, &fs) != 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (o.json) {
        if (shunt_diagnose_print_json(stdout, m, &fs, &info) != 0) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
    } else {
        shunt_diagnose_print(stdout, m, &fs, &info, width_of_terminal());
    }
    status = fs.n > 0 ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "shunt diagnose: %s\n", err);
    status = 2;
done:
    shunt_findings_dispose(&fs);
    shunt_model_free(m);
    shunt_view_opts_dispose(&o);
    return status;
}
