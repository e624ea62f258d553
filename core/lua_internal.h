/* Shared by the Lua binding files (core/lua_*.c, and script.c and script_decl.c, which load
 * scripts) only: the layout of the per-loop Lua context and of the userdata boxes
 * (core/lua_box.h). Includes lua.h. */
#ifndef HS_LUA_INTERNAL_H
#define HS_LUA_INTERNAL_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/conn.h"
#include "core/framing.h"
#include "core/lua_blocks.h"
#include "core/lua_box.h"
#include "core/owned.h"
#include "core/udp.h"

struct hs_script;
struct hs_version;
struct lua_timer;
struct hs__task;
struct hs__out;
struct hs__pool_key;
struct evdns_base;
struct hs_ws;
struct hs__pubsub;

#define HS_LUA_POOL_MAX 64   /* idle coroutines kept for the next calls */
#define HS_LUA_CB_CACHE 8    /* callbacks found by name kept as registry references */
#define HS_LUA_REFS_KEPT 256 /* registry references kept in its array part (lua_api.c) */
#define HS_MAX_WAIT_S 1e9    /* seconds a sleep, a timeout or a delay may ask for */

/* s seconds (under HS_MAX_WAIT_S, which the caller checked) as rounded milliseconds. */
static inline long long hs__seconds_ms(double s)
{
    return (long long)(s * 1000.0 + 0.5);
}

/* A callback found in a version's snapshot (which never changes) by name. */
struct hs__cb_cached {
    const struct hs_version *v; /* NULL: the slot is free */
    const char *name;           /* the caller's name pointer (a literal), compared as such */
    int ref;                    /* registry reference of the function */
};

struct hs_lua {
    lua_State *L;
    struct event_base *base;
    struct hs_conns *set;
    struct hs_owned_list timer_list; /* every pending timer (lua_timer.c), by version */
    struct hs_version *running;      /* the version whose code runs now, or NULL */
    int running_at_load;             /* it is the script's top level that runs */
    /* Sandbox limits (hs_lua_set_limits), enforced while a call from C into Lua runs. */
    size_t mem_used;            /* bytes the allocator has handed out */
    size_t mem_limit;           /* bytes; 0: no limit */
    int mem_refused;            /* the allocator refused a block during the current call */
    int mem_over;               /* mem_used passed mem_limit during a call: the hook checks */
    unsigned time_limit_ms;     /* a call from C may run this long; 0: no limit */
    long long deadline_ns;      /* monotonic (mono_ns) deadline of the running call, 0 when none */
    long long idle_deadline_ns; /* deadline of Lua run outside calls (finalizers), 0: unset */
    int depth;                  /* nested hs__lua_pcall calls on the C stack */
    size_t gc_live;             /* mem_used when a GC cycle last ended, until the pause is set */
    size_t gc_ballast;          /* the collector's ballast (lua_limits.c), not in mem_used */
    struct hs__blocks blocks;   /* small blocks freed, for the next allocations (lua_blocks.h) */
    char warn[512];             /* a warning being assembled from lua_warning pieces */
    size_t warn_len;
    /* Calls into scripts (lua_task.c). */
    struct hs__task *idle;    /* idle coroutines (a free list), reused by the next calls */
    unsigned nidle;           /* at most HS_LUA_POOL_MAX */
    struct hs__task *task;    /* the call running now (innermost), or NULL */
    struct hs__task *waiting; /* every suspended call (a list), so none is ever lost */
    unsigned nwaiting;        /* how many */
    struct hs__cb_cached cb[HS_LUA_CB_CACHE]; /* hs__lua_invoke's lookups by name */
    unsigned cb_next;                         /* the slot a miss fills next (round robin) */
    struct hs_version_watcher cb_watch;       /* drops a freed version's callbacks */
    /* Outbound connections (lua_connect.c). */
    struct evdns_base *dns;    /* the resolver, made on first need */
    struct hs_conns *outbound; /* outbound conns: a set of their own, made on first need, so a
                                * graceful stop waits for clients, not for kept upstreams */
    struct hs__pool_key *pool; /* conns kept by conn:keepalive, by URL (lua_connect.c) */
    unsigned npool;            /* how many conns */
    struct hs__pubsub *pubsub; /* hotsock.subscribe's state (lua_pubsub.c); lives as long as L */
    /* The conn box whose on_message runs now, or NULL: held by its registry reference for as
     * long as it is set (lua_conn_message sets it around the call; hs__conn_settle clears it
     * when it drops that reference), so its address names that box (hs__conn_box_check). */
    struct hs__conn_box *msg_box;
    /* The udp box whose on_datagram runs now (until the call returns or first waits), or NULL:
     * anchored by its socket's registry reference, which the socket cannot drop inside its
     * own callback (hs_udp_free waits), so sock:send_to compares its address first. */
    struct hs__udp_box *udp_hot;
    /* The text of the interned keys "send" and "ctx", held by the conn's __index closure:
     * conn.send and conn.ctx are found by comparing the key's address with these, without a
     * table lookup (l_conn_index). */
    const char *key_send, *key_ctx;
    /* The res box of the latest HTTP exchange, for as long as its connection's registry slot
     * holds it (app_head sets it, hs__lua_http_detach clears it before letting go): res:header
     * and res:send compare one address instead of the metatable (check_res). */
    void *res_hot;
    /* A large read handed to Lua as its string without a copy (lua_rx_block.c). */
    void *rx_block;       /* the block reads go into (at str_head), or NULL */
    size_t rx_size;       /* bytes it holds after str_head */
    size_t rx_want;       /* the size lua_alloc hands rx_block over for, 0 when none */
    size_t str_head;      /* a long string's header size as this Lua allocates it; 0: unknown */
    int rx_probe;         /* lua_alloc records the size of the next string (calibration) */
    size_t rx_probe_size; /* what it recorded */
    /* Each box kind's metatable (its address), for hs__box_check (lua_box.c). */
    const void *box_mt[HS__BOX_KINDS];
    /* The same metatables as registry references (0: not made yet), for hs__box_new. */
    int box_mt_ref[HS__BOX_KINDS];
    /* HTTP req tables' metatable as a registry reference (0: not made yet): set on every
     * request, where luaL_setmetatable would look it up by name. */
    int req_mt_ref;
};

/* What few conn boxes use, out of line (box->x): made on the first conn:receive, conn:flush,
 * conn:settimeout or conn:pipe_frame, or when the conn closes while its handler waits; an
 * outbound box carries it inside its own userdata. Freed by the box's __gc. */
struct hs__conn_ext {
    struct hs__task *reader;  /* the call waiting in conn:receive on it, or NULL */
    struct hs__task *flusher; /* the call waiting in conn:flush on it, or NULL */
    const char *close_reason; /* the conn closed while task ran: on_close is still owed */
    struct hs__out *out;      /* an outbound conn's state (lua_connect.c); NULL: accepted */
    int pipe_done_ref; /* registry reference of a pending pipe_frame callback, or LUA_NOREF */
    int pipe_file_ref; /* registry reference of the file being written, or LUA_NOREF */
    int timeout_ms;    /* conn:settimeout, for each later wait; <= 0: none */
};

/* A connection as Lua sees it: a full userdata with two user values (the ctx table, made on
 * first use, and the peer text once closed). C owns the hs_conn; the box borrows it and is
 * told when it is gone (c = NULL). Kept to 48 bytes: with Lua's userdata header and the two
 * user values that is 120, a 128-byte malloc block (bench: memory per idle connection); the
 * rarely used state is in struct hs__conn_ext. */
struct hs__conn_box {
    /* The box head (core/lua_box.h): the connection, NULL once closed. */
    HS__BOX_HEAD(struct hs_conn, c);
    uint64_t id;               /* kept for a closed box's queries */
    struct hs_version *v;      /* the script version this connection runs */
    struct hs__task *task;     /* its handler while one waits or runs after waiting, or NULL:
                                * no other callback of the conn runs meanwhile */
    struct hs__conn_ext *x;    /* the rarely used state, or NULL (read it with hs__conn_xr) */
    int self_ref;              /* registry reference holding the box while the conn is open */
    unsigned char has_handle;  /* the version gives handle(conn), not yet started */
    unsigned char in_frame;    /* on_message runs: its frame may be at the front of the input
                                * buffer (not when it came by on_raw), so receive waits */
    unsigned char read_anchor; /* self_ref was taken for a waiting receive (an outbound box,
                                * which is otherwise held only by the script) */
    unsigned char x_inside;    /* x lies in the box's own userdata (an outbound box) */
    /* The peer text is the connection's while it is open; at close it is kept as user value
     * 2 (a Lua string), so an open connection does not carry a second copy. */
};

/* What a box without its own extension reads: no waiting call, no pipe, no timeout. */
extern const struct hs__conn_ext hs__conn_ext_none;

/* The box's extension for reading (never NULL; never write through it). */
static inline const struct hs__conn_ext *hs__conn_xr(const struct hs__conn_box *box)
{
    return box->x ? box->x : &hs__conn_ext_none;
}

/* The box's extension, made now if it has none (lua_conn.c). Returns NULL when out of memory
 * (the box is unchanged). */
struct hs__conn_ext *hs__conn_x(struct hs__conn_box *box);

/* As hs__conn_x, but raises a memory error instead of returning NULL (in an l_ function). */
struct hs__conn_ext *hs__conn_x_check(lua_State *L, struct hs__conn_box *box);

/* A UDP socket as Lua sees it. C owns the hs_udp; the box borrows it and is told when it is
 * freed (hs_udp_on_free), after which send_to answers nil, "closed". */
struct hs__udp_box {
    /* The box head: the socket, NULL once freed (a reload dropped its address). */
    HS__BOX_HEAD(struct hs_udp, u);
    char url[HS_ADDR_TEXT + 16]; /* kept for a freed box's url() and tostring */
    /* "on_datagram (URL from ": the start of each call's name in the log, made once. */
    char what[HS_ADDR_TEXT + 48];
};

/* The context of the state L belongs to (any of its threads). It is kept in one place only,
 * the extra space before every lua_State (LUA_EXTRASPACE, one pointer), set once by hs_lua_new
 * before any thread exists; Lua copies the main thread's extra space into each new thread.
 * Chosen over the two other ways Lua offers: a registry lookup costs a table access per call,
 * and an upvalue exists only in functions registered with it (not in __gc, the allocator, the
 * count hook or a metamethod another file registers), so some code would need a second way.
 * Reading it is one load. */
static inline struct hs_lua *hs__lua_from_state(lua_State *L)
{
    return *(struct hs_lua **)lua_getextraspace(L);
}

/* The box of kind at idx, or NULL when the value there is anything else. Never raises. A __gc
 * uses this, not hs__box_check: a trusted script may give a table a box's metatable, and the
 * table's finalizer must do nothing rather than raise or read a box that is not there. Only a
 * full userdata passes (not a table given the metatable). Inline: every method of every box
 * runs it, and as a call it cost ~150 instructions where its five API calls cost ~110. */
static inline void *hs__box_test(lua_State *L, int idx, enum hs__box_kind kind)
{
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return NULL;
    /* The metatable lives in the registry for the state's life (hs__box_meta), so its address
     * is a stable identity: no name is looked up. */
    const void *mt = lua_topointer(L, -1);
    lua_settop(L, -2);
    return mt == hs__lua_from_state(L)->box_mt[kind] ? lua_touserdata(L, idx) : NULL;
}

/* The box of kind at idx, or raises "bad argument #idx to 'METHOD' (hotsock.KIND expected, got
 * TYPE)"; method names the Lua-visible call ("conn:send"). A box whose object is gone passes:
 * the caller asks hs__box_gone. */
static inline void *hs__box_check(lua_State *L, int idx, enum hs__box_kind kind, const char *method)
{
    void *b = hs__box_test(L, idx, kind);
    if (b == NULL)
        hs__box_type_error(L, lua_absindex(L, idx), kind, method);
    return b;
}

/* hs__box_check that first compares the value at idx with hot, a box of kind known to be
 * alive (anchored in the registry) while it is set: one address compared instead of the
 * metatable's. NULL hot: the full check. */
static inline void *hs__box_check_hot(lua_State *L, int idx, void *hot, enum hs__box_kind kind,
                                      const char *method)
{
    if (hot != NULL && lua_touserdata(L, idx) == hot && lua_type(L, idx) == LUA_TUSERDATA)
        return hot;
    return hs__box_check(L, idx, kind, method);
}

/* hs__box_check for a conn box, first trying the conn whose on_message runs (the usual
 * `conn:send` of a handler). */
static inline struct hs__conn_box *hs__conn_box_check(lua_State *L, int idx, const char *method)
{
    return hs__box_check_hot(L, idx, hs__lua_from_state(L)->msg_box, HS__BOX_CONN, method);
}

/* Registers the conn and udp metatables (lua_conn.c). */
void hs__lua_open_conn(lua_State *L);

/* Pushes what the TLS handshake of c agreed on ({version=, cipher=, sni=, alpn=}), or nil
 * for a plaintext, handshaking or closed (c NULL) connection. conn:tls() and req.tls. */
void hs__push_tls_info(lua_State *L, const struct hs_conn *c);

/* Pushes the PROXY header c began with as a table ({version, command = "proxy" | "local",
 * source, destination, transport, tlvs = {{type, value}...}, alpn, authority, unique_id,
 * netns, ssl = {ssl, client_cert, verified, version, cn, cipher, sig_alg, key_alg}}), or nil
 * when there is none (c may be NULL). core/lua_proxy.c. */
void hs__push_proxy_info(lua_State *L, const struct hs_conn *c);

/* Pushes a new conn box for c bound to version v. */
struct hs__conn_box *hs__conn_box_push(lua_State *L, struct hs_conn *c, struct hs_version *v);

/* Pushes the udp box of u onto L (a thread of hl's state) and returns it (Lua owns it), creating it
 * the first time; u keeps the box's registry reference (hs_udp_tag) until it is freed or the state
 * closes. May raise (memory) the first time. */
struct hs__udp_box *hs__udp_box_push(struct hs_lua *hl, lua_State *L, struct hs_udp *u);

/* Converts the framing spec at idx (a string like "length:i32le" or a table
 * {"line", max = 100, delim = "\r\n"}) into *f. Returns 0, or HS_EBADSPEC with *why set. */
int hs__lua_to_framing(lua_State *L, int idx, struct hs_framing *f, const char **why);

/* Registers the file metatable and pushes the `hotsock.file` functions into the table on
 * top of the stack (lua_file.c). */
void hs__lua_open_file(lua_State *L);

/* The version an HTTP connection's counters go to (its last request's), or NULL
 * (lua_http.c). */
struct hs_version *hs__http_conn_version(struct hs_conn *c);

/* Sets hotsock.shared (lua_shared.c) in the table on top of the stack. */
void hs__lua_open_shared(lua_State *L);

/* Sets hotsock.subscribe, publish, worker and workers (lua_pubsub.c) in the table on top of
 * the stack, and starts draining this process's pub/sub queue on the loop when it has one. */
void hs__lua_open_pubsub(lua_State *L);

/* Sets hotsock.conns and hotsock.broadcast (lua_conns.c) in the table on top of the stack. */
void hs__lua_open_conns(lua_State *L);

/* Pushes the client address of a peer text without its port ("::1" for "[::1]:5000"). */
void hs__lua_push_ip(lua_State *L, const char *peer);

/* Registers the metatable of on_http_error's res (lua_http_error.c). */
void hs__lua_open_http_error(lua_State *L);

/* Runs version v's on_http_error(status, req, res) when the script has one (lua_http_error.c):
 * req is the request table at req_ref, or (LUA_NOREF) a table with peer and ip of c. When the
 * script called res:send, its header lines and body are added to headers and body and the
 * result is 1; otherwise (no callback, no send, an error: logged) 0. */
struct evbuffer;
int hs__lua_http_on_error(struct hs_lua *hl, struct hs_version *v, int req_ref, struct hs_conn *c,
                          int status, struct evbuffer *headers, struct evbuffer *body);

/* Sets hotsock.json (lua_json.c) in the table on top of the stack. */
void hs__lua_open_json(lua_State *L);
/* WebSocket (lua_ws.c): sets req:websocket in the request method table on top of the stack
 * and registers the hotsock.ws metatable. */
void hs__lua_open_ws(lua_State *L);

/* User values of a ws box (lua_ws.c). */
enum {
    HS__WS_UV_CTX = 1,   /* ws.ctx, made on first use */
    HS__WS_UV_PEER,      /* the peer text */
    HS__WS_UV_PROTOCOL,  /* the subprotocol agreed on, or nil */
    HS__WS_UV_CALLBACKS, /* {on_message, on_close} */
    HS__WS_UV_INBOX,     /* handle mode: messages waiting for ws:receive (data, kind pairs) */
    HS__WS_UV_REASON,    /* once closed: the close reason on_close got */
    HS__WS_UV_COUNT = HS__WS_UV_REASON
};

/* A WebSocket as Lua sees it. C owns the hs_ws; the box borrows it until on_close. */
struct hs__ws_box {
    /* The box head: the WebSocket, NULL once closed. */
    HS__BOX_HEAD(struct hs_ws, ws);
    struct hs_lua *hl;       /* the state's context */
    struct hs_version *v;    /* the version it runs (referenced while open) */
    uint64_t id;             /* the connection's id, kept for a closed box */
    int self_ref;            /* registry: the box, while open */
    int handle;              /* made with handle = fn: messages queue for ws:receive */
    struct hs__task *reader; /* the call waiting in ws:receive, or NULL */
    unsigned in_head;        /* the inbox holds pairs head..tail-1 (1-based pair numbers) */
    unsigned in_tail;
    size_t in_bytes; /* payload bytes in the inbox */
    int in_paused;   /* reading is paused because the inbox is over its bound */
    int close_code;  /* once closed: the code on_close got (0 while open) */
    int timeout_ms;  /* ws:receive's default wait (ws:settimeout); -1: none */
};

/* handle mode (lua_ws_recv.c): a whole message for ws:receive. It goes to the call waiting
 * in ws:receive (resumed now) or to the inbox; past HS_WS_INBOX_MAX messages or max_message
 * bytes, reading pauses until ws:receive has taken some. */
void hs__ws_inbox_push(struct hs__ws_box *b, const void *data, size_t len, int binary);

/* handle mode: the WebSocket closed with code and reason (kept for ws:receive, which answers
 * nil, "closed", code, reason once the inbox is empty); a waiting ws:receive is resumed. */
void hs__ws_inbox_closed(struct hs__ws_box *b, int code, const char *reason, size_t len);

/* Runs fn (at fn_idx of L) as handle(ws) with the box at box_idx, in a call that may wait; its
 * end closes the WebSocket (1000; 1011 after an error, which is logged). */
void hs__ws_handle_start(lua_State *L, struct hs__ws_box *b, int box_idx, int fn_idx);

/* Adds ws:receive and ws:settimeout to the method table on top of the stack. */
void hs__lua_ws_methods_recv(lua_State *L);

/* When c is an open WebSocket of a script (lua_ws.c): its version, and the registry reference
 * of its ws box in *self_ref; else NULL. */
struct hs_version *hs__lua_ws_of(struct hs_conn *c, int *self_ref);

/* The connection of the ws box at idx, or NULL when it is closed; raises when idx is not a ws. */
struct hs_conn *hs__lua_ws_check_conn(lua_State *L, int idx);

/* For req:websocket (lua_http.c): when the response of the request table at idx is untouched,
 * pushes the header lines set on it (one string) and returns its exchange with *v the version
 * it runs; raises when the response was started; returns NULL (nothing pushed) when the
 * connection is gone. */
struct hs_http_conn;
struct hs_http_conn *hs__lua_http_exchange(lua_State *L, int idx, struct hs_version **v);

/* Marks the response of the request table at idx finished and lets go of the exchange. */
void hs__lua_http_done(lua_State *L, int idx);

/* The sink interface of a file userdata at idx, for conn:pipe_frame. NULL if not a file. */
int hs__file_sink(lua_State *L, int idx, struct hs_conn_sink *sink);

/* Sets the version whose code is about to run (timers it creates belong to it; at_load
 * marks the script's top level). Returns the previous one, to restore. */
struct hs_version *hs__lua_set_running(struct hs_lua *hl, struct hs_version *v, int at_load);

/* Starts (at hs_lua_new) and stops (at hs_lua_free) the callbacks hs__lua_invoke keeps
 * (lua_task.c): a freed version's go with it (hs_version_watch). */
void hs__lua_callbacks_start(struct hs_lua *hl);
void hs__lua_callbacks_stop(struct hs_lua *hl);

/* ---- timers (lua_timer.c) ---- */

/* Adds after and every to the hotsock table on top of the stack, and starts hl->timer_list: a
 * version's timers are cancelled when it retires (load-time ones) or is freed (all), as
 * core/owned.h tells. */
void hs__lua_open_timers(lua_State *L);

/* Creates the timer metatable in the registry; leaves the stack as it was. */
void hs__lua_open_timer_meta(lua_State *L);

/* ---- calls into scripts (lua_task.c) ---- */

/* A call into a script, from its first run until it returns or fails: a coroutine of the
 * state's pool and, while it waits, why. */
struct hs__task {
    struct hs_lua *hl;
    lua_State *T;             /* its coroutine */
    int ref;                  /* registry reference anchoring T (a running thread is held) */
    struct hs_version *v;     /* the version whose code it runs; referenced while it waits */
    const char *what;         /* names the call in the log */
    const char *what_peer;    /* and, until it first waits, the datagram's source after it */
    struct hs_conn *conn;     /* the connection it is for, or NULL; valid for the first run */
    struct hs__conn_box *box; /* the stream connection whose handler it is, or NULL */
    unsigned flags;           /* HS__INVOKE_* */
    const char *waiting;      /* the call it waits in ("hotsock.sleep"), NULL while it runs */
    struct event *timer;      /* a sleep's end or a wait's timeout; made on first need */
    void (*on_timer)(struct hs__task *t); /* what the timer means for the wait */
    struct hs__conn_box *rbox;            /* conn:receive waits on this conn */
    struct hs__ws_box *wbox;              /* ws:receive waits on this WebSocket */
    int rkind;                            /* its pattern (lua_wait.c) */
    size_t rn;                            /* its byte count */
    char label[160];                      /* names the call in the log once it waited */
    /* Its last wait, for the log ("after waiting in hotsock.sleep at FILE:LINE"), kept as
     * parts and made into text only when the call fails: a proxy waits twice per message. */
    const char *wait_what;     /* the waiting call's name (static text) */
    int wait_line;             /* the script's line there; 0: not known (then no FILE:LINE) */
    char wait_src[LUA_IDSIZE]; /* the chunk, as lua_Debug's short_src */
    /* A wait that can be given up (a connect, a receive on an outbound conn): releases what
     * the waiting call armed and, when push != 0, pushes its results (nil, "closed") on T and
     * returns how many. Cleared on every resume. */
    int (*on_cancel)(struct hs__task *t, int push);
    void *wait_data;              /* what the waiting call armed, for on_cancel */
    struct hs__task *prev, *next; /* hl->waiting while it waits, or hl->idle */
    struct hs__join *join;        /* the task box of a spawned call (lua_join.c), or NULL */
    struct hs__task *join_next;   /* the next call waiting in task:wait on the same box */
};

#define HS__INVOKE_NO_WAIT 0x1 /* waiting is impossible here: a waiting call raises an error */
#define HS__INVOKE_AT_LOAD 0x2 /* a script's top level or on_reload: its timers are load timers */
#define HS__INVOKE_CLOSE 0x4   /* an error closes `conn` with reason "handler error" */
#define HS__INVOKE_HANDLE 0x8  /* handle(conn): its end, however it ends, closes the conn */
#define HS__INVOKE_CLOSE_LATE 0x10 /* an error after a wait closes `conn` ("handler error") */

/* One call into a script. */
struct hs__invoke {
    struct hs_version *v;     /* the version whose code runs (timers it starts belong to it) */
    const char *name;         /* the callback looked up in v's table; NULL: the function is on the
                               * stack below the arguments */
    const char *what;         /* names the call in the log (NULL: name) */
    const char *what_peer;    /* or NULL: a datagram's source; the log names the call as what, it
                               * and ")" (text made only when needed, not per datagram) */
    struct hs_conn *conn;     /* the connection the call is for (log, HS__INVOKE_CLOSE), or NULL */
    struct hs__conn_box *box; /* the stream connection whose handler it is, or NULL: while the
                               * call waits the conn is held (hs_conn_hold) */
    unsigned flags;           /* HS__INVOKE_* */
    char *err; /* when not NULL the error text goes here (errlen bytes), not the log */
    size_t errlen;
    struct hs__join *join; /* hotsock.spawn's task box, told of the call's end; or NULL */
};

/* The one way C calls a script: looks the callback up, sets the running version, runs it in a
 * coroutine from the state's pool under the sandbox's limits, restores the running version.
 * The nargs arguments are on top of the stack of hl->L (the function below them when
 * iv->name is NULL); they are popped. Returns:
 * - 0: it returned; nres results are pushed (missing ones nil);
 * - 1: v has no such callback; nothing ran;
 * - HS_ESCRIPT: it failed; the error with its traceback was logged (or copied to iv->err),
 *   counted in v's stats, and with HS__INVOKE_CLOSE the connection is closing;
 * - HS_AGAIN: it waits (only calls with nres == 0 and without HS__INVOKE_NO_WAIT may); the
 *   core resumes it later (hs__task_resume) and its end is reported to its box
 *   (hs__conn_settle) or to the log. */
int hs__lua_invoke(struct hs_lua *hl, const struct hs__invoke *iv, int nargs, int nres);

/* hs__lua_invoke in two steps, for the per-message calls: the arguments are pushed straight
 * onto the call's coroutine (t->T), not onto hl->L and moved across. hs__lua_call_begin takes a
 * task and pushes v's callback iv->name (not NULL) onto t->T, or returns NULL when v has none
 * (or out of memory: logged); nothing ran. The caller then pushes the nargs arguments onto t->T
 * (nothing in between may call into Lua but what a push itself sets off: a collection's
 * finalizers) and runs it with hs__lua_call_run, which returns as hs__lua_invoke does. */
struct hs__task *hs__lua_call_begin(struct hs_lua *hl, const struct hs__invoke *iv);
int hs__lua_call_run(struct hs__task *t, const struct hs__invoke *iv, int nargs, int nres);

/* For a waiting call (an l_ function about to yield): the task running on L, marked as
 * waiting in `what`. Raises a clear error naming `what` where waiting is impossible: outside a
 * handler's coroutine, in a call that must answer at once (on_accept), across a C boundary, or
 * in a coroutine of the script's own. The caller then arms what resumes it and returns
 * lua_yield(L, 0). `what` is static text (the task keeps the pointer for its log line). */
struct hs__task *hs__task_wait(lua_State *L, const char *what);

/* Resumes a waiting task with the nargs values pushed on t->T, which become the results of
 * the call it waited in. Runs it until it returns, fails or waits again. */
void hs__task_resume(struct hs__task *t, int nargs);

/* Arms t's timer for ms milliseconds; on_timer runs when it fires. Returns 0 or -ENOMEM. */
int hs__task_timer(struct hs__task *t, long long ms, void (*on_timer)(struct hs__task *t));

/* A box's handler task ended (or none runs): release the hold, run an owed on_close, start
 * handle(conn), or let the box go once the conn is gone (lua_api.c). */
void hs__conn_settle(struct hs_lua *hl, struct hs__conn_box *box);

/* conn:receive's side of a held conn (lua_wait.c): input arrived or the stream ended; a
 * waiting receive completes if it can. */
void hs__conn_reader_input(struct hs__conn_box *box, int eof);

/* The conn of box is closing: a waiting receive gets nil, "closed", partial. */
void hs__conn_reader_closed(struct hs__conn_box *box);

/* conn:flush's side (lua_wait.c): the conn's output fell to its low-water mark
 * (on_output_low), or the conn is closing; a waiting flush completes. */
void hs__conn_flush_ready(struct hs__conn_box *box);
void hs__conn_flush_closed(struct hs__conn_box *box);

/* Task boxes (lua_join.c): what hotsock.spawn returns. hs__join_bind links the box j to the
 * call t that runs the spawned function (both borrowed: each unlinks the other when it goes).
 * hs__join_end is told, before t is torn down, that t ended with lua_resume status st (n
 * results on t->T, or the error on top): it keeps the results (or the error message) in the
 * box, and returns the box when calls wait on it, which the caller then passes to
 * hs__join_wake once t is gone (the box is pinned on the main thread's stack in between, and
 * hs__join_wake pops it); NULL when nobody waits. hs__join_drop: t is dropped without ending
 * (the server stops); the box answers "closed" from then on. hs__lua_open_join makes the
 * metatable. */
struct hs__join;
void hs__join_bind(struct hs__join *j, struct hs__task *t);
struct hs__join *hs__join_end(struct hs__task *t, int st, int n);
void hs__join_wake(struct hs_lua *hl, struct hs__join *j);
void hs__join_drop(struct hs__task *t);
void hs__lua_open_join(lua_State *L);
/* Pushes a new task box in the running state and returns it (Lua owns it). Raises on memory
 * exhaustion. */
struct hs__join *hs__join_new(lua_State *L);

/* Adds sleep, spawn (to the table on top) and conn:receive, conn:settimeout, conn:flush
 * (lua_wait.c). */
void hs__lua_open_wait(lua_State *L);
void hs__lua_conn_methods_wait(lua_State *L);

/* Adds conn:pipe (lua_pipe.c) to the method table on top of the stack. */
void hs__lua_conn_methods_pipe(lua_State *L);

/* The handler of t's connection is gone (its client left): a wait that can be given up
 * (t->on_cancel) resumes at once with nil, "closed"; any other wait goes on. */
void hs__task_cancel(struct hs__task *t);

/* hotsock.connect into the table on top (lua_connect.c); conn:keepalive
 * and the outbound side of the conn metatable (its __gc) into the methods table on top and
 * the metatable below it. */
void hs__lua_open_connect(lua_State *L);
void hs__lua_conn_methods_connect(lua_State *L);

/* hotsock.resolve into the table on top (lua_resolve.c). */
void hs__lua_open_resolve(lua_State *L);

/* Pushes a finished lookup's results (at least one address) on T; returns how many values. */
struct hs_resolved;
typedef int (*hs__resolved_fn)(lua_State *T, const struct hs_resolved *res, int arg);

/* The calling task waits while name is looked up (family AF_UNSPEC, AF_INET or AF_INET6,
 * bounded by timeout_ms); it resumes with what done(T, res, arg) pushed, or nil, "no such
 * host" / "timeout", or nil, "closed" when its conn goes first. what names the call in the
 * wait's label. Raises where waiting is impossible. Returns lua_yield's result, or nil,
 * "no memory" at once (lua_resolve.c). */
int hs__task_resolve(lua_State *L, const char *what, const char *name, int family, int timeout_ms,
                     hs__resolved_fn done, int arg);

/* hotsock.udp into the table on top, and the metatable of its sockets (lua_udp.c). */
void hs__lua_open_udp(lua_State *L);

/* Adds hotsock.parse_response (core/http_response.c for Lua) to the table on top. */
void hs__lua_open_http_client(lua_State *L);

/* Closes the conns kept alive and frees the resolver (before the state closes). */
void hs__lua_connect_free(struct hs_lua *hl);

/* Lets go of the pooled coroutines (before the state closes). */
void hs__lua_pool_free(struct hs_lua *hl);

/* ---- lua_limits.c: the sandbox's memory and time limits ---- */

/* The state's allocator: counts its blocks against the memory limit (lua_newstate's). */
void *hs__lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Gives coroutine.create and coroutine.wrap the watchdog's hook (once, at the start). */
void hs__lua_watch_coroutines(lua_State *L);
/* The watchdog's tick stops looking at hl (before it is freed). */
void hs__lua_forget_state(struct hs_lua *hl);

/* ---- lua_rx_block.c: a large read handed to Lua as its string without a copy ---- */

/* Measures str_head on hl's Lua (once, at the state's creation). */
void hs__lua_rx_calibrate(struct hs_lua *hl);
/* Where a read of up to size bytes meant for on_message should go, or NULL (then it goes to
 * the input buffer as before). */
unsigned char *hs__lua_rx_buffer(struct hs_lua *hl, size_t size);
/* Pushes the len bytes at p as a string onto L (a thread of hl's state): the block itself when
 * p is the buffer given above and the read was large, else a copy. */
void hs__lua_rx_push(struct hs_lua *hl, lua_State *L, const unsigned char *p, size_t len);
/* lua_alloc's question for a new string block of nsize bytes while rx_want or rx_probe is
 * set: the block to use, or NULL for a fresh one. */
void *hs__lua_rx_take(struct hs_lua *hl, size_t nsize);
/* Frees the block (at the state's end). */
void hs__lua_rx_free(struct hs_lua *hl);

/* The sandbox around one run of script code: the outermost enter starts the time limit's
 * clock, the outermost leave stops it and collects what a call stopped at the memory ceiling
 * left behind. */
void hs__lua_sandbox_enter(struct hs_lua *hl);
void hs__lua_sandbox_leave(struct hs_lua *hl);

/* The collector's ballast (lua_gc_tune, lua_limits.c) and the global collectgarbage that
 * leaves it out of "count": made once the standard libraries are open, before the sandbox
 * saves the real functions. hs__lua_gc_stop comes before lua_close. */
void hs__lua_gc_start(struct hs_lua *hl);
void hs__lua_gc_stop(struct hs_lua *hl);

/* pcall with traceback; on error copies the message (with traceback) into err and pops it.
 * Returns 0 or HS_ESCRIPT. */
int hs__lua_pcall(lua_State *L, int nargs, int nres, char *err, size_t errlen);

/* Raises "FILE:LINE: time limit exceeded (N ms)" (FILE:LINE of the calling Lua code) when
 * the running call is past its deadline; otherwise returns. For C functions that loop on
 * script-sized input (lua_pattern.c, lua_sandbox.c), which the count hook cannot stop. */
void hs__lua_check_time(lua_State *L);

/* Replaces find, match, gmatch and gsub in the string table at index idx by the bounded
 * implementations of lua_pattern.c. */
void hs__lua_open_patterns(lua_State *L, int idx);

/* Prepares the sandbox of a new state (lua_sandbox.c): bounded string and table functions,
 * debug.sethook refused, the views of the restricted profiles. Call once, after the standard
 * libraries and the hotsock module are open. */
void hs__sandbox_open(lua_State *L);

/* Pushes a fresh environment for a version of the script at script_path running under
 * profile (enum hs_sandbox), then the table in which its require records name -> file of
 * each Lua module it loads (nil for trusted, whose modules go to package.loaded). */
void hs__sandbox_env(lua_State *L, int profile, const char *script_path);

/* Pushes the table of modules the scripts of profile share in this state: package.loaded for
 * trusted, one of the sandbox's own for each restricted profile. */
void hs__sandbox_push_loaded(lua_State *L, int profile);

#endif
