/* UDP sockets: one datagram in, one handler call; replies go to an explicit address. */
#ifndef HS_UDP_H
#define HS_UDP_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/addr.h"

struct event_base;
struct hs_udp;

/* Called once per received datagram. `peer` is the sender's address text ("1.2.3.4:5",
 * "[::1]:5"); data is valid only during the call, peer only until the callback sends (a send
 * to a new peer may reuse its memory). */
typedef void (*hs_udp_datagram_cb)(struct hs_udp *u, const char *data, size_t len, const char *peer,
                                   void *arg);

/* Called once when u is being freed, before its memory goes: the last moment to forget it. */
typedef void (*hs_udp_free_cb)(struct hs_udp *u, void *arg);

/* An outbound socket became readable (hs_udp_wait); u may be freed inside. */
typedef void (*hs_udp_ready_cb)(struct hs_udp *u, void *arg);

/* Binds a UDP socket to addr (udp://, or unixgram:/path, whose stale socket file is replaced
 * as for unix: listeners, and removed at free) and starts receiving (up to 64 datagrams per
 * wake-up, 8 per system call; the socket keeps a receive slot of 64 KiB for each, a page of
 * which becomes memory once a datagram reaches it, and a table of its peers, up to 1,024).
 * `name` (copied) labels log lines; arg must outlive the socket. Returns 0 and *out, or a
 * negative code (-EADDRINUSE, HS_EBADSPEC, ...). */
int hs_udp_new(struct event_base *base, const struct hs_addr *addr, const char *name,
               hs_udp_datagram_cb cb, void *arg, struct hs_udp **out);

/* Like hs_udp_new for a socket already bound (inherited from a master): takes fd. */
int hs_udp_adopt_fd(struct event_base *base, int fd, const char *name, hs_udp_datagram_cb cb,
                    void *arg, struct hs_udp **out);

/* The socket (owned by u); starts receiving again after hs_udp_stop. */
int hs_udp_fd(const struct hs_udp *u);
void hs_udp_start(struct hs_udp *u);

/* Stops receiving and closes the socket (removing a unixgram listener's file); frees u. Safe
 * inside u's datagram callback: the memory goes when the callback returns. */
void hs_udp_free(struct hs_udp *u);

/* Stops receiving, keeping the socket bound (graceful shutdown). */
void hs_udp_stop(struct hs_udp *u);

/* Opens an outbound datagram socket connected to `to` (IPv4, IPv6, or a Unix path, in which
 * case the socket autobinds an abstract name so that the server can answer it). It receives
 * only from `to` and reads nothing until hs_udp_wait. Returns 0 and *out (free it with
 * hs_udp_free), or a negated errno (-ENOENT: no socket at the path, -ECONNREFUSED). */
int hs_udp_open(struct event_base *base, const struct sockaddr *to, socklen_t tolen,
                struct hs_udp **out);

/* Sends one datagram on an outbound socket. Returns 0; HS_ETOOBIG above 65,507 bytes;
 * -EAGAIN when the socket buffer is full (dropped); -ECONNREFUSED when an earlier datagram
 * found no one listening; another negated errno. */
int hs_udp_send(struct hs_udp *u, const void *data, size_t len);

/* Takes the next datagram of an outbound socket without waiting: returns its length with
 * *data pointing into u (valid until the next call), -EAGAIN when none is queued,
 * -ECONNREFUSED (no one listens at the address), or another negated errno. */
int hs_udp_recv(struct hs_udp *u, const char **data);

/* Calls cb once when an outbound socket becomes readable. Returns 0 or -ENOMEM. */
int hs_udp_wait(struct hs_udp *u, hs_udp_ready_cb cb, void *arg);

/* Gives up a hs_udp_wait: cb will not be called. */
void hs_udp_unwait(struct hs_udp *u);

/* Sends one datagram to peer (text as given to the callback). Returns 0; HS_EBADSPEC for
 * an address that does not parse; HS_ETOOBIG above 65,507 bytes; -EAGAIN when the socket
 * buffer is full (the datagram is dropped, as UDP may); another negated errno. */
int hs_udp_send_to(struct hs_udp *u, const char *peer, size_t peer_len, const void *data,
                   size_t len);

/* Whether freeing a unixgram socket removes its file: yes for one hs_udp_new bound; set it
 * for a socket an upgrade handed over, clear it before handing this one over. */
void hs_udp_own_path(struct hs_udp *u, int own);

/* The bound address as a URL ("udp://127.0.0.1:40000", "unixgram:/run/x.sock"); for an
 * outbound socket, the address it sends to. Owned by u. */
const char *hs_udp_url(const struct hs_udp *u);

/* The name given at creation (owned by u). */
const char *hs_udp_name(const struct hs_udp *u);

/* Sets the one hook told when u is freed (cb NULL removes it). The Lua binding uses it to
 * invalidate the box a script may keep after a reload unbinds the socket. */
void hs_udp_on_free(struct hs_udp *u, hs_udp_free_cb cb, void *arg);

/* Traffic so far. */
struct hs_udp_counts {
    unsigned long long datagrams_in, datagrams_out; /* received, sent */
    unsigned long long bytes_in, bytes_out;         /* their payload bytes */
    unsigned long long peer_formats; /* source addresses formatted to text, not found in the
                                      * socket's table of peers seen (one per new peer) */
};
void hs_udp_counts(const struct hs_udp *u, struct hs_udp_counts *out);

/* An integer the owner of the callback keeps with u (the Lua binding: its box's registry
 * reference, so that a datagram finds the box without a table lookup); 0 until set. */
void hs_udp_set_tag(struct hs_udp *u, int tag);
int hs_udp_tag(const struct hs_udp *u);

#endif
