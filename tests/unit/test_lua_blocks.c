/* The Lua allocator's kept small blocks (core/lua_blocks.h, hs__lua_alloc): a class holds any
 * request of it; a freed small block serves the next request of its class, counted in
 * mem_used again; large blocks and blocks past the cap go back to free(); a kept block is no
 * memory of Lua's (the Asan build poisons it); and a whole state runs on them and closes with
 * nothing leaked (the valgrind run of this test). */
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

#if defined(HS_ASAN) /* core/lua_blocks.h */
#include <sanitizer/asan_interface.h>
#endif

static void *alloc(struct hs_lua *hl, size_t n)
{
    void *p = hs__lua_alloc(hl, NULL, LUA_TSTRING, n);
    assert_non_null(p);
    memset(p, 'x', n); /* all of it is Lua's to write (the checkers would say otherwise) */
    return p;
}

static void release(struct hs_lua *hl, void *p, size_t n)
{
    assert_null(hs__lua_alloc(hl, p, n, 0));
}

static void test_a_class_holds_each_of_its_requests(void **state)
{
    (void)state;
    for (size_t n = 1; n <= HS_LUA_BLOCK_SMALL; n++) {
        unsigned k = hs__block_class(n);
        assert_true(k > 0 && k < HS_LUA_BLOCK_CLASSES);
        assert_true(hs__block_size(k) >= n);
        assert_true(hs__block_size(k) < n + 16); /* no more than malloc's own rounding */
    }
    assert_int_equal(hs__block_class(HS_LUA_BLOCK_SMALL), HS_LUA_BLOCK_CLASSES - 1);
}

static void test_a_freed_block_serves_the_next_request_of_its_class(void **state)
{
    (void)state;
    struct hs_lua *hl = calloc(1, sizeof *hl);
    assert_non_null(hl);
    void *p = alloc(hl, 89); /* a 64 B message's string: 24 B of header, the bytes, a NUL */
    assert_int_equal(hl->mem_used, 89);
    release(hl, p, 89);
    assert_int_equal(hl->mem_used, 0);
    assert_int_equal(hl->blocks.bytes, (size_t)hs__block_class(89) << 4);
    void *q = alloc(hl, 96); /* same class */
    assert_ptr_equal(q, p);
    assert_int_equal(hl->mem_used, 96);
    assert_int_equal(hl->blocks.bytes, 0);
    void *r = alloc(hl, 97); /* the next class: a new block */
    assert_ptr_not_equal(r, p);
    /* Grown and shrunk in place of Lua's realloc: still a block of the right class. */
    r = hs__lua_alloc(hl, r, 97, 300);
    assert_non_null(r);
    memset(r, 'y', 300);
    assert_int_equal(hl->mem_used, 96 + 300);
    r = hs__lua_alloc(hl, r, 300, 20);
    assert_non_null(r);
    release(hl, r, 20);
    release(hl, q, 96);
    assert_int_equal(hl->mem_used, 0);
    hs__blocks_free(&hl->blocks);
    assert_int_equal(hl->blocks.bytes, 0);
    free(hl);
}

static void test_large_blocks_and_blocks_past_the_cap_are_freed(void **state)
{
    (void)state;
    struct hs_lua *hl = calloc(1, sizeof *hl);
    assert_non_null(hl);
    release(hl, alloc(hl, HS_LUA_BLOCK_SMALL + 1), HS_LUA_BLOCK_SMALL + 1);
    assert_int_equal(hl->blocks.bytes, 0);

    size_t n = 200, each = (size_t)hs__block_class(n) << 4;
    size_t count = HS_LUA_BLOCKS_MAX / each + 10;
    void **v = calloc(count, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < count; i++)
        v[i] = alloc(hl, n);
    for (size_t i = 0; i < count; i++)
        release(hl, v[i], n);
    assert_int_equal(hl->blocks.bytes, (HS_LUA_BLOCKS_MAX / each) * each);
    assert_int_equal(hl->mem_used, 0);
    free(v);
    hs__blocks_free(&hl->blocks); /* valgrind: the ones kept are freed, the others were */
    assert_null(hl->blocks.free[hs__block_class(n)]);
    free(hl);
}

static void test_a_kept_block_is_not_lua_memory(void **state)
{
    (void)state;
#if defined(HS_ASAN)
    struct hs_lua *hl = calloc(1, sizeof *hl);
    assert_non_null(hl);
    char *p = alloc(hl, 40);
    assert_true(__asan_address_is_poisoned(p + 40)); /* the class's rounding */
    release(hl, p, 40);
    assert_false(__asan_address_is_poisoned(p));    /* the link, for LeakSanitizer to follow */
    assert_true(__asan_address_is_poisoned(p + 8)); /* kept: a use after free is reported */
    char *q = alloc(hl, 33);
    assert_ptr_equal(q, p);
    assert_false(__asan_address_is_poisoned(q + 32));
    assert_true(__asan_address_is_poisoned(q + 33));
    release(hl, q, 33);
    hs__blocks_free(&hl->blocks);
    free(hl);
#else
    skip();
#endif
}

/* A whole state on the kept blocks: strings made and dropped across many collections, then
 * closed (valgrind: every kept block freed, nothing read that Lua had not written). */
static void test_a_state_runs_and_closes_on_them(void **state)
{
    (void)state;
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    assert_int_equal(lua_fx_open(&base, &set, &hl), 0);
    lua_State *L = hs_lua_state(hl);
    const char *code = "local t, n = {}, 0\n"
                       "for i = 1, 20000 do\n"
                       "  local s = ('%d:'):format(i) .. ('x'):rep(i % 300)\n"
                       "  t[i % 64] = { s, #s }\n"
                       "  n = n + #t[i % 64][1]\n"
                       "end\n"
                       "collectgarbage()\n"
                       "return n";
    assert_int_equal(luaL_loadstring(L, code), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 1, 0), LUA_OK);
    assert_int_equal(lua_tointeger(L, -1), 3089094);
    lua_pop(L, 1);
    assert_true(hl->blocks.bytes > 0);
    lua_fx_close(base, set, hl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_class_holds_each_of_its_requests),
        cmocka_unit_test(test_a_freed_block_serves_the_next_request_of_its_class),
        cmocka_unit_test(test_large_blocks_and_blocks_past_the_cap_are_freed),
        cmocka_unit_test(test_a_kept_block_is_not_lua_memory),
        cmocka_unit_test(test_a_state_runs_and_closes_on_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
