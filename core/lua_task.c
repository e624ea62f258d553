/* Calls into scripts: the one invoke path every callback takes. Each call runs in a coroutine
 * (a "task") taken from a per-state pool, under the sandbox's limits, as the version it
 * belongs to. A call that never waits costs a lua_resume instead of a lua_pcall and no
 * allocation: tasks and their threads are reused. */
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/reload.h"
#include "core/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One call into a script, from its first run until it returns or fails. */
struct hs__task {
    struct hs_lua *hl;
    lua_State *T;          /* its coroutine */
    int ref;               /* registry reference anchoring T (a running thread must be held) */
    struct hs_version *v;  /* the version whose code it runs */
    const char *what;      /* names the call in the log */
    struct hs_conn *conn;  /* the connection it is for, or NULL */
    unsigned flags;        /* HS__INVOKE_* */
    struct hs__task *next; /* hl->idle */
};

/* A task with a fresh or reused coroutine. Outside a call nothing is refused by the
 * allocator, so lua_newthread fails only when the process is out of memory (a panic). */
static struct hs__task *task_take(struct hs_lua *hl)
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
    luaL_unref(t->hl->L, LUA_REGISTRYINDEX, t->ref);
    free(t);
}

/* A task whose coroutine returned goes back to the pool, its stack emptied. */
static void task_give(struct hs__task *t)
{
    struct hs_lua *hl = t->hl;
    lua_settop(t->T, 0);
    t->v = NULL;
    t->conn = NULL;
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
    while (hl->idle) {
        struct hs__task *t = hl->idle;
        hl->idle = t->next;
        task_free(t);
    }
    hl->nidle = 0;
}

/* Runs t's coroutine with nargs values on its stack until it returns, fails or yields.
 * Returns lua_resume's status; *nres results are on t->T. */
static int task_step(struct hs__task *t, int nargs, int *nres)
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
    char err[2048];
    task_error_text(t, st, out ? out : err, out ? outlen : sizeof err);
    if (out == NULL) {
        hs_stats_handler_error(hs_version_stats(t->v));
        if (t->conn)
            hs_log(HS_LOG_ERROR, "handler error in %s (conn#%llu %s): %s", t->what,
                   (unsigned long long)hs_conn_id(t->conn), hs_conn_peer(t->conn), err);
        else
            hs_log(HS_LOG_ERROR, "handler error in %s: %s", t->what, err);
    }
    if ((t->flags & HS__INVOKE_CLOSE) && t->conn && !hs_conn_is_closing(t->conn))
        hs_conn_close(t->conn, "handler error");
    /* Closes the coroutine's pending to-be-closed variables (a yield left them open). */
    lua_resetthread(t->T);
    task_free(t);
    return HS_ESCRIPT;
}

int hs__lua_invoke(struct hs_lua *hl, const struct hs__invoke *iv, int nargs, int nres)
{
    lua_State *L = hl->L;
    if (iv->name != NULL) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(iv->v));
        if (lua_getfield(L, -1, iv->name) != LUA_TFUNCTION) {
            lua_pop(L, 2 + nargs);
            return 1;
        }
        lua_remove(L, -2);
        lua_insert(L, -1 - nargs);
    }
    struct hs__task *t = task_take(hl);
    if (t == NULL) {
        lua_pop(L, nargs + 1);
        hs_log(HS_LOG_ERROR, "out of memory for a call to %s", iv->what ? iv->what : iv->name);
        return HS_ESCRIPT;
    }
    t->v = iv->v;
    t->what = iv->what ? iv->what : iv->name;
    t->conn = iv->conn;
    t->flags = iv->flags;
    lua_xmove(L, t->T, nargs + 1);
    int n = 0;
    int st = task_step(t, nargs, &n);
    if (st != LUA_OK)
        return task_fail(t, st, iv->err, iv->errlen);
    if (nres > 0) {
        if (n > nres)
            lua_pop(t->T, n - nres);
        lua_xmove(t->T, L, n < nres ? n : nres);
        for (; n < nres; n++)
            lua_pushnil(L);
    }
    task_give(t);
    return 0;
}
