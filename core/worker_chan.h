/* The channel between a master (core/master.c) and each of its workers (core/server.c in
 * worker mode), written once for both ends. A worker is this binary started again with two
 * environment variables: HOTSOCK_WORKER ("INDEX,FD": its number and its end of a socketpair)
 * and HOTSOCK_SOCKETS (the socket map below: the listening sockets it inherits). On the
 * socketpair, text lines: the worker says "ready" once it serves; then the master asks and
 * the worker answers each request, in order:
 *
 *   prepare  -> "ok" | "error TEXT"   phase one of a reload (load, validate, nothing changes)
 *   commit   -> "ok"                  phase two: publish what prepare loaded
 *   discard  -> "ok"                  drop what prepare loaded
 *   stats    -> snapshot lines, "end" this worker's counters (core/stats_text.h lines)
 *
 * The end of the channel tells a worker that its master is gone. */
#ifndef HS_WORKER_CHAN_H
#define HS_WORKER_CHAN_H

#include <stddef.h>

struct event_base;
struct hs_worker_chan;

enum hs_worker_chan_cmd {
    HS_WORKER_CHAN_PREPARE,
    HS_WORKER_CHAN_COMMIT,
    HS_WORKER_CHAN_DISCARD,
    HS_WORKER_CHAN_STATS,
};

#define HS_WORKER_CHAN_SOCKETS_MAX 8192       /* bytes of a socket map */
#define HS_WORKER_CHAN_REPLY_MAX (256 * 1024) /* bytes of one reply (a stats snapshot) */

/* ---- the socket map: "URL=FD;URL=FD..." ---- */

/* Finds url in map (the whole URL, or its first len bytes when len is not 0: the part the
 * map names), skipping its first `skip` entries: two services may declare the same URL (two
 * on port 0), and the map lists their sockets in the order they were bound. Returns the
 * descriptor, or -1 when the map (NULL is fine) does not name it that often. */
int hs_worker_chan_socket_fd(const char *map, const char *url, size_t len, size_t skip);

/* Walks a map: at *p (start at the map), copies the next URL into url (n bytes, cut if
 * longer) and its descriptor into *fd, and moves *p past it. Returns 1, or 0 at the end. */
int hs_worker_chan_socket_next(const char **p, char *url, size_t n, int *fd);

/* Appends "URL=FD" (with a ';' first unless at the start) at *used of map (n bytes), never
 * past the end; url's first len bytes (0: all of it). */
void hs_worker_chan_socket_put(char *map, size_t n, size_t *used, const char *url, size_t len,
                               int fd);

/* ---- the master's end ---- */

/* Makes a channel: *master_end stays in the master, *worker_end is handed to the worker by
 * hs_worker_chan_export. Both are close-on-exec. Returns 0 or a negative errno. */
int hs_worker_chan_pair(int *master_end, int *worker_end);

/* In the forked child, before exec: keeps worker_end and every descriptor of sockets (a
 * socket map) open across exec and sets the environment naming them for worker index. */
void hs_worker_chan_export(int index, int worker_end, const char *sockets);

/* Waits up to timeout_ms for the worker's "ready". Returns 0, or -ETIMEDOUT (also when the
 * worker said something else or the channel closed). */
int hs_worker_chan_wait_ready(int fd, int timeout_ms);

/* Sends cmd and reads the reply within timeout_ms. For stats, the snapshot lines (up to "end",
 * excluded) go into out (n bytes, NUL-terminated, cut at a line when full); otherwise the
 * reply line. Returns 0 when the worker answered ok (or sent its stats), 1 when it answered
 * an error (the line, "error TEXT", in out), -ETIMEDOUT when it did not answer in time or the
 * channel is closed. */
int hs_worker_chan_request(int fd, enum hs_worker_chan_cmd cmd, char *out, size_t n,
                           int timeout_ms);

/* ---- the worker's end ---- */

/* Answers cmd: for prepare, 0, or -1 with the reason in out (n bytes); commit and discard
 * return 0; for stats, writes the snapshot into out and returns 0. */
typedef int (*hs_worker_chan_cmd_cb)(enum hs_worker_chan_cmd cmd, char *out, size_t n, void *arg);

/* The master is gone (the channel ended). */
typedef void (*hs_worker_chan_gone_cb)(void *arg);

/* In a worker: reads and clears the environment set by hs_worker_chan_export. Returns the
 * worker's index (> 0) with *fd and its socket map in sockets (n bytes); 0 in a process that
 * is no worker. */
int hs_worker_chan_import(int *fd, char *sockets, size_t n);

/* Serves the worker's end fd (owned by the result from now on) on base: each request runs cb
 * and its reply is sent; the end of the channel runs gone once. Returns NULL when memory runs
 * out. */
struct hs_worker_chan *hs_worker_chan_new(struct event_base *base, int fd, hs_worker_chan_cmd_cb cb,
                                          hs_worker_chan_gone_cb gone, void *arg);

/* Tells the master this worker serves. */
void hs_worker_chan_ready(struct hs_worker_chan *c);

/* Stops serving, closes the channel and frees c (NULL is fine). */
void hs_worker_chan_free(struct hs_worker_chan *c);

#endif
