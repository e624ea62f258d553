/* HTTP/1.x connections: request heads parsed with core/http.h, bodies read whole or streamed
 * to a sink, responses written with the right framing, keep-alive and pipelining (one exchange
 * at a time, answered in order), error responses, timeouts and the access log. Plain C on
 * libevent and core/conn.h: the application (the Lua binding, core/lua_http.c) sees requests
 * through a small vtable and answers through the hs_http_conn_* functions below.
 *
 * IMPORTANT: any hs_http_conn_* call may close the connection, and the app's on_close may then
 * run before the call returns. The hs_http_conn itself stays valid until the outermost call
 * into this module returns (a reference count), so an app may keep using it during that call;
 * once on_close has run, exchange functions return HS_ECLOSED. */
#ifndef HS_HTTP_CONN_H
#define HS_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "core/http.h"

struct evbuffer_file_segment;
struct event_base;
struct evbuffer;
struct hs_http_conn;

/* Defaults of struct hs_http_settings. */
#define HS_HTTP_DEFAULT_MAX_BODY (8 * 1024 * 1024)       /* bytes of a body read whole */
#define HS_HTTP_DEFAULT_HEADER_TIMEOUT_MS (10 * 1000)    /* to receive a whole request head */
#define HS_HTTP_DEFAULT_BODY_TIMEOUT_MS (30 * 1000)      /* between two reads of a request body */
#define HS_HTTP_DEFAULT_KEEPALIVE_TIMEOUT_MS (60 * 1000) /* idle between two requests */
#define HS_HTTP_LINGER_MS 2000     /* reading and dropping input after an early error response */
#define HS_HTTP_BATCH 64           /* pipelined requests answered per turn of the event loop */
#define HS_HTTP_MAX_LOG_TARGET 200 /* bytes of the request target kept for the access log */

/* Per-connection settings, copied by hs_http_conn_new. A zero field means its default. */
struct hs_http_settings {
    uint64_t max_body;             /* bytes of a body read whole before on_request; over: 413 */
    unsigned header_timeout_ms;    /* a head must be complete this long after its first byte
                                    * (after accept for the first request); else 408 */
    unsigned body_timeout_ms;      /* no body byte for this long while reading one: 408 */
    unsigned keepalive_timeout_ms; /* no byte of a next request for this long: close */
    struct hs_http_limits head;    /* request line and header limits (414, 431) */
};

/* How the app wants a request's body. */
enum hs_http_body_mode {
    HS_HTTP_BODY_BUFFER = 0, /* read it whole (up to max_body), then on_request */
    HS_HTTP_BODY_STREAM = 1, /* on_request at once; the app reads it with hs_http_conn_pipe_body */
};

/* What the application does with requests. `arg` is the app data (hs_http_conn_app). */
struct hs_http_app {
    /* A request head is complete and valid; path is its normalized path (NUL-terminated).
     * req and path are valid during the call only. Returns a hs_http_body_mode, or a negative
     * code when the app failed (the layer answers 500 and closes). */
    int (*on_head)(struct hs_http_conn *h, const struct hs_http_request *req, const char *path,
                   size_t path_len, void *arg);
    /* Run the request: body holds the whole body in buffer mode (the callee may drain it), and
     * is NULL in stream mode. The response may be finished now or later. */
    void (*on_request)(struct hs_http_conn *h, struct evbuffer *body, void *arg);
    /* A body piped with hs_http_conn_pipe_body ended: status 0 with its length, or HS_ECLOSED,
     * HS_ETOOBIG (over the pipe's max), HS_EPROTO (malformed chunked body), -ECANCELED (the
     * response finished first) or the sink's error. Called once per pipe. */
    void (*on_body_done)(struct hs_http_conn *h, int status, uint64_t bytes, void *arg);
    /* The connection is gone (reason as for hs_conn_handler.on_close). Called once; the app
     * releases what it holds. The hs_http_conn is freed after the outermost call returns. */
    void (*on_close)(struct hs_http_conn *h, const char *reason, void *arg);
    /* Optional (may be NULL): the layer is about to answer status (400, 408, 413, 414, 431,
     * 500, 501, 505) on its own, before any response was started. has_request says whether
     * on_head saw the current request (a malformed head has none). The app may add header
     * lines ("Name: value\r\n", already checked; no Content-Length, Transfer-Encoding or
     * Connection) to headers and the body to body, and return 1 to send them instead of the
     * default text body, or 0 for the default. It must not call hs_http_conn_* functions. */
    int (*on_error)(struct hs_http_conn *h, int status, int has_request, struct evbuffer *headers,
                    struct evbuffer *body, void *arg);
};

/* Sets up HTTP on connection c (from the hs_conn_handler's on_open): base is the connection's
 * event loop (for timers), settings are copied, app must outlive the connection. app_size
 * bytes of zeroed app data are allocated with it. Becomes the connection's data
 * (hs_conn_set_data). Returns NULL when memory runs out (the caller aborts c). */
struct hs_http_conn *hs_http_conn_new(struct hs_conn *c, struct event_base *base,
                                      const struct hs_http_settings *settings,
                                      const struct hs_http_app *app, size_t app_size);

/* The app data given to every app callback (app_size bytes, owned by h). */
void *hs_http_conn_app(struct hs_http_conn *h);

/* The connection, or NULL once it is gone. */
struct hs_conn *hs_http_conn_conn(const struct hs_http_conn *h);

/* Forwarders for the hs_conn_handler of an HTTP listener: input arrived (on_data), and the
 * connection closed (on_close; runs the app's on_close, frees h when nothing holds it). */
void hs_http_conn_input(struct hs_http_conn *h, struct evbuffer *in, int eof);

/* A read's bytes (len at data, valid during the call only) found the input buffer empty:
 * returns 1 when they were one whole request head without a body, taken and handled here
 * without passing through the input buffer; 0 (nothing done) for anything else, which the
 * caller appends to the input buffer for hs_http_conn_input. */
int hs_http_conn_input_direct(struct hs_http_conn *h, const char *data, size_t len);
void hs_http_conn_closed(struct hs_http_conn *h, const char *reason);

/* The server is stopping (the handler's on_drain): an idle connection (between requests, or
 * before the first byte) closes now with reason "shutdown"; the request in progress, or the
 * one whose head is arriving, is answered with Connection: close, and the connection closes
 * after it. May close the connection before returning. */
void hs_http_conn_drain(struct hs_http_conn *h);

/* In stream mode, streams the body of the current request to sink (NULL discards it) as it
 * arrives; on_body_done runs at the end, never before this returns. Sends 100 Continue first
 * when the client asked for it. max bounds the body (0: no bound but HTTP's own). Returns 0;
 * HS_ETOOBIG when the announced Content-Length is over max (nothing is read); HS_ECLOSED;
 * -EINVAL when there is no body to pipe (buffer mode, already piped or discarded). */
int hs_http_conn_pipe_body(struct hs_http_conn *h, const struct hs_conn_sink *sink, uint64_t max);

/* Starts the response of the current request: status (200..599) and the caller's header
 * lines (headers[0..len), each "Name: value\r\n", names and values already checked; may be
 * NULL). length is the body length, or -1 when unknown (chunked on HTTP/1.1, until close on
 * 1.0). The layer adds Date (unless given), Content-Length or Transfer-Encoding, and
 * Connection. close != 0 asks to close after this response. Nothing is sent yet: the head
 * goes out with the first body bytes or at finish. Returns 0, HS_ECLOSED, or -EINVAL when a
 * response was already started. */
int hs_http_conn_start(struct hs_http_conn *h, int status, const char *headers, size_t len,
                       int64_t length, int close);

/* The whole response at once: hs_http_conn_start with length blen, then hs_http_conn_write
 * of body, in one send (written through when nothing is queued and no pipelined request waits
 * behind this one). Returns as those two do. */
int hs_http_conn_send(struct hs_http_conn *h, int status, const char *headers, size_t len,
                      const void *body, size_t blen, int close);

/* Queues body bytes (copied) of the started response, chunk-framed when chunked. Dropped
 * for HEAD requests and bodiless statuses (204, 304). Returns 0; HS_ECLOSED; HS_EFULL when
 * the output is over its hard limit; -EINVAL when not started or over the announced length. */
int hs_http_conn_write(struct hs_http_conn *h, const void *data, size_t len);

/* Queues len bytes of the file segment seg over fd from offset as body (hs_conn_send_file).
 * The response must have a known length. Same results as hs_http_conn_write. */
int hs_http_conn_write_file(struct hs_http_conn *h, struct evbuffer_file_segment *seg, int fd,
                            uint64_t offset, uint64_t len);

/* Ends the response (starting it as an empty one if needed), logs it, then either waits for
 * the next request or closes. A response shorter than its announced length closes the
 * connection. Returns 0, HS_ECLOSED, or -EINVAL when there is no current response. */
int hs_http_conn_finish(struct hs_http_conn *h);

/* Answers the current request with an error status (a short text body, Connection: close)
 * when no response was started, then closes the connection. why is logged. */
void hs_http_conn_fail(struct hs_http_conn *h, int status, const char *why);

/* 1 while the app may still answer: 0 once the connection is closing (the client left, a
 * write failed) or the layer answered the request itself (an error response). */
int hs_http_conn_is_open(const struct hs_http_conn *h);

/* Answers the current request with 101 Switching Protocols and the caller's header lines
 * (headers[0..len), each "Name: value\r\n"; may be NULL), logs it, and lets go of the
 * connection: the app's on_close runs (reason "upgraded") and h is done with. The caller must
 * give the connection a new handler (hs_conn_set_handler) before it returns to the loop; bytes
 * the client sent after the request stay in the connection's input. Needs a current request
 * without a body and no response started. Returns the connection, or NULL when it is closed
 * or there is no such request (h is then untouched). */
struct hs_conn *hs_http_conn_upgrade(struct hs_http_conn *h, const char *headers, size_t len);

/* 1 when the current request is HEAD. */
int hs_http_conn_is_head(const struct hs_http_conn *h);

/* The standard reason phrase of status ("Not Found"), or "Unknown". */
const char *hs_http_reason(int status);

#endif
