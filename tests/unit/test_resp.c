/* Unit tests for core/resp.c: RESP2 replies as the Redis pub/sub link reads them. Cases are
 * one line each (input, expected result, label). Every input ends at the last readable byte
 * before a PROT_NONE page, so a read past `len` faults; every valid reply is also tried at each
 * proper prefix (HS_AGAIN, with a need past the prefix), and every refused input must be refused
 * or incomplete at each of its prefixes, never accepted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hs.h"
#include "core/resp.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_DATA (96 * 1024) /* bytes readable before the guard page */

#include "tests/unit/guard_page.h"

/* A valid reply: its whole length is consumed, with this type, element count and a summary:
 * the first string (or "" when none) and the integer. */
struct ok_case {
    const char *in;
    enum hs_resp_type type;
    size_t n;
    const char *first;
    long long integer;
    const char *label;
};

static const struct ok_case ok_cases[] = {
    {"+OK\r\n", HS_RESP_SIMPLE, 0, "OK", 0, "simple string"},
    {"+\r\n", HS_RESP_SIMPLE, 0, "", 0, "empty simple string"},
    {"-ERR unknown command\r\n", HS_RESP_ERROR, 0, "ERR unknown command", 0, "error"},
    {":0\r\n", HS_RESP_INTEGER, 0, "", 0, "integer zero"},
    {":1000\r\n", HS_RESP_INTEGER, 0, "", 1000, "integer"},
    {":-42\r\n", HS_RESP_INTEGER, 0, "", -42, "negative integer"},
    {":9223372036854775807\r\n", HS_RESP_INTEGER, 0, "", 9223372036854775807LL, "largest"},
    {"$5\r\nhello\r\n", HS_RESP_BULK, 0, "hello", 0, "bulk"},
    {"$0\r\n\r\n", HS_RESP_BULK, 0, "", 0, "empty bulk"},
    {"$4\r\na\r\nb\r\n", HS_RESP_BULK, 0, "a\r\nb", 0, "bulk holding CRLF"},
    {"$-1\r\n", HS_RESP_NIL, 0, "", 0, "nil bulk"},
    {"*-1\r\n", HS_RESP_NIL, 0, "", 0, "nil array"},
    {"*0\r\n", HS_RESP_ARRAY, 0, "", 0, "empty array"},
    {"*3\r\n$10\r\npsubscribe\r\n$8\r\nhotsock*\r\n:1\r\n", HS_RESP_ARRAY, 3, "psubscribe", 0,
     "psubscribe confirmation"},
    {"*4\r\n$8\r\npmessage\r\n$8\r\nhotsock*\r\n$9\r\nhotsock:c\r\n$3\r\nx\0y\r\n", HS_RESP_ARRAY,
     4, "pmessage", 0, "pmessage with a NUL in its payload"},
    {"*2\r\n+a\r\n-b\r\n", HS_RESP_ARRAY, 2, "a", 0, "array of simple and error"},
    {"*8\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n:8\r\n", HS_RESP_ARRAY, 8, "", 0,
     "array at its element limit"},
};

/* Input refused with HS_EPROTO. */
struct bad_case {
    const char *in;
    const char *label;
};

static const struct bad_case bad_cases[] = {
    {"?\r\n", "unknown type byte"},
    {"+OK\n", "bare LF"},
    {"+O\rK\r\n", "bare CR"},
    {":\r\n", "empty integer"},
    {":12a\r\n", "letter in integer"},
    {":-\r\n", "lone minus"},
    {":9223372036854775808\r\n", "integer over the largest"},
    {":12345678901234567890\r\n", "twenty digits"},
    {"$-2\r\n", "bulk length below -1"},
    {"$abc\r\n", "bulk length not a number"},
    {"$3\r\nabcd\r\n", "bulk longer than said"},
    {"$3\r\nab\r\n\r\n", "bulk shorter than said"},
    {"$3\r\nabcXY", "bulk not ended by CRLF"},
    {"$67109377\r\n", "bulk over the limit"},
    {"*9\r\n", "array over the element limit"},
    {"*1\r\n*0\r\n", "nested array"},
    {"*2\r\n:1\r\n?\r\n", "bad element"},
};

static void check_ok(const struct ok_case *c, const char *buf, size_t len)
{
    struct hs_resp_reply r;
    size_t need = 0;
    int got = hs_resp_parse(buf, len, &r, &need);
    if (got != (int)len)
        fail_msg("%s: got %d, want %zu", c->label, got, len);
    assert_int_equal(r.v.type, c->type);
    assert_int_equal(r.n, c->n);
    const struct hs_resp_item *first = c->type == HS_RESP_ARRAY ? &r.elem[0] : &r.v;
    if (c->first[0]) {
        assert_int_equal(first->len, strlen(c->first));
        assert_memory_equal(first->str, c->first, first->len);
    }
    if (c->type == HS_RESP_INTEGER)
        assert_true(r.v.integer == c->integer);
}

static void test_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const struct ok_case *c = &ok_cases[i];
        /* Lengths by hand: the pmessage case holds a NUL. */
        size_t len = strlen(c->in);
        if (strcmp(c->label, "pmessage with a NUL in its payload") == 0)
            len += 1 + strlen(c->in + len + 1);
        check_ok(c, guard_put(c->in, len), len);
        char copy[256];
        memcpy(copy, c->in, len);
        for (size_t k = 0; k < len; k++) {
            struct hs_resp_reply r;
            size_t need = 0;
            int got = hs_resp_parse(guard_put(copy, k), k, &r, &need);
            if (got != HS_AGAIN || need <= k || need > len)
                fail_msg("%s: prefix %zu gave %d need %zu", c->label, k, got, need);
        }
        /* A second reply behind the first is left alone. */
        memcpy(copy + len, "+X\r\n", 4);
        check_ok(c, guard_put(copy, len + 4), len);
    }
}

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len = strlen(c->in);
        struct hs_resp_reply r;
        int got = hs_resp_parse(guard_put(c->in, len), len, &r, NULL);
        if (got != HS_EPROTO)
            fail_msg("%s: got %d, want HS_EPROTO", c->label, got);
        for (size_t k = 0; k < len; k++) {
            got = hs_resp_parse(guard_put(c->in, k), k, &r, NULL);
            if (got != HS_AGAIN && got != HS_EPROTO)
                fail_msg("%s: prefix %zu accepted (%d)", c->label, k, got);
        }
    }
}

/* A long bulk says how much it needs once its header is in, so a caller waits for it. */
static void test_need(void **state)
{
    (void)state;
    const char *in = "*4\r\n$8\r\npmessage\r\n$1\r\np\r\n$1\r\nc\r\n$1000\r\nabc";
    struct hs_resp_reply r;
    size_t need = 0;
    assert_int_equal(hs_resp_parse(guard_put(in, strlen(in)), strlen(in), &r, &need), HS_AGAIN);
    assert_int_equal(need, strlen(in) - 3 + 1000 + 2);
}

/* A line longer than the limit is refused once the limit is passed, not waited for. */
static void test_long_line(void **state)
{
    (void)state;
    static char big[HS_RESP_MAX_LINE + 8];
    memset(big, 'a', sizeof big);
    big[0] = '+';
    struct hs_resp_reply r;
    assert_int_equal(
        hs_resp_parse(guard_put(big, HS_RESP_MAX_LINE + 1), HS_RESP_MAX_LINE + 1, &r, NULL),
        HS_AGAIN);
    assert_int_equal(hs_resp_parse(guard_put(big, sizeof big), sizeof big, &r, NULL), HS_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_need),
        cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
