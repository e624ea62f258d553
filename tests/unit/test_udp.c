/* UDP listeners (core/udp.c) on a real loop: each source address is formatted to text once,
 * however many peers a socket hears from (its table of peers grows with them), a reply to the
 * text the callback was given reaches that peer, and a socket sent to more peers than its
 * table holds starts over and still answers every peer it hears from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/addr.h"
#include "core/hs.h"
#include "core/udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#define NPEERS 60 /* clients: more than a direct-mapped cache of 128 could keep apart */
#define ROUNDS 3  /* datagrams each client sends */

struct fx {
    struct event_base *base;
    struct hs_udp *u;
    struct sockaddr_in at; /* where u listens */
    int received;          /* datagrams the callback saw */
    int want;              /* stop the loop after this many */
};

/* Echoes each datagram to the text it came with, as on_datagram's sock:send_to(peer, data). */
static void echo_cb(struct hs_udp *u, const char *data, size_t len, const char *peer, void *arg)
{
    struct fx *fx = arg;
    assert_int_equal(hs_udp_send_to(u, peer, strlen(peer), data, len), 0);
    if (++fx->received == fx->want)
        event_base_loopbreak(fx->base);
}

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    struct hs_addr a;
    const char *why = NULL;
    if (fx == NULL || (fx->base = event_base_new()) == NULL)
        return -1;
    if (hs_addr_parse("udp://127.0.0.1:0", &a, &why) != 0 ||
        hs_udp_new(fx->base, &a, "test", echo_cb, fx, &fx->u) != 0)
        return -1;
    socklen_t sl = sizeof fx->at;
    if (getsockname(hs_udp_fd(fx->u), (struct sockaddr *)&fx->at, &sl) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    hs_udp_free(fx->u);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* A blocking client socket bound to an ephemeral loopback port, with a receive timeout so a
 * lost reply fails the test instead of hanging it. */
static int client_new(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me;
    memset(&me, 0, sizeof me);
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    return fd;
}

/* Every client sends one datagram naming itself, the loop serves them, and each reads back
 * its own bytes. */
static void round_trip(struct fx *fx, const int *fd, int n, int round)
{
    fx->want = fx->received + n;
    for (int i = 0; i < n; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "peer %d round %d", i, round);
        assert_int_equal(
            sendto(fd[i], msg, (size_t)len, 0, (struct sockaddr *)&fx->at, sizeof fx->at), len);
    }
    while (fx->received < fx->want)
        assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
    for (int i = 0; i < n; i++) {
        char msg[32], got[64];
        int len = snprintf(msg, sizeof msg, "peer %d round %d", i, round);
        assert_int_equal(recv(fd[i], got, sizeof got, 0), len);
        assert_memory_equal(got, msg, (size_t)len);
    }
}

/* 60 peers, 3 datagrams each: 60 formats, not one per datagram for the peers that share a
 * slot of a small direct-mapped cache (with 60 peers in 128 slots, almost every run has
 * some). */
static void test_each_peer_formatted_once(void **state)
{
    struct fx *fx = *state;
    int fd[NPEERS];
    for (int i = 0; i < NPEERS; i++)
        fd[i] = client_new();
    for (int r = 0; r < ROUNDS; r++)
        round_trip(fx, fd, NPEERS, r);
    struct hs_udp_counts c;
    hs_udp_counts(fx->u, &c);
    assert_int_equal(c.datagrams_in, NPEERS * ROUNDS);
    assert_int_equal(c.datagrams_out, NPEERS * ROUNDS);
    assert_int_equal(c.peer_formats, NPEERS);
    for (int i = 0; i < NPEERS; i++)
        close(fd[i]);
}

/* Replies to 1,500 other addresses (no one listens there: loopback drops them) push the table
 * past its 1,024 peers, so it starts over; the clients are still answered, each peer's text
 * formatted again once at most. */
static void test_table_starts_over(void **state)
{
    struct fx *fx = *state;
    int fd[4];
    for (int i = 0; i < 4; i++)
        fd[i] = client_new();
    round_trip(fx, fd, 4, 0);
    for (int port = 20000; port < 21500; port++) {
        char peer[32];
        int n = snprintf(peer, sizeof peer, "127.0.0.2:%d", port);
        assert_int_equal(hs_udp_send_to(fx->u, peer, (size_t)n, "x", 1), 0);
    }
    round_trip(fx, fd, 4, 1);
    round_trip(fx, fd, 4, 2);
    struct hs_udp_counts c;
    hs_udp_counts(fx->u, &c);
    assert_int_equal(c.datagrams_in, 12);
    assert_int_equal(c.peer_formats, 8);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
}

/* A text that names an address but is not the way hs_addr_format writes it (a port with a
 * leading zero) is parsed each time and sent to, never remembered; one that is not an address
 * is refused. */
static void test_send_to_texts(void **state)
{
    struct fx *fx = *state;
    int fd = client_new();
    struct sockaddr_in me;
    socklen_t sl = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &sl), 0);
    char odd[32], peer[32];
    int n = snprintf(odd, sizeof odd, "127.0.0.1:0%u", ntohs(me.sin_port));
    int m = snprintf(peer, sizeof peer, "127.0.0.1:%u", ntohs(me.sin_port));
    assert_int_equal(hs_udp_send_to(fx->u, odd, (size_t)n, "a", 1), 0);
    assert_int_equal(hs_udp_send_to(fx->u, peer, (size_t)m, "b", 1), 0);
    assert_int_equal(hs_udp_send_to(fx->u, odd, (size_t)n, "c", 1), 0);
    assert_int_equal(hs_udp_send_to(fx->u, peer, (size_t)m, "d", 1), 0);
    assert_int_equal(hs_udp_send_to(fx->u, "nowhere", 7, "e", 1), HS_EBADSPEC);
    assert_int_equal(hs_udp_send_to(fx->u, "127.0.0.1:99999", 15, "e", 1), HS_EBADSPEC);
    for (const char *want = "abcd"; *want; want++) {
        char got[8];
        assert_int_equal(recv(fd, got, sizeof got, 0), 1);
        assert_int_equal(got[0], *want);
    }
    close(fd);
}

/* Datagrams queued before the loop runs are taken several per call: each keeps its own bytes
 * and length, the largest IPv4 payload included, in the order they came (about 100 KB in all,
 * under the default 208 KiB receive buffer, so loopback drops none). */
static void test_queued_datagrams(void **state)
{
    struct fx *fx = *state;
    static const size_t sizes[] = {1, 64, 65507, 0, 1500, 7, 4096, 2, 30000, 3, 9, 10};
    const int n = (int)(sizeof sizes / sizeof sizes[0]);
    int fd = client_new();
    int big = 1 << 20;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big), 0);
    static char msg[65507], got[65536];
    for (int i = 0; i < n; i++) {
        memset(msg, 'a' + i, sizeof msg);
        assert_int_equal(sendto(fd, msg, sizes[i], 0, (struct sockaddr *)&fx->at, sizeof fx->at),
                         (ssize_t)sizes[i]);
    }
    fx->want = n;
    while (fx->received < fx->want)
        assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
    for (int i = 0; i < n; i++) {
        memset(msg, 'a' + i, sizeof msg);
        assert_int_equal(recv(fd, got, sizeof got, 0), (ssize_t)sizes[i]);
        assert_memory_equal(got, msg, sizes[i]);
    }
    close(fd);
}

/* A callback that frees its socket in the middle of a batch: the datagrams taken after it go
 * with the socket, and nothing reaches the freed memory (valgrind and Asan builds check). */
static void free_cb(struct hs_udp *u, const char *data, size_t len, const char *peer, void *arg)
{
    struct fx *fx = arg;
    HS_UNUSED(data);
    HS_UNUSED(len);
    HS_UNUSED(peer);
    if (++fx->received == 3) {
        hs_udp_free(u);
        fx->u = NULL;
    }
}

static void test_free_inside_batch(void **state)
{
    struct fx *fx = *state;
    struct hs_addr a;
    const char *why = NULL;
    hs_udp_free(fx->u);
    assert_int_equal(hs_addr_parse("udp://127.0.0.1:0", &a, &why), 0);
    assert_int_equal(hs_udp_new(fx->base, &a, "test", free_cb, fx, &fx->u), 0);
    socklen_t sl = sizeof fx->at;
    assert_int_equal(getsockname(hs_udp_fd(fx->u), (struct sockaddr *)&fx->at, &sl), 0);
    int fd = client_new();
    for (int i = 0; i < 6; i++)
        assert_int_equal(sendto(fd, "x", 1, 0, (struct sockaddr *)&fx->at, sizeof fx->at), 1);
    while (fx->u != NULL)
        assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
    assert_int_equal(fx->received, 3);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_peer_formatted_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_table_starts_over, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_to_texts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queued_datagrams, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_batch, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
