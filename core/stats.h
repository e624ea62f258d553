/* Live statistics of one process: counters per script version (connections open and total,
 * bytes in and out, messages, errors, handler errors), kept in a fixed table that outlives the
 * versions so an old generation's totals stay readable after its last connection closed.
 * Plain C, no Lua: the Lua dispatch (lua_api.c, lua_http.c) counts, the server writes the
 * snapshot as text lines (the "stats" control command and the worker channel carry them), and
 * core/stats_text.c turns lines from one or many processes into a table or Prometheus text. */
#ifndef HS_STATS_H
#define HS_STATS_H

#include <stddef.h>
#include <stdint.h>

#define HS_STATS_MAX_ROWS 256 /* script versions remembered per process */

struct hs_stats_row;

/* The row of (service, generation), created on first use with path and name as its labels
 * (copied). service is the script's place in the config, from 1: two services running one
 * script file are two rows, and every worker numbers services alike.
 * The row is pinned until hs_stats_row_release: a pinned row is never recycled. When the table
 * is full the oldest unpinned row is reused; when every row is pinned the result is NULL, and
 * every counting function below accepts NULL (and does nothing). */
struct hs_stats_row *hs_stats_row_get(unsigned service, const char *path, const char *name,
                                      unsigned generation);

/* Drops one pin of r (NULL is fine). */
void hs_stats_row_release(struct hs_stats_row *r);

/* A connection of this version opened. */
void hs_stats_conn_open(struct hs_stats_row *r);

/* A live connection moved from one version to another (adoption after a reload, or an HTTP
 * connection whose next request runs a newer version) after bytes_in / bytes_out bytes: those
 * stay counted with from, like the messages it handled; to counts the rest at the close. */
void hs_stats_conn_move(struct hs_stats_row *from, struct hs_stats_row *to, uint64_t bytes_in,
                        uint64_t bytes_out);

/* A connection of this version closed with reason after bytes_in / bytes_out bytes. A reason
 * other than an orderly one ("peer closed", "reset", "closed", "shutdown", "idle timeout",
 * "keep-alive timeout", "handler error": a close by either side) counts as an error. */
void hs_stats_conn_closed(struct hs_stats_row *r, const char *reason, uint64_t bytes_in,
                          uint64_t bytes_out);

/* 1 when a close reason is an orderly one (see hs_stats_conn_closed), 0 for an error. */
int hs_stats_reason_orderly(const char *reason);

/* One message (frame, request or datagram) handed to the script; bytes_in is added to the
 * byte count for datagrams (stream bytes are counted per connection), else 0. */
void hs_stats_message(struct hs_stats_row *r, uint64_t bytes_in);

/* bytes sent outside a stream connection (a datagram). */
void hs_stats_bytes_out(struct hs_stats_row *r, uint64_t bytes);

/* A script callback raised an error. */
void hs_stats_handler_error(struct hs_stats_row *r);

/* Snapshot support: bytes of connections still open are not in the totals yet. Before a
 * snapshot call hs_stats_live_reset, then hs_stats_live_add for each open connection. */
void hs_stats_live_reset(void);
void hs_stats_live_add(struct hs_stats_row *r, uint64_t bytes_in, uint64_t bytes_out);

/* Writes one line per row into out (at most n bytes, NUL-terminated), by service then
 * generation: "version service=S name=NAME path=PATH generation=G open=N total=N bytes_in=N
 * bytes_out=N messages=N errors=N handler_errors=N\n" (NAME and PATH escaped by
 * hs_stats_escape), live bytes included. Returns the length written. */
size_t hs_stats_write(char *out, size_t n);

/* Copies s into out (n bytes, NUL-terminated) with space, '%', '=', control bytes and
 * non-ASCII bytes written as %HH, so it is one token of a stats line. */
void hs_stats_escape(const char *s, char *out, size_t n);

/* Undoes hs_stats_escape in place. */
void hs_stats_unescape(char *s);

/* Forgets every row (tests). */
void hs_stats_reset(void);

#endif
