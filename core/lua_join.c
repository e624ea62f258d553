/* Task boxes: what hotsock.spawn returns, and task:wait / task:done. A box is linked to the
 * running call (its hs__task) only while the call runs; the call's end moves its results (or
 * its error message) into a registry table the box owns, so a box nobody keeps costs nothing
 * once it is collected, and a call nobody waits for keeps nothing but that table. Calls waiting
 * in task:wait are a list through hs__task.join_next; while there is one the box anchors itself
 * in the registry (self_ref) so that waking them never reads a freed box. */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/lua_box.h"
#include "core/lua_internal.h"

#include <errno.h>

enum {
    JOIN_RUNNING, /* the call runs (or waits) */
    JOIN_DONE,    /* it returned or raised: res_ref holds what task:wait answers */
    JOIN_CLOSED,  /* it was dropped without ending (the server stops) */
};

struct hs__join {
    HS__BOX_HEAD(struct hs__task, t); /* the running call; NULL once it ended or was dropped */
    int state;                        /* JOIN_* */
    int res_ref;  /* registry table {true, ...} or {nil, message}; LUA_NOREF before the end */
    int nres;     /* values in that table (it may hold nils) */
    int self_ref; /* anchors the box while calls wait on it; LUA_NOREF otherwise */
    struct hs__task *waiters; /* calls in task:wait, linked by join_next */
};

void hs__join_bind(struct hs__join *j, struct hs__task *t)
{
    j->t = t;
    t->join = j;
}

/* Pushes what task:wait answers for an ended box onto T; returns how many. */
static int join_push(lua_State *T, struct hs__join *j)
{
    if (j->state == JOIN_CLOSED || j->res_ref == LUA_NOREF)
        return hs__lua_fail(T, HS_ECLOSED);
    if (!lua_checkstack(T, j->nres + 1))
        return hs__lua_fail(T, -ENOMEM);
    lua_rawgeti(T, LUA_REGISTRYINDEX, j->res_ref);
    for (int i = 1; i <= j->nres; i++)
        lua_rawgeti(T, -i, i);
    lua_remove(T, -j->nres - 1);
    return j->nres;
}

struct hs__join *hs__join_end(struct hs__task *t, int st, int n)
{
    struct hs__join *j = t->join;
    lua_State *L = t->hl->L;
    lua_State *T = t->T;
    t->join = NULL;
    j->t = NULL;
    j->state = JOIN_DONE;
    if (st == LUA_OK) {
        lua_createtable(L, n + 1, 0);
        lua_pushboolean(L, 1);
        lua_rawseti(L, -2, 1);
        lua_xmove(T, L, n);
        /* With k results above it the table is at -(k + 1); each rawseti pops the last. */
        for (int k = n; k >= 1; k--)
            lua_rawseti(L, -(k + 1), k + 1);
        j->nres = n + 1;
    } else {
        /* The error stays on T for the log (task_fail); only its text is kept. */
        lua_createtable(L, 2, 0);
        if (st == LUA_YIELD)
            lua_pushliteral(L, "coroutine.yield() outside hotsock's waiting calls");
        else if (lua_type(T, -1) == LUA_TSTRING || lua_type(T, -1) == LUA_TNUMBER)
            lua_pushstring(L, lua_tostring(T, -1));
        else
            lua_pushfstring(L, "(error object is a %s value)", luaL_typename(T, -1));
        lua_rawseti(L, -2, 2);
        j->nres = 2;
    }
    j->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (j->waiters == NULL)
        return NULL;
    /* Pinned on L until hs__join_wake: the anchor goes, the stack slot holds it. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->self_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, j->self_ref);
    j->self_ref = LUA_NOREF;
    return j;
}

void hs__join_wake(struct hs_lua *hl, struct hs__join *j)
{
    /* IMPORTANT: each resume runs script code, which may end other waits on j (a timeout
     * cannot fire meanwhile, a cancel can): take one waiter off the list at a time. */
    struct hs__task *w;
    while ((w = j->waiters) != NULL) {
        j->waiters = w->join_next;
        w->join_next = NULL;
        hs__task_resume(w, join_push(w->T, j));
    }
    lua_pop(hl->L, 1);
}

void hs__join_drop(struct hs__task *t)
{
    struct hs__join *j = t->join;
    t->join = NULL;
    j->t = NULL;
    j->state = JOIN_CLOSED;
}

/* Takes w off j's list of waiters; the last one takes away the box's anchor. */
static void join_unlink(struct hs__join *j, struct hs__task *w)
{
    for (struct hs__task **p = &j->waiters; *p; p = &(*p)->join_next) {
        if (*p == w) {
            *p = w->join_next;
            break;
        }
    }
    w->join_next = NULL;
    if (j->waiters == NULL && j->self_ref != LUA_NOREF) {
        /* The waiter's stack still holds the box (task:wait's self). */
        luaL_unref(w->hl->L, LUA_REGISTRYINDEX, j->self_ref);
        j->self_ref = LUA_NOREF;
    }
}

static void wait_timeout(struct hs__task *w)
{
    join_unlink(w->wait_data, w);
    hs__task_resume(w, hs__lua_fail(w->T, -ETIMEDOUT));
}

/* The waiter itself is given up (its client left, the server stops). */
static int wait_cancel(struct hs__task *w, int push)
{
    join_unlink(w->wait_data, w);
    return push ? hs__lua_fail(w->T, HS_ECLOSED) : 0;
}

/* task:wait([timeout]) — waits until the spawned function has ended: true, its results; or
 * nil, its error message; nil, "timeout" after timeout seconds (it goes on); nil, "closed"
 * when it was dropped. At once when it has ended already. */
static int l_task_wait(lua_State *L)
{
    struct hs__join *j = hs__box_check(L, 1, HS__BOX_TASK, "task:wait");
    long long ms = -1;
    if (!lua_isnoneornil(L, 2)) {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s >= 0 && s < HS_MAX_WAIT_S, 2, "seconds out of range");
        ms = hs__seconds_ms(s);
    }
    if (j->state != JOIN_RUNNING)
        return join_push(L, j);
    struct hs_lua *hl = hs__lua_from_state(L);
    if (hl->task != NULL && hl->task == j->t)
        return luaL_error(L, "task:wait: a task cannot wait for itself");
    struct hs__task *w = hs__task_wait(L, "task:wait");
    if (ms == 0) {
        w->waiting = NULL;
        return hs__lua_fail(L, -ETIMEDOUT);
    }
    if (ms > 0 && hs__task_timer(w, ms, wait_timeout) != 0) {
        w->waiting = NULL;
        return luaL_error(L, "task:wait: out of memory for a timer");
    }
    if (j->self_ref == LUA_NOREF) {
        lua_pushvalue(L, 1);
        j->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    w->wait_data = j;
    w->on_cancel = wait_cancel;
    w->join_next = j->waiters;
    j->waiters = w;
    return lua_yield(L, 0);
}

/* task:done() — whether the spawned function has ended (returned, raised or was dropped). */
static int l_task_done(lua_State *L)
{
    struct hs__join *j = hs__box_check(L, 1, HS__BOX_TASK, "task:done");
    lua_pushboolean(L, j->state != JOIN_RUNNING);
    return 1;
}

static int l_task_gc(lua_State *L)
{
    struct hs__join *j = hs__box_check(L, 1, HS__BOX_TASK, "task:__gc");
    if (j->t) {
        j->t->join = NULL; /* the call goes on, keeping nothing for anyone */
        j->t = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, j->res_ref);
    j->res_ref = LUA_NOREF;
    return 0;
}

static int l_task_tostring(lua_State *L)
{
    struct hs__join *j = hs__box_check(L, 1, HS__BOX_TASK, "task:__tostring");
    static const char *const states[] = {"running", "done", "closed"};
    lua_pushfstring(L, "task (%s)", states[j->state]);
    return 1;
}

/* Called by hotsock.spawn before the call starts: a box in the running state, on top of L. */
struct hs__join *hs__join_new(lua_State *L)
{
    struct hs__join *j = hs__box_new(L, HS__BOX_TASK, sizeof *j, 0);
    j->state = JOIN_RUNNING;
    j->res_ref = LUA_NOREF;
    j->self_ref = LUA_NOREF;
    return j;
}

void hs__lua_open_join(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"wait", l_task_wait},
        {"done", l_task_done},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_task_gc},
        {"__tostring", l_task_tostring},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_TASK, methods, meta);
    lua_pop(L, 1);
}
