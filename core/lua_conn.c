/* The conn and udp objects seen from Lua. Every conn method follows one template: check
 * arguments (misuse raises), then if the connection is gone return nil, "closed", else act
 * and return true or nil, token. */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push_result(lua_State *L, int r)
{
    if (r == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return hs__lua_fail(L, r);
}

/* With Lua 5.4's userdata header (40 bytes) and two user values (16 each), a 48-byte box is a
 * 120-byte block, malloc's 128-byte chunk: a field more costs every connection 16 bytes. */
_Static_assert(sizeof(struct hs__conn_box) <= 48, "the conn box outgrew its malloc chunk");

const struct hs__conn_ext hs__conn_ext_none = {.pipe_done_ref = LUA_NOREF,
                                               .pipe_file_ref = LUA_NOREF};

struct hs__conn_ext *hs__conn_x(struct hs__conn_box *box)
{
    if (box->x == NULL) {
        struct hs__conn_ext *x = malloc(sizeof *x);
        if (x == NULL)
            return NULL;
        *x = hs__conn_ext_none;
        box->x = x;
    }
    return box->x;
}

struct hs__conn_ext *hs__conn_x_check(lua_State *L, struct hs__conn_box *box)
{
    struct hs__conn_ext *x = hs__conn_x(box);
    if (x == NULL)
        luaL_error(L, "not enough memory");
    return x;
}

struct hs__conn_box *hs__conn_box_push(lua_State *L, struct hs_conn *c, struct hs_version *v)
{
    struct hs__conn_box *box = hs__box_new(L, HS__BOX_CONN, sizeof *box, 2); /* ctx, closed peer */
    box->c = c;
    box->id = hs_conn_id(c);
    box->v = v;
    hs_version_ref(v);
    /* conn.ctx is created on first use (l_conn_index): many connections never touch it. */
    lua_pushvalue(L, -1);
    box->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return box;
}

/* conn:send(data, ...) — every argument is a string (or number), queued in order. */
HS_HOT static int l_conn_send(lua_State *L)
{
    struct hs__conn_box *box = hs__conn_box_check(L, 1, "conn:send");
    int n = lua_gettop(L);
    struct iovec iov[16];
    if (n <= 17) {
        /* The usual case, one pass: every argument is checked (and read) before any byte
         * is queued. */
        for (int i = 2; i <= n; i++) {
            size_t len;
            iov[i - 2].iov_base = (void *)(uintptr_t)luaL_checklstring(L, i, &len);
            iov[i - 2].iov_len = len;
        }
        if (hs__box_gone(&box->box))
            return hs__lua_fail(L, HS_ECLOSED);
        return push_result(L, n > 1 ? hs_conn_sendv(box->c, iov, n - 1) : 0);
    }
    for (int i = 2; i <= n; i++)
        luaL_checklstring(L, i, NULL);
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    int r = 0;
    for (int i = 2; i <= n && r == 0; i += 16) {
        int k = 0;
        for (; k < 16 && i + k <= n; k++) {
            size_t len;
            iov[k].iov_base = (void *)(uintptr_t)lua_tolstring(L, i + k, &len);
            iov[k].iov_len = len;
        }
        r = hs_conn_sendv(box->c, iov, k);
    }
    return push_result(L, r);
}

static int l_conn_close(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:close");
    if (hs__box_gone(&box->box) || hs_conn_is_closing(box->c))
        return hs__lua_fail(L, HS_ECLOSED);
    hs_conn_close(box->c, "closed");
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:shutdown() — half-close: the sending side ends once the pending output is written;
 * reading goes on until the peer's end. */
static int l_conn_shutdown(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:shutdown");
    if (hs__box_gone(&box->box) || hs_conn_shut_write(box->c) != 0)
        return hs__lua_fail(L, HS_ECLOSED);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_conn_abort(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:abort");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    hs_conn_abort(box->c, "aborted");
    lua_pushboolean(L, 1);
    return 1;
}

/* __close and __gc: scripts may write `local c <close> = conn`. __gc never has work to do
 * while the connection is open (the registry holds the box). */
static int l_conn_close_meta(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:__close");
    if (box->c != NULL && !hs_conn_is_closing(box->c))
        hs_conn_close(box->c, "closed");
    return 0;
}

static int l_conn_peer(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:peer");
    if (box->c)
        lua_pushstring(L, hs_conn_peer(box->c));
    else
        lua_getiuservalue(L, 1, 2);
    return 1;
}

void hs__push_tls_info(lua_State *L, const struct hs_conn *c)
{
    struct hs_conn_tls_info ti;
    if (c == NULL || hs_conn_tls_info(c, &ti) != 0) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, ti.version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, ti.cipher);
    lua_setfield(L, -2, "cipher");
    if (ti.sni) {
        lua_pushstring(L, ti.sni);
        lua_setfield(L, -2, "sni");
    }
    if (ti.alpn[0]) {
        lua_pushstring(L, ti.alpn);
        lua_setfield(L, -2, "alpn");
    }
}

/* conn:tls() — {version=, cipher=, sni=, alpn=} for an encrypted connection, nil for a
 * plaintext or closed one. */
static int l_conn_tls(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:tls");
    hs__push_tls_info(L, box->c);
    return 1;
}

/* conn:proxy() — the PROXY header the connection began with (hs__push_proxy_info), nil on
 * other listeners and once closed. */
static int l_conn_proxy(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:proxy");
    hs__push_proxy_info(L, box->c);
    return 1;
}

static int l_conn_id(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:id");
    lua_pushinteger(L, (lua_Integer)box->id);
    return 1;
}

static int l_conn_is_closed(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:is_closed");
    lua_pushboolean(L, box->c == NULL || hs_conn_is_closing(box->c));
    return 1;
}

static int l_conn_pending(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:pending");
    lua_pushinteger(L, box->c ? (lua_Integer)hs_conn_pending(box->c) : 0);
    return 1;
}

static int l_conn_generation(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:generation");
    if (box->v == NULL)
        return hs__lua_fail(L, HS_ECLOSED);
    lua_pushinteger(L, hs_version_generation(box->v));
    return 1;
}

static int l_conn_set_framing(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:set_framing");
    struct hs_framing f;
    const char *why = "bad framing";
    if (hs__lua_to_framing(L, 2, &f, &why) != 0)
        return luaL_argerror(L, 2, why);
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    hs_conn_set_framing(box->c, &f);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_conn_framing(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:framing");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    char buf[96];
    hs_framing_format(hs_conn_framing(box->c), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int pause_resume(lua_State *L, int paused)
{
    struct hs__conn_box *box =
        hs__box_check(L, 1, HS__BOX_CONN, paused ? "conn:pause" : "conn:resume");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    hs_conn_pause(box->c, paused);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_conn_pause(lua_State *L)
{
    return pause_resume(L, 1);
}

static int l_conn_resume(lua_State *L)
{
    return pause_resume(L, 0);
}

/* conn:pipe_frame(file_or_nil, done [, max]) — the payload of the next length/fixed frame goes
 * into file (or is discarded when nil) as it arrives; done(conn, bytes) or
 * done(conn, nil, err) runs at the end. */
static int l_conn_pipe_frame(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:pipe_frame");
    struct hs_conn_sink sink = {NULL, NULL};
    if (!lua_isnil(L, 2) && hs__file_sink(L, 2, &sink) != 0)
        return luaL_typeerror(L, 2, "hotsock file or nil");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_Integer max = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, max >= 0, 4, "max must not be negative");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    struct hs__conn_ext *x = hs__conn_x_check(L, box);
    int r = hs_conn_pipe_next(box->c, lua_isnil(L, 2) ? NULL : &sink, (uint64_t)max);
    if (r == -EINVAL)
        return luaL_error(L, "pipe_frame needs length or fixed framing and no pipe pending");
    if (r != 0)
        return push_result(L, r);
    lua_pushvalue(L, 3);
    x->pipe_done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    x->pipe_file_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_conn_tostring(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:__tostring");
    if (box->c == NULL)
        lua_pushfstring(L, "conn#%I (closed)", (lua_Integer)box->id);
    else
        lua_pushfstring(L, "conn#%I %s", (lua_Integer)box->id, hs_conn_peer(box->c));
    return 1;
}

static const luaL_Reg conn_methods[] = {
    {"send", l_conn_send},
    {"close", l_conn_close},
    {"abort", l_conn_abort},
    {"shutdown", l_conn_shutdown},
    {"peer", l_conn_peer},
    {"tls", l_conn_tls},
    {"proxy", l_conn_proxy},
    {"id", l_conn_id},
    {"is_closed", l_conn_is_closed},
    {"pending", l_conn_pending},
    {"generation", l_conn_generation},
    {"set_framing", l_conn_set_framing},
    {"framing", l_conn_framing},
    {"pause", l_conn_pause},
    {"resume", l_conn_resume},
    {"pipe_frame", l_conn_pipe_frame},
    {NULL, NULL},
};

/* conn.ctx is the per-connection table; anything else is a method. The two keys scripts use
 * per message are told apart by address: a short string is interned, so while this closure
 * holds "send" and "ctx" (its second and third upvalues) any key with that text is that very
 * string, and one comparison stands for a table lookup. A method lookup reads nothing of the
 * box (each method checks its own). lua_tostring turns a number key into text in this call's
 * copy of it: no method has such a name, so it finds nothing either way. */
HS_HOT static int l_conn_index(lua_State *L)
{
    const struct hs_lua *hl = hs__lua_from_state(L);
    const char *key = lua_tostring(L, 2);
    if (key == hl->key_send) {
        lua_pushcfunction(L, l_conn_send);
        return 1;
    }
    if (key != hl->key_ctx) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    hs__box_check(L, 1, HS__BOX_CONN, "conn:__index");
    hs__box_push_ctx(L, 1, 1);
    return 1;
}

static int l_conn_newindex(lua_State *L)
{
    return luaL_error(L, "conn fields are read-only; keep your state in conn.ctx");
}

/* ---- UDP sockets ---- */

HS_HOT static int l_udp_send_to(lua_State *L)
{
    struct hs__udp_box *box =
        hs__box_check_hot(L, 1, hs__lua_from_state(L)->udp_hot, HS__BOX_UDP, "sock:send_to");
    size_t plen, dlen;
    const char *peer = luaL_checklstring(L, 2, &plen);
    const char *data = luaL_checklstring(L, 3, &dlen);
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    /* A unixgram client that never bound a name cannot be answered: its doing, not misuse. */
    if (plen == 4 && memcmp(peer, "unix", 4) == 0)
        return hs__lua_fail(L, HS_ENOPEER);
    int r = hs_udp_send_to(box->u, peer, plen, data, dlen);
    if (r == HS_EBADSPEC)
        return luaL_argerror(L, 2, "not an address like 1.2.3.4:5, [::1]:5, /path or @name");
    if (r == HS_ETOOBIG)
        return luaL_argerror(L, 3, "datagram over 65507 bytes");
    if (r == 0)
        hs_stats_bytes_out(hs_version_stats(hs__lua_from_state(L)->running), dlen);
    return push_result(L, r);
}

/* A query: answers from the box's copy, so it works after the socket is gone too. */
static int l_udp_url(lua_State *L)
{
    struct hs__udp_box *box = hs__box_check(L, 1, HS__BOX_UDP, "sock:url");
    lua_pushstring(L, box->url);
    return 1;
}

static int l_udp_tostring(lua_State *L)
{
    struct hs__udp_box *box = hs__box_check(L, 1, HS__BOX_UDP, "sock:__tostring");
    lua_pushfstring(L, "udp %s%s", box->url, hs__box_gone(&box->box) ? " (closed)" : "");
    return 1;
}

/* hs_udp_on_free hook: the socket is being freed (a reload dropped its address), but old code
 * may still hold its box. The box forgets it, and the registry lets it go. Runs outside any
 * Lua call; nothing here allocates, so nothing can raise. */
static void udp_box_gone(struct hs_udp *u, void *arg)
{
    struct hs_lua *hl = arg;
    lua_State *L = hl->L;
    int ref = hs_udp_tag(u);
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) == LUA_TUSERDATA) {
        struct hs__udp_box *box = lua_touserdata(L, -1);
        hs__box_invalidate(&box->box);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    hs_udp_set_tag(u, 0);
}

/* __gc (the Lua state is closing: the live-box table holds every other box): the socket must
 * not call into a state that is gone. */
static int l_udp_gc(lua_State *L)
{
    struct hs__udp_box *box = hs__box_test(L, 1, HS__BOX_UDP);
    if (box == NULL)
        return 0;
    if (!hs__box_gone(&box->box)) {
        hs_udp_on_free(box->u, NULL, NULL);
        hs_udp_set_tag(box->u, 0);
    }
    hs__box_invalidate(&box->box);
    return 0;
}

HS_HOT struct hs__udp_box *hs__udp_box_push(struct hs_lua *hl, lua_State *L, struct hs_udp *u)
{
    /* The socket keeps its box's registry reference: one array read per datagram, where a
     * table keyed by the socket's address cost two lookups (~275 instructions). */
    int ref = hs_udp_tag(u);
    if (ref > 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        return lua_touserdata(L, -1);
    }
    struct hs__udp_box *box = hs__box_new(L, HS__BOX_UDP, sizeof *box, 0);
    snprintf(box->url, sizeof box->url, "%s", hs_udp_url(u));
    snprintf(box->what, sizeof box->what, "on_datagram (%s from ", box->url);
    lua_pushvalue(L, -1);
    hs_udp_set_tag(u, luaL_ref(L, LUA_REGISTRYINDEX));
    /* Only now, with the box referenced, may the socket tell it of its end. */
    box->u = u;
    hs_udp_on_free(u, udp_box_gone, hl);
    return box;
}

void hs__lua_open_conn(lua_State *L)
{
    static const luaL_Reg conn_meta[] = {
        {"__newindex", l_conn_newindex},
        {"__tostring", l_conn_tostring},
        {"__close", l_conn_close_meta},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_CONN, NULL, conn_meta);
    luaL_newlib(L, conn_methods);
    hs__lua_conn_methods_wait(L);
    hs__lua_conn_methods_pipe(L);
    hs__lua_conn_methods_connect(L);
    /* The two strings are the closure's upvalues too, so nothing a script does to the methods
     * table can let them go (and another string take their address). */
    struct hs_lua *hl = hs__lua_from_state(L);
    hl->key_send = lua_pushstring(L, "send");
    hl->key_ctx = lua_pushstring(L, "ctx");
    lua_pushcclosure(L, l_conn_index, 3); /* the methods, "send", "ctx" */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    static const luaL_Reg udp_methods[] = {
        {"send_to", l_udp_send_to},
        {"url", l_udp_url},
        {NULL, NULL},
    };
    static const luaL_Reg udp_meta[] = {
        {"__tostring", l_udp_tostring},
        {"__gc", l_udp_gc},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_UDP, udp_methods, udp_meta);
    lua_pop(L, 1);
}

/* ---- framing specs from Lua ---- */

int hs__lua_to_framing(lua_State *L, int idx, struct hs_framing *f, const char **why)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return hs_framing_parse(lua_tostring(L, idx), f, why);
    if (!lua_istable(L, idx)) {
        *why = "framing must be a string or a table";
        return HS_EBADSPEC;
    }
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, idx, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        *why = "framing table needs a kind string as its first element";
        return HS_EBADSPEC;
    }
    int r = hs_framing_parse(lua_tostring(L, -1), f, why);
    lua_pop(L, 1);
    if (r != 0)
        return r;
    if (lua_getfield(L, idx, "max") != LUA_TNIL) {
        lua_Integer m = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || m <= 0) {
            lua_pop(L, 1);
            *why = "max must be a positive integer";
            return HS_EBADSPEC;
        }
        f->max = (uint64_t)m;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "delim") != LUA_TNIL) {
        size_t dl;
        const char *d = lua_tolstring(L, -1, &dl);
        if (f->kind != HS_FRAMING_LINE || d == NULL || dl == 0 || dl > HS_FRAMING_MAX_DELIM) {
            lua_pop(L, 1);
            *why = "delim must be a line framing string of 1 to 8 bytes";
            return HS_EBADSPEC;
        }
        memcpy(f->delim, d, dl);
        f->delim_len = dl;
        f->strip_cr = dl == 1 && d[0] == '\n';
    }
    lua_pop(L, 1);
    return 0;
}
