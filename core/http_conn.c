#include "core/http_conn.h"
#include "core/http_conn_internal.h"
#include "core/hs.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

static void http_run(struct hs_http_conn *h, int from_kick);

/* ---- small helpers ---- */

void hs__http_release(struct hs_http_conn *h)
{
    if (--h->refs > 0 || !h->closed)
        return;
    event_free(h->timer);
    event_free(h->kick);
    evbuffer_free(h->body);
    evbuffer_free(h->pend);
    free(h->app_data);
    free(h);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void timer_add(struct hs_http_conn *h, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    h->timer_due = h->timer_want;
    event_add(h->timer, &tv);
}

/* Sets the deadline of kind (TM_NONE: none) ms from now. The timer event is moved lazily, as
 * nginx does: a keep-alive connection would otherwise delete and re-add it twice per request.
 * A pending event that fires no later than the new deadline, and less than
 * TIMER_LAZY_MS before it, is left alone, and the callback re-arms it for the rest; with no
 * deadline the event stays pending and its callback does nothing. */
#define TIMER_LAZY_MS 1000
HS_HOT static void http_arm(struct hs_http_conn *h, enum timer_kind kind, unsigned ms)
{
    h->timer_kind = kind;
    if (kind == TM_NONE)
        return;
    h->timer_want = mono_ms() + ms;
    if (h->timer_want >= h->timer_due && h->timer_want - h->timer_due < TIMER_LAZY_MS &&
        event_pending(h->timer, EV_TIMEOUT, NULL))
        return;
    timer_add(h, ms);
}

static long long ms_since(struct hs_http_conn *h, const struct timeval *t)
{
    struct timeval now;
    event_base_gettimeofday_cached(h->base, &now);
    return ((long long)now.tv_sec - t->tv_sec) * 1000 +
           ((long long)now.tv_usec - t->tv_usec) / 1000;
}

/* Copies s[0..n) for the log, at most cap - 1 bytes, anything unprintable as '?'. */
HS_HOT static void log_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i, m = n < cap - 1 ? n : cap - 1;
    for (i = 0; i < m; i++)
        dst[i] = (s[i] > 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    dst[m] = '\0';
    if (m < n && cap > 4)
        memcpy(dst + cap - 4, "...", 4);
}

/* Reading is wanted while a head or a body is being received, and while lingering. */
static void http_update_reading(struct hs_http_conn *h)
{
    if (http_gone(h))
        return;
    int body = h->active &&
               (h->bstate == BODY_BUFFER || h->bstate == BODY_PIPE || h->bstate == BODY_DISCARD);
    /* While the app works on a request read whole, the socket is still watched until a byte
     * of a next request arrives: that is how a client leaving (end of stream, reset) is seen. */
    int waiting = h->active && h->bstate == BODY_NONE && h->resp != RESP_DONE && h->in != NULL &&
                  evbuffer_get_length(h->in) == 0;
    int want = h->lingering || !h->active || body || waiting;
    if (h->expecting && !body) {
        hs_conn_expect_input(h->c, 0);
        h->expecting = 0;
    }
    if (want == !h->paused)
        return;
    h->paused = !want;
    /* IMPORTANT: resuming may deliver buffered input (on_data) before this returns; callers
     * call this last. */
    hs_conn_pause(h->c, !want);
}

/* ---- closing ---- */

/* After an early error response the client may still be sending (a body we refused): closing
 * at once would make the kernel answer with a reset that can destroy the response before the
 * client reads it. So input is read and dropped, our side is shut down once the response is
 * out, and the connection closes at the client's end of stream or after HS_HTTP_LINGER_MS. */
static void http_linger(struct hs_http_conn *h)
{
    h->active = 0;
    h->lingering = 1;
    h->linger_ticks = HS_HTTP_LINGER_MS / 20;
    http_arm(h, TM_LINGER, 1); /* the first look comes once the response has been written */
}

/* Ends the connection after the current response: at once when the request was read whole,
 * by lingering when some of its body may still be on its way. */
void hs__http_close_after(struct hs_http_conn *h, const char *reason)
{
    int unread = h->active && h->bstate != BODY_NONE && !h->eof;
    h->active = 0;
    if (unread)
        http_linger(h);
    else
        hs_conn_close(h->c, reason);
}

/* Forgets the current request for the log of an error found before or without one. */
static void http_no_request(struct hs_http_conn *h)
{
    strcpy(h->method, "-");
    strcpy(h->target, "-");
    h->minor = 1;
    h->head_req = 0;
    h->resp = RESP_NONE;
    h->active = 0;
    h->head_seen = 0;
}

/* Lets the app shape the error response (struct hs_http_app.on_error). Returns 1 when the app's
 * response is queued, 0 for the default. */
static int http_app_error(struct hs_http_conn *h, int status, const char *why)
{
    struct evbuffer *hd = evbuffer_new(), *bd = evbuffer_new();
    int mine = 0;
    if (hd && bd) {
        h->in_error = 1;
        mine = h->app->on_error(h, status, h->active && h->head_seen, hd, bd, h->app_data) == 1;
        h->in_error = 0;
    }
    if (mine && !http_gone(h)) {
        size_t blen = evbuffer_get_length(bd);
        evbuffer_add_printf(h->pend, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
                            hs_http_reason(status), hs__http_now(h));
        evbuffer_add_buffer(h->pend, hd);
        evbuffer_add_printf(h->pend, "Content-Length: %zu\r\nConnection: close\r\n\r\n", blen);
        if (!h->head_req)
            evbuffer_add_buffer(h->pend, bd);
        hs__http_access_log(h, status, h->head_req ? 0 : blen, why);
        h->resp = RESP_DONE;
        hs__http_send_pend(h);
    }
    if (hd)
        evbuffer_free(hd);
    if (bd)
        evbuffer_free(bd);
    return mine;
}

/* An error found by the layer: answers status with Connection: close if no response was
 * started, logs, and closes. Except after a timeout or the client's end of stream, input may
 * still be coming (a refused body, pipelined requests): the close lingers. */
static void http_error(struct hs_http_conn *h, int status, const char *why)
{
    if (http_gone(h))
        return;
    if (h->resp == RESP_NONE && h->app->on_error && !h->in_error &&
        http_app_error(h, status, why)) {
        if (http_gone(h))
            return;
    } else if (h->resp == RESP_NONE) {
        const char *reason = hs_http_reason(status);
        evbuffer_add_printf(h->pend,
                            "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain; "
                            "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                            status, reason, hs__http_now(h), strlen(reason) + 1);
        if (!h->head_req)
            evbuffer_add_printf(h->pend, "%s\n", reason);
        hs__http_access_log(h, status, h->head_req ? 0 : strlen(reason) + 1, why);
        h->resp = RESP_DONE;
        hs__http_send_pend(h);
    } else if (h->resp == RESP_STARTED) {
        hs_log(HS_LOG_INFO, "conn#%llu %s response cut short: %s",
               (unsigned long long)hs_conn_id(h->c), hs_conn_peer(h->c), why);
    }
    if (http_gone(h))
        return;
    if (status != 408 && !h->eof) {
        http_linger(h);
    } else {
        h->active = 0;
        hs_conn_close(h->c, why);
    }
}

void hs_http_conn_fail(struct hs_http_conn *h, int status, const char *why)
{
    h->refs++;
    http_error(h, status, why);
    hs__http_release(h);
}

/* ---- requests ---- */

static size_t head_max(const struct hs_http_conn *h)
{
    return 2 + h->set.head.max_request_line + 2 + h->set.head.max_header_bytes + 2;
}

static void send_continue(struct hs_http_conn *h)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (h->expect && !h->sent_continue && !http_gone(h)) {
        h->sent_continue = 1;
        hs_conn_send(h->c, cont, sizeof cont - 1);
    }
}

/* Bodies have two guards: our idle timer (no byte for body_timeout_ms: 408) and the
 * connection's receive rule (each window must bring a minimum rate), which stops a body
 * trickled a byte at a time just under the idle timeout. */
static void body_timer_start(struct hs_http_conn *h)
{
    event_base_gettimeofday_cached(h->base, &h->body_last);
    http_arm(h, TM_BODY, h->set.body_timeout_ms);
    if (!http_gone(h)) {
        hs_conn_expect_input(h->c, 1);
        h->expecting = 1;
    }
}

/* Records the exchange from a parsed head and hands it to the app. Returns 1 to go on. */
HS_HOT static int http_begin(struct hs_http_conn *h, const struct hs_http_request *req,
                             size_t head_len, int direct)
{
    char small[1024], *path = small;
    int plen;
    h->active = 1;
    h->minor = req->minor_version;
    h->head_req = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    h->keep = req->keep_alive && !h->draining;
    h->expect = req->expect_continue;
    h->sent_continue = h->piped = 0;
    h->chunked = req->chunked;
    h->body_left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
    h->body_total = 0;
    h->resp = RESP_NONE;
    h->status = 0;
    h->close_after = 0;
    h->written = 0;
    clock_gettime(CLOCK_MONOTONIC, &h->t_start);
    log_copy(h->method, sizeof h->method, req->method, req->method_len);
    log_copy(h->target, sizeof h->target, req->target, req->target_len);
    http_arm(h, TM_NONE, 0);

    if (req->path_len >= sizeof small && (path = malloc(req->path_len + 1)) == NULL) {
        http_error(h, 500, "out of memory");
        return 0;
    }
    if (req->path_len == 1 && req->path[0] == '*')
        plen = 1, path[0] = '*', path[1] = '\0';
    else
        plen = hs_http_path_normalize(req->path, req->path_len, path, req->path_len + 1);
    int mode = HS_EPROTO;
    h->head_seen = plen >= 0;
    if (plen >= 0)
        mode = h->app->on_head(h, req, path, (size_t)plen, h->app_data);
    if (path != small)
        free(path);
    if (http_gone(h))
        return 0;
    if (!direct) /* a direct head was never in the input buffer */
        evbuffer_drain(h->in, head_len);
    if (plen < 0) {
        http_error(h, 400, "bad path");
        return 0;
    }
    if (mode < 0) {
        http_error(h, 500, "handler error");
        return 0;
    }
    int has_body = h->chunked || h->body_left > 0;
    if (h->chunked)
        hs_http_chunked_init(&h->ch);
    h->stream = mode == HS_HTTP_BODY_STREAM;
    h->bstate = !has_body ? BODY_NONE : h->stream ? BODY_WAIT : BODY_BUFFER;
    evbuffer_drain(h->body, evbuffer_get_length(h->body));
    if (h->bstate == BODY_BUFFER) {
        if (h->body_left > h->set.max_body) {
            http_error(h, 413, "body too large");
            return 0;
        }
        send_continue(h);
        body_timer_start(h);
        return 1; /* on_request once the body is in */
    }
    h->app->on_request(h, mode == HS_HTTP_BODY_STREAM ? NULL : h->body, h->app_data);
    return !http_gone(h);
}

/* An empty request whose fields go to hdrs (HS_HTTP_MAX_HEADERS of them), for the parser. */
static void req_init(struct hs_http_request *req, struct hs_http_header *hdrs)
{
    memset(req, 0, sizeof *req);
    req->headers = hdrs;
    req->headers_cap = HS_HTTP_MAX_HEADERS;
}

/* Parses the next request head from the input. Returns 1 when an exchange began. */
static int http_next_request(struct hs_http_conn *h)
{
    size_t len = evbuffer_get_length(h->in);
    if (len == 0) {
        if (h->eof)
            hs_conn_close(h->c, "peer closed");
        return 0;
    }
    size_t max = head_max(h), n = len < max ? len : max;
    const char *buf = (const char *)evbuffer_pullup(h->in, (ev_ssize_t)n);
    struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];
    struct hs_http_request req;
    req_init(&req, hdrs);
    int r = buf ? hs_http_parse_request(buf, n, h->last_len, &h->set.head, &req) : HS_EPROTO;
    if (r == HS_AGAIN && n >= max)
        r = HS_EPROTO, req.status = 431, req.why = "header section too large";
    if (r == HS_AGAIN) {
        /* The deadline runs from the first byte, seen now; a head that came whole needs none. */
        if (h->timer_kind != TM_HEAD)
            http_arm(h, TM_HEAD, h->set.header_timeout_ms);
        h->last_len = n;
        if (h->eof) {
            hs_log(HS_LOG_INFO, "conn#%llu %s incomplete request head at end of stream",
                   (unsigned long long)hs_conn_id(h->c), hs_conn_peer(h->c));
            hs_conn_close(h->c, "peer closed");
        }
        return 0;
    }
    h->last_len = 0;
    if (r < 0) {
        http_no_request(h);
        http_error(h, req.status ? req.status : 400, req.why ? req.why : "bad request");
        return 0;
    }
    return http_begin(h, &req, (size_t)r, 0);
}

/* ---- bodies ---- */

static int out_buffer(struct hs_http_conn *h, const char *p, size_t n)
{
    if (evbuffer_get_length(h->body) + n > h->set.max_body)
        return HS_ETOOBIG;
    return evbuffer_add(h->body, p, n) == 0 ? 0 : -ENOMEM;
}

static int out_pipe(struct hs_http_conn *h, const char *p, size_t n)
{
    if (h->body_total > h->pipe_max)
        return HS_ETOOBIG;
    return h->sink.write ? h->sink.write(h->sink.sink, p, n) : 0;
}

static int out_discard(struct hs_http_conn *h, const char *p, size_t n)
{
    HS_UNUSED(h);
    HS_UNUSED(p);
    HS_UNUSED(n);
    return 0;
}

/* Moves body bytes from the input to out. Returns 1 when the body is complete, 0 when more
 * input is needed, HS_EPROTO for a malformed chunked body, or out's negative result (the
 * bytes given to out are consumed either way). */
static int http_pump(struct hs_http_conn *h,
                     int (*out)(struct hs_http_conn *, const char *, size_t))
{
    uint64_t before = h->body_total;
    int r = 0;
    while (r == 0) {
        if (!h->chunked && h->body_left == 0) {
            r = 1;
            break;
        }
        size_t avail = evbuffer_get_contiguous_space(h->in);
        if (avail == 0)
            break;
        const char *p = (const char *)evbuffer_pullup(h->in, (ev_ssize_t)avail);
        if (!h->chunked) {
            size_t n = avail < h->body_left ? avail : (size_t)h->body_left;
            h->body_left -= n;
            h->body_total += n;
            r = out(h, p, n);
            evbuffer_drain(h->in, n);
            continue;
        }
        size_t used = 0, off = 0, dlen = 0;
        int c = hs_http_chunked_next(&h->ch, p, avail, &used, &off, &dlen);
        if (c == HS_EPROTO) {
            r = HS_EPROTO;
            break;
        }
        if (c == 1) {
            h->body_total += dlen;
            r = out(h, p + off, dlen);
        }
        evbuffer_drain(h->in, used);
        if (c == 0)
            r = r < 0 ? r : 1;
    }
    if (h->body_total != before)
        event_base_gettimeofday_cached(h->base, &h->body_last);
    return r;
}

/* One step of the body of the current exchange. Returns 1 to go on with the loop. */
static int http_body_step(struct hs_http_conn *h)
{
    enum body_state st = h->bstate;
    int r = http_pump(h, st == BODY_BUFFER ? out_buffer : st == BODY_PIPE ? out_pipe : out_discard);
    if (r == 0) {
        if (h->eof) {
            hs_log(HS_LOG_INFO, "conn#%llu %s request body cut short by end of stream",
                   (unsigned long long)hs_conn_id(h->c), hs_conn_peer(h->c));
            h->bstate = BODY_NONE;
            if (st == BODY_PIPE)
                h->app->on_body_done(h, HS_ECLOSED, h->body_total, h->app_data);
            if (!http_gone(h))
                hs_conn_close(h->c, "peer closed");
        }
        return 0;
    }
    if (r == 1) {
        h->bstate = BODY_NONE;
        http_arm(h, TM_NONE, 0);
        if (st == BODY_BUFFER)
            h->app->on_request(h, h->body, h->app_data);
        else if (st == BODY_PIPE)
            h->app->on_body_done(h, 0, h->body_total, h->app_data);
        return !http_gone(h);
    }
    if (st == BODY_BUFFER) {
        if (r == HS_EPROTO)
            http_error(h, 400, h->ch.why ? h->ch.why : "bad chunked body");
        else
            http_error(h, 413, "body too large");
        return 0;
    }
    if (st == BODY_PIPE) {
        /* The pipe gives up; what is left of the body is unread and decided at finish. */
        h->bstate = r == HS_EPROTO ? BODY_NONE : BODY_WAIT;
        http_arm(h, TM_NONE, 0);
        h->app->on_body_done(h, r, h->body_total, h->app_data);
        if (r == HS_EPROTO)
            http_error(h, 400, h->ch.why ? h->ch.why : "bad chunked body");
        return !http_gone(h);
    }
    http_error(h, 400, "bad chunked body"); /* discarding */
    return 0;
}

/* The response is done and the body was not read: drop a small rest, else close. */
static int http_unread_body(struct hs_http_conn *h)
{
    if (h->bstate == BODY_PIPE) {
        h->bstate = BODY_WAIT;
        h->app->on_body_done(h, -ECANCELED, h->body_total, h->app_data);
        if (http_gone(h))
            return 0;
    }
    if (!h->close_after && !h->chunked && h->body_left <= h->set.max_body &&
        (!h->expect || h->sent_continue)) {
        h->bstate = BODY_DISCARD;
        body_timer_start(h);
        return 1;
    }
    hs__http_close_after(h, "closed");
    return 0;
}

/* The exchange is over and the connection persists: get ready for the next request. */
static void http_next_exchange(struct hs_http_conn *h)
{
    h->active = 0;
    h->resp = RESP_NONE;
    if (h->draining) {
        hs_conn_close(h->c, "shutdown");
        return;
    }
    if (evbuffer_get_length(h->in) > 0)
        http_arm(h, TM_HEAD, h->set.header_timeout_ms);
    else
        http_arm(h, TM_KEEPALIVE, h->set.keepalive_timeout_ms);
}

/* The input loop: parses heads, moves bodies, delivers requests, one exchange at a time. */
HS_HOT static void http_run(struct hs_http_conn *h, int from_kick)
{
    unsigned batch = 0;
    h->running++;
    while (!http_gone(h)) {
        if (h->lingering) {
            evbuffer_drain(h->in, evbuffer_get_length(h->in));
            if (h->eof)
                hs_conn_close(h->c, "closed");
            break;
        }
        if (!h->active) {
            if (evbuffer_get_length(h->in) > 0 && batch >= HS_HTTP_BATCH) {
                http_kick(h); /* let other connections have a turn */
                break;
            }
            if (evbuffer_get_length(h->in) > 0 && hs_conn_pending(h->c) > HS_DEFAULT_OUT_HIGH) {
                /* Let the output drain. Seen from the kick, whose sends were flushed at once,
                 * the connection has stopped reading for flow control and calls on_data once
                 * the output is low again; seen from on_data, the flush comes after it: one
                 * kick looks again. */
                if (!from_kick)
                    http_kick(h);
                break;
            }
            if (!http_next_request(h))
                break;
            batch++;
            continue;
        }
        if (h->bstate == BODY_PIPE && h->resp == RESP_DONE) {
            if (!http_unread_body(h)) /* the response came first: the pipe is cancelled */
                break;
            continue;
        }
        if (h->bstate == BODY_BUFFER || h->bstate == BODY_PIPE || h->bstate == BODY_DISCARD) {
            if (!http_body_step(h))
                break;
            continue;
        }
        if (h->resp != RESP_DONE) {
            /* Waiting for the app. A client that ends its stream after a request read whole,
             * with nothing pipelined behind it, has given up on the answer (nginx's 499, Go's
             * cancelled request context): close, so the app hears of it (res methods answer
             * "closed") instead of writing to nobody. */
            if (h->eof && h->bstate == BODY_NONE && evbuffer_get_length(h->in) == 0)
                hs_conn_close(h->c, "peer closed");
            break;
        }
        if (h->bstate == BODY_WAIT) {
            if (!http_unread_body(h))
                break;
            continue;
        }
        http_next_exchange(h);
    }
    h->running--;
    http_update_reading(h);
}

void hs_http_conn_drain(struct hs_http_conn *h)
{
    if (http_gone(h) || h->draining)
        return;
    h->refs++;
    h->draining = 1;
    h->keep = 0; /* a response not started yet will say Connection: close */
    if (h->resp == RESP_STARTED)
        h->close_after = 1; /* its head may be out already: close after it all the same */
    if (!h->active && !h->lingering && (h->in == NULL || evbuffer_get_length(h->in) == 0))
        hs_conn_close(h->c, "shutdown");
    hs__http_release(h);
}

HS_HOT int hs_http_conn_input_direct(struct hs_http_conn *h, const char *data, size_t len)
{
    /* Only between exchanges with nothing buffered, where these bytes start the next request;
     * and only a read that is exactly one whole head without a body, so no byte of it has to
     * be kept after the call and no later request's response is written ahead of a batch. */
    if (h->active || h->lingering || h->eof || http_gone(h) || evbuffer_get_length(h->in) > 0)
        return 0;
    struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];
    struct hs_http_request req;
    req_init(&req, hdrs);
    int r = hs_http_parse_request(data, len, 0, &h->set.head, &req);
    if (r <= 0 || (size_t)r != len || req.chunked || req.content_length > 0)
        return 0; /* the input buffer's path parses it again, and answers any error there */
    h->refs++;
    h->running++; /* as inside http_run: the finish does not kick */
    h->last_len = 0;
    http_begin(h, &req, (size_t)r, 1);
    h->running--;
    /* What the input loop does after an exchange began there: its end when it is answered, a
     * linger or close after an error, and the read interest either way. */
    http_run(h, 0);
    hs__http_release(h);
    return 1;
}

void hs_http_conn_input(struct hs_http_conn *h, struct evbuffer *in, int eof)
{
    h->refs++;
    h->in = in;
    h->eof |= eof;
    http_run(h, 0);
    hs__http_release(h);
}

static void http_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_http_conn *h = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    h->refs++;
    if (h->in != NULL)
        http_run(h, 1);
    hs__http_release(h);
}

static void http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_http_conn *h = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (http_gone(h) || h->timer_kind == TM_NONE)
        return;
    uint64_t now = mono_ms();
    if (now < h->timer_want) { /* moved later since the event was added (http_arm) */
        timer_add(h, (unsigned)(h->timer_want - now));
        return;
    }
    h->refs++;
    unsigned long long id = (unsigned long long)hs_conn_id(h->c);
    const char *peer = hs_conn_peer(h->c);
    switch (h->timer_kind) {
    case TM_HEAD:
        if (h->in == NULL || evbuffer_get_length(h->in) == 0) {
            hs_log(HS_LOG_INFO, "conn#%llu %s no request within %u ms; closing", id, peer,
                   h->set.header_timeout_ms);
            hs_conn_close(h->c, "request timeout");
            break;
        }
        http_no_request(h);
        http_error(h, 408, "request head timeout");
        break;
    case TM_BODY: {
        long long idle = ms_since(h, &h->body_last);
        if (idle + 1 < (long long)h->set.body_timeout_ms) {
            http_arm(h, TM_BODY, (unsigned)(h->set.body_timeout_ms - idle));
            break;
        }
        if (h->bstate == BODY_PIPE) {
            h->bstate = BODY_NONE;
            h->app->on_body_done(h, HS_ECLOSED, h->body_total, h->app_data);
        }
        http_error(h, 408, "request body timeout");
        break;
    }
    case TM_KEEPALIVE:
        hs_log(HS_LOG_DEBUG, "conn#%llu %s keep-alive timeout", id, peer);
        hs_conn_close(h->c, "keep-alive timeout");
        break;
    case TM_LINGER:
        if (!h->shut && hs_conn_pending(h->c) == 0) {
            hs_conn_shutdown(h->c); /* a TLS close_notify first, then the FIN */
            h->shut = 1;
        }
        if (--h->linger_ticks == 0)
            hs_conn_close(h->c, "closed");
        else
            http_arm(h, TM_LINGER, 20);
        break;
    case TM_NONE:
        break;
    }
    hs__http_release(h);
}

/* ---- setup and teardown ---- */

struct hs_http_conn *hs_http_conn_new(struct hs_conn *c, struct event_base *base,
                                      const struct hs_http_settings *settings,
                                      const struct hs_http_app *app, size_t app_size)
{
    struct hs_http_conn *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->c = c;
    h->base = base;
    h->app = app;
    h->set = *settings;
    if (h->set.max_body == 0)
        h->set.max_body = HS_HTTP_DEFAULT_MAX_BODY;
    if (h->set.header_timeout_ms == 0)
        h->set.header_timeout_ms = HS_HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    if (h->set.body_timeout_ms == 0)
        h->set.body_timeout_ms = HS_HTTP_DEFAULT_BODY_TIMEOUT_MS;
    if (h->set.keepalive_timeout_ms == 0)
        h->set.keepalive_timeout_ms = HS_HTTP_DEFAULT_KEEPALIVE_TIMEOUT_MS;
    if (h->set.head.max_request_line == 0)
        h->set.head.max_request_line = HS_HTTP_MAX_REQUEST_LINE;
    if (h->set.head.max_header_bytes == 0)
        h->set.head.max_header_bytes = HS_HTTP_MAX_HEADER_BYTES;
    if (h->set.head.max_headers == 0 || h->set.head.max_headers > HS_HTTP_MAX_HEADERS)
        h->set.head.max_headers = HS_HTTP_MAX_HEADERS;
    h->app_data = calloc(1, app_size ? app_size : 1);
    h->body = evbuffer_new();
    h->pend = evbuffer_new();
    h->timer = evtimer_new(base, http_timer_cb, h);
    h->kick = event_new(base, -1, 0, http_kick_cb, h);
    if (!h->app_data || !h->body || !h->pend || !h->timer || !h->kick) {
        if (h->timer)
            event_free(h->timer);
        if (h->kick)
            event_free(h->kick);
        if (h->body)
            evbuffer_free(h->body);
        if (h->pend)
            evbuffer_free(h->pend);
        free(h->app_data);
        free(h);
        return NULL;
    }
    hs_conn_set_data(c, h);
    h->in = hs_conn_input(c); /* known before the first on_data: hs_http_conn_input_direct */
    /* The first request's head is due within the header timeout from accept. */
    http_arm(h, TM_HEAD, h->set.header_timeout_ms);
    return h;
}

void *hs_http_conn_app(struct hs_http_conn *h)
{
    return h->app_data;
}

struct hs_conn *hs_http_conn_conn(const struct hs_http_conn *h)
{
    return h->closed ? NULL : h->c;
}

void hs_http_conn_closed(struct hs_http_conn *h, const char *reason)
{
    h->refs++;
    h->closed = 1;
    event_del(h->timer);
    event_del(h->kick);
    if (h->bstate == BODY_PIPE) {
        h->bstate = BODY_NONE;
        h->app->on_body_done(h, HS_ECLOSED, h->body_total, h->app_data);
    }
    h->app->on_close(h, reason, h->app_data);
    h->c = NULL;
    hs__http_release(h);
}

/* ---- responses ---- */

int hs_http_conn_pipe_body(struct hs_http_conn *h, const struct hs_conn_sink *sink, uint64_t max)
{
    if (http_dead(h))
        return HS_ECLOSED;
    if (!h->active || !h->stream || h->piped || (h->bstate != BODY_WAIT && h->bstate != BODY_NONE))
        return -EINVAL;
    if (!h->chunked && max > 0 && h->body_left > max)
        return HS_ETOOBIG;
    h->piped = 1;
    h->sink.write = sink ? sink->write : NULL;
    h->sink.sink = sink ? sink->sink : NULL;
    h->pipe_max = max > 0 ? max : UINT64_MAX;
    h->bstate = BODY_PIPE;
    h->refs++;
    send_continue(h);
    if (!http_gone(h)) {
        body_timer_start(h);
        http_kick(h);
    }
    hs__http_release(h);
    return 0;
}
