/* Calls into scripts: the one invoke path every callback takes. Each call runs in a coroutine
 * (a "task") taken from a per-state pool, under the sandbox's limits, as the version it
 * belongs to. A call that never waits costs a lua_resume instead of a lua_pcall and no
 * allocation: tasks and their threads are reused. */
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* A task with a fresh or reused coroutine. Outside a call nothing is refused by the
 * allocator, so lua_newthread fails only when the process is out of memory (a panic). */
HS_HOT static struct hs__task *task_take(struct hs_lua *hl)
{
    struct hs__task *t = hl->idle;
    if (t != NULL) {
        hl->idle = t->next;
        hl->nidle--;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->hl = hl;
    t->T = lua_newthread(hl->L);
    t->ref = luaL_ref(hl->L, LUA_REGISTRYINDEX);
    return t;
}

/* Drops the task's coroutine (it failed, or the pool is full) and the task. */
static void task_free(struct hs__task *t)
{
    if (t->timer)
        event_free(t->timer);
    luaL_unref(t->hl->L, LUA_REGISTRYINDEX, t->ref);
    free(t);
}

/* A task whose coroutine returned goes back to the pool, its stack emptied. */
HS_HOT static void task_give(struct hs__task *t)
{
    struct hs_lua *hl = t->hl;
    lua_settop(t->T, 0);
    t->v = NULL;
    t->conn = NULL;
    t->box = NULL;
    if (hl->nidle >= HS_LUA_POOL_MAX) {
        task_free(t);
        return;
    }
    t->next = hl->idle;
    hl->idle = t;
    hl->nidle++;
}

void hs__lua_pool_free(struct hs_lua *hl)
{
    /* Calls still waiting at shutdown are dropped: their boxes let go of their versions. */
    while (hl->waiting) {
        struct hs__task *t = hl->waiting;
        hl->waiting = t->next;
        if (t->waiting && t->on_cancel)
            t->on_cancel(t, 0); /* a connect in flight, a receive on an outbound conn */
        if (t->box) {
            t->box->task = NULL;
            if (t->box->x)
                t->box->x->close_reason = NULL;
            hs__conn_settle(hl, t->box);
        }
        if (t->rbox)
            t->rbox->x->reader = NULL; /* a reader made the extension */
        if (t->join)
            hs__join_drop(t);
        hs_version_unref(t->v);
        task_free(t);
    }
    hl->nwaiting = 0;
    while (hl->idle) {
        struct hs__task *t = hl->idle;
        hl->idle = t->next;
        task_free(t);
    }
    hl->nidle = 0;
}

/* Runs t's coroutine with nargs values on its stack until it returns, fails or yields.
 * Returns lua_resume's status; *nres results are on t->T. */
HS_HOT static int task_step(struct hs__task *t, int nargs, int *nres)
{
    struct hs_lua *hl = t->hl;
    struct hs__task *outer = hl->task;
    int was_at_load = hl->running_at_load;
    struct hs_version *was = hs__lua_set_running(hl, t->v, (t->flags & HS__INVOKE_AT_LOAD) != 0);
    hl->task = t;
    hs__lua_sandbox_enter(hl);
    /* A call nested in another (on_close run by conn:abort) counts the C stack from there. */
    int st = lua_resume(t->T, outer ? outer->T : hl->L, nargs, nres);
    hs__lua_sandbox_leave(hl);
    hl->task = outer;
    hs__lua_set_running(hl, was, was_at_load);
    return st;
}

/* Text built by hand, not by snprintf: a label is made on the first wait of every call that
 * waits, and read only when a call fails. Each appends to buf (cap bytes, *len used),
 * truncating, and keeps it terminated. */
static void text_put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n > cap - 1 - *len)
        n = cap - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

static void text_puts(char *buf, size_t cap, size_t *len, const char *s)
{
    text_put(buf, cap, len, s, strlen(s));
}

static void text_put_u64(char *buf, size_t cap, size_t *len, unsigned long long v)
{
    char d[20];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    text_put(buf, cap, len, d + i, sizeof d - i);
}

/* Appends the call's name to buf: t->what, and the datagram's source and ")" after it when
 * the caller gave one (joined here, when the log or a wait needs it, not for every datagram). */
static void what_put(const struct hs__task *t, char *buf, size_t cap, size_t *len)
{
    text_puts(buf, cap, len, t->what);
    if (t->what_peer) {
        text_puts(buf, cap, len, t->what_peer);
        text_puts(buf, cap, len, ")");
    }
}

/* The call's name for the log (what_put), in buf when it has to be joined. */
static const char *task_what(const struct hs__task *t, char *buf, size_t cap)
{
    if (t->what_peer == NULL)
        return t->what;
    size_t len = 0;
    what_put(t, buf, cap, &len);
    return buf;
}

/* The error of a failed task as text with a traceback of its coroutine (which an error leaves
 * as it was, the wait included), into err. */
static void task_error_text(struct hs__task *t, int st, char *err, size_t errlen)
{
    struct hs_lua *hl = t->hl;
    lua_State *T = t->T;
    if (st == LUA_YIELD) {
        snprintf(err, errlen,
                 "coroutine.yield() from a handler's own coroutine (wait with "
                 "hotsock's calls, or yield in a coroutine of your own)");
        return;
    }
    if (st == LUA_ERRMEM && hl->mem_limit) {
        /* No traceback could be built without memory: say which limit. */
        snprintf(err, errlen, "not enough memory (the Lua memory limit is %zu MiB)",
                 hl->mem_limit >> 20);
        return;
    }
    const char *msg = lua_tostring(T, -1);
    if (msg == NULL) {
        if (luaL_callmeta(T, -1, "__tostring") && lua_type(T, -1) == LUA_TSTRING)
            msg = lua_tostring(T, -1);
        else
            msg = lua_pushfstring(T, "(error object is a %s value)", luaL_typename(T, -1));
    }
    luaL_traceback(hl->L, T, msg, 0);
    snprintf(err, errlen, "%s", lua_tostring(hl->L, -1));
    lua_pop(hl->L, 1);
}

/* A task failed (or yielded outside our waits): report it and drop its coroutine, whose stack
 * is not reusable. Returns HS_ESCRIPT. */
static int task_fail(struct hs__task *t, int st, char *out, size_t outlen)
{
    char err[2048], whatbuf[sizeof t->label];
    task_error_text(t, st, out ? out : err, out ? outlen : sizeof err);
    if (out == NULL) {
        const char *what = task_what(t, whatbuf, sizeof whatbuf);
        hs_stats_handler_error(hs_version_stats(t->v));
        if (t->label[0] && t->wait_line > 0)
            hs_log(HS_LOG_ERROR, "handler error in %s, after waiting in %s at %s:%d: %s", t->label,
                   t->wait_what, t->wait_src, t->wait_line, err);
        else if (t->label[0])
            hs_log(HS_LOG_ERROR, "handler error in %s, after waiting in %s: %s", t->label,
                   t->wait_what, err);
        else if (t->conn)
            hs_log(HS_LOG_ERROR, "handler error in %s (conn#%llu %s): %s", what,
                   (unsigned long long)hs_conn_id(t->conn), hs_conn_peer(t->conn), err);
        else
            hs_log(HS_LOG_ERROR, "handler error in %s: %s", what, err);
    }
    struct hs_conn *c = t->box ? t->box->c : t->conn;
    /* t->label is set once the call has waited: its caller can no longer handle the error. */
    int late = (t->flags & HS__INVOKE_CLOSE_LATE) && t->label[0];
    if (((t->flags & HS__INVOKE_CLOSE) || late) && c && !hs_conn_is_closing(c))
        hs_conn_close(c, "handler error");
    /* Closes the coroutine's pending to-be-closed variables (a yield left them open). */
    lua_resetthread(t->T);
    task_free(t);
    return HS_ESCRIPT;
}

/* handle(conn) returned or failed: the connection closes after its pending output. */
static void handle_done(struct hs__conn_box *box)
{
    if (box && box->c && !hs_conn_is_closing(box->c))
        hs_conn_close(box->c, "closed");
}

/* The first run of t waited: from now on it outlives the C call that started it. */
static void task_suspend(struct hs__task *t)
{
    struct hs_lua *hl = t->hl;
    size_t len = 0;
    what_put(t, t->label, sizeof t->label, &len);
    if (t->conn) {
        /* "WHAT (conn#ID PEER)" */
        text_puts(t->label, sizeof t->label, &len, " (conn#");
        text_put_u64(t->label, sizeof t->label, &len, (unsigned long long)hs_conn_id(t->conn));
        text_puts(t->label, sizeof t->label, &len, " ");
        text_puts(t->label, sizeof t->label, &len, hs_conn_peer(t->conn));
        text_puts(t->label, sizeof t->label, &len, ")");
    }
    t->what = t->label; /* the caller's text may live on its stack */
    t->what_peer = NULL;
    t->conn = NULL;
    hs_version_ref(t->v);
    t->prev = NULL;
    t->next = hl->waiting;
    if (hl->waiting)
        hl->waiting->prev = t;
    hl->waiting = t;
    hl->nwaiting++;
    struct hs__conn_box *box = t->box;
    if (box) {
        box->task = t;
        /* No other callback of the conn runs meanwhile; a receive on it set its own bound. */
        if (box->c && t->rbox != box)
            hs_conn_hold(box->c, HS_READ_SIZE);
    }
}

/* A task that waited has ended (status 0, or HS_ESCRIPT already reported). */
static void task_end(struct hs__task *t, int ok)
{
    struct hs_lua *hl = t->hl;
    if (t->prev)
        t->prev->next = t->next;
    else
        hl->waiting = t->next;
    if (t->next)
        t->next->prev = t->prev;
    hl->nwaiting--;
    if (t->timer)
        event_del(t->timer);
    struct hs__conn_box *box = t->box;
    unsigned flags = t->flags;
    hs_version_unref(t->v);
    if (ok)
        task_give(t);
    else
        task_free(t);
    if (box) {
        box->task = NULL;
        if (flags & HS__INVOKE_HANDLE)
            handle_done(box);
        hs__conn_settle(hl, box);
    }
}

struct hs__task *hs__task_wait(lua_State *L, const char *what)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    struct hs__task *t = hl->task;
    if (t == NULL)
        luaL_error(L, "%s cannot wait here: not in a handler's coroutine", what);
    if (t->flags & HS__INVOKE_NO_WAIT) {
        char whatbuf[sizeof t->label];
        luaL_error(L, "%s cannot wait inside %s (it must answer at once)", what,
                   task_what(t, whatbuf, sizeof whatbuf));
    }
    if (L != t->T)
        luaL_error(L, "%s cannot wait inside a coroutine of the script's own (use hotsock.spawn)",
                   what);
    if (!lua_isyieldable(L))
        luaL_error(L,
                   "%s cannot wait here: a C function (a metamethod, an iterator, "
                   "table.sort) is between it and the handler",
                   what);
    t->waiting = what;
    t->wait_what = what;
    t->wait_line = 0;
    /* Only the parts are kept here (a fixed-size copy, no formatting): the text is made if
     * the call fails, which few do, while a proxy waits twice per message. */
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        t->wait_line = ar.currentline;
        memcpy(t->wait_src, ar.short_src, sizeof t->wait_src);
    }
    return t;
}

static void task_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs__task *t = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (t->on_timer)
        t->on_timer(t);
}

int hs__task_timer(struct hs__task *t, long long ms, void (*on_timer)(struct hs__task *t))
{
    if (t->timer == NULL)
        t->timer = evtimer_new(t->hl->base, task_timer_cb, t);
    if (t->timer == NULL)
        return -ENOMEM;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    t->on_timer = on_timer;
    return event_add(t->timer, &tv) == 0 ? 0 : -ENOMEM;
}

void hs__task_cancel(struct hs__task *t)
{
    if (t->waiting == NULL || t->on_cancel == NULL)
        return;
    int n = t->on_cancel(t, 1);
    hs__task_resume(t, n);
}

void hs__task_resume(struct hs__task *t, int nargs)
{
    t->waiting = NULL;
    t->on_cancel = NULL;
    t->wait_data = NULL;
    if (t->timer)
        event_del(t->timer);
    int n = 0;
    int st = task_step(t, nargs, &n);
    if (st == LUA_YIELD && t->waiting) {
        struct hs__conn_box *box = t->box;
        if (box && box->c && t->rbox != box)
            hs_conn_hold(box->c, HS_READ_SIZE);
        return;
    }
    /* A spawned call keeps its results (or error) in its task box before t goes. */
    struct hs__join *woken = t->join ? hs__join_end(t, st, n) : NULL;
    if (st != LUA_OK) {
        /* task_fail frees t: take it off the list of waiting tasks first. */
        struct hs_lua *hl = t->hl;
        struct hs__conn_box *box = t->box;
        unsigned flags = t->flags;
        struct hs_version *v = t->v;
        if (t->prev)
            t->prev->next = t->next;
        else
            hl->waiting = t->next;
        if (t->next)
            t->next->prev = t->prev;
        hl->nwaiting--;
        task_fail(t, st, NULL, 0);
        hs_version_unref(v);
        if (box) {
            box->task = NULL;
            if (flags & HS__INVOKE_HANDLE)
                handle_done(box);
            hs__conn_settle(hl, box);
        }
        if (woken)
            hs__join_wake(hl, woken);
        return;
    }
    struct hs_lua *hl = t->hl;
    task_end(t, 1);
    if (woken)
        hs__join_wake(hl, woken);
}

/* Pushes v's callback `name` onto T, or returns 0 (nothing pushed) when v has none. A
 * version's snapshot never changes (hs__script_check, script_decl.c), so a function found there is
 * kept as a registry reference: the next call is one rawgeti on T instead of reading the
 * snapshot by name (interning the name) and moving the function across. */
HS_HOT static int push_callback(struct hs_lua *hl, const struct hs_version *v, const char *name,
                                lua_State *T)
{
    for (unsigned i = 0; i < HS_LUA_CB_CACHE; i++) {
        if (hl->cb[i].v == v && hl->cb[i].name == name) {
            lua_rawgeti(T, LUA_REGISTRYINDEX, hl->cb[i].ref);
            return 1;
        }
    }
    lua_State *L = hl->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v));
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return 0;
    }
    struct hs__cb_cached *slot = &hl->cb[hl->cb_next];
    hl->cb_next = (hl->cb_next + 1) % HS_LUA_CB_CACHE;
    if (slot->v != NULL)
        luaL_unref(L, LUA_REGISTRYINDEX, slot->ref);
    lua_pushvalue(L, -1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    slot->v = ref == LUA_REFNIL || ref == LUA_NOREF ? NULL : v;
    slot->name = name;
    slot->ref = ref;
    lua_xmove(L, T, 1);
    lua_pop(L, 1);
    return 1;
}

/* hs_version_watch: a freed version's callbacks go (its address may come back as another
 * version's). A retired one keeps them: its connections still call them. */
static void callbacks_version_gone(struct hs_version *v, int freed, void *arg)
{
    struct hs_lua *hl = arg;
    if (!freed)
        return;
    for (unsigned i = 0; i < HS_LUA_CB_CACHE; i++) {
        if (hl->cb[i].v == v) {
            luaL_unref(hl->L, LUA_REGISTRYINDEX, hl->cb[i].ref);
            hl->cb[i].v = NULL;
        }
    }
}

void hs__lua_callbacks_start(struct hs_lua *hl)
{
    hl->cb_watch.cb = callbacks_version_gone;
    hl->cb_watch.arg = hl;
    hs_version_watch(&hl->cb_watch);
}

void hs__lua_callbacks_stop(struct hs_lua *hl)
{
    hs_version_unwatch(&hl->cb_watch);
}

/* Runs the call set up on t (the callback and its nargs arguments on t->T): hs__lua_invoke's
 * second half, and hs__lua_call_begin's. */
HS_HOT int hs__lua_call_run(struct hs__task *t, const struct hs__invoke *iv, int nargs, int nres)
{
    struct hs_lua *hl = t->hl;
    t->v = iv->v;
    t->what = iv->what ? iv->what : iv->name;
    t->what_peer = iv->what_peer;
    t->conn = iv->conn;
    /* A second call for a conn whose handler waits (a pipe callback) does not hold it. */
    t->box = iv->box && iv->box->task == NULL ? iv->box : NULL;
    t->flags = iv->flags | (nres > 0 ? HS__INVOKE_NO_WAIT : 0);
    t->label[0] = '\0';
    t->join = NULL;
    if (iv->join)
        hs__join_bind(iv->join, t);
    int n = 0;
    int st = task_step(t, nargs, &n);
    if (st == LUA_YIELD && t->waiting) {
        task_suspend(t);
        return HS_AGAIN;
    }
    if (t->join) {
        /* Nobody can wait on a box not yet returned: nothing to wake. */
        hs__join_end(t, st, n);
    }
    if (st != LUA_OK) {
        int r = task_fail(t, st, iv->err, iv->errlen);
        if (iv->flags & HS__INVOKE_HANDLE)
            handle_done(iv->box);
        return r;
    }
    if (nres > 0) {
        if (n > nres)
            lua_pop(t->T, n - nres);
        lua_xmove(t->T, hl->L, n < nres ? n : nres);
        for (; n < nres; n++)
            lua_pushnil(hl->L);
    }
    task_give(t);
    if (iv->flags & HS__INVOKE_HANDLE)
        handle_done(iv->box);
    return 0;
}

/* A task for iv, or NULL (out of memory: logged). */
static struct hs__task *task_for(struct hs_lua *hl, const struct hs__invoke *iv)
{
    struct hs__task *t = task_take(hl);
    if (t == NULL)
        hs_log(HS_LOG_ERROR, "out of memory for a call to %s", iv->what ? iv->what : iv->name);
    return t;
}

HS_HOT int hs__lua_invoke(struct hs_lua *hl, const struct hs__invoke *iv, int nargs, int nres)
{
    lua_State *L = hl->L;
    struct hs__task *t = task_for(hl, iv);
    if (t == NULL) {
        lua_pop(L, nargs + (iv->name == NULL));
        return HS_ESCRIPT;
    }
    /* A callback by name goes straight onto the coroutine, under the arguments that follow
     * it there: no rotation of L's stack to put it below them. */
    if (iv->name != NULL && !push_callback(hl, iv->v, iv->name, t->T)) {
        lua_pop(L, nargs);
        task_give(t);
        return 1;
    }
    lua_xmove(L, t->T, nargs + (iv->name == NULL));
    return hs__lua_call_run(t, iv, nargs, nres);
}

HS_HOT struct hs__task *hs__lua_call_begin(struct hs_lua *hl, const struct hs__invoke *iv)
{
    struct hs__task *t = task_for(hl, iv);
    if (t != NULL && !push_callback(hl, iv->v, iv->name, t->T)) {
        task_give(t);
        return NULL;
    }
    return t;
}
