/* Shared dictionary tests: the arena allocator (random alloc/free against its own consistency
 * check, merging, reuse), and the dictionary on a real region: every call, TTL rules on a moved
 * clock, LRU eviction order with expired entries first, safe_set, isolation of named
 * dictionaries, lists, keys, compare-and-set from several processes at once, and recovery
 * after a process died holding the lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/shared.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the arena ---- */

static void test_arena_random(void **state)
{
    (void)state;
    size_t size = 256 * 1024;
    uint64_t *mem = malloc(size);
    assert_non_null(mem);
    struct hs_arena *a = hs_arena_init(mem, size);
    assert_non_null(a);
    size_t cap = hs_arena_capacity(a);
    assert_int_equal(hs_arena_used(a), 0);
    assert_int_equal(hs_arena_check(a), 0);
    uint32_t offs[512] = {0};
    unsigned char fills[512];
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t i = (seed >> 8) % 512;
        if (offs[i]) {
            /* Its bytes are still ours. */
            unsigned char *p = hs_arena_ptr(a, offs[i]);
            size_t n = hs_arena_block_size(a, offs[i]);
            for (size_t j = 0; j < n; j += 7)
                assert_int_equal(p[j], fills[i]);
            hs_arena_free(a, offs[i]);
            offs[i] = 0;
        } else {
            size_t n = 1 + (seed >> 4) % ((seed & 1) ? 64 : 4000);
            offs[i] = hs_arena_alloc(a, n);
            if (offs[i]) {
                assert_int_equal(offs[i] % HS_ARENA_ALIGN, 0);
                assert_true(hs_arena_block_size(a, offs[i]) >= n);
                fills[i] = (unsigned char)round;
                memset(hs_arena_ptr(a, offs[i]), fills[i], hs_arena_block_size(a, offs[i]));
            }
        }
        if (round % 997 == 0)
            assert_int_equal(hs_arena_check(a), 0);
    }
    for (size_t i = 0; i < 512; i++)
        hs_arena_free(a, offs[i]);
    assert_int_equal(hs_arena_check(a), 0);
    /* Everything merged back into one block. */
    assert_int_equal(hs_arena_used(a), 0);
    assert_int_equal(hs_arena_largest_free(a), cap - HS_ARENA_OVERHEAD);
    free(mem);
}

static void test_arena_full_and_merge(void **state)
{
    (void)state;
    size_t size = 64 * 1024;
    uint64_t *mem = malloc(size);
    struct hs_arena *a = hs_arena_init(mem, size);
    uint32_t o[64];
    size_t n = 0;
    while (n < 64 && (o[n] = hs_arena_alloc(a, 1500)) != 0)
        n++;
    assert_true(n > 35 && n < 64);
    assert_int_equal(hs_arena_alloc(a, 1500), 0);
    assert_int_equal(hs_arena_alloc(a, (size_t)1 << 31), 0);
    /* Two neighbours freed make room for a block of twice the size. */
    hs_arena_free(a, o[10]);
    hs_arena_free(a, o[11]);
    assert_int_equal(hs_arena_check(a), 0);
    uint32_t big = hs_arena_alloc(a, 3000);
    assert_int_equal(big, o[10]);
    assert_int_equal(hs_arena_check(a), 0);
    assert_null(hs_arena_init(mem, 100));
    free(mem);
}

/* ---- dictionaries ---- */

static struct hs_shared *region;
static struct hs_shared_dict *dflt, *small, *other;

static int setup(void **state)
{
    (void)state;
    struct hs_shared_spec specs[2];
    memset(specs, 0, sizeof specs);
    snprintf(specs[0].name, sizeof specs[0].name, "small");
    specs[0].size = 64 * 1024;
    specs[0].max_value = 4096;
    snprintf(specs[1].name, sizeof specs[1].name, "other");
    specs[1].size = 256 * 1024;
    region = hs_shared_create(specs, 2, NULL);
    assert_non_null(region);
    assert_ptr_equal(region, hs_shared_region());
    dflt = hs_shared_dict(region, "default");
    small = hs_shared_dict(region, "small");
    other = hs_shared_dict(region, "other");
    assert_non_null(dflt);
    assert_non_null(small);
    assert_non_null(other);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hs_shared_free(region);
    assert_null(hs_shared_region());
    return 0;
}

static struct hs_shared_value str(const char *s)
{
    struct hs_shared_value v = {.type = HS_SHARED_STRING, .str = s, .len = strlen(s)};
    return v;
}

static struct hs_shared_value number(double n)
{
    struct hs_shared_value v = {.type = HS_SHARED_NUMBER, .num = n};
    return v;
}

static int set(struct hs_shared_dict *d, const char *k, const char *s, double ttl, int mode)
{
    struct hs_shared_value v = str(s);
    return hs_shared_store(d, k, strlen(k), &v, ttl, mode);
}

/* The string at k ("" when absent: tests use no empty values). */
static const char *get(struct hs_shared_dict *d, const char *k)
{
    static char buf[8192];
    struct hs_shared_value v = {.buf = buf, .cap = sizeof buf - 1};
    if (hs_shared_get(d, k, strlen(k), &v) != 0)
        return "";
    if (v.type == HS_SHARED_NUMBER)
        snprintf(buf, sizeof buf, "%g", v.num);
    else
        buf[v.len] = '\0';
    return buf;
}

static void test_region(void **state)
{
    (void)state;
    assert_string_equal(hs_shared_dict_name(hs_shared_dict_at(region, 0)), "default");
    assert_string_equal(hs_shared_dict_name(hs_shared_dict_at(region, 1)), "small");
    assert_null(hs_shared_dict_at(region, 3));
    assert_null(hs_shared_dict(region, "nope"));
    assert_int_equal(hs_shared_max_value(dflt), HS_SHARED_DEFAULT_MAX_VALUE);
    assert_int_equal(hs_shared_max_value(small), 4096);
    assert_true(hs_shared_name_ok("cache_2"));
    assert_false(hs_shared_name_ok("a-b"));
    assert_false(hs_shared_name_ok(""));
    struct hs_shared_spec bad = {.name = "x y", .size = 1 << 20};
    assert_null(hs_shared_create(&bad, 1, NULL));
    assert_int_equal(errno, EINVAL);
    char out[2048];
    size_t n = hs_shared_stats_write(region, out, sizeof out);
    assert_int_equal(n, strlen(out));
    assert_non_null(strstr(out, "dict name=default size=8388608 "));
    assert_non_null(strstr(out, "dict name=small size=65536 "));
}

static void test_store_modes(void **state)
{
    (void)state;
    assert_int_equal(set(dflt, "k", "one", 0, HS_SHARED_SET), 0);
    assert_string_equal(get(dflt, "k"), "one");
    assert_int_equal(set(dflt, "k", "two", 0, HS_SHARED_ADD), -EEXIST);
    assert_int_equal(set(dflt, "new", "x", 0, HS_SHARED_REPLACE), -ENOENT);
    assert_string_equal(get(dflt, "new"), "");
    assert_int_equal(set(dflt, "k", "three", 0, HS_SHARED_REPLACE), 0);
    assert_string_equal(get(dflt, "k"), "three");
    assert_int_equal(set(dflt, "a", "x", 0, HS_SHARED_ADD), 0);
    /* A value grows past its block: moved, not truncated. */
    char big[3000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(set(dflt, "k", big, 0, HS_SHARED_SET), 0);
    assert_string_equal(get(dflt, "k"), big);
    /* Limits. */
    char key[HS_SHARED_MAX_KEY + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(set(dflt, key, "x", 0, HS_SHARED_SET), -E2BIG);
    assert_int_equal(set(dflt, "", "x", 0, HS_SHARED_SET), -E2BIG);
    char *huge = malloc(HS_SHARED_DEFAULT_MAX_VALUE + 2);
    memset(huge, 'h', HS_SHARED_DEFAULT_MAX_VALUE + 1);
    huge[HS_SHARED_DEFAULT_MAX_VALUE + 1] = '\0';
    assert_int_equal(set(dflt, "huge", huge, 0, HS_SHARED_SET), -E2BIG);
    huge[HS_SHARED_DEFAULT_MAX_VALUE] = '\0'; /* exactly the maximum fits */
    assert_int_equal(set(dflt, "huge", huge, 0, HS_SHARED_SET), 0);
    /* A small buffer is told the length it needs. */
    char tiny[4];
    struct hs_shared_value v = {.buf = tiny, .cap = sizeof tiny};
    assert_int_equal(hs_shared_get(dflt, "huge", 4, &v), -ENOBUFS);
    assert_int_equal(v.len, HS_SHARED_DEFAULT_MAX_VALUE);
    free(huge);
    assert_int_equal(hs_shared_delete(dflt, "huge", 4), 0);
    assert_int_equal(hs_shared_delete(dflt, "huge", 4), 0);
    hs_shared_flush_all(dflt);
    assert_string_equal(get(dflt, "k"), "");
}

static void test_cas(void **state)
{
    (void)state;
    struct hs_shared_value none = {.type = HS_SHARED_NONE};
    struct hs_shared_value a = str("a"), b = str("b"), one = number(1);
    /* Old nil: only when absent. */
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &none, &a, 0), 0);
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &none, &b, 0), HS_SHARED_ECHANGED);
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &b, &a, 0), HS_SHARED_ECHANGED);
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &one, &a, 0), HS_SHARED_ECHANGED);
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &a, &b, 0), 0);
    assert_string_equal(get(dflt, "c"), "b");
    /* New nil: delete. */
    assert_int_equal(hs_shared_cas(dflt, "c", 1, &b, &none, 0), 0);
    assert_string_equal(get(dflt, "c"), "");
}

static void test_ttl_rules(void **state)
{
    (void)state;
    double ttl, r;
    assert_int_equal(set(dflt, "t", "v", 10, HS_SHARED_SET), 0);
    assert_int_equal(hs_shared_ttl(dflt, "t", 1, &ttl), 0);
    assert_true(ttl > 9.9 && ttl <= 10);
    /* set replaces the expiry: no ttl means none. */
    assert_int_equal(set(dflt, "t", "w", 0, HS_SHARED_SET), 0);
    assert_int_equal(hs_shared_ttl(dflt, "t", 1, &ttl), 0);
    assert_true(ttl == 0);
    assert_int_equal(hs_shared_expire(dflt, "t", 1, 5), 0);
    assert_int_equal(hs_shared_ttl(dflt, "t", 1, &ttl), 0);
    assert_true(ttl > 4.9 && ttl <= 5);
    assert_int_equal(hs_shared_expire(dflt, "none", 4, 5), -ENOENT);
    assert_int_equal(hs_shared_ttl(dflt, "none", 4, &ttl), -ENOENT);
    /* incr: the ttl applies when it creates the key; an existing key keeps its expiry. */
    assert_int_equal(hs_shared_incr(dflt, "n", 1, 1, 0, 10, &r), 0);
    assert_true(r == 1);
    hs_shared_debug_advance(6);
    assert_int_equal(hs_shared_incr(dflt, "n", 1, 1, 0, 100, &r), 0);
    assert_true(r == 2);
    assert_int_equal(hs_shared_ttl(dflt, "n", 1, &ttl), 0);
    assert_true(ttl > 3.9 && ttl <= 4);
    assert_string_equal(get(dflt, "t"), ""); /* its 5 s are over */
    hs_shared_debug_advance(4.5);
    assert_string_equal(get(dflt, "n"), "");
    assert_int_equal(hs_shared_incr(dflt, "n", 1, 5, 100, 0, &r), 0);
    assert_true(r == 105);
    assert_int_equal(set(dflt, "s", "x", 0, HS_SHARED_SET), 0);
    assert_int_equal(hs_shared_incr(dflt, "s", 1, 1, 0, 0, &r), HS_SHARED_ENOTNUM);
    hs_shared_flush_all(dflt);
}

static void test_lists(void **state)
{
    (void)state;
    size_t n;
    struct hs_shared_value a = str("a"), two = number(2), z = str("z");
    assert_int_equal(hs_shared_push(dflt, "l", 1, &a, 0, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(hs_shared_push(dflt, "l", 1, &two, 0, &n), 0);
    assert_int_equal(hs_shared_push(dflt, "l", 1, &z, 1, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(hs_shared_llen(dflt, "l", 1, &n), 0);
    assert_int_equal(n, 3);
    char buf[16];
    struct hs_shared_value out = {.buf = buf, .cap = sizeof buf};
    assert_int_equal(hs_shared_pop(dflt, "l", 1, 1, &out), 0);
    assert_int_equal(out.type, HS_SHARED_STRING);
    assert_memory_equal(out.buf, "z", 1);
    assert_int_equal(hs_shared_pop(dflt, "l", 1, 0, &out), 0);
    assert_int_equal(out.type, HS_SHARED_NUMBER);
    assert_true(out.num == 2);
    assert_int_equal(hs_shared_pop(dflt, "l", 1, 0, &out), 0);
    assert_memory_equal(out.buf, "a", 1);
    /* The key goes with its last element. */
    assert_int_equal(hs_shared_pop(dflt, "l", 1, 0, &out), -ENOENT);
    assert_int_equal(hs_shared_llen(dflt, "l", 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(set(dflt, "s", "x", 0, HS_SHARED_SET), 0);
    assert_int_equal(hs_shared_push(dflt, "s", 1, &a, 0, &n), HS_SHARED_ENOTLIST);
    assert_int_equal(hs_shared_pop(dflt, "s", 1, 0, &out), HS_SHARED_ENOTLIST);
    assert_int_equal(hs_shared_llen(dflt, "s", 1, &n), HS_SHARED_ENOTLIST);
    /* get sees a list as a list, with its length. */
    assert_int_equal(hs_shared_push(dflt, "l", 1, &a, 0, &n), 0);
    assert_int_equal(hs_shared_get(dflt, "l", 1, &out), 0);
    assert_int_equal(out.type, HS_SHARED_LIST);
    hs_shared_flush_all(dflt);
    struct hs_shared_stats st;
    hs_shared_stats(dflt, &st);
    assert_int_equal(st.used, 0);
}

static void test_keys(void **state)
{
    (void)state;
    assert_int_equal(set(dflt, "k1", "x", 0, HS_SHARED_SET), 0);
    assert_int_equal(set(dflt, "k2", "x", 0, HS_SHARED_SET), 0);
    assert_int_equal(set(dflt, "gone", "x", 1, HS_SHARED_SET), 0);
    assert_int_equal(set(dflt, "k3", "x", 0, HS_SHARED_SET), 0);
    hs_shared_debug_advance(2);
    char buf[64];
    size_t len, count;
    assert_int_equal(hs_shared_keys(dflt, 0, buf, sizeof buf, &len, &count), 0);
    /* Most recently used first; the expired one is not listed. */
    assert_int_equal(count, 3);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "\2k3\2k2\2k1", 9);
    assert_int_equal(hs_shared_keys(dflt, 2, buf, sizeof buf, &len, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(hs_shared_keys(dflt, 0, buf, 4, &len, &count), -ENOBUFS);
    assert_int_equal(len, 9);
    hs_shared_flush_all(dflt);
}

/* Fills small with 1000-byte values k0, k1, ... until the first eviction; returns how many
 * were stored before it. */
static int fill_small(void)
{
    char val[1001];
    memset(val, 'v', 1000);
    val[1000] = '\0';
    struct hs_shared_stats st;
    for (int i = 0;; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(set(small, k, val, 0, HS_SHARED_SET), 0);
        hs_shared_stats(small, &st);
        if (st.evicted > 0)
            return i;
    }
}

static void test_lru_eviction(void **state)
{
    (void)state;
    hs_shared_flush_all(small);
    int n = fill_small();
    assert_true(n > 40);
    /* The least recently used went first: k0. */
    assert_string_equal(get(small, "k0"), "");
    assert_string_equal(get(small, "k1")[0] == 'v' ? "v" : "", "v");
    /* Reading k1 makes it recent: the next store evicts k2, not k1. */
    char val[1001];
    memset(val, 'w', 1000);
    val[1000] = '\0';
    assert_int_equal(set(small, "x1", val, 0, HS_SHARED_SET), 0);
    assert_string_equal(get(small, "k2"), "");
    assert_true(get(small, "k1")[0] == 'v');
    /* safe_set never evicts. */
    struct hs_shared_stats before, after;
    hs_shared_stats(small, &before);
    int r = 0;
    for (int i = 0; i < 10 && r == 0; i++) {
        char k[32];
        snprintf(k, sizeof k, "s%d", i);
        r = set(small, k, val, 0, HS_SHARED_SAFE);
    }
    assert_int_equal(r, -ENOMEM);
    hs_shared_stats(small, &after);
    assert_int_equal(after.evicted, before.evicted);
    /* A failed safe_set of an existing key keeps its old value. */
    char bigger[3001];
    memset(bigger, 'B', 3000);
    bigger[3000] = '\0';
    assert_int_equal(set(small, "k1", bigger, 0, HS_SHARED_SAFE), -ENOMEM);
    assert_true(get(small, "k1")[0] == 'v');
    /* Other dictionaries are untouched by small being full. */
    assert_int_equal(set(other, "o", "fine", 0, HS_SHARED_SAFE), 0);
    assert_string_equal(get(other, "o"), "fine");
    assert_int_equal(set(dflt, "d", "fine", 0, HS_SHARED_SAFE), 0);
    hs_shared_stats(other, &after);
    assert_int_equal(after.evicted, 0);
    hs_shared_flush_all(small);
    hs_shared_flush_all(other);
    hs_shared_flush_all(dflt);
}

static void test_expired_first(void **state)
{
    (void)state;
    hs_shared_flush_all(small);
    char val[1001];
    memset(val, 'v', 1000);
    val[1000] = '\0';
    /* Recently used entries that expire, behind older ones that do not. */
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "old%d", i);
        assert_int_equal(set(small, k, val, 0, HS_SHARED_SET), 0);
    }
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "ttl%d", i);
        assert_int_equal(set(small, k, val, 1, HS_SHARED_SET), 0);
    }
    hs_shared_debug_advance(2);
    struct hs_shared_stats st, before;
    hs_shared_stats(small, &before); /* the counters count since creation */
    /* Filling up (20 + 35 live entries fit, 20 more do not) reclaims the expired entries
     * before evicting any live one. */
    for (int i = 0; i < 35; i++) {
        char k[32];
        snprintf(k, sizeof k, "new%d", i);
        assert_int_equal(set(small, k, val, 0, HS_SHARED_SET), 0);
    }
    hs_shared_stats(small, &st);
    assert_int_equal(st.evicted, before.evicted);
    assert_true(st.expired > before.expired);
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "old%d", i);
        assert_true(get(small, k)[0] == 'v');
    }
    hs_shared_flush_all(small);
}

/* 8 processes race for each of 200 rounds: each reads the round's key and tries to swap its
 * own id in; exactly one per round wins. */
static void test_cas_processes(void **state)
{
    (void)state;
    hs_shared_flush_all(dflt);
    int nproc = 8, rounds = 200;
    pid_t pids[8];
    for (int p = 0; p < nproc; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            int won = 0;
            for (int r = 0; r < rounds; r++) {
                char k[32];
                snprintf(k, sizeof k, "round%d", r);
                struct hs_shared_value none = {.type = HS_SHARED_NONE};
                struct hs_shared_value me = number(p + 1);
                double out;
                if (hs_shared_cas(dflt, k, strlen(k), &none, &me, 0) == 0) {
                    won++;
                    hs_shared_incr(dflt, "wins", 4, 1, 0, 0, &out);
                }
            }
            _exit(won > rounds ? 1 : 0);
        }
    }
    for (int p = 0; p < nproc; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_string_equal(get(dflt, "wins"), "200");
    hs_shared_flush_all(dflt);
}

static void test_owner_died(void **state)
{
    (void)state;
    assert_int_equal(set(other, "before", "x", 0, HS_SHARED_SET), 0);
    assert_int_equal(set(dflt, "kept", "x", 0, HS_SHARED_SET), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        hs_shared_debug_die_locked(other);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    /* Not wedged: the next call takes the lock, finds the holder dead, empties the dictionary
     * it may have left half-done, and goes on. Others are untouched. */
    assert_string_equal(get(other, "before"), "");
    assert_int_equal(set(other, "after", "y", 0, HS_SHARED_SET), 0);
    assert_string_equal(get(other, "after"), "y");
    assert_string_equal(get(dflt, "kept"), "x");
    struct hs_shared_stats s;
    hs_shared_stats(other, &s);
    assert_int_equal(s.recoveries, 1);
    hs_shared_flush_all(other);
    hs_shared_flush_all(dflt);
}

int main(void)
{
    const struct CMUnitTest arena_tests[] = {
        cmocka_unit_test(test_arena_random),
        cmocka_unit_test(test_arena_full_and_merge),
    };
    const struct CMUnitTest dict_tests[] = {
        cmocka_unit_test(test_region),        cmocka_unit_test(test_store_modes),
        cmocka_unit_test(test_cas),           cmocka_unit_test(test_ttl_rules),
        cmocka_unit_test(test_lists),         cmocka_unit_test(test_keys),
        cmocka_unit_test(test_lru_eviction),  cmocka_unit_test(test_expired_first),
        cmocka_unit_test(test_cas_processes), cmocka_unit_test(test_owner_died),
    };
    int failed = cmocka_run_group_tests(arena_tests, NULL, NULL);
    return failed + cmocka_run_group_tests(dict_tests, setup, teardown);
}
