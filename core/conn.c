#include "core/conn.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/peers.h"
#include "core/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

enum {
    CONN_CLOSING = 1 << 0,     /* close requested: no more reads, flushing output */
    CONN_CLOSED = 1 << 1,      /* socket closed, on_close ran; free once refs drop to 0 */
    CONN_FLOW_PAUSED = 1 << 2, /* reading stopped because output is over the high mark */
    CONN_USER_PAUSED = 1 << 3, /* reading stopped by the handler */
    CONN_EOF = 1 << 4,         /* the peer shut down its write side */
    CONN_READING = 1 << 5,     /* the read event is added */
    CONN_WRITING = 1 << 6,     /* the write event is added */
    CONN_EXPECT = 1 << 7,      /* on_data conns: the protocol layer awaits the rest of a message */
};

struct hs_conn_pipe {
    struct hs_conn_sink sink; /* where payload goes; sink.write NULL discards */
    uint64_t max;             /* per-frame maximum while armed (0: the framing's) */
    uint64_t total;           /* payload bytes of the frame being streamed */
    uint64_t remaining;       /* payload bytes still to come */
    int status;               /* first sink error, or 0 */
    uint8_t armed;            /* the next frame goes to the sink */
    uint8_t active;           /* a frame is streaming now */
};

struct hs_conn {
    struct hs_conns *set;
    uint64_t id;                 /* unique per set, from 1 */
    int fd;                      /* -1 once closed */
    unsigned flags;              /* CONN_* */
    unsigned refs;               /* callbacks on the stack; the free waits for 0 */
    struct hs_peer_key peer_key; /* counted in the set's peer table (family 0: not counted);
                                  * here, it fills what would be padding */
    uint8_t zero_writes;         /* flushes in a row that wrote nothing (see conn_flush) */
    struct hs_conn_tally *tally; /* the accepting listener's counters, or NULL */
    struct event *rev;           /* readable */
    struct event *wev;           /* writable, added only while output is pending */
    struct event *timer;  /* the earliest stall deadline, or the close timeout while CLOSING */
    struct evbuffer *in;  /* received, not yet framed */
    struct evbuffer *out; /* queued, not yet written */
    struct hs_framing framing;
    size_t resume; /* framer scan state for the frame at the front of in */
    struct hs_conn_pipe pipe;
    const struct hs_conn_handler *handler;
    void *arg;                /* for handler callbacks */
    void *data;               /* the handler's own per-connection data */
    const char *close_reason; /* static text given to on_close */
    uint64_t bytes_in, bytes_out;
    /* Stall rules (struct hs_conn_limits); times are ms of the loop's cached clock. */
    long long opened;            /* accepted at */
    long long active;            /* last read or write */
    long long rx_since;          /* receive window start while a frame is in progress, or 0 */
    uint64_t rx_mark;            /* bytes_in at rx_since */
    long long tx_since;          /* send window start while output waits, or 0 */
    uint64_t tx_mark;            /* bytes_out at tx_since */
    long long timer_at;          /* when the timer fires, or 0 when it is not armed */
    struct hs_conn *prev, *next; /* the set's list */
    /* Peer address text: "[IPv6]:port" fits exactly (47 characters); a longer text (an IPv6
     * zone, a unix path) is cut. Sized so an idle connection costs under 1 KiB. */
    char peer[48];
};

struct hs_conns {
    struct event_base *base;
    struct hs_conn_limits limits;
    struct hs_peers *peers;   /* open connections per client address */
    long long refusal_logged; /* when a refusal was last logged (ms), so floods log 1 line/s */
    unsigned long long refusals_quiet; /* refusals not logged since */
    unsigned count;                    /* open connections */
    uint64_t next_id;
    struct hs_conn *head;
    void (*on_empty)(struct hs_conns *set, void *arg);
    void *on_empty_arg;
};

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process_input(struct hs_conn *c);
static int conn_frame_input(struct hs_conn *c);
static void conn_release(struct hs_conn *c);
static void conn_after_output(struct hs_conn *c);
static void conn_finish(struct hs_conn *c);

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
}

struct hs_conns *hs_conns_new(struct event_base *base, const struct hs_conn_limits *limits)
{
    struct hs_conns *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    set->base = base;
    set->limits = *limits;
    set->next_id = 1;
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
            conn_release(c);
        else if (c->refs == 0)
            conn_after_output(c);
    }
    free(all);
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

static void timeval_ms(struct timeval *tv, long long ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* The loop's cached clock in ms: one clock read per loop turn, not per byte. */
static long long conns_now(const struct hs_conns *set)
{
    struct timeval tv;
    event_base_gettimeofday_cached(set->base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Output waiting to be written. The buffer and the write event exist only once something
 * had to wait: most replies go out by write-through, and an idle connection should cost
 * little memory (bench: memory per idle connection). */
static size_t out_len(const struct hs_conn *c)
{
    return c->out ? evbuffer_get_length(c->out) : 0;
}

/* The output buffer, created on first need; NULL when memory runs out. */
static struct evbuffer *conn_out(struct hs_conn *c)
{
    if (c->out == NULL) {
        c->out = evbuffer_new();
        /* It drains to the socket: file segments (send_file) go out by sendfile(2) instead
         * of mmap + write + munmap. */
        if (c->out)
            evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD);
    }
    return c->out;
}

static void conn_touch(struct hs_conn *c)
{
    c->active = conns_now(c->set);
}

/* Makes the timer fire at `at` (ms) unless it fires no later already. The callback finds out
 * which rule is due and re-arms for the next, so a deadline that moves later costs nothing.
 * While closing, the timer is the close timeout's alone. */
static void conn_schedule(struct hs_conn *c, long long at)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    if (c->timer_at != 0 && c->timer_at <= at)
        return;
    long long wait = at - conns_now(c->set);
    struct timeval tv;
    timeval_ms(&tv, wait > 0 ? wait : 0);
    event_add(c->timer, &tv);
    c->timer_at = at;
}

/* A new receive window starts now (a frame began, one completed, or reading resumed). */
static void conn_rx_start(struct hs_conn *c)
{
    c->rx_since = conns_now(c->set);
    c->rx_mark = c->bytes_in;
    if (c->set->limits.frame_timeout_ms)
        conn_schedule(c, c->rx_since + c->set->limits.frame_timeout_ms);
}

/* After input was framed: is a frame in progress? frames > 0 means some completed, which is
 * progress whatever their size. Protocol layers (on_data) report this themselves. */
static void conn_rx_track(struct hs_conn *c, int frames)
{
    if (c->handler->on_data || (c->flags & (CONN_CLOSING | CONN_CLOSED)))
        return;
    if (!c->pipe.active && evbuffer_get_length(c->in) == 0)
        c->rx_since = 0;
    else if (c->rx_since == 0 || frames > 0)
        conn_rx_start(c);
}

/* After a flush: output waiting starts a send window; none waiting ends it. */
static void conn_tx_track(struct hs_conn *c, size_t pending)
{
    if (pending == 0) {
        c->tx_since = 0;
    } else if (c->tx_since == 0) {
        c->tx_since = conns_now(c->set);
        c->tx_mark = c->bytes_out;
        if (c->set->limits.send_timeout_ms)
            conn_schedule(c, c->tx_since + c->set->limits.send_timeout_ms);
    }
}

void hs_conn_expect_input(struct hs_conn *c, int on)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    if (on) {
        c->flags |= CONN_EXPECT;
        conn_rx_start(c);
    } else {
        c->flags &= ~CONN_EXPECT;
        c->rx_since = 0;
    }
}

static void conn_update_reading(struct hs_conn *c)
{
    int want =
        !(c->flags & (CONN_CLOSING | CONN_CLOSED | CONN_FLOW_PAUSED | CONN_USER_PAUSED | CONN_EOF));
    if (want && !(c->flags & CONN_READING)) {
        event_add(c->rev, NULL);
        c->flags |= CONN_READING;
        /* The time reading was paused on our side is not the client's to make up. */
        if (c->rx_since)
            conn_rx_start(c);
    } else if (!want && (c->flags & CONN_READING)) {
        event_del(c->rev);
        c->flags &= ~CONN_READING;
    }
}

/* Writes as much pending output as the socket takes. Returns 0, or a negated errno when the
 * connection broke (the caller aborts it). Keeps the write event armed exactly while output is
 * pending, and applies the flow-control marks. */
static int conn_flush(struct hs_conn *c)
{
    while (out_len(c) > 0) {
        int n = evbuffer_write(c->out, c->fd); /* out exists: out_len > 0 */
        if (n > 0) {
            c->bytes_out += (uint64_t)n;
            c->zero_writes = 0;
            conn_touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        /* libevent's sendfile path reports a full socket as 0 bytes written, not EAGAIN (a
         * write(2) to a socket never returns 0 for a non-empty buffer, so 0 means the same). */
        if (n == 0 && ++c->zero_writes > 4)
            return -EIO; /* writable, yet nothing goes: a file being sent has shrunk */
        if (n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            break;
        return n < 0 ? -errno : -EPIPE;
    }
    size_t pending = out_len(c);
    if (pending > 0 && !(c->flags & CONN_WRITING)) {
        if (c->wev == NULL)
            c->wev = event_new(c->set->base, c->fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
        if (c->wev == NULL)
            return -ENOMEM;
        event_add(c->wev, NULL);
        c->flags |= CONN_WRITING;
    } else if (pending == 0 && (c->flags & CONN_WRITING)) {
        event_del(c->wev);
        c->flags &= ~CONN_WRITING;
    }
    if (pending > c->set->limits.out_high)
        c->flags |= CONN_FLOW_PAUSED;
    else if (pending <= c->set->limits.out_low)
        c->flags &= ~CONN_FLOW_PAUSED;
    conn_tx_track(c, pending);
    conn_update_reading(c);
    return 0;
}

/* Frees the connection's memory once nothing on the stack refers to it. */
static void conn_release(struct hs_conn *c)
{
    if (c->refs > 0 || !(c->flags & CONN_CLOSED))
        return;
    event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    event_free(c->timer);
    evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    hs_conn_tally_unref(c->tally);
    free(c);
}

/* The real close: socket gone, handler told, unlinked from the set. */
static void conn_finish(struct hs_conn *c)
{
    if (c->flags & CONN_CLOSED)
        return;
    c->flags |= CONN_CLOSED | CONN_CLOSING;
    event_del(c->rev);
    if (c->wev)
        event_del(c->wev);
    event_del(c->timer);
    close(c->fd);
    c->fd = -1;

    struct hs_conns *set = c->set;
    if (c->prev)
        c->prev->next = c->next;
    else
        set->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->count--;
    hs_peers_remove(set->peers, &c->peer_key);
    if (c->tally) {
        struct hs_conn_tally *t = c->tally;
        t->open--;
        t->bytes_in += c->bytes_in;
        t->bytes_out += c->bytes_out;
        if (!hs_stats_reason_orderly(c->close_reason ? c->close_reason : "closed"))
            t->errors++;
    }

    c->refs++;
    /* An armed pipe that never started still holds the handler's sink: release it too. */
    if ((c->pipe.active || c->pipe.armed) && c->handler->on_pipe_done) {
        c->pipe.active = c->pipe.armed = 0;
        c->handler->on_pipe_done(c, HS_ECLOSED, c->pipe.total, c->arg);
    }
    if (c->handler->on_close)
        c->handler->on_close(c, c->close_reason ? c->close_reason : "closed", c->arg);
    c->refs--;
    if (set->count == 0 && set->on_empty)
        set->on_empty(set, set->on_empty_arg);
    conn_release(c);
}

void hs_conn_abort(struct hs_conn *c, const char *reason)
{
    if (c->flags & CONN_CLOSED)
        return;
    if (!c->close_reason || !(c->flags & CONN_CLOSING))
        c->close_reason = reason;
    /* SO_LINGER 0 turns the close into a reset, as the name promises. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (c->out)
        evbuffer_drain(c->out, out_len(c));
    conn_finish(c);
}

void hs_conn_close(struct hs_conn *c, const char *reason)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    c->flags |= CONN_CLOSING;
    c->close_reason = reason;
    conn_update_reading(c);
    if (out_len(c) == 0) {
        /* IMPORTANT: inside a callback the conn must survive until the callback returns;
         * conn_finish only unlinks and notifies, conn_release waits for refs == 0. */
        conn_finish(c);
        return;
    }
    struct timeval tv;
    timeval_ms(&tv, c->set->limits.close_timeout_ms ? c->set->limits.close_timeout_ms
                                                    : HS_DEFAULT_CLOSE_TIMEOUT_MS);
    event_add(c->timer, &tv);
    c->timer_at = 0; /* the stall rules are over: only the close timeout is left */
    if (c->refs == 0 && conn_flush(c) < 0)
        hs_conn_abort(c, "write failed");
    else if (out_len(c) == 0)
        conn_finish(c);
}

static void conn_after_output(struct hs_conn *c)
{
    /* Inside a callback the flush happens once, when dispatch ends. */
    if (c->refs > 0)
        return;
    if (conn_flush(c) < 0)
        hs_conn_abort(c, "write failed");
    else if ((c->flags & CONN_CLOSING) && out_len(c) == 0)
        conn_finish(c);
}

int hs_conn_send(struct hs_conn *c, const void *data, size_t len)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (out_len(c) + len > c->set->limits.out_hard)
        return HS_EFULL;
    if (conn_out(c) == NULL || evbuffer_add(c->out, data, len) != 0)
        return -ENOMEM;
    conn_after_output(c);
    return 0;
}

int hs_conn_sendv(struct hs_conn *c, const struct iovec *iov, int n)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (out_len(c) + total > c->set->limits.out_hard)
        return HS_EFULL;
    size_t done = 0;
    if (out_len(c) == 0 && total > 0 && n <= 64) {
        ssize_t w;
        do
            w = writev(c->fd, iov, n);
        while (w < 0 && errno == EINTR);
        if (w > 0) {
            done = (size_t)w;
            c->bytes_out += (uint64_t)w;
            conn_touch(c);
        }
        /* A hard error shows again on the next read or flush, which closes properly. */
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (done >= len) {
            done -= len;
            continue;
        }
        if (conn_out(c) == NULL ||
            evbuffer_add(c->out, (const char *)iov[i].iov_base + done, len - done) != 0)
            return -ENOMEM;
        done = 0;
    }
    if (out_len(c) > 0)
        conn_after_output(c);
    return 0;
}

int hs_conn_send_file(struct hs_conn *c, int fd, uint64_t offset, uint64_t len)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED)) {
        close(fd);
        return HS_ECLOSED;
    }
    /* File segments do not count against the hard output limit: they cost no memory. */
    if (conn_out(c) == NULL ||
        evbuffer_add_file(c->out, fd, (ev_off_t)offset, (ev_off_t)len) != 0) {
        close(fd);
        return -ENOMEM;
    }
    conn_after_output(c);
    return 0;
}

int hs_conn_send_buffer(struct hs_conn *c, struct evbuffer *buf)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (out_len(c) + evbuffer_get_length(buf) > c->set->limits.out_hard)
        return HS_EFULL;
    if (conn_out(c) == NULL || evbuffer_add_buffer(c->out, buf) != 0)
        return -ENOMEM;
    conn_after_output(c);
    return 0;
}

void hs_conn_set_framing(struct hs_conn *c, const struct hs_framing *f)
{
    c->framing = *f;
    c->resume = 0;
}

const struct hs_framing *hs_conn_framing(const struct hs_conn *c)
{
    return &c->framing;
}

int hs_conn_pipe_next(struct hs_conn *c, const struct hs_conn_sink *sink, uint64_t max)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (c->pipe.armed || c->pipe.active)
        return -EINVAL;
    if (c->framing.kind != HS_FRAMING_LENGTH && c->framing.kind != HS_FRAMING_FIXED)
        return -EINVAL;
    memset(&c->pipe, 0, sizeof c->pipe);
    c->pipe.armed = 1;
    if (sink)
        c->pipe.sink = *sink;
    c->pipe.max = max;
    c->resume = 0;
    return 0;
}

void hs_conn_pause(struct hs_conn *c, int paused)
{
    if (paused)
        c->flags |= CONN_USER_PAUSED;
    else
        c->flags &= ~CONN_USER_PAUSED;
    if (c->flags & CONN_CLOSED)
        return;
    conn_update_reading(c);
    /* Bytes that arrived before the pause are still waiting: frame them now. */
    if (!paused && c->refs == 0 && evbuffer_get_length(c->in) > 0)
        conn_process_input(c);
}

const struct hs_conn_handler *hs_conn_handler_of(const struct hs_conn *c)
{
    return c->handler;
}

void *hs_conn_arg(const struct hs_conn *c)
{
    return c->arg;
}

void hs_conn_set_data(struct hs_conn *c, void *data)
{
    c->data = data;
}

void *hs_conn_data(const struct hs_conn *c)
{
    return c->data;
}

uint64_t hs_conn_id(const struct hs_conn *c)
{
    return c->id;
}

const char *hs_conn_peer(const struct hs_conn *c)
{
    return c->peer;
}

int hs_conn_fd(const struct hs_conn *c)
{
    return c->fd;
}

int hs_conn_is_closing(const struct hs_conn *c)
{
    return (c->flags & (CONN_CLOSING | CONN_CLOSED)) != 0;
}

size_t hs_conn_pending(const struct hs_conn *c)
{
    return out_len(c);
}

uint64_t hs_conn_bytes_in(const struct hs_conn *c)
{
    return c->bytes_in;
}

uint64_t hs_conn_bytes_out(const struct hs_conn *c)
{
    return c->bytes_out;
}

static void conn_protocol_error(struct hs_conn *c, const char *why)
{
    hs_log(HS_LOG_WARN, "conn#%llu %s protocol error: %s; closing", (unsigned long long)c->id,
           c->peer, why);
    hs_conn_close(c, why);
}

/* Streams what is buffered of the piped frame's payload to its sink. Returns 1 when the
 * frame is complete, 0 when more input is needed. */
static int conn_pipe_feed(struct hs_conn *c)
{
    struct hs_conn_pipe *p = &c->pipe;
    while (p->remaining > 0 && evbuffer_get_length(c->in) > 0) {
        size_t avail = evbuffer_get_contiguous_space(c->in);
        size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
        const unsigned char *data = evbuffer_pullup(c->in, (ev_ssize_t)n);
        if (p->status == 0 && p->sink.write) {
            int r = p->sink.write(p->sink.sink, data, n);
            if (r < 0)
                p->status = r; /* keep discarding so the next frame starts in step */
        }
        /* IMPORTANT: the sink may have closed the conn; conn_finish then reported the pipe. */
        if (c->flags & CONN_CLOSED)
            return 0;
        evbuffer_drain(c->in, n);
        p->remaining -= n;
    }
    if (p->remaining > 0)
        return 0;
    p->active = 0;
    c->handler->on_pipe_done(c, p->status, p->total, c->arg);
    return 1;
}

/* Starts streaming a frame whose header is known. */
static void conn_pipe_start(struct hs_conn *c, const struct hs_frame *fr)
{
    evbuffer_drain(c->in, fr->skip);
    c->pipe.armed = 0;
    c->pipe.active = 1;
    c->pipe.total = fr->len;
    c->pipe.remaining = fr->len;
    c->resume = 0;
}

/* Frames and dispatches everything buffered, as long as the connection stays open and
 * reading is not paused by the handler. */
static void conn_process_input(struct hs_conn *c)
{
    c->refs++;
    if (c->handler->on_data) {
        if (!(c->flags & (CONN_CLOSING | CONN_USER_PAUSED)) && evbuffer_get_length(c->in) > 0)
            c->handler->on_data(c, c->in, 0, c->arg);
    } else {
        int frames = conn_frame_input(c);
        if (!(c->flags & CONN_CLOSED))
            conn_rx_track(c, frames);
    }
    c->refs--;
    if (c->flags & CONN_CLOSED) {
        conn_release(c);
        return;
    }
    conn_after_output(c);
}

/* The framing loop of conn_process_input. Returns how many frames completed (piped ones
 * included). */
static int conn_frame_input(struct hs_conn *c)
{
    int frames = 0;
    while (!(c->flags & (CONN_CLOSING | CONN_USER_PAUSED))) {
        if (c->pipe.active) {
            if (!conn_pipe_feed(c))
                break;
            frames++;
            continue;
        }
        if (evbuffer_get_length(c->in) == 0)
            break;
        struct hs_framing f = c->framing;
        if (c->pipe.armed && c->pipe.max)
            f.max = c->pipe.max;
        else if (f.max == 0 && f.kind == HS_FRAMING_LINE)
            f.max = c->set->limits.max_line;
        else if (f.max == 0 && f.kind == HS_FRAMING_LENGTH)
            f.max = c->set->limits.max_frame;
        struct hs_frame fr = {0, 0, 0};
        const char *why = "malformed frame";
        int r = hs_framing_next(&f, c->in, &c->resume, &fr, &why);
        if (r == 1 || (r == HS_AGAIN && c->pipe.armed && fr.skip > 0)) {
            if (c->pipe.armed) {
                conn_pipe_start(c, &fr);
                continue;
            }
            c->handler->on_frame(c, c->in, &fr, c->arg);
            if (c->flags & CONN_CLOSED)
                break;
            evbuffer_drain(c->in, fr.skip + (size_t)fr.len + fr.trail);
            /* The handler may have switched framing: that resets resume too. */
            c->resume = 0;
            frames++;
            continue;
        }
        if (r == HS_AGAIN)
            break;
        conn_protocol_error(c, why);
        break;
    }
    return frames;
}

/* The peer shut down its side: deliver what is left, then close after the flush. */
static void conn_on_eof(struct hs_conn *c)
{
    c->flags |= CONN_EOF;
    conn_update_reading(c);
    if (c->handler->on_data) {
        /* The protocol layer decides what end of stream means (it may still answer). */
        c->handler->on_data(c, c->in, 1, c->arg);
        return;
    }
    size_t left = evbuffer_get_length(c->in);
    if (left > 0 && !(c->flags & CONN_CLOSING)) {
        if (c->framing.kind == HS_FRAMING_LINE) {
            /* An unterminated last line is still a line to a telnet user. */
            struct hs_frame fr = {0, left, 0};
            c->refs++;
            c->handler->on_frame(c, c->in, &fr, c->arg);
            c->refs--;
            if (c->flags & CONN_CLOSED) {
                conn_release(c);
                return;
            }
            evbuffer_drain(c->in, left);
        } else if (!(c->flags & CONN_USER_PAUSED)) {
            hs_log(HS_LOG_WARN, "conn#%llu %s truncated frame: %zu bytes before end of stream",
                   (unsigned long long)c->id, c->peer, left);
        }
    }
    if (c->pipe.active)
        hs_conn_abort(c, "truncated frame");
    else
        hs_conn_close(c, "peer closed");
    conn_after_output(c);
}

/* One read(2) of up to HS_READ_SIZE straight into the input buffer. evbuffer_read would cap
 * each call at 4 KiB (EVBUFFER_MAX_READ in libevent 2.1), costing one syscall and one loop
 * turn per 4 KiB. Returns what readv returned, errno set on -1. */
static ssize_t conn_read_some(struct hs_conn *c)
{
    struct evbuffer_iovec v[1];
    struct iovec iov[1];
    /* One extent, so a read's bytes are contiguous and framers rarely need a pullup. */
    int nv = evbuffer_reserve_space(c->in, HS_READ_SIZE, v, 1);
    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    ssize_t n;
    do
        n = readv(c->fd, iov, nv);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n;
    size_t left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(c->in, v, nv);
    return n;
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    HS_UNUSED(what);
    HS_UNUSED(fd);
    ssize_t n = conn_read_some(c);
    if (n > 0) {
        c->bytes_in += (uint64_t)n;
        conn_touch(c);
        conn_process_input(c);
        return;
    }
    if (n == 0) {
        c->refs++;
        conn_on_eof(c);
        c->refs--;
        if (c->flags & CONN_CLOSED)
            conn_release(c);
        else
            conn_after_output(c);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
    const char *reason = errno == ECONNRESET ? "reset" : "read failed";
    hs_log(HS_LOG_INFO, "conn#%llu %s %s: %s", (unsigned long long)c->id, c->peer, reason,
           strerror(errno));
    hs_conn_abort(c, reason);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    HS_UNUSED(what);
    HS_UNUSED(fd);
    int was_paused = (c->flags & CONN_FLOW_PAUSED) != 0;
    if (conn_flush(c) < 0) {
        hs_conn_abort(c, (errno == EPIPE || errno == ECONNRESET) ? "reset" : "write failed");
        return;
    }
    if ((c->flags & CONN_CLOSING) && out_len(c) == 0) {
        conn_finish(c);
        return;
    }
    /* Flow control lifted: frames that waited in the input buffer can go now. */
    if (was_paused && !(c->flags & CONN_FLOW_PAUSED) && evbuffer_get_length(c->in) > 0)
        conn_process_input(c);
}

/* Whether a window that started at `since` with `mark` bytes moved (then `moved` now) fell
 * short: under min_rate bytes/s over its length, or nothing at all. */
static int conn_window_short(const struct hs_conns *set, long long since, long long now,
                             uint64_t moved)
{
    uint64_t need = (uint64_t)set->limits.min_rate * (uint64_t)(now - since) / 1000;
    return moved == 0 || moved < need;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    c->timer_at = 0;
    if (c->flags & CONN_CLOSING) {
        hs_log(HS_LOG_WARN, "conn#%llu %s close timeout with %zu bytes unsent; dropping them",
               (unsigned long long)c->id, c->peer, out_len(c));
        hs_conn_abort(c, c->close_reason ? c->close_reason : "close timeout");
        return;
    }
    /* The timer is not re-armed on every byte: each rule checks what really happened and the
     * earliest deadline still ahead re-arms it. The clock is in whole ms: 1 ms of slack. */
    const struct hs_conn_limits *l = &c->set->limits;
    unsigned long long id = (unsigned long long)c->id;
    long long now = conns_now(c->set), next = 0;
    /* Only while neither side has spoken: once the server has sent something (a greeting,
     * a pushed stream) the client may well just listen, and the idle timeout governs. */
    if (l->first_byte_timeout_ms && c->bytes_in == 0 && c->bytes_out == 0 && out_len(c) == 0 &&
        (c->flags & CONN_READING)) {
        long long at = c->opened + l->first_byte_timeout_ms;
        if (now + 1 >= at) {
            hs_log(HS_LOG_INFO, "conn#%llu %s sent nothing in %lld ms; closing", id, c->peer,
                   now - c->opened);
            hs_conn_close(c, "first byte timeout");
            return;
        }
        next = at;
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
                       id, c->peer, (unsigned long long)sent, now - c->tx_since, out_len(c),
                       l->min_rate);
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
        conn_schedule(c, next);
}

/* Logs a refusal, at most one line a second however hard a flood pushes. */
static void conns_log_refusal(struct hs_conns *set, const char *what, unsigned limit,
                              const char *peer)
{
    long long now = conns_now(set);
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
static int conns_refuse(struct hs_conns *set, const struct hs_peer_key *key, const char *peer)
{
    const struct hs_conn_limits *l = &set->limits;
    if (l->max_connections && set->count >= l->max_connections) {
        conns_log_refusal(set, "connection limit", l->max_connections, peer);
        return 1;
    }
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
    return conns_refuse(set, &key, peer) ? HS_ETOOBIG : 0;
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

void hs_conn_count_message(struct hs_conn *c)
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

int hs_conn_new(struct hs_conns *set, int fd, const char *peer, const struct hs_framing *framing,
                const struct hs_conn_handler *handler, void *arg, struct hs_conn_tally *tally)
{
    struct hs_peer_key key;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0)
        memset(&key, 0, sizeof key);
    else
        hs_peers_key((struct sockaddr *)&ss, sslen, &key);
    if (conns_refuse(set, &key, peer)) {
        close(fd);
        return HS_ETOOBIG;
    }
    struct hs_conn *c = calloc(1, sizeof *c);
    if (c == NULL || hs_peers_add(set->peers, &key) != 0) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    c->peer_key = key;
    c->set = set;
    c->fd = fd;
    c->id = set->next_id++;
    c->framing = *framing;
    c->handler = handler;
    c->arg = arg;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->in = evbuffer_new();
    c->rev = event_new(set->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->timer = evtimer_new(set->base, conn_timer_cb, c);
    if (!c->in || !c->rev || !c->timer) {
        hs_log(HS_LOG_ERROR, "out of memory for connection from %s", peer);
        hs_peers_remove(set->peers, &key);
        c->flags |= CONN_CLOSED;
        close(fd);
        if (c->rev)
            event_free(c->rev);
        if (c->timer)
            event_free(c->timer);
        if (c->in)
            evbuffer_free(c->in);
        free(c);
        return -ENOMEM;
    }
    c->next = set->head;
    if (set->head)
        set->head->prev = c;
    set->head = c;
    set->count++;
    conn_touch(c);
    c->opened = c->active;
    const struct hs_conn_limits *l = &set->limits;
    if (l->idle_timeout_ms)
        conn_schedule(c, c->active + l->idle_timeout_ms);
    if (l->first_byte_timeout_ms)
        conn_schedule(c, c->opened + l->first_byte_timeout_ms);

    if (tally) {
        tally->refs++;
        tally->open++;
        c->tally = tally;
    }
    c->refs++;
    if (handler->on_open)
        handler->on_open(c, arg);
    if (!(c->flags & CONN_CLOSED))
        conn_update_reading(c);
    c->refs--;
    if (c->flags & CONN_CLOSED) {
        conn_release(c);
        return 0;
    }
    /* May finish and free c (a greeting followed by a close): c is not touched after. */
    conn_after_output(c);
    return 0;
}
