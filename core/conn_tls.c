/* TLS as a transport of a connection: an OpenSSL session straight on the socket
 * (SSL_read_ex/SSL_write_ex), driven by the connection's own read and write events. While
 * the handshake runs it owns both events (WANT_READ keeps the read event, WANT_WRITE arms
 * the write event); afterwards conn.c's read path calls hs__conn_tls_read where it would
 * call readv, and its flush calls hs__conn_tls_write where it would call evbuffer_write, so
 * framing, HTTP and every handler see plaintext and work unchanged. */
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_WRITE_CHUNK (16 * 1024) /* plaintext per SSL_write_ex: one full record */
#define TLS_TRIM_PEAK 256           /* handshakes at once after which memory is trimmed */
#define TLS_SHORT_READ (8 * 1024)   /* decrypted bytes below which a read found the socket dry */

/* The most server handshakes in progress at once since the last trim (one loop per
 * process: no lock needed). */
static unsigned tls_peak;

struct hs_conn_tls {
    SSL *ssl;
    struct hs_tls_ctx *ctx; /* referenced: the SNI callback reads it during the handshake */
    long long deadline;     /* the handshake must be done by then (ms), 0 once it is */
    hs_conn_tls_cb done;    /* client handshakes: told how it ended, or NULL */
    void *done_arg;
    int rd_err;       /* an end or error found after some data was read: reported next */
    uint8_t counted;  /* counted in the set's tls_handshakes */
    uint8_t failed;   /* a fatal error happened: no close_notify may follow */
    uint8_t shut;     /* our close_notify went out (hs_conn_shutdown) */
    uint8_t eof_seen; /* the peer ended the stream (close_notify or FIN) */
};

static void tls_uncount(struct hs_conn *c)
{
    if (!c->tls->counted)
        return;
    c->tls->counted = 0;
    if (--c->set->tls_handshakes > 0 || tls_peak < TLS_TRIM_PEAK)
        return;
    /* A burst of handshakes (a flood of half-done ones, say) is over: give the allocator's
     * free pages back, or the process keeps the burst's peak (~40 KiB a session) forever.
     * Rare by construction: only after hundreds were in progress at once. */
    tls_peak = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

int hs__conn_tls_attach(struct hs_conn *c, struct hs_tls_ctx *ctx, const char *name)
{
    struct hs_conn_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->ssl = hs_tls_ssl_new(ctx, c->fd, name);
    if (t->ssl == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->ctx = hs_tls_ctx_ref(ctx);
    c->tls = t;
    c->flags |= CONN_TLS_HANDSHAKE;
    if (hs_tls_ctx_is_server(ctx)) {
        t->counted = 1;
        if (++c->set->tls_handshakes > tls_peak)
            tls_peak = c->set->tls_handshakes;
    }
    unsigned limit = c->set->limits.tls_handshake_timeout_ms;
    t->deadline =
        hs__conns_now(c->set) + (limit ? limit : (unsigned)HS_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS);
    hs__conn_schedule(c, t->deadline);
    return 0;
}

/* Why the session failed, as one line: the certificate check's verdict for a client, else
 * OpenSSL's error queue, else what the socket said. */
static void tls_reason(struct hs_conn *c, int e, char *buf, size_t n)
{
    SSL *ssl = c->tls->ssl;
    long v = SSL_get_verify_result(ssl);
    if (!SSL_is_server(ssl) && v != X509_V_OK) {
        snprintf(buf, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    char why[HS_TLS_ERR];
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "peer closed the connection");
    else
        hs_tls_last_error(why, sizeof why);
    snprintf(buf, n, "tls handshake failed: %s", why);
}

static void tls_handshake_failed(struct hs_conn *c, const char *why)
{
    struct hs_conn_tls *t = c->tls;
    t->failed = 1;
    tls_uncount(c);
    if (c->tally)
        c->tally->tls_failures++;
    /* Debug only: scanners and broken clients must not flood the log. */
    hs_log(HS_LOG_DEBUG, "conn#%llu %s %s", (unsigned long long)c->id, c->peer, why);
    c->refs++;
    if (t->done)
        t->done(c, why, t->done_arg);
    /* The session cannot carry anything now; the handshake flag makes the close immediate. */
    hs_conn_close(c, "tls handshake failed");
    c->refs--;
    hs__conn_release(c);
}

static void tls_handshake_done(struct hs_conn *c)
{
    struct hs_conn_tls *t = c->tls;
    c->flags &= ~CONN_TLS_HANDSHAKE;
    t->deadline = 0;
    tls_uncount(c);
    if (hs__log_level <= HS_LOG_DEBUG) {
        const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
        hs_log(HS_LOG_DEBUG, "conn#%llu %s tls %s %s sni=%s", (unsigned long long)c->id, c->peer,
               SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), sni ? sni : "-");
    }
    /* The client's first request often came with its Finished and sits decrypted-to-be in
     * the session's buffer already: no readable event would announce it. */
    if (c->flags & CONN_READING)
        event_active(hs__conn_rev(c), EV_READ, 0);
    if (c->flags & CONN_NOT_OPEN) {
        hs__conn_open(c); /* may free c */
        return;
    }
    c->refs++;
    if (t->done)
        t->done(c, NULL, t->done_arg);
    hs__conn_unhold(c); /* output queued during the handshake goes now */
}

void hs__conn_tls_handshake(struct hs_conn *c)
{
    struct hs_conn_tls *t = c->tls;
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        tls_handshake_done(c);
        return;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (hs__conn_want_write(c, e == SSL_ERROR_WANT_WRITE) == 0)
            return;
        errno = ENOMEM;
        e = SSL_ERROR_SYSCALL;
    }
    char why[HS_TLS_ERR + 64];
    tls_reason(c, e, why, sizeof why);
    tls_handshake_failed(c, why);
}

long long hs__conn_tls_deadline(const struct hs_conn *c)
{
    return c->tls ? c->tls->deadline : 0;
}

void hs__conn_tls_timeout(struct hs_conn *c)
{
    char why[128];
    snprintf(why, sizeof why, "tls handshake failed: not done within %lld ms",
             c->tls->deadline - c->opened);
    tls_handshake_failed(c, why);
}

/* SSL_get_error needs the thread's error queue empty before the call it explains. It nearly
 * always is (a failure is read and cleared where it is handled), while ERR_clear_error wipes
 * every slot of the queue whatever it holds: looking first saved ~1,800 instructions per
 * keep-alive HTTPS request (two reads and a write; bench/results/instructions.md). */
static void tls_errors_empty(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Maps a failed SSL_read_ex/SSL_write_ex to the socket-style result conn.c expects: 0 for
 * the end of the stream (reads only), -1 with errno. */
static int tls_io_error(struct hs_conn *c, int e, const char *op)
{
    struct hs_conn_tls *t = c->tls;
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        /* After the handshake neither direction needs the other (no renegotiation), so the
         * event already armed for this direction is the one to wait for. */
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        t->eof_seen = 1;
        return 0;
    case SSL_ERROR_SYSCALL:
        t->failed = 1;
        if (ERR_peek_error() == 0 && errno == 0) {
            t->eof_seen = 1;
            return 0;
        }
        if (errno == 0)
            errno = EPIPE;
        ERR_clear_error();
        return -1;
    default: {
        t->failed = 1;
        int lib_reason = ERR_GET_REASON(ERR_peek_error());
        char why[HS_TLS_ERR];
        hs_tls_last_error(why, sizeof why);
        /* A FIN without close_notify: the peer ended the stream without saying so (a
         * truncation attack, or just a careless client); it ends the stream all the same. */
        if (lib_reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            hs_log(HS_LOG_DEBUG, "conn#%llu %s tls stream ended without close_notify",
                   (unsigned long long)c->id, c->peer);
            t->eof_seen = 1;
            return 0;
        }
        hs_log(HS_LOG_DEBUG, "conn#%llu %s tls %s failed: %s", (unsigned long long)c->id, c->peer,
               op, why);
        errno = EPROTO;
        return -1;
    }
    }
}

ssize_t hs__conn_tls_read(struct hs_conn *c)
{
    struct hs_conn_tls *t = c->tls;
    if (t->rd_err) {
        int e = t->rd_err;
        t->rd_err = 0;
        if (e == SSL_ERROR_ZERO_RETURN || t->eof_seen)
            return 0;
        errno = e == SSL_ERROR_SSL ? EPROTO : EPIPE;
        return -1;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, HS_READ_SIZE, &v, 1) < 1) {
        errno = ENOMEM;
        return -1;
    }
    /* Records are decrypted one at a time: fill the space as a plaintext read would. */
    size_t got = 0;
    int e = SSL_ERROR_NONE;
    while (got < v.iov_len) {
        size_t n = 0;
        tls_errors_empty();
        errno = 0;
        int r = SSL_read_ex(t->ssl, (char *)v.iov_base + got, v.iov_len - got, &n);
        if (r != 1) {
            e = SSL_get_error(t->ssl, r);
            break;
        }
        got += n;
        /* With read-ahead one socket read fills OpenSSL's buffer (16 KiB and more) when the
         * socket has that much: when it is used up and brought less than TLS_SHORT_READ, the
         * socket had no more, and asking again would be a read(2) answering EAGAIN (one per
         * keep-alive request). Should more have arrived meanwhile, the read event (level-
         * triggered) fires again. */
        if (got < TLS_SHORT_READ && !SSL_has_pending(t->ssl))
            break;
    }
    if (got == 0)
        return tls_io_error(c, e, "read");
    v.iov_len = got;
    evbuffer_commit_space(c->in, &v, 1);
    if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        /* Deliver the data now and the end (or error) on the next call. */
        int saved = errno;
        if (tls_io_error(c, e, "read") == 0)
            t->rd_err = SSL_ERROR_ZERO_RETURN;
        else
            t->rd_err = errno == EPROTO ? SSL_ERROR_SSL : SSL_ERROR_SYSCALL;
        errno = saved;
    }
    return (ssize_t)got;
}

int hs__conn_tls_write(struct hs_conn *c)
{
    struct hs_conn_tls *t = c->tls;
    /* Files and what follows them come into c->out as it empties (conn_tls_file.c). */
    if (c->ext && c->ext->tls_files && evbuffer_get_length(c->out) < TLS_WRITE_CHUNK) {
        int r = hs__conn_tls_feed(c);
        if (r != 0) {
            errno = -r;
            return -1;
        }
    }
    size_t len = evbuffer_get_length(c->out);
    size_t want = len < TLS_WRITE_CHUNK ? len : TLS_WRITE_CHUNK;
    /* Whole records even when the output is many small pieces; a no-op when the first piece
     * is large enough already. */
    const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)want);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = 0;
    tls_errors_empty();
    errno = 0;
    int r = SSL_write_ex(t->ssl, p, want, &n);
    if (r == 1) {
        evbuffer_drain(c->out, n);
        return (int)n;
    }
    int e = SSL_get_error(t->ssl, r);
    if (tls_io_error(c, e, "write") == 0)
        errno = EPIPE;
    return -1;
}

int hs__conn_tls_has_pending(const struct hs_conn *c)
{
    const struct hs_conn_tls *t = c->tls;
    return t && !(c->flags & CONN_TLS_HANDSHAKE) && (t->rd_err || SSL_has_pending(t->ssl));
}

void hs__conn_tls_close(struct hs_conn *c)
{
    struct hs_conn_tls *t = c->tls;
    tls_uncount(c);
    /* One try: a close_notify that does not fit in the socket buffer is not worth a wait. */
    if (!(c->flags & (CONN_TLS_HANDSHAKE | CONN_ABORTING)) && !t->failed && !t->shut) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    SSL_free(t->ssl);
    hs_tls_ctx_unref(t->ctx);
    free(t);
    c->tls = NULL;
}

int hs_conn_tls_start(struct hs_conn *c, struct hs_tls_ctx *ctx, const char *name,
                      hs_conn_tls_cb cb, void *arg)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (hs_tls_ctx_is_server(ctx))
        return -EINVAL;
    if (c->tls || hs__conn_out_len(c) > 0)
        return -EBUSY;
    int r = hs__conn_tls_attach(c, ctx, name);
    if (r != 0)
        return r;
    c->tls->done = cb;
    c->tls->done_arg = arg;
    if (c->out)
        evbuffer_clear_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD);
    /* The ClientHello goes out when the socket is writable: at once, one loop turn later, and
     * never from inside the caller's callback. */
    return hs__conn_want_write(c, 1);
}

int hs_conn_tls_info(const struct hs_conn *c, struct hs_conn_tls_info *out)
{
    const struct hs_conn_tls *t = c->tls;
    if (t == NULL || (c->flags & (CONN_TLS_HANDSHAKE | CONN_CLOSED)))
        return -1;
    out->version = SSL_get_version(t->ssl);
    out->cipher = SSL_get_cipher_name(t->ssl);
    out->sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
    if (alen >= sizeof out->alpn)
        alen = 0;
    if (alen)
        memcpy(out->alpn, alpn, alen);
    out->alpn[alen] = '\0';
    return 0;
}

void hs_conn_shutdown(struct hs_conn *c)
{
    if (c->flags & CONN_CLOSED)
        return;
    struct hs_conn_tls *t = c->tls;
    if (t && !(c->flags & CONN_TLS_HANDSHAKE) && !t->failed && !t->shut) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        t->shut = 1;
    }
    shutdown(c->fd, SHUT_WR);
}

int hs_conn_shut_write(struct hs_conn *c)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    if (c->flags & CONN_WR_SHUT)
        return 0;
    c->flags |= CONN_WR_SHUT;
    /* With output pending, conn_flush shuts down once it has written the last byte (the write
     * event is armed meanwhile, or the flush at the end of the running callback comes). */
    if (hs__conn_out_len(c) == 0 && !(c->flags & CONN_TLS_HANDSHAKE)) {
        c->flags |= CONN_WR_DONE;
        hs_conn_shutdown(c);
    }
    return 0;
}
