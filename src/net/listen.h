/* src/net/listen.h - listening sockets, made the same way for the proxy and the admin API. */
#ifndef SHUNT_NET_LISTEN_H
#define SHUNT_NET_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

/* Returns a bound, listening, non-blocking, close-on-exec socket for <sa> with <backlog>,
 * or a negative errno. IPv6 sockets are IPv6 only. With <reuseport> several sockets share
 * the port (one per worker, the kernel spreads connections); without it a second bind to a
 * port in use fails, as a second admin API must. Sockets with <reuseport> are bound only
 * after shunt_listen_probe() said the address is free. */
int shunt_listen_open(const struct sockaddr *sa, int backlog, int reuseport);

/*
 * Checks that nothing listens on <sa> before a group of SO_REUSEPORT sockets is bound there:
 * Linux lets such a socket join any group of the same user on the port, so a second shunt,
 * or another program that set the option, would silently share the port and get some of
 * its connections. Binds a socket without SO_REUSEPORT (with SO_REUSEADDR, as the group's
 * have, so that connections of an earlier run in TIME_WAIT do not count) and closes it.
 * A port 0 in <sa> is replaced by a free port the kernel picked, for the group to bind.
 * Returns 0, or a negative errno (-EADDRINUSE: something listens there). Between the probe
 * and the bind of the group, another process could take the port: a window of microseconds
 * at startup, accepted. Main thread.
 */
int shunt_listen_probe(struct sockaddr_storage *sa);

/* Writes why listening failed with <err> (a negative errno) into <buf> (<buf_len> bytes,
 * NUL-terminated), in lower case to end a sentence: -EADDRINUSE reads "address already in
 * use (another shunt?)". */
void shunt_listen_reason(int err, char *buf, size_t buf_len);

/* Writes "cannot listen on ADDR:PORT: " and shunt_listen_reason() for the failure <err> to
 * listen on <sa> into <buf> (<buf_len> bytes, NUL-terminated). */
void shunt_listen_describe(const struct sockaddr *sa, int err, char *buf, size_t buf_len);

#endif
