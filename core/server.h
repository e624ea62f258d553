/* One hotsock process: an event loop, its connections, its Lua state, and the scripts with
 * their listeners, wired from a config. Also owns the process's signals: SIGTERM/SIGINT
 * drain and exit, SIGHUP reloads. */
#ifndef HS_SERVER_H
#define HS_SERVER_H

#include <stddef.h>

#include "core/config.h"

struct hs_server;

/* Creates the loop, connection set and Lua state for cfg (which must outlive the server).
 * Returns NULL when memory runs out. */
struct hs_server *hs_server_new(const struct hs_config *cfg);

/* Loads every script and binds every listener, logging "listening URL NAME" for each.
 * Returns 0, or -1 with err set to a one-line reason (script file:line, or the address and
 * the system's reason for a bind failure). */
int hs_server_start(struct hs_server *s, char *err, size_t errlen);

/* Runs until a graceful stop completes. Returns the process exit status (0). */
int hs_server_run(struct hs_server *s);

/* Reloads every script. Returns 0 when all reloaded, or -1 with err set to the first error
 * (scripts that failed keep their current version). */
int hs_server_reload(struct hs_server *s, char *err, size_t errlen);

/* Frees everything; connections still open are aborted. */
void hs_server_free(struct hs_server *s);

#endif
