/* Unit tests for core/http_response.c: response heads as an HTTP client reads them. Cases are
 * one line each (input, expected result, label). Every input ends at the last readable byte
 * before a PROT_NONE page, so a read past `len` faults; every valid head is also tried at each
 * proper prefix (HS_AGAIN) and byte by byte with last_len, and every refused head must be
 * refused the same way when it arrives byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/http_response.h"
#include "core/hs.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_DATA (192 * 1024) /* bytes readable before the guard page */
#define BIG (160 * 1024)        /* scratch for generated heads */

#include "tests/unit/guard_page.h"

static struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];

static int parse_edge(const char *s, size_t n, size_t last_len, int head,
                      struct hs_http_response *res)
{
    memset(res, 0, sizeof(*res));
    res->headers = hdrs;
    res->headers_cap = ARRAY_LEN(hdrs);
    return hs_http_parse_response(guard_put(s, n), n, last_len, head, NULL, res);
}

/* Feeds s one byte at a time with last_len. Returns the first result that is not HS_AGAIN. */
static int parse_trickle(const char *s, size_t n, int head, struct hs_http_response *res)
{
    size_t k, last = 0;
    int rc = HS_AGAIN;

    for (k = 1; k <= n; k++) {
        rc = parse_edge(s, k, last, head, res);
        if (rc != HS_AGAIN)
            break;
        last = k;
    }
    return rc;
}

/* ---- valid heads ---------------------------------------------------------------------- */

enum {
    NONE = HS_HTTP_BODY_NONE,
    LEN = HS_HTTP_BODY_LENGTH,
    CHK = HS_HTTP_BODY_CHUNKED,
    CLO = HS_HTTP_BODY_CLOSE
};

struct ok_case {
    const char *in;
    int head; /* the request was HEAD */
    int status, minor;
    const char *reason;
    int body;
    int64_t cl;
    int keep_alive;
    const char *label;
};

#define S200 "HTTP/1.1 200 OK\r\n"

static const struct ok_case ok_cases[] = {
    {S200 "Content-Length: 5\r\n\r\n", 0, 200, 1, "OK", LEN, 5, 1, "content-length"},
    {S200 "content-length:0\r\n\r\n", 0, 200, 1, "OK", LEN, 0, 1, "empty body, no OWS"},
    {S200 "Content-Length: 7\r\nContent-Length: 7\r\n\r\n", 0, 200, 1, "OK", LEN, 7, 1,
     "same twice"},
    {S200 "Transfer-Encoding: chunked\r\n\r\n", 0, 200, 1, "OK", CHK, -1, 1, "chunked"},
    {S200 "Transfer-Encoding: gzip, Chunked\r\n\r\n", 0, 200, 1, "OK", CHK, -1, 1, "chunked last"},
    {S200 "Transfer-Encoding: chunked, gzip\r\n\r\n", 0, 200, 1, "OK", CLO, -1, 0,
     "te not chunked"},
    {S200 "\r\n", 0, 200, 1, "OK", CLO, -1, 0, "no length: until close"},
    {S200 "Connection: close\r\nContent-Length: 1\r\n\r\n", 0, 200, 1, "OK", LEN, 1, 0, "close"},
    {S200 "Connection: Upgrade, CLOSE\r\nContent-Length: 1\r\n\r\n", 0, 200, 1, "OK", LEN, 1, 0,
     "close in a list"},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 0, 200, 0, "OK", LEN, 2, 0, "1.0 closes"},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", 0, 200, 0, "OK", LEN,
     2, 1, "1.0 keep-alive"},
    {"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 0, 204, 1, "No Content", NONE, 9, 1,
     "204 has no body"},
    {"HTTP/1.1 304 Not Modified\r\n\r\n", 0, 304, 1, "Not Modified", NONE, -1, 1, "304"},
    {"HTTP/1.1 100 Continue\r\n\r\n", 0, 100, 1, "Continue", NONE, -1, 1, "interim"},
    {S200 "Content-Length: 10\r\n\r\n", 1, 200, 1, "OK", NONE, 10, 1, "HEAD has no body"},
    {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, 200, 1, "", LEN, 0, 1, "no reason, no SP"},
    {"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", 0, 404, 1, "", LEN, 0, 1, "empty reason"},
    {"HTTP/1.1 502 Bad  Gateway\t!\r\nContent-Length: 0\r\n\r\n", 0, 502, 1, "Bad  Gateway\t!", LEN,
     0, 1, "reason with spaces"},
    {"HTTP/1.1 599 x\r\nX-A:  v  \r\nContent-Length: 0\r\n\r\n", 0, 599, 1, "x", LEN, 0, 1, "ows"},
    {"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n", 0, 200, 1, "OK", LEN, 0, 1,
     "empty value"},
    {"HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\nX: \xff\r\n\r\n", 0, 200, 1, "\xc3\xa9t\xc3\xa9", CLO, -1,
     0, "obs-text"},
    {"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200, 9, "OK", LEN, 0, 1, "1.9"},
    {S200 "Content-Length: 9007199254740992\r\n\r\n", 0, 200, 1, "OK", LEN,
     INT64_C(9007199254740992), 1, "largest length"},
};

static void check_ok(const struct ok_case *c, const struct hs_http_response *res, int rc)
{
    assert_int_equal(rc, (int)strlen(c->in));
    assert_int_equal(res->status, c->status);
    assert_int_equal(res->minor_version, c->minor);
    assert_int_equal(res->reason_len, strlen(c->reason));
    assert_memory_equal(res->reason, c->reason, res->reason_len);
    assert_int_equal(res->body, c->body);
    assert_true(res->content_length == c->cl);
    assert_int_equal(res->keep_alive, c->keep_alive);
    assert_null(res->why);
}

static void test_ok(void **state)
{
    struct hs_http_response res;
    size_t i, k;
    char buf[512];

    (void)state;
    for (i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const struct ok_case *c = &ok_cases[i];
        size_t n = strlen(c->in);
        print_message("ok: %s\n", c->label);
        check_ok(c, &res, parse_edge(c->in, n, 0, c->head, &res));
        for (k = 0; k < n; k++)
            assert_int_equal(parse_edge(c->in, k, 0, c->head, &res), HS_AGAIN);
        check_ok(c, &res, parse_trickle(c->in, n, c->head, &res));
        /* A body after the head is not part of it. */
        assert_true(n + 5 < sizeof buf);
        memcpy(buf, c->in, n);
        memcpy(buf + n, "hello", 5);
        check_ok(c, &res, parse_edge(buf, n + 5, 0, c->head, &res));
    }
}

static void test_headers(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nServer: hs\r\nX-Two:  a b \r\n"
                             "Content-Length: 3\r\n\r\nabc";
    struct hs_http_response res;

    (void)state;
    assert_int_equal(parse_edge(in, sizeof in - 1, 0, 0, &res), (int)sizeof in - 4);
    assert_int_equal(res.num_headers, 3);
    assert_int_equal(res.headers[0].name_len, 6);
    assert_memory_equal(res.headers[0].name, "Server", 6);
    assert_int_equal(res.headers[1].value_len, 3);
    assert_memory_equal(res.headers[1].value, "a b", 3);
}

/* ---- refused heads -------------------------------------------------------------------- */

struct bad_case {
    const char *in;
    const char *why;
    const char *label;
};

static const struct bad_case bad_cases[] = {
    {"HTTP/1.1 200 OK\n\n", "bare LF", "bare LF"},
    {"\n", "bare LF", "LF first"},
    {S200 "A: b\n", "bare LF", "bare LF in a field"},
    {"\r\n\r\n", "bad status line", "empty"},
    {"HTTP/2.0 200 OK\r\n\r\n", "bad status line", "HTTP/2"},
    {"HTTP/1.1  200 OK\r\n\r\n", "bad status code", "two spaces"},
    {"HTTP/1.x 200 OK\r\n\r\n", "bad status line", "minor not a digit"},
    {"http/1.1 200 OK\r\n\r\n", "bad status line", "lowercase"},
    {"HTTP/1.1 20 OK\r\n\r\n", "bad status code", "two digits"},
    {"HTTP/1.1 2000 OK\r\n\r\n", "bad status code", "four digits"},
    {"HTTP/1.1 099 OK\r\n\r\n", "bad status code", "leading zero"},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", "control byte in reason", "control in reason"},
    {"ICY 200 OK\r\n\r\n", "bad status line", "not HTTP"},
    {S200 " folded\r\n\r\n", "obsolete line folding", "fold"},
    {S200 "X: a\r\n b\r\n\r\n", "obsolete line folding", "fold after a field"},
    {S200 "No colon\r\n\r\n", "invalid field name", "space in name"},
    {S200 "Nocolon\r\n\r\n", "invalid field line", "no colon"},
    {S200 ": v\r\n\r\n", "invalid field line", "empty name"},
    {S200 "X : v\r\n\r\n", "invalid field name", "space before colon"},
    {S200 "X: a\x7f\r\n\r\n", "control byte in field value", "DEL in value"},
    {S200 "X: a\rb\r\n\r\n", "control byte in field value", "CR in value"},
    {S200 "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting content-length",
     "two lengths"},
    {S200 "Content-Length: 1, 1\r\n\r\n", "invalid content-length", "length list"},
    {S200 "Content-Length: -1\r\n\r\n", "invalid content-length", "negative"},
    {S200 "Content-Length: 0x10\r\n\r\n", "invalid content-length", "hex"},
    {S200 "Content-Length:\r\n\r\n", "invalid content-length", "empty length"},
    {S200 "Content-Length: 9007199254740993\r\n\r\n", "content-length too large", "too large"},
    {S200 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     "content-length with transfer-encoding", "smuggling"},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "transfer-encoding in HTTP/1.0",
     "te in 1.0"},
};

static void test_bad(void **state)
{
    struct hs_http_response res;
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t n = strlen(c->in);
        print_message("bad: %s\n", c->label);
        assert_int_equal(parse_edge(c->in, n, 0, 0, &res), HS_EPROTO);
        assert_string_equal(res.why, c->why);
        assert_int_equal(parse_trickle(c->in, n, 0, &res), HS_EPROTO);
        assert_string_equal(res.why, c->why);
    }
}

/* ---- limits --------------------------------------------------------------------------- */

static char big[BIG];

static void test_status_line_limit(void **state)
{
    struct hs_http_response res;
    size_t n;

    (void)state;
    /* Exactly at the limit is accepted. */
    memset(big, 'r', sizeof big);
    memcpy(big, "HTTP/1.1 200 ", 13);
    memcpy(big + HS_HTTP_MAX_STATUS_LINE, "\r\n\r\n", 4);
    n = HS_HTTP_MAX_STATUS_LINE + 4;
    assert_int_equal(parse_edge(big, n, 0, 0, &res), (int)n);
    /* One more byte is refused, and without waiting for the end of the line. */
    memcpy(big + HS_HTTP_MAX_STATUS_LINE, "r\r\n\r\n", 5);
    assert_int_equal(parse_edge(big, n + 1, 0, 0, &res), HS_EPROTO);
    assert_string_equal(res.why, "status line too long");
    assert_int_equal(parse_edge(big, HS_HTTP_MAX_STATUS_LINE + 1, 0, 0, &res), HS_AGAIN);
    assert_int_equal(
        parse_edge(big, HS_HTTP_MAX_STATUS_LINE + 2, HS_HTTP_MAX_STATUS_LINE + 1, 0, &res),
        HS_EPROTO);
    assert_string_equal(res.why, "status line too long");
}

static void test_header_limits(void **state)
{
    struct hs_http_response res;
    size_t n = 0, i;

    (void)state;
    /* One field more than the count limit. */
    n = (size_t)sprintf(big, "%s", S200);
    for (i = 0; i <= HS_HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(big + n, "X-%zu: v\r\n", i);
    n += (size_t)sprintf(big + n, "\r\n");
    assert_int_equal(parse_edge(big, n, 0, 0, &res), HS_EPROTO);
    assert_string_equal(res.why, "too many header fields");

    /* Field bytes over the limit: refused once the bytes pass it, before the blank line. */
    n = (size_t)sprintf(big, "%s", S200);
    while (n < HS_HTTP_MAX_STATUS_LINE + HS_HTTP_MAX_RESPONSE_HEADER_BYTES + 8)
        n += (size_t)sprintf(big + n, "X-Long: %0400d\r\n", 0);
    assert_int_equal(parse_edge(big, n, 0, 0, &res), HS_EPROTO);
    assert_string_equal(res.why, "response head too large");

    /* Within the total but the fields alone over theirs: refused when complete. */
    n = (size_t)sprintf(big, "%s", S200);
    while (n < HS_HTTP_MAX_RESPONSE_HEADER_BYTES + 100)
        n += (size_t)sprintf(big + n, "X-Long: %0400d\r\n", 0);
    n += (size_t)sprintf(big + n, "\r\n");
    assert_int_equal(parse_edge(big, n, 0, 0, &res), HS_EPROTO);
    assert_string_equal(res.why, "response head too large");
}

/* A caller's headers array smaller than the head. */
static void test_headers_cap(void **state)
{
    static const char in[] = S200 "A: 1\r\nB: 2\r\n\r\n";
    struct hs_http_header two[1];
    struct hs_http_response res;

    (void)state;
    memset(&res, 0, sizeof res);
    res.headers = two;
    res.headers_cap = 1;
    assert_int_equal(hs_http_parse_response(in, sizeof in - 1, 0, 0, NULL, &res), HS_EPROTO);
    assert_string_equal(res.why, "too many header fields");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_status_line_limit),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_headers_cap),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
