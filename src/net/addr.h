/* src/net/addr.h - socket addresses: "ADDR:PORT" parsing, CIDR allow-lists, loopback tests. */
#ifndef SHUNT_NET_ADDR_H
#define SHUNT_NET_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/errors.h"

/* An IPv4 or IPv6 network: address and prefix length. */
struct shunt_cidr {
    int family;          /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;          /* bits */
};

/* Parses "127.0.0.1:8888", "[::1]:8888" or "localhost:8888" into <out>. Returns 0, or
 * SHUNT_EADDR when <text> is not an IP literal with a port (names other than localhost are
 * not resolved: a listening address must be explicit). */
SHUNT_MUST_CHECK int shunt_addr_parse(const char *text, struct sockaddr_storage *out);

/* Parses "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128) into <out>. Returns 0 or
 * SHUNT_EADDR. */
SHUNT_MUST_CHECK int shunt_cidr_parse(const char *text, struct shunt_cidr *out);

/* Returns 1 when <sa> lies in <net>. An IPv4-mapped IPv6 address matches IPv4 networks. */
int shunt_cidr_match(const struct shunt_cidr *net, const struct sockaddr *sa);

/* Returns 1 when <sa> is a loopback address (127.0.0.0/8, ::1, or v4-mapped 127/8). */
int shunt_addr_is_loopback(const struct sockaddr *sa);

/* Returns 1 when a connection to <sa> reaches this machine whatever its interfaces: a
 * loopback address, or an unspecified one (0.0.0.0/8, ::; Linux connects those to the local
 * host). Not the machine's other addresses, which it cannot know without asking the kernel. */
int shunt_addr_is_local(const struct sockaddr *sa);

/* Writes the address of <sa> as text into <buf> (no port) and returns its port, or -1. */
int shunt_addr_format(const struct sockaddr *sa, char *buf, size_t buf_len);

#endif
