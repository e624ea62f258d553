/* Outbound stream connects: a host name resolved without blocking (libevent's evdns, with
 * /etc/hosts first), every address tried in order with a non-blocking connect(2), one
 * deadline over it all. Knows nothing of Lua or of hs_conn: the result is a connected socket,
 * which the caller hands to hs_conn_new_outbound (and may start TLS on after). */
#ifndef HS_CONN_CONNECT_H
#define HS_CONN_CONNECT_H

#include <sys/socket.h>

#include "core/addr.h"

struct event_base;
struct evdns_base;
struct hs_connect;

#define HS_CONNECT_MAX_ADDRS 16 /* addresses of one name kept and tried */

/* The addresses a name resolved to, in the resolver's order. */
struct hs_resolved {
    int n;                                              /* 0..HS_CONNECT_MAX_ADDRS */
    struct sockaddr_storage addr[HS_CONNECT_MAX_ADDRS]; /* port set when one was given */
    socklen_t len[HS_CONNECT_MAX_ADDRS];
};

/* A connect's end: fd >= 0 is the connected, non-blocking, close-on-exec socket (the callee
 * owns it) and peer its address text; or fd == -1 and err is -ETIMEDOUT, -ECONNREFUSED,
 * HS_ENOHOST, -ENOENT (no Unix socket there), another negated errno of the last address
 * tried. Runs from the loop, never from inside hs_connect_start; cn is freed after it. */
typedef void (*hs_connect_cb)(struct hs_connect *cn, int fd, const char *peer, int err, void *arg);

/* A resolve's end: err 0 and res (valid during the call), or err HS_ENOHOST / -ETIMEDOUT.
 * Runs from the loop; cn is freed after it. */
typedef void (*hs_resolve_cb)(struct hs_connect *cn, int err, const struct hs_resolved *res,
                              void *arg);

/* Starts connecting to a (HS_ADDR_TCP with a host and port, or HS_ADDR_UNIX). A name is
 * looked up through *dns, created on first need on base (free it with hs_connect_dns_free);
 * literals and "localhost" need no resolver. timeout_ms (> 0) bounds resolving and connecting
 * together. Returns 0 and *out (valid until cb has run or hs_connect_cancel), or -ENOMEM. */
int hs_connect_start(struct event_base *base, struct evdns_base **dns, const struct hs_addr *a,
                     long long timeout_ms, hs_connect_cb cb, void *arg, struct hs_connect **out);

/* Starts resolving name for family (AF_UNSPEC, AF_INET or AF_INET6), as hs_connect_start
 * does before connecting. Returns 0 and *out, or -ENOMEM. */
int hs_resolve_start(struct event_base *base, struct evdns_base **dns, const char *name, int family,
                     long long timeout_ms, hs_resolve_cb cb, void *arg, struct hs_connect **out);

/* Gives a connect or resolve up before its callback ran: the callback never runs; what it
 * held (a socket, a DNS query) is released. */
void hs_connect_cancel(struct hs_connect *cn);

/* Frees a resolver made by hs_connect_start (pending queries must be cancelled first). NULL
 * is fine. */
void hs_connect_dns_free(struct evdns_base *dns);

#endif
