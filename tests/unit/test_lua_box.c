/* Boxes (core/lua_box.c) on a real state: a box is made in a harmless state and found again by
 * its kind only; a method given anything else (another kind, a table wearing the kind's
 * metatable, a number) raises an error naming the method and the kind expected; a box whose C
 * object was freed answers nil, "closed" from its I/O methods and keeps answering its queries;
 * and every thread of the state finds the context in its extra space. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/addr.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_box.h"
#include "core/lua_internal.h"
#include "core/udp.h"
#include "tests/unit/lua_fixture.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* A Lua-callable probe standing for a conn method: checks its argument 1 as a conn. */
static int l_probe_conn_send(lua_State *L)
{
    hs__box_check(L, 1, HS__BOX_CONN, "conn:send");
    lua_pushboolean(L, 1);
    return 1;
}

/* Calls the probe on the value on top of the stack (popped) under pcall; returns the error
 * message, or NULL when it passed. The text stays valid until the next call. */
static const char *probe(lua_State *L)
{
    static char msg[256];
    lua_pushcfunction(L, l_probe_conn_send);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_pop(L, 1);
        return NULL;
    }
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
}

/* Runs code (a chunk that returns one value) and leaves its result as a string in out. */
static void eval(lua_State *L, const char *code, char *out, size_t n)
{
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        fail_msg("%s: %s", code, lua_tostring(L, -1));
    snprintf(out, n, "%s", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
}

static void test_new_is_harmless_and_found_by_kind(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    struct hs__box *b = hs__box_new(L, HS__BOX_TIMER, 128, 0);
    assert_non_null(b);
    assert_true(hs__box_gone(b)); /* zeroed: nothing to free if an error came now */
    int obj;
    b->obj = &obj;
    assert_false(hs__box_gone(b));
    assert_ptr_equal(hs__box_test(L, -1, HS__BOX_TIMER), b);
    assert_ptr_equal(hs__box_check(L, -1, HS__BOX_TIMER, "timer:cancel"), b);
    assert_null(hs__box_test(L, -1, HS__BOX_CONN));
    assert_null(hs__box_test(L, -1, HS__BOX_FILE));
    hs__box_invalidate(b);
    assert_true(hs__box_gone(b));
    /* Still the same kind: a box outliving its object stays checkable. */
    assert_ptr_equal(hs__box_test(L, -1, HS__BOX_TIMER), b);
    lua_settop(L, top);
}

static void test_check_wrong_kind_raises(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);

    hs__box_new(L, HS__BOX_FILE, sizeof(struct hs__box), 0);
    assert_string_equal(probe(L),
                        "bad argument #1 to 'conn:send' (hotsock.conn expected, got hotsock.file)");
    lua_pushinteger(L, 42);
    assert_string_equal(probe(L),
                        "bad argument #1 to 'conn:send' (hotsock.conn expected, got number)");
    lua_pushnil(L);
    assert_string_equal(probe(L),
                        "bad argument #1 to 'conn:send' (hotsock.conn expected, got nil)");
    /* A table wearing the conn metatable is not a conn (it has no box memory to read). */
    lua_newtable(L);
    luaL_setmetatable(L, "hotsock.conn");
    assert_string_equal(probe(L),
                        "bad argument #1 to 'conn:send' (hotsock.conn expected, got hotsock.conn)");
    /* Nor is it a conn to the finalizer: collecting it must not read a box (it crashed). */
    lua_newtable(L);
    luaL_setmetatable(L, "hotsock.conn");
    assert_null(hs__box_test(L, -1, HS__BOX_CONN));
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    /* The right kind passes. */
    hs__box_new(L, HS__BOX_CONN, sizeof(struct hs__conn_box), 2);
    assert_null(probe(L));

    /* The real methods raise the same way: a udp socket's method on a file. */
    char out[256];
    eval(L,
         "local f = hotsock.create_file('/tmp', 'hs-box-test')\n"
         "local ok, err = pcall(getmetatable(f).__index.write, {}, 'x')\n"
         "f:abort()\n"
         "return err",
         out, sizeof out);
    assert_non_null(
        strstr(out, "bad argument #1 to 'file:write' (hotsock.file expected, got table)"));
    lua_settop(L, top);
}

static void datagram_ignored(struct hs_udp *u, const char *data, size_t len, const char *peer,
                             void *arg)
{
    HS_UNUSED(u);
    HS_UNUSED(data);
    HS_UNUSED(len);
    HS_UNUSED(peer);
    HS_UNUSED(arg);
}

/* The use-after-free of issue 12: old code kept a UDP listener's box, the socket was freed,
 * the box must answer nil, "closed" and still know its url. */
static void test_invalidated_box_answers_closed(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    struct hs_addr a;
    struct hs_udp *u;
    assert_int_equal(hs_addr_parse("udp://127.0.0.1:0", &a, NULL), 0);
    assert_int_equal(hs_udp_new(fx->base, &a, "test", datagram_ignored, NULL, &u), 0);
    hs__udp_box_push(fx->hl, L, u);
    lua_setglobal(L, "sock");
    char out[256], url[128];
    eval(L, "return sock:url()", url, sizeof url);
    assert_non_null(strstr(url, "udp://127.0.0.1:"));
    eval(L, "return tostring(sock)", out, sizeof out);
    assert_null(strstr(out, "closed"));

    hs_udp_free(u); /* C frees the socket: the box is told */
    eval(L, "local ok, err = sock:send_to('127.0.0.1:9', 'x') return tostring(ok) .. ' ' .. err",
         out, sizeof out);
    assert_string_equal(out, "nil closed");
    eval(L, "return sock:url()", out, sizeof out);
    assert_string_equal(out, url);
    eval(L, "return tostring(sock)", out, sizeof out);
    assert_non_null(strstr(out, "(closed)"));
    /* Misuse still raises on a gone box's kind. */
    eval(L, "return select(2, pcall(sock.send_to, sock, {}, 'x'))", out, sizeof out);
    assert_non_null(strstr(out, "bad argument #2"));
    lua_pushnil(L);
    lua_setglobal(L, "sock");
    lua_settop(L, top);
}

static void test_context_from_every_thread(void **state)
{
    struct lua_fx *fx = *state;
    lua_State *L = hs_lua_state(fx->hl);
    assert_ptr_equal(hs__lua_from_state(L), fx->hl);
    lua_State *T = lua_newthread(L);
    assert_ptr_equal(hs__lua_from_state(T), fx->hl);
    lua_State *T2 = lua_newthread(T);
    assert_ptr_equal(hs__lua_from_state(T2), fx->hl);
    lua_pop(T, 1);
    lua_pop(L, 1);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, lua_fx_setup, lua_fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_new_is_harmless_and_found_by_kind),
        FX_TEST(test_check_wrong_kind_raises),
        FX_TEST(test_invalidated_box_answers_closed),
        FX_TEST(test_context_from_every_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
