/* hotsock.create_file(dir, name): the Lua face of filesink (safe, atomic uploads). */
#include "core/filesink.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/lua_internal.h"

#include <string.h>

/* The box owns its sink: __gc frees it (an uncommitted file leaves nothing behind). */
struct file_box {
    HS__BOX_HEAD(struct hs_filesink, f); /* NULL until opened and once freed */
};

static int push_fail(lua_State *L, const char *why)
{
    luaL_pushfail(L);
    lua_pushstring(L, why);
    return 2;
}

/* hotsock.create_file(dir, name) -> file | nil, err */
static int l_hotsock_create_file(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    /* The box exists before the file, so an error below can never leak it. */
    struct file_box *box = hs__box_new(L, HS__BOX_FILE, sizeof *box, 0);
    const char *why = "error";
    int r = hs_filesink_open(dir, name, nl, &box->f, &why);
    /* A bad name gets its reason (a message for people, like check_filename's); a failure of
     * the system, its token: strerror's words vary with the C library. */
    if (r == HS_EPROTO)
        return push_fail(L, why);
    if (r != 0)
        return hs__lua_fail(L, r);
    return 1;
}

/* hotsock.check_filename(name) -> true | nil, reason */
static int l_hotsock_check_filename(lua_State *L)
{
    size_t nl;
    const char *name = luaL_checklstring(L, 1, &nl);
    const char *why = "bad file name";
    if (hs_filename_check(name, nl, &why) != 0)
        return push_fail(L, why);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_file_write(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:write");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (hs__box_gone(&box->box) || hs_filesink_state(box->f) != 0)
        return hs__lua_fail(L, HS_ECLOSED);
    int r = hs_filesink_write(box->f, data, len);
    if (r != 0)
        return hs__lua_fail(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* file:commit() -> bytes, sha256_hex | nil, err */
static int l_file_commit(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:commit");
    if (hs__box_gone(&box->box) || hs_filesink_state(box->f) != 0)
        return hs__lua_fail(L, HS_ECLOSED);
    uint64_t bytes;
    char hex[65];
    int r = hs_filesink_commit(box->f, &bytes, hex);
    if (r != 0)
        return hs__lua_fail(L, r);
    lua_pushinteger(L, (lua_Integer)bytes);
    lua_pushstring(L, hex);
    return 2;
}

static int l_file_abort(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:abort");
    if (!hs__box_gone(&box->box))
        hs_filesink_abort(box->f);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_file_path(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:path");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    lua_pushstring(L, hs_filesink_path(box->f));
    return 1;
}

static int l_file_size(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:size");
    lua_pushinteger(L, hs__box_gone(&box->box) ? 0 : (lua_Integer)hs_filesink_size(box->f));
    return 1;
}

/* __gc: an uncommitted file leaves nothing behind. */
static int l_file_gc(lua_State *L)
{
    struct file_box *box = hs__box_test(L, 1, HS__BOX_FILE);
    if (box == NULL)
        return 0;
    hs_filesink_free(box->f);
    hs__box_invalidate(&box->box);
    return 0;
}

/* __close only aborts: a pipe_frame in progress may still hold the sink. */
static int l_file_close(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:__close");
    if (!hs__box_gone(&box->box))
        hs_filesink_abort(box->f);
    return 0;
}

static int l_file_tostring(lua_State *L)
{
    struct file_box *box = hs__box_check(L, 1, HS__BOX_FILE, "file:__tostring");
    if (hs__box_gone(&box->box))
        lua_pushliteral(L, "file (closed)");
    else
        lua_pushfstring(L, "file %s (%s)", hs_filesink_path(box->f),
                        hs_filesink_state(box->f) == 1   ? "committed"
                        : hs_filesink_state(box->f) == 0 ? "open"
                                                         : "aborted");
    return 1;
}

static int sink_write(void *sink, const void *data, size_t len)
{
    return hs_filesink_write(sink, data, len);
}

int hs__file_sink(lua_State *L, int idx, struct hs_conn_sink *sink)
{
    struct file_box *box = hs__box_test(L, idx, HS__BOX_FILE);
    if (box == NULL || hs__box_gone(&box->box))
        return -1;
    sink->write = sink_write;
    sink->sink = box->f;
    return 0;
}

void hs__lua_open_file(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", l_file_write}, {"commit", l_file_commit}, {"abort", l_file_abort},
        {"path", l_file_path},   {"size", l_file_size},     {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_file_gc},
        {"__close", l_file_close},
        {"__tostring", l_file_tostring},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_FILE, methods, meta);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_hotsock_create_file);
    lua_setfield(L, -2, "create_file");
    lua_pushcfunction(L, l_hotsock_check_filename);
    lua_setfield(L, -2, "check_filename");
}
