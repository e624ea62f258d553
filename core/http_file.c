/* realpath(3) is X/Open in glibc's headers; O_PATH and syscall(2) (for openat2, which glibc
 * 2.36 does not wrap) are GNU. */
#define _GNU_SOURCE

#include "core/http_file.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int hs_http_date_format(time_t t, char *out)
{
    struct tm tm;
    char buf[64];
    gmtime_r(&t, &tm);
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    memcpy(out, buf, 29);
    out[29] = '\0';
    return 29;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Reads exactly n digits at *p. Returns the value or -1. */
static int digits(const char **p, const char *end, int n)
{
    int v = 0;
    if (end - *p < n)
        return -1;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static int lit(const char **p, const char *end, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(end - *p) < n || memcmp(*p, s, n) != 0)
        return -1;
    *p += n;
    return 0;
}

static int month_of(const char **p, const char *end)
{
    for (int i = 0; i < 12; i++)
        if (end - *p >= 3 && memcmp(*p, months[i], 3) == 0) {
            *p += 3;
            return i + 1;
        }
    return -1;
}

static int hms(const char **p, const char *end, int *h, int *m, int *s)
{
    *h = digits(p, end, 2);
    if (*h < 0 || lit(p, end, ":") < 0)
        return -1;
    *m = digits(p, end, 2);
    if (*m < 0 || lit(p, end, ":") < 0)
        return -1;
    *s = digits(p, end, 2);
    return *s < 0 ? -1 : 0;
}

int hs_http_date_parse(const char *s, size_t len, time_t *t)
{
    const char *p = s, *end = s + len, *comma = memchr(s, ',', len);
    int day, mon, year, hh, mm, ss;
    if (comma != NULL && comma - s == 3) { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        p = comma + 1;
        if (lit(&p, end, " ") < 0 || (day = digits(&p, end, 2)) < 0 || lit(&p, end, " ") < 0 ||
            (mon = month_of(&p, end)) < 0 || lit(&p, end, " ") < 0 ||
            (year = digits(&p, end, 4)) < 0 || lit(&p, end, " ") < 0 ||
            hms(&p, end, &hh, &mm, &ss) < 0 || lit(&p, end, " GMT") < 0)
            return HS_EPROTO;
    } else if (comma != NULL) { /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        p = comma + 1;
        if (lit(&p, end, " ") < 0 || (day = digits(&p, end, 2)) < 0 || lit(&p, end, "-") < 0 ||
            (mon = month_of(&p, end)) < 0 || lit(&p, end, "-") < 0 ||
            (year = digits(&p, end, 2)) < 0 || lit(&p, end, " ") < 0 ||
            hms(&p, end, &hh, &mm, &ss) < 0 || lit(&p, end, " GMT") < 0)
            return HS_EPROTO;
        year += year < 70 ? 2000 : 1900;
    } else { /* asctime: Sun Nov  6 08:49:37 1994 */
        p = s + 3;
        if (len < 3 || lit(&p, end, " ") < 0 || (mon = month_of(&p, end)) < 0 ||
            lit(&p, end, " ") < 0)
            return HS_EPROTO;
        if (p < end && *p == ' ')
            p++, day = digits(&p, end, 1);
        else
            day = digits(&p, end, 2);
        if (day < 0 || lit(&p, end, " ") < 0 || hms(&p, end, &hh, &mm, &ss) < 0 ||
            lit(&p, end, " ") < 0 || (year = digits(&p, end, 4)) < 0)
            return HS_EPROTO;
    }
    if (p != end || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
        return HS_EPROTO;
    long long days = days_from_civil(year, (unsigned)mon, (unsigned)day);
    *t = (time_t)(days * 86400 + hh * 3600 + mm * 60 + ss);
    return 0;
}

/* Reads decimal digits, saturating. Returns the count of digits read. */
static size_t read_u64(const char **p, const char *end, uint64_t *v)
{
    size_t n = 0;
    *v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        unsigned d = (unsigned)(**p - '0');
        *v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
        (*p)++;
        n++;
    }
    return n;
}

static void skip_ows(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
}

int hs_http_range_parse(const char *s, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = s, *end = s + len;
    uint64_t a, b;
    skip_ows(&p, end);
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return 0;
    p += 6;
    skip_ows(&p, end);
    size_t na = read_u64(&p, end, &a);
    if (p == end || *p != '-')
        return 0;
    p++;
    size_t nb = read_u64(&p, end, &b);
    skip_ows(&p, end);
    if (p != end || (na == 0 && nb == 0))
        return 0;  /* several ranges, or junk: ignore the field */
    if (na == 0) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return HS_ETOOBIG;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (nb > 0 && b < a)
        return 0;
    if (a >= size)
        return HS_ETOOBIG;
    *first = a;
    *last = nb == 0 || b >= size ? size - 1 : b;
    return 1;
}

int hs_http_etag_match(const char *s, size_t len, const char *etag, int strong)
{
    const char *p = s, *end = s + len;
    size_t el = strlen(etag);
    while (p < end) {
        skip_ows(&p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '*')
            return 1;
        int weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        if (p >= end || *p != '"')
            return 0;
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (q == NULL)
            return 0;
        if (!(weak && strong) && (size_t)(q + 1 - p) == el && memcmp(p, etag, el) == 0)
            return 1;
        p = q + 1;
    }
    return 0;
}

static int open_errno(int e)
{
    if (e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG)
        return -ENOENT;
    if (e == EACCES || e == EPERM || e == ELOOP)
        return -EACCES;
    return -e;
}

/* 1 when the resolved path lies inside the resolved root. */
static int inside(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0)
        return 1;
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat refuses it next. */
#define FILE_OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* The root directory, opened (O_PATH) at most once a second: a static site serves many
 * files from one root, and opening it per request costs two system calls of the ten a
 * request takes. A root renamed or replaced is seen within a second, as nginx's
 * open_file_cache would. One entry per process (workers are processes). */
#define ROOT_CACHE_SECONDS 1

static int root_dir(const char *root, size_t n)
{
    static char cached[PATH_MAX];
    static int cached_fd = -1;
    static time_t opened;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    if (cached_fd >= 0 && now.tv_sec - opened < ROOT_CACHE_SECONDS && strlen(cached) == n &&
        memcmp(cached, root, n) == 0)
        return cached_fd;
    if (n >= sizeof cached) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char path[PATH_MAX];
    memcpy(path, root, n);
    path[n] = '\0';
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (cached_fd >= 0)
        close(cached_fd);
    memcpy(cached, path, n + 1);
    cached_fd = fd;
    opened = now.tv_sec;
    return fd;
}

/* Opens path, which names a file under root, with the kernel keeping the whole resolution
 * beneath root (openat2 RESOLVE_BENEATH: "..", absolute symbolic links and links leading
 * out all fail): one system call with the root cached, where resolving both with realpath(3)
 * costs a readlink per path component on every request. Returns the fd, or -1
 * with errno; errno ENOSYS when the kernel (before 5.6) or a seccomp filter lacks openat2,
 * or EINVAL when path is not spelled root/..., and the caller resolves by hand. */
static int open_beneath(const char *path, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(path, root, n) != 0 || path[n] != '/') {
        errno = EINVAL;
        return -1;
    }
    const char *rel = path + n;
    while (*rel == '/')
        rel++;
    int dir = root_dir(root, n);
    if (dir < 0)
        return -1;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = FILE_OPEN_FLAGS;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    do
        fd = syscall(SYS_openat2, dir, *rel ? rel : ".", &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EXDEV)
        errno = EACCES; /* the path would leave the root */
    return (int)fd;
}

int hs_http_file_open(const char *path, const char *root, struct hs_http_file *f)
{
    struct stat st, rst;
    int fd = -1, beneath = 0;
    if (root != NULL) {
        fd = open_beneath(path, root);
        if (fd >= 0 || (errno != ENOSYS && errno != EINVAL && errno != EPERM))
            beneath = 1; /* the kernel decided, either way */
        if (fd < 0 && beneath)
            return open_errno(errno);
    }
    if (fd < 0) {
        do
            fd = open(path, FILE_OPEN_FLAGS);
        while (fd < 0 && errno == EINTR);
    }
    if (fd < 0)
        return open_errno(errno);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (S_ISDIR(st.st_mode) || !S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;
    }
    if (root != NULL && !beneath) {
        /* Without openat2: resolve both, compare, and make sure the file opened is the one
         * resolved: a link swapped between open and realpath cannot smuggle another file out. */
        char rroot[PATH_MAX], rpath[PATH_MAX];
        if (realpath(root, rroot) == NULL || realpath(path, rpath) == NULL ||
            !inside(rpath, rroot) || stat(rpath, &rst) != 0 || rst.st_dev != st.st_dev ||
            rst.st_ino != st.st_ino) {
            close(fd);
            return -EACCES;
        }
    }
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    f->mtime = st.st_mtim.tv_sec;
    snprintf(f->etag, sizeof f->etag, "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    hs_http_date_format(f->mtime, f->last_modified);
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    f->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    return 0;
}

int hs_http_file_evaluate(const struct hs_http_file *f, const struct hs_http_file_cond *cond,
                          uint64_t *first, uint64_t *last)
{
    time_t t;
    *first = 0;
    *last = f->size ? f->size - 1 : 0;
    if (cond->if_none_match != NULL) {
        if (hs_http_etag_match(cond->if_none_match, cond->if_none_match_len, f->etag, 0))
            return 304;
    } else if (cond->if_modified_since != NULL &&
               hs_http_date_parse(cond->if_modified_since, cond->if_modified_since_len, &t) == 0 &&
               f->mtime <= t) {
        return 304;
    }
    if (cond->range == NULL)
        return 200;
    if (cond->if_range != NULL) {
        const char *s = cond->if_range;
        size_t n = cond->if_range_len;
        int match = (n > 0 && (s[0] == '"' || s[0] == 'W'))
                        ? hs_http_etag_match(s, n, f->etag, 1)
                        : hs_http_date_parse(s, n, &t) == 0 && t == f->mtime;
        if (!match)
            return 200;
    }
    int r = hs_http_range_parse(cond->range, cond->range_len, f->size, first, last);
    if (r == 1)
        return 206;
    *first = 0;
    *last = f->size ? f->size - 1 : 0;
    return r == HS_ETOOBIG ? 416 : 200;
}
