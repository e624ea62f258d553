/* Adoption after a reload (hs_lua_adopt, core/lua_api.h): when the new version of a script
 * has on_upgrade, each live connection of the script still on an older version is offered to
 * it, stream connections first, then WebSockets. One walk and one move serve both kinds; the
 * kinds differ only in which connections qualify and in what on_upgrade may return. */
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"
#include "core/ws.h"

struct adopt_walk {
    struct hs_script *s;
    struct hs_version *to; /* the version the connections are offered to */
    int ws;                /* this pass offers WebSockets (else stream connections) */
    unsigned moved;
};

/* A stream connection of w->s that may move: open, on another version, and with no handler
 * waiting (a handler that waits finishes on the version that started it). */
static struct hs__conn_box *stream_candidate(struct hs_conn *c, const struct adopt_walk *w)
{
    if (hs_conn_handler_of(c) != &hs_lua_conn_handler || hs_conn_arg(c) != w->s)
        return NULL;
    struct hs__conn_box *box = hs_conn_data(c);
    if (box == NULL || box->v == w->to || box->c == NULL || box->task != NULL)
        return NULL;
    return box;
}

/* A WebSocket of w->s that may move: open, on another version, and not in handle(ws) mode
 * (a running call keeps the code, and version, it started with). */
static struct hs__ws_box *ws_candidate(struct hs_conn *c, const struct adopt_walk *w)
{
    if (hs_conn_handler_of(c) != &hs_ws_conn_handler)
        return NULL;
    struct hs__ws_box *b = hs_ws_arg(hs_conn_data(c));
    if (b == NULL || b->ws == NULL || b->handle || b->v == w->to || hs_version_script(b->v) != w->s)
        return NULL;
    return b;
}

/* on_upgrade(ws)'s result, on top (popped): a table with new on_message / on_close functions
 * replaces the WebSocket's callbacks; anything else keeps them. */
static void ws_take_callbacks(lua_State *L, struct hs__ws_box *b)
{
    if (lua_istable(L, -1)) {
        lua_createtable(L, 0, 2);
        lua_getfield(L, -2, "on_message");
        if (lua_isfunction(L, -1)) {
            lua_setfield(L, -2, "on_message");
            lua_getfield(L, -2, "on_close");
            lua_setfield(L, -2, "on_close");
            lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
            lua_insert(L, -2);
            lua_setiuservalue(L, -2, HS__WS_UV_CALLBACKS);
            lua_pop(L, 1);
        } else {
            hs_log(HS_LOG_WARN,
                   "on_upgrade returned a table without on_message; ws#%llu "
                   "keeps its callbacks",
                   (unsigned long long)b->id);
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
}

static void adopt_one(struct hs_conn *c, void *arg)
{
    struct adopt_walk *w = arg;
    struct hs__conn_box *box = w->ws ? NULL : stream_candidate(c, w);
    struct hs__ws_box *wb = w->ws ? ws_candidate(c, w) : NULL;
    if (box == NULL && wb == NULL)
        return;
    struct hs_lua *hl = hs_script_lua(w->s);
    lua_State *L = hl->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, box ? box->self_ref : wb->self_ref);
    /* The connection moves only once on_upgrade has returned: it cannot wait. A WebSocket's
     * may return new callbacks. */
    struct hs__invoke iv = {
        .v = w->to, .name = "on_upgrade", .conn = c, .flags = HS__INVOKE_NO_WAIT};
    int nres = wb != NULL;
    if (hs__lua_invoke(hl, &iv, 1, nres) != 0)
        return; /* logged; it keeps running the version it had */
    if (box ? box->c == NULL : wb->ws == NULL) {
        lua_pop(L, nres); /* closed by on_upgrade: nothing to move */
        return;
    }
    if (wb)
        ws_take_callbacks(L, wb);
    /* Its counters and its reference go to the new version; the old one may be freed here. */
    struct hs_version **slot = box ? &box->v : &wb->v, *old = *slot;
    hs_stats_conn_move(hs_version_stats(old), hs_version_stats(w->to), hs_conn_bytes_in(c),
                       hs_conn_bytes_out(c));
    hs_version_ref(w->to);
    *slot = w->to;
    hs_version_unref(old);
    w->moved++;
}

unsigned hs_lua_adopt(struct hs_script *s, struct hs_conns *set)
{
    struct adopt_walk w = {s, hs_script_current(s), 0, 0};
    lua_State *L = hs_script_lua(s)->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(w.to));
    int has = lua_getfield(L, -1, "on_upgrade") == LUA_TFUNCTION;
    lua_pop(L, 2);
    if (!has)
        return 0;
    hs_conns_foreach(set, adopt_one, &w);
    w.ws = 1;
    hs_conns_foreach(set, adopt_one, &w);
    return w.moved;
}
