/* hotsock.shared: the shared dictionary from Lua. Values are numbers, strings or booleans. */
#include "core/hs.h"
#include "core/lua_internal.h"
#include "core/shared.h"

#include <errno.h>
#include <string.h>

static struct hs_shared *region(lua_State *L)
{
    struct hs_shared *d = hs_shared_default();
    if (d == NULL)
        luaL_error(L, "the shared dictionary is not available");
    return d;
}

static int push_err(lua_State *L, int r)
{
    luaL_pushfail(L);
    lua_pushstring(L, r == -E2BIG    ? "too large"
                      : r == -ENOSPC ? "no memory"
                      : r == -EINVAL ? "not a number"
                                     : hs_strerror(r));
    return 2;
}

/* Numbers are stored as doubles; a whole one within 2^53 comes back as an integer, so a
 * counter prints as 42, not 42.0. */
static void push_number(lua_State *L, double d)
{
    if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, d);
}

/* shared.get(key) -> value | nil */
static int l_shared_get(lua_State *L)
{
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    struct hs_shared_value v;
    if (hs_shared_get(region(L), k, kl, &v) != 0) {
        lua_pushnil(L);
        return 1;
    }
    if (v.type == HS_SHARED_NUMBER)
        push_number(L, v.num);
    else if (v.type == HS_SHARED_BOOLEAN)
        lua_pushboolean(L, v.num != 0);
    else
        lua_pushlstring(L, v.str, v.len);
    return 1;
}

/* shared.set(key, value [, ttl]) -> true | nil, err; a nil value deletes. */
static int l_shared_set(lua_State *L)
{
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double ttl = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, ttl >= 0, 3, "ttl must not be negative");
    struct hs_shared_value v;
    memset(&v, 0, sizeof v);
    switch (lua_type(L, 2)) {
    case LUA_TNIL:
        hs_shared_delete(region(L), k, kl);
        lua_pushboolean(L, 1);
        return 1;
    case LUA_TNUMBER:
        v.type = HS_SHARED_NUMBER;
        v.num = lua_tonumber(L, 2);
        break;
    case LUA_TBOOLEAN:
        v.type = HS_SHARED_BOOLEAN;
        v.num = lua_toboolean(L, 2);
        break;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, 2, &v.len);
        if (v.len > HS_SHARED_MAX_VALUE)
            return push_err(L, -E2BIG);
        v.type = HS_SHARED_STRING;
        memcpy(v.str, s, v.len);
        break;
    }
    default:
        return luaL_typeerror(L, 2, "number, string, boolean or nil");
    }
    int r = hs_shared_set(region(L), k, kl, &v, ttl);
    if (r != 0)
        return push_err(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* shared.incr(key, n [, init [, ttl]]) -> new value | nil, err */
static int l_shared_incr(lua_State *L)
{
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double n = luaL_checknumber(L, 2);
    double init = luaL_optnumber(L, 3, 0);
    double ttl = luaL_optnumber(L, 4, 0);
    double out;
    int r = hs_shared_incr(region(L), k, kl, n, init, ttl, &out);
    if (r != 0)
        return push_err(L, r);
    push_number(L, out);
    return 1;
}

static int l_shared_delete(lua_State *L)
{
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    hs_shared_delete(region(L), k, kl);
    lua_pushboolean(L, 1);
    return 1;
}

/* shared.count() -> live keys, capacity */
static int l_shared_count(lua_State *L)
{
    size_t used, cap;
    hs_shared_counts(region(L), &used, &cap);
    lua_pushinteger(L, (lua_Integer)used);
    lua_pushinteger(L, (lua_Integer)cap);
    return 2;
}

void hs__lua_open_shared(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"get", l_shared_get},       {"set", l_shared_set},     {"incr", l_shared_incr},
        {"delete", l_shared_delete}, {"count", l_shared_count}, {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_setfield(L, -2, "shared");
}
