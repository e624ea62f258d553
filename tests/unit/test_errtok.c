/* The error-token table (core/errtok.c): one token per code, tokens a script can compare,
 * and a fallback that names the errno instead of the C library's words. The table against
 * the manual and the LuaCATS types is tests/integration/errtok_spec.lua. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/errtok.h"
#include "core/hs.h"
#include "core/shared.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <string.h>

/* Every code appears once, in one of the two spaces, and its token is short, lowercase and
 * plain (letters, spaces, a colon): text a script can write in a comparison. */
static void test_table_is_well_formed(void **state)
{
    (void)state;
    size_t n = 0;
    int code;
    const char *tok;
    while ((tok = hs_errtok_at(n, &code)) != NULL) {
        assert_true(code < 0);
        size_t len = strlen(tok);
        assert_true(len > 0 && len < HS_ERRTOK_MAX);
        for (size_t i = 0; i < len; i++)
            assert_true((tok[i] >= 'a' && tok[i] <= 'z') || tok[i] == ' ' || tok[i] == ':');
        assert_true(tok[0] != ' ' && tok[len - 1] != ' ');
        for (size_t j = 0; j < n; j++) {
            int other;
            hs_errtok_at(j, &other);
            assert_int_not_equal(code, other);
        }
        /* The lookup finds this very entry. */
        assert_ptr_equal(hs_errtok(code), tok);
        n++;
    }
    assert_true(n >= 30);
}

/* The tokens the manual promised before the table existed stay what they were; where two
 * mappers disagreed the documented word won. */
static void test_documented_tokens(void **state)
{
    (void)state;
    assert_string_equal(hs_errtok(HS_ECLOSED), "closed");
    assert_string_equal(hs_errtok(HS_EFULL), "output buffer full");
    assert_string_equal(hs_errtok(-ETIMEDOUT), "timeout");
    assert_string_equal(hs_errtok(-ECONNREFUSED), "connection refused");
    assert_string_equal(hs_errtok(HS_ENOHOST), "no such host");
    assert_string_equal(hs_errtok(HS_ELINE), "line too long");
    assert_string_equal(hs_errtok(HS_EFRAME), "frame too large");
    assert_string_equal(hs_errtok(HS_ENEGLEN), "negative length");
    /* Was "over the configured limit" from hs_strerror on some paths. */
    assert_string_equal(hs_errtok(HS_ETOOBIG), "body too large");
    /* Was "out of memory" from connect/udp/ws, "no memory" from the dictionaries. */
    assert_string_equal(hs_errtok(-ENOMEM), "no memory");
    /* Was "no such file" from connect/udp, "not found" from send_file and dictionaries. */
    assert_string_equal(hs_errtok(-ENOENT), "not found");
    assert_string_equal(hs_errtok(-EACCES), "permission denied");
    assert_string_equal(hs_errtok(-EPERM), "permission denied");
    assert_string_equal(hs_errtok(-E2BIG), "too large");
    /* Was strerror's "No space left on device" from file:write. */
    assert_string_equal(hs_errtok(-ENOSPC), "disk full");
    assert_string_equal(hs_errtok(HS_EQUEUE), "queue full");
    assert_string_equal(hs_errtok(HS_SHARED_ENOTNUM), "not a number");
    assert_string_equal(hs_errtok(HS_SHARED_ENOTLIST), "not a list");
    assert_string_equal(hs_errtok(HS_SHARED_ECHANGED), "changed");
}

/* The module codes must not collide with the core's: the shared dictionary's once equalled
 * HS_EPROTO and HS_AGAIN, so one table could not have told them apart. */
static void test_module_codes_are_distinct(void **state)
{
    (void)state;
    const int codes[] = {HS_EPROTO,          HS_AGAIN,          HS_ETOOBIG,
                         HS_EBADSPEC,        HS_ECLOSED,        HS_EFULL,
                         HS_ESCRIPT,         HS_ENOHOST,        HS_SHARED_ENOTLIST,
                         HS_SHARED_ECHANGED, HS_SHARED_EISLIST, HS_SHARED_ENOTNUM};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= -HS_ERRNO_MAX);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

/* A code the table lacks gets a fixed text with the number, never strerror's words. */
static void test_fallback_names_the_errno(void **state)
{
    (void)state;
    char buf[HS_ERRTOK_MAX];
    assert_null(hs_errtok(-EPROTO));
    assert_string_equal(hs_errtok_text(-EPROTO, buf, sizeof buf), "system error (errno 71)");
    assert_string_equal(hs_errtok_text(-EIO, buf, sizeof buf), "system error (errno 5)");
    assert_string_equal(hs_errtok_text(-4999, buf, sizeof buf), "internal error (code -4999)");
    assert_string_equal(hs_errtok_text(HS_AGAIN, buf, sizeof buf), "internal error (code -4102)");
    /* A known code comes back as the table's own static string, buf untouched. */
    buf[0] = '\0';
    assert_ptr_equal(hs_errtok_text(HS_ECLOSED, buf, sizeof buf), hs_errtok(HS_ECLOSED));
    assert_string_equal(buf, "");
    /* The longest fallback fits the documented size. */
    assert_true(strlen(hs_errtok_text(-HS_ERRNO_MAX + 1, buf, sizeof buf)) < HS_ERRTOK_MAX);
    assert_true(strlen(hs_errtok_text(-2147483647 - 1, buf, sizeof buf)) < HS_ERRTOK_MAX);
}

/* What a script receives: nil and the token, two values. */
static void test_lua_fail_pushes_nil_and_token(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    assert_int_equal(hs__lua_fail(L, HS_ECLOSED), 2);
    assert_int_equal(lua_gettop(L), 2);
    assert_true(lua_isnil(L, 1));
    assert_string_equal(lua_tostring(L, 2), "closed");
    lua_settop(L, 0);
    assert_int_equal(hs__lua_fail(L, -EIO), 2);
    assert_string_equal(lua_tostring(L, 2), "system error (errno 5)");
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_well_formed),
        cmocka_unit_test(test_documented_tokens),
        cmocka_unit_test(test_module_codes_are_distinct),
        cmocka_unit_test(test_fallback_names_the_errno),
        cmocka_unit_test(test_lua_fail_pushes_nil_and_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
