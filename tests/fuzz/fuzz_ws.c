/* libFuzzer target for the WebSocket path from socket bytes to messages: core/ws_codec.c
 * (wslay behind our header check) and the UTF-8 check of core/ws_handshake.c. The stream
 * arrives in pieces into an evbuffer, as a connection's input does; every message is echoed
 * back through the codec's send path, whose output refuses now and then (HS_EFULL) so the
 * queued path runs too. Every text message delivered must be valid UTF-8 (our checker against
 * wslay's) and no message may be over max_message. Built only with -DHOTSOCK_FUZZ=ON (clang);
 * see tests/fuzz/CMakeLists.txt.
 *
 * Input: byte 0 sets max_message (1 + 8 * byte), byte 1 the piece size (1..64) and, in its top
 * bit, whether output refuses every third call. The rest is what the client sends. */
#include "core/hs.h"
#include "core/ws_codec.h"
#include "core/ws_handshake.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    struct hs_ws_codec *k;
    struct evbuffer *out;
    uint64_t max;
    int refuse; /* refuse every third send */
    unsigned sends;
};

static int sink_sendv(const struct iovec *iov, int n, void *arg)
{
    struct sink *s = arg;
    if (s->refuse && ++s->sends % 3 == 0)
        return HS_EFULL;
    for (int i = 0; i < n; i++)
        evbuffer_add(s->out, iov[i].iov_base, iov[i].iov_len);
    if (evbuffer_get_length(s->out) > 65536)
        evbuffer_drain(s->out, evbuffer_get_length(s->out));
    return 0;
}

static void sink_message(const uint8_t *msg, size_t len, int binary, void *arg)
{
    struct sink *s = arg;
    if (len > s->max)
        abort();
    if (!binary && !hs_ws_utf8_valid(msg, len))
        abort();
    hs_ws_codec_send(s->k, msg, len, binary);
    if (len > 0 && msg[0] == 'p')
        hs_ws_codec_ping(s->k, msg, len > HS_WS_MAX_CONTROL ? HS_WS_MAX_CONTROL : len);
    if (len > 0 && msg[0] == 'c')
        hs_ws_codec_close(s->k, 1000, (const char *)msg, len > 10 ? 10 : len);
}

static void sink_close(int code, const uint8_t *reason, size_t len, void *arg)
{
    (void)arg;
    if (code < 1000 || code > 4999 || len > HS_WS_MAX_REASON || !hs_ws_utf8_valid(reason, len))
        abort();
}

static const struct hs_ws_codec_cb sink_cb = {
    .on_message = sink_message,
    .on_peer_close = sink_close,
    .sendv = sink_sendv,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct sink s;
    memset(&s, 0, sizeof s);
    s.max = 1 + 8 * (uint64_t)data[0];
    size_t piece = 1 + (data[1] & 63);
    s.refuse = data[1] >> 7;
    data += 2;
    size -= 2;
    s.out = evbuffer_new();
    s.k = hs_ws_codec_new(s.max, &sink_cb, &s);
    struct evbuffer *in = evbuffer_new();
    if (s.out && s.k && in) {
        for (size_t off = 0; off < size; off += piece) {
            size_t n = size - off < piece ? size - off : piece;
            evbuffer_add(in, data + off, n);
            if (hs_ws_codec_input(s.k, in) < 0)
                break;
            const char *why;
            if (hs_ws_codec_failed(s.k, &why) && why == NULL)
                abort();
        }
        hs_ws_codec_flush(s.k);
    }
    hs_ws_codec_free(s.k);
    if (in)
        evbuffer_free(in);
    if (s.out)
        evbuffer_free(s.out);
    return 0;
}
