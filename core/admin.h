/* An endpoint of the server's own (the control socket, the metrics listener): a listener on a
 * connection set of its own, apart from the served connections, so its clients neither count
 * against the served limits nor hold up a drain, with a small cap on connections and an idle
 * timeout of its own. The protocol is the owner's handler. */
#ifndef HS_ADMIN_H
#define HS_ADMIN_H

#include "core/addr.h"
#include "core/conn.h"
#include "core/framing.h"

struct event_base;
struct hs_admin;
struct hs_listener;

/* Listens on addr (fd < 0), or takes over fd, a socket already bound to addr and listening
 * (it is the admin endpoint's, or closed, once this returns). Connections get a copy of
 * framing and are run by handler with arg (which must outlive the endpoint); at most
 * max_connections are open at once, and one without traffic for idle_timeout_ms is closed.
 * name (copied) labels log lines. Returns 0 and *out, or a negative code (-ENOMEM, or those
 * of hs_listener_new and hs_listener_adopt_fd). */
int hs_admin_new(struct event_base *base, const struct hs_addr *addr, int fd, const char *name,
                 const struct hs_framing *framing, unsigned max_connections,
                 unsigned idle_timeout_ms, const struct hs_conn_handler *handler, void *arg,
                 struct hs_admin **out);

/* Its listener (owned by a): its URL, descriptor, ownership of a Unix socket file. */
struct hs_listener *hs_admin_listener(const struct hs_admin *a);

/* How many of its connections are open. */
unsigned hs_admin_busy(const struct hs_admin *a);

/* Stops listening, aborts its open connections and frees a (NULL is fine). */
void hs_admin_free(struct hs_admin *a);

#endif
