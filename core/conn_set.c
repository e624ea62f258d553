/* The set of open connections: limits, admission (the connection and per-address caps,
 * refusals logged at most once a second), walking and closing them all, and the
 * per-listener tallies connections count into. */
#include "core/conn_internal.h"
#include "core/tls.h"
#include "core/hs.h"
#include "core/log.h"

#include <stdlib.h>

void hs_conn_limits_default(struct hs_conn_limits *l)
{
    l->max_connections = HS_DEFAULT_MAX_CONNECTIONS;
    l->out_high = HS_DEFAULT_OUT_HIGH;
    l->out_low = HS_DEFAULT_OUT_LOW;
    l->out_hard = HS_DEFAULT_OUT_HARD;
    l->idle_timeout_ms = HS_DEFAULT_IDLE_TIMEOUT_MS;
    l->close_timeout_ms = HS_DEFAULT_CLOSE_TIMEOUT_MS;
    l->max_per_peer = HS_DEFAULT_MAX_PER_PEER;
    l->max_line = HS_DEFAULT_MAX_LINE;
    l->max_frame = HS_DEFAULT_MAX_FRAME;
    l->first_byte_timeout_ms = HS_DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    l->frame_timeout_ms = HS_DEFAULT_FRAME_TIMEOUT_MS;
    l->send_timeout_ms = HS_DEFAULT_SEND_TIMEOUT_MS;
    l->min_rate = HS_DEFAULT_MIN_RATE;
    l->tls_handshake_timeout_ms = HS_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
    l->tls_max_handshakes = HS_DEFAULT_TLS_MAX_HANDSHAKES;
    l->proxy_timeout_ms = HS_DEFAULT_PROXY_TIMEOUT_MS;
}

struct hs_conns *hs_conns_new(struct event_base *base, const struct hs_conn_limits *limits)
{
    struct hs_conns *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    set->base = base;
    set->limits = *limits;
    set->next_id = 1;
    set->ev_size = event_get_struct_event_size();
    set->peers = hs_peers_new();
    if (set->peers == NULL) {
        free(set);
        return NULL;
    }
    return set;
}

void hs_conns_free(struct hs_conns *set)
{
    if (set == NULL)
        return;
    set->on_empty = NULL;
    while (set->head)
        hs_conn_abort(set->head, "shutdown");
    hs_peers_free(set->peers);
    free(set);
}

unsigned hs_conns_count(const struct hs_conns *set)
{
    return set->count;
}

const struct hs_conn_limits *hs_conns_limits(const struct hs_conns *set)
{
    return &set->limits;
}

void hs_conns_on_empty(struct hs_conns *set, void (*cb)(struct hs_conns *set, void *arg), void *arg)
{
    set->on_empty = cb;
    set->on_empty_arg = arg;
}

void hs_conns_foreach(struct hs_conns *set, void (*cb)(struct hs_conn *c, void *arg), void *arg)
{
    size_t n = set->count, i = 0;
    struct hs_conn **all = n ? calloc(n, sizeof *all) : NULL;
    if (n && all == NULL)
        return;
    /* Pin every connection first: a callback may close any of them. */
    for (struct hs_conn *c = set->head; c && i < n; c = c->next) {
        c->refs++;
        all[i++] = c;
    }
    for (size_t j = 0; j < i; j++)
        if (!(all[j]->flags & CONN_CLOSED))
            cb(all[j], arg);
    for (size_t j = 0; j < i; j++) {
        struct hs_conn *c = all[j];
        c->refs--;
        if (c->flags & CONN_CLOSED)
            hs__conn_release(c);
        else if (c->refs == 0)
            hs__conn_after_output(c);
    }
    free(all);
}

static void conn_drain_one(struct hs_conn *c, void *arg)
{
    HS_UNUSED(arg);
    if (c->handler->on_drain && !(c->flags & CONN_CLOSING))
        c->handler->on_drain(c, c->arg);
}

void hs_conns_drain(struct hs_conns *set)
{
    hs_conns_foreach(set, conn_drain_one, NULL);
}

void hs_conns_close_all(struct hs_conns *set)
{
    struct hs_conn *c = set->head, *next;
    for (; c; c = next) {
        /* hs_conn_close may unlink c (nothing pending): read next first. */
        next = c->next;
        hs_conn_close(c, "shutdown");
    }
}

/* Logs a refusal, at most one line a second however hard a flood pushes. */
static void conns_log_refusal(struct hs_conns *set, const char *what, unsigned limit,
                              const char *peer)
{
    long long now = hs__conns_now(set);
    if (set->refusal_logged && now - set->refusal_logged < 1000) {
        set->refusals_quiet++;
        return;
    }
    if (set->refusals_quiet)
        hs_log(HS_LOG_WARN, "%llu more connection(s) refused since the last such line",
               set->refusals_quiet);
    hs_log(HS_LOG_WARN, "%s (%u) reached; refusing %s", what, limit, peer);
    set->refusal_logged = now;
    set->refusals_quiet = 0;
}

/* The admission rule behind hs_conns_admit and hs_conn_new: 1 to refuse (logged). */
int hs__conns_refuse(struct hs_conns *set, const struct hs_peer_key *key, const char *peer)
{
    const struct hs_conn_limits *l = &set->limits;
    if (l->max_connections && set->count >= l->max_connections) {
        conns_log_refusal(set, "connection limit", l->max_connections, peer);
        return 1;
    }
    return hs__conns_refuse_peer(set, key, peer);
}

int hs__conns_refuse_peer(struct hs_conns *set, const struct hs_peer_key *key, const char *peer)
{
    const struct hs_conn_limits *l = &set->limits;
    if (l->max_per_peer && hs_peers_count(set->peers, key) >= l->max_per_peer) {
        conns_log_refusal(set, "per-address limit", l->max_per_peer, peer);
        return 1;
    }
    return 0;
}

int hs_conns_admit(struct hs_conns *set, const struct sockaddr *sa, socklen_t len, const char *peer)
{
    struct hs_peer_key key;
    hs_peers_key(sa, len, &key);
    return hs__conns_refuse(set, &key, peer) ? HS_ETOOBIG : 0;
}

struct hs_conn_tally *hs_conn_tally_new(void)
{
    struct hs_conn_tally *t = calloc(1, sizeof *t);
    if (t)
        t->refs = 1;
    return t;
}

void hs_conn_tally_unref(struct hs_conn_tally *t)
{
    if (t && --t->refs == 0)
        free(t);
}

HS_HOT void hs_conn_count_message(struct hs_conn *c)
{
    if (c->tally)
        c->tally->messages++;
}

void hs_conns_tally_live(struct hs_conns *set)
{
    for (struct hs_conn *c = set->head; c; c = c->next)
        if (c->tally)
            c->tally->live_in = c->tally->live_out = 0;
    for (struct hs_conn *c = set->head; c; c = c->next)
        if (c->tally) {
            c->tally->live_in += c->bytes_in;
            c->tally->live_out += c->bytes_out;
        }
}
