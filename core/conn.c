#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/peers.h"
#include "core/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_end(struct hs_conn *c, ssize_t n);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_finish(struct hs_conn *c);

HS_HOT static void conn_update_reading(struct hs_conn *c)
{
    int want = !(c->flags & (CONN_CLOSING | CONN_CLOSED | CONN_FLOW_PAUSED | CONN_USER_PAUSED |
                             CONN_EOF | CONN_PIPE_PAUSED));
    /* A held connection reads on only while little is queued: enough to see the peer leave. */
    if (c->hold && evbuffer_get_length(c->in) >= c->hold)
        want = 0;
    if (c->flags & CONN_LINGERING)
        want = 1; /* dropping what the peer still sends, until it closes */
    if (want && !(c->flags & CONN_READING)) {
        event_add(hs__conn_rev(c), NULL);
        c->flags |= CONN_READING;
        /* Input the TLS session decrypted before the pause: no readable event will come. */
        if (c->tls && hs__conn_tls_has_pending(c))
            event_active(hs__conn_rev(c), EV_READ, 0);
        /* The time reading was paused on our side is not the client's to make up. */
        if (c->rx_since)
            hs__conn_rx_start(c);
    } else if (!want && (c->flags & CONN_READING)) {
        event_del(hs__conn_rev(c));
        c->flags &= ~CONN_READING;
    }
}

/* The close reason of a failed flush: the peer's reset (its close, not an error of ours)
 * or another failure. */
static const char *write_failure(int r)
{
    if (r == -ENODATA)
        return "file shrank"; /* logged where it was found */
    return r == -EPIPE || r == -ECONNRESET ? "reset" : "write failed";
}

/* Writes as much pending output as the socket takes. Returns 0, or a negated errno when the
 * connection broke (the caller aborts it). Keeps the write event armed exactly while output is
 * pending, and applies the flow-control marks. */
HS_HOT static int conn_flush(struct hs_conn *c)
{
    /* Output waits for the handshake, which drives the events meanwhile. */
    if (c->flags & CONN_TLS_HANDSHAKE)
        return 0;
    while (hs__conn_out_len(c) > 0) {
        /* out exists: out_len > 0 */
        int n = c->tls ? hs__conn_tls_write(c) : evbuffer_write(c->out, c->fd);
        if (n > 0) {
            c->bytes_out += (uint64_t)n;
            c->zero_writes = 0;
            hs__conn_touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        /* libevent's sendfile path reports a full socket as 0 bytes written, not EAGAIN (a
         * write(2) to a socket never returns 0 for a non-empty buffer, so 0 means the same). */
        if (n == 0 && ++c->zero_writes > 4) {
            /* Writable, yet nothing goes: a file being sent has shrunk. */
            hs_log(HS_LOG_WARN,
                   "conn#%llu %s: a file being sent ended early (truncated in place? replace "
                   "served files by rename)",
                   (unsigned long long)c->id, c->peer);
            return -ENODATA;
        }
        if (n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            break;
        return n < 0 ? -errno : -EPIPE;
    }
    size_t pending = hs__conn_out_len(c);
    if (pending == 0 && (c->flags & (CONN_WR_SHUT | CONN_WR_DONE)) == CONN_WR_SHUT) {
        c->flags |= CONN_WR_DONE; /* hs_conn_shut_write waited for this flush */
        hs_conn_shutdown(c);
    }
    /* An owed on_output_low is told from the write event, never from inside a send (which runs
     * script code): keep the event armed one more turn for it. */
    int tell = (c->flags & CONN_WANT_LOW) && pending <= c->set->limits.out_low;
    if (hs__conn_want_write(c, pending > 0 || tell) != 0)
        return -ENOMEM;
    if (pending > c->set->limits.out_high)
        c->flags |= CONN_FLOW_PAUSED;
    else if (pending <= c->set->limits.out_low)
        c->flags &= ~CONN_FLOW_PAUSED;
    if (c->ext && c->ext->feed && pending <= c->set->limits.out_low)
        hs__conn_pipe_drained(c); /* sources piping into c read again */
    hs__conn_tx_track(c, pending);
    conn_update_reading(c);
    return 0;
}

HS_HOT int hs__conn_want_write(struct hs_conn *c, int on)
{
    if (on && !(c->flags & CONN_WRITING)) {
        if (c->wev == NULL)
            c->wev = event_new(c->set->base, c->fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
        if (c->wev == NULL)
            return -ENOMEM;
        event_add(c->wev, NULL);
        c->flags |= CONN_WRITING;
    } else if (!on && (c->flags & CONN_WRITING)) {
        event_del(c->wev);
        c->flags &= ~CONN_WRITING;
    }
    return 0;
}

struct hs_conn_ext *hs__conn_ext(struct hs_conn *c)
{
    if (c->ext == NULL)
        c->ext = calloc(1, sizeof *c->ext);
    return c->ext;
}

/* Frees the connection's memory once nothing on the stack refers to it. */
void hs__conn_release(struct hs_conn *c)
{
    if (c->refs > 0 || !(c->flags & CONN_CLOSED))
        return;
    /* Assigned, not allocated: deleted here, freed with c. */
    event_del(hs__conn_rev(c));
    if (c->wev)
        event_free(c->wev);
    event_del(hs__conn_timer(c));
    evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    hs_conn_tally_unref(c->tally);
    if (hs__conn_proxy(c))
        hs__conn_proxy_free(c);
    hs__conn_tls_files_free(c);
    free(c->ext);
    if (c->set->stamped == c)
        c->set->stamped = NULL;
    free(c);
}

/* The real close: socket gone, handler told, unlinked from the set. */
/* The output is flushed and a lingering close was asked for: shut our side down and keep
 * reading (to drop) until the peer closes too. Returns 1 when lingering started. */
static int conn_linger_start(struct hs_conn *c)
{
    if ((c->flags & (CONN_LINGER | CONN_LINGERING | CONN_ABORTING | CONN_EOF)) != CONN_LINGER ||
        c->tls != NULL || shutdown(c->fd, SHUT_WR) != 0)
        return 0;
    c->flags |= CONN_LINGERING;
    c->rx_mark = c->bytes_in; /* the drop budget counts from here */
    if (c->wev)
        event_del(c->wev);
    if (!(c->flags & CONN_READING)) {
        event_add(hs__conn_rev(c), NULL);
        c->flags |= CONN_READING;
    }
    struct timeval tv;
    hs__timeval_ms(&tv, HS_LINGER_MS);
    event_add(hs__conn_timer(c), &tv);
    c->timer_at = 0;
    return 1;
}

void hs__conn_linger_end(struct hs_conn *c)
{
    c->flags &= ~(CONN_LINGER | CONN_LINGERING);
    conn_finish(c);
}

/* Reads and drops what a lingering peer still sends; ends the linger at its end of stream,
 * an error, or past the byte budget. */
static void conn_linger_read(struct hs_conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n > 0) {
            c->bytes_in += (uint64_t)n;
            if (c->bytes_in - c->rx_mark > HS_LINGER_MAX)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break;
    }
    hs__conn_linger_end(c);
}

void hs_conn_close_lingering(struct hs_conn *c, const char *reason)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    c->flags |= CONN_LINGER;
    hs_conn_close(c, reason);
}

static void conn_finish(struct hs_conn *c)
{
    if (c->flags & CONN_CLOSED)
        return;
    /* While lingering only its end (or an abort) closes the socket. */
    if ((c->flags & (CONN_LINGERING | CONN_ABORTING)) == CONN_LINGERING)
        return;
    if (conn_linger_start(c))
        return;
    c->flags |= CONN_CLOSED | CONN_CLOSING;
    event_del(hs__conn_rev(c));
    if (c->wev)
        event_del(c->wev);
    event_del(hs__conn_timer(c));
    if (c->tls)
        hs__conn_tls_close(c);
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
    if (c->ext && (c->ext->tap || c->ext->feed))
        hs__conn_pipe_closed(c);
    /* An armed pipe that never started still holds the handler's sink: release it too. */
    struct hs_conn_pipe *pipe = hs__conn_pipe(c);
    if (pipe && (pipe->active || pipe->armed) && c->handler->on_pipe_done) {
        pipe->active = pipe->armed = 0;
        c->handler->on_pipe_done(c, HS_ECLOSED, pipe->total, c->arg);
    }
    /* A connection the handler never saw (its TLS handshake failed) closes silently. */
    if (c->handler->on_close && !(c->flags & CONN_NOT_OPEN))
        c->handler->on_close(c, c->close_reason ? c->close_reason : "closed", c->arg);
    c->refs--;
    if (set->count == 0 && set->on_empty)
        set->on_empty(set, set->on_empty_arg);
    hs__conn_release(c);
}

void hs_conn_abort(struct hs_conn *c, const char *reason)
{
    if (c->flags & CONN_CLOSED)
        return;
    if (!c->close_reason || !(c->flags & CONN_CLOSING))
        c->close_reason = reason;
    c->flags |= CONN_ABORTING;
    /* SO_LINGER 0 turns the close into a reset, as the name promises. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (c->out)
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
    hs__conn_tls_files_free(c);
    conn_finish(c);
}

void hs_conn_close(struct hs_conn *c, const char *reason)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return;
    c->flags |= CONN_CLOSING;
    c->close_reason = reason;
    conn_update_reading(c);
    /* A handshake cut short has nothing to flush: the output waited for it. */
    if (hs__conn_out_len(c) == 0 || (c->flags & CONN_TLS_HANDSHAKE)) {
        /* IMPORTANT: inside a callback the conn must survive until the callback returns;
         * conn_finish only unlinks and notifies, conn_release waits for refs == 0. */
        conn_finish(c);
        return;
    }
    struct timeval tv;
    hs__timeval_ms(&tv, c->set->limits.close_timeout_ms ? c->set->limits.close_timeout_ms
                                                        : HS_DEFAULT_CLOSE_TIMEOUT_MS);
    event_add(hs__conn_timer(c), &tv);
    c->timer_at = 0; /* the stall rules are over: only the close timeout is left */
    int r = c->refs == 0 ? conn_flush(c) : 0;
    if (r < 0)
        hs_conn_abort(c, write_failure(r));
    else if (hs__conn_out_len(c) == 0)
        conn_finish(c);
}

HS_HOT void hs__conn_after_output(struct hs_conn *c)
{
    /* Inside a callback the flush happens once, when dispatch ends. */
    if (c->refs > 0)
        return;
    int r = conn_flush(c);
    if (r < 0)
        hs_conn_abort(c, write_failure(r));
    else if ((c->flags & CONN_CLOSING) && hs__conn_out_len(c) == 0)
        conn_finish(c);
}

int hs_conn_eof(const struct hs_conn *c)
{
    return (c->flags & (CONN_EOF | CONN_CLOSING | CONN_CLOSED)) != 0;
}

struct evbuffer *hs_conn_input(struct hs_conn *c)
{
    return c->in;
}

const struct hs_conn_limits *hs_conn_limits(const struct hs_conn *c)
{
    return &c->set->limits;
}

void hs_conn_set_handler(struct hs_conn *c, const struct hs_conn_handler *handler, void *arg)
{
    c->handler = handler;
    c->arg = arg;
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
    return hs__conn_out_len(c);
}

uint64_t hs_conn_bytes_in(const struct hs_conn *c)
{
    return c->bytes_in;
}

uint64_t hs_conn_bytes_out(const struct hs_conn *c)
{
    return c->bytes_out;
}

/* Bytes a read asks for after a small one: the input buffer's block for it is then a 1 KiB
 * allocation (libevent adds its chain header, about 48 bytes, and rounds up to a power of
 * two from 1 KiB), which malloc serves from its per-thread cache, not the 128 KiB that
 * HS_READ_SIZE plus the header rounds up to. */
#define CONN_READ_SMALL (1024 - 128)

/* One read(2) of up to size bytes into buf. A read that filled at least a small block makes
 * the next one ask for HS_READ_SIZE; a smaller one, for a small block again. */
static inline ssize_t conn_read_into(struct hs_conn *c, void *buf, size_t size)
{
    ssize_t n;
    do
        n = read(c->fd, buf, size);
    while (n < 0 && errno == EINTR);
    if (n >= (ssize_t)CONN_READ_SMALL)
        c->flags |= CONN_READ_BIG;
    else if (n > 0)
        c->flags &= ~CONN_READ_BIG;
    return n;
}

/* One read(2) straight into the input buffer. evbuffer_read would cap each call at 4 KiB
 * (EVBUFFER_MAX_READ in libevent 2.1), costing one syscall and one loop turn per 4 KiB. The
 * block is allocated for each read and freed when its bytes are consumed, so its size follows
 * the traffic: HS_READ_SIZE after a read that filled a small block, under 1 KiB after one that
 * did not (a large allocation and its release cost more than the rest of a 64 B message's read
 * path). Plain read, not readv: one buffer. Returns what read returned, errno set on -1. */
static ssize_t conn_read_some(struct hs_conn *c)
{
    struct evbuffer_iovec v;
    size_t want = (c->flags & CONN_READ_BIG) ? HS_READ_SIZE : CONN_READ_SMALL;
    /* One extent, so a read's bytes are contiguous and framers rarely need a pullup. */
    if (evbuffer_reserve_space(c->in, (ev_ssize_t)want, &v, 1) < 1) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = conn_read_into(c, v.iov_base, v.iov_len);
    if (n <= 0)
        return n;
    v.iov_len = (size_t)n;
    evbuffer_commit_space(c->in, &v, 1);
    return n;
}

/* n > 0 bytes arrived: counted, and the idle clock restarts. */
static inline void conn_got(struct hs_conn *c, ssize_t n)
{
    c->bytes_in += (uint64_t)n;
    hs__conn_touch(c);
    c->set->stamped = c;
}

/* A small read onto the stack, offered to on_bytes; what it does not take goes into c->in
 * and through on_data as any read's bytes do. */
static void conn_read_offer(struct hs_conn *c)
{
    unsigned char stack[CONN_READ_SMALL];
    ssize_t n = conn_read_into(c, stack, sizeof stack);
    if (n <= 0) {
        conn_read_end(c, n);
        return;
    }
    conn_got(c, n);
    c->refs++;
    if (!c->handler->on_bytes(c, stack, (size_t)n, c->arg) && !(c->flags & CONN_CLOSED)) {
        if (evbuffer_add(c->in, stack, (size_t)n) == 0)
            hs__conn_process_input(c);
        else
            hs_conn_abort(c, "out of memory");
    }
    hs__conn_unhold(c);
}

HS_HOT static void conn_read(struct hs_conn *c)
{
    if (c->flags & (CONN_TLS_HANDSHAKE | CONN_PROXY_WAIT)) {
        if (c->flags & CONN_PROXY_WAIT)
            hs__conn_proxy_read(c);
        else
            hs__conn_tls_handshake(c);
        return;
    }
    if (c->flags & CONN_LINGERING) {
        conn_linger_read(c);
        return;
    }
    int big = (c->flags & CONN_READ_BIG) != 0;
    if (c->tls == NULL && hs__conn_input_direct(c, big ? HS_READ_SIZE : CONN_READ_SMALL)) {
        /* The read's bytes are a whole raw frame, handed to on_raw from where they were read,
         * without the input buffer's block being allocated, filled, pulled up and drained. A
         * small read goes onto the stack (about a fifth of a 64 B echo's user-space work); a
         * large one where the handler wants it: the Lua binding reads it into the block that
         * becomes the message string, so the bytes are copied once, by the kernel. */
        unsigned char stack[CONN_READ_SMALL];
        unsigned char *buf = stack;
        if (big)
            buf = c->handler->raw_buffer ? c->handler->raw_buffer(c, HS_READ_SIZE, c->arg) : NULL;
        if (buf != NULL) {
            ssize_t n = conn_read_into(c, buf, big ? HS_READ_SIZE : sizeof stack);
            if (n > 0) {
                conn_got(c, n);
                hs__conn_process_raw(c, buf, (size_t)n);
                return;
            }
            conn_read_end(c, n);
            return;
        }
    }
    if (!big && c->tls == NULL && c->handler->on_bytes && hs__conn_input_offer(c)) {
        conn_read_offer(c);
        return;
    }
    ssize_t n = c->tls ? hs__conn_tls_read(c) : conn_read_some(c);
    if (n > 0) {
        conn_got(c, n);
        /* More may wait decrypted in the session (a read takes at most HS_READ_SIZE): come
         * back next loop turn. A pause or close in between removes this again. */
        if (c->tls && hs__conn_tls_has_pending(c))
            event_active(hs__conn_rev(c), EV_READ, 0);
        hs__conn_process_input(c);
        return;
    }
    conn_read_end(c, n);
}

/* c is readable. The memo of a stamp (set->stamped, made by conn_got) lasts this callback,
 * whose clock is the loop's one time: the set outlives c, which the read may free. */
HS_HOT static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    struct hs_conns *set = c->set;
    HS_UNUSED(what);
    HS_UNUSED(fd);
    conn_read(c);
    set->stamped = NULL;
}

/* A read that returned n <= 0: the end of the stream, nothing yet, or an error. */
static void conn_read_end(struct hs_conn *c, ssize_t n)
{
    if (n == 0) {
        c->refs++;
        hs__conn_on_eof(c);
        hs__conn_unhold(c);
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
    if (c->flags & CONN_TLS_HANDSHAKE) {
        hs__conn_tls_handshake(c);
        return;
    }
    int was_paused = (c->flags & CONN_FLOW_PAUSED) != 0;
    int r = conn_flush(c);
    if (r < 0) {
        hs_conn_abort(c, write_failure(r));
        return;
    }
    if ((c->flags & CONN_CLOSING) && hs__conn_out_len(c) == 0) {
        conn_finish(c);
        return;
    }
    if ((c->flags & CONN_WANT_LOW) && hs__conn_out_len(c) <= c->set->limits.out_low) {
        c->flags &= ~CONN_WANT_LOW;
        hs__conn_want_write(c, hs__conn_out_len(c) > 0);
        c->refs++;
        c->handler->on_output_low(c, c->arg);
        c->refs--;
        if (c->flags & CONN_CLOSED) {
            hs__conn_release(c);
            return;
        }
    }
    /* Flow control lifted: frames that waited in the input buffer can go now. */
    if (was_paused && !(c->flags & CONN_FLOW_PAUSED) && evbuffer_get_length(c->in) > 0)
        hs__conn_process_input(c);
}

int hs_conn_want_output_low(struct hs_conn *c, int on)
{
    if (!on) {
        c->flags &= ~CONN_WANT_LOW;
        return 0;
    }
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (c->handler->on_output_low == NULL)
        return -EINVAL;
    if (hs__conn_out_len(c) <= c->set->limits.out_low)
        return 1;
    /* Output is pending, so the write event is armed (or a TLS handshake will arm it). */
    c->flags |= CONN_WANT_LOW;
    return 0;
}

/* hs_conn_new, hs_conn_new_tls and hs_conn_new_outbound: an outbound connection is not the
 * peer's, so the admission caps and the first-byte rule (a client that never speaks) do not
 * apply to it. */
static int conn_create(struct hs_conns *set, int fd, const char *peer,
                       const struct hs_framing *framing, const struct hs_conn_handler *handler,
                       void *arg, struct hs_conn_tally *tally, struct hs_tls_ctx *tls, int outbound)
{
    unsigned cap = set->limits.tls_max_handshakes;
    if (tls && cap && set->tls_handshakes >= cap) {
        /* Not logged per connection: a flood of half-open handshakes must not flood the log;
         * the listener counts these as limited. */
        hs_log(HS_LOG_DEBUG, "%s refused: %u TLS handshakes in progress", peer, cap);
        close(fd);
        return HS_ETOOBIG;
    }
    struct hs_peer_key key;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (outbound || getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0)
        memset(&key, 0, sizeof key);
    else
        hs_peers_key((struct sockaddr *)&ss, sslen, &key);
    if (!outbound && hs__conns_refuse(set, &key, peer)) {
        close(fd);
        return HS_ETOOBIG;
    }
    struct hs_conn *c = hs__conn_create(set, fd, peer, &key, framing, handler, arg, tally,
                                        outbound ? CONN_OUTBOUND : 0);
    if (c == NULL)
        return -ENOMEM;
    if (tls) {
        c->flags |= CONN_NOT_OPEN;
        if (hs__conn_tls_attach(c, tls, NULL) != 0) {
            hs_log(HS_LOG_ERROR, "out of memory for a TLS session from %s", peer);
            hs_conn_abort(c, "out of memory");
            return -ENOMEM;
        }
        conn_update_reading(c);
        return 0;
    }
    hs__conn_open(c);
    return 0;
}

/* An idle connection's biggest block (the struct and its two events): a field added here
 * costs every connection 16 bytes once the struct outgrows 296 bytes (with 256 bytes of
 * events, glibc's 560-byte chunk). Rarely used state goes in struct hs_conn_ext instead. */
_Static_assert(sizeof(struct hs_conn) <= 296, "struct hs_conn outgrew its malloc chunk");

struct hs_conn *hs__conn_create(struct hs_conns *set, int fd, const char *peer,
                                const struct hs_peer_key *key, const struct hs_framing *framing,
                                const struct hs_conn_handler *handler, void *arg,
                                struct hs_conn_tally *tally, unsigned flags)
{
    struct hs_conn *c = calloc(1, sizeof *c + 2 * set->ev_size);
    if (c == NULL || hs_peers_add(set->peers, key) != 0) {
        free(c);
        close(fd);
        return NULL;
    }
    c->peer_key = *key;
    c->set = set;
    c->fd = fd;
    c->id = set->next_id++;
    c->framing = *framing;
    c->flags = flags;
    c->handler = handler;
    c->arg = arg;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->in = evbuffer_new();
    /* event_assign fails only on bad arguments (none here); nothing is added yet. */
    event_assign(hs__conn_rev(c), set->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    evtimer_assign(hs__conn_timer(c), set->base, hs__conn_timer_cb, c);
    if (!c->in) {
        hs_log(HS_LOG_ERROR, "out of memory for connection from %s", peer);
        hs_peers_remove(set->peers, key);
        c->flags |= CONN_CLOSED;
        close(fd);
        free(c);
        return NULL;
    }
    c->next = set->head;
    if (set->head)
        set->head->prev = c;
    set->head = c;
    set->count++;
    hs__conn_touch(c);
    c->opened = c->active;
    const struct hs_conn_limits *l = &set->limits;
    if (l->idle_timeout_ms)
        hs__conn_schedule(c, c->active + l->idle_timeout_ms);
    if (l->first_byte_timeout_ms && !(flags & CONN_OUTBOUND))
        hs__conn_schedule(c, c->opened + l->first_byte_timeout_ms);

    if (tally) {
        tally->refs++;
        tally->open++;
        c->tally = tally;
    }
    return c;
}

void hs__conn_update_reading(struct hs_conn *c)
{
    conn_update_reading(c);
}

ssize_t hs__conn_read_some(struct hs_conn *c)
{
    return conn_read_some(c);
}

void hs__conn_open(struct hs_conn *c)
{
    c->flags &= ~CONN_NOT_OPEN;
    c->refs++;
    if (c->handler->on_open)
        c->handler->on_open(c, c->arg);
    if (!(c->flags & CONN_CLOSED))
        conn_update_reading(c);
    c->refs--;
    if (c->flags & CONN_CLOSED) {
        hs__conn_release(c);
        return;
    }
    /* May finish and free c (a greeting followed by a close): c is not touched after. */
    hs__conn_after_output(c);
}

int hs_conn_new_tls(struct hs_conns *set, int fd, const char *peer,
                    const struct hs_framing *framing, const struct hs_conn_handler *handler,
                    void *arg, struct hs_conn_tally *tally, struct hs_tls_ctx *tls)
{
    return conn_create(set, fd, peer, framing, handler, arg, tally, tls, 0);
}

int hs_conn_new(struct hs_conns *set, int fd, const char *peer, const struct hs_framing *framing,
                const struct hs_conn_handler *handler, void *arg, struct hs_conn_tally *tally)
{
    return conn_create(set, fd, peer, framing, handler, arg, tally, NULL, 0);
}

int hs_conn_new_outbound(struct hs_conns *set, int fd, const char *peer,
                         const struct hs_framing *framing, const struct hs_conn_handler *handler,
                         void *arg)
{
    return conn_create(set, fd, peer, framing, handler, arg, NULL, NULL, 1);
}
