#include "core/ws.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/ws_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

struct hs_ws {
    struct hs_conn *c; /* NULL once closed */
    struct hs_ws_codec *k;
    struct event *timer; /* the close wait, once our close frame is out */
    struct event *kick;  /* reads what arrived before the upgrade, from the loop */
    const struct hs_ws_app *app;
    void *arg;
    unsigned refs; /* calls into this module on the stack; the free waits for 0 */
    int closed;    /* on_close ran */
    int expecting; /* the connection's receive rule is on (a frame is in progress) */
    int waiting;   /* the close wait is armed */
};

static void ws_release(struct hs_ws *ws)
{
    if (--ws->refs > 0 || !ws->closed)
        return;
    event_free(ws->timer);
    event_free(ws->kick);
    hs_ws_codec_free(ws->k);
    free(ws);
}

static int ws_gone(const struct hs_ws *ws)
{
    return ws->closed || ws->c == NULL || hs_conn_is_closing(ws->c);
}

/* After the codec acted: a failure or a finished close handshake closes the TCP connection
 * (the server closes first, RFC 6455 §7.1.1); our close frame alone starts the close wait. */
static void ws_settle(struct hs_ws *ws)
{
    if (ws_gone(ws))
        return;
    const char *why = NULL;
    int code = hs_ws_codec_failed(ws->k, &why);
    if (code) {
        hs_log(HS_LOG_WARN, "conn#%llu %s websocket protocol error: %s; closing with %d",
               (unsigned long long)hs_conn_id(ws->c), hs_conn_peer(ws->c), why, code);
        hs_conn_close_lingering(ws->c, "protocol error");
        return;
    }
    int sent = hs_ws_codec_close_sent(ws->k), received = hs_ws_codec_close_received(ws->k);
    if (received && sent) {
        hs_conn_close(ws->c, "closed");
    } else if (sent && !ws->waiting) {
        struct timeval tv = {HS_WS_CLOSE_WAIT_MS / 1000, (HS_WS_CLOSE_WAIT_MS % 1000) * 1000};
        ws->waiting = 1;
        event_add(ws->timer, &tv);
    }
}

/* ---- codec callbacks ---- */

static void ws_message(const uint8_t *data, size_t len, int binary, void *arg)
{
    struct hs_ws *ws = arg;
    if (ws_gone(ws))
        return;
    hs_conn_count_message(ws->c);
    ws->app->on_message(ws, data, len, binary, ws->arg);
}

static int ws_sendv(const struct iovec *iov, int n, void *arg)
{
    struct hs_ws *ws = arg;
    if (ws->closed || ws->c == NULL)
        return HS_ECLOSED;
    return hs_conn_sendv(ws->c, iov, n);
}

static const struct hs_ws_codec_cb ws_codec_cb = {
    .on_message = ws_message,
    .sendv = ws_sendv,
};

/* ---- the connection handler ---- */

static void ws_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    struct hs_ws *ws = arg;
    ws->refs++;
    if (!ws_gone(ws) && evbuffer_get_length(in) > 0) {
        int frames = hs_ws_codec_input(ws->k, in);
        if (frames < 0) {
            hs_log(HS_LOG_ERROR, "conn#%llu %s websocket: out of memory",
                   (unsigned long long)hs_conn_id(c), hs_conn_peer(c));
            hs_conn_abort(c, "out of memory");
        } else if (!ws_gone(ws)) {
            /* The receive rule of the connection covers a frame in progress: a client that
             * sends half a frame and stalls is closed ("receive timeout"). */
            int partial = hs_ws_codec_in_frame(ws->k, in);
            if (partial && (!ws->expecting || frames > 0)) {
                hs_conn_expect_input(c, 1);
                ws->expecting = 1;
            } else if (!partial && ws->expecting) {
                hs_conn_expect_input(c, 0);
                ws->expecting = 0;
            }
        }
    }
    ws_settle(ws);
    if (eof && !ws_gone(ws))
        hs_conn_close(c, "peer closed");
    ws_release(ws);
}

static void ws_conn_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct hs_ws *ws = arg;
    HS_UNUSED(c);
    ws->refs++;
    ws->closed = 1;
    event_del(ws->timer);
    event_del(ws->kick);
    const char *why = NULL;
    size_t len;
    int code = hs_ws_codec_failed(ws->k, &why);
    if (code) {
        len = strlen(why);
    } else if ((code = hs_ws_codec_peer_code(ws->k, &why, &len)) == 0) {
        code = HS_WS_ABNORMAL;
        why = reason;
        len = strlen(reason);
    }
    ws->app->on_close(ws, code, why, len, ws->arg);
    ws->c = NULL;
    ws_release(ws);
}

/* The server is stopping: a WebSocket has no idle point to close at, so it is asked to go with
 * 1001; the connection closes once the peer answers (the process may exit as soon as the last
 * one has), or after the close wait. */
static void ws_drain(struct hs_conn *c, void *arg)
{
    static const char why[] = "server shutting down";
    struct hs_ws *ws = arg;
    HS_UNUSED(c);
    hs_ws_close(ws, HS_WS_GOING_AWAY, why, sizeof why - 1);
}

const struct hs_conn_handler hs_ws_conn_handler = {
    .on_data = ws_data,
    .on_drain = ws_drain,
    .on_close = ws_conn_close,
};

static void ws_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_ws *ws = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (ws_gone(ws))
        return;
    hs_log(HS_LOG_INFO, "conn#%llu %s websocket: no close frame from the peer within %d ms",
           (unsigned long long)hs_conn_id(ws->c), hs_conn_peer(ws->c), HS_WS_CLOSE_WAIT_MS);
    hs_conn_close(ws->c, "close timeout");
}

/* The HTTP layer paused reading for its request; resuming from the loop (no callback on the
 * stack) makes the connection hand over at once what arrived after the request. */
static void ws_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_ws *ws = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (!ws_gone(ws))
        hs_conn_pause(ws->c, 0);
}

/* ---- the interface ---- */

struct hs_ws *hs_ws_new(struct hs_conn *c, struct event_base *base, uint64_t max_message,
                        const struct hs_ws_app *app, void *arg)
{
    struct hs_ws *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return NULL;
    ws->k = hs_ws_codec_new(max_message, &ws_codec_cb, ws);
    ws->timer = evtimer_new(base, ws_timer_cb, ws);
    ws->kick = event_new(base, -1, 0, ws_kick_cb, ws);
    if (!ws->k || !ws->timer || !ws->kick) {
        if (ws->timer)
            event_free(ws->timer);
        if (ws->kick)
            event_free(ws->kick);
        hs_ws_codec_free(ws->k);
        free(ws);
        return NULL;
    }
    ws->c = c;
    ws->app = app;
    ws->arg = arg;
    hs_conn_set_handler(c, &hs_ws_conn_handler, ws);
    hs_conn_set_data(c, ws);
    hs_conn_expect_input(c, 0);
    event_active(ws->kick, EV_TIMEOUT, 1);
    return ws;
}

int hs_ws_send(struct hs_ws *ws, const void *data, size_t len, int binary)
{
    if (ws_gone(ws))
        return HS_ECLOSED;
    ws->refs++;
    int r = hs_ws_codec_send(ws->k, data, len, binary);
    ws_release(ws);
    return r;
}

int hs_ws_ping(struct hs_ws *ws, const void *data, size_t len)
{
    if (len > HS_WS_MAX_CONTROL)
        return -EINVAL;
    if (ws_gone(ws))
        return HS_ECLOSED;
    ws->refs++;
    int r = hs_ws_codec_ping(ws->k, data, len);
    ws_release(ws);
    return r;
}

int hs_ws_close(struct hs_ws *ws, int code, const char *reason, size_t len)
{
    if (len > HS_WS_MAX_REASON)
        return -EINVAL;
    if (ws_gone(ws))
        return HS_ECLOSED;
    ws->refs++;
    int r = hs_ws_codec_close(ws->k, code, reason, len);
    if (r == 0)
        ws_settle(ws);
    ws_release(ws);
    return r;
}

struct hs_conn *hs_ws_conn(const struct hs_ws *ws)
{
    return ws->closed ? NULL : ws->c;
}

size_t hs_ws_pending(const struct hs_ws *ws)
{
    if (ws->closed || ws->c == NULL)
        return 0;
    return hs_conn_pending(ws->c) + hs_ws_codec_queued(ws->k);
}

void *hs_ws_arg(const struct hs_ws *ws)
{
    return ws->arg;
}
