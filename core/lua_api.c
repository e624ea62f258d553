#include "core/lua_api.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lualib.h>

#define LUA_HOOK_COUNT 1000          /* a script coroutine's instructions between two looks */
#define LUA_TICK_MIN_US 1000         /* the watchdog's tick: an eighth of the time limit, */
#define LUA_TICK_MAX_US 50000        /* within these bounds (CPU time, ITIMER_PROF) */
#define LUA_HARD_MEMORY_FACTOR 2     /* the allocator refuses past this many times the limit */
#define LUA_COARSE_LIMIT_MS 100      /* time limits from here on use the coarse clock */
#define LUA_GC_MIN_GARBAGE (1 << 20) /* bytes a small heap may allocate between two GC cycles */
#define LUA_GC_BAND_SHIFT 16         /* the GC pause is looked at when the heap moves 64 KiB */
#define LUA_GC_PAUSE 200             /* Lua's own pause (%): a cycle once the heap doubled */
#define LUA_GC_PAUSE_MAX 1000        /* the highest pause Lua can store (%) */

/* Message handler: turn any error value into text and append a traceback, like lua.c. */
static int lua_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- sandbox: memory and time limits ---- */

/* The watchdog's clock, read at every call's start and every LUA_HOOK_COUNT instructions.
 * With a time limit of LUA_COARSE_LIMIT_MS or more it is the coarse monotonic clock: a
 * memory read in the vDSO instead of a TSC read and its scaling, and its tick (1-4 ms on
 * Linux) moves a deadline by under 4% of the limit. A shorter limit keeps the precise one. */
static long long mono_ns(const struct hs_lua *hl)
{
    struct timespec ts;
    clock_gettime(
        hl->time_limit_ms >= LUA_COARSE_LIMIT_MS ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wd_arm(struct hs_lua *hl);

/* The allocator of the state. Outside a call from C nothing is refused: C code pushing
 * arguments must never meet a Lua error there. During a call, growth past the limit is noted
 * for the hook, which raises a clean error at the script's next instructions; growth past
 * LUA_HARD_MEMORY_FACTOR times the limit (one huge string.rep) is refused at once, which Lua
 * turns into "not enough memory" after an emergency collection. */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct hs_lua *hl = ud;
    size_t old = ptr ? osize : 0; /* for a new block osize is a type tag, not a size */
    if (nsize == 0) {
        free(ptr);
        hl->mem_used -= old;
        return NULL;
    }
    if (nsize > old && hl->mem_limit && hl->depth > 0) {
        size_t after = hl->mem_used - old + nsize;
        if (after > hl->mem_limit * LUA_HARD_MEMORY_FACTOR || after < hl->mem_used - old) {
            hl->mem_refused = 1;
            return NULL;
        }
        if (after > hl->mem_limit && !hl->mem_over) {
            hl->mem_over = 1;
            wd_arm(hl); /* the hook collects and looks again */
        }
    }
    /* Most blocks are new (a reload's compile asks for ~4,500): malloc itself is realloc's
     * path for them minus a few tests. */
    void *p = ptr ? realloc(ptr, nsize) : malloc(nsize);
    if (p != NULL)
        hl->mem_used = hl->mem_used - old + nsize;
    return p;
}

/* Raises "FILE:LINE: what" for the Lua function the hook interrupted. */
static int lua_limit_error(lua_State *L, lua_Debug *ar, const char *what, unsigned n,
                           const char *unit)
{
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: %s (%d %s)", ar->short_src, ar->currentline, what, (int)n, unit);
    else
        lua_pushfstring(L, "%s (%d %s)", what, (int)n, unit);
    return lua_error(L);
}

/* The deadline in force: the running call's, or, when Lua runs outside any call from C (a
 * finalizer run by a collection step that C code set off, or by lua_close), one time limit
 * for all of it until the next call. 0: none. */
static long long lua_deadline(struct hs_lua *hl)
{
    if (hl->depth > 0)
        return hl->deadline_ns;
    if (hl->time_limit_ms == 0)
        return 0;
    if (hl->idle_deadline_ns == 0)
        hl->idle_deadline_ns = mono_ns(hl) + hl->time_limit_ms * 1000000LL;
    return hl->idle_deadline_ns;
}

static void lua_watchdog(lua_State *L, lua_Debug *ar);

/* How the watchdog watches without slowing every instruction. A count hook makes Lua 5.4 run
 * each VM instruction through luaG_traceexec (~30 instructions of ours for each of the
 * script's, whatever the count), so the threads hotsock runs calls on, the main thread and
 * the tasks' coroutines, carry no hook. A tick (SIGPROF every eighth of the time limit of CPU
 * time: none while the process sleeps) looks at the running call's deadline and, once it has
 * passed, sets the hook on those threads, as lua.c's SIGINT handler does (lua_sethook is
 * meant to be callable from a signal handler, and the VM looks at its trap at every jump and
 * call, so a loop is caught). The allocator sets it too when a call's memory goes over the
 * limit. A coroutine the script makes (coroutine.create, coroutine.wrap) keeps the count
 * hook all its life instead, as before: the tick does not know which of those runs. */
static struct hs_lua *volatile wd_running; /* the state whose call runs now, or NULL */
static volatile sig_atomic_t wd_started;   /* the tick runs in this process */
static long wd_tick_us;                    /* its period */

/* Sets the hook on the threads hotsock runs calls on: the next instruction there looks. */
static void wd_arm(struct hs_lua *hl)
{
    lua_sethook(hl->L, lua_watchdog, LUA_MASKCOUNT, 1);
    struct hs__task *t = hl->task;
    if (t != NULL)
        lua_sethook(t->T, lua_watchdog, LUA_MASKCOUNT, 1);
}

static void wd_tick(int sig)
{
    int saved = errno;
    struct hs_lua *hl = wd_running;
    HS_UNUSED(sig);
    if (hl != NULL && hl->depth > 0 && hl->deadline_ns != 0 && mono_ns(hl) >= hl->deadline_ns)
        wd_arm(hl);
    errno = saved;
}

/* A forked child (a worker) has no timer: its first call starts its own. */
static void wd_child(void)
{
    wd_started = 0;
    wd_tick_us = 0;
}

/* Starts the tick in this process, or makes it faster for a shorter limit. */
static void wd_start(const struct hs_lua *hl)
{
    static int atfork;
    long us = (long)hl->time_limit_ms * 1000 / 8;
    if (us < LUA_TICK_MIN_US)
        us = LUA_TICK_MIN_US;
    if (us > LUA_TICK_MAX_US)
        us = LUA_TICK_MAX_US;
    if (wd_started && us >= wd_tick_us)
        return;
    if (!atfork)
        atfork = pthread_atfork(NULL, NULL, wd_child) == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wd_tick;
    sa.sa_flags = SA_RESTART; /* the tick must not make a system call fail with EINTR */
    sigemptyset(&sa.sa_mask);
    struct itimerval it = {{us / 1000000, us % 1000000}, {us / 1000000, us % 1000000}};
    if (sigaction(SIGPROF, &sa, NULL) != 0 || setitimer(ITIMER_PROF, &it, NULL) != 0) {
        hs_log(HS_LOG_ERROR, "the Lua watchdog's timer: %s", strerror(errno));
        return;
    }
    wd_tick_us = us;
    wd_started = 1;
}

/* The hook found nothing over a limit: a thread of hotsock's goes back to running without
 * one; a script's coroutine keeps looking every LUA_HOOK_COUNT instructions. */
static void wd_rest(struct hs_lua *hl, lua_State *L)
{
    if (L == hl->L || (hl->task != NULL && L == hl->task->T))
        lua_sethook(L, NULL, 0, 0);
    else if (lua_gethookcount(L) != LUA_HOOK_COUNT)
        lua_sethook(L, lua_watchdog, LUA_MASKCOUNT, LUA_HOOK_COUNT);
}

/* coroutine.create, as lcorolib's, with the watchdog's hook on the new coroutine. */
static int l_coroutine_create(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_sethook(co, lua_watchdog, LUA_MASKCOUNT, LUA_HOOK_COUNT);
    return 1;
}

/* coroutine.wrap: lcorolib's (upvalue 1), whose function keeps its coroutine as upvalue 1;
 * the watchdog's hook goes on that coroutine. */
static int l_coroutine_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    if (lua_getupvalue(L, -1, 1) != NULL) {
        lua_State *co = lua_tothread(L, -1);
        if (co != NULL)
            lua_sethook(co, lua_watchdog, LUA_MASKCOUNT, LUA_HOOK_COUNT);
        lua_pop(L, 1);
    }
    return 1;
}

/* Puts the two above in the coroutine library, before any view of it is made. */
static void watch_coroutines(lua_State *L)
{
    lua_getglobal(L, "coroutine");
    lua_pushcfunction(L, l_coroutine_create);
    lua_setfield(L, -2, "create");
    lua_getfield(L, -1, "wrap");
    lua_pushcclosure(L, l_coroutine_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
}

/* The count hook: on a thread of hotsock's when the tick or the allocator set it, on a
 * script's coroutine every LUA_HOOK_COUNT instructions; looks at the limits. */
static void lua_watchdog(lua_State *L, lua_Debug *ar)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    if (hl->depth > 0 && hl->mem_over) {
        /* Garbage counts until collected: only live data is over the limit. */
        hl->mem_over = 0;
        lua_gc(L, LUA_GCCOLLECT);
        if (hl->mem_used > hl->mem_limit) {
            hl->mem_over = 1;
            lua_limit_error(L, ar, "memory limit exceeded", (unsigned)(hl->mem_limit >> 20), "MiB");
        }
    }
    long long deadline = lua_deadline(hl);
    if (deadline == 0 || mono_ns(hl) < deadline) {
        wd_rest(hl, L);
        return;
    }
    /* Past the deadline, look at every instruction: a script that catches the error with
     * pcall meets it again at its very next instruction, so it cannot loop on. */
    lua_sethook(L, lua_watchdog, LUA_MASKCOUNT, 1);
    lua_limit_error(L, ar, "time limit exceeded", hl->time_limit_ms, "ms");
}

void hs__lua_check_time(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    long long deadline = lua_deadline(hl);
    if (deadline == 0 || mono_ns(hl) < deadline)
        return;
    lua_sethook(L, lua_watchdog, LUA_MASKCOUNT, 1);
    luaL_where(L, 1);
    lua_pushfstring(L, "%stime limit exceeded (%d ms)", lua_tostring(L, -1),
                    (int)hl->time_limit_ms);
    lua_error(L);
}

void hs_lua_set_limits(struct hs_lua *hl, size_t mem_limit, unsigned time_limit_ms)
{
    hl->mem_limit = mem_limit;
    hl->time_limit_ms = time_limit_ms;
    if (wd_started && time_limit_ms != 0)
        wd_start(hl); /* a shorter limit wants a faster tick */
}

void hs__lua_sandbox_enter(struct hs_lua *hl)
{
    /* The outermost call sets the deadline; nested ones (on_close run by conn:abort) share
     * it. */
    if (hl->depth++ == 0) {
        hl->idle_deadline_ns = 0;
        hl->mem_refused = 0;
        /* A mark left by the last call (its garbage went since) must not keep this call's
         * first growth past the limit from setting the hook (lua_alloc sets it once). */
        hl->mem_over = 0;
        hl->deadline_ns = hl->time_limit_ms ? mono_ns(hl) + hl->time_limit_ms * 1000000LL : 0;
        if (hl->deadline_ns != 0 && !wd_started)
            wd_start(hl);
        wd_running = hl;
    }
}

/* A GC cycle starts once the heap has grown by the pause (200%: doubled) since the last one,
 * and marks and sweeps everything. A script's own heap is small (tens of KiB): each 64 KiB
 * read given to on_message as one string then costs a whole cycle, most of the CPU an echo
 * of 4 KiB messages spends in user space. A small heap gets a larger pause instead, so that
 * about LUA_GC_MIN_GARBAGE is allocated between cycles (memory stays within that much of what
 * Lua's own rule gives); a heap over that keeps Lua's pause. Looked at only when the heap has
 * moved by 64 KiB, so a call costs a shift and a compare. */
static void lua_gc_tune(struct hs_lua *hl)
{
    size_t band = hl->mem_used >> LUA_GC_BAND_SHIFT;
    if (band == hl->gc_band)
        return;
    hl->gc_band = band;
    size_t used = hl->mem_used ? hl->mem_used : 1;
    size_t pause = 100 + (size_t)LUA_GC_MIN_GARBAGE * 100 / used;
    if (pause < LUA_GC_PAUSE)
        pause = LUA_GC_PAUSE;
    if (pause > LUA_GC_PAUSE_MAX)
        pause = LUA_GC_PAUSE_MAX;
    lua_gc(hl->L, LUA_GCSETPAUSE, (int)pause); /* no change of mode, unlike LUA_GCINC */
}

void hs__lua_sandbox_leave(struct hs_lua *hl)
{
    if (--hl->depth == 0) {
        wd_running = NULL;
        lua_gc_tune(hl);
        hl->deadline_ns = 0;
        hl->idle_deadline_ns = 0;
        /* A call stopped at the ceiling leaves its garbage behind (a memory bomb's table),
         * uncollected until the GC's next cycle: the next call, however small, would meet the
         * hard limit at once. Collect it now, outside any call, where nothing is refused. */
        if (hl->mem_limit && hl->mem_used > hl->mem_limit) {
            lua_gc(hl->L, LUA_GCCOLLECT);
            hl->mem_over = 0;
        }
    }
}

int hs__lua_pcall(lua_State *L, int nargs, int nres, char *err, size_t errlen)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, lua_msghandler);
    lua_insert(L, base);
    hs__lua_sandbox_enter(hl);
    int r = lua_pcall(L, nargs, nres, base);
    hs__lua_sandbox_leave(hl);
    lua_remove(L, base);
    if (r == LUA_OK)
        return 0;
    if (err && errlen) {
        /* A memory error skips the message handler: no traceback, so say which limit. */
        if (r == LUA_ERRMEM && hl->mem_limit)
            snprintf(err, errlen, "not enough memory (the Lua memory limit is %zu MiB)",
                     hl->mem_limit >> 20);
        else
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    }
    lua_pop(L, 1);
    return HS_ESCRIPT;
}

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

/* on_message(conn, data) for the len bytes at p. */
static void lua_conn_message(struct hs_conn *c, const unsigned char *p, size_t len, void *arg)
{
    struct hs__conn_box *box = hs_conn_data(c);
    struct hs_lua *hl = hs_script_lua(arg);
    lua_State *L = hl->L;
    hs_stats_message(hs_version_stats(box->v), 0);
    hs_conn_count_message(c);
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
    lua_pushlstring(L, (const char *)p, len);
    struct hs__invoke iv = {
        .v = box->v, .name = "on_message", .conn = c, .box = box, .flags = HS__INVOKE_CLOSE};
    box->in_frame = 1;
    hl->msg_box = box;
    hs__lua_invoke(hl, &iv, 2, 0);
    /* Not the value before: a nested call may have dropped that box's reference meanwhile. */
    hl->msg_box = NULL;
    box->in_frame = 0;
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

/* Appends s to the text of `at` bytes in buf (cap bytes, cap > 0), cutting it to fit and
 * keeping buf terminated. Returns the new length. */
static size_t put_text(char *buf, size_t cap, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (n > cap - 1 - at)
        n = cap - 1 - at;
    memcpy(buf + at, s, n);
    buf[at + n] = '\0';
    return at + n;
}

void hs_lua_datagram(struct hs_udp *u, const char *data, size_t len, const char *peer, void *arg)
{
    struct hs_script *s = arg;
    struct hs_lua *hl = hs_script_lua(s);
    lua_State *L = hl->L;
    struct hs_version *v = hs_script_current(s);
    hs_stats_message(hs_version_stats(v), len);
    struct hs__udp_box *box = hs__udp_box_push(hl, u);
    lua_pushlstring(L, data, len);
    lua_pushstring(L, peer);
    /* The call's name in the log, made for every datagram in case it fails: the box's start
     * of it ("on_datagram (URL from ") and the peer copied, not snprintf, which cost more
     * than the rest of a 64 B datagram's dispatch. */
    char what[160];
    size_t at = box->what_len < sizeof what - 1 ? box->what_len : sizeof what - 1;
    memcpy(what, box->what, at);
    what[at] = '\0';
    at = put_text(what, sizeof what, at, peer);
    put_text(what, sizeof what, at, ")");
    struct hs__invoke iv = {.v = v, .name = "on_datagram", .what = what};
    hs__lua_invoke(hl, &iv, 3, 0);
}

/* ---- the version that runs (what it makes belongs to it: core/owned.h) ---- */

struct hs_version *hs__lua_set_running(struct hs_lua *hl, struct hs_version *v, int at_load)
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

struct hs_lua *hs_lua_new(struct event_base *base, struct hs_conns *set)
{
    struct hs_lua *hl = calloc(1, sizeof *hl);
    if (hl == NULL)
        return NULL;
    hl->L = lua_newstate(lua_alloc, hl);
    if (hl->L == NULL) {
        free(hl);
        return NULL;
    }
    hl->base = base;
    hl->gc_band = (size_t)-1; /* the first call sets the GC pause */
    hs__lua_callbacks_start(hl);
    hl->set = set;
    lua_State *L = hl->L;
    /* The one place the context is stored (see hs__lua_from_state): before any thread or
     * function exists, so every thread made later copies it. */
    *(struct hs_lua **)lua_getextraspace(L) = hl;
    lua_atpanic(L, lua_panic);
    lua_setwarnf(L, lua_warn, hl);
    /* No hook on the main thread (see wd_arm): the tick and the allocator set it when needed.
     * coroutine.create and coroutine.wrap give each coroutine of a script its own. */
    luaL_openlibs(L);
    watch_coroutines(L);
    hs__lua_open_conn(L);
    hs__lua_open_timer_meta(L);
    luaL_requiref(L, "hotsock", luaopen_hotsock, 1);
    lua_pop(L, 1);
    hs__sandbox_open(L);
    return hl;
}

void hs_lua_free(struct hs_lua *hl)
{
    if (hl == NULL)
        return;
    if (wd_running == hl)
        wd_running = NULL; /* the tick must not look at a freed state */
    /* Closing the state runs every __gc: timers free their events, files remove their
     * temporary files. */
    hs__lua_pool_free(hl);
    hs__lua_connect_free(hl);
    /* From here no version's going cancels timers: closing the state collects them. */
    hs_owned_list_stop(&hl->timer_list);
    hs__lua_callbacks_stop(hl);
    lua_close(hl->L);
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
    return (size_t)lua_gc(hl->L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(hl->L, LUA_GCCOUNTB, 0);
}
