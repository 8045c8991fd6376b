/* src/cli/cmd_diff.c - `shunt diff A B`: what differs between two captures or HARs (a working
 * trace and a failing one), ranked by how well it explains the client's closes. */
#include <stdio.h>
#include <string.h>

#include "analyze/diagnose.h"
#include "analyze/diff.h"
#include "cli/commands.h"

static const char help[] =
    "usage: shunt diff A B [--json]\n"
    "\n"
    "Compares two captures or HARs (e.g. a working trace and a failing one). Exchanges are\n"
    "aligned by method and URL, with ids folded (/item/123 and /item/456 align; so do hex\n"
    "ids, UUIDs and id-like query values). Prints the connection behaviour of each side\n"
    "(requests per connection, who closed and how, handshakes), then every difference in\n"
    "the request and response headers, ranked by how well it tells the responses after\n"
    "which the client closed the connection early from those after which it kept it, then\n"
    "the statuses that differ and the requests seen on one side only. Each score says how\n"
    "many exchanges it rests on; a difference that goes with fewer than 3 early closes is\n"
    "listed but not ranked, and traces with fewer than 3 closes or 3 comparable kept\n"
    "responses are said to be too small to separate anything.\n"
    "\n"
    "options:\n"
    "  --json        one JSON object: {\"files\", \"different\", \"connections\",\n"
    "                \"differences\": [...], \"statuses\", \"only_in_a\", \"only_in_b\", \"fields\"}\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status: 0 no difference, 1 differences, 2 bad input (no such file, not a capture\n"
    "or a HAR, a HAR that does not parse, a wrong number of files). See docs/diff.md.\n";

/* The terminal's width does not matter: the text is laid out for 80 columns. */
#define WIDTH 80

int shunt_cmd_diff(int argc, char **argv)
{
    const char *path[2] = {NULL, NULL};
    struct shunt_model *m[2] = {NULL, NULL};
    struct shunt_diff d;
    struct shunt_diff_info info = {0};
    char err[1024];
    int json = 0, n = 0, options = 1, status = 2;
    memset(&d, 0, sizeof(d));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = 0;
        } else if (options && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(help, stdout);
            return 0;
        } else if (options && strcmp(a, "--json") == 0) {
            json = 1;
        } else if (options && a[0] == '-' && a[1] != '\0') {
            snprintf(err, sizeof(err), "unknown option '%s' (shunt diff --help)", a);
            goto fail;
        } else if (n == 2) {
            snprintf(err, sizeof(err), "one file too many: '%s' (shunt diff A B)", a);
            goto fail;
        } else {
            path[n++] = a;
        }
    }
    if (n < 2) {
        snprintf(err, sizeof(err), "two files to compare are needed: shunt diff A B");
        goto fail;
    }
    int har[2] = {0, 0};
    for (int s = 0; s < 2; s++)
        if (shunt_analyze_load(path[s], NULL, &m[s], &har[s], err, sizeof(err)) != 0)
            goto fail;
    if (shunt_diff_run(m[0], m[1], &d) != 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    info = (struct shunt_diff_info){path[0], path[1], har[0], har[1]};
    if (json) {
        if (shunt_diff_print_json(stdout, &d, &info) != 0) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
    } else {
        shunt_diff_print(stdout, &d, &info, WIDTH);
    }
    status = shunt_diff_any(&d) ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "shunt diff: %s\n", err);
    status = 2;
done:
    shunt_diff_dispose(&d);
    shunt_model_free(m[0]);
    shunt_model_free(m[1]);
    return status;
}
