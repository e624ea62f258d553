/* TCP and Unix stream connections: non-blocking reads and writes of our own on a libevent
 * loop (64 KiB per read, writev of everything pending), framing, flow control, timeouts and
 * a close that flushes first. Knows nothing of Lua: behaviour comes from a handler vtable. */
#ifndef HS_CONN_H
#define HS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/framing.h"

struct event_base;
struct evbuffer_file_segment;
struct evbuffer;
struct hs_conn;
struct hs_conns;
struct hs_tls_ctx;
struct hs_proxy_header;

/* What a connection does with its events. Every callback may call any hs_conn_* function on
 * the connection, including hs_conn_close and hs_conn_abort: the free is deferred until the
 * outermost callback returns. `arg` is the value given to hs_conn_new. */
struct hs_conn_handler {
    /* Once, right after the connection is set up. */
    void (*on_open)(struct hs_conn *c, void *arg);
    /* A complete frame: its payload is `f->len` bytes at offset `f->skip` of `in`. The
     * callee copies what it needs and must not drain `in`; the connection drains the frame
     * after the call returns. */
    void (*on_frame)(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f, void *arg);
    /* Optional. With raw framing, a small read that found the input buffer empty is one
     * whole frame: its `len` bytes at `data` (read onto the stack, valid during the call
     * only) are given here instead of being appended to the input buffer and passed to
     * on_frame. The input buffer is empty during the call. Everything else (holds, pauses,
     * closes inside the call) is as for on_frame. */
    void (*on_raw)(struct hs_conn *c, const unsigned char *data, size_t len, void *arg);
    /* Optional, with on_raw. Where a large read (HS_READ_SIZE asked) that would go to on_raw
     * is to be read: `size` writable bytes owned by the handler, or NULL for the input buffer.
     * The read's bytes are then given to on_raw at that address, so a handler that keeps them
     * (the Lua binding turns them into a string) can take them over without a copy. */
    unsigned char *(*raw_buffer)(struct hs_conn *c, size_t size, void *arg);
    /* A frame armed with hs_conn_pipe_next has been written to its sink (status 0) or the
     * sink failed (status < 0, the rest of the frame was discarded to keep framing in step).
     * `bytes` is the frame's payload length. */
    void (*on_pipe_done)(struct hs_conn *c, int status, uint64_t bytes, void *arg);
    /* Optional. When set, framing is skipped: called whenever input arrived (and once more
     * at end of stream with eof = 1) with the whole input buffer; the callee drains what it
     * consumed and leaves the rest for next time. After the eof call the handler owns the end:
     * it must close the connection (at once, or after answering). Protocol layers (HTTP) use
     * this. */
    void (*on_data)(struct hs_conn *c, struct evbuffer *in, int eof, void *arg);
    /* Optional, with on_data. A small read that found the input buffer empty is offered here
     * first: its `len` bytes at `data` (on the stack, valid during the call only). The callee
     * takes all of them (returns 1: they never enter the input buffer) or none (returns 0:
     * they are appended to the input buffer and on_data runs as usual). HTTP takes a read
     * that is exactly one request without a body, which spares the buffer's block. */
    int (*on_bytes)(struct hs_conn *c, const unsigned char *data, size_t len, void *arg);
    /* Optional. While the connection is held (hs_conn_hold): called after input arrived, at
     * end of stream (eof = 1), and right after the frame whose handler took the hold was
     * drained. The callee may drain what it consumed and may release the hold. */
    void (*on_input)(struct hs_conn *c, struct evbuffer *in, int eof, void *arg);
    /* Optional. The server is stopping (hs_conns_drain): finish the message in progress and
     * close, closing at once when idle between messages. Without it the connection runs on
     * until it closes or the grace period ends. */
    void (*on_drain)(struct hs_conn *c, void *arg);
    /* Optional. Once after hs_conn_want_output_low: unsent output fell to limits.out_low or
     * below. Always called from the write event, never from inside hs_conn_send. */
    void (*on_output_low)(struct hs_conn *c, void *arg);
    /* Once, when the connection is gone. reason is a short static text ("peer closed",
     * "closed", "idle timeout", "frame too large", "reset", ...). */
    void (*on_close)(struct hs_conn *c, const char *reason, void *arg);
};

/* Limits shared by the connections of one set. A zero timeout, count or size disables that
 * limit, except the close timeout, where zero means the default (a close must never wait
 * forever).
 *
 * The three stall rules, each closing the connection with its own reason:
 * - first byte: nothing received this long after accept ("first byte timeout");
 * - receive: while a frame is in progress (partly received, or a pipe streaming), each
 *   frame_timeout_ms window must complete a frame or bring min_rate bytes/s on average
 *   ("receive timeout"); time spent with reading paused by us does not count;
 * - send: while output waits, each send_timeout_ms window must drain min_rate bytes/s on
 *   average ("send timeout"; the conn is aborted, its output cannot go anyway).
 * A client that trickles a frame or reads one byte at a time is thus cut off however often it
 * shows signs of life, which a per-read timer alone would not do. */
struct hs_conn_limits {
    unsigned max_connections;          /* open connections; beyond it new ones are closed at once */
    unsigned max_per_peer;             /* open connections from one address (IPv6: its /64) */
    size_t out_high;                   /* unsent bytes above which reading pauses */
    size_t out_low;                    /* unsent bytes below which reading resumes */
    size_t out_hard;                   /* unsent bytes above which hs_conn_send refuses */
    size_t max_line;                   /* line framing's max when its spec gives none */
    size_t max_frame;                  /* length framing's max when its spec gives none */
    unsigned idle_timeout_ms;          /* no traffic either way for this long closes the conn */
    unsigned close_timeout_ms;         /* a close waiting for output to drain gives up after this */
    unsigned first_byte_timeout_ms;    /* accept to the first byte received */
    unsigned frame_timeout_ms;         /* receive window while a frame is in progress */
    unsigned send_timeout_ms;          /* send window while output waits */
    unsigned min_rate;                 /* bytes/s each window must carry; 0: any progress will do */
    unsigned tls_handshake_timeout_ms; /* accept to a finished TLS handshake; 0: the default */
    unsigned tls_max_handshakes;       /* TLS handshakes in progress; beyond it new ones are
                                        * closed at once; 0: no limit */
    unsigned proxy_timeout_ms;         /* accept to a complete PROXY header; 0: the default */
};

/* Fills *l with the HS_DEFAULT_* values. */
void hs_conn_limits_default(struct hs_conn_limits *l);

/* Creates the set of connections of one event loop. The set keeps its own copy of *limits.
 * Returns NULL on allocation failure. Free with hs_conns_free once the loop is done. */
struct hs_conns *hs_conns_new(struct event_base *base, const struct hs_conn_limits *limits);

/* Aborts every connection still open (their on_close runs with reason "shutdown") and frees
 * the set. */
void hs_conns_free(struct hs_conns *set);

/* Number of open connections in the set. */
unsigned hs_conns_count(const struct hs_conns *set);

/* Asks every open connection to close once its output is flushed (reason "shutdown"). */
void hs_conns_close_all(struct hs_conns *set);

/* Graceful stop: calls the handler's on_drain for every open connection that has one. */
void hs_conns_drain(struct hs_conns *set);

/* Calls cb for every open connection of the set. Connections stay valid during the walk
 * even if cb closes them (or others); ones closed before their turn are skipped. */
void hs_conns_foreach(struct hs_conns *set, void (*cb)(struct hs_conn *c, void *arg), void *arg);

/* Sets a function called whenever the set becomes empty (used by graceful shutdown). */
void hs_conns_on_empty(struct hs_conns *set, void (*cb)(struct hs_conns *set, void *arg),
                       void *arg);

/* The limits in force for the set (read-only). */
const struct hs_conn_limits *hs_conns_limits(const struct hs_conns *set);

/* Whether one more connection from the address sa (len bytes; AF_UNIX is never limited) fits
 * under max_connections and max_per_peer. Listeners ask this before anything else, so a flood
 * costs no script call. Returns 0, or HS_ETOOBIG (logged, at most one line a second, with
 * `peer` as the address text). */
int hs_conns_admit(struct hs_conns *set, const struct sockaddr *sa, socklen_t len,
                   const char *peer);

/* Counters a listener keeps over the connections it accepted (hotsock stats). Each counted
 * connection holds a reference, so the block outlives a listener that a reload removed. */
struct hs_conn_tally {
    unsigned refs;
    unsigned long long open, messages, errors;
    unsigned long long tls_failures;   /* handshakes that failed or timed out */
    unsigned long long proxy_failures; /* PROXY headers missing, malformed or late */
    uint64_t bytes_in, bytes_out;      /* of the connections closed so far */
    uint64_t live_in, live_out;        /* of the open ones, as of hs_conns_tally_live */
};

/* A tally with one reference (the creator's); NULL when memory runs out. */
struct hs_conn_tally *hs_conn_tally_new(void);

/* Drops one reference; the last frees it. NULL is fine. */
void hs_conn_tally_unref(struct hs_conn_tally *t);

/* Adds one message (a frame or request handed to the script) to c's tally, if it has one. */
void hs_conn_count_message(struct hs_conn *c);

/* Sets live_in/live_out of every tally of the set's open connections to their bytes so far. */
void hs_conns_tally_live(struct hs_conns *set);

/* Takes ownership of the connected, non-blocking socket fd and starts reading. `peer` is
 * the peer's address text (copied). `framing` is copied. The handler and arg must outlive
 * the connection. on_open has run before this returns and may already have closed the
 * connection, so no pointer is returned: the handler sees the conn in on_open. Returns 0;
 * HS_ETOOBIG when the set is at max_connections or the peer's address at max_per_peer
 * (logged as hs_conns_admit does); -ENOMEM. On failure fd is closed. The connection is counted
 * in tally (referenced until the connection is freed), unless tally is NULL. */
int hs_conn_new(struct hs_conns *set, int fd, const char *peer, const struct hs_framing *framing,
                const struct hs_conn_handler *handler, void *arg, struct hs_conn_tally *tally);

/* hs_conn_new for a TLS listener: the connection first completes a server handshake with
 * ctx (a server context of core/tls.h, referenced by the connection); on_open runs only once
 * it has, so a failed handshake costs the handler nothing: the connection closes without
 * on_open or on_close, counted in tally->tls_failures and logged at debug. The handshake
 * must finish within limits.tls_handshake_timeout_ms. Returns as hs_conn_new, and also
 * HS_ETOOBIG when limits.tls_max_handshakes are in progress already (fd closed). */
int hs_conn_new_tls(struct hs_conns *set, int fd, const char *peer,
                    const struct hs_framing *framing, const struct hs_conn_handler *handler,
                    void *arg, struct hs_conn_tally *tally, struct hs_tls_ctx *ctx);

/* Called on a PROXY listener once a connection's header has named its client: sa (len
 * bytes) is the client's address from the header, or the socket's own after a LOCAL header
 * (a balancer's health check), and hs_conn_peer(c) already gives its text. The callee
 * decides admission (hs_conn_admit_peer, then any filter) and returns nonzero to refuse:
 * the connection then closes without on_open or on_close. */
typedef int (*hs_conn_admit_cb)(struct hs_conn *c, const struct sockaddr *sa, socklen_t len,
                                void *arg);

/* hs_conn_new_tls for a PROXY listener (core/proxy.h): the connection first reads a PROXY
 * header, v1 or v2, within limits.proxy_timeout_ms of accept. A missing, malformed or late
 * header closes it without on_open or on_close, counted in tally->proxy_failures and logged
 * at debug. Once the header is read, the peer text becomes the client's, `admit` runs (with
 * admit_arg), and then the TLS handshake (tls non-NULL; its bytes follow the header) or
 * on_open. The per-address limit is not applied at accept (the socket's peer is the
 * balancer): admit applies it to the client. sa, salen: the balancer's address as accept
 * gave it (kept: getpeername fails once a health check has reset the connection), formatted
 * only if a log line or a LOCAL header needs it. Returns as hs_conn_new_tls
 * (HS_ETOOBIG only for max_connections here). */
int hs_conn_new_proxy(struct hs_conns *set, int fd, const struct sockaddr *sa, socklen_t salen,
                      const struct hs_framing *framing, const struct hs_conn_handler *handler,
                      void *arg, struct hs_conn_tally *tally, struct hs_tls_ctx *tls,
                      hs_conn_admit_cb admit, void *admit_arg);

/* For an admit callback: counts c against the per-address limit as a connection from sa
 * (the client named by its PROXY header) rather than from its socket's peer. Returns 0, or
 * HS_ETOOBIG (logged as hs_conns_admit does) when that address is at max_per_peer. */
int hs_conn_admit_peer(struct hs_conn *c, const struct sockaddr *sa, socklen_t len);

/* The PROXY header c began with, or NULL (not a PROXY listener, or the header is not read
 * yet). Owned by c and valid while c is; its tlvs point into c's own copy. */
const struct hs_proxy_header *hs_conn_proxy(const struct hs_conn *c);

/* Writes into out (cap bytes; HS_PROXY_V2_HEADER_MAX suffices) a PROXY v2 header that passes
 * c's client on: the addresses of c's own PROXY header when it had one naming a client, else
 * c's socket's peer and local addresses. Returns the length, HS_ECLOSED, HS_EPROTO when the
 * two addresses are of different families, or a negated errno from getpeername. */
int hs_conn_proxy_build(const struct hs_conn *c, unsigned char *out, size_t cap);

/* Aborts every connection of the set still waiting for its PROXY header whose admit_arg is
 * arg (a listener going away: nobody would admit them). */
void hs_conns_abort_admitting(struct hs_conns *set, void *arg);

/* Called when a client handshake started with hs_conn_tls_start ends: err is NULL on
 * success, else a static-lifetime-for-the-call text ("certificate verify failed: REASON",
 * "tls handshake failed: REASON"); after a failure the connection closes once cb returns
 * (cb may close it itself). */
typedef void (*hs_conn_tls_cb)(struct hs_conn *c, const char *err, void *arg);

/* Starts TLS as a client on an open connection (an outbound one, or a STARTTLS upgrade):
 * ctx is a client context (referenced by the connection); name (copied; may be NULL) is the
 * server name sent as SNI and checked against its certificate. While the handshake runs, no
 * input is framed and output queued meanwhile waits, to go out encrypted after it. Returns
 * 0; HS_ECLOSED; -EBUSY when plaintext output is still waiting to be sent or TLS is already
 * on; -EINVAL for a server context; -ENOMEM. */
int hs_conn_tls_start(struct hs_conn *c, struct hs_tls_ctx *ctx, const char *name,
                      hs_conn_tls_cb cb, void *arg);

/* What a finished TLS handshake agreed on. The strings stay valid while the connection is
 * open. */
struct hs_conn_tls_info {
    const char *version; /* "TLSv1.3", "TLSv1.2" */
    const char *cipher;  /* OpenSSL's name of the suite */
    const char *sni;     /* the server name the client asked for, or NULL */
    char alpn[32];       /* the ALPN protocol agreed on, or "" */
};

/* Fills *out for an encrypted connection whose handshake is done. Returns 0, or -1 when the
 * connection is plaintext, still handshaking or closed. */
int hs_conn_tls_info(const struct hs_conn *c, struct hs_conn_tls_info *out);

/* Ends our sending side once the output is written: a TLS close_notify, then shutdown(2)
 * SHUT_WR. Reading goes on. Call it when nothing is pending (hs_conn_pending() == 0). */
void hs_conn_shutdown(struct hs_conn *c);

/* Half-close on request (conn:shutdown): from now on every send fails with HS_ECLOSED and
 * nothing more is queued; once the output pending now is written, hs_conn_shutdown runs (a
 * TLS close_notify, then SHUT_WR). Reading, piping from c and closing go on as before; c
 * stays open until closed. Returns 0 (also when already shut down), or HS_ECLOSED when c is
 * closing or closed. */
int hs_conn_shut_write(struct hs_conn *c);
/* Like hs_conn_new for a socket this process connected (hotsock.connect): the connection is
 * not counted against max_connections or max_per_peer and the first-byte rule does not apply
 * (the peer may well wait for us to speak); the other stall rules and limits do. It belongs to
 * the set like any other (hs_conns_close_all closes it too). A transport (TLS) may be started
 * on it once it exists, as on an accepted one. Same results as hs_conn_new, HS_ETOOBIG
 * excepted. */
int hs_conn_new_outbound(struct hs_conns *set, int fd, const char *peer,
                         const struct hs_framing *framing, const struct hs_conn_handler *handler,
                         void *arg);

/* Queues len bytes (copied) for sending. Returns 0, HS_ECLOSED once the connection is
 * closing or closed, or HS_EFULL when the unsent output is over the hard limit. */
int hs_conn_send(struct hs_conn *c, const void *data, size_t len);

/* Queues the n pieces of iov in order, as one hs_conn_send each would, but when nothing is
 * waiting to be sent it first tries one writev(2) straight to the socket (no copy, no extra
 * loop turn) and queues only what the socket did not take. Same results as hs_conn_send. */
int hs_conn_sendv(struct hs_conn *c, const struct iovec *iov, int n);

/* Moves every byte of buf (drained) to the output queue without copying where libevent
 * can. Same results as hs_conn_send. */
int hs_conn_send_buffer(struct hs_conn *c, struct evbuffer *buf);

/* hs_conn_send_buffer for bytes that a file (hs_conn_send_file) follows at once, such as an
 * HTTP response head: when nothing is pending they are written now with MSG_MORE, so the
 * kernel holds them for the file's first bytes instead of sending them as a segment of their
 * own (what nginx's tcp_nopush does with two setsockopt calls). The caller must send the file
 * next. */
int hs_conn_send_before_file(struct hs_conn *c, struct evbuffer *buf);

/* Queues len bytes of the file segment seg from offset for sending: by sendfile, without
 * copying them through user space; under TLS read with pread from fd, seg's descriptor (seg
 * must cover it from file offset 0), a few records ahead of the socket, never mapped (a file
 * truncated under a mapping would kill the process). A file that turns out shorter than
 * queued ends the connection ("file shrank"), logged. The output holds its own reference to
 * seg, which keeps fd open, until the bytes are sent or the connection goes; the caller keeps
 * its own. Same results as hs_conn_send. */
int hs_conn_send_file(struct hs_conn *c, struct evbuffer_file_segment *seg, int fd, uint64_t offset,
                      uint64_t len);

/* Requests a close: reading stops, queued output is flushed (bounded by the close
 * timeout), then the socket closes and on_close runs with `reason` (a static string).
 * Idempotent. */
void hs_conn_close(struct hs_conn *c, const char *reason);

/* hs_conn_close for a peer that may still be sending (a protocol error cut it off mid-stream):
 * once the output is flushed, our side is shut down and the peer's further input is read and
 * dropped until it closes, for at most HS_LINGER_MS or HS_LINGER_MAX bytes. Closing at once
 * with unread input would make the kernel send a reset, and a reset can destroy the last
 * thing we sent (the error reply, the close frame) before the peer reads it. on_close runs
 * when the socket finally closes. Plain TCP and Unix only; TLS connections close at once. */
void hs_conn_close_lingering(struct hs_conn *c, const char *reason);

/* Closes at once, dropping unsent output; the peer sees a reset. on_close gets reason. */
void hs_conn_abort(struct hs_conn *c, const char *reason);

/* Replaces the framing from the next frame on. Bytes already received are framed anew. */
void hs_conn_set_framing(struct hs_conn *c, const struct hs_framing *f);

/* The framing in force (read-only). */
const struct hs_framing *hs_conn_framing(const struct hs_conn *c);

/* A place the payload of a frame can be streamed to. write returns 0 or a negative code. */
struct hs_conn_sink {
    int (*write)(void *sink, const void *data, size_t len);
    void *sink;
};

/* Arms the connection so the payload of the next length or fixed frame goes to sink in
 * pieces as it arrives, never held whole in memory; a NULL sink discards it. max replaces
 * the framing's maximum for that frame alone (0 keeps it). on_pipe_done runs at the end.
 * Returns 0, HS_ECLOSED, -EINVAL when the framing is not length or fixed or a pipe is
 * already armed, or -ENOMEM (the pipe's state is made on first use). */
int hs_conn_pipe_next(struct hs_conn *c, const struct hs_conn_sink *sink, uint64_t max);

/* For handlers with on_data (protocol layers that frame their own input): on != 0 says a
 * message has started and is not complete yet (a request head or body), so the receive rule
 * of struct hs_conn_limits applies; each call with on != 0 starts a new window (call it again
 * when a message completes and the next one starts); on == 0 says nothing is owed. Framed
 * connections track this themselves. */
void hs_conn_expect_input(struct hs_conn *c, int on);

/* Stops (paused != 0) or resumes reading on behalf of the handler, independently of flow
 * control. */
void hs_conn_pause(struct hs_conn *c, int paused);

/* Holds the connection for its handler (max > 0), for a handler that waits: no frame is
 * dispatched (frames queue in order in the input buffer), the input is still read while it
 * holds fewer than max bytes (so a peer that leaves is noticed) and handed to on_input, and
 * end of stream is noted but not acted on. A later call changes max. max == 0 releases:
 * queued frames are dispatched and a noted end of stream acted on, at once when no callback
 * of c runs, else when it returns. A max over 4 GiB - 1 counts as 4 GiB - 1. */
void hs_conn_hold(struct hs_conn *c, size_t max);

/* Whether the connection is held (hs_conn_hold). */
int hs_conn_is_held(const struct hs_conn *c);

/* Whether the peer has shut down its side (no more input will come). */
int hs_conn_eof(const struct hs_conn *c);

/* The input buffer: bytes received and not yet framed. Owned by c; valid until on_close has
 * returned. For on_input callees and readers that frame input themselves. */
struct evbuffer *hs_conn_input(struct hs_conn *c);

/* The limits of the set the connection belongs to. */
const struct hs_conn_limits *hs_conn_limits(const struct hs_conn *c);

/* Hands the connection to another handler and arg (a protocol upgrade: HTTP to WebSocket).
 * Later events go to the new handler; neither handler's on_open or on_close runs for the
 * switch itself. Data set with hs_conn_set_data stays. */
void hs_conn_set_handler(struct hs_conn *c, const struct hs_conn_handler *handler, void *arg);

/* The handler and handler argument the connection runs (hs_conn_new's, or the last
 * hs_conn_set_handler's). */
const struct hs_conn_handler *hs_conn_handler_of(const struct hs_conn *c);
void *hs_conn_arg(const struct hs_conn *c);

/* Per-connection data for the handler; the connection never looks at it. */
void hs_conn_set_data(struct hs_conn *c, void *data);
void *hs_conn_data(const struct hs_conn *c);

/* Queries; valid until on_close has returned. */
uint64_t hs_conn_id(const struct hs_conn *c);
const char *hs_conn_peer(const struct hs_conn *c);
int hs_conn_fd(const struct hs_conn *c);
int hs_conn_is_closing(const struct hs_conn *c);
size_t hs_conn_pending(const struct hs_conn *c); /* unsent output bytes */

/* Asks for one on_output_low call when unsent output falls to limits.out_low or below (on = 0
 * takes the request back). Returns 0 when the call is owed; 1 when output is at or under the
 * mark already (no call comes); HS_ECLOSED for a closing connection; -EINVAL when the handler
 * has no on_output_low. */
int hs_conn_want_output_low(struct hs_conn *c, int on);
uint64_t hs_conn_bytes_in(const struct hs_conn *c);
uint64_t hs_conn_bytes_out(const struct hs_conn *c);

#endif
