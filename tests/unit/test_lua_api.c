/* The Lua sandbox on a real state: the time limit interrupts endless loops (also ones that
 * hide in pcall or a coroutine) with an error naming file:line, the memory limit stops a
 * memory bomb and a single huge allocation, garbage alone never trips it, and the state is
 * usable after each. Scripts run through hs__lua_pcall, the helper every callback uses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "tests/unit/test_clock_fds.h"
#include "tests/unit/lua_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define MIB (1024 * 1024)

/* Runs code as chunk "=probe" (so errors read "probe:LINE:"); returns hs__lua_pcall's
 * result, the message in fx->err. */
static int run(struct lua_fx *fx, const char *code)
{
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    fx->err[0] = '\0';
    if (luaL_loadbuffer(L, code, strlen(code), "=probe") != LUA_OK)
        fail_msg("does not compile: %s", lua_tostring(L, -1));
    int r = hs__lua_pcall(L, 0, 0, fx->err, sizeof fx->err);
    assert_int_equal(lua_gettop(L), top);
    return r;
}

static void assert_err_contains(const struct lua_fx *fx, const char *what)
{
    if (strstr(fx->err, what) == NULL)
        fail_msg("error \"%.300s\" lacks \"%s\"", fx->err, what);
}

static void test_time_limit_loop(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 100);
    long long t0 = now_ms();
    assert_int_equal(run(fx, "local n = 0\nwhile true do\n  n = n + 1\nend\n"), HS_ESCRIPT);
    long long took = now_ms() - t0;
    assert_true(took >= 95 && took < 10000); /* stops: how soon depends on the machine's load */
    assert_err_contains(fx, "probe:3: time limit exceeded (100 ms)");
    assert_err_contains(fx, "stack traceback");
    /* The next call gets a fresh deadline. */
    assert_int_equal(run(fx, "local n = 0 for i = 1, 1000 do n = n + i end"), 0);
}

/* A script that catches the error with pcall (or xpcall with a Lua handler) is still stopped
 * promptly: past the deadline every instruction raises again. */
static void test_time_limit_pcall_loop(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 100);
    long long t0 = now_ms();
    assert_int_equal(run(fx,
                         "while true do\n"
                         "  pcall(function() while true do end end)\n"
                         "  xpcall(function() while true do end end, function(e) return e end)\n"
                         "end\n"),
                     HS_ESCRIPT);
    assert_true(now_ms() - t0 < 10000);
    assert_err_contains(fx, "time limit exceeded");
    assert_int_equal(run(fx, "local s = 0 for i = 1, 1000 do s = s + i end"), 0);
}

/* Coroutines inherit the hook, also ones created before the limit was set. */
static void test_time_limit_coroutine(void **state)
{
    struct lua_fx *fx = *state;
    assert_int_equal(run(fx, "spin = coroutine.wrap(function() while true do end end)"), 0);
    hs_lua_set_limits(fx->hl, 0, 100);
    assert_int_equal(run(fx, "local co = coroutine.wrap(function()\n  while true do end\nend)\n"
                             "co()\n"),
                     HS_ESCRIPT);
    assert_err_contains(fx, "probe:2: time limit exceeded");
    assert_int_equal(run(fx, "spin()"), HS_ESCRIPT);
    assert_err_contains(fx, "time limit exceeded");
}

/* Work that fits is untouched, call after call: five calls of 100 ms (wall clock, as the
 * limit is) pass a 300 ms limit that their sum would break. */
static void test_time_limit_is_per_call(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 300);
    for (int i = 0; i < 5; i++) {
        long long t0 = now_ms();
        assert_int_equal(run(fx, "local mono = require('hotsock').monotonic\n"
                                 "local t0 = mono() while mono() - t0 < 0.1 do end"),
                         0);
        assert_true(now_ms() - t0 >= 90);
    }
}

static void test_memory_bomb(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 32 * MIB, 0);
    assert_int_equal(run(fx, "hoard = {}\nwhile true do\n"
                             "  hoard[#hoard + 1] = ('x'):rep(1024 * 1024) .. #hoard\nend\n"),
                     HS_ESCRIPT);
    /* Either the hook's clean error or the allocator's refusal past twice the limit,
     * whichever the loop meets first; both name the limit. */
    if (strstr(fx->err, "memory limit exceeded (32 MiB)") == NULL)
        assert_err_contains(fx, "not enough memory (the Lua memory limit is 32 MiB)");
    /* Held globally the memory stays, and further calls that allocate fail too... */
    assert_int_equal(run(fx, "local t = {} for i = 1, 100 do t[i] = ('y'):rep(65536) .. i end"),
                     HS_ESCRIPT);
    /* ...until the script lets go of it. */
    assert_int_equal(run(fx, "hoard = nil collectgarbage()"), 0);
    assert_true(hs_lua_memory(fx->hl) < 4 * MIB);
    assert_int_equal(run(fx, "local t = {} for i = 1, 100 do t[i] = ('y'):rep(65536) .. i end"), 0);
}

/* A bomb held in a local is garbage once its call fails: it is collected before the next
 * call, which would otherwise meet the hard limit at its first allocation (a bug found by
 * tests/integration/hostile_spec.lua). */
static void test_memory_bomb_garbage_freed(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 32 * MIB, 0);
    assert_int_equal(run(fx, "local t = {}\nwhile true do\n"
                             "  t[#t + 1] = ('x'):rep(1024 * 1024) .. #t\nend\n"),
                     HS_ESCRIPT);
    assert_true(hs_lua_memory(fx->hl) < 32 * MIB);
    assert_int_equal(run(fx, "local t = {} for i = 1, 100 do t[i] = ('y'):rep(65536) .. i end"), 0);
}

/* One allocation far past the limit is refused at once. */
static void test_memory_single_huge(void **state)
{
    struct lua_fx *fx = *state;
    /* Under the string cap (HS_LUA_MAX_STRING) but past twice the limit. */
    hs_lua_set_limits(fx->hl, 16 * MIB, 0);
    assert_int_equal(run(fx, "local s = ('x'):rep(60 * 1024 * 1024)"), HS_ESCRIPT);
    assert_err_contains(fx, "not enough memory (the Lua memory limit is 16 MiB)");
    assert_int_equal(run(fx, "local s = ('x'):rep(1024)"), 0);
    /* Past the cap, string.rep refuses before allocating, limit or not. */
    hs_lua_set_limits(fx->hl, 0, 0);
    assert_int_equal(run(fx, "local s = ('x'):rep(1024 * 1024 * 1024)"), HS_ESCRIPT);
    assert_err_contains(fx, "probe:1: resulting string too large (over 64 MiB)");
}

/* Garbage is not usage: 256 MiB of short-lived strings pass a 32 MiB limit. */
static void test_memory_garbage_ok(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 32 * MIB, 0);
    assert_int_equal(run(fx, "for i = 1, 256 do local s = ('z'):rep(1024 * 1024) .. i end"), 0);
}

/* The collector's ballast (lua_limits.c: 1 MiB that Lua counts as live, so that a small heap
 * waits for about that much allocation between two cycles) is in no figure hotsock shows and
 * not under the memory limit: a fresh state is tens of KiB, to C and to the script, and a
 * 2 MiB limit lets a script keep 1.5 MiB. */
static void test_memory_leaves_out_ballast(void **state)
{
    struct lua_fx *fx = *state;
    assert_true(hs_lua_memory(fx->hl) < 512 * 1024);
    assert_int_equal(run(fx, "assert(collectgarbage('count') < 512)"), 0);
    hs_lua_set_limits(fx->hl, 2 * MIB, 0);
    assert_int_equal(run(fx, "kept = {} for i = 1, 24 do kept[i] = ('k'):rep(65536 - 64) .. i end"),
                     0);
    assert_true(hs_lua_memory(fx->hl) >= 24 * 65536 - 24 * 64);
}

/* Without limits the state behaves as before (no hook, nothing refused). */
static void test_no_limits(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 0);
    assert_int_equal(run(fx, "local s = ('x'):rep(64 * 1024 * 1024) local n = 0 "
                             "for i = 1, 1e6 do n = n + 1 end"),
                     0);
    assert_true(hs_lua_memory(fx->hl) > 0);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, lua_fx_setup, lua_fx_teardown)

int main(void)
{
    hs_log_set_level(HS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        FX_TEST(test_time_limit_loop),
        FX_TEST(test_time_limit_pcall_loop),
        FX_TEST(test_time_limit_coroutine),
        FX_TEST(test_time_limit_is_per_call),
        FX_TEST(test_memory_bomb),
        FX_TEST(test_memory_single_huge),
        FX_TEST(test_memory_garbage_ok),
        FX_TEST(test_memory_leaves_out_ballast),
        FX_TEST(test_no_limits),
        FX_TEST(test_memory_bomb_garbage_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
