/* The private layout of an HTTP connection, shared by the files of core/http_conn.h:
 * core/http_conn.c (requests, bodies, timers, errors, setup) and core/http_conn_resp.c
 * (response writing and the access log). Nothing outside those files includes this. */
#ifndef HS_HTTP_CONN_INTERNAL_H
#define HS_HTTP_CONN_INTERNAL_H

#include "core/http_conn.h"

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

/* Where the body of the current request stands. */
enum body_state {
    BODY_NONE,    /* no body, or all of it read */
    BODY_BUFFER,  /* being read into h->body before on_request */
    BODY_WAIT,    /* unread: stream mode before pipe_body, or after a pipe gave up */
    BODY_PIPE,    /* being streamed to the sink */
    BODY_DISCARD, /* being read and dropped (the response is done, the body was small) */
};

enum resp_state { RESP_NONE, RESP_STARTED, RESP_DONE };

enum timer_kind { TM_NONE, TM_HEAD, TM_BODY, TM_KEEPALIVE, TM_LINGER };

struct hs_http_conn {
    struct hs_conn *c; /* NULL once closed */
    struct event_base *base;
    struct evbuffer *in;   /* the connection's input buffer (stable; known from on_data) */
    struct evbuffer *body; /* a body read whole */
    struct evbuffer *pend; /* response bytes assembled for one send */
    struct event *timer;   /* the deadline of timer_kind */
    struct event *kick;    /* runs the input loop again from the event loop */
    const struct hs_http_app *app;
    void *app_data;
    struct hs_http_settings set;
    unsigned refs;    /* calls into this module on the stack; the free waits for 0 */
    unsigned running; /* http_run frames on the stack */
    int closed;       /* on_close ran */
    int eof;          /* the peer shut down its side */
    int paused;       /* we asked the connection to stop reading */
    int lingering;    /* an early error response is out; input is dropped until close */
    int head_seen;    /* the app's on_head saw the current request */
    int in_error;     /* the app's on_error runs: an error inside it gets the default */
    int shut;         /* lingering: our write side is shut down */
    int expecting;    /* the connection's receive rule is on (a body is being read) */
    int draining;     /* the server is stopping: the current exchange is the last */
    size_t last_len;  /* parser resumption offset for the head being received */
    enum timer_kind timer_kind;
    uint64_t timer_want;      /* ms, monotonic: timer_kind's deadline (TM_NONE: none) */
    uint64_t timer_due;       /* ms, monotonic: when the pending timer event fires (<= want) */
    struct timeval body_last; /* last body progress (loop's cached clock) */
    struct timespec t_start;  /* when the current head was complete, for the log */
    unsigned linger_ticks;    /* lingering polls left */

    /* The current exchange. */
    int active;          /* a request is being handled */
    int minor;           /* HTTP/1.minor of the request */
    int head_req;        /* HEAD: no body in the response */
    int keep;            /* the request allows the connection to persist */
    int expect;          /* the client waits for 100 Continue */
    int sent_continue;   /* 100 Continue went out */
    int chunked;         /* the request body is chunked */
    int stream;          /* stream mode: the app reads the body with pipe_body */
    int piped;           /* pipe_body was used for this body */
    uint64_t body_left;  /* Content-Length bytes still unread */
    uint64_t body_total; /* body bytes read so far */
    struct hs_http_chunked ch;
    enum body_state bstate;
    struct hs_conn_sink sink; /* pipe destination; write NULL discards */
    uint64_t pipe_max;        /* bytes the pipe accepts */
    enum resp_state resp;
    int status;       /* response status */
    int no_body;      /* HEAD, 1xx, 204 or 304: no body bytes go out */
    int chunked_out;  /* the response is chunked */
    int close_after;  /* close once the response is out */
    int64_t length;   /* announced response length, or -1 */
    uint64_t written; /* body bytes given to write/write_file */
    char method[16];  /* for the log */
    char target[HS_HTTP_MAX_LOG_TARGET + 4];
};

static inline int http_gone(const struct hs_http_conn *h)
{
    return h->closed || h->c == NULL || hs_conn_is_closing(h->c);
}

/* The app may no longer act on the exchange: the connection is going, or the layer answered. */
static inline int http_dead(const struct hs_http_conn *h)
{
    return http_gone(h) || h->lingering;
}

static inline void http_kick(struct hs_http_conn *h)
{
    if (!h->closed)
        event_active(h->kick, EV_TIMEOUT, 1);
}

/* Drops one reference taken by a call into the module; frees h once it is 0 and on_close ran. */
void hs__http_release(struct hs_http_conn *h);

/* Ends the connection after the current response (core/http_conn.c): at once when the request
 * was read whole, by lingering when some of its body may still be coming. */
void hs__http_close_after(struct hs_http_conn *h, const char *reason);

/* Writes the access log line of the current exchange (core/http_conn_resp.c); why may be NULL. */
void hs__http_access_log(struct hs_http_conn *h, int status, uint64_t bytes, const char *why);

/* Sends the assembled response bytes (h->pend). Returns 0 or hs_conn_send_buffer's code. */
int hs__http_send_pend(struct hs_http_conn *h);

/* The Date field value for now, cached per second; a static buffer, valid until the next call. */
const char *hs__http_now(struct hs_http_conn *h);

#endif
