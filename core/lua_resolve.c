/* hotsock.resolve: a name looked up without blocking, on the state's resolver (libevent's
 * evdns, core/conn_connect.c, shared with hotsock.connect: /etc/hosts honoured, localhost
 * without a nameserver). The calling handler waits in its coroutine; hs__task_resolve is
 * that wait for any call that looks a name up (hotsock.udp too). */
#include "core/conn_connect.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/lua_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>

#define HS_RESOLVE_TIMEOUT_MS 10000 /* hotsock.resolve's bound */

/* A lookup a task waits on (hotsock.resolve, hotsock.udp with a name). */
struct resolve_wait {
    struct hs__task *t;
    struct hs_connect *cn;
    hs__resolved_fn done; /* pushes the results on the task's thread */
    int arg;              /* passed to done */
};

/* The waiting task is given up (its conn went): the lookup is cancelled, resolve_done never
 * runs. */
static int resolve_cancel(struct hs__task *t, int push)
{
    struct resolve_wait *w = t->wait_data;
    hs_connect_cancel(w->cn);
    free(w);
    t->wait_data = NULL;
    return push ? hs__lua_fail(t->T, HS_ECLOSED) : 0;
}

static void resolve_done(struct hs_connect *cn, int err, const struct hs_resolved *res, void *arg)
{
    struct resolve_wait *w = arg;
    struct hs__task *t = w->t;
    HS_UNUSED(cn);
    int n = err != 0 || res->n == 0 ? hs__lua_fail(t->T, err == -ETIMEDOUT ? err : HS_ENOHOST)
                                    : w->done(t->T, res, w->arg);
    free(w);
    hs__task_resume(t, n);
}

int hs__task_resolve(lua_State *L, const char *what, const char *name, int family, int timeout_ms,
                     hs__resolved_fn done, int arg)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    struct hs__task *t = hs__task_wait(L, what);
    struct resolve_wait *w = malloc(sizeof *w);
    if (w == NULL) {
        t->waiting = NULL;
        return hs__lua_fail(L, -ENOMEM);
    }
    w->t = t;
    w->done = done;
    w->arg = arg;
    if (hs_resolve_start(hl->base, &hl->dns, name, family, timeout_ms, resolve_done, w, &w->cn) !=
        0) {
        free(w);
        t->waiting = NULL;
        return hs__lua_fail(L, -ENOMEM);
    }
    t->wait_data = w;
    t->on_cancel = resolve_cancel;
    return lua_yield(L, 0);
}

/* hotsock.resolve's results: the list of address texts. */
static int push_addresses(lua_State *T, const struct hs_resolved *res, int arg)
{
    HS_UNUSED(arg);
    lua_createtable(T, res->n, 0);
    for (int i = 0; i < res->n; i++) {
        char text[INET6_ADDRSTRLEN];
        const struct sockaddr *sa = (const struct sockaddr *)&res->addr[i];
        const void *ip = sa->sa_family == AF_INET
                             ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (inet_ntop(sa->sa_family, ip, text, sizeof text) == NULL)
            continue;
        lua_pushstring(T, text);
        lua_rawseti(T, -2, (lua_Integer)lua_rawlen(T, -2) + 1);
    }
    return 1;
}

/* hotsock.resolve(name [, family]) — family "inet" (or 4), "inet6" (or 6), or any. Returns a
 * list of address texts, or nil, "no such host". */
static int l_hotsock_resolve(lua_State *L)
{
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    luaL_argcheck(L, nlen > 0 && nlen < HS_ADDR_MAX_HOST, 1, "name length out of range");
    int family = AF_UNSPEC;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer k = luaL_checkinteger(L, 2);
        luaL_argcheck(L, k == 4 || k == 6, 2, "family must be 4 or 6");
        family = k == 4 ? AF_INET : AF_INET6;
    } else if (!lua_isnoneornil(L, 2)) {
        static const char *const fams[] = {"any", "inet", "inet6", NULL};
        static const int codes[] = {AF_UNSPEC, AF_INET, AF_INET6};
        family = codes[luaL_checkoption(L, 2, NULL, fams)];
    }
    return hs__task_resolve(L, "hotsock.resolve", name, family, HS_RESOLVE_TIMEOUT_MS,
                            push_addresses, 0);
}

void hs__lua_open_resolve(lua_State *L)
{
    lua_pushcfunction(L, l_hotsock_resolve);
    lua_setfield(L, -2, "resolve");
}
