/* Unit tests for core/http.c: request heads, chunked bodies and path normalization.
 * Cases are one line each (input, expected result, label). Every input is parsed where its
 * last byte is the last readable byte before a PROT_NONE page, so a read past `len` faults.
 * Every valid head is also tried at each proper prefix (HS_AGAIN) and byte by byte with
 * last_len; every refused head must be refused the same way when it arrives byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/http.h"
#include "core/hs.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_DATA (128 * 1024) /* bytes readable before the guard page */
#define BIG (64 * 1024)         /* scratch for generated heads and bodies */

#include "tests/unit/guard_page.h"

static struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];

static void req_reset(struct hs_http_request *req)
{
    memset(req, 0, sizeof(*req));
    req->headers = hdrs;
    req->headers_cap = ARRAY_LEN(hdrs);
}

static int parse_edge(const char *s, size_t n, size_t last_len, const struct hs_http_limits *lim,
                      struct hs_http_request *req)
{
    return hs_http_parse_request(guard_put(s, n), n, last_len, lim, req);
}

/* Feeds s one byte at a time with last_len, as a connection would. Returns the first result
 * that is not HS_AGAIN (or HS_AGAIN) and stores the prefix length that produced it. */
static int parse_trickle(const char *s, size_t n, const struct hs_http_limits *lim,
                         struct hs_http_request *req, size_t *at)
{
    size_t k, last = 0;
    int rc = HS_AGAIN;

    for (k = 1; k <= n; k++) {
        rc = parse_edge(s, k, last, lim, req);
        if (rc != HS_AGAIN)
            break;
        assert_int_equal(req->status, 0);
        last = k;
    }
    *at = k;
    return rc;
}

static int view_eq(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ---- valid heads ---------------------------------------------------------------------- */

struct ok_case {
    const char *in;
    int64_t cl;
    int chunked, keep_alive, expect;
    const char *label;
};

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define P11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const struct ok_case ok_cases[] = {
    {H11 "\r\n", -1, 0, 1, 0, "minimal 1.1"},
    {"GET / HTTP/1.0\r\n\r\n", -1, 0, 0, 0, "minimal 1.0 closes"},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", -1, 0, 1, 0, "1.0 keep-alive"},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", -1, 0, 0, 0, "1.0 close wins"},
    {H11 "Connection: close\r\n\r\n", -1, 0, 0, 0, "1.1 close"},
    {H11 "Connection: Upgrade, CLOSE\r\n\r\n", -1, 0, 0, 0, "close in a list"},
    {H11 "Connection: keep-alive\r\nConnection: close\r\n\r\n", -1, 0, 0, 0, "two lines"},
    {H11 "Connection: ,, keep-alive ,\r\n\r\n", -1, 0, 1, 0, "empty list elements"},
    {P11 "Content-Length: 10\r\n\r\n", 10, 0, 1, 0, "content-length"},
    {P11 "content-length: 0\r\n\r\n", 0, 0, 1, 0, "zero, lowercase name"},
    {P11 "Content-Length: 007\r\n\r\n", 7, 0, 1, 0, "leading zeros"},
    {P11 "Content-Length: 9007199254740992\r\n\r\n", INT64_C(1) << 53, 0, 1, 0, "2^53"},
    {P11 "Content-Length:\t42 \t\r\n\r\n", 42, 0, 1, 0, "OWS around value"},
    {P11 "Transfer-Encoding: chunked\r\n\r\n", -1, 1, 1, 0, "chunked"},
    {P11 "transfer-encoding: CHUNKED\r\n\r\n", -1, 1, 1, 0, "chunked any case"},
    {P11 "Transfer-Encoding:  chunked \r\n\r\n", -1, 1, 1, 0, "chunked with OWS"},
    {P11 "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 3, 0, 1, 1, "expect"},
    {P11 "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n", 3, 0, 1, 1, "expect any case"},
    {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", 3, 0, 0, 0,
     "1.0 expect ignored"},
    {"\r\n" H11 "\r\n", -1, 0, 1, 0, "one leading CRLF skipped"},
    {"GET /?a=b HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "query"},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "asterisk form"},
    {"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "absolute form"},
    {H11 "Content-Length: 0\r\n\r\n", 0, 0, 1, 0, "GET with an empty body"},
    {"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, 0, 1, 0, "HEAD CL 0"},
    {"GETX / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", 2, 0, 1, 0, "not GET"},
    {P11 "X-Transfer-Encoding: chunked\r\n\r\n", -1, 0, 1, 0, "TE inside a longer name"},
    {P11 "Content-Lengths: 5\r\n\r\n", -1, 0, 1, 0, "CL with a suffix"},
    {"GET HTTPS://a:443 HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "absolute, no path"},
    {H11 "X: \x80\xff obs-text\r\n\r\n", -1, 0, 1, 0, "obs-text in value"},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "non-ASCII target"},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", -1, 0, 1, 0, "empty Host"},
    {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", -1, 0, 1, 0, "IPv6 Host"},
    {H11 "X:\r\n\r\n", -1, 0, 1, 0, "empty value"},
    {H11 "X: a\tb\r\n\r\n", -1, 0, 1, 0, "HTAB inside value"},
    {"M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "token method"},
    {"get / HTTP/1.1\r\nHost: a\r\n\r\n", -1, 0, 1, 0, "lowercase method is a token"},
};

static void test_ok_table(void **state)
{
    struct hs_http_request req;
    size_t i, k, at;

    (void)state;
    for (i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const struct ok_case *c = &ok_cases[i];
        size_t n = strlen(c->in);
        int rc;

        print_message("ok: %s\n", c->label);
        req_reset(&req);
        rc = parse_edge(c->in, n, 0, NULL, &req);
        assert_int_equal(rc, (int)n);
        assert_int_equal(req.status, 0);
        assert_null(req.why);
        assert_int_equal(req.content_length, c->cl);
        assert_int_equal(req.chunked, c->chunked);
        assert_int_equal(req.keep_alive, c->keep_alive);
        assert_int_equal(req.expect_continue, c->expect);

        for (k = 0; k < n; k++) {
            req_reset(&req);
            assert_int_equal(parse_edge(c->in, k, 0, NULL, &req), HS_AGAIN);
        }
        req_reset(&req);
        assert_int_equal(parse_trickle(c->in, n, NULL, &req, &at), (int)n);
        assert_int_equal(at, n);
        assert_int_equal(req.content_length, c->cl);
        assert_int_equal(req.keep_alive, c->keep_alive);
    }
}

/* ---- refused heads -------------------------------------------------------------------- */

struct bad_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int status;
    const char *why;
    const char *label;
};

static const struct bad_case bad_cases[] = {
    /* Line endings and bytes. */
    {"GET / HTTP/1.1\nHost: a\r\n\r\n", 0, 400, "bare LF", "bare LF after request line"},
    {"GET / HTTP/1.1\r\nHost: a\n\r\n", 0, 400, "bare LF", "bare LF after field"},
    {H11 "\n", 0, 400, "bare LF", "bare LF as blank line"},
    {"GET / HTTP/1.1\n", 0, 400, "bare LF", "bare LF, head incomplete"},
    {"\n", 0, 400, "bare LF", "lone LF"},
    {"GET / HTTP/1.1\rHost: a\r\n\r\n", 0, 400, "CR not followed by LF", "bare CR"},
    {H11 "X: a\rb", 0, 400, "CR not followed by LF", "bare CR, head incomplete"},
    {"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", 28, 400, "NUL byte", "NUL in value"},
    {"GET /\0 HTTP/1.1\r\n", 17, 400, "NUL byte", "NUL in target"},
    {H11 "X: \0", sizeof(H11 "X: \0") - 1, 400, "NUL byte", "NUL, head incomplete"},
    {H11 "X: a\x01"
         "b\r\n\r\n",
     0, 400, "control character", "control in value"},
    {H11 "X: a\x7f"
         "b\r\n\r\n",
     0, 400, "control character", "DEL in value"},
    {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "control character", "DEL in target"},
    {H11 "X: a\x1b[31m\r\n\r\n", 0, 400, "control character", "ESC in value"},
    /* Field lines. */
    {H11 "X: a\r\n folded\r\n\r\n", 0, 400, "obsolete line folding", "fold SP"},
    {H11 "X: a\r\n\tfolded\r\n\r\n", 0, 400, "obsolete line folding", "fold HTAB"},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, 400, "obsolete line folding", "WS first line"},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400, "whitespace before colon", "SP colon"},
    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 0, 400, "whitespace before colon", "HTAB colon"},
    {H11 ": v\r\n\r\n", 0, 400, "empty field name", "empty name"},
    {H11 "X(y): v\r\n\r\n", 0, 400, "invalid field name", "bad name byte"},
    {H11 "X\x80: v\r\n\r\n", 0, 400, "invalid field name", "obs-text name"},
    {H11 "NoColon\r\n\r\n", 0, 400, "missing colon", "no colon"},
    /* Request line. */
    {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid method", "bad method byte"},
    {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid method", "leading SP"},
    {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid method", "HTAB separator"},
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "empty target", "double SP"},
    {"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "double SP 2"},
    {"GET / http1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "http1.1"},
    {"GET / http/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "lowercase http"},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, 400, "invalid version", "trailing SP"},
    {"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "trailing byte"},
    {"GET / HTTP/1\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "no minor"},
    {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "two-digit minor"},
    {"GET / HTTP/11\r\nHost: a\r\n\r\n", 0, 400, "invalid version", "no dot"},
    {"GET /\r\n\r\n", 0, 400, "invalid version", "HTTP/0.9 form"},
    {"GET\r\n\r\n", 0, 400, "invalid method", "method only"},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 505, "unsupported version", "HTTP/2.0"},
    {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, 505, "unsupported version", "HTTP/1.2"},
    {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 0, 505, "unsupported version", "HTTP/0.9"},
    {"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 0, 505, "unsupported version", "HTTP/3.0"},
    {"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid target", "relative target"},
    {"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "invalid byte in target", "HTAB"},
    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "asterisk target without OPTIONS", "*"},
    {"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "empty authority", "no authority"},
    {"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "userinfo in target", "userinfo"},
    {"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid target", "authority form"},
    {"\r\n\r\n", 0, 400, "empty request line", "two empty lines"},
    {"\r\n\r\n" H11 "\r\n", 0, 400, "empty request line", "two leading CRLF"},
    /* Framing and smuggling. */
    {P11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400, "duplicate Content-Length",
     "equal duplicate CL"},
    {P11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400, "duplicate Content-Length",
     "different duplicate CL"},
    {P11 "Content-Length: 5, 5\r\n\r\n", 0, 400, "invalid Content-Length", "CL list"},
    {P11 "Content-Length: +5\r\n\r\n", 0, 400, "invalid Content-Length", "CL sign"},
    {P11 "Content-Length: -1\r\n\r\n", 0, 400, "invalid Content-Length", "CL negative"},
    {P11 "Content-Length: 5 5\r\n\r\n", 0, 400, "invalid Content-Length", "CL inner SP"},
    {P11 "Content-Length: \r\n\r\n", 0, 400, "invalid Content-Length", "CL empty"},
    {P11 "Content-Length: 0x10\r\n\r\n", 0, 400, "invalid Content-Length", "CL hex"},
    {P11 "Content-Length: 9007199254740993\r\n\r\n", 0, 400, "Content-Length too large",
     "CL 2^53+1"},
    {P11 "Content-Length: 99999999999999999999999999\r\n\r\n", 0, 400, "Content-Length too large",
     "CL overflow"},
    {P11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400,
     "both Content-Length and Transfer-Encoding", "CL then TE"},
    {P11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400,
     "both Content-Length and Transfer-Encoding", "TE then CL"},
    {P11 "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 400,
     "both Content-Length and Transfer-Encoding", "CL and unknown TE"},
    {P11 "Transfer-Encoding: gzip\r\n\r\n", 0, 501, "unsupported transfer coding", "gzip"},
    {P11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501, "unsupported transfer coding",
     "gzip, chunked"},
    {P11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 0, 501, "unsupported transfer coding",
     "chunked not final"},
    {P11 "Transfer-Encoding: xchunked\r\n\r\n", 0, 501, "unsupported transfer coding",
     "chunked lookalike"},
    {P11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 0, 501, "unsupported transfer coding",
     "chunked with parameter"},
    {P11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, 400, "chunked applied twice",
     "chunked twice in a list"},
    {P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400,
     "chunked applied twice", "chunked twice in two lines"},
    {P11 "Transfer-Encoding: chunked,\r\n\r\n", 0, 400, "invalid Transfer-Encoding",
     "TE empty element"},
    {P11 "Transfer-Encoding:\r\n\r\n", 0, 400, "invalid Transfer-Encoding", "TE empty"},
    {P11 "Transfer-Encoding : chunked\r\n\r\n", 0, 400, "whitespace before colon", "TE SP colon"},
    {P11 "Transfer-Encoding: chunked\x0b\r\n\r\n", 0, 400, "control character", "TE VT"},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400,
     "Transfer-Encoding in HTTP/1.0", "TE in 1.0"},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, 400,
     "Transfer-Encoding in HTTP/1.0", "TE and CL in 1.0"},
    {"GET / HTTP/1.1\r\n\r\n", 0, 400, "missing Host", "1.1 without Host"},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400, "duplicate Host", "two Host"},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400, "invalid Host", "Host with SP"},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400, "invalid Host", "Host with slash"},
    {"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 0, 400, "invalid Host", "Host with userinfo"},
    /* Names a gateway that maps '_' to '-' or squeezes dashes would read as the real field. */
    {P11 "Transfer_Encoding: chunked\r\n\r\n", 0, 400, "Transfer-Encoding lookalike", "TE _"},
    {P11 "Transfer---Encoding: chunked\r\n\r\n", 0, 400, "Transfer-Encoding lookalike", "TE ---"},
    {P11 "TransferEncoding: chunked\r\n\r\n", 0, 400, "Transfer-Encoding lookalike", "TE no -"},
    {P11 "-Transfer-Encoding: chunked\r\n\r\n", 0, 400, "Transfer-Encoding lookalike", "TE -x"},
    {P11 "Content_Length: 5\r\n\r\n", 0, 400, "Content-Length lookalike", "CL _"},
    {P11 "Content--Length: 5\r\n\r\n", 0, 400, "Content-Length lookalike", "CL --"},
    {P11 "content_length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400, "Content-Length lookalike",
     "CL _ beside the real one"},
    /* A body on GET or HEAD (allowed only with allow_get_body). */
    {H11 "Content-Length: 1\r\n\r\n", 0, 400, "body in a GET or HEAD request", "GET CL 1"},
    {H11 "Transfer-Encoding: chunked\r\n\r\n", 0, 400, "body in a GET or HEAD request",
     "GET chunked"},
    {"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", 0, 400,
     "body in a GET or HEAD request", "HEAD CL 3"},
    {H11 "Transfer-Encoding: gzip\r\n\r\n", 0, 501, "unsupported transfer coding",
     "GET gzip: the coding is refused first"},
};

static void test_bad_table(void **state)
{
    struct hs_http_request req;
    size_t i, at;

    (void)state;
    for (i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t n = c->len != 0 ? c->len : strlen(c->in);
        int rc;

        print_message("bad: %s\n", c->label);
        req_reset(&req);
        rc = parse_edge(c->in, n, 0, NULL, &req);
        assert_int_equal(rc, HS_EPROTO);
        assert_int_equal(req.status, c->status);
        assert_non_null(req.why);
        assert_string_equal(req.why, c->why);

        /* Arriving byte by byte gives the same answer, never a success. */
        req_reset(&req);
        rc = parse_trickle(c->in, n, NULL, &req, &at);
        assert_int_equal(rc, HS_EPROTO);
        assert_int_equal(req.status, c->status);
        assert_string_equal(req.why, c->why);
    }
}

/* ---- views ---------------------------------------------------------------------------- */

/* Every byte value at every offset of a header value, so each lands in every lane of the
 * scanner's 8-byte steps and at their ends: controls (but HTAB) and DEL are refused with their
 * reason whatever the alignment, every other byte (obs-text included) passes. */
static void test_scan_every_offset(void **state)
{
    (void)state;
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long-Value: ";
    char in[256];
    for (size_t pad = 0; pad < 24; pad++) {
        for (int b = 0; b < 256; b++) {
            if (b == '\r' || b == '\n')
                continue; /* line ends: their own cases in the tables above */
            size_t n = sizeof pre - 1;
            memcpy(in, pre, n);
            memset(in + n, 'v', pad);
            n += pad;
            in[n++] = (char)b;
            memcpy(in + n, "vvvvvvvvvvv\r\n\r\n", 15);
            n += 15;
            struct hs_http_request req;
            req_reset(&req);
            int rc = parse_edge(in, n, 0, NULL, &req);
            if ((b < 0x20 && b != '\t') || b == 0x7f) {
                assert_int_equal(rc, HS_EPROTO);
                assert_int_equal(req.status, 400);
                assert_string_equal(req.why, b == 0 ? "NUL byte" : "control character");
            } else {
                assert_int_equal(rc, (int)n);
            }
        }
    }
}

static void test_views(void **state)
{
    static const char in[] = "GET /p/q?x=1&y HTTP/1.1\r\nHost: example.com\r\n"
                             "X-A:  v a  \r\nX-Empty:\r\nX-Tab:\tt\t\r\n\r\nBODY";
    struct hs_http_request req;
    const char *b;
    int rc;

    (void)state;
    req_reset(&req);
    b = guard_put(in, sizeof(in) - 1);
    rc = hs_http_parse_request(b, sizeof(in) - 1, 0, NULL, &req);
    assert_int_equal(rc, (int)(sizeof(in) - 1 - 4));
    assert_true(view_eq(req.method, req.method_len, "GET"));
    assert_true(view_eq(req.target, req.target_len, "/p/q?x=1&y"));
    assert_true(view_eq(req.path, req.path_len, "/p/q"));
    assert_true(view_eq(req.query, req.query_len, "x=1&y"));
    assert_true(view_eq(req.host, req.host_len, "example.com"));
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 4);
    assert_true(view_eq(hdrs[0].name, hdrs[0].name_len, "Host"));
    assert_true(view_eq(hdrs[1].name, hdrs[1].name_len, "X-A"));
    assert_true(view_eq(hdrs[1].value, hdrs[1].value_len, "v a"));
    assert_true(view_eq(hdrs[2].name, hdrs[2].name_len, "X-Empty"));
    assert_int_equal(hdrs[2].value_len, 0);
    assert_true(view_eq(hdrs[3].value, hdrs[3].value_len, "t"));
    /* Views point into the caller's buffer. */
    assert_true(req.method == b && hdrs[0].name == b + 25);

    req_reset(&req);
    rc = parse_edge("GET /nq HTTP/1.0\r\n\r\n", 20, 0, NULL, &req);
    assert_int_equal(rc, 20);
    assert_true(view_eq(req.path, req.path_len, "/nq"));
    assert_int_equal(req.query_len, 0);
    assert_null(req.host);
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.num_headers, 0);

    req_reset(&req);
    rc = parse_edge("GET /e? HTTP/1.1\r\nHost: a\r\n\r\n", 29, 0, NULL, &req);
    assert_int_equal(rc, 29);
    assert_true(view_eq(req.path, req.path_len, "/e"));
    assert_int_equal(req.query_len, 0);
}

static void test_target_forms(void **state)
{
    static const struct {
        const char *in, *path, *query;
    } cases[] = {
        {"GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n", "/a/b", "c=d"},
        {"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", "/", ""},
        {"GET http://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n", "/", "q"},
        {"GET HtTp://h:8080/x HTTP/1.1\r\nHost: h:8080\r\n\r\n", "/x", ""},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "*", ""},
        {"GET //a//b?x?y HTTP/1.1\r\nHost: a\r\n\r\n", "//a//b", "x?y"},
    };
    struct hs_http_request req;
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i].in);
        req_reset(&req);
        assert_int_equal(parse_edge(cases[i].in, n, 0, NULL, &req), (int)n);
        assert_true(view_eq(req.path, req.path_len, cases[i].path));
        assert_true(view_eq(req.query, req.query_len, cases[i].query));
    }
}

/* ---- pipelining ----------------------------------------------------------------------- */

static void test_pipelined(void **state)
{
    /* The second request's body holds bytes the head scan would refuse: it must not look. */
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                             "\0\n\r\x7f\n"
                             "\r\nGET /c HTTP/1.0\r\n\r\n"
                             "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static const char *paths[] = {"/a", "/b", "/c", "/d"};
    static const int keep[] = {1, 1, 0, 0};
    struct hs_http_request req;
    const char *b = guard_put(in, sizeof(in) - 1);
    size_t off = 0, n = sizeof(in) - 1, i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(paths); i++) {
        int rc;

        req_reset(&req);
        rc = hs_http_parse_request(b + off, n - off, 0, NULL, &req);
        assert_true(rc > 0);
        assert_true(view_eq(req.path, req.path_len, paths[i]));
        assert_int_equal(req.keep_alive, keep[i]);
        off += (size_t)rc;
        if (req.content_length > 0)
            off += (size_t)req.content_length;
    }
    assert_int_equal(off, n);
}

/* ---- limits --------------------------------------------------------------------------- */

/* Writes a request whose request line is exactly rl bytes (>= 14) and whose nh field lines
 * (Host first, then "X:") take exactly hb bytes with their CRLFs, then the blank line. */
static size_t make_head(char *out, size_t rl, size_t hb, size_t nh)
{
    size_t o = 0, base = 8 + 4 * (nh - 1), i;

    assert_true(rl >= 14 && nh >= 1 && hb >= base);
    memcpy(out, "GET /", 5);
    o = 5;
    memset(out + o, 'a', rl - 14);
    o += rl - 14;
    memcpy(out + o, " HTTP/1.1\r\n", 11);
    o += 11;
    for (i = 0; i < nh; i++) {
        const char *name = i == 0 ? "Host:x" : "X:";
        size_t extra = i == nh - 1 ? hb - base : 0;
        memcpy(out + o, name, strlen(name));
        o += strlen(name);
        memset(out + o, i == 0 ? 'x' : 'v', extra);
        o += extra;
        memcpy(out + o, "\r\n", 2);
        o += 2;
    }
    memcpy(out + o, "\r\n", 2);
    return o + 2;
}

static char big[BIG];

/* Checks that a head at exactly the limits parses and that one more byte or field is
 * refused with `status`, at the earliest prefix that proves it. */
static void check_limits(const struct hs_http_limits *lim, size_t rl, size_t hb, size_t nh,
                         int all_prefixes)
{
    struct hs_http_request req;
    size_t n, at, k;

    n = make_head(big, rl, hb, nh);
    req_reset(&req);
    assert_int_equal(parse_edge(big, n, 0, lim, &req), (int)n);
    assert_int_equal(req.num_headers, nh);
    req_reset(&req);
    assert_int_equal(parse_trickle(big, n, lim, &req, &at), (int)n);
    for (k = 0; all_prefixes && k < n; k++) {
        req_reset(&req);
        assert_int_equal(parse_edge(big, k, 0, lim, &req), HS_AGAIN);
    }

    /* Request line one byte over: refused once rl + 1 bytes without a CR have arrived. */
    n = make_head(big, rl + 1, hb, nh);
    req_reset(&req);
    assert_int_equal(parse_edge(big, n, 0, lim, &req), HS_EPROTO);
    assert_int_equal(req.status, 414);
    req_reset(&req);
    assert_int_equal(parse_trickle(big, n, lim, &req, &at), HS_EPROTO);
    assert_int_equal(req.status, 414);
    assert_int_equal(at, rl + 1);

    /* Field lines one byte over: refused when the byte after max arrives and is not CR. */
    n = make_head(big, rl, hb + 1, nh);
    req_reset(&req);
    assert_int_equal(parse_edge(big, n, 0, lim, &req), HS_EPROTO);
    assert_int_equal(req.status, 431);
    assert_string_equal(req.why, "header section too large");
    req_reset(&req);
    assert_int_equal(parse_trickle(big, n, lim, &req, &at), HS_EPROTO);
    assert_int_equal(req.status, 431);
    assert_int_equal(at, rl + 2 + hb + 1);

    /* One field line too many (same byte count). */
    n = make_head(big, rl, hb, nh + 1);
    req_reset(&req);
    assert_int_equal(parse_edge(big, n, 0, lim, &req), HS_EPROTO);
    assert_int_equal(req.status, 431);
    assert_string_equal(req.why, "too many headers");
}

static void test_limits_small(void **state)
{
    const struct hs_http_limits lim = {32, 64, 4, 0};

    (void)state;
    check_limits(&lim, 32, 64, 4, 1);
}

/* allow_get_body lets GET and HEAD carry a body; every other rule still holds. */
static void test_allow_get_body(void **state)
{
    const struct hs_http_limits lim = {0, 0, 0, 1};
    static const char get[] = H11 "Content-Length: 4\r\n\r\n";
    static const char head[] = "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char both[] = H11 "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct hs_http_request req;

    (void)state;
    req_reset(&req);
    assert_int_equal(parse_edge(get, sizeof(get) - 1, 0, &lim, &req), (int)sizeof(get) - 1);
    assert_int_equal(req.content_length, 4);
    req_reset(&req);
    assert_int_equal(parse_edge(head, sizeof(head) - 1, 0, &lim, &req), (int)sizeof(head) - 1);
    assert_int_equal(req.chunked, 1);
    req_reset(&req);
    assert_int_equal(parse_edge(both, sizeof(both) - 1, 0, &lim, &req), HS_EPROTO);
    assert_string_equal(req.why, "both Content-Length and Transfer-Encoding");
}

static void test_limits_default(void **state)
{
    (void)state;
    check_limits(NULL, HS_HTTP_MAX_REQUEST_LINE, HS_HTTP_MAX_HEADER_BYTES, HS_HTTP_MAX_HEADERS, 0);
}

static void test_limits_endless(void **state)
{
    const struct hs_http_limits lim = {32, 64, 4, 0};
    struct hs_http_request req;
    size_t n;

    (void)state;
    /* A request line that never ends: AGAIN at max bytes, 414 at max + 1. */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    req_reset(&req);
    assert_int_equal(parse_edge(big, 32, 0, &lim, &req), HS_AGAIN);
    assert_int_equal(parse_edge(big, 33, 32, &lim, &req), HS_EPROTO);
    assert_int_equal(req.status, 414);
    assert_string_equal(req.why, "request line too long");

    /* Field lines that never end, default limits, arriving in 1000-byte reads. */
    n = make_head(big, 14, 9, 1) - 2;
    memset(big + n, 'b', sizeof(big) - n);
    {
        size_t last = 0, k;
        int rc = HS_AGAIN;
        for (k = 1000; k <= sizeof(big) && rc == HS_AGAIN; k += 1000) {
            rc = parse_edge(big, k, last, NULL, &req);
            last = k;
        }
        assert_int_equal(rc, HS_EPROTO);
        assert_int_equal(req.status, 431);
        assert_true(last > 16 + HS_HTTP_MAX_HEADER_BYTES &&
                    last <= 16 + HS_HTTP_MAX_HEADER_BYTES + 1000 + 2);
    }
}

static void test_headers_cap(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    struct hs_http_header two[2], three[3];
    struct hs_http_request req;
    int rc;

    (void)state;
    memset(&req, 0, sizeof(req));
    req.headers = two;
    req.headers_cap = 2;
    rc = parse_edge(in, sizeof(in) - 1, 0, NULL, &req);
    assert_int_equal(rc, HS_EPROTO);
    assert_int_equal(req.status, 431);

    memset(&req, 0, sizeof(req));
    req.headers = three;
    req.headers_cap = 3;
    rc = parse_edge(in, sizeof(in) - 1, 0, NULL, &req);
    assert_int_equal(rc, (int)sizeof(in) - 1);
    assert_int_equal(req.num_headers, 3);
    assert_true(view_eq(three[2].value, three[2].value_len, "2"));

    /* No array: semantics are still computed, nothing is stored. */
    memset(&req, 0, sizeof(req));
    rc = parse_edge(in, sizeof(in) - 1, 0, NULL, &req);
    assert_int_equal(rc, (int)sizeof(in) - 1);
    assert_int_equal(req.num_headers, 0);
    assert_true(view_eq(req.host, req.host_len, "a"));
}

/* ---- chunked bodies ------------------------------------------------------------------- */

struct chunk_case {
    const char *in;
    size_t len;       /* 0: strlen(in) */
    int rc;           /* final result: 0, HS_AGAIN or HS_EPROTO */
    const char *data; /* decoded data (rc 0 or HS_AGAIN) or st.why (HS_EPROTO) */
    size_t data_len;  /* 0: strlen(data) */
    size_t used;      /* rc 0: bytes consumed by the body; 0: all of the input */
    const char *label;
};

static const struct chunk_case chunk_cases[] = {
    {"0\r\n\r\n", 0, 0, "", 0, 0, "empty body"},
    {"5\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", 0, 0, "one chunk"},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, 0, "hello world", 0, 0, "two chunks"},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 0, 0, "0123456789abcdefghij", 0, 0,
     "hex either case"},
    {"005\r\nhello\r\n0000\r\n\r\n", 0, 0, "hello", 0, 0, "leading zeros"},
    {"5;ext=1;b=\"q s\"\r\nhello\r\n0;x\r\n\r\n", 0, 0, "hello", 0, 0, "extensions"},
    {"5 \t;ext\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", 0, 0, "BWS before extension"},
    {"5 ; a = \"q\\\"\\\\ ;\" ;b\t=\tc \r\nhello\r\n0\r\n\r\n", 0, 0, "hello", 0, 0,
     "BWS, quoted pairs"},
    {"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n", 0, 0, "hello", 0, 0, "trailers skipped"},
    {"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 0, 0, "abc", 0, 13, "stops at body end"},
    {"4\r\n\r\n\0x\r\n0\r\n\r\n", 14, 0, "\r\n\0x", 4, 0, "data is opaque"},
    {"5\r\nhel", 0, HS_AGAIN, "hel", 0, 0, "incomplete data"},
    {"5\r\nhello\r\n0\r\nX: y\r\n", 0, HS_AGAIN, "hello", 0, 0, "incomplete trailers"},
    {"20000000000000\r\n", 0, HS_AGAIN, "", 0, 0, "chunk size 2^53"},
    {"\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "empty size"},
    {"g\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "bad hex"},
    {"-1\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "negative"},
    {"0x5\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "0x prefix"},
    {"5 \r\nhello\r\n0\r\n\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "BWS no ext"},
    {" 5\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk size", 0, 0, "leading SP"},
    {"20000000000001\r\n", 0, HS_EPROTO, "chunk size too large", 0, 0, "2^53 + 1"},
    {"FFFFFFFFFFFFFFFFFFFF\r\n", 0, HS_EPROTO, "chunk size too large", 0, 0, "overflow"},
    {"5\r\nhelloX\r\n0\r\n\r\n", 0, HS_EPROTO, "missing CRLF after chunk data", 0, 0,
     "data too long"},
    {"5\r\nhello\n0\r\n\r\n", 0, HS_EPROTO, "missing CRLF after chunk data", 0, 0,
     "bare LF after data"},
    {"5\r\nhello\rX", 0, HS_EPROTO, "missing CRLF after chunk data", 0, 0, "CR X after data"},
    {"5\nhello\r\n", 0, HS_EPROTO, "bare LF", 0, 0, "bare LF after size"},
    {"\n", 0, HS_EPROTO, "bare LF", 0, 0, "lone LF"},
    {"5;a\nhello\r\n", 0, HS_EPROTO, "bare LF", 0, 0, "bare LF after ext"},
    {"5\rX", 0, HS_EPROTO, "CR not followed by LF", 0, 0, "CR X after size"},
    {"5;a\x01\r\nhello\r\n", 0, HS_EPROTO, "control byte in chunk extension", 0, 0, "ext ctl"},
    {"5;a=\"x\r\nhello\r\n", 0, HS_EPROTO, "unterminated quoted string in chunk extension", 0, 0,
     "open quote"},
    {"5;a=\"x\\\"\r\nhello\r\n", 0, HS_EPROTO, "unterminated quoted string in chunk extension", 0,
     0, "escaped closing quote"},
    {"5;a=\"x\\\r\nhello\r\n", 0, HS_EPROTO, "unterminated quoted string in chunk extension", 0, 0,
     "backslash before CR"},
    {"5;a=x\"\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "quote in token"},
    {"5;\"a\"\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "quoted name"},
    {"5;a=\"x\"y\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "after quote"},
    {"5;\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "empty name"},
    {"5;a=\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "empty value"},
    {"5;a b\r\nhello\r\n", 0, HS_EPROTO, "invalid chunk extension", 0, 0, "two names"},
    {"0\r\nX: y\n\r\n", 0, HS_EPROTO, "bare LF", 0, 0, "trailer bare LF"},
    {"0\r\nX: \0\r\n\r\n", 11, HS_EPROTO, "control byte in trailer", 0, 0, "trailer NUL"},
    {"0\r\n\r\r", 0, HS_EPROTO, "CR not followed by LF", 0, 0, "final CR CR"},
    {"0\r\n\n", 0, HS_EPROTO, "bare LF", 0, 0, "final bare LF"},
};

/* Decodes in[0..n) arriving `step` bytes at a time (0: all at once), each window placed at
 * the guard page and drained as the decoder says. */
static int chunk_run(const char *in, size_t n, size_t step, char *out, size_t *out_len,
                     size_t *used, const char **why)
{
    struct hs_http_chunked st;
    size_t drained = 0, arrived = step != 0 ? (step < n ? step : n) : n;

    hs_http_chunked_init(&st);
    *out_len = 0;
    *used = 0;
    for (;;) {
        size_t avail = arrived - drained, consumed, off, dl;
        const char *w = guard_put(in + drained, avail);
        int rc = hs_http_chunked_next(&st, w, avail, &consumed, &off, &dl);

        if (rc == 1) {
            assert_true(dl >= 1 && off + dl == consumed && consumed <= avail);
            assert_true(*out_len + dl <= BIG);
            memcpy(out + *out_len, w + off, dl);
            *out_len += dl;
            drained += consumed;
            assert_int_equal(st.total, *out_len);
            continue;
        }
        assert_int_equal(dl, 0);
        if (rc == HS_AGAIN) {
            assert_int_equal(consumed, avail);
            drained += consumed;
            if (arrived == n) {
                *used = drained;
                return rc;
            }
            arrived = arrived + step < n ? arrived + step : n;
            continue;
        }
        *why = st.why;
        if (rc == 0) {
            assert_true(consumed <= avail);
            *used = drained + consumed;
            /* Done is sticky and consumes nothing more. */
            assert_int_equal(hs_http_chunked_next(&st, w, avail, &consumed, &off, &dl), 0);
            assert_int_equal(consumed, 0);
        } else {
            assert_int_equal(hs_http_chunked_next(&st, w, avail, &consumed, &off, &dl), HS_EPROTO);
        }
        return rc;
    }
}

static char chunk_out[BIG];

static void check_chunked(const char *in, size_t n, int want_rc, const char *want, size_t want_len,
                          size_t want_used)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    size_t s;

    for (s = 0; s < ARRAY_LEN(steps); s++) {
        size_t out_len, used;
        const char *why = NULL;
        int rc = chunk_run(in, n, steps[s], chunk_out, &out_len, &used, &why);

        assert_int_equal(rc, want_rc);
        if (rc == HS_EPROTO) {
            assert_non_null(why);
            assert_string_equal(why, want);
            continue;
        }
        assert_int_equal(out_len, want_len);
        assert_memory_equal(chunk_out, want, want_len);
        assert_int_equal(used, want_used);
    }
}

static void test_chunked_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(chunk_cases); i++) {
        const struct chunk_case *c = &chunk_cases[i];
        size_t n = c->len != 0 ? c->len : strlen(c->in);
        size_t dl = c->data_len != 0 ? c->data_len : strlen(c->data);

        print_message("chunked: %s\n", c->label);
        check_chunked(c->in, n, c->rc, c->data, dl, c->used != 0 ? c->used : n);
    }
}

static char chunk_in[BIG];

static void test_chunked_limits(void **state)
{
    size_t n, i;

    (void)state;
    /* A size line of exactly HS_HTTP_MAX_CHUNK_LINE bytes, then one more. */
    memset(chunk_in, '0', HS_HTTP_MAX_CHUNK_LINE);
    memcpy(chunk_in + HS_HTTP_MAX_CHUNK_LINE, "\r\n\r\n", 4);
    check_chunked(chunk_in, HS_HTTP_MAX_CHUNK_LINE + 4, 0, "", 0, HS_HTTP_MAX_CHUNK_LINE + 4);
    memcpy(chunk_in, "1;", 2);
    memset(chunk_in + 2, 'e', HS_HTTP_MAX_CHUNK_LINE - 1);
    memcpy(chunk_in + HS_HTTP_MAX_CHUNK_LINE + 1, "\r\n", 2);
    check_chunked(chunk_in, HS_HTTP_MAX_CHUNK_LINE + 3, HS_EPROTO, "chunk size line too long", 0,
                  0);

    /* Trailer lines of exactly HS_HTTP_MAX_TRAILER_BYTES bytes, then one more. */
    memcpy(chunk_in, "0\r\n", 3);
    n = 3;
    for (i = 0; i < HS_HTTP_MAX_TRAILER_BYTES / 64; i++) {
        memcpy(chunk_in + n, "X:", 2);
        memset(chunk_in + n + 2, 'v', 60);
        memcpy(chunk_in + n + 62, "\r\n", 2);
        n += 64;
    }
    memcpy(chunk_in + n, "\r\n", 2);
    check_chunked(chunk_in, n + 2, 0, "", 0, n + 2);
    memmove(chunk_in + 4, chunk_in + 3, n - 1);
    chunk_in[3] = 'Y';
    check_chunked(chunk_in, n + 3, HS_EPROTO, "trailers too large", 0, 0);

    /* Large data split across many calls keeps its bytes and order. */
    n = (size_t)snprintf(chunk_in, 16, "%x\r\n", 40000);
    for (i = 0; i < 40000; i++)
        chunk_in[n + i] = (char)(i * 7);
    memcpy(chunk_in + n + 40000, "\r\n0\r\n\r\n", 7);
    memcpy(big, chunk_in + n, 40000);
    check_chunked(chunk_in, n + 40007, 0, big, 40000, n + 40007);
}

/* ---- path normalization --------------------------------------------------------------- */

static const struct {
    const char *in, *out; /* out NULL: HS_EPROTO */
} path_cases[] = {
    {"/a/../b", "/b"},
    {"/%2e%2e/x", NULL},
    {"/..", NULL},
    {"/a/%2E%2E/b", "/b"},
    {"/%00", NULL},
    {"//a///b/", "/a/b/"},
    {"/a%20b", "/a b"},
    {"/%zz", NULL},
    {"/", "/"},
    {"/.", "/"},
    {"/./", "/"},
    {"/a/./b", "/a/b"},
    {"/a/b/..", "/a/"},
    {"/a/b/../", "/a/"},
    {"/a/..", "/"},
    {"/a/../..", NULL},
    {"/a/b/../../..", NULL},
    {"/a/b/../../c", "/c"},
    {"/.%2e", NULL},
    {"/a/..%2f..", NULL},
    {"/a%2Fb", "/a/b"},
    {"/a\\b", NULL},
    {"/a%5cb", NULL},
    {"/a%5Cb", NULL},
    {"/%", NULL},
    {"/%2", NULL},
    {"/%g0", NULL},
    {"/a%0ab", NULL},
    {"/a%7f", NULL},
    {"/%41%62", "/Ab"},
    {"/%ff", "/\xff"},
    {"/a+b", "/a+b"},
    {"/...", "/..."},
    {"/..a/a..", "/..a/a.."},
    {"/.hidden", "/.hidden"},
    {"/index.html", "/index.html"},
    {"a/b", NULL},
    {"", NULL},
};

static void test_path_normalize(void **state)
{
    char out[256];
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(path_cases); i++) {
        size_t n = strlen(path_cases[i].in);
        const char *p = guard_put(path_cases[i].in, n);
        int rc = hs_http_path_normalize(p, n, out, n + 1);

        print_message("path: %s\n", path_cases[i].in);
        if (path_cases[i].out == NULL) {
            assert_int_equal(rc, HS_EPROTO);
            continue;
        }
        assert_int_equal(rc, (int)strlen(path_cases[i].out));
        assert_string_equal(out, path_cases[i].out);
    }
    /* out too small; exactly large enough. */
    assert_int_equal(hs_http_path_normalize("/abc", 4, out, 4), HS_ETOOBIG);
    assert_int_equal(hs_http_path_normalize("/abc", 4, out, 5), 4);
    assert_int_equal(hs_http_path_normalize("/abc", 4, out, 1), HS_ETOOBIG);
    assert_int_equal(hs_http_path_normalize("/a/", 3, out, 3), HS_ETOOBIG);
    assert_int_equal(hs_http_path_normalize("/a/", 3, out, 4), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_table),          cmocka_unit_test(test_bad_table),
        cmocka_unit_test(test_scan_every_offset), cmocka_unit_test(test_views),
        cmocka_unit_test(test_target_forms),      cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_limits_small),      cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_limits_endless),    cmocka_unit_test(test_allow_get_body),
        cmocka_unit_test(test_headers_cap),       cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_limits),    cmocka_unit_test(test_path_normalize),
    };

    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
