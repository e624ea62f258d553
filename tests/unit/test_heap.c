/* The heap's thresholds (core/heap.c): memory the collector frees in a batch serves the next
 * large reads without being given back to the kernel and faulted in again. Each case runs in a
 * child of its own, as mallopt's settings are the process's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/heap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

/* Under the sanitizers or valgrind, malloc is theirs: mallopt does nothing there, and freed
 * memory is held in a quarantine. What is tested here is glibc's heap. */
static int glibc_heap(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 0;
#elif defined(RUNNING_ON_VALGRIND)
    return !RUNNING_ON_VALGRIND;
#else
    return 1;
#endif
}

#define BLOCK (64 * 1024 + 40) /* a 64 KiB read's string: the read and Lua's header */
#define KEPT 32                /* 2 MiB of them alive at once */
#define AGAIN 16               /* then 1 MiB more: 256 pages */

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* In a child (tuned first when asked): KEPT blocks written, all freed, then AGAIN blocks
 * written. Returns the page faults the AGAIN blocks took. */
static long faults_after_batch_free(int tune)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (tune)
            hs_heap_tune();
        static char *blocks[KEPT];
        for (int i = 0; i < KEPT; i++) {
            blocks[i] = malloc(BLOCK);
            memset(blocks[i], 'x', BLOCK);
        }
        for (int i = 0; i < KEPT; i++)
            free(blocks[i]);
        long before = minflt();
        for (int i = 0; i < AGAIN; i++) {
            blocks[i] = malloc(BLOCK);
            memset(blocks[i], 'y', BLOCK);
        }
        long faults = minflt() - before;
        _exit(write(fds[1], &faults, sizeof faults) == sizeof faults ? 0 : 1);
    }
    close(fds[1]);
    long faults = -1;
    assert_int_equal(read(fds[0], &faults, sizeof faults), sizeof faults);
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return faults;
}

/* Whether glibc's defaults are seen here giving a freed batch back: the page faults of the
 * blocks after it. Not with transparent huge pages backing the heap (a fault per 2 MiB), nor
 * under the sanitizers or valgrind; the tests below have nothing to show there. */
static int trim_visible(void)
{
    if (!glibc_heap())
        return 0;
    long untuned = faults_after_batch_free(0);
    if (untuned < 128) {
        print_message("glibc's trim does not show in page faults here (%ld for 1 MiB)\n", untuned);
        return 0;
    }
    return 1;
}

static void test_freed_batch_is_reused_without_faults(void **state)
{
    (void)state;
    if (!trim_visible())
        skip();
    long tuned = faults_after_batch_free(1);
    if (tuned >= 32)
        fail_msg("%ld page faults for 1 MiB after 2 MiB was freed", tuned);
}

/* The environment's choice wins: with both thresholds named there, nothing is set, and the
 * freed memory goes back as with glibc's defaults. */
static void test_environment_wins(void **state)
{
    (void)state;
    if (!trim_visible())
        skip();
    setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072", 1);
    setenv("MALLOC_TRIM_THRESHOLD_", "131072", 1);
    long tuned = faults_after_batch_free(1);
    unsetenv("GLIBC_TUNABLES");
    unsetenv("MALLOC_TRIM_THRESHOLD_");
    assert_true(tuned >= 128);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freed_batch_is_reused_without_faults),
        cmocka_unit_test(test_environment_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
