/* src/capture/recorder.h - recording the proxy's traffic into a capture file: an event
 * subscriber on the loop threads, a bounded queue, and a store thread writing SQLite. */
#ifndef SHUNT_CAPTURE_RECORDER_H
#define SHUNT_CAPTURE_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"
#include "proxy/events.h"

struct shunt_recorder;

/* What to record, and where. Plain data, read at open. */
struct shunt_recorder_config {
    const char *path;         /* the capture file to create (must not exist) */
    const char *command_line; /* kept in the capture's facts */
    size_t body_limit;        /* bytes kept of each body (default 1 MiB) */
    size_t queue_records;     /* records the queue holds before dropping (default 65536) */
    size_t queue_bytes;       /* and bytes (default 256 MiB) */
};

#define SHUNT_RECORDER_BODY_LIMIT_DEFAULT ((size_t)1 << 20)
#define SHUNT_RECORDER_QUEUE_RECORDS_DEFAULT 65536
#define SHUNT_RECORDER_QUEUE_BYTES_DEFAULT ((size_t)256 << 20)

/* The events the recorder subscribes to (a mask for shunt_proxy_subscribe()). */
unsigned shunt_recorder_mask(void);

/*
 * Creates the capture file (0600, never over an existing file), writes its facts and starts
 * the store thread. Returns 0 with *<out> set, or a negative code with a one-line reason in
 * <err>. Main thread, before the proxy runs.
 */
SHUNT_MUST_CHECK int shunt_recorder_open(const struct shunt_recorder_config *cfg,
                                         struct shunt_recorder **out, char *err, size_t err_len);

/* The subscriber: pass it to shunt_proxy_subscribe() with the recorder as <ud> and
 * shunt_recorder_mask(). Called on loop threads; copies what it keeps and never blocks
 * (a full queue drops the record and counts it). */
void shunt_recorder_on_event(const struct shunt_event *ev, void *ud);

/* Records dropped so far because the queue was full. Any thread. */
uint64_t shunt_recorder_dropped(const struct shunt_recorder *r);

/* Writes what is queued, the stop time and the drop count, stops the store thread and
 * closes the file. Returns 0, or a negative code when the last writes failed (logged).
 * Main thread, after the proxy stopped. Frees <r>. */
int shunt_recorder_close(struct shunt_recorder *r);

#endif
