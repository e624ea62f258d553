/* Open connections per client address: a small open-addressing hash from an address key to a
 * count, so one host cannot take every connection slot. Plain C, no sockets, no event loop.
 * IPv4 addresses (also when mapped into IPv6) count one by one; IPv6 addresses count by their
 * /64 prefix, the smallest block a single host is usually given. */
#ifndef HS_PEERS_H
#define HS_PEERS_H

#include <stdint.h>
#include <sys/socket.h>

struct hs_peers;

/* The part of an address that identifies a client host. */
struct hs_peer_key {
    uint8_t family;  /* 4 or 6; 0 for "no key" (Unix sockets) */
    uint8_t addr[8]; /* IPv4: 4 bytes then zeros; IPv6: the /64 prefix */
};

/* Fills *key from a socket address. Returns 0, or -1 when the address has no host part to
 * count (AF_UNIX, an unknown family, a short length): such peers are never limited. */
int hs_peers_key(const struct sockaddr *sa, socklen_t len, struct hs_peer_key *key);

/* Creates an empty table. Returns NULL when memory runs out. */
struct hs_peers *hs_peers_new(void);

/* Frees the table. */
void hs_peers_free(struct hs_peers *p);

/* Open connections counted for key (0 when unknown). */
unsigned hs_peers_count(const struct hs_peers *p, const struct hs_peer_key *key);

/* Counts one more connection for key. Returns 0, or -ENOMEM (the table could not grow). */
int hs_peers_add(struct hs_peers *p, const struct hs_peer_key *key);

/* Counts one connection less for key; the entry goes when its count reaches 0. A key that is
 * not in the table is ignored. */
void hs_peers_remove(struct hs_peers *p, const struct hs_peer_key *key);

#endif
