/* Address tests: listener URLs one line per case (every input, and every proper prefix of a
 * good one, placed at the end of a guard page so an over-read faults), address text for each
 * family, peer text read back, and resolution of numeric hosts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/addr.h"
#include "core/hs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define B(lit) (lit), sizeof(lit) - 1
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Guard page: bytes placed by guard_put() end exactly where a PROT_NONE page begins. */

static unsigned char *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
    void *p = NULL;

    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    if (posix_memalign(&p, guard_page, 2 * guard_page) != 0)
        return -1;
    guard_base = p;
    return mprotect(guard_base + guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    mprotect(guard_base + guard_page, guard_page, PROT_READ | PROT_WRITE);
    free(guard_base);
    return 0;
}

static void *guard_put(const void *src, size_t n)
{
    unsigned char *dst = guard_base + guard_page - n;

    assert_true(n <= guard_page);
    memcpy(dst, src, n);
    return dst;
}

/* A NUL-terminated copy whose NUL is the last readable byte. */
static const char *guard_str(const char *s, size_t len)
{
    char *dst = (char *)guard_base + guard_page - len - 1;

    assert_true(len + 1 <= guard_page);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return dst;
}

/* ---- hs_addr_parse */

struct good_case {
    const char *url;
    enum hs_addr_scheme scheme;
    const char *host;
    int port;
    const char *path;
};

static const struct good_case good_cases[] = {
    {"tcp://127.0.0.1:0", HS_ADDR_TCP, "127.0.0.1", 0, ""},
    {"tcp://[::1]:8001", HS_ADDR_TCP, "::1", 8001, ""},
    {"tcp://:80", HS_ADDR_TCP, "", 80, ""},
    {"tcp://*:80", HS_ADDR_TCP, "", 80, ""},
    {"udp://localhost:53", HS_ADDR_UDP, "localhost", 53, ""},
    {"unix:/tmp/x.sock", HS_ADDR_UNIX, "", 0, "/tmp/x.sock"},
    {"unix:///tmp/x.sock", HS_ADDR_UNIX, "", 0, "/tmp/x.sock"},
    {"unix:rel.sock", HS_ADDR_UNIX, "", 0, "rel.sock"},
    {"unixgram:/tmp/x.sock", HS_ADDR_UNIXGRAM, "", 0, "/tmp/x.sock"},
    {"unixgram:///tmp/x.sock", HS_ADDR_UNIXGRAM, "", 0, "/tmp/x.sock"},
    {"tcp://0.0.0.0:65535", HS_ADDR_TCP, "0.0.0.0", 65535, ""},
    {"tcp://example.com:00080", HS_ADDR_TCP, "example.com", 80, ""},
    {"udp://[::]:0", HS_ADDR_UDP, "::", 0, ""},
    {"udp://[2001:db8::1]:5353", HS_ADDR_UDP, "2001:db8::1", 5353, ""},
    {"udp://[::ffff:10.0.0.1]:7", HS_ADDR_UDP, "::ffff:10.0.0.1", 7, ""},
    {"tls://127.0.0.1:8443?cert=a.pem&key=a.key", HS_ADDR_TLS, "127.0.0.1", 8443, ""},
    {"tls://[::1]:0?cert=a&key=b&cert=c&key=d", HS_ADDR_TLS, "::1", 0, ""},
    {"tls://:443?key=%2Fk%26.pem&cert=c.pem", HS_ADDR_TLS, "", 443, ""},
};

/* why NULL: any non-empty reason will do. */
struct bad_case {
    const char *url;
    const char *why;
    const char *label;
};

static const char why_port[] = "port must be a number from 0 to 65535";
static const char why_missing_port[] = "missing :PORT";
static const char why_tls_pairs[] = "tls:// needs ?cert=PATH&key=PATH (one key per cert)";

static const struct bad_case bad_cases[] = {
    {"tcp://127.0.0.1", why_missing_port, "missing port"},
    {"tcp://127.0.0.1:", why_port, "empty port"},
    {"tcp://127.0.0.1:65536", why_port, "port 65536"},
    {"tcp://127.0.0.1:99999999999999999999", why_port, "huge port"},
    {"tcp://127.0.0.1:-1", why_port, "port -1"},
    {"tcp://127.0.0.1:8a", why_port, "port 8a"},
    {"tcp://127.0.0.1:+80", why_port, "port +80"},
    {"tcp://127.0.0.1:80 ", why_port, "trailing space"},
    {"tcp://::1:80", "IPv6 addresses must be written in [brackets]", "v6 without brackets"},
    {"tcp://[::1:80", "unterminated [ in IPv6 address", "unterminated ["},
    {"tcp://[::1]", why_missing_port, "v6 without port"},
    {"tcp://[::1]80", why_missing_port, "v6 without colon"},
    {"tcp://[]:80", NULL, "empty brackets"},
    {"tcp://[1.2.3.4]:80", NULL, "v4 in brackets"},
    {"tcp://[zz::1]:80", NULL, "bad v6 literal"},
    {"http://127.0.0.1:80",
     "scheme must be tcp://, tls://, udp://, unix: or unixgram:", "unknown scheme"},
    {"unixgram:", "empty unix socket path", "empty unixgram path"},
    {"tls://127.0.0.1:1", why_tls_pairs, "tls without certificate"},
    {"tls://127.0.0.1:1?cert=a", why_tls_pairs, "cert without key"},
    {"tls://127.0.0.1:1?cert=a&key=b&cert=c", why_tls_pairs, "odd pair"},
    {"tcp://127.0.0.1:1?cert=a&key=b", "option not available on this scheme", "cert on tcp"},
    {"tls://127.0.0.1:1?cert=a&key=b&color=red", NULL, "unknown option"},
    {"tls://127.0.0.1:1?cert=a&key=%zz", NULL, "bad escape"},
    {"tls://127.0.0.1:1?cert=a&key=%2", NULL, "short escape"},
    {"tls://127.0.0.1:1?cert=a&key=%00", NULL, "escaped NUL"},
    {"tls://127.0.0.1:1?cert=&key=b", "empty option value", "empty value"},
    {"tls://127.0.0.1:1?cert", "empty option value", "option without ="},
    {"udp://127.0.0.1:1?proxy", "option not available on this scheme", "proxy on udp"},
    {"tcp://127.0.0.1:1?proxy=1", "proxy takes no value (write ?proxy)", "proxy with a value"},
    {"tls://127.0.0.1:1?=a", NULL, "option without key"},
    {"tls://127.0.0.1:?cert=a&key=b", why_port, "empty port before options"},
    {"TCP://127.0.0.1:80", NULL, "scheme is case-sensitive"},
    {"tcp:/127.0.0.1:80", NULL, "one slash"},
    {"unix:", "empty unix socket path", "empty unix path"},
    {"unix://", "empty unix socket path", "empty unix path after //"},
    {"", NULL, "empty string"},
    {"tcp://", why_missing_port, "tcp:// alone"},
    {"udp://", why_missing_port, "udp:// alone"},
};

static void check_good(const struct good_case *c, const char *url)
{
    struct hs_addr a;
    const char *why = NULL;

    memset(&a, 0xa5, sizeof a);
    int rc = hs_addr_parse(url, &a, &why);
    if (rc != 0)
        fail_msg("\"%s\": rc %d (%s), want 0", c->url, rc, why ? why : "no reason");
    if (a.scheme != c->scheme || strcmp(a.host, c->host) != 0 || a.port != c->port ||
        strcmp(a.path, c->path) != 0)
        fail_msg("\"%s\": scheme %d host \"%s\" port %d path \"%s\", want %d \"%s\" %d \"%s\"",
                 c->url, (int)a.scheme, a.host, a.port, a.path, (int)c->scheme, c->host, c->port,
                 c->path);
}

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(good_cases); i++) {
        const struct good_case *c = &good_cases[i];
        check_good(c, guard_str(c->url, strlen(c->url)));
        /* why may be NULL. */
        struct hs_addr a;
        assert_int_equal(hs_addr_parse(c->url, &a, NULL), 0);
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct hs_addr a;
        const char *why = NULL;
        int rc = hs_addr_parse(guard_str(c->url, strlen(c->url)), &a, &why);

        if (rc != HS_EBADSPEC)
            fail_msg("%s \"%s\": rc %d, want HS_EBADSPEC", c->label, c->url, rc);
        if (why == NULL || why[0] == '\0')
            fail_msg("%s \"%s\": no reason given", c->label, c->url);
        if (c->why && strcmp(why, c->why) != 0)
            fail_msg("%s \"%s\": why \"%s\", want \"%s\"", c->label, c->url, why, c->why);
        assert_int_equal(hs_addr_parse(c->url, &a, NULL), HS_EBADSPEC);
    }
}

/* Options come back decoded, in order; the base length names the socket alone. */
static void test_options(void **state)
{
    (void)state;
    const char *url = "tls://h:1?cert=a%26b.pem&&key=%2Fk%25";
    assert_int_equal(hs_addr_base_len(url), strlen("tls://h:1"));
    const char *cur = hs_addr_query(url);
    char k[8], v[16];
    assert_int_equal(hs_addr_option_next(&cur, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(k, "cert");
    assert_string_equal(v, "a&b.pem");
    assert_int_equal(hs_addr_option_next(&cur, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(k, "key");
    assert_string_equal(v, "/k%");
    assert_int_equal(hs_addr_option_next(&cur, k, sizeof k, v, sizeof v), 0);
    /* A value that does not fit is refused, not cut. */
    cur = hs_addr_query(url);
    assert_int_equal(hs_addr_option_next(&cur, k, sizeof k, v, 4), HS_EBADSPEC);
    assert_string_equal(hs_addr_query("tcp://h:1"), "");
    assert_int_equal(hs_addr_base_len("tcp://h:1"), 9);
}

/* ?proxy is a flag on every stream scheme, alone or among other options. */
static void test_proxy_option(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int proxy;
    } cases[] = {
        {"tcp://127.0.0.1:80", 0},           {"tcp://127.0.0.1:80?proxy", 1},
        {"tcp://[::1]:80?&proxy&", 1},       {"unix:/tmp/x.sock?proxy", 1},
        {"tls://h:1?proxy&cert=a&key=b", 1}, {"tls://h:1?cert=a&key=b", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hs_addr a;
        const char *why = NULL;
        if (hs_addr_parse(cases[i].url, &a, &why) != 0)
            fail_msg("\"%s\": %s", cases[i].url, why ? why : "refused");
        assert_int_equal(a.proxy, cases[i].proxy);
    }
    struct hs_addr a;
    assert_int_equal(hs_addr_parse("unix:/tmp/x.sock?proxy", &a, NULL), 0);
    assert_string_equal(a.path, "/tmp/x.sock");
}

/* Every proper prefix of a good URL either parses or is refused with a reason; none reads
 * past its NUL. */
static void test_parse_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(good_cases); i++) {
        const char *url = good_cases[i].url;
        for (size_t k = 0; k < strlen(url); k++) {
            struct hs_addr a;
            const char *why = NULL;
            int rc = hs_addr_parse(guard_str(url, k), &a, &why);
            if (rc != 0 && (rc != HS_EBADSPEC || why == NULL))
                fail_msg("\"%.*s\": rc %d why %s", (int)k, url, rc, why ? why : "(null)");
        }
    }
}

/* sun_path holds 107 bytes and the NUL; host 255 and the NUL. */
static void test_parse_limits(void **state)
{
    char url[600], fill[300];
    struct hs_addr a;
    const char *why = NULL;

    (void)state;
    memset(fill, 'p', sizeof fill);
    fill[0] = '/';

    snprintf(url, sizeof url, "unix:%.*s", HS_ADDR_MAX_PATH - 1, fill);
    assert_int_equal(hs_addr_parse(guard_str(url, strlen(url)), &a, &why), 0);
    assert_int_equal(strlen(a.path), HS_ADDR_MAX_PATH - 1);
    snprintf(url, sizeof url, "unix:%.*s", HS_ADDR_MAX_PATH, fill);
    assert_int_equal(hs_addr_parse(guard_str(url, strlen(url)), &a, &why), HS_EBADSPEC);
    assert_string_equal(why, "unix socket path too long");
    snprintf(url, sizeof url, "unix://%.*s", 200, fill);
    assert_int_equal(hs_addr_parse(url, &a, &why), HS_EBADSPEC);
    assert_string_equal(why, "unix socket path too long");

    memset(fill, 'h', sizeof fill);
    snprintf(url, sizeof url, "tcp://%.*s:1", HS_ADDR_MAX_HOST - 1, fill);
    assert_int_equal(hs_addr_parse(guard_str(url, strlen(url)), &a, &why), 0);
    assert_int_equal(strlen(a.host), HS_ADDR_MAX_HOST - 1);
    assert_int_equal(a.port, 1);
    snprintf(url, sizeof url, "tcp://%.*s:1", HS_ADDR_MAX_HOST, fill);
    assert_int_equal(hs_addr_parse(guard_str(url, strlen(url)), &a, &why), HS_EBADSPEC);
    assert_string_equal(why, "host name too long");
}

/* ---- hs_addr_format */

static socklen_t sa_v4(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof *ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    return sizeof *s4;
}

static socklen_t sa_v6(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    return sizeof *s6;
}

static const char *fmt(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t n)
{
    char *r = hs_addr_format((const struct sockaddr *)ss, len, buf, n);
    assert_ptr_equal(r, buf);
    return r;
}

static void test_format_ip(void **state)
{
    struct sockaddr_storage ss;
    char buf[HS_ADDR_TEXT];
    socklen_t len;

    (void)state;
    len = sa_v4(&ss, "127.0.0.1", 8080);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "127.0.0.1:8080");
    len = sa_v4(&ss, "0.0.0.0", 0);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "0.0.0.0:0");
    len = sa_v6(&ss, "::1", 443);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "[::1]:443");
    len = sa_v6(&ss, "2001:db8::1", 65535);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "[2001:db8::1]:65535");
    len = sa_v6(&ss, "::", 1);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "[::]:1");
    /* A dual-stack listener's v4 peers show as plain IPv4. */
    len = sa_v6(&ss, "::ffff:192.0.2.1", 53);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "192.0.2.1:53");
    /* Truncated, still terminated. */
    len = sa_v4(&ss, "127.0.0.1", 8080);
    memset(buf, 'z', sizeof buf);
    assert_string_equal(fmt(&ss, len, buf, 5), "127.");
}

static void test_format_unix(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_un *su = (struct sockaddr_un *)&ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    char buf[HS_ADDR_TEXT];
    int sv[2];

    (void)state;
    memset(&ss, 0, sizeof ss);
    su->sun_family = AF_UNIX;
    strcpy(su->sun_path, "/tmp/x.sock");
    /* With the NUL, without it, and the whole struct: the same text. */
    assert_string_equal(fmt(&ss, (socklen_t)(off + 12), buf, sizeof buf), "/tmp/x.sock");
    assert_string_equal(fmt(&ss, (socklen_t)(off + 11), buf, sizeof buf), "/tmp/x.sock");
    assert_string_equal(fmt(&ss, sizeof *su, buf, sizeof buf), "/tmp/x.sock");
    /* An unnamed socket: the family alone. */
    assert_string_equal(fmt(&ss, (socklen_t)off, buf, sizeof buf), "unix");
    /* An abstract name (what autobind gives): "@" and the name, which has no NUL. */
    memcpy(su->sun_path,
           "\0"
           "a1b2c",
           6);
    assert_string_equal(fmt(&ss, (socklen_t)(off + 6), buf, sizeof buf), "@a1b2c");

    /* A real unnamed peer: one end of a socketpair. */
    socklen_t len = sizeof ss;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&ss, 0, sizeof ss);
    assert_int_equal(getpeername(sv[0], (struct sockaddr *)&ss, &len), 0);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "unix");
    close(sv[0]);
    close(sv[1]);
}

/* A socket bound on 127.0.0.1 port 0 formats as the port the kernel picked. */
static void test_format_bound(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = sa_v4(&ss, "127.0.0.1", 0);
    char buf[HS_ADDR_TEXT], want[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    unsigned port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_true(port > 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), want);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%u", port);
    assert_string_equal(hs_addr_url(HS_ADDR_TCP, (struct sockaddr *)&ss, len, buf, sizeof buf),
                        want);
    close(fd);
}

/* ---- hs_addr_parse_peer */

static int parse_peer(const char *text, size_t n, struct sockaddr_storage *ss, socklen_t *len)
{
    /* Exactly n bytes, no NUL after them: the parser must stop at text_len. */
    return hs_addr_parse_peer(n ? guard_put(text, n) : text, n, ss, len);
}

static void round_trip(const struct sockaddr_storage *ss, socklen_t len, const char *want_text)
{
    struct sockaddr_storage back;
    socklen_t back_len = 0;
    char buf[HS_ADDR_TEXT], again[HS_ADDR_TEXT];

    fmt(ss, len, buf, sizeof buf);
    assert_string_equal(buf, want_text);
    memset(&back, 0xa5, sizeof back);
    assert_int_equal(parse_peer(buf, strlen(buf), &back, &back_len), 0);
    assert_int_equal(back_len, len);
    assert_int_equal(back.ss_family, ss->ss_family);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss, *b = (void *)&back;
        assert_int_equal(a->sin_port, b->sin_port);
        assert_memory_equal(&a->sin_addr, &b->sin_addr, sizeof a->sin_addr);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss, *b = (void *)&back;
        assert_int_equal(a->sin6_port, b->sin6_port);
        assert_memory_equal(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr);
    }
    assert_string_equal(fmt(&back, back_len, again, sizeof again), buf);
}

static void test_peer_round_trip(void **state)
{
    struct sockaddr_storage ss, back;
    socklen_t len;

    (void)state;
    /* Unix datagram peers: a path, and an abstract name without its NUL. */
    assert_int_equal(hs_addr_parse_peer("/tmp/x.sock", 11, &back, &len), 0);
    assert_int_equal(back.ss_family, AF_UNIX);
    assert_string_equal(((struct sockaddr_un *)&back)->sun_path, "/tmp/x.sock");
    assert_int_equal(hs_addr_parse_peer("@a1b2c", 6, &back, &len), 0);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 6);
    assert_memory_equal(((struct sockaddr_un *)&back)->sun_path, "\0a1b2c", 6);
    len = sa_v4(&ss, "127.0.0.1", 8080);
    round_trip(&ss, len, "127.0.0.1:8080");
    len = sa_v4(&ss, "255.255.255.255", 65535);
    round_trip(&ss, len, "255.255.255.255:65535");
    len = sa_v4(&ss, "10.1.2.3", 0);
    round_trip(&ss, len, "10.1.2.3:0");
    len = sa_v6(&ss, "::1", 443);
    round_trip(&ss, len, "[::1]:443");
    len = sa_v6(&ss, "2001:db8::1234:5678", 9);
    round_trip(&ss, len, "[2001:db8::1234:5678]:9");
    len = sa_v6(&ss, "fe80::1", 53);
    round_trip(&ss, len, "[fe80::1]:53");

    /* A v4-mapped peer is shown, and read back, as IPv4. */
    len = sa_v6(&ss, "::ffff:192.0.2.1", 53);
    assert_int_equal(parse_peer(B("192.0.2.1:53"), &back, &len), 0);
    assert_int_equal(back.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));

    /* Only text_len bytes count. */
    assert_int_equal(hs_addr_parse_peer("1.2.3.4:8080", 10, &back, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&back)->sin_port), 80);
}

static void test_peer_garbage(void **state)
{
    static const char *const bad[] = {
        "1.2.3.4",       "1.2.3.4:",     "1.2.3.4:x",   "1.2.3.4:65536",
        "1.2.3.4:-1",    "1.2.3.4:80 ",  " 1.2.3.4:80", "1.2.3:80",
        "1.2.3.256:80",  "localhost:80", "[::1]",       "[::1]80",
        "[::1",          "[::1]:",       "[::g]:80",    "[]:80",
        ":80",           "unix",         "@",           "tcp://1.2.3.4:80",
        "1.2.3.4:80:80", "[::1]:80:80",
    };
    struct sockaddr_storage ss;
    socklen_t len;
    char big[HS_ADDR_TEXT + 8];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        if (parse_peer(bad[i], strlen(bad[i]), &ss, &len) != HS_EBADSPEC)
            fail_msg("peer \"%s\" accepted", bad[i]);
    assert_int_equal(parse_peer("", 0, &ss, &len), HS_EBADSPEC);
    /* Longer than any address text. */
    memset(big, '1', sizeof big);
    memcpy(big + sizeof big - 3, ":80", 3);
    assert_int_equal(parse_peer(big, sizeof big, &ss, &len), HS_EBADSPEC);
}

/* Bytes after an embedded NUL are part of the text and make it malformed; a UDP send_to
 * from Lua passes such strings straight through. */
static void test_peer_embedded_nul(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    assert_int_equal(parse_peer(B("1.2.3.4:80\0junk"), &ss, &len), HS_EBADSPEC);
    assert_int_equal(parse_peer(B("[::1]:80\0"), &ss, &len), HS_EBADSPEC);
}

/* hs_addr_format always brackets IPv6; unbracketed text is ambiguous ("fe80::1:53" is both an
 * address and fe80::1 port 53) and hs_addr_parse refuses it too. */
static void test_peer_unbracketed_v6(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    assert_int_equal(parse_peer(B("::1:80"), &ss, &len), HS_EBADSPEC);
    assert_int_equal(parse_peer(B("fe80::1:53"), &ss, &len), HS_EBADSPEC);
}

/* ---- hs_addr_resolve */

static void resolve_url(const char *url, struct sockaddr_storage *ss, socklen_t *len)
{
    struct hs_addr a;
    const char *why = NULL;

    if (hs_addr_parse(url, &a, &why) != 0)
        fail_msg("\"%s\" refused: %s", url, why);
    memset(ss, 0xa5, sizeof *ss);
    *len = 0;
    assert_int_equal(hs_addr_resolve(&a, ss, len), 0);
}

static void test_resolve(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[HS_ADDR_TEXT];

    (void)state;
    resolve_url("tcp://127.0.0.1:8080", &ss, &len);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "127.0.0.1:8080");

    resolve_url("udp://[::1]:53", &ss, &len);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_string_equal(fmt(&ss, len, buf, sizeof buf), "[::1]:53");

    /* Every address: IPv6 any. */
    static const char *const any[] = {"tcp://:9000", "tcp://*:9000", "udp://:9000"};
    for (size_t i = 0; i < N_ELEMS(any); i++) {
        resolve_url(any[i], &ss, &len);
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(len, sizeof *s6);
        assert_memory_equal(&s6->sin6_addr, &in6addr_any, sizeof in6addr_any);
        assert_int_equal(ntohs(s6->sin6_port), 9000);
        assert_string_equal(fmt(&ss, len, buf, sizeof buf), "[::]:9000");
    }

    /* localhost comes from /etc/hosts: loopback of either family, the port kept. */
    resolve_url("tcp://localhost:7", &ss, &len);
    fmt(&ss, len, buf, sizeof buf);
    if (strcmp(buf, "127.0.0.1:7") != 0 && strcmp(buf, "[::1]:7") != 0)
        fail_msg("localhost resolved to %s", buf);

    /* A Unix address is not resolved. */
    struct hs_addr a;
    assert_int_equal(hs_addr_parse("unix:/tmp/x.sock", &a, NULL), 0);
    assert_int_equal(hs_addr_resolve(&a, &ss, &len), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_format_ip),
        cmocka_unit_test(test_format_unix),
        cmocka_unit_test(test_format_bound),
        cmocka_unit_test(test_peer_round_trip),
        cmocka_unit_test(test_peer_garbage),
        cmocka_unit_test(test_peer_embedded_nul),
        cmocka_unit_test(test_peer_unbracketed_v6),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_proxy_option),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
