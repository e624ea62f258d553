/* hs_ws_load: a single-threaded epoll WebSocket load client for bench/ws.sh, so that the
 * server, not the client, is what saturates (the Node client of bench/ws_client.js runs out
 * of its core before either server does at 16 KiB and on the broadcast row).
 *
 *   hs_ws_load echo  ws://HOST:PORT/PATH CONNS SIZE SECONDS
 *       every connection sends a masked binary message of SIZE bytes and waits for its echo
 *       (ping-pong); prints "msgs/s N"
 *   hs_ws_load bcast ws://HOST:PORT/PATH CONNS SECONDS
 *       connection 0 sends the text "bcast:" + 58 bytes; once every connection has received
 *       it the next one goes; prints "deliveries/s N"
 *
 * Both run one second of warm-up before the measured SECONDS, as ws_client.js does. Every
 * frame received is checked (opcode, FIN, no mask, length, payload bytes); any mismatch,
 * close or error ends the run with exit status 1 and one line on stderr.
 *
 * The frames are built by hand: this client sends one fixed frame per connection and reads
 * unfragmented, unmasked frames, which is a few lines of RFC 6455 section 5.2; the server
 * side under test uses wslay. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include <sys/socket.h>

#define WL_MAX_CONNS 20000
#define WL_MAX_SIZE 65535 /* largest echo payload: a 16-bit extended length */
#define WL_BCAST_LEN 64

struct wl_conn {
    int fd;
    unsigned char hdr[14]; /* frame header being read */
    size_t hdr_have;       /* bytes of hdr read */
    size_t hdr_need;       /* bytes of header this frame has (2 until the length is known) */
    uint64_t body_left;    /* payload bytes still to read and check, 0 between frames */
    uint64_t body_off;     /* payload bytes of the current frame already checked */
    size_t tx_off;         /* bytes of the outgoing frame written, tx_len when idle */
    int want_out;          /* EPOLLOUT registered */
};

static struct wl_conn *conns;
static int nconns, ep;
static unsigned char *frame, *payload; /* the frame every send writes; its unmasked payload */
static size_t frame_len, payload_len;
static unsigned char opcode; /* the opcode expected back: 0x2 binary (echo), 0x1 text */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("hs_ws_load: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Builds the one client frame: FIN + opcode, the MASK bit and length, a fixed masking key and
 * the masked payload. A fixed key is allowed for a benchmark: masking protects proxies from
 * cache poisoning by scripts, not the server. */
static void build_frame(unsigned char op)
{
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;

    frame = malloc(payload_len + 8);
    if (frame == NULL)
        die("out of memory");
    frame[h++] = (unsigned char)(0x80 | op);
    if (payload_len < 126) {
        frame[h++] = (unsigned char)(0x80 | payload_len);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(payload_len >> 8);
        frame[h++] = (unsigned char)payload_len;
    }
    memcpy(frame + h, key, 4);
    h += 4;
    for (size_t i = 0; i < payload_len; i++)
        frame[h + i] = payload[i] ^ key[i % 4];
    frame_len = h + payload_len;
    opcode = op;
}

/* Opens one connection and performs the opening handshake, blocking (before the clock). */
static int open_ws(const struct addrinfo *ai, const char *host, const char *path)
{
    char req[512], resp[1024];
    size_t have = 0;
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int n;

    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("connect: %s", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path, host);
    if (write(fd, req, (size_t)n) != n)
        die("handshake write: %s", strerror(errno));
    /* Read the response byte by byte up to its blank line, so that no frame byte that follows
     * is consumed here. */
    while (have < sizeof resp - 1) {
        ssize_t r = read(fd, resp + have, 1);

        if (r <= 0)
            die("handshake: connection closed");
        have++;
        if (have >= 4 && memcmp(resp + have - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[have] = '\0';
    /* The accept value for the RFC 6455 sample key (section 1.3). */
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0 ||
        strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == NULL)
        die("handshake refused: %.60s", resp);
    return fd;
}

static int fcntl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void set_out(struct wl_conn *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (c->want_out == on)
        return;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = on;
}

/* Writes what is left of the frame; waits for EPOLLOUT when the socket is full. */
static void flush(struct wl_conn *c)
{
    while (c->tx_off < frame_len) {
        ssize_t w = write(c->fd, frame + c->tx_off, frame_len - c->tx_off);

        if (w < 0 && errno == EAGAIN) {
            set_out(c, 1);
            return;
        }
        if (w < 0)
            die("write: %s", strerror(errno));
        c->tx_off += (size_t)w;
    }
    set_out(c, 0);
}

static void send_frame(struct wl_conn *c)
{
    if (c->tx_off < frame_len)
        die("a frame was sent before the last one was written");
    c->tx_off = 0;
    flush(c);
}

/* Feeds received bytes through the frame reader; returns the number of whole frames. */
static uint64_t consume(struct wl_conn *c, const unsigned char *p, size_t n)
{
    uint64_t frames = 0;

    while (n > 0) {
        if (c->body_left == 0 && c->hdr_have < c->hdr_need) {
            c->hdr[c->hdr_have++] = *p++, n--;
            if (c->hdr_have == 2) {
                unsigned len7 = c->hdr[1] & 0x7f;

                if (c->hdr[0] != (0x80 | opcode) || (c->hdr[1] & 0x80) != 0)
                    die("unexpected frame header %02x %02x", c->hdr[0], c->hdr[1]);
                c->hdr_need = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
            }
            if (c->hdr_have < c->hdr_need)
                continue;
            uint64_t len = c->hdr[1] & 0x7f;

            if (len == 126)
                len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (len == 127)
                die("unexpected 64-bit frame length");
            if (len != payload_len)
                die("frame of %llu bytes, expected %zu", (unsigned long long)len, payload_len);
            c->body_left = len, c->body_off = 0;
            if (len > 0)
                continue;
        } else {
            size_t k = n < c->body_left ? n : (size_t)c->body_left;

            if (memcmp(p, payload + c->body_off, k) != 0)
                die("payload bytes differ from what was sent");
            p += k, n -= k, c->body_left -= k, c->body_off += k;
            if (c->body_left > 0)
                continue;
        }
        c->hdr_have = 0, c->hdr_need = 2;
        frames++;
    }
    return frames;
}

int main(int argc, char **argv)
{
    static unsigned char buf[256 * 1024];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char host[256], port[16], path[256] = "/";
    const char *mode = argc > 1 ? argv[1] : "";
    int bcast = strcmp(mode, "bcast") == 0;
    double seconds;
    uint64_t count = 0, c0 = 0, t0 = 0, t_measure, t_end;
    int got = 0, measuring = 0;

    if (!(strcmp(mode, "echo") == 0 && argc == 6) && !(bcast && argc == 5))
        die("usage: hs_ws_load echo URL CONNS SIZE SECONDS | bcast URL CONNS SECONDS");
    if (sscanf(argv[2], "ws://%255[^:/]:%15[0-9]%255s", host, port, path) < 2)
        die("bad URL %s (want ws://HOST:PORT/PATH)", argv[2]);
    nconns = atoi(argv[3]);
    payload_len = bcast ? WL_BCAST_LEN : (size_t)atol(argv[4]);
    seconds = atof(argv[bcast ? 4 : 5]);
    if (nconns < 1 || nconns > WL_MAX_CONNS || payload_len < 1 || payload_len > WL_MAX_SIZE ||
        seconds <= 0)
        die("bad CONNS, SIZE or SECONDS");
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("cannot resolve %s", host);
    payload = malloc(payload_len);
    conns = calloc((size_t)nconns, sizeof *conns);
    ep = epoll_create1(0);
    if (payload == NULL || conns == NULL || ep < 0)
        die("setup failed");
    memset(payload, 'x', payload_len);
    if (bcast)
        memcpy(payload, "bcast:", 6);
    build_frame(bcast ? 0x1 : 0x2);
    for (int i = 0; i < nconns; i++) {
        struct wl_conn *c = &conns[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

        c->fd = open_ws(ai, host, path);
        c->hdr_need = 2, c->tx_off = frame_len;
        if (fcntl_nonblock(c->fd) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die("socket setup: %s", strerror(errno));
    }
    freeaddrinfo(ai);

    t_measure = now_ns() + 1000000000u;
    t_end = t_measure + (uint64_t)(seconds * 1e9);
    if (bcast)
        send_frame(&conns[0]);
    else
        for (int i = 0; i < nconns; i++)
            send_frame(&conns[i]);
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        uint64_t now = now_ns();

        if (!measuring && now >= t_measure)
            measuring = 1, c0 = count, t0 = now;
        if (now >= t_end)
            break;
        for (int i = 0; i < n; i++) {
            struct wl_conn *c = evs[i].data.ptr;

            if (evs[i].events & EPOLLOUT)
                flush(c);
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            for (;;) {
                ssize_t r = read(c->fd, buf, sizeof buf);
                uint64_t frames;

                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0)
                    die("connection %d: %s", (int)(c - conns),
                        r == 0 ? "closed by the server" : strerror(errno));
                frames = consume(c, buf, (size_t)r);
                count += frames;
                if (!bcast && frames > 1)
                    die("more echoes than messages sent");
                if (!bcast && frames == 1)
                    send_frame(c);
                if (bcast && (got += (int)frames) >= nconns) {
                    if (got > nconns)
                        die("more deliveries than connections");
                    got = 0;
                    send_frame(&conns[0]);
                }
                if ((size_t)r < sizeof buf)
                    break;
            }
        }
    }
    printf("%s %.0f\n", bcast ? "deliveries/s" : "msgs/s",
           (double)(count - c0) / ((double)(now_ns() - t0) / 1e9));
    return 0;
}
