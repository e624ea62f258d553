/* hs_bench_signal: kill(2) for bench/run.lua, so the reload row signals the server from the
 * driver itself at the instant its clock starts. It used to write "kill -HUP PID" to a shell
 * kept open for it: the shell ran on the driver's core only once the driver blocked on its
 * first ask, so the measured time held the shell's wake-up and the first ask's round trip
 * besides the server's reload (bench/results/reload.md).
 *
 *   local sig = package.loadlib(BUILD .. "/bench/hs_bench_signal.so", "luaopen_hs_bench_signal")()
 *   sig.kill(pid, "HUP")  --> true, or nil, message, errno
 *
 * Built as a Lua module (no liblua linked: the interpreter that loads it provides it). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include <lauxlib.h>
#include <lua.h>

int luaopen_hs_bench_signal(lua_State *L);

/* kill(pid, name): name is one of the signals the benchmark sends. */
static int l_signal_kill(lua_State *L)
{
    static const char *const names[] = {"HUP", "TERM", "INT", "KILL", "USR2", NULL};
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGKILL, SIGUSR2};
    lua_Integer pid = luaL_checkinteger(L, 1);
    int which = luaL_checkoption(L, 2, NULL, names);
    luaL_argcheck(L, pid > 0, 1, "pid must be positive");
    if (kill((pid_t)pid, sigs[which]) != 0)
        return luaL_fileresult(L, 0, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_hs_bench_signal(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"kill", l_signal_kill}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
