/* ws:receive, the coroutine style of WebSocket: req:websocket{handle = fn} runs fn(ws) in a call
 * that may wait, and its messages queue in the box's inbox (a Lua table, in order) until
 * ws:receive takes them. Reading pauses while the inbox is over its bound, as a held conn stops
 * reading (core/lua_wait.c is the stream connections' side of the same idea). */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"
#include "core/ws.h"
#include "core/ws_codec.h"

#include <errno.h>
#include <string.h>

/* Pushes the inbox table of the box at idx (made on first use). */
static void push_inbox(lua_State *L, int idx)
{
    if (lua_getiuservalue(L, idx, HS__WS_UV_INBOX) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 2 * HS_WS_INBOX_MAX, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx < 0 ? idx - 2 : idx, HS__WS_UV_INBOX);
}

/* Over the bound, reading stops (what was read already still arrives: one read's worth). */
static void inbox_bound(struct hs__ws_box *b)
{
    struct hs_conn *c = b->ws ? hs_ws_conn(b->ws) : NULL;
    if (c == NULL)
        return;
    unsigned n = b->in_tail - b->in_head;
    int over = n >= HS_WS_INBOX_MAX || b->in_bytes >= HS_DEFAULT_WS_MAX_MESSAGE;
    if (over != b->in_paused) {
        b->in_paused = over;
        hs_conn_pause(c, over);
    }
}

/* Pushes the oldest queued message (data, kind) on L and drops it from the inbox of the box at
 * idx. The inbox is not empty. */
static void inbox_take(lua_State *L, struct hs__ws_box *b, int idx)
{
    push_inbox(L, idx);
    lua_Integer at = 2 * (lua_Integer)b->in_head;
    lua_rawgeti(L, -1, at - 1);
    lua_rawgeti(L, -2, at);
    lua_pushnil(L);
    lua_rawseti(L, -4, at - 1);
    lua_pushnil(L);
    lua_rawseti(L, -4, at);
    lua_remove(L, -3);
    b->in_bytes -= lua_rawlen(L, -2);
    if (++b->in_head == b->in_tail)
        b->in_head = b->in_tail = 1; /* empty: start over at the front */
    inbox_bound(b);
}

/* The values a receive on a closed WebSocket returns: nil, "closed", code, reason. */
static int push_closed(lua_State *L, struct hs__ws_box *b, int idx)
{
    hs__lua_fail(L, HS_ECLOSED);
    lua_pushinteger(L, b->close_code ? b->close_code : HS_WS_ABNORMAL);
    if (lua_getiuservalue(L, idx, HS__WS_UV_REASON) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    }
    return 4;
}

/* Resumes the waiting receive with the n values on its coroutine. The box must stay alive
 * across the resume (the caller holds it). */
static void reader_resume(struct hs__ws_box *b, int n)
{
    struct hs__task *t = b->reader;
    b->reader = NULL;
    t->wbox = NULL;
    hs__task_resume(t, n);
}

void hs__ws_inbox_push(struct hs__ws_box *b, const void *data, size_t len, int binary)
{
    lua_State *L = b->hl->L;
    const char *kind = binary ? "binary" : "text";
    if (b->reader && b->in_tail == b->in_head) {
        /* Nothing waits before it: straight to the receive, no queueing. */
        lua_State *T = b->reader->T;
        lua_pushlstring(T, data, len);
        lua_pushstring(T, kind);
        reader_resume(b, 2);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    push_inbox(L, -1);
    if (b->in_head == 0)
        b->in_head = b->in_tail = 1;
    lua_Integer at = 2 * (lua_Integer)b->in_tail;
    lua_pushlstring(L, data, len);
    lua_rawseti(L, -2, at - 1);
    lua_pushstring(L, kind);
    lua_rawseti(L, -2, at);
    lua_pop(L, 2);
    b->in_tail++;
    b->in_bytes += len;
    inbox_bound(b);
}

void hs__ws_inbox_closed(struct hs__ws_box *b, int code, const char *reason, size_t len)
{
    lua_State *L = b->hl->L;
    b->close_code = code;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    lua_pushlstring(L, reason, len);
    lua_setiuservalue(L, -2, HS__WS_UV_REASON);
    if (b->reader) {
        /* The inbox is empty whenever a receive waits: the close is its answer. */
        lua_State *T = b->reader->T;
        lua_pushvalue(L, -1);
        lua_xmove(L, T, 1);
        int n = push_closed(T, b, lua_gettop(T));
        lua_remove(T, -1 - n);
        reader_resume(b, n);
    }
    lua_pop(L, 1);
}

/* ---- handle(ws) ---- */

static int handle_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* After handle(ws) returned or failed (status): the WebSocket closes. */
static int handle_end(lua_State *L, int status, lua_KContext ctx)
{
    struct hs__ws_box *b = lua_touserdata(L, 1);
    HS_UNUSED(ctx);
    int failed = status != LUA_OK && status != LUA_YIELD;
    if (failed) {
        hs_log(HS_LOG_ERROR, "handler error in websocket handle (ws#%llu): %s",
               (unsigned long long)b->id, lua_tostring(L, -1));
        if (b->v)
            hs_stats_handler_error(hs_version_stats(b->v));
    }
    if (b->ws != NULL)
        hs_ws_close(b->ws, failed ? HS_WS_INTERNAL_ERROR : HS_WS_NORMAL, NULL, 0);
    return 0;
}

/* The call's function: handle_run(box, fn) calls fn(box) under a message handler. */
static int handle_run(lua_State *L)
{
    lua_pushcfunction(L, handle_msgh);
    lua_insert(L, 2);
    lua_pushvalue(L, 1);
    int st = lua_pcallk(L, 1, 0, 2, 0, handle_end);
    return handle_end(L, st, 0);
}

void hs__ws_handle_start(lua_State *L, struct hs__ws_box *b, int box_idx, int fn_idx)
{
    struct hs_lua *hl = b->hl;
    lua_State *M = hl->L;
    /* The call runs from the main thread's stack, as every call into a script does. */
    lua_pushvalue(L, box_idx);
    lua_pushvalue(L, fn_idx);
    lua_xmove(L, M, 2);
    lua_pushcfunction(M, handle_run);
    lua_insert(M, -3);
    struct hs__invoke iv = {.v = b->v, .what = "websocket handle"};
    /* handle_run catches the script's errors: a failure here is no task at all (memory). */
    if (hs__lua_invoke(hl, &iv, 2, 0) == HS_ESCRIPT && b->ws != NULL)
        hs_ws_close(b->ws, HS_WS_INTERNAL_ERROR, NULL, 0);
}

/* ---- methods ---- */

static void recv_timeout(struct hs__task *t)
{
    struct hs__ws_box *b = t->wbox;
    lua_State *L = t->hl->L;
    hs__lua_fail(t->T, -ETIMEDOUT);
    /* The box must outlive the resume, which may close the WebSocket and let it go. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    reader_resume(b, 2);
    lua_pop(L, 1);
}

/* ws:receive([timeout]) — the next message: data, kind ("text" or "binary"); nil, "timeout";
 * or nil, "closed", code, reason once the WebSocket has closed and every message was taken. */
static int l_ws_receive(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:receive");
    int ms = b->timeout_ms;
    if (!lua_isnoneornil(L, 2)) {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s >= 0 && s < HS_MAX_WAIT_S, 2, "seconds out of range");
        ms = (int)hs__seconds_ms(s);
        if (ms == 0 && s > 0)
            ms = 1;
    }
    if (!b->handle)
        return luaL_error(L,
                          "ws:receive: ws#%I was made with on_message (use handle = "
                          "function(ws) ... end to receive)",
                          (lua_Integer)b->id);
    if (b->reader != NULL)
        return luaL_error(L, "ws:receive: another call is already receiving on ws#%I",
                          (lua_Integer)b->id);
    lua_settop(L, 1);
    if (b->in_tail != b->in_head) {
        inbox_take(L, b, 1);
        return 2;
    }
    if (hs__box_gone(&b->box))
        return push_closed(L, b, 1);
    if (ms == 0)
        return hs__lua_fail(L, -ETIMEDOUT);
    struct hs__task *t = hs__task_wait(L, "ws:receive");
    if (ms > 0 && hs__task_timer(t, ms, recv_timeout) != 0) {
        t->waiting = NULL;
        return luaL_error(L, "ws:receive: out of memory for a timer");
    }
    t->wbox = b;
    b->reader = t;
    return lua_yield(L, 0);
}

/* ws:settimeout(s) — later receives wait at most s seconds; nil or negative: no limit. */
static int l_ws_settimeout(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:settimeout");
    if (lua_isnoneornil(L, 2)) {
        b->timeout_ms = -1;
    } else {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s < HS_MAX_WAIT_S, 2, "seconds out of range");
        b->timeout_ms = s < 0 ? -1 : (int)hs__seconds_ms(s);
    }
    lua_pushboolean(L, 1);
    return 1;
}

void hs__lua_ws_methods_recv(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"receive", l_ws_receive},
        {"settimeout", l_ws_settimeout},
        {NULL, NULL},
    };
    luaL_setfuncs(L, methods, 0);
}
