/* The runtime the Lua binding unit tests share: an event base, a connection set on it and a
 * Lua state (hs_lua) on both. lua_fx_open/lua_fx_close make and free the three for a test's
 * own fixture; lua_fx_setup/lua_fx_teardown are the cmocka setup and teardown of a plain
 * struct lua_fx. Include after core/lua_api.h and core/conn.h. */
#ifndef HS_TEST_LUA_FIXTURE_H
#define HS_TEST_LUA_FIXTURE_H

#include <stdlib.h>

#include <event2/event.h>

struct lua_fx {
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    char err[4096]; /* scratch for the messages a test reads back */
};

/* Makes the three; returns 0, or -1 with whatever was made left for lua_fx_close. */
static inline int lua_fx_open(struct event_base **base, struct hs_conns **set, struct hs_lua **hl)
{
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    *base = event_base_new();
    *set = *base ? hs_conns_new(*base, &limits) : NULL;
    *hl = *set ? hs_lua_new(*base, *set) : NULL;
    return *hl ? 0 : -1;
}

static inline void lua_fx_close(struct event_base *base, struct hs_conns *set, struct hs_lua *hl)
{
    hs_conns_free(set);
    hs_lua_free(hl);
    if (base != NULL)
        event_base_free(base);
}

static inline int lua_fx_setup(void **state)
{
    struct lua_fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    if (lua_fx_open(&fx->base, &fx->set, &fx->hl) != 0) {
        lua_fx_close(fx->base, fx->set, fx->hl);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static inline int lua_fx_teardown(void **state)
{
    struct lua_fx *fx = *state;
    lua_fx_close(fx->base, fx->set, fx->hl);
    free(fx);
    return 0;
}

#endif
