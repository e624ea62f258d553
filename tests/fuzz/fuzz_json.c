/* libFuzzer target for hotsock.json (core/lua_json.c) in a lua_State. Each input is decoded;
 * when it decodes, the value is encoded, decoded again and encoded again. The fuzzer looks
 * for:
 *   - any Lua error out of decode or encode (bad input must give nil, err, never raise),
 *   - a decode error message not of the form "json: <why> at byte N" with N within the input,
 *   - an encoding of decoded input that does not decode again, or whose re-encoding differs
 *     (encode(decode(x)) is a fixed point after one round),
 *   - memory errors and leaks (ASan, UBSan) in the parser and the encoder's buffer. */
#include "core/lua_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char driver[] =
    "local json, input = ...\n"
    "local v, err = json.decode(input)\n"
    "if v == nil and err ~= nil then\n"
    "  local at = tonumber(err:match('^json: [^\\n]- at byte (%d+)$'))\n"
    "  assert(at and at >= 1 and at <= #input + 1, 'bad decode error: ' .. err)\n"
    "  return\n"
    "end\n"
    "local once = assert(json.encode(v))\n"
    "local again, err2 = json.decode(once)\n"
    "assert(err2 == nil, err2)\n"
    "local twice = assert(json.encode(again))\n"
    "assert(once == twice, 'encode(decode(x)) is not stable')\n";

static lua_State *L;
static int driver_ref, json_ref;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    hs__lua_open_json(L);
    lua_getfield(L, -1, "json");
    json_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, driver, sizeof driver - 1, "driver", "t") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, json_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "finding: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
