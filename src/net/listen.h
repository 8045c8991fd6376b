/* src/net/listen.h - listening sockets, made the same way for the proxy and the admin API. */
#ifndef SHUNT_NET_LISTEN_H
#define SHUNT_NET_LISTEN_H

#include <sys/socket.h>

/* Returns a bound, listening, non-blocking, close-on-exec socket for <sa> with <backlog>,
 * or a negative errno. IPv6 sockets are IPv6 only. With <reuseport> several sockets share
 * the port (one per worker, the kernel spreads connections); without it a second bind to a
 * port in use fails, as a second admin API must. */
int shunt_listen_open(const struct sockaddr *sa, int backlog, int reuseport);

#endif
