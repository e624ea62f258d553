/* Lua timers: hotsock.after(s, fn) and hotsock.every(s, fn) return a timer userdata with
 * cancel(). Each pending timer keeps its userdata and callback in the registry and belongs to
 * the version whose code created it: the state's timer list (core/owned.h) is told when a
 * version retires or is freed, and the timers it owns are cancelled. */
#include "core/hs.h"
#include "core/lua_internal.h"
#include "core/owned.h"

#include <string.h>
#include <time.h>

#include <event2/event.h>

struct lua_timer {
    HS__BOX_HEAD(struct event, pending); /* ev while pending; NULL once done or cancelled */
    struct event *ev;                    /* owned: freed by __gc */
    struct hs_lua *hl;
    int fn_ref;   /* the callback while pending; LUA_NOREF once done or cancelled */
    int self_ref; /* keeps the userdata alive while pending */
    int repeat;   /* every() rather than after() */
    double interval;
    struct hs_owned own; /* in hl->timer_list while pending: its version, made at load */
};

static void timer_release(lua_State *L, struct lua_timer *t)
{
    if (hs__box_gone(&t->box))
        return;
    hs__box_invalidate(&t->box);
    event_del(t->ev);
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->fn_ref = t->self_ref = LUA_NOREF;
    hs_owned_remove(&t->hl->timer_list, &t->own);
}

/* A version that owns t went (core/owned.h). */
static void timer_version_gone(struct hs_owned *o, void *arg)
{
    struct hs_lua *hl = arg;
    timer_release(hl->L, HS_OWNED_OBJECT(o, struct lua_timer, own));
}

static void timeval_from(double s, struct timeval *tv)
{
    if (s < 0)
        s = 0;
    tv->tv_sec = (time_t)s;
    tv->tv_usec = (suseconds_t)((s - (double)tv->tv_sec) * 1e6);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lua_timer *t = arg;
    lua_State *L = t->hl->L;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    /* Hold the userdata across the call: the callback may cancel its own timer. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
    lua_pushvalue(L, -2);
    struct hs__invoke iv = {.v = t->own.owner, .what = "timer"};
    if (!t->repeat)
        timer_release(L, t);
    hs__lua_invoke(t->hl, &iv, 1, 0);
    if (t->repeat && !hs__box_gone(&t->box)) {
        struct timeval tv;
        timeval_from(t->interval, &tv);
        event_add(t->ev, &tv);
    }
    lua_pop(L, 1);
}

static int l_timer_cancel(lua_State *L)
{
    struct lua_timer *t = hs__box_check(L, 1, HS__BOX_TIMER, "timer:cancel");
    int was_pending = !hs__box_gone(&t->box);
    timer_release(L, t);
    lua_pushboolean(L, was_pending);
    return 1;
}

static int l_timer_gc(lua_State *L)
{
    struct lua_timer *t = hs__box_test(L, 1, HS__BOX_TIMER);
    if (t == NULL)
        return 0;
    if (t->ev)
        event_free(t->ev);
    t->ev = NULL;
    return 0;
}

static int l_timer_tostring(lua_State *L)
{
    struct lua_timer *t = hs__box_check(L, 1, HS__BOX_TIMER, "timer:__tostring");
    lua_pushfstring(L, "timer (%s)", hs__box_gone(&t->box) ? "done" : "pending");
    return 1;
}

static int new_timer(lua_State *L, int repeat)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    double secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, secs >= 0 && secs < HS_MAX_WAIT_S, 1, "delay out of range");
    luaL_argcheck(L, !repeat || secs > 0, 1, "interval must be positive");
    struct lua_timer *t = hs__box_new(L, HS__BOX_TIMER, sizeof *t, 0);
    t->fn_ref = t->self_ref = LUA_NOREF;
    t->ev = evtimer_new(hl->base, timer_cb, t);
    if (t->ev == NULL)
        return luaL_error(L, "out of memory for a timer");
    t->hl = hl;
    t->repeat = repeat;
    t->interval = secs;
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    hs_owned_add(&hl->timer_list, &t->own, hl->running, hl->running_at_load);
    t->pending = t->ev;
    struct timeval tv;
    timeval_from(secs, &tv);
    event_add(t->ev, &tv);
    return 1;
}

static int l_hotsock_after(lua_State *L)
{
    return new_timer(L, 0);
}

static int l_hotsock_every(lua_State *L)
{
    return new_timer(L, 1);
}

/* Adds after and every to the hotsock table on top of the stack, and starts the state's timer
 * list (stopped by hs_lua_free). */
void hs__lua_open_timers(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    hs_owned_list_start(&hl->timer_list, timer_version_gone, hl);
    static const luaL_Reg funcs[] = {
        {"after", l_hotsock_after},
        {"every", l_hotsock_every},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}

void hs__lua_open_timer_meta(lua_State *L)
{
    static const luaL_Reg methods[] = {{"cancel", l_timer_cancel}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_timer_gc}, {"__tostring", l_timer_tostring}, {NULL, NULL}};
    hs__box_meta(L, HS__BOX_TIMER, methods, meta);
    lua_pop(L, 1);
}
