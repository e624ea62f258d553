/* Stats snapshots as text. A snapshot is lines of "KIND key=value ..." (values escaped by
 * hs_stats_escape) from one process or from a master and its workers:
 *
 *   process worker=W pid=P lua_memory=BYTES connections=N timers=N
 *   version service=S name=N path=P generation=G open=N total=N bytes_in=N bytes_out=N
 *           messages=N errors=N handler_errors=N
 *   listener url=U name=N accepted=N refused=N limited=N open=N bytes_in=N bytes_out=N
 *            messages=N errors=N
 *   pubsub subscriptions=N published=N delivered=N dropped=N queued=BYTES capacity=BYTES
 *   script service=S name=N path=P generation=G reloads=N reload_time=SECONDS reload_ok=0|1
 *          reload_error=TEXT
 *   dict name=N size=B capacity=B used=B free=B max_value=B keys=N evicted=N expired=N
 *        recoveries=N
 *
 * "version", "listener" and "pubsub" lines belong to the "process" line before them (its
 * worker number labels them; 0 in a single-process server). "script" lines describe each
 * service once; S, the service's place in the config from 1, keys versions (two services may
 * run one file). "dict" lines describe each shared dictionary once. A UDP listener accepts
 * nothing: its messages are the datagrams it received. This module renders a snapshot for
 * people (hotsock stats) and for Prometheus (--metrics). */
#ifndef HS_STATS_TEXT_H
#define HS_STATS_TEXT_H

#include <stddef.h>

#define HS_STATS_SNAPSHOT_MAX (256 * 1024) /* bytes of one snapshot */

/* Renders snapshot as a human table into out (n bytes, NUL-terminated): listeners, then one
 * row per script version with the workers' counters summed (by service, then generation),
 * then scripts with their reload state, then one row per worker (pid, connections, Lua
 * memory). A name two services share is shown with the service's place ("greeting[3]").
 * Returns the length. */
size_t hs_stats_render_table(const char *snapshot, char *out, size_t n);

/* Renders snapshot in the Prometheus text exposition format (version 0.0.4), one family per
 * metric, labelled by script, service, path, generation, listener and worker. Returns the
 * length. */
size_t hs_stats_render_prometheus(const char *snapshot, char *out, size_t n);

#endif
