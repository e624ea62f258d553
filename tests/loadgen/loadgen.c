/* hs_loadgen: single-threaded epoll load generator and byte verifier for echo servers.
 *
 * Every byte a connection sends comes from a seekable pseudo-random pattern keyed per
 * connection: byte i of connection c is a pure function of (key(c), i). Because a TCP echo
 * returns the byte stream in order, the receive side just regenerates the pattern at its own
 * offset and compares, whatever the chunking on either side. Messages (pingpong, pipeline)
 * are consecutive --size slices of that stream, so every message has different content.
 * UDP datagram n of a socket carries the slice at offset n * size.
 *
 * Latency is recorded per message into a log-linear histogram (32 sub-buckets per power of
 * two, so about 3% resolution) with no per-sample storage.
 *
 * The last line on stdout is always the key=value result line; on failure one line with the
 * first reason goes to stderr and the exit status is 1. See bench/README.md for the CLI. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "tests/loadgen/loadgen.h"

#define LG_TABLE (64 * 1024)      /* pattern table size and block length in bytes */
#define LG_BUF (64 * 1024)        /* bytes per send/recv call and scratch buffer size */
#define LG_IO_BUDGET (256 * 1024) /* bytes each way per connection per readiness */
#define LG_MAX_CONNECTING 512     /* connects in flight at once, to spare the backlog */
#define LG_UDP_BATCH 64           /* datagrams received per readiness */
#define LG_UDP_LATE_WINDOW 8      /* older sequence numbers recognised as late echoes */
#define LG_FD_SLACK 32            /* descriptors kept for stdio, epoll and such */
#define LG_HIST_SUB_BITS 5        /* log2 of the sub-buckets per power of two */
#define LG_HIST_SUB (1 << LG_HIST_SUB_BITS)
#define LG_HIST_BUCKETS ((64 - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB)

enum lg_state { LG_NEW, LG_CONNECTING, LG_OPEN, LG_DONE };

struct lg_conn {
    int fd; /* -1 unless connecting or open */
    int id; /* index, used in messages */
    enum lg_state state;
    uint32_t events;    /* epoll events registered, 0 when not registered */
    int ready;          /* idle mode: connected and handshake echoed */
    uint64_t key;       /* pattern key, derived from --seed and id */
    uint64_t rng;       /* stream: chunk size PRNG state */
    uint64_t tx_off;    /* bytes sent */
    uint64_t tx_goal;   /* bytes allowed to be sent so far (messages started / chunk end) */
    uint64_t rx_off;    /* bytes received and verified */
    uint64_t started;   /* messages (datagrams) started */
    uint64_t completed; /* messages echoed in full (UDP: also lost ones) */
    uint64_t deadline;  /* UDP: ns at which the datagram in flight counts as lost */
    uint64_t *ts;       /* start times in ns of in-flight messages, ring of opt.depth */
};

static struct {
    /* Run state. */
    struct lg_conn *c; /* opt.conns connections, never moved or freed while running */
    int ep;            /* epoll descriptor */
    int next_new;      /* next never-started connection */
    int connecting;    /* connects in flight */
    int finished;      /* connections in LG_DONE */
    int ready;         /* idle: connections ready */
    int opened;        /* connections that completed connect() */
    int *retry;        /* Unix-socket connects refused with EAGAIN, to try again */
    int nretry;        /* entries in retry */
    uint64_t retry_at; /* ns: when the retry list may be tried again */
    uint64_t t_start, t_measure, t_end, t_last; /* ns: start, end of warmup, deadline, last done */
    /* Results. */
    uint64_t msgs;       /* messages echoed in the measured window */
    uint64_t rx_bytes;   /* bytes echoed and verified in the measured window */
    uint64_t lost, late; /* udp: datagrams timed out / echoes arriving after their timeout */
    uint64_t errors;     /* failed connections other than mismatches */
    uint64_t mismatches; /* echoes whose bytes differ from what was sent */
    uint64_t hist[LG_HIST_BUCKETS];    /* latency counts in ns, log-linear buckets */
    uint64_t hist_max;                 /* largest latency in ns */
    char reason[512];                  /* the first failure, printed at exit */
    unsigned char table[2 * LG_TABLE]; /* random bytes, the second half a copy of the first */
    unsigned char sbuf[LG_BUF], rbuf[LG_BUF], ebuf[LG_BUF]; /* send, receive, expected */
} g;

static struct lg_opts opt;                /* the command line, read-only after parsing */
static volatile sig_atomic_t interrupted; /* SIGINT/SIGTERM: stop and report */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64's finaliser: a good 64-bit mixer, used both for seeds and for the pattern. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* xorshift64*: chunk sizes in stream mode. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

/* The pattern of a connection is cut from one random table: each LG_TABLE-byte block of its
 * stream is the table read from an offset picked by hashing (key, block number). Blocks are
 * long enough that any loss, duplication, reordering or cross-talk of bytes compares random
 * table bytes against different random table bytes, yet producing and checking them costs a
 * memcpy or a memcmp. Returns a pointer to the first *n bytes (shortened to the end of the
 * block) of the pattern at off: into the table, or into scratch for the line payload. */
static const unsigned char *pattern_at(uint64_t key, uint64_t off, size_t *n,
                                       unsigned char *scratch)
{
    size_t in = (size_t)(off % LG_TABLE);
    size_t len = *n < LG_TABLE - in ? *n : LG_TABLE - in;
    const unsigned char *p =
        g.table + mix64(key + (off / LG_TABLE) * 0x9e3779b97f4a7c15u) % LG_TABLE + in;

    *n = len;
    if (!opt.line)
        return p;
    for (size_t k = 0; k < len; k++)
        scratch[k] = (off + k) % opt.size == opt.size - 1 ? '\n' : (unsigned char)('a' + p[k] % 26);
    return scratch;
}

/* Copies bytes [off, off + n) of key's pattern into buf. */
static void pattern_fill(uint64_t key, uint64_t off, unsigned char *buf, size_t n)
{
    while (n > 0) {
        size_t k = n;
        const unsigned char *p = pattern_at(key, off, &k, buf);

        if (p != buf)
            memcpy(buf, p, k);
        buf += k, off += k, n -= k;
    }
}

void lg_pattern_fill(uint64_t key, uint64_t off, unsigned char *buf, size_t n)
{
    pattern_fill(key, off, buf, n);
}

uint64_t lg_conn_key(int id)
{
    return mix64(opt.seed * 0x9e3779b97f4a7c15u + (uint64_t)id + 1);
}

/* Returns the index of the first of n bytes in buf that differs from key's pattern at off, or
 * n when all match. */
static size_t pattern_check(uint64_t key, uint64_t off, const unsigned char *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        size_t k = n - done;
        const unsigned char *p = pattern_at(key, off + done, &k, g.ebuf);

        if (memcmp(p, buf + done, k) != 0) {
            while (p[0] == buf[done])
                p++, done++;
            return done;
        }
        done += k;
    }
    return n;
}

static unsigned hist_index(uint64_t v)
{
    int e;

    if (v < LG_HIST_SUB)
        return (unsigned)v;
    e = 63 - __builtin_clzll(v);
    return (unsigned)((e - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB +
                      (int)((v >> (e - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1)));
}

/* Middle of bucket idx, in the recorded unit (ns). */
static uint64_t hist_value(unsigned idx)
{
    unsigned e, sub;

    if (idx < LG_HIST_SUB)
        return idx;
    e = idx / LG_HIST_SUB + LG_HIST_SUB_BITS - 1;
    sub = idx % LG_HIST_SUB;
    return (((uint64_t)LG_HIST_SUB + sub) << (e - LG_HIST_SUB_BITS)) +
           ((uint64_t)1 << (e - LG_HIST_SUB_BITS)) / 2;
}

static void hist_add(uint64_t ns)
{
    g.hist[hist_index(ns)]++;
    if (ns > g.hist_max)
        g.hist_max = ns;
}

/* The q-quantile in microseconds (0 when nothing was recorded). */
static double hist_quantile_us(double q)
{
    uint64_t total = 0, want, seen = 0;

    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
        total += g.hist[i];
    if (total == 0)
        return 0;
    want = (uint64_t)(q * (double)total + 0.5);
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += g.hist[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return (double)(v < g.hist_max ? v : g.hist_max) / 1000.0;
        }
    }
    return (double)g.hist_max / 1000.0;
}

static void conn_close(struct lg_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->state == LG_CONNECTING)
        g.connecting--;
    c->state = LG_DONE;
    g.finished++;
    g.t_last = now_ns();
}

/* Closes c as failed; the first failure of the run becomes the reason printed at exit. */
__attribute__((format(printf, 3, 4))) static void conn_fail(struct lg_conn *c, int mismatch,
                                                            const char *fmt, ...)
{
    va_list ap;

    if (!g.reason[0]) {
        va_start(ap, fmt);
        vsnprintf(g.reason, sizeof(g.reason), fmt, ap);
        va_end(ap);
    }
    if (mismatch)
        g.mismatches++;
    else
        g.errors++;
    conn_close(c);
}

/* Registers or updates c's epoll interest; returns -1 (c failed) on error. */
static int conn_watch(struct lg_conn *c, uint32_t events)
{
    struct epoll_event ev;

    if (c->events == events)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(g.ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_fail(c, 0, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    c->events = events;
    return 0;
}

/* One message finished (echoed in full) at time now. */
static void msg_done(struct lg_conn *c, uint64_t now)
{
    uint64_t lat = now - c->ts[c->completed % (uint64_t)opt.depth];

    c->completed++;
    if (now >= g.t_measure) {
        hist_add(lat);
        g.msgs++;
        g.rx_bytes += opt.size;
    }
}

/* --- TCP and Unix stream connections. ------------------------------------------------------ */

static void idle_ready(struct lg_conn *c)
{
    c->ready = 1;
    if (++g.ready == opt.conns) {
        printf("connected %d\n", opt.conns);
        fflush(stdout);
    }
}

/* Starts as many messages as the window and the cap allow; a message starts when its bytes
 * become eligible to be written, which is also when its latency clock starts. */
static void msgs_start(struct lg_conn *c, uint64_t now)
{
    uint64_t cap = opt.mode == LG_IDLE ? 1 : opt.messages;

    while (c->started - c->completed < (uint64_t)opt.depth && (cap == 0 || c->started < cap)) {
        c->ts[c->started % (uint64_t)opt.depth] = now;
        c->started++;
        c->tx_goal += opt.size;
    }
}

static int stream_pending(const struct lg_conn *c)
{
    return c->tx_off < c->tx_goal || (opt.mode == LG_STREAM && c->tx_off < opt.bytes);
}

/* Writes what is eligible, up to LG_IO_BUDGET; returns -1 if c failed. */
static int stream_flush(struct lg_conn *c)
{
    size_t budget = LG_IO_BUDGET;

    while (budget > 0) {
        size_t n;
        ssize_t w;

        /* Stream mode: each chunk is one send() of a random size in [1, max_chunk]. */
        if (opt.mode == LG_STREAM && c->tx_off == c->tx_goal && c->tx_goal < opt.bytes) {
            uint64_t chunk = 1 + rng_next(&c->rng) % opt.max_chunk;
            c->tx_goal += chunk < opt.bytes - c->tx_goal ? chunk : opt.bytes - c->tx_goal;
        }
        if (c->tx_off >= c->tx_goal)
            break;
        n = c->tx_goal - c->tx_off < LG_BUF ? (size_t)(c->tx_goal - c->tx_off) : LG_BUF;
        pattern_fill(c->key, c->tx_off, g.sbuf, n);
        w = send(c->fd, g.sbuf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c, 0, "conn %d: send: %s", c->id, strerror(errno));
            return -1;
        }
        c->tx_off += (uint64_t)w;
        budget = (size_t)w < budget ? budget - (size_t)w : 0;
        if ((size_t)w < n)
            break;
    }
    return 0;
}

/* Reads and verifies up to LG_IO_BUDGET bytes; returns -1 if c failed or finished. */
static int stream_read(struct lg_conn *c, uint64_t now)
{
    size_t budget = LG_IO_BUDGET;

    while (budget > 0) {
        ssize_t n = recv(c->fd, g.rbuf, LG_BUF, 0);
        size_t sent, bad;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c, 0, "conn %d: recv: %s", c->id, strerror(errno));
            return -1;
        }
        if (n == 0) {
            conn_fail(c, 0, "conn %d: closed by peer after %llu of %llu bytes echoed", c->id,
                      (unsigned long long)c->rx_off, (unsigned long long)c->tx_off);
            return -1;
        }
        /* Content first: a duplicated run shows up as a mismatch at the place it starts. */
        sent = c->tx_off - c->rx_off < (uint64_t)n ? (size_t)(c->tx_off - c->rx_off) : (size_t)n;
        bad = pattern_check(c->key, c->rx_off, g.rbuf, sent);
        if (bad < sent) {
            pattern_fill(c->key, c->rx_off + bad, g.ebuf, 1);
            conn_fail(c, 1, "conn %d: mismatch at byte %llu: expected 0x%02x, got 0x%02x", c->id,
                      (unsigned long long)(c->rx_off + bad), g.ebuf[0], g.rbuf[bad]);
            return -1;
        }
        if (sent < (size_t)n) {
            conn_fail(c, 1, "conn %d: %zu bytes received beyond the %llu sent", c->id,
                      (size_t)n - sent, (unsigned long long)c->tx_off);
            return -1;
        }
        c->rx_off += (uint64_t)n;
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if (opt.mode == LG_STREAM)
            g.rx_bytes += (uint64_t)n;
        if (n < LG_BUF)
            break; /* most likely drained; level-triggered epoll tells us otherwise */
    }
    if (opt.mode == LG_STREAM) {
        if (c->rx_off == opt.bytes) {
            conn_close(c);
            return -1;
        }
        return 0;
    }
    while (c->completed < c->started && c->rx_off >= (c->completed + 1) * opt.size)
        msg_done(c, now);
    if (opt.mode == LG_IDLE && !c->ready && c->completed == 1)
        idle_ready(c);
    if (opt.mode != LG_IDLE && opt.messages && c->completed == opt.messages) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Starts new messages, writes, and sets the epoll interest to match. */
static void stream_progress(struct lg_conn *c, uint64_t now)
{
    if (opt.mode != LG_STREAM && !(opt.mode == LG_IDLE && opt.size == 0))
        msgs_start(c, now);
    if (stream_flush(c) < 0)
        return;
    conn_watch(c, EPOLLIN | (stream_pending(c) ? EPOLLOUT : 0u));
}

/* --- UDP sockets (connected, so only the target's datagrams arrive). ----------------------- */

static void udp_send(struct lg_conn *c, uint64_t now)
{
    if (opt.messages && c->started >= opt.messages) {
        conn_close(c);
        return;
    }
    pattern_fill(c->key, c->started * opt.size, g.sbuf, (size_t)opt.size);
    c->ts[0] = now;
    c->deadline = now + (uint64_t)(opt.udp_timeout * 1e9);
    c->started++;
    /* EAGAIN or ENOBUFS: the datagram is lost, and the timeout will say so. */
    if (send(c->fd, g.sbuf, (size_t)opt.size, 0) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != ENOBUFS && errno != EINTR)
        conn_fail(c, 0, "conn %d: udp send: %s", c->id, strerror(errno));
}

/* Does a received datagram carry the payload of datagram seq? */
static int udp_matches(const struct lg_conn *c, uint64_t seq, size_t n)
{
    return n == opt.size && pattern_check(c->key, seq * opt.size, g.rbuf, n) == n;
}

static void udp_read(struct lg_conn *c, uint64_t now)
{
    for (int i = 0; i < LG_UDP_BATCH && c->state == LG_OPEN; i++) {
        ssize_t n = recv(c->fd, g.rbuf, LG_BUF, 0);
        int late = 0;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail(c, 0, "conn %d: udp recv: %s", c->id, strerror(errno));
            return;
        }
        if (c->completed < c->started && udp_matches(c, c->started - 1, (size_t)n)) {
            c->completed++;
            if (now >= g.t_measure) {
                hist_add(now - c->ts[0]);
                g.msgs++;
                g.rx_bytes += opt.size;
            }
            udp_send(c, now);
            continue;
        }
        /* An echo of a datagram already written off as lost is late, not corrupt. */
        for (uint64_t k = 1; k <= LG_UDP_LATE_WINDOW && k < c->started && !late; k++)
            late = udp_matches(c, c->started - 1 - k, (size_t)n);
        if (late) {
            g.late++;
            continue;
        }
        conn_fail(c, 1, "conn %d: udp datagram %llu: %zd bytes that match nothing sent", c->id,
                  (unsigned long long)(c->started - 1), n);
        return;
    }
}

/* Writes off datagrams whose echo is overdue. */
static void udp_scan(uint64_t now)
{
    for (int i = 0; i < opt.conns; i++) {
        struct lg_conn *c = &g.c[i];

        if (c->state != LG_OPEN || c->completed == c->started || now < c->deadline)
            continue;
        g.lost++;
        c->completed++;
        if (opt.strict) {
            conn_fail(c, 0, "conn %d: udp datagram %llu lost (--strict)", c->id,
                      (unsigned long long)(c->started - 1));
            continue;
        }
        udp_send(c, now);
    }
}

/* --- Connection setup. ---------------------------------------------------------------------- */

static void conn_opened(struct lg_conn *c, uint64_t now)
{
    c->state = LG_OPEN;
    g.opened++;
    if (opt.kind == LG_UDP) {
        if (conn_watch(c, EPOLLIN) == 0)
            udp_send(c, now);
        return;
    }
    if (opt.mode == LG_IDLE && opt.size == 0)
        idle_ready(c);
    stream_progress(c, now);
}

static void conn_connect(struct lg_conn *c, uint64_t now)
{
    int one = 1;
    int fd = socket(opt.addr.ss_family, opt.kind == LG_UDP ? SOCK_DGRAM : SOCK_STREAM, 0);

    if (fd < 0) {
        conn_fail(c, 0, "conn %d: socket: %s", c->id, strerror(errno));
        return;
    }
    c->fd = fd;
    c->events = 0;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        conn_fail(c, 0, "conn %d: fcntl: %s", c->id, strerror(errno));
        return;
    }
    if (opt.kind == LG_TCP)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) == 0) {
        conn_opened(c, now);
        return;
    }
    if (errno == EINPROGRESS) {
        c->state = LG_CONNECTING;
        g.connecting++;
        conn_watch(c, EPOLLOUT);
        return;
    }
    if (errno == EAGAIN && opt.kind == LG_UNIX) {
        /* A full Unix-socket backlog refuses at once instead of queueing SYNs: retry soon. */
        close(fd);
        c->fd = -1;
        g.retry[g.nretry++] = c->id;
        g.retry_at = now + 2000000u;
        return;
    }
    conn_fail(c, 0, "conn %d: connect %s: %s", c->id, opt.target, strerror(errno));
}

static void start_connects(uint64_t now)
{
    while (g.connecting < LG_MAX_CONNECTING) {
        if (g.nretry > 0 && now >= g.retry_at)
            conn_connect(&g.c[g.retry[--g.nretry]], now);
        else if (g.next_new < opt.conns)
            conn_connect(&g.c[g.next_new++], now);
        else
            break;
    }
}

static void connect_done(struct lg_conn *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        conn_fail(c, 0, "conn %d: connect %s: %s", c->id, opt.target, strerror(err));
        return;
    }
    g.connecting--;
    conn_opened(c, now);
}

/* --- Main loop and results. ----------------------------------------------------------------- */

static void run(void)
{
    struct epoll_event evs[1024];
    uint64_t last_scan = 0;

    g.t_start = now_ns();
    g.t_last = g.t_start;
    if (opt.mode == LG_STREAM || opt.mode == LG_IDLE)
        g.t_measure = g.t_start;
    else
        g.t_measure = g.t_start + (uint64_t)(opt.warmup * 1e9);
    g.t_end = g.t_measure + (uint64_t)(opt.duration * 1e9);
    while (!interrupted && g.finished < opt.conns) {
        uint64_t now = now_ns();
        int n, timeout_ms;

        if (now >= g.t_end)
            break;
        start_connects(now);
        if (opt.kind == LG_UDP && now - last_scan >= 2000000u) {
            udp_scan(now);
            last_scan = now;
        }
        timeout_ms = (int)((g.t_end - now) / 1000000u) + 1;
        if (timeout_ms > (opt.kind == LG_UDP || g.nretry ? 2 : 50))
            timeout_ms = opt.kind == LG_UDP || g.nretry ? 2 : 50;
        n = epoll_wait(g.ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout_ms);
        if (n < 0 && errno != EINTR) {
            snprintf(g.reason, sizeof(g.reason), "epoll_wait: %s", strerror(errno));
            g.errors++;
            break;
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct lg_conn *c = evs[i].data.ptr;

            if (c->state == LG_CONNECTING)
                connect_done(c, now);
            else if (c->state != LG_OPEN)
                continue; /* closed earlier in this batch */
            else if (opt.kind == LG_UDP)
                udp_read(c, now);
            else if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || stream_read(c, now) == 0)
                stream_progress(c, now);
        }
    }
}

static int report(void)
{
    uint64_t end = g.finished == opt.conns ? g.t_last : now_ns();
    int unconnected = 0, unfinished = 0;
    double secs;

    if (end > g.t_end)
        end = g.t_end;
    secs = end > g.t_measure ? (double)(end - g.t_measure) / 1e9 : 0;
    for (int i = 0; i < opt.conns; i++) {
        struct lg_conn *c = &g.c[i];

        if (c->state == LG_NEW || c->state == LG_CONNECTING)
            unconnected++;
        else if (c->state == LG_OPEN && opt.mode == LG_STREAM)
            unfinished++;
        if (c->fd >= 0)
            close(c->fd);
    }
    if (unconnected || unfinished) {
        g.errors += (uint64_t)(unconnected + unfinished);
        if (!g.reason[0] && unconnected)
            snprintf(g.reason, sizeof(g.reason), "%d connection(s) not connected after %.2fs",
                     unconnected, (double)(now_ns() - g.t_start) / 1e9);
        else if (!g.reason[0])
            snprintf(g.reason, sizeof(g.reason), "%d stream(s) unfinished after %.2fs", unfinished,
                     (double)(now_ns() - g.t_start) / 1e9);
    }
    if (opt.mode == LG_IDLE && g.ready < opt.conns && !g.reason[0]) {
        g.errors++;
        snprintf(g.reason, sizeof(g.reason), "only %d of %d connections became ready", g.ready,
                 opt.conns);
    }
    printf("mode=%s conns=%d size=%llu duration=%.2f messages=%llu msg_per_s=%.1f "
           "mb_per_s=%.2f p50_us=%.0f p99_us=%.0f p999_us=%.0f errors=%llu mismatches=%llu "
           "bytes=%llu depth=%d max_us=%.0f lost=%llu late=%llu connected=%d target=%s\n",
           (const char *[]){"pingpong", "pipeline", "stream", "idle"}[opt.mode], opt.conns,
           (unsigned long long)opt.size, secs, (unsigned long long)g.msgs,
           secs > 0 ? (double)g.msgs / secs : 0, secs > 0 ? (double)g.rx_bytes / secs / 1e6 : 0,
           hist_quantile_us(0.50), hist_quantile_us(0.99), hist_quantile_us(0.999),
           (unsigned long long)g.errors, (unsigned long long)g.mismatches,
           (unsigned long long)g.rx_bytes, opt.depth, (double)g.hist_max / 1000.0,
           (unsigned long long)g.lost, (unsigned long long)g.late,
           opt.mode == LG_IDLE ? g.ready : g.opened, opt.target);
    fflush(stdout);
    if (g.errors || g.mismatches) {
        fprintf(stderr, "hs_loadgen: %s (errors=%llu mismatches=%llu)\n", g.reason,
                (unsigned long long)g.errors, (unsigned long long)g.mismatches);
        return 1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    struct sigaction sa;
    uint64_t *ts;

    lg_opts_parse(&opt, argc, argv);
    /* 10,000 connections need 10,000 descriptors: take the whole hard limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.conns + LG_FD_SLACK > rl.rlim_cur)
        lg_die("--conns %d needs more descriptors than RLIMIT_NOFILE allows (%llu)", opt.conns,
               (unsigned long long)rl.rlim_cur);
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    g.c = calloc((size_t)opt.conns, sizeof(*g.c));
    ts = calloc((size_t)opt.conns * (size_t)opt.depth, sizeof(*ts));
    g.retry = calloc((size_t)opt.conns, sizeof(*g.retry));
    if (!g.c || !ts || !g.retry)
        lg_die("out of memory for %d connections", opt.conns);
    for (size_t i = 0; i < LG_TABLE; i += 8) {
        uint64_t w = mix64(opt.seed * 0xd1b54a32d192ed03u + i);
        for (size_t k = 0; k < 8; k++)
            g.table[i + k] = (unsigned char)(w >> (8 * k));
    }
    memcpy(g.table + LG_TABLE, g.table, LG_TABLE);
    if (opt.mode == LG_UPLOAD)
        return lg_upload_run(&opt);
    for (int i = 0; i < opt.conns; i++) {
        struct lg_conn *c = &g.c[i];

        c->fd = -1;
        c->id = i;
        c->key = lg_conn_key(i);
        c->rng = mix64(c->key ^ 0x5851f42d4c957f2du) | 1;
        c->ts = ts + (size_t)i * (size_t)opt.depth;
    }
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0)
        lg_die("epoll_create1: %s", strerror(errno));

    run();

    return report();
}
