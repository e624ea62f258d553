#include "core/proxy.h"
#include "core/hs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

static const unsigned char v2_sig[HS_PROXY_V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

#define V2_ADDR_INET 12  /* two IPv4 addresses and two ports */
#define V2_ADDR_INET6 36 /* two IPv6 addresses and two ports */
#define V2_ADDR_UNIX 216 /* two 108-byte paths */
#define V1_TOKEN_MAX 46  /* an IPv6 address with an IPv4 tail, and its NUL */

static int fail(struct hs_proxy_header *h, const char *why)
{
    h->why = why;
    return HS_EPROTO;
}

/* 1 when buf[0..len) is a prefix of sig[0..n) (or the other way round when len >= n). */
static int starts_like(const unsigned char *buf, size_t len, const void *sig, size_t n)
{
    return memcmp(buf, sig, len < n ? len : n) == 0;
}

/* A port: "0", or 1 to 5 digits without a leading zero, at most 65535. */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Dotted-decimal IPv4 in s[0..n): four parts of 1 to 3 digits, no leading zero, each at most
 * 255 (what inet_pton accepts, read in place: a header costs one of these per address, and
 * inet_pton was most of a v1 header's cost). Returns 0 with the address in network order. */
static int v1_ipv4(const char *s, size_t n, struct in_addr *out)
{
    uint32_t addr = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return -1;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
            return -1;
        addr = addr << 8 | v;
    }
    if (i != n)
        return -1;
    out->s_addr = htonl(addr);
    return 0;
}

/* Fills a sockaddr of family af from address text s[0..n) and a port. */
static int v1_addr(int af, const char *s, size_t n, uint16_t port, struct sockaddr_storage *ss,
                   socklen_t *sl)
{
    char text[V1_TOKEN_MAX];
    if (n == 0 || n >= sizeof text)
        return -1;
    memset(ss, 0, sizeof *ss);
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (v1_ipv4(s, n, &sin->sin_addr) != 0)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *sl = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        memcpy(text, s, n);
        text[n] = '\0';
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *sl = sizeof *sin6;
    }
    return 0;
}

/* "PROXY TCP4 a b p q\r\n", "PROXY TCP6 ...", or "PROXY UNKNOWN[ anything]\r\n". */
static int parse_v1(const unsigned char *buf, size_t len, struct hs_proxy_header *h)
{
    size_t scan = len < HS_PROXY_V1_MAX ? len : HS_PROXY_V1_MAX, end = 0;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == scan)
                break; /* the LF may still come (or the line is one byte too long) */
            if (buf[i + 1] != '\n')
                return fail(h, "v1: CR without LF");
            end = i;
            break;
        }
        if (buf[i] == '\n')
            return fail(h, "v1: bare LF");
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return fail(h, "v1: a byte that is not printable ASCII");
    }
    if (end == 0)
        return len >= HS_PROXY_V1_MAX ? fail(h, "v1: no CRLF within 107 bytes") : HS_AGAIN;
    h->version = 1;
    const char *line = (const char *)buf + sizeof v1_sig - 1;
    size_t n = end - (sizeof v1_sig - 1);
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        h->local = 1;
        return (int)end + 2;
    }
    /* Exactly five fields, one space between each (an empty field fails its own check). */
    const char *f[6];
    size_t fl[6], k = 0;
    const char *p = line, *stop = line + n;
    for (;;) {
        const char *sp = memchr(p, ' ', (size_t)(stop - p));
        const char *e = sp ? sp : stop;
        if (k == 6)
            break;
        f[k] = p;
        fl[k++] = (size_t)(e - p);
        if (sp == NULL)
            break;
        p = sp + 1;
    }
    if (k != 5)
        return fail(h, "v1: not PROTO SRC DST SPORT DPORT");
    int af;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        af = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return fail(h, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    uint16_t sport, dport;
    if (v1_port(f[3], fl[3], &sport) != 0 || v1_port(f[4], fl[4], &dport) != 0)
        return fail(h, "v1: bad port");
    if (v1_addr(af, f[1], fl[1], sport, &h->src, &h->src_len) != 0 ||
        v1_addr(af, f[2], fl[2], dport, &h->dst, &h->dst_len) != 0)
        return fail(h, "v1: address does not match the protocol");
    h->socktype = SOCK_STREAM;
    return (int)end + 2;
}

static uint16_t be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void unix_addr(const unsigned char *path, struct sockaddr_storage *ss, socklen_t *sl)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    memset(ss, 0, sizeof *ss);
    sun->sun_family = AF_UNIX;
    size_t n = strnlen((const char *)path, sizeof sun->sun_path - 1);
    memcpy(sun->sun_path, path, n);
    *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int check_tlvs(const unsigned char *p, size_t left)
{
    while (left > 0) {
        if (left < 3 || (size_t)be16(p + 1) > left - 3)
            return -1;
        size_t step = 3 + (size_t)be16(p + 1);
        p += step;
        left -= step;
    }
    return 0;
}

static int parse_v2(const unsigned char *buf, size_t len, struct hs_proxy_header *h)
{
    if (len < HS_PROXY_V2_MIN)
        return HS_AGAIN;
    h->version = 2;
    unsigned ver = buf[12] >> 4, cmd = buf[12] & 0x0f, fam = buf[13] >> 4, proto = buf[13] & 0x0f;
    size_t body = be16(buf + 14);
    if (ver != 2)
        return fail(h, "v2: version is not 2");
    if (cmd > 1)
        return fail(h, "v2: command is neither LOCAL nor PROXY");
    if (fam > 3 || proto > 2)
        return fail(h, "v2: unknown address family or transport");
    if (body > HS_PROXY_V2_MAX_LEN)
        return fail(h, "v2: header longer than accepted");
    if (len < HS_PROXY_V2_MIN + body)
        return HS_AGAIN;
    const unsigned char *a = buf + HS_PROXY_V2_MIN;
    size_t need = fam == 1 ? V2_ADDR_INET : fam == 2 ? V2_ADDR_INET6 : fam == 3 ? V2_ADDR_UNIX : 0;
    if (body < need)
        return fail(h, "v2: too short for its addresses");
    if (check_tlvs(a + need, body - need) != 0)
        return fail(h, "v2: malformed TLV");
    h->tlvs = body > need ? a + need : NULL;
    h->tlvs_len = body - need;
    if (cmd == 0 || fam == 0 || proto == 0) {
        /* LOCAL (a health check from the balancer itself), or a PROXY whose addresses the
         * sender could not tell: the connection's own addresses stand. */
        h->local = 1;
        return (int)(HS_PROXY_V2_MIN + body);
    }
    h->socktype = proto == 1 ? SOCK_STREAM : SOCK_DGRAM;
    memset(&h->src, 0, sizeof h->src);
    memset(&h->dst, 0, sizeof h->dst);
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        h->src_len = h->dst_len = sizeof *s;
    } else if (fam == 2) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src,
                            *d = (struct sockaddr_in6 *)&h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        h->src_len = h->dst_len = sizeof *s;
    } else {
        unix_addr(a, &h->src, &h->src_len);
        unix_addr(a + 108, &h->dst, &h->dst_len);
    }
    return (int)(HS_PROXY_V2_MIN + body);
}

int hs_proxy_parse(const unsigned char *buf, size_t len, struct hs_proxy_header *h)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return HS_AGAIN;
    if (starts_like(buf, len, v2_sig, sizeof v2_sig))
        return len < sizeof v2_sig ? HS_AGAIN : parse_v2(buf, len, h);
    if (starts_like(buf, len, v1_sig, sizeof v1_sig - 1))
        return len < sizeof v1_sig - 1 ? HS_AGAIN : parse_v1(buf, len, h);
    return fail(h, "no PROXY protocol header");
}

int hs_proxy_tlv_next(const unsigned char **p, size_t *left, unsigned *type,
                      const unsigned char **value, size_t *value_len)
{
    if (*left < 3)
        return 0;
    size_t n = be16(*p + 1);
    if (n > *left - 3)
        return 0;
    *type = (*p)[0];
    *value = *p + 3;
    *value_len = n;
    *p += 3 + n;
    *left -= 3 + n;
    return 1;
}

int hs_proxy_build_v2(const struct sockaddr *src, socklen_t src_len, const struct sockaddr *dst,
                      socklen_t dst_len, unsigned char *out, size_t cap)
{
    unsigned char fam;
    size_t body;
    if (src == NULL) {
        fam = 0x00;
        body = 0;
    } else if (dst == NULL || src->sa_family != dst->sa_family) {
        return HS_EPROTO;
    } else if (src->sa_family == AF_INET && src_len >= sizeof(struct sockaddr_in) &&
               dst_len >= sizeof(struct sockaddr_in)) {
        fam = 0x11;
        body = V2_ADDR_INET;
    } else if (src->sa_family == AF_INET6 && src_len >= sizeof(struct sockaddr_in6) &&
               dst_len >= sizeof(struct sockaddr_in6)) {
        fam = 0x21;
        body = V2_ADDR_INET6;
    } else if (src->sa_family == AF_UNIX) {
        fam = 0x31;
        body = V2_ADDR_UNIX;
    } else {
        return HS_EPROTO;
    }
    if (cap < HS_PROXY_V2_MIN + body)
        return HS_ETOOBIG;
    memcpy(out, v2_sig, sizeof v2_sig);
    out[12] = src ? 0x21 : 0x20;
    out[13] = fam;
    out[14] = (unsigned char)(body >> 8);
    out[15] = (unsigned char)(body & 0xff);
    unsigned char *a = out + HS_PROXY_V2_MIN;
    if (fam == 0x11) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src,
                                 *d = (const struct sockaddr_in *)dst;
        memcpy(a, &s->sin_addr, 4);
        memcpy(a + 4, &d->sin_addr, 4);
        memcpy(a + 8, &s->sin_port, 2);
        memcpy(a + 10, &d->sin_port, 2);
    } else if (fam == 0x21) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src,
                                  *d = (const struct sockaddr_in6 *)dst;
        memcpy(a, &s->sin6_addr, 16);
        memcpy(a + 16, &d->sin6_addr, 16);
        memcpy(a + 32, &s->sin6_port, 2);
        memcpy(a + 34, &d->sin6_port, 2);
    } else if (fam == 0x31) {
        memset(a, 0, V2_ADDR_UNIX);
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t sn = src_len > off ? (size_t)src_len - off : 0;
        size_t dn = dst_len > off ? (size_t)dst_len - off : 0;
        memcpy(a, ((const struct sockaddr_un *)src)->sun_path, sn < 107 ? sn : 107);
        memcpy(a + 108, ((const struct sockaddr_un *)dst)->sun_path, dn < 107 ? dn : 107);
    }
    return (int)(HS_PROXY_V2_MIN + body);
}
