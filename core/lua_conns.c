/* hotsock.conns and hotsock.broadcast: the open stream connections and WebSockets of this
 * worker, by script. The connection set (core/conn.c) is the registry; a stream connection
 * belongs to the script whose listener accepted it (its handler argument), a WebSocket to the
 * script whose on_request upgraded it (the version its ws object runs). HTTP connections are
 * not conn objects and are not listed. */
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/ws.h"
#include "core/ws_handshake.h"

#include <string.h>

struct walk {
    lua_State *L;
    struct hs_script *script; /* only this script's connections, or NULL */
    const char *name;         /* or only those of scripts with this name, or NULL */
    struct hs_conn *except;   /* broadcast: skip this one */
    const char *data;         /* broadcast: what to send */
    size_t len;
    int binary;    /* broadcast: WebSockets get a binary message (data is not UTF-8) */
    lua_Integer n; /* listed, or reached */
};

/* Whether script s is one the walk wants. */
static int wanted_script(struct hs_script *s, const struct walk *w)
{
    if (w->script && s != w->script)
        return 0;
    return w->name == NULL || strcmp(hs_script_decl(s)->name, w->name) == 0;
}

/* The registry reference of c's Lua object if c is an open stream connection or WebSocket of
 * the walk's script, else LUA_NOREF; *ws says which. */
static int wanted(struct hs_conn *c, const struct walk *w, int *ws)
{
    int ref = LUA_NOREF;
    *ws = 0;
    if (hs_conn_handler_of(c) != &hs_lua_conn_handler) {
        struct hs_version *v = hs__lua_ws_of(c, &ref);
        *ws = 1;
        return v && wanted_script(hs_version_script(v), w) ? ref : LUA_NOREF;
    }
    if (hs_conn_is_closing(c) || !wanted_script(hs_conn_arg(c), w))
        return LUA_NOREF;
    struct hs__conn_box *box = hs_conn_data(c);
    return box && box->c == c ? box->self_ref : LUA_NOREF;
}

/* IMPORTANT: runs inside hs_conns_foreach, which pins every connection and unpins them after
 * the walk: nothing here may raise. The array was sized beforehand, so rawseti does not
 * allocate. */
static void list_one(struct hs_conn *c, void *arg)
{
    struct walk *w = arg;
    int ws, ref = wanted(c, w, &ws);
    if (ref == LUA_NOREF)
        return;
    lua_rawgeti(w->L, LUA_REGISTRYINDEX, ref);
    lua_rawseti(w->L, -2, ++w->n);
}

static void send_one(struct hs_conn *c, void *arg)
{
    struct walk *w = arg;
    int ws;
    if (c == w->except || wanted(c, w, &ws) == LUA_NOREF)
        return;
    /* A full output buffer (HS_EFULL) skips this one; the others still get the data. A
     * WebSocket gets one message, written straight from the script's string. */
    int r = ws ? hs_ws_send(hs_conn_data(c), w->data, w->len, w->binary)
               : hs_conn_send(c, w->data, w->len);
    if (r == 0)
        w->n++;
}

/* The script whose code is running: its connections are the ones broadcast reaches. */
static struct hs_script *calling_script(struct hs_lua *hl)
{
    return hl->running ? hs_version_script(hl->running) : NULL;
}

/* hotsock.conns([script_name]) -> a fresh array of the open conns of the calling script (or
 * of the scripts named script_name) on this worker. */
static int l_hotsock_conns(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    struct walk w = {L, NULL, luaL_optstring(L, 1, NULL), NULL, NULL, 0, 0, 0};
    if (w.name == NULL)
        w.script = calling_script(hl);
    lua_createtable(L, (int)hs_conns_count(hl->set), 0);
    hs_conns_foreach(hl->set, list_one, &w);
    return 1;
}

/* hotsock.broadcast(data [, except]) -> how many connections and WebSockets it was queued
 * for. except is a conn or a ws. WebSockets get data as one text message, or as a binary
 * message when it is not UTF-8. */
static int l_hotsock_broadcast(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    struct walk w = {L, NULL, NULL, NULL, NULL, 0, 0, 0};
    w.data = luaL_checklstring(L, 1, &w.len);
    if (!lua_isnoneornil(L, 2)) {
        struct hs__conn_box *box = hs__box_test(L, 2, HS__BOX_CONN);
        w.except = box ? box->c : hs__lua_ws_check_conn(L, 2);
    }
    w.binary = !hs_ws_utf8_valid((const unsigned char *)w.data, w.len);
    w.script = calling_script(hl);
    if (w.script == NULL)
        return luaL_error(L, "hotsock.broadcast runs only in a script's callbacks");
    hs_conns_foreach(hl->set, send_one, &w);
    lua_pushinteger(L, w.n);
    return 1;
}

void hs__lua_open_conns(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"conns", l_hotsock_conns},
        {"broadcast", l_hotsock_broadcast},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}
