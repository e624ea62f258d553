#include "core/listener.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define ACCEPT_BACKOFF_MS 100  /* pause after EMFILE/ENFILE/ENOMEM before accepting again */
#define HS_LISTEN_BACKLOG 4096 /* pending connections; the kernel caps it at somaxconn */

struct hs_listener {
    struct event_base *base;
    struct hs_conns *set;
    struct evconnlistener *evl;
    struct event *backoff;     /* re-enables accepting after a resource shortage */
    int paused_for_backoff;    /* accepting is off until the backoff timer fires */
    unsigned long shortage;    /* backoff pauses since the last successful accept */
    int stopped;               /* hs_listener_stop was called */
    struct hs_framing framing; /* given to each accepted connection */
    const struct hs_conn_handler *handler;
    void *arg;
    hs_listener_accept_cb accept_cb;
    int port;                         /* bound port; 0 for Unix */
    char unix_path[HS_ADDR_MAX_PATH]; /* the Unix socket's file, or "" */
    int owns_path;                    /* we bound it: remove the file on free */
    char url[HS_ADDR_TEXT + 16];      /* bound address as a URL */
    char name[64];                    /* label for log lines */
    unsigned long long accepted, refused, limited;
    struct hs_conn_tally *tally; /* its connections' counters (they hold references too) */
    struct hs_tls_ctx *tls;      /* new connections handshake with this, or NULL (plaintext) */
    int proxy;                   /* connections start with a PROXY header (?proxy) */
};

/* A PROXY listener's admission, once a header has named the client: what an ordinary
 * listener decides at accept. */
static int listener_admit_cb(struct hs_conn *c, const struct sockaddr *sa, socklen_t len, void *arg)
{
    struct hs_listener *l = arg;
    if (hs_conn_admit_peer(c, sa, len) != 0) {
        l->limited++;
        return 1;
    }
    if (l->accept_cb && l->accept_cb(l, hs_conn_peer(c), l->arg) != 0) {
        l->refused++;
        hs_log(HS_LOG_INFO, "%s refused %s (on_accept)", l->url, hs_conn_peer(c));
        return 1;
    }
    l->accepted++;
    return 0;
}

static void listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    struct hs_listener *l = arg;
    HS_UNUSED(evl);
    if (l->shortage) {
        hs_log(HS_LOG_INFO, "%s accepting again (after %lu pause(s) for a resource shortage)",
               l->url, l->shortage);
        l->shortage = 0;
    }
    if (l->proxy) {
        /* The peer is the balancer: admission waits for the header (listener_admit_cb), and
         * its address is not even formatted unless something needs it. */
        if (sa->sa_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (hs_conn_new_proxy(l->set, fd, sa, (socklen_t)salen, &l->framing, l->handler, l->arg,
                              l->tally, l->tls, listener_admit_cb, l) == HS_ETOOBIG)
            l->limited++;
        return;
    }
    char peer[HS_ADDR_TEXT];
    hs_addr_format(sa, (socklen_t)salen, peer, sizeof peer);
    /* Limits first: a flood must not cost a script call per connection. */
    if (hs_conns_admit(l->set, sa, (socklen_t)salen, peer) != 0) {
        l->limited++;
        evutil_closesocket(fd);
        return;
    }
    if (l->accept_cb && l->accept_cb(l, peer, l->arg) != 0) {
        l->refused++;
        hs_log(HS_LOG_INFO, "%s refused %s (on_accept)", l->url, peer);
        evutil_closesocket(fd);
        return;
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int r = hs_conn_new_tls(l->set, fd, peer, &l->framing, l->handler, l->arg, l->tally, l->tls);
    if (r == HS_ETOOBIG)
        l->limited++;
    else if (r == 0)
        l->accepted++;
}

static void listener_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_listener *l = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    l->paused_for_backoff = 0;
    if (!l->stopped)
        evconnlistener_enable(l->evl); /* logged at the first accept that succeeds */
}

static void listener_error_cb(struct evconnlistener *evl, void *arg)
{
    struct hs_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    HS_UNUSED(evl);
    if (err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS) {
        /* The pending connection stays in the backlog; accepting again at once would spin. */
        if (!l->paused_for_backoff) {
            /* One line when a shortage starts and one every 100 pauses (10 s) while it
             * lasts, not 10 lines a second. */
            if (l->shortage == 0)
                hs_log(HS_LOG_WARN, "%s accept failed: %s; pausing accepts for %d ms", l->url,
                       strerror(err), ACCEPT_BACKOFF_MS);
            else if (l->shortage % 100 == 0)
                hs_log(HS_LOG_WARN, "%s accept still failing: %s (%lu pauses of %d ms so far)",
                       l->url, strerror(err), l->shortage, ACCEPT_BACKOFF_MS);
            l->shortage++;
            evconnlistener_disable(l->evl);
            l->paused_for_backoff = 1;
            struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
            event_add(l->backoff, &tv);
        }
        return;
    }
    hs_log(HS_LOG_WARN, "%s accept failed: %s", l->url, strerror(err));
}

int hs_listener_new(struct event_base *base, struct hs_conns *set, const struct hs_addr *addr,
                    const char *name, const struct hs_framing *framing,
                    const struct hs_conn_handler *handler, void *arg,
                    hs_listener_accept_cb accept_cb, struct hs_listener **out)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int r;
    memset(&ss, 0, sizeof ss);
    if (addr->scheme == HS_ADDR_UDP || addr->scheme == HS_ADDR_UNIXGRAM)
        return -EINVAL;
    if (addr->scheme == HS_ADDR_UNIX) {
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        su->sun_family = AF_UNIX;
        snprintf(su->sun_path, sizeof su->sun_path, "%s", addr->path);
        sslen = sizeof *su;
        /* A socket file left by a previous run is replaced; anything else is refused. */
        if ((r = hs_addr_clear_unix_path(addr->path)) < 0)
            return r;
    } else if ((r = hs_addr_resolve(addr, &ss, &sslen)) < 0) {
        return r;
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    if (ss.ss_family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* "All addresses" binds IPv6 any and takes IPv4 clients too. */
    if (ss.ss_family == AF_INET6 && addr->host[0] == '\0')
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if ((r = hs_addr_prepare_bind(fd, SOCK_STREAM, &ss, sslen)) != 0) {
        close(fd);
        return r;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, HS_LISTEN_BACKLOG) != 0) {
        r = -errno;
        close(fd);
        return r;
    }
    r = hs_listener_adopt_fd(base, set, fd, addr, name, framing, handler, arg, accept_cb, out);
    if (r == 0 && addr->scheme == HS_ADDR_UNIX)
        (*out)->owns_path = 1;
    return r;
}

int hs_listener_adopt_fd(struct event_base *base, struct hs_conns *set, int fd,
                         const struct hs_addr *addr, const char *name,
                         const struct hs_framing *framing, const struct hs_conn_handler *handler,
                         void *arg, hs_listener_accept_cb accept_cb, struct hs_listener **out)
{
    struct hs_listener *l = calloc(1, sizeof *l);
    if (l == NULL) {
        close(fd);
        return -ENOMEM;
    }
    l->base = base;
    l->set = set;
    l->framing = *framing;
    l->handler = handler;
    l->arg = arg;
    l->accept_cb = accept_cb;
    l->proxy = addr->proxy;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    l->backoff = evtimer_new(base, listener_backoff_cb, l);
    l->tally = hs_conn_tally_new();
    l->evl = evconnlistener_new(base, listener_accept_cb, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    /* Backlog 0 above: the socket listens already. -1 would make libevent call listen(fd, 128)
     * again, and 128 overflows under a burst of connects. */
    if (l->evl == NULL || l->backoff == NULL || l->tally == NULL) {
        if (l->evl)
            evconnlistener_free(l->evl); /* closes fd */
        else
            close(fd);
        if (l->backoff)
            event_free(l->backoff);
        hs_conn_tally_unref(l->tally);
        free(l);
        return -ENOMEM;
    }
    evconnlistener_set_error_cb(l->evl, listener_error_cb);

    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    if (addr->scheme == HS_ADDR_UNIX) {
        snprintf(l->unix_path, sizeof l->unix_path, "%s", addr->path);
        snprintf(l->url, sizeof l->url, "unix:%s", addr->path);
    } else {
        hs_addr_url(addr->scheme, (struct sockaddr *)&bound, blen, l->url, sizeof l->url);
        l->port = bound.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                                             : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    *out = l;
    return 0;
}

int hs_listener_fd(const struct hs_listener *l)
{
    return l->evl ? (int)evconnlistener_get_fd(l->evl) : -1;
}

void hs_listener_start(struct hs_listener *l)
{
    l->stopped = 0;
    if (l->evl && !l->paused_for_backoff)
        evconnlistener_enable(l->evl);
}

void hs_listener_stop(struct hs_listener *l)
{
    l->stopped = 1;
    if (l->evl)
        evconnlistener_disable(l->evl);
}

void hs_listener_own_path(struct hs_listener *l, int own)
{
    l->owns_path = l->unix_path[0] && own;
}

void hs_listener_close(struct hs_listener *l)
{
    l->stopped = 1;
    event_del(l->backoff);
    if (l->evl)
        evconnlistener_free(l->evl); /* closes the socket */
    l->evl = NULL;
    /* The file goes first with the socket: a connect then fails at once (ENOENT). */
    if (l->unix_path[0] && l->owns_path)
        unlink(l->unix_path);
    l->owns_path = 0;
}

void hs_listener_free(struct hs_listener *l)
{
    if (l == NULL)
        return;
    hs_listener_close(l);
    /* Connections still reading their header would call back into l. */
    if (l->proxy)
        hs_conns_abort_admitting(l->set, l);
    event_free(l->backoff);
    hs_conn_tally_unref(l->tally);
    hs_tls_ctx_unref(l->tls);
    free(l);
}

const char *hs_listener_url(const struct hs_listener *l)
{
    return l->url;
}

int hs_listener_port(const struct hs_listener *l)
{
    return l->port;
}

void hs_listener_retarget(struct hs_listener *l, const struct hs_framing *framing, void *arg)
{
    l->framing = *framing;
    l->arg = arg;
}

void hs_listener_set_tls(struct hs_listener *l, struct hs_tls_ctx *ctx)
{
    if (ctx)
        hs_tls_ctx_ref(ctx);
    hs_tls_ctx_unref(l->tls);
    l->tls = ctx;
}

const struct hs_conn_tally *hs_listener_tally(const struct hs_listener *l)
{
    return l->tally;
}

void hs_listener_counts(const struct hs_listener *l, unsigned long long *accepted,
                        unsigned long long *refused, unsigned long long *limited)
{
    *accepted = l->accepted;
    *refused = l->refused;
    *limited = l->limited;
}
