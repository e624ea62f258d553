/* Files sent on a TLS connection (hs_conn_send_file). Every byte must pass through SSL_write,
 * so the kernel cannot send the file itself (sendfile), and libevent, given a file segment for
 * such an output, maps the file into memory: reading a mapped page that a truncation in place
 * took away raises SIGBUS and kills the process, and every other client with it. So a TLS
 * connection reads its files itself, with pread, a few records ahead of what the socket takes
 * (as nginx does with its output buffers), and a file that shrank ends only the connection
 * sending it.
 *
 * Output sent after a file must come after it, so it waits too (`later`), with each file
 * placed in its stream: the feed moves later's bytes into c->out up to the next file, then
 * reads that file into c->out, then goes on. A file is kept open by its libevent segment, held
 * in a buffer of its own that is never read (libevent would map it), only freed when the file
 * has been read. */
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

/* The feed tops c->out up to this much plaintext (two 16 KiB records), starting when less
 * than one record is left (hs__conn_tls_write): one pread serves one or two SSL_write calls,
 * and a connection sending a file holds at most this in memory. */
#define TLS_FILE_AHEAD (32 * 1024)

/* A file queued: it goes out once later's stream reaches `at`. */
struct hs__tls_file {
    struct hs__tls_file *next;
    uint64_t at;           /* position in later's stream, counted as hs__tls_files.taken */
    uint64_t offset, left; /* the next byte to read and how many are still to be read */
    int fd;                /* the segment's descriptor, open while hold holds it */
    struct evbuffer *hold; /* the segment, added with sendfile's flag so it is not mapped */
};

static void file_free(struct hs__tls_file *t)
{
    evbuffer_free(t->hold); /* the segment's last user lets the descriptor go */
    free(t);
}

int hs__conn_tls_send_file(struct hs_conn *c, struct evbuffer_file_segment *seg, int fd,
                           uint64_t offset, uint64_t len)
{
    if (len == 0)
        return 0;
    struct hs_conn_ext *x = hs__conn_ext(c);
    if (x == NULL)
        return -ENOMEM;
    struct hs__tls_files *f = x->tls_files;
    if (f == NULL) {
        f = calloc(1, sizeof *f);
        if (f == NULL || (f->later = evbuffer_new()) == NULL) {
            free(f);
            return -ENOMEM;
        }
        x->tls_files = f;
    }
    struct hs__tls_file *t = calloc(1, sizeof *t);
    if (t == NULL || (t->hold = evbuffer_new()) == NULL) {
        free(t);
        return -ENOMEM;
    }
    /* The flag says the buffer drains by sendfile: libevent then keeps the segment as a
     * reference instead of mapping the file. Nothing ever reads hold. */
    evbuffer_set_flags(t->hold, EVBUFFER_FLAG_DRAINS_TO_FD);
    if (evbuffer_add_file_segment(t->hold, seg, (ev_off_t)offset, (ev_off_t)len) != 0) {
        file_free(t);
        return -ENOMEM;
    }
    t->at = f->taken + evbuffer_get_length(f->later);
    t->offset = offset;
    t->left = len;
    t->fd = fd;
    if (f->tail)
        f->tail->next = t;
    else
        f->head = t;
    f->tail = t;
    f->file_bytes += len;
    return 0;
}

/* Reads the next piece of the first file into c->out. Returns 0 or a negated errno
 * (-ENODATA: the file ended early). */
static int feed_file(struct hs_conn *c, struct hs__tls_files *f, struct hs__tls_file *t)
{
    /* c->out never holds more than TLS_FILE_AHEAD: the bound on a download's memory. */
    size_t room = TLS_FILE_AHEAD - evbuffer_get_length(c->out);
    size_t want = t->left < room ? (size_t)t->left : room;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)want, &v, 1) < 1)
        return -ENOMEM;
    ssize_t n;
    do
        n = pread(t->fd, v.iov_base, want, (off_t)t->offset);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int e = n < 0 ? errno : ENODATA;
        hs_log(HS_LOG_WARN,
               "conn#%llu %s: a file being sent %s at byte %llu, %llu bytes short (%s)",
               (unsigned long long)c->id, c->peer, n < 0 ? "could not be read" : "ended",
               (unsigned long long)t->offset, (unsigned long long)t->left,
               n < 0 ? strerror(e) : "truncated in place? replace served files by rename");
        return -e;
    }
    v.iov_len = (size_t)n;
    if (evbuffer_commit_space(c->out, &v, 1) != 0)
        return -ENOMEM;
    t->offset += (uint64_t)n;
    t->left -= (uint64_t)n;
    f->file_bytes -= (uint64_t)n;
    if (t->left == 0) {
        f->head = t->next;
        if (f->head == NULL)
            f->tail = NULL;
        file_free(t);
    }
    return 0;
}

int hs__conn_tls_feed(struct hs_conn *c)
{
    struct hs__tls_files *f = c->ext->tls_files;
    while (evbuffer_get_length(c->out) < TLS_FILE_AHEAD) {
        struct hs__tls_file *t = f->head;
        if (t && t->at == f->taken) {
            int r = feed_file(c, f, t);
            if (r != 0)
                return r;
            continue;
        }
        /* later's bytes up to the next file, or all of them: moved, not copied, as far as
         * whole chains go. */
        uint64_t plain = t ? t->at - f->taken : evbuffer_get_length(f->later);
        if (plain > INT_MAX) /* what evbuffer_remove_buffer can report */
            plain = INT_MAX;
        if (plain == 0)
            break;
        int n = evbuffer_remove_buffer(f->later, c->out, (size_t)plain);
        if (n <= 0)
            return -ENOMEM;
        f->taken += (uint64_t)n;
    }
    return 0;
}

void hs__conn_tls_files_free(struct hs_conn *c)
{
    struct hs__tls_files *f = c->ext ? c->ext->tls_files : NULL;
    if (f == NULL)
        return;
    while (f->head) {
        struct hs__tls_file *t = f->head;
        f->head = t->next;
        file_free(t);
    }
    evbuffer_free(f->later);
    free(f);
    c->ext->tls_files = NULL;
}
