/* hotsock.udp(url): an outbound datagram socket for scripts (udp://HOST:PORT, or
 * unixgram:/path, for which the socket autobinds an abstract name so that the server can
 * answer). sock:send(data) sends one datagram, sock:receive([timeout]) waits in the handler's
 * coroutine for the next one, sock:close() (and __gc, __close) frees it. The box is the
 * script's alone, like an outbound conn's: nothing in C keeps it alive but a waiting receive
 * (whose coroutine's stack holds it). */
#include "core/conn_connect.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define HS_UDP_RESOLVE_TIMEOUT_MS 10000 /* a udp:// host name's lookup */

/* An outbound datagram socket as Lua sees it. */
struct udp_out_box {
    /* The box head (core/lua_box.h): the socket, owned; NULL once closed. */
    HS__BOX_HEAD(struct hs_udp, u);
    struct hs__task *recv; /* the call waiting in sock:receive, or NULL */
    int timeout_ms;        /* sock:settimeout, for each later receive; -1: none */
    char url[HS_ADDR_TEXT + 16];
};

/* Opens the socket to `to` and pushes its box on L, or nil, err. */
static int push_sock(lua_State *L, struct hs_lua *hl, const struct sockaddr *to, socklen_t tolen)
{
    struct udp_out_box *box = hs__box_new(L, HS__BOX_UDP_OUT, sizeof *box, 0);
    box->timeout_ms = -1;
    int r = hs_udp_open(hl->base, to, tolen, &box->u);
    if (r != 0) {
        char text[HS_ADDR_TEXT];
        hs_log(HS_LOG_INFO, "hotsock.udp to %s: %s", hs_addr_format(to, tolen, text, sizeof text),
               hs_strerror(r));
        lua_pop(L, 1);
        return hs__lua_fail(L, r);
    }
    snprintf(box->url, sizeof box->url, "%s", hs_udp_url(box->u));
    return 1;
}

/* hotsock.udp's result once its name is looked up: a socket to the first address, at port. */
static int push_resolved(lua_State *T, const struct hs_resolved *res, int port)
{
    struct sockaddr_storage ss = res->addr[0];
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    return push_sock(T, hs__lua_from_state(T), (struct sockaddr *)&ss, res->len[0]);
}

/* hotsock.udp(url) — udp://HOST:PORT (a name is resolved without blocking, the first address
 * used) or unixgram:/path. Returns a socket, or nil, err. */
static int l_hotsock_udp(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    const char *url = luaL_checkstring(L, 1);
    struct hs_addr a;
    const char *why = "bad url";
    if (hs_addr_parse(url, &a, &why) != 0)
        return luaL_argerror(L, 1, why);
    if (a.scheme == HS_ADDR_UNIXGRAM) {
        struct sockaddr_un su;
        memset(&su, 0, sizeof su);
        su.sun_family = AF_UNIX;
        snprintf(su.sun_path, sizeof su.sun_path, "%s", a.path);
        return push_sock(L, hl, (struct sockaddr *)&su, sizeof su);
    }
    if (a.scheme != HS_ADDR_UDP)
        return luaL_argerror(L, 1, "hotsock.udp takes udp://HOST:PORT or unixgram:/path");
    if (a.host[0] == '\0' || a.port == 0)
        return luaL_argerror(L, 1, "hotsock.udp needs a host and a port");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a.host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)a.port);
        return push_sock(L, hl, (struct sockaddr *)&ss, sizeof *s4);
    }
    if (inet_pton(AF_INET6, a.host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)a.port);
        return push_sock(L, hl, (struct sockaddr *)&ss, sizeof *s6);
    }
    /* A name: looked up like hotsock.connect's, which waits. */
    return hs__task_resolve(L, "hotsock.udp", a.host, AF_UNSPEC, HS_UDP_RESOLVE_TIMEOUT_MS,
                            push_resolved, a.port);
}

/* sock:send(data) — one datagram (at most 65,507 bytes). Returns true, or nil, err
 * ("closed", "connection refused" when an earlier datagram found no one, "buffer full"). */
static int l_udp_out_send(lua_State *L)
{
    struct udp_out_box *box = hs__box_check(L, 1, HS__BOX_UDP_OUT, "sock:send");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    int r = hs_udp_send(box->u, data, len);
    if (r == HS_ETOOBIG)
        return luaL_argerror(L, 2, "datagram over 65507 bytes");
    if (r != 0)
        return hs__lua_fail(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* Takes one queued datagram onto L: 1 (data pushed), 2 (nil, err pushed) or 0 (none). */
static int recv_try(lua_State *L, struct udp_out_box *box)
{
    const char *data;
    int n = hs_udp_recv(box->u, &data);
    if (n == -EAGAIN)
        return 0;
    if (n < 0)
        return hs__lua_fail(L, n);
    lua_pushlstring(L, data, (size_t)n);
    return 1;
}

static void recv_ready(struct hs_udp *u, void *arg)
{
    struct udp_out_box *box = arg;
    struct hs__task *t = box->recv;
    int n = recv_try(t->T, box);
    if (n == 0) {
        /* Readable yet nothing there (a datagram with a bad checksum): wait on. */
        if (hs_udp_wait(u, recv_ready, box) == 0)
            return;
        n = hs__lua_fail(t->T, -ENOMEM);
    }
    box->recv = NULL;
    hs__task_resume(t, n);
}

static void recv_timeout(struct hs__task *t)
{
    struct udp_out_box *box = t->wait_data;
    hs_udp_unwait(box->u);
    box->recv = NULL;
    hs__task_resume(t, hs__lua_fail(t->T, -ETIMEDOUT));
}

/* The waiting handler lost its client (or the state is going): stop waiting. */
static int recv_cancel(struct hs__task *t, int push)
{
    struct udp_out_box *box = t->wait_data;
    if (!hs__box_gone(&box->box))
        hs_udp_unwait(box->u);
    box->recv = NULL;
    return push ? hs__lua_fail(t->T, HS_ECLOSED) : 0;
}

/* sock:receive([timeout]) — the next datagram, waiting for it (at most timeout seconds, or the
 * sock:settimeout value). Returns data, or nil, err ("timeout", "closed", "connection
 * refused" when no one listens at the address). */
static int l_udp_out_receive(lua_State *L)
{
    struct udp_out_box *box = hs__box_check(L, 1, HS__BOX_UDP_OUT, "sock:receive");
    int ms = box->timeout_ms;
    if (!lua_isnoneornil(L, 2)) {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s > 0 && s < HS_MAX_WAIT_S, 2, "seconds out of range");
        ms = (int)hs__seconds_ms(s);
        ms = ms > 0 ? ms : 1;
    }
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    if (box->recv != NULL)
        return luaL_error(L, "sock:receive: another call is already receiving on %s", box->url);
    int n = recv_try(L, box);
    if (n > 0)
        return n;
    struct hs__task *t = hs__task_wait(L, "sock:receive");
    if ((ms > 0 && hs__task_timer(t, ms, recv_timeout) != 0) ||
        hs_udp_wait(box->u, recv_ready, box) != 0) {
        t->waiting = NULL;
        return luaL_error(L, "sock:receive: out of memory for a wait");
    }
    box->recv = t;
    t->wait_data = box;
    t->on_cancel = recv_cancel;
    return lua_yield(L, 0);
}

/* sock:settimeout(s) — each later receive gives up after s seconds; nil or negative: none. */
static int l_udp_out_settimeout(lua_State *L)
{
    struct udp_out_box *box = hs__box_check(L, 1, HS__BOX_UDP_OUT, "sock:settimeout");
    if (lua_isnoneornil(L, 2)) {
        box->timeout_ms = -1;
    } else {
        double s = luaL_checknumber(L, 2);
        luaL_argcheck(L, s < HS_MAX_WAIT_S, 2, "seconds out of range");
        int ms = (int)hs__seconds_ms(s);
        box->timeout_ms = s < 0 ? -1 : ms > 0 ? ms : 1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sock:close() — frees the socket; a receive waiting on it (in another coroutine) gets
 * nil, "closed". Returns true, or nil, "closed" when it was closed already. */
static int l_udp_out_close(lua_State *L)
{
    struct udp_out_box *box = hs__box_check(L, 1, HS__BOX_UDP_OUT, "sock:close");
    if (hs__box_gone(&box->box))
        return hs__lua_fail(L, HS_ECLOSED);
    struct hs__task *t = box->recv;
    if (t)
        hs_udp_unwait(box->u);
    hs_udp_free(box->u);
    hs__box_invalidate(&box->box);
    if (t) {
        box->recv = NULL;
        hs__task_resume(t, hs__lua_fail(t->T, HS_ECLOSED));
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* __gc: a waiting receive holds the box, so none waits here. */
static int l_udp_out_gc(lua_State *L)
{
    struct udp_out_box *box = hs__box_test(L, 1, HS__BOX_UDP_OUT);
    if (box && !hs__box_gone(&box->box) && box->recv == NULL) {
        hs_udp_free(box->u);
        hs__box_invalidate(&box->box);
    }
    return 0;
}

static int l_udp_out_tostring(lua_State *L)
{
    struct udp_out_box *box = hs__box_check(L, 1, HS__BOX_UDP_OUT, "sock:__tostring");
    lua_pushfstring(L, "udp client %s%s", box->url, hs__box_gone(&box->box) ? " (closed)" : "");
    return 1;
}

void hs__lua_open_udp(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"udp", l_hotsock_udp},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"send", l_udp_out_send},
        {"receive", l_udp_out_receive},
        {"settimeout", l_udp_out_settimeout},
        {"close", l_udp_out_close},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    static const luaL_Reg meta[] = {
        {"__tostring", l_udp_out_tostring},
        {"__gc", l_udp_out_gc},
        {"__close", l_udp_out_close},
        {NULL, NULL},
    };
    hs__box_meta(L, HS__BOX_UDP_OUT, methods, meta);
    lua_pop(L, 1);
}
