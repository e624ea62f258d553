/* hs_loadgen --mode upload: one file over the framed upload protocol (scripts/upload.lua).
 *
 * Frames are a 4-byte signed little-endian length and that many bytes. The client sends the
 * header {"msg_type":"file","file_name":"bench.bin","ack":true}, then one content frame of
 * --bytes bytes (connection 0's seeded pattern), then reads the one reply frame. The reply
 * must say "ok": true, the byte count, and the SHA-256 of what was sent: that digest is
 * computed before the clock starts, so hashing costs the client nothing in the measured time
 * and every byte the server stored is still checked.
 *
 * The measured time runs from connect() to the last byte of the reply, which the server
 * sends only after fsync, rename and the directory fsync. The result line adds send_s (until
 * the last byte was handed to the kernel) and ack_ms (from then to the reply). Blocking I/O
 * on one socket; SIGALRM at --duration ends a run that hangs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "tests/loadgen/loadgen.h"

#define UP_CHUNK (256 * 1024) /* bytes per send() */
#define UP_REPLY_MAX 4096     /* largest reply frame accepted */
#define UP_HEADER "{\"msg_type\":\"file\",\"file_name\":\"bench.bin\",\"ack\":true}"

static unsigned char up_buf[UP_CHUNK];

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_alarm(int sig)
{
    static const char msg[] = "hs_loadgen: upload not acknowledged within --duration\n";

    (void)sig;
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(1);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

static void send_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            lg_die("upload: send: %s", strerror(errno));
        p += w, n -= (size_t)w;
    }
}

static void recv_all(int fd, void *data, size_t n)
{
    unsigned char *p = data;

    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            lg_die("upload: recv: %s", strerror(errno));
        if (r == 0)
            lg_die("upload: server closed the connection before its reply");
        p += r, n -= (size_t)r;
    }
}

/* The SHA-256 of the first `bytes` bytes of pattern key, as 64 hex digits. */
static void pattern_sha256(uint64_t key, uint64_t bytes, char hex[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        lg_die("upload: cannot start SHA-256");
    for (uint64_t off = 0; off < bytes;) {
        size_t n = bytes - off < UP_CHUNK ? (size_t)(bytes - off) : UP_CHUNK;

        lg_pattern_fill(key, off, up_buf, n);
        EVP_DigestUpdate(ctx, up_buf, n);
        off += n;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Copies s without blanks, so the reply can be checked whatever its spacing. */
static void squeeze(char *s)
{
    char *o = s;

    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            *o++ = *s;
    *o = '\0';
}

int lg_upload_run(const struct lg_opts *o)
{
    uint64_t key = lg_conn_key(0);
    char sha[65] = "", want[160], reply[UP_REPLY_MAX + 1];
    unsigned char hdr[8 + sizeof(UP_HEADER)];
    double t0, t_sent, t_ack, secs;
    int32_t rlen;
    int fd;

    pattern_sha256(key, o->bytes, sha);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)o->duration + 1);

    fd = socket(o->addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        lg_die("upload: socket: %s", strerror(errno));
    t0 = now_s();
    if (connect(fd, (const struct sockaddr *)&o->addr, o->addrlen) != 0)
        lg_die("upload: connect %s: %s", o->target, strerror(errno));
    /* Header frame, then the content frame's length, in one write. */
    put_le32(hdr, (uint32_t)(sizeof(UP_HEADER) - 1));
    memcpy(hdr + 4, UP_HEADER, sizeof(UP_HEADER) - 1);
    put_le32(hdr + 4 + sizeof(UP_HEADER) - 1, (uint32_t)o->bytes);
    send_all(fd, hdr, 8 + sizeof(UP_HEADER) - 1);
    for (uint64_t off = 0; off < o->bytes;) {
        size_t n = o->bytes - off < UP_CHUNK ? (size_t)(o->bytes - off) : UP_CHUNK;

        lg_pattern_fill(key, off, up_buf, n);
        send_all(fd, up_buf, n);
        off += n;
    }
    t_sent = now_s();
    recv_all(fd, hdr, 4);
    rlen = (int32_t)((uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                     (uint32_t)hdr[3] << 24);
    if (rlen < 0 || rlen > UP_REPLY_MAX)
        lg_die("upload: reply frame of %d bytes", (int)rlen);
    recv_all(fd, reply, (size_t)rlen);
    t_ack = now_s();
    alarm(0);
    reply[rlen] = '\0';
    close(fd);
    secs = t_ack - t0;
    printf("mode=upload conns=1 size=%llu duration=%.3f messages=1 msg_per_s=%.3f mb_per_s=%.2f "
           "p50_us=%.0f p99_us=%.0f p999_us=%.0f errors=0 mismatches=0 bytes=%llu "
           "send_s=%.3f ack_ms=%.1f target=%s\n",
           (unsigned long long)o->bytes, secs, 1 / secs, (double)o->bytes / secs / 1e6, secs * 1e6,
           secs * 1e6, secs * 1e6, (unsigned long long)o->bytes, t_sent - t0,
           (t_ack - t_sent) * 1e3, o->target);
    fflush(stdout);
    squeeze(reply);
    snprintf(want, sizeof(want), "\"bytes\":%llu", (unsigned long long)o->bytes);
    if (!strstr(reply, "\"ok\":true") || !strstr(reply, want)) {
        fprintf(stderr, "hs_loadgen: upload refused or wrong size: %s\n", reply);
        return 1;
    }
    snprintf(want, sizeof(want), "\"sha256\":\"%s\"", sha);
    if (!strstr(reply, want)) {
        fprintf(stderr, "hs_loadgen: upload stored different bytes: reply %s, sent sha256 %s\n",
                reply, sha);
        return 1;
    }
    return 0;
}
