/* Boxes: the one way a Lua object stands for a C object (see core/lua_box.h). */
#include "core/hs.h"
#include "core/lua_box.h"
#include "core/lua_internal.h"

#include <string.h>

/* Indexed by enum hs__box_kind; the Lua API's type names, fixed (scripts may print them). */
static const char *const box_names[HS__BOX_KINDS] = {
    [HS__BOX_CONN] = "hotsock.conn",
    [HS__BOX_UDP] = "hotsock.udp",
    [HS__BOX_UDP_OUT] = "hotsock.udp_client",
    [HS__BOX_TIMER] = "hotsock.timer",
    [HS__BOX_FILE] = "hotsock.file",
    [HS__BOX_RES] = "hotsock.http.response",
    [HS__BOX_ERR_RES] = "hotsock.http.error_response",
    [HS__BOX_WS] = "hotsock.ws",
    [HS__BOX_SUB] = "hotsock.subscription",
    [HS__BOX_TASK] = "hotsock.task",
};

const char *hs__box_name(enum hs__box_kind kind)
{
    return box_names[kind];
}

int hs__box_meta(lua_State *L, enum hs__box_kind kind, const luaL_Reg *methods,
                 const luaL_Reg *meta)
{
    int made = luaL_newmetatable(L, box_names[kind]); /* sets __name */
    /* The metatable lives in the registry for the state's life, so its address is a stable
     * identity: hs__box_check compares with it instead of looking the name up. */
    struct hs_lua *hl = hs__lua_from_state(L);
    hl->box_mt[kind] = lua_topointer(L, -1);
    if (hl->box_mt_ref[kind] == 0) {
        /* By number too: hs__box_new sets it with a rawgeti, not a lookup by name (~100 of
         * the ~200 instructions luaL_setmetatable costs, per box made). */
        lua_pushvalue(L, -1);
        hl->box_mt_ref[kind] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (!made)
        return 0;
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    if (meta != NULL)
        luaL_setfuncs(L, meta, 0);
    return 1;
}

HS_HOT void *hs__box_new(lua_State *L, enum hs__box_kind kind, size_t size, int nuv)
{
    void *b = lua_newuserdatauv(L, size, nuv);
    memset(b, 0, size);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs__lua_from_state(L)->box_mt_ref[kind]);
    lua_setmetatable(L, -2);
    return b;
}

/* In the words of luaL_typeerror but naming the method, which a call through pcall or a local
 * alias would otherwise show as '?'. */
int hs__box_type_error(lua_State *L, int idx, enum hs__box_kind kind, const char *method)
{
    const char *got;
    if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
        got = lua_tostring(L, -1);
    else if (lua_type(L, idx) == LUA_TLIGHTUSERDATA)
        got = "light userdata";
    else
        got = luaL_typename(L, idx);
    return luaL_error(L, "bad argument #%d to '%s' (%s expected, got %s)", idx, method,
                      box_names[kind], got);
}
