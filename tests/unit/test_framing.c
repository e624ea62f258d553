/* Framer tests: one line per case, every proper prefix of a valid frame must give HS_AGAIN,
 * the same input fed whole, a byte per evbuffer_add and a byte per evbuffer_add_reference
 * must give the same answer, and input sits at the end of a guard page so an over-read
 * faults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/framing.h"
#include "core/hs.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define B(lit) (lit), sizeof(lit) - 1
#define GUARD_PAGES 4

/* ---- Guard page: bytes placed by guard_put() end exactly where a PROT_NONE page begins. */

static unsigned char *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
    void *p = NULL;

    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    if (posix_memalign(&p, guard_page, (GUARD_PAGES + 1) * guard_page) != 0)
        return -1;
    guard_base = p;
    return mprotect(guard_base + GUARD_PAGES * guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    mprotect(guard_base + GUARD_PAGES * guard_page, guard_page, PROT_READ | PROT_WRITE);
    free(guard_base);
    return 0;
}

static void *guard_put(const void *src, size_t n)
{
    unsigned char *dst = guard_base + GUARD_PAGES * guard_page - n;

    assert_true(n <= GUARD_PAGES * guard_page);
    memcpy(dst, src, n);
    return dst;
}

static struct hs_framing spec(const char *s)
{
    struct hs_framing f;
    const char *why = NULL;

    if (hs_framing_parse(s, &f, &why) != 0)
        fail_msg("spec \"%s\" refused: %s", s, why);
    return f;
}

static int next(const struct hs_framing *f, struct evbuffer *in, size_t *resume,
                struct hs_frame *fr, const char **why)
{
    memset(fr, 0xa5, sizeof(*fr)); /* the framer must fill every field */
    *why = NULL;
    return hs_framing_next(f, in, resume, fr, why);
}

/* ---- Table of single frames. Each input is exactly one frame (or the shortest input that
 * must be refused). */

struct next_case {
    const char *spec;
    const char *in;
    size_t n;
    int rc;
    size_t skip;
    uint64_t len;
    size_t trail;
};

static const struct next_case next_cases[] = {
    {"line", B("hello\n"), 1, 0, 5, 1},
    {"line", B("\n"), 1, 0, 0, 1},
    {"line", B("hi\r\n"), 1, 0, 2, 2},
    {"line", B("\r\n"), 1, 0, 0, 2},
    {"line", B("\r\r\n"), 1, 0, 1, 2},
    {"line", B("a\rb\n"), 1, 0, 3, 1},
    {"line:nocr", B("hi\r\n"), 1, 0, 3, 1},
    {"line:delim=\\r\\n", B("ab\r\n"), 1, 0, 2, 2},
    {"line:delim=\\r\\n", B("a\rb\n\r\n"), 1, 0, 4, 2},
    {"line:delim=\\r\\n\\r\\n", B("GET / HTTP/1.0\r\nA: b\r\n\r\n"), 1, 0, 20, 4},
    {"line:delim=\\x00", B("ab\0"), 1, 0, 2, 1},
    {"line:delim=aab", B("aaab"), 1, 0, 1, 3},
    {"line:delim=12345678", B("ab123456712345678"), 1, 0, 9, 8},
    {"line:delim=\\x3a", B("k:"), 1, 0, 1, 1},
    {"line:max=4", B("abcd\n"), 1, 0, 4, 1},
    {"line:max=4", B("abcd\r\n"), 1, 0, 4, 2},
    {"line:max=4", B("abcde\n"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=4", B("abcde\r\n"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=4", B("abcdef"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=4:nocr", B("abcd\n"), 1, 0, 4, 1},
    {"line:max=4:nocr", B("abcd\r\n"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=4:nocr", B("abcde"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=2:delim=\\r\\n", B("ab\r\n"), 1, 0, 2, 2},
    {"line:max=2:delim=\\r\\n", B("abc\r"), HS_ETOOBIG, 0, 0, 0},
    {"line:max=1", B("\n"), 1, 0, 0, 1},
    {"length:u8", B("\003abc"), 1, 1, 3, 0},
    {"length:u8", B("\x00"), 1, 1, 0, 0},
    {"length:i8:max=126", B("\x7f"), HS_ETOOBIG, 0, 0, 0},
    {"length:i8", B("\x80"), HS_EPROTO, 0, 0, 0},
    {"length:u8:max=3", B("\003abc"), 1, 1, 3, 0},
    {"length:u8:max=3", B("\x04"), HS_ETOOBIG, 0, 0, 0},
    {"length:u16", B("\x00\x02hi"), 1, 2, 2, 0},
    {"length:u16le", B("\x02\x00hi"), 1, 2, 2, 0},
    {"length:i16le", B("\xff\xff"), HS_EPROTO, 0, 0, 0},
    {"length:u32be", B("\x00\x00\x00\x01x"), 1, 4, 1, 0},
    {"length:u32be", B("\x00\x00\x00\x00"), 1, 4, 0, 0},
    {"length:i32le", B("\x02\x00\x00\x00xy"), 1, 4, 2, 0},
    {"length:i32le", B("\xff\xff\xff\xff"), HS_EPROTO, 0, 0, 0},
    {"length:i32be", B("\x80\x00\x00\x00"), HS_EPROTO, 0, 0, 0},
    {"length:u32be", B("\x01\x00\x00\x01"), HS_ETOOBIG, 0, 0, 0},
    {"length:u32le:max=5", B("\005\000\000\00012345"), 1, 4, 5, 0},
    {"length:u32le:max=5", B("\x06\x00\x00\x00"), HS_ETOOBIG, 0, 0, 0},
    {"length:u64be", B("\x00\x00\x00\x00\x00\x00\x00\x01z"), 1, 8, 1, 0},
    {"length:u64le", B("\x01\x00\x00\x00\x00\x00\x00\x00z"), 1, 8, 1, 0},
    {"length:u64be", B("\xff\xff\xff\xff\xff\xff\xff\xff"), HS_ETOOBIG, 0, 0, 0},
    {"length:i64be", B("\x80\x00\x00\x00\x00\x00\x00\x00"), HS_EPROTO, 0, 0, 0},
    {"length:i64le", B("\xff\xff\xff\xff\xff\xff\xff\x7f"), HS_ETOOBIG, 0, 0, 0},
    {"fixed:4", B("abcd"), 1, 0, 4, 0},
    {"fixed:1", B("\0"), 1, 0, 1, 0},
};

/* Checks a final answer, including the reason given for a refusal. */
static void check_final(const struct next_case *c, const char *how, int rc,
                        const struct hs_frame *fr, const char *why)
{
    const char *want = rc == HS_EPROTO                    ? "negative length"
                       : strncmp(c->spec, "line", 4) == 0 ? "line too long"
                                                          : "frame too large";

    /* A refusal leaves the frame zeroed, so the table's zeros apply to it as well. */
    if (rc != c->rc || fr->skip != c->skip || fr->len != c->len || fr->trail != c->trail)
        fail_msg("\"%s\" %zu bytes %s: rc %d skip %zu len %" PRIu64 " trail %zu, want rc %d "
                 "skip %zu len %" PRIu64 " trail %zu",
                 c->spec, c->n, how, rc, fr->skip, fr->len, fr->trail, c->rc, c->skip, c->len,
                 c->trail);
    if (rc < 0 && (why == NULL || strcmp(why, want) != 0))
        fail_msg("\"%s\": why is \"%s\", want \"%s\"", c->spec, why ? why : "(null)", want);
}

/* A proper prefix of a valid frame is HS_AGAIN; of a refused input, HS_AGAIN or the same
 * refusal. A partial length frame reports its header once complete; fixed always does. */
static void check_prefix(const struct hs_framing *f, const struct next_case *c, size_t k, int rc,
                         const struct hs_frame *fr)
{
    uint64_t want_len = 0;
    size_t want_skip = 0;

    if (rc != HS_AGAIN) {
        if (c->rc == 1 || rc != c->rc)
            fail_msg("\"%s\" prefix %zu/%zu: rc %d, want HS_AGAIN", c->spec, k, c->n, rc);
        return;
    }
    if (f->kind == HS_FRAMING_FIXED)
        want_len = f->fixed;
    if (f->kind == HS_FRAMING_LENGTH && k >= f->hdr_size && c->rc == 1)
        want_skip = c->skip, want_len = c->len;
    if (fr->skip != want_skip || fr->len != want_len || fr->trail != 0)
        fail_msg("\"%s\" prefix %zu/%zu: HS_AGAIN with skip %zu len %" PRIu64, c->spec, k, c->n,
                 fr->skip, fr->len);
}

static void test_next_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(next_cases) / sizeof(next_cases[0]); i++) {
        const struct next_case *c = &next_cases[i];
        struct hs_framing f = spec(c->spec);
        struct hs_frame fr;
        const char *why;
        size_t resume;
        int rc;

        /* Whole, copied in. */
        struct evbuffer *in = evbuffer_new();
        evbuffer_add(in, c->in, c->n);
        resume = 0;
        rc = next(&f, in, &resume, &fr, &why);
        check_final(c, "whole", rc, &fr, why);
        evbuffer_free(in);

        /* Every proper prefix on its own, referenced at the end of the guard page. */
        for (size_t k = 0; k < c->n; k++) {
            in = evbuffer_new();
            evbuffer_add_reference(in, guard_put(c->in, k), k, NULL, NULL);
            resume = 0;
            check_prefix(&f, c, k, next(&f, in, &resume, &fr, &why), &fr);
            evbuffer_free(in);
        }

        /* One evbuffer_add per byte, asking after each one with a kept resume. */
        in = evbuffer_new();
        resume = 0;
        rc = HS_AGAIN;
        for (size_t k = 0; k < c->n && rc == HS_AGAIN; k++) {
            if (k > 0)
                check_prefix(&f, c, k, rc, &fr);
            evbuffer_add(in, c->in + k, 1);
            rc = next(&f, in, &resume, &fr, &why);
        }
        check_final(c, "byte by byte", rc, &fr, why);
        evbuffer_free(in);

        /* One evbuffer_add_reference chunk per byte, asked once; the whole input ends at
         * the guard page. */
        const char *g = guard_put(c->in, c->n);
        in = evbuffer_new();
        for (size_t k = 0; k < c->n; k++)
            evbuffer_add_reference(in, g + k, 1, NULL, NULL);
        resume = 0;
        rc = next(&f, in, &resume, &fr, &why);
        check_final(c, "referenced per byte", rc, &fr, why);
        evbuffer_free(in);
    }
}

/* ---- Resume. */

static void test_resume_split_delimiter(void **state)
{
    struct hs_framing f = spec("line:delim=\\r\\n");
    struct evbuffer *in = evbuffer_new();
    struct hs_frame fr;
    const char *why;
    size_t resume = 0;

    (void)state;
    evbuffer_add(in, "abc\r", 4);
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_AGAIN);
    assert_int_equal(resume, 4);
    evbuffer_add(in, "\n", 1);
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 3);
    assert_int_equal(fr.trail, 2);

    /* The '\r' of a stripped CR may also arrive in the previous chunk. */
    f = spec("line");
    evbuffer_drain(in, evbuffer_get_length(in));
    resume = 0;
    evbuffer_add(in, "xy\r", 3);
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_AGAIN);
    evbuffer_add(in, "\n", 1);
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 2);
    assert_int_equal(fr.trail, 2);
    evbuffer_free(in);
}

/* The framer trusts resume: bytes before it are not looked at again. A '\n' planted there
 * is therefore not found, which is how a non-rescanning framer must behave. */
static void test_resume_not_rescanned(void **state)
{
    struct hs_framing f = spec("line");
    struct evbuffer *in = evbuffer_new();
    struct hs_frame fr;
    const char *why;
    size_t resume = 5;

    (void)state;
    evbuffer_add(in, "ab\ncd", 5);
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_AGAIN);
    assert_int_equal(fr.len, 0);
    evbuffer_add(in, "e\n", 2);
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 6);

    resume = 0;
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 2);

    /* A resume past the data is stale (drained without reset): start over. */
    resume = 1000;
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 2);
    evbuffer_free(in);
}

/* ---- Several frames back to back, drained one by one. */

static void drain_all(const char *s, const char *input, size_t n, const char *const *want,
                      size_t count)
{
    struct hs_framing f = spec(s);
    struct evbuffer *in = evbuffer_new();
    struct hs_frame fr;
    const char *why;
    char payload[64];
    size_t resume = 0;

    evbuffer_add(in, input, n);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
        assert_true(fr.len < sizeof(payload));
        evbuffer_drain(in, fr.skip);
        assert_int_equal(evbuffer_copyout(in, payload, (size_t)fr.len), (ev_ssize_t)fr.len);
        payload[fr.len] = '\0';
        assert_string_equal(payload, want[i]);
        evbuffer_drain(in, (size_t)fr.len + fr.trail);
        resume = 0;
    }
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_AGAIN);
    evbuffer_free(in);
}

static void test_back_to_back(void **state)
{
    static const char *const lines[] = {"one", "two", "", "", "three"};
    static const char *const crlf[] = {"a\nb", ""};
    static const char *const lengths[] = {"a", "", "bc"};
    static const char *const fixed[] = {"abc", "def"};
    static const char *const raw[] = {"abcd", "efgh", "ij"};

    (void)state;
    drain_all("line", B("one\ntwo\r\n\n\r\nthree\nfour"), lines, 5);
    drain_all("line:delim=\\r\\n", B("a\nb\r\n\r\n\r"), crlf, 2);
    drain_all("length:u16", B("\0\1a\0\0\0\2bc\0"), lengths, 3);
    drain_all("fixed:3", B("abcdefgh"), fixed, 2);
    drain_all("raw:max=4", B("abcdefghij"), raw, 3);
}

/* ---- 64-bit headers at the edges. */

static void test_length_64bit(void **state)
{
    static const unsigned char all_ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char top_bit[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char max_i64[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char max_i64_le[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    struct hs_framing u = spec("length:u64be:max=18446744073709551615");
    struct hs_framing i = spec("length:i64be:max=18446744073709551615");
    struct hs_framing ile = spec("length:i64le:max=18446744073709551615");
    struct evbuffer *in = evbuffer_new();
    struct hs_frame fr;
    const char *why;
    size_t resume = 0;
    uint64_t len = 0;

    (void)state;
    assert_int_equal(hs_framing_decode_length(&u, all_ones, &len), 0);
    assert_true(len == UINT64_MAX);
    assert_int_equal(hs_framing_decode_length(&u, top_bit, &len), 0);
    assert_true(len == (uint64_t)1 << 63);
    assert_int_equal(hs_framing_decode_length(&u, max_i64, &len), 0);
    assert_true(len == INT64_MAX);
    assert_int_equal(hs_framing_decode_length(&i, max_i64, &len), 0);
    assert_true(len == INT64_MAX);
    assert_int_equal(hs_framing_decode_length(&ile, max_i64_le, &len), 0);
    assert_true(len == INT64_MAX);
    assert_int_equal(hs_framing_decode_length(&i, top_bit, &len), HS_EPROTO);
    assert_int_equal(hs_framing_decode_length(&i, all_ones, &len), HS_EPROTO);

    u.max = UINT64_MAX - 1;
    assert_int_equal(hs_framing_decode_length(&u, all_ones, &len), HS_ETOOBIG);
    u.max = INT64_MAX;
    assert_int_equal(hs_framing_decode_length(&u, max_i64, &len), 0);
    assert_int_equal(hs_framing_decode_length(&u, top_bit, &len), HS_ETOOBIG);

    /* A header announcing 2^64 - 1 bytes with max allowing it: no overflow, just wait. */
    u.max = UINT64_MAX;
    evbuffer_add(in, all_ones, 8);
    evbuffer_add(in, "abc", 3);
    assert_int_equal(next(&u, in, &resume, &fr, &why), HS_AGAIN);
    assert_int_equal(fr.skip, 8);
    assert_true(fr.len == UINT64_MAX);
    evbuffer_free(in);
}

/* ---- Raw and defaults. */

static void test_raw_and_defaults(void **state)
{
    struct hs_framing f;
    struct evbuffer *in = evbuffer_new();
    struct hs_frame fr;
    const char *why;
    size_t resume = 0;

    (void)state;
    hs_framing_init(&f, HS_FRAMING_RAW);
    assert_int_equal(hs_framing_max(&f), HS_DEFAULT_MAX_RAW_CHUNK);
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_AGAIN);
    assert_int_equal(fr.len, 0);
    evbuffer_add(in, "x", 1);
    assert_int_equal(next(&f, in, &resume, &fr, &why), 1);
    assert_int_equal(fr.len, 1);
    f.max = 0; /* 0 means the default */
    assert_int_equal(hs_framing_max(&f), HS_DEFAULT_MAX_RAW_CHUNK);

    hs_framing_init(&f, HS_FRAMING_LINE);
    assert_int_equal(hs_framing_max(&f), HS_DEFAULT_MAX_LINE);
    assert_int_equal(f.delim_len, 1);
    assert_int_equal(f.delim[0], '\n');
    assert_true(f.strip_cr);
    hs_framing_init(&f, HS_FRAMING_LENGTH);
    assert_int_equal(hs_framing_max(&f), HS_DEFAULT_MAX_FRAME);
    assert_true(f.hdr_size == 4 && f.big_endian && !f.is_signed);
    hs_framing_init(&f, HS_FRAMING_FIXED);
    assert_int_equal(f.fixed, 1);
    assert_int_equal(hs_framing_max(&f), 1);

    /* Hand-built nonsense is refused, not trusted. */
    f = spec("length:u32");
    f.hdr_size = 3;
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_EBADSPEC);
    f = spec("line");
    f.delim_len = 0;
    assert_int_equal(next(&f, in, &resume, &fr, &why), HS_EBADSPEC);
    evbuffer_free(in);
}

/* ---- Spec parsing and formatting. */

static int same_framing(const struct hs_framing *a, const struct hs_framing *b)
{
    return a->kind == b->kind && a->max == b->max && a->delim_len == b->delim_len &&
           memcmp(a->delim, b->delim, sizeof(a->delim)) == 0 && a->strip_cr == b->strip_cr &&
           a->hdr_size == b->hdr_size && a->big_endian == b->big_endian &&
           a->is_signed == b->is_signed && a->fixed == b->fixed;
}

/* Expected structs, field by field; a delimiter's length is that of its literal. */
#define RAW(m) .kind = HS_FRAMING_RAW, .max = (m)
#define LINE(m, d, cr)                                                                             \
    .kind = HS_FRAMING_LINE, .max = (m), .delim = d, .delim_len = sizeof(d) - 1, .strip_cr = (cr)
#define LEN(m, hdr, be, sgn)                                                                       \
    .kind = HS_FRAMING_LENGTH, .max = (m), .hdr_size = (hdr), .big_endian = (be), .is_signed = (sgn)
#define FIX(n) .kind = HS_FRAMING_FIXED, .fixed = (n)
#define K64 (64 << 10)
#define M16 (16 << 20)

static const struct good_spec {
    const char *spec, *canon;
    struct hs_framing f;
} good_specs[] = {
    {"raw", "raw", {RAW(0)}},
    {"raw:max=1m", "raw:max=1m", {RAW(1 << 20)}},
    {"raw:max=1024", "raw:max=1k", {RAW(1024)}},
    {"line", "line", {LINE(0, "\n", 1)}},
    {"line:max=64k", "line:max=64k", {LINE(K64, "\n", 1)}},
    {"line:max=100", "line:max=100", {LINE(100, "\n", 1)}},
    {"line:delim=\\r\\n", "line:delim=\\r\\n", {LINE(0, "\r\n", 0)}},
    {"line:delim=\\x00", "line:delim=\\0", {LINE(0, "\0", 0)}},
    {"line:nocr", "line:nocr", {LINE(0, "\n", 0)}},
    {"line:nocr:delim=\\n:max=2K", "line:max=2k:nocr", {LINE(2048, "\n", 0)}},
    {"line:delim=;:nocr", "line:delim=;", {LINE(0, ";", 0)}},
    {"line:delim=\\x3a\\t\\\\ \\xff",
     "line:delim=\\x3a\\t\\\\\\x20\\xff",
     {LINE(0, ":\t\\ \xff", 0)}},
    {"line:delim=1234567", "line:delim=1234567", {LINE(0, "1234567", 0)}},
    {"length:i32le", "length:i32le", {LEN(0, 4, 0, 1)}},
    {"length:u16", "length:u16be", {LEN(0, 2, 1, 0)}},
    {"length:u8", "length:u8", {LEN(0, 1, 1, 0)}},
    {"length:u8le", "length:u8", {LEN(0, 1, 1, 0)}},
    {"length:i64be:max=1g", "length:i64be:max=1g", {LEN(1 << 30, 8, 1, 1)}},
    {"length:u32be", "length:u32be", {LEN(0, 4, 1, 0)}},
    {"length:u64le:max=17179869184", "length:u64le:max=16g", {LEN((uint64_t)16 << 30, 8, 0, 0)}},
    {"length:u64be:max=18446744073709551615",
     "length:u64be:max=18446744073709551615",
     {LEN(UINT64_MAX, 8, 1, 0)}},
    {"fixed:16", "fixed:16", {FIX(16)}},
    {"fixed:4k", "fixed:4k", {FIX(4096)}},
};

static const struct bad_spec {
    const char *spec, *why;
} bad_specs[] = {
    {"", "empty framing spec"},
    {":max=1", "empty framing spec"},
    {"bogus", "unknown framing (want raw, line, length or fixed)"},
    {"lines", "unknown framing (want raw, line, length or fixed)"},
    {"length", "length needs a header type, e.g. length:u32be"},
    {"length:", NULL},
    {"length:i24", NULL},
    {"length:x32", NULL},
    {"length:u3", NULL},
    {"length:u320", NULL},
    {"length:u32xe", NULL},
    {"length:u32:delim=x", "unknown option"},
    {"fixed", "fixed needs a size, e.g. fixed:16"},
    {"fixed:0", "fixed size must be at least 1"},
    {"fixed:abc", "bad size"},
    {"fixed:16:max=1", "fixed takes no options"},
    {"fixed:16x", "bad size"},
    {"raw:nocr", "unknown option"},
    {"raw:", "unknown option"},
    {"raw:max=0", "max must be at least 1"},
    {"line:max=", "bad size"},
    {"line:max=-1", "bad size"},
    {"line:max=+1", "bad size"},
    {"line:max=1kb", "bad size"},
    {"line:max=1 ", "bad size"},
    {"line:max=1:max=2", "duplicate option"},
    {"line:nocr:nocr", "duplicate option"},
    {"line:nocrx", "unknown option"},
    {"line:delim=", "empty delimiter"},
    {"line:delim=:nocr", "empty delimiter"},
    {"line:delim=123456789", "delimiter longer than 8 bytes"},
    {"line:delim=\\r\\n\\r\\n\\r\\n\\r\\n\\r", "delimiter longer than 8 bytes"},
    {"line:delim=\\", NULL},
    {"line:delim=\\q", NULL},
    {"line:delim=\\x", NULL},
    {"line:delim=\\x4", NULL},
    {"line:delim=\\x4g", NULL},
    {"line:bogus=1", "unknown option"},
    {"line::nocr", "unknown option"},
    {"line:max=18446744073709551616", "size too large"},
    {"line:max=99999999999999999999", "size too large"},
    {"line:max=17179869184g", "size too large"},
    {"fixed:17179869184g", "size too large"},
};

static void check_round_trip(const char *s, const struct hs_framing *f)
{
    struct hs_framing again;
    char buf[128];
    int n = hs_framing_format(f, buf, sizeof(buf));

    assert_true(n > 0 && (size_t)n < sizeof(buf));
    assert_int_equal(strlen(buf), n);
    if (hs_framing_parse(buf, &again, NULL) != 0 || !same_framing(f, &again))
        fail_msg("\"%s\" formats as \"%s\", which does not read back the same", s, buf);
}

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_specs) / sizeof(good_specs[0]); i++) {
        const struct good_spec *g = &good_specs[i];
        struct hs_framing f = spec(g->spec);
        char buf[128];

        if (!same_framing(&f, &g->f))
            fail_msg("\"%s\" parsed to an unexpected framing", g->spec);
        hs_framing_format(&f, buf, sizeof(buf));
        assert_string_equal(buf, g->canon);
        check_round_trip(g->spec, &f);
    }
    /* The longest delimiter, kept out of the table: an 8-char literal has no room for a NUL. */
    struct hs_framing f = spec("line:delim=\\r\\n\\r\\n\\r\\n\\r\\n");
    assert_int_equal(f.delim_len, 8);
    assert_memory_equal(f.delim, "\r\n\r\n\r\n\r\n", 8);
    check_round_trip("8-byte delimiter", &f);
}

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        const struct bad_spec *b = &bad_specs[i];
        struct hs_framing f, sentinel;
        const char *why = NULL;

        memset(&f, 0x5a, sizeof(f));
        sentinel = f;
        /* Placed at the end of the guard page: reading past the NUL faults. */
        if (hs_framing_parse(guard_put(b->spec, strlen(b->spec) + 1), &f, &why) != HS_EBADSPEC)
            fail_msg("\"%s\" was accepted", b->spec);
        assert_non_null(why);
        assert_true(why[0] != '\0');
        if (b->why != NULL)
            assert_string_equal(why, b->why);
        assert_memory_equal(&f, &sentinel, sizeof(f));
    }
    assert_int_equal(hs_framing_parse(NULL, NULL, NULL), HS_EBADSPEC);
}

/* A small deterministic fuzz: every prefix and many one-byte mutations of the good specs,
 * each at the end of the guard page. Each must parse or be refused with a reason, and
 * whatever parses must format and read back the same. */
static void test_parse_mutations(void **state)
{
    static const char subst[] = {'\0', ':', '\\', 'x', '0', '9', 'k', 'g', '=', 'i', '\xff'};

    (void)state;
    for (size_t i = 0; i < sizeof(good_specs) / sizeof(good_specs[0]); i++) {
        const char *s = good_specs[i].spec;
        size_t n = strlen(s);
        char buf[128];

        for (size_t pos = 0; pos <= n; pos++) {
            for (size_t j = 0; j < sizeof(subst); j++) {
                struct hs_framing f;
                const char *why = NULL;
                int rc;

                /* '\0' gives the prefix of length pos; at pos == n the byte is appended. */
                memcpy(buf, s, n + 1);
                buf[n + 1] = '\0';
                buf[pos] = subst[j];
                rc = hs_framing_parse(guard_put(buf, strlen(buf) + 1), &f, &why);
                if (rc == 0)
                    check_round_trip(buf, &f);
                else if (rc != HS_EBADSPEC || why == NULL)
                    fail_msg("\"%s\": rc %d", buf, rc);
            }
        }
    }
}

static void test_format_truncates(void **state)
{
    struct hs_framing f = spec("length:i64be:max=1g");
    char buf[8];

    (void)state;
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(hs_framing_format(&f, buf, sizeof(buf)), 19);
    assert_string_equal(buf, "length:");
    assert_int_equal(hs_framing_format(&f, NULL, 0), 19);
    assert_int_equal(hs_framing_format(&f, buf, 1), 19);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_table),           cmocka_unit_test(test_resume_split_delimiter),
        cmocka_unit_test(test_resume_not_rescanned), cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_length_64bit),         cmocka_unit_test(test_raw_and_defaults),
        cmocka_unit_test(test_parse_good),           cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_mutations),      cmocka_unit_test(test_format_truncates),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
