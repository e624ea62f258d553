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
 * one is replaced. Returns 0 and *out, or a negative code. */
int hs_control_new(struct event_base *base, const char *path, hs_control_cmd_cb cb, void *arg,
                   struct hs_control **out);

/* Closes the socket, removes its file and frees c (open control connections are aborted). */
void hs_control_free(struct hs_control *c);

/* The default path: $XDG_RUNTIME_DIR/hotsock.ctl, or /tmp/hotsock-UID.ctl. */
void hs_control_default_path(char *buf, size_t n);

/* Client side: connects to path, sends cmd and a newline, and copies the reply (up to n - 1
 * bytes, NUL-terminated) into out, waiting at most timeout_ms. Returns 0 or a negative
 * code (-ENOENT / -ECONNREFUSED: no server there; -ETIMEDOUT). */
int hs_control_request(const char *path, const char *cmd, char *out, size_t n, unsigned timeout_ms);

#endif
