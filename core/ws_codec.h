/* RFC 6455 data transfer on wslay's event API, between an input evbuffer and a send function:
 * frames in, whole messages out (reassembled, UTF-8 checked, bounded), pings answered, the
 * close handshake, and data frames out. No sockets and no event loop, so the fuzz target
 * drives exactly what a connection runs (core/ws.c is the glue to a connection).
 *
 * Where wslay 1.1 falls short of the RFC this layer closes the gap (docs/websocket.md lists
 * them): a frame header that wslay's frame parser would refuse (a control frame over 125 bytes
 * or fragmented, a length not in its shortest form or with the top bit set) is found here
 * before wslay reads it, so the connection fails with 1002 rather than wslay's empty close; a
 * close frame with a 1-byte payload fails with 1002 and one whose reason is not UTF-8 with
 * 1007, checked on the whole payload. */
#ifndef HS_WS_CODEC_H
#define HS_WS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct evbuffer;
struct hs_ws_codec;

/* Close codes (RFC 6455 §7.4.1) the codec uses. */
#define HS_WS_NORMAL 1000
#define HS_WS_GOING_AWAY 1001
#define HS_WS_PROTOCOL_ERROR 1002
#define HS_WS_NO_STATUS 1005 /* a close frame without a code (never sent) */
#define HS_WS_ABNORMAL 1006  /* the connection ended without a close frame (never sent) */
#define HS_WS_INVALID_DATA 1007
#define HS_WS_TOO_BIG 1009
#define HS_WS_INTERNAL_ERROR 1011
#define HS_WS_SERVICE_RESTART 1012 /* 1012-1014: IANA registry, after RFC 6455 */
#define HS_WS_BAD_GATEWAY 1014

#define HS_WS_MAX_CONTROL 125 /* payload bytes of a control frame */
#define HS_WS_MAX_REASON 123  /* bytes of a close reason */

/* What the codec reports; arg is the one given to hs_ws_codec_new. Callbacks may call any
 * hs_ws_codec_* function but hs_ws_codec_input and hs_ws_codec_free. */
struct hs_ws_codec_cb {
    /* A whole message: text (binary 0; valid UTF-8) or binary. data is valid during the call.
     * Not called once the codec is closing (a close was sent or queued). */
    void (*on_message)(const uint8_t *data, size_t len, int binary, void *arg);
    /* The peer's close frame, valid: its code (HS_WS_NO_STATUS when it had none) and reason.
     * The echo is queued already. Optional. */
    void (*on_peer_close)(int code, const uint8_t *reason, size_t len, void *arg);
    /* Output, in order: n pieces making len bytes in all. Takes all or nothing: returns 0, or
     * HS_EFULL to take nothing now (hs_ws_codec_flush retries), or another negative code when
     * the transport is gone. */
    int (*sendv)(const struct iovec *iov, int n, void *arg);
};

/* A codec for the server side of one connection. max_message bounds a message's payload, all
 * its fragments together (over: close 1009). cb must outlive the codec. Returns NULL when
 * memory runs out. */
struct hs_ws_codec *hs_ws_codec_new(uint64_t max_message, const struct hs_ws_codec_cb *cb,
                                    void *arg);

/* Frees the codec and what it still queues. */
void hs_ws_codec_free(struct hs_ws_codec *k);

/* Reads frames from the front of in (draining what it consumed; an incomplete frame header
 * stays), delivering messages through the callbacks, then flushes what the codec queued.
 * Returns the number of frames completed (>= 0), or -ENOMEM. A protocol error is no error
 * here: the codec queues its close frame and hs_ws_codec_failed says why. */
int hs_ws_codec_input(struct hs_ws_codec *k, struct evbuffer *in);

/* Sends what the codec has queued (pongs, close frames, data that waited). Returns 0, HS_EFULL
 * when sendv refused (the rest waits), or sendv's error. */
int hs_ws_codec_flush(struct hs_ws_codec *k);

/* Sends one data message (binary or text; text is not checked here) as one frame: the codec's
 * queue is flushed first so frames keep their order. Returns 0; HS_ECLOSED once the codec is
 * closing; HS_EFULL when the output is full (nothing of the message went). */
int hs_ws_codec_send(struct hs_ws_codec *k, const void *data, size_t len, int binary);

/* Queues and flushes a ping carrying data (len <= HS_WS_MAX_CONTROL). Same results as send,
 * and -EINVAL when len is too long. */
int hs_ws_codec_ping(struct hs_ws_codec *k, const void *data, size_t len);

/* Starts the close handshake: queues a close frame with code (0: none) and reason (len <=
 * HS_WS_MAX_REASON) and flushes. Returns 0; HS_ECLOSED when a close was queued already;
 * -EINVAL for a bad length. */
int hs_ws_codec_close(struct hs_ws_codec *k, int code, const char *reason, size_t len);

/* Whether the peer's close frame has arrived, and whether ours has gone out. */
int hs_ws_codec_close_received(const struct hs_ws_codec *k);
int hs_ws_codec_close_sent(const struct hs_ws_codec *k);

/* 1 once no data message may be sent (a close frame was queued or sent, by us or as an echo,
 * or the codec failed). */
int hs_ws_codec_closing(const struct hs_ws_codec *k);

/* The close code the codec failed the connection with (1002, 1007, 1009), with a static text
 * for the log in *why; 0 while it has not failed. */
int hs_ws_codec_failed(const struct hs_ws_codec *k, const char **why);

/* 1 while a frame is partly received (a header or payload still to come). */
int hs_ws_codec_in_frame(const struct hs_ws_codec *k, const struct evbuffer *in);

/* Bytes queued in the codec that sendv has not taken yet. */
size_t hs_ws_codec_queued(const struct hs_ws_codec *k);

/* The peer's close code and reason once its close frame arrived (code 0 before). */
int hs_ws_codec_peer_code(const struct hs_ws_codec *k, const char **reason, size_t *len);

#endif
