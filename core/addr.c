#include "core/addr.h"
#include "core/hs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return HS_EBADSPEC;
}

static int addr_parse_base(const char *url, struct hs_addr *out, const char **why);

static int parse_port(const char *s, int *port)
{
    if (*s == '\0')
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    *port = (int)v;
    return 0;
}

const char *hs_addr_query(const char *url)
{
    const char *q = strchr(url, '?');
    return q ? q + 1 : url + strlen(url);
}

size_t hs_addr_base_len(const char *url)
{
    const char *q = strchr(url, '?');
    return q ? (size_t)(q - url) : strlen(url);
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int hs_addr_option_next(const char **cursor, char *key, size_t kn, char *val, size_t vn)
{
    const char *p = *cursor;
    while (*p == '&')
        p++;
    if (*p == '\0') {
        *cursor = p;
        return 0;
    }
    const char *end = strchr(p, '&');
    if (end == NULL)
        end = p + strlen(p);
    /* A key without '=' is a flag (?proxy): its value is "". */
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *key_end = eq ? eq : end;
    if (key_end == p || (size_t)(key_end - p) >= kn || vn == 0)
        return HS_EBADSPEC;
    memcpy(key, p, (size_t)(key_end - p));
    key[key_end - p] = '\0';
    size_t n = 0;
    for (const char *v = eq ? eq + 1 : end; v < end; v++) {
        char ch = *v;
        if (ch == '%') {
            if (end - v < 3)
                return HS_EBADSPEC;
            int hi = hex_digit(v[1]), lo = hex_digit(v[2]);
            if (hi < 0 || lo < 0)
                return HS_EBADSPEC;
            ch = (char)(hi * 16 + lo);
            v += 2;
        }
        if (n + 1 >= vn || ch == '\0')
            return HS_EBADSPEC;
        val[n++] = ch;
    }
    val[n] = '\0';
    *cursor = end;
    return 1;
}

/* The options each scheme takes. */
static const struct {
    const char *key;
    unsigned schemes; /* bit (1 << enum hs_addr_scheme) per scheme that takes it */
    int flag;         /* written without a value (?proxy) */
} addr_options[] = {
    {"cert", 1u << HS_ADDR_TLS, 0},
    {"key", 1u << HS_ADDR_TLS, 0},
    {"proxy", (1u << HS_ADDR_TCP) | (1u << HS_ADDR_TLS) | (1u << HS_ADDR_UNIX), 1},
};

/* Checks the options of url against the table above and the pairing rules of tls://, and
 * notes the flags in *out. */
static int check_options(const char *url, struct hs_addr *out, const char **why)
{
    const char *cur = hs_addr_query(url);
    char key[32], val[HS_ADDR_MAX_OPT];
    int r, certs = 0, keys = 0;
    while ((r = hs_addr_option_next(&cur, key, sizeof key, val, sizeof val)) == 1) {
        size_t i = 0, n = sizeof addr_options / sizeof addr_options[0];
        while (i < n && strcmp(addr_options[i].key, key) != 0)
            i++;
        if (i == n)
            return fail(why, "unknown option (known: cert, key on tls://; proxy)");
        if (!(addr_options[i].schemes & (1u << out->scheme)))
            return fail(why, "option not available on this scheme");
        if (addr_options[i].flag && val[0] != '\0')
            return fail(why, "proxy takes no value (write ?proxy)");
        if (!addr_options[i].flag && val[0] == '\0')
            return fail(why, "empty option value");
        out->proxy |= strcmp(key, "proxy") == 0;
        certs += strcmp(key, "cert") == 0;
        keys += strcmp(key, "key") == 0;
    }
    if (r != 0)
        return fail(why, "malformed option (want key=value, values %-encoded)");
    if (out->scheme == HS_ADDR_TLS && (certs == 0 || certs != keys))
        return fail(why, "tls:// needs ?cert=PATH&key=PATH (one key per cert)");
    return 0;
}

int hs_addr_clear_unix_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    return unlink(path) == 0 ? 0 : -errno;
}

int hs_addr_parse(const char *url, struct hs_addr *out, const char **why)
{
    memset(out, 0, sizeof *out);
    size_t base_len = hs_addr_base_len(url);
    if (strlen(url) >= HS_ADDR_MAX_URL)
        return fail(why, "URL too long");
    char base[HS_ADDR_MAX_URL];
    memcpy(base, url, base_len);
    base[base_len] = '\0';
    int r = addr_parse_base(base, out, why);
    if (r == 0)
        r = check_options(url, out, why);
    return r;
}

/* hs_addr_parse for a URL without options. */
static int addr_parse_base(const char *url, struct hs_addr *out, const char **why)
{
    int gram = strncmp(url, "unixgram:", 9) == 0;
    if (gram || strncmp(url, "unix:", 5) == 0) {
        const char *p = url + (gram ? 9 : 5);
        /* Accept the unix:///path spelling too. */
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0')
            return fail(why, "empty unix socket path");
        if (strlen(p) >= sizeof out->path)
            return fail(why, "unix socket path too long");
        out->scheme = gram ? HS_ADDR_UNIXGRAM : HS_ADDR_UNIX;
        strcpy(out->path, p);
        return 0;
    }
    const char *rest;
    if (strncmp(url, "tcp://", 6) == 0) {
        out->scheme = HS_ADDR_TCP;
        rest = url + 6;
    } else if (strncmp(url, "udp://", 6) == 0) {
        out->scheme = HS_ADDR_UDP;
        rest = url + 6;
    } else if (strncmp(url, "tls://", 6) == 0) {
        out->scheme = HS_ADDR_TLS;
        rest = url + 6;
    } else {
        return fail(why, "scheme must be tcp://, tls://, udp://, unix: or unixgram:");
    }
    const char *colon;
    if (*rest == '[') {
        const char *close = strchr(rest, ']');
        if (close == NULL)
            return fail(why, "unterminated [ in IPv6 address");
        size_t hl = (size_t)(close - rest - 1);
        if (hl == 0 || hl >= sizeof out->host)
            return fail(why, "bad IPv6 address length");
        memcpy(out->host, rest + 1, hl);
        struct in6_addr tmp;
        if (inet_pton(AF_INET6, out->host, &tmp) != 1)
            return fail(why, "not an IPv6 address");
        if (close[1] != ':')
            return fail(why, "missing :PORT");
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL)
            return fail(why, "missing :PORT");
        size_t hl = (size_t)(colon - rest);
        if (hl >= sizeof out->host)
            return fail(why, "host name too long");
        if (memchr(rest, ':', hl) != NULL)
            return fail(why, "IPv6 addresses must be written in [brackets]");
        memcpy(out->host, rest, hl);
        if (strcmp(out->host, "*") == 0)
            out->host[0] = '\0';
    }
    if (parse_port(colon + 1, &out->port) != 0)
        return fail(why, "port must be a number from 0 to 65535");
    return 0;
}

int hs_addr_resolve(const struct hs_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
    if (a->scheme == HS_ADDR_UNIX || a->scheme == HS_ADDR_UNIXGRAM)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    if (a->host[0] == '\0') {
        /* Every address: IPv6 any; the listener clears IPV6_V6ONLY so v4 clients land too. */
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons((uint16_t)a->port);
        *len = sizeof *s6;
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = a->scheme == HS_ADDR_UDP ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    if (getaddrinfo(a->host, port, &hints, &res) != 0 || res == NULL)
        return HS_EBADSPEC;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

char *hs_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, n, "%s:%u", ip, ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        /* Show v4-mapped peers of a dual-stack listener as plain IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(buf, n, "%s:%u", ip, ntohs(s6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            snprintf(buf, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
        }
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (len <= off)
            snprintf(buf, n, "unix");
        else if (su->sun_path[0] == '\0')
            snprintf(buf, n, "@%.*s", (int)(len - off - 1), su->sun_path + 1);
        else
            snprintf(buf, n, "%.*s", (int)(len - off), su->sun_path);
    } else {
        snprintf(buf, n, "?");
    }
    return buf;
}

char *hs_addr_peer_ip(const char *peer, char *buf, size_t n)
{
    const char *end = NULL, *start = peer;
    if (peer[0] == '[' && (end = strchr(peer, ']')) != NULL && end[1] == ':') {
        start = peer + 1;
    } else if ((end = strrchr(peer, ':')) != NULL && strchr(peer, ':') == end &&
               strspn(peer, "0123456789.") == (size_t)(end - peer)) {
        /* One colon after digits and dots: IPv4 and a port. */
    } else {
        end = NULL;
    }
    if (end == NULL)
        snprintf(buf, n, "%s", peer);
    else
        snprintf(buf, n, "%.*s", (int)(end - start), start);
    return buf;
}

int hs_addr_parse_peer(const char *text, size_t text_len, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    char tmp[HS_ADDR_TEXT];
    if (text_len == 0 || text_len >= sizeof tmp || memchr(text, '\0', text_len) != NULL)
        return HS_EBADSPEC;
    memcpy(tmp, text, text_len);
    tmp[text_len] = '\0';
    char *host = tmp, *colon;
    int port;
    memset(ss, 0, sizeof *ss);
    if (tmp[0] == '/' || tmp[0] == '@') {
        /* A Unix datagram peer: a path, or an abstract name (sent without a NUL). */
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        if (text_len >= sizeof su->sun_path || (tmp[0] == '@' && text_len < 2))
            return HS_EBADSPEC;
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, tmp, text_len);
        if (tmp[0] == '@') {
            su->sun_path[0] = '\0';
            *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + text_len);
        } else {
            *len = (socklen_t)sizeof *su;
        }
        return 0;
    }
    if (*host == '[') {
        char *close = strchr(host, ']');
        if (close == NULL || close[1] != ':')
            return HS_EBADSPEC;
        *close = '\0';
        host++;
        colon = close + 1;
    } else {
        colon = strrchr(host, ':');
        if (colon == NULL)
            return HS_EBADSPEC;
        *colon = '\0';
        /* IPv6 only in brackets, as hs_addr_format writes it: "fe80::1:53" is ambiguous. */
        if (strchr(host, ':') != NULL)
            return HS_EBADSPEC;
    }
    if (parse_port(colon + 1, &port) != 0)
        return HS_EBADSPEC;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    return HS_EBADSPEC;
}

char *hs_addr_url(enum hs_addr_scheme scheme, const struct sockaddr *sa, socklen_t len, char *buf,
                  size_t n)
{
    char text[HS_ADDR_TEXT];
    hs_addr_format(sa, len, text, sizeof text);
    const char *prefix = scheme == HS_ADDR_TCP        ? "tcp://"
                         : scheme == HS_ADDR_TLS      ? "tls://"
                         : scheme == HS_ADDR_UDP      ? "udp://"
                         : scheme == HS_ADDR_UNIXGRAM ? "unixgram:"
                                                      : "unix:";
    snprintf(buf, n, "%s%s", prefix, text);
    return buf;
}

/* Linux value; glibc hides the name under _POSIX_C_SOURCE. */
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 15
#endif

int hs__reuseport;

static void set_port(struct sockaddr_storage *ss, const struct sockaddr_storage *from)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = ((const struct sockaddr_in *)from)->sin_port;
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = ((const struct sockaddr_in6 *)from)->sin6_port;
}

int hs_addr_prepare_bind(int fd, int type, struct sockaddr_storage *ss, socklen_t len)
{
    if (!hs__reuseport || (ss->ss_family != AF_INET && ss->ss_family != AF_INET6))
        return 0;
    int probe = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int one = 1, zero = 0;
    if (type == SOCK_STREAM)
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int v6only = 1;
    socklen_t ol = sizeof v6only;
    if (ss->ss_family == AF_INET6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0 &&
        !v6only)
        setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(probe, (struct sockaddr *)ss, len) != 0) {
        int r = -errno;
        close(probe);
        return r;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(probe, (struct sockaddr *)&got, &gl);
    close(probe);
    set_port(ss, &got);
    return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 ? 0 : -errno;
}

int hs_addr_clone_socket(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int type = 0, v6only = 1, one = 1;
    socklen_t tl = sizeof type, vl = sizeof v6only;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0)
        return -errno;
    int nfd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (nfd < 0)
        return -errno;
    if (ss.ss_family == AF_INET6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vl) == 0)
        setsockopt(nfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(nfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(nfd, (struct sockaddr *)&ss, len) != 0 ||
        (type == SOCK_STREAM && listen(nfd, 4096) != 0)) {
        int r = -errno;
        close(nfd);
        return r;
    }
    return nfd;
}
