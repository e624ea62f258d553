#include "core/lua_api.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lualib.h>

/* ---- connection dispatch ---- */

static void lua_conn_open(struct hs_conn *c, void *arg)
{
    struct hs_script *s = arg;
    struct hs_lua *hl = hs_script_lua(s);
    lua_State *L = hl->L;
    struct hs_version *v = hs_script_current(s);
    struct hs__conn_box *box = hs__conn_box_push(L, c, v);
    hs_conn_set_data(c, box);
    hs_stats_conn_open(hs_version_stats(v));
    hs_log(HS_LOG_DEBUG, "conn#%llu %s open (%s)", (unsigned long long)hs_conn_id(c),
           hs_conn_peer(c), hs_script_decl(s)->name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v));
    box->has_handle = lua_getfield(L, -1, "handle") == LUA_TFUNCTION;
    lua_pop(L, 2);
    /* The box hs__conn_box_push left on the stack is on_connect's argument. */
    struct hs__invoke iv = {
        .v = v, .name = "on_connect", .conn = c, .box = box, .flags = HS__INVOKE_CLOSE};
    hs__lua_invoke(hl, &iv, 1, 0);
    hs__conn_settle(hl, box); /* starts handle(conn) once on_connect is done */
}

/* The conn is held for a waiting handler: input arrived or the stream ended. */
/* A conn:flush waits on c: its output fell to the low-water mark. */
static void lua_conn_output_low(struct hs_conn *c, void *arg)
{
    HS_UNUSED(arg);
    hs__conn_flush_ready(hs_conn_data(c));
}

static void lua_conn_input(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    HS_UNUSED(in);
    HS_UNUSED(arg);
    /* An end of stream alone does not end a wait on an upstream: a client that half-closes
     * (printf ... | nc) still reads the answer. A reset or a close does (lua_conn_close). */
    hs__conn_reader_input(hs_conn_data(c), eof);
}

void hs__conn_settle(struct hs_lua *hl, struct hs__conn_box *box)
{
    lua_State *L = hl->L;
    if (box->task != NULL)
        return; /* its handler still runs: later */
    if (box->c != NULL) {
        if (box->has_handle && !hs_conn_is_closing(box->c)) {
            /* handle(conn) runs once, in a coroutine, and the conn closes when it returns. */
            box->has_handle = 0;
            hs_conn_hold(box->c, HS_READ_SIZE);
            lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
            struct hs__invoke iv = {.v = box->v,
                                    .name = "handle",
                                    .conn = box->c,
                                    .box = box,
                                    .flags = HS__INVOKE_CLOSE | HS__INVOKE_HANDLE};
            hs__lua_invoke(hl, &iv, 1, 0);
            return;
        }
        if (hs__conn_xr(box)->reader == NULL && hs_conn_is_held(box->c))
            hs_conn_hold(box->c, 0);
        return;
    }
    if (hs__conn_xr(box)->close_reason != NULL) {
        /* The conn closed while its handler waited: on_close runs now, after it. */
        lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
        lua_pushstring(L, box->x->close_reason);
        box->x->close_reason = NULL;
        struct hs__invoke iv = {.v = box->v, .name = "on_close", .box = box};
        if (hs__lua_invoke(hl, &iv, 2, 0) == HS_AGAIN)
            return;
    }
    if (box->self_ref == LUA_NOREF)
        return;
    if (box->x) {
        luaL_unref(L, LUA_REGISTRYINDEX, box->x->pipe_done_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, box->x->pipe_file_ref);
        box->x->pipe_done_ref = box->x->pipe_file_ref = LUA_NOREF;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, box->self_ref);
    box->self_ref = LUA_NOREF;
    if (hl->msg_box == box)
        hl->msg_box = NULL; /* the script alone may hold it now: its address may be reused */
    struct hs_version *v = box->v;
    box->v = NULL;
    hs_version_unref(v);
}

/* on_message(conn, data) for the len bytes at p: the arguments go straight onto the call's
 * coroutine. */
HS_HOT static void lua_conn_message(struct hs_conn *c, const unsigned char *p, size_t len,
                                    void *arg)
{
    struct hs__conn_box *box = hs_conn_data(c);
    struct hs_lua *hl = hs_script_lua(arg);
    hs_stats_message(hs_version_stats(box->v), 0);
    hs_conn_count_message(c);
    struct hs__invoke iv = {
        .v = box->v, .name = "on_message", .conn = c, .box = box, .flags = HS__INVOKE_CLOSE};
    struct hs__task *t = hs__lua_call_begin(hl, &iv);
    if (t == NULL)
        return;
    lua_rawgeti(t->T, LUA_REGISTRYINDEX, box->self_ref);
    hs__lua_rx_push(hl, t->T, p, len);
    box->in_frame = 1;
    hl->msg_box = box;
    hs__lua_call_run(t, &iv, 2, 0);
    /* Not the value before: a nested call may have dropped that box's reference meanwhile. */
    hl->msg_box = NULL;
    box->in_frame = 0;
}

/* A large raw read's destination: the block that becomes its string (lua_rx_block.c). */
static unsigned char *lua_conn_raw_buffer(struct hs_conn *c, size_t size, void *arg)
{
    HS_UNUSED(c);
    return hs__lua_rx_buffer(hs_script_lua(arg), size);
}

static void lua_conn_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f,
                           void *arg)
{
    const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(f->skip + (size_t)f->len));
    lua_conn_message(c, p + f->skip, (size_t)f->len, arg);
}

static void lua_conn_pipe_done(struct hs_conn *c, int status, uint64_t bytes, void *arg)
{
    struct hs__conn_box *box = hs_conn_data(c);
    lua_State *L = hs_script_lua(arg)->L;
    int fn = hs__conn_xr(box)->pipe_done_ref, file = hs__conn_xr(box)->pipe_file_ref;
    if (box->x)
        box->x->pipe_done_ref = box->x->pipe_file_ref = LUA_NOREF;
    if (fn == LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, file);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
    if (status == 0) {
        lua_pushinteger(L, (lua_Integer)bytes);
        lua_pushnil(L);
    } else {
        hs__lua_fail(L, status);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, fn);
    luaL_unref(L, LUA_REGISTRYINDEX, file);
    struct hs__invoke iv = {.v = box->v,
                            .what = "pipe_frame callback",
                            .conn = c,
                            .box = box,
                            .flags = HS__INVOKE_CLOSE};
    hs__lua_invoke(hs_script_lua(arg), &iv, 3, 0);
}

static void lua_conn_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct hs__conn_box *box = hs_conn_data(c);
    struct hs_lua *hl = hs_script_lua(arg);
    lua_State *L = hl->L;
    hs_log(HS_LOG_DEBUG, "conn#%llu %s closed: %s", (unsigned long long)box->id, hs_conn_peer(c),
           reason);
    hs_stats_conn_closed(hs_version_stats(box->v), reason, hs_conn_bytes_in(c),
                         hs_conn_bytes_out(c));
    /* A waiting receive learns of it with the bytes that came. */
    if (hs__conn_xr(box)->reader)
        hs__conn_reader_closed(box);
    hs__conn_flush_closed(box);
    /* From here on the box outlives the connection: every method sees c == NULL, and
     * conn:peer() reads the copy kept here. */
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref) == LUA_TUSERDATA) {
        lua_pushstring(L, hs_conn_peer(c));
        lua_setiuservalue(L, -2, 2);
    }
    lua_pop(L, 1);
    hs__box_invalidate(&box->box);
    box->has_handle = 0;
    if (box->task) {
        /* Its handler waits (or the reader just resumed it and it waits again): on_close
         * comes after it, never beside it. A wait on something else that can be given up (an
         * upstream's reply) ends now with nil, "closed": nobody is left to answer. */
        struct hs__conn_ext *x = hs__conn_x(box);
        if (x != NULL)
            x->close_reason = reason;
        else
            hs_log(HS_LOG_ERROR, "conn#%llu: out of memory: on_close (%s) will not run",
                   (unsigned long long)box->id, reason);
        hs__task_cancel(box->task);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
    lua_pushstring(L, reason);
    struct hs__invoke iv = {.v = box->v, .name = "on_close", .conn = c, .box = box};
    if (hs__lua_invoke(hl, &iv, 2, 0) == HS_AGAIN)
        return;
    hs__conn_settle(hl, box);
}

const struct hs_conn_handler hs_lua_conn_handler = {
    .on_open = lua_conn_open,
    .on_frame = lua_conn_frame,
    .on_raw = lua_conn_message,
    .raw_buffer = lua_conn_raw_buffer,
    .on_pipe_done = lua_conn_pipe_done,
    .on_input = lua_conn_input,
    .on_output_low = lua_conn_output_low,
    .on_close = lua_conn_close,
};

int hs_lua_accept(struct hs_listener *l, const char *peer, void *arg)
{
    struct hs_script *s = arg;
    struct hs_lua *hl = hs_script_lua(s);
    lua_State *L = hl->L;
    HS_UNUSED(l);
    /* The filter is looked up before the peer's text becomes a Lua string: without one, that
     * string would be garbage left by every accepted connection (about 40 B each until a
     * collection; bench: memory per idle connection). The function found is the one called. */
    struct hs_version *v = hs_script_current(s);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v));
    if (lua_getfield(L, -1, "on_accept") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);
    lua_pushstring(L, peer);
    /* A filter answers before the connection exists: it cannot wait. */
    struct hs__invoke iv = {.v = v, .what = "on_accept", .flags = HS__INVOKE_NO_WAIT};
    int r = hs__lua_invoke(hl, &iv, 1, 1);
    if (r != 0)
        return 1; /* a broken filter refuses rather than lets everyone in */
    int refuse = !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return refuse;
}

HS_HOT void hs_lua_datagram(struct hs_udp *u, const char *data, size_t len, const char *peer,
                            void *arg)
{
    struct hs_script *s = arg;
    struct hs_lua *hl = hs_script_lua(s);
    struct hs_version *v = hs_script_current(s);
    hs_stats_message(hs_version_stats(v), len);
    struct hs__invoke iv = {.v = v, .name = "on_datagram", .what_peer = peer};
    struct hs__task *t = hs__lua_call_begin(hl, &iv);
    if (t == NULL)
        return;
    /* The call's name in the log is the box's text, "on_datagram (URL from ", the peer and
     * ")": made only if the log needs it, not for every datagram. The box outlives the call:
     * the socket is not freed inside its callback (hs_udp_free waits), and a call that waits
     * copies the text first (task_suspend). */
    struct hs__udp_box *box = hs__udp_box_push(hl, t->T, u);
    iv.what = box->what;
    lua_pushlstring(t->T, data, len);
    lua_pushstring(t->T, peer);
    struct hs__udp_box *was = hl->udp_hot;
    hl->udp_hot = box;
    hs__lua_call_run(t, &iv, 3, 0);
    hl->udp_hot = was;
}

/* ---- the version that runs (what it makes belongs to it: core/owned.h) ---- */

HS_HOT struct hs_version *hs__lua_set_running(struct hs_lua *hl, struct hs_version *v, int at_load)
{
    struct hs_version *was = hl->running;
    hl->running = v;
    hl->running_at_load = at_load;
    return was;
}

/* ---- module functions ---- */

static int l_hotsock_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= n; i++) {
        if (i > 2)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    /* Say which script line logged, as a print in a handler would want. */
    lua_Debug ar;
    char where[128] = "";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.currentline);
    hs_log(level, "%s%s", where, lua_tostring(L, -1));
    return 0;
}

static int l_hotsock_now(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    struct timeval tv;
    event_base_gettimeofday_cached(hl->base, &tv);
    lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
    return 1;
}

static int l_hotsock_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_hotsock_connections(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    lua_pushinteger(L, (lua_Integer)hs_conns_count(hl->set));
    return 1;
}

static const luaL_Reg hotsock_funcs[] = {
    {"log", l_hotsock_log},
    {"now", l_hotsock_now},
    {"monotonic", l_hotsock_monotonic},
    {"connections", l_hotsock_connections},
    {NULL, NULL},
};

static int luaopen_hotsock(lua_State *L)
{
    luaL_newlib(L, hotsock_funcs);
    hs__lua_open_timers(L);
    lua_pushliteral(L, HOTSOCK_VERSION);
    lua_setfield(L, -2, "version");
    hs__lua_open_file(L);
    hs__lua_open_shared(L);
    hs__lua_open_pubsub(L);
    hs__lua_open_conns(L);
    hs__lua_open_json(L);
    hs__lua_open_http_error(L);
    hs__lua_open_wait(L);
    hs__lua_open_connect(L);
    hs__lua_open_resolve(L);
    hs__lua_open_udp(L);
    hs__lua_open_http_client(L);
    return 1;
}

/* An error outside any protected call: nothing sane is left to do. */
static int lua_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    hs_log(HS_LOG_ERROR, "Lua panic (error outside a protected call): %s", msg ? msg : "?");
    abort();
}

/* Lua warnings (an error inside a __gc metamethod, warn() from a script) go to the log, one
 * line per warning; control messages ("@on", "@off") are ignored. */
static void lua_warn(void *ud, const char *msg, int tocont)
{
    struct hs_lua *hl = ud;
    if (hl->warn_len == 0 && !tocont && msg[0] == '@')
        return;
    size_t n = strlen(msg), room = sizeof hl->warn - 1 - hl->warn_len;
    n = n < room ? n : room;
    memcpy(hl->warn + hl->warn_len, msg, n);
    hl->warn_len += n;
    if (tocont)
        return;
    hl->warn[hl->warn_len] = '\0';
    hs_log(HS_LOG_WARN, "Lua warning: %s", hl->warn);
    hl->warn_len = 0;
}

/* hotsock reads registry references on every call (the cached callback, a UDP socket's box, a
 * connection's box) with lua_rawgeti. One past the registry's array part lives
 * in its hash part, behind the string and pointer keys there: a lookup walked a chain of ~60
 * instructions where the array costs ~8 (callgrind, udp64: 126 of ~1,950 a datagram, and as
 * much again or nothing from one run to the next, with where the references fell). The first
 * HS_LUA_REFS_KEPT references are made and released here, before anything else is in the
 * registry: its array part is sized for them, the released slots stay in it (they hold the
 * free list), and luaL_ref hands them out first, lowest first. 4 KiB a state. */
static void registry_reserve(lua_State *L)
{
    int refs[HS_LUA_REFS_KEPT];
    for (int i = 0; i < HS_LUA_REFS_KEPT; i++) {
        lua_pushboolean(L, 1);
        refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    for (int i = HS_LUA_REFS_KEPT; i-- > 0;)
        luaL_unref(L, LUA_REGISTRYINDEX, refs[i]);
}

struct hs_lua *hs_lua_new(struct event_base *base, struct hs_conns *set)
{
    struct hs_lua *hl = calloc(1, sizeof *hl);
    if (hl == NULL)
        return NULL;
    hl->L = lua_newstate(hs__lua_alloc, hl);
    if (hl->L == NULL) {
        free(hl);
        return NULL;
    }
    hl->base = base;
    hs__lua_callbacks_start(hl);
    hl->set = set;
    lua_State *L = hl->L;
    /* The one place the context is stored (see hs__lua_from_state): before any thread or
     * function exists, so every thread made later copies it. */
    *(struct hs_lua **)lua_getextraspace(L) = hl;
    lua_atpanic(L, lua_panic);
    lua_setwarnf(L, lua_warn, hl);
    registry_reserve(L);
    /* No hook on the main thread (see wd_arm): the tick and the allocator set it when needed.
     * coroutine.create and coroutine.wrap give each coroutine of a script its own. */
    luaL_openlibs(L);
    hs__lua_gc_start(hl);
    hs__lua_watch_coroutines(L);
    hs__lua_open_conn(L);
    hs__lua_open_timer_meta(L);
    luaL_requiref(L, "hotsock", luaopen_hotsock, 1);
    lua_pop(L, 1);
    hs__sandbox_open(L);
    hs__lua_rx_calibrate(hl);
    return hl;
}

void hs_lua_free(struct hs_lua *hl)
{
    if (hl == NULL)
        return;
    hs__lua_forget_state(hl); /* the tick must not look at a freed state */
    /* Closing the state runs every __gc: timers free their events, files remove their
     * temporary files. */
    hs__lua_pool_free(hl);
    hs__lua_connect_free(hl);
    /* From here no version's going cancels timers: closing the state collects them. */
    hs_owned_list_stop(&hl->timer_list);
    hs__lua_callbacks_stop(hl);
    hs__lua_gc_stop(hl);
    lua_close(hl->L);
    hs__blocks_free(&hl->blocks);
    hs__lua_rx_free(hl);
    free(hl);
}

lua_State *hs_lua_state(struct hs_lua *hl)
{
    return hl->L;
}

unsigned hs_lua_timer_count(const struct hs_lua *hl)
{
    return hl->timer_list.n;
}

size_t hs_lua_memory(const struct hs_lua *hl)
{
    /* The allocator's count is Lua's own (lua_gc's LUA_GCCOUNT) less the collector's ballast,
     * which it leaves out (lua_limits.c). */
    return hl->mem_used;
}
