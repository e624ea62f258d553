/* The req table of HTTP handlers, filled in on first read. Building every field of every
 * request (the headers table with a string per name and value, ip, version, ...) was most of
 * the binding's cost on a small request, and most scripts read two or three fields. So a new
 * req holds method and path; the rest of the request head is copied (one memcpy per piece) into
 * the tail of the res box, which the req already keeps alive, and a field is made from that
 * copy the first time it is read, then stored in the table like any other. The copy, not the
 * connection's input, is the source: it stays valid after the request, after a wait in
 * on_request and after the connection is gone.
 *
 * What scripts see stays a plain table: reads through the __index metamethod, pairs() through
 * __pairs (which fills in every field first), and a field the script assigns before reading it
 * is the script's (__newindex forgets the lazy one). rawget and next see only the fields read
 * so far. */
#include "core/conn.h"
#include "core/hs.h"
#include "core/lua_http_internal.h"
#include "core/lua_internal.h"

#include <string.h>
#include <strings.h>

const char hs__req_res_key = 'r';

/* The lazy fields, one bit each. */
enum {
    F_TARGET = 1 << 0,
    F_QUERY = 1 << 1,
    F_VERSION = 1 << 2,
    F_PEER = 1 << 3,
    F_IP = 1 << 4,
    F_TLS = 1 << 5,
    F_HEADERS = 1 << 6,
    F_ALL = (1 << 7) - 1,
};

/* A piece of the copied head: bytes[off .. off+len). */
struct piece {
    uint32_t off;
    uint32_t len;
};

/* The request head as copied into the res box, after struct res_box. */
struct req_copy {
    unsigned lazy;       /* F_* bits of the fields not yet in the table */
    int minor;           /* HTTP/1.<minor> */
    int tls;             /* 1: the connection is encrypted (the tls_* pieces are set) */
    struct piece target; /* the request-target as sent */
    struct piece query;  /* after '?' */
    struct piece peer;   /* "addr:port" */
    struct piece tls_version, tls_cipher, tls_sni, tls_alpn; /* len 0: absent (sni, alpn) */
    uint32_t nheaders;     /* field lines, at most HS_HTTP_MAX_HEADERS */
    struct piece fields[]; /* name, value of each field line, in order */
};

/* Where the copy starts in the box: after struct res_box, aligned for struct req_copy. */
#define COPY_AT                                                                                    \
    ((sizeof(struct res_box) + _Alignof(struct req_copy) - 1) & ~(_Alignof(struct req_copy) - 1))

/* The copied bytes, after the field pieces. */
static const char *copy_bytes(const struct req_copy *rq)
{
    return (const char *)&rq->fields[2 * rq->nheaders];
}

/* Appends s[0..n) at *at; returns its piece. */
static struct piece put(char *bytes, size_t *at, const char *s, size_t n)
{
    struct piece p = {(uint32_t)*at, (uint32_t)n};
    if (n)
        memcpy(bytes + *at, s, n);
    *at += n;
    return p;
}

HS_HOT struct res_box *hs__lua_http_push_exchange(lua_State *L, struct hs_http_conn *h,
                                                  const struct hs_http_request *req,
                                                  const char *path, size_t path_len,
                                                  struct hs_conn *c)
{
    const char *peer = hs_conn_peer(c);
    size_t peer_len = strlen(peer);
    struct hs_conn_tls_info ti;
    int tls = hs_conn_tls_info(c, &ti) == 0;
    size_t sni_len = tls && ti.sni ? strlen(ti.sni) : 0;
    size_t nbytes = req->target_len + req->query_len + peer_len;
    if (tls)
        nbytes += strlen(ti.version) + strlen(ti.cipher) + sni_len + strlen(ti.alpn);
    for (size_t i = 0; i < req->num_headers; i++)
        nbytes += req->headers[i].name_len + req->headers[i].value_len;

    /* method, path, the res link, body: no rehash before the first lazy field. */
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, req->method, req->method_len);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, path, path_len);
    lua_setfield(L, -2, "path");
    hs__push_proxy_info(L, c); /* nil unless a PROXY listener: no field */
    if (lua_isnil(L, -1))
        lua_pop(L, 1);
    else
        lua_setfield(L, -2, "proxy");
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs__lua_from_state(L)->req_mt_ref);
    lua_setmetatable(L, -2);

    size_t size =
        COPY_AT + sizeof(struct req_copy) + 2 * req->num_headers * sizeof(struct piece) + nbytes;
    struct res_box *b = hs__box_new(L, HS__BOX_RES, size, 1);
    b->h = h;
    b->status = 200;
    struct req_copy *rq = (struct req_copy *)((char *)b + COPY_AT);
    rq->lazy = F_ALL;
    rq->minor = req->minor_version;
    rq->tls = tls;
    rq->nheaders = (uint32_t)req->num_headers;
    char *bytes = (char *)&rq->fields[2 * rq->nheaders];
    size_t at = 0;
    rq->target = put(bytes, &at, req->target, req->target_len);
    rq->query = put(bytes, &at, req->query, req->query_len);
    rq->peer = put(bytes, &at, peer, peer_len);
    if (tls) {
        rq->tls_version = put(bytes, &at, ti.version, strlen(ti.version));
        rq->tls_cipher = put(bytes, &at, ti.cipher, strlen(ti.cipher));
        rq->tls_sni = put(bytes, &at, ti.sni, sni_len);
        rq->tls_alpn = put(bytes, &at, ti.alpn, strlen(ti.alpn));
    }
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct hs_http_header *f = &req->headers[i];
        rq->fields[2 * i] = put(bytes, &at, f->name, f->name_len);
        rq->fields[2 * i + 1] = put(bytes, &at, f->value, f->value_len);
    }
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, &hs__req_res_key);
    return b;
}

/* The copy behind the req table at index 1, or NULL for a table that is not one of ours (a
 * script may lend the metatable to another table). */
static struct req_copy *get_copy(lua_State *L)
{
    lua_rawgetp(L, 1, &hs__req_res_key);
    char *b = hs__box_test(L, -1, HS__BOX_RES);
    lua_pop(L, 1); /* the req table keeps the box alive */
    return b ? (struct req_copy *)(b + COPY_AT) : NULL;
}

int hs__lua_http_req_header(const struct res_box *b, const char *lname, const char **v,
                            size_t *vlen)
{
    const struct req_copy *rq = (const struct req_copy *)((const char *)b + COPY_AT);
    const char *bytes = copy_bytes(rq);
    size_t n = strlen(lname);
    int found = 0;
    *v = NULL;
    *vlen = 0;
    if (!(rq->lazy & F_HEADERS))
        return -1;
    for (uint32_t i = 0; i < rq->nheaders; i++) {
        struct piece name = rq->fields[2 * i], value = rq->fields[2 * i + 1];
        if (name.len != n || strncasecmp(bytes + name.off, lname, n) != 0)
            continue;
        if (found)
            return -1;
        found = 1;
        *v = bytes + value.off;
        *vlen = value.len;
    }
    return found;
}

/* The F_* bit of a field name, or 0. */
static unsigned field_bit(const char *k, size_t n)
{
    switch (n) {
    case 2:
        return memcmp(k, "ip", 2) == 0 ? F_IP : 0;
    case 3:
        return memcmp(k, "tls", 3) == 0 ? F_TLS : 0;
    case 4:
        return memcmp(k, "peer", 4) == 0 ? F_PEER : 0;
    case 5:
        return memcmp(k, "query", 5) == 0 ? F_QUERY : 0;
    case 6:
        return memcmp(k, "target", 6) == 0 ? F_TARGET : 0;
    case 7:
        return memcmp(k, "headers", 7) == 0   ? F_HEADERS
               : memcmp(k, "version", 7) == 0 ? F_VERSION
                                              : 0;
    default:
        return 0;
    }
}

static void push_piece(lua_State *L, const struct req_copy *rq, struct piece p)
{
    lua_pushlstring(L, copy_bytes(rq) + p.off, p.len);
}

/* Pushes the headers table: lowercased names; repeated fields joined with ", ". */
static void push_headers(lua_State *L, const struct req_copy *rq)
{
    const char *bytes = copy_bytes(rq);
    lua_createtable(L, 0, (int)rq->nheaders);
    for (uint32_t i = 0; i < rq->nheaders; i++) {
        struct piece name = rq->fields[2 * i], value = rq->fields[2 * i + 1];
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, name.len);
        for (size_t j = 0; j < name.len; j++) {
            char c = bytes[name.off + j];
            p[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        luaL_pushresultsize(&b, name.len);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            push_piece(L, rq, value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            push_piece(L, rq, value);
        }
        lua_rawset(L, -3);
    }
}

/* Pushes the value of the lazy field bit (nil for tls on a plaintext connection). */
static void push_field(lua_State *L, const struct req_copy *rq, unsigned bit)
{
    switch (bit) {
    case F_TARGET:
        push_piece(L, rq, rq->target);
        break;
    case F_QUERY:
        push_piece(L, rq, rq->query);
        break;
    case F_VERSION:
        lua_pushstring(L, rq->minor ? "1.1" : "1.0");
        break;
    case F_PEER:
        push_piece(L, rq, rq->peer);
        break;
    case F_IP:
        push_piece(L, rq, rq->peer);
        hs__lua_push_ip(L, lua_tostring(L, -1));
        lua_remove(L, -2);
        break;
    case F_TLS:
        if (!rq->tls) {
            lua_pushnil(L);
            break;
        }
        /* The same shape as conn:tls() (hs__push_tls_info). */
        lua_createtable(L, 0, 4);
        push_piece(L, rq, rq->tls_version);
        lua_setfield(L, -2, "version");
        push_piece(L, rq, rq->tls_cipher);
        lua_setfield(L, -2, "cipher");
        if (rq->tls_sni.len) {
            push_piece(L, rq, rq->tls_sni);
            lua_setfield(L, -2, "sni");
        }
        if (rq->tls_alpn.len) {
            push_piece(L, rq, rq->tls_alpn);
            lua_setfield(L, -2, "alpn");
        }
        break;
    default:
        push_headers(L, rq);
        break;
    }
}

/* Stores the lazy field bit (named k) in the req table at index 1 and leaves its value on the
 * stack. */
static void fill(lua_State *L, struct req_copy *rq, unsigned bit, const char *k)
{
    rq->lazy &= ~bit;
    push_field(L, rq, bit);
    lua_pushstring(L, k);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
}

/* __index(req, key): a lazy field the first time it is read, then req's methods (upvalue 1). */
static int l_req_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(L, 2, &n);
        unsigned bit = field_bit(k, n);
        if (bit) {
            struct req_copy *rq = get_copy(L);
            if (rq && (rq->lazy & bit)) {
                fill(L, rq, bit, k);
                return 1;
            }
            lua_pushnil(L);
            return 1;
        }
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* __newindex(req, key, value): only reached for keys absent from the table. A lazy field the
 * script sets before reading it is the script's from then on. */
static int l_req_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(L, 2, &n);
        unsigned bit = field_bit(k, n);
        struct req_copy *rq = bit ? get_copy(L) : NULL;
        if (rq)
            rq->lazy &= ~bit;
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int l_req_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs(req): every field, the lazy ones filled in first. */
static int l_req_pairs(lua_State *L)
{
    static const char *const names[] = {"target", "query", "version", "peer",
                                        "ip",     "tls",   "headers"};
    luaL_checktype(L, 1, LUA_TTABLE);
    struct req_copy *rq = get_copy(L);
    for (unsigned i = 0; rq && rq->lazy && i < sizeof names / sizeof names[0]; i++) {
        if (rq->lazy & (1u << i)) {
            fill(L, rq, 1u << i, names[i]);
            lua_pop(L, 1);
        }
    }
    lua_pushcfunction(L, l_req_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void hs__lua_http_req_meta(lua_State *L)
{
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_req_index, 1);
    lua_setfield(L, -3, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_req_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_req_pairs);
    lua_setfield(L, -2, "__pairs");
}
