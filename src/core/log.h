/* src/core/log.h - the one module that writes diagnostics to stderr. */
#ifndef SHUNT_CORE_LOG_H
#define SHUNT_CORE_LOG_H

enum shunt_log_level { SHUNT_LOG_DEBUG, SHUNT_LOG_INFO, SHUNT_LOG_WARN, SHUNT_LOG_ERROR };

/* The lowest level printed; SHUNT_LOG_WARN unless -v raises verbosity. Any thread reads it. */
extern enum shunt_log_level shunt_log_threshold;

#define SHUNT_LOG_ENABLED(lvl) ((lvl) >= shunt_log_threshold)

/* Writes one line "shunt: LEVEL: message" to stderr. Thread-safe (one write(2) a line). */
void shunt__log(enum shunt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes <fmt> as it is, one line, to stderr (exchange lines of -v). Thread-safe. */
void shunt_log_raw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The level is tested before the arguments are formatted. */
#define shunt_log(lvl, ...)                                                                        \
    do {                                                                                           \
        if (SHUNT_LOG_ENABLED(lvl))                                                                \
            shunt__log((lvl), __VA_ARGS__);                                                        \
    } while (0)

#endif
