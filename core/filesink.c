/* sync_file_range is Linux's: GNU. */
#define _GNU_SOURCE
#include "core/filesink.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* SHA-256 through OpenSSL's low-level functions, not EVP: EVP_DigestInit_ex's first call
 * loads the default provider and its method store, ~2 MiB of libcrypto's pages that then
 * count in the server's RSS for good (bench/results/upload.md), where SHA256_Update reaches
 * the same assembly (SHA-NI, AVX2) at the same speed touching ~0.25 MiB. OpenSSL 3 marks
 * them deprecated; declaring the 1.1.1 API level keeps them without the warning, and a
 * build with no deprecated functions falls back to EVP. */
#define OPENSSL_API_COMPAT 10101
#include <openssl/opensslconf.h>
#ifdef OPENSSL_NO_DEPRECATED
#include <openssl/evp.h>
#define HS_SHA_EVP 1
#else
#include <openssl/sha.h>
#endif

struct hs_filesink {
    int fd;          /* the temporary file, -1 once closed */
    int state;       /* 0 open, 1 committed, -1 failed or aborted */
    int error;       /* first write error (negated errno) */
    uint64_t size;   /* bytes written */
    uint64_t queued; /* bytes from offset 0 whose write-back was started (whole windows) */
#ifdef HS_SHA_EVP
    EVP_MD_CTX *sha; /* running SHA-256 of what was written */
#else
    SHA256_CTX sha; /* running SHA-256 of what was written */
#endif
    char *dir;      /* target directory */
    char *tmp_path; /* dir/.hs-upload-XXXXXX */
    char *path;     /* dir/name */
};

int hs_filename_check(const char *name, size_t len, const char **why)
{
    if (len == 0)
        return *why = "empty file name", HS_EPROTO;
    if (len > HS_FILENAME_MAX)
        return *why = "file name longer than 255 bytes", HS_EPROTO;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return *why = "file name is . or ..", HS_EPROTO;
    /* Our temporary files live beside the finished ones under this prefix: a client must not
     * be able to name (and so replace) another upload's temporary file. */
    if (len >= 11 && memcmp(name, ".hs-upload-", 11) == 0)
        return *why = "file name is reserved (.hs-upload-*)", HS_EPROTO;
    const unsigned char *p = (const unsigned char *)name, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c == '/' || c == '\\' || c == 0)
            return *why = "file name contains /, \\ or NUL", HS_EPROTO;
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: the number of continuation bytes and the smallest value each length may
         * encode (rejects overlongs); surrogates and values past U+10FFFF are refused. */
        unsigned n, min, cp;
        if ((c & 0xE0) == 0xC0)
            n = 1, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 2, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return *why = "file name is not UTF-8", HS_EPROTO;
        if ((size_t)(end - p) <= n)
            return *why = "file name is not UTF-8", HS_EPROTO;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return *why = "file name is not UTF-8", HS_EPROTO;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return *why = "file name is not UTF-8", HS_EPROTO;
        p += n + 1;
    }
    return 0;
}

static int mkdir_parents(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static char *join(const char *dir, const char *name, size_t name_len)
{
    size_t dl = strlen(dir);
    char *s = malloc(dl + name_len + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, dir, dl);
    s[dl] = '/';
    memcpy(s + dl + 1, name, name_len);
    s[dl + 1 + name_len] = '\0';
    return s;
}

/* Starts the running digest. Returns 0, or -1 when it cannot be had. */
static int sha_init(struct hs_filesink *f)
{
#ifdef HS_SHA_EVP
    f->sha = EVP_MD_CTX_new();
    return f->sha && EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) == 1 ? 0 : -1;
#else
    return SHA256_Init(&f->sha) == 1 ? 0 : -1;
#endif
}

int hs_filesink_open(const char *dir, const char *name, size_t name_len, struct hs_filesink **out,
                     const char **why)
{
    int r = hs_filename_check(name, name_len, why);
    if (r != 0)
        return r;
    if ((r = mkdir_parents(dir)) != 0) {
        *why = strerror(-r);
        return r;
    }
    struct hs_filesink *f = calloc(1, sizeof *f);
    if (f == NULL)
        return *why = strerror(ENOMEM), -ENOMEM;
    f->fd = -1;
    f->dir = strdup(dir);
    f->path = join(dir, name, name_len);
    f->tmp_path = join(dir, ".hs-upload-XXXXXX", 17);
    if (!f->dir || !f->path || !f->tmp_path || sha_init(f) != 0) {
        f->state = -1;
        hs_filesink_free(f);
        return *why = strerror(ENOMEM), -ENOMEM;
    }
    f->fd = mkstemp(f->tmp_path);
    if (f->fd < 0) {
        r = -errno;
        *why = strerror(errno);
        f->state = -1;
        hs_filesink_free(f);
        return r;
    }
    fcntl(f->fd, F_SETFD, FD_CLOEXEC);
    fchmod(f->fd, 0644);
    *out = f;
    return 0;
}

static void sink_fail(struct hs_filesink *f, int err)
{
    if (f->state != 0)
        return;
    f->state = -1;
    f->error = err;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    unlink(f->tmp_path);
}

/* Starts the write-back of every whole HS_FILESINK_FLUSH_AFTER window written since the last
 * call, without waiting for it (SYNC_FILE_RANGE_WRITE only). Left alone, the kernel writes an
 * upload's dirty pages when its own thresholds say so, and the commit's fsync then waits for
 * most of the file at once (~0.4 s per GiB here, between the last byte and the ack): started
 * as the file grows, the disk works while the network does and the fsync finds little left.
 * Advice only: a failure changes nothing (the fsync still decides). */
static void sink_queue_writeback(struct hs_filesink *f)
{
    uint64_t whole = f->size - f->size % HS_FILESINK_FLUSH_AFTER;
    if (whole <= f->queued)
        return;
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(f->fd, (off_t)f->queued, (off_t)(whole - f->queued),
                          SYNC_FILE_RANGE_WRITE);
#endif
    f->queued = whole;
}

int hs_filesink_write(struct hs_filesink *f, const void *data, size_t len)
{
    if (f->state != 0)
        return f->error ? f->error : -EBADF;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(f->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? -errno : -ENOSPC;
            sink_fail(f, err);
            return err;
        }
        p += n;
        left -= (size_t)n;
    }
#ifdef HS_SHA_EVP
    EVP_DigestUpdate(f->sha, data, len);
#else
    SHA256_Update(&f->sha, data, len);
#endif
    f->size += len;
    sink_queue_writeback(f);
    return 0;
}

int hs_filesink_commit(struct hs_filesink *f, uint64_t *bytes, char sha256_hex[65])
{
    if (f->state != 0)
        return f->error ? f->error : -EBADF;
    if (fsync(f->fd) != 0) {
        int err = -errno;
        sink_fail(f, err);
        return err;
    }
    if (close(f->fd) != 0) {
        int err = -errno;
        f->fd = -1;
        sink_fail(f, err);
        return err;
    }
    f->fd = -1;
    if (rename(f->tmp_path, f->path) != 0) {
        int err = -errno;
        sink_fail(f, err);
        return err;
    }
    /* The rename is durable only once the directory is on disk too. */
    int dfd = open(f->dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    f->state = 1;
    unsigned char md[32];
#ifdef HS_SHA_EVP
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(f->sha, md, &mdlen);
#else
    SHA256_Final(md, &f->sha);
#endif
    for (unsigned i = 0; i < 32; i++)
        snprintf(sha256_hex + 2 * i, 3, "%02x", md[i]);
    *bytes = f->size;
    return 0;
}

void hs_filesink_abort(struct hs_filesink *f)
{
    if (f->state == 0)
        sink_fail(f, -ECANCELED);
}

void hs_filesink_free(struct hs_filesink *f)
{
    if (f == NULL)
        return;
    hs_filesink_abort(f);
#ifdef HS_SHA_EVP
    EVP_MD_CTX_free(f->sha);
#endif
    free(f->dir);
    free(f->path);
    free(f->tmp_path);
    free(f);
}

uint64_t hs_filesink_size(const struct hs_filesink *f)
{
    return f->size;
}

const char *hs_filesink_path(const struct hs_filesink *f)
{
    return f->path;
}

int hs_filesink_state(const struct hs_filesink *f)
{
    return f->state;
}
