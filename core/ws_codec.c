#include "core/ws_codec.h"
#include "core/hs.h"
#include "core/ws_handshake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <wslay/wslay.h>

struct hs_ws_codec {
    wslay_event_context_ptr ctx;
    const struct hs_ws_codec_cb *cb;
    void *arg;
    struct evbuffer *in;  /* the input, during hs_ws_codec_input only */
    uint64_t vetted;      /* bytes at the front of in whose frame headers were checked */
    uint64_t frame_left;  /* bytes of the last checked frame still to come after vetted */
    uint64_t max;         /* max_message */
    int bad_code;         /* a bad frame header follows the vetted bytes: its close code */
    const char *bad_why;  /* and why */
    int fail_code;        /* the close code we failed the connection with, or 0 */
    const char *fail_why; /* static text for the log */
    int close_queued;     /* we queued a close frame (hs_ws_codec_close or a failure) */
    int frames;           /* frames completed during the current input call */
    int send_err;         /* the transport's error seen by the send callback, or 0 */
    uint8_t ctl_op;       /* opcode of the control frame being received, or 0 */
    uint8_t ctl_len;      /* bytes of its payload kept in ctl */
    uint8_t ctl[HS_WS_MAX_CONTROL];
    int peer_code;          /* the peer's close code once its close frame arrived, or 0 */
    size_t peer_reason_len; /* bytes of peer_reason */
    char peer_reason[HS_WS_MAX_REASON + 1];
};

/* Fails the connection with code: a close frame goes out, nothing more is read. */
static void codec_fail(struct hs_ws_codec *k, int code, const char *why)
{
    if (k->fail_code)
        return;
    k->fail_code = code;
    k->fail_why = why;
    if (!k->close_queued && wslay_event_queue_close(k->ctx, (uint16_t)code, NULL, 0) == 0)
        k->close_queued = 1;
    wslay_event_shutdown_read(k->ctx);
}

/* Checks the headers of the frames buffered in in past the vetted bytes, so wslay is given
 * only frames whose headers are sound. wslay's own frame parser refuses the same headers but
 * answers with a close frame without a code; checking here first gives 1002 and a precise log
 * line. A header that is not complete yet is left for the next call. */
static void codec_scan(struct hs_ws_codec *k, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    while (!k->bad_code && k->vetted < len) {
        if (k->frame_left > 0) {
            uint64_t take = len - k->vetted;
            if (take > k->frame_left)
                take = k->frame_left;
            k->vetted += take;
            k->frame_left -= take;
            continue;
        }
        uint8_t h[10];
        struct evbuffer_ptr p;
        size_t have = len - k->vetted < sizeof h ? len - k->vetted : sizeof h;
        evbuffer_ptr_set(in, &p, (size_t)k->vetted, EVBUFFER_PTR_SET);
        if (have < 2 || evbuffer_copyout_from(in, &p, h, have) != (ev_ssize_t)have)
            break;
        unsigned fin = h[0] >> 7, rsv = (h[0] >> 4) & 7, op = h[0] & 15, mask = h[1] >> 7;
        uint64_t plen = h[1] & 127;
        size_t ext = plen == 126 ? 2 : plen == 127 ? 8 : 0;
        if (rsv) {
            k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "reserved bits set";
        } else if ((op >= 3 && op <= 7) || op >= 11) {
            k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "reserved opcode";
        } else if (!mask) {
            k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "unmasked frame";
        } else if (op >= 8 && !fin) {
            k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "fragmented control frame";
        } else if (op >= 8 && plen > HS_WS_MAX_CONTROL) {
            k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "control frame over 125 bytes";
        } else if (have < 2 + ext) {
            break; /* the extended length is still to come */
        } else if (ext == 2) {
            plen = (uint64_t)h[2] << 8 | h[3];
            if (plen < 126)
                k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "length not in shortest form";
        } else if (ext == 8) {
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | h[2 + i];
            if (plen >> 63)
                k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "length with the top bit set";
            else if (plen < 65536)
                k->bad_code = HS_WS_PROTOCOL_ERROR, k->bad_why = "length not in shortest form";
        }
        /* wslay finds a message too long only once payload arrives: a frame that alone is
         * over the limit fails here, at its header. */
        if (!k->bad_code && op < 8 && plen > k->max)
            k->bad_code = HS_WS_TOO_BIG, k->bad_why = "message over max_message";
        if (k->bad_code)
            break;
        k->frame_left = 2 + ext + 4 + plen;
    }
}

/* ---- wslay callbacks ---- */

static ssize_t codec_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(flags);
    size_t n = len < k->vetted ? len : (size_t)k->vetted;
    if (n == 0 || k->in == NULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    evbuffer_remove(k->in, buf, n);
    k->vetted -= n;
    return (ssize_t)n;
}

static ssize_t codec_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(flags);
    struct iovec iov = {(void *)(uintptr_t)data, len};
    int r = k->cb->sendv(&iov, 1, k->arg);
    if (r == 0)
        return (ssize_t)len;
    if (r == HS_EFULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        k->send_err = r;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static void codec_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *a, void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(ctx);
    k->ctl_op = a->opcode >= 8 ? a->opcode : 0;
    k->ctl_len = 0;
}

static void codec_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *a, void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(ctx);
    if (k->ctl_op == 0)
        return;
    size_t n = a->data_length;
    if (n > sizeof k->ctl - k->ctl_len)
        n = sizeof k->ctl - k->ctl_len;
    memcpy(k->ctl + k->ctl_len, a->data, n);
    k->ctl_len = (uint8_t)(k->ctl_len + n);
}

/* The peer's close frame is valid: note its code and reason, and queue the echo unless our own
 * close went first. */
static void codec_peer_close(struct hs_ws_codec *k, int code, const uint8_t *reason, size_t len)
{
    k->peer_code = code ? code : HS_WS_NO_STATUS;
    if (len > HS_WS_MAX_REASON)
        len = HS_WS_MAX_REASON;
    if (len)
        memcpy(k->peer_reason, reason, len);
    k->peer_reason[len] = '\0';
    k->peer_reason_len = len;
    if (k->cb->on_peer_close)
        k->cb->on_peer_close(k->peer_code, (const uint8_t *)k->peer_reason, len, k->arg);
}

/* wslay 1.1 takes only 1000-1011 (not 1004-1006) and 3000-4999 from a peer and fails the
 * connection with 1002 on 1012 (service restart), 1013 (try again later) and 1014 (bad
 * gateway), which IANA's registry added after the RFC and Autobahn's 7.7 cases accept. For
 * those the echo is queued here, before wslay looks: wslay then finds its own close refused
 * (one is queued) and stops reading, which is all a received close asks for. */
static void codec_registry_close(struct hs_ws_codec *k, int code, const uint8_t *reason, size_t len)
{
    if (!k->close_queued && wslay_event_queue_close(k->ctx, (uint16_t)code, reason, len) == 0)
        k->close_queued = 1;
    codec_peer_close(k, code, reason, len);
    wslay_event_shutdown_read(k->ctx);
}

/* Runs before wslay acts on a whole control frame, so a bad close frame can be failed before
 * wslay queues its echo. wslay checks a close reason's UTF-8 chunk by chunk, skipping the
 * first two bytes of every chunk, not only the code's: the whole payload is checked here. */
static void codec_frame_end(wslay_event_context_ptr ctx, void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(ctx);
    k->frames++;
    if (k->ctl_op == WSLAY_CONNECTION_CLOSE) {
        int code = k->ctl_len >= 2 ? k->ctl[0] << 8 | k->ctl[1] : 0;
        if (k->ctl_len == 1)
            codec_fail(k, HS_WS_PROTOCOL_ERROR, "close frame with a 1-byte payload");
        else if (k->ctl_len > 2 && !hs_ws_utf8_valid(k->ctl + 2, k->ctl_len - 2u))
            codec_fail(k, HS_WS_INVALID_DATA, "close reason not UTF-8");
        else if (code >= HS_WS_SERVICE_RESTART && code <= HS_WS_BAD_GATEWAY)
            codec_registry_close(k, code, k->ctl + 2, k->ctl_len - 2u);
    }
    k->ctl_op = 0;
}

static void codec_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *user)
{
    struct hs_ws_codec *k = user;
    HS_UNUSED(ctx);
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) {
        if (!hs_ws_codec_closing(k))
            k->cb->on_message(a->msg, a->msg_length, a->opcode == WSLAY_BINARY_FRAME, k->arg);
    } else if (a->opcode == WSLAY_CONNECTION_CLOSE && !k->fail_code) {
        size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0;
        codec_peer_close(k, a->status_code, n ? a->msg + 2 : NULL, n);
    }
}

static const struct wslay_event_callbacks codec_callbacks = {
    .recv_callback = codec_recv,
    .send_callback = codec_send,
    .on_frame_recv_start_callback = codec_frame_start,
    .on_frame_recv_chunk_callback = codec_frame_chunk,
    .on_frame_recv_end_callback = codec_frame_end,
    .on_msg_recv_callback = codec_msg,
};

/* ---- the interface ---- */

struct hs_ws_codec *hs_ws_codec_new(uint64_t max_message, const struct hs_ws_codec_cb *cb,
                                    void *arg)
{
    struct hs_ws_codec *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    if (wslay_event_context_server_init(&k->ctx, &codec_callbacks, k) != 0) {
        free(k);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(k->ctx, max_message);
    k->max = max_message;
    k->cb = cb;
    k->arg = arg;
    return k;
}

void hs_ws_codec_free(struct hs_ws_codec *k)
{
    if (k == NULL)
        return;
    wslay_event_context_free(k->ctx);
    free(k);
}

int hs_ws_codec_input(struct hs_ws_codec *k, struct evbuffer *in)
{
    k->frames = 0;
    if (wslay_event_get_read_enabled(k->ctx)) {
        codec_scan(k, in);
        k->in = in;
        int r = wslay_event_recv(k->ctx);
        k->in = NULL;
        if (r == WSLAY_ERR_NOMEM)
            return -ENOMEM;
        if (r < 0) /* not expected: the scan keeps wslay's frame errors away */
            codec_fail(k, HS_WS_PROTOCOL_ERROR, "protocol error");
        if (k->bad_code && k->vetted == 0)
            codec_fail(k, k->bad_code, k->bad_why);
    }
    if (!wslay_event_get_read_enabled(k->ctx)) {
        /* Nothing more is read on this connection: what follows is dropped. */
        evbuffer_drain(in, evbuffer_get_length(in));
        k->vetted = k->frame_left = 0;
    }
    /* A transport error shows on the connection itself; only memory is this layer's concern. */
    if (hs_ws_codec_flush(k) == -ENOMEM)
        return -ENOMEM;
    return k->frames;
}

int hs_ws_codec_flush(struct hs_ws_codec *k)
{
    if (!wslay_event_want_write(k->ctx))
        return 0;
    int r = wslay_event_send(k->ctx);
    if (r == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (r < 0)
        return k->send_err ? k->send_err : -EPIPE;
    return wslay_event_want_write(k->ctx) ? HS_EFULL : 0;
}

int hs_ws_codec_closing(const struct hs_ws_codec *k)
{
    return k->close_queued || k->fail_code || !wslay_event_get_read_enabled(k->ctx) ||
           wslay_event_get_close_sent(k->ctx);
}

int hs_ws_codec_send(struct hs_ws_codec *k, const void *data, size_t len, int binary)
{
    if (hs_ws_codec_closing(k))
        return HS_ECLOSED;
    int r = hs_ws_codec_flush(k);
    if (r != 0)
        return r;
    /* A server's frame is a 2 to 10 byte header and the payload as it is (no mask), written
     * here so the payload goes to the socket from the caller's memory (writev), not copied
     * into wslay's queue first. */
    uint8_t h[10];
    size_t hl;
    h[0] = (uint8_t)(0x80 | (binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME));
    if (len < 126) {
        h[1] = (uint8_t)len;
        hl = 2;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    struct iovec iov[2] = {{h, hl}, {(void *)(uintptr_t)data, len}};
    return k->cb->sendv(iov, len ? 2 : 1, k->arg);
}

int hs_ws_codec_ping(struct hs_ws_codec *k, const void *data, size_t len)
{
    if (len > HS_WS_MAX_CONTROL)
        return -EINVAL;
    if (hs_ws_codec_closing(k))
        return HS_ECLOSED;
    struct wslay_event_msg m = {WSLAY_PING, data, len};
    int r = wslay_event_queue_msg(k->ctx, &m);
    if (r == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (r != 0)
        return HS_ECLOSED;
    r = hs_ws_codec_flush(k);
    return r == HS_EFULL ? 0 : r;
}

int hs_ws_codec_close(struct hs_ws_codec *k, int code, const char *reason, size_t len)
{
    if (len > HS_WS_MAX_REASON || (code == 0 && len > 0))
        return -EINVAL;
    if (k->close_queued || wslay_event_get_close_sent(k->ctx))
        return HS_ECLOSED;
    int r = wslay_event_queue_close(k->ctx, (uint16_t)code, (const uint8_t *)reason, len);
    if (r == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (r != 0)
        return HS_ECLOSED;
    k->close_queued = 1;
    r = hs_ws_codec_flush(k);
    return r == HS_EFULL ? 0 : r;
}

int hs_ws_codec_close_received(const struct hs_ws_codec *k)
{
    return k->peer_code != 0;
}

int hs_ws_codec_close_sent(const struct hs_ws_codec *k)
{
    return wslay_event_get_close_sent(k->ctx);
}

int hs_ws_codec_failed(const struct hs_ws_codec *k, const char **why)
{
    if (k->fail_code) {
        *why = k->fail_why;
        return k->fail_code;
    }
    if (wslay_event_get_read_enabled(k->ctx) || wslay_event_get_close_received(k->ctx) ||
        k->peer_code)
        return 0;
    /* wslay failed the connection itself (its close frame says how). */
    int code = wslay_event_get_close_sent(k->ctx) ? wslay_event_get_status_code_sent(k->ctx)
                                                  : HS_WS_PROTOCOL_ERROR;
    *why = code == HS_WS_INVALID_DATA ? "text not UTF-8"
           : code == HS_WS_TOO_BIG    ? "message over max_message"
                                      : "protocol error";
    return code;
}

int hs_ws_codec_in_frame(const struct hs_ws_codec *k, const struct evbuffer *in)
{
    return k->frame_left > 0 || evbuffer_get_length(in) > 0;
}

size_t hs_ws_codec_queued(const struct hs_ws_codec *k)
{
    return wslay_event_get_queued_msg_length(k->ctx);
}

int hs_ws_codec_peer_code(const struct hs_ws_codec *k, const char **reason, size_t *len)
{
    *reason = k->peer_reason;
    *len = k->peer_reason_len;
    return k->peer_code;
}
