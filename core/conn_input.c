/* Connections' input side (core/conn.h): framing what was read, frames streamed to a sink
 * (pipes), handlers that hold the input, pauses, and what end of stream means. Reading from
 * the socket, output and closing are core/conn.c. */
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

static void conn_process_input(struct hs_conn *c);
static int conn_frame_input(struct hs_conn *c);
static void conn_on_eof(struct hs_conn *c);

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
    if (hs__conn_pipe_armed(c) || hs__conn_pipe_active(c))
        return -EINVAL;
    if (c->framing.kind != HS_FRAMING_LENGTH && c->framing.kind != HS_FRAMING_FIXED)
        return -EINVAL;
    if (c->ext == NULL && (c->ext = calloc(1, sizeof *c->ext)) == NULL)
        return -ENOMEM;
    struct hs_conn_pipe *p = &c->ext->pipe;
    memset(p, 0, sizeof *p);
    p->armed = 1;
    if (sink)
        p->sink = *sink;
    p->max = max;
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
    hs__conn_update_reading(c);
    /* Bytes that arrived before the pause are still waiting: frame them now. */
    if (!paused && c->refs == 0 && evbuffer_get_length(c->in) > 0)
        conn_process_input(c);
}

void hs_conn_hold(struct hs_conn *c, size_t max)
{
    int was = c->hold != 0;
    /* Bounded to 4 GiB less one: a bound that large is never reached (the read limits come
     * first), and a 32-bit field keeps struct hs_conn in a smaller malloc block. */
    c->hold = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
    if (c->flags & CONN_CLOSED)
        return;
    hs__conn_update_reading(c);
    if (max || !was || c->refs > 0)
        return; /* a running callback of c returns to the framing loop, which goes on */
    /* Released from outside c's callbacks (a timer, another conn): deliver what queued. */
    c->refs++;
    if (c->flags & CONN_EOF)
        conn_on_eof(c);
    else
        conn_frame_input(c);
    hs__conn_unhold(c);
}

int hs_conn_is_held(const struct hs_conn *c)
{
    return c->hold != 0;
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
    struct hs_conn_pipe *p = &c->ext->pipe;
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
    struct hs_conn_pipe *p = &c->ext->pipe;
    p->armed = 0;
    p->active = 1;
    p->total = fr->len;
    p->remaining = fr->len;
    c->resume = 0;
}

/* Frames and dispatches everything buffered, as long as the connection stays open and
 * reading is not paused by the handler. */
static void conn_process_input(struct hs_conn *c)
{
    if (hs__conn_tap(c)) {
        hs__conn_pipe_input(c); /* conn:pipe: no framing, no handler */
        return;
    }
    c->refs++;
    if (c->hold && c->handler->on_input)
        c->handler->on_input(c, c->in, (c->flags & CONN_EOF) != 0, c->arg);
    if (c->handler->on_data) {
        if (!(c->flags & (CONN_CLOSING | CONN_USER_PAUSED)) && evbuffer_get_length(c->in) > 0)
            c->handler->on_data(c, c->in, 0, c->arg);
    } else if (!(c->flags & CONN_CLOSED)) {
        int frames = conn_frame_input(c);
        if (!(c->flags & CONN_CLOSED))
            hs__conn_rx_track(c, frames);
        /* An end of stream noted while the conn was held is acted on once it is released. */
        if ((c->flags & CONN_EOF) && !c->hold && !(c->flags & (CONN_CLOSING | CONN_CLOSED)))
            conn_on_eof(c);
    }
    hs__conn_unhold(c);
}

/* The framing loop of conn_process_input. Returns how many frames completed (piped ones
 * included). */
static int conn_frame_input(struct hs_conn *c)
{
    int frames = 0;
    if (hs__conn_tap(c)) {
        hs__conn_pipe_input(c); /* a hold released, an end of stream: the pipe takes it */
        return 0;
    }
    while (!(c->flags & (CONN_CLOSING | CONN_USER_PAUSED)) && !c->hold) {
        if (hs__conn_pipe_active(c)) {
            if (!conn_pipe_feed(c))
                break;
            frames++;
            continue;
        }
        if (evbuffer_get_length(c->in) == 0)
            break;
        struct hs_framing f = c->framing;
        int armed = hs__conn_pipe_armed(c);
        if (armed && c->ext->pipe.max)
            f.max = c->ext->pipe.max;
        else if (f.max == 0 && f.kind == HS_FRAMING_LINE)
            f.max = c->set->limits.max_line;
        else if (f.max == 0 && f.kind == HS_FRAMING_LENGTH)
            f.max = c->set->limits.max_frame;
        struct hs_frame fr = {0, 0, 0};
        const char *why = "malformed frame";
        int r = hs_framing_next(&f, c->in, &c->resume, &fr, &why);
        if (r == 1 || (r == HS_AGAIN && armed && fr.skip > 0)) {
            if (armed) {
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
            /* A handler that waits holds the conn: what follows its frame is for on_input. */
            if (c->hold && c->handler->on_input) {
                c->handler->on_input(c, c->in, (c->flags & CONN_EOF) != 0, c->arg);
                if (c->flags & CONN_CLOSED)
                    break;
            }
            continue;
        }
        if (r == HS_AGAIN)
            break;
        conn_protocol_error(c, why);
        break;
    }
    return frames;
}

HS_HOT int hs__conn_input_offer(const struct hs_conn *c)
{
    /* Not while anything could be waiting in c->in ahead of the read's bytes, or could want
     * them there: a hold (the handler reads c->in), a pause, a closing conn, or anything in
     * c->ext (a pipe; a PROXY listener's conns keep theirs, and take the buffered path). */
    return !c->hold && !(c->flags & (CONN_CLOSING | CONN_USER_PAUSED | CONN_EOF)) &&
           c->ext == NULL && evbuffer_get_length(c->in) == 0;
}

HS_HOT int hs__conn_input_direct(const struct hs_conn *c, size_t want)
{
    /* A raw frame of the handler's own (a protocol layer frames its input otherwise), and
     * none that a read of `want` bytes could pass: then the read is one frame. */
    return c->handler->on_raw != NULL && c->framing.kind == HS_FRAMING_RAW &&
           (c->framing.max == 0 || c->framing.max >= want) && hs__conn_input_offer(c);
}

HS_HOT void hs__conn_process_raw(struct hs_conn *c, const unsigned char *data, size_t len)
{
    /* conn_process_input for one frame that is not in c->in: its on_frame call, then the
     * same steps after it. The framing loop runs only if something came into c->in meanwhile
     * (it would find nothing: a read's bytes are all in this frame). */
    c->refs++;
    c->handler->on_raw(c, data, len, c->arg);
    if (!(c->flags & CONN_CLOSED)) {
        c->resume = 0;
        int frames = 1;
        if (c->hold && c->handler->on_input)
            c->handler->on_input(c, c->in, (c->flags & CONN_EOF) != 0, c->arg);
        if (!(c->flags & CONN_CLOSED) && evbuffer_get_length(c->in) > 0)
            frames += conn_frame_input(c);
        if (!(c->flags & CONN_CLOSED))
            hs__conn_rx_track(c, frames);
    }
    hs__conn_unhold(c);
}

/* The peer shut down its side: deliver what is left, then close after the flush. */
static void conn_on_eof(struct hs_conn *c)
{
    c->flags |= CONN_EOF;
    if (hs__conn_tap(c)) {
        hs__conn_pipe_eof(c); /* the pipe ends; the script decides what follows */
        /* IMPORTANT: the script may have closed c there (a proxy closing the upstream whose
         * end it just passed on): its handler data may be freed already. The caller, which
         * holds c, flushes or releases it. */
        if (c->flags & (CONN_CLOSING | CONN_CLOSED))
            return;
    }
    hs__conn_update_reading(c);
    if (c->hold && !c->handler->on_data) {
        /* The held handler may be reading: it learns of the end; the rest waits for the
         * release (hs_conn_hold), which comes back here. */
        if (c->handler->on_input)
            c->handler->on_input(c, c->in, 1, c->arg);
        if (c->hold || (c->flags & CONN_CLOSED))
            return;
    }
    if (!c->handler->on_data && !(c->flags & CONN_CLOSING)) {
        /* Frames that queued while the conn was held go first. */
        conn_frame_input(c);
        if (c->hold || (c->flags & (CONN_CLOSED | CONN_CLOSING)))
            return;
    }
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
                hs__conn_release(c);
                return;
            }
            evbuffer_drain(c->in, left);
        } else if (!(c->flags & CONN_USER_PAUSED)) {
            hs_log(HS_LOG_WARN, "conn#%llu %s truncated frame: %zu bytes before end of stream",
                   (unsigned long long)c->id, c->peer, left);
        }
    }
    if (hs__conn_pipe_active(c))
        hs_conn_abort(c, "truncated frame");
    else
        hs_conn_close(c, "peer closed");
    hs__conn_after_output(c);
}

void hs__conn_process_input(struct hs_conn *c)
{
    conn_process_input(c);
}

void hs__conn_on_eof(struct hs_conn *c)
{
    conn_on_eof(c);
}
