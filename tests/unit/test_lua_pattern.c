/* The bounded pattern and table functions (core/lua_pattern.c, core/lua_sandbox.c) against
 * Lua's own: the same driver runs in a stock Lua state and in a hotsock state, over a table of
 * cases and a few thousand random patterns, and every result and error message must be the
 * same. Then the bounds: a backtracking pattern, a huge sort, a huge move and gsub output
 * all stop at the time limit or the size cap, naming the script's line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "tests/unit/test_clock_fds.h"
#include "tests/unit/lua_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <lualib.h>

/* Every call is recorded as one line: pcall's results through tostring. gmatch is run to
 * the end (at most 50 matches). */
static const char driver[] =
    "local out = {}\n"
    "local function rec(...)\n"
    "  local t = {}\n"
    "  for i = 1, select('#', ...) do t[i] = tostring((select(i, ...))) end\n"
    "  out[#out + 1] = table.concat(t, ',')\n"
    "end\n"
    "local function each(s, p, init, repl, n)\n"
    "  rec('find', s, p, init, pcall(string.find, s, p, init))\n"
    "  rec('plain', pcall(string.find, s, p, init, true))\n"
    "  rec('match', pcall(string.match, s, p, init))\n"
    "  rec('gsub', pcall(string.gsub, s, p, repl, n))\n"
    "  local ok, it = pcall(string.gmatch, s, p, init)\n"
    "  if ok then\n"
    "    local acc = {}\n"
    "    local ok2, e = pcall(function()\n"
    "      for a, b in it do\n"
    "        acc[#acc + 1] = tostring(a) .. '|' .. tostring(b)\n"
    "        if #acc > 50 then break end\n"
    "      end\n"
    "    end)\n"
    "    rec('gmatch', ok2, e, table.concat(acc, ';'))\n"
    "  else\n"
    "    rec('gmatch', ok, it)\n"
    "  end\n"
    "end\n"
    "local cases = {\n"
    "  {'hello world', 'o w'}, {'hello world', 'l+'}, {'hello', 'l*'}, {'hello', 'l-'},\n"
    "  {'hello', 'x?h'}, {'hello', '^h'}, {'hello', '^e'}, {'hello', 'o$'}, {'hel$lo', 'l$l'},\n"
    "  {'key = value', '(%w+)%s*=%s*(%w+)'}, {'abc', '()b()'}, {'abc', '()'}, {'', ''},\n"
    "  {'', '.-'}, {'abc', ''}, {'aaa', 'a-b'}, {'aaab', 'a-b'}, {'f(a(b)c)d', '%b()'},\n"
    "  {'THE (quick) fox', '%f[%a]%a+'}, {'THE (quick) fox', '%f[%l]%a+'},\n"
    "  {'hello hello', '(h%a+) %1'}, {'x = 1, y = 2', '(%w+) = (%d)', 1, '%2=%1'},\n"
    "  {'abc', '%w', 2, '%0%0'}, {'abc', '[a-b]', 1, {a = 'A'}}, {'abc', '.', 1, {a = 1}},\n"
    "  {'abc', '(.)', 1, function(c) if c == 'b' then return false end return c:upper() end},\n"
    "  {'a.b', '%.'}, {'a]b', '[]]'}, {'a]b', '[^]]+'}, {'a-b', '[a-]+'}, {'a^b', '[%^b]+'},\n"
    "  {'abc', '[', 1}, {'abc', '[a', 1}, {'abc', '%', 1}, {'abc', '(()', 1}, {'abc', ')', 1},\n"
    "  {'abc', '%1', 1}, {'abc', '(a)%2', 1}, {'abc', '%b', 1}, {'abc', '%f', 1},\n"
    "  {'abc', 'b', -1}, {'abc', 'b', -2}, {'abc', 'b', 10}, {'abc', 'b', 0}, {'abc', 'b', -10},\n"
    "  {'abc', 'b', 4}, {'abc', '', 4}, {'abc', '', 5}, {'abc', 'a', 1, '%'},\n"
    "  {'abc', 'a', 1, '%x'}, {'abc', 'a', 1, '%2'}, {'abc', 'b', 1, {}, 0},\n"
    "  {'a,b,,c', '[^,]*'}, {'one two  three', '%s*'}, {'\\0a\\0b', '%z'}, {'\\0a\\0b', '\\0'},\n"
    "  {'x\\0y', '[\\0]'}, {'caf\\195\\169', '[\\128-\\255]+'}, {'  trim  ', '^%s*(.-)%s*$'},\n"
    "  {'2024-01-02', '(%d+)-(%d+)-(%d+)'}, {'abc', '(a)(b)(c)', 1, '%3%2%1'},\n"
    "  {'aXb', '%u'}, {'aXb', '%U+'}, {'a\\tb', '%c'}, {'a1!', '%p'}, {'ff0z', '%x+'},\n"
    "  {'a b', '%S+'}, {'a_b', '%W'}, {'abc', '.-$'}, {'abc', 'a*?'}, {'(((x)))', '%b()'},\n"
    "}\n"
    "for _, c in ipairs(cases) do each(c[1], c[2], c[3], c[4] or '<%0>', c[5]) end\n"
    "local atoms = {'a', 'b', '.', '%a', '%d', '%s', '%w', '%p', '%A', '[ab]', '[^a]',\n"
    "  '[a-c]', '[%d_]', '()', '(', ')', '%1', '%b()', '%f[%w]', '^', '$', '*', '+', '-',\n"
    "  '?', 'x', '%%', '%.', '[]]', '[^]]', ' ', '(a*)', '(.-)'}\n"
    "local letters = 'ab (c)1_ .x%b'\n"
    "local state = 12345\n"
    "local function rnd(n)\n"
    "  state = (state * 1103515245 + 12345) % 2147483648\n"
    "  return state % n + 1\n"
    "end\n"
    "for _ = 1, 4000 do\n"
    "  local p = {}\n"
    "  for j = 1, rnd(6) do p[j] = atoms[rnd(#atoms)] end\n"
    "  local s = {}\n"
    "  for j = 1, rnd(14) - 1 do local k = rnd(#letters) s[j] = letters:sub(k, k) end\n"
    "  local reps = {'<%0>', '%1', '', 'z'}\n"
    "  each(table.concat(s), table.concat(p), rnd(5) - 2, reps[rnd(4)], rnd(4) - 1)\n"
    "end\n"
    "return table.concat(out, '\\n')\n";

/* Runs the driver in L; returns a malloc'd copy of its output, NULs (some subjects have
 * them) turned into '0' so that the texts compare whole. */
static char *run_driver(lua_State *L)
{
    if (luaL_loadbuffer(L, driver, sizeof driver - 1, "=driver") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK)
        fail_msg("driver failed: %s", lua_tostring(L, -1));
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] ? s[i] : '0';
    out[n] = '\0';
    lua_pop(L, 1);
    return out;
}

static void test_same_as_lua(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *stock = luaL_newstate();
    luaL_openlibs(stock);
    char *want = run_driver(stock);
    lua_close(stock);
    lua_State *L = hs_lua_state(fx->hl);
    char *got = run_driver(L);
    if (strcmp(want, got) != 0) {
        /* Say which line differs. */
        const char *a = want, *b = got;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++;
            b++;
        }
        while (a > want && a[-1] != '\n')
            a--;
        while (b > got && b[-1] != '\n')
            b--;
        fail_msg("line %d differs:\n  lua:     %.*s\n  hotsock: %.*s", line, (int)strcspn(a, "\n"),
                 a, (int)strcspn(b, "\n"), b);
    }
    if (strlen(want) < 200000)
        fail_msg("only %zu bytes of results", strlen(want));
    free(want);
    free(got);
}

/* Runs code as chunk "=probe" through hs__lua_pcall; the message in fx->err. */
static int run(struct lua_fx *fx, const char *code)
{
    lua_State *L = hs_lua_state(fx->hl);
    fx->err[0] = '\0';
    if (luaL_loadbuffer(L, code, strlen(code), "=probe") != LUA_OK)
        fail_msg("does not compile: %s", lua_tostring(L, -1));
    return hs__lua_pcall(L, 0, 0, fx->err, sizeof fx->err);
}

static void assert_err_contains(const struct lua_fx *fx, const char *what)
{
    if (strstr(fx->err, what) == NULL)
        fail_msg("error \"%.300s\" lacks \"%s\"", fx->err, what);
}

/* Each of these ran for seconds (or for ever) inside one C function, where the count hook
 * never fires; now each stops at the time limit with the caller's line. */
static void test_bounded_by_time(void **state)
{
    struct lua_fx *fx = *state;
    static const char *const bombs[] = {
        "local s = ('a'):rep(16)\nreturn string.find(s, ('a*'):rep(16) .. 'b')",
        "local s = ('a'):rep(20)\nreturn s:match(('(a-)'):rep(10) .. 'b')",
        "local s = ('a'):rep(24)\nreturn s:gsub(('a?'):rep(24) .. ('a'):rep(24) .. 'b', '')",
        "local s = ('a'):rep(22)\nfor w in s:gmatch(('a*'):rep(12) .. 'c') do end",
        "local s = ('a'):rep(1000000)\nreturn s:find(('a'):rep(100000) .. 'b', 1, true)",
        "local t = {}\nreturn table.move(t, 1, math.maxinteger - 1, 2)",
        "local t = {}\nfor i = 1, 3000000 do t[i] = -i end\ntable.sort(t)",
    };
    hs_lua_set_limits(fx->hl, 0, 100);
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        long long t0 = now_ms();
        if (run(fx, bombs[i]) != HS_ESCRIPT)
            fail_msg("bomb %zu was not stopped", i);
        long long took = now_ms() - t0;
        if (strstr(fx->err, "probe:2: time limit exceeded (100 ms)") == NULL &&
            strstr(fx->err, "probe:3: time limit exceeded (100 ms)") == NULL)
            fail_msg("bomb %zu: %.300s", i, fx->err);
        if (took > 3000) /* 100 ms plus a loaded machine; seconds to hours without the bound */
            fail_msg("bomb %zu took %lld ms", i, took);
    }
    /* The same functions on sane input are untouched. */
    (void)(run(fx, "assert(('a'):rep(16):find('a*b') == nil)\n"
                   "local t = {3, 1, 2} table.sort(t) assert(t[1] == 1 and t[3] == 3)\n"
                   "table.sort(t, function(a, b) return a > b end) assert(t[1] == 3)\n"
                   "assert(table.concat(table.move({1, 2, 3}, 1, 3, 2), ',') == "
                   "'1,1,2,3')"),
           0);
    if (fx->err[0])
        fail_msg("%s", fx->err);
}

/* Sizes: results past HS_LUA_MAX_STRING are refused before they are built. */
static void test_bounded_by_size(void **state)
{
    struct lua_fx *fx = *state;
    hs_lua_set_limits(fx->hl, 0, 0);
    assert_int_equal(run(fx, "local s = ('x'):rep(100, ('y'):rep(1024 * 1024))"), HS_ESCRIPT);
    assert_err_contains(fx, "probe:1: resulting string too large (over 64 MiB)");
    assert_int_equal(run(fx, "local s = ('x'):rep(1024 * 1024)\n"
                             "local t = {} for i = 1, 100 do t[i] = s end\n"
                             "return table.concat(t)"),
                     HS_ESCRIPT);
    assert_err_contains(fx, "probe:3: resulting string too large (over 64 MiB)");
    assert_int_equal(run(fx, "local s = ('x'):rep(1024 * 1024)\n"
                             "return s:gsub('x', ('y'):rep(100))"),
                     HS_ESCRIPT);
    assert_err_contains(fx, "probe:2: resulting string too large (over 64 MiB)");
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, lua_fx_setup, lua_fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_same_as_lua),
        FX_TEST(test_bounded_by_time),
        FX_TEST(test_bounded_by_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
