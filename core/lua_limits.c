/* The sandbox's limits on a Lua state: its allocator (the memory limit), the watchdog (the
 * time limit: a CPU-time tick and a count hook no script can switch off), the garbage
 * collector's pace, and hs__lua_pcall, which runs a call inside them. docs/sandbox.md says
 * what a script meets; lua_api.c makes the state and dispatches to it. */
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define LUA_HOOK_COUNT 1000          /* a script coroutine's instructions between two looks */
#define LUA_TICK_MIN_US 1000         /* the watchdog's tick: an eighth of the time limit, */
#define LUA_TICK_MAX_US 50000        /* within these bounds (CPU time, ITIMER_PROF) */
#define LUA_HARD_MEMORY_FACTOR 2     /* the allocator refuses past this many times the limit */
#define LUA_COARSE_LIMIT_MS 100      /* time limits from here on use the coarse clock */
#define LUA_GC_MIN_GARBAGE (1 << 20) /* bytes a small heap may allocate between two GC cycles */
#define LUA_GC_BALLAST LUA_GC_MIN_GARBAGE /* bytes of the collector's ballast (lua_gc_tune) */

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

/* hs__lua_alloc's rest: growth, a block past the classes or none kept, a limit to apply, a
 * large read's block. Not inlined: its calls' register saves would come back to every call. */
__attribute__((noinline)) static void *lua_alloc_slow(struct hs_lua *hl, void *ptr, size_t osize,
                                                      size_t nsize)
{
    size_t old = ptr ? osize : 0; /* for a new block osize is a type tag, not a size */
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
    /* A large read's block becomes its string (lua_rx_block.c). */
    if (ptr == NULL && osize == LUA_TSTRING && (hl->rx_want | (size_t)hl->rx_probe)) {
        void *b = hs__lua_rx_take(hl, nsize);
        if (b != NULL) {
            hl->mem_used += nsize;
            return b;
        }
    }
    /* A small block comes from the kept ones, or is made at its class's size (lua_blocks.h). */
    size_t ask = nsize;
    if (nsize <= HS_LUA_BLOCK_SMALL) {
        unsigned k = hs__block_class(nsize);
        if (ptr == NULL) {
            void *b = hs__blocks_take(&hl->blocks, k, nsize);
            if (b != NULL) {
                hl->mem_used += nsize;
                return b;
            }
        }
        ask = hs__block_size(k);
    }
    /* Most blocks are new (a reload's compile asks for ~4,500): malloc itself is realloc's
     * path for them minus a few tests. */
    void *p = ptr ? realloc(ptr, ask) : malloc(ask);
    if (p != NULL) {
        hl->mem_used = hl->mem_used - old + nsize;
        /* A checker's realloc to the same size keeps the block and its no-access tail: open
         * what Lua grew into, and close the class's rounding, not Lua's to use. */
        if (nsize > old)
            HS_BLOCK_UNDEFINED((char *)p + old, nsize - old);
        if (ask > nsize)
            HS_BLOCK_NOACCESS((char *)p + nsize, ask - nsize);
    }
    return p;
}

/* The allocator of the state. Outside a call from C nothing is refused: C code pushing
 * arguments must never meet a Lua error there. During a call, growth past the limit is noted
 * for the hook, which raises a clean error at the script's next instructions; growth past
 * LUA_HARD_MEMORY_FACTOR times the limit (one huge string.rep) is refused at once, which Lua
 * turns into "not enough memory" after an emergency collection. */
HS_HOT void *hs__lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct hs_lua *hl = ud;
    /* Nearly every call of a message's or a request's is one of two: a small block freed into
     * its class's list, or a new small block taken from there under the limit. They stay here,
     * without the registers the rest's calls need saved; everything else is lua_alloc_slow's
     * (callgrind: ~20 instructions a call fewer; udp64 1,885 -> 1,843 a datagram). */
    if (nsize == 0) {
        if (ptr != NULL) {
            hl->mem_used -= osize;
            if (osize == 0 || osize > HS_LUA_BLOCK_SMALL ||
                !hs__blocks_keep(&hl->blocks, ptr, hs__block_class(osize)))
                free(ptr);
        }
        return NULL;
    }
    if (ptr == NULL && nsize <= HS_LUA_BLOCK_SMALL &&
        (hl->mem_used + nsize <= hl->mem_limit || hl->mem_limit == 0 || hl->depth == 0) &&
        !(osize == LUA_TSTRING && (hl->rx_want | (size_t)hl->rx_probe))) {
        void *b = hs__blocks_take(&hl->blocks, hs__block_class(nsize), nsize);
        if (b != NULL) {
            hl->mem_used += nsize;
            return b;
        }
    }
    return lua_alloc_slow(hl, ptr, osize, nsize);
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
void hs__lua_watch_coroutines(lua_State *L)
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

void hs__lua_forget_state(struct hs_lua *hl)
{
    if (wd_running == hl)
        wd_running = NULL;
}

void hs_lua_set_limits(struct hs_lua *hl, size_t mem_limit, unsigned time_limit_ms)
{
    hl->mem_limit = mem_limit;
    hl->time_limit_ms = time_limit_ms;
    if (wd_started && time_limit_ms != 0)
        wd_start(hl); /* a shorter limit wants a faster tick */
}

HS_HOT void hs__lua_sandbox_enter(struct hs_lua *hl)
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
 * of 4 KiB messages spends in user space. A small heap waits for about LUA_GC_MIN_GARBAGE of
 * allocation between two cycles instead; a heap over that keeps Lua's own rule (a cycle once
 * the heap doubled), so memory stays within that much of what Lua's rule gives.
 *
 * The pause alone cannot say so: Lua stores it in a byte (at most 1023%), so a 50 KiB heap
 * waited for ~450 KiB, not 1 MiB, and a 4 KiB echo spent ~600 of its ~760 instructions a
 * message in the collector. Hence the ballast: one userdata of LUA_GC_BALLAST bytes that Lua
 * counts as live but that costs nothing to mark (no fields) nor to keep (a block that large
 * is mmapped by malloc and never written past its header, so it is not resident). Lua's
 * cycle then waits for pause% of (live heap + ballast), and the pause below makes that about
 * max(live heap, LUA_GC_MIN_GARBAGE) bytes; it is never over 200%. The ballast is left out of
 * every figure hotsock shows (mem_used, the memory limit, collectgarbage("count"),
 * hs_lua_memory).
 *
 * The live heap is what is left when a cycle ends, which a sentinel tells: an object with a
 * finalizer, unreachable, so that each cycle finalizes it and its finalizer notes mem_used
 * (the heap just swept) and leaves the next sentinel. The heap's size at any other moment
 * holds up to a cycle's garbage too, which made the pause too low by up to half (~650 KiB
 * between cycles instead of 1 MiB). Lua refuses lua_gc inside a finalizer, so the pause is set
 * at the next call's end: a call costs a compare. */
static void lua_gc_tune(struct hs_lua *hl)
{
    if (hl->gc_live == 0)
        return;
    size_t live = hl->gc_live;
    hl->gc_live = 0;
    size_t garbage = live > LUA_GC_MIN_GARBAGE ? live : LUA_GC_MIN_GARBAGE;
    /* garbage <= live + ballast: at most 200%, which Lua can store */
    size_t pause = 100 + garbage * 100 / (live + hl->gc_ballast);
    lua_gc(hl->L, LUA_GCSETPAUSE, (int)pause); /* not LUA_GCINC, which sets the mode too */
}

static const char KEY_SENTINEL_MT = 0; /* registry key of the sentinels' metatable */

static void gc_sentinel_new(lua_State *L)
{
    lua_newuserdatauv(L, 0, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_SENTINEL_MT);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

/* A sentinel's __gc: a cycle has just swept. */
static int l_gc_sentinel(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    if (hl->gc_ballast == 0)
        return 0; /* the state is closing (hs__lua_gc_stop): no next one */
    hl->gc_live = hl->mem_used ? hl->mem_used : 1;
    gc_sentinel_new(L);
    return 0;
}

static const char KEY_BALLAST = 0; /* registry key of the ballast */

/* The global collectgarbage, whose "count" leaves the ballast out; any other option is the
 * real function's (upvalue 1). */
static int l_collectgarbage(lua_State *L)
{
    const char *opt = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (opt != NULL && strcmp(opt, "count") == 0) {
        lua_pushnumber(L, (lua_Number)hs_lua_memory(hs__lua_from_state(L)) / 1024);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

void hs__lua_gc_start(struct hs_lua *hl)
{
    lua_State *L = hl->L;
    /* Stopped, so that no step runs inside and mem_used moves by the ballast's block only. */
    lua_gc(L, LUA_GCSTOP);
    size_t before = hl->mem_used;
    lua_newuserdatauv(L, LUA_GC_BALLAST, 0);
    hl->gc_ballast = hl->mem_used - before; /* the block, header included */
    hl->mem_used = before;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_BALLAST); /* what the registry grows by counts */
    lua_gc(L, LUA_GCRESTART);
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, l_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_gc_sentinel);
    lua_setfield(L, -2, "__gc");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_SENTINEL_MT);
    gc_sentinel_new(L);
    hl->gc_live = hl->mem_used; /* the libraries: the first call's end sets the pause */
}

void hs__lua_gc_stop(struct hs_lua *hl)
{
    hl->mem_used += hl->gc_ballast; /* lua_close frees it, and takes it off */
    hl->gc_ballast = 0;
}

HS_HOT void hs__lua_sandbox_leave(struct hs_lua *hl)
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

void hs__blocks_free(struct hs__blocks *bl)
{
    for (unsigned k = 0; k < HS_LUA_BLOCK_CLASSES; k++) {
        while (bl->free[k] != NULL) {
            struct hs__block *b = bl->free[k];
            HS_BLOCK_DEFINED(b, sizeof *b);
            bl->free[k] = b->next;
            free(b);
        }
    }
    bl->bytes = 0;
}
