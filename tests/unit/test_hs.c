/* Error code tests: the core's own codes never equal a negated errno, so hs_strerror names
 * the error that happened (a failed connect with ENOENT once printed "need more input"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hs.h"

#include <errno.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const int own_codes[] = {HS_EPROTO,  HS_AGAIN, HS_ETOOBIG, HS_EBADSPEC,
                                HS_ECLOSED, HS_EFULL, HS_ESCRIPT};

/* Every errno a C library can hand us is below HS_ERRNO_MAX; every own code is beyond it. */
static void test_codes_are_disjoint_from_errno(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(own_codes); i++) {
        assert_true(own_codes[i] <= -HS_ERRNO_MAX);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(own_codes[i], own_codes[j]);
    }
    int errnos[] = {EPERM, ENOENT, EAGAIN, EPROTO, ECONNREFUSED, EADDRINUSE, ETIMEDOUT, EHWPOISON};
    for (size_t i = 0; i < N_ELEMS(errnos); i++)
        assert_true(errnos[i] > 0 && errnos[i] < HS_ERRNO_MAX);
}

/* A negated errno reads as the C library says; own codes read as their own text. */
static void test_strerror_names_the_right_error(void **state)
{
    (void)state;
    assert_string_equal(hs_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(hs_strerror(-EPERM), strerror(EPERM));
    assert_string_equal(hs_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    assert_string_equal(hs_strerror(HS_AGAIN), "need more input");
    assert_string_equal(hs_strerror(HS_EPROTO), "protocol error");
    assert_string_equal(hs_strerror(HS_EFULL), "output buffer full");
    assert_string_equal(hs_strerror(0), "success");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_disjoint_from_errno),
        cmocka_unit_test(test_strerror_names_the_right_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
