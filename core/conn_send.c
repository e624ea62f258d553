/* What goes out on a connection: the send calls. A send with nothing pending is written
 * through at once (hs__conn_write_now); what the socket does not take waits in the output
 * buffer, made on first need, which conn.c flushes when the socket is writable. */
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

/* Where output goes now: the output buffer, created on first need, or on a TLS connection
 * sending a file the queue behind that file (conn_tls_file.c). NULL when memory runs out. */
static struct evbuffer *conn_out(struct hs_conn *c)
{
    if (c->out == NULL) {
        c->out = evbuffer_new();
        /* It drains to the socket: file segments (send_file) go out by sendfile(2) instead
         * of mmap + write + munmap. Not under TLS, where every byte must be encrypted. */
        if (c->out == NULL)
            return NULL;
        if (!c->tls)
            evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD);
    }
    struct evbuffer *later = c->tls ? hs__conn_tls_later(c) : NULL;
    return later ? later : c->out;
}

int hs_conn_send(struct hs_conn *c, const void *data, size_t len)
{
    if (c->flags & CONN_NO_SEND)
        return HS_ECLOSED;
    if (hs__conn_out_len(c) + len > c->set->limits.out_hard)
        return HS_EFULL;
    struct evbuffer *out = conn_out(c);
    if (out == NULL || evbuffer_add(out, data, len) != 0)
        return -ENOMEM;
    hs__conn_after_output(c);
    return 0;
}

HS_HOT int hs_conn_sendv(struct hs_conn *c, const struct iovec *iov, int n)
{
    if (c->flags & CONN_NO_SEND)
        return HS_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (hs__conn_out_len(c) + total > c->set->limits.out_hard)
        return HS_EFULL;
    size_t done = hs__conn_out_len(c) == 0 && total > 0 && n <= 64 && !c->tls
                      ? hs__conn_write_now(c, iov, n)
                      : 0;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (done >= len) {
            done -= len;
            continue;
        }
        struct evbuffer *out = conn_out(c);
        if (out == NULL || evbuffer_add(out, (const char *)iov[i].iov_base + done, len - done) != 0)
            return -ENOMEM;
        done = 0;
    }
    if (hs__conn_out_len(c) > 0)
        hs__conn_after_output(c);
    return 0;
}

/* A head longer than this (a rare response with huge headers) takes the plain path rather
 * than be made contiguous for one send. */
#define CONN_MORE_MAX (16 * 1024)

int hs_conn_send_before_file(struct hs_conn *c, struct evbuffer *buf)
{
    if (c->flags & CONN_NO_SEND)
        return HS_ECLOSED;
    size_t len = evbuffer_get_length(buf);
    if (len > 0 && len <= CONN_MORE_MAX && hs__conn_out_len(c) == 0 && !c->tls) {
        const unsigned char *p = evbuffer_pullup(buf, (ev_ssize_t)len);
        ssize_t w = -1;
        if (p != NULL) {
            do
                w = send(c->fd, p, len, MSG_MORE | MSG_NOSIGNAL);
            while (w < 0 && errno == EINTR);
        }
        if (w > 0) {
            c->bytes_out += (uint64_t)w;
            hs__conn_touch(c);
            evbuffer_drain(buf, (size_t)w);
        }
        /* Anything not taken (a full socket, an error the next flush reports) is queued. */
    }
    return evbuffer_get_length(buf) > 0 ? hs_conn_send_buffer(c, buf) : 0;
}

int hs_conn_send_file(struct hs_conn *c, struct evbuffer_file_segment *seg, int fd, uint64_t offset,
                      uint64_t len)
{
    if (c->flags & CONN_NO_SEND)
        return HS_ECLOSED;
    /* Files do not count against the hard output limit: they cost no memory (under TLS, a
     * few records' worth while they are read). */
    struct evbuffer *out = conn_out(c); /* under TLS: makes c->out, which the feed fills */
    if (out == NULL)
        return -ENOMEM;
    if (c->tls) {
        if (hs__conn_tls_send_file(c, seg, fd, offset, len) != 0)
            return -ENOMEM;
    } else if (evbuffer_add_file_segment(out, seg, (ev_off_t)offset, (ev_off_t)len) != 0) {
        return -ENOMEM;
    }
    hs__conn_after_output(c);
    return 0;
}

int hs_conn_send_buffer(struct hs_conn *c, struct evbuffer *buf)
{
    if (c->flags & CONN_NO_SEND)
        return HS_ECLOSED;
    if (hs__conn_out_len(c) + evbuffer_get_length(buf) > c->set->limits.out_hard)
        return HS_EFULL;
    struct evbuffer *out = conn_out(c);
    if (out == NULL || evbuffer_add_buffer(out, buf) != 0)
        return -ENOMEM;
    hs__conn_after_output(c);
    return 0;
}
