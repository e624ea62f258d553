/* hs_echo_bev: a TCP echo server written the obvious libevent way, as a benchmark baseline.
 *
 * Each accepted socket becomes a bufferevent whose read callback moves the whole input buffer
 * to the output buffer (evbuffer_add_buffer moves chains, no copy). Flow control uses the
 * write low-water mark: above ECHO_OUT_HIGH unsent bytes we stop reading, and the write
 * callback (run once output drains to ECHO_OUT_LOW) resumes it. Reads are whatever
 * bufferevent_socket does in libevent 2.1 (at most 4 KiB per evbuffer_read call).
 *
 * Usage: hs_echo_bev --listen HOST:PORT
 * Prints "listening tcp://HOST:PORT" on stderr with the bound port; SIGINT/SIGTERM exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "tests/loadgen/addr.h"

#define ECHO_OUT_HIGH (1024 * 1024) /* stop reading above this many unsent bytes */
#define ECHO_OUT_LOW (256 * 1024)   /* resume reading once output drains to this */
#define ECHO_BACKLOG 4096           /* listen(2) backlog; the kernel caps it at somaxconn */

struct echo_conn {
    struct bufferevent *bev;       /* owns the socket (BEV_OPT_CLOSE_ON_FREE) */
    struct echo_conn *prev, *next; /* list of live connections, freed at exit */
    int closing;                   /* peer sent EOF: free once output is flushed */
};

static struct echo_conn *conns; /* head of the live connection list */

static void conn_free(struct echo_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    (void)arg;
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > ECHO_OUT_HIGH)
        bufferevent_disable(bev, EV_READ);
}

/* Runs when output has drained to ECHO_OUT_LOW (or to zero while closing). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct echo_conn *c = arg;

    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_free(c);
        return;
    }
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_enable(bev, EV_READ);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct echo_conn *c = arg;

    /* A half-close still gets its echo: flush what is pending, then free. */
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        c->closing = 1;
        bufferevent_disable(bev, EV_READ);
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct event_base *base = arg;
    struct echo_conn *c;
    int one = 1;

    (void)lis;
    (void)sa;
    (void)salen;
    c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, ECHO_OUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    (void)lis;
    (void)arg;
    /* EMFILE and friends: report and keep listening; the client side sees the stall. */
    fprintf(stderr, "hs_echo_bev: accept: %s\n", strerror(errno));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static void usage(void)
{
    fprintf(stderr, "usage: hs_echo_bev --listen HOST:PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    const char *listen_at = NULL, *err;
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *sigint, *sigterm;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_at = argv[++i];
        else
            usage();
    }
    if (!listen_at)
        usage();
    if (bench_addr_parse(listen_at, SOCK_STREAM, &ss, &sslen, &err) != 0) {
        fprintf(stderr, "hs_echo_bev: bad address %s: %s\n", listen_at, err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "hs_echo_bev: event_base_new failed\n");
        return 1;
    }
    lis = evconnlistener_new_bind(base, accept_cb, base,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                  ECHO_BACKLOG, (struct sockaddr *)&ss, (int)sslen);
    if (!lis) {
        fprintf(stderr, "hs_echo_bev: listen %s: %s\n", listen_at, strerror(errno));
        event_base_free(base);
        return 1;
    }
    evconnlistener_set_error_cb(lis, accept_error_cb);
    /* libevent restores the disposition it found when the signal events are freed; make that
     * "ignore", so a second SIGTERM during teardown cannot kill us with status 143. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigint = evsignal_new(base, SIGINT, signal_cb, base);
    sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    bench_addr_announce("tcp", evconnlistener_get_fd(lis));

    event_base_dispatch(base);

    while (conns)
        conn_free(conns);
    evconnlistener_free(lis);
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    return 0;
}
