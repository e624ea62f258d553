#include "core/master.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/pubsub.h"
#include "core/server.h"
#include "core/shared.h"
#include "core/supervisor.h"
#include "core/upgrade.h"
#include "core/worker_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#define MASTER_MAX_WORKERS 256
#define MASTER_MAX_SOCKETS 256
#define WORKER_START_TIMEOUT_MS 10000 /* a new worker must say "ready" within this */
#define WORKER_REPLY_TIMEOUT_MS 30000 /* a worker must answer a reload phase within this */
#define WORKER_QUICK_DEATH_MS 1000    /* a worker that dies younger than this died "at start" */
#define WORKER_BACKOFF_MAX_MS 30000   /* longest wait before restarting a failing worker */

struct worker {
    int index;             /* 1..N */
    pid_t pid;             /* 0 while not running */
    int chan;              /* master's end of the command channel, -1 when none */
    double started;        /* monotonic seconds */
    unsigned quick_deaths; /* deaths in a row shortly after start */
    struct event *respawn; /* pending restart */
    struct hs_master *m;
    char *sockets;               /* "URL=FD;..." this worker serves on */
    int fds[MASTER_MAX_SOCKETS]; /* those descriptors (kept open by the master) */
    size_t nfds;
};

struct hs_master {
    const struct hs_config *cfg;
    char **argv;             /* to start workers: the same command line */
    struct hs_server *s;     /* loads and validates scripts, owns the sockets; never serves */
    struct event_base *base; /* the master's own loop (signals, control, watch) */
    struct worker workers[MASTER_MAX_WORKERS];
    int n;
    int stopping;              /* a stop signal arrived: no restarts, no reloads */
    struct hs_supervisor *sup; /* signals, control socket, --watch, --metrics */
    struct event *sig_chld;
    char sockets[8192]; /* "URL=FD;..." handed to workers */
    int fds[MASTER_MAX_SOCKETS];
    size_t nfds;
};

static void worker_close_sockets(struct hs_master *m, struct worker *w)
{
    /* Worker 1 serves on the master's own sockets; the others on clones to close. */
    for (size_t i = 0; i < w->nfds; i++) {
        int shared = 0;
        for (size_t j = 0; j < m->nfds; j++)
            shared |= w->fds[i] == m->fds[j];
        if (!shared)
            close(w->fds[i]);
    }
    w->nfds = 0;
    free(w->sockets);
    w->sockets = NULL;
}

/* Gives worker w its sockets: the master's, shared by all workers (the default), or with
 * HOTSOCK_REUSEPORT a socket of its own on each TCP and UDP address (Unix sockets are always
 * shared). */
static int worker_assign_sockets(struct hs_master *m, struct worker *w)
{
    size_t cap = strlen(m->sockets) + 32 * MASTER_MAX_SOCKETS + 1;
    w->sockets = malloc(cap);
    if (w->sockets == NULL)
        return -1;
    size_t used = 0;
    w->sockets[0] = '\0';
    char url[HS_WORKER_CHAN_SOCKETS_MAX];
    int fd;
    for (const char *p = m->sockets; hs_worker_chan_socket_next(&p, url, sizeof url, &fd);) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        int own = fd;
        if (w->index > 1 && hs__reuseport && ss.ss_family != AF_UNIX) {
            own = hs_addr_clone_socket(fd);
            if (own < 0) {
                hs_log(HS_LOG_ERROR, "worker %d: cannot open its socket for %s: %s", w->index, url,
                       hs_strerror(own));
                return -1;
            }
        }
        if (w->nfds < MASTER_MAX_SOCKETS)
            w->fds[w->nfds++] = own;
        hs_worker_chan_socket_put(w->sockets, cap, &used, url, 0, own);
    }
    return 0;
}

/* Starts worker w: a fresh process running this binary, which loads the scripts itself and
 * serves on the sockets the master bound. Returns 0, or -1 (logged). */
static int worker_spawn(struct hs_master *m, struct worker *w, int wait_ready)
{
    int mine, theirs;
    int r = hs_worker_chan_pair(&mine, &theirs);
    if (r != 0) {
        hs_log(HS_LOG_ERROR, "worker %d: socketpair: %s", w->index, hs_strerror(r));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hs_log(HS_LOG_ERROR, "worker %d: fork: %s", w->index, strerror(errno));
        close(mine);
        close(theirs);
        return -1;
    }
    if (pid == 0) {
        /* The child keeps exactly its channel end, the listening sockets and the shared
         * regions across exec. */
        const char *sfd = getenv("HOTSOCK_SHARED_FD");
        if (sfd)
            fcntl(atoi(sfd), F_SETFD, 0);
        if (hs_pubsub_default())
            hs_pubsub_keep_across_exec(hs_pubsub_default());
        hs_worker_chan_export(w->index, theirs, w->sockets);
        signal(SIGPIPE, SIG_DFL);
        execv("/proc/self/exe", m->argv);
        _exit(127);
    }
    close(theirs);
    w->pid = pid;
    w->chan = mine;
    w->started = hs_clock_mono();
    if (wait_ready && hs_worker_chan_wait_ready(w->chan, WORKER_START_TIMEOUT_MS) != 0) {
        hs_log(HS_LOG_ERROR, "worker %d (pid %ld) did not start", w->index, (long)pid);
        return -1;
    }
    return 0;
}

static void worker_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (w->m->stopping || w->pid != 0)
        return;
    if (worker_spawn(w->m, w, 0) == 0)
        hs_log(HS_LOG_INFO, "worker %d restarted (pid %ld)", w->index, (long)w->pid);
}

static void describe_status(int status, char *buf, size_t n)
{
    if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, n, "ended (status %d)", status);
}

static void master_check_done(struct hs_master *m)
{
    if (!m->stopping)
        return;
    for (int i = 0; i < m->n; i++)
        if (m->workers[i].pid != 0)
            return;
    hs_supervisor_finished(m->sup);
}

static void master_chld_cb(evutil_socket_t sig, short what, void *arg)
{
    struct hs_master *m = arg;
    HS_UNUSED(sig);
    HS_UNUSED(what);
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct worker *w = NULL;
        for (int i = 0; i < m->n; i++)
            if (m->workers[i].pid == pid)
                w = &m->workers[i];
        char how[96];
        describe_status(status, how, sizeof how);
        if (w == NULL) {
            hs_log(HS_LOG_INFO, "retired worker (pid %ld) %s", (long)pid, how);
            continue;
        }
        close(w->chan);
        w->chan = -1;
        w->pid = 0;
        /* Publishers stop queueing for it until its successor claims the queue. */
        if (hs_pubsub_default())
            hs_pubsub_release(hs_pubsub_default(), (unsigned)w->index, pid);
        if (m->stopping) {
            hs_log(HS_LOG_INFO, "worker %d (pid %ld) %s", w->index, (long)pid, how);
            continue;
        }
        /* A worker that keeps dying right after start is restarted ever more slowly. */
        double lived_ms = (hs_clock_mono() - w->started) * 1000;
        unsigned delay_ms = 0;
        if (lived_ms < WORKER_QUICK_DEATH_MS)
            w->quick_deaths++;
        else
            w->quick_deaths = 0;
        if (w->quick_deaths >= 2) {
            /* Dying again right after a restart: wait ever longer, so a worker that cannot
             * start does not spin the machine. */
            delay_ms = 100u << (w->quick_deaths - 1 < 9 ? w->quick_deaths - 1 : 9);
            if (delay_ms > WORKER_BACKOFF_MAX_MS)
                delay_ms = WORKER_BACKOFF_MAX_MS;
            hs_log(HS_LOG_ERROR,
                   "worker %d (pid %ld) %s %.0f ms after start (%u time(s) in a row); "
                   "restarting in %u ms",
                   w->index, (long)pid, how, lived_ms, w->quick_deaths, delay_ms);
        } else {
            hs_log(HS_LOG_WARN, "worker %d (pid %ld) %s; restarting", w->index, (long)pid, how);
        }
        struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
        event_add(w->respawn, &tv);
    }
    master_check_done(m);
}

/* The first stop signal: the workers stop accepting and finish their connections. */
static unsigned master_drain(void *arg, int sig)
{
    struct hs_master *m = arg;
    hs_log(HS_LOG_INFO, "%s: stopping %d worker(s)",
           sig == SIGINT    ? "SIGINT"
           : sig == SIGUSR2 ? "upgraded"
                            : "SIGTERM",
           m->n);
    /* The master's copies of the listening sockets go first: a socket stops listening only
     * when the last process holding it closes it, and the workers close theirs as they get
     * the signal. */
    for (int i = 0; i < m->n; i++)
        worker_close_sockets(m, &m->workers[i]);
    hs_server_stop_listening(m->s);
    m->nfds = 0;
    m->stopping = 1;
    unsigned running = 0;
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        event_del(w->respawn);
        if (w->pid != 0) {
            kill(w->pid, SIGTERM);
            running++;
        }
    }
    return running;
}

/* A second stop signal: passed on, so the workers exit now. */
static void master_abort(void *arg, int grace_over)
{
    struct hs_master *m = arg;
    HS_UNUSED(grace_over); /* each worker keeps its own grace period */
    hs_log(HS_LOG_WARN, "second stop signal: workers exit now");
    for (int i = 0; i < m->n; i++)
        if (m->workers[i].pid != 0)
            kill(m->workers[i].pid, SIGTERM);
    master_check_done(m);
}

/* Replaces every worker (the set of addresses changed): new workers start on the new
 * sockets; the old ones stop accepting and finish their connections. */
static void master_replace_workers(struct hs_master *m)
{
    for (int i = 0; i < m->n; i++)
        worker_close_sockets(m, &m->workers[i]);
    m->nfds = hs_server_sockets(m->s, m->sockets, sizeof m->sockets, m->fds, MASTER_MAX_SOCKETS);
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        pid_t old = w->pid;
        if (old != 0) {
            close(w->chan);
            w->chan = -1;
            kill(old, SIGTERM);
        }
        w->pid = 0;
        if (worker_assign_sockets(m, w) == 0 && worker_spawn(m, w, 1) == 0)
            hs_log(HS_LOG_INFO, "worker %d replaced (pid %ld -> %ld)", w->index, (long)old,
                   (long)w->pid);
    }
}

/* Sends cmd to every running worker and reads its reply. Returns 0 when all said ok; else
 * -1 with the first error in err. */
static int master_broadcast(struct hs_master *m, enum hs_worker_chan_cmd cmd, char *err,
                            size_t errlen)
{
    int result = 0;
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        if (w->pid == 0)
            continue;
        char line[2048];
        int r = hs_worker_chan_request(w->chan, cmd, line, sizeof line, WORKER_REPLY_TIMEOUT_MS);
        if (r != 0 && result == 0) {
            if (r < 0)
                snprintf(err, errlen, "worker %d did not answer", w->index);
            else
                snprintf(err, errlen, "worker %d: %.1900s", w->index, line); /* fits 2 KiB */
        }
        if (r != 0)
            result = -1;
    }
    return result;
}

/* A reload across workers: validated once here, then every worker prepares; only when all
 * prepared does every worker (and the master's copy) commit. Otherwise none changes. */
static int master_reload(void *arg, int *which, char *out, size_t n)
{
    struct hs_master *m = arg;
    char err[2048];
    int changed;
    double t0 = hs_clock_mono();
    for (size_t i = 0; i < HS_CONFIG_MAX_SERVICES; i++)
        which[i] = 1; /* every script, so that all workers run the same versions */
    if (hs_server_prepare(m->s, err, sizeof err, &changed) != 0) {
        hs_log(HS_LOG_ERROR, "reload failed, nothing changed: %s", err);
        snprintf(out, n, "error %s\n", err);
        return -1;
    }
    if (changed) {
        hs_server_commit(m->s);
        master_replace_workers(m);
        hs_server_report(m->s, (hs_clock_mono() - t0) * 1000, out, n);
        return 0;
    }
    if (master_broadcast(m, HS_WORKER_CHAN_PREPARE, err, sizeof err) != 0) {
        char ignored[64];
        hs_server_discard(m->s);
        hs_server_note_reload_failed(m->s, err);
        master_broadcast(m, HS_WORKER_CHAN_DISCARD, ignored, sizeof ignored);
        hs_log(HS_LOG_ERROR, "reload failed in a worker, nothing changed: %s", err);
        snprintf(out, n, "error %s\n", err);
        return -1;
    }
    hs_server_commit(m->s);
    if (master_broadcast(m, HS_WORKER_CHAN_COMMIT, err, sizeof err) != 0)
        hs_log(HS_LOG_ERROR, "commit: %s", err);
    double ms = (hs_clock_mono() - t0) * 1000;
    hs_server_report(m->s, ms, out, n);
    hs_log(HS_LOG_INFO, "reloaded in %d worker(s) in %.2f ms", m->n, ms);
    return 0;
}

/* The stats of every worker, gathered over the channels, after the scripts' own lines (the
 * master's copy of the scripts knows the generations and the reload outcomes). A worker that
 * does not answer in time is left out (logged). Returns the length written. */
static size_t master_stats(void *arg, char *out, size_t n)
{
    struct hs_master *m = arg;
    size_t used = hs_server_stats(m->s, HS_SERVER_STATS_SCRIPTS, out, n);
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        if (w->pid == 0 || used + 1 >= n)
            continue;
        if (hs_worker_chan_request(w->chan, HS_WORKER_CHAN_STATS, out + used, n - used,
                                   WORKER_REPLY_TIMEOUT_MS) < 0)
            hs_log(HS_LOG_WARN, "worker %d did not answer the stats request", w->index);
        used += strlen(out + used);
    }
    return used;
}

static size_t master_files(void *arg, size_t service, const char **files, size_t max)
{
    struct hs_master *m = arg;
    return hs_server_script_files(m->s, service, files, max);
}

static size_t master_sockets(void *arg, char *map, size_t n)
{
    struct hs_master *m = arg;
    snprintf(map, n, "%s", m->sockets);
    return strlen(map);
}

static void master_handover(void *arg)
{
    struct hs_master *m = arg;
    hs_server_handover(m->s);
}

static const struct hs_supervisor_ops master_ops = {
    .reload = master_reload,
    .stats = master_stats,
    .files = master_files,
    .drain = master_drain,
    .abort = master_abort,
    .sockets = master_sockets,
    .handover = master_handover,
    .grace = 0, /* each worker bounds its own stop */
};

int hs_master_run(const struct hs_config *cfg, int workers, char **argv, const char *adopted)
{
    struct hs_master *m = calloc(1, sizeof *m);
    char err[2048];
    int status = 1;
    if (m == NULL)
        return 1;
    m->cfg = cfg;
    m->argv = argv;
    m->n = workers > MASTER_MAX_WORKERS ? MASTER_MAX_WORKERS : workers;
    /* One listening socket shared by all workers, by default: with a socket per worker
     * (SO_REUSEPORT, HOTSOCK_REUSEPORT=1) the kernel keeps routing a dead or restarting
     * worker's share of new connections to its queue, where they wait. */
    hs__reuseport = getenv("HOTSOCK_REUSEPORT") != NULL;
    /* The shared dictionaries exist before any worker, which inherits their descriptor. */
    int shared_fd = -1;
    if (hs_shared_create(cfg->shared, cfg->n_shared, &shared_fd) == NULL) {
        fprintf(stderr, "hotsock: cannot create the shared dictionaries: %s\n", strerror(errno));
        free(m);
        return 1;
    }
    char shared_env[16];
    snprintf(shared_env, sizeof shared_env, "%d", shared_fd);
    setenv("HOTSOCK_SHARED_FD", shared_env, 1);
    /* So is the pub/sub region, one queue per worker (core/pubsub.h). */
    struct hs_pubsub *ps = NULL;
    static char ps_env[8 * (HS_PUBSUB_MAX_WORKERS + 1)];
    int pr = hs_pubsub_create((unsigned)m->n, cfg->publish_queue, cfg->max_publish, &ps);
    if (pr != 0 || hs_pubsub_export(ps, ps_env, sizeof ps_env) != 0) {
        fprintf(stderr, "hotsock: cannot create the pub/sub queues: %s\n", hs_strerror(pr));
        hs_pubsub_free(ps);
        free(m);
        return 1;
    }
    setenv(HS_PUBSUB_ENV, ps_env, 1);
    m->s = hs_server_new(cfg);
    m->base = event_base_new();
    m->sup = m->base ? hs_supervisor_new(m->base, cfg, &master_ops, m) : NULL;
    if (m->s == NULL || m->sup == NULL)
        goto out;
    /* Load, validate and bind (or adopt) once, here; the master's copy never serves. */
    hs_server_adopt(m->s, adopted);
    hs_supervisor_adopt(m->sup, adopted);
    if (hs_server_start(m->s, err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        fprintf(stderr, "hotsock: %s\n", err);
        hs_upgrade_failed(err);
        goto out;
    }
    hs_server_accepting(m->s, 0);
    m->nfds = hs_server_sockets(m->s, m->sockets, sizeof m->sockets, m->fds, MASTER_MAX_SOCKETS);
    signal(SIGPIPE, SIG_IGN); /* before any worker's channel can break */
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        w->index = i + 1;
        w->chan = -1;
        w->m = m;
        w->respawn = evtimer_new(m->base, worker_respawn_cb, w);
    }
    m->sig_chld = evsignal_new(m->base, SIGCHLD, master_chld_cb, m);
    event_add(m->sig_chld, NULL);
    for (int i = 0; i < m->n; i++) {
        if (worker_assign_sockets(m, &m->workers[i]) != 0 ||
            worker_spawn(m, &m->workers[i], 1) != 0) {
            fprintf(stderr, "hotsock: worker %d failed to start\n", i + 1);
            snprintf(err, sizeof err, "worker %d failed to start", i + 1);
            hs_upgrade_failed(err);
            m->stopping = 1;
            for (int j = 0; j <= i; j++)
                if (m->workers[j].pid)
                    kill(m->workers[j].pid, SIGTERM);
            goto out;
        }
    }
    if (hs_supervisor_start(m->sup, HS_SUPERVISOR_FULL, err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        fprintf(stderr, "hotsock: %s\n", err);
        hs_upgrade_failed(err);
        hs_supervisor_stop(m->sup, SIGTERM);
        event_base_dispatch(m->base);
        goto out;
    }
    char extra[128];
    snprintf(extra, sizeof extra, ", %d workers", m->n);
    hs_server_banner(m->s, stdout, extra);
    hs_supervisor_banner(m->sup, stdout);
    hs_upgrade_ready();
    hs_log(HS_LOG_INFO, "hotsock %s ready (pid %ld, %d workers)", HOTSOCK_VERSION, (long)getpid(),
           m->n);
    event_base_dispatch(m->base);
    hs_log(HS_LOG_INFO, "stopped");
    status = 0;
out:
    hs_supervisor_free(m->sup);
    for (int i = 0; i < m->n; i++) {
        if (m->workers[i].respawn)
            event_free(m->workers[i].respawn);
        if (m->workers[i].chan >= 0)
            close(m->workers[i].chan);
        worker_close_sockets(m, &m->workers[i]);
    }
    if (m->sig_chld)
        event_free(m->sig_chld);
    hs_server_free(m->s);
    hs_pubsub_free(ps);
    if (m->base)
        event_base_free(m->base);
    free(m);
    return status;
}
