/* The control socket: a Unix stream socket on which `hotsock reload` (and later other
 * commands) talks to a running server. One command line in, a text reply, then close. */
#ifndef HS_CONTROL_H
#define HS_CONTROL_H

#include <stddef.h>

struct event_base;
struct hs_control;

/* Runs a command (the line received, without its newline) and writes the reply, at most
 * n bytes, into out. The reply's first line starts with "ok" or "error". */
typedef void (*hs_control_cmd_cb)(const char *cmd, char *out, size_t n, void *arg);

/* Listens on path. A live socket there (another server answers) is -EADDRINUSE; a stale
 * one is replaced. `who` (copied) describes the instance in the answer to "ping"
 * ("ok pong PID WHO"), which the control socket gives itself. Returns 0 and *out, or a
 * negative code. */
int hs_control_new(struct event_base *base, const char *path, const char *who, hs_control_cmd_cb cb,
                   void *arg, struct hs_control **out);

/* The control socket of a server, by the one policy both process modes use. configured is
 * --control (NULL: the default, "none": no socket); key is the file naming the instance (the
 * config file, else the first script). The default is a socket of its own per instance,
 * hs_control_instance_path(key, i) with the first i that no live server holds. Returns 0 with
 * *out (NULL when there is none: "none", or the default could not be had, which is logged as
 * a warning saying SIGHUP still reloads) and the path in path; or -1 with err set when the
 * configured path cannot be had. */
int hs_control_start(struct event_base *base, const char *configured, const char *key,
                     hs_control_cmd_cb cb, void *arg, struct hs_control **out, char *path,
                     size_t pathlen, char *err, size_t errlen);

/* Serves the control socket fd handed over by the process this one replaces (an upgrade):
 * its path is read from the socket into path (pathlen bytes); key names the instance as for
 * hs_control_start. fd is the result's (closed on failure). Returns 0 and *out, or a negative
 * code. */
int hs_control_adopt(struct event_base *base, int fd, const char *key, hs_control_cmd_cb cb,
                     void *arg, struct hs_control **out, char *path, size_t pathlen);

/* The listening socket (to hand over on an upgrade). */
int hs_control_fd(const struct hs_control *ctl);

/* The socket now belongs to the process that replaces this one: stop accepting on it and
 * leave its file when freed. Open control connections (the `hotsock upgrade` waiting for its
 * reply) go on. */
void hs_control_handover(struct hs_control *ctl);

/* How many control connections are open (a reply may still be on its way). */
unsigned hs_control_busy(const struct hs_control *ctl);

/* Closes the socket, removes its file and frees c (open control connections are aborted). */
void hs_control_free(struct hs_control *c);

#define HS_CONTROL_MAX_SAME 16 /* instances of one key on one machine, each with a socket */

/* The directory holding this user's control sockets, one per running instance:
 * $XDG_RUNTIME_DIR/hotsock, else /tmp/hotsock-UID. With create, makes it (mode 0700) and
 * checks that it is a directory of ours that no one else may enter (-EPERM otherwise: a
 * shared /tmp must not let another user plant sockets). Returns 0 or a negative code. */
int hs_control_dir(char *buf, size_t n, int create);

/* The default control socket of the instance named by key (a config file or script; its real
 * path is what counts, so any spelling of one file gives one name): DIR/NAME-HASH.ctl for
 * index 0, DIR/NAME-HASH.N.ctl (N = index + 1) for later instances of the same key. NAME is
 * the file's base name without ".lua". Returns 0, or -ENAMETOOLONG. */
int hs_control_instance_path(const char *key, unsigned index, char *buf, size_t n);

/* Client side of the defaults: finds the control socket of the running instance of key, or
 * of any instance when key is NULL. Returns 0 with its path in path; 1 when none runs (msg:
 * "no hotsock is running here (...)", naming the socket looked for, or a stale one left by a
 * server that is gone); 2 when several do (msg lists them, one per line: path, pid and what
 * each serves). */
int hs_control_find(const char *key, char *path, size_t pathlen, char *msg, size_t msglen);

/* Client side: connects to path, sends cmd and a newline, and copies the reply (up to n - 1
 * bytes, NUL-terminated) into out, waiting at most timeout_ms. Returns 0 or a negative
 * code (-ENOENT / -ECONNREFUSED: no server there; -ETIMEDOUT). */
int hs_control_request(const char *path, const char *cmd, char *out, size_t n, unsigned timeout_ms);

#endif
