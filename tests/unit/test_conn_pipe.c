/* Byte pipes between connections (core/conn_pipe.h) on a real event_base: two conns, each
 * owning one end of a socketpair(AF_UNIX, SOCK_STREAM), the test playing both peers. The
 * loop is pumped one non-blocking turn at a time until a condition holds, bounded in time (no
 * sleeps). Teardown frees the set and the base and checks that no descriptor leaked; the Asan
 * build checks memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/conn_pipe.h"
#include "core/framing.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tests/unit/test_clock_fds.h"

#define KIB 1024
#define PUMP_MAX_MS 10000
#define HIGH (64 * KIB)
#define LOW (16 * KIB)

/* One side: its conn (NULL until on_open, and again once closed) and its peer's end. */
struct side {
    struct fx *fx;
    struct hs_conn *c;
    int peer;
    int frames; /* frames its handler saw */
    int closes;
    int late_inputs; /* on_input calls after on_close (never: its data may be freed) */
    const char *reason;
};

struct fx {
    struct event_base *base;
    struct hs_conns *set;
    struct side a, b; /* the pipe goes a -> b */
    int fds_at_start;
    int ends;       /* pipe callbacks */
    int status;     /* of the last */
    uint64_t bytes; /* of the last */
    size_t max_out; /* largest unsent output of b seen between turns */
};

static void on_open(struct hs_conn *c, void *arg)
{
    struct side *s = arg;
    s->c = c;
}

static void on_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f, void *arg)
{
    struct side *s = arg;
    (void)c;
    (void)in;
    (void)f;
    s->frames++;
}

static void on_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct side *s = arg;
    (void)c;
    s->closes++;
    s->reason = reason;
    s->c = NULL;
}

static void on_input(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    struct side *s = arg;
    (void)c;
    (void)in;
    (void)eof;
    if (s->closes > 0)
        s->late_inputs++;
}

static const struct hs_conn_handler handler = {
    .on_open = on_open,
    .on_frame = on_frame,
    .on_close = on_close,
    .on_input = on_input,
};

static void on_pipe_end(struct hs_conn *src, int status, uint64_t bytes, void *arg)
{
    struct fx *fx = arg;
    (void)src;
    fx->ends++;
    fx->status = status;
    fx->bytes = bytes;
}

/* As a proxy does at the upstream's end of stream: closes the source (nothing pending). */
static void on_pipe_end_close(struct hs_conn *src, int status, uint64_t bytes, void *arg)
{
    on_pipe_end(src, status, bytes, arg);
    hs_conn_close(src, "closed");
}

static void open_side(struct fx *fx, struct side *s)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++)
        fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    s->fx = fx;
    s->peer = sv[1];
    struct hs_framing raw = {.kind = HS_FRAMING_RAW};
    assert_int_equal(hs_conn_new(fx->set, sv[0], "peer", &raw, &handler, s, NULL), 0);
    assert_non_null(s->c);
}

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->fds_at_start = count_fds();
    fx->base = event_base_new();
    struct hs_conn_limits l;
    hs_conn_limits_default(&l);
    l.out_high = HIGH;
    l.out_low = LOW;
    fx->set = hs_conns_new(fx->base, &l);
    open_side(fx, &fx->a);
    open_side(fx, &fx->b);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    hs_conns_free(fx->set);
    event_base_free(fx->base);
    if (fx->a.peer >= 0)
        close(fx->a.peer);
    if (fx->b.peer >= 0)
        close(fx->b.peer);
    assert_int_equal(count_fds(), fx->fds_at_start);
    free(fx);
    return 0;
}

/* One non-blocking turn of the loop; notes b's unsent output. */
static void turn(struct fx *fx)
{
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    if (fx->b.c && hs_conn_pending(fx->b.c) > fx->max_out)
        fx->max_out = hs_conn_pending(fx->b.c);
}

/* Pumps until *flag != 0 (or the time bound: the caller's assertion then fails). */
static void pump_until(struct fx *fx, const int *flag)
{
    long long end = now_ms() + PUMP_MAX_MS;
    while (!*flag && now_ms() < end)
        turn(fx);
}

/* Pumps until fd (a peer's end) reads something; returns what read(2) last returned. */
static ssize_t pump_read(struct fx *fx, int fd, char *buf, size_t len)
{
    long long end = now_ms() + PUMP_MAX_MS;
    ssize_t r = -1;
    while (r <= 0 && now_ms() < end) {
        turn(fx);
        r = read(fd, buf, len);
    }
    return r;
}

static unsigned char stream_byte(uint64_t off)
{
    return (unsigned char)(off % 251);
}

/* The peer of a writes the stream while b's peer reads nothing: a stops being read with b's
 * output bounded by the high mark plus one read; once b's peer reads, the rest flows, byte
 * for byte, and a's end of stream ends the pipe with the count, b left open. */
static void test_flow_control_and_eof(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), 0);
    assert_true(hs_conn_piping(fx->a.c));
    const uint64_t total = 8 * 1024 * KIB;
    uint64_t sent = 0, got = 0;
    unsigned char buf[16 * KIB];
    /* Phase 1: write until nothing more goes for many turns in a row. */
    int stuck = 0;
    long long end = now_ms() + PUMP_MAX_MS;
    while (stuck < 2000 && sent < total && now_ms() < end) {
        size_t n = sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = stream_byte(sent + i);
        ssize_t w = write(fx->a.peer, buf, n);
        if (w > 0) {
            sent += (uint64_t)w;
            stuck = 0;
        } else {
            stuck++;
        }
        turn(fx);
    }
    assert_true(sent < total); /* pushed back: the pipe stopped reading a */
    assert_true(fx->max_out <= HIGH + HS_READ_SIZE);
    assert_int_equal(fx->ends, 0);
    /* Phase 2: b's peer reads; a's peer writes the rest, then shuts down its side. */
    int shut = 0;
    end = now_ms() + 3 * PUMP_MAX_MS;
    while (got < total && now_ms() < end) {
        if (sent < total) {
            size_t n = total - sent < sizeof buf ? (size_t)(total - sent) : sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = stream_byte(sent + i);
            ssize_t w = write(fx->a.peer, buf, n);
            if (w > 0)
                sent += (uint64_t)w;
        } else if (!shut) {
            shutdown(fx->a.peer, SHUT_WR);
            shut = 1;
        }
        turn(fx);
        ssize_t r;
        while ((r = read(fx->b.peer, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < r; i++)
                assert_int_equal(buf[i], stream_byte(got + (uint64_t)i));
            got += (uint64_t)r;
        }
    }
    assert_int_equal(got, total);
    if (!shut)
        shutdown(fx->a.peer, SHUT_WR);
    pump_until(fx, &fx->ends);
    assert_int_equal(fx->ends, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->bytes, total);
    /* a then closes as any conn does at its peer's end of stream. */
    pump_until(fx, &fx->a.closes);
    assert_string_equal(fx->a.reason, "peer closed");
    assert_int_equal(fx->a.frames, 0); /* nothing was framed while piping */
    assert_non_null(fx->b.c);          /* the pipe leaves dst open */
    assert_true(fx->max_out <= HIGH + HS_READ_SIZE);
}

/* dst closing ends the pipe with HS_ECLOSED; src reads and frames again. */
static void test_dst_closes(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), 0);
    assert_int_equal(write(fx->a.peer, "abc", 3), 3);
    char buf[8];
    assert_int_equal(pump_read(fx, fx->b.peer, buf, sizeof buf), 3);
    hs_conn_close(fx->b.c, "closed");
    assert_int_equal(fx->ends, 1);
    assert_int_equal(fx->status, HS_ECLOSED);
    assert_int_equal(fx->bytes, 3);
    assert_false(hs_conn_piping(fx->a.c));
    assert_int_equal(write(fx->a.peer, "xy", 2), 2);
    pump_until(fx, &fx->a.frames);
    assert_int_equal(fx->a.frames, 1);
}

/* src failing ends the pipe: a reset as -ECONNRESET, any other close as HS_ECLOSED. */
static void test_src_fails(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), 0);
    hs_conn_abort(fx->a.c, "reset");
    assert_int_equal(fx->ends, 1);
    assert_int_equal(fx->status, -ECONNRESET);
    assert_non_null(fx->b.c);
    assert_int_equal(hs_conn_pipe_to(fx->b.c, fx->b.c, on_pipe_end, fx), -EINVAL);
}

/* Misuse, a stop without a callback, and bytes buffered before the start moving first, on
 * a later turn (never from inside hs_conn_pipe_to). */
static void test_start_stop(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->a.c, on_pipe_end, fx), -EINVAL);
    /* A held conn reads without framing: "early" waits in its input buffer. */
    hs_conn_hold(fx->a.c, 1024);
    assert_int_equal(write(fx->a.peer, "early", 5), 5);
    long long end = now_ms() + PUMP_MAX_MS;
    while (evbuffer_get_length(hs_conn_input(fx->a.c)) < 5 && now_ms() < end)
        turn(fx);
    assert_int_equal(evbuffer_get_length(hs_conn_input(fx->a.c)), 5);
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), 0);
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), -EINVAL);
    assert_int_equal(evbuffer_get_length(hs_conn_input(fx->a.c)), 5);
    char buf[16];
    assert_int_equal(pump_read(fx, fx->b.peer, buf, sizeof buf), 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(hs_conn_pipe_stop(fx->a.c), 5);
    assert_int_equal(hs_conn_pipe_stop(fx->a.c), 0);
    assert_int_equal(fx->ends, 0);
    /* Stopped, a frames again. */
    assert_int_equal(write(fx->a.peer, "z", 1), 1);
    hs_conn_hold(fx->a.c, 0);
    pump_until(fx, &fx->a.frames);
    assert_int_equal(fx->a.frames, 1);
}

/* A held source whose pipe's end closes it: its end of stream goes no further (its handler is
 * not called after on_close, when its data may be gone). */
static void test_close_at_pipe_end(void **state)
{
    struct fx *fx = *state;
    hs_conn_hold(fx->a.c, 1024);
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end_close, fx), 0);
    assert_int_equal(shutdown(fx->a.peer, SHUT_WR), 0);
    pump_until(fx, &fx->a.closes);
    assert_int_equal(fx->ends, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->a.closes, 1);
    assert_int_equal(fx->a.late_inputs, 0);
    assert_non_null(fx->b.c);
}

/* hs_conn_shut_write: what was queued arrives, then the end of stream; sends and a pipe into
 * the conn fail; the conn still reads (a pipe from it moves its peer's bytes). */
static void test_shut_write(void **state)
{
    struct fx *fx = *state;
    static char big[256 * KIB];
    memset(big, 'q', sizeof big);
    assert_int_equal(hs_conn_send(fx->a.c, big, sizeof big), 0);
    assert_true(hs_conn_pending(fx->a.c) > 0); /* more than a socketpair takes at once */
    assert_int_equal(hs_conn_shut_write(fx->a.c), 0);
    assert_int_equal(hs_conn_shut_write(fx->a.c), 0);
    assert_int_equal(hs_conn_send(fx->a.c, "x", 1), HS_ECLOSED);
    assert_int_equal(hs_conn_pipe_to(fx->b.c, fx->a.c, on_pipe_end, fx), HS_ECLOSED);
    assert_int_equal(hs_conn_pipe_to(fx->a.c, fx->b.c, on_pipe_end, fx), 0);
    size_t got = 0;
    int eof = 0;
    char buf[16 * KIB];
    long long end = now_ms() + PUMP_MAX_MS;
    while (!eof && now_ms() < end) {
        turn(fx);
        ssize_t r = read(fx->a.peer, buf, sizeof buf);
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++)
                assert_int_equal(buf[i], 'q');
            got += (size_t)r;
        }
        eof = r == 0;
    }
    assert_true(eof);
    assert_int_equal(got, sizeof big);
    /* a's peer still sends; the pipe moves it to b's peer. */
    assert_int_equal(write(fx->a.peer, "later", 5), 5);
    assert_int_equal(pump_read(fx, fx->b.peer, buf, sizeof buf), 5);
    assert_memory_equal(buf, "later", 5);
    assert_non_null(fx->a.c);
    hs_conn_close(fx->a.c, "closed");
    pump_until(fx, &fx->a.closes);
    assert_int_equal(fx->a.closes, 1);
    /* A closing conn (output still pending: b's peer reads nothing) refuses. */
    assert_int_equal(hs_conn_send(fx->b.c, big, sizeof big), 0);
    hs_conn_close(fx->b.c, "closed");
    assert_non_null(fx->b.c);
    assert_int_equal(hs_conn_shut_write(fx->b.c), HS_ECLOSED);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        FX_TEST(test_flow_control_and_eof),
        FX_TEST(test_dst_closes),
        FX_TEST(test_src_fails),
        FX_TEST(test_start_stop),
        FX_TEST(test_close_at_pipe_end),
        FX_TEST(test_shut_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
