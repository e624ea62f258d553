/* The Lua face of WebSocket: req:websocket{...} inside on_request checks the handshake,
 * answers 101 and returns a ws object (send, send_binary, ping, close, pending, peer, id,
 * is_closed, protocol, ctx) whose on_message and on_close run the script. The protocol is
 * core/ws.c and core/ws_codec.c; the handshake's rules are core/ws_handshake.c. */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"
#include "core/ws.h"
#include "core/ws_codec.h"
#include "core/ws_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* User values of a ws box. */
enum {
    UV_CTX = HS__WS_UV_CTX,
    UV_PEER = HS__WS_UV_PEER,
    UV_PROTOCOL = HS__WS_UV_PROTOCOL,
    UV_CALLBACKS = HS__WS_UV_CALLBACKS,
    UV_COUNT = HS__WS_UV_COUNT
};

static int push_result(lua_State *L, int r)
{
    if (r == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return hs__lua_fail(L, r);
}

/* ---- methods ---- */

static int ws_send(lua_State *L, int binary)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:send");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (!binary && !hs_ws_utf8_valid((const unsigned char *)data, len))
        return luaL_argerror(L, 2, "not UTF-8 (binary data goes with ws:send_binary)");
    if (hs__box_gone(&b->box))
        return hs__lua_fail(L, HS_ECLOSED);
    return push_result(L, hs_ws_send(b->ws, data, len, binary));
}

/* ws:send(text) — one text message (it must be UTF-8). */
static int l_ws_send(lua_State *L)
{
    return ws_send(L, 0);
}

/* ws:send_binary(data) — one binary message. */
static int l_ws_send_binary(lua_State *L)
{
    return ws_send(L, 1);
}

/* ws:ping([data]) — a ping with up to 125 bytes; the browser answers with a pong. */
static int l_ws_ping(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:ping");
    size_t len;
    const char *data = luaL_optlstring(L, 2, "", &len);
    luaL_argcheck(L, len <= HS_WS_MAX_CONTROL, 2, "a ping carries at most 125 bytes");
    if (hs__box_gone(&b->box))
        return hs__lua_fail(L, HS_ECLOSED);
    return push_result(L, hs_ws_ping(b->ws, data, len));
}

/* The codes a server may send (RFC 6455 §7.4 and IANA's registry): 1000-1003, 1007-1014, and
 * 3000-4999. */
static int code_sendable(lua_Integer c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* ws:close([code [, reason]]) — starts the close handshake (default code 1000). */
static int l_ws_close(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:close");
    lua_Integer code = luaL_optinteger(L, 2, HS_WS_NORMAL);
    size_t len;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    luaL_argcheck(L, code_sendable(code), 2,
                  "close code must be 1000-1003, 1007-1014 or 3000-4999");
    luaL_argcheck(L, len <= HS_WS_MAX_REASON, 3, "a close reason has at most 123 bytes");
    luaL_argcheck(L, hs_ws_utf8_valid((const unsigned char *)reason, len), 3,
                  "a close reason must be UTF-8");
    if (hs__box_gone(&b->box))
        return hs__lua_fail(L, HS_ECLOSED);
    return push_result(L, hs_ws_close(b->ws, (int)code, reason, len));
}

/* __close: `local ws <close> = ...` closes it normally. */
static int l_ws_close_meta(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:__close");
    if (!hs__box_gone(&b->box))
        hs_ws_close(b->ws, HS_WS_NORMAL, NULL, 0);
    return 0;
}

static int l_ws_pending(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:pending");
    lua_pushinteger(L, hs__box_gone(&b->box) ? 0 : (lua_Integer)hs_ws_pending(b->ws));
    return 1;
}

static int l_ws_peer(lua_State *L)
{
    hs__box_check(L, 1, HS__BOX_WS, "ws:peer");
    lua_getiuservalue(L, 1, UV_PEER);
    return 1;
}

static int l_ws_id(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:id");
    lua_pushinteger(L, (lua_Integer)b->id);
    return 1;
}

static int l_ws_is_closed(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:is_closed");
    lua_pushboolean(L, hs__box_gone(&b->box) || hs_ws_conn(b->ws) == NULL ||
                           hs_conn_is_closing(hs_ws_conn(b->ws)));
    return 1;
}

/* ws:protocol() — the subprotocol agreed on, or nil. */
static int l_ws_protocol(lua_State *L)
{
    hs__box_check(L, 1, HS__BOX_WS, "ws:protocol");
    lua_getiuservalue(L, 1, UV_PROTOCOL);
    return 1;
}

static int l_ws_tostring(lua_State *L)
{
    struct hs__ws_box *b = hs__box_check(L, 1, HS__BOX_WS, "ws:__tostring");
    lua_getiuservalue(L, 1, UV_PEER);
    if (hs__box_gone(&b->box))
        lua_pushfstring(L, "ws#%I (closed)", (lua_Integer)b->id);
    else
        lua_pushfstring(L, "ws#%I %s", (lua_Integer)b->id, lua_tostring(L, -1));
    return 1;
}

static const luaL_Reg ws_methods[] = {
    {"send", l_ws_send},   {"send_binary", l_ws_send_binary}, {"ping", l_ws_ping},
    {"close", l_ws_close}, {"pending", l_ws_pending},         {"peer", l_ws_peer},
    {"id", l_ws_id},       {"is_closed", l_ws_is_closed},     {"protocol", l_ws_protocol},
    {NULL, NULL},
};

/* ws.ctx is the per-WebSocket table; anything else is a method. */
static int l_ws_index(lua_State *L)
{
    hs__box_check(L, 1, HS__BOX_WS, "ws:__index");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    const char *key = lua_tostring(L, 2);
    if (key && strcmp(key, "ctx") == 0) {
        lua_pop(L, 1); /* the nil the methods gave */
        hs__box_push_ctx(L, 1, UV_CTX);
    }
    return 1;
}

static int l_ws_newindex(lua_State *L)
{
    return luaL_error(L, "ws fields are read-only; keep your state in ws.ctx");
}

/* ---- the app: core/ws.c callbacks ---- */

/* Pushes callback name of the box (from its callbacks table) and the box; 0 when there is no
 * such callback (nothing pushed). */
static int push_callback(lua_State *L, struct hs__ws_box *b, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    lua_getiuservalue(L, -1, UV_CALLBACKS);
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
        lua_pop(L, 3);
        return 0;
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    return 1;
}

/* Calls the function and arguments on the stack as the box's version. The callbacks of a
 * WebSocket cannot wait (hotsock.sleep raises there): messages are delivered in order, one
 * call each, and a waiting on_message would let the next one overtake it. */
static int call(struct hs__ws_box *b, int nargs, const char *what)
{
    struct hs__invoke iv = {.v = b->v,
                            .what = what,
                            .conn = b->ws ? hs_ws_conn(b->ws) : NULL,
                            .flags = HS__INVOKE_NO_WAIT};
    return hs__lua_invoke(b->hl, &iv, nargs, 0);
}

static void app_message(struct hs_ws *ws, const void *data, size_t len, int binary, void *arg)
{
    struct hs__ws_box *b = arg;
    lua_State *L = b->hl->L;
    hs_stats_message(hs_version_stats(b->v), 0);
    if (b->handle) {
        hs__ws_inbox_push(b, data, len, binary);
        return;
    }
    if (!push_callback(L, b, "on_message"))
        return;
    lua_pushlstring(L, data, len);
    lua_pushstring(L, binary ? "binary" : "text");
    if (call(b, 3, "websocket on_message") != 0)
        hs_ws_close(ws, HS_WS_INTERNAL_ERROR, NULL, 0);
}

static void app_close(struct hs_ws *ws, int code, const char *reason, size_t len, void *arg)
{
    struct hs__ws_box *b = arg;
    lua_State *L = b->hl->L;
    struct hs_conn *c = hs_ws_conn(ws);
    /* The statistics' error count wants a connection reason: a failed WebSocket is a protocol
     * error, a close handshake an orderly close. */
    const char *stat =
        code == HS_WS_ABNORMAL ? reason
        : code == HS_WS_PROTOCOL_ERROR || code == HS_WS_INVALID_DATA || code == HS_WS_TOO_BIG
            ? "protocol error"
            : "closed";
    char buf[HS_WS_MAX_REASON + 1];
    if (code == HS_WS_ABNORMAL) {
        snprintf(buf, sizeof buf, "%.*s", (int)len, reason);
        stat = buf;
    }
    hs_stats_conn_closed(hs_version_stats(b->v), stat, c ? hs_conn_bytes_in(c) : 0,
                         c ? hs_conn_bytes_out(c) : 0);
    if (push_callback(L, b, "on_close")) {
        lua_pushinteger(L, code);
        lua_pushlstring(L, reason, len);
        call(b, 3, "websocket on_close");
    }
    hs__box_invalidate(&b->box);
    if (b->handle)
        hs__ws_inbox_closed(b, code, reason, len);
    luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
    b->self_ref = LUA_NOREF;
    struct hs_version *v = b->v;
    b->v = NULL;
    hs_version_unref(v);
}

static const struct hs_ws_app lua_ws_app = {
    .on_message = app_message,
    .on_close = app_close,
};

/* ---- the upgrade ---- */

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Checks the options table at 2 (misuse raises) and leaves a callbacks table on the stack
 * (with handle, when given). Returns max_message. */
static uint64_t check_options(lua_State *L)
{
    static const char *const known[] = {"on_message", "handle",      "on_close",
                                        "protocols",  "max_message", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        int i = 0;
        while (known[i] && strcmp(known[i], k) != 0)
            i++;
        if (!known[i])
            luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'", k));
    }
    lua_createtable(L, 0, 2);
    int mt = lua_getfield(L, 2, "on_message");
    int h = lua_getfield(L, 2, "handle");
    if ((mt == LUA_TFUNCTION) == (h == LUA_TFUNCTION) || (mt != LUA_TNIL && mt != LUA_TFUNCTION) ||
        (h != LUA_TNIL && h != LUA_TFUNCTION))
        luaL_argerror(L, 2, "give one function: on_message, or handle (which may wait)");
    lua_setfield(L, -3, "handle");
    lua_setfield(L, -2, "on_message");
    int t = lua_getfield(L, 2, "on_close");
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_argerror(L, 2, "on_close must be a function");
    lua_setfield(L, -2, "on_close");
    t = lua_getfield(L, 2, "protocols");
    if (t == LUA_TTABLE) {
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
            size_t n;
            const char *p = lua_tolstring(L, -1, &n);
            int ok = lua_type(L, -1) == LUA_TSTRING && n > 0 && n < 64;
            for (size_t j = 0; ok && j < n; j++)
                ok = is_tchar((unsigned char)p[j]);
            if (!ok)
                luaL_argerror(L, 2, "protocols must be a list of tokens (1 to 63 characters)");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (t != LUA_TNIL) {
        luaL_argerror(L, 2, "protocols must be a list of strings");
    }
    lua_pop(L, 1);
    uint64_t max = HS_DEFAULT_WS_MAX_MESSAGE;
    if (lua_getfield(L, 2, "max_message") != LUA_TNIL) {
        lua_Integer m = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || m <= 0 || m > HS_WS_MAX_MESSAGE_LIMIT)
            luaL_argerror(L, 2, "max_message must be an integer from 1 to 2^31 - 1");
        max = (uint64_t)m;
    }
    lua_pop(L, 1);
    return max;
}

/* Reads header name of the request table at 1 into the handshake fields. */
static const char *req_header(lua_State *L, const char *name, size_t *len)
{
    const char *s = NULL;
    *len = 0;
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        if (lua_getfield(L, -1, name) == LUA_TSTRING)
            s = lua_tolstring(L, -1, len); /* stays valid: the headers table keeps it */
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return s;
}

/* Pushes the first of the script's protocols (the table in the options at 2) that the client
 * offered, or nil. The server's order decides. */
static void pick_protocol(lua_State *L)
{
    size_t olen;
    const char *offered = req_header(L, "sec-websocket-protocol", &olen);
    if (offered == NULL || lua_getfield(L, 2, "protocols") != LUA_TTABLE) {
        if (offered != NULL)
            lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);
        if (hs_ws_list_has(offered, olen, p, n)) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    lua_pushnil(L);
}

/* Answers a refused handshake (status 400 or 426) and finishes the exchange. */
static int refuse(lua_State *L, struct hs_http_conn *h, int status, const char *why)
{
    char hdrs[128], body[160];
    int n = snprintf(hdrs, sizeof hdrs, "Content-Type: text/plain; charset=utf-8\r\n%s",
                     status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
    int blen = snprintf(body, sizeof body, "%s\n", why);
    struct hs_conn *c = hs_http_conn_conn(h);
    if (c)
        hs_log(HS_LOG_INFO, "conn#%llu %s websocket handshake refused (%d): %s",
               (unsigned long long)hs_conn_id(c), hs_conn_peer(c), status, why);
    hs__lua_http_done(L, 1);
    if (hs_http_conn_start(h, status, hdrs, (size_t)n, blen, 0) == 0 &&
        hs_http_conn_write(h, body, (size_t)blen) == 0)
        hs_http_conn_finish(h);
    return hs__lua_fail(L, status == 426 ? HS_EWSVERSION : HS_EHANDSHAKE);
}

/* req:websocket{on_message = f, on_close = f, protocols = {...}, max_message = n} */
static int l_req_websocket(lua_State *L)
{
    uint64_t max = check_options(L); /* callbacks table at 3 */
    struct hs_version *v = NULL;
    struct hs_http_conn *h = hs__lua_http_exchange(L, 1, &v); /* header lines at 4 */
    if (h == NULL)
        return hs__lua_fail(L, HS_ECLOSED);
    struct hs_ws_request r;
    memset(&r, 0, sizeof r);
    lua_getfield(L, 1, "method");
    r.method = lua_tolstring(L, -1, &r.method_len);
    lua_getfield(L, 1, "version");
    r.minor = lua_tostring(L, -1) && strcmp(lua_tostring(L, -1), "1.0") == 0 ? 0 : 1;
    lua_pop(L, 1);
    size_t cl_len, te_len;
    const char *cl = req_header(L, "content-length", &cl_len);
    r.has_body =
        (cl && !(cl_len == 1 && cl[0] == '0')) || req_header(L, "transfer-encoding", &te_len);
    r.upgrade = req_header(L, "upgrade", &r.upgrade_len);
    r.connection = req_header(L, "connection", &r.connection_len);
    r.key = req_header(L, "sec-websocket-key", &r.key_len);
    r.version = req_header(L, "sec-websocket-version", &r.version_len);
    const char *why = NULL;
    int status = hs_ws_handshake_check(&r, &why);
    if (status != 0)
        return refuse(L, h, status, why);
    if (r.method == NULL)
        return refuse(L, h, 400, "no method");
    char accept[HS_WS_ACCEPT_LEN + 1];
    if (hs_ws_accept_key(r.key, r.key_len, accept) != 0)
        return refuse(L, h, 500, "SHA-1 failed");

    /* The box exists, in a harmless state, before anything is handed over. */
    struct hs__ws_box *b = hs__box_new(L, HS__BOX_WS, sizeof *b, UV_COUNT);
    b->self_ref = LUA_NOREF;
    b->timeout_ms = -1;
    b->hl = hs__lua_from_state(L);
    int box = lua_gettop(L);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, box, UV_CALLBACKS);
    lua_getfield(L, 1, "peer");
    lua_setiuservalue(L, box, UV_PEER);
    pick_protocol(L);
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    luaL_addstring(&buf, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    luaL_addstring(&buf, accept);
    luaL_addstring(&buf, "\r\n");
    if (!lua_isnil(L, box + 1)) {
        luaL_addstring(&buf, "Sec-WebSocket-Protocol: ");
        luaL_addstring(&buf, lua_tostring(L, box + 1));
        luaL_addstring(&buf, "\r\n");
    }
    lua_pushvalue(L, 4);
    luaL_addvalue(&buf);
    luaL_pushresult(&buf);
    lua_pushvalue(L, box + 1);
    lua_setiuservalue(L, box, UV_PROTOCOL);

    size_t hlen;
    const char *hdrs = lua_tolstring(L, -1, &hlen);
    hs__lua_http_done(L, 1);
    struct hs_conn *c = hs_http_conn_upgrade(h, hdrs, hlen);
    if (c == NULL)
        return hs__lua_fail(L, HS_ECLOSED);
    struct hs_ws *ws = hs_ws_new(c, b->hl->base, max, &lua_ws_app, b);
    if (ws == NULL) {
        hs_log(HS_LOG_ERROR, "conn#%llu %s: out of memory for a websocket",
               (unsigned long long)hs_conn_id(c), hs_conn_peer(c));
        hs_conn_abort(c, "out of memory");
        return hs__lua_fail(L, -ENOMEM);
    }
    b->ws = ws;
    b->id = hs_conn_id(c);
    b->v = v;
    hs_version_ref(v);
    lua_pushvalue(L, box);
    b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    hs_log(HS_LOG_DEBUG, "conn#%llu %s websocket open", (unsigned long long)b->id, hs_conn_peer(c));
    if (lua_getfield(L, 3, "handle") == LUA_TFUNCTION) {
        /* handle(ws) starts now and may wait; messages queue for its ws:receive. */
        b->handle = 1;
        hs__ws_handle_start(L, b, box, lua_gettop(L));
    }
    lua_pushvalue(L, box);
    return 1;
}

void hs__lua_open_ws(lua_State *L)
{
    lua_pushcfunction(L, l_req_websocket);
    lua_setfield(L, -2, "websocket");
    static const luaL_Reg meta[] = {
        {"__newindex", l_ws_newindex},
        {"__tostring", l_ws_tostring},
        {"__close", l_ws_close_meta},
        {NULL, NULL},
    };
    if (hs__box_meta(L, HS__BOX_WS, NULL, meta)) {
        luaL_newlib(L, ws_methods);
        hs__lua_ws_methods_recv(L);
        lua_pushcclosure(L, l_ws_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* ---- the connection registry (lua_conns.c) ---- */

struct hs_version *hs__lua_ws_of(struct hs_conn *c, int *self_ref)
{
    if (hs_conn_handler_of(c) != &hs_ws_conn_handler || hs_conn_is_closing(c))
        return NULL;
    struct hs__ws_box *b = hs_ws_arg(hs_conn_data(c));
    if (b == NULL || b->ws == NULL || b->self_ref == LUA_NOREF)
        return NULL;
    *self_ref = b->self_ref;
    return b->v;
}

struct hs_conn *hs__lua_ws_check_conn(lua_State *L, int idx)
{
    struct hs__ws_box *b = hs__box_check(L, idx, HS__BOX_WS, "hotsock.broadcast");
    return hs__box_gone(&b->box) ? NULL : hs_ws_conn(b->ws);
}
