/* The HTTP connection (core/http_conn.c) on a real event_base, without Lua: a conn owns one
 * end of a socketpair and runs the HTTP layer with a small C app; the test plays the client on
 * the other end and compares the exact response bytes (the Date value masked). Keep-alive,
 * HTTP/1.0, pipelined requests answered one at a time and in order, a response the app
 * finishes later, a chunked response, HEAD, and the layer's own 400 and 431 answers. The loop
 * is pumped one non-blocking turn at a time until a condition holds, bounded in time (no
 * sleeps); teardown checks every conn was closed once and no descriptor leaked. */
/* strptime and timegm (the Date check) are GNU/BSD. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/framing.h"
#include "core/hs.h"
#include "core/http_conn.h"
#include "core/log.h"
#include "tests/unit/test_clock_fds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#define PUMP_MAX_MS 10000
#define MAX_PATHS 16

struct fx {
    struct event_base *base;
    struct hs_conns *set;
    struct hs_http_settings settings;
    struct hs_http_conn *h; /* NULL once the app's on_close ran */
    int peer;               /* the client's end, -1 once closed */
    int peer_eof;
    struct evbuffer *got; /* what the client read */
    int fds_at_start;
    /* App behaviour. */
    int hold;    /* on_request does not answer: the test does, later */
    int chunked; /* answer with an unknown length */
    int held;    /* a request waits for its answer */
    int whole;   /* answer with hs_http_conn_send (head and body in one call) */
    /* Bytes the client could read right after each whole answer was sent, before the loop
     * turn that handed over the request ended. */
    ssize_t readable[MAX_PATHS];
    int offered, taken; /* reads offered to hs_http_conn_input_direct, and those it took */
    size_t body_len;    /* of the last request read whole */
    int opens, closes;
    char reason[64];           /* of the app's on_close */
    char paths[MAX_PATHS][64]; /* of each on_head, in order */
    int requests;              /* on_request calls */
    int heads;                 /* on_head calls */
};

/* ---- the app: answers "path=PATH\n" for every request ---- */

static struct fx *app_fx(void *arg)
{
    return *(struct fx **)arg;
}

static int app_head(struct hs_http_conn *h, const struct hs_http_request *req, const char *path,
                    size_t path_len, void *arg)
{
    struct fx *fx = app_fx(arg);
    HS_UNUSED(h);
    HS_UNUSED(req);
    if (fx->heads < MAX_PATHS)
        snprintf(fx->paths[fx->heads], sizeof fx->paths[0], "%.*s", (int)path_len, path);
    fx->heads++;
    return HS_HTTP_BODY_BUFFER;
}

static void answer(struct fx *fx, struct hs_http_conn *h)
{
    char body[96];
    int n = snprintf(body, sizeof body, "path=%s\n", fx->paths[(fx->requests - 1) % MAX_PATHS]);
    if (fx->chunked) {
        assert_int_equal(hs_http_conn_start(h, 200, NULL, 0, -1, 0), 0);
        assert_int_equal(hs_http_conn_write(h, "path=", 5), 0);
        assert_int_equal(hs_http_conn_write(h, body + 5, (size_t)n - 5), 0);
    } else if (fx->whole) {
        static const char hdrs[] = "Content-Type: text/plain\r\n";
        assert_int_equal(hs_http_conn_send(h, 200, hdrs, sizeof hdrs - 1, body, (size_t)n, 0), 0);
        char peek[4096];
        ssize_t got = recv(fx->peer, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
        fx->readable[(fx->requests - 1) % MAX_PATHS] = got < 0 ? 0 : got;
    } else {
        static const char hdrs[] = "Content-Type: text/plain\r\n";
        assert_int_equal(hs_http_conn_start(h, 200, hdrs, sizeof hdrs - 1, n, 0), 0);
        assert_int_equal(hs_http_conn_write(h, body, (size_t)n), 0);
    }
    assert_int_equal(hs_http_conn_finish(h), 0);
}

static void app_request(struct hs_http_conn *h, struct evbuffer *body, void *arg)
{
    struct fx *fx = app_fx(arg);
    fx->body_len = body ? evbuffer_get_length(body) : 0;
    fx->requests++;
    if (fx->hold) {
        fx->held = 1;
        return;
    }
    answer(fx, h);
}

static void app_body_done(struct hs_http_conn *h, int status, uint64_t bytes, void *arg)
{
    HS_UNUSED(h);
    HS_UNUSED(status);
    HS_UNUSED(bytes);
    HS_UNUSED(arg);
}

static void app_close(struct hs_http_conn *h, const char *reason, void *arg)
{
    struct fx *fx = app_fx(arg);
    HS_UNUSED(h);
    snprintf(fx->reason, sizeof fx->reason, "%s", reason);
    fx->h = NULL;
}

static const struct hs_http_app app = {
    .on_head = app_head,
    .on_request = app_request,
    .on_body_done = app_body_done,
    .on_close = app_close,
};

/* ---- the conn handler: what core/lua_http.c does, with the app above ---- */

static void h_open(struct hs_conn *c, void *arg)
{
    struct fx *fx = arg;
    fx->opens++;
    fx->h = hs_http_conn_new(c, fx->base, &fx->settings, &app, sizeof(struct fx *));
    assert_non_null(fx->h);
    *(struct fx **)hs_http_conn_app(fx->h) = fx;
}

static void h_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    HS_UNUSED(arg);
    hs_http_conn_input(hs_conn_data(c), in, eof);
}

static int h_bytes(struct hs_conn *c, const unsigned char *data, size_t len, void *arg)
{
    struct fx *fx = arg;
    fx->offered++;
    int took = hs_http_conn_input_direct(hs_conn_data(c), (const char *)data, len);
    fx->taken += took;
    return took;
}

static void h_close(struct hs_conn *c, const char *reason, void *arg)
{
    struct fx *fx = arg;
    fx->closes++;
    if (hs_conn_data(c) != NULL)
        hs_http_conn_closed(hs_conn_data(c), reason);
}

static const struct hs_conn_handler handler = {
    .on_open = h_open,
    .on_data = h_data,
    .on_bytes = h_bytes,
    .on_close = h_close,
};

/* ---- fixture ---- */

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    struct hs_conn_limits limits;
    if (fx == NULL)
        return -1;
    fx->fds_at_start = count_fds();
    fx->base = event_base_new();
    fx->got = evbuffer_new();
    hs_conn_limits_default(&limits);
    fx->set = fx->base ? hs_conns_new(fx->base, &limits) : NULL;
    if (fx->set == NULL || fx->got == NULL)
        return -1;
    fx->settings.head.max_request_line = 1024;
    fx->settings.head.max_header_bytes = 512;
    fx->settings.head.max_headers = 16;
    fx->peer = -1;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    int failed = 0;
    hs_conns_free(fx->set);
    if (fx->opens != fx->closes) {
        print_error("teardown: %d conns opened, %d closed\n", fx->opens, fx->closes);
        failed = 1;
    }
    event_base_free(fx->base);
    if (fx->peer >= 0)
        close(fx->peer);
    evbuffer_free(fx->got);
    int fds = count_fds();
    if (fds != fx->fds_at_start) {
        print_error("teardown: %d descriptors open, %d before the test\n", fds, fx->fds_at_start);
        failed = 1;
    }
    free(fx);
    return failed ? -1 : 0;
}

static void connect_client(struct fx *fx)
{
    int sv[2];
    struct hs_framing raw;
    const char *why = NULL;
    assert_int_equal(hs_framing_parse("raw", &raw, &why), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fx->peer = sv[1];
    assert_int_equal(hs_conn_new(fx->set, sv[0], "client", &raw, &handler, fx, NULL), 0);
    assert_non_null(fx->h);
}

static void peer_read(struct fx *fx)
{
    char buf[4096];
    while (!fx->peer_eof) {
        ssize_t n = read(fx->peer, buf, sizeof buf);
        if (n > 0)
            evbuffer_add(fx->got, buf, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            fx->peer_eof = 1;
        else if (errno == EAGAIN)
            break;
    }
}

static void pump_once(struct fx *fx)
{
    assert_true(event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
    peer_read(fx);
}

#define PUMP_UNTIL(fx, cond)                                                                       \
    do {                                                                                           \
        long long t0_ = now_ms();                                                                  \
        while (!(cond)) {                                                                          \
            if (now_ms() - t0_ > PUMP_MAX_MS)                                                      \
                fail_msg("%lld ms without: %s", now_ms() - t0_, #cond);                            \
            pump_once(fx);                                                                         \
        }                                                                                          \
    } while (0)

static void client_send(struct fx *fx, const char *text)
{
    size_t len = strlen(text);
    /* Small requests: a socketpair takes them in one write. */
    assert_int_equal(write(fx->peer, text, len), (ssize_t)len);
}

/* What the client has read, with each Date value replaced by "X" (it is the clock's), and
 * consumed. The result is valid until the next call. */
static const char *take(struct fx *fx)
{
    static char out[8192];
    size_t n = evbuffer_get_length(fx->got);
    assert_true(n < sizeof out);
    evbuffer_remove(fx->got, out, n);
    out[n] = '\0';
    char *d = out;
    while ((d = strstr(d, "\r\nDate: ")) != NULL) {
        char *v = d + 8, *end = strstr(v, "\r\n");
        assert_non_null(end);
        *v = 'X';
        memmove(v + 1, end, strlen(end) + 1);
        d = v;
    }
    return out;
}

/* Pumps until the client has at least len bytes. */
static void wait_bytes(struct fx *fx, size_t len)
{
    PUMP_UNTIL(fx, evbuffer_get_length(fx->got) >= len || fx->peer_eof);
}

#define OK_RESPONSE(body)                                                                          \
    "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Type: text/plain\r\nContent-Length: " body

/* ---- tests ---- */

#define HEAD_RESPONSE OK_RESPONSE("8\r\n\r\n")

/* HEAD /h: the head a GET would get (the app answers with an 8-byte body) and nothing more. */
static void ask_head(struct fx *fx)
{
    client_send(fx, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof HEAD_RESPONSE - 1);
    for (int i = 0; i < 20; i++) /* nothing more may come: no body for HEAD */
        pump_once(fx);
    assert_string_equal(take(fx), HEAD_RESPONSE);
}

/* One request, the exact response, and the connection stays for the next (keep-alive). */
static void test_keep_alive(void **state)
{
    struct fx *fx = *state;
    static const char one[] = OK_RESPONSE("8\r\n\r\npath=/a\n");
    static const char two[] = OK_RESPONSE("10\r\n\r\npath=/b/c\n");
    connect_client(fx);
    client_send(fx, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof one - 1);
    assert_string_equal(take(fx), one);
    assert_int_equal(fx->closes, 0);
    client_send(fx, "GET /b/c?q=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof two - 1);
    assert_string_equal(take(fx), two);
    assert_int_equal(fx->requests, 2);
    /* The client leaves: the layer closes, the app hears of it once. */
    shutdown(fx->peer, SHUT_WR);
    PUMP_UNTIL(fx, fx->closes == 1);
    assert_null(fx->h);
    assert_string_equal(fx->reason, "peer closed");
}

/* Connection: close from the client, and HTTP/1.0 without keep-alive: the response says
 * Connection: close and the connection ends after it. */
static void test_close_after_response(void **state)
{
    struct fx *fx = *state;
    connect_client(fx);
    client_send(fx, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    PUMP_UNTIL(fx, fx->peer_eof);
    assert_string_equal(take(fx), "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 8\r\nConnection: close\r\n\r\npath=/x\n");
    PUMP_UNTIL(fx, fx->closes == 1);
}

static void test_http10(void **state)
{
    struct fx *fx = *state;
    connect_client(fx);
    /* 1.0 with keep-alive asked for: it says so and stays. */
    client_send(fx, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    static const char kept[] = "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 8\r\nConnection: keep-alive\r\n\r\npath=/k\n";
    wait_bytes(fx, sizeof kept - 1);
    assert_string_equal(take(fx), kept);
    assert_int_equal(fx->closes, 0);
    /* 1.0 without it: closed after the response. */
    client_send(fx, "GET /c HTTP/1.0\r\n\r\n");
    PUMP_UNTIL(fx, fx->peer_eof);
    assert_string_equal(take(fx), "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 8\r\nConnection: close\r\n\r\npath=/c\n");
    PUMP_UNTIL(fx, fx->closes == 1);
}

/* Three requests in one write: three responses, in order, byte for byte. */
static void test_pipelining(void **state)
{
    struct fx *fx = *state;
    static const char all[] = OK_RESPONSE("8\r\n\r\npath=/1\n") OK_RESPONSE("8\r\n\r\npath=/2\n")
        OK_RESPONSE("8\r\n\r\npath=/3\n");
    connect_client(fx);
    client_send(fx, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof all - 1);
    assert_string_equal(take(fx), all);
    assert_int_equal(fx->requests, 3);
}

/* One exchange at a time: while the app has not answered the first request, the second one,
 * already received, is not handed to it; once the first is finished, the second runs. */
static void test_pipelining_waits_for_the_answer(void **state)
{
    struct fx *fx = *state;
    fx->hold = 1;
    connect_client(fx);
    client_send(fx, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    PUMP_UNTIL(fx, fx->held);
    for (int i = 0; i < 50; i++)
        pump_once(fx);
    assert_int_equal(fx->heads, 1);
    assert_int_equal(fx->requests, 1);
    assert_int_equal(evbuffer_get_length(fx->got), 0);
    /* The answer to the first, later (as a handler that waited would give it). */
    fx->hold = 0;
    answer(fx, fx->h);
    static const char both[] =
        OK_RESPONSE("11\r\n\r\npath=/slow\n") OK_RESPONSE("11\r\n\r\npath=/next\n");
    wait_bytes(fx, sizeof both - 1);
    assert_string_equal(take(fx), both);
    assert_int_equal(fx->requests, 2);
}

/* A response of unknown length is chunked on HTTP/1.1; HEAD gets the head alone. */
static void test_chunked_and_head(void **state)
{
    struct fx *fx = *state;
    fx->chunked = 1;
    connect_client(fx);
    client_send(fx, "GET /ch HTTP/1.1\r\nHost: t\r\n\r\n");
    static const char chunked[] = "HTTP/1.1 200 OK\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5\r\npath=\r\n4\r\n/ch\n\r\n0\r\n\r\n";
    wait_bytes(fx, sizeof chunked - 1);
    assert_string_equal(take(fx), chunked);
    fx->chunked = 0;
    ask_head(fx);
}

/* A whole response in one call (res:send's path): with nothing queued and no request behind
 * it, head and body are on the socket before the call returns, byte for byte what start +
 * write give; HEAD gets the head alone. Pipelined requests are answered in order, and their
 * responses wait to go out together when the batch ends (none is readable at its send). */
static void test_whole_response(void **state)
{
    struct fx *fx = *state;
    fx->whole = 1;
    connect_client(fx);
    static const char one[] = OK_RESPONSE("8\r\n\r\npath=/w\n");
    client_send(fx, "GET /w HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof one - 1);
    assert_string_equal(take(fx), one);
    /* Readable then: the same bytes with the real Date value, 28 longer than the "X". */
    assert_int_equal(fx->readable[0], (ssize_t)sizeof one - 1 + 28);

    ask_head(fx);
    assert_int_equal(fx->readable[1], (ssize_t)sizeof HEAD_RESPONSE - 1 + 28);

    static const char all[] = OK_RESPONSE("8\r\n\r\npath=/3\n") OK_RESPONSE("8\r\n\r\npath=/4\n")
        OK_RESPONSE("8\r\n\r\npath=/5\n");
    client_send(fx, "GET /3 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /4 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /5 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof all - 1);
    assert_string_equal(take(fx), all);
    assert_int_equal(fx->requests, 5);
    for (int i = 2; i < 5; i++)
        assert_int_equal(fx->readable[i], 0);
}

/* Sends `target` as request number `nth` of a held connection and answers it whole with
 * status, the header lines hdrs (may be NULL) and body; pumps until the client has the
 * response (its Date value counted at 29 bytes). */
static void ask_and_answer(struct fx *fx, const char *target, int nth, int status, const char *hdrs,
                           const char *body, size_t response_len)
{
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    client_send(fx, req);
    PUMP_UNTIL(fx, fx->requests == nth);
    assert_int_equal(
        hs_http_conn_send(fx->h, status, hdrs, hdrs ? strlen(hdrs) : 0, body, strlen(body), 0), 0);
    assert_int_equal(hs_http_conn_finish(fx->h), 0);
    wait_bytes(fx, response_len + 28);
}

/* The status line and Date of a 200 come from a copy made once a second: the Date value is
 * an IMF-fixdate of the current second, and a response that brings its own Date gets no
 * second one (nor does a 404, which is put together piece by piece). */
static void test_date_line(void **state)
{
    struct fx *fx = *state;
    fx->hold = 1;
    connect_client(fx);
    static const char ok[] = "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 2\r\n\r\nok";
    time_t before = time(NULL);
    ask_and_answer(fx, "/d", 1, 200, NULL, "ok", sizeof ok - 1);
    char raw[128] = "";
    size_t n = evbuffer_copyout(fx->got, raw, sizeof raw - 1);
    assert_true(n > 17 + 6 + 29);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(raw + 17 + 6, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_non_null(end);
    assert_memory_equal(end, "\r\nContent-Length", 16);
    time_t t = timegm(&tm);
    assert_true(t >= before - 1 && t <= time(NULL) + 1);
    assert_string_equal(take(fx), ok);

    ask_and_answer(fx, "/e", 2, 200, "Date: Tue, 01 Jan 2030 00:00:00 GMT\r\n", "ok",
                   sizeof ok - 1);
    assert_string_equal(take(fx), ok); /* one Date line: the script's */

    static const char nf[] = "HTTP/1.1 404 Not Found\r\nDate: X\r\nContent-Length: 2\r\n\r\nno";
    ask_and_answer(fx, "/f", 3, 404, NULL, "no", sizeof nf - 1);
    assert_string_equal(take(fx), nf);
}

/* A read that is exactly one request without a body is taken from where it was read (the
 * input buffer never holds it); a request with a body, two pipelined requests, or half a
 * head are not, and go through the input buffer, with the same responses. */
static void test_direct_input(void **state)
{
    struct fx *fx = *state;
    connect_client(fx);
    static const char a[] = OK_RESPONSE("8\r\n\r\npath=/a\n");
    client_send(fx, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof a - 1);
    assert_string_equal(take(fx), a);
    assert_int_equal(fx->offered, 1);
    assert_int_equal(fx->taken, 1);

    static const char p[] = OK_RESPONSE("8\r\n\r\npath=/p\n");
    client_send(fx, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    wait_bytes(fx, sizeof p - 1);
    assert_string_equal(take(fx), p);
    assert_int_equal(fx->body_len, 5);
    assert_int_equal(fx->offered, 2);
    assert_int_equal(fx->taken, 1);

    static const char two[] = OK_RESPONSE("8\r\n\r\npath=/1\n") OK_RESPONSE("8\r\n\r\npath=/2\n");
    client_send(fx, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_bytes(fx, sizeof two - 1);
    assert_string_equal(take(fx), two);
    assert_int_equal(fx->offered, 3);
    assert_int_equal(fx->taken, 1);

    /* Half a head: offered and left; the rest finds it buffered and is not offered. */
    client_send(fx, "GET /s HTTP/1.1\r\nHo");
    PUMP_UNTIL(fx, fx->offered == 4);
    assert_int_equal(fx->heads, 4);
    client_send(fx, "st: t\r\n\r\n");
    static const char split[] = OK_RESPONSE("8\r\n\r\npath=/s\n");
    wait_bytes(fx, sizeof split - 1);
    assert_string_equal(take(fx), split);
    assert_int_equal(fx->offered, 4);
    assert_int_equal(fx->taken, 1);
    assert_int_equal(fx->requests, 5);

    /* A head that parses but whose path climbs above the root: taken, answered 400 by the
     * layer, and the connection lingers until the client is done, then closes. */
    client_send(fx, "GET /a/../../x HTTP/1.1\r\nHost: t\r\n\r\n");
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nDate: X\r\nContent-Type: text/plain; "
                              "charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
                              "Bad Request\n";
    wait_bytes(fx, sizeof bad - 1);
    assert_string_equal(take(fx), bad);
    assert_int_equal(fx->taken, 2);
    assert_int_equal(fx->requests, 5);
    shutdown(fx->peer, SHUT_WR);
    PUMP_UNTIL(fx, fx->closes == 1);
}

/* A header section over max_header_bytes: the layer answers 431 itself, the app never sees
 * the request, and the connection closes (once the client stops sending). */
static void test_oversize_header(void **state)
{
    struct fx *fx = *state;
    char req[1024];
    char big[600];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(req, sizeof req, "GET /big HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    connect_client(fx);
    client_send(fx, req);
    static const char expect[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nDate: X\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Length: 32\r\nConnection: close\r\n\r\n"
                                 "Request Header Fields Too Large\n";
    wait_bytes(fx, sizeof expect - 1);
    shutdown(fx->peer, SHUT_WR);
    PUMP_UNTIL(fx, fx->peer_eof);
    assert_string_equal(take(fx), expect);
    assert_int_equal(fx->heads, 0);
    assert_int_equal(fx->requests, 0);
    PUMP_UNTIL(fx, fx->closes == 1);
}

/* A malformed request line: 400 from the layer, after the good request before it was
 * answered normally. */
static void test_bad_request_after_a_good_one(void **state)
{
    struct fx *fx = *state;
    connect_client(fx);
    client_send(fx, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
    static const char expect[] = OK_RESPONSE("9\r\n\r\npath=/ok\n") "HTTP/1.1 400 Bad Request\r\n"
                                                                    "Date: X\r\n"
                                                                    "Content-Type: text/plain; "
                                                                    "charset=utf-8\r\n"
                                                                    "Content-Length: 12\r\n"
                                                                    "Connection: close\r\n\r\n"
                                                                    "Bad Request\n";
    wait_bytes(fx, sizeof expect - 1);
    shutdown(fx->peer, SHUT_WR);
    PUMP_UNTIL(fx, fx->peer_eof);
    assert_string_equal(take(fx), expect);
    assert_int_equal(fx->requests, 1);
    PUMP_UNTIL(fx, fx->closes == 1);
}

int main(void)
{
    hs_log_set_level(HS_LOG_WARN); /* the access log lines would only be noise here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_alive, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_after_response, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_http10, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_waits_for_the_answer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_chunked_and_head, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_whole_response, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_date_line, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_direct_input, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_oversize_header, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_request_after_a_good_one, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
