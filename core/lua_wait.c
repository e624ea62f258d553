/* The calls that wait: hotsock.sleep, hotsock.spawn, conn:receive and conn:settimeout. Each
 * waiting call checks its arguments, asks lua_task.c for the running task (which raises where
 * waiting is impossible), arms what will resume it (a timer, a reader on a held conn) and
 * yields; the values it is resumed with are its results. */
#include "core/conn_pipe.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"

#include <errno.h>
#include <string.h>

#include <event2/buffer.h>

/* receive patterns */
enum {
    RECV_FRAME, /* the next message under the conn's framing */
    RECV_BYTES, /* exactly rn bytes */
    RECV_LINE,  /* a line, CR LF or LF stripped */
    RECV_ALL,   /* everything until the peer closes */
};

/* ---- hotsock.sleep ---- */

static void sleep_done(struct hs__task *t)
{
    hs__task_resume(t, 0);
}

/* hotsock.sleep(s): yields for s seconds. */
static int l_hotsock_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s < HS_MAX_WAIT_S, 1, "seconds out of range");
    struct hs__task *t = hs__task_wait(L, "hotsock.sleep");
    if (hs__task_timer(t, hs__seconds_ms(s), sleep_done) != 0) {
        t->waiting = NULL;
        return luaL_error(L, "hotsock.sleep: out of memory for a timer");
    }
    return lua_yield(L, 0);
}

/* ---- hotsock.spawn ---- */

/* hotsock.spawn(fn, ...): runs fn(...) in a coroutine of its own now; returns a task (a box,
 * lua_join.c) at fn's first wait or end. Its errors are logged with file:line; the task keeps
 * their message for task:wait, and they never reach the caller otherwise. */
static int l_hotsock_spawn(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    if (L != hl->L && !lua_checkstack(hl->L, n + LUA_MINSTACK))
        return luaL_error(L, "hotsock.spawn: too many arguments");
    /* The box goes under the call, where it stays (the answer) when the call is moved off. */
    struct hs__join *j = hs__join_new(L);
    lua_insert(L, 1);
    /* The call runs from the main thread's stack, as every call into a script does. */
    lua_xmove(L, hl->L, n);
    struct hs__invoke iv = {.v = hl->running, .what = "spawned function", .join = j};
    hs__lua_invoke(hl, &iv, n - 1, 0);
    lua_settop(L, 1);
    return 1;
}

/* ---- conn:receive ---- */

/* The most a pattern may need buffered, which is how far a held conn reads ahead. */
static size_t recv_bound(struct hs_conn *c, int kind, size_t n)
{
    const struct hs_conn_limits *lim = hs_conn_limits(c);
    const struct hs_framing *f = hs_conn_framing(c);
    switch (kind) {
    case RECV_BYTES:
        return n;
    case RECV_LINE:
        return (f->kind == HS_FRAMING_LINE && f->max ? f->max : lim->max_line) + 2;
    case RECV_ALL:
        return lim->max_frame + 1;
    default:
        if (f->kind == HS_FRAMING_LINE)
            return (f->max ? f->max : lim->max_line) + HS_FRAMING_MAX_DELIM;
        if (f->kind == HS_FRAMING_LENGTH)
            return (f->max ? f->max : lim->max_frame) + 16;
        if (f->kind == HS_FRAMING_FIXED)
            return f->max ? f->max : HS_READ_SIZE;
        return HS_READ_SIZE;
    }
}

/* Pushes the n bytes at the front of in onto L and drains them. */
static void take(lua_State *L, struct evbuffer *in, size_t skip, size_t n, size_t drain)
{
    if (n == 0) {
        lua_pushliteral(L, "");
    } else {
        const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(skip + n));
        lua_pushlstring(L, (const char *)p + skip, n);
    }
    evbuffer_drain(in, drain);
}

/* Tries to complete a receive from c's input. Returns 1 with the data pushed on L, 3 with
 * nil, err, partial pushed, or 0 when more input is needed (nothing pushed). */
static int recv_try(lua_State *L, struct hs_conn *c, int kind, size_t n, int eof)
{
    struct evbuffer *in = hs_conn_input(c);
    size_t len = evbuffer_get_length(in);
    const char *err = NULL;
    switch (kind) {
    case RECV_BYTES:
        if (len >= n) {
            take(L, in, 0, n, n);
            return 1;
        }
        break;
    case RECV_LINE: {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_ANY);
        size_t max = recv_bound(c, kind, 0) - 2;
        if (p.pos >= 0 && (size_t)p.pos <= max) {
            /* EVBUFFER_EOL_ANY takes runs of CR and LF as one end: keep it to one line. */
            const unsigned char *b = evbuffer_pullup(in, p.pos + (ev_ssize_t)eol_len);
            size_t end = (size_t)p.pos;
            size_t drain = end + (b[end] == '\r' && eol_len > 1 && b[end + 1] == '\n' ? 2 : 1);
            take(L, in, 0, end, drain);
            return 1;
        }
        if (p.pos >= 0 || len > max)
            err = "line too long";
        break;
    }
    case RECV_ALL:
        if (len > recv_bound(c, kind, 0) - 1)
            err = "frame too large";
        else if (eof) {
            take(L, in, 0, len, len);
            return 1;
        }
        break;
    default: {
        const struct hs_conn_limits *lim = hs_conn_limits(c);
        struct hs_framing f = *hs_conn_framing(c);
        if (f.max == 0 && f.kind == HS_FRAMING_LINE)
            f.max = lim->max_line;
        else if (f.max == 0 && f.kind == HS_FRAMING_LENGTH)
            f.max = lim->max_frame;
        struct hs_frame fr = {0, 0, 0};
        size_t resume = 0;
        /* The token table is looked up only for a failure, not on every receive. */
        const char *why = NULL;
        int r = hs_framing_next(&f, in, &resume, &fr, &why);
        if (r == 1) {
            take(L, in, fr.skip, (size_t)fr.len, fr.skip + (size_t)fr.len + fr.trail);
            return 1;
        }
        if (r != HS_AGAIN)
            err = why ? why : hs_errtok(HS_EMALFORMED);
        else if (eof && len > 0 && f.kind == HS_FRAMING_LINE) {
            /* An unterminated last line is still a line, as for on_message. */
            take(L, in, 0, len, len);
            return 1;
        }
        break;
    }
    }
    if (err == NULL && !eof)
        return 0;
    if (err != NULL) {
        luaL_pushfail(L);
        lua_pushstring(L, err); /* the framer's token, from the table too */
    } else {
        hs__lua_fail(L, HS_ECLOSED);
    }
    len = evbuffer_get_length(in);
    take(L, in, 0, len, len);
    return 3;
}

/* A waiting receive is over, with its n results pushed on t->T: t resumes with them. The conn
 * stays held while the resumed code runs (it may receive again); after, it goes back to its
 * handler, or to framing when no handler waits. */
/* Pushes box onto the main thread's stack, where it stays alive across a resume (which may
 * close the conn and let it go), and drops the anchor a receive on an outbound box took. */
static void box_pin(lua_State *L, struct hs__conn_box *box)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->self_ref);
    if (box->read_anchor) {
        luaL_unref(L, LUA_REGISTRYINDEX, box->self_ref);
        box->self_ref = LUA_NOREF;
        box->read_anchor = 0;
    }
}

static void reader_finish(struct hs__task *t, int n)
{
    struct hs__conn_box *box = t->rbox;
    lua_State *L = t->hl->L;
    t->rbox = NULL;
    box->x->reader = NULL; /* a reader made the extension */
    box_pin(L, box);
    if (box->c)
        hs_conn_hold(box->c, HS_READ_SIZE);
    hs__task_resume(t, n);
    /* An outbound conn stays held: its input waits for the next receive. */
    if (box->c && hs__conn_xr(box)->out == NULL && hs__conn_xr(box)->reader == NULL &&
        box->task == NULL && hs_conn_is_held(box->c))
        hs_conn_hold(box->c, 0);
    lua_pop(L, 1);
}

void hs__conn_reader_input(struct hs__conn_box *box, int eof)
{
    struct hs__task *t = hs__conn_xr(box)->reader;
    if (t == NULL || box->c == NULL)
        return;
    int n = recv_try(t->T, box->c, t->rkind, t->rn, eof);
    if (n > 0)
        reader_finish(t, n);
}

void hs__conn_reader_closed(struct hs__conn_box *box)
{
    struct hs__task *t = box->x->reader; /* called when there is one */
    /* A last unterminated line completes a line receive; anything else is partial. */
    int n = recv_try(t->T, box->c, t->rkind, t->rn, 1);
    lua_State *L = t->hl->L;
    t->rbox = NULL;
    box->x->reader = NULL;
    box_pin(L, box);
    hs__task_resume(t, n);
    lua_pop(L, 1);
}

/* The handler waiting on an outbound conn's reply has lost its client (hs__task_cancel): the
 * receive gives up, and the conn keeps what came for a later receive. */
static int recv_cancel(struct hs__task *t, int push)
{
    struct hs__conn_box *box = t->rbox;
    lua_State *L = t->hl->L;
    t->rbox = NULL;
    box->x->reader = NULL;
    if (box->c)
        hs_conn_hold(box->c, HS_READ_SIZE);
    box_pin(L, box);
    lua_pop(L, 1); /* the task's stack still holds the box (receive's self) */
    if (!push)
        return 0;
    hs__lua_fail(t->T, HS_ECLOSED);
    lua_pushliteral(t->T, "");
    return 3;
}

static void recv_timeout(struct hs__task *t)
{
    struct hs__conn_box *box = t->rbox;
    hs__lua_fail(t->T, -ETIMEDOUT);
    if (box->c && t->rkind != RECV_FRAME) {
        struct evbuffer *in = hs_conn_input(box->c);
        size_t len = evbuffer_get_length(in);
        take(t->T, in, 0, len, len);
    } else {
        lua_pushliteral(t->T, "");
    }
    reader_finish(t, 3);
}

/* conn:receive([pattern]) — a number: exactly that many bytes; "*l": a line; "*a": all until
 * the peer closes; none: the next message under the conn's framing. Returns data, or
 * nil, err, partial. */
static int l_conn_receive(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:receive");
    int kind = RECV_FRAME;
    size_t n = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer k = luaL_checkinteger(L, 2);
        luaL_argcheck(L, k > 0 && k <= HS_DEFAULT_MAX_FRAME, 2, "byte count out of range");
        kind = RECV_BYTES;
        n = (size_t)k;
    } else if (!lua_isnoneornil(L, 2)) {
        static const char *const pats[] = {"*l", "l", "*a", "a", NULL};
        int i = luaL_checkoption(L, 2, NULL, pats);
        kind = i < 2 ? RECV_LINE : RECV_ALL;
    }
    if (hs__box_gone(&box->box)) {
        hs__lua_fail(L, HS_ECLOSED);
        lua_pushliteral(L, "");
        return 3;
    }
    if (hs__conn_xr(box)->reader != NULL)
        return luaL_error(L, "conn:receive: another call is already receiving on conn#%I",
                          (lua_Integer)box->id);
    if (hs_conn_piping(box->c))
        return luaL_error(L, "conn:receive: conn#%I is piping (conn:pipe)", (lua_Integer)box->id);
    /* Bytes already here complete it at once, unless the frame being handled is still at the
     * front of the buffer (inside on_message): then on_input looks, after the drain. */
    if (!box->in_frame) {
        int r = recv_try(L, box->c, kind, n, hs_conn_eof(box->c));
        if (r > 0)
            return r;
    }
    struct hs__conn_ext *x = hs__conn_x_check(L, box);
    struct hs__task *t = hs__task_wait(L, "conn:receive");
    if (x->timeout_ms > 0 && hs__task_timer(t, x->timeout_ms, recv_timeout) != 0) {
        t->waiting = NULL;
        return luaL_error(L, "conn:receive: out of memory for a timer");
    }
    t->rbox = box;
    t->rkind = kind;
    t->rn = n;
    x->reader = t;
    if (x->out) {
        /* An outbound box is the script's alone: C holds it while it waits for input. */
        if (box->self_ref == LUA_NOREF) {
            lua_pushvalue(L, 1);
            box->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            box->read_anchor = 1;
        }
        t->on_cancel = recv_cancel;
    }
    hs_conn_hold(box->c, recv_bound(box->c, kind, n));
    return lua_yield(L, 0);
}

/* ---- conn:flush ---- */

/* A waiting flush is over with its n results pushed on its task's coroutine. box is not
 * touched after the resume, which may let it go. */
static void flush_finish(struct hs__conn_box *box, int n)
{
    struct hs__task *t = box->x->flusher; /* a flusher made the extension */
    box->x->flusher = NULL;
    hs__task_resume(t, n);
}

void hs__conn_flush_ready(struct hs__conn_box *box)
{
    if (box == NULL || hs__conn_xr(box)->flusher == NULL)
        return;
    lua_pushboolean(box->x->flusher->T, 1);
    flush_finish(box, 1);
}

void hs__conn_flush_closed(struct hs__conn_box *box)
{
    if (box == NULL || hs__conn_xr(box)->flusher == NULL)
        return;
    hs__lua_fail(box->x->flusher->T, HS_ECLOSED);
    flush_finish(box, 2);
}

static void flush_timeout(struct hs__task *t)
{
    struct hs__conn_box *box = t->wait_data;
    if (box->c)
        hs_conn_want_output_low(box->c, 0);
    hs__lua_fail(t->T, -ETIMEDOUT);
    flush_finish(box, 2);
}

/* The handler waiting for an upstream's output to drain lost its client: stop waiting. */
static int flush_cancel(struct hs__task *t, int push)
{
    struct hs__conn_box *box = t->wait_data;
    if (box->c)
        hs_conn_want_output_low(box->c, 0);
    box->x->flusher = NULL;
    if (!push)
        return 0;
    hs__lua_fail(t->T, HS_ECLOSED);
    return 2;
}

/* conn:flush([timeout]) — waits until the conn's unsent output is at its low-water mark
 * (256 KiB by default) or below; at once when it is. Returns true, or nil, err
 * ("closed", "timeout" after timeout seconds or the conn:settimeout value). */
static int l_conn_flush(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:flush");
    int ms = hs__conn_xr(box)->timeout_ms;
    if (!lua_isnoneornil(L, 2)) {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s > 0 && s < HS_MAX_WAIT_S, 2, "seconds out of range");
        ms = hs__seconds_ms(s) > 0 ? (int)hs__seconds_ms(s) : 1;
    }
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    if (hs__conn_xr(box)->flusher != NULL)
        return luaL_error(L, "conn:flush: another call is already flushing conn#%I",
                          (lua_Integer)box->id);
    struct hs__conn_ext *x = hs__conn_x_check(L, box);
    int r = hs_conn_want_output_low(box->c, 1);
    if (r == 1) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (r == HS_ECLOSED)
        return hs__lua_fail(L, HS_ECLOSED);
    if (r != 0)
        return luaL_error(L, "conn:flush: not available on this connection");
    /* Should the wait be impossible here (this raises), the owed call finds no flusher. */
    struct hs__task *t = hs__task_wait(L, "conn:flush");
    if (ms > 0 && hs__task_timer(t, ms, flush_timeout) != 0) {
        hs_conn_want_output_low(box->c, 0);
        t->waiting = NULL;
        return luaL_error(L, "conn:flush: out of memory for a timer");
    }
    /* The box stays alive meanwhile: it is on the waiting coroutine's stack. */
    x->flusher = t;
    t->wait_data = box;
    t->on_cancel = flush_cancel;
    return lua_yield(L, 0);
}

/* conn:settimeout(s) — each later wait on this conn gives up after s seconds ("timeout");
 * nil or a negative number: no timeout of its own. */
static int l_conn_settimeout(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:settimeout");
    int ms = -1;
    if (!lua_isnoneornil(L, 2)) {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s < HS_MAX_WAIT_S, 2, "seconds out of range");
        ms = s < 0 ? -1 : (int)(hs__seconds_ms(s) > 0 ? hs__seconds_ms(s) : 1);
    }
    /* No timeout is what a box without its extension has already. */
    if (ms > 0 || box->x != NULL)
        hs__conn_x_check(L, box)->timeout_ms = ms;
    lua_pushboolean(L, 1);
    return 1;
}

void hs__lua_conn_methods_wait(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"receive", l_conn_receive},
        {"settimeout", l_conn_settimeout},
        {"flush", l_conn_flush},
        {NULL, NULL},
    };
    luaL_setfuncs(L, methods, 0);
}

void hs__lua_open_wait(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"sleep", l_hotsock_sleep},
        {"spawn", l_hotsock_spawn},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    hs__lua_open_join(L);
}
