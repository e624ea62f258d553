/* Outbound connects and name lookups on the loop. One struct walks through: resolve (evdns,
 * or at once for a literal, "localhost" or a .invalid name), then try each address in order
 * until one connects, all under one deadline. Every result, even one known at once, is
 * delivered from the loop (the deadline's timer made active), so a caller never sees its
 * callback run inside hs_connect_start. */
#include "core/conn_connect.h"
#include "core/hs.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

struct hs_connect {
    struct event_base *base;
    struct evdns_base **dns;
    struct evdns_getaddrinfo_request *req; /* the query in flight, or NULL */
    struct event *timer; /* the deadline; made active at once to deliver a result */
    struct event *wev;   /* writable: the connect in progress finished */
    int fd;              /* the socket being connected, or -1 */
    int connect;         /* connect after resolving (else only resolve) */
    struct hs_addr addr; /* what to connect to */
    int family;          /* resolve: AF_UNSPEC, AF_INET, AF_INET6 */
    struct hs_resolved res;
    int next; /* the address to try next */
    int err;  /* the last failure */
    int done; /* the result is known: the timer delivers it */
    hs_connect_cb cb;
    hs_resolve_cb rcb;
    void *arg;
    char peer[HS_ADDR_TEXT];
};

static void cn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void cn_try_next(struct hs_connect *cn);

static void cn_free(struct hs_connect *cn)
{
    if (cn->req) {
        struct evdns_getaddrinfo_request *req = cn->req;
        cn->req = NULL;
        /* The cancel calls our callback with EVUTIL_EAI_CANCEL: it sees req NULL and goes. */
        evdns_getaddrinfo_cancel(req);
    }
    if (cn->wev)
        event_free(cn->wev);
    if (cn->timer)
        event_free(cn->timer);
    if (cn->fd >= 0)
        close(cn->fd);
    free(cn);
}

/* The result is known: deliver it from the loop. */
static void cn_finish(struct hs_connect *cn, int err)
{
    cn->err = err;
    cn->done = 1;
    if (cn->wev)
        event_del(cn->wev);
    event_del(cn->timer);
    event_active(cn->timer, EV_TIMEOUT, 1);
}

static void cn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_connect *cn = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (!cn->done) {
        /* The deadline: whatever is in flight is given up. */
        cn->err = -ETIMEDOUT;
        if (cn->connect && cn->fd >= 0)
            hs_log(HS_LOG_INFO, "connect to %s timed out", cn->peer);
    }
    if (cn->connect) {
        int sock = cn->err == 0 ? cn->fd : -1;
        if (sock >= 0)
            cn->fd = -1; /* the callee owns it now */
        cn->cb(cn, sock, cn->peer, sock >= 0 ? 0 : cn->err, cn->arg);
    } else {
        cn->rcb(cn, cn->err, cn->err == 0 ? &cn->res : NULL, cn->arg);
    }
    cn_free(cn);
}

static void cn_add(struct hs_connect *cn, const struct sockaddr *sa, socklen_t len)
{
    if (cn->res.n >= HS_CONNECT_MAX_ADDRS || len > (socklen_t)sizeof(struct sockaddr_storage))
        return;
    if (cn->family != AF_UNSPEC && sa->sa_family != cn->family)
        return;
    memcpy(&cn->res.addr[cn->res.n], sa, len);
    cn->res.len[cn->res.n] = len;
    cn->res.n++;
}

/* A literal address, "localhost" (RFC 6761: always the loopback, with or without /etc/hosts
 * or a nameserver) or a name under .invalid (never exists). Returns 1 when the name was
 * answered here (the answer may be no address), 0 when the resolver must be asked. */
static int cn_resolve_local(struct hs_connect *cn, const char *name, int port)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, name, &a4.sin_addr) == 1) {
        cn_add(cn, (struct sockaddr *)&a4, sizeof a4);
        return 1;
    }
    if (inet_pton(AF_INET6, name, &a6.sin6_addr) == 1) {
        cn_add(cn, (struct sockaddr *)&a6, sizeof a6);
        return 1;
    }
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--; /* a fully qualified spelling */
    if ((n == 9 && strncasecmp(name, "localhost", 9) == 0) ||
        (n > 10 && strncasecmp(name + n - 10, ".localhost", 10) == 0)) {
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a6.sin6_addr = in6addr_loopback;
        cn_add(cn, (struct sockaddr *)&a4, sizeof a4);
        cn_add(cn, (struct sockaddr *)&a6, sizeof a6);
        return 1;
    }
    if ((n == 7 && strncasecmp(name, "invalid", 7) == 0) ||
        (n > 8 && strncasecmp(name + n - 8, ".invalid", 8) == 0))
        return 1;
    return 0;
}

/* After resolving: connect, or deliver the list. */
static void cn_resolved(struct hs_connect *cn)
{
    if (cn->res.n == 0) {
        cn_finish(cn, HS_ENOHOST);
        return;
    }
    if (!cn->connect) {
        cn_finish(cn, 0);
        return;
    }
    cn->next = 0;
    cn_try_next(cn);
}

static void cn_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct hs_connect *cn = arg;
    if (result == EVUTIL_EAI_CANCEL || cn->req == NULL) {
        /* Given up (a deadline or a cancel): cn is being freed. */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    cn->req = NULL;
    if (result != 0) {
        hs_log(HS_LOG_INFO, "resolving %s: %s", cn->addr.host, evutil_gai_strerror(result));
    } else {
        for (struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next)
            cn_add(cn, ai->ai_addr, (socklen_t)ai->ai_addrlen);
    }
    if (res)
        evutil_freeaddrinfo(res);
    cn_resolved(cn);
}

static void cn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_connect *cn = arg;
    HS_UNUSED(what);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr == 0) {
        cn_finish(cn, 0);
        return;
    }
    hs_log(HS_LOG_DEBUG, "connect to %s: %s", cn->peer, strerror(soerr));
    event_free(cn->wev);
    cn->wev = NULL;
    close(cn->fd);
    cn->fd = -1;
    cn->err = -soerr;
    cn_try_next(cn);
}

/* Starts a connect to the next address; one that fails at once moves on to the one after. */
static void cn_try_next(struct hs_connect *cn)
{
    while (cn->next < cn->res.n) {
        const struct sockaddr *sa = (const struct sockaddr *)&cn->res.addr[cn->next];
        socklen_t len = cn->res.len[cn->next];
        cn->next++;
        if (sa->sa_family == AF_UNIX)
            snprintf(cn->peer, sizeof cn->peer, "%s", cn->addr.path);
        else
            hs_addr_format(sa, len, cn->peer, sizeof cn->peer);
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            cn->err = -errno;
            continue;
        }
        if (sa->sa_family != AF_UNIX) {
            /* Requests and replies are small and answered at once: no Nagle delay. */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        int r;
        do
            r = connect(fd, sa, len);
        while (r != 0 && errno == EINTR);
        cn->fd = fd;
        if (r == 0) {
            cn_finish(cn, 0);
            return;
        }
        if (errno == EINPROGRESS || (sa->sa_family == AF_UNIX && errno == EAGAIN)) {
            cn->wev = event_new(cn->base, fd, EV_WRITE, cn_write_cb, cn);
            if (cn->wev == NULL || event_add(cn->wev, NULL) != 0) {
                cn_finish(cn, -ENOMEM);
                return;
            }
            return;
        }
        cn->err = -errno;
        hs_log(HS_LOG_DEBUG, "connect to %s: %s", cn->peer, strerror(errno));
        close(fd);
        cn->fd = -1;
    }
    cn_finish(cn, cn->err ? cn->err : -ECONNREFUSED);
}

static struct hs_connect *cn_new(struct event_base *base, struct evdns_base **dns,
                                 long long timeout_ms, void *arg)
{
    struct hs_connect *cn = calloc(1, sizeof *cn);
    if (cn == NULL)
        return NULL;
    cn->base = base;
    cn->dns = dns;
    cn->fd = -1;
    cn->family = AF_UNSPEC;
    cn->arg = arg;
    cn->timer = evtimer_new(base, cn_timer_cb, cn);
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
    if (cn->timer == NULL || event_add(cn->timer, &tv) != 0) {
        cn_free(cn);
        return NULL;
    }
    return cn;
}

/* Resolves cn->addr.host (port cn->addr.port) into cn->res, at once or through evdns. */
static int cn_lookup(struct hs_connect *cn)
{
    if (cn_resolve_local(cn, cn->addr.host, cn->addr.port)) {
        cn_resolved(cn);
        return 0;
    }
    if (*cn->dns == NULL) {
        /* Nameservers from /etc/resolv.conf, names from /etc/hosts first; the resolver
         * holds no event while idle, so it never keeps a loop alive. */
        *cn->dns = evdns_base_new(cn->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (*cn->dns == NULL)
            return -ENOMEM;
    }
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = cn->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    char port[8];
    snprintf(port, sizeof port, "%d", cn->addr.port);
    /* The callback may run before this returns (a name in /etc/hosts): req stays NULL, and the
     * callback must not take a NULL req for "given up". */
    cn->req = (struct evdns_getaddrinfo_request *)cn; /* in flight, not yet known */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(*cn->dns, cn->addr.host, port, &hints, cn_dns_cb, cn);
    if (cn->req == (struct evdns_getaddrinfo_request *)cn)
        cn->req = req; /* still in flight */
    return 0;
}

int hs_connect_start(struct event_base *base, struct evdns_base **dns, const struct hs_addr *a,
                     long long timeout_ms, hs_connect_cb cb, void *arg, struct hs_connect **out)
{
    struct hs_connect *cn = cn_new(base, dns, timeout_ms, arg);
    if (cn == NULL)
        return -ENOMEM;
    cn->connect = 1;
    cn->cb = cb;
    cn->addr = *a;
    *out = cn;
    if (a->scheme == HS_ADDR_UNIX) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", a->path);
        cn_add(cn, (struct sockaddr *)&sun, sizeof sun);
        cn_resolved(cn);
        return 0;
    }
    /* For the log until an address is tried (a long name is cut). */
    snprintf(cn->peer, sizeof cn->peer, "%.100s:%d", a->host, a->port);
    if (cn_lookup(cn) != 0) {
        cn_free(cn);
        return -ENOMEM;
    }
    return 0;
}

int hs_resolve_start(struct event_base *base, struct evdns_base **dns, const char *name, int family,
                     long long timeout_ms, hs_resolve_cb cb, void *arg, struct hs_connect **out)
{
    struct hs_connect *cn = cn_new(base, dns, timeout_ms, arg);
    if (cn == NULL)
        return -ENOMEM;
    cn->rcb = cb;
    cn->family = family;
    snprintf(cn->addr.host, sizeof cn->addr.host, "%s", name);
    *out = cn;
    if (cn_lookup(cn) != 0) {
        cn_free(cn);
        return -ENOMEM;
    }
    return 0;
}

void hs_connect_cancel(struct hs_connect *cn)
{
    cn_free(cn);
}

void hs_connect_dns_free(struct evdns_base *dns)
{
    if (dns)
        evdns_base_free(dns, 0);
}
