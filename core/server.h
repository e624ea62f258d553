/* One hotsock process: an event loop, its connections, its Lua state, and the scripts with
 * their listeners, wired from a config (core/services.c). Run as a single process it plugs
 * into the supervisor (core/supervisor.h: control socket, signals, --watch, --metrics); as a
 * worker it answers its master's channel (core/worker_chan.h). */
#ifndef HS_SERVER_H
#define HS_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "core/stats_text.h"

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

/* ---- several processes (core/master.c) ---- */

/* Phase one of a reload of every script: each new version is loaded and validated (and new
 * addresses bound) without changing anything. On failure nothing is pending and err is set.
 * *addresses_changed says whether any script's set of addresses differs. */
int hs_server_prepare(struct hs_server *s, char *err, size_t errlen, int *addresses_changed);

/* Phase two: publishes what hs_server_prepare loaded. */
void hs_server_commit(struct hs_server *s);

/* Writes the report of a reload that succeeded into out (n bytes, NUL-terminated): one
 * "ok PATH generation N (MS ms)" line per script, as a single process prints it, with ms the
 * wall time the whole reload took. */
void hs_server_report(struct hs_server *s, double ms, char *out, size_t n);

/* Drops what hs_server_prepare loaded. */
void hs_server_discard(struct hs_server *s);

/* Makes s a worker: `index` (1..N) tags its log lines, `inherited` ("URL=FD;...", kept by
 * the caller) gives the sockets the master bound, used instead of binding, and chan is the
 * command channel to the master (reload phases; its end means the master is gone). Call
 * before hs_server_start; hs_server_run then serves without control socket or SIGHUP. */
void hs_server_set_worker(struct hs_server *s, int index, const char *inherited, int chan);

/* Lists every bound socket as "URL=FD;..." into map and their descriptors into fds (at most
 * max_fds). Returns the number of sockets. */
size_t hs_server_sockets(struct hs_server *s, char *map, size_t n, int *fds, size_t max_fds);

/* The files --watch follows for the service-th script into files: the script, its project
 * modules, then the certificate and key files of its tls:// addresses. Returns how many, 0
 * past the last script. The strings belong to the server (valid until the next call). */
size_t hs_server_script_files(struct hs_server *s, size_t service, const char **files, size_t max);

/* Graceful stop: closes every listening socket (connects are refused from now on) and stops
 * receiving on UDP sockets; open connections are not touched. */
void hs_server_stop_listening(struct hs_server *s);

/* In a process started by an upgrade, before hs_server_start: map ("URL=FD;...", kept by the
 * caller) gives the sockets the old process handed over, used instead of binding. */
void hs_server_adopt(struct hs_server *s, const char *map);

/* After an upgrade: the sockets serve the new process. Stops accepting on them and leaves
 * their Unix socket files in place when they are closed. */
void hs_server_handover(struct hs_server *s);

/* Stops (on = 0) or resumes accepting and receiving on every socket. */
void hs_server_accepting(struct hs_server *s, int on);

/* ---- stats (core/stats.h, core/stats_text.h) ---- */

#define HS_SERVER_STATS_COUNTERS 1 /* the process line, version rows and listener counts */
#define HS_SERVER_STATS_SCRIPTS 2  /* one "script" line per script: generation, last reload */
#define HS_SERVER_STATS_MAX HS_STATS_SNAPSHOT_MAX /* bytes of one snapshot */

/* Writes this process's stats snapshot (what: HS_SERVER_STATS_* bits) into out (n bytes,
 * NUL-terminated) in the line format of core/stats_text.h. Returns the length. */
size_t hs_server_stats(struct hs_server *s, int what, char *out, size_t n);

/* Records a reload that failed outside this process (a worker refused it) for every script. */
void hs_server_note_reload_failed(struct hs_server *s, const char *err);

/* Prints the start of the banner to f: version and pid (plus extra, e.g. ", 4 workers"), then
 * one line per bound address with its script name and path (hs_supervisor_banner adds the
 * metrics and control addresses). */
void hs_server_banner(struct hs_server *s, FILE *f, const char *extra);

/* Frees everything; connections still open are aborted. */
void hs_server_free(struct hs_server *s);

#endif
