/* hs_core_distance: how far apart two cores are, as the round trip of one cache line between
 * them, in nanoseconds.
 *
 * Why: on a virtual machine the host decides where the guest's cores run, and it moves them.
 * bench/run.lua pins the server to core 0 and the client to core 1; when the host has those two
 * vCPUs close together (one core complex sharing a cache) a cache line goes there and back in
 * 50-110 ns on the bench machine, when it has them apart in 330-410 ns. Loopback traffic is
 * copied between the two cores, so every echo server, the C ceiling included, runs about twice
 * as fast in the first placement as in the second, for as long as the host leaves it
 * (bench/results/placement.md). The driver asks this tool before and after each measured run
 * and does not compare a run made in one placement with a run made in the other.
 *
 * Two threads, pinned to the two cores, take turns writing one counter: each waits to see the
 * other's value, then writes the next. A batch of ROUNDS turns there and back, timed; the
 * median of BATCHES batches is printed, so one preemption does not move the answer. It takes a
 * few milliseconds.
 *
 * Usage: hs_core_distance [--cores A,B] [--count N] [--every MS]
 * Prints one integer (ns) per measurement: N of them (default 1), MS milliseconds apart
 * (default 1000), between cores A and B (default 0,1). Output is flushed after each line, so a
 * watcher killed mid-run has written everything it measured. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 2000 /* round trips per batch */
#define BATCHES 7   /* batches; the median is printed */

static _Alignas(64) atomic_long turn;
static int core_b = 1;

static cpu_set_t one_core(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    return set;
}

/* The far side: answers every odd value with the next even one. */
static void *answer(void *arg)
{
    (void)arg;
    for (long i = 0; i < (long)ROUNDS * BATCHES; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One measurement: the median round trip of BATCHES batches, in ns; -1 if a core is not ours. */
static double measure(int core_a)
{
    cpu_set_t on_a = one_core(core_a), on_b = one_core(core_b);
    if (pthread_setaffinity_np(pthread_self(), sizeof on_a, &on_a) != 0)
        return -1;
    /* The thread starts on its core or not at all. */
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof on_b, &on_b);
    atomic_store(&turn, 0);
    int failed = pthread_create(&t, &attr, answer, NULL);
    pthread_attr_destroy(&attr);
    if (failed)
        return -1;
    double batch[BATCHES];
    long i = 0;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        for (int r = 0; r < ROUNDS; r++, i++) {
            atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2)
                ;
        }
        batch[b] = (now_ns() - t0) / ROUNDS;
    }
    pthread_join(t, NULL);
    qsort(batch, BATCHES, sizeof batch[0], by_value);
    return batch[BATCHES / 2];
}

int main(int argc, char **argv)
{
    int core_a = 0, count = 1, every_ms = 1000;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = v != NULL &&
                 ((strcmp(argv[i], "--cores") == 0 && sscanf(v, "%d,%d", &core_a, &core_b) == 2) ||
                  (strcmp(argv[i], "--count") == 0 && (count = atoi(v)) > 0) ||
                  (strcmp(argv[i], "--every") == 0 && (every_ms = atoi(v)) > 0));
        if (!ok) {
            fprintf(stderr, "usage: hs_core_distance [--cores A,B] [--count N] [--every MS]\n");
            return 2;
        }
    }
    for (int n = 0; n < count; n++) {
        if (n > 0) {
            struct timespec gap = {every_ms / 1000, (long)(every_ms % 1000) * 1000000L};
            nanosleep(&gap, NULL);
        }
        double ns = measure(core_a);
        if (ns < 0) {
            fprintf(stderr, "hs_core_distance: cannot run on cores %d and %d\n", core_a, core_b);
            return 1;
        }
        printf("%.0f\n", ns);
        fflush(stdout);
    }
    return 0;
}
