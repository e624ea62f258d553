/* Stream listeners (TCP over IPv4/IPv6, Unix): bind, accept, hand each socket to conn. */
#ifndef HS_LISTENER_H
#define HS_LISTENER_H

#include <stddef.h>

#include "core/addr.h"
#include "core/conn.h"
#include "core/framing.h"

struct event_base;
struct hs_listener;

/* Asked before a connection is set up; return nonzero to refuse the peer (the socket is
 * closed at once and the refusal logged). */
typedef int (*hs_listener_accept_cb)(struct hs_listener *l, const char *peer, void *arg);

/* Binds and starts accepting on a TCP or Unix address (SO_REUSEADDR on TCP; a stale Unix
 * socket file is replaced, any other file at that path is left alone and is an error).
 * With addr->proxy, each connection must start with a PROXY header (hs_conn_new_proxy): the
 * limits and accept_cb then see the client it names, once it is read.
 * Accepted connections join `set` with a copy of `framing`, `handler` and `arg` (which must
 * outlive the listener); `accept_cb` may be NULL. `name` (copied) labels log lines.
 * When accept fails for lack of descriptors or memory, accepting pauses for 100 ms instead
 * of spinning. Returns 0 and *out, or a negative code (-EADDRINUSE, -EACCES, HS_EBADSPEC
 * for a host that does not resolve, ...). */
int hs_listener_new(struct event_base *base, struct hs_conns *set, const struct hs_addr *addr,
                    const char *name, const struct hs_framing *framing,
                    const struct hs_conn_handler *handler, void *arg,
                    hs_listener_accept_cb accept_cb, struct hs_listener **out);

/* Like hs_listener_new for a socket that is already bound and listening (inherited from a
 * master process): takes ownership of fd; addr describes it. The socket file of a Unix
 * listener made this way is never removed by this process. */
int hs_listener_adopt_fd(struct event_base *base, struct hs_conns *set, int fd,
                         const struct hs_addr *addr, const char *name,
                         const struct hs_framing *framing, const struct hs_conn_handler *handler,
                         void *arg, hs_listener_accept_cb accept_cb, struct hs_listener **out);

/* The listening socket (owned by l). */
int hs_listener_fd(const struct hs_listener *l);

/* Starts accepting again after hs_listener_stop. */
void hs_listener_start(struct hs_listener *l);

/* Stops accepting and closes the socket (removing a Unix socket file we created); open
 * connections are not touched, but ones still reading their PROXY header are aborted. Frees
 * l. */
void hs_listener_free(struct hs_listener *l);

/* Stops accepting new connections, keeping the socket bound (a master's copy of the sockets
 * its workers serve on). */
void hs_listener_stop(struct hs_listener *l);

/* Whether closing l removes its Unix socket file (own 1; never for TCP). A listener made by
 * hs_listener_new owns its file, an adopted one does not; an upgrade moves the ownership to
 * the new process, so the old one leaves the file it handed over. */
void hs_listener_own_path(struct hs_listener *l, int own);

/* Graceful shutdown: closes the listening socket now (removing a Unix socket file we
 * created), so connects from here on are refused rather than left waiting in the backlog
 * (connections still in it are reset). l stays valid for its URL and counters until
 * hs_listener_free; hs_listener_start no longer has an effect and hs_listener_fd is -1. */
void hs_listener_close(struct hs_listener *l);

/* The bound address as a URL, port resolved ("tcp://127.0.0.1:43121"). Owned by l. */
const char *hs_listener_url(const struct hs_listener *l);

/* The bound port (0 for Unix). */
int hs_listener_port(const struct hs_listener *l);

/* Replaces the framing, handler argument and label used for connections accepted from now
 * on (a reload). */
void hs_listener_retarget(struct hs_listener *l, const struct hs_framing *framing, void *arg);

/* Makes every connection accepted from now on start with a TLS server handshake on ctx (a
 * server context of core/tls.h; the listener takes a reference and drops the one it held):
 * a reload swaps certificates this way while live sessions keep theirs. NULL turns TLS off. */
void hs_listener_set_tls(struct hs_listener *l, struct hs_tls_ctx *ctx);

/* The counters of the connections this listener accepted (open, messages, errors, bytes). */
const struct hs_conn_tally *hs_listener_tally(const struct hs_listener *l);

/* Total connections accepted, refused by accept_cb, and refused at the connection or
 * per-address limit (hs_conns_admit, asked before accept_cb). */
void hs_listener_counts(const struct hs_listener *l, unsigned long long *accepted,
                        unsigned long long *refused, unsigned long long *limited);

#endif
