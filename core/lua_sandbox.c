/* Sandbox profiles: the environment each script version runs in, and the bounded library
 * functions every profile shares.
 *
 * Per Lua state (hs__sandbox_open): the pattern functions are replaced by bounded ones
 * (lua_pattern.c); string.rep, table.concat, table.sort and table.move are replaced by
 * versions that check the call's deadline or cap their result; debug.sethook refuses (the
 * hook is the watchdog's); and one read-only *view* per restricted profile is built: a table
 * of the globals that profile allows, the libraries in it wrapped in read-only proxies.
 *
 * Per version (hs__sandbox_env): a fresh environment table whose metatable (protected)
 * sends reads to the view; `_G` is the environment itself, and `require`, `load`, `loadfile`,
 * `dofile` and `package` are made for it, so modules and loaded chunks share the version's
 * globals and nothing a version writes reaches another. A trusted version gets today's
 * environment: reads fall through to the real global table. */
#include "core/lua_sandbox.h"
#include "core/hs.h"
#include "core/lua_internal.h"

#include <limits.h>
#include <string.h>

const char *const hs_sandbox_default_modules[] = {"cjson", NULL};

static const char *const profile_names[] = {"standard", "strict", "trusted"};

/* Registry keys (their addresses). */
static const char KEY_VIEW[2] = {0};   /* view table of standard, strict */
static const char KEY_ENV_MT[3] = {0}; /* environment metatable of each profile */
static const char KEY_READONLY = 0;    /* weak set of the read-only proxies */
static const char KEY_ALLOWED = 0;     /* set of allowed C module names */
static const char KEY_LOADED[2] = {0}; /* modules loaded by standard, strict scripts */
static const char KEY_REAL = 0;        /* the real require, load, searchpath, collectgarbage */

/* Globals every restricted profile copies from the real global table as they are. */
static const char *const plain_globals[] = {
    "assert", "error",    "getmetatable", "ipairs",   "next",   "pairs",    "pcall",
    "print",  "rawequal", "rawget",       "rawlen",   "select", "tonumber", "tostring",
    "type",   "warn",     "xpcall",       "_VERSION", NULL,
};

/* Libraries every restricted profile sees read-only and whole. */
static const char *const whole_libs[] = {"coroutine", "math", "string", "table", "utf8", NULL};

/* os functions each restricted profile leaves out. */
static const char *const os_removed_standard[] = {"exit", NULL};
static const char *const os_removed_strict[] = {"exit",    "execute", "remove", "rename",
                                                "tmpname", "getenv",  NULL};

/* Names `require` answers from the view rather than from a file. */
static const char *const builtin_modules[] = {"coroutine", "debug", "io",   "math",    "os",
                                              "string",    "table", "utf8", "hotsock", NULL};

int hs_sandbox_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, profile_names[i]) == 0)
            return i;
    return -1;
}

const char *hs_sandbox_name(int profile)
{
    return profile >= 0 && profile < 3 ? profile_names[profile] : "?";
}

static int in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* ---- read-only proxies ---- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table '%s' (sandbox)",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* next() over the table behind a proxy (the global `next` may have been replaced). */
static int ro_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1) != 0)
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L)
{
    lua_pushcfunction(L, ro_next);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

/* Replaces the table on top of the stack by a read-only proxy of it named name. */
static void make_readonly(lua_State *L, const char *name)
{
    int real = lua_gettop(L);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_READONLY);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_replace(L, real);
}

/* A copy of the global library name without the functions in removed, made read-only. */
static void push_lib_view(lua_State *L, const char *name, const char *const *removed)
{
    lua_getglobal(L, name);
    if (removed != NULL) {
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && in_list(removed, lua_tostring(L, -2))) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
        lua_remove(L, -2);
    }
    make_readonly(L, name);
}

/* ---- guarded base functions ---- */

static int l_sandbox_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_READONLY);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return luaL_error(L, "rawset: the table is read-only (sandbox)");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* setmetatable without __gc: Lua runs finalizers with hooks off, so the watchdog could not
 * stop one that loops, and a finalizer runs whenever a collection step happens to come. A
 * table is only ever finalized when its metatable had __gc when it was set, so refusing it
 * here closes the door for good. */
static int l_sandbox_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc is not allowed in this sandbox (a finalizer "
                                 "runs where the watchdog cannot stop it)");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0 && strcmp(opt, "step") != 0)
        return luaL_error(L,
                          "collectgarbage('%s') is not allowed in this sandbox (only "
                          "'count' and 'step')",
                          opt);
    int n = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_REAL);
    lua_getfield(L, -1, "collectgarbage");
    lua_replace(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_sandbox_sethook(lua_State *L)
{
    return luaL_error(L, "debug.sethook is not available: the hook belongs to hotsock's "
                         "watchdog");
}

/* Pushes the real function name saved at open. */
static void push_real(lua_State *L, const char *name)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_REAL);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* ---- per-environment loaders: upvalue 1 is the environment ---- */

static int l_sandbox_load(lua_State *L)
{
    int has_env = !lua_isnone(L, 4);
    lua_settop(L, 4);
    push_real(L, "load");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t"); /* text only: malformed bytecode is not memory-safe */
    lua_pushvalue(L, has_env ? 4 : lua_upvalueindex(1));
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L) - 4;
}

static int l_sandbox_loadfile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1); /* none would read stdin: blocks the loop */
    int has_env = !lua_isnone(L, 3);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, has_env ? 3 : lua_upvalueindex(1));
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    return 1;
}

static int l_sandbox_dofile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

static int module_allowed(lua_State *L, const char *name)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ALLOWED);
    lua_pushstring(L, name);
    const char *dot = strchr(name, '.');
    int ok = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
    if (!ok && dot != NULL) {
        lua_pushlstring(L, name, (size_t)(dot - name));
        ok = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

/* require(name) of a restricted version. Upvalues: 1 environment, 2 the loaded table of its
 * profile (modules are shared by the profile's scripts, as package.loaded is by trusted
 * ones: docs/state.md; a module runs in the environment of the version that loaded it
 * first), 3 its files table (name -> path: what it loaded, to watch and to forget on its
 * next reload), 4 its package table (standard) or the search path (strict), 5 the profile.
 * Names of the standard library and hotsock come from the view before any cache, so no
 * script can plant a `string` for another. */
static int l_sandbox_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int profile = (int)lua_tointeger(L, lua_upvalueindex(5));
    lua_settop(L, 1);
    if (strcmp(name, "_G") == 0) {
        lua_pushvalue(L, lua_upvalueindex(1));
        return 1;
    }
    if (strcmp(name, "package") == 0 && profile == HS_SANDBOX_STANDARD) {
        lua_pushvalue(L, lua_upvalueindex(4));
        return 1;
    }
    if (in_list(builtin_modules, name)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_VIEW[profile]);
        if (lua_getfield(L, -1, name) == LUA_TNIL)
            return luaL_error(L, "module '%s' is not available in sandbox '%s'", name,
                              profile_names[profile]);
        return 1;
    }
    if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (profile == HS_SANDBOX_STANDARD && module_allowed(L, name)) {
        push_real(L, "require");
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, lua_upvalueindex(2), name);
        return 1;
    }
    /* A Lua module, text only, found on the version's own path. */
    const char *path;
    if (profile == HS_SANDBOX_STANDARD) {
        lua_getfield(L, lua_upvalueindex(4), "path");
        path = lua_tostring(L, -1);
        if (path == NULL)
            return luaL_error(L, "package.path must be a string");
    } else {
        path = lua_tostring(L, lua_upvalueindex(4));
        lua_pushvalue(L, lua_upvalueindex(4));
    }
    push_real(L, "searchpath");
    lua_pushvalue(L, 1);
    lua_pushstring(L, path);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
        return luaL_error(L, "module '%s' not found in sandbox '%s':\n\t%s%s", name,
                          profile_names[profile], lua_tostring(L, -1),
                          profile == HS_SANDBOX_STANDARD
                              ? "\n\t(a C module needs --allow-module NAME)"
                              : "\n\t(strict: Lua modules next to the script or in its lua/)");
    }
    lua_pop(L, 1);
    const char *file = lua_tostring(L, -1); /* index 3 */
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    lua_pushvalue(L, lua_upvalueindex(1));
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    if (!lua_isnil(L, -1))
        lua_setfield(L, lua_upvalueindex(2), name);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, lua_upvalueindex(2), name) == LUA_TNIL) {
        lua_pushboolean(L, 1);
        lua_copy(L, -1, -2);
        lua_setfield(L, lua_upvalueindex(2), name);
    }
    lua_pushvalue(L, 3);
    lua_setfield(L, lua_upvalueindex(3), name);
    lua_pushvalue(L, 3);
    return 2;
}

/* __pairs of an environment: its own keys, then the view's it does not shadow.
 * Upvalue 1 is the view. */
static int env_next(lua_State *L)
{
    lua_settop(L, 2);
    int in_view = 0;
    if (!lua_isnil(L, 2)) {
        lua_pushvalue(L, 2);
        in_view = lua_rawget(L, 1) == LUA_TNIL;
        lua_pop(L, 1);
    }
    if (!in_view) {
        if (lua_next(L, 1) != 0)
            return 2;
        lua_pushnil(L);
    }
    while (lua_next(L, lua_upvalueindex(1)) != 0) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, 1) == LUA_TNIL) {
            lua_pop(L, 1);
            return 2;
        }
        lua_pop(L, 2);
    }
    return 0;
}

static int env_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, env_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* ---- bounded table functions (every profile) ---- */

/* Every so many elements, a look at the clock. */
#define TABLE_SLICE 1024

static int l_table_concat(lua_State *L)
{
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer last = luaL_opt(L, luaL_checkinteger, 4, luaL_len(L, 1));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i <= last; i++) {
        if (lua_geti(L, 1, i) != LUA_TSTRING && !lua_isnumber(L, -1))
            return luaL_error(L, "invalid value (at index %I) in table for 'concat'",
                              (LUAI_UACINT)i);
        luaL_addvalue(&b);
        if (i != last)
            luaL_addlstring(&b, sep, lsep);
        if (luaL_bufflen(&b) > HS_LUA_MAX_STRING)
            return luaL_error(L, "resulting string too large (over %d MiB)",
                              (int)(HS_LUA_MAX_STRING >> 20));
        if (i % TABLE_SLICE == 0)
            hs__lua_check_time(L);
        if (i == LUA_MAXINTEGER)
            break;
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_string_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && (l + lsep > 0) &&
        (l + lsep > HS_LUA_MAX_STRING || (size_t)n > (HS_LUA_MAX_STRING + lsep) / (l + lsep)))
        return luaL_error(L, "resulting string too large (over %d MiB)",
                          (int)(HS_LUA_MAX_STRING >> 20));
    push_real(L, "rep");
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_table_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        int forward = t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ));
        for (lua_Integer k = 0; k < n; k++) {
            lua_Integer i = forward ? k : n - 1 - k;
            lua_geti(L, 1, f + i);
            lua_seti(L, tt, t + i);
            if (k % TABLE_SLICE == TABLE_SLICE - 1)
                hs__lua_check_time(L);
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

/* table.sort as a heapsort that looks at the clock: the default comparison runs in C, where
 * the hook never fires. With cmp (argument 2) each comparison is a call. */
static int sort_less(lua_State *L, int a, int b)
{
    if (lua_isnil(L, 2))
        return lua_compare(L, a, b, LUA_OPLT);
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

static void sift_down(lua_State *L, lua_Integer root, lua_Integer end, unsigned *steps)
{
    for (;;) {
        if (++*steps % TABLE_SLICE == 0)
            hs__lua_check_time(L);
        lua_Integer child = 2 * root;
        if (child > end)
            return;
        lua_geti(L, 1, child);
        if (child + 1 <= end) {
            lua_geti(L, 1, child + 1);
            if (sort_less(L, -2, -1)) {
                child++;
                lua_remove(L, -2);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_geti(L, 1, root);
        if (!sort_less(L, -1, -2)) {
            lua_pop(L, 2);
            return;
        }
        lua_seti(L, 1, child); /* root's value goes down */
        lua_seti(L, 1, root);  /* the larger child's comes up */
        root = child;
    }
}

static int l_table_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    lua_settop(L, 2);
    unsigned steps = 0;
    for (lua_Integer i = n / 2; i >= 1; i--)
        sift_down(L, i, n, &steps);
    for (lua_Integer end = n; end > 1; end--) {
        lua_geti(L, 1, 1);
        lua_geti(L, 1, end);
        lua_seti(L, 1, 1);
        lua_seti(L, 1, end);
        sift_down(L, 1, end - 1, &steps);
    }
    return 0;
}

/* ---- building ---- */

static void build_view(lua_State *L, int profile)
{
    lua_newtable(L);
    int v = lua_gettop(L);
    for (const char *const *g = plain_globals; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, v, *g);
    }
    lua_pushcfunction(L, l_sandbox_rawset);
    lua_setfield(L, v, "rawset");
    lua_pushcfunction(L, l_sandbox_collectgarbage);
    lua_setfield(L, v, "collectgarbage");
    lua_pushcfunction(L, l_sandbox_setmetatable);
    lua_setfield(L, v, "setmetatable");
    for (const char *const *lib = whole_libs; *lib; lib++) {
        push_lib_view(L, *lib, NULL);
        lua_setfield(L, v, *lib);
    }
    push_lib_view(L, "os", profile == HS_SANDBOX_STRICT ? os_removed_strict : os_removed_standard);
    lua_setfield(L, v, "os");
    lua_createtable(L, 0, 1);
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_setfield(L, -3, "traceback");
    lua_pop(L, 1);
    make_readonly(L, "debug");
    lua_setfield(L, v, "debug");
    lua_getglobal(L, "hotsock");
    make_readonly(L, "hotsock");
    lua_setfield(L, v, "hotsock");
    if (profile == HS_SANDBOX_STANDARD) {
        push_lib_view(L, "io", NULL);
        lua_setfield(L, v, "io");
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_VIEW[profile]);

    lua_createtable(L, 0, 3);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_VIEW[profile]);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_pushcclosure(L, env_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ENV_MT[profile]);
}

void hs__sandbox_open(lua_State *L)
{
    /* The real functions the wrappers call, saved before any script can touch them. */
    lua_createtable(L, 0, 5);
    lua_getglobal(L, "require");
    lua_setfield(L, -2, "require");
    lua_getglobal(L, "load");
    lua_setfield(L, -2, "load");
    lua_getglobal(L, "collectgarbage");
    lua_setfield(L, -2, "collectgarbage");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_setfield(L, -3, "searchpath");
    lua_pop(L, 1);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "rep");
    lua_setfield(L, -3, "rep");
    lua_pop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_REAL);

    /* Bounded functions, for every profile (trusted too: the watchdog stays on). */
    lua_getglobal(L, "string");
    hs__lua_open_patterns(L, -1);
    lua_pushcfunction(L, l_string_rep);
    lua_setfield(L, -2, "rep");
    lua_pop(L, 1);
    lua_getglobal(L, "table");
    lua_pushcfunction(L, l_table_concat);
    lua_setfield(L, -2, "concat");
    lua_pushcfunction(L, l_table_sort);
    lua_setfield(L, -2, "sort");
    lua_pushcfunction(L, l_table_move);
    lua_setfield(L, -2, "move");
    lua_pop(L, 1);
    lua_getglobal(L, "debug");
    lua_pushcfunction(L, l_sandbox_sethook);
    lua_setfield(L, -2, "sethook");
    lua_pop(L, 1);
    /* getmetatable("") would hand out the real string table, shared by every script. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_READONLY);
    lua_newtable(L);
    for (const char *const *m = hs_sandbox_default_modules; *m; m++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, *m);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ALLOWED);

    for (int p = HS_SANDBOX_STANDARD; p <= HS_SANDBOX_STRICT; p++) {
        lua_newtable(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_LOADED[p]);
        build_view(L, p);
    }
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ENV_MT[HS_SANDBOX_TRUSTED]);
}

void hs__sandbox_push_loaded(lua_State *L, int profile)
{
    if (profile == HS_SANDBOX_TRUSTED)
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    else
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_LOADED[profile]);
}

int hs_lua_allow_module(struct hs_lua *hl, const char *name)
{
    lua_State *L = hl->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ALLOWED);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        count++;
    }
    if (count >= HS_SANDBOX_MAX_MODULES) {
        lua_pop(L, 1);
        return HS_ETOOBIG;
    }
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    return 0;
}

void hs__sandbox_env(lua_State *L, int profile, const char *script_path)
{
    /* Sized for the six fields set below (each would otherwise grow it: one rehash per reload
     * each time the size doubles). */
    lua_createtable(L, 0, profile == HS_SANDBOX_TRUSTED ? 0 : 6);
    int env = lua_gettop(L);
    if (profile == HS_SANDBOX_TRUSTED) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV_MT[profile]);
        lua_setmetatable(L, env);
        lua_pushnil(L);
        return;
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    hs__sandbox_push_loaded(L, profile); /* shared by the profile's scripts (docs/state.md) */
    int loaded = lua_gettop(L);
    lua_newtable(L); /* files */
    int files = lua_gettop(L);
    if (profile == HS_SANDBOX_STANDARD) {
        lua_createtable(L, 0, 5);
        lua_getglobal(L, "package");
        for (int i = 0; i < 3; i++) {
            static const char *const copied[] = {"path", "cpath", "config"};
            lua_getfield(L, -1, copied[i]);
            lua_setfield(L, -3, copied[i]);
        }
        lua_pop(L, 1);
        push_real(L, "searchpath");
        lua_setfield(L, -2, "searchpath");
        lua_pushvalue(L, loaded);
        lua_setfield(L, -2, "loaded");
        lua_pushvalue(L, -1);
        lua_setfield(L, env, "package");
    } else {
        /* Lua modules next to the script and in its lua/ directory, nowhere else. */
        const char *slash = strrchr(script_path, '/');
        size_t dl = slash ? (size_t)(slash - script_path) : 1;
        const char *dir = slash ? script_path : ".";
        static const char *const tails[] = {"/?.lua;", "/?/init.lua;", "/lua/?.lua;",
                                            "/lua/?/init.lua"};
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int i = 0; i < 4; i++) {
            luaL_addlstring(&b, dir, dl);
            luaL_addstring(&b, tails[i]);
        }
        luaL_pushresult(&b);
    }
    lua_pushvalue(L, env);
    lua_pushvalue(L, loaded);
    lua_pushvalue(L, files);
    lua_pushvalue(L, -4);
    lua_pushinteger(L, profile);
    lua_pushcclosure(L, l_sandbox_require, 5);
    lua_setfield(L, env, "require");
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_pushcclosure(L, l_sandbox_load, 1);
    lua_setfield(L, env, "load");
    if (profile == HS_SANDBOX_STANDARD) {
        lua_pushvalue(L, env);
        lua_pushcclosure(L, l_sandbox_loadfile, 1);
        lua_setfield(L, env, "loadfile");
        lua_pushvalue(L, env);
        lua_pushcclosure(L, l_sandbox_dofile, 1);
        lua_setfield(L, env, "dofile");
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV_MT[profile]);
    lua_setmetatable(L, env);
    lua_remove(L, loaded);
}
