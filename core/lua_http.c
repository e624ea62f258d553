/* The Lua face of HTTP: scripts with protocol = "http" get on_request(req, res) per request.
 * req is a table (method, target, path, query, version, headers, body, peer; most are filled in
 * on first read, core/lua_http_req.c) with the methods query_param and pipe_body; res
 * (core/lua_http_res.c) is a userdata with status, header, send, write, finish and send_file. The
 * HTTP work itself is core/http_conn.c; static files are core/http_file.c. */
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/http_file.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_http_internal.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

/* The largest header-lines buffer a connection keeps between its responses. */
#define LINES_KEEP 256

static void lines_free(struct lua_http *lh)
{
    free(lh->lines);
    lh->lines = NULL;
    lh->lines_len = lh->lines_cap = 0;
}

/* The request is over for the script: the box no longer reaches the connection. */
HS_HOT void hs__lua_http_detach(lua_State *L, struct lua_http *lh)
{
    if (lh->res_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lh->res_ref);
        struct res_box *b = lua_touserdata(L, -1);
        if (b)
            hs__box_invalidate(&b->box);
        if (b == lh->hl->res_hot)
            lh->hl->res_hot = NULL; /* the slot lets go of it: its address may be reused */
        lua_pop(L, 1);
    }
    slot_clear(L, &lh->res_ref);
    slot_clear(L, &lh->req_ref);
    /* A small lines buffer stays for the connection's next response (a malloc and a free a
     * request saved; ~250 instructions of a 13,700-instruction GET /hello); a large one, made
     * by a response with many or long fields, goes. */
    lh->lines_len = 0;
    if (lh->lines_cap > LINES_KEEP)
        lines_free(lh);
}

/* A Lua error in one of this request's callbacks: 500 if nothing was answered, then close. */
static void handler_failed(struct hs_http_conn *h, struct lua_http *lh)
{
    /* The request table stays until the 500 is out: on_http_error gets it. */
    int req = lh->req_ref;
    lh->req_ref = LUA_NOREF;
    hs__lua_http_detach(lh->hl->L, lh);
    lh->req_ref = req;
    hs_http_conn_fail(h, 500, "handler error");
    slot_clear(lh->hl->L, &lh->req_ref);
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
    lua_rawgetp(L, 1, &hs__req_res_key);
    struct res_box *b = hs__box_test(L, -1, HS__BOX_RES);
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
    lua_rawgetp(L, idx, &hs__req_res_key);
    struct res_box *b = hs__box_test(L, -1, HS__BOX_RES);
    if (b == NULL)
        luaL_argerror(L, idx, "not a request");
    if (b->finished || b->started)
        luaL_error(L, "response already started");
    if (hs__box_gone(&b->box)) {
        lua_pop(L, 1);
        return NULL;
    }
    struct lua_http *lh = hs_http_conn_app(b->h);
    *v = lh->v;
    lua_pushlstring(L, lh->lines ? lh->lines : "", lh->lines_len);
    lua_replace(L, -2);
    return b->h;
}

void hs__lua_http_done(lua_State *L, int idx)
{
    lua_rawgetp(L, idx, &hs__req_res_key);
    struct res_box *b = hs__box_check(L, -1, HS__BOX_RES, "req:websocket");
    b->finished = 1;
    if (!hs__box_gone(&b->box))
        hs__lua_http_detach(L, hs_http_conn_app(b->h));
    lua_pop(L, 1);
}

/* Creates the metatables the first time (they live in the registry from then on); each
 * accepted HTTP connection asks, and after the first only the reference is looked at. */
static void open_meta(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    if (hl->req_mt_ref != 0)
        return;
    hs__lua_http_open_res(L);
    if (luaL_newmetatable(L, HS_REQ_MT)) {
        static const luaL_Reg methods[] = {
            {"query_param", l_req_query_param},
            {"pipe_body", l_req_pipe_body},
            {NULL, NULL},
        };
        luaL_newlib(L, methods);
        hs__lua_open_ws(L);
        hs__lua_http_req_meta(L);
    }
    hl->req_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
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

HS_HOT static int app_head(struct hs_http_conn *h, const struct hs_http_request *req,
                           const char *path, size_t path_len, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    struct hs_conn *c = hs_http_conn_conn(h);
    hs__lua_http_detach(L, lh);
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

    struct res_box *b = hs__lua_http_push_exchange(L, h, req, path, path_len, c);
    if (lh->req_slot == LUA_NOREF) {
        /* The connection's two slots, taken at its first request and kept (slot_clear). */
        lh->res_slot = luaL_ref(L, LUA_REGISTRYINDEX);
        lh->req_slot = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_rawseti(L, LUA_REGISTRYINDEX, lh->res_slot);
        lua_rawseti(L, LUA_REGISTRYINDEX, lh->req_slot);
    }
    lh->res_ref = lh->res_slot;
    lh->req_ref = lh->req_slot;
    lh->hl->res_hot = b;

    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->req_ref);
    /* Its answer is needed now, before the body is read: it cannot wait. */
    int r = call(lh, "stream_body", 1, 1, NULL, c, HS__INVOKE_NO_WAIT);
    if (r == 1)
        return HS_HTTP_BODY_BUFFER;
    if (r != 0) {
        hs__lua_http_detach(L, lh);
        return HS_ESCRIPT;
    }
    int stream = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stream ? HS_HTTP_BODY_STREAM : HS_HTTP_BODY_BUFFER;
}

HS_HOT static void app_request(struct hs_http_conn *h, struct evbuffer *body, void *arg)
{
    struct lua_http *lh = arg;
    lua_State *L = lh->hl->L;
    hs_stats_message(hs_version_stats(lh->v), 0);
    if (hs_http_conn_conn(h))
        hs_conn_count_message(hs_http_conn_conn(h));
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->req_ref);
    if (body != NULL) {
        size_t n = evbuffer_get_length(body);
        lua_pushliteral(L, "body");
        lua_pushlstring(L, n ? (const char *)evbuffer_pullup(body, (ev_ssize_t)n) : "", n);
        lua_rawset(L, -3); /* raw: not through req's __newindex */
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
        push_fail(L, status);
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
    hs__lua_http_detach(L, lh);
    lines_free(lh);
    unref(L, &lh->req_slot);
    unref(L, &lh->res_slot);
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
    lh->req_slot = lh->res_slot = LUA_NOREF;
    hs_version_ref(v);
    hs_stats_conn_open(hs_version_stats(v));
}

static void http_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    HS_UNUSED(arg);
    hs_http_conn_input(hs_conn_data(c), in, eof);
}

HS_HOT static int http_bytes(struct hs_conn *c, const unsigned char *data, size_t len, void *arg)
{
    HS_UNUSED(arg);
    struct hs_http_conn *h = hs_conn_data(c);
    return h != NULL && hs_http_conn_input_direct(h, (const char *)data, len);
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
    .on_bytes = http_bytes,
    .on_drain = http_drain,
    .on_close = http_close,
};
