/* The conn object seen from Lua (core/lua_conn.c) on a real event_base and Lua state: a
 * script is loaded as the server loads it, a conn runs its callbacks over one end of a
 * socketpair, and the test plays the peer on the other end. The test calls conn methods
 * the way a script does, through a chunk that gets the script's own state table (an upvalue
 * of its on_connect), and compares
 * every result: sends arrive byte for byte, misuse raises, runtime failures return nil and a
 * token, a closed conn answers "closed" to I/O and keeps answering queries, a close inside a
 * callback waits for the callback, is_closed is true from the close on (also while output
 * still drains), and the output cap holds on the path conn:send uses. The loop is pumped one
 * non-blocking turn at a time until a condition holds, bounded in time (no sleeps); teardown
 * checks that every conn closed once, no version or descriptor leaked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/framing.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/script.h"
#include "tests/unit/test_clock_fds.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <lua.h>

#define PUMP_MAX_MS 10000
#define KIB 1024
#define MIB (1024 * 1024)

/* The script: it keeps its conn and what happened in S, a table the test reads. */
static const char script[] =
    "local S = { events = {} }\n"
    "local function note(e) S.events[#S.events + 1] = e end\n"
    "return {\n"
    "  framing = 'line',\n"
    "  on_connect = function(conn)\n"
    "    S.conn = conn\n"
    "    conn.ctx.n = 0\n"
    "    note('connect')\n"
    "  end,\n"
    "  on_message = function(conn, msg)\n"
    "    conn.ctx.n = conn.ctx.n + 1\n"
    "    note('msg:' .. msg)\n"
    "    if msg == 'close-inside' then\n"
    "      S.close = table.concat({ tostring(conn:close()), tostring(conn:is_closed()),\n"
    "                               tostring(select(2, conn:send('late'))) }, ',')\n"
    "      note('returning')\n"
    "    end\n"
    "  end,\n"
    "  on_close = function(conn, reason)\n"
    "    S.reason = reason\n"
    "    S.in_close = tostring(conn:is_closed()) .. ',' .. tostring(select(2, conn:send('x')))\n"
    "    note('close:' .. reason)\n"
    "  end,\n"
    "}\n";

struct fx {
    struct event_base *base;
    struct hs_conn_limits limits; /* used when the set is made, by fx_connect */
    struct hs_conns *set;
    struct hs_lua *hl;
    struct hs_script *s;
    int peer; /* the peer's end, -1 once closed */
    int peer_eof;
    struct evbuffer *got; /* what the peer read */
    int fds_at_start;
    unsigned versions_at_start;
    char dir[64];
    char path[128];
    char out[4096]; /* the last eval's results */
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    fx->fds_at_start = count_fds();
    fx->versions_at_start = hs_version_live_count();
    fx->base = event_base_new();
    fx->got = evbuffer_new();
    fx->peer = -1;
    hs_conn_limits_default(&fx->limits);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/hs-test-lua-conn-XXXXXX");
    if (fx->base == NULL || fx->got == NULL || mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/conn.lua", fx->dir);
    FILE *f = fopen(fx->path, "w");
    if (f == NULL)
        return -1;
    fputs(script, f);
    fclose(f);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    int failed = 0;
    /* Conns first (their on_close runs in the script), then the script, then the state. */
    if (fx->set)
        hs_conns_free(fx->set);
    if (fx->s)
        hs_script_free(fx->s);
    if (fx->hl)
        hs_lua_free(fx->hl);
    event_base_free(fx->base);
    if (fx->peer >= 0)
        close(fx->peer);
    evbuffer_free(fx->got);
    remove(fx->path);
    rmdir(fx->dir);
    if (hs_version_live_count() != fx->versions_at_start) {
        print_error("teardown: %u versions live, %u before\n", hs_version_live_count(),
                    fx->versions_at_start);
        failed = 1;
    }
    int fds = count_fds();
    if (fds != fx->fds_at_start) {
        print_error("teardown: %d descriptors open, %d before the test\n", fds, fx->fds_at_start);
        failed = 1;
    }
    free(fx);
    return failed ? -1 : 0;
}

static void peer_read(struct fx *fx)
{
    char buf[64 * KIB];
    while (fx->peer >= 0 && !fx->peer_eof) {
        ssize_t n = read(fx->peer, buf, sizeof buf);
        if (n > 0)
            evbuffer_add(fx->got, buf, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            fx->peer_eof = 1;
        else if (errno == EAGAIN)
            break;
    }
}

static void pump_once(struct fx *fx, int read_peer)
{
    assert_true(event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
    if (read_peer)
        peer_read(fx);
}

#define PUMP_UNTIL(fx, read_peer, cond)                                                            \
    do {                                                                                           \
        long long t0_ = now_ms();                                                                  \
        while (!(cond)) {                                                                          \
            if (now_ms() - t0_ > PUMP_MAX_MS)                                                      \
                fail_msg("%lld ms without: %s", now_ms() - t0_, #cond);                            \
            pump_once(fx, read_peer);                                                              \
        }                                                                                          \
    } while (0)

/* Runs code (a chunk whose `...` is the script's S) and returns its results, each through
 * tostring, joined by commas; "error: MESSAGE" when it raised. Valid until the next call. */
static const char *eval(struct fx *fx, const char *code)
{
    lua_State *L = hs_lua_state(fx->hl);
    int top = lua_gettop(L);
    char chunk[2048];
    snprintf(chunk, sizeof chunk, "local S = ...\n%s", code);
    if (luaL_loadbuffer(L, chunk, strlen(chunk), "=eval") != LUA_OK)
        fail_msg("does not compile: %s", lua_tostring(L, -1));
    /* S is an upvalue of the script's on_connect (the version keeps the callbacks only). */
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(hs_script_current(fx->s)));
    assert_int_equal(lua_getfield(L, -1, "on_connect"), LUA_TFUNCTION);
    const char *name;
    for (int i = 1; (name = lua_getupvalue(L, -1, i)) != NULL; i++) {
        if (strcmp(name, "S") == 0)
            break;
        lua_pop(L, 1);
    }
    if (name == NULL)
        fail_msg("on_connect has no upvalue S");
    lua_replace(L, -3);
    lua_pop(L, 1);
    size_t used = 0;
    fx->out[0] = '\0';
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
        snprintf(fx->out, sizeof fx->out, "error: %s", lua_tostring(L, -1));
        lua_settop(L, top);
        return fx->out;
    }
    for (int i = top + 1; i <= lua_gettop(L); i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        used += (size_t)snprintf(fx->out + used, sizeof fx->out - used, "%s%s",
                                 i > top + 1 ? "," : "", s);
        lua_pop(L, 1);
        assert_true(used < sizeof fx->out);
    }
    lua_settop(L, top);
    return fx->out;
}

#define assert_eval(fx, code, expect) assert_string_equal(eval(fx, code), expect)

/* Loads the script, opens one conn on a socketpair and waits for on_connect. */
static void fx_connect(struct fx *fx)
{
    char err[1024];
    int sv[2];
    struct hs_framing line;
    const char *why = NULL;
    fx->set = hs_conns_new(fx->base, &fx->limits);
    fx->hl = fx->set ? hs_lua_new(fx->base, fx->set) : NULL;
    assert_non_null(fx->hl);
    if (hs_script_load(fx->hl, fx->path, NULL, 0, &fx->s, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(hs_framing_parse("line", &line, &why), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fx->peer = sv[1];
    assert_int_equal(
        hs_conn_new(fx->set, sv[0], "client", &line, &hs_lua_conn_handler, fx->s, NULL), 0);
    assert_eval(fx, "return S.events[1], S.conn.ctx.n", "connect,0");
}

static void peer_send(struct fx *fx, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(write(fx->peer, text, len), (ssize_t)len);
}

static int script_closed(struct fx *fx)
{
    return strcmp(eval(fx, "return S.reason ~= nil"), "true") == 0;
}

/* ---- tests ---- */

/* Messages reach on_message with conn.ctx kept; send queues strings and numbers in order;
 * queries answer. */
static void test_open_conn(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    peer_send(fx, "hello\nworld\n");
    PUMP_UNTIL(fx, 1, strcmp(eval(fx, "return #S.events"), "3") == 0);
    assert_eval(fx, "return S.events[2], S.events[3], S.conn.ctx.n", "msg:hello,msg:world,2");
    assert_eval(fx, "return S.conn:send('a', 1, 'b'), S.conn:send(), S.conn:send('\\0z')",
                "true,true,true");
    PUMP_UNTIL(fx, 1, evbuffer_get_length(fx->got) >= 5);
    assert_int_equal(evbuffer_get_length(fx->got), 5);
    assert_memory_equal(evbuffer_pullup(fx->got, -1), "a1b\0z", 5);
    assert_eval(fx,
                "return S.conn:peer(), S.conn:is_closed(), S.conn:pending(), S.conn:generation()",
                "client,false,0,1");
    assert_eval(
        fx,
        "return math.type(S.conn:id()), tostring(S.conn) == 'conn#' .. S.conn:id() .. ' client'",
        "integer,true");
    assert_eval(fx, "return S.conn:framing(), S.conn:set_framing('fixed:4'), S.conn:framing()",
                "line,true,fixed:4");
    assert_eval(fx, "return S.conn:pause(), S.conn:resume()", "true,true");
    /* conn.send and conn.ctx are found by their keys' addresses (l_conn_index): a key built
     * at run time is the same interned string, and every other key still goes through the
     * methods table. */
    assert_eval(fx,
                "local k = ('se'):rep(1) .. 'nd' return S.conn[k] == S.conn.send, "
                "type(S.conn.send), S.conn[1], S.conn.sendx, S.conn.close ~= S.conn.send",
                "true,function,nil,nil,true");
    assert_eval(fx,
                "local k = ('c'):rep(1) .. 'tx' return S.conn[k] == S.conn.ctx, "
                "type(S.conn.ctx), S.conn.ctxx, S.conn.ct",
                "true,table,nil,nil");
    /* The same box every time: fields set on ctx stay. */
    assert_eval(fx, "S.conn.ctx.mark = 'kept' return S.conn.ctx.mark", "kept");
}

/* Misuse raises with a message saying what was wrong; the conn is usable afterwards. */
static void test_misuse_raises(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    const char *r = eval(fx, "return S.conn:send({})");
    assert_non_null(strstr(r, "error: "));
    assert_non_null(strstr(r, "string expected, got table"));
    /* A bad argument after good ones: nothing is queued (every argument is checked first). */
    assert_non_null(strstr(eval(fx, "return S.conn:send('a', 1, {})"), "bad argument #3"));
    assert_non_null(strstr(eval(fx, "S.conn.extra = 1"), "conn fields are read-only"));
    assert_non_null(strstr(eval(fx, "return S.conn.send({}, 'x')"), "hotsock.conn expected"));
    assert_non_null(strstr(eval(fx, "return S.conn:set_framing('nonsense')"), "bad argument"));
    assert_non_null(strstr(eval(fx, "return S.conn:set_framing(42)"), "bad argument"));
    assert_eval(fx, "return S.conn:send('ok\\n'), S.conn:framing()", "true,line");
    PUMP_UNTIL(fx, 1, evbuffer_get_length(fx->got) >= 3);
    assert_int_equal(evbuffer_get_length(fx->got), 3);
    assert_memory_equal(evbuffer_pullup(fx->got, -1), "ok\n", 3);
}

/* close: true once, then nil, "closed" for I/O; queries keep answering after the socket is
 * gone; on_close runs with the conn already closed. */
static void test_closed_box(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    assert_eval(fx, "S.id = S.conn:id() return S.conn:close(), S.conn:is_closed()", "true,true");
    assert_eval(fx, "return S.conn:close()", "nil,closed");
    assert_eval(fx, "return S.conn:send('x')", "nil,closed");
    PUMP_UNTIL(fx, 1, fx->peer_eof && script_closed(fx));
    assert_int_equal(evbuffer_get_length(fx->got), 0);
    assert_eval(fx, "return S.reason, S.in_close", "closed,true,closed");
    assert_eval(fx,
                "return S.conn:peer(), S.conn:id() == S.id, S.conn:is_closed(), S.conn:pending()",
                "client,true,true,0");
    assert_eval(fx, "return tostring(S.conn) == 'conn#' .. S.id .. ' (closed)'", "true");
    assert_eval(fx, "return S.conn:send('x')", "nil,closed");
    assert_eval(fx, "return S.conn:close()", "nil,closed");
    assert_eval(fx, "return S.conn:abort()", "nil,closed");
    assert_eval(fx, "return S.conn:framing()", "nil,closed");
    assert_eval(fx, "return S.conn:set_framing('line')", "nil,closed");
    assert_eval(fx, "return S.conn:pause()", "nil,closed");
    assert_eval(fx, "return S.conn:generation()", "nil,closed");
    assert_eval(fx, "return S.conn.ctx.n", "0");
    /* Misuse still raises on a closed conn: arguments are checked first. */
    assert_non_null(strstr(eval(fx, "return S.conn:send({})"), "string expected"));
}

/* conn:close() inside on_message: true, the conn reads as closed at once and refuses more
 * output, the callback runs to its end with the box intact, and on_close runs once. (With
 * nothing queued, on_close runs from within the close call itself, before the callback
 * returns: the core frees the conn later, but notifies at once. Not asserted here.) */
static void test_close_inside_callback(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    peer_send(fx, "close-inside\n");
    PUMP_UNTIL(fx, 1, fx->peer_eof && script_closed(fx));
    assert_eval(fx, "return S.close", "true,true,closed");
    assert_eval(fx,
                "local seen = {}\n"
                "for _, e in ipairs(S.events) do seen[e] = (seen[e] or 0) + 1 end\n"
                "return #S.events, seen['msg:close-inside'], seen.returning, seen['close:closed']",
                "4,1,1,1");
    assert_int_equal(evbuffer_get_length(fx->got), 0);
}

/* A close with output still queued: everything queued before it arrives, then the end; from
 * the close on, is_closed is true although the socket still drains. */
static void test_close_flushes_and_reads_closed_meanwhile(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    assert_eval(fx, "S.big = ('0123456789abcdef'):rep(256 * 1024) return S.conn:send(S.big)",
                "true");
    assert_eval(fx, "return S.conn:pending() > 0, S.conn:close(), S.conn:is_closed()",
                "true,true,true");
    /* Still draining: the peer has not read, on_close has not run. */
    pump_once(fx, 0);
    assert_eval(fx, "return S.reason == nil, S.conn:is_closed(), S.conn:send('more')",
                "true,true,nil,closed");
    PUMP_UNTIL(fx, 1, fx->peer_eof);
    assert_int_equal(evbuffer_get_length(fx->got), 4 * MIB);
    for (size_t off = 0; off < 4 * MIB; off += 16)
        assert_memory_equal(evbuffer_pullup(fx->got, 16), "0123456789abcdef", 16),
            evbuffer_drain(fx->got, 16);
    PUMP_UNTIL(fx, 0, script_closed(fx));
    assert_eval(fx, "return S.reason", "closed");
}

/* Past the hard output limit conn:send returns nil, "output buffer full" (the iovec path
 * conn:send takes, hs_conn_sendv), and the conn stays open. */
static void test_output_buffer_full(void **state)
{
    struct fx *fx = *state;
    fx->limits.out_hard = 512 * KIB;
    fx_connect(fx);
    const char *r = eval(fx, "local s = ('x'):rep(64 * 1024)\n"
                             "for i = 1, 64 do\n"
                             "  local ok, err = S.conn:send(s, s)\n"
                             "  if not ok then return i, err, S.conn:pending() end\n"
                             "end\n"
                             "return 'never full'");
    int i = 0, pending = 0;
    char err[64];
    if (sscanf(r, "%d,%63[^,],%d", &i, err, &pending) != 3)
        fail_msg("send never failed: %s", r);
    assert_string_equal(err, "output buffer full");
    /* Refused exactly when the queued bytes plus this send's 128 KiB would pass the limit. */
    assert_true(i > 1);
    assert_true((size_t)pending <= fx->limits.out_hard);
    assert_true((size_t)pending + 128 * KIB > fx->limits.out_hard);
    assert_eval(fx, "return S.conn:is_closed()", "false");
}

/* The peer goes away: on_close says so, and I/O answers closed. */
static void test_peer_closes(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    close(fx->peer);
    fx->peer = -1;
    PUMP_UNTIL(fx, 0, script_closed(fx));
    assert_eval(fx, "return S.reason, S.conn:is_closed(), S.conn:send('x')",
                "peer closed,true,nil,closed");
}

/* abort drops what is queued: the peer gets nothing. */
static void test_abort(void **state)
{
    struct fx *fx = *state;
    fx_connect(fx);
    assert_eval(fx, "S.conn:pause() return S.conn:send(('y'):rep(4 * 1024 * 1024))", "true");
    assert_eval(fx, "return S.conn:abort(), S.conn:is_closed()", "true,true");
    PUMP_UNTIL(fx, 1, fx->peer_eof && script_closed(fx));
    assert_true(evbuffer_get_length(fx->got) < 4 * MIB);
    assert_eval(fx, "return S.conn:abort()", "nil,closed");
    assert_eval(fx, "return S.conn:send('x')", "nil,closed");
}

int main(void)
{
    hs_log_set_level(HS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_conn, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_raises, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_closed_box, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_callback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_and_reads_closed_meanwhile, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_output_buffer_full, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_abort, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
