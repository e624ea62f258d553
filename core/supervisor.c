#include "core/supervisor.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/metrics_http.h"
#include "core/stats_text.h"
#include "core/upgrade.h"
#include "core/watch.h"
#include "core/worker_chan.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define WATCH_POLL_MS 100     /* --watch: how often files are checked */
#define WATCH_SETTLE_MS 150   /* --watch: quiet time before a change is reloaded */
#define WATCH_MAX_FILES 64    /* files followed per script */
#define RELOAD_REPLY_MAX 4096 /* what a reload from a signal or --watch reports (logged) */
#define REPLY_WAIT_MS 10      /* after an upgrade: how often to look whether replies are out */

struct hs_supervisor {
    struct event_base *base;
    const struct hs_config *cfg;
    const struct hs_supervisor_ops *ops;
    void *arg;
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr2;
    struct event *exit_timer;   /* after an upgrade: ends the loop once replies are sent */
    const char *adopted;        /* socket map handed over by an upgrade, or NULL */
    int handed_over;            /* an upgrade succeeded: the sockets are the new process's */
    struct event *grace_timer;  /* ends a stop that takes longer than --grace */
    int stopping;               /* a stop signal arrived */
    struct hs_control *control; /* `hotsock reload`/`stats` socket, or NULL */
    char control_path[HS_ADDR_MAX_PATH];
    struct hs_watch *watch;     /* --watch, or NULL */
    struct hs_metrics *metrics; /* --metrics listener, or NULL */
};

const char *hs_supervisor_instance_key(const struct hs_config *cfg)
{
    return cfg->config_path ? cfg->config_path : cfg->services[0].script;
}

/* Follows the current files of every script flagged in which (NULL: all). A reload may have
 * changed a script's module list. */
static void watch_scripts(struct hs_supervisor *sup, const int *which)
{
    if (sup->watch == NULL)
        return;
    for (size_t i = 0; i < HS_CONFIG_MAX_SERVICES; i++) {
        const char *files[WATCH_MAX_FILES];
        size_t n = sup->ops->files(sup->arg, i, files, WATCH_MAX_FILES);
        if (n == 0)
            break;
        if (which == NULL || which[i])
            hs_watch_set(sup->watch, i, files, n);
    }
}

/* Every reload, whatever asked for it, goes through here: none during a stop (the listeners
 * are closed: a reload could only bind new ones). */
static int reload(struct hs_supervisor *sup, size_t only, char *out, size_t n)
{
    int which[HS_CONFIG_MAX_SERVICES];
    for (size_t i = 0; i < HS_CONFIG_MAX_SERVICES; i++)
        which[i] = only == (size_t)-1 || i == only;
    if (sup->stopping) {
        snprintf(out, n, "error the server is stopping\n");
        return -1;
    }
    int r = sup->ops->reload(sup->arg, which, out, n);
    watch_scripts(sup, which);
    return r;
}

/* Starts the binary again with every socket; once it is ready, hands them over and drains.
 * Writes "ok upgraded: ..." or "error upgrade failed: REASON" into out. */
static int upgrade(struct hs_supervisor *sup, char *out, size_t n)
{
    if (sup->stopping) {
        snprintf(out, n, "error the server is stopping\n");
        return -1;
    }
    char map[HS_WORKER_CHAN_SOCKETS_MAX], why[2048];
    size_t used = sup->ops->sockets(sup->arg, map, sizeof map);
    if (sup->control)
        hs_worker_chan_socket_put(map, sizeof map, &used, HS_UPGRADE_CONTROL, 0,
                                  hs_control_fd(sup->control));
    double t0 = hs_clock_mono() * 1e3;
    pid_t pid;
    if (hs_upgrade_start(map, &pid, why, sizeof why) != 0) {
        hs_log(HS_LOG_ERROR, "upgrade failed, still serving: %s", why);
        snprintf(out, n, "error upgrade failed: %s\n", why);
        return -1;
    }
    double ms = hs_clock_mono() * 1e3 - t0;
    hs_log(HS_LOG_INFO, "upgrade: pid %ld serves (ready in %.1f ms); draining", (long)pid, ms);
    snprintf(out, n, "ok upgraded: pid %ld -> %ld (ready in %.1f ms)\n", (long)getpid(), (long)pid,
             ms);
    sup->handed_over = 1;
    if (sup->control)
        hs_control_handover(sup->control);
    sup->ops->handover(sup->arg);
    hs_supervisor_stop(sup, SIGUSR2);
    return 0;
}

static void usr2_cb(evutil_socket_t sig, short what, void *arg)
{
    char out[RELOAD_REPLY_MAX];
    HS_UNUSED(sig);
    HS_UNUSED(what);
    hs_log(HS_LOG_INFO, "SIGUSR2: upgrading");
    upgrade(arg, out, sizeof out);
}

static void control_cb(const char *cmd, char *out, size_t n, void *arg)
{
    struct hs_supervisor *sup = arg;
    if (strcmp(cmd, "reload") == 0) {
        hs_log(HS_LOG_INFO, "reload requested on the control socket");
        reload(sup, (size_t)-1, out, n);
    } else if (strcmp(cmd, "stats") == 0) {
        sup->ops->stats(sup->arg, out, n);
    } else if (strcmp(cmd, "upgrade") == 0) {
        hs_log(HS_LOG_INFO, "upgrade requested on the control socket");
        upgrade(sup, out, n);
    } else {
        snprintf(out, n, "error unknown command '%s' (known: reload, stats, upgrade, ping)\n", cmd);
    }
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    char out[RELOAD_REPLY_MAX];
    HS_UNUSED(sig);
    HS_UNUSED(what);
    hs_log(HS_LOG_INFO, "SIGHUP: reloading scripts");
    reload(arg, (size_t)-1, out, sizeof out);
}

static void watch_cb(struct hs_watch *w, size_t tag, void *arg)
{
    struct hs_supervisor *sup = arg;
    char out[RELOAD_REPLY_MAX];
    const char *files[1];
    HS_UNUSED(w);
    if (sup->ops->files(sup->arg, tag, files, 1) == 0)
        return;
    hs_log(HS_LOG_INFO, "%s changed on disk: reloading", files[0]);
    reload(sup, tag, out, sizeof out);
}

static size_t metrics_cb(char *out, size_t n, void *arg)
{
    struct hs_supervisor *sup = arg;
    static char snap[HS_STATS_SNAPSHOT_MAX];
    sup->ops->stats(sup->arg, snap, sizeof snap);
    return hs_stats_render_prometheus(snap, out, n);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_supervisor *sup = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    sup->ops->abort(sup->arg, 1);
}

void hs_supervisor_stop(struct hs_supervisor *sup, int sig)
{
    if (sup->stopping) {
        sup->ops->abort(sup->arg, 0);
        return;
    }
    sup->stopping = 1;
    if (sup->ops->drain(sup->arg, sig) == 0) {
        hs_supervisor_finished(sup);
        return;
    }
    if (sup->ops->grace) {
        unsigned ms = sup->cfg->grace_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(sup->grace_timer, &tv);
    }
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    HS_UNUSED(what);
    hs_supervisor_stop(arg, (int)sig);
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_supervisor *sup = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    hs_supervisor_finished(sup);
}

void hs_supervisor_finished(struct hs_supervisor *sup)
{
    /* After an upgrade the `hotsock upgrade` that asked for it still waits for its reply;
     * control connections close by themselves (after their reply, or idle). */
    if (sup->handed_over && sup->control && hs_control_busy(sup->control)) {
        struct timeval tv = {0, REPLY_WAIT_MS * 1000};
        event_add(sup->exit_timer, &tv);
        return;
    }
    event_base_loopexit(sup->base, NULL);
}

void hs_supervisor_adopt(struct hs_supervisor *sup, const char *map)
{
    sup->adopted = map;
}

struct hs_supervisor *hs_supervisor_new(struct event_base *base, const struct hs_config *cfg,
                                        const struct hs_supervisor_ops *ops, void *arg)
{
    struct hs_supervisor *sup = calloc(1, sizeof *sup);
    if (sup == NULL)
        return NULL;
    sup->base = base;
    sup->cfg = cfg;
    sup->ops = ops;
    sup->arg = arg;
    sup->sig_term = evsignal_new(base, SIGTERM, stop_cb, sup);
    sup->sig_int = evsignal_new(base, SIGINT, stop_cb, sup);
    sup->sig_hup = evsignal_new(base, SIGHUP, hup_cb, sup);
    sup->sig_usr2 = evsignal_new(base, SIGUSR2, usr2_cb, sup);
    sup->grace_timer = evtimer_new(base, grace_cb, sup);
    sup->exit_timer = evtimer_new(base, exit_cb, sup);
    if (!sup->sig_term || !sup->sig_int || !sup->sig_hup || !sup->sig_usr2 || !sup->grace_timer ||
        !sup->exit_timer) {
        hs_supervisor_free(sup);
        return NULL;
    }
    return sup;
}

int hs_supervisor_start(struct hs_supervisor *sup, int what, char *err, size_t errlen)
{
    const struct hs_config *cfg = sup->cfg;
    signal(SIGPIPE, SIG_IGN);
    event_add(sup->sig_term, NULL);
    event_add(sup->sig_int, NULL);
    if (what == HS_SUPERVISOR_STOP_ONLY) {
        signal(SIGHUP, SIG_IGN);
        signal(SIGUSR2, SIG_IGN);
        return 0;
    }
    int cfd = hs_worker_chan_socket_fd(sup->adopted, HS_UPGRADE_CONTROL, 0, 0);
    if (cfd >= 0) {
        int r = hs_control_adopt(sup->base, cfd, hs_supervisor_instance_key(cfg), control_cb, sup,
                                 &sup->control, sup->control_path, sizeof sup->control_path);
        if (r != 0) {
            snprintf(err, errlen, "cannot serve the control socket handed over: %s",
                     hs_strerror(r));
            return -1;
        }
    } else if (hs_control_start(sup->base, cfg->control_path, hs_supervisor_instance_key(cfg),
                                control_cb, sup, &sup->control, sup->control_path,
                                sizeof sup->control_path, err, errlen) != 0) {
        return -1;
    }
    event_add(sup->sig_hup, NULL);
    event_add(sup->sig_usr2, NULL);
    if (cfg->watch) {
        sup->watch = hs_watch_new(sup->base, WATCH_POLL_MS, WATCH_SETTLE_MS, watch_cb, sup);
        watch_scripts(sup, NULL);
        hs_log(HS_LOG_INFO, "watching scripts for changes");
    }
    if (cfg->metrics_url) {
        int r = hs_metrics_new(sup->base, cfg->metrics_url, metrics_cb, sup, &sup->metrics);
        if (r != 0) {
            snprintf(err, errlen, "cannot serve metrics on %s: %s", cfg->metrics_url,
                     r == HS_EBADSPEC ? "not a tcp:// or unix: address" : hs_strerror(r));
            return -1;
        }
    }
    return 0;
}

void hs_supervisor_banner(struct hs_supervisor *sup, FILE *f)
{
    if (sup->metrics)
        fprintf(f, "  metrics  http %s/metrics\n", hs_metrics_url(sup->metrics));
    if (sup->control)
        fprintf(f, "  control  %s (hotsock stats, hotsock reload)\n", sup->control_path);
    fflush(f);
}

void hs_supervisor_free(struct hs_supervisor *sup)
{
    if (sup == NULL)
        return;
    hs_watch_free(sup->watch);
    hs_control_free(sup->control);
    hs_metrics_free(sup->metrics);
    if (sup->sig_term)
        event_free(sup->sig_term);
    if (sup->sig_int)
        event_free(sup->sig_int);
    if (sup->sig_hup)
        event_free(sup->sig_hup);
    if (sup->sig_usr2)
        event_free(sup->sig_usr2);
    if (sup->grace_timer)
        event_free(sup->grace_timer);
    if (sup->exit_timer)
        event_free(sup->exit_timer);
    free(sup);
}
