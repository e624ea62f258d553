/* hs_upload_raw: the pure-C baseline for the upload benchmark.
 *
 * Speaks the framed upload protocol of scripts/upload.lua (4-byte signed little-endian length
 * frames; header {"msg_type": "file", "file_name": "NAME", "ack": true}, then the content
 * frame; "close" ends a session) and does the same work as hotsock's file sink, in the
 * simplest way: blocking read(2)s of 64 KiB (hotsock's read size), each written straight to
 * a temporary file in the upload directory while a running SHA-256 (OpenSSL's SHA256_Update,
 * as the core's core/filesink.c: EVP's default provider alone would add ~2 MiB of resident
 * libcrypto pages to the RSS compared) is updated; then fsync, rename into place, fsync of the
 * directory, and the same ack frame {"ok": true, "file_name": ..., "bytes": N, "sha256": "..."}.
 *
 * One connection at a time (accept, serve the session, close, accept the next): it is a
 * ceiling for one stream, not a server. Header parsing is a minimal scan, enough for the
 * headers the benchmark sends (no escapes in names).
 *
 * Usage: hs_upload_raw --listen HOST:PORT --dir DIR
 * Prints "listening tcp://HOST:PORT" on stderr; SIGINT/SIGTERM exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* SHA256_* are deprecated in OpenSSL 3, not removed: the 1.1.1 API level declares them. */
#define OPENSSL_API_COMPAT 10101
#include <openssl/sha.h>

#include "tests/loadgen/addr.h"

#define UP_READ_SIZE (64 * 1024) /* bytes asked of one read(2) */
#define UP_HEADER_MAX 65536      /* largest header frame accepted */

struct up_conn {
    int fd;                          /* the client */
    unsigned char buf[UP_READ_SIZE]; /* bytes read and not yet consumed */
    size_t pos, len;                 /* consumed / filled part of buf */
};

static volatile sig_atomic_t stopping; /* SIGINT/SIGTERM seen */
static const char *dir;                /* --dir */

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Refills c->buf if empty; returns bytes available, 0 at EOF, -1 on error. */
static ssize_t up_fill(struct up_conn *c)
{
    ssize_t n;

    if (c->pos < c->len)
        return (ssize_t)(c->len - c->pos);
    do
        n = read(c->fd, c->buf, sizeof(c->buf));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n;
    c->pos = 0, c->len = (size_t)n;
    return n;
}

/* Reads exactly n bytes into out; returns 0, or -1 at EOF or on error. */
static int up_read_exact(struct up_conn *c, void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        ssize_t avail = up_fill(c);
        size_t k;

        if (avail <= 0)
            return -1;
        k = (size_t)avail < n ? (size_t)avail : n;
        memcpy(p, c->buf + c->pos, k);
        c->pos += k, p += k, n -= k;
    }
    return 0;
}

/* Reads one frame's 4-byte length; returns it, or -1 at EOF or for a negative length. */
static int64_t up_read_len(struct up_conn *c)
{
    unsigned char h[4];
    int32_t v;

    if (up_read_exact(c, h, 4) != 0)
        return -1;
    v = (int32_t)((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                  (uint32_t)h[3] << 24);
    return v < 0 ? -1 : v;
}

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;

    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

static void up_reply(struct up_conn *c, const char *body)
{
    unsigned char h[4];
    size_t n = strlen(body);

    h[0] = (unsigned char)n, h[1] = (unsigned char)(n >> 8);
    h[2] = (unsigned char)(n >> 16), h[3] = (unsigned char)(n >> 24);
    if (write_all(c->fd, h, 4) == 0)
        write_all(c->fd, body, n);
}

/* Finds "key" in a JSON header and returns a pointer just past the ':' and any blanks. */
static const char *json_value(const char *hdr, const char *key)
{
    char quoted[64];
    const char *p;

    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    p = strstr(hdr, quoted);
    if (!p)
        return NULL;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Streams the next frame's payload into dir/name through a temporary file: write, running
 * SHA-256, fsync, rename, directory fsync. Returns 0 and fills *bytes and hex, or -1 (the
 * session cannot continue). */
static int up_store(struct up_conn *c, const char *name, uint64_t *bytes, char hex[65])
{
    char tmp[4096], path[4096];
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX sha;
    int64_t left = up_read_len(c);
    int fd, dfd, rc = -1;

    snprintf(tmp, sizeof(tmp), "%s/.hs-upload-XXXXXX", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (left < 0 || SHA256_Init(&sha) != 1)
        return -1;
    fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "hs_upload_raw: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    *bytes = (uint64_t)left;
    while (left > 0) {
        ssize_t avail = up_fill(c);
        size_t k;

        if (avail <= 0)
            goto out;
        k = (uint64_t)avail < (uint64_t)left ? (size_t)avail : (size_t)left;
        if (write_all(fd, c->buf + c->pos, k) != 0) {
            fprintf(stderr, "hs_upload_raw: write: %s\n", strerror(errno));
            goto out;
        }
        SHA256_Update(&sha, c->buf + c->pos, k);
        c->pos += k, left -= (int64_t)k;
    }
    if (fsync(fd) != 0 || rename(tmp, path) != 0)
        goto out;
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    SHA256_Final(md, &sha);
    for (unsigned int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Serves one session: commands until "close", EOF or an error. */
static void up_session(struct up_conn *c)
{
    static char hdr[UP_HEADER_MAX + 1];
    char name[256], reply[512], hex[65] = "";

    for (;;) {
        int64_t n = up_read_len(c);
        const char *v;
        uint64_t bytes;
        int ack;
        size_t k;

        if (n < 0 || n > UP_HEADER_MAX || up_read_exact(c, hdr, (size_t)n) != 0)
            return;
        hdr[n] = '\0';
        if (strcmp(hdr, "close") == 0)
            return;
        v = json_value(hdr, "ack");
        ack = v && strncmp(v, "true", 4) == 0;
        v = json_value(hdr, "msg_type");
        if (v && strncmp(v, "\"msg\"", 5) == 0) {
            n = up_read_len(c);
            for (int64_t left = n; left > 0; left -= (int64_t)k) {
                ssize_t avail = up_fill(c);

                if (avail <= 0)
                    return;
                k = (uint64_t)avail < (uint64_t)left ? (size_t)avail : (size_t)left;
                c->pos += k;
            }
            snprintf(reply, sizeof(reply), "{\"ok\": true, \"bytes\": %lld}", (long long)n);
            if (ack)
                up_reply(c, reply);
            continue;
        }
        if (!v || strncmp(v, "\"file\"", 6) != 0)
            return;
        v = json_value(hdr, "file_name");
        if (!v || *v != '"')
            return;
        for (k = 0, v++; *v && *v != '"' && *v != '\\' && *v != '/' && k < sizeof(name) - 1; k++)
            name[k] = *v++;
        name[k] = '\0';
        if (*v != '"' || k == 0 || name[0] == '.')
            return;
        if (up_store(c, name, &bytes, hex) != 0) {
            if (ack)
                up_reply(c, "{\"ok\": false, \"error\": \"not stored\"}");
            return;
        }
        snprintf(reply, sizeof(reply),
                 "{\"ok\": true, \"file_name\": \"%s\", \"bytes\": %llu, \"sha256\": \"%s\"}", name,
                 (unsigned long long)bytes, hex);
        if (ack)
            up_reply(c, reply);
    }
}

int main(int argc, char **argv)
{
    const char *at = NULL, *err;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sigaction sa;
    static struct up_conn conn;
    int lfd, one = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            at = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else
            at = NULL, i = argc;
    }
    if (!at || !dir) {
        fprintf(stderr, "usage: hs_upload_raw --listen HOST:PORT --dir DIR\n");
        return 2;
    }
    if (bench_addr_parse(at, SOCK_STREAM, &ss, &sslen, &err) != 0) {
        fprintf(stderr, "hs_upload_raw: bad address %s: %s\n", at, err);
        return 2;
    }
    mkdir(dir, 0755);
    signal(SIGPIPE, SIG_IGN);
    /* No SA_RESTART: a signal must interrupt accept(2) so the loop can see it. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&ss, sslen) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "hs_upload_raw: listen %s: %s\n", at, strerror(errno));
        return 1;
    }
    bench_addr_announce("tcp", lfd);
    while (!stopping) {
        int fd = accept(lfd, NULL, NULL);

        if (fd < 0)
            continue;
        conn.fd = fd;
        conn.pos = conn.len = 0;
        up_session(&conn);
        close(fd);
    }
    close(lfd);
    return 0;
}
