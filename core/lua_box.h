/* The one shape of a Lua object that stands for a C object (a "box"): a full userdata whose
 * first member is a struct hs__box holding the C object's pointer, with one metatable per kind
 * made once per state. C owns (or borrows) the object; when the object goes away C invalidates
 * the box (obj = NULL), and from then on the box's I/O methods answer nil, "closed"
 * (hs__lua_fail(L, HS_ECLOSED), core/errtok.h) while its queries keep answering from what the
 * box kept. A box outliving its object is normal, never a crash. Misuse (a method called on
 * anything but its own kind) raises an error that names the method and the kind expected. Used by
 * the binding files only (core/lua_*.c). */
#ifndef HS_LUA_BOX_H
#define HS_LUA_BOX_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

/* Every kind of box; each has one metatable per state (hs__box_meta). */
enum hs__box_kind {
    HS__BOX_CONN,    /* "hotsock.conn": a stream connection, accepted or outbound */
    HS__BOX_UDP,     /* "hotsock.udp": a listening UDP socket (on_datagram's sock) */
    HS__BOX_UDP_OUT, /* "hotsock.udp_client": an outbound datagram socket (hotsock.udp) */
    HS__BOX_TIMER,   /* "hotsock.timer": hotsock.after / hotsock.every */
    HS__BOX_FILE,    /* "hotsock.file": hotsock.create_file */
    HS__BOX_RES,     /* "hotsock.http.response": on_request's res */
    HS__BOX_ERR_RES, /* "hotsock.http.error_response": on_http_error's res (a capture) */
    HS__BOX_WS,      /* "hotsock.ws": a WebSocket */
    HS__BOX_SUB,     /* "hotsock.subscription": hotsock.subscribe */
    HS__BOX_TASK,    /* "hotsock.task": hotsock.spawn (lua_join.c) */
    HS__BOX_KINDS
};

/* The head of every box. */
struct hs__box {
    void *obj; /* the C object; NULL once it is gone (or, for a kind without one, unused) */
};

/* The first member of a box struct: the head, under the typed name the kind's file uses
 * (box->c for a conn). Both name the same pointer: the box functions write it as void *, the
 * kind's code reads it typed, which a union allows (C11 6.5.2.3; object pointers share one
 * representation on every platform hotsock builds for). */
#define HS__BOX_HEAD(type, name)                                                                   \
    union {                                                                                        \
        struct hs__box box;                                                                        \
        type *name;                                                                                \
    }

/* Creates the metatable of kind in the registry the first time (with __name, __index = a table
 * of `methods` when methods is not NULL, and the metamethods in `meta`, which may be NULL) and
 * remembers it in the state's context for hs__box_check. Leaves the metatable on the stack and
 * returns 1 when it was made now, 0 when it existed (then nothing is added to it). */
int hs__box_meta(lua_State *L, enum hs__box_kind kind, const luaL_Reg *methods,
                 const luaL_Reg *meta);

/* Pushes a new box of kind: size bytes (at least sizeof(struct hs__box)), zeroed, so obj is NULL
 * until the caller sets it (a harmless state: a Lua error before then leaks nothing), with nuv
 * user values and the kind's metatable (made before by hs__box_meta). Returns the box, which
 * Lua owns. Raises on memory exhaustion. */
void *hs__box_new(lua_State *L, enum hs__box_kind kind, size_t size, int nuv);

/* Pushes the ctx table of the box at idx, a positive index (a script's per-object state,
 * conn.ctx and ws.ctx), kept in its user value uv and made on first use: most boxes never
 * touch it. Inline: a handler may read its ctx for every message. */
static inline void hs__box_push_ctx(lua_State *L, int idx, int uv)
{
    if (lua_getiuservalue(L, idx, uv) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, idx, uv);
    }
}

/* hs__box_check and hs__box_test (the box of a kind at a stack index) are inline functions
 * in core/lua_internal.h: they read the state's context, which this header does not know. */

/* Raises the misuse error of hs__box_check: "bad argument #idx to 'METHOD' (hotsock.KIND
 * expected, got TYPE)". Does not return. */
int hs__box_type_error(lua_State *L, int idx, enum hs__box_kind kind, const char *method);

/* Whether the box's C object is gone. */
static inline int hs__box_gone(const struct hs__box *b)
{
    return b->obj == NULL;
}

/* The C object died (or was handed elsewhere): the box no longer reaches it. Nothing here
 * touches Lua, so C may call it from any callback. */
static inline void hs__box_invalidate(struct hs__box *b)
{
    b->obj = NULL;
}

/* The metatable name of kind ("hotsock.conn"). */
const char *hs__box_name(enum hs__box_kind kind);

#endif
