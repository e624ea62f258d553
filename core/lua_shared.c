/* hotsock.shared and hotsock.dict(name): the shared dictionaries (core/shared.h) from Lua.
 * A dictionary is a table of functions whose upvalues are the dictionary and the table
 * itself, so both dict.get(k) and dict:get(k) work. Values are numbers, strings and booleans;
 * lists hold strings and numbers. Runtime failures return nil and a token ("no memory",
 * "exists", "not found", "not a number", "not a list", "too large", "changed", "is a list"). */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/lua_internal.h"
#include "core/shared.h"

#include <errno.h>
#include <string.h>

#define DICTS_KEY "hotsock.dicts" /* registry field: name -> dictionary table, made once */

/* The dictionary of the running function; drops a leading self argument (dict:get(k)). */
static struct hs_shared_dict *dict_arg(lua_State *L)
{
    if (lua_rawequal(L, 1, lua_upvalueindex(2)))
        lua_remove(L, 1);
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int push_err(lua_State *L, int r)
{
    return hs__lua_fail(L, r);
}

static int push_ok(lua_State *L, int r)
{
    if (r != 0)
        return push_err(L, r);
    lua_pushboolean(L, 1);
    return 1;
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

/* Reads the value at idx into *v (strings point into Lua's copy, valid during the call).
 * nil is NONE when nil_ok; other types raise. lists_only: strings and numbers. */
static void to_value(lua_State *L, int idx, struct hs_shared_value *v, int nil_ok, int lists_only)
{
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        if (!nil_ok)
            luaL_typeerror(L, idx, lists_only ? "string or number" : "number, string or boolean");
        v->type = HS_SHARED_NONE;
        break;
    case LUA_TNUMBER:
        v->type = HS_SHARED_NUMBER;
        v->num = lua_tonumber(L, idx);
        break;
    case LUA_TBOOLEAN:
        if (lists_only)
            luaL_typeerror(L, idx, "string or number");
        v->type = HS_SHARED_BOOLEAN;
        v->num = lua_toboolean(L, idx);
        break;
    case LUA_TSTRING:
        v->type = HS_SHARED_STRING;
        v->str = lua_tolstring(L, idx, &v->len);
        break;
    default:
        luaL_typeerror(L, idx,
                       lists_only ? "string or number"
                       : nil_ok   ? "number, string, boolean or nil"
                                  : "number, string or boolean");
    }
}

static double check_ttl(lua_State *L, int idx)
{
    double ttl = luaL_optnumber(L, idx, 0);
    luaL_argcheck(L, ttl >= 0, idx, "ttl must not be negative");
    return ttl;
}

/* Pushes a value read out (strings from out->buf). */
static void push_value(lua_State *L, const struct hs_shared_value *v)
{
    if (v->type == HS_SHARED_NUMBER)
        push_number(L, v->num);
    else if (v->type == HS_SHARED_BOOLEAN)
        lua_pushboolean(L, v->num != 0);
    else
        lua_pushlstring(L, v->buf, v->len);
}

/* Runs a read (get or pop) with a buffer large enough, and pushes what it read unless it is
 * a list: small is tried first, then a userdata of the size the dictionary reported (left on
 * the stack under the value; never allocated while the dictionary's lock is held, since a Lua
 * allocation may raise). The value may grow between tries, hence the loop. */
typedef int (*read_fn)(struct hs_shared_dict *d, const char *k, size_t kl, int arg,
                       struct hs_shared_value *out);

static int read_push(lua_State *L, struct hs_shared_dict *d, const char *k, size_t kl, int arg,
                     read_fn fn, struct hs_shared_value *out, char *small, size_t small_len)
{
    out->buf = small;
    out->cap = small_len;
    int r;
    while ((r = fn(d, k, kl, arg, out)) == -ENOBUFS) {
        out->cap = out->len;
        out->buf = lua_newuserdatauv(L, out->cap, 0);
    }
    if (r == 0 && out->type != HS_SHARED_LIST)
        push_value(L, out);
    return r;
}

static int get_fn(struct hs_shared_dict *d, const char *k, size_t kl, int arg,
                  struct hs_shared_value *out)
{
    HS_UNUSED(arg);
    return hs_shared_get(d, k, kl, out);
}

static int pop_fn(struct hs_shared_dict *d, const char *k, size_t kl, int left,
                  struct hs_shared_value *out)
{
    return hs_shared_pop(d, k, kl, left, out);
}

/* dict.get(key) -> value | nil; nil, "is a list" for a list. */
static int l_dict_get(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    char small[1024];
    struct hs_shared_value v;
    int r = read_push(L, d, k, kl, 0, get_fn, &v, small, sizeof small);
    if (r != 0) {
        lua_pushnil(L);
        return 1;
    }
    if (v.type == HS_SHARED_LIST) {
        return hs__lua_fail(L, HS_SHARED_EISLIST);
    }
    return 1;
}

/* set, safe_set, add, replace (key, value [, ttl]) -> true | nil, err; a nil value given to
 * set or safe_set deletes. */
static int store(lua_State *L, int mode)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double ttl = check_ttl(L, 3);
    struct hs_shared_value v;
    int plain = !(mode & (HS_SHARED_ADD | HS_SHARED_REPLACE));
    to_value(L, 2, &v, plain, 0);
    if (v.type == HS_SHARED_NONE)
        return push_ok(L, hs_shared_delete(d, k, kl));
    return push_ok(L, hs_shared_store(d, k, kl, &v, ttl, mode));
}

static int l_dict_set(lua_State *L)
{
    return store(L, HS_SHARED_SET);
}

static int l_dict_safe_set(lua_State *L)
{
    return store(L, HS_SHARED_SAFE);
}

static int l_dict_add(lua_State *L)
{
    return store(L, HS_SHARED_ADD);
}

static int l_dict_safe_add(lua_State *L)
{
    return store(L, HS_SHARED_ADD | HS_SHARED_SAFE);
}

static int l_dict_replace(lua_State *L)
{
    return store(L, HS_SHARED_REPLACE);
}

/* dict.cas(key, old, new [, ttl]) -> true | nil, "changed"; old nil: only when absent;
 * new nil: delete. */
static int l_dict_cas(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double ttl = check_ttl(L, 4);
    struct hs_shared_value old, nv;
    to_value(L, 2, &old, 1, 0);
    to_value(L, 3, &nv, 1, 0);
    return push_ok(L, hs_shared_cas(d, k, kl, &old, &nv, ttl));
}

/* dict.incr(key, n [, init [, ttl]]) -> new value | nil, err */
static int l_dict_incr(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double n = luaL_checknumber(L, 2);
    double init = luaL_optnumber(L, 3, 0);
    double ttl = check_ttl(L, 4);
    double out;
    int r = hs_shared_incr(d, k, kl, n, init, ttl, &out);
    if (r != 0)
        return push_err(L, r);
    push_number(L, out);
    return 1;
}

static int l_dict_delete(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    return push_ok(L, hs_shared_delete(d, k, kl));
}

/* dict.ttl(key) -> seconds left (0: no expiry) | nil, "not found" */
static int l_dict_ttl(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    double ttl;
    int r = hs_shared_ttl(d, k, kl, &ttl);
    if (r != 0)
        return push_err(L, r);
    push_number(L, ttl);
    return 1;
}

/* dict.expire(key, ttl) -> true | nil, "not found"; ttl 0 removes the expiry. */
static int l_dict_expire(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    luaL_checknumber(L, 2);
    return push_ok(L, hs_shared_expire(d, k, kl, check_ttl(L, 2)));
}

static int l_dict_flush_all(lua_State *L)
{
    hs_shared_flush_all(dict_arg(L));
    lua_pushboolean(L, 1);
    return 1;
}

/* dict.keys([max]) -> array of live keys, most recently used first; max defaults to 1024,
 * 0 means all. */
static int l_dict_keys(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    lua_Integer max = luaL_optinteger(L, 1, HS_SHARED_KEYS_DEFAULT);
    luaL_argcheck(L, max >= 0, 1, "max must not be negative");
    size_t cap = 4096, len, count;
    char *buf = lua_newuserdatauv(L, cap, 0);
    int r;
    while ((r = hs_shared_keys(d, (size_t)max, buf, cap, &len, &count)) == -ENOBUFS) {
        lua_pop(L, 1);
        cap = len + len / 4;
        buf = lua_newuserdatauv(L, cap, 0);
    }
    lua_createtable(L, (int)count, 0);
    /* An array for hotsock.json too, even when empty. */
    if (luaL_getmetatable(L, "hotsock.json.array") == LUA_TTABLE)
        lua_setmetatable(L, -2);
    else
        lua_pop(L, 1);
    size_t at = 0;
    for (size_t i = 1; i <= count; i++) {
        size_t kl = (unsigned char)buf[at];
        lua_pushlstring(L, buf + at + 1, kl);
        lua_rawseti(L, -2, (lua_Integer)i);
        at += 1 + kl;
    }
    return 1;
}

static int push_list(lua_State *L, int left)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    struct hs_shared_value v;
    to_value(L, 2, &v, 0, 1);
    size_t n;
    int r = hs_shared_push(d, k, kl, &v, left, &n);
    if (r != 0)
        return push_err(L, r);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int l_dict_lpush(lua_State *L)
{
    return push_list(L, 1);
}

static int l_dict_rpush(lua_State *L)
{
    return push_list(L, 0);
}

static int pop_list(lua_State *L, int left)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    char small[1024];
    struct hs_shared_value v;
    int r = read_push(L, d, k, kl, left, pop_fn, &v, small, sizeof small);
    if (r == -ENOENT) {
        lua_pushnil(L);
        return 1;
    }
    return r != 0 ? push_err(L, r) : 1;
}

static int l_dict_lpop(lua_State *L)
{
    return pop_list(L, 1);
}

static int l_dict_rpop(lua_State *L)
{
    return pop_list(L, 0);
}

static int l_dict_llen(lua_State *L)
{
    struct hs_shared_dict *d = dict_arg(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    size_t n;
    int r = hs_shared_llen(d, k, kl, &n);
    if (r != 0)
        return push_err(L, r);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* dict.count() -> entries, capacity in bytes */
static int l_dict_count(lua_State *L)
{
    struct hs_shared_stats st;
    hs_shared_stats(dict_arg(L), &st);
    lua_pushinteger(L, (lua_Integer)st.keys);
    lua_pushinteger(L, (lua_Integer)st.capacity);
    return 2;
}

/* dict.free_space() -> bytes not in use (a value needs its size plus about 50 bytes) */
static int l_dict_free_space(lua_State *L)
{
    struct hs_shared_stats st;
    hs_shared_stats(dict_arg(L), &st);
    lua_pushinteger(L, (lua_Integer)(st.capacity - st.used));
    return 1;
}

/* dict.name() -> its name ("default" for hotsock.shared) */
static int l_dict_name(lua_State *L)
{
    lua_pushstring(L, hs_shared_dict_name(dict_arg(L)));
    return 1;
}

static const luaL_Reg dict_funcs[] = {
    {"get", l_dict_get},           {"set", l_dict_set},
    {"safe_set", l_dict_safe_set}, {"add", l_dict_add},
    {"safe_add", l_dict_safe_add}, {"replace", l_dict_replace},
    {"cas", l_dict_cas},           {"incr", l_dict_incr},
    {"delete", l_dict_delete},     {"ttl", l_dict_ttl},
    {"expire", l_dict_expire},     {"flush_all", l_dict_flush_all},
    {"keys", l_dict_keys},         {"lpush", l_dict_lpush},
    {"rpush", l_dict_rpush},       {"lpop", l_dict_lpop},
    {"rpop", l_dict_rpop},         {"llen", l_dict_llen},
    {"count", l_dict_count},       {"free_space", l_dict_free_space},
    {"name", l_dict_name},         {NULL, NULL},
};

/* Pushes the table of dictionary d (made once per Lua state and name). */
static void push_dict(lua_State *L, struct hs_shared_dict *d)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, DICTS_KEY);
    if (lua_getfield(L, -1, hs_shared_dict_name(d)) == LUA_TTABLE) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, (int)(sizeof dict_funcs / sizeof dict_funcs[0]));
    for (const luaL_Reg *f = dict_funcs; f->name; f++) {
        lua_pushlightuserdata(L, d);
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, -2, f->name);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, hs_shared_dict_name(d));
    lua_remove(L, -2);
}

/* hotsock.dict(name) -> the dictionary of --shared NAME=SIZE; raises when there is none. */
static int l_hotsock_dict(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct hs_shared *r = hs_shared_region();
    struct hs_shared_dict *d = r ? hs_shared_dict(r, name) : NULL;
    if (d == NULL)
        return luaL_error(L,
                          r ? "no shared dictionary '%s' (give it with --shared %s=SIZE)"
                            : "no shared dictionaries in this process ('%s')",
                          name, name);
    push_dict(L, d);
    return 1;
}

void hs__lua_open_shared(lua_State *L)
{
    lua_pushcfunction(L, l_hotsock_dict);
    lua_setfield(L, -2, "dict");
    struct hs_shared *r = hs_shared_region();
    struct hs_shared_dict *d = r ? hs_shared_dict(r, HS_SHARED_DEFAULT_NAME) : NULL;
    /* Every server process has its region before its Lua state (main.c, master.c); a bare
     * state (a unit test's) has no hotsock.shared. */
    if (d != NULL) {
        push_dict(L, d);
        lua_setfield(L, -2, "shared");
    }
}
