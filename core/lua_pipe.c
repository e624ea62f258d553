/* conn:pipe(dst) for scripts: the waiting call over core/conn_pipe.h. The calling coroutine
 * waits while the core moves bytes from conn to dst with no script call per read, and resumes
 * once with the pipe's end: bytes (conn reached end of stream), or nil, err, bytes. */
#include "core/conn_pipe.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/lua_internal.h"

#include <errno.h>

#include <event2/event.h>

/* The pipe ended (core/conn_pipe.h): its task resumes with the results. */
static void pipe_done(struct hs_conn *src, int status, uint64_t bytes, void *arg)
{
    struct hs__task *t = arg;
    HS_UNUSED(src);
    if (status == 0) {
        lua_pushinteger(t->T, (lua_Integer)bytes);
        hs__task_resume(t, 1);
        return;
    }
    hs__lua_fail(t->T, status);
    lua_pushinteger(t->T, (lua_Integer)bytes);
    hs__task_resume(t, 3);
}

/* The conn's timeout (conn:settimeout) counts from the last byte moved: when it fires early
 * it waits for the rest; when no byte moved for that long the pipe ends with "timeout". */
static void pipe_timeout(struct hs__task *t)
{
    struct hs__conn_box *box = t->wait_data;
    long long ms = hs__conn_xr(box)->timeout_ms;
    long long idle = box->c ? hs_conn_pipe_idle_ms(box->c) : -1;
    if (idle >= 0 && idle < ms && hs__task_timer(t, ms - idle, pipe_timeout) == 0)
        return;
    uint64_t bytes = box->c ? hs_conn_pipe_stop(box->c) : 0;
    hs__lua_fail(t->T, -ETIMEDOUT);
    lua_pushinteger(t->T, (lua_Integer)bytes);
    hs__task_resume(t, 3);
}

/* The handler waiting in conn:pipe lost its client (neither end of the pipe): it stops. */
static int pipe_cancel(struct hs__task *t, int push)
{
    struct hs__conn_box *box = t->wait_data;
    uint64_t bytes = box->c ? hs_conn_pipe_stop(box->c) : 0;
    if (!push)
        return 0;
    hs__lua_fail(t->T, HS_ECLOSED);
    lua_pushinteger(t->T, (lua_Integer)bytes);
    return 3;
}

/* conn:pipe(dst) — from now on every byte read from conn goes to dst's output in C; waits
 * until conn's peer closes (returns the bytes moved; dst stays open), or until dst closes or
 * fails, conn fails or the conn:settimeout time passes with no byte moved (returns nil, err,
 * bytes). Raises for a dst that is not a conn or is conn itself, and while conn is already
 * piping or receiving. */
static int l_conn_pipe(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:pipe");
    struct hs__conn_box *dbox = hs__box_check(L, 2, HS__BOX_CONN, "conn:pipe");
    if (dbox == box)
        return luaL_argerror(L, 2, "a conn cannot pipe to itself");
    if (box->c && hs_conn_piping(box->c))
        return luaL_error(L, "conn:pipe: conn#%I is already piping", (lua_Integer)box->id);
    if (hs__conn_xr(box)->reader != NULL)
        return luaL_error(L, "conn:pipe: a receive is waiting on conn#%I", (lua_Integer)box->id);
    /* Either end may be gone already (a client that left while the upstream was connected):
     * a runtime failure, not a misuse. */
    if (hs__box_gone(&box->box) || hs__box_gone(&dbox->box) || hs_conn_is_closing(box->c) ||
        hs_conn_is_closing(dbox->c)) {
        hs__lua_fail(L, HS_ECLOSED);
        lua_pushinteger(L, 0);
        return 3;
    }
    int ms = hs__conn_xr(box)->timeout_ms;
    struct hs__task *t = hs__task_wait(L, "conn:pipe");
    if (ms > 0 && hs__task_timer(t, ms, pipe_timeout) != 0) {
        t->waiting = NULL;
        return luaL_error(L, "conn:pipe: out of memory for a timer");
    }
    int r = hs_conn_pipe_to(box->c, dbox->c, pipe_done, t);
    if (r != 0) {
        /* Memory, or a dst shut down by conn:shutdown ("closed"): the checks above cover
         * the rest. */
        t->waiting = NULL;
        if (t->timer)
            event_del(t->timer);
        hs__lua_fail(L, r);
        lua_pushinteger(L, 0);
        return 3;
    }
    /* Both boxes stay alive meanwhile: they are on the waiting coroutine's stack. */
    t->wait_data = box;
    t->on_cancel = pipe_cancel;
    return lua_yield(L, 0);
}

void hs__lua_conn_methods_pipe(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"pipe", l_conn_pipe},
        {NULL, NULL},
    };
    luaL_setfuncs(L, methods, 0);
}
