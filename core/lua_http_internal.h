/* What the HTTP binding's files share: core/lua_http.c (req, the app callbacks, the handler)
 * and core/lua_http_res.c (the res object). Nothing else includes this. */
#ifndef HS_LUA_HTTP_INTERNAL_H
#define HS_LUA_HTTP_INTERNAL_H

#include <errno.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/errtok.h"
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/lua_box.h"

struct hs_file_cache;
struct hs_lua;
struct hs_script;
struct hs_version;

#define HS_REQ_MT "hotsock.http.request"

/* Per-connection data of the binding: the app data of its hs_http_conn. */
struct lua_http {
    struct hs_lua *hl;
    struct hs_script *s;  /* the listener's script */
    struct hs_version *v; /* the version the current request runs (referenced) */
    int req_ref;          /* registry: the current request table, or LUA_NOREF */
    int res_ref;          /* registry: the current response box, or LUA_NOREF */
    int req_slot;         /* registry slot req_ref names while set, kept for the conn's life */
    int res_slot;         /* the same for res_ref; LUA_NOREF before the first request */
    int done_ref;         /* registry: the pending pipe_body callback, or LUA_NOREF */
    int file_ref;         /* registry: the file being piped into (kept alive), or LUA_NOREF */
    struct hs_file_cache *files; /* the process's file cache once send_file used it */
    /* The current response's header lines set so far by res:header ("Name: value\r\n", in
     * order): malloc'd on the first, emptied when the request is over (hs__lua_http_detach,
     * which frees it only when large) and freed with the connection. */
    char *lines;
    size_t lines_len; /* bytes used */
    size_t lines_cap; /* bytes allocated */
};

/* A response as Lua sees it. User value 1: the request table. Its header lines are kept in
 * the connection's struct lua_http while it is current (b->h set). */
struct res_box {
    /* The box head (core/lua_box.h): NULL once finished or once the connection is gone. */
    HS__BOX_HEAD(struct hs_http_conn, h);
    int status;   /* 200 unless res:status said otherwise */
    int started;  /* res:write began a streamed body */
    int finished; /* a res method finished it */
    int close;    /* Connection: close was asked for */
};

/* Ends the current request's hold on its slot (req_ref, res_ref): the slot stays the
 * connection's, holding false (not nil: a nil hole in the registry's array could be handed out
 * again by luaL_ref, which takes the array's border when its free list is empty). Setting a
 * held slot costs a rawseti where luaL_ref and luaL_unref cost ~330 and ~200 instructions. */
static inline void slot_clear(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF)
        return;
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

static inline void unref(lua_State *L, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

/* nil and the error token of code (core/errtok.h). */
static inline int push_fail(lua_State *L, int code)
{
    return hs__lua_fail(L, code);
}

/* Whether the box still reaches a connection that can take the response: on_close clears
 * b->h, but a connection closing (flushing its last bytes) refuses already. */
static inline int res_gone(const struct res_box *b)
{
    return hs__box_gone(&b->box) || !hs_http_conn_is_open(b->h);
}

/* The request is over for the script: the res box no longer reaches the connection, and the
 * registry references of lh's req and res are dropped (core/lua_http.c). */
void hs__lua_http_detach(lua_State *L, struct lua_http *lh);

/* Address of the light userdata key under which a req table keeps its res box. */
extern const char hs__req_res_key;

/* Pushes a new req table for the request head req (path: its normalized path) on connection c
 * and then its res box, linked to each other and to h; returns the box. req's strings are
 * copied (the req reads them lazily, core/lua_http_req.c), so req may be reused at once. */
struct res_box *hs__lua_http_push_exchange(lua_State *L, struct hs_http_conn *h,
                                           const struct hs_http_request *req, const char *path,
                                           size_t path_len, struct hs_conn *c);

/* The value of request field lname (lowercase) from the copy of the head in the res box b,
 * while the script has neither read nor replaced req.headers (after that the table is what
 * counts). Returns 1 with *v, *vlen pointing into the box (valid while the box lives), 0 with
 * *v NULL when there is no such field, -1 when req.headers must be asked instead (it was read
 * or set, or the field is repeated and its values are joined there). */
int hs__lua_http_req_header(const struct res_box *b, const char *lname, const char **v,
                            size_t *vlen);

/* With the req metatable at -2 and its methods table at -1: sets __index (lazy fields, then
 * the methods), __newindex and __pairs on the metatable and pops the methods table. */
void hs__lua_http_req_meta(lua_State *L);

/* Creates the res metatable the first time (core/lua_http_res.c); leaves the stack as it was. */
void hs__lua_http_open_res(lua_State *L);

#endif
