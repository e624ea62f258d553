/* What core/server.c (the process), core/services.c (scripts and their sockets) and
 * core/server_stats.c (the snapshot) share: the server's own structures. Nothing outside
 * these three files includes this header. */
#ifndef HS_SERVER_INTERNAL_H
#define HS_SERVER_INTERNAL_H

#include "core/server.h"
#include "core/addr.h"
#include "core/framing.h"

#define SERVER_MAX_BOUND 16 /* addresses of one service */

/* One address a service is bound to, under the URL it was asked for. */
struct bound {
    char url[HS_ADDR_MAX_URL];    /* as requested (port 0 stays 0), options included */
    struct hs_listener *listener; /* TCP or Unix, or NULL */
    struct hs_udp *udp;           /* UDP, or NULL */
    struct hs_tls_ctx *tls;       /* tls://: the certificates new handshakes use, or NULL */
};

struct service {
    const struct hs_service_spec *spec;
    struct hs_script *script;
    struct hs_framing framing; /* for new connections */
    struct bound bound[SERVER_MAX_BOUND];
    size_t n_bound;
    /* A reload between its prepare and commit phases: */
    struct hs_script_pending *pending; /* the new version, or NULL */
    struct hs_framing next_framing;
    struct bound next[SERVER_MAX_BOUND]; /* the addresses after the reload */
    size_t n_next;
    int fresh[SERVER_MAX_BOUND]; /* next[i] was bound by this reload */
    int kept[SERVER_MAX_BOUND];  /* bound[i] stays */
    /* The last reload attempt, for stats: */
    unsigned reloads;        /* attempts */
    double reload_time;      /* wall clock seconds of the last one, 0 if none */
    int reload_ok;           /* it succeeded */
    char reload_error[1024]; /* its error, "" when it succeeded */
};

struct hs_server {
    const struct hs_config *cfg;
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    struct service services[HS_CONFIG_MAX_SERVICES];
    size_t n_services;
    struct hs_supervisor *sup;       /* while running: signals, control, watch, metrics */
    int worker;                      /* worker number (1..N) in a multi-process server, else 0 */
    const char *inherited;           /* "URL=FD;..." sockets bound by the master, or NULL */
    int chan;                        /* worker: its end of the master's channel, else -1 */
    struct hs_worker_chan *chan_end; /* serving chan while running */
    struct hs_pubsub_redis *redis;   /* --pubsub link while running, or NULL */
};

/* Reloads the services flagged in which (all when NULL) in one step each (prepare, then
 * commit). Writes one line per service into out (n bytes): "ok PATH generation N (MS ms)" or
 * "error MESSAGE". Returns 0 when all reloaded, else -1. */
int hs__server_reload(struct hs_server *s, const int *which, char *out, size_t n);

/* Frees every bound socket (before the connections). */
void hs__server_unbind(struct hs_server *s);

/* Frees every script (after the connections, before the Lua state). */
void hs__server_unload(struct hs_server *s);

#endif
