/* File sink tests, each in a fresh mkdtemp directory: the file-name check one line per case
 * (names at the end of a guard page, so reading past len faults), then open/write/commit
 * against known SHA-256 vectors, what the directory holds at each step, abort, overwrite,
 * nested directories and a full disk (a 64 KiB tmpfs, when this process may mount one). */
/* sync_file_range and SYNC_FILE_RANGE_WRITE are Linux's: GNU. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/filesink.h"
#include "core/hs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- sync_file_range is wrapped (tests/CMakeLists.txt links this test with
 * --wrap=sync_file_range): each call the sink makes is recorded, then done. */

#define SFR_MAX 16
static struct {
    off_t off, len;
    unsigned flags;
} sfr_calls[SFR_MAX];
static int sfr_n;

int __real_sync_file_range(int fd, off_t off, off_t len, unsigned flags);
int __wrap_sync_file_range(int fd, off_t off, off_t len, unsigned flags);
int __wrap_sync_file_range(int fd, off_t off, off_t len, unsigned flags)
{
    if (sfr_n < SFR_MAX) {
        sfr_calls[sfr_n].off = off;
        sfr_calls[sfr_n].len = len;
        sfr_calls[sfr_n].flags = flags;
    }
    sfr_n++;
    return __real_sync_file_range(fd, off, len, flags);
}

#define B(lit) (lit), sizeof(lit) - 1
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define TMP_PREFIX ".hs-upload-"

static const char sha_abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char sha_empty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/* FIPS 180-2 vector: one million 'a'. */
static const char sha_million_a[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

/* ---- Guard page: bytes placed by guard_put() end exactly where a PROT_NONE page begins. */

static unsigned char *guard_base;
static size_t guard_page;

static int group_setup(void **state)
{
    void *p = NULL;

    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    if (posix_memalign(&p, guard_page, 2 * guard_page) != 0)
        return -1;
    guard_base = p;
    return mprotect(guard_base + guard_page, guard_page, PROT_NONE);
}

static int group_teardown(void **state)
{
    (void)state;
    mprotect(guard_base + guard_page, guard_page, PROT_READ | PROT_WRITE);
    free(guard_base);
    return 0;
}

static const char *guard_put(const void *src, size_t n)
{
    unsigned char *dst = guard_base + guard_page - n;

    assert_true(n <= guard_page);
    memcpy(dst, src, n);
    return (const char *)dst;
}

/* ---- Fixture: a fresh directory, removed with everything in it afterwards. */

struct fx {
    char dir[64];
    char mnt[128]; /* a tmpfs mounted by the test, unmounted by teardown */
};

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char sub[4096];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    strcpy(fx->dir, "/tmp/hs-filesink-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->mnt[0])
        umount(fx->mnt);
    remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* Entries of dir (not . or ..) whose names start with prefix. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static char *path_join(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* Reads the whole file at path into a new buffer (NUL-terminated); returns its size. */
static size_t slurp(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    return len;
}

static void assert_file(const char *path, const void *data, size_t len)
{
    char *got;
    size_t n = slurp(path, &got);
    assert_int_equal(n, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static struct hs_filesink *open_ok(const char *dir, const char *name)
{
    struct hs_filesink *f = NULL;
    const char *why = NULL;
    int r = hs_filesink_open(dir, name, strlen(name), &f, &why);
    if (r != 0)
        fail_msg("open %s/%s: %d %s", dir, name, r, why ? why : "");
    assert_non_null(f);
    assert_int_equal(hs_filesink_state(f), 0);
    return f;
}

/* ---- hs_filename_check */

struct name_case {
    const char *name;
    size_t len;
    const char *why; /* NULL: accepted */
};

static const char why_chars[] = "file name contains /, \\ or NUL";
static const char why_utf8[] = "file name is not UTF-8";
static const char why_dots[] = "file name is . or ..";

static const struct name_case name_cases[] = {
    {B("a"), NULL},
    {B("\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb.txt"), NULL}, /* файл.txt */
    {B("name with spaces.tar.gz"), NULL},
    {B(".hidden"), NULL},
    {B("..."), NULL},
    {B("\xf0\x9f\x98\x80"), NULL}, /* U+1F600, 4 bytes */
    {B("\xef\xbf\xbd"), NULL},     /* U+FFFD */
    {B("\xf4\x8f\xbf\xbf"), NULL}, /* U+10FFFF, the last code point */
    {B("\xed\x9f\xbf"), NULL},     /* U+D7FF, just below the surrogates */
    {B(""), "empty file name"},
    {B("."), why_dots},
    {B(".."), why_dots},
    {B("a/b"), why_chars},
    {B("/etc/x"), why_chars},
    {B("a\\b"), why_chars},
    {B("a\0b"), why_chars},
    {B("ab\0"), why_chars},
    {B("\xff"), why_utf8},
    {B("\x80"), why_utf8},             /* a lone continuation byte */
    {B("\xc0\xaf"), why_utf8},         /* overlong '/' */
    {B("\xe0\x80\xaf"), why_utf8},     /* overlong '/', 3 bytes */
    {B("\xf0\x80\x80\xaf"), why_utf8}, /* overlong '/', 4 bytes */
    {B("\xed\xa0\x80"), why_utf8},     /* U+D800, a surrogate */
    {B("\xed\xbf\xbf"), why_utf8},     /* U+DFFF */
    {B("\xf4\x90\x80\x80"), why_utf8}, /* U+110000 */
    {B("\xe2\x82"), why_utf8},         /* truncated */
    {B("a\xe2\x82"), why_utf8},        /* truncated at the end */
    {B("\xe2\x82x"), why_utf8},        /* continuation missing */
    {B("\xf8\x88\x80\x80\x80"), why_utf8},
};

static void check_name(const char *label, const char *name, size_t len, const char *want_why)
{
    const char *why = NULL;
    int r = hs_filename_check(guard_put(name, len), len, &why);

    if (want_why == NULL && r != 0)
        fail_msg("%s (%zu bytes) refused: %d %s", label, len, r, why ? why : "");
    if (want_why != NULL && (r != HS_EPROTO || why == NULL || strcmp(why, want_why) != 0))
        fail_msg("%s (%zu bytes): %d \"%s\", want HS_EPROTO \"%s\"", label, len, r,
                 why ? why : "(null)", want_why);
}

static void test_name_table(void **state)
{
    char label[32];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(name_cases); i++) {
        snprintf(label, sizeof label, "name case %zu", i);
        check_name(label, name_cases[i].name, name_cases[i].len, name_cases[i].why);
    }
}

static void test_name_length(void **state)
{
    char name[HS_FILENAME_MAX + 2];

    (void)state;
    memset(name, 'n', sizeof name);
    check_name("255 bytes", name, HS_FILENAME_MAX, NULL);
    check_name("256 bytes", name, HS_FILENAME_MAX + 1, "file name longer than 255 bytes");
    /* 255 bytes of two-byte characters (127 of them and one 'x'): fine. */
    for (size_t i = 0; i + 1 < HS_FILENAME_MAX; i += 2)
        memcpy(name + i, "\xc3\xa9", 2);
    name[HS_FILENAME_MAX - 1] = 'x';
    check_name("255 bytes of UTF-8", name, HS_FILENAME_MAX, NULL);
    /* len counts, not the NUL: a prefix of a longer buffer is checked alone. */
    check_name("prefix", "abc/def", 3, NULL);
}

/* ---- hs_filesink */

static void test_write_commit(void **state)
{
    struct fx *fx = *state;
    char path[256], hex[65];
    uint64_t bytes = 0;
    struct stat st;

    struct hs_filesink *f = open_ok(fx->dir, "abc.txt");
    assert_string_equal(hs_filesink_path(f), path_join(path, sizeof path, fx->dir, "abc.txt"));
    assert_int_equal(hs_filesink_write(f, "a", 1), 0);
    assert_int_equal(hs_filesink_write(f, "", 0), 0);
    assert_int_equal(hs_filesink_write(f, "bc", 2), 0);
    assert_int_equal(hs_filesink_size(f), 3);

    /* Before commit: the final name is absent, one temporary file holds the bytes. */
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_entries(fx->dir, ""), 1);
    assert_int_equal(count_entries(fx->dir, TMP_PREFIX), 1);

    memset(hex, 'z', sizeof hex);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_int_equal(bytes, 3);
    assert_string_equal(hex, sha_abc);
    assert_int_equal(hs_filesink_state(f), 1);
    assert_file(path, "abc", 3);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(count_entries(fx->dir, ""), 1);
    assert_int_equal(count_entries(fx->dir, TMP_PREFIX), 0);

    /* Committed once: further writes and commits fail and change nothing. */
    assert_true(hs_filesink_write(f, "x", 1) < 0);
    assert_true(hs_filesink_commit(f, &bytes, hex) < 0);
    hs_filesink_abort(f);
    hs_filesink_free(f);
    assert_file(path, "abc", 3);
    assert_int_equal(count_entries(fx->dir, ""), 1);
}

static void test_empty_file(void **state)
{
    struct fx *fx = *state;
    char path[256], hex[65];
    uint64_t bytes = 99;

    struct hs_filesink *f = open_ok(fx->dir, "empty");
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_int_equal(bytes, 0);
    assert_string_equal(hex, sha_empty);
    hs_filesink_free(f);
    assert_file(path_join(path, sizeof path, fx->dir, "empty"), "", 0);
    assert_int_equal(count_entries(fx->dir, ""), 1);
}

/* The digest runs across writes of any size. */
static void test_million_a(void **state)
{
    struct fx *fx = *state;
    char path[256], hex[65];
    uint64_t bytes = 0;
    size_t done = 0, step = 1;
    char *chunk = malloc(10000);

    assert_non_null(chunk);
    memset(chunk, 'a', 10000);
    struct hs_filesink *f = open_ok(fx->dir, "a.bin");
    while (done < 1000000) {
        size_t n = step < 1000000 - done ? step : 1000000 - done;
        assert_int_equal(hs_filesink_write(f, chunk, n), 0);
        done += n;
        step = step * 3 % 9973 + 1; /* 1, 4, 13, 40, ... uneven sizes up to 9973 */
    }
    assert_int_equal(hs_filesink_size(f), 1000000);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_int_equal(bytes, 1000000);
    assert_string_equal(hex, sha_million_a);
    hs_filesink_free(f);
    char *got;
    assert_int_equal(slurp(path_join(path, sizeof path, fx->dir, "a.bin"), &got), 1000000);
    assert_int_equal(strspn(got, "a"), 1000000);
    free(got);
    free(chunk);
}

static void test_utf8_name(void **state)
{
    struct fx *fx = *state;
    static const char name[] = "\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb.txt"; /* файл.txt */
    char path[256], hex[65];
    uint64_t bytes;

    struct hs_filesink *f = open_ok(fx->dir, name);
    assert_int_equal(hs_filesink_write(f, "abc", 3), 0);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    hs_filesink_free(f);
    assert_file(path_join(path, sizeof path, fx->dir, name), "abc", 3);
}

static void test_abort_and_free(void **state)
{
    struct fx *fx = *state;
    char path[256], hex[65];
    uint64_t bytes;

    /* Abort removes the temporary file; later calls fail; abort is idempotent. */
    struct hs_filesink *f = open_ok(fx->dir, "gone");
    assert_int_equal(hs_filesink_write(f, "data", 4), 0);
    assert_int_equal(count_entries(fx->dir, TMP_PREFIX), 1);
    hs_filesink_abort(f);
    assert_int_equal(hs_filesink_state(f), -1);
    assert_int_equal(count_entries(fx->dir, ""), 0);
    assert_true(hs_filesink_write(f, "x", 1) < 0);
    assert_true(hs_filesink_commit(f, &bytes, hex) < 0);
    hs_filesink_abort(f);
    hs_filesink_free(f);
    assert_int_equal(count_entries(fx->dir, ""), 0);
    assert_int_equal(access(path_join(path, sizeof path, fx->dir, "gone"), F_OK), -1);

    /* Free without commit aborts. */
    f = open_ok(fx->dir, "gone");
    assert_int_equal(hs_filesink_write(f, "data", 4), 0);
    hs_filesink_free(f);
    assert_int_equal(count_entries(fx->dir, ""), 0);

    /* Two sinks for one name: two temporary files, no clash. */
    struct hs_filesink *g = open_ok(fx->dir, "same");
    struct hs_filesink *h = open_ok(fx->dir, "same");
    assert_int_equal(count_entries(fx->dir, TMP_PREFIX), 2);
    hs_filesink_free(g);
    hs_filesink_free(h);
    assert_int_equal(count_entries(fx->dir, ""), 0);

    hs_filesink_free(NULL);
}

/* The new file replaces the old one by rename: whoever has the old one open keeps reading
 * the old bytes, the name never shows a mix. */
static void test_overwrite(void **state)
{
    struct fx *fx = *state;
    char path[256], hex[65], old[16];
    uint64_t bytes;
    struct stat before, after;

    path_join(path, sizeof path, fx->dir, "x");
    FILE *w = fopen(path, "wb");
    assert_non_null(w);
    fputs("old contents", w);
    fclose(w);
    int ofd = open(path, O_RDONLY);
    assert_true(ofd >= 0);
    assert_int_equal(fstat(ofd, &before), 0);

    struct hs_filesink *f = open_ok(fx->dir, "x");
    assert_int_equal(hs_filesink_write(f, "abc", 3), 0);
    assert_file(path, "old contents", 12);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_string_equal(hex, sha_abc);
    hs_filesink_free(f);

    assert_file(path, "abc", 3);
    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_ino != before.st_ino);
    assert_int_equal(pread(ofd, old, sizeof old, 0), 12);
    assert_memory_equal(old, "old contents", 12);
    close(ofd);
    assert_int_equal(count_entries(fx->dir, ""), 1);
}

static void test_nested_dir(void **state)
{
    struct fx *fx = *state;
    char dir[256], path[300], hex[65];
    uint64_t bytes;
    struct stat st;

    snprintf(dir, sizeof dir, "%s/a/b/c", fx->dir);
    struct hs_filesink *f = open_ok(dir, "n.txt");
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(count_entries(dir, TMP_PREFIX), 1);
    assert_int_equal(hs_filesink_write(f, "abc", 3), 0);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    hs_filesink_free(f);
    assert_file(path_join(path, sizeof path, dir, "n.txt"), "abc", 3);
    assert_int_equal(count_entries(dir, ""), 1);

    /* An existing directory with a trailing slash is fine too. */
    snprintf(dir, sizeof dir, "%s/a/", fx->dir);
    f = open_ok(dir, "m");
    hs_filesink_free(f);
}

static void test_open_refused(void **state)
{
    struct fx *fx = *state;
    struct hs_filesink *f = NULL;
    const char *why = NULL;
    char dir[256], path[256];

    /* A bad name: nothing is created, not even the directory. */
    snprintf(dir, sizeof dir, "%s/never", fx->dir);
    assert_int_equal(hs_filesink_open(dir, B("../escape"), &f, &why), HS_EPROTO);
    assert_string_equal(why, why_chars);
    assert_int_equal(hs_filesink_open(dir, B(".."), &f, &why), HS_EPROTO);
    assert_string_equal(why, why_dots);
    assert_int_equal(hs_filesink_open(dir, B("\xc0\xaf"), &f, &why), HS_EPROTO);
    assert_string_equal(why, why_utf8);
    assert_null(f);
    assert_int_equal(count_entries(fx->dir, ""), 0);

    /* A directory that cannot exist: a negated errno and its text. */
    path_join(path, sizeof path, fx->dir, "file");
    FILE *w = fopen(path, "wb");
    assert_non_null(w);
    fclose(w);
    snprintf(dir, sizeof dir, "%s/file/sub", fx->dir);
    why = NULL;
    assert_int_equal(hs_filesink_open(dir, B("x"), &f, &why), -ENOTDIR);
    assert_string_equal(why, strerror(ENOTDIR));
    assert_null(f);
    assert_int_equal(count_entries(fx->dir, ""), 1);
}

/* Checks what a write error must leave: the same error from every later call, no file. */
static void check_failed(struct fx *fx, const char *dir, struct hs_filesink *f, int err)
{
    char path[300], hex[65];
    uint64_t bytes;

    (void)fx;
    assert_int_equal(hs_filesink_state(f), -1);
    assert_int_equal(count_entries(dir, ""), 0);
    assert_int_equal(hs_filesink_write(f, "x", 1), err);
    assert_int_equal(hs_filesink_write(f, "", 0), err);
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), err);
    assert_int_equal(hs_filesink_state(f), -1);
    hs_filesink_abort(f);
    assert_int_equal(hs_filesink_write(f, "x", 1), err);
    hs_filesink_free(f);
    assert_int_equal(count_entries(dir, ""), 0);
    assert_int_equal(access(path_join(path, sizeof path, dir, "big"), F_OK), -1);
}

static void test_disk_full(void **state)
{
    struct fx *fx = *state;
    char chunk[16384];
    int r = 0;

    snprintf(fx->mnt, sizeof fx->mnt, "%s/small", fx->dir);
    assert_int_equal(mkdir(fx->mnt, 0755), 0);
    if (mount("tmpfs", fx->mnt, "tmpfs", 0, "size=64k") != 0) {
        fx->mnt[0] = '\0';
        print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    memset(chunk, 'd', sizeof chunk);
    struct hs_filesink *f = open_ok(fx->mnt, "big");
    for (int i = 0; i < 64 && r == 0; i++)
        r = hs_filesink_write(f, chunk, sizeof chunk);
    assert_int_equal(r, -ENOSPC);
    check_failed(fx, fx->mnt, f, -ENOSPC);
}

/* The same through RLIMIT_FSIZE, which needs no privilege: the write fails with EFBIG after a
 * short write. */
static void test_file_too_big(void **state)
{
    struct fx *fx = *state;
    char chunk[16384];
    struct rlimit old, small;

    memset(chunk, 'd', sizeof chunk);
    struct hs_filesink *f = open_ok(fx->dir, "big");
    assert_int_equal(hs_filesink_write(f, chunk, 1000), 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 10000;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int r = hs_filesink_write(f, chunk, sizeof chunk);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(r, -EFBIG);
    check_failed(fx, fx->dir, f, -EFBIG);
}

/* Write-back is started for each whole HS_FILESINK_FLUSH_AFTER window as the file grows, never
 * waited for, never for a partial window, and the file is still exact. */
static void test_writeback_windows(void **state)
{
    struct fx *fx = *state;
    const size_t w = HS_FILESINK_FLUSH_AFTER, chunk = 100000, total = 2 * w + w / 2;
    char path[256], hex[65];
    uint64_t bytes = 0;
    unsigned char *data = malloc(2 * w + 1);
    assert_non_null(data);
    for (size_t i = 0; i < 2 * w + 1; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);

    /* Chunks that straddle the window edges. */
    sfr_n = 0;
    struct hs_filesink *f = open_ok(fx->dir, "windows.bin");
    for (size_t done = 0; done < total;) {
        size_t n = total - done < chunk ? total - done : chunk;
        assert_int_equal(hs_filesink_write(f, data + done % w, n), 0);
        done += n;
        assert_int_equal(sfr_n, (int)(done / w));
    }
    assert_int_equal(sfr_n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sfr_calls[i].off, (off_t)(i * w));
        assert_int_equal(sfr_calls[i].len, (off_t)w);
        assert_int_equal(sfr_calls[i].flags, SYNC_FILE_RANGE_WRITE);
    }
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_int_equal(bytes, total);
    hs_filesink_free(f);
    struct stat st;
    assert_int_equal(stat(path_join(path, sizeof path, fx->dir, "windows.bin"), &st), 0);
    assert_int_equal(st.st_size, (off_t)total);

    /* One write over two windows and a byte: one call for both windows. */
    sfr_n = 0;
    f = open_ok(fx->dir, "one.bin");
    assert_int_equal(hs_filesink_write(f, data, 2 * w + 1), 0);
    assert_int_equal(sfr_n, 1);
    assert_int_equal(sfr_calls[0].off, 0);
    assert_int_equal(sfr_calls[0].len, (off_t)(2 * w));
    assert_int_equal(hs_filesink_commit(f, &bytes, hex), 0);
    assert_file(path_join(path, sizeof path, fx->dir, "one.bin"), data, 2 * w + 1);
    hs_filesink_free(f);
    free(data);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_table), cmocka_unit_test(test_name_length),
        FX_TEST(test_write_commit),        FX_TEST(test_empty_file),
        FX_TEST(test_million_a),           FX_TEST(test_utf8_name),
        FX_TEST(test_abort_and_free),      FX_TEST(test_overwrite),
        FX_TEST(test_nested_dir),          FX_TEST(test_open_refused),
        FX_TEST(test_disk_full),           FX_TEST(test_file_too_big),
        FX_TEST(test_writeback_windows),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
