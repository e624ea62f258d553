/* hotsock.parse_response: core/http_response.c's parser seen from Lua, for the HTTP client in
 * lua/hotsock/http_client.lua (which does the I/O with hotsock.connect and conn:receive). */
#include "core/hs.h"
#include "core/http_response.h"
#include "core/lua_internal.h"

#include <lauxlib.h>
#include <lua.h>

static const char *const body_names[] = {"none", "length", "chunked", "close"};

/* Pushes the header fields as a table: lowercase name -> value, repeated fields joined with
 * ", " (RFC 9110 section 5.3; Set-Cookie, the exception, is joined too: read it with care). */
static void push_headers(lua_State *L, const struct hs_http_response *res)
{
    lua_createtable(L, 0, (int)res->num_headers);
    for (size_t i = 0; i < res->num_headers; i++) {
        const struct hs_http_header *h = &res->headers[i];
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t k = 0; k < h->name_len; k++) {
            char c = h->name[k];
            luaL_addchar(&b, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
        }
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        }
        lua_rawset(L, -3);
    }
}

/* hotsock.parse_response(buf [, last_len [, head]]): the response head at the front of buf.
 * Returns head_len, res (head_len > 0; the body starts at buf:sub(head_len + 1)), or 0 when the
 * head is incomplete (call again with more bytes and last_len = #buf), or nil, reason when it is
 * malformed. res: status, reason, version ("1.1"), headers, body ("none", "length", "chunked",
 * "close"), length (Content-Length or nil), keep_alive. */
static int l_hotsock_parse_response(lua_State *L)
{
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    lua_Integer last = luaL_optinteger(L, 2, 0);
    int head = lua_toboolean(L, 3);
    struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];
    struct hs_http_response res = {.headers = hdrs, .headers_cap = HS_HTTP_MAX_HEADERS};

    luaL_argcheck(L, last >= 0 && (size_t)last <= len, 2, "last_len out of range");
    int r = hs_http_parse_response(buf, len, (size_t)last, head, NULL, &res);
    if (r == HS_AGAIN) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (r < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, res.why);
        return 2;
    }
    lua_pushinteger(L, r);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, res.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, res.reason, res.reason_len);
    lua_setfield(L, -2, "reason");
    lua_pushfstring(L, "1.%d", res.minor_version);
    lua_setfield(L, -2, "version");
    push_headers(L, &res);
    lua_setfield(L, -2, "headers");
    lua_pushstring(L, body_names[res.body]);
    lua_setfield(L, -2, "body");
    if (res.content_length >= 0) {
        lua_pushinteger(L, (lua_Integer)res.content_length);
        lua_setfield(L, -2, "length");
    }
    lua_pushboolean(L, res.keep_alive);
    lua_setfield(L, -2, "keep_alive");
    return 2;
}

void hs__lua_open_http_client(lua_State *L)
{
    lua_pushcfunction(L, l_hotsock_parse_response);
    lua_setfield(L, -2, "parse_response");
}
