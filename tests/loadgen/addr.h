/* Address helpers shared by the load generator and the benchmark servers (tests/loadgen/,
 * bench/); the server has its own. */
#ifndef HS_BENCH_ADDR_H
#define HS_BENCH_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Parses "HOST:PORT" or "[IPV6]:PORT" (port 0 allowed) into *ss and *len for a socket of
 * socktype (SOCK_STREAM or SOCK_DGRAM). HOST may be a name; the first address wins.
 * Returns 0, or -1 with a static description in *err. */
int bench_addr_parse(const char *hostport, int socktype, struct sockaddr_storage *ss,
                     socklen_t *len, const char **err);

/* Writes "HOST:PORT" or "[IPV6]:PORT" for sa into buf (at most size bytes, always
 * terminated). Returns buf. */
char *bench_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* Prints "listening SCHEME://HOST:PORT" to stderr with fd's bound address, so a script that
 * asked for port 0 can read the real port. Returns 0, or -1 if getsockname failed. */
int bench_addr_announce(const char *scheme, int fd);

#endif
