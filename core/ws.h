/* A WebSocket on a connection: after an HTTP upgrade (core/http_conn.h), the connection's
 * input goes to the codec (core/ws_codec.h), whole messages go to an app, and this layer keeps
 * the close handshake, the frame timeout and the closing of the TCP connection. Plain C on
 * core/conn.h; the Lua object is core/lua_ws.c.
 *
 * IMPORTANT: as with the connection, any hs_ws_* call may close it, and the app's on_close may
 * run before the call returns. The hs_ws stays valid until the outermost call into this module
 * returns; after on_close, hs_ws_* calls return HS_ECLOSED. */
#ifndef HS_WS_H
#define HS_WS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct hs_conn;
struct hs_ws;

#define HS_WS_CLOSE_WAIT_MS 5000 /* after our close frame, how long the peer's may take */

/* What the application does with a WebSocket; arg is hs_ws_new's. */
struct hs_ws_app {
    /* A whole message (binary 0: text, valid UTF-8); data is valid during the call. */
    void (*on_message)(struct hs_ws *ws, const void *data, size_t len, int binary, void *arg);
    /* Once, when the connection is gone. code and reason (len bytes, not NUL-terminated):
     * the peer's close frame when it sent one (1005 when it had no code); else the code this
     * side failed the connection with (1002, 1007, 1009) and why; else 1006 and the
     * connection's close reason ("peer closed", "receive timeout", "close timeout", ...).
     * The app releases what it holds; the hs_ws is freed once the outermost call returns. */
    void (*on_close)(struct hs_ws *ws, int code, const char *reason, size_t len, void *arg);
};

/* The connection handler of upgraded connections (its arg is the hs_ws). */
extern const struct hs_conn_handler hs_ws_conn_handler;

/* Takes over c, whose 101 response is queued: from now on its input is WebSocket frames.
 * base is c's loop; app must outlive the connection. Bytes the client sent after its request
 * are read on the next turn of the loop. Returns NULL when memory runs out (c is untouched;
 * the caller closes it). */
struct hs_ws *hs_ws_new(struct hs_conn *c, struct event_base *base, uint64_t max_message,
                        const struct hs_ws_app *app, void *arg);

/* Sends a text (binary 0; the caller checked its UTF-8) or binary message. Returns 0;
 * HS_ECLOSED once closing; HS_EFULL when the unsent output is over the connection's hard
 * limit (nothing was sent). */
int hs_ws_send(struct hs_ws *ws, const void *data, size_t len, int binary);

/* Sends a ping with data (at most 125 bytes, else -EINVAL). Same results as hs_ws_send. */
int hs_ws_ping(struct hs_ws *ws, const void *data, size_t len);

/* Starts the close handshake with code (0: none) and reason (at most 123 bytes, else -EINVAL);
 * the TCP connection closes once the peer answers, or after HS_WS_CLOSE_WAIT_MS. Returns 0, or
 * HS_ECLOSED when a close is under way already. */
int hs_ws_close(struct hs_ws *ws, int code, const char *reason, size_t len);

/* The connection, or NULL once it is gone. */
struct hs_conn *hs_ws_conn(const struct hs_ws *ws);

/* Bytes not sent yet: the connection's output and the codec's queue. */
size_t hs_ws_pending(const struct hs_ws *ws);

/* The app's arg. */
void *hs_ws_arg(const struct hs_ws *ws);

#endif
