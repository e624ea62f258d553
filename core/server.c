#include "core/server.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/reload.h"
#include "core/udp.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define SERVER_MAX_BOUND 16 /* listeners of one service */

struct service {
    const struct hs_service_spec *spec;
    struct hs_script *script;
    struct hs_framing framing; /* for new connections */
    struct hs_listener *listeners[SERVER_MAX_BOUND];
    size_t n_listeners;
    struct hs_udp *udps[SERVER_MAX_BOUND];
    size_t n_udps;
};

struct hs_server {
    const struct hs_config *cfg;
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    struct service services[HS_CONFIG_MAX_SERVICES];
    size_t n_services;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *grace_timer; /* ends a graceful stop that takes too long */
    int stopping;              /* a stop signal arrived */
};

struct hs_server *hs_server_new(const struct hs_config *cfg)
{
    struct hs_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->base = event_base_new();
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    limits.max_connections = cfg->max_connections;
    limits.idle_timeout_ms = cfg->idle_timeout_ms;
    s->set = s->base ? hs_conns_new(s->base, &limits) : NULL;
    s->hl = s->set ? hs_lua_new(s->base, s->set) : NULL;
    if (s->hl == NULL) {
        hs_server_free(s);
        return NULL;
    }
    return s;
}

/* The framing for a service: --framing, else the script's `framing`, else raw. */
static int service_framing(struct service *sv, char *err, size_t errlen)
{
    const struct hs_script_decl *d = hs_script_decl(sv->script);
    const char *why = "bad framing";
    if (sv->spec->framing) {
        if (hs_framing_parse(sv->spec->framing, &sv->framing, &why) != 0) {
            snprintf(err, errlen, "bad framing '%s': %s", sv->spec->framing, why);
            return -1;
        }
    } else if (d->has_framing) {
        sv->framing = d->framing;
    } else {
        hs_framing_init(&sv->framing, HS_FRAMING_RAW);
    }
    return 0;
}

static int service_bind(struct hs_server *s, struct service *sv, const char *url, char *err,
                        size_t errlen)
{
    struct hs_addr a;
    const char *why;
    const char *name = hs_script_decl(sv->script)->name;
    if (hs_addr_parse(url, &a, &why) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", url, why);
        return -1;
    }
    int r;
    const char *bound;
    if (a.scheme == HS_ADDR_UDP) {
        if (sv->n_udps >= SERVER_MAX_BOUND) {
            snprintf(err, errlen, "too many UDP listeners for %s", name);
            return -1;
        }
        r = hs_udp_new(s->base, &a, name, hs_lua_datagram, sv->script, &sv->udps[sv->n_udps]);
        if (r == 0)
            bound = hs_udp_url(sv->udps[sv->n_udps++]);
    } else {
        if (sv->n_listeners >= SERVER_MAX_BOUND) {
            snprintf(err, errlen, "too many listeners for %s", name);
            return -1;
        }
        const struct hs_conn_handler *h = strcmp(hs_script_decl(sv->script)->protocol, "http") == 0
                                              ? &hs_lua_http_handler
                                              : &hs_lua_conn_handler;
        r = hs_listener_new(s->base, s->set, &a, name, &sv->framing, h, sv->script, hs_lua_accept,
                            &sv->listeners[sv->n_listeners]);
        if (r == 0)
            bound = hs_listener_url(sv->listeners[sv->n_listeners++]);
    }
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", url,
                 r == HS_EBADSPEC ? "host name does not resolve" : hs_strerror(r));
        return -1;
    }
    hs_log(HS_LOG_INFO, "listening %s %s", bound, name);
    return 0;
}

int hs_server_start(struct hs_server *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->cfg->n_services; i++) {
        struct service *sv = &s->services[s->n_services];
        memset(sv, 0, sizeof *sv);
        sv->spec = &s->cfg->services[i];
        if (hs_script_load(s->hl, sv->spec->script, sv->spec->opts, sv->spec->n_opts, &sv->script,
                           err, errlen) != 0)
            return -1;
        s->n_services++;
        if (service_framing(sv, err, errlen) != 0)
            return -1;
        const struct hs_script_decl *d = hs_script_decl(sv->script);
        if (sv->spec->n_listen == 0 && d->n_listen == 0) {
            snprintf(err, errlen, "%s: no address to listen on (give --listen URL)",
                     sv->spec->script);
            return -1;
        }
        for (size_t j = 0; j < sv->spec->n_listen; j++)
            if (service_bind(s, sv, sv->spec->listen[j], err, errlen) != 0)
                return -1;
        if (sv->spec->n_listen == 0)
            for (size_t j = 0; j < d->n_listen; j++)
                if (service_bind(s, sv, d->listen[j], err, errlen) != 0)
                    return -1;
    }
    return 0;
}

int hs_server_reload(struct hs_server *s, char *err, size_t errlen)
{
    int result = 0;
    for (size_t i = 0; i < s->n_services; i++) {
        struct service *sv = &s->services[i];
        char e[2048];
        if (hs_script_reload(sv->script, NULL, 0, e, sizeof e) != 0) {
            hs_log(HS_LOG_ERROR, "reload failed, keeping generation %u: %s",
                   hs_script_generation(sv->script), e);
            if (result == 0)
                snprintf(err, errlen, "%s", e);
            result = -1;
            continue;
        }
        struct hs_framing old = sv->framing;
        char fe[256];
        if (service_framing(sv, fe, sizeof fe) != 0)
            sv->framing = old;
        for (size_t j = 0; j < sv->n_listeners; j++)
            hs_listener_retarget(sv->listeners[j], &sv->framing, sv->script);
        hs_log(HS_LOG_INFO, "reloaded %s: generation %u", hs_script_path(sv->script),
               hs_script_generation(sv->script));
    }
    return result;
}

static void server_exit_now(struct hs_server *s)
{
    event_base_loopexit(s->base, NULL);
}

static void server_on_empty(struct hs_conns *set, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(set);
    if (s->stopping)
        server_exit_now(s);
}

static void server_grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    hs_log(HS_LOG_WARN, "grace period over: closing %u connection(s)", hs_conns_count(s->set));
    server_exit_now(s);
}

static void server_stop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(what);
    if (s->stopping) {
        hs_log(HS_LOG_WARN, "second stop signal: exiting now");
        server_exit_now(s);
        return;
    }
    s->stopping = 1;
    unsigned open = hs_conns_count(s->set);
    hs_log(HS_LOG_INFO, "%s: no longer accepting; %u connection(s) get %u ms to finish",
           sig == SIGINT ? "SIGINT" : "SIGTERM", open, s->cfg->grace_ms);
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t j = 0; j < s->services[i].n_listeners; j++)
            hs_listener_stop(s->services[i].listeners[j]);
        for (size_t j = 0; j < s->services[i].n_udps; j++)
            hs_udp_stop(s->services[i].udps[j]);
    }
    if (open == 0) {
        server_exit_now(s);
        return;
    }
    hs_conns_on_empty(s->set, server_on_empty, s);
    struct timeval tv = {s->cfg->grace_ms / 1000, (s->cfg->grace_ms % 1000) * 1000};
    event_add(s->grace_timer, &tv);
}

static void server_hup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct hs_server *s = arg;
    char err[2048];
    HS_UNUSED(sig);
    HS_UNUSED(what);
    hs_log(HS_LOG_INFO, "SIGHUP: reloading scripts");
    hs_server_reload(s, err, sizeof err);
}

int hs_server_run(struct hs_server *s)
{
    signal(SIGPIPE, SIG_IGN);
    s->sig_term = evsignal_new(s->base, SIGTERM, server_stop_signal_cb, s);
    s->sig_int = evsignal_new(s->base, SIGINT, server_stop_signal_cb, s);
    s->sig_hup = evsignal_new(s->base, SIGHUP, server_hup_cb, s);
    s->grace_timer = evtimer_new(s->base, server_grace_cb, s);
    event_add(s->sig_term, NULL);
    event_add(s->sig_int, NULL);
    event_add(s->sig_hup, NULL);
    hs_log(HS_LOG_INFO, "hotsock %s ready (pid %ld)", HOTSOCK_VERSION, (long)getpid());
    event_base_dispatch(s->base);
    hs_log(HS_LOG_INFO, "stopped");
    return 0;
}

void hs_server_free(struct hs_server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_services; i++) {
        struct service *sv = &s->services[i];
        for (size_t j = 0; j < sv->n_listeners; j++)
            hs_listener_free(sv->listeners[j]);
        for (size_t j = 0; j < sv->n_udps; j++)
            hs_udp_free(sv->udps[j]);
    }
    /* Connections first (their on_close runs Lua), then scripts, then the Lua state. */
    hs_conns_free(s->set);
    for (size_t i = 0; i < s->n_services; i++)
        hs_script_free(s->services[i].script);
    hs_lua_free(s->hl);
    if (s->sig_term)
        event_free(s->sig_term);
    if (s->sig_int)
        event_free(s->sig_int);
    if (s->sig_hup)
        event_free(s->sig_hup);
    if (s->grace_timer)
        event_free(s->grace_timer);
    if (s->base)
        event_base_free(s->base);
    free(s);
}
