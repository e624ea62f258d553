/* The monotonic clock (core/clock.c) and the rate limit of repeated warnings (hs_log_due,
 * core/log.c) built on it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"

#include <time.h>

static void test_mono_follows_clock_monotonic(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double before = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    double a = hs_clock_mono(), b = hs_clock_mono();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double after = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    assert_true(before <= a && a <= b && b <= after);
}

static void test_log_due_once_per_interval(void **state)
{
    (void)state;
    double last = 0;
    assert_int_equal(hs_log_due(&last, 3600), 1); /* none before: due */
    assert_true(last > 0);
    double first = last;
    assert_int_equal(hs_log_due(&last, 3600), 0); /* within the hour: not due, not moved */
    assert_true(last == first);
    assert_int_equal(hs_log_due(&last, 0), 1); /* no interval: always due */
    assert_true(last >= first);
    last -= 7200; /* the previous line two hours back */
    assert_int_equal(hs_log_due(&last, 3600), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_follows_clock_monotonic),
        cmocka_unit_test(test_log_due_once_per_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
