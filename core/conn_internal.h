/* Private to the connection files (conn.c: I/O, close and sending; conn_set.c: the set,
 * admission and per-listener tallies; conn_timer.c: stall rules and the per-connection timer).
 * Other modules use core/conn.h only. */
#ifndef HS_CONN_INTERNAL_H
#define HS_CONN_INTERNAL_H

#include "core/conn.h"
#include "core/peers.h"

#include <errno.h>
#include <stdint.h>
#include <sys/time.h>

#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

enum {
    CONN_CLOSING = 1 << 0,     /* close requested: no more reads, flushing output */
    CONN_CLOSED = 1 << 1,      /* socket closed, on_close ran; free once refs drop to 0 */
    CONN_FLOW_PAUSED = 1 << 2, /* reading stopped because output is over the high mark */
    CONN_USER_PAUSED = 1 << 3, /* reading stopped by the handler */
    CONN_EOF = 1 << 4,         /* the peer shut down its write side */
    CONN_READING = 1 << 5,     /* the read event is added */
    CONN_WRITING = 1 << 6,     /* the write event is added */
    CONN_EXPECT = 1 << 7,      /* on_data conns: the protocol layer awaits the rest of a message */
    CONN_TLS_HANDSHAKE = 1 << 8, /* a TLS handshake is in progress: it owns the events */
    CONN_NOT_OPEN = 1 << 9,      /* on_open has not run (a server handshake comes first); a
                                  * close then tells the handler nothing */
    CONN_ABORTING = 1 << 10,     /* hs_conn_abort: no TLS close_notify, the peer gets a reset */
    CONN_OUTBOUND = 1 << 11,     /* we connected (hs_conn_new_outbound): no admission caps, no
                                  * first-byte rule */
    CONN_LINGER = 1 << 12,       /* hs_conn_close_lingering: shut down, drain, then close */
    CONN_LINGERING = 1 << 13,    /* our side is shut down; the peer's input is dropped until
                                  * it closes, HS_LINGER_MS pass or HS_LINGER_MAX bytes came */
    CONN_WANT_LOW = 1 << 14,     /* hs_conn_want_output_low: on_output_low is owed */
    CONN_PROXY_WAIT = 1 << 15,   /* reading the PROXY header (conn_proxy.c): it owns reads */
    CONN_READ_BIG = 1 << 16,     /* the last read was large: the next asks for HS_READ_SIZE */
    CONN_PIPE_PAUSED = 1 << 17,  /* piping (conn_pipe.c): reading stopped because the
                                  * destination's output is over the high mark */
    CONN_WR_SHUT = 1 << 18,      /* hs_conn_shut_write: no more sends; shut down once flushed */
    CONN_WR_DONE = 1 << 19,      /* that shutdown(2) was made */
};

/* Flags under which nothing more may be queued for sending. */
#define CONN_NO_SEND (CONN_CLOSING | CONN_CLOSED | CONN_WR_SHUT)

#define HS_LINGER_MS 2000          /* longest a lingering close waits for the peer's end */
#define HS_LINGER_MAX (256 * 1024) /* bytes a lingering close drops before giving up */

struct hs_conn_tls;
struct hs_conn_proxy;
struct hs__pipe;

struct hs_conn_pipe {
    struct hs_conn_sink sink; /* where payload goes; sink.write NULL discards */
    uint64_t max;             /* per-frame maximum while armed (0: the framing's) */
    uint64_t total;           /* payload bytes of the frame being streamed */
    uint64_t remaining;       /* payload bytes still to come */
    int status;               /* first sink error, or 0 */
    uint8_t armed;            /* the next frame goes to the sink */
    uint8_t active;           /* a frame is streaming now */
};

/* What few connections use, out of line so an idle connection does not carry it (bench:
 * memory per idle connection): made by the first hs_conn_pipe_next or by a PROXY listener's
 * accept, freed with the connection. */
struct hs_conn_ext {
    struct hs_conn_proxy *proxy;     /* PROXY listener state and header (conn_proxy.c), or NULL */
    struct hs_conn_pipe pipe;        /* hs_conn_pipe_next's frame */
    struct hs__pipe *tap;            /* the byte pipe reading this conn (conn_pipe.c), or NULL */
    struct hs__pipe *feed;           /* the byte pipes writing into it (a list), or NULL */
    struct hs__tls_files *tls_files; /* files queued on a TLS connection, or NULL */
};

/* A TLS connection's files being sent and the output queued behind them (conn_tls_file.c),
 * made by its first hs_conn_send_file. */
struct hs__tls_files {
    struct evbuffer *later;           /* bytes sent after the first file still queued */
    struct hs__tls_file *head, *tail; /* the files queued, each placed in later's stream */
    uint64_t taken;                   /* bytes taken off later's front so far */
    uint64_t file_bytes;              /* bytes of the queued files not yet read */
};

/* Laid out without holes, and followed in the same malloc block by its two events (see
 * hs__conn_rev); the static assertion in conn.c keeps it at 296 bytes, which with two
 * 128-byte events of libevent 2.1 fill a 560-byte chunk. */
struct hs_conn {
    /* Read or written for every message (the read callback, a raw frame, a reply written
     * through), first: they fill the struct's first three cache lines, where spread out they
     * took four of its five (bench/results/instructions.md, "fifth part"). peer_key, cold,
     * fills what would be padding. */
    struct hs_conns *set;
    unsigned flags;              /* CONN_* */
    int fd;                      /* -1 once closed */
    uint16_t refs;               /* callbacks on the stack (a nesting depth); the free waits
                                  * for 0 */
    uint8_t zero_writes;         /* flushes in a row that wrote nothing (see conn_flush) */
    struct hs_peer_key peer_key; /* counted in the set's peer table (family 0: not counted) */
    uint32_t hold; /* held for the handler (hs_conn_hold): read while in holds fewer bytes */
    struct hs_conn_tls *tls; /* TLS session (conn_tls.c), or NULL for plaintext */
    struct hs_conn_ext *ext; /* rarely used state, or NULL until needed */
    struct evbuffer *in;     /* received, not yet framed */
    struct evbuffer *out;    /* queued, not yet written */
    const struct hs_conn_handler *handler;
    void *arg;                   /* for handler callbacks */
    void *data;                  /* the handler's own per-connection data */
    struct hs_conn_tally *tally; /* the accepting listener's counters, or NULL */
    uint64_t bytes_in, bytes_out;
    /* Stall rules (struct hs_conn_limits); times are ms of the loop's cached clock. */
    long long active;   /* last read or write */
    long long rx_since; /* receive window start while a frame is in progress, or 0 */
    long long tx_since; /* send window start while output waits, or 0 */
    size_t resume;      /* framer scan state for the frame at the front of in */
    struct hs_framing framing;
    /* The rest. */
    uint64_t id; /* unique per set, from 1 */
    /* The read event and the timer are not pointed to: they live right after the struct, in
     * its own malloc block (hs__conn_rev, hs__conn_timer). */
    struct event *wev;           /* writable, added only while output is pending */
    const char *close_reason;    /* static text given to on_close */
    long long opened;            /* accepted at */
    uint64_t rx_mark;            /* bytes_in at rx_since */
    uint64_t tx_mark;            /* bytes_out at tx_since */
    long long timer_at;          /* when the timer fires, or 0 when it is not armed */
    struct hs_conn *prev, *next; /* the set's list */
    /* Peer address text: "[IPv6]:port" fits exactly (47 characters); a longer text (an IPv6
     * zone, a unix path) is cut. Sized so an idle connection costs under 1 KiB. */
    char peer[48];
};

struct hs_conns {
    struct event_base *base;
    struct hs_conn_limits limits;
    struct hs_peers *peers;   /* open connections per client address */
    long long refusal_logged; /* when a refusal was last logged (ms), so floods log 1 line/s */
    unsigned long long refusals_quiet; /* refusals not logged since */
    unsigned count;                    /* open connections */
    unsigned tls_handshakes;           /* server TLS handshakes in progress */
    size_t ev_size;                    /* event_get_struct_event_size(), read once */
    uint64_t next_id;
    struct hs_conn *head;
    /* The connection whose read callback runs now and whose bytes were counted in it, or NULL:
     * its `active` already holds this callback's time (hs__conn_touch). Forgotten when the
     * callback returns or the conn is freed (a conn made later at its address is stamped). */
    struct hs_conn *stamped;
    void (*on_empty)(struct hs_conns *set, void *arg);
    void *on_empty_arg;
};

static inline void hs__timeval_ms(struct timeval *tv, long long ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* The loop's cached clock in ms: one clock read per loop turn, not per byte. */
static inline long long hs__conns_now(const struct hs_conns *set)
{
    struct timeval tv;
    event_base_gettimeofday_cached(set->base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Output waiting to be written. The buffer and the write event exist only once something
 * had to wait: most replies go out by write-through, and an idle connection should cost
 * little memory (bench: memory per idle connection). */
static inline size_t hs__conn_out_len(const struct hs_conn *c)
{
    size_t n = c->out ? evbuffer_get_length(c->out) : 0;
    if (c->ext && c->ext->tls_files)
        n += evbuffer_get_length(c->ext->tls_files->later) + c->ext->tls_files->file_bytes;
    return n;
}

/* c's read event (readable) and its timer (the earliest stall deadline, or the close timeout
 * while CLOSING): set up with event_assign in the block struct hs_conn begins, so that an
 * idle connection costs one malloc chunk for the three instead of three chunks (bench:
 * memory per idle connection). libevent sizes them (event_get_struct_event_size), so no
 * struct event layout is compiled in. */
static inline struct event *hs__conn_rev(struct hs_conn *c)
{
    return (struct event *)(void *)(c + 1);
}

static inline struct event *hs__conn_timer(struct hs_conn *c)
{
    return (struct event *)(void *)((char *)(c + 1) + c->set->ev_size);
}

/* The pipe armed or streaming on c, or NULL when c never piped. */
static inline struct hs_conn_pipe *hs__conn_pipe(const struct hs_conn *c)
{
    return c->ext ? &c->ext->pipe : NULL;
}

/* Whether a piped frame is streaming now / whether the next frame goes to a sink. */
static inline int hs__conn_pipe_active(const struct hs_conn *c)
{
    return c->ext != NULL && c->ext->pipe.active;
}

static inline int hs__conn_pipe_armed(const struct hs_conn *c)
{
    return c->ext != NULL && c->ext->pipe.armed;
}

/* The byte pipe reading c (hs_conn_pipe_to), or NULL. */
static inline struct hs__pipe *hs__conn_tap(const struct hs_conn *c)
{
    return c->ext ? c->ext->tap : NULL;
}

/* The PROXY state of c, or NULL when c was not accepted by a PROXY listener. */
static inline struct hs_conn_proxy *hs__conn_proxy(const struct hs_conn *c)
{
    return c->ext ? c->ext->proxy : NULL;
}

/* Restarts c's idle clock. Not for the conn whose read callback runs and stamped it already
 * (set->stamped): the loop's clock does not move within a callback, so a reply written from
 * there would read the clock for the same value (~45 instructions of a 64 B echo's ~2,450). */
static inline void hs__conn_touch(struct hs_conn *c)
{
    if (c->set->stamped != c)
        c->active = hs__conns_now(c->set);
}

/* ---- conn.c ---- */

/* Frees c once it is closed and no callback holds it (refs == 0). */
void hs__conn_release(struct hs_conn *c);

/* After a callback returned: finish a close that waits for nothing, or resume reading. May
 * free c. */
void hs__conn_after_output(struct hs_conn *c);

/* Ends a hold taken with c->refs++ around handler code: frees c if that code closed it,
 * else finishes its close or writes what it queued (hs__conn_after_output). May free c. */
static inline void hs__conn_unhold(struct hs_conn *c)
{
    c->refs--;
    if (c->flags & CONN_CLOSED)
        hs__conn_release(c);
    else
        hs__conn_after_output(c);
}

/* Writes iov (n buffers, n >= 1) straight to the socket; the caller checked that c has
 * nothing pending and is plaintext. write(2) for one buffer (the kernel's single-buffer path
 * is shorter than writev's vector import), writev for more. Returns the bytes the kernel took,
 * 0 when it took none (a hard error shows again on the next read or flush, which closes
 * properly). Inline: both users, hs_conn_sendv and the byte pipes, are per-message paths. */
static inline size_t hs__conn_write_now(struct hs_conn *c, const struct iovec *iov, int n)
{
    ssize_t w;
    do
        w = n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len) : writev(c->fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w <= 0)
        return 0;
    c->bytes_out += (uint64_t)w;
    hs__conn_touch(c);
    return (size_t)w;
}

/* A lingering close is over (the timer ran out): the socket closes now. May free c. */
void hs__conn_linger_end(struct hs_conn *c);

/* Runs on_open (deferred by a server TLS handshake until it is done) and starts reading.
 * May free c. */
void hs__conn_open(struct hs_conn *c);

/* Allocates a connection for fd with the CONN_* flags given, links it into the set, starts
 * its clocks and counts it in tally (may be NULL) and in the peer table under key. Does not
 * start reading or run on_open. Returns c, or NULL with fd closed (out of memory, logged). */
struct hs_conn *hs__conn_create(struct hs_conns *set, int fd, const char *peer,
                                const struct hs_peer_key *key, const struct hs_framing *framing,
                                const struct hs_conn_handler *handler, void *arg,
                                struct hs_conn_tally *tally, unsigned flags);

/* Adds or removes the read event as the flags want it. */
void hs__conn_update_reading(struct hs_conn *c);

/* One read(2) into c->in, of up to HS_READ_SIZE after a large read, else of under 1 KiB.
 * Returns what read returned, errno set on -1. */
ssize_t hs__conn_read_some(struct hs_conn *c);

/* Frames and dispatches everything buffered (as after a read). May free c. */
void hs__conn_process_input(struct hs_conn *c);

/* Whether the next read of `want` bytes may skip c->in (core/conn_input.c): the handler has
 * on_raw, the framing is raw with a maximum of at least want, and nothing is buffered, held,
 * paused, piped or closing. */
int hs__conn_input_direct(const struct hs_conn *c, size_t want);

/* Whether a small read may be offered to on_bytes (the caller checked the handler has it
 * and c is plaintext): nothing is or could be waiting in c->in ahead of it. */
int hs__conn_input_offer(const struct hs_conn *c);

/* The bytes of such a read (len > 0, at data, valid during the call): one frame given to
 * on_raw, then what conn_process_input does after a frame. May free c. */
void hs__conn_process_raw(struct hs_conn *c, const unsigned char *data, size_t len);

/* The peer shut down its side (core/conn_input.c): delivers what is left, then closes after
 * the flush. The caller holds a reference (refs) and releases it after. */
void hs__conn_on_eof(struct hs_conn *c);

/* Adds (on != 0) or removes the write event, whatever output is pending (the TLS handshake
 * uses it while it owns the events). Returns 0 or -ENOMEM. */
int hs__conn_want_write(struct hs_conn *c, int on);

/* ---- conn_tls.c ---- */

/* Gives c a TLS session of ctx (accepting for a server context, connecting with SNI/name
 * `name` for a client one) and starts the handshake clock. Returns 0 or -ENOMEM. */
int hs__conn_tls_attach(struct hs_conn *c, struct hs_tls_ctx *ctx, const char *name);

/* One step of the handshake, when the socket is readable or writable. May free c. */
void hs__conn_tls_handshake(struct hs_conn *c);

/* Like conn_read_some for an encrypted connection: decrypted bytes appended to c->in.
 * Returns bytes (> 0), 0 at the end of the stream (close_notify, or the peer's FIN), or -1
 * with errno (EAGAIN: nothing yet; EPROTO: a TLS error, logged at debug; others from the
 * socket). */
ssize_t hs__conn_tls_read(struct hs_conn *c);

/* Like evbuffer_write for an encrypted connection: encrypts and writes from the front of
 * c->out, draining what went, after topping c->out up from queued files and what follows
 * them (hs__conn_tls_feed). Returns plaintext bytes (> 0) or -1 with errno (ENODATA: a file
 * ended early). */
int hs__conn_tls_write(struct hs_conn *c);

/* Whether decrypted input (or an error still to report) waits inside the session, which
 * no readable event will announce. */
int hs__conn_tls_has_pending(const struct hs_conn *c);

/* When the handshake must be done (ms of hs__conns_now), or 0. */
long long hs__conn_tls_deadline(const struct hs_conn *c);

/* The handshake ran out of time: counted, logged at debug, closed. */
void hs__conn_tls_timeout(struct hs_conn *c);

/* Ends the session as the socket closes: a close_notify unless the connection is being
 * aborted or the session failed; frees it. */
void hs__conn_tls_close(struct hs_conn *c);

/* ---- conn_tls_file.c ---- */

/* hs_conn_send_file on a TLS connection: queues len bytes of seg (over fd from its offset 0)
 * from offset, to be read with pread as the output drains. c->out exists. Returns 0 or
 * -ENOMEM. */
int hs__conn_tls_send_file(struct hs_conn *c, struct evbuffer_file_segment *seg, int fd,
                           uint64_t offset, uint64_t len);

/* Where output sent now must go: behind a file still queued, or NULL for c->out. */
static inline struct evbuffer *hs__conn_tls_later(const struct hs_conn *c)
{
    struct hs__tls_files *f = c->ext ? c->ext->tls_files : NULL;
    return f && (f->head || evbuffer_get_length(f->later) > 0) ? f->later : NULL;
}

/* For a connection that has queued files (c->ext->tls_files): moves queued output into
 * c->out, reading files as it goes, until c->out holds a few records' worth or nothing is
 * queued. Returns 0, or -ENODATA when a file ended before the
 * bytes queued from it (truncated under the response: logged) or another negated errno of
 * pread. */
int hs__conn_tls_feed(struct hs_conn *c);

/* Drops what is queued (an abort) and frees it all (the connection's release). */
void hs__conn_tls_files_free(struct hs_conn *c);

/* Made on first need: the state few connections use. NULL when memory runs out. */
struct hs_conn_ext *hs__conn_ext(struct hs_conn *c);

/* ---- conn_proxy.c ---- */

/* Reads what is there of the PROXY header; once it is complete, admits the connection and
 * goes on to the TLS handshake or on_open. May free c. */
void hs__conn_proxy_read(struct hs_conn *c);

/* When the header must be read by (ms of hs__conns_now), or 0. */
long long hs__conn_proxy_deadline(const struct hs_conn *c);

/* The header did not come in time: counted, logged at debug, closed. */
void hs__conn_proxy_timeout(struct hs_conn *c);

/* Frees the PROXY state as the connection goes. */
void hs__conn_proxy_free(struct hs_conn *c);

/* ---- conn_pipe.c ---- */

/* c is piped: moves its input to the pipe's destination instead of framing it. May free c. */
void hs__conn_pipe_input(struct hs_conn *c);

/* A piped c reached end of stream: moves what is left and ends the pipe (status 0). The
 * caller holds c (refs). */
void hs__conn_pipe_eof(struct hs_conn *c);

/* Pipes write into c (c->ext->feed) and its output is at the low mark: their sources read
 * again. Changes only flags and events (it runs inside c's flush). */
void hs__conn_pipe_drained(struct hs_conn *c);

/* c is closing (conn_finish, c held): its pipes, either way, end and are told. */
void hs__conn_pipe_closed(struct hs_conn *c);

/* ---- conn_set.c ---- */

/* The admission rule behind hs_conns_admit and hs_conn_new: 1 to refuse (logged), 0 to
 * admit. */
int hs__conns_refuse(struct hs_conns *set, const struct hs_peer_key *key, const char *peer);

/* The per-address half of that rule alone: 1 to refuse (logged), 0 to admit. */
int hs__conns_refuse_peer(struct hs_conns *set, const struct hs_peer_key *key, const char *peer);

/* ---- conn_timer.c ---- */

/* Makes the timer fire at `at` (ms of hs__conns_now) unless it fires no later already. */
void hs__conn_schedule(struct hs_conn *c, long long at);

/* A new receive window starts now. */
void hs__conn_rx_start(struct hs_conn *c);

/* After input was framed (frames: how many completed): starts, keeps or ends the receive
 * window. */
void hs__conn_rx_track(struct hs_conn *c, int frames);

/* After a flush with `pending` bytes left: starts or ends the send window. */
void hs__conn_tx_track(struct hs_conn *c, size_t pending);

/* The per-connection timer: the close timeout while closing, else the stall rules. */
void hs__conn_timer_cb(evutil_socket_t fd, short what, void *arg);

#endif
