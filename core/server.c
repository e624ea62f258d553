/* One hotsock process: its loop, connection set and Lua state, plugged into the supervisor
 * (core/supervisor.h) as a single process, or answering its master's channel as a worker. */
#include "core/server_internal.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_sandbox.h"
#include "core/pubsub.h"
#include "core/pubsub_redis.h"
#include "core/script.h"
#include "core/supervisor.h"
#include "core/udp.h"
#include "core/upgrade.h"
#include "core/worker_chan.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

struct hs_server *hs_server_new(const struct hs_config *cfg)
{
    struct hs_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->chan = -1;
    s->base = event_base_new();
    /* Limits from the config (hs_config_conn_limits, hs_lua_set_limits). */
    struct hs_conn_limits limits;
    hs_config_conn_limits(cfg, &limits);
    s->set = s->base ? hs_conns_new(s->base, &limits) : NULL;
    s->hl = s->set ? hs_lua_new(s->base, s->set) : NULL;
    if (s->hl)
        hs_lua_set_limits(s->hl, cfg->lua_memory, cfg->lua_time_ms);
    for (size_t i = 0; s->hl && i < cfg->n_allow_modules; i++)
        hs_lua_allow_module(s->hl, cfg->allow_modules[i]);
    if (s->hl == NULL) {
        hs_server_free(s);
        return NULL;
    }
    return s;
}

void hs_server_set_worker(struct hs_server *s, int index, const char *inherited, int chan)
{
    s->worker = index;
    s->inherited = inherited;
    s->chan = chan;
    char tag[16];
    snprintf(tag, sizeof tag, "w%d", index);
    hs_log_set_tag(tag);
}

void hs_server_adopt(struct hs_server *s, const char *map)
{
    s->inherited = map;
}

void hs_server_banner(struct hs_server *s, FILE *f, const char *extra)
{
    fprintf(f, "hotsock %s (pid %ld)%s\n", HOTSOCK_VERSION, (long)getpid(), extra ? extra : "");
    for (size_t i = 0; i < s->n_services; i++) {
        const struct service *sv = &s->services[i];
        for (size_t j = 0; j < sv->n_bound; j++) {
            const struct bound *bd = &sv->bound[j];
            const char *url = bd->listener ? hs_listener_url(bd->listener)
                              : bd->udp    ? hs_udp_url(bd->udp)
                                           : bd->url;
            fprintf(f, "  %-30s %-12s %s\n", url, hs_script_decl(sv->script)->name,
                    hs_script_path(sv->script));
        }
    }
    fflush(f);
}

/* ---- the mode's side of the supervisor ---- */

static int server_reload(void *arg, int *which, char *out, size_t n)
{
    return hs__server_reload(arg, which, out, n);
}

static size_t server_stats(void *arg, char *out, size_t n)
{
    return hs_server_stats(arg, HS_SERVER_STATS_COUNTERS | HS_SERVER_STATS_SCRIPTS, out, n);
}

static size_t server_files(void *arg, size_t service, const char **files, size_t max)
{
    return hs_server_script_files(arg, service, files, max);
}

static size_t server_sockets(void *arg, char *map, size_t n)
{
    int fds[HS_CONFIG_MAX_SERVICES * SERVER_MAX_BOUND];
    hs_server_sockets(arg, map, n, fds, sizeof fds / sizeof fds[0]);
    return strlen(map);
}

static void server_handover(void *arg)
{
    hs_server_handover(arg);
}

static void server_on_empty(struct hs_conns *set, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(set);
    hs_supervisor_finished(s->sup);
}

static unsigned server_drain(void *arg, int sig)
{
    struct hs_server *s = arg;
    hs_log(HS_LOG_INFO, "%s: no longer accepting; %u connection(s) get %u ms to finish",
           sig == SIGINT    ? "SIGINT"
           : sig == SIGUSR2 ? "upgraded"
                            : "SIGTERM",
           hs_conns_count(s->set), s->cfg->grace_ms);
    hs_server_stop_listening(s);
    /* Idle connections close now and busy ones after their message: the set may empty here. */
    hs_conns_on_empty(s->set, server_on_empty, s);
    hs_conns_drain(s->set);
    return hs_conns_count(s->set);
}

static void server_abort(void *arg, int grace_over)
{
    struct hs_server *s = arg;
    if (grace_over)
        hs_log(HS_LOG_WARN, "grace period over: closing %u connection(s)", hs_conns_count(s->set));
    else
        hs_log(HS_LOG_WARN, "second stop signal: exiting now");
    hs_supervisor_finished(s->sup);
}

static const struct hs_supervisor_ops server_ops = {
    .reload = server_reload,
    .stats = server_stats,
    .files = server_files,
    .drain = server_drain,
    .abort = server_abort,
    .sockets = server_sockets,
    .handover = server_handover,
    .grace = 1,
};

/* ---- a worker's end of its master's channel ---- */

static int worker_command(enum hs_worker_chan_cmd cmd, char *out, size_t n, void *arg)
{
    struct hs_server *s = arg;
    int changed;
    switch (cmd) {
    case HS_WORKER_CHAN_PREPARE:
        return hs_server_prepare(s, out, n, &changed);
    case HS_WORKER_CHAN_COMMIT:
        hs_server_commit(s);
        return 0;
    case HS_WORKER_CHAN_DISCARD:
        hs_server_discard(s);
        return 0;
    case HS_WORKER_CHAN_STATS:
        hs_server_stats(s, HS_SERVER_STATS_COUNTERS, out, n);
        return 0;
    }
    return -1;
}

static void worker_master_gone(void *arg)
{
    struct hs_server *s = arg;
    /* Finish like on SIGTERM. */
    hs_log(HS_LOG_WARN, "master went away; stopping");
    hs_supervisor_stop(s->sup, SIGTERM);
}

int hs_server_run(struct hs_server *s)
{
    char err[512];
    s->sup = hs_supervisor_new(s->base, s->cfg, &server_ops, s);
    if (s->sup == NULL)
        return 1;
    if (s->cfg->pubsub_url && hs_pubsub_default()) {
        s->redis = hs_pubsub_redis_start(s->base, s->cfg->pubsub_url, hs_pubsub_default(), err,
                                         sizeof err);
        if (s->redis == NULL) {
            hs_log(HS_LOG_ERROR, "%s", err);
            fprintf(stderr, "hotsock: %s\n", err);
            return 1;
        }
    }
    if (s->worker) {
        /* Reloads come from the master over the channel; SIGHUP is the master's. */
        hs_supervisor_start(s->sup, HS_SUPERVISOR_STOP_ONLY, err, sizeof err);
        s->chan_end = hs_worker_chan_new(s->base, s->chan, worker_command, worker_master_gone, s);
        if (s->chan_end == NULL)
            return 1;
        hs_log(HS_LOG_INFO, "worker %d serving (pid %ld)", s->worker, (long)getpid());
        hs_worker_chan_ready(s->chan_end);
        event_base_dispatch(s->base);
        hs_log(HS_LOG_INFO, "worker %d stopped", s->worker);
        return 0;
    }
    hs_supervisor_adopt(s->sup, s->inherited);
    if (hs_supervisor_start(s->sup, HS_SUPERVISOR_FULL, err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        fprintf(stderr, "hotsock: %s\n", err);
        hs_upgrade_failed(err);
        return 1;
    }
    hs_server_banner(s, stdout, NULL);
    hs_supervisor_banner(s->sup, stdout);
    hs_upgrade_ready();
    hs_log(HS_LOG_INFO, "hotsock %s ready (pid %ld)", HOTSOCK_VERSION, (long)getpid());
    event_base_dispatch(s->base);
    hs_log(HS_LOG_INFO, "stopped");
    return 0;
}

void hs_server_free(struct hs_server *s)
{
    if (s == NULL)
        return;
    hs_supervisor_free(s->sup);
    hs_worker_chan_free(s->chan_end);
    hs__server_unbind(s);
    /* Connections first (their on_close runs Lua), then scripts, then the Lua state. */
    hs_conns_free(s->set);
    hs__server_unload(s);
    hs_lua_free(s->hl);
    hs_pubsub_redis_free(s->redis);
    if (s->base)
        event_base_free(s->base);
    free(s);
}
