/* The PROXY protocol on a listener: before anything else, each connection of a PROXY
 * listener reads the header a load balancer sends (core/proxy.c parses it), under its own
 * deadline. Like a TLS server handshake, this phase owns the read event and runs before
 * on_open, so the handler, the per-address limit and every log line see the client the
 * header names instead of the balancer.
 *
 * How much is read matters. On a plaintext connection the header and the client's first
 * bytes may come in one segment: an ordinary read takes both, the header is drained and the
 * rest is framed once the connection opens. Under TLS the bytes after the header belong to
 * OpenSSL, which reads the socket itself, so there the header is peeked (MSG_PEEK) and only
 * its own bytes are taken off the socket. */
#include "core/addr.h"
#include "core/conn.h"
#include "core/conn_internal.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/proxy.h"
#include "core/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_HEADER_MAX (HS_PROXY_V2_MIN + HS_PROXY_V2_MAX_LEN) /* the longest header */

struct hs_conn_proxy {
    hs_conn_admit_cb admit; /* asked once the header is read, or NULL */
    void *admit_arg;        /* identifies the listener (hs_conns_abort_admitting) */
    struct hs_tls_ctx *tls; /* referenced until the handshake after the header starts */
    long long deadline;     /* ms of hs__conns_now; 0 once the header is read */
    /* The socket's peer (the balancer) as accept gave it: a balancer's health check may reset
     * the connection right after its LOCAL header, and getpeername fails on a reset socket. */
    struct sockaddr_storage balancer;
    socklen_t balancer_len;   /* 0 when accept gave none */
    struct hs_proxy_header h; /* once read: h.tlvs points into tlvs[] below */
    unsigned char tlvs[];     /* the header's TLVs, h.tlvs_len bytes */
};

int hs_conn_new_proxy(struct hs_conns *set, int fd, const struct sockaddr *sa, socklen_t salen,
                      const struct hs_framing *framing, const struct hs_conn_handler *handler,
                      void *arg, struct hs_conn_tally *tally, struct hs_tls_ctx *tls,
                      hs_conn_admit_cb admit, void *admit_arg)
{
    /* The socket's peer is the balancer: only the connection cap applies before the header;
     * the per-address limit waits for the client's address (hs_conn_admit_peer). */
    struct hs_peer_key none;
    memset(&none, 0, sizeof none);
    if (hs__conns_refuse(set, &none, "a PROXY client")) {
        close(fd);
        return HS_ETOOBIG;
    }
    struct hs_conn_proxy *p = calloc(1, sizeof *p);
    struct hs_conn_ext *x = calloc(1, sizeof *x);
    if (p == NULL || x == NULL) {
        free(p);
        free(x);
        close(fd);
        return -ENOMEM;
    }
    struct hs_conn *c = hs__conn_create(set, fd, "", &none, framing, handler, arg, tally,
                                        CONN_NOT_OPEN | CONN_PROXY_WAIT);
    if (c == NULL) {
        free(p);
        free(x);
        return -ENOMEM;
    }
    x->proxy = p;
    c->ext = x;
    p->admit = admit;
    p->admit_arg = admit_arg;
    if (sa && salen > 0 && (size_t)salen <= sizeof p->balancer) {
        memcpy(&p->balancer, sa, salen);
        p->balancer_len = salen;
    }
    p->tls = tls ? hs_tls_ctx_ref(tls) : NULL;
    unsigned limit = set->limits.proxy_timeout_ms;
    p->deadline = c->opened + (limit ? limit : (unsigned)HS_DEFAULT_PROXY_TIMEOUT_MS);
    hs__conn_schedule(c, p->deadline);
    hs__conn_update_reading(c);
    return 0;
}

int hs_conn_admit_peer(struct hs_conn *c, const struct sockaddr *sa, socklen_t len)
{
    struct hs_peer_key key;
    if (hs_peers_key(sa, len, &key) != 0)
        memset(&key, 0, sizeof key);
    if (hs__conns_refuse_peer(c->set, &key, c->peer))
        return HS_ETOOBIG;
    if (hs_peers_add(c->set->peers, &key) != 0)
        return -ENOMEM;
    hs_peers_remove(c->set->peers, &c->peer_key);
    c->peer_key = key;
    return 0;
}

const struct hs_proxy_header *hs_conn_proxy(const struct hs_conn *c)
{
    return hs__conn_proxy(c) && !(c->flags & CONN_PROXY_WAIT) ? &c->ext->proxy->h : NULL;
}

int hs_conn_proxy_build(const struct hs_conn *c, unsigned char *out, size_t cap)
{
    if (c->flags & (CONN_CLOSING | CONN_CLOSED))
        return HS_ECLOSED;
    const struct hs_proxy_header *h = hs_conn_proxy(c);
    if (h && !h->local)
        return hs_proxy_build_v2((const struct sockaddr *)&h->src, h->src_len,
                                 (const struct sockaddr *)&h->dst, h->dst_len, out, cap);
    struct sockaddr_storage src, dst;
    socklen_t sl = sizeof src, dl = sizeof dst;
    if (getpeername(c->fd, (struct sockaddr *)&src, &sl) != 0 ||
        getsockname(c->fd, (struct sockaddr *)&dst, &dl) != 0)
        return -errno;
    return hs_proxy_build_v2((const struct sockaddr *)&src, sl, (const struct sockaddr *)&dst, dl,
                             out, cap);
}

void hs_conns_abort_admitting(struct hs_conns *set, void *arg)
{
    struct hs_conn *c = set->head, *next;
    for (; c; c = next) {
        next = c->next; /* an abort may free c */
        if ((c->flags & CONN_PROXY_WAIT) && c->ext->proxy->admit_arg == arg)
            hs_conn_abort(c, "shutdown");
    }
}

long long hs__conn_proxy_deadline(const struct hs_conn *c)
{
    return hs__conn_proxy(c) ? c->ext->proxy->deadline : 0;
}

void hs__conn_proxy_free(struct hs_conn *c)
{
    hs_tls_ctx_unref(c->ext->proxy->tls);
    free(c->ext->proxy);
    c->ext->proxy = NULL;
}

/* The balancer as the peer text, which a PROXY connection leaves empty until its header names
 * the client: formatting an address costs as much as reading the header, so it is done only
 * when a log line or a LOCAL header needs it. */
static void proxy_socket_peer(struct hs_conn *c)
{
    const struct hs_conn_proxy *p = c->ext->proxy;
    if (c->peer[0] != '\0')
        return;
    if (p->balancer_len > 0)
        hs_addr_format((const struct sockaddr *)&p->balancer, p->balancer_len, c->peer,
                       sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "?");
}

/* No usable header: counted and closed. Logged at debug only, since a scanner probing the
 * port would otherwise write a line per connection. May free c. */
static void proxy_fail(struct hs_conn *c, const char *why)
{
    if (c->tally)
        c->tally->proxy_failures++;
    if (hs__log_level <= HS_LOG_DEBUG)
        proxy_socket_peer(c);
    hs_log(HS_LOG_DEBUG, "conn#%llu %s no PROXY header: %s; closing", (unsigned long long)c->id,
           c->peer, why);
    /* CONN_NOT_OPEN: the handler never hears of it. */
    hs_conn_close(c, "bad proxy header");
}

void hs__conn_proxy_timeout(struct hs_conn *c)
{
    proxy_fail(c, "not complete in time");
}

/* The header is read (its TLVs copied into the PROXY state): admit the client it names, then go on
 * to the TLS handshake or on_open. May free c. */
static void proxy_admit(struct hs_conn *c)
{
    struct hs_conn_proxy *p = c->ext->proxy;
    const struct sockaddr *sa = (const struct sockaddr *)&p->h.src;
    socklen_t len = p->h.src_len;
    c->flags &= ~CONN_PROXY_WAIT;
    p->deadline = 0;
    if (p->h.local) {
        /* A health check of the balancer's own: the socket's address is the truth. */
        sa = (const struct sockaddr *)&p->balancer;
        len = p->balancer_len;
        proxy_socket_peer(c);
    } else {
        hs_addr_format(sa, len, c->peer, sizeof c->peer);
    }
    c->refs++;
    int refuse = p->admit && p->admit(c, sa, len, p->admit_arg) != 0;
    c->refs--;
    if (c->flags & CONN_CLOSED) {
        hs__conn_release(c);
        return;
    }
    if (refuse) {
        /* Counted by the callee (refused or limited), not as a failure of the header. */
        hs_conn_close(c, "closed");
        return;
    }
    if (p->tls) {
        unsigned cap = c->set->limits.tls_max_handshakes;
        struct hs_tls_ctx *tls = p->tls;
        p->tls = NULL;
        int r =
            cap && c->set->tls_handshakes >= cap ? HS_ETOOBIG : hs__conn_tls_attach(c, tls, NULL);
        hs_tls_ctx_unref(tls);
        if (r != 0) {
            hs_log(HS_LOG_DEBUG, "conn#%llu %s refused: %s", (unsigned long long)c->id, c->peer,
                   r == HS_ETOOBIG ? "too many TLS handshakes in progress" : "out of memory");
            hs_conn_abort(c, r == HS_ETOOBIG ? "closed" : "out of memory");
            return;
        }
        /* The ClientHello may be in the socket already: the read event, still armed,
         * reports it to the handshake. */
        return;
    }
    /* The client's first bytes may have come with the header: frame them once open. */
    c->bytes_in = evbuffer_get_length(c->in);
    c->refs++;
    hs__conn_open(c);
    c->refs--;
    if (c->flags & CONN_CLOSED)
        hs__conn_release(c);
    else if (evbuffer_get_length(c->in) > 0)
        hs__conn_process_input(c);
    else
        hs__conn_after_output(c);
}

/* Keeps the parsed header: TLVs copied out of the read buffer, which is about to go. Returns
 * 0 or -ENOMEM. */
static int proxy_keep(struct hs_conn *c, const struct hs_proxy_header *h)
{
    struct hs_conn_proxy *p = c->ext->proxy;
    if (h->tlvs_len > 0) {
        p = realloc(c->ext->proxy, sizeof *p + h->tlvs_len);
        if (p == NULL)
            return -ENOMEM;
        c->ext->proxy = p;
    }
    p->h = *h;
    p->h.why = NULL;
    if (h->tlvs_len) {
        memcpy(p->tlvs, h->tlvs, h->tlvs_len);
        p->h.tlvs = p->tlvs;
    } else {
        p->h.tlvs = NULL;
    }
    return 0;
}

/* Plaintext: an ordinary read into c->in; the header is drained from it and what follows
 * stays for the handler. Returns the header's length, 0 when more is needed, or -1 when c
 * was closed. */
static int proxy_read_plain(struct hs_conn *c)
{
    ssize_t n = hs__conn_read_some(c);
    if (n == 0) {
        proxy_fail(c, "the peer closed before sending it");
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        proxy_fail(c, strerror(errno));
        return -1;
    }
    size_t len = evbuffer_get_length(c->in);
    if (len > PROXY_HEADER_MAX)
        len = PROXY_HEADER_MAX; /* the parser decides within this many bytes */
    const unsigned char *buf = evbuffer_pullup(c->in, (ev_ssize_t)len);
    struct hs_proxy_header h;
    int r = buf ? hs_proxy_parse(buf, len, &h) : -ENOMEM;
    if (r == HS_AGAIN)
        return 0;
    if (r < 0 || proxy_keep(c, &h) != 0) {
        proxy_fail(c, r == HS_EPROTO ? h.why : "out of memory");
        return -1;
    }
    evbuffer_drain(c->in, (size_t)r);
    return r;
}

/* Before TLS: peek, and take off the socket only bytes of the header; a prefix read so far
 * waits in c->in. Returns as proxy_read_plain. */
static int proxy_read_peek(struct hs_conn *c)
{
    unsigned char buf[PROXY_HEADER_MAX];
    size_t have = evbuffer_get_length(c->in); /* < PROXY_HEADER_MAX: the parser bounds it */
    evbuffer_copyout(c->in, buf, have);
    ssize_t n;
    do
        n = recv(c->fd, buf + have, sizeof buf - have, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        proxy_fail(c, "the peer closed before sending it");
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        proxy_fail(c, strerror(errno));
        return -1;
    }
    struct hs_proxy_header h;
    int r = hs_proxy_parse(buf, have + (size_t)n, &h);
    if (r == HS_EPROTO) {
        proxy_fail(c, h.why);
        return -1;
    }
    /* Every byte peeked belongs to the header when it is still incomplete (a proper prefix
     * cannot hold bytes past it); when it is complete, only its remainder does. */
    size_t take = r == HS_AGAIN ? (size_t)n : (size_t)r - have;
    ssize_t got;
    do
        got = recv(c->fd, buf + have, take, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)take) {
        proxy_fail(c, got < 0 ? strerror(errno) : "short read of peeked bytes");
        return -1;
    }
    if (r == HS_AGAIN) {
        if (evbuffer_add(c->in, buf + have, take) != 0) {
            proxy_fail(c, "out of memory");
            return -1;
        }
        return 0;
    }
    if (proxy_keep(c, &h) != 0) {
        proxy_fail(c, "out of memory");
        return -1;
    }
    evbuffer_drain(c->in, have);
    return r;
}

void hs__conn_proxy_read(struct hs_conn *c)
{
    int r = c->ext->proxy->tls ? proxy_read_peek(c) : proxy_read_plain(c);
    if (r > 0) {
        hs__conn_touch(c);
        proxy_admit(c);
    }
}
