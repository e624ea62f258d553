/* A server's stats snapshot in the line format of core/stats_text.h. */
#include "core/server_internal.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/lua_api.h"
#include "core/script.h"
#include "core/shared.h"
#include "core/stats.h"
#include "core/stats_text.h"
#include "core/udp.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

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
                          "tls_failures=%llu proxy_failures=%llu\n",
                          a, b, acc, ref, lim, t->open,
                          (unsigned long long)(t->bytes_in + t->live_in),
                          (unsigned long long)(t->bytes_out + t->live_out), t->messages, t->errors,
                          t->tls_failures, t->proxy_failures);
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
