/* Several worker processes, each an event loop with its own Lua state, supervised by a
 * master. The master loads and validates the scripts once and binds every address; workers
 * are this binary started again, inheriting the sockets, so the kernel spreads connections
 * and datagrams across them. A dead worker is restarted at once (a worker that keeps dying
 * at start, with growing delays); a reload is validated by the master and then applied in
 * two phases, so every worker runs the same version afterwards or none changes. */
#ifndef HS_MASTER_H
#define HS_MASTER_H

#include "core/config.h"

/* Runs the master until SIGTERM/SIGINT (or an upgrade) has stopped every worker. argv is the
 * command line to start workers with (NULL-terminated, kept by the caller); adopted (or NULL)
 * the socket map an upgrade handed over (core/upgrade.h), kept by the caller. Returns the
 * exit status. */
int hs_master_run(const struct hs_config *cfg, int workers, char **argv, const char *adopted);

#endif
