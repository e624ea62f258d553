/* realpath(3) is X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700

#include "core/upgrade.h"
#include "core/clock.h"
#include "core/hs.h"
#include "core/worker_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_PIPE "HOTSOCK_UPGRADE"            /* the new process's end of the pipe */
#define ENV_SOCKETS "HOTSOCK_UPGRADE_SOCKETS" /* the socket map */
#define ENV_BINARY "HOTSOCK_BINARY"           /* the binary to start instead of our own */
#define UPGRADE_EXIT_WAIT_MS 2000             /* a new process that failed exits within this */

static char **saved_argv;     /* this process's command line, for the new one */
static char binary[PATH_MAX]; /* what an upgrade starts */
static int report_fd = -1;    /* new process: the pipe to the old, until reported */

void hs_upgrade_init(char **argv)
{
    saved_argv = argv;
    const char *env = getenv(ENV_BINARY);
    if (env && *env) {
        snprintf(binary, sizeof binary, "%s", env);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", binary, sizeof binary - 1);
    if (n < 0 && argv && argv[0] && realpath(argv[0], binary) == NULL)
        binary[0] = '\0';
    else if (n >= 0)
        binary[n] = '\0';
}

/* Reads what the new process says, up to its first newline, by the deadline. Returns 1 with
 * the line, 0 when the pipe ended first (the process is gone), -1 when time ran out. */
static int read_report(int fd, char *line, size_t n, double deadline)
{
    size_t got = 0;
    while (got + 1 < n) {
        int left = (int)(deadline - hs_clock_mono() * 1e3);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0)
            return -1;
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = read(fd, line + got, n - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        line[got] = '\0';
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            return 1;
        }
    }
    line[got] = '\0';
    return got ? 1 : 0;
}

/* Reaps pid, waiting up to ms; describes how it ended into how. Returns 1 when it ended. */
static int reap(pid_t pid, int ms, char *how, size_t n)
{
    int status;
    double deadline = hs_clock_mono() * 1e3 + ms;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                snprintf(how, n, "exited with status %d", WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                snprintf(how, n, "was killed by signal %d", WTERMSIG(status));
            else
                snprintf(how, n, "ended");
            return 1;
        }
        if (r < 0) {
            /* A master's SIGCHLD handler may have reaped it already. */
            snprintf(how, n, "exited");
            return 1;
        }
        if (hs_clock_mono() * 1e3 >= deadline) {
            snprintf(how, n, "did not exit");
            return 0;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int hs_upgrade_start(const char *map, pid_t *pid, char *msg, size_t msglen)
{
    int p[2];
    if (binary[0] == '\0') {
        snprintf(msg, msglen, "cannot tell which binary to start");
        return -1;
    }
    if (pipe(p) != 0 || fcntl(p[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(msg, msglen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t child = fork();
    if (child < 0) {
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (child == 0) {
        /* Exactly the sockets of the map and the pipe cross exec. */
        char url[HS_WORKER_CHAN_SOCKETS_MAX], env[32];
        int fd;
        for (const char *q = map; hs_worker_chan_socket_next(&q, url, sizeof url, &fd);)
            fcntl(fd, F_SETFD, 0);
        fcntl(p[1], F_SETFD, 0);
        snprintf(env, sizeof env, "%d", p[1]);
        setenv(ENV_PIPE, env, 1);
        setenv(ENV_SOCKETS, map, 1);
        signal(SIGPIPE, SIG_DFL);
        execv(binary, saved_argv);
        char why[PATH_MAX + 128];
        int w = snprintf(why, sizeof why, "error cannot run %s: %s\n", binary, strerror(errno));
        if (w > 0 && write(p[1], why, (size_t)w) < 0)
            _exit(127);
        _exit(127);
    }
    close(p[1]);
    char line[2048], how[96];
    int r = read_report(p[0], line, sizeof line, hs_clock_mono() * 1e3 + HS_UPGRADE_READY_MS);
    close(p[0]);
    if (r == 1 && strcmp(line, "ready") == 0) {
        *pid = child;
        return 0;
    }
    if (r < 0) {
        kill(child, SIGTERM);
        reap(child, UPGRADE_EXIT_WAIT_MS, how, sizeof how);
        snprintf(msg, msglen, "the new process (pid %ld) was not ready within %d s; stopped it",
                 (long)child, HS_UPGRADE_READY_MS / 1000);
        return -1;
    }
    reap(child, UPGRADE_EXIT_WAIT_MS, how, sizeof how);
    if (r == 1 && strncmp(line, "error ", 6) == 0)
        snprintf(msg, msglen, "%s", line + 6);
    else
        snprintf(msg, msglen, "the new process (pid %ld) %s before it was ready", (long)child, how);
    return -1;
}

int hs_upgrade_import(char *map, size_t n)
{
    const char *env = getenv(ENV_PIPE);
    if (env == NULL || *env == '\0')
        return 0;
    report_fd = atoi(env);
    fcntl(report_fd, F_SETFD, FD_CLOEXEC);
    const char *se = getenv(ENV_SOCKETS);
    snprintf(map, n, "%s", se ? se : "");
    /* Nothing this process starts (its workers) inherits what was handed to it. */
    char url[HS_WORKER_CHAN_SOCKETS_MAX];
    int fd;
    for (const char *q = map; hs_worker_chan_socket_next(&q, url, sizeof url, &fd);)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    unsetenv(ENV_PIPE);
    unsetenv(ENV_SOCKETS);
    return 1;
}

static void report(const char *text)
{
    if (report_fd < 0)
        return;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(report_fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(report_fd);
    report_fd = -1;
}

void hs_upgrade_ready(void)
{
    report("ready\n");
}

void hs_upgrade_failed(const char *why)
{
    char line[2048];
    snprintf(line, sizeof line - 1, "error %s", why);
    /* One line: the old process reads up to the first newline. */
    for (char *c = line; *c; c++)
        if (*c == '\n')
            *c = ' ';
    strcat(line, "\n");
    report(line);
}
