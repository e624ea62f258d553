/* realpath(3) is X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700

#include "core/control.h"
#include "core/addr.h"
#include "core/admin.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#define CONTROL_REPLY_MAX (256 * 1024) /* bytes in one reply (a stats snapshot) */
#define CONTROL_LINE_MAX 1024          /* bytes in one command */
#define CONTROL_NAME_MAX 32            /* bytes of a script's name in its socket's name */
#define CONTROL_PING_MS 2000           /* a live server answers "ping" within this */
#define CONTROL_FIND_MAX 64            /* sockets hs_control_find looks at */

#define CONTROL_MAX_CONNS 16  /* control connections open at once */
#define CONTROL_IDLE_MS 10000 /* a silent control connection is closed after this */

struct hs_control {
    struct hs_admin *admin; /* the socket and its connections, apart from served ones */
    hs_control_cmd_cb cb;
    void *arg;
    char who[PATH_MAX]; /* what this instance serves, for "ping" */
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
    /* "ping" proves a live server and says which one (hs_control_find lists these). */
    if (strcmp(cmd, "ping") == 0)
        snprintf(reply, CONTROL_REPLY_MAX, "ok pong %ld %s\n", (long)getpid(), ctl->who);
    else
        ctl->cb(cmd, reply, CONTROL_REPLY_MAX, ctl->arg);
    hs_conn_send(c, reply, strlen(reply));
    free(reply);
    hs_conn_close(c, "closed");
}

static const struct hs_conn_handler control_handler = {
    .on_frame = control_frame,
};

int hs_control_dir(char *buf, size_t n, int create)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int w = xdg && *xdg ? snprintf(buf, n, "%s/hotsock", xdg)
                        : snprintf(buf, n, "/tmp/hotsock-%ld", (long)getuid());
    if (w < 0 || (size_t)w >= n)
        return -ENAMETOOLONG;
    if (!create)
        return 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    /* lstat: a symbolic link planted in /tmp by someone else is not our directory. */
    struct stat st;
    if (lstat(buf, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0)
        return -EPERM;
    return 0;
}

/* The real path of key, or key made absolute when it does not exist (a client asking about a
 * file that has gone still gets the name a server would have used). */
static void instance_real_path(const char *key, char *out, size_t n)
{
    char real[PATH_MAX];
    if (realpath(key, real) != NULL) {
        snprintf(out, n, "%s", real);
        return;
    }
    char cwd[PATH_MAX];
    int w;
    if (key[0] != '/' && getcwd(cwd, sizeof cwd) != NULL)
        w = snprintf(out, n, "%s/%s", cwd, key);
    else
        w = snprintf(out, n, "%s", key);
    /* A path longer than out is cut (snprintf still ends it): the name and hash made from it
     * stay stable, which is all an instance key needs. */
    if (w < 0 && n > 0)
        out[0] = '\0';
}

/* "NAME-HASH": the key's base name without ".lua" (bytes other than [A-Za-z0-9._-] become
 * '_') and the FNV-1a hash of its real path, so scripts of one name in two directories differ. */
static void instance_stem(const char *key, char *out, size_t n)
{
    char real[PATH_MAX];
    instance_real_path(key, real, sizeof real);
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)real; *p; p++)
        h = (h ^ *p) * 16777619u;
    const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".lua") == 0)
        len -= 4;
    if (len > CONTROL_NAME_MAX)
        len = CONTROL_NAME_MAX;
    char name[CONTROL_NAME_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char c = base[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        name[i] = ok ? c : '_';
    }
    name[len] = '\0';
    snprintf(out, n, "%s-%08x", len ? name : "hotsock", (unsigned)h);
}

int hs_control_instance_path(const char *key, unsigned index, char *buf, size_t n)
{
    char dir[HS_ADDR_MAX_PATH], stem[CONTROL_NAME_MAX + 16];
    int r = hs_control_dir(dir, sizeof dir, 0);
    if (r != 0)
        return r;
    instance_stem(key, stem, sizeof stem);
    int w = index == 0 ? snprintf(buf, n, "%s/%s.ctl", dir, stem)
                       : snprintf(buf, n, "%s/%s.%u.ctl", dir, stem, index + 1);
    /* A Unix socket's path must fit sockaddr_un. */
    if (w < 0 || (size_t)w >= n || (size_t)w >= sizeof((struct sockaddr_un *)0)->sun_path)
        return -ENAMETOOLONG;
    return 0;
}

static const char *control_why(int r)
{
    return r == -EADDRINUSE ? "another hotsock answers there"
           : r == -EPERM    ? "not a private directory of this user"
                            : hs_strerror(r);
}

int hs_control_start(struct event_base *base, const char *configured, const char *key,
                     hs_control_cmd_cb cb, void *arg, struct hs_control **out, char *path,
                     size_t pathlen, char *err, size_t errlen)
{
    char who[PATH_MAX];
    instance_real_path(key, who, sizeof who);
    *out = NULL;
    path[0] = '\0';
    if (configured && strcmp(configured, "none") == 0)
        return 0;
    int r;
    if (configured) {
        snprintf(path, pathlen, "%s", configured);
        r = hs_control_new(base, path, who, cb, arg, out);
        if (r != 0) {
            snprintf(err, errlen, "cannot use control socket %s: %s", path, control_why(r));
            path[0] = '\0';
            return -1;
        }
    } else {
        /* Later instances of one key take the next free name. */
        r = hs_control_dir(path, pathlen, 1);
        for (unsigned i = 0; r == 0 && i < HS_CONTROL_MAX_SAME; i++) {
            r = hs_control_instance_path(key, i, path, pathlen);
            if (r == 0)
                r = hs_control_new(base, path, who, cb, arg, out);
            if (r == 0 || r != -EADDRINUSE)
                break;
            if (i + 1 < HS_CONTROL_MAX_SAME)
                r = 0;
        }
        if (r != 0) {
            /* The control socket is a convenience: without one the server still runs. */
            hs_log(HS_LOG_WARN, "no control socket (%s: %s); reload with SIGHUP", path,
                   control_why(r));
            path[0] = '\0';
            return 0;
        }
    }
    hs_log(HS_LOG_INFO, "control socket %s (hotsock reload --control %s)", path, path);
    return 0;
}

/* Whether a directory entry is a control socket of stem (NULL: of any instance). */
static int instance_entry(const char *name, const char *stem)
{
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 4, ".ctl") != 0)
        return 0;
    if (stem == NULL)
        return 1;
    size_t sl = strlen(stem);
    if (strncmp(name, stem, sl) != 0)
        return 0;
    const char *p = name + sl;
    if (strcmp(p, ".ctl") == 0)
        return 1;
    if (*p++ != '.' || *p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return strcmp(p, ".ctl") == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hs_control_find(const char *key, char *path, size_t pathlen, char *msg, size_t msglen)
{
    char dir[HS_ADDR_MAX_PATH], stem[CONTROL_NAME_MAX + 16], first[HS_ADDR_MAX_PATH];
    char *names[CONTROL_FIND_MAX];
    size_t n = 0;
    msg[0] = '\0';
    if (hs_control_dir(dir, sizeof dir, 0) != 0 ||
        (key && hs_control_instance_path(key, 0, first, sizeof first) != 0)) {
        snprintf(msg, msglen, "no hotsock is running here (no control socket directory)");
        return 1;
    }
    if (key)
        instance_stem(key, stem, sizeof stem);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && n < CONTROL_FIND_MAX && (e = readdir(d)) != NULL;)
        if (instance_entry(e->d_name, key ? stem : NULL) && (names[n] = strdup(e->d_name)))
            n++;
    if (d)
        closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    char live[CONTROL_FIND_MAX][HS_ADDR_MAX_PATH + 16];
    char info[CONTROL_FIND_MAX][512]; /* "PID WHAT", cut short if need be */
    char stale[HS_ADDR_MAX_PATH + 16] = "";
    size_t n_live = 0;
    for (size_t i = 0; i < n; i++) {
        char p[HS_ADDR_MAX_PATH + 16], reply[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        free(names[i]);
        int r = hs_control_request(p, "ping", reply, sizeof reply, CONTROL_PING_MS);
        if (r == 0 && strncmp(reply, "ok pong ", 8) == 0) {
            reply[strcspn(reply, "\n")] = '\0';
            snprintf(live[n_live], sizeof live[0], "%s", p);
            /* Cut short on purpose when a path is very long: it is only shown. */
            size_t len = strnlen(reply + 8, sizeof info[0] - 1);
            memcpy(info[n_live], reply + 8, len);
            info[n_live++][len] = '\0';
        } else if (r == -ECONNREFUSED && stale[0] == '\0') {
            snprintf(stale, sizeof stale, "%s", p); /* nobody listens: its server is gone */
        }
    }
    if (n_live == 1) {
        snprintf(path, pathlen, "%s", live[0]);
        return 0;
    }
    if (n_live == 0) {
        if (stale[0])
            snprintf(msg, msglen,
                     "no hotsock is running here (%s is left by a server that is gone)", stale);
        else if (key)
            snprintf(msg, msglen, "no hotsock is running here (no control socket at %s)", first);
        else
            snprintf(msg, msglen, "no hotsock is running here (no control socket in %s)", dir);
        return 1;
    }
    size_t used = 0;
    int w = snprintf(msg, msglen,
                     "%zu hotsock instances are running here; name one (SCRIPT, --config FILE "
                     "or --control PATH):\n",
                     n_live);
    for (size_t i = 0; w > 0 && i < n_live; i++) {
        used += (size_t)w;
        if (used >= msglen)
            break;
        /* info is "PID WHAT". */
        const char *what = strchr(info[i], ' ');
        w = snprintf(msg + used, msglen - used, "  %s  pid %.*s  %s\n", live[i],
                     what ? (int)(what - info[i]) : (int)strlen(info[i]), info[i],
                     what ? what + 1 : "");
    }
    return 2;
}

/* Makes the control object around fd (-1: bind path now). */
static int control_open(struct event_base *base, const char *path, int fd, const char *who,
                        hs_control_cmd_cb cb, void *arg, struct hs_control **out)
{
    struct hs_control *ctl = calloc(1, sizeof *ctl);
    int adopted = fd >= 0;
    if (ctl == NULL) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    ctl->cb = cb;
    ctl->arg = arg;
    snprintf(ctl->who, sizeof ctl->who, "%s", who ? who : "");
    struct hs_addr a;
    const char *why;
    char url[HS_ADDR_MAX_PATH + 8];
    snprintf(url, sizeof url, "unix:%s", path);
    int r = hs_addr_parse(url, &a, &why);
    if (r == 0) {
        struct hs_framing f;
        hs_framing_init(&f, HS_FRAMING_LINE);
        f.max = CONTROL_LINE_MAX;
        r = hs_admin_new(base, &a, fd, "control", &f, CONTROL_MAX_CONNS, CONTROL_IDLE_MS,
                         &control_handler, ctl, &ctl->admin);
        fd = -1; /* the admin endpoint's now, or closed */
    }
    if (r != 0) {
        if (fd >= 0)
            close(fd);
        free(ctl);
        return r;
    }
    /* A socket taken over from the process before is ours to remove now. */
    if (adopted)
        hs_listener_own_path(hs_admin_listener(ctl->admin), 1);
    *out = ctl;
    return 0;
}

int hs_control_new(struct event_base *base, const char *path, const char *who, hs_control_cmd_cb cb,
                   void *arg, struct hs_control **out)
{
    /* A server already answering there keeps its socket. */
    char probe[8];
    if (hs_control_request(path, "ping", probe, sizeof probe, 500) == 0)
        return -EADDRINUSE;
    return control_open(base, path, -1, who, cb, arg, out);
}

int hs_control_adopt(struct event_base *base, int fd, const char *key, hs_control_cmd_cb cb,
                     void *arg, struct hs_control **out, char *path, size_t pathlen)
{
    struct sockaddr_un su;
    socklen_t len = sizeof su;
    memset(&su, 0, sizeof su);
    if (getsockname(fd, (struct sockaddr *)&su, &len) != 0 || su.sun_family != AF_UNIX ||
        su.sun_path[0] == '\0') {
        close(fd);
        return -EINVAL;
    }
    char who[PATH_MAX];
    instance_real_path(key, who, sizeof who);
    snprintf(path, pathlen, "%s", su.sun_path);
    int r = control_open(base, path, fd, who, cb, arg, out);
    if (r == 0)
        hs_log(HS_LOG_INFO, "control socket %s (taken over)", path);
    return r;
}

int hs_control_fd(const struct hs_control *ctl)
{
    return hs_listener_fd(hs_admin_listener(ctl->admin));
}

void hs_control_handover(struct hs_control *ctl)
{
    hs_listener_stop(hs_admin_listener(ctl->admin));
    hs_listener_own_path(hs_admin_listener(ctl->admin), 0);
}

unsigned hs_control_busy(const struct hs_control *ctl)
{
    return hs_admin_busy(ctl->admin);
}

void hs_control_free(struct hs_control *ctl)
{
    if (ctl == NULL)
        return;
    hs_admin_free(ctl->admin);
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
