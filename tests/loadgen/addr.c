/* Address parsing and printing for the benchmark tools. */
#include "tests/loadgen/addr.h"

#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

int bench_addr_parse(const char *hostport, int socktype, struct sockaddr_storage *ss,
                     socklen_t *len, const char **err)
{
    char host[256];
    const char *h = hostport, *colon = strrchr(hostport, ':');
    struct addrinfo hints, *res;
    size_t hlen;
    int rc;

    if (!colon || colon[1] == '\0') {
        *err = "missing port";
        return -1;
    }
    hlen = (size_t)(colon - h);
    if (h[0] == '[') {
        if (hlen < 2 || colon[-1] != ']') {
            *err = "bad [address]";
            return -1;
        }
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        *err = "bad host";
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        *err = gai_strerror(rc);
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

char *bench_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%d", host, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%d", host, ntohs(s4->sin_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

int bench_addr_announce(const char *scheme, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[128];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    fprintf(stderr, "listening %s://%s\n", scheme,
            bench_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)));
    return 0;
}
