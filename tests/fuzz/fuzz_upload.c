/* libFuzzer target for the upload protocol's header handling, which is Lua (scripts/upload.lua:
 * cjson, msg_type, file_name, ack). The input is a byte stream from a client: the real framer
 * (core/framing.c, length:i32le with the script's maximum, or the maximum of an armed pipe)
 * cuts it into frames exactly as conn.c does, and each frame goes to the real script in a
 * lua_State, with doubles of `conn` and of the `hotsock` module that behave like the real ones
 * (create_file applies the real name check, hs_filename_check). The fuzzer looks for:
 *   - any Lua error out of the script (a client must not be able to raise a handler error),
 *   - a reply that is not one well-formed frame of JSON,
 *   - a temporary file left neither committed nor aborted once the connection is gone,
 *   - a committed file under a name the check refuses, or with other bytes than were sent.
 * Built only with -DHOTSOCK_FUZZ=ON (clang); HS_UPLOAD_SCRIPT is scripts/upload.lua. */
#include "core/filesink.h"
#include "core/framing.h"
#include "core/hs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The doubles and the driver. Functions the C side calls: begin(), deliver(frame) -> state,
 * finish(reason). state is "closed", or the armed pipe's maximum (0: none armed). */
static const char driver[] =
    "local check, script = ...\n"
    "local cjson = require 'cjson.safe'\n"
    "local open_files = {}\n"
    "local hotsock = { log = function(level, ...) assert(type(level) == 'string') end }\n"
    "function hotsock.check_filename(name) return check(name) end\n"
    "function hotsock.create_file(dir, name)\n"
    "  assert(type(dir) == 'string' and type(name) == 'string', 'create_file misuse')\n"
    "  local ok, why = check(name)\n"
    "  if not ok then return nil, why end\n"
    "  local f = { name = name, data = {}, state = 'open' }\n"
    "  open_files[f] = true\n"
    "  function f:write(s) assert(self.state == 'open') self.data[#self.data + 1] = s\n"
    "    return true end\n"
    "  function f:commit()\n"
    "    assert(self.state == 'open', 'commit twice') self.state = 'committed'\n"
    "    open_files[self] = nil\n"
    "    assert(check(self.name), 'committed a refused name')\n"
    "    local s = table.concat(self.data)\n"
    "    assert(s == self.expect, 'stored bytes differ from the frame')\n"
    "    return #s, ('0'):rep(64)\n"
    "  end\n"
    "  function f:abort() self.state = 'aborted' open_files[self] = nil return true end\n"
    "  return f\n"
    "end\n"
    "package.loaded.hotsock = hotsock\n"
    "local h = assert(loadfile(script, 't'))({ dir = 'unused', max_message = '65536' })\n"
    "local conn, pipe\n"
    "local function new_conn()\n"
    "  local c = { ctx = {}, closed = false }\n"
    "  function c:peer() return '127.0.0.1:5000' end\n"
    "  function c:is_closed() return self.closed end\n"
    "  function c:close() self.closed = true return true end\n"
    "  function c:send(...)\n"
    "    local s = table.concat({ ... })\n"
    "    local n = string.unpack('<i4', s)\n"
    "    assert(n == #s - 4, 'a reply is not one frame')\n"
    "    assert(type(cjson.decode(s:sub(5))) == 'table', 'a reply is not JSON')\n"
    "    return true\n"
    "  end\n"
    "  function c:pipe_frame(file, done, max)\n"
    "    assert(not pipe, 'pipe armed twice')\n"
    "    assert(type(done) == 'function')\n"
    "    pipe = { file = file, done = done, max = max or 0 }\n"
    "    return true\n"
    "  end\n"
    "  return c\n"
    "end\n"
    "function begin() conn, pipe = new_conn(), nil end\n"
    "local function state() return conn.closed and 'closed' or pipe and pipe.max or 0 end\n"
    "function deliver(frame)\n"
    "  if pipe then\n"
    "    local p = pipe\n"
    "    pipe = nil\n"
    "    if p.file then p.file.expect = frame p.file:write(frame) end\n"
    "    p.done(conn, #frame)\n"
    "  else\n"
    "    h.on_message(conn, frame)\n"
    "  end\n"
    "  return state()\n"
    "end\n"
    "function finish(reason)\n"
    "  conn.closed = true\n"
    "  if pipe then local p = pipe pipe = nil p.done(conn, nil, 'closed') end\n"
    "  h.on_close(conn, reason)\n"
    "  assert(next(open_files) == nil, 'a temporary file outlived its connection')\n"
    "end\n";

static lua_State *L;

static int l_check(lua_State *Ls)
{
    size_t len;
    const char *name = luaL_checklstring(Ls, 1, &len);
    const char *why = "bad name";
    if (hs_filename_check(name, len, &why) == 0) {
        lua_pushboolean(Ls, 1);
        return 1;
    }
    luaL_pushfail(Ls);
    lua_pushstring(Ls, why);
    return 2;
}

static int traceback(lua_State *Ls)
{
    luaL_traceback(Ls, Ls, lua_tostring(Ls, 1), 1);
    return 1;
}

/* Calls the driver's global fn with nargs arguments on the stack; aborts on any error. */
static void call(const char *fn, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, fn);
    lua_rotate(L, base + 1, 2);
    if (lua_pcall(L, nargs, nres, base + 1) != LUA_OK) {
        fprintf(stderr, "upload.lua failed in %s: %s\n", fn, lua_tostring(L, -1));
        abort();
    }
    lua_remove(L, base + 1);
}

static void close_state(void)
{
    lua_close(L); /* so that valgrind sees no block lost when the replay exits */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    atexit(close_state);
    luaL_openlibs(L);
    if (luaL_loadbuffer(L, driver, sizeof driver - 1, "=driver") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pushcfunction(L, l_check);
    lua_pushstring(L, HS_UPLOAD_SCRIPT);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_framing f;
    if (hs_framing_parse("length:i32le:max=64k", &f, NULL) != 0)
        abort();
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, data, size);
    call("begin", 0, 0);
    const char *reason = "peer closed";
    size_t resume = 0;
    for (;;) {
        struct hs_frame fr = {0, 0, 0};
        const char *why = "malformed frame";
        int r = hs_framing_next(&f, in, &resume, &fr, &why);
        if (r != 1) {
            if (r != HS_AGAIN)
                reason = why;
            break;
        }
        unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(fr.skip + fr.len));
        lua_pushlstring(L, (const char *)p + fr.skip, (size_t)fr.len);
        call("deliver", 1, 1);
        evbuffer_drain(in, fr.skip + (size_t)fr.len);
        resume = 0;
        int closed = lua_type(L, -1) == LUA_TSTRING;
        lua_Integer pipe_max = closed ? 0 : lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (closed) {
            reason = "closed";
            break;
        }
        /* As conn.c does: an armed pipe's maximum replaces the framing's for that frame. */
        if (hs_framing_parse("length:i32le:max=64k", &f, NULL) != 0)
            abort();
        if (pipe_max > 0)
            f.max = (uint64_t)pipe_max;
    }
    lua_pushstring(L, reason);
    call("finish", 1, 0);
    evbuffer_free(in);
    if (lua_gettop(L) != 0)
        abort();
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
