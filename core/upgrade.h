/* Upgrading the binary without closing listeners (`hotsock upgrade`, SIGUSR2). The running
 * process starts the binary at its own path again with the same arguments, handing it every
 * listening socket (and the control socket) as inherited descriptors named in
 * HOTSOCK_UPGRADE_SOCKETS (the socket map of core/worker_chan.h), and a pipe in
 * HOTSOCK_UPGRADE on which the new process says "ready" once it serves (scripts loaded,
 * workers started) or "error REASON". Only then does the old process stop accepting and
 * drain; otherwise it keeps serving. This module holds both ends. */
#ifndef HS_UPGRADE_H
#define HS_UPGRADE_H

#include <stddef.h>
#include <sys/types.h>

#define HS_UPGRADE_READY_MS 30000    /* the new process must be ready within this */
#define HS_UPGRADE_CONTROL "control" /* the socket map's name for the control socket */

/* At start, in every serving process: remembers argv (kept by the caller) and the binary to
 * start on an upgrade: $HOTSOCK_BINARY when set (tests point it elsewhere), else this
 * process's own executable, resolved now (after a package update replaces the file, its
 * path names the new binary). */
void hs_upgrade_init(char **argv);

/* ---- the old process ---- */

/* Starts the new process with the sockets of map (their descriptors are made inheritable in
 * the child only) and waits up to HS_UPGRADE_READY_MS for it to be ready. Blocking: the
 * caller's loop pauses meanwhile (connections wait in the listen queues; none is refused).
 * Returns 0 with *pid, or -1 with why in msg (msglen bytes): it could not start, exited (its
 * status and what it said), or was not ready in time (it is then stopped). */
int hs_upgrade_start(const char *map, pid_t *pid, char *msg, size_t msglen);

/* ---- the new process ---- */

/* Whether this process was started by an upgrade; if so its socket map is copied into map
 * (n bytes) and the environment cleared (its workers must not see it). Returns 1 or 0. */
int hs_upgrade_import(char *map, size_t n);

/* Tells the old process this one serves. Once; nothing when not started by an upgrade. */
void hs_upgrade_ready(void);

/* Tells the old process why this one cannot serve (it then keeps serving). Once; nothing
 * when not started by an upgrade or after hs_upgrade_ready. */
void hs_upgrade_failed(const char *why);

#endif
