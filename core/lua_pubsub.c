/* hotsock.subscribe / hotsock.publish / hotsock.worker / hotsock.workers: publish/subscribe
 * across the workers of one server (core/pubsub.c) seen from Lua, and the dispatch of queued
 * messages to this worker's subscribers from its event loop.
 *
 * Subscriptions live in the Lua state: a registry table maps each channel to the array of its
 * subscription objects (in subscription order), and a list of every live subscription by
 * version (core/owned.h) is told when a version retires or is freed, as timers are. A
 * subscription made by a script's top level belongs to that load: it receives nothing until
 * the version is published (a reload's prepare phase runs the new top level while the old one
 * still serves) and is cancelled when the version retires, so a reload swaps the old version's
 * subscriptions for the new one's. Others (made in callbacks) live until cancelled or until
 * their version is freed. */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/owned.h"
#include "core/pubsub.h"
#include "core/pubsub_redis.h"
#include "core/script.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#define PUBSUB_BATCH 256         /* messages dispatched per loop turn before yielding */
#define PUBSUB_DROP_LOG_SECS 1.0 /* at most one "fell behind" line this often */

static const char PUBSUB_KEY = 'p'; /* registry key anchoring the context (found by hl->pubsub) */

struct sub;

/* One per Lua state, a userdata in the registry (its __gc frees the event), found through the
 * state's context (hs_lua.pubsub). */
struct hs__pubsub {
    struct hs_lua *hl;
    struct hs_pubsub *ps;          /* the process's region, or NULL (hotsock check, unit tests) */
    struct event *ev;              /* the wake-up eventfd on the loop, or NULL */
    int bychan_ref;                /* registry table: channel -> array of subscription userdata */
    struct hs_owned_list all;      /* every live subscription (and how many), by version */
    unsigned long long drops_seen; /* dropped count already logged */
    double drop_logged_at;         /* monotonic seconds of the last such log line */
};

struct sub {
    HS__BOX_HEAD(struct hs__pubsub, ctx); /* NULL until live and once cancelled */
    int fn_ref;                           /* the callback while live */
    struct hs_owned own; /* in ctx->all while live: the version that subscribed, at load */
};

/* The context that drains this process's queue: one Lua state per process does (the first
 * one made after the process claimed its queue). */
static struct hs__pubsub *consumer;

static struct hs__pubsub *ctx_of(lua_State *L)
{
    return hs__lua_from_state(L)->pubsub;
}

/* Whether s may receive now: a load-time subscription only once its version is current. */
static int sub_active(const struct sub *s)
{
    if (hs__box_gone(&s->box))
        return 0;
    if (!s->own.at_load || s->own.owner == NULL)
        return 1;
    struct hs_script *script = hs_version_script(s->own.owner);
    return script != NULL && hs_script_current(script) == s->own.owner;
}

/* Removes s from its channel's array (the userdata at idx) and releases its callback. */
static void sub_release(lua_State *L, struct sub *s, int idx)
{
    struct hs__pubsub *ctx = s->ctx;
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, idx, 1); /* channel */
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->bychan_ref);
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1), at = 0;
        for (lua_Integer i = 1; i <= n && at == 0; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_touserdata(L, -1) == s)
                at = i;
            lua_pop(L, 1);
        }
        if (at) {
            for (lua_Integer i = at; i < n; i++) {
                lua_rawgeti(L, -1, i + 1);
                lua_rawseti(L, -2, i);
            }
            lua_pushnil(L);
            lua_rawseti(L, -2, n);
        }
        if (at && n == 1) {
            size_t chlen;
            const char *ch = lua_tolstring(L, -3, &chlen);
            lua_pushvalue(L, -3);
            lua_pushnil(L);
            lua_rawset(L, -4);
            if (ctx->ps)
                hs_pubsub_interest(ctx->ps, ch, chlen, -1);
        }
    }
    lua_pop(L, 3);
    luaL_unref(L, LUA_REGISTRYINDEX, s->fn_ref);
    s->fn_ref = LUA_NOREF;
    hs_owned_remove(&ctx->all, &s->own);
    hs__box_invalidate(&s->box);
}

/* Pushes the userdata of s: it is in its channel's array while live. */
static int push_sub(lua_State *L, struct sub *s)
{
    /* The C list does not hold the userdata; a registry table keyed by lightuserdata does
     * (weakly would lose it, so it is strong and cleared on release). */
    lua_rawgetp(L, LUA_REGISTRYINDEX, s);
    if (lua_type(L, -1) == LUA_TUSERDATA)
        return 1;
    lua_pop(L, 1);
    return 0;
}

static void sub_cancel(lua_State *L, struct sub *s)
{
    if (hs__box_gone(&s->box) || !push_sub(L, s))
        return;
    sub_release(L, s, -1);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, s);
}

/* sub:cancel() -> true if it was live, false if cancelled already. */
static int l_subscription_cancel(lua_State *L)
{
    struct sub *s = hs__box_check(L, 1, HS__BOX_SUB, "sub:cancel");
    int live = !hs__box_gone(&s->box);
    sub_cancel(L, s);
    lua_pushboolean(L, live);
    return 1;
}

static int l_subscription_tostring(lua_State *L)
{
    struct sub *s = hs__box_check(L, 1, HS__BOX_SUB, "sub:__tostring");
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "subscription (%s, %s)", lua_tostring(L, -1),
                    hs__box_gone(&s->box) ? "cancelled" : "live");
    return 1;
}

/* hotsock.subscribe(channel, fn) -> subscription */
static int l_hotsock_subscribe(lua_State *L)
{
    struct hs__pubsub *ctx = ctx_of(L);
    size_t chlen;
    const char *ch = luaL_checklstring(L, 1, &chlen);
    luaL_argcheck(L, chlen >= 1 && chlen <= HS_PUBSUB_MAX_CHANNEL, 1,
                  "channel must be 1 to 255 bytes");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    struct sub *s = hs__box_new(L, HS__BOX_SUB, sizeof *s, 1);
    s->fn_ref = LUA_NOREF;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    /* Everything that may fail (allocate) happens before the subscription goes live. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->bychan_ref);
    lua_pushvalue(L, 1);
    int fresh = lua_rawget(L, -2) != LUA_TTABLE;
    if (fresh) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_pushvalue(L, -3);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, s);
    lua_pushvalue(L, 2);
    s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->ctx = ctx;
    hs_owned_add(&ctx->all, &s->own, ctx->hl->running, ctx->hl->running_at_load);
    if (fresh && ctx->ps)
        hs_pubsub_interest(ctx->ps, ch, chlen, +1);
    return 1;
}

/* hotsock.publish(channel, msg) -> true | nil, "too large" | nil, "queue full" */
static int l_hotsock_publish(lua_State *L)
{
    struct hs__pubsub *ctx = ctx_of(L);
    size_t chlen, len;
    const char *ch = luaL_checklstring(L, 1, &chlen);
    const char *msg = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, chlen >= 1 && chlen <= HS_PUBSUB_MAX_CHANNEL, 1,
                  "channel must be 1 to 255 bytes");
    int r = ctx->ps ? hs_pubsub_publish(ctx->ps, ch, chlen, msg, len) : 0;
    /* Other servers get theirs after this one's workers have theirs queued; a full local
     * queue (one worker behind) does not hold back the rest of the cluster. */
    if (r != -E2BIG)
        hs_pubsub_redis_publish(hs_pubsub_redis_default(), ch, chlen, msg, len);
    if (r >= 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return hs__lua_fail(L, r);
}

/* hotsock.worker() -> this worker's number: 1..N, 1 in a single process, 0 in the master. */
static int l_hotsock_worker(lua_State *L)
{
    struct hs__pubsub *ctx = ctx_of(L);
    lua_pushinteger(L, ctx->ps ? (lua_Integer)hs_pubsub_self(ctx->ps) : 1);
    return 1;
}

/* hotsock.workers() -> how many workers the server runs. */
static int l_hotsock_workers(lua_State *L)
{
    struct hs__pubsub *ctx = ctx_of(L);
    lua_pushinteger(L, ctx->ps ? (lua_Integer)hs_pubsub_workers(ctx->ps) : 1);
    return 1;
}

/* Runs every active subscriber of m's channel with (msg, channel). */
static void dispatch(struct hs__pubsub *ctx, const struct hs_pubsub_msg *m)
{
    lua_State *L = ctx->hl->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->bychan_ref);
    lua_pushlstring(L, m->channel, m->channel_len);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_settop(L, top);
        return; /* a filter collision, or everyone cancelled since it was queued */
    }
    /* A callback may subscribe or cancel: walk a copy of the array. */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n > 1) {
        lua_createtable(L, (int)n, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, i);
            lua_rawseti(L, -2, i);
        }
    }
    int subs = lua_gettop(L);
    lua_pushlstring(L, m->data, m->len);
    lua_pushlstring(L, m->channel, m->channel_len);
    char what[HS_PUBSUB_MAX_CHANNEL + 64];
    snprintf(what, sizeof what, "subscriber of channel '%.*s'", (int)m->channel_len, m->channel);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, subs, i);
        struct sub *s = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (s == NULL || !sub_active(s))
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
        lua_pushvalue(L, subs + 1);
        lua_pushvalue(L, subs + 2);
        /* An error is logged; the others still run. A subscriber may wait, in its own
         * coroutine, like any callback. */
        struct hs__invoke iv = {.v = s->own.owner, .what = what};
        hs__lua_invoke(ctx->hl, &iv, 2, 0);
    }
    lua_settop(L, top);
}

static void note_drops(struct hs__pubsub *ctx)
{
    struct hs_pubsub_counts c;
    hs_pubsub_counts(ctx->ps, &c);
    if (c.dropped < ctx->drops_seen)
        ctx->drops_seen = 0; /* the queue was claimed afresh */
    if (c.dropped == ctx->drops_seen)
        return;
    if (!hs_log_due(&ctx->drop_logged_at, PUBSUB_DROP_LOG_SECS))
        return;
    hs_log(HS_LOG_WARN,
           "pubsub: worker %u fell behind: %llu message(s) dropped, its queue (%zu bytes) was "
           "full (%llu dropped in all)",
           hs_pubsub_self(ctx->ps), c.dropped - ctx->drops_seen, c.capacity, c.dropped);
    ctx->drops_seen = c.dropped;
}

static void pubsub_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs__pubsub *ctx = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    hs_pubsub_wake_reset(ctx->ps);
    struct hs_pubsub_msg m;
    int n = 0;
    while (n < PUBSUB_BATCH && hs_pubsub_next(ctx->ps, &m)) {
        dispatch(ctx, &m);
        n++;
    }
    /* More may wait: come back after the loop has served the sockets once. */
    if (n == PUBSUB_BATCH)
        event_active(ctx->ev, EV_READ, 0);
    note_drops(ctx);
}

static int l_pubsub_ctx_gc(lua_State *L)
{
    struct hs__pubsub *ctx = lua_touserdata(L, 1);
    if (ctx->ev)
        event_free(ctx->ev);
    ctx->ev = NULL;
    if (consumer == ctx)
        consumer = NULL;
    hs_owned_list_stop(&ctx->all);
    return 0;
}

/* A version that owns the subscription o went (core/owned.h). */
static void sub_version_gone(struct hs_owned *o, void *arg)
{
    struct hs__pubsub *ctx = arg;
    sub_cancel(ctx->hl->L, HS_OWNED_OBJECT(o, struct sub, own));
}

size_t hs_lua_pubsub_stats(struct hs_lua *hl, char *out, size_t n)
{
    struct hs__pubsub *ctx = hl->pubsub;
    if (n)
        out[0] = '\0';
    if (ctx == NULL || ctx->ps == NULL || hs_pubsub_self(ctx->ps) == 0)
        return 0;
    struct hs_pubsub_counts c;
    hs_pubsub_counts(ctx->ps, &c);
    /* Across servers (--pubsub): what went to Redis, came from it, and was lost on the way. */
    struct hs_pubsub_redis_counts rc = {0};
    if (hs_pubsub_redis_default())
        hs_pubsub_redis_counts(hs_pubsub_redis_default(), &rc);
    int w = snprintf(out, n,
                     "pubsub subscriptions=%u published=%llu delivered=%llu dropped=%llu "
                     "queued=%llu capacity=%zu remote_sent=%llu remote_received=%llu "
                     "remote_dropped=%llu\n",
                     ctx->all.n, c.published, c.delivered, c.dropped, c.queued, c.capacity, rc.sent,
                     rc.received, rc.dropped);
    return w > 0 && (size_t)w < n ? (size_t)w : 0;
}

void hs__lua_open_pubsub(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"subscribe", l_hotsock_subscribe},
        {"publish", l_hotsock_publish},
        {"worker", l_hotsock_worker},
        {"workers", l_hotsock_workers},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {{"cancel", l_subscription_cancel}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__tostring", l_subscription_tostring}, {NULL, NULL}};
    hs__box_meta(L, HS__BOX_SUB, methods, meta);
    lua_pop(L, 1);

    struct hs_lua *hl = hs__lua_from_state(L);
    struct hs__pubsub *ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
    memset(ctx, 0, sizeof *ctx);
    ctx->hl = hl;
    ctx->ps = hs_pubsub_default();
    hs_owned_list_start(&ctx->all, sub_version_gone, ctx);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_pubsub_ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_newtable(L);
    ctx->bychan_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &PUBSUB_KEY);
    hl->pubsub = ctx;
    luaL_setfuncs(L, funcs, 0);
    int fd = ctx->ps ? hs_pubsub_wake_fd(ctx->ps) : -1;
    if (fd >= 0 && consumer == NULL) {
        ctx->ev = event_new(hl->base, fd, EV_READ | EV_PERSIST, pubsub_wake_cb, ctx);
        if (ctx->ev && event_add(ctx->ev, NULL) == 0)
            consumer = ctx;
    }
}
