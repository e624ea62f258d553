/* recvmmsg is Linux's: GNU. */
#define _GNU_SOURCE

#include "core/udp.h"
#include "core/hs.h"
#include "core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#define UDP_BATCH 64          /* datagrams read per readiness event, for fairness */
#define UDP_MMSG 8            /* datagrams taken by one recvmmsg (each a full-size slot) */
#define UDP_MAX_PAYLOAD 65507 /* largest IPv4 UDP payload */
#define UDP_PEERS_MIN 16      /* entries of a peer table when the first peer comes */
#define UDP_PEERS_MAX 1024    /* peers a socket remembers; past that it starts over */
#define UDP_PEER_TEXT 64      /* longest cached text: any IPv4 or IPv6 peer, NUL included */

/* A peer address in both forms. Formatting a source address (inet_ntop, snprintf) and parsing
 * the text back for the reply cost more than the rest of a datagram's trip through Lua, and a
 * socket mostly talks to the same peers: each socket keeps the peers it saw, found by the
 * binary address on receive and by the text on send. */
struct udp_peer {
    struct sockaddr_in6 ss;   /* an IPv4 or IPv6 peer (Unix peers are not cached) */
    socklen_t sl;             /* bytes of ss used */
    size_t text_len;          /* strlen(text) */
    unsigned i;               /* its own index + 1 */
    char text[UDP_PEER_TEXT]; /* hs_addr_format of ss */
};

/* A socket's peers: entries in arrival order, in blocks of UDP_PEERS_MIN that never move (the
 * text handed to the callback stays where it is, which is what lua_pushstring's cache of
 * recent C strings keys on), and two open-addressed indexes into them (linear probing, at
 * most half full, so a lookup is one or two probes). A direct-mapped cache of 128 entries
 * made two of 50 peers collide in most runs, and each such pair formatted and parsed every
 * datagram (the udp64 bench's counts jumped between two levels from run to run). The table
 * grows with the peers seen, up to UDP_PEERS_MAX; a socket that hears from more starts over,
 * which costs what no cache would. */
struct udp_peers {
    struct udp_peer *block[UDP_PEERS_MAX / UDP_PEERS_MIN]; /* entry i: block[i / MIN][i % MIN] */
    uint16_t *by_addr; /* 2 * cap slots: entry index + 1, by a hash of the sockaddr; 0: empty */
    uint16_t *by_text; /* 2 * cap slots: entry index + 1, by a hash of the text; 0: empty */
    unsigned n, cap;   /* entries used and indexed for (a power of two, 0 before the first) */
    unsigned last;     /* entry index + 1 of the last datagram's source (the likely reply) */
};

struct hs_udp {
    int fd;
    int family;            /* of the bound socket */
    struct event *ev;      /* a listener's persistent read event, or an outbound one-shot */
    hs_udp_datagram_cb cb; /* a listener's: each datagram; NULL for an outbound socket */
    void *arg;
    hs_udp_ready_cb ready_cb; /* an outbound socket's waiter (hs_udp_wait), or NULL */
    void *ready_arg;
    int in_cb;              /* inside cb: a free waits until it returns */
    int freeing;            /* hs_udp_free was asked for inside cb */
    int owns_path;          /* unixgram: we bound path and remove it at free */
    hs_udp_free_cb free_cb; /* told when u is freed (the Lua box), or NULL */
    void *free_arg;
    int tag;                     /* hs_udp_set_tag: the binding's (the Lua box's registry ref) */
    char url[HS_ADDR_TEXT + 16]; /* bound address as a URL (outbound: the address sent to) */
    char path[HS_ADDR_MAX_PATH]; /* unixgram: the bound socket's file, or "" */
    char name[64];
    unsigned long long in, out;             /* datagrams received and sent */
    unsigned long long bytes_in, bytes_out; /* their payload bytes */
    unsigned long long peer_formats;        /* source addresses formatted (cache misses) */
    struct udp_peers peers;                 /* the peers seen or sent to */
    char *more; /* a listener's slots 1 .. UDP_MMSG - 1 (slot 0 is buf), or NULL: one at a time */
    char buf[HS_MAX_DATAGRAM + 1]; /* receive buffer; +1 detects truncation */
};

/* FNV-1a. */
static unsigned peer_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h ^ (h >> 16);
}

/* The hash of an address's first key bytes: an IPv4 peer's 8 (family, port, address) in one
 * multiplication, which FNV took ~100 instructions a datagram over. */
HS_HOT static unsigned addr_hash(const void *ss, size_t key)
{
    if (key != sizeof(uint64_t))
        return peer_hash(ss, key);
    uint64_t k;
    memcpy(&k, ss, sizeof k);
    return (unsigned)((k * 0x9e3779b97f4a7c15u) >> 32);
}

/* The bytes of a sockaddr that name an IP peer (family, port, address); 0 for a Unix peer,
 * which is not cached (its text is its path, no formatting to save). */
static size_t peer_key_len(const struct sockaddr_storage *ss, socklen_t sl)
{
    if (ss->ss_family == AF_INET && sl >= sizeof(struct sockaddr_in))
        return offsetof(struct sockaddr_in, sin_zero);
    if (ss->ss_family == AF_INET6 && sl >= sizeof(struct sockaddr_in6))
        return sizeof(struct sockaddr_in6);
    return 0;
}

static struct udp_peer *peer_at(struct udp_peers *p, unsigned i)
{
    return &p->block[i / UDP_PEERS_MIN][i % UDP_PEERS_MIN];
}

/* Do a's and b's first key bytes match? An IPv4 peer's 8 in one compare: a call of memcmp per
 * probe cost more than the rest of the lookup (~35 instructions of ~70 a datagram, udp64). */
HS_HOT static int addr_equal(const void *a, const void *b, size_t key)
{
    if (key != sizeof(uint64_t))
        return memcmp(a, b, key) == 0;
    uint64_t x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x == y;
}

/* The entry whose address is ss (key bytes compared), or NULL. */
HS_HOT static struct udp_peer *peers_by_addr(struct udp_peers *p, const struct sockaddr_storage *ss,
                                             socklen_t sl, size_t key)
{
    if (p->cap == 0)
        return NULL;
    unsigned mask = 2 * p->cap - 1;
    for (unsigned h = addr_hash(ss, key) & mask; p->by_addr[h] != 0; h = (h + 1) & mask) {
        struct udp_peer *e = peer_at(p, p->by_addr[h] - 1u);
        if (e->sl == sl && addr_equal(&e->ss, ss, key))
            return e;
    }
    return NULL;
}

/* The entry whose text is text, or NULL: the last datagram's source first, without hashing. */
static struct udp_peer *peers_by_text(struct udp_peers *p, const char *text, size_t len)
{
    if (p->last != 0) {
        struct udp_peer *e = peer_at(p, p->last - 1);
        if (e->text_len == len && memcmp(e->text, text, len) == 0)
            return e;
    }
    if (p->cap == 0)
        return NULL;
    unsigned mask = 2 * p->cap - 1;
    for (unsigned h = peer_hash(text, len) & mask; p->by_text[h] != 0; h = (h + 1) & mask) {
        struct udp_peer *e = peer_at(p, p->by_text[h] - 1u);
        if (e->text_len == len && memcmp(e->text, text, len) == 0)
            return e;
    }
    return NULL;
}

/* Puts entry i (0-based) into both indexes. */
static void peers_index(struct udp_peers *p, unsigned i)
{
    struct udp_peer *e = peer_at(p, i);
    unsigned mask = 2 * p->cap - 1;
    unsigned h = addr_hash(&e->ss, peer_key_len((struct sockaddr_storage *)&e->ss, e->sl)) & mask;
    while (p->by_addr[h] != 0)
        h = (h + 1) & mask;
    p->by_addr[h] = (uint16_t)(i + 1);
    for (h = peer_hash(e->text, e->text_len) & mask; p->by_text[h] != 0; h = (h + 1) & mask)
        ;
    p->by_text[h] = (uint16_t)(i + 1);
}

/* Makes room for one more entry: grows the table, or empties it at UDP_PEERS_MAX (the blocks
 * are kept and reused). Returns 0, or -ENOMEM (the table stays as it was; the peer is just not
 * remembered). */
static int peers_room(struct udp_peers *p)
{
    if (p->n % UDP_PEERS_MIN == 0 && p->n < UDP_PEERS_MAX &&
        p->block[p->n / UDP_PEERS_MIN] == NULL) {
        p->block[p->n / UDP_PEERS_MIN] = malloc(UDP_PEERS_MIN * sizeof(struct udp_peer));
        if (p->block[p->n / UDP_PEERS_MIN] == NULL)
            return -ENOMEM;
    }
    if (p->n < p->cap)
        return 0;
    if (p->cap == UDP_PEERS_MAX) {
        p->n = 0;
        p->last = 0;
        memset(p->by_addr, 0, 4 * p->cap * sizeof *p->by_addr);
        return 0;
    }
    unsigned cap = p->cap ? 2 * p->cap : UDP_PEERS_MIN;
    uint16_t *ix = calloc(4 * cap, sizeof *ix);
    if (ix == NULL)
        return -ENOMEM;
    free(p->by_addr);
    p->by_addr = ix;
    p->by_text = ix + 2 * cap;
    p->cap = cap;
    for (unsigned i = 0; i < p->n; i++)
        peers_index(p, i);
    return 0;
}

/* Remembers the IP peer ss as text (hs_addr_format's, len bytes), found in neither index
 * before. Returns the entry, or NULL when it is not remembered (a text too long, no memory). */
static struct udp_peer *peers_add(struct udp_peers *p, const struct sockaddr_storage *ss,
                                  socklen_t sl, const char *text, size_t len)
{
    if (sl > sizeof(struct sockaddr_in6) || len >= UDP_PEER_TEXT || peers_room(p) != 0)
        return NULL;
    struct udp_peer *e = peer_at(p, p->n);
    memcpy(&e->ss, ss, sl);
    e->sl = sl;
    memcpy(e->text, text, len + 1);
    e->text_len = len;
    e->i = ++p->n;
    peers_index(p, p->n - 1);
    return e;
}

static void peers_free(struct udp_peers *p)
{
    for (unsigned i = 0; i < UDP_PEERS_MAX / UDP_PEERS_MIN; i++)
        free(p->block[i]);
    free(p->by_addr);
}

/* The text of the source address ss: from the table when it was seen before (then it stays
 * at that address until the table starts over), else formatted into buf (HS_ADDR_TEXT bytes).
 */
static const char *peer_text(struct hs_udp *u, const struct sockaddr_storage *ss, socklen_t sl,
                             char *buf)
{
    size_t key = peer_key_len(ss, sl);
    struct udp_peer *e = key ? peers_by_addr(&u->peers, ss, sl, key) : NULL;
    if (e == NULL) {
        u->peer_formats++;
        hs_addr_format((const struct sockaddr *)ss, sl, buf, HS_ADDR_TEXT);
        if (key == 0 || (e = peers_add(&u->peers, ss, sl, buf, strlen(buf))) == NULL) {
            u->peers.last = 0;
            return buf;
        }
    }
    /* The reply most likely goes to this peer. */
    u->peers.last = e->i;
    return e->text;
}

/* Receives up to UDP_BATCH queued datagrams, UDP_MMSG per system call, and hands each to the
 * callback. A call that returns fewer than it asked for found the queue empty: the loop tells
 * us when more come, so no call is spent on EAGAIN. */
HS_HOT static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_udp *u = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    struct mmsghdr mm[UDP_MMSG];
    struct iovec iov[UDP_MMSG];
    struct sockaddr_storage ss[UDP_MMSG];
    unsigned want = u->more ? UDP_MMSG : 1;
    for (unsigned i = 0; i < want; i++) {
        iov[i].iov_base = i == 0 ? u->buf : u->more + (i - 1) * sizeof u->buf;
        iov[i].iov_len = sizeof u->buf;
        memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    for (int done = 0; done < UDP_BATCH;) {
        for (unsigned i = 0; i < want; i++) {
            mm[i].msg_hdr.msg_name = &ss[i];
            mm[i].msg_hdr.msg_namelen = sizeof ss[i];
        }
        int n = recvmmsg(u->fd, mm, want, 0, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                hs_log(HS_LOG_WARN, "%s recvmmsg: %s", u->url, strerror(errno));
            return;
        }
        for (int i = 0; i < n; i++) {
            size_t len = mm[i].msg_len;
            u->in++;
            u->bytes_in += len;
            char buf[HS_ADDR_TEXT];
            const char *peer = peer_text(u, &ss[i], mm[i].msg_hdr.msg_namelen, buf);
            u->in_cb = 1;
            u->cb(u, iov[i].iov_base, len, peer, u->arg);
            u->in_cb = 0;
            if (u->freeing) {
                /* The datagrams taken after this one go with the socket. */
                hs_udp_free(u);
                return;
            }
        }
        if ((unsigned)n < want)
            return;
        done += n;
    }
}

/* An outbound socket became readable: its one waiter hears of it (and may free u). */
static void udp_ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_udp *u = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    hs_udp_ready_cb cb = u->ready_cb;
    u->ready_cb = NULL;
    if (cb)
        cb(u, u->ready_arg);
}

/* Binds fd to a Unix path, replacing a stale socket file as unix: listeners do. */
static int bind_unix_path(int fd, const char *path)
{
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    snprintf(su.sun_path, sizeof su.sun_path, "%s", path);
    int r = hs_addr_clear_unix_path(path);
    if (r < 0)
        return r;
    return bind(fd, (struct sockaddr *)&su, sizeof su) == 0 ? 0 : -errno;
}

int hs_udp_new(struct event_base *base, const struct hs_addr *addr, const char *name,
               hs_udp_datagram_cb cb, void *arg, struct hs_udp **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int r;
    if (addr->scheme == HS_ADDR_UNIXGRAM) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if ((r = bind_unix_path(fd, addr->path)) < 0) {
            close(fd);
            return r;
        }
        r = hs_udp_adopt_fd(base, fd, name, cb, arg, out);
        if (r == 0)
            (*out)->owns_path = 1;
        return r;
    }
    if (addr->scheme != HS_ADDR_UDP)
        return -EINVAL;
    if ((r = hs_addr_resolve(addr, &ss, &sl)) < 0)
        return r;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int zero = 0;
    if (ss.ss_family == AF_INET6 && addr->host[0] == '\0')
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if ((r = hs_addr_prepare_bind(fd, SOCK_DGRAM, &ss, sl)) != 0) {
        close(fd);
        return r;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return hs_udp_adopt_fd(base, fd, name, cb, arg, out);
}

int hs_udp_adopt_fd(struct event_base *base, int fd, const char *name, hs_udp_datagram_cb cb,
                    void *arg, struct hs_udp **out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    struct hs_udp *u = calloc(1, sizeof *u);
    if (u == NULL) {
        close(fd);
        return -ENOMEM;
    }
    u->fd = fd;
    u->family = ss.ss_family;
    u->cb = cb;
    u->arg = arg;
    snprintf(u->name, sizeof u->name, "%s", name ? name : "");
    u->ev = event_new(base, fd, EV_READ | EV_PERSIST, udp_read_cb, u);
    if (u->ev == NULL) {
        close(fd);
        free(u);
        return -ENOMEM;
    }
    /* malloc usually maps a block this large, so a page becomes memory only once a datagram
     * reaches it (64 B datagrams touch one page a slot). Without it the socket reads one
     * datagram a call. */
    u->more = malloc((UDP_MMSG - 1) * sizeof u->buf);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    if (bound.ss_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)&bound;
        if (blen > offsetof(struct sockaddr_un, sun_path) && su->sun_path[0] != '\0')
            snprintf(u->path, sizeof u->path, "%.*s",
                     (int)(blen - offsetof(struct sockaddr_un, sun_path)), su->sun_path);
    }
    hs_addr_url(ss.ss_family == AF_UNIX ? HS_ADDR_UNIXGRAM : HS_ADDR_UDP, (struct sockaddr *)&bound,
                blen, u->url, sizeof u->url);
    event_add(u->ev, NULL);
    *out = u;
    return 0;
}

int hs_udp_open(struct event_base *base, const struct sockaddr *to, socklen_t tolen,
                struct hs_udp **out)
{
    int fd = socket(to->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (to->sa_family == AF_UNIX) {
        /* Autobind: the kernel gives the socket a unique abstract name ("@" and five hex
         * digits), so a unixgram server can answer it, and no file is left behind. */
        sa_family_t fam = AF_UNIX;
        if (bind(fd, (struct sockaddr *)&fam, sizeof fam) != 0)
            r = -errno;
    }
    if (r == 0 && connect(fd, to, tolen) != 0)
        r = -errno;
    struct hs_udp *u = r == 0 ? calloc(1, sizeof *u) : NULL;
    if (r == 0 && u == NULL)
        r = -ENOMEM;
    if (r == 0 && (u->ev = event_new(base, fd, EV_READ, udp_ready_cb, u)) == NULL) {
        free(u);
        r = -ENOMEM;
    }
    if (r != 0) {
        close(fd);
        return r;
    }
    u->fd = fd;
    u->family = to->sa_family;
    hs_addr_url(to->sa_family == AF_UNIX ? HS_ADDR_UNIXGRAM : HS_ADDR_UDP, to, tolen, u->url,
                sizeof u->url);
    *out = u;
    return 0;
}

int hs_udp_send(struct hs_udp *u, const void *data, size_t len)
{
    if (len > UDP_MAX_PAYLOAD)
        return HS_ETOOBIG;
    for (;;) {
        ssize_t n = send(u->fd, data, len, 0);
        if (n >= 0) {
            u->out++;
            u->bytes_out += (unsigned long long)n;
            return 0;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int hs_udp_recv(struct hs_udp *u, const char **data)
{
    for (;;) {
        ssize_t n = recv(u->fd, u->buf, sizeof u->buf - 1, 0);
        if (n >= 0) {
            u->in++;
            u->bytes_in += (unsigned long long)n;
            *data = u->buf;
            return (int)n;
        }
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int hs_udp_wait(struct hs_udp *u, hs_udp_ready_cb cb, void *arg)
{
    u->ready_cb = cb;
    u->ready_arg = arg;
    return event_add(u->ev, NULL) == 0 ? 0 : -ENOMEM;
}

void hs_udp_unwait(struct hs_udp *u)
{
    u->ready_cb = NULL;
    event_del(u->ev);
}

void hs_udp_stop(struct hs_udp *u)
{
    event_del(u->ev);
}

void hs_udp_start(struct hs_udp *u)
{
    event_add(u->ev, NULL);
}

int hs_udp_fd(const struct hs_udp *u)
{
    return u->fd;
}

void hs_udp_free(struct hs_udp *u)
{
    if (u == NULL)
        return;
    /* IMPORTANT: whoever borrows u hears of the free first, so nothing reaches it after. */
    if (u->free_cb)
        u->free_cb(u, u->free_arg);
    u->free_cb = NULL;
    if (u->in_cb) {
        /* udp_read_cb is below us on the stack: it frees u when the callback returns. */
        u->freeing = 1;
        event_del(u->ev);
        return;
    }
    event_free(u->ev);
    close(u->fd);
    /* The file goes with the socket, as for unix: stream listeners. */
    if (u->owns_path)
        unlink(u->path);
    peers_free(&u->peers);
    free(u->more);
    free(u);
}

HS_HOT int hs_udp_send_to(struct hs_udp *u, const char *peer, size_t peer_len, const void *data,
                          size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (len > UDP_MAX_PAYLOAD)
        return HS_ETOOBIG;
    struct udp_peer *e = peers_by_text(&u->peers, peer, peer_len);
    if (e) {
        memcpy(&ss, &e->ss, e->sl);
        sl = e->sl;
    } else {
        if (hs_addr_parse_peer(peer, peer_len, &ss, &sl) != 0)
            return HS_EBADSPEC;
        /* Only a peer whose text is exactly what hs_addr_format writes is remembered, so an
         * entry found by text always holds the address that text names. */
        char text[HS_ADDR_TEXT];
        size_t key = peer_key_len(&ss, sl);
        if (key != 0 && peer_len < UDP_PEER_TEXT &&
            peers_by_addr(&u->peers, &ss, sl, key) == NULL) {
            hs_addr_format((const struct sockaddr *)&ss, sl, text, sizeof text);
            if (strlen(text) == peer_len && memcmp(text, peer, peer_len) == 0)
                peers_add(&u->peers, &ss, sl, text, peer_len);
        }
    }
    if (u->family == AF_INET6 && ss.ss_family == AF_INET) {
        /* A dual-stack socket reaches IPv4 peers through v4-mapped addresses. */
        struct sockaddr_in v4;
        memcpy(&v4, &ss, sizeof v4);
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        memset(s6, 0, sizeof *s6);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = v4.sin_port;
        s6->sin6_addr.s6_addr[10] = 0xff;
        s6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
        sl = sizeof *s6;
    }
    for (;;) {
        ssize_t n = sendto(u->fd, data, len, 0, (struct sockaddr *)&ss, sl);
        if (n >= 0) {
            u->out++;
            u->bytes_out += (unsigned long long)n;
            return 0;
        }
        if (errno != EINTR)
            return -errno;
    }
}

void hs_udp_own_path(struct hs_udp *u, int own)
{
    u->owns_path = u->path[0] != '\0' && own;
}

const char *hs_udp_url(const struct hs_udp *u)
{
    return u->url;
}

void hs_udp_on_free(struct hs_udp *u, hs_udp_free_cb cb, void *arg)
{
    u->free_cb = cb;
    u->free_arg = arg;
}

const char *hs_udp_name(const struct hs_udp *u)
{
    return u->name;
}

void hs_udp_counts(const struct hs_udp *u, struct hs_udp_counts *out)
{
    out->datagrams_in = u->in;
    out->datagrams_out = u->out;
    out->bytes_in = u->bytes_in;
    out->bytes_out = u->bytes_out;
    out->peer_formats = u->peer_formats;
}

void hs_udp_set_tag(struct hs_udp *u, int tag)
{
    u->tag = tag;
}

int hs_udp_tag(const struct hs_udp *u)
{
    return u->tag;
}
