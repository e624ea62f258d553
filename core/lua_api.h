/* The Lua side of hotsock: one Lua state per event loop, the `hotsock` module, connection and
 * UDP socket objects, and the dispatch of connection events to handler scripts. Other core
 * files reach Lua only through this header (and script.h), which does not include lua.h. */
#ifndef HS_LUA_API_H
#define HS_LUA_API_H

#include <stddef.h>

#include "core/conn.h"
#include "core/listener.h"
#include "core/udp.h"

struct lua_State;
struct event_base;
struct hs_lua;
struct hs_script;

/* Creates a Lua state with the standard libraries and the `hotsock` module preloaded.
 * base and set must outlive it. Returns NULL when memory runs out. */
struct hs_lua *hs_lua_new(struct event_base *base, struct hs_conns *set);

/* Sets the sandbox limits of the state; each applies to every call from C into Lua
 * (callbacks, timers, a script's top level when it loads), 0 disables it:
 * - mem_limit: bytes the state may hold. An allocation that would pass it fails, so the call
 *   fails with "not enough memory" (logged with the limit); the memory is back once the
 *   garbage goes. Outside calls (C pushing arguments) nothing is refused.
 * - time_limit_ms: a call running longer is interrupted by an error
 *   "FILE:LINE: time limit exceeded (N ms)" naming where the script was, which a pcall in the
 *   script cannot swallow for long. The library functions that loop in C on script-sized
 *   input (patterns, sort, move, concat) look at the same deadline (core/lua_sandbox.c). */
void hs_lua_set_limits(struct hs_lua *hl, size_t mem_limit, unsigned time_limit_ms);

/* Cancels every timer and closes the Lua state. Connections must be gone already. */
void hs_lua_free(struct hs_lua *hl);

/* The Lua state (for the unit tests, which push and call in it directly). */
struct lua_State *hs_lua_state(struct hs_lua *hl);

/* The handler that runs a script's callbacks for connections. Its arg is the
 * struct hs_script * of the listener; each connection is bound to the version current at
 * accept time. */
extern const struct hs_conn_handler hs_lua_conn_handler;

/* The handler for scripts that declare protocol = "http": HTTP/1.x framing in C, one
 * on_request(req, res) call per request (core/lua_http.c). Its arg is the script. */
extern const struct hs_conn_handler hs_lua_http_handler;

/* A listener accept callback that asks the script's on_accept(peer); arg is the script. */
int hs_lua_accept(struct hs_listener *l, const char *peer, void *arg);

/* The UDP callback that runs the script's on_datagram(sock, data, peer); arg is the script. */
void hs_lua_datagram(struct hs_udp *u, const char *data, size_t len, const char *peer, void *arg);

/* After a reload of s: when its current version has on_upgrade(conn), every live stream
 * connection of s on an older version is offered to it, then every WebSocket (whose
 * on_upgrade may return new on_message / on_close); those whose on_upgrade returns without
 * error move to the new version (conn.ctx intact), the others stay where they were (logged).
 * Returns how many moved (core/lua_adopt.c). */
unsigned hs_lua_adopt(struct hs_script *s, struct hs_conns *set);

/* Number of live timers (for tests and stats). */
unsigned hs_lua_timer_count(const struct hs_lua *hl);

/* Prepares a stats snapshot (core/stats.h): the bytes of every open connection of the set
 * are added, as live bytes, to the row of the version it runs (core/lua_stats.c). */
void hs_lua_stats_live(struct hs_conns *set);

/* Writes this process's publish/subscribe stats line into out (n bytes, NUL-terminated):
 * "pubsub subscriptions=N published=N delivered=N dropped=N queued=BYTES capacity=BYTES\n"
 * (core/stats_text.h). Returns the length, 0 in a process without a queue of its own. */
size_t hs_lua_pubsub_stats(struct hs_lua *hl, char *out, size_t n);

/* Lua memory in use, in bytes. */
size_t hs_lua_memory(const struct hs_lua *hl);

#endif
