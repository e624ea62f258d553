/* Pub/sub queue tests: a real region in /dev/shm, real eventfds, and real processes (fork) as
 * concurrent publishers, a publisher killed in the middle of its work, and a consumer that
 * takes a queue over from another. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hs.h"
#include "core/pubsub.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every test owns one region in *state; teardown frees it (valgrind sees leaks). */
static int teardown(void **state)
{
    hs_pubsub_free(*state);
    assert_null(hs_pubsub_default());
    return 0;
}

static struct hs_pubsub *make(void **state, unsigned workers, size_t queue, size_t max)
{
    struct hs_pubsub *ps = NULL;
    assert_int_equal(hs_pubsub_create(workers, queue, max, &ps), 0);
    *state = ps;
    assert_ptr_equal(hs_pubsub_default(), ps);
    return ps;
}

static int publish(struct hs_pubsub *ps, const char *ch, const char *msg)
{
    return hs_pubsub_publish(ps, ch, strlen(ch), msg, strlen(msg));
}

static void expect_msg(struct hs_pubsub *ps, const char *ch, const char *msg, unsigned from)
{
    struct hs_pubsub_msg m;
    assert_int_equal(hs_pubsub_next(ps, &m), 1);
    assert_int_equal(m.channel_len, strlen(ch));
    assert_memory_equal(m.channel, ch, m.channel_len);
    assert_int_equal(m.len, strlen(msg));
    assert_memory_equal(m.data, msg, m.len);
    assert_int_equal(m.from, from);
}

/* A pause of us microseconds (usleep is not POSIX.1-2008). */
static void pause_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

static void test_round_trip_and_filter(void **state)
{
    struct hs_pubsub *ps = make(state, 2, 0, 1024);
    assert_int_equal(hs_pubsub_workers(ps), 2);
    assert_int_equal(hs_pubsub_max_message(ps), 1024);
    /* Before claiming a queue the process is a master: it publishes nothing, takes nothing. */
    assert_int_equal(hs_pubsub_self(ps), 0);
    assert_int_equal(hs_pubsub_wake_fd(ps), -1);
    assert_int_equal(publish(ps, "a", "x"), 0);
    assert_int_equal(hs_pubsub_claim(ps, 3), -EINVAL);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    assert_int_equal(hs_pubsub_self(ps), 1);
    /* Nobody subscribes to "a": nothing is queued, nobody is woken. */
    assert_int_equal(publish(ps, "a", "x"), 0);
    assert_false(readable(hs_pubsub_wake_fd(ps), 0));
    hs_pubsub_interest(ps, "a", 1, +1);
    hs_pubsub_interest(ps, "a", 1, +1);
    assert_int_equal(publish(ps, "a", "hello"), 1);
    assert_int_equal(publish(ps, "a", ""), 1);
    /* One wake-up for both, until the consumer re-arms. */
    assert_true(readable(hs_pubsub_wake_fd(ps), 0));
    hs_pubsub_wake_reset(ps);
    assert_false(readable(hs_pubsub_wake_fd(ps), 0));
    expect_msg(ps, "a", "hello", 1);
    expect_msg(ps, "a", "", 1);
    struct hs_pubsub_msg m;
    assert_int_equal(hs_pubsub_next(ps, &m), 0);
    assert_int_equal(publish(ps, "a", "again"), 1);
    assert_true(readable(hs_pubsub_wake_fd(ps), 0));
    hs_pubsub_wake_reset(ps);
    expect_msg(ps, "a", "again", 1);
    /* Interest is counted: the second subscriber gone, one remains. */
    hs_pubsub_interest(ps, "a", 1, -1);
    assert_int_equal(publish(ps, "a", "still"), 1);
    expect_msg(ps, "a", "still", 1);
    hs_pubsub_interest(ps, "a", 1, -1);
    hs_pubsub_interest(ps, "a", 1, -1); /* one too many is ignored */
    assert_int_equal(publish(ps, "a", "gone"), 0);
    struct hs_pubsub_counts c;
    hs_pubsub_counts(ps, &c);
    assert_int_equal(c.published, 4);
    assert_int_equal(c.delivered, 4);
    assert_int_equal(c.dropped, 0);
    assert_int_equal(c.queued, 0);
}

static void test_limits(void **state)
{
    struct hs_pubsub *ps = make(state, 1, 0, 10);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "c", 1, +1);
    assert_int_equal(publish(ps, "c", "0123456789"), 1);
    assert_int_equal(publish(ps, "c", "0123456789x"), -E2BIG);
    assert_int_equal(hs_pubsub_publish(ps, "", 0, "x", 1), -E2BIG);
    char ch[HS_PUBSUB_MAX_CHANNEL + 1];
    memset(ch, 'c', sizeof ch);
    assert_int_equal(hs_pubsub_publish(ps, ch, sizeof ch, "x", 1), -E2BIG);
    hs_pubsub_interest(ps, ch, HS_PUBSUB_MAX_CHANNEL, +1);
    assert_int_equal(hs_pubsub_publish(ps, ch, HS_PUBSUB_MAX_CHANNEL, "x", 1), 1);
    expect_msg(ps, "c", "0123456789", 1);
    struct hs_pubsub_msg m;
    assert_int_equal(hs_pubsub_next(ps, &m), 1);
    assert_int_equal(m.channel_len, HS_PUBSUB_MAX_CHANNEL);
    struct hs_pubsub *bad;
    assert_int_equal(hs_pubsub_create(0, 0, 10, &bad), -EINVAL);
    assert_int_equal(hs_pubsub_create(HS_PUBSUB_MAX_WORKERS + 1, 0, 10, &bad), -EINVAL);
    assert_int_equal(hs_pubsub_attach("nonsense", &bad), -EINVAL);
}

/* A full queue refuses (counted), never grows, and takes messages again once drained; the
 * ring wraps many times with every byte intact. */
static void test_full_and_wrap(void **state)
{
    struct hs_pubsub *ps = make(state, 1, 4096, 100);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "w", 1, +1);
    char msg[101];
    int queued = 0, r;
    while ((r = hs_pubsub_publish(ps, "w", 1, msg, 100)) == 1)
        queued++;
    assert_int_equal(r, HS_EQUEUE);
    assert_int_equal(hs_pubsub_publish(ps, "w", 1, msg, 100), HS_EQUEUE);
    struct hs_pubsub_counts c;
    hs_pubsub_counts(ps, &c);
    assert_int_equal(c.dropped, 2);
    assert_int_equal(c.capacity, 4096);
    assert_true(c.queued <= 4096);
    assert_int_equal(queued, 4096 / (16 + 1 + 100));
    struct hs_pubsub_msg m;
    while (hs_pubsub_next(ps, &m))
        queued--;
    assert_int_equal(queued, 0);
    /* Odd sizes, so records straddle the end of the ring at every offset. */
    for (int i = 0; i < 5000; i++) {
        size_t len = (size_t)(i * 7) % 101;
        for (size_t j = 0; j < len; j++)
            msg[j] = (char)(i + j);
        assert_int_equal(hs_pubsub_publish(ps, "w", 1, msg, len), 1);
        if (i % 3 == 2)
            continue; /* let a few pile up */
        while (hs_pubsub_next(ps, &m)) {
            for (size_t j = 0; j < m.len; j++)
                assert_int_equal((unsigned char)m.data[j], (unsigned char)(m.data[0] + j));
        }
    }
    hs_pubsub_counts(ps, &c);
    assert_int_equal(c.dropped, 2);
    assert_int_equal(c.queued, 0);
}

/* Runs in a child: publishes n messages "SEQ" on channel "o" as worker `as`, retrying while
 * the queue is full (the parent drains concurrently), then exits. */
static void child_publisher(struct hs_pubsub *ps, unsigned as, int n)
{
    if (hs_pubsub_claim(ps, as) != 0)
        _exit(2);
    char buf[32];
    for (int i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "%d", i);
        int r;
        while ((r = hs_pubsub_publish(ps, "o", 1, buf, (size_t)len)) == HS_EQUEUE)
            pause_us(100);
        if (r != 1)
            _exit(3);
    }
    _exit(0);
}

/* Two processes publish at once: every message arrives once, each publisher's in order, and
 * the consumer sleeps on its eventfd in between. */
static void test_two_publishers_keep_order(void **state)
{
    enum { N = 20000 };
    struct hs_pubsub *ps = make(state, 3, 16384, 64);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "o", 1, +1);
    pid_t kids[2];
    for (unsigned k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0)
            child_publisher(ps, 2 + k, N);
    }
    int next[4] = {0, 0, 0, 0};
    int wakeups = 0;
    while (next[2] < N || next[3] < N) {
        assert_true(readable(hs_pubsub_wake_fd(ps), 10000));
        wakeups++;
        hs_pubsub_wake_reset(ps);
        struct hs_pubsub_msg m;
        while (hs_pubsub_next(ps, &m)) {
            assert_true(m.from == 2 || m.from == 3);
            char buf[32];
            memcpy(buf, m.data, m.len);
            buf[m.len] = '\0';
            assert_int_equal(atoi(buf), next[m.from]);
            next[m.from]++;
        }
    }
    for (unsigned k = 0; k < 2; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_true(wakeups >= 1);
    struct hs_pubsub_msg m;
    assert_int_equal(hs_pubsub_next(ps, &m), 0);
}

/* Publishers killed at random moments (often while holding a queue's lock) never wedge the
 * next publisher, and the consumer only ever sees whole messages. */
static void test_killed_publisher_does_not_wedge(void **state)
{
    struct hs_pubsub *ps = make(state, 2, 8192, 200);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "k", 1, +1);
    alarm(20); /* a wedged lock fails the test instead of hanging it */
    for (int round = 0; round < 30; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (hs_pubsub_claim(ps, 2) != 0)
                _exit(2);
            char msg[200];
            memset(msg, 'k', sizeof msg);
            for (;;)
                hs_pubsub_publish(ps, "k", 1, msg, sizeof msg);
        }
        pause_us(200 + round * 37);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* The parent publishes after the killed one: it must get the lock. */
        struct hs_pubsub_msg m;
        while (hs_pubsub_next(ps, &m)) {
            assert_int_equal(m.len, 200);
            assert_int_equal(m.data[0], 'k');
            assert_int_equal(m.data[199], 'k');
        }
        assert_int_equal(publish(ps, "k", "after"), 1);
        expect_msg(ps, "k", "after", 1);
    }
    alarm(0);
}

/* A new consumer of a queue (a replaced worker's successor) takes it over: the old one stops
 * taking, what waited is dropped, and a dead owner is released by the master. */
static void test_takeover_and_release(void **state)
{
    struct hs_pubsub *ps = make(state, 1, 0, 64);
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "t", 1, +1);
    assert_int_equal(publish(ps, "t", "old"), 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(hs_pubsub_claim(ps, 1) == 0 ? 0 : 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    struct hs_pubsub_msg m;
    assert_int_equal(hs_pubsub_next(ps, &m), 0);
    /* The child claimed with an empty filter and then died: after the master's release,
     * publishers skip the queue (nothing queued, nothing dropped). */
    hs_pubsub_release(ps, 1, getpid()); /* not the owner: no effect */
    hs_pubsub_release(ps, 1, pid);
    assert_int_equal(publish(ps, "t", "x"), 0);
    /* Claiming again makes this process the consumer once more. */
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    hs_pubsub_interest(ps, "t", 1, +1);
    assert_int_equal(publish(ps, "t", "new"), 1);
    expect_msg(ps, "t", "new", 1);
}

/* The text handed to workers describes the region; a second handle on it (as a worker
 * would attach) sees what the first publishes. */
static void test_export_attach(void **state)
{
    struct hs_pubsub *ps = make(state, 2, 0, 64);
    char text[64];
    assert_int_equal(hs_pubsub_export(ps, text, sizeof text), 0);
    char tiny[3];
    assert_int_equal(hs_pubsub_export(ps, tiny, sizeof tiny), -ENOSPC);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hs_pubsub *w;
        if (hs_pubsub_attach(text, &w) != 0 || hs_pubsub_claim(w, 2) != 0)
            _exit(1);
        hs_pubsub_interest(w, "e", 1, +1);
        if (!readable(hs_pubsub_wake_fd(w), 10000))
            _exit(2);
        hs_pubsub_wake_reset(w);
        struct hs_pubsub_msg m;
        if (hs_pubsub_next(w, &m) != 1 || m.len != 2 || memcmp(m.data, "hi", 2) != 0)
            _exit(3);
        _exit(0);
    }
    assert_int_equal(hs_pubsub_claim(ps, 1), 0);
    /* Wait for the child's interest (its filter bit) before publishing. */
    int r = 0;
    for (int i = 0; i < 10000 && (r = publish(ps, "e", "hi")) == 0; i++)
        pause_us(1000);
    assert_int_equal(r, 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_round_trip_and_filter, teardown),
        cmocka_unit_test_teardown(test_limits, teardown),
        cmocka_unit_test_teardown(test_full_and_wrap, teardown),
        cmocka_unit_test_teardown(test_two_publishers_keep_order, teardown),
        cmocka_unit_test_teardown(test_killed_publisher_does_not_wedge, teardown),
        cmocka_unit_test_teardown(test_takeover_and_release, teardown),
        cmocka_unit_test_teardown(test_export_attach, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
