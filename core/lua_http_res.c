/* The res object of HTTP handlers (core/lua_http.c has req and the rest of the binding): a
 * userdata with status, header, send, write, finish and send_file, valid for one request;
 * once the request is over or the connection gone its I/O methods answer nil, "closed". */
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/file_cache.h"
#include "core/http_file.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_http_internal.h"
#include "core/lua_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The res at index 1 (misuse raises, naming method); a finished one raises too. */
HS_HOT static struct res_box *check_res(lua_State *L, const char *method)
{
    struct res_box *b =
        hs__box_check_hot(L, 1, hs__lua_from_state(L)->res_hot, HS__BOX_RES, method);
    if (b->finished)
        luaL_error(L, "response already finished");
    return b;
}

static void check_unstarted(lua_State *L, struct res_box *b)
{
    if (b->started)
        luaL_error(L, "response already started (use res:write and res:finish)");
}

/* res:status(code) */
static int l_res_status(lua_State *L)
{
    struct res_box *b = check_res(L, "res:status");
    lua_Integer code = luaL_checkinteger(L, 2);
    luaL_argcheck(L, code >= 200 && code <= 599, 2, "status must be 200..599");
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    b->status = (int)code;
    lua_pushboolean(L, 1);
    return 1;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Checks one header value at idx (string or number); raises on CR, LF, NUL or controls. */
HS_HOT static const char *check_value(lua_State *L, int idx, int arg)
{
    size_t n;
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        luaL_argerror(L, arg, "header value must be a string, a number, a list of them or nil");
    const char *v = lua_tolstring(L, idx, &n);
    /* One table load a byte and no exit inside the loop: a per-byte test with a raise in it
     * cost ~15 instructions a byte, every res:header. */
    /* clang-format off */
    static const unsigned char ctl[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, /* 0x00-0x0f: all but tab */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10-0x1f */
        [0x7f] = 1,                                     /* DEL */
    };
    /* clang-format on */
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= ctl[(unsigned char)v[i]];
    if (bad)
        luaL_argerror(L, arg, "header value contains a control character");
    return v;
}

/* Appends "name: <value at idx>\r\n" to the current response's header lines. Returns 0 or
 * -ENOMEM. */
HS_HOT static int add_line(struct lua_http *lh, const char *name, size_t nl, lua_State *L, int idx)
{
    size_t vl;
    const char *v = lua_tolstring(L, idx, &vl);
    size_t need = lh->lines_len + nl + 2 + vl + 2;
    if (need > lh->lines_cap) {
        size_t cap = lh->lines_cap ? lh->lines_cap : 128;
        while (cap < need)
            cap *= 2;
        char *p = realloc(lh->lines, cap);
        if (p == NULL)
            return -ENOMEM;
        lh->lines = p;
        lh->lines_cap = cap;
    }
    char *p = lh->lines + lh->lines_len;
    memcpy(p, name, nl);
    p += nl;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, v, vl);
    p += vl;
    *p++ = '\r';
    *p++ = '\n';
    lh->lines_len = need;
    return 0;
}

static int push_result(lua_State *L, int r)
{
    if (r != 0)
        return push_fail(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* res:header(name, value): sets name, replacing earlier values; a list gives one line per
 * element, nil removes it. Content-Length and Transfer-Encoding belong to hotsock;
 * Connection may only be "close". */
HS_HOT static int l_res_header(lua_State *L)
{
    struct res_box *b = check_res(L, "res:header");
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    luaL_argcheck(L, nl > 0 && nl < 256, 2, "bad header name");
    for (size_t i = 0; i < nl; i++)
        luaL_argcheck(L, is_tchar((unsigned char)name[i]), 2, "bad header name");
    /* The names with rules of their own, told apart by length first: most names are neither. */
    int is_connection = nl == 10 && strcasecmp(name, "connection") == 0;
    if ((nl == 14 && strcasecmp(name, "content-length") == 0) ||
        (nl == 17 && strcasecmp(name, "transfer-encoding") == 0))
        luaL_argerror(L, 2, "set by hotsock from res:send, res:write or res:send_file");
    if (lua_istable(L, 3)) {
        lua_Integer n = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 3, i);
            check_value(L, -1, 3);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, 3)) {
        check_value(L, 3, 3);
    }
    if (is_connection) {
        luaL_argcheck(L,
                      lua_type(L, 3) == LUA_TSTRING && strcasecmp(lua_tostring(L, 3), "close") == 0,
                      3, "Connection may only be set to \"close\"");
    }
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    if (is_connection) {
        b->close = 1;
        lua_pushboolean(L, 1);
        return 1;
    }
    /* Drop the lines of this name, then append the new ones. */
    struct lua_http *lh = hs_http_conn_app(b->h);
    size_t keep = 0;
    for (size_t i = 0; i < lh->lines_len;) {
        const char *eol = memchr(lh->lines + i, '\n', lh->lines_len - i);
        size_t ll = (size_t)(eol - (lh->lines + i)) + 1;
        if (!(ll > nl && lh->lines[i + nl] == ':' && strncasecmp(lh->lines + i, name, nl) == 0)) {
            memmove(lh->lines + keep, lh->lines + i, ll);
            keep += ll;
        }
        i += ll;
    }
    lh->lines_len = keep;
    int r = 0;
    if (lua_istable(L, 3)) {
        lua_Integer m = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= m && r == 0; i++) {
            lua_geti(L, 3, i);
            r = add_line(lh, name, nl, L, -1);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, 3)) {
        r = add_line(lh, name, nl, L, 3);
    }
    return push_result(L, r);
}

/* Starts the response with the header lines set so far (the box must not be gone). */
static int res_start(struct res_box *b, int status, int64_t length)
{
    const struct lua_http *lh = hs_http_conn_app(b->h);
    return hs_http_conn_start(b->h, status, lh->lines, lh->lines_len, length, b->close);
}

/* Marks the box finished and lets go of the request before finishing in C, which may close
 * the connection (and run on_close) before it returns. */
static int res_finish(lua_State *L, struct res_box *b)
{
    struct hs_http_conn *h = b->h;
    b->finished = 1;
    if (h == NULL) /* a write found the connection broken and it is gone */
        return HS_ECLOSED;
    hs__lua_http_detach(L, hs_http_conn_app(h));
    return hs_http_conn_finish(h);
}

/* res:send([body]) — the whole response with Content-Length; finishes it. */
HS_HOT static int l_res_send(lua_State *L)
{
    struct res_box *b = check_res(L, "res:send");
    size_t len = 0;
    const char *body = luaL_optlstring(L, 2, "", &len);
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    /* IMPORTANT: a write may find the connection broken and close it at once; on_close then
     * clears b->h, so it is checked after every call below. */
    const struct lua_http *lh = hs_http_conn_app(b->h);
    int r = hs_http_conn_send(b->h, b->status, lh->lines, lh->lines_len, body, len, b->close);
    if (r == HS_EFULL && b->h != NULL)
        hs_http_conn_fail(b->h, 500, "output buffer full");
    if (r != 0)
        return push_fail(L, r);
    return push_result(L, res_finish(L, b));
}

/* res:write(chunk) — streams the body (chunked on HTTP/1.1, until close on 1.0). */
static int l_res_write(lua_State *L)
{
    struct res_box *b = check_res(L, "res:write");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    int r = 0;
    if (!b->started) {
        r = res_start(b, b->status, -1);
        b->started = r == 0;
    }
    if (r == 0)
        r = b->h != NULL ? hs_http_conn_write(b->h, data, len) : HS_ECLOSED;
    return push_result(L, r);
}

/* res:finish() — ends a streamed body; without one it is res:send(""). */
static int l_res_finish(lua_State *L)
{
    struct res_box *b = check_res(L, "res:finish");
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    if (!b->started) {
        lua_settop(L, 1);
        return l_res_send(L);
    }
    return push_result(L, res_finish(L, b));
}

/* Reads request header name from the request table of the box at index 1 into *s, *n. */
static void req_field(lua_State *L, const char *name, const char **s, size_t *n)
{
    *s = NULL;
    *n = 0;
    if (lua_getfield(L, -1, name) == LUA_TSTRING)
        *s = lua_tolstring(L, -1, n); /* stays valid: the headers table keeps the string */
    lua_pop(L, 1);
}

/* Fills cond from the copy of the request head in the box (hs__lua_http_req_header).
 * Returns 1, or 0 when req.headers must be asked instead. */
static int cond_from_copy(const struct res_box *b, struct hs_http_file_cond *cond)
{
    return hs__lua_http_req_header(b, "if-none-match", &cond->if_none_match,
                                   &cond->if_none_match_len) >= 0 &&
           hs__lua_http_req_header(b, "if-modified-since", &cond->if_modified_since,
                                   &cond->if_modified_since_len) >= 0 &&
           hs__lua_http_req_header(b, "range", &cond->range, &cond->range_len) >= 0 &&
           hs__lua_http_req_header(b, "if-range", &cond->if_range, &cond->if_range_len) >= 0;
}

/* The process's file cache (core/file_cache.h), made on first use and kept in the registry
 * as a userdata whose __gc frees it when the state closes. NULL when memory ran out. */
static const char FILE_CACHE_KEY = 'f'; /* address: the registry key */

static int l_file_cache_gc(lua_State *L)
{
    struct hs_file_cache **p = lua_touserdata(L, 1);
    hs_file_cache_free(*p);
    *p = NULL;
    return 0;
}

static struct hs_file_cache *file_cache(lua_State *L, struct lua_http *lh)
{
    if (lh->files != NULL)
        return lh->files;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &FILE_CACHE_KEY) == LUA_TUSERDATA) {
        lh->files = *(struct hs_file_cache **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        return lh->files;
    }
    lua_pop(L, 1);
    struct hs_file_cache **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_file_cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *p = hs_file_cache_new(lh->hl->base, NULL);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FILE_CACHE_KEY);
    return lh->files = *p;
}

/* res:send_file(path [, opts]) — a file from the file cache (small ones from memory with the
 * head in one write, others by sendfile), with Last-Modified, ETag, conditional requests (304)
 * and a single Range (206, 416). opts.root: the file must resolve inside it.
 * Returns true once the response is finished, or nil, "not found" | "forbidden" | "is a
 * directory" | ... without starting it, so the script can answer otherwise. */
static int l_res_send_file(lua_State *L)
{
    struct res_box *b = check_res(L, "res:send_file");
    const char *path = luaL_checkstring(L, 2);
    const char *root = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_getfield(L, 3, "root") != LUA_TNIL)
            root = luaL_checkstring(L, -1); /* kept on the stack */
    }
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    struct hs_file_cache *fc = file_cache(L, hs_http_conn_app(b->h));
    if (fc == NULL)
        return push_fail(L, -ENOMEM);

    struct hs_http_file_cond cond;
    memset(&cond, 0, sizeof cond);
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, "method");
    const char *m = lua_tostring(L, -1);
    int get = m && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
    lua_pop(L, 1);
    /* From the request's copy of its head while req.headers is untouched (no table made for
     * it); else, or for a repeated field, from the table. */
    if (get && b->status == 200 && !cond_from_copy(b, &cond)) {
        memset(&cond, 0, sizeof cond);
        if (lua_getfield(L, -1, "headers") == LUA_TTABLE) {
            req_field(L, "if-none-match", &cond.if_none_match, &cond.if_none_match_len);
            req_field(L, "if-modified-since", &cond.if_modified_since, &cond.if_modified_since_len);
            req_field(L, "range", &cond.range, &cond.range_len);
            req_field(L, "if-range", &cond.if_range, &cond.if_range_len);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    /* The script's header lines (copied below, before anything can close the connection). */
    const struct lua_http *lh = hs_http_conn_app(b->h);
    const char *user = lh->lines;
    size_t ulen = lh->lines_len;

    struct hs_file_entry *e;
    int r = hs_file_cache_get(fc, path, root, hs_file_cache_now(), &e);
    if (r != 0)
        return push_fail(L, r);
    const struct hs_http_file *f = &e->f;
    uint64_t first = 0, last = 0;
    int status = b->status == 200 ? hs_http_file_evaluate(f, &cond, &first, &last) : b->status;
    uint64_t len = (status == 200 || status == 206) && f->size > 0 ? last - first + 1 : 0;

    /* The head's lines in one buffer: the script's, then the file's, then Content-Range. */
    char stack[1024], *hdrs = stack;
    size_t cap = ulen + e->headers_len + 64;
    if (cap > sizeof stack && (hdrs = malloc(cap)) == NULL) {
        hs_file_entry_unref(e);
        return push_fail(L, -ENOMEM);
    }
    if (ulen)
        memcpy(hdrs, user, ulen);
    memcpy(hdrs + ulen, e->headers, e->headers_len);
    size_t n = ulen + e->headers_len;
    if (status == 206)
        n += (size_t)snprintf(hdrs + n, cap - n, "Content-Range: bytes %llu-%llu/%llu\r\n",
                              (unsigned long long)first, (unsigned long long)last,
                              (unsigned long long)f->size);
    else if (status == 416)
        n += (size_t)snprintf(hdrs + n, cap - n, "Content-Range: bytes */%llu\r\n",
                              (unsigned long long)f->size);
    /* IMPORTANT: a write may find the connection broken and close it at once; on_close then
     * clears b->h, so it is checked after each call. */
    r = hs_http_conn_start(b->h, status, hdrs, n, (int64_t)len, b->close);
    if (hdrs != stack)
        free(hdrs);
    if (r == 0 && len > 0 && b->h != NULL) {
        if (e->data != NULL || hs_http_conn_is_head(b->h)) {
            /* HEAD: counted as sent, never read. */
            r = hs_http_conn_write(b->h, e->data ? e->data + first : NULL, (size_t)len);
        } else {
            struct evbuffer_file_segment *seg = hs_file_entry_segment(e);
            r = seg == NULL ? -ENOMEM : hs_http_conn_write_file(b->h, seg, e->f.fd, first, len);
        }
        if (r == HS_EFULL && b->h != NULL)
            hs_http_conn_fail(b->h, 500, "output buffer full");
    }
    hs_file_entry_unref(e);
    if (r != 0)
        return push_fail(L, r);
    return push_result(L, res_finish(L, b));
}

static int l_res_tostring(lua_State *L)
{
    struct res_box *b = hs__box_check(L, 1, HS__BOX_RES, "res:__tostring");
    lua_pushfstring(L, "http response %d (%s)", b->status,
                    b->finished    ? "finished"
                    : !res_gone(b) ? (b->started ? "streaming" : "open")
                                   : "closed");
    return 1;
}

void hs__lua_http_open_res(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"status", l_res_status},
        {"header", l_res_header},
        {"send", l_res_send},
        {"write", l_res_write},
        {"finish", l_res_finish},
        {"send_file", l_res_send_file},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__tostring", l_res_tostring}, {NULL, NULL}};
    hs__box_meta(L, HS__BOX_RES, methods, meta);
    lua_pop(L, 1);
}
