/* Byte pipes between connections (core/conn_pipe.h). conn.c and conn_input.c call in here at
 * four points: input read on a piped source (instead of framing it), its end of stream, a
 * destination's output falling to the low mark (in conn_flush), and either side's close (in
 * conn_finish). */
#include "core/conn_pipe.h"
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

struct hs__pipe {
    struct hs_conn *src;        /* read from; src->ext->tap points back here */
    struct hs_conn *dst;        /* written to; this pipe is on dst->ext->feed's list */
    struct hs__pipe *next_feed; /* the next pipe into the same dst, or NULL */
    hs_conn_pipe_cb cb;         /* told of the end, unless stopped */
    void *arg;
    uint64_t bytes;     /* moved so far */
    long long last;     /* ms (hs__conns_now) of the start or the last move */
    struct event *kick; /* moves what src had buffered at the start, next loop turn */
};

/* Takes p off both connections and frees it; src reads as its flags say again. */
static void pipe_unlink(struct hs__pipe *p)
{
    struct hs_conn *src = p->src, *dst = p->dst;
    src->ext->tap = NULL;
    for (struct hs__pipe **pp = &dst->ext->feed; *pp; pp = &(*pp)->next_feed) {
        if (*pp == p) {
            *pp = p->next_feed;
            break;
        }
    }
    if (p->kick)
        event_free(p->kick);
    free(p);
    src->flags &= ~CONN_PIPE_PAUSED;
    if (!(src->flags & CONN_CLOSED))
        hs__conn_update_reading(src);
}

/* Ends p and tells its owner. src is held across the callback, which may close it. */
static void pipe_end(struct hs__pipe *p, int status)
{
    struct hs_conn *src = p->src;
    hs_conn_pipe_cb cb = p->cb;
    void *arg = p->arg;
    uint64_t bytes = p->bytes;
    pipe_unlink(p);
    src->refs++;
    cb(src, status, bytes, arg);
    src->refs--;
    if (src->flags & CONN_CLOSED)
        hs__conn_release(src);
}

/* The usual case of a proxied message: dst has nothing pending and is plaintext, and the
 * bytes are one block (one read): one write(2) from the block (hs__conn_write_now), which
 * costs less than moving the block and writing the output buffer with writev. Drains from in
 * what went; a failure is left for dst's next read or flush to find. */
static void pipe_write_through(struct hs_conn *dst, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    if ((dst->flags & (CONN_NO_SEND | CONN_TLS_HANDSHAKE)) || dst->tls ||
        hs__conn_out_len(dst) > 0 || evbuffer_peek(in, -1, NULL, &v, 1) != 1)
        return;
    struct iovec iov = {.iov_base = v.iov_base, .iov_len = v.iov_len};
    size_t w = hs__conn_write_now(dst, &iov, 1);
    if (w > 0)
        evbuffer_drain(in, w);
}

/* Moves everything buffered in src to its pipe's dst and pauses src while dst is over the
 * high mark. The caller holds src (refs). */
static void pipe_move(struct hs_conn *src)
{
    struct hs__pipe *p = hs__conn_tap(src);
    size_t n = evbuffer_get_length(src->in);
    if (p == NULL || n == 0)
        return;
    p->bytes += n;
    p->last = hs__conns_now(src->set);
    pipe_write_through(p->dst, src->in);
    if (evbuffer_get_length(src->in) == 0)
        return;
    /* IMPORTANT: dst is written at once (when no callback of it runs); a write failure aborts
     * it, and its close ends this pipe and runs script code before this returns. */
    int r = hs_conn_send_buffer(p->dst, src->in);
    if (r < 0) {
        /* Nothing moved: dst is closing (the pipe's usual end when the script closes it), or
         * its hard output limit is under the high mark plus a read, or memory ran out. */
        p->bytes -= n;
        pipe_end(p, r == HS_EFULL || r == -ENOMEM ? r : HS_ECLOSED);
        return;
    }
    p = hs__conn_tap(src);
    if (p && hs__conn_out_len(p->dst) > p->dst->set->limits.out_high &&
        !(src->flags & CONN_PIPE_PAUSED)) {
        src->flags |= CONN_PIPE_PAUSED;
        hs__conn_update_reading(src);
    }
}

void hs__conn_pipe_input(struct hs_conn *src)
{
    src->refs++;
    pipe_move(src);
    hs__conn_unhold(src);
}

void hs__conn_pipe_eof(struct hs_conn *src)
{
    pipe_move(src);
    struct hs__pipe *p = hs__conn_tap(src);
    if (p)
        pipe_end(p, 0);
}

void hs__conn_pipe_drained(struct hs_conn *dst)
{
    for (struct hs__pipe *p = dst->ext->feed; p; p = p->next_feed) {
        struct hs_conn *src = p->src;
        if (src->flags & CONN_PIPE_PAUSED) {
            /* Only flags and events change here: this runs inside dst's flush. */
            src->flags &= ~CONN_PIPE_PAUSED;
            hs__conn_update_reading(src);
        }
    }
}

void hs__conn_pipe_closed(struct hs_conn *c)
{
    struct hs__pipe *p = hs__conn_tap(c);
    if (p) {
        /* A reset is the peer's doing; any other close of a source (by the script, a stall
         * rule, a shutdown) reads as closed. */
        int reset = c->close_reason && strcmp(c->close_reason, "reset") == 0;
        pipe_end(p, reset ? -ECONNRESET : HS_ECLOSED);
    }
    /* Each end may start pipes anew, but not into c, which is closed now. */
    while (c->ext && c->ext->feed)
        pipe_end(c->ext->feed, HS_ECLOSED);
}

/* Bytes src held when its pipe started (a frame's worth after a receive, or what came while
 * the upstream was being connected), or an end of stream already seen. */
static void pipe_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs__pipe *p = arg;
    struct hs_conn *src = p->src;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    src->refs++;
    pipe_move(src);
    p = hs__conn_tap(src);
    if (p && (src->flags & CONN_EOF))
        pipe_end(p, 0);
    hs__conn_unhold(src);
}

int hs_conn_pipe_to(struct hs_conn *src, struct hs_conn *dst, hs_conn_pipe_cb cb, void *arg)
{
    /* A src whose sending side is shut down still reads: only dst must take output. */
    if ((src->flags & (CONN_CLOSING | CONN_CLOSED)) || (dst->flags & CONN_NO_SEND))
        return HS_ECLOSED;
    if (src == dst || hs__conn_tap(src) != NULL)
        return -EINVAL;
    struct hs__pipe *p = calloc(1, sizeof *p);
    if (p == NULL || hs__conn_ext(src) == NULL || hs__conn_ext(dst) == NULL) {
        free(p);
        return -ENOMEM;
    }
    p->src = src;
    p->dst = dst;
    p->cb = cb;
    p->arg = arg;
    p->last = hs__conns_now(src->set);
    /* Never ended from in here: the caller (a script about to wait) is told later. */
    if (evbuffer_get_length(src->in) > 0 || (src->flags & CONN_EOF)) {
        p->kick = evtimer_new(src->set->base, pipe_kick_cb, p);
        if (p->kick == NULL) {
            free(p);
            return -ENOMEM;
        }
        event_active(p->kick, EV_TIMEOUT, 0);
    }
    src->ext->tap = p;
    p->next_feed = dst->ext->feed;
    dst->ext->feed = p;
    /* A frame in progress before the pipe is not the client's to finish any more. */
    src->rx_since = 0;
    if (hs__conn_out_len(dst) > dst->set->limits.out_high)
        src->flags |= CONN_PIPE_PAUSED;
    hs__conn_update_reading(src);
    return 0;
}

uint64_t hs_conn_pipe_stop(struct hs_conn *src)
{
    struct hs__pipe *p = hs__conn_tap(src);
    if (p == NULL)
        return 0;
    uint64_t bytes = p->bytes;
    pipe_unlink(p);
    return bytes;
}

int hs_conn_piping(const struct hs_conn *src)
{
    return hs__conn_tap(src) != NULL;
}

long long hs_conn_pipe_idle_ms(const struct hs_conn *src)
{
    const struct hs__pipe *p = hs__conn_tap(src);
    return p ? hs__conns_now(src->set) - p->last : -1;
}
