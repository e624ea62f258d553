/* Outbound connections from scripts: hotsock.connect, conn:keepalive and conn:tls_handshake
 * (hotsock.resolve, which shares the resolver, is in lua_resolve.c).
 * An outbound conn is an hs_conn like an accepted one (same methods, same box), with these
 * differences: it is always held (its input waits in its buffer for conn:receive, read ahead
 * only up to a bound, which is its flow control), it runs no callbacks of the script, and its
 * box is the script's alone: when the script lets go of it, __gc closes it. conn:keepalive
 * detaches the conn from its box into a per-state pool keyed by URL; the next connect to that
 * URL takes it back with a new box. */
#include "core/conn_connect.h"
#include "core/errtok.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/proxy.h"
#include "core/script.h"
#include "core/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#define HS_CONNECT_TIMEOUT_S 10.0   /* hotsock.connect's default for resolving and connecting */
#define HS_KEEPALIVE_IDLE_S 60.0    /* conn:keepalive's default idle time in the pool */
#define HS_KEEPALIVE_POOL 30        /* conn:keepalive's default conns kept per URL */
#define HS_KEEPALIVE_POOL_MAX 10000 /* the largest pool_size a script may ask for */

/* An outbound connection's state, owned by its hs_conn (freed when it closes). */
struct hs__out {
    struct hs_lua *hl;
    struct hs_conn *c;           /* set in on_open; valid until out_close */
    struct hs__conn_box *box;    /* the box bound now; NULL while pooled or once let go */
    struct hs_version *v;        /* the version whose code uses it (referenced) */
    struct event *ev;            /* pool expiry; made active to close a conn let go */
    struct hs__out *prev, *next; /* its pool key's conns while pooled */
    struct hs__pool_key *pk;     /* the pool key it is kept under; NULL: not pooled */
    unsigned char orphan;        /* the script let go of it: close it from the loop */
    unsigned char upgraded;      /* conn:tls_handshake made it TLS: no longer what key says */
    char key[];                  /* the URL it was connected with: the pool's key */
};

/* A hotsock.connect in flight. */
struct connect_wait {
    struct hs__task *t;
    struct hs_connect *cn;
    struct hs_framing framing;
    struct hs_tls_ctx *tls;      /* tls:// connects: the client context (referenced), else NULL */
    char name[HS_ADDR_MAX_HOST]; /* tls://: the name sent as SNI and checked, "" for none */
    size_t proxy_len;            /* bytes of proxy_hdr; 0: none */
    unsigned char proxy_hdr[HS_PROXY_V2_HEADER_MAX]; /* sent first ({proxy = conn}) */
    char key[];                                      /* the URL (connect) */
};

/* A client TLS handshake in flight (tls:// connects and conn:tls_handshake). */
struct tls_wait {
    struct hs__task *t;
    struct hs__out *out;
    int upgrade; /* conn:tls_handshake: resumes with true, not a new box */
};

/* ---- the pool ---- */

/* The conns kept for one URL, so that a keepalive or a connect finds its URL's conns (and
 * their count) without looking at every kept conn: with a pool of 128 per URL, the scan of
 * all of them on each keepalive cost more than the rest of the keepalive. Freed when its
 * last conn leaves. */
struct hs__pool_key {
    struct hs__pool_key *prev, *next; /* hl->pool */
    struct hs__out *head, *tail;      /* its kept conns, most recently kept first */
    unsigned n;                       /* how many */
    char key[];                       /* the URL (hs__out.key) */
};

static struct hs__pool_key *pool_key_find(struct hs_lua *hl, const char *key)
{
    for (struct hs__pool_key *k = hl->pool; k; k = k->next)
        if (strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

static void pool_unlink(struct hs__out *out)
{
    struct hs_lua *hl = out->hl;
    struct hs__pool_key *k = out->pk;
    if (k == NULL)
        return;
    if (out->prev)
        out->prev->next = out->next;
    else
        k->head = out->next;
    if (out->next)
        out->next->prev = out->prev;
    else
        k->tail = out->prev;
    out->prev = out->next = NULL;
    out->pk = NULL;
    hl->npool--;
    event_del(out->ev);
    if (--k->n == 0) {
        if (k->prev)
            k->prev->next = k->next;
        else
            hl->pool = k->next;
        if (k->next)
            k->next->prev = k->prev;
        free(k);
    }
}

/* The most recently kept conn for key, taken out of the pool, or NULL. */
static struct hs__out *pool_take(struct hs_lua *hl, const char *key)
{
    struct hs__pool_key *k = pool_key_find(hl, key);
    for (struct hs__out *o = k ? k->head : NULL; o; o = o->next) {
        if (hs_conn_is_closing(o->c))
            continue;
        pool_unlink(o);
        return o;
    }
    return NULL;
}

/* Keeps out for idle_ms (0: until the peer or the core's idle timeout closes it); the oldest
 * conns of its key go while the key has more than max. Returns 0, or -ENOMEM (out is then
 * not kept). */
static int pool_put(struct hs__out *out, long long idle_ms, unsigned max)
{
    struct hs_lua *hl = out->hl;
    struct hs__pool_key *k = pool_key_find(hl, out->key);
    if (k == NULL) {
        size_t len = strlen(out->key);
        k = malloc(sizeof *k + len + 1);
        if (k == NULL)
            return -ENOMEM;
        memcpy(k->key, out->key, len + 1);
        k->head = k->tail = NULL;
        k->n = 0;
        k->prev = NULL;
        k->next = hl->pool;
        if (hl->pool)
            hl->pool->prev = k;
        hl->pool = k;
    }
    out->prev = NULL;
    out->next = k->head;
    if (k->head)
        k->head->prev = out;
    else
        k->tail = out;
    k->head = out;
    k->n++;
    out->pk = k;
    hl->npool++;
    if (idle_ms > 0) {
        struct timeval tv = {(time_t)(idle_ms / 1000), (suseconds_t)((idle_ms % 1000) * 1000)};
        event_add(out->ev, &tv);
    }
    /* out is the newest and max >= 1: the tail is never out, and k outlives the loop. */
    while (k->n > max) {
        struct hs__out *oldest = k->tail;
        pool_unlink(oldest);
        hs_conn_close(oldest->c, "pool full"); /* frees oldest (out_close), at once or later */
    }
    return 0;
}

/* ---- the conn handler of outbound conns ---- */

static void out_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs__out *out = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    if (out->orphan)
        hs_conn_close(out->c, "closed"); /* after what the script sent is flushed */
    else if (out->pk)
        hs_conn_close(out->c, "keepalive timeout");
}

static void out_open(struct hs_conn *c, void *arg)
{
    struct hs__out *out = arg;
    out->c = c;
    hs_conn_set_data(c, out);
    /* Always held: input waits for conn:receive, read ahead up to this bound. */
    hs_conn_hold(c, HS_READ_SIZE);
}

static void out_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f, void *arg)
{
    /* Never called: the conn is never released from its hold. */
    HS_UNUSED(c);
    HS_UNUSED(in);
    HS_UNUSED(f);
    HS_UNUSED(arg);
}

static void out_input(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    struct hs__out *out = arg;
    if (out->box) {
        hs__conn_reader_input(out->box, eof);
        return;
    }
    if (out->pk) {
        /* A kept conn the peer closed (or that speaks out of turn) is of no more use. */
        hs_log(HS_LOG_DEBUG, "conn#%llu %s: kept-alive conn %s; dropping it",
               (unsigned long long)hs_conn_id(c), hs_conn_peer(c),
               eof ? "closed by the peer" : "sent data");
        pool_unlink(out);
        if (eof)
            hs_conn_close(c, "peer closed");
        else
            hs_conn_abort(c, "unexpected data");
        return;
    }
    HS_UNUSED(in);
}

/* The box bound to out (if any) lets go of it: from now on it answers nil, "closed". */
static void out_unbind(struct hs__out *out)
{
    struct hs__conn_box *box = out->box;
    if (box == NULL)
        return;
    hs__box_invalidate(&box->box);
    box->x->out = NULL;
    box->v = NULL;
    out->box = NULL;
}

static void out_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct hs__out *out = arg;
    hs_log(HS_LOG_DEBUG, "conn#%llu %s (outbound) closed: %s", (unsigned long long)hs_conn_id(c),
           hs_conn_peer(c), reason);
    /* A waiting receive learns of it with the bytes that came (it may run script code). */
    if (out->box && hs__conn_xr(out->box)->reader)
        hs__conn_reader_closed(out->box);
    hs__conn_flush_closed(out->box);
    out_unbind(out);
    pool_unlink(out);
    hs_version_unref(out->v);
    event_free(out->ev);
    free(out);
}

/* A conn:flush waits on the conn: its output fell to the low-water mark. */
static void out_output_low(struct hs_conn *c, void *arg)
{
    struct hs__out *out = arg;
    HS_UNUSED(c);
    hs__conn_flush_ready(out->box);
}

static const struct hs_conn_handler out_handler = {
    .on_open = out_open,
    .on_frame = out_frame,
    .on_input = out_input,
    .on_output_low = out_output_low,
    .on_close = out_close,
};

static struct hs__out *out_new(struct hs_lua *hl, const char *key, size_t keylen)
{
    struct hs__out *out = calloc(1, sizeof *out + keylen + 1);
    if (out == NULL)
        return NULL;
    out->hl = hl;
    memcpy(out->key, key, keylen + 1);
    out->ev = evtimer_new(hl->base, out_ev_cb, out);
    if (out->ev == NULL) {
        free(out);
        return NULL;
    }
    return out;
}

/* Pushes a new box bound to out, for code of version v (which out now references). */
static void out_box_push(lua_State *L, struct hs__out *out, struct hs_version *v)
{
    /* An outbound box always uses its extension (out): it comes in the same userdata, after
     * the box, and is not freed by __gc. */
    struct hs__conn_box *box =
        hs__box_new(L, HS__BOX_CONN, sizeof *box + sizeof(struct hs__conn_ext), 2); /* ctx, peer */
    if (v != out->v) {
        hs_version_ref(v);
        hs_version_unref(out->v);
        out->v = v;
    }
    box->c = out->c;
    box->id = hs_conn_id(out->c);
    box->v = v;
    box->self_ref = LUA_NOREF;
    box->x = (struct hs__conn_ext *)(box + 1);
    box->x_inside = 1;
    *box->x = hs__conn_ext_none;
    box->x->out = out;
    /* The peer text for when the conn is gone: the box has no registry slot to find it by
     * at close, so it is kept from the start. */
    lua_pushstring(L, hs_conn_peer(out->c));
    lua_setiuservalue(L, -2, 2);
    out->box = box;
}

/* __gc of conn boxes: an outbound conn the script let go of closes, from the loop (the
 * collector may run inside any allocation, in the middle of another conn's callbacks). */
static int l_conn_gc(lua_State *L)
{
    struct hs__conn_box *box = hs__box_test(L, 1, HS__BOX_CONN);
    if (box == NULL || box->x == NULL)
        return 0;
    struct hs__out *out = box->x->out;
    if (!box->x_inside) {
        free(box->x); /* an accepted conn's, made on first need */
        box->x = NULL;
    }
    if (out == NULL)
        return 0;
    out_unbind(out);
    out->orphan = 1;
    event_active(out->ev, EV_TIMEOUT, 1);
    return 0;
}

/* ---- client TLS ---- */

static void tls_done(struct hs_conn *c, const char *err, void *arg)
{
    struct tls_wait *tw = arg;
    struct hs__task *t = tw->t;
    int n;
    HS_UNUSED(c);
    t->wait_data = NULL;
    t->on_cancel = NULL;
    if (err) {
        /* The conn closes once this returns (out_close frees out). */
        /* Not a table token: "certificate verify failed: REASON" or "tls handshake failed:
         * REASON", a fixed prefix and OpenSSL's words (docs/lua-api.md#error-tokens). */
        luaL_pushfail(t->T);
        lua_pushstring(t->T, err);
        n = 2;
    } else if (tw->upgrade) {
        tw->out->upgraded = 1;
        lua_pushboolean(t->T, 1);
        n = 1;
    } else {
        out_box_push(t->T, tw->out, t->v);
        n = 1;
    }
    free(tw);
    hs__task_resume(t, n);
}

/* The task waiting on a handshake is given up: the conn goes (no done callback follows). */
static int tls_cancel(struct hs__task *t, int push)
{
    struct tls_wait *tw = t->wait_data;
    struct hs_conn *c = tw->out->c;
    t->wait_data = NULL;
    free(tw);
    hs_conn_abort(c, "closed");
    return push ? hs__lua_fail(t->T, HS_ECLOSED) : 0;
}

/* Starts a client handshake on out's conn for the waiting task t. Returns 0, or a negative
 * code with the conn closed (connects) or left as it was (upgrades). */
static int tls_start(struct hs__task *t, struct hs__out *out, struct hs_tls_ctx *ctx,
                     const char *name, int upgrade)
{
    struct tls_wait *tw = malloc(sizeof *tw);
    int r = tw ? hs_conn_tls_start(out->c, ctx, name[0] ? name : NULL, tls_done, tw) : -ENOMEM;
    if (r != 0) {
        free(tw);
        if (!upgrade)
            hs_conn_abort(out->c, "out of memory");
        return r;
    }
    tw->t = t;
    tw->out = out;
    tw->upgrade = upgrade;
    t->wait_data = tw;
    t->on_cancel = tls_cancel;
    return 0;
}

/* The TLS options of a connect or an upgrade, read from the table at idx by the caller. */
struct tls_opts {
    int verify;      /* check the chain and the name (default on) */
    const char *ca;  /* PEM file of trusted certificates, NULL: the system store */
    const char *sni; /* the name to send and check, NULL: the URL's host */
};

/* Reads one TLS option (key k, value on top); returns 0 when k is none of them. */
static int tls_opt(lua_State *L, int idx, const char *k, struct tls_opts *o)
{
    if (strcmp(k, "verify") == 0) {
        if (!lua_isboolean(L, -1))
            luaL_argerror(L, idx, "verify must be a boolean");
        o->verify = lua_toboolean(L, -1);
    } else if (strcmp(k, "ca") == 0 || strcmp(k, "sni") == 0) {
        size_t len;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a string", k));
        const char *v = lua_tolstring(L, -1, &len);
        if (len == 0 || len >= (k[0] == 'c' ? (size_t)HS_ADDR_MAX_PATH : (size_t)HS_ADDR_MAX_HOST))
            luaL_argerror(L, idx, lua_pushfstring(L, "%s length out of range", k));
        /* The string stays in the options table, which the caller's stack holds. */
        *(k[0] == 'c' ? &o->ca : &o->sni) = v;
    } else {
        return 0;
    }
    return 1;
}

/* A client context for o, or NULL with the reason logged (an unreadable ca file). */
static struct hs_tls_ctx *tls_ctx_for(const struct tls_opts *o)
{
    struct hs_tls_ctx *ctx;
    char err[HS_TLS_ERR];
    if (hs_tls_client_new(o->verify, o->ca, &ctx, err, sizeof err) != 0) {
        hs_log(HS_LOG_WARN, "tls client context: %s", err);
        return NULL;
    }
    return ctx;
}

/* ---- hotsock.connect ---- */

static void connect_done(struct hs_connect *cn, int fd, const char *peer, int err, void *arg)
{
    struct connect_wait *w = arg;
    struct hs__task *t = w->t;
    struct hs_lua *hl = t->hl;
    lua_State *T = t->T;
    int n;
    HS_UNUSED(cn);
    if (fd < 0) {
        hs_log(HS_LOG_DEBUG, "hotsock.connect %s: %s", w->key, hs_strerror(err));
        n = hs__lua_fail(T, err);
    } else {
        struct hs__out *out = out_new(hl, w->key, strlen(w->key));
        if (out && hl->outbound == NULL)
            hl->outbound = hs_conns_new(hl->base, hs_conns_limits(hl->set));
        int r = -ENOMEM;
        if (out && hl->outbound)
            r = hs_conn_new_outbound(hl->outbound, fd, peer, &w->framing, &out_handler, out);
        else
            close(fd);
        /* The PROXY header goes first, before anything the script sends. */
        if (r == 0 && w->proxy_len && hs_conn_send(out->c, w->proxy_hdr, w->proxy_len) != 0) {
            hs_conn_abort(out->c, "out of memory");
            n = hs__lua_fail(T, -ENOMEM);
        } else if (r != 0) {
            /* fd is closed; on_open never ran, so out is still ours. */
            if (out) {
                event_free(out->ev);
                free(out);
            }
            n = hs__lua_fail(T, -ENOMEM);
        } else if (w->tls) {
            /* tls://: the task waits on for the handshake (tls_done resumes it). */
            r = tls_start(t, out, w->tls, w->name, 0);
            hs_tls_ctx_unref(w->tls);
            free(w);
            /* -EBUSY: the PROXY header has not left yet (a socket that takes not even that). */
            if (r != 0)
                hs__task_resume(t, hs__lua_fail(T, r == -EBUSY ? r : -ENOMEM));
            return;
        } else {
            out_box_push(T, out, t->v);
            n = 1;
        }
    }
    hs_tls_ctx_unref(w->tls);
    free(w);
    hs__task_resume(t, n);
}

static int connect_cancel(struct hs__task *t, int push)
{
    struct connect_wait *w = t->wait_data;
    hs_connect_cancel(w->cn);
    hs_tls_ctx_unref(w->tls);
    free(w);
    t->wait_data = NULL;
    return push ? hs__lua_fail(t->T, HS_ECLOSED) : 0;
}

/* Reads hotsock.connect's options table at idx: timeout (seconds), framing, proxy (an
 * inbound conn whose client a PROXY v2 header passes on; *proxy is its box, or NULL), and for
 * tls:// verify, ca and sni. */
static void connect_opts(lua_State *L, int idx, double *timeout, struct hs_framing *f,
                         struct hs__conn_box **proxy, struct tls_opts *tls)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strcmp(k, "timeout") == 0) {
            if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) <= 0 ||
                lua_tonumber(L, -1) >= HS_MAX_WAIT_S)
                luaL_argerror(L, idx, "timeout must be a positive number of seconds");
            *timeout = lua_tonumber(L, -1);
        } else if (strcmp(k, "framing") == 0) {
            const char *why = "bad framing";
            if (hs__lua_to_framing(L, -1, f, &why) != 0)
                luaL_argerror(L, idx, lua_pushfstring(L, "framing: %s", why));
        } else if (strcmp(k, "proxy") == 0) {
            *proxy = hs__box_test(L, -1, HS__BOX_CONN);
            if (*proxy == NULL)
                luaL_argerror(L, idx, "proxy must be a conn");
        } else if (tls_opt(L, idx, k, tls)) {
            /* read */
        } else {
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
        }
        lua_pop(L, 1);
    }
}

/* hotsock.connect(url [, opts]) — tcp://HOST:PORT ([v6] literals, names resolved without
 * blocking), tls://HOST:PORT (the same, then a client handshake) or unix:/path. Returns a
 * conn, or nil, err. */
static int l_hotsock_connect(lua_State *L)
{
    struct hs_lua *hl = hs__lua_from_state(L);
    size_t ulen;
    const char *url = luaL_checklstring(L, 1, &ulen);
    double timeout = HS_CONNECT_TIMEOUT_S;
    struct hs_framing f;
    const char *why = "bad url";
    hs_framing_parse("raw", &f, &why);
    struct hs__conn_box *proxy = NULL;
    struct tls_opts tls = {1, NULL, NULL};
    connect_opts(L, 2, &timeout, &f, &proxy, &tls);
    struct hs_addr a;
    /* tls:// is tcp:// with a handshake after the connect; its listener options (cert, key)
     * mean nothing here, so it is parsed as tcp://. */
    int is_tls = strncmp(url, "tls://", 6) == 0;
    /* A kept conn of this very URL was made by a connect that parsed it: the common case of a
     * pooled client (a Redis call per request) takes it back before any parsing. Not for a
     * proxied connect (never pooled for reuse) nor tls:// (kept under a longer key, below). */
    if (!is_tls && proxy == NULL && hl->pool != NULL && ulen > 0 && tls.verify && !tls.ca &&
        !tls.sni) {
        struct hs__out *out = pool_take(hl, url);
        if (out != NULL) {
            hs_conn_set_framing(out->c, &f);
            out_box_push(L, out, hl->running);
            return 1;
        }
    }
    if (is_tls) {
        lua_pushfstring(L, "tcp://%s", url + 6);
        int bad = hs_addr_parse(lua_tostring(L, -1), &a, &why) != 0;
        lua_pop(L, 1);
        if (bad)
            return luaL_argerror(L, 1, why);
    } else if (hs_addr_parse(url, &a, &why) != 0) {
        return luaL_argerror(L, 1, why);
    } else if (!lua_isnoneornil(L, 2) && (tls.ca || tls.sni || !tls.verify)) {
        return luaL_argerror(L, 2, "verify, ca and sni are for tls:// URLs");
    }
    if (a.scheme == HS_ADDR_UDP || a.scheme == HS_ADDR_UNIXGRAM)
        return luaL_argerror(L, 1, "udp:// and unixgram: are for hotsock.udp");
    if (a.scheme == HS_ADDR_TCP && (a.host[0] == '\0' || strcmp(a.host, "*") == 0 || a.port == 0))
        return luaL_argerror(L, 1, "a connect needs a host and a port");
    unsigned char hdr[HS_PROXY_V2_HEADER_MAX];
    int hlen = 0;
    if (proxy) {
        hlen = proxy->c ? hs_conn_proxy_build(proxy->c, hdr, sizeof hdr) : HS_ECLOSED;
        if (hlen < 0) {
            hs_log(HS_LOG_DEBUG, "hotsock.connect %s: no PROXY header for conn#%llu: %s", url,
                   (unsigned long long)proxy->id, hs_strerror(hlen));
            return hs__lua_fail(L, hlen == HS_ECLOSED ? hlen : HS_EPROXYADDR);
        }
    }
    /* A tls:// conn is only reusable by a connect that would have checked it the same way:
     * its options are part of the pool's key. */
    if (is_tls) {
        lua_pushfstring(L, "%s#verify=%d&ca=%s&sni=%s", url, tls.verify, tls.ca ? tls.ca : "",
                        tls.sni ? tls.sni : "");
        url = lua_tolstring(L, -1, &ulen); /* stays on the stack until this call returns */
    }
    /* A pooled conn has spoken for some other client already: a proxied one is always new
     * (and, pooled by conn:keepalive, is kept under a key no connect asks for). Plain URLs
     * looked in the pool above. */
    struct hs__out *out = proxy || !is_tls ? NULL : pool_take(hl, url);
    if (out != NULL) {
        hs_conn_set_framing(out->c, &f);
        out_box_push(L, out, hl->running);
        return 1;
    }
    struct hs__task *t = hs__task_wait(L, "hotsock.connect");
    struct hs_tls_ctx *ctx = NULL;
    if (is_tls && (ctx = tls_ctx_for(&tls)) == NULL) {
        t->waiting = NULL;
        return hs__lua_fail(L, HS_ETLSCTX);
    }
    struct connect_wait *w = malloc(sizeof *w + ulen + 1);
    if (w == NULL) {
        hs_tls_ctx_unref(ctx);
        t->waiting = NULL;
        return hs__lua_fail(L, -ENOMEM);
    }
    w->t = t;
    w->framing = f;
    w->proxy_len = (size_t)hlen;
    memcpy(w->proxy_hdr, hdr, (size_t)hlen);
    w->tls = ctx;
    snprintf(w->name, sizeof w->name, "%s", tls.sni ? tls.sni : a.host);
    memcpy(w->key, url, ulen + 1);
    if (proxy)
        w->key[0] = '\0';
    long long ms = hs__seconds_ms(timeout);
    if (hs_connect_start(hl->base, &hl->dns, &a, ms > 0 ? ms : 1, connect_done, w, &w->cn) != 0) {
        hs_tls_ctx_unref(w->tls);
        free(w);
        t->waiting = NULL;
        return hs__lua_fail(L, -ENOMEM);
    }
    t->wait_data = w;
    t->on_cancel = connect_cancel;
    return lua_yield(L, 0);
}

/* ---- conn:keepalive ---- */

/* conn:keepalive([idle_s [, pool_size]]) — puts an outbound conn into the pool for its URL
 * (this box then answers nil, "closed"); the next hotsock.connect to that URL takes it back.
 * Returns true, or nil, err ("closed", "busy" while a receive waits, "unread data", "tls upgraded"
 * for a conn conn:tls_handshake upgraded). */
/* An outbound conn that can change hands (be pooled) or transport (start TLS): open, ours
 * (hotsock.connect's; misuse raises `misuse`), with no receive or flush waiting on it and
 * nothing unread. Returns 0 with *out set, or the count of results pushed (nil, err). */
static int outbound_at_rest(lua_State *L, struct hs__conn_box *box, const char *misuse,
                            struct hs__out **out)
{
    if (box->c == NULL || hs_conn_is_closing(box->c))
        return hs__lua_fail(L, HS_ECLOSED);
    *out = hs__conn_xr(box)->out;
    if (*out == NULL)
        return luaL_error(L, "%s", misuse);
    if (hs__conn_xr(box)->reader || hs__conn_xr(box)->flusher)
        return hs__lua_fail(L, -EBUSY);
    if (evbuffer_get_length(hs_conn_input(box->c)) > 0)
        return hs__lua_fail(L, HS_EUNREAD);
    return 0;
}

static int l_conn_keepalive(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:keepalive");
    double idle = luaL_optnumber(L, 2, HS_KEEPALIVE_IDLE_S);
    luaL_argcheck(L, idle >= 0 && idle < HS_MAX_WAIT_S, 2, "seconds out of range");
    lua_Integer size = luaL_optinteger(L, 3, HS_KEEPALIVE_POOL);
    luaL_argcheck(L, size >= 1 && size <= HS_KEEPALIVE_POOL_MAX, 3, "pool size out of range");
    struct hs__out *out;
    int n = outbound_at_rest(L, box, "conn:keepalive: only a conn from hotsock.connect can be kept",
                             &out);
    if (n)
        return n;
    /* A plain connect to its URL must not get a TLS session back. */
    if (out->upgraded)
        return hs__lua_fail(L, HS_EUPGRADED);
    if (pool_put(out, hs__seconds_ms(idle), (unsigned)size) != 0)
        return hs__lua_fail(L, -ENOMEM);
    out_unbind(out);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- conn:tls_handshake ---- */

/* conn:tls_handshake([opts]) — STARTTLS: starts TLS as a client on an outbound conn whose
 * plaintext exchange is over (opts: verify, ca, sni; the name defaults to the URL's host).
 * Waits for the handshake. Returns true, or nil, err ("closed", "busy" while a receive waits,
 * "unread data", "certificate verify failed: REASON", "tls handshake failed: REASON"); after
 * a failed handshake the conn is closed. */
static int l_conn_tls_handshake(lua_State *L)
{
    struct hs__conn_box *box = hs__box_check(L, 1, HS__BOX_CONN, "conn:tls_handshake");
    struct tls_opts o = {1, NULL, NULL};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
            if (!tls_opt(L, 2, k, &o))
                luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'", k));
            lua_pop(L, 1);
        }
    }
    struct hs__out *out;
    int n = outbound_at_rest(
        L, box, "conn:tls_handshake: only a conn from hotsock.connect can start TLS", &out);
    if (n)
        return n;
    char name[HS_ADDR_MAX_HOST] = "";
    struct hs_addr a;
    if (o.sni)
        snprintf(name, sizeof name, "%s", o.sni);
    else if (strncmp(out->key, "tcp://", 6) == 0 && hs_addr_parse(out->key, &a, NULL) == 0)
        snprintf(name, sizeof name, "%s", a.host);
    struct hs__task *t = hs__task_wait(L, "conn:tls_handshake");
    struct hs_tls_ctx *ctx = tls_ctx_for(&o);
    int r = ctx ? tls_start(t, out, ctx, name, 1) : -EINVAL;
    hs_tls_ctx_unref(ctx);
    if (r != 0) {
        t->waiting = NULL;
        return hs__lua_fail(L, r == -EINVAL                     ? HS_ETLSCTX
                               : r == -EBUSY || r == HS_ECLOSED ? r
                                                                : -ENOMEM);
    }
    return lua_yield(L, 0);
}

void hs__lua_conn_methods_connect(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"keepalive", l_conn_keepalive},
        {"tls_handshake", l_conn_tls_handshake},
        {NULL, NULL},
    };
    luaL_setfuncs(L, methods, 0);
    lua_pushcfunction(L, l_conn_gc);
    lua_setfield(L, -3, "__gc");
}

void hs__lua_open_connect(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"connect", l_hotsock_connect},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}

void hs__lua_connect_free(struct hs_lua *hl)
{
    /* Every outbound conn goes (out_close unlinks the kept ones); no receive waits on one any
     * more (hs__lua_pool_free dropped the waiting calls first). */
    hs_conns_free(hl->outbound);
    hl->outbound = NULL;
    hs_connect_dns_free(hl->dns);
    hl->dns = NULL;
}
