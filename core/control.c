#include "core/control.h"
#include "core/addr.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#define CONTROL_REPLY_MAX (256 * 1024) /* bytes in one reply (a stats snapshot) */
#define CONTROL_LINE_MAX 1024          /* bytes in one command */

struct hs_control {
    struct hs_conns *set; /* control connections, apart from served ones */
    struct hs_listener *listener;
    hs_control_cmd_cb cb;
    void *arg;
};

static void control_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f,
                          void *arg)
{
    struct hs_control *ctl = arg;
    char cmd[CONTROL_LINE_MAX + 1];
    size_t n = (size_t)f->len < CONTROL_LINE_MAX ? (size_t)f->len : CONTROL_LINE_MAX;
    evbuffer_copyout(in, cmd, n);
    cmd[n] = '\0';
    char *reply = malloc(CONTROL_REPLY_MAX);
    if (reply == NULL) {
        hs_conn_abort(c, "out of memory");
        return;
    }
    reply[0] = '\0';
    ctl->cb(cmd, reply, CONTROL_REPLY_MAX, ctl->arg);
    hs_conn_send(c, reply, strlen(reply));
    free(reply);
    hs_conn_close(c, "closed");
}

static const struct hs_conn_handler control_handler = {
    .on_frame = control_frame,
};

void hs_control_default_path(char *buf, size_t n)
{
    const char *dir = getenv("XDG_RUNTIME_DIR");
    if (dir && *dir)
        snprintf(buf, n, "%s/hotsock.ctl", dir);
    else
        snprintf(buf, n, "/tmp/hotsock-%ld.ctl", (long)getuid());
}

int hs_control_new(struct event_base *base, const char *path, hs_control_cmd_cb cb, void *arg,
                   struct hs_control **out)
{
    /* A server already answering there keeps its socket. */
    char probe[8];
    if (hs_control_request(path, "ping", probe, sizeof probe, 500) == 0)
        return -EADDRINUSE;
    struct hs_control *ctl = calloc(1, sizeof *ctl);
    if (ctl == NULL)
        return -ENOMEM;
    ctl->cb = cb;
    ctl->arg = arg;
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    limits.max_connections = 16;
    limits.idle_timeout_ms = 10000;
    ctl->set = hs_conns_new(base, &limits);
    struct hs_addr a;
    const char *why;
    char url[HS_ADDR_MAX_PATH + 8];
    snprintf(url, sizeof url, "unix:%s", path);
    int r = ctl->set ? hs_addr_parse(url, &a, &why) : -ENOMEM;
    if (r == 0) {
        struct hs_framing f;
        hs_framing_init(&f, HS_FRAMING_LINE);
        f.max = CONTROL_LINE_MAX;
        r = hs_listener_new(base, ctl->set, &a, "control", &f, &control_handler, ctl, NULL,
                            &ctl->listener);
    }
    if (r != 0) {
        hs_conns_free(ctl->set);
        free(ctl);
        return r;
    }
    *out = ctl;
    return 0;
}

void hs_control_free(struct hs_control *ctl)
{
    if (ctl == NULL)
        return;
    hs_listener_free(ctl->listener);
    hs_conns_free(ctl->set);
    free(ctl);
}

int hs_control_request(const char *path, const char *cmd, char *out, size_t n, unsigned timeout_ms)
{
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof su.sun_path)
        return -ENAMETOOLONG;
    strcpy(su.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&su, sizeof su) != 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    char line[CONTROL_LINE_MAX + 2];
    int len = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(fd, line, (size_t)len) != len) {
        close(fd);
        return -EIO;
    }
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            close(fd);
            return pr == 0 ? -ETIMEDOUT : -errno;
        }
        char buf[4096];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r;
        if (got + take > n - 1)
            take = n - 1 - got;
        memcpy(out + got, buf, take);
        got += take;
    }
    out[got] = '\0';
    close(fd);
    return 0;
}
