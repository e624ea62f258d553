/* on_http_error(status, req, res): an HTTP script's say over the answers the core gives on its
 * own (400 malformed request, 408 timeouts, 413 body too large, 414, 431, 500 handler error,
 * 501, 505). res here is a small capture object, not a live response: res:header(name, value)
 * and res:send(body) record what to send; the status stays the core's and the connection
 * closes after it, as with the default answer. A script without on_http_error, one that does
 * not call res:send, or one that raises, gets the default text body. */
#include "core/addr.h"
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* The capture. User value 1: header lines ("Name: value\r\n"); user value 2: the body. It
 * stands for no C object (the box head stays unused): only its kind is checked. */
struct err_res {
    struct hs__box box; /* the box head, unused */
    int sent;           /* res:send was called */
    int has_type;       /* a Content-Type line is among the headers */
};

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* res:header(name, value): adds one header line to the error answer. */
static int l_err_res_header(lua_State *L)
{
    struct err_res *r = hs__box_check(L, 1, HS__BOX_ERR_RES, "res:header");
    size_t nl, vl;
    const char *name = luaL_checklstring(L, 2, &nl);
    luaL_argcheck(L, nl > 0 && nl < 256, 2, "bad header name");
    for (size_t i = 0; i < nl; i++)
        luaL_argcheck(L, is_tchar((unsigned char)name[i]), 2, "bad header name");
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0)
        luaL_argerror(L, 2, "set by hotsock for an error answer");
    if (lua_type(L, 3) != LUA_TSTRING && lua_type(L, 3) != LUA_TNUMBER)
        luaL_typeerror(L, 3, "string or number");
    const char *v = lua_tolstring(L, 3, &vl);
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        luaL_argcheck(L, !((c < 0x20 && c != '\t') || c == 0x7f), 3,
                      "header value contains a control character");
    }
    luaL_argcheck(L, !r->sent, 1, "error answer already sent");
    if (strcasecmp(name, "content-type") == 0)
        r->has_type = 1;
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "%s: %s\r\n", name, v);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* res:send(body): the body of the error answer. */
static int l_err_res_send(lua_State *L)
{
    struct err_res *r = hs__box_check(L, 1, HS__BOX_ERR_RES, "res:send");
    luaL_checkstring(L, 2);
    luaL_argcheck(L, !r->sent, 1, "error answer already sent");
    r->sent = 1;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 2);
    lua_pushboolean(L, 1);
    return 1;
}

void hs__lua_open_http_error(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"header", l_err_res_header},
        {"send", l_err_res_send},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_ERR_RES, methods, NULL);
    lua_pop(L, 1);
}

void hs__lua_push_ip(lua_State *L, const char *peer)
{
    char ip[HS_ADDR_TEXT];
    lua_pushstring(L, hs_addr_peer_ip(peer, ip, sizeof ip));
}

int hs__lua_http_on_error(struct hs_lua *hl, struct hs_version *v, int req_ref, struct hs_conn *c,
                          int status, struct evbuffer *headers, struct evbuffer *body)
{
    lua_State *L = hl->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v)); /* top + 1 */
    if (lua_getfield(L, -1, "on_http_error") != LUA_TFUNCTION) {
        lua_settop(L, top);
        return 0;
    }
    lua_pop(L, 1);
    struct err_res *r = hs__box_new(L, HS__BOX_ERR_RES, sizeof *r, 2); /* top + 2, kept for after */
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    lua_getfield(L, top + 1, "on_http_error");
    lua_pushinteger(L, status);
    if (req_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    } else {
        /* No request was read: what is known of the client only. */
        lua_createtable(L, 0, 2);
        if (c) {
            lua_pushstring(L, hs_conn_peer(c));
            lua_setfield(L, -2, "peer");
            hs__lua_push_ip(L, hs_conn_peer(c));
            lua_setfield(L, -2, "ip");
        }
    }
    lua_pushvalue(L, top + 2);
    /* The error answer is built now: the hook cannot wait. */
    struct hs__invoke iv = {
        .v = v, .what = "on_http_error", .conn = c, .flags = HS__INVOKE_NO_WAIT};
    int failed = hs__lua_invoke(hl, &iv, 3, 0) != 0;
    int mine = 0;
    if (!failed && r->sent) {
        lua_getiuservalue(L, top + 2, 1);
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            size_t ll;
            lua_rawgeti(L, -1, i);
            const char *line = lua_tolstring(L, -1, &ll);
            evbuffer_add(headers, line, ll);
            lua_pop(L, 1);
        }
        if (!r->has_type)
            evbuffer_add_printf(headers, "Content-Type: text/plain; charset=utf-8\r\n");
        size_t bl;
        lua_getiuservalue(L, top + 2, 2);
        const char *b = lua_tolstring(L, -1, &bl);
        evbuffer_add(body, b, bl);
        mine = 1;
    }
    lua_settop(L, top);
    return mine;
}
