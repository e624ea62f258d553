/* The one invoke path (core/lua_task.c) on a real state: callbacks run in pooled coroutines
 * that are reused (a call that never waits creates no thread after the first), results come
 * back padded with nil, errors carry file:line and a traceback, the sandbox's time limit
 * applies to each call, and a raw coroutine.yield from a callback is a clear error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "tests/unit/lua_fixture.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* Invokes code (chunk "=probe") with one integer argument, nres results wanted; the error, if
 * any, in fx->err. */
static int invoke(struct lua_fx *fx, const char *code, lua_Integer arg, int nres)
{
    lua_State *L = hs_lua_state(fx->hl);
    fx->err[0] = '\0';
    if (luaL_loadbuffer(L, code, strlen(code), "=probe") != LUA_OK)
        fail_msg("does not compile: %s", lua_tostring(L, -1));
    lua_pushinteger(L, arg);
    struct hs__invoke iv = {.what = "probe", .err = fx->err, .errlen = sizeof fx->err};
    return hs__lua_invoke(fx->hl, &iv, 1, nres);
}

static void test_results_and_reuse(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    assert_int_equal(invoke(fx, "local n = ... return n * 2, 'x', 'y'", 21, 2), 0);
    assert_int_equal(lua_tointeger(L, -2), 42);
    assert_string_equal(lua_tostring(L, -1), "x");
    lua_pop(L, 2);
    /* Fewer results than wanted: padded with nil. */
    assert_int_equal(invoke(fx, "return", 0, 2), 0);
    assert_true(lua_isnil(L, -1) && lua_isnil(L, -2));
    lua_pop(L, 2);
    assert_int_equal(lua_gettop(L), top);
    /* Calls that never wait reuse one coroutine: the same thread runs each of them. */
    const char *same = "local t = coroutine.running() "
                       "if _G.seen and _G.seen ~= t then error('a new coroutine') end "
                       "_G.seen = t";
    for (int i = 0; i < 1000; i++)
        assert_int_equal(invoke(fx, same, i, 0), 0);
    assert_int_equal(fx->hl->nidle, 1);
    /* Each call runs in a coroutine, so a script sees one. */
    assert_int_equal(invoke(fx, "assert(coroutine.isyieldable())", 0, 0), 0);
}

/* A C function the probe calls: it invokes a second chunk, as conn:abort runs on_close. */
static int l_nest(lua_State *L)
{
    struct lua_fx *fx = lua_touserdata(L, lua_upvalueindex(1));
    lua_State *M = hs_lua_state(fx->hl);
    const char *inner = "return coroutine.running()";
    if (luaL_loadbuffer(M, inner, strlen(inner), "=inner") != LUA_OK)
        return luaL_error(L, "inner does not compile");
    struct hs__invoke iv = {.what = "inner"};
    if (hs__lua_invoke(fx->hl, &iv, 0, 1) != 0)
        return luaL_error(L, "inner failed");
    lua_xmove(M, L, 1);
    return 1;
}

/* A call nested in another takes a second coroutine; both go back to the pool. */
static void test_nested(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    lua_pushlightuserdata(L, fx);
    lua_pushcclosure(L, l_nest, 1);
    lua_setglobal(L, "nest");
    assert_int_equal(invoke(fx, "assert(nest() ~= coroutine.running())", 0, 0), 0);
    assert_int_equal(fx->hl->nidle, 2);
}

static void test_error_traceback(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    assert_int_equal(invoke(fx, "local function f()\n  error('boom')\nend\nf()\n", 0, 1),
                     HS_ESCRIPT);
    assert_int_equal(lua_gettop(L), top);
    assert_non_null(strstr(fx->err, "probe:2: boom"));
    assert_non_null(strstr(fx->err, "stack traceback"));
    assert_non_null(strstr(fx->err, "probe:4: in "));
    /* A failed coroutine is not reused; the next call works. */
    assert_int_equal(invoke(fx, "return 1", 0, 0), 0);
    /* Non-string error values. */
    assert_int_equal(invoke(fx, "error({})", 0, 0), HS_ESCRIPT);
    assert_non_null(strstr(fx->err, "(error object is a table value)"));
}

/* A coroutine.yield straight from a callback (not one of hotsock's waits) is an error with a
 * clear message, not a call left hanging. */
static void test_raw_yield(void **state)
{
    struct lua_fx *fx = *state;
    assert_int_equal(invoke(fx,
                            "local x <close> = setmetatable({}, {__close = function() "
                            "_G.closed = true end}) coroutine.yield(1)",
                            0, 0),
                     HS_ESCRIPT);
    assert_non_null(strstr(fx->err, "coroutine.yield() from a handler"));
    /* Its to-be-closed variables were closed. */
    assert_int_equal(invoke(fx, "assert(_G.closed)", 0, 0), 0);
    /* A coroutine of the script's own still yields as usual. */
    assert_int_equal(invoke(fx,
                            "local co = coroutine.wrap(function() coroutine.yield(7) end) "
                            "assert(co() == 7)",
                            0, 0),
                     0);
}

/* The sandbox's deadline applies to each call run in a coroutine, pcall or not. */
static void test_time_limit(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 50);
    assert_int_equal(invoke(fx, "while true do pcall(function() while true do end end) end", 0, 0),
                     HS_ESCRIPT);
    assert_non_null(strstr(fx->err, "time limit exceeded (50 ms)"));
    assert_int_equal(invoke(fx, "local n = 0 for i = 1, 1000 do n = n + i end", 0, 0), 0);
}

/* Something that is not a function fails like any error, its arguments popped. */
static void test_not_callable(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    lua_pushnil(L);
    lua_pushinteger(L, 1);
    struct hs__invoke iv = {.what = "nil", .err = fx->err, .errlen = sizeof fx->err};
    assert_int_equal(hs__lua_invoke(fx->hl, &iv, 1, 0), HS_ESCRIPT);
    assert_non_null(strstr(fx->err, "attempt to call a nil value"));
    assert_int_equal(lua_gettop(L), top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_and_reuse, lua_fx_setup, lua_fx_teardown),
        cmocka_unit_test_setup_teardown(test_nested, lua_fx_setup, lua_fx_teardown),
        cmocka_unit_test_setup_teardown(test_error_traceback, lua_fx_setup, lua_fx_teardown),
        cmocka_unit_test_setup_teardown(test_raw_yield, lua_fx_setup, lua_fx_teardown),
        cmocka_unit_test_setup_teardown(test_time_limit, lua_fx_setup, lua_fx_teardown),
        cmocka_unit_test_setup_teardown(test_not_callable, lua_fx_setup, lua_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
