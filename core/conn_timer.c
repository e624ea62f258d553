/* The stall rules of a connection (first byte, receive and send windows with a minimum
 * rate, idle) and the one timer per connection that enforces them and the close timeout. */
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"

/* Makes the timer fire at `at` (ms) unless it fires no later already. The callback finds out
 * which rule is due and re-arms for the next, so a deadline that moves later costs nothing.
 * While closing, the timer is the close timeout's alone. */
void hs__conn_schedule(struct hs_conn *c, long long at)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    if (c->timer_at != 0 && c->timer_at <= at)
        return;
    long long wait = at - hs__conns_now(c->set);
    struct timeval tv;
    hs__timeval_ms(&tv, wait > 0 ? wait : 0);
    event_add(hs__conn_timer(c), &tv);
    c->timer_at = at;
}

/* A new receive window starts now (a frame began, one completed, or reading resumed). */
void hs__conn_rx_start(struct hs_conn *c)
{
    c->rx_since = hs__conns_now(c->set);
    c->rx_mark = c->bytes_in;
    if (c->set->limits.frame_timeout_ms)
        hs__conn_schedule(c, c->rx_since + c->set->limits.frame_timeout_ms);
}

/* After input was framed: is a frame in progress? frames > 0 means some completed, which is
 * progress whatever their size. Protocol layers (on_data) report this themselves. */
HS_HOT void hs__conn_rx_track(struct hs_conn *c, int frames)
{
    if (c->handler->on_data || (c->flags & (CONN_CLOSING | CONN_CLOSED)))
        return;
    if (!hs__conn_pipe_active(c) && evbuffer_get_length(c->in) == 0)
        c->rx_since = 0;
    else if (c->rx_since == 0 || frames > 0)
        hs__conn_rx_start(c);
}

/* After a flush: output waiting starts a send window; none waiting ends it. */
HS_HOT void hs__conn_tx_track(struct hs_conn *c, size_t pending)
{
    if (pending == 0) {
        c->tx_since = 0;
    } else if (c->tx_since == 0) {
        c->tx_since = hs__conns_now(c->set);
        c->tx_mark = c->bytes_out;
        if (c->set->limits.send_timeout_ms)
            hs__conn_schedule(c, c->tx_since + c->set->limits.send_timeout_ms);
    }
}

void hs_conn_expect_input(struct hs_conn *c, int on)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    if (on) {
        c->flags |= CONN_EXPECT;
        hs__conn_rx_start(c);
    } else {
        c->flags &= ~CONN_EXPECT;
        c->rx_since = 0;
    }
}

/* Whether a window that started at `since` with `mark` bytes moved (then `moved` now) fell
 * short: under min_rate bytes/s over its length, or nothing at all. */
static int conn_window_short(const struct hs_conns *set, long long since, long long now,
                             uint64_t moved)
{
    uint64_t need = (uint64_t)set->limits.min_rate * (uint64_t)(now - since) / 1000;
    return moved == 0 || moved < need;
}

void hs__conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    c->timer_at = 0;
    if (c->flags & CONN_LINGERING) {
        hs__conn_linger_end(c);
        return;
    }
    if (c->flags & CONN_CLOSING) {
        hs_log(HS_LOG_WARN, "conn#%llu %s close timeout with %zu bytes unsent; dropping them",
               (unsigned long long)c->id, c->peer, hs__conn_out_len(c));
        hs_conn_abort(c, c->close_reason ? c->close_reason : "close timeout");
        return;
    }
    /* The timer is not re-armed on every byte: each rule checks what really happened and the
     * earliest deadline still ahead re-arms it. The clock is in whole ms: 1 ms of slack. */
    const struct hs_conn_limits *l = &c->set->limits;
    unsigned long long id = (unsigned long long)c->id;
    long long now = hs__conns_now(c->set), next = 0;
    /* Only while neither side has spoken: once the server has sent something (a greeting,
     * a pushed stream) the client may well just listen, and the idle timeout governs. */
    if (c->flags & CONN_PROXY_WAIT) {
        /* The header's own deadline governs until it is read. */
        long long at = hs__conn_proxy_deadline(c);
        if (now + 1 >= at) {
            hs__conn_proxy_timeout(c);
            return;
        }
        next = at;
    } else if (l->first_byte_timeout_ms && !(c->flags & CONN_OUTBOUND) && c->bytes_in == 0 &&
               c->bytes_out == 0 && hs__conn_out_len(c) == 0 && (c->flags & CONN_READING)) {
        long long at = c->opened + l->first_byte_timeout_ms;
        if (now + 1 >= at) {
            hs_log(HS_LOG_INFO, "conn#%llu %s sent nothing in %lld ms; closing", id, c->peer,
                   now - c->opened);
            hs_conn_close(c, "first byte timeout");
            return;
        }
        next = at;
    }
    if (c->flags & CONN_TLS_HANDSHAKE) {
        long long at = hs__conn_tls_deadline(c);
        if (at && now + 1 >= at) {
            hs__conn_tls_timeout(c);
            return;
        }
        next = next && next < at ? next : at;
    }
    if (l->frame_timeout_ms && c->rx_since && (c->flags & CONN_READING)) {
        long long at = c->rx_since + l->frame_timeout_ms;
        if (now + 1 >= at) {
            uint64_t got = c->bytes_in - c->rx_mark;
            if (conn_window_short(c->set, c->rx_since, now, got)) {
                hs_log(HS_LOG_INFO,
                       "conn#%llu %s too slow: %llu bytes in %lld ms with a frame in progress "
                       "(minimum %u bytes/s); closing",
                       id, c->peer, (unsigned long long)got, now - c->rx_since, l->min_rate);
                hs_conn_close(c, "receive timeout");
                return;
            }
            c->rx_since = now;
            c->rx_mark = c->bytes_in;
            at = now + l->frame_timeout_ms;
        }
        next = next && next < at ? next : at;
    }
    if (l->send_timeout_ms && c->tx_since) {
        long long at = c->tx_since + l->send_timeout_ms;
        if (now + 1 >= at) {
            uint64_t sent = c->bytes_out - c->tx_mark;
            if (conn_window_short(c->set, c->tx_since, now, sent)) {
                hs_log(HS_LOG_INFO,
                       "conn#%llu %s too slow: read %llu bytes in %lld ms with %zu waiting "
                       "(minimum %u bytes/s); aborting",
                       id, c->peer, (unsigned long long)sent, now - c->tx_since,
                       hs__conn_out_len(c), l->min_rate);
                hs_conn_abort(c, "send timeout");
                return;
            }
            c->tx_since = now;
            c->tx_mark = c->bytes_out;
            at = now + l->send_timeout_ms;
        }
        next = next && next < at ? next : at;
    }
    if (l->idle_timeout_ms) {
        long long at = c->active + l->idle_timeout_ms;
        if (now + 1 >= at) {
            hs_log(HS_LOG_INFO, "conn#%llu %s idle for %lld ms; closing", id, c->peer,
                   now - c->active);
            hs_conn_close(c, "idle timeout");
            return;
        }
        next = next && next < at ? next : at;
    }
    if (next)
        hs__conn_schedule(c, next);
}
