/* The Lua side of the error tokens (core/errtok.h): how every binding hands a runtime failure
 * to a script. */
#include "core/errtok.h"

#include <lauxlib.h>
#include <lua.h>

int hs__lua_fail(lua_State *L, int code)
{
    char buf[HS_ERRTOK_MAX];
    luaL_pushfail(L);
    lua_pushstring(L, hs_errtok_text(code, buf, sizeof buf));
    return 2;
}
