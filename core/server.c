#include "core/server.h"
#include "core/conn.h"
#include "core/control.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/metrics_http.h"
#include "core/reload.h"
#include "core/shared.h"
#include "core/stats.h"
#include "core/stats_text.h"
#include "core/tls.h"
#include "core/udp.h"
#include "core/watch.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define SERVER_MAX_BOUND 16 /* addresses of one service */
#define WATCH_POLL_MS 100   /* --watch: how often files are checked */
#define WATCH_SETTLE_MS 150 /* --watch: quiet time before a change is reloaded */

/* One address a service is bound to, under the URL it was asked for. */
struct bound {
    char url[HS_ADDR_MAX_URL];    /* as requested (port 0 stays 0), options included */
    struct hs_listener *listener; /* TCP or Unix, or NULL */
    struct hs_udp *udp;           /* UDP, or NULL */
    struct hs_tls_ctx *tls;       /* tls://: the certificates new handshakes use, or NULL */
};

struct service {
    const struct hs_service_spec *spec;
    struct hs_script *script;
    struct hs_framing framing; /* for new connections */
    struct bound bound[SERVER_MAX_BOUND];
    size_t n_bound;
    /* A reload between its prepare and commit phases: */
    struct hs_script_pending *pending; /* the new version, or NULL */
    struct hs_framing next_framing;
    struct bound next[SERVER_MAX_BOUND]; /* the addresses after the reload */
    size_t n_next;
    int fresh[SERVER_MAX_BOUND]; /* next[i] was bound by this reload */
    int kept[SERVER_MAX_BOUND];  /* bound[i] stays */
    /* The last reload attempt, for stats: */
    unsigned reloads;        /* attempts */
    double reload_time;      /* wall clock seconds of the last one, 0 if none */
    int reload_ok;           /* it succeeded */
    char reload_error[1024]; /* its error, "" when it succeeded */
};

struct hs_server {
    const struct hs_config *cfg;
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    struct service services[HS_CONFIG_MAX_SERVICES];
    size_t n_services;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *grace_timer;  /* ends a graceful stop that takes too long */
    int stopping;               /* a stop signal arrived */
    struct hs_control *control; /* `hotsock reload` socket, or NULL */
    char control_path[HS_ADDR_MAX_PATH];
    struct hs_watch *watch; /* --watch, or NULL */
    int worker;             /* worker number (1..N) in a multi-process server, else 0 */
    const char *inherited;  /* "URL=FD;..." sockets bound by the master, or NULL */
    int chan;               /* worker: command channel to the master, else -1 */
    struct event *chan_ev;
    char chan_buf[256]; /* a partial command line */
    size_t chan_len;
    struct hs_metrics *metrics; /* --metrics listener, or NULL */
};

/* Records the outcome of a reload attempt of sv (err NULL: it succeeded). */
static void note_reload(struct service *sv, const char *err)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sv->reloads++;
    sv->reload_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    sv->reload_ok = err == NULL;
    snprintf(sv->reload_error, sizeof sv->reload_error, "%s", err ? err : "");
}

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
    if (s->hl == NULL) {
        hs_server_free(s);
        return NULL;
    }
    return s;
}

/* The framing for a service: --framing, else the script's `framing`, else raw. */
static int pick_framing(const struct hs_service_spec *spec, const struct hs_script_decl *d,
                        struct hs_framing *out, char *err, size_t errlen)
{
    const char *why = "bad framing";
    if (spec->framing) {
        if (hs_framing_parse(spec->framing, out, &why) != 0) {
            snprintf(err, errlen, "bad framing '%s': %s", spec->framing, why);
            return -1;
        }
    } else if (d->has_framing) {
        *out = d->framing;
    } else {
        hs_framing_init(out, HS_FRAMING_RAW);
    }
    return 0;
}

/* The addresses a service should be bound to: the command line's, else the script's. */
static size_t wanted_urls(const struct hs_service_spec *spec, const struct hs_script_decl *d,
                          const char **urls)
{
    size_t n = 0;
    if (spec->n_listen > 0)
        for (size_t i = 0; i < spec->n_listen && n < SERVER_MAX_BOUND; i++)
            urls[n++] = spec->listen[i];
    else
        for (size_t i = 0; i < d->n_listen && n < SERVER_MAX_BOUND; i++)
            urls[n++] = d->listen[i];
    return n;
}

static void bound_free(struct bound *b)
{
    hs_listener_free(b->listener);
    hs_udp_free(b->udp);
    hs_tls_ctx_unref(b->tls);
    b->listener = NULL;
    b->udp = NULL;
    b->tls = NULL;
}

/* Loads the certificates of a tls:// URL (every file read and checked now, so a bad one
 * fails the start or the reload, never a handshake). HTTP scripts advertise ALPN http/1.1.
 * Returns 0 with *out (NULL for other schemes), or -1 with err set. */
static int load_tls(const struct hs_script_decl *d, const char *url, struct hs_tls_ctx **out,
                    char *err, size_t errlen)
{
    struct hs_addr a;
    *out = NULL;
    if (hs_addr_parse(url, &a, NULL) != 0 || a.scheme != HS_ADDR_TLS)
        return 0;
    char e[HS_TLS_ERR + 64];
    if (hs_tls_server_new(url, strcmp(d->protocol, "http") == 0, out, e, sizeof e) == 0)
        return 0;
    snprintf(err, errlen, "cannot load the certificates of %.*s: %s", (int)hs_addr_base_len(url),
             url, e);
    return -1;
}

/* The socket the master bound for url, or -1. */
static int inherited_fd(const struct hs_server *s, const char *url)
{
    if (s->inherited == NULL)
        return -1;
    size_t ul = hs_addr_base_len(url); /* the map names sockets without their options */
    for (const char *p = s->inherited; *p;) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ';');
        if (eq == NULL)
            break;
        if (end == NULL)
            end = p + strlen(p);
        if ((size_t)(eq - p) == ul && memcmp(p, url, ul) == 0)
            return atoi(eq + 1);
        p = *end ? end + 1 : end;
    }
    return -1;
}

static int bind_url(struct hs_server *s, struct service *sv, const struct hs_script_decl *d,
                    const struct hs_framing *framing, const char *url, struct bound *b, char *err,
                    size_t errlen)
{
    struct hs_addr a;
    const char *why;
    memset(b, 0, sizeof *b);
    snprintf(b->url, sizeof b->url, "%s", url);
    if (hs_addr_parse(url, &a, &why) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", url, why);
        return -1;
    }
    int r;
    const char *bound;
    if (load_tls(d, url, &b->tls, err, errlen) != 0)
        return -1;
    int fd = inherited_fd(s, url);
    if (a.scheme == HS_ADDR_UDP) {
        r = fd >= 0 ? hs_udp_adopt_fd(s->base, fd, d->name, hs_lua_datagram, sv->script, &b->udp)
                    : hs_udp_new(s->base, &a, d->name, hs_lua_datagram, sv->script, &b->udp);
        bound = r == 0 ? hs_udp_url(b->udp) : NULL;
    } else {
        const struct hs_conn_handler *h =
            strcmp(d->protocol, "http") == 0 ? &hs_lua_http_handler : &hs_lua_conn_handler;
        r = fd >= 0 ? hs_listener_adopt_fd(s->base, s->set, fd, &a, d->name, framing, h, sv->script,
                                           hs_lua_accept, &b->listener)
                    : hs_listener_new(s->base, s->set, &a, d->name, framing, h, sv->script,
                                      hs_lua_accept, &b->listener);
        bound = r == 0 ? hs_listener_url(b->listener) : NULL;
    }
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %.*s: %s", (int)hs_addr_base_len(url), url,
                 r == HS_EBADSPEC ? "host name does not resolve" : hs_strerror(r));
        bound_free(b);
        return -1;
    }
    if (b->tls)
        hs_listener_set_tls(b->listener, b->tls);
    /* In a worker the master has announced every address already. */
    hs_log(s->worker ? HS_LOG_DEBUG : HS_LOG_INFO, "listening %s %s", bound, d->name);
    return 0;
}

static void watch_service(struct hs_server *s, size_t idx)
{
    if (s->watch == NULL)
        return;
    const char *files[64];
    size_t n = 0;
    for (const char *f; n < 64 && (f = hs_script_file(s->services[idx].script, n)); n++)
        files[n] = f;
    /* Certificates and keys too: a renewed certificate reloads like an edited script. */
    static char paths[64][HS_ADDR_MAX_OPT];
    const struct service *sv = &s->services[idx];
    for (size_t j = 0, k = 0; j < sv->n_bound; j++) {
        if (sv->bound[j].tls == NULL)
            continue;
        const char *cur = hs_addr_query(sv->bound[j].url);
        char key[32];
        while (n < 64 && k < 64 &&
               hs_addr_option_next(&cur, key, sizeof key, paths[k], sizeof paths[k]) == 1)
            if (strcmp(key, "cert") == 0 || strcmp(key, "key") == 0)
                files[n++] = paths[k++];
    }
    hs_watch_set(s->watch, idx, files, n);
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
        hs_script_set_service(sv->script, (unsigned)s->n_services + 1);
        s->n_services++;
        const struct hs_script_decl *d = hs_script_decl(sv->script);
        if (pick_framing(sv->spec, d, &sv->framing, err, errlen) != 0)
            return -1;
        const char *urls[SERVER_MAX_BOUND];
        size_t n = wanted_urls(sv->spec, d, urls);
        if (n == 0) {
            snprintf(err, errlen, "%s: no address to listen on (give --listen URL)",
                     sv->spec->script);
            return -1;
        }
        for (size_t j = 0; j < n; j++) {
            if (bind_url(s, sv, d, &sv->framing, urls[j], &sv->bound[sv->n_bound], err, errlen) !=
                0)
                return -1;
            sv->n_bound++;
        }
    }
    return 0;
}

static void service_discard(struct service *sv)
{
    for (size_t k = 0; k < sv->n_next; k++) {
        if (sv->fresh[k])
            bound_free(&sv->next[k]);
        else
            hs_tls_ctx_unref(sv->next[k].tls); /* the certificates this reload loaded */
    }
    sv->n_next = 0;
    if (sv->pending)
        hs_script_discard(sv->pending);
    sv->pending = NULL;
}

/* Phase one of a reload: the new version is loaded and validated, and any new address it
 * declares is bound, while the running version goes on untouched. */
static int service_prepare(struct hs_server *s, struct service *sv, char *err, size_t errlen)
{
    const struct hs_service_spec *spec = sv->spec;
    memset(sv->fresh, 0, sizeof sv->fresh);
    memset(sv->kept, 0, sizeof sv->kept);
    sv->n_next = 0;
    if (hs_script_prepare(sv->script, NULL, 0, &sv->pending, err, errlen) != 0) {
        sv->pending = NULL;
        note_reload(sv, err);
        return -1;
    }
    const struct hs_script_decl *d = hs_script_pending_decl(sv->pending);
    const char *urls[SERVER_MAX_BOUND];
    size_t n = wanted_urls(spec, d, urls);
    if (pick_framing(spec, d, &sv->next_framing, err, errlen) != 0 || n == 0) {
        if (n == 0)
            snprintf(err, errlen, "%s: no address to listen on", hs_script_path(sv->script));
        service_discard(sv);
        note_reload(sv, err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < sv->n_bound && (sv->kept[j] || strcmp(sv->bound[j].url, urls[i]) != 0))
            j++;
        if (j < sv->n_bound) {
            /* Same socket; its certificate files are read again (they may have been
             * renewed): a bad one fails the whole reload. */
            struct bound *nb = &sv->next[sv->n_next];
            *nb = sv->bound[j];
            nb->tls = NULL;
            sv->kept[j] = 1;
            sv->n_next++;
            if (load_tls(d, urls[i], &nb->tls, err, errlen) != 0) {
                service_discard(sv);
                note_reload(sv, err);
                return -1;
            }
            continue;
        }
        if (s->worker) {
            /* The master re-forks workers when addresses change; here they cannot. */
            snprintf(err, errlen, "%s: listen addresses changed", hs_script_path(sv->script));
            service_discard(sv);
            return -1;
        }
        if (bind_url(s, sv, d, &sv->next_framing, urls[i], &sv->next[sv->n_next], err, errlen) !=
            0) {
            service_discard(sv);
            note_reload(sv, err);
            return -1;
        }
        sv->fresh[sv->n_next++] = 1;
    }
    return 0;
}

/* Phase two: publish the prepared version, drop removed addresses (their connections go
 * on), keep unchanged sockets, offer live connections to the new version. */
static void service_commit(struct hs_server *s, struct service *sv)
{
    hs_script_commit(sv->pending);
    sv->pending = NULL;
    note_reload(sv, NULL);
    for (size_t j = 0; j < sv->n_bound; j++) {
        if (!sv->kept[j]) {
            hs_log(HS_LOG_INFO, "no longer listening on %.*s (%s)",
                   (int)hs_addr_base_len(sv->bound[j].url), sv->bound[j].url,
                   hs_script_decl(sv->script)->name);
            bound_free(&sv->bound[j]);
        } else {
            hs_tls_ctx_unref(sv->bound[j].tls); /* replaced by next[]'s, loaded by prepare */
        }
    }
    memcpy(sv->bound, sv->next, sv->n_next * sizeof sv->next[0]);
    sv->n_bound = sv->n_next;
    sv->n_next = 0;
    sv->framing = sv->next_framing;
    for (size_t j = 0; j < sv->n_bound; j++) {
        if (sv->bound[j].listener) {
            hs_listener_retarget(sv->bound[j].listener, &sv->framing, sv->script);
            /* New handshakes use the certificates just loaded; live sessions keep theirs. */
            hs_listener_set_tls(sv->bound[j].listener, sv->bound[j].tls);
        }
    }
    unsigned moved = hs_lua_adopt(sv->script, s->set);
    hs_log(HS_LOG_INFO, "reloaded %s: generation %u%s", hs_script_path(sv->script),
           hs_script_generation(sv->script), moved ? " (live connections adopted)" : "");
    watch_service(s, (size_t)(sv - s->services));
}

/* Whether the prepared reload of sv changes its addresses. */
static int service_addresses_change(const struct service *sv)
{
    if (sv->n_next != sv->n_bound)
        return 1;
    for (size_t j = 0; j < sv->n_next; j++)
        if (sv->fresh[j])
            return 1;
    return 0;
}

static int service_reload(struct hs_server *s, struct service *sv, char *err, size_t errlen)
{
    if (service_prepare(s, sv, err, errlen) != 0)
        return -1;
    service_commit(s, sv);
    return 0;
}

/* One reload report line: what `hotsock reload` prints, in either process mode. */
static int report_line(char *out, size_t n, const struct service *sv, double ms)
{
    return snprintf(out, n, "ok %s generation %u (%.2f ms)\n", hs_script_path(sv->script),
                    hs_script_generation(sv->script), ms);
}

/* Reloads the services whose bit is set in `which` (all when which is NULL). Writes one line
 * per service into out: "ok PATH generation N" or "error PATH: message". */
static int reload_services(struct hs_server *s, const int *which, char *out, size_t n)
{
    int failed = 0;
    size_t used = 0;
    if (n)
        out[0] = '\0';
    if (s->stopping) {
        /* The listeners are closed: a reload could only bind new ones. */
        snprintf(out, n, "error the server is stopping\n");
        return -1;
    }
    for (size_t i = 0; i < s->n_services; i++) {
        if (which && !which[i])
            continue;
        struct service *sv = &s->services[i];
        char e[2048];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = service_reload(s, sv, e, sizeof e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        int w;
        if (r != 0) {
            failed = 1;
            hs_log(HS_LOG_ERROR, "reload failed, keeping generation %u: %s",
                   hs_script_generation(sv->script), e);
            w = snprintf(out + used, n - used, "error %s\n", e);
        } else {
            w = report_line(out + used, n - used, sv, ms);
        }
        if (w > 0 && used + (size_t)w < n)
            used += (size_t)w;
    }
    return failed ? -1 : 0;
}

int hs_server_reload(struct hs_server *s, char *err, size_t errlen)
{
    return reload_services(s, NULL, err, errlen);
}

int hs_server_prepare(struct hs_server *s, char *err, size_t errlen, int *addresses_changed)
{
    *addresses_changed = 0;
    for (size_t i = 0; i < s->n_services; i++) {
        if (service_prepare(s, &s->services[i], err, errlen) != 0) {
            for (size_t j = 0; j < i; j++)
                service_discard(&s->services[j]);
            return -1;
        }
        *addresses_changed |= service_addresses_change(&s->services[i]);
    }
    return 0;
}

void hs_server_commit(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_services; i++)
        if (s->services[i].pending != NULL)
            service_commit(s, &s->services[i]);
}

void hs_server_report(struct hs_server *s, double ms, char *out, size_t n)
{
    size_t used = 0;
    if (n)
        out[0] = '\0';
    for (size_t i = 0; i < s->n_services && used < n; i++) {
        int w = report_line(out + used, n - used, &s->services[i], ms);
        if (w > 0 && used + (size_t)w < n)
            used += (size_t)w;
    }
}

void hs_server_discard(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_services; i++)
        service_discard(&s->services[i]);
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

static void chan_reply(struct hs_server *s, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(s->chan, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static void server_stop_signal_cb(evutil_socket_t sig, short what, void *arg);

/* A worker's commands from the master, one per line: prepare, commit, discard. The reply
 * to each is one line starting with "ok" or "error". */
static void worker_command(struct hs_server *s, const char *cmd)
{
    char out[2048];
    if (strcmp(cmd, "prepare") == 0) {
        int changed;
        char err[1800];
        if (hs_server_prepare(s, err, sizeof err, &changed) != 0) {
            for (char *p = err; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            snprintf(out, sizeof out, "error %s\n", err);
            chan_reply(s, out);
        } else {
            chan_reply(s, "ok\n");
        }
    } else if (strcmp(cmd, "commit") == 0) {
        hs_server_commit(s);
        chan_reply(s, "ok\n");
    } else if (strcmp(cmd, "discard") == 0) {
        hs_server_discard(s);
        chan_reply(s, "ok\n");
    } else if (strcmp(cmd, "stats") == 0) {
        /* Several lines, then "end": the master reads until it. */
        static char snap[HS_SERVER_STATS_MAX];
        hs_server_stats(s, HS_SERVER_STATS_COUNTERS, snap, sizeof snap - 8);
        strcat(snap, "end\n");
        chan_reply(s, snap);
    } else {
        chan_reply(s, "error unknown command\n");
    }
}

static void worker_chan_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(what);
    ssize_t r = read(fd, s->chan_buf + s->chan_len, sizeof s->chan_buf - 1 - s->chan_len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        /* The master is gone: finish like on SIGTERM. */
        event_del(s->chan_ev);
        hs_log(HS_LOG_WARN, "master went away; stopping");
        server_stop_signal_cb(SIGTERM, 0, s);
        return;
    }
    s->chan_len += (size_t)r;
    s->chan_buf[s->chan_len] = '\0';
    char *nl;
    while ((nl = strchr(s->chan_buf, '\n')) != NULL) {
        *nl = '\0';
        worker_command(s, s->chan_buf);
        size_t rest = s->chan_len - (size_t)(nl + 1 - s->chan_buf);
        memmove(s->chan_buf, nl + 1, rest + 1);
        s->chan_len = rest;
    }
    if (s->chan_len == sizeof s->chan_buf - 1)
        s->chan_len = 0; /* a line that long is no command of ours */
}

struct event_base *hs_server_base(struct hs_server *s)
{
    return s->base;
}

size_t hs_server_sockets(struct hs_server *s, char *map, size_t n, int *fds, size_t max_fds)
{
    size_t used = 0, nf = 0;
    if (n)
        map[0] = '\0';
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t j = 0; j < s->services[i].n_bound && nf < max_fds; j++) {
            struct bound *b = &s->services[i].bound[j];
            int fd = b->listener ? hs_listener_fd(b->listener) : hs_udp_fd(b->udp);
            /* The address alone: options hold '=' and ';' (and paths the workers load). */
            int w = snprintf(map + used, n - used, "%s%.*s=%d", used ? ";" : "",
                             (int)hs_addr_base_len(b->url), b->url, fd);
            if (w > 0 && used + (size_t)w < n)
                used += (size_t)w;
            fds[nf++] = fd;
        }
    }
    return nf;
}

size_t hs_server_script_files(struct hs_server *s, size_t service, const char **files, size_t max)
{
    if (service >= s->n_services)
        return 0;
    size_t n = 0;
    for (const char *f; n < max && (f = hs_script_file(s->services[service].script, n)); n++)
        files[n] = f;
    return n;
}

void hs_server_accepting(struct hs_server *s, int on)
{
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t j = 0; j < s->services[i].n_bound; j++) {
            struct bound *b = &s->services[i].bound[j];
            if (b->listener)
                on ? hs_listener_start(b->listener) : hs_listener_stop(b->listener);
            if (b->udp)
                on ? hs_udp_start(b->udp) : hs_udp_stop(b->udp);
        }
    }
}

void hs_server_stop_listening(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t j = 0; j < s->services[i].n_bound; j++) {
            struct bound *b = &s->services[i].bound[j];
            if (b->listener)
                hs_listener_close(b->listener);
            if (b->udp)
                hs_udp_stop(b->udp);
        }
    }
}

void hs_server_note_reload_failed(struct hs_server *s, const char *err)
{
    for (size_t i = 0; i < s->n_services; i++)
        note_reload(&s->services[i], err);
}

/* Appends a formatted piece at *used of out (n bytes), never past the end. */
static void stats_put(char *out, size_t n, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void stats_put(char *out, size_t n, size_t *used, const char *fmt, ...)
{
    if (*used + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *used, n - *used, fmt, ap);
    va_end(ap);
    if (w > 0)
        *used = *used + (size_t)w < n ? *used + (size_t)w : n - 1;
}

size_t hs_server_stats(struct hs_server *s, int what, char *out, size_t n)
{
    size_t used = 0;
    char a[1024], b[3200];
    if (n)
        out[0] = '\0';
    if (what & HS_SERVER_STATS_COUNTERS) {
        stats_put(out, n, &used,
                  "process worker=%d pid=%ld lua_memory=%zu connections=%u timers=%u\n", s->worker,
                  (long)getpid(), hs_lua_memory(s->hl), hs_conns_count(s->set),
                  hs_lua_timer_count(s->hl));
        if (used + 1 < n)
            used += hs_lua_pubsub_stats(s->hl, out + used, n - used);
        /* A current version shows up even before its first connection. */
        for (size_t i = 0; i < s->n_services; i++)
            hs_version_stats(hs_script_current(s->services[i].script));
        hs_lua_stats_live(s->set);
        hs_conns_tally_live(s->set);
        if (used + 1 < n)
            used += hs_stats_write(out + used, n - used);
        for (size_t i = 0; i < s->n_services; i++) {
            const struct service *sv = &s->services[i];
            for (size_t j = 0; j < sv->n_bound; j++) {
                if (sv->bound[j].udp != NULL) {
                    /* A UDP socket accepts nothing: its datagrams are its messages. */
                    struct hs_udp_counts u;
                    hs_udp_counts(sv->bound[j].udp, &u);
                    hs_stats_escape(hs_udp_url(sv->bound[j].udp), a, sizeof a);
                    hs_stats_escape(hs_script_decl(sv->script)->name, b, sizeof b);
                    stats_put(out, n, &used,
                              "listener url=%s name=%s accepted=0 refused=0 limited=0 open=0 "
                              "bytes_in=%llu bytes_out=%llu messages=%llu errors=0\n",
                              a, b, u.bytes_in, u.bytes_out, u.datagrams_in);
                }
                if (sv->bound[j].listener == NULL)
                    continue;
                unsigned long long acc, ref, lim;
                hs_listener_counts(sv->bound[j].listener, &acc, &ref, &lim);
                const struct hs_conn_tally *t = hs_listener_tally(sv->bound[j].listener);
                hs_stats_escape(hs_listener_url(sv->bound[j].listener), a, sizeof a);
                hs_stats_escape(hs_script_decl(sv->script)->name, b, sizeof b);
                stats_put(out, n, &used,
                          "listener url=%s name=%s accepted=%llu refused=%llu limited=%llu "
                          "open=%llu bytes_in=%llu bytes_out=%llu messages=%llu errors=%llu "
                          "tls_failures=%llu\n",
                          a, b, acc, ref, lim, t->open,
                          (unsigned long long)(t->bytes_in + t->live_in),
                          (unsigned long long)(t->bytes_out + t->live_out), t->messages, t->errors,
                          t->tls_failures);
            }
        }
    }
    if (what & HS_SERVER_STATS_SCRIPTS) {
        for (size_t i = 0; i < s->n_services; i++) {
            const struct service *sv = &s->services[i];
            hs_stats_escape(hs_script_decl(sv->script)->name, a, sizeof a);
            stats_put(out, n, &used, "script service=%u name=%s", hs_script_service(sv->script), a);
            hs_stats_escape(hs_script_path(sv->script), a, sizeof a);
            hs_stats_escape(sv->reload_error, b, sizeof b);
            stats_put(out, n, &used,
                      " path=%s generation=%u reloads=%u reload_time=%.3f reload_ok=%d "
                      "reload_error=%s\n",
                      a, hs_script_generation(sv->script), sv->reloads, sv->reload_time,
                      sv->reload_ok, b);
        }
        /* The dictionaries are one set for the whole server: described once, like scripts. */
        if (hs_shared_region() && used + 1 < n)
            used += hs_shared_stats_write(hs_shared_region(), out + used, n - used);
    }
    return used;
}

static size_t server_metrics_cb(char *out, size_t n, void *arg)
{
    static char snap[HS_SERVER_STATS_MAX];
    hs_server_stats(arg, HS_SERVER_STATS_COUNTERS | HS_SERVER_STATS_SCRIPTS, snap, sizeof snap);
    return hs_stats_render_prometheus(snap, out, n);
}

int hs_server_start_metrics(struct hs_server *s, hs_metrics_cb cb, void *arg, char *err,
                            size_t errlen)
{
    const char *url = s->cfg->metrics_url;
    if (url == NULL)
        return 0;
    int r = hs_metrics_new(s->base, url, cb ? cb : server_metrics_cb, cb ? arg : s, &s->metrics);
    if (r != 0) {
        snprintf(err, errlen, "cannot serve metrics on %s: %s", url,
                 r == HS_EBADSPEC ? "not a tcp:// or unix: address" : hs_strerror(r));
        return -1;
    }
    return 0;
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
    if (s->metrics)
        fprintf(f, "  metrics  http %s/metrics\n", hs_metrics_url(s->metrics));
    if (s->control)
        fprintf(f, "  control  %s (hotsock stats, hotsock reload)\n", s->control_path);
    fflush(f);
}

static void server_control_cb(const char *cmd, char *out, size_t n, void *arg)
{
    struct hs_server *s = arg;
    if (strcmp(cmd, "reload") == 0) {
        hs_log(HS_LOG_INFO, "reload requested on the control socket");
        reload_services(s, NULL, out, n);
    } else if (strcmp(cmd, "stats") == 0) {
        hs_server_stats(s, HS_SERVER_STATS_COUNTERS | HS_SERVER_STATS_SCRIPTS, out, n);
    } else {
        snprintf(out, n, "error unknown command '%s' (known: reload, stats, ping)\n", cmd);
    }
}

static void server_watch_cb(struct hs_watch *w, size_t tag, void *arg)
{
    struct hs_server *s = arg;
    HS_UNUSED(w);
    if (tag >= s->n_services)
        return;
    int which[HS_CONFIG_MAX_SERVICES] = {0};
    which[tag] = 1;
    char out[4096];
    hs_log(HS_LOG_INFO, "%s changed on disk: reloading", hs_script_path(s->services[tag].script));
    reload_services(s, which, out, sizeof out);
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
    hs_server_stop_listening(s);
    /* Idle connections close now and busy ones after their message: the set may empty here. */
    hs_conns_on_empty(s->set, server_on_empty, s);
    hs_conns_drain(s->set);
    if (hs_conns_count(s->set) == 0) {
        server_exit_now(s);
        return;
    }
    struct timeval tv = {s->cfg->grace_ms / 1000, (s->cfg->grace_ms % 1000) * 1000};
    event_add(s->grace_timer, &tv);
}

static void server_hup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct hs_server *s = arg;
    char out[4096];
    HS_UNUSED(sig);
    HS_UNUSED(what);
    hs_log(HS_LOG_INFO, "SIGHUP: reloading scripts");
    reload_services(s, NULL, out, sizeof out);
}

const char *hs_server_instance_key(const struct hs_config *cfg)
{
    return cfg->config_path ? cfg->config_path : cfg->services[0].script;
}

int hs_server_run(struct hs_server *s)
{
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    if (s->worker) {
        /* Reloads come from the master over the channel; SIGHUP is the master's. */
        signal(SIGHUP, SIG_IGN);
        s->chan_ev = event_new(s->base, s->chan, EV_READ | EV_PERSIST, worker_chan_cb, s);
        event_add(s->chan_ev, NULL);
        s->sig_term = evsignal_new(s->base, SIGTERM, server_stop_signal_cb, s);
        s->sig_int = evsignal_new(s->base, SIGINT, server_stop_signal_cb, s);
        s->grace_timer = evtimer_new(s->base, server_grace_cb, s);
        event_add(s->sig_term, NULL);
        event_add(s->sig_int, NULL);
        hs_log(HS_LOG_INFO, "worker %d serving (pid %ld)", s->worker, (long)getpid());
        chan_reply(s, "ready\n");
        event_base_dispatch(s->base);
        hs_log(HS_LOG_INFO, "worker %d stopped", s->worker);
        return 0;
    }
    if (hs_control_start(s->base, s->cfg->control_path, hs_server_instance_key(s->cfg),
                         server_control_cb, s, &s->control, s->control_path, sizeof s->control_path,
                         err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        fprintf(stderr, "hotsock: %s\n", err);
        return 1;
    }
    if (s->cfg->watch) {
        s->watch = hs_watch_new(s->base, WATCH_POLL_MS, WATCH_SETTLE_MS, server_watch_cb, s);
        for (size_t i = 0; i < s->n_services; i++)
            watch_service(s, i);
        hs_log(HS_LOG_INFO, "watching scripts for changes");
    }
    s->sig_term = evsignal_new(s->base, SIGTERM, server_stop_signal_cb, s);
    s->sig_int = evsignal_new(s->base, SIGINT, server_stop_signal_cb, s);
    s->sig_hup = evsignal_new(s->base, SIGHUP, server_hup_cb, s);
    s->grace_timer = evtimer_new(s->base, server_grace_cb, s);
    event_add(s->sig_term, NULL);
    event_add(s->sig_int, NULL);
    event_add(s->sig_hup, NULL);
    if (hs_server_start_metrics(s, NULL, NULL, err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        return 1;
    }
    hs_server_banner(s, stdout, NULL);
    hs_log(HS_LOG_INFO, "hotsock %s ready (pid %ld)", HOTSOCK_VERSION, (long)getpid());
    event_base_dispatch(s->base);
    hs_log(HS_LOG_INFO, "stopped");
    return 0;
}

void hs_server_free(struct hs_server *s)
{
    if (s == NULL)
        return;
    hs_watch_free(s->watch);
    hs_control_free(s->control);
    hs_metrics_free(s->metrics);
    for (size_t i = 0; i < s->n_services; i++)
        for (size_t j = 0; j < s->services[i].n_bound; j++)
            bound_free(&s->services[i].bound[j]);
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
    if (s->chan_ev)
        event_free(s->chan_ev);
    if (s->base)
        event_base_free(s->base);
    free(s);
}
