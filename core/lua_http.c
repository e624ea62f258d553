/* The Lua face of HTTP: scripts with protocol = "http" get on_request(req, res) per request.
 * req is a table (method, target, path, query, version, headers, body, peer) with the methods
 * query_param and pipe_body; res is a userdata with status, header, send, write, finish and
 * send_file. The HTTP work itself is core/http_conn.c; static files are core/http_file.c. */
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/file_cache.h"
#include "core/http_file.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/reload.h"
#include "core/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#define HS_RES_MT "hotsock.http.response"
#define HS_REQ_MT "hotsock.http.request"

static const char REQ_RES_KEY = 'r'; /* address: the req table's link to its res box */

/* Per-connection data of the binding: the app data of its hs_http_conn. */
struct lua_http {
    struct hs_lua *hl;
    struct hs_script *s;  /* the listener's script */
    struct hs_version *v; /* the version the current request runs (referenced) */
    int req_ref;          /* registry: the current request table, or LUA_NOREF */
    int res_ref;          /* registry: the current response box, or LUA_NOREF */
    int done_ref;         /* registry: the pending pipe_body callback, or LUA_NOREF */
    int file_ref;         /* registry: the file being piped into (kept alive), or LUA_NOREF */
    struct hs_file_cache *files; /* the process's file cache once send_file used it */
};

/* A response as Lua sees it. User value 1: the header lines set so far ("Name: value\r\n"
 * strings, in order); user value 2: the request table. */
struct res_box {
    struct hs_http_conn *h; /* NULL once finished or once the connection is gone */
    int status;             /* 200 unless res:status said otherwise */
    int started;            /* res:write began a streamed body */
    int finished;           /* a res method finished it */
    int close;              /* Connection: close was asked for */
};

static void unref(lua_State *L, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

static const char *token(int code)
{
    switch (code) {
    case HS_ECLOSED:
        return "closed";
    case HS_EFULL:
        return "output buffer full";
    case HS_ETOOBIG:
        return "body too large";
    case HS_EPROTO:
        return "bad request body";
    case -ECANCELED:
        return "canceled";
    case -ENOENT:
        return "not found";
    case -EACCES:
        return "forbidden";
    case -EISDIR:
        return "is a directory";
    default:
        return hs_strerror(code);
    }
}

static int push_fail(lua_State *L, int code)
{
    luaL_pushfail(L);
    lua_pushstring(L, token(code));
    return 2;
}

/* The request is over for the script: the box no longer reaches the connection. */
static void detach(lua_State *L, struct lua_http *lh)
{
    if (lh->res_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lh->res_ref);
        struct res_box *b = lua_touserdata(L, -1);
        if (b)
            b->h = NULL;
        lua_pop(L, 1);
    }
    unref(L, &lh->res_ref);
    unref(L, &lh->req_ref);
}

/* A Lua error in one of this request's callbacks: 500 if nothing was answered, then close. */
static void handler_failed(struct hs_http_conn *h, struct lua_http *lh)
{
    /* The request table stays until the 500 is out: on_http_error gets it. */
    int req = lh->req_ref;
    lh->req_ref = LUA_NOREF;
    detach(lh->hl->L, lh);
    lh->req_ref = req;
    hs_http_conn_fail(h, 500, "handler error");
    unref(lh->hl->L, &lh->req_ref);
}

/* ---- res ---- */

static struct res_box *check_res(lua_State *L)
{
    struct res_box *b = luaL_checkudata(L, 1, HS_RES_MT);
    if (b->finished)
        luaL_error(L, "response already finished");
    return b;
}

/* Whether the box still reaches a connection that can take the response: on_close clears
 * b->h, but a connection closing (flushing its last bytes) refuses already. */
static int res_gone(const struct res_box *b)
{
    return b->h == NULL || !hs_http_conn_is_open(b->h);
}

static void check_unstarted(lua_State *L, struct res_box *b)
{
    if (b->started)
        luaL_error(L, "response already started (use res:write and res:finish)");
}

/* res:status(code) */
static int l_res_status(lua_State *L)
{
    struct res_box *b = check_res(L);
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
static const char *check_value(lua_State *L, int idx, int arg)
{
    size_t n;
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        luaL_argerror(L, arg, "header value must be a string, a number, a list of them or nil");
    const char *v = lua_tolstring(L, idx, &n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            luaL_argerror(L, arg, "header value contains a control character");
    }
    return v;
}

/* res:header(name, value): sets name, replacing earlier values; a list gives one line per
 * element, nil removes it. Content-Length and Transfer-Encoding belong to hotsock;
 * Connection may only be "close". */
static int l_res_header(lua_State *L)
{
    struct res_box *b = check_res(L);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    luaL_argcheck(L, nl > 0 && nl < 256, 2, "bad header name");
    for (size_t i = 0; i < nl; i++)
        luaL_argcheck(L, is_tchar((unsigned char)name[i]), 2, "bad header name");
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0)
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
    if (strcasecmp(name, "connection") == 0) {
        luaL_argcheck(L,
                      lua_type(L, 3) == LUA_TSTRING && strcasecmp(lua_tostring(L, 3), "close") == 0,
                      3, "Connection may only be set to \"close\"");
    }
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    if (strcasecmp(name, "connection") == 0) {
        b->close = 1;
        lua_pushboolean(L, 1);
        return 1;
    }
    /* Drop the lines of this name, then append the new ones. */
    lua_getiuservalue(L, 1, 1);
    int t = lua_gettop(L);
    lua_Integer n = luaL_len(L, t), keep = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        size_t ll;
        lua_rawgeti(L, t, i);
        const char *line = lua_tolstring(L, -1, &ll);
        if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0)
            lua_pop(L, 1);
        else
            lua_rawseti(L, t, ++keep);
    }
    for (lua_Integer i = keep + 1; i <= n; i++) {
        lua_pushnil(L);
        lua_rawseti(L, t, i);
    }
    if (lua_istable(L, 3)) {
        lua_Integer m = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= m; i++) {
            lua_geti(L, 3, i);
            lua_pushfstring(L, "%s: %s\r\n", name, lua_tostring(L, -1));
            lua_rawseti(L, t, ++keep);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, 3)) {
        lua_pushfstring(L, "%s: %s\r\n", name, lua_tostring(L, 3));
        lua_rawseti(L, t, ++keep);
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* Pushes the header block of the box at index 1 (one string) and starts the response. */
static int res_start(lua_State *L, struct res_box *b, int status, const char *extra, int64_t length)
{
    luaL_Buffer buf;
    lua_getiuservalue(L, 1, 1);
    luaL_buffinit(L, &buf);
    lua_Integer n = luaL_len(L, -2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        luaL_addvalue(&buf);
    }
    if (extra)
        luaL_addstring(&buf, extra);
    luaL_pushresult(&buf);
    size_t len;
    const char *hdrs = lua_tolstring(L, -1, &len);
    int r = hs_http_conn_start(b->h, status, hdrs, len, length, b->close);
    lua_pop(L, 2);
    return r;
}

/* Marks the box finished and lets go of the request before finishing in C, which may close
 * the connection (and run on_close) before it returns. */
static int res_finish(lua_State *L, struct res_box *b)
{
    struct hs_http_conn *h = b->h;
    b->finished = 1;
    if (h == NULL) /* a write found the connection broken and it is gone */
        return HS_ECLOSED;
    detach(L, hs_http_conn_app(h));
    return hs_http_conn_finish(h);
}

static int push_result(lua_State *L, int r)
{
    if (r != 0)
        return push_fail(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* res:send([body]) — the whole response with Content-Length; finishes it. */
static int l_res_send(lua_State *L)
{
    struct res_box *b = check_res(L);
    size_t len = 0;
    const char *body = luaL_optlstring(L, 2, "", &len);
    check_unstarted(L, b);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    /* IMPORTANT: a write may find the connection broken and close it at once; on_close then
     * clears b->h, so it is checked after every call below. */
    int r = res_start(L, b, b->status, NULL, (int64_t)len);
    if (r == 0 && b->h != NULL)
        r = hs_http_conn_write(b->h, body, len);
    if (r == HS_EFULL && b->h != NULL)
        hs_http_conn_fail(b->h, 500, "output buffer full");
    if (r != 0)
        return push_fail(L, r);
    return push_result(L, res_finish(L, b));
}

/* res:write(chunk) — streams the body (chunked on HTTP/1.1, until close on 1.0). */
static int l_res_write(lua_State *L)
{
    struct res_box *b = check_res(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    int r = 0;
    if (!b->started) {
        r = res_start(L, b, b->status, NULL, -1);
        b->started = r == 0;
    }
    if (r == 0)
        r = b->h != NULL ? hs_http_conn_write(b->h, data, len) : HS_ECLOSED;
    return push_result(L, r);
}

/* res:finish() — ends a streamed body; without one it is res:send(""). */
static int l_res_finish(lua_State *L)
{
    struct res_box *b = check_res(L);
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
    struct res_box *b = check_res(L);
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
    lua_getiuservalue(L, 1, 2);
    lua_getfield(L, -1, "method");
    const char *m = lua_tostring(L, -1);
    int get = m && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "headers") == LUA_TTABLE && get && b->status == 200) {
        req_field(L, "if-none-match", &cond.if_none_match, &cond.if_none_match_len);
        req_field(L, "if-modified-since", &cond.if_modified_since, &cond.if_modified_since_len);
        req_field(L, "range", &cond.range, &cond.range_len);
        req_field(L, "if-range", &cond.if_range, &cond.if_range_len);
    }
    lua_pop(L, 2);
    /* The script's header lines, joined while Lua may still raise: from the cache lookup on,
     * nothing below may, or the entry's reference would leak. */
    lua_getiuservalue(L, 1, 1);
    lua_Integer nh = luaL_len(L, -1);
    if (nh <= 1) { /* the common case (a Content-Type): no joining */
        lua_rawgeti(L, -1, 1);
        if (nh == 0) {
            lua_pop(L, 1);
            lua_pushliteral(L, "");
        }
    } else {
        luaL_Buffer lb;
        luaL_buffinit(L, &lb);
        for (lua_Integer i = 1; i <= nh; i++) {
            lua_rawgeti(L, -2, i);
            luaL_addvalue(&lb);
        }
        luaL_pushresult(&lb);
    }
    size_t ulen;
    const char *user = lua_tolstring(L, -1, &ulen); /* kept on the stack */

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
            int fd = hs_file_entry_fd(e);
            r = fd < 0 ? fd : hs_http_conn_write_file(b->h, fd, first, len);
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
    struct res_box *b = luaL_checkudata(L, 1, HS_RES_MT);
    lua_pushfstring(L, "http response %d (%s)", b->status,
                    b->finished    ? "finished"
                    : !res_gone(b) ? (b->started ? "streaming" : "open")
                                   : "closed");
    return 1;
}

/* ---- req ---- */

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Pushes s[0..n) form-decoded: '+' is a space, %XX a byte (a bad escape stays as it is). */
static void push_form_decoded(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            luaL_addchar(&b, ' ');
        } else if (s[i] == '%' && i + 2 < n && hexv((unsigned char)s[i + 1]) >= 0 &&
                   hexv((unsigned char)s[i + 2]) >= 0) {
            luaL_addchar(
                &b, (char)(hexv((unsigned char)s[i + 1]) * 16 + hexv((unsigned char)s[i + 2])));
            i += 2;
        } else {
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
}

/* req:query_param(name) — the first value of name in the query string, form-decoded; "" for a
 * name without "="; nil when absent. */
static int l_req_query_param(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t nl, ql;
    const char *name = luaL_checklstring(L, 2, &nl);
    lua_getfield(L, 1, "query");
    const char *q = lua_tolstring(L, -1, &ql);
    for (size_t i = 0; q && i <= ql;) {
        const char *amp = memchr(q + i, '&', ql - i);
        size_t end = amp ? (size_t)(amp - q) : ql;
        const char *eq = memchr(q + i, '=', end - i);
        size_t kend = eq ? (size_t)(eq - q) : end;
        push_form_decoded(L, q + i, kend - i);
        size_t kl;
        const char *k = lua_tolstring(L, -1, &kl);
        int match = kl == nl && memcmp(k, name, nl) == 0;
        lua_pop(L, 1);
        if (match) {
            if (eq)
                push_form_decoded(L, eq + 1, end - kend - 1);
            else
                lua_pushliteral(L, "");
            return 1;
        }
        i = end + 1;
    }
    lua_pushnil(L);
    return 1;
}

/* req:pipe_body(file_or_nil, done [, max]) — in stream mode (the script's stream_body said so),
 * writes the body into file (or drops it when nil) as it arrives; done(bytes) or
 * done(nil, err) runs at the end. */
static int l_req_pipe_body(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct hs_conn_sink sink = {NULL, NULL};
    if (!lua_isnil(L, 2) && hs__file_sink(L, 2, &sink) != 0)
        return luaL_typeerror(L, 2, "hotsock file or nil");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_Integer max = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, max >= 0, 4, "max must not be negative");
    lua_rawgetp(L, 1, &REQ_RES_KEY);
    struct res_box *b = luaL_testudata(L, -1, HS_RES_MT);
    if (b == NULL)
        return luaL_argerror(L, 1, "not a request");
    if (res_gone(b))
        return push_fail(L, HS_ECLOSED);
    int r = hs_http_conn_pipe_body(b->h, lua_isnil(L, 2) ? NULL : &sink, (uint64_t)max);
    if (r == -EINVAL)
        return luaL_error(L, "pipe_body needs stream mode (stream_body) and can be used once");
    if (r != 0)
        return push_fail(L, r);
    struct lua_http *lh = hs_http_conn_app(b->h);
    lua_pushvalue(L, 3);
    lh->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    lh->file_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

struct hs_http_conn *hs__lua_http_exchange(lua_State *L, int idx, struct hs_version **v)
{
    lua_rawgetp(L, idx, &REQ_RES_KEY);
    struct res_box *b = luaL_testudata(L, -1, HS_RES_MT);
    if (b == NULL)
        luaL_argerror(L, idx, "not a request");
    if (b->finished || b->started)
        luaL_error(L, "response already started");
    if (b->h == NULL) {
        lua_pop(L, 1);
        return NULL;
    }
    *v = ((struct lua_http *)hs_http_conn_app(b->h))->v;
    lua_getiuservalue(L, -1, 1);
    lua_Integer n = luaL_len(L, -1);
    lua_pushliteral(L, "");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_concat(L, 2);
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    return b->h;
}

void hs__lua_http_done(lua_State *L, int idx)
{
    lua_rawgetp(L, idx, &REQ_RES_KEY);
    struct res_box *b = luaL_checkudata(L, -1, HS_RES_MT);
    b->finished = 1;
    if (b->h)
        detach(L, hs_http_conn_app(b->h));
    lua_pop(L, 1);
}

/* Creates the metatables the first time (they live in the registry from then on). */
static void open_meta(lua_State *L)
{
    if (luaL_newmetatable(L, HS_RES_MT)) {
        static const luaL_Reg methods[] = {
            {"status", l_res_status},
            {"header", l_res_header},
            {"send", l_res_send},
            {"write", l_res_write},
            {"finish", l_res_finish},
            {"send_file", l_res_send_file},
            {NULL, NULL},
        };
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_res_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, HS_REQ_MT)) {
        static const luaL_Reg methods[] = {
            {"query_param", l_req_query_param},
            {"pipe_body", l_req_pipe_body},
            {NULL, NULL},
        };
        luaL_newlib(L, methods);
        hs__lua_open_ws(L);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* ---- the app: hs_http_conn callbacks ---- */

/* Calls into the script as its connection's version (timers it starts belong to that version)
 * through the one invoke path (traceback, sandbox limits); name NULL: the function is below
 * the arguments. Returns hs__lua_invoke's result. */
static int call(struct lua_http *lh, const char *name, int nargs, int nres, const char *what,
                struct hs_conn *c, unsigned flags)
{
    struct hs__invoke iv = {.v = lh->v, .name = name, .what = what, .conn = c, .flags = flags};
    return hs__lua_invoke(lh->hl, &iv, nargs, nres);
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n)
{
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
}

/* Pushes the headers table: lowercased names; repeated fields joined with ", ". */
static void push_headers(lua_State *L, const struct hs_http_request *req)
{
    lua_createtable(L, 0, (int)req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct hs_http_header *f = &req->headers[i];
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, f->name_len);
        for (size_t j = 0; j < f->name_len; j++) {
            char c = f->name[j];
            p[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        luaL_pushresultsize(&b, f->name_len);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, f->value, f->value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, f->value, f->value_len);
        }
        lua_rawset(L, -3);
    }
}

static int app_head(struct hs_http_conn *h, const struct hs_http_request *req, const char *path,
                    size_t path_len, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    struct hs_conn *c = hs_http_conn_conn(h);
    detach(L, lh);
    /* Requests are independent: each runs the version current when it arrives, so a reload
     * reaches kept-alive connections (a browser's) at their next request. */
    struct hs_version *cur = hs_script_current(lh->s);
    if (cur != lh->v) {
        hs_stats_conn_move(hs_version_stats(lh->v), hs_version_stats(cur), hs_conn_bytes_in(c),
                           hs_conn_bytes_out(c));
        hs_version_ref(cur);
        hs_version_unref(lh->v);
        lh->v = cur;
    }

    lua_createtable(L, 0, 9);
    set_str(L, "method", req->method, req->method_len);
    set_str(L, "target", req->target, req->target_len);
    set_str(L, "path", path, path_len);
    set_str(L, "query", req->query, req->query_len);
    lua_pushstring(L, req->minor_version ? "1.1" : "1.0");
    lua_setfield(L, -2, "version");
    lua_pushstring(L, hs_conn_peer(c));
    lua_setfield(L, -2, "peer");
    hs__lua_push_ip(L, hs_conn_peer(c));
    lua_setfield(L, -2, "ip");
    hs__push_tls_info(L, c); /* nil on plaintext: no field */
    lua_setfield(L, -2, "tls");
    hs__push_proxy_info(L, c); /* nil unless a PROXY listener: no field */
    lua_setfield(L, -2, "proxy");
    push_headers(L, req);
    lua_setfield(L, -2, "headers");
    luaL_setmetatable(L, HS_REQ_MT);

    struct res_box *b = lua_newuserdatauv(L, sizeof *b, 2);
    memset(b, 0, sizeof *b);
    b->h = h;
    b->status = 200;
    luaL_setmetatable(L, HS_RES_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, &REQ_RES_KEY);
    lh->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lh->req_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->req_ref);
    /* Its answer is needed now, before the body is read: it cannot wait. */
    int r = call(lh, "stream_body", 1, 1, NULL, c, HS__INVOKE_NO_WAIT);
    if (r == 1)
        return HS_HTTP_BODY_BUFFER;
    if (r != 0) {
        detach(L, lh);
        return HS_ESCRIPT;
    }
    int stream = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stream ? HS_HTTP_BODY_STREAM : HS_HTTP_BODY_BUFFER;
}

static void app_request(struct hs_http_conn *h, struct evbuffer *body, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    hs_stats_message(hs_version_stats(lh->v), 0);
    if (hs_http_conn_conn(h))
        hs_conn_count_message(hs_http_conn_conn(h));
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->req_ref);
    if (body != NULL) {
        size_t n = evbuffer_get_length(body);
        lua_pushlstring(L, n ? (const char *)evbuffer_pullup(body, (ev_ssize_t)n) : "", n);
        lua_setfield(L, -2, "body");
        evbuffer_drain(body, n);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->res_ref);
    /* A handler that waits (HS_AGAIN) answers later; if it fails after the wait, nothing can
     * answer 500 any more and the connection closes. */
    int r = call(lh, "on_request", 2, 0, NULL, hs_http_conn_conn(h), HS__INVOKE_CLOSE_LATE);
    if (r == 1)
        hs_log(HS_LOG_ERROR, "http script has no on_request");
    if (r != 0 && r != HS_AGAIN)
        handler_failed(h, lh);
}

static void app_body_done(struct hs_http_conn *h, int status, uint64_t bytes, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    int fn = lh->done_ref;
    lh->done_ref = LUA_NOREF;
    unref(L, &lh->file_ref);
    if (fn == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    luaL_unref(L, LUA_REGISTRYINDEX, fn);
    if (status == 0) {
        lua_pushinteger(L, (lua_Integer)bytes);
        lua_pushnil(L);
    } else {
        luaL_pushfail(L);
        lua_pushstring(L, token(status));
    }
    if (call(lh, NULL, 2, 0, "pipe_body callback", hs_http_conn_conn(h), 0) != 0)
        handler_failed(h, lh);
}

static void app_close(struct hs_http_conn *h, const char *reason, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    HS_UNUSED(h);
    HS_UNUSED(reason);
    detach(L, lh);
    unref(L, &lh->done_ref);
    unref(L, &lh->file_ref);
    struct hs_version *v = lh->v;
    lh->v = NULL;
    hs_version_unref(v);
}

static int app_error(struct hs_http_conn *h, int status, int has_request, struct evbuffer *headers,
                     struct evbuffer *body, void *arg)
{
    struct lua_http *lh = arg;
    return hs__lua_http_on_error(lh->hl, lh->v, has_request ? lh->req_ref : LUA_NOREF,
                                 hs_http_conn_conn(h), status, headers, body);
}

static const struct hs_http_app lua_http_app = {
    .on_head = app_head,
    .on_request = app_request,
    .on_body_done = app_body_done,
    .on_close = app_close,
    .on_error = app_error,
};

/* ---- the connection handler ---- */

/* Reads the script's `http` table: max_body (bytes), header_timeout, body_timeout,
 * keepalive_timeout (seconds), allow_get_body (boolean). A bad value is logged and its default
 * used. */
static void read_settings(lua_State *L, struct hs_version *v, struct hs_http_settings *set)
{
    static const char *const keys[] = {"max_body", "header_timeout", "body_timeout",
                                       "keepalive_timeout"};
    memset(set, 0, sizeof *set);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v));
    if (lua_getfield(L, -1, "http") == LUA_TTABLE) {
        for (int i = 0; i < 4; i++) {
            int t = lua_getfield(L, -1, keys[i]);
            double d = lua_tonumber(L, -1);
            lua_pop(L, 1);
            if (t == LUA_TNIL)
                continue;
            if (!(d > 0 && d < 1e15) || (i > 0 && d > 4e6)) {
                hs_log(HS_LOG_WARN, "http.%s: not a positive number; using the default", keys[i]);
                continue;
            }
            if (i == 0)
                set->max_body = (uint64_t)d;
            else {
                unsigned ms = d * 1000 < 1 ? 1 : (unsigned)(d * 1000);
                if (i == 1)
                    set->header_timeout_ms = ms;
                else if (i == 2)
                    set->body_timeout_ms = ms;
                else
                    set->keepalive_timeout_ms = ms;
            }
        }
        int t = lua_getfield(L, -1, "allow_get_body");
        if (t == LUA_TBOOLEAN)
            set->head.allow_get_body = lua_toboolean(L, -1);
        else if (t != LUA_TNIL)
            hs_log(HS_LOG_WARN, "http.allow_get_body: not a boolean; using the default (false)");
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

static void http_open(struct hs_conn *c, void *arg)
{
    struct hs_script *s = arg;
    struct hs_lua *hl = hs_script_lua(s);
    struct hs_version *v = hs_script_current(s);
    struct hs_http_settings set;
    open_meta(hl->L);
    read_settings(hl->L, v, &set);
    struct hs_http_conn *h =
        hs_http_conn_new(c, hl->base, &set, &lua_http_app, sizeof(struct lua_http));
    if (h == NULL) {
        hs_log(HS_LOG_ERROR, "conn#%llu %s: out of memory for HTTP",
               (unsigned long long)hs_conn_id(c), hs_conn_peer(c));
        hs_conn_abort(c, "out of memory");
        return;
    }
    struct lua_http *lh = hs_http_conn_app(h);
    lh->hl = hl;
    lh->s = s;
    lh->v = v;
    lh->req_ref = lh->res_ref = lh->done_ref = lh->file_ref = LUA_NOREF;
    hs_version_ref(v);
    hs_stats_conn_open(hs_version_stats(v));
}

static void http_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    HS_UNUSED(arg);
    hs_http_conn_input(hs_conn_data(c), in, eof);
}

static void http_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct hs_http_conn *h = hs_conn_data(c);
    HS_UNUSED(arg);
    if (h != NULL) {
        struct lua_http *lh = hs_http_conn_app(h);
        hs_stats_conn_closed(hs_version_stats(lh->v), reason, hs_conn_bytes_in(c),
                             hs_conn_bytes_out(c));
        hs_http_conn_closed(h, reason);
    }
}

struct hs_version *hs__http_conn_version(struct hs_conn *c)
{
    struct hs_http_conn *h = hs_conn_data(c);
    return h ? ((struct lua_http *)hs_http_conn_app(h))->v : NULL;
}

static void http_drain(struct hs_conn *c, void *arg)
{
    struct hs_http_conn *h = hs_conn_data(c);
    HS_UNUSED(arg);
    if (h != NULL)
        hs_http_conn_drain(h);
}

const struct hs_conn_handler hs_lua_http_handler = {
    .on_open = http_open,
    .on_data = http_data,
    .on_drain = http_drain,
    .on_close = http_close,
};
