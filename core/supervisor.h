/* The outer layer of a hotsock process, the same in both process modes: the control socket
 * and its commands (reload, stats; ping is the socket's own), SIGHUP, SIGTERM/SIGINT with
 * their graceful stop (a second signal ends it at once; --grace bounds it), --watch and
 * --metrics. What differs between a single process (core/server.c) and the master of several
 * (core/master.c) -- how a reload is applied, where stats come from, what a stop waits for --
 * is plugged in through hs_supervisor_ops. A worker uses only the stop signals.
 *
 * It also upgrades the binary (`hotsock upgrade` on the control socket, SIGUSR2; see
 * core/upgrade.h): the new process gets every listening socket and the control socket, and
 * once it reports ready this one hands them over and drains as on SIGTERM. */
#ifndef HS_SUPERVISOR_H
#define HS_SUPERVISOR_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

struct event_base;
struct hs_supervisor;

struct hs_supervisor_ops {
    /* Reloads scripts and writes what `hotsock reload` prints into out (n bytes): one line
     * per script, "ok ..." or "error ...". which (HS_CONFIG_MAX_SERVICES flags) says which
     * scripts, on the way in; on the way out, the ones the mode reloaded (a mode that reloads
     * every script at once sets them all). Never called during a stop. Returns 0 when every
     * script reloaded, else -1. */
    int (*reload)(void *arg, int *which, char *out, size_t n);
    /* Writes the stats snapshot (core/stats_text.h lines) into out (n bytes, NUL-terminated)
     * and returns its length. */
    size_t (*stats)(void *arg, char *out, size_t n);
    /* The files of the service-th script that --watch follows (strings owned by the mode);
     * returns how many, 0 past the last script. */
    size_t (*files)(void *arg, size_t service, const char **files, size_t max);
    /* A first stop signal (SIGTERM or SIGINT; SIGUSR2 after an upgrade): stop taking new work and
     * begin finishing what is open. Returns how much is left (connections, workers): 0 ends the
     * loop now; otherwise the mode calls hs_supervisor_finished when the last one is done. */
    unsigned (*drain)(void *arg, int sig);
    /* A second stop signal (grace_over 0), or the grace period is over (grace_over 1; only
     * with grace set): finish now, then call hs_supervisor_finished. */
    void (*abort)(void *arg, int grace_over);
    /* The listening sockets as a socket map ("URL=FD;...", core/worker_chan.h) into map (n
     * bytes, NUL-terminated), for the process an upgrade starts. Returns the length. */
    size_t (*sockets)(void *arg, char *map, size_t n);
    /* An upgrade succeeded: the sockets serve the new process now. Stop accepting on them and
     * leave their Unix socket files in place; the stop (drain) follows. */
    void (*handover)(void *arg);
    int grace; /* the supervisor bounds a stop by --grace (else the mode does, e.g. workers) */
};

/* What hs_supervisor_start starts: FULL, the control socket, SIGHUP, SIGUSR2, --watch,
 * --metrics and the stop signals; STOP_ONLY (a worker), the stop signals (SIGHUP and SIGUSR2
 * are its master's). */
#define HS_SUPERVISOR_FULL 0
#define HS_SUPERVISOR_STOP_ONLY 1

/* Makes the supervisor of a process serving cfg (which must outlive it) on base; ops (kept,
 * usually static) and arg are the mode's. Returns NULL when memory runs out. */
struct hs_supervisor *hs_supervisor_new(struct event_base *base, const struct hs_config *cfg,
                                        const struct hs_supervisor_ops *ops, void *arg);

/* Starts what `what` (HS_SUPERVISOR_*) names: the stop signals (and SIGPIPE ignored), then
 * for FULL the control socket, SIGHUP, --watch and --metrics. Returns 0, or -1 with err set
 * (a control socket or metrics address that cannot be had; the stop signals work anyway). */
int hs_supervisor_start(struct hs_supervisor *sup, int what, char *err, size_t errlen);

/* Before hs_supervisor_start in a process started by an upgrade: map (kept by the caller) is
 * the socket map handed over, whose control socket is served instead of binding one. */
void hs_supervisor_adopt(struct hs_supervisor *sup, const char *map);

/* Begins a stop as if sig had arrived (e.g. a worker whose master is gone). */
void hs_supervisor_stop(struct hs_supervisor *sup, int sig);

/* The stop is complete: the loop ends. */
void hs_supervisor_finished(struct hs_supervisor *sup);

/* Prints the lines of the start banner the supervisor owns (the metrics address, the control
 * socket) to f and flushes it. */
void hs_supervisor_banner(struct hs_supervisor *sup, FILE *f);

/* The file that names this instance (its control socket, hs_control_start): the config file,
 * else the first script. Owned by cfg. */
const char *hs_supervisor_instance_key(const struct hs_config *cfg);

/* Stops everything started and frees sup (NULL is fine). */
void hs_supervisor_free(struct hs_supervisor *sup);

#endif
