/* src/core/log.c - diagnostics to stderr, one write(2) per line so threads don't interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

enum shunt_log_level shunt_log_threshold = SHUNT_LOG_WARN;

static void emit(const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s", prefix);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nothing sensible to do when stderr is gone */
}

void shunt__log(enum shunt_log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {"shunt: debug: ", "shunt: info: ", "shunt: warning: ",
                                        "shunt: error: "};
    va_list ap;
    va_start(ap, fmt);
    emit(names[lvl], fmt, ap);
    va_end(ap);
}

void shunt_log_raw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}
