/* hs_echo_raw: the "practical ceiling" echo server for benchmarks, TCP and UDP.
 *
 * Same event loop as hotsock (a libevent event_base) but no bufferevents: every connection has
 * a plain read event and a write event, reads are read(2) calls of up to 64 KiB into one shared
 * buffer, and the bytes are written straight back with write(2). Only what the socket would
 * not take is copied into a per-connection output evbuffer, and only then is the write event
 * armed. Flow control: above ECHO_OUT_HIGH unsent bytes the read event is removed, and it is
 * added back once output drains to ECHO_OUT_LOW.
 *
 * libevent 2.1's evbuffer_read() reads at most 4096 bytes per call whatever it is asked for
 * (EVBUFFER_MAX_READ; the limit became configurable only after 2.1), which is why reads here
 * are our own.
 *
 * UDP: one socket; per readiness up to ECHO_UDP_BATCH datagrams, taken ECHO_UDP_MMSG at a time
 * by recvmmsg (as hotsock's UDP listeners take them) and each sent back by sendto; a datagram
 * the kernel will not take back right now is dropped, as UDP allows.
 *
 * Usage: hs_echo_raw [--listen HOST:PORT] [--udp HOST:PORT]   (at least one)
 * Prints "listening tcp://HOST:PORT" / "listening udp://HOST:PORT" on stderr with the bound
 * ports; SIGINT/SIGTERM exit 0. */
/* recvmmsg is Linux's: GNU. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "tests/loadgen/addr.h"

#define ECHO_OUT_HIGH (1024 * 1024) /* stop reading above this many unsent bytes */
#define ECHO_OUT_LOW (256 * 1024)   /* resume reading once output drains to this */
#define ECHO_READ_SIZE (64 * 1024)  /* bytes asked of one read(2) / recvfrom(2) */
#define ECHO_UDP_BATCH 64           /* datagrams handled per readiness before yielding */
#define ECHO_UDP_MMSG 8             /* datagrams taken by one recvmmsg, as hotsock's UDP_MMSG */
#define ECHO_BACKLOG 4096           /* listen(2) backlog; the kernel caps it at somaxconn */

struct echo_conn {
    evutil_socket_t fd;            /* owned; closed in conn_free */
    struct event *rev;             /* persistent EV_READ, pending unless paused or closing */
    struct event *wev;             /* persistent EV_WRITE, pending only while out is non-empty */
    struct evbuffer *out;          /* bytes the socket did not take yet */
    struct echo_conn *prev, *next; /* list of live connections, freed at exit */
    int reading;                   /* rev is pending */
    int writing;                   /* wev is pending */
    int closing;                   /* peer sent EOF: free once out is flushed */
};

static struct echo_conn *conns;            /* head of the live connection list */
static unsigned char rbuf[ECHO_READ_SIZE]; /* shared by all reads; the loop is single-threaded */

static void conn_free(struct echo_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->rev);
    event_free(c->wev);
    evbuffer_free(c->out);
    evutil_closesocket(c->fd);
    free(c);
}

static int retriable(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Arms or disarms the events to match the amount of pending output. */
static void conn_update(struct echo_conn *c)
{
    size_t pending = evbuffer_get_length(c->out);

    if (pending > 0 && !c->writing) {
        event_add(c->wev, NULL);
        c->writing = 1;
    } else if (pending == 0 && c->writing) {
        event_del(c->wev);
        c->writing = 0;
    }
    if (c->reading && (c->closing || pending > ECHO_OUT_HIGH)) {
        event_del(c->rev);
        c->reading = 0;
    } else if (!c->reading && !c->closing && pending <= ECHO_OUT_LOW) {
        event_add(c->rev, NULL);
        c->reading = 1;
    }
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct echo_conn *c = arg;
    ssize_t n, w = 0;

    (void)what;
    n = read(fd, rbuf, sizeof(rbuf));
    if (n < 0) {
        if (!retriable(errno))
            conn_free(c);
        return;
    }
    if (n == 0) {
        if (evbuffer_get_length(c->out) == 0) {
            conn_free(c);
            return;
        }
        c->closing = 1;
        conn_update(c);
        return;
    }
    /* Write-through when nothing is queued, so the common case copies nothing. */
    if (evbuffer_get_length(c->out) == 0) {
        w = write(fd, rbuf, (size_t)n);
        if (w < 0) {
            if (!retriable(errno)) {
                conn_free(c);
                return;
            }
            w = 0;
        }
    }
    if (w < n && evbuffer_add(c->out, rbuf + w, (size_t)(n - w)) != 0) {
        conn_free(c);
        return;
    }
    conn_update(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct echo_conn *c = arg;

    (void)what;
    if (evbuffer_write(c->out, fd) < 0 && !retriable(errno)) {
        conn_free(c);
        return;
    }
    if (c->closing && evbuffer_get_length(c->out) == 0) {
        conn_free(c);
        return;
    }
    conn_update(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct event_base *base = arg;
    struct echo_conn *c;
    int one = 1;

    (void)lis;
    (void)sa;
    (void)salen;
    c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->fd = fd;
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    c->out = evbuffer_new();
    if (!c->rev || !c->wev || !c->out) {
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        if (c->out)
            evbuffer_free(c->out);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    /* The listener hands over a non-blocking socket already. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    event_add(c->rev, NULL);
    c->reading = 1;
}

static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    (void)lis;
    (void)arg;
    fprintf(stderr, "hs_echo_raw: accept: %s\n", strerror(errno));
}

/* Receive slots for recvmmsg: as many datagrams per call as hotsock's UDP listeners take
 * (core/udp.c UDP_MMSG), each slot a full-size datagram. */
static unsigned char udp_slot[ECHO_UDP_MMSG][ECHO_READ_SIZE];

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    struct mmsghdr mm[ECHO_UDP_MMSG];
    struct iovec iov[ECHO_UDP_MMSG];
    struct sockaddr_storage peer[ECHO_UDP_MMSG];
    for (int done = 0; done < ECHO_UDP_BATCH;) {
        for (int i = 0; i < ECHO_UDP_MMSG; i++) {
            iov[i] = (struct iovec){.iov_base = udp_slot[i], .iov_len = sizeof udp_slot[i]};
            mm[i].msg_hdr = (struct msghdr){.msg_name = &peer[i],
                                            .msg_namelen = sizeof peer[i],
                                            .msg_iov = &iov[i],
                                            .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, mm, ECHO_UDP_MMSG, 0, NULL);
        if (n <= 0)
            return; /* EAGAIN, or a reported ICMP error: nothing more to do now */
        /* A failed sendto (EAGAIN, ENOBUFS) is a lost datagram, which UDP permits. */
        for (int i = 0; i < n; i++)
            (void)sendto(fd, udp_slot[i], mm[i].msg_len, 0, (struct sockaddr *)&peer[i],
                         mm[i].msg_hdr.msg_namelen);
        done += n;
        if (n < ECHO_UDP_MMSG)
            return; /* the queue is empty */
    }
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

/* Returns a bound, non-blocking, close-on-exec UDP socket, or -1 with errno set. */
static evutil_socket_t udp_bind(const struct sockaddr *sa, socklen_t salen)
{
    evutil_socket_t fd = socket(sa->sa_family, SOCK_DGRAM, 0);
    int bufsize = 4 * 1024 * 1024;

    if (fd < 0)
        return -1;
    if (evutil_make_socket_nonblocking(fd) != 0 || evutil_make_socket_closeonexec(fd) != 0 ||
        bind(fd, sa, salen) != 0) {
        int err = errno;
        evutil_closesocket(fd);
        errno = err;
        return -1;
    }
    /* Bigger kernel buffers absorb bursts from many senders; failure only costs drops. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: hs_echo_raw [--listen HOST:PORT] [--udp HOST:PORT]\n");
    exit(2);
}

static void parse_addr(const char *s, int socktype, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *err;

    if (bench_addr_parse(s, socktype, ss, len, &err) != 0) {
        fprintf(stderr, "hs_echo_raw: bad address %s: %s\n", s, err);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    const char *tcp_at = NULL, *udp_at = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct event_base *base;
    struct evconnlistener *lis = NULL;
    evutil_socket_t ufd = -1;
    struct event *uev = NULL, *sigint, *sigterm;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            tcp_at = argv[++i];
        else if (strcmp(argv[i], "--udp") == 0 && i + 1 < argc)
            udp_at = argv[++i];
        else
            usage();
    }
    if (!tcp_at && !udp_at)
        usage();
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "hs_echo_raw: event_base_new failed\n");
        return 1;
    }
    if (tcp_at) {
        parse_addr(tcp_at, SOCK_STREAM, &ss, &sslen);
        lis = evconnlistener_new_bind(base, accept_cb, base,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                          LEV_OPT_CLOSE_ON_EXEC,
                                      ECHO_BACKLOG, (struct sockaddr *)&ss, (int)sslen);
        if (!lis) {
            fprintf(stderr, "hs_echo_raw: listen %s: %s\n", tcp_at, strerror(errno));
            return 1;
        }
        evconnlistener_set_error_cb(lis, accept_error_cb);
        bench_addr_announce("tcp", evconnlistener_get_fd(lis));
    }
    if (udp_at) {
        parse_addr(udp_at, SOCK_DGRAM, &ss, &sslen);
        ufd = udp_bind((struct sockaddr *)&ss, sslen);
        if (ufd < 0) {
            fprintf(stderr, "hs_echo_raw: udp %s: %s\n", udp_at, strerror(errno));
            return 1;
        }
        uev = event_new(base, ufd, EV_READ | EV_PERSIST, udp_read_cb, NULL);
        event_add(uev, NULL);
        bench_addr_announce("udp", ufd);
    }
    /* libevent restores the disposition it found when the signal events are freed; make that
     * "ignore", so a second SIGTERM during teardown cannot kill us with status 143. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigint = evsignal_new(base, SIGINT, signal_cb, base);
    sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);

    event_base_dispatch(base);

    while (conns)
        conn_free(conns);
    if (lis)
        evconnlistener_free(lis);
    if (uev) {
        event_free(uev);
        evutil_closesocket(ufd);
    }
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    return 0;
}
