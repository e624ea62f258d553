/* File cache tests, each in a fresh mkdtemp directory and with a clock of their own (the
 * cache takes now_ms from its caller): an entry is trusted for valid_ms, then a file replaced,
 * rewritten, truncated, grown or deleted is seen; small files come from memory and hold no
 * descriptor; entries and descriptors stay within their limits (counted in /proc/self/fd);
 * idle entries are swept; an entry in use outlives its eviction; the root's rules hold. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/file_cache.h"
#include "core/hs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

struct fx {
    char dir[64];
    char path[128];
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    strcpy(fx->dir, "/tmp/hs-file-cache-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    int r = system(cmd);
    free(fx);
    return r == 0 ? 0 : -1;
}

/* Writes len bytes of c into dir/name (via a temporary file renamed over it when replace is
 * set, so the name gets a new inode; in place otherwise). Returns the path in fx->path. */
static const char *put(struct fx *fx, const char *name, char c, size_t len, int replace)
{
    char tmp[160];
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->dir, name);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s", fx->dir, name);
    FILE *f = fopen(replace ? tmp : fx->path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < len; i++)
        fputc(c, f);
    assert_int_equal(fclose(f), 0);
    if (replace)
        assert_int_equal(rename(tmp, fx->path), 0);
    return fx->path;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* The body an entry gives: its memory, or pread of its descriptor. */
static size_t body(struct hs_file_entry *e, char *buf, size_t cap)
{
    if (e->data) {
        assert_true(e->f.size <= cap);
        memcpy(buf, e->data, (size_t)e->f.size);
        return (size_t)e->f.size;
    }
    /* An evbuffer that does not drain to a descriptor maps the segment: its bytes readable. */
    struct evbuffer *out = evbuffer_new();
    struct evbuffer_file_segment *seg = hs_file_entry_segment((struct hs_file_entry *)e);
    assert_non_null(seg);
    assert_int_equal(evbuffer_add_file_segment(out, seg, 0, (ev_off_t)e->f.size), 0);
    int n = evbuffer_remove(out, buf, cap);
    evbuffer_free(out);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_small_from_memory_with_headers(void **state)
{
    struct fx *fx = *state;
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    const char *p = put(fx, "a.txt", 'a', 1024, 0);
    struct hs_file_entry *e;
    assert_int_equal(hs_file_cache_get(fc, p, fx->dir, 1000, &e), 0);
    assert_non_null(e->data);
    assert_int_equal(e->f.fd, -1);
    assert_int_equal(e->f.size, 1024);
    assert_int_equal(e->data[0], 'a');
    assert_int_equal(e->data[1023], 'a');
    char want[HS_FILE_CACHE_HEADERS];
    snprintf(want, sizeof want, "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n",
             e->f.last_modified, e->f.etag);
    assert_string_equal(e->headers, want);
    assert_int_equal(e->headers_len, strlen(want));
    unsigned entries, fds;
    size_t bytes;
    hs_file_cache_counts(fc, &entries, &fds, &bytes);
    assert_int_equal(entries, 1);
    assert_int_equal(fds, 0);
    assert_int_equal(bytes, 1024);
    struct hs_file_entry *again;
    assert_int_equal(hs_file_cache_get(fc, p, fx->dir, 1500, &again), 0);
    assert_ptr_equal(again, e);
    hs_file_entry_unref(again);
    hs_file_entry_unref(e);
    hs_file_cache_free(fc);
}

static void test_large_keeps_descriptor(void **state)
{
    struct fx *fx = *state;
    int before = open_fds();
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    const char *p = put(fx, "big.bin", 'b', HS_FILE_CACHE_SMALL + 1, 0);
    struct hs_file_entry *e;
    assert_int_equal(hs_file_cache_get(fc, p, NULL, 0, &e), 0);
    assert_null(e->data);
    assert_true(e->f.fd >= 0);
    assert_int_equal(open_fds(), before + 1);
    static char buf[HS_FILE_CACHE_SMALL + 16];
    assert_int_equal(body(e, buf, sizeof buf), HS_FILE_CACHE_SMALL + 1);
    hs_file_entry_unref(e);
    assert_int_equal(open_fds(), before + 1); /* the cache keeps it */
    hs_file_cache_free(fc);
    assert_int_equal(open_fds(), before);
}

/* A name renamed over, rewritten in place, truncated, grown, deleted: the old file is served
 * until valid_ms has passed since the last check, the new state at valid_ms. */
static void test_changes_seen_after_valid(void **state)
{
    struct fx *fx = *state;
    static char buf[128 * 1024];
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    long long t = 10000;
    for (int large = 0; large <= 1; large++) {
        size_t base = large ? 40000 : 100;
        const char *p = put(fx, "f", 'a', base, 0);
        struct hs_file_entry *e;
        struct {
            char c;
            size_t len;
            int replace;
        } steps[] = {
            {'b', base, 1},     /* renamed over */
            {'c', base, 0},     /* rewritten in place, same size */
            {'d', base / 2, 0}, /* truncated */
            {'e', base * 2, 0}, /* grown */
            {'f', base * 2, 1}, /* renamed over again */
        };
        char prev = 'a';
        size_t prev_len = base;
        assert_int_equal(hs_file_cache_get(fc, p, fx->dir, t, &e), 0);
        hs_file_entry_unref(e);
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            /* mtimes are nanoseconds, but a coarse file system clock could give the same
             * value twice: the change time or size tells then, or the inode. */
            put(fx, "f", steps[i].c, steps[i].len, steps[i].replace);
            assert_int_equal(hs_file_cache_get(fc, p, fx->dir, t + 999, &e), 0);
            if (!large || steps[i].replace) {
                /* Memory, or the old inode kept open: the old file, whole. */
                assert_int_equal(e->f.size, prev_len);
                size_t n = body(e, buf, sizeof buf);
                assert_int_equal(n, prev_len);
                assert_int_equal(buf[0], prev);
                assert_int_equal(buf[n - 1], prev);
            }
            hs_file_entry_unref(e);
            t += HS_FILE_CACHE_VALID_MS;
            assert_int_equal(hs_file_cache_get(fc, p, fx->dir, t, &e), 0);
            assert_int_equal(e->f.size, steps[i].len);
            assert_int_equal(body(e, buf, sizeof buf), steps[i].len);
            assert_int_equal(buf[0], steps[i].c);
            assert_int_equal(buf[steps[i].len - 1], steps[i].c);
            assert_int_equal(e->data != NULL, !large);
            hs_file_entry_unref(e);
            prev = steps[i].c;
            prev_len = steps[i].len;
        }
        assert_int_equal(unlink(p), 0);
        assert_int_equal(hs_file_cache_get(fc, p, fx->dir, t + 1, &e), 0); /* still trusted */
        hs_file_entry_unref(e);
        t += HS_FILE_CACHE_VALID_MS;
        assert_int_equal(hs_file_cache_get(fc, p, fx->dir, t, &e), -ENOENT);
        unsigned entries;
        hs_file_cache_counts(fc, &entries, NULL, NULL);
        assert_int_equal(entries, 0);
    }
    hs_file_cache_free(fc);
}

static void test_limits_bound_entries_and_fds(void **state)
{
    struct fx *fx = *state;
    struct hs_file_cache_limits lim = {.entries = 8, .fds = 3, .small = 64};
    int before = open_fds();
    struct hs_file_cache *fc = hs_file_cache_new(NULL, &lim);
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "f%02d", i);
        const char *p = put(fx, name, 'x', i % 2 ? 100 : 10, 0); /* odd: over small */
        struct hs_file_entry *e;
        assert_int_equal(hs_file_cache_get(fc, p, fx->dir, i, &e), 0);
        hs_file_entry_unref(e);
        unsigned entries, fds;
        size_t bytes;
        hs_file_cache_counts(fc, &entries, &fds, &bytes);
        assert_true(entries <= 8);
        assert_true(fds <= 3);
        assert_true(bytes <= 8 * 10);
        assert_true(open_fds() <= before + 3);
    }
    /* The most recent are kept: f39 (a descriptor) is a hit, f00 a miss. */
    struct hs_file_entry *e;
    snprintf(fx->path, sizeof fx->path, "%s/f39", fx->dir);
    assert_int_equal(hs_file_cache_get(fc, fx->path, fx->dir, 40, &e), 0);
    assert_int_equal(open_fds(), before + 3);
    hs_file_entry_unref(e);
    hs_file_cache_free(fc);
    assert_int_equal(open_fds(), before);
}

static void test_sweep_drops_idle(void **state)
{
    struct fx *fx = *state;
    int before = open_fds();
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    struct hs_file_entry *e;
    assert_int_equal(hs_file_cache_get(fc, put(fx, "old", 'o', 50000, 0), NULL, 0, &e), 0);
    hs_file_entry_unref(e);
    assert_int_equal(hs_file_cache_get(fc, put(fx, "new", 'n', 10, 0), NULL, 5000, &e), 0);
    hs_file_entry_unref(e);
    assert_int_equal(hs_file_cache_sweep(fc, HS_FILE_CACHE_IDLE_MS - 1), 2);
    assert_int_equal(hs_file_cache_sweep(fc, HS_FILE_CACHE_IDLE_MS), 1);
    assert_int_equal(open_fds(), before); /* old's descriptor went with it */
    assert_int_equal(hs_file_cache_sweep(fc, 5000 + HS_FILE_CACHE_IDLE_MS), 0);
    hs_file_cache_free(fc);
}

/* An entry in use outlives its eviction and the cache itself. */
static void test_reference_outlives_eviction(void **state)
{
    struct fx *fx = *state;
    struct hs_file_cache_limits lim = {.entries = 1};
    struct hs_file_cache *fc = hs_file_cache_new(NULL, &lim);
    struct hs_file_entry *a, *b;
    assert_int_equal(hs_file_cache_get(fc, put(fx, "a", 'a', 10, 0), NULL, 0, &a), 0);
    assert_int_equal(hs_file_cache_get(fc, put(fx, "b", 'b', 10, 0), NULL, 0, &b), 0);
    assert_int_equal(a->data[9], 'a');
    assert_int_equal(b->data[9], 'b');
    hs_file_cache_free(fc);
    assert_int_equal(a->data[0], 'a');
    hs_file_entry_unref(a);
    hs_file_entry_unref(b);
}

/* The root's rules are those of hs_http_file_open, on a first lookup and on every check: a
 * link leading out is refused, and a file swapped for such a link is refused once checked. */
static void test_root_rules(void **state)
{
    struct fx *fx = *state;
    char root[96], link[128], out[128];
    snprintf(root, sizeof root, "%s/www", fx->dir);
    assert_int_equal(mkdir(root, 0755), 0);
    snprintf(out, sizeof out, "%s/secret", fx->dir);
    put(fx, "secret", 's', 10, 0);
    put(fx, "www/page", 'p', 10, 0);
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    struct hs_file_entry *e;
    snprintf(link, sizeof link, "%s/abs", root);
    assert_int_equal(symlink(out, link), 0);
    assert_int_equal(hs_file_cache_get(fc, link, root, 0, &e), -EACCES);
    snprintf(link, sizeof link, "%s/www/page", fx->dir);
    assert_int_equal(hs_file_cache_get(fc, link, root, 0, &e), 0);
    hs_file_entry_unref(e);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink("../secret", link), 0);
    assert_int_equal(hs_file_cache_get(fc, link, root, HS_FILE_CACHE_VALID_MS, &e), -EACCES);
    /* Without a root the same path is another key, and allowed. */
    assert_int_equal(hs_file_cache_get(fc, link, NULL, HS_FILE_CACHE_VALID_MS, &e), 0);
    assert_int_equal(e->data[0], 's');
    hs_file_entry_unref(e);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/www", fx->dir);
    assert_int_equal(hs_file_cache_get(fc, dir, NULL, 0, &e), -EISDIR);
    hs_file_cache_free(fc);
}

/* One segment per entry, shared by every output that sends the file: no descriptor is made
 * per response. */
/* The entry of big.bin, 100 KiB of ch (sent from its descriptor), fetched from fc at 1 s. */
static struct hs_file_entry *big_entry(struct fx *fx, struct hs_file_cache *fc, char ch)
{
    const char *p = put(fx, "big.bin", ch, 100 * 1024, 0);
    struct hs_file_entry *e;
    assert_int_equal(hs_file_cache_get(fc, p, fx->dir, 1000, &e), 0);
    return e;
}

static void test_segment_shared_without_new_descriptors(void **state)
{
    struct fx *fx = *state;
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    struct hs_file_entry *e = big_entry(fx, fc, 'b');
    assert_null(e->data);
    struct evbuffer_file_segment *seg = hs_file_entry_segment(e);
    assert_non_null(seg);
    int fds = open_fds();
    struct evbuffer *outs[8];
    for (int i = 0; i < 8; i++) {
        outs[i] = evbuffer_new();
        assert_ptr_equal(hs_file_entry_segment(e), seg);
        assert_int_equal(evbuffer_add_file_segment(outs[i], seg, 1000 * i, 10), 0);
    }
    assert_int_equal(open_fds(), fds);
    char got[10];
    assert_int_equal(evbuffer_remove(outs[7], got, sizeof got), 10);
    assert_memory_equal(got, "bbbbbbbbbb", 10);
    for (int i = 0; i < 8; i++)
        evbuffer_free(outs[i]);
    hs_file_entry_unref(e);
    hs_file_cache_free(fc);
}

/* An output still sending from a file keeps its descriptor open after the entry has left the
 * cache (and the cache is gone); the last output to finish closes it. */
static void test_segment_outlives_the_cache(void **state)
{
    struct fx *fx = *state;
    int before = open_fds();
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    struct hs_file_entry *e = big_entry(fx, fc, 'c');
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(evbuffer_add_file_segment(out, hs_file_entry_segment(e), 0, 100 * 1024), 0);
    hs_file_entry_unref(e);
    hs_file_cache_free(fc);
    assert_int_equal(open_fds(), before + 1); /* the file, held by the output */
    char got[4];
    assert_int_equal(evbuffer_remove(out, got, sizeof got), 4);
    assert_memory_equal(got, "cccc", 4);
    evbuffer_free(out);
    assert_int_equal(open_fds(), before);
}

/* A segment asked for and never used goes with its entry. */
static void test_segment_unused_goes_with_the_entry(void **state)
{
    struct fx *fx = *state;
    int before = open_fds();
    struct hs_file_cache *fc = hs_file_cache_new(NULL, NULL);
    struct hs_file_entry *e = big_entry(fx, fc, 'd');
    assert_non_null(hs_file_entry_segment(e));
    hs_file_cache_free(fc);
    assert_int_equal(open_fds(), before + 1); /* the user's reference holds the entry */
    hs_file_entry_unref(e);
    assert_int_equal(open_fds(), before);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_small_from_memory_with_headers),
        FX_TEST(test_large_keeps_descriptor),
        FX_TEST(test_changes_seen_after_valid),
        FX_TEST(test_limits_bound_entries_and_fds),
        FX_TEST(test_sweep_drops_idle),
        FX_TEST(test_reference_outlives_eviction),
        FX_TEST(test_root_rules),
        FX_TEST(test_segment_shared_without_new_descriptors),
        FX_TEST(test_segment_outlives_the_cache),
        FX_TEST(test_segment_unused_goes_with_the_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
