#include "core/worker_chan.h"
#include "core/clock.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#define ENV_WORKER "HOTSOCK_WORKER"   /* "INDEX,FD" */
#define ENV_SOCKETS "HOTSOCK_SOCKETS" /* the socket map */
#define CMD_LINE_MAX 256              /* a request line, at the worker's end */
#define REPLY_LINE_MAX 4096           /* a reply line, at the master's end */

static const char *const cmd_names[] = {"prepare", "commit", "discard", "stats"};

int hs_worker_chan_socket_fd(const char *map, const char *url, size_t len, size_t skip)
{
    if (map == NULL)
        return -1;
    size_t ul = len ? len : strlen(url);
    for (const char *p = map; *p;) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ';');
        if (eq == NULL)
            break;
        if (end == NULL)
            end = p + strlen(p);
        if ((size_t)(eq - p) == ul && memcmp(p, url, ul) == 0 && skip-- == 0)
            return atoi(eq + 1);
        p = *end ? end + 1 : end;
    }
    return -1;
}

int hs_worker_chan_socket_next(const char **p, char *url, size_t n, int *fd)
{
    const char *eq = strchr(*p, '=');
    if (eq == NULL)
        return 0;
    snprintf(url, n, "%.*s", (int)(eq - *p), *p);
    *fd = atoi(eq + 1);
    const char *end = strchr(eq, ';');
    *p = end ? end + 1 : eq + strlen(eq);
    return 1;
}

void hs_worker_chan_socket_put(char *map, size_t n, size_t *used, const char *url, size_t len,
                               int fd)
{
    if (*used + 1 >= n)
        return;
    int w = snprintf(map + *used, n - *used, "%s%.*s=%d", *used ? ";" : "",
                     (int)(len ? len : strlen(url)), url, fd);
    if (w > 0 && *used + (size_t)w < n)
        *used += (size_t)w;
    else
        map[*used] = '\0'; /* a cut entry would name a wrong descriptor */
}

/* ---- the master's end ---- */

/* Reads one line (without its newline) from fd by the deadline. Byte by byte: nothing past
 * the line may be consumed, it belongs to the next reply. Returns 0 or -ETIMEDOUT. */
static int read_line(int fd, char *buf, size_t n, double deadline)
{
    size_t got = 0;
    while (got + 1 < n) {
        int left = (int)((deadline - hs_clock_mono()) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0)
            return -ETIMEDOUT;
        /* poll is never restarted after a signal (the Lua watchdog's tick is one). */
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -ETIMEDOUT;
        ssize_t r = read(fd, buf + got, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -ETIMEDOUT;
        if (buf[got] == '\n') {
            buf[got] = '\0';
            return 0;
        }
        got++;
    }
    return -ETIMEDOUT;
}

/* Writes all of text to fd. Returns 0, or -1 when the other end is gone. */
static int write_all(int fd, const char *text, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

int hs_worker_chan_pair(int *master_end, int *worker_end)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    *master_end = sv[0];
    *worker_end = sv[1];
    return 0;
}

void hs_worker_chan_export(int index, int worker_end, const char *sockets)
{
    char env[64];
    fcntl(worker_end, F_SETFD, 0);
    char url[HS_WORKER_CHAN_SOCKETS_MAX];
    int fd;
    for (const char *p = sockets; hs_worker_chan_socket_next(&p, url, sizeof url, &fd);)
        fcntl(fd, F_SETFD, 0);
    snprintf(env, sizeof env, "%d,%d", index, worker_end);
    setenv(ENV_WORKER, env, 1);
    setenv(ENV_SOCKETS, sockets, 1);
}

int hs_worker_chan_wait_ready(int fd, int timeout_ms)
{
    char line[64];
    int r = read_line(fd, line, sizeof line, hs_clock_mono() + timeout_ms / 1000.0);
    return r == 0 && strcmp(line, "ready") == 0 ? 0 : -ETIMEDOUT;
}

int hs_worker_chan_request(int fd, enum hs_worker_chan_cmd cmd, char *out, size_t n, int timeout_ms)
{
    char line[REPLY_LINE_MAX];
    double deadline = hs_clock_mono() + timeout_ms / 1000.0;
    if (n)
        out[0] = '\0';
    snprintf(line, sizeof line, "%s\n", cmd_names[cmd]);
    if (write_all(fd, line, strlen(line)) != 0)
        return -ETIMEDOUT;
    if (cmd != HS_WORKER_CHAN_STATS) {
        if (read_line(fd, line, sizeof line, deadline) != 0)
            return -ETIMEDOUT;
        snprintf(out, n, "%s", line);
        return strncmp(line, "ok", 2) == 0 ? 0 : 1;
    }
    size_t used = 0;
    for (;;) {
        if (read_line(fd, line, sizeof line, deadline) != 0)
            return -ETIMEDOUT;
        if (strcmp(line, "end") == 0)
            return 0;
        int w = snprintf(out + used, n - used, "%s\n", line);
        if (w > 0 && used + (size_t)w < n)
            used += (size_t)w;
        else if (n)
            out[used] = '\0';
    }
}

/* ---- the worker's end ---- */

struct hs_worker_chan {
    int fd;
    struct event *ev;
    hs_worker_chan_cmd_cb cb;
    hs_worker_chan_gone_cb gone;
    void *arg;
    char buf[CMD_LINE_MAX]; /* a partial request line */
    size_t len;
};

int hs_worker_chan_import(int *fd, char *sockets, size_t n)
{
    const char *wenv = getenv(ENV_WORKER);
    int index = 0, chan = -1;
    if (wenv == NULL || sscanf(wenv, "%d,%d", &index, &chan) != 2 || index <= 0)
        return 0;
    const char *se = getenv(ENV_SOCKETS);
    snprintf(sockets, n, "%s", se ? se : "");
    unsetenv(ENV_WORKER);
    unsetenv(ENV_SOCKETS);
    *fd = chan;
    return index;
}

/* Runs one request line and sends its reply. */
static void answer(struct hs_worker_chan *c, const char *line)
{
    static char out[HS_WORKER_CHAN_REPLY_MAX];
    size_t i = 0;
    while (i < sizeof cmd_names / sizeof cmd_names[0] && strcmp(line, cmd_names[i]) != 0)
        i++;
    if (i == sizeof cmd_names / sizeof cmd_names[0]) {
        write_all(c->fd, "error unknown command\n", 22);
        return;
    }
    enum hs_worker_chan_cmd cmd = (enum hs_worker_chan_cmd)i;
    out[0] = '\0';
    if (cmd == HS_WORKER_CHAN_STATS) {
        /* Several lines, then "end": the master reads until it. */
        c->cb(cmd, out, sizeof out - 8, c->arg);
        strcat(out, "end\n");
    } else {
        char reason[1800];
        reason[0] = '\0';
        if (c->cb(cmd, reason, sizeof reason, c->arg) == 0) {
            snprintf(out, sizeof out, "ok\n");
        } else {
            /* One line: a reason spanning lines would end the reply early. */
            for (char *p = reason; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            snprintf(out, sizeof out, "error %s\n", reason);
        }
    }
    write_all(c->fd, out, strlen(out));
}

static void chan_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_worker_chan *c = arg;
    HS_UNUSED(what);
    ssize_t r = read(fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        event_del(c->ev);
        c->gone(c->arg);
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    char *nl;
    while ((nl = strchr(c->buf, '\n')) != NULL) {
        *nl = '\0';
        answer(c, c->buf);
        size_t rest = c->len - (size_t)(nl + 1 - c->buf);
        memmove(c->buf, nl + 1, rest + 1);
        c->len = rest;
    }
    if (c->len == sizeof c->buf - 1)
        c->len = 0; /* a line that long is no request of ours */
}

struct hs_worker_chan *hs_worker_chan_new(struct event_base *base, int fd, hs_worker_chan_cmd_cb cb,
                                          hs_worker_chan_gone_cb gone, void *arg)
{
    struct hs_worker_chan *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->cb = cb;
    c->gone = gone;
    c->arg = arg;
    /* Nothing this worker starts later inherits its master's channel. */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    c->ev = event_new(base, fd, EV_READ | EV_PERSIST, chan_read_cb, c);
    if (c->ev == NULL) {
        free(c);
        return NULL;
    }
    event_add(c->ev, NULL);
    return c;
}

void hs_worker_chan_ready(struct hs_worker_chan *c)
{
    write_all(c->fd, "ready\n", 6);
}

void hs_worker_chan_free(struct hs_worker_chan *c)
{
    if (c == NULL)
        return;
    event_free(c->ev);
    close(c->fd);
    free(c);
}
