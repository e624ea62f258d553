/* Byte pipes between connections (conn:pipe): every byte read from a source connection is
 * appended to a destination connection's output in C, as HAProxy's TCP mode and nginx's stream
 * proxy do, so a proxy costs no script call per read. When the destination has nothing
 * pending, what was read goes out by one write(2) from the input block itself; otherwise (or
 * for what the socket did not take) the input buffer's chains move to the output buffer
 * (evbuffer_add_buffer) and are written from there: never a copy. Flow control: while the
 * destination's unsent output is over limits.out_high the source is not read (its kernel
 * buffers fill and slow its sender), until that output falls to limits.out_low; a pipe thus
 * holds at most the high mark plus one read.
 *
 * Not to be confused with hs_conn_pipe_next (core/conn.h), which streams the payload of one
 * frame to a sink. */
#ifndef HS_CONN_PIPE_H
#define HS_CONN_PIPE_H

#include <stdint.h>

struct hs_conn;

/* A pipe ended: status 0 when src reached end of stream (the peer shut down its side; dst is
 * left open), HS_ECLOSED when dst closed or failed or src was closed by us, -ECONNRESET when
 * src was reset, -ENOMEM when memory ran out. bytes is how many bytes it moved. Called once,
 * from the event that ended it; src may be closed by then (it stays valid during the call).
 * The callee may close either connection or start another pipe. */
typedef void (*hs_conn_pipe_cb)(struct hs_conn *src, int status, uint64_t bytes, void *arg);

/* Starts moving every byte read from src (those already in its input buffer first) to dst's
 * output. src is not framed meanwhile: no frame reaches its handler (on_frame, on_input).
 * cb(arg) runs when the pipe ends (see hs_conn_pipe_cb), unless it is stopped first with
 * hs_conn_pipe_stop. Bytes already buffered move at once when no callback of src runs, else
 * on the next turn of the loop (a running on_frame still has its frame in the buffer). Returns
 * 0; HS_ECLOSED when either connection is closing; -EINVAL when src == dst or src is already
 * piping; -ENOMEM. */
int hs_conn_pipe_to(struct hs_conn *src, struct hs_conn *dst, hs_conn_pipe_cb cb, void *arg);

/* Ends src's pipe without calling its callback (a timeout, a cancelled wait); src reads and
 * frames as before. Returns the bytes it moved, or 0 when src is not piping. */
uint64_t hs_conn_pipe_stop(struct hs_conn *src);

/* Whether src is piping (hs_conn_pipe_to, not yet ended). */
int hs_conn_piping(const struct hs_conn *src);

/* Milliseconds (of the loop's cached clock) since src's pipe started or last moved a byte;
 * -1 when src is not piping. For a timeout that means "no data for so long". */
long long hs_conn_pipe_idle_ms(const struct hs_conn *src);

#endif
