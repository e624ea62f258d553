/* The PROXY protocol parser, one line per case: valid v1 and v2 headers with the addresses
 * they carry, every proper prefix of each giving HS_AGAIN, each input placed against a guard
 * page so a read past its end faults, the refusals with their reasons, TLV walking, and the
 * v2 builder parsed back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hs.h"
#include "core/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* Copies buf to the end of a page followed by a PROT_NONE page and parses it there. */
static int parse_guarded(const void *buf, size_t len, struct hs_proxy_header *h)
{
    static unsigned char *pages;
    static size_t ps;
    if (pages == NULL) {
        ps = (size_t)sysconf(_SC_PAGESIZE);
        /* /dev/zero, since MAP_ANONYMOUS is outside POSIX. */
        int fd = open("/dev/zero", O_RDWR);
        assert_true(fd >= 0);
        pages = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        close(fd);
        assert_true(pages != MAP_FAILED);
        assert_int_equal(mprotect(pages + ps, ps, PROT_NONE), 0);
    }
    assert_true(len <= ps);
    unsigned char *at = pages + ps - len;
    memcpy(at, buf, len);
    return hs_proxy_parse(at, len, h);
}

static const char *addr_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        snprintf(out, n, "%s:%u", host, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        snprintf(out, n, "[%s]:%u", host, ntohs(s->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        snprintf(out, n, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
    } else {
        snprintf(out, n, "-");
    }
    return out;
}

struct valid_case {
    const char *in;
    size_t len;   /* bytes of the header */
    size_t extra; /* client bytes after it, not consumed */
    int version;
    int local;
    const char *src; /* "-" when local */
    const char *dst;
    size_t tlvs_len;
    const char *label;
};

#define V(s, extra, ver, local, src, dst, tl, label)                                               \
    {                                                                                              \
        s, sizeof(s) - 1 - (extra), extra, ver, local, src, dst, tl, label                         \
    }

static const struct valid_case valid[] = {
    V("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", 0, 1, 0, "192.0.2.1:56324",
      "198.51.100.2:443", 0, "v1 TCP4"),
    V("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\nGET /", 5, 1, 0, "1.2.3.4:0", "5.6.7.8:65535", 0,
      "v1 TCP4 with the client's bytes after it"),
    V("PROXY TCP6 2001:db8::1 ::1 1 2\r\n", 0, 1, 0, "[2001:db8::1]:1", "[::1]:2", 0, "v1 TCP6"),
    V("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
      "ffff 65535 65535\r\n",
      0, 1, 1, "-", "-", 0, "v1 at its longest (107 bytes)"),
    V("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n",
      0, 1, 0, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 0, "v1 TCP6 at its longest"),
    V("PROXY UNKNOWN\r\n", 0, 1, 1, "-", "-", 0, "v1 UNKNOWN"),
    V("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", 0, 1, 1, "-", "-", 0, "v1 UNKNOWN with fields"),
    V(SIG "\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb", 0, 2, 0,
      "192.0.2.1:56324", "198.51.100.2:443", 0, "v2 PROXY TCP over IPv4"),
    V(SIG "\x21\x21\x00\x24"
          "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
          "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
          "\x00\x01\x00\x02xyz",
      3, 2, 0, "[2001:db8::1]:1", "[::1]:2", 0, "v2 PROXY TCP over IPv6, then client bytes"),
    V(SIG "\x20\x00\x00\x00", 0, 2, 1, "-", "-", 0, "v2 LOCAL (a health check)"),
    V(SIG "\x20\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", 0, 2, 1, "-", "-", 0,
      "v2 LOCAL with addresses: they are ignored"),
    V(SIG "\x21\x00\x00\x00", 0, 2, 1, "-", "-", 0, "v2 PROXY UNSPEC: the socket's addresses"),
    V(SIG "\x21\x11\x00\x17\x7f\x00\x00\x02\x7f\x00\x00\x01\x30\x39\x00\x50"
          "\x05\x00\x03"
          "abc\x04\x00\x02\x00\x00",
      0, 2, 0, "127.0.0.2:12345", "127.0.0.1:80", 11, "v2 with UNIQUE_ID and NOOP TLVs"),
};

static void check_valid(const struct valid_case *c)
{
    struct hs_proxy_header h;
    char a[128];
    size_t total = c->len + c->extra;
    int r = parse_guarded(c->in, total, &h);
    if (r != (int)c->len)
        fail_msg("%s: returned %d (%s), want %zu", c->label, r, h.why ? h.why : "", c->len);
    assert_int_equal(h.version, c->version);
    assert_int_equal(h.local, c->local);
    if (!c->local) {
        assert_string_equal(addr_text(&h.src, a, sizeof a), c->src);
        assert_string_equal(addr_text(&h.dst, a, sizeof a), c->dst);
        assert_int_equal(h.socktype, SOCK_STREAM);
    }
    assert_int_equal(h.tlvs_len, c->tlvs_len);
    /* Every proper prefix of the header: more input needed, nothing read past it. */
    for (size_t n = 0; n < c->len; n++) {
        r = parse_guarded(c->in, n, &h);
        if (r != HS_AGAIN)
            fail_msg("%s: prefix of %zu bytes returned %d (%s)", c->label, n, r,
                     h.why ? h.why : "");
    }
}

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        check_valid(&valid[i]);
}

struct invalid_case {
    const char *in;
    size_t len;
    const char *why; /* a part of h.why */
    const char *label;
};

#define X(s, why, label)                                                                           \
    {                                                                                              \
        s, sizeof(s) - 1, why, label                                                               \
    }

static const struct invalid_case invalid[] = {
    X("GET / HTTP/1.1\r\n", "no PROXY", "a client that speaks first"),
    X("PROXY\r\n", "no PROXY", "no space after PROXY"),
    X("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no PROXY", "lowercase signature"),
    X("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol", "unknown protocol"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROTO SRC", "a field missing"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROTO SRC", "a field too many"),
    X("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "PROTO SRC", "two spaces"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "PROTO SRC", "a trailing space"),
    X("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "address", "IPv6 under TCP4"),
    X("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address", "IPv4 under TCP6"),
    X("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "address", "octet over 255"),
    X("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "address", "leading zero in an octet"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port", "port over 65535"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "port", "port with a leading zero"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port", "negative port"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF", "LF without CR"),
    X("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR without LF", "CR then another byte"),
    X("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "printable", "a tab"),
    X("PROXY UNKNOWN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaa",
      "107", "no CRLF within 107 bytes"),
    X("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
      "ffff 65535 655350\r\n",
      "107", "108 bytes with the CRLF"),
    X(SIG "\x11\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "version",
      "v2 signature with version 1"),
    X(SIG "\x22\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "command",
      "v2 command 2"),
    X(SIG "\x21\x41\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "family",
      "v2 family 4"),
    X(SIG "\x21\x13\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "transport",
      "v2 transport 3"),
    X(SIG "\x21\x11\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08", "too short", "v2 IPv4 in 8 bytes"),
    X(SIG "\x21\x21\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "too short",
      "v2 IPv6 in 12 bytes"),
    X(SIG "\x21\x11\xff\xff", "longer than accepted", "v2 length 65535"),
    X(SIG "\x21\x11\x00\x0e\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x05\x00", "TLV",
      "v2 TLV cut in its header"),
    X(SIG "\x21\x11\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x05\x00\x05x", "TLV",
      "v2 TLV longer than what is left"),
    X("\r\n\r\n\0\r\nQUIX\n", "no PROXY", "a near-miss of the v2 signature"),
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const struct invalid_case *c = &invalid[i];
        struct hs_proxy_header h;
        int r = parse_guarded(c->in, c->len, &h);
        if (r != HS_EPROTO || h.why == NULL || strstr(h.why, c->why) == NULL)
            fail_msg("%s: returned %d (%s), want HS_EPROTO (%s)", c->label, r,
                     h.why ? h.why : "no reason", c->why);
    }
}

static void test_tlvs(void **state)
{
    (void)state;
    const struct valid_case *c = &valid[sizeof valid / sizeof valid[0] - 1];
    struct hs_proxy_header h;
    assert_int_equal(hs_proxy_parse((const unsigned char *)c->in, c->len, &h), (int)c->len);
    const unsigned char *p = h.tlvs, *v;
    size_t left = h.tlvs_len, vl;
    unsigned type;
    assert_int_equal(hs_proxy_tlv_next(&p, &left, &type, &v, &vl), 1);
    assert_int_equal(type, HS_PROXY_TLV_UNIQUE_ID);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "abc", 3);
    assert_int_equal(hs_proxy_tlv_next(&p, &left, &type, &v, &vl), 1);
    assert_int_equal(type, HS_PROXY_TLV_NOOP);
    assert_int_equal(vl, 2);
    assert_int_equal(hs_proxy_tlv_next(&p, &left, &type, &v, &vl), 0);
}

static void roundtrip(const struct sockaddr *src, socklen_t sl, const struct sockaddr *dst,
                      socklen_t dl, const char *want_src, const char *want_dst)
{
    unsigned char out[HS_PROXY_V2_HEADER_MAX];
    struct hs_proxy_header h;
    char a[160];
    int n = hs_proxy_build_v2(src, sl, dst, dl, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal(hs_proxy_parse(out, (size_t)n, &h), n);
    assert_int_equal(h.version, 2);
    if (want_src == NULL) {
        assert_true(h.local);
        return;
    }
    assert_false(h.local);
    assert_string_equal(addr_text(&h.src, a, sizeof a), want_src);
    assert_string_equal(addr_text(&h.dst, a, sizeof a), want_dst);
}

static void test_build_v2(void **state)
{
    (void)state;
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(4242)}, d4 = s4;
    inet_pton(AF_INET, "203.0.113.7", &s4.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &d4.sin_addr);
    d4.sin_port = htons(80);
    roundtrip((struct sockaddr *)&s4, sizeof s4, (struct sockaddr *)&d4, sizeof d4,
              "203.0.113.7:4242", "127.0.0.1:80");
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)}, d6 = s6;
    inet_pton(AF_INET6, "2001:db8::7", &s6.sin6_addr);
    inet_pton(AF_INET6, "::1", &d6.sin6_addr);
    roundtrip((struct sockaddr *)&s6, sizeof s6, (struct sockaddr *)&d6, sizeof d6,
              "[2001:db8::7]:1", "[::1]:1");
    struct sockaddr_un su = {.sun_family = AF_UNIX}, du = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, "/tmp/client.sock");
    strcpy(du.sun_path, "/tmp/server.sock");
    roundtrip((struct sockaddr *)&su, sizeof su, (struct sockaddr *)&du, sizeof du,
              "unix:/tmp/client.sock", "unix:/tmp/server.sock");
    roundtrip(NULL, 0, NULL, 0, NULL, NULL); /* LOCAL */
    unsigned char small[20];
    assert_int_equal(hs_proxy_build_v2((struct sockaddr *)&s4, sizeof s4, (struct sockaddr *)&d4,
                                       sizeof d4, small, sizeof small),
                     HS_ETOOBIG);
    assert_int_equal(hs_proxy_build_v2((struct sockaddr *)&s4, sizeof s4, (struct sockaddr *)&d6,
                                       sizeof d6, small, sizeof small),
                     HS_EPROTO);
}

/* The v1 parser reads IPv4 addresses itself: it must accept exactly what inet_pton accepts,
 * with the same result, over octets at every edge (leading zeros, 255/256, empty, signs). */
static void test_v1_ipv4_matches_inet_pton(void **state)
{
    (void)state;
    static const char *const octets[] = {"0",   "00",   "1",   "01",  "9",   "10",  "99",
                                         "100", "199",  "200", "249", "250", "255", "256",
                                         "999", "1000", "",    "+1",  "-1",  "1a",  " 1"};
    size_t n = sizeof octets / sizeof octets[0], checked = 0;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b += 3)
            for (size_t c = 0; c < n; c += 5)
                for (size_t d = 0; d < n; d++) {
                    char addr[64], line[128];
                    snprintf(addr, sizeof addr, "%s.%s.%s.%s", octets[a], octets[b], octets[c],
                             octets[d]);
                    snprintf(line, sizeof line, "PROXY TCP4 %s 10.0.0.1 1 2\r\n", addr);
                    struct in_addr want;
                    int ok = inet_pton(AF_INET, addr, &want) == 1;
                    struct hs_proxy_header h;
                    int r = hs_proxy_parse((const unsigned char *)line, strlen(line), &h);
                    if (ok != (r > 0))
                        fail_msg("%s: inet_pton %s, the parser %d (%s)", addr,
                                 ok ? "accepts" : "refuses", r, h.why ? h.why : "");
                    if (ok && ((struct sockaddr_in *)&h.src)->sin_addr.s_addr != want.s_addr)
                        fail_msg("%s: a different address", addr);
                    checked++;
                }
    static const char *const shapes[] = {"1.2.3",  "1.2.3.4.5", "1..2.3",    ".1.2.3",
                                         "1.2.3.", "1.2.3.4 ",  "0x1.2.3.4", "1.2.3.04"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char line[128];
        struct in_addr want;
        struct hs_proxy_header h;
        snprintf(line, sizeof line, "PROXY TCP4 %s 10.0.0.1 1 2\r\n", shapes[i]);
        int ok = inet_pton(AF_INET, shapes[i], &want) == 1;
        assert_int_equal(ok, hs_proxy_parse((const unsigned char *)line, strlen(line), &h) > 0);
    }
    assert_true(checked > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_tlvs),
        cmocka_unit_test(test_build_v2),
        cmocka_unit_test(test_v1_ipv4_matches_inet_pton),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
