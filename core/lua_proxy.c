/* conn:proxy() and req.proxy: the PROXY header a connection began with, as a Lua table. */
#include "core/addr.h"
#include "core/conn.h"
#include "core/lua_internal.h"
#include "core/proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

/* Sub-TLV types inside the SSL TLV (the spec's PP2_SUBTYPE_SSL_*). */
#define SSL_SUB_VERSION 0x21
#define SSL_SUB_CN 0x22
#define SSL_SUB_CIPHER 0x23
#define SSL_SUB_SIG_ALG 0x24
#define SSL_SUB_KEY_ALG 0x25
#define SSL_CLIENT_SSL 0x01 /* the client connected over TLS */
#define SSL_CLIENT_CERT_CONN 0x02
#define SSL_CLIENT_CERT_SESS 0x04

static void set_lstr(lua_State *L, const char *k, const unsigned char *v, size_t n)
{
    lua_pushlstring(L, (const char *)v, n);
    lua_setfield(L, -2, k);
}

/* The SSL TLV: a client byte, a 4-byte verify result, then sub-TLVs (checked like the outer
 * ones: a sub-TLV running past the value ends the walk). */
static void push_ssl_tlv(lua_State *L, const unsigned char *v, size_t n)
{
    lua_createtable(L, 0, 6);
    if (n < 5)
        return;
    lua_pushboolean(L, (v[0] & SSL_CLIENT_SSL) != 0);
    lua_setfield(L, -2, "ssl");
    lua_pushboolean(L, (v[0] & (SSL_CLIENT_CERT_CONN | SSL_CLIENT_CERT_SESS)) != 0);
    lua_setfield(L, -2, "client_cert");
    uint32_t verify = (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
    lua_pushboolean(L, verify == 0);
    lua_setfield(L, -2, "verified");
    static const struct {
        unsigned type;
        const char *name;
    } subs[] = {{SSL_SUB_VERSION, "version"},
                {SSL_SUB_CN, "cn"},
                {SSL_SUB_CIPHER, "cipher"},
                {SSL_SUB_SIG_ALG, "sig_alg"},
                {SSL_SUB_KEY_ALG, "key_alg"}};
    for (size_t off = 5; off + 3 <= n;) {
        unsigned type = v[off];
        size_t len = (size_t)v[off + 1] << 8 | v[off + 2];
        if (off + 3 + len > n)
            break;
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            if (subs[i].type == type)
                set_lstr(L, subs[i].name, v + off + 3, len);
        off += 3 + len;
    }
}

void hs__push_proxy_info(lua_State *L, const struct hs_conn *c)
{
    const struct hs_proxy_header *h = c ? hs_conn_proxy(c) : NULL;
    if (h == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, h->version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, h->local ? "local" : "proxy");
    lua_setfield(L, -2, "command");
    if (!h->local) {
        char text[HS_ADDR_TEXT];
        lua_pushstring(
            L, hs_addr_format((const struct sockaddr *)&h->src, h->src_len, text, sizeof text));
        lua_setfield(L, -2, "source");
        lua_pushstring(
            L, hs_addr_format((const struct sockaddr *)&h->dst, h->dst_len, text, sizeof text));
        lua_setfield(L, -2, "destination");
        lua_pushstring(L, h->socktype == SOCK_DGRAM ? "udp" : "tcp");
        lua_setfield(L, -2, "transport");
    }
    /* Every TLV in order as {type = N, value = bytes}; the common ones also by name. */
    lua_newtable(L);
    const unsigned char *p = h->tlvs, *val;
    size_t left = h->tlvs_len, vlen;
    unsigned type;
    lua_Integer i = 0;
    while (p && hs_proxy_tlv_next(&p, &left, &type, &val, &vlen)) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, type);
        lua_setfield(L, -2, "type");
        set_lstr(L, "value", val, vlen);
        lua_rawseti(L, -2, ++i);
        lua_insert(L, -2); /* the outer table on top, the list under it */
        if (type == HS_PROXY_TLV_ALPN)
            set_lstr(L, "alpn", val, vlen);
        else if (type == HS_PROXY_TLV_AUTHORITY)
            set_lstr(L, "authority", val, vlen);
        else if (type == HS_PROXY_TLV_UNIQUE_ID)
            set_lstr(L, "unique_id", val, vlen);
        else if (type == HS_PROXY_TLV_NETNS)
            set_lstr(L, "netns", val, vlen);
        else if (type == HS_PROXY_TLV_SSL) {
            push_ssl_tlv(L, val, vlen);
            lua_setfield(L, -2, "ssl");
        }
        lua_insert(L, -2); /* the list back on top */
    }
    lua_setfield(L, -2, "tlvs");
}
