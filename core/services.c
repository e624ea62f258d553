/* The services of a server: each script loaded, its framing chosen and its addresses bound
 * (or adopted from the socket map a master or an old process handed over), and a reload in
 * two phases: prepare (load, validate, bind new addresses; nothing changes) and commit
 * (publish; removed addresses close, live connections are offered the new version). */
#include "core/server_internal.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/script.h"
#include "core/tls.h"
#include "core/udp.h"
#include "core/worker_chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* How many sockets for url (its address part) this process bound before: the map names a
 * URL once per service that declared it, in binding order, so two services on
 * tcp://127.0.0.1:0 each take their own. */
static size_t bound_before(const struct hs_server *s, const char *url)
{
    size_t len = hs_addr_base_len(url), n = 0;
    for (size_t i = 0; i < s->n_services; i++)
        for (size_t j = 0; j < s->services[i].n_bound; j++) {
            const char *u = s->services[i].bound[j].url;
            n += hs_addr_base_len(u) == len && memcmp(u, url, len) == 0;
        }
    return n;
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
    /* The socket the master (or the process this one replaces) bound for url, if any. */
    if (load_tls(d, url, &b->tls, err, errlen) != 0)
        return -1;
    /* The map names sockets without their options. */
    int fd =
        hs_worker_chan_socket_fd(s->inherited, url, hs_addr_base_len(url), bound_before(s, url));
    if (a.scheme == HS_ADDR_UDP || a.scheme == HS_ADDR_UNIXGRAM) {
        r = fd >= 0 ? hs_udp_adopt_fd(s->base, fd, d->name, hs_lua_datagram, sv->script, &b->udp)
                    : hs_udp_new(s->base, &a, d->name, hs_lua_datagram, sv->script, &b->udp);
        bound = r == 0 ? hs_udp_url(b->udp) : NULL;
        /* As for unix: below. */
        if (r == 0 && fd >= 0 && !s->worker)
            hs_udp_own_path(b->udp, 1);
    } else {
        const struct hs_conn_handler *h =
            strcmp(d->protocol, "http") == 0 ? &hs_lua_http_handler : &hs_lua_conn_handler;
        r = fd >= 0 ? hs_listener_adopt_fd(s->base, s->set, fd, &a, d->name, framing, h, sv->script,
                                           hs_lua_accept, &b->listener)
                    : hs_listener_new(s->base, s->set, &a, d->name, framing, h, sv->script,
                                      hs_lua_accept, &b->listener);
        bound = r == 0 ? hs_listener_url(b->listener) : NULL;
        /* A Unix socket handed over by an upgrade is ours to remove now; a worker's is its
         * master's. */
        if (r == 0 && fd >= 0 && !s->worker)
            hs_listener_own_path(b->listener, 1);
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

int hs_server_start(struct hs_server *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->cfg->n_services; i++) {
        struct service *sv = &s->services[s->n_services];
        memset(sv, 0, sizeof *sv);
        sv->spec = &s->cfg->services[i];
        if (hs_script_load_sandboxed(s->hl, sv->spec->script, sv->spec->opts, sv->spec->n_opts,
                                     sv->spec->sandbox, &sv->script, err, errlen) != 0)
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

int hs__server_reload(struct hs_server *s, const int *which, char *out, size_t n)
{
    int failed = 0;
    size_t used = 0;
    if (n)
        out[0] = '\0';
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
            hs_worker_chan_socket_put(map, n, &used, b->url, hs_addr_base_len(b->url), fd);
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
    /* Certificates and keys too: a renewed certificate reloads like an edited script. */
    static char paths[64][HS_ADDR_MAX_OPT];
    const struct service *sv = &s->services[service];
    for (size_t j = 0, k = 0; j < sv->n_bound; j++) {
        if (sv->bound[j].tls == NULL)
            continue;
        const char *cur = hs_addr_query(sv->bound[j].url);
        char key[32];
        while (n < max && k < 64 &&
               hs_addr_option_next(&cur, key, sizeof key, paths[k], sizeof paths[k]) == 1)
            if (strcmp(key, "cert") == 0 || strcmp(key, "key") == 0)
                files[n++] = paths[k++];
    }
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

void hs_server_handover(struct hs_server *s)
{
    hs_server_accepting(s, 0);
    for (size_t i = 0; i < s->n_services; i++)
        for (size_t j = 0; j < s->services[i].n_bound; j++)
            if (s->services[i].bound[j].listener)
                hs_listener_own_path(s->services[i].bound[j].listener, 0);
            else if (s->services[i].bound[j].udp)
                hs_udp_own_path(s->services[i].bound[j].udp, 0);
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

void hs__server_unbind(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_services; i++)
        for (size_t j = 0; j < s->services[i].n_bound; j++)
            bound_free(&s->services[i].bound[j]);
}

void hs__server_unload(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_services; i++)
        hs_script_free(s->services[i].script);
}
