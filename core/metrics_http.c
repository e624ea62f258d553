#include "core/metrics_http.h"
#include "core/addr.h"
#include "core/admin.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/http.h"
#include "core/listener.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define METRICS_HEAD_MAX 8192          /* bytes of a request head */
#define METRICS_BODY_MAX (1024 * 1024) /* bytes of one exposition */
#define METRICS_MAX_HEADERS 32         /* field lines of a request head */
#define METRICS_MAX_CONNS 64           /* metrics connections open at once */
#define METRICS_IDLE_MS 10000          /* a silent metrics connection is closed after this */

struct hs_metrics {
    struct hs_admin *admin; /* the listener and its connections, apart from served ones */
    hs_metrics_cb cb;
    void *arg;
};

static void reply(struct hs_conn *c, const char *status, const char *type, const char *body,
                  size_t len, int head_only)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, len);
    hs_conn_send(c, head, (size_t)n);
    if (!head_only)
        hs_conn_send(c, body, len);
    hs_conn_close(c, "closed");
}

static void reply_text(struct hs_conn *c, const char *status, const char *text, int head_only)
{
    reply(c, status, "text/plain", text, strlen(text), head_only);
}

/* The request head goes through the server's own HTTP parser (core/http.c), with its limits
 * and refusals; only GET and HEAD of / and /metrics are answered, one request a connection. */
static void metrics_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    struct hs_metrics *m = arg;
    if (hs_conn_is_closing(c))
        return;
    size_t avail = evbuffer_get_length(in);
    size_t len = avail < METRICS_HEAD_MAX ? avail : METRICS_HEAD_MAX;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    struct hs_http_header headers[METRICS_MAX_HEADERS];
    struct hs_http_request req = {.headers = headers, .headers_cap = METRICS_MAX_HEADERS};
    struct hs_http_limits limits = {.max_request_line = METRICS_HEAD_MAX,
                                    .max_header_bytes = METRICS_HEAD_MAX,
                                    .max_headers = METRICS_MAX_HEADERS};
    int r = hs_http_parse_request(buf, len, 0, &limits, &req);
    if (r == HS_AGAIN && !eof && avail < METRICS_HEAD_MAX)
        return;
    if (r == HS_AGAIN) {
        reply_text(c, eof ? "400 Bad Request" : "431 Request Header Fields Too Large",
                   "bad request\n", 0);
        return;
    }
    if (r < 0) {
        char status[64];
        snprintf(status, sizeof status, "%d %s", req.status ? req.status : 400,
                 req.status == 414   ? "URI Too Long"
                 : req.status == 431 ? "Request Header Fields Too Large"
                 : req.status == 501 ? "Not Implemented"
                 : req.status == 505 ? "HTTP Version Not Supported"
                                     : "Bad Request");
        reply_text(c, status, "bad request\n", 0);
        return;
    }
    int head_only = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
    int get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
    int is_metrics = req.path_len == 8 && memcmp(req.path, "/metrics", 8) == 0;
    int is_root = req.path_len == 1 && req.path[0] == '/';
    evbuffer_drain(in, avail);
    if (!get && !head_only) {
        reply_text(c, "405 Method Not Allowed", "only GET and HEAD\n", 0);
    } else if (is_metrics) {
        char *body = malloc(METRICS_BODY_MAX);
        if (body == NULL) {
            hs_conn_abort(c, "out of memory");
            return;
        }
        size_t blen = m->cb(body, METRICS_BODY_MAX, m->arg);
        reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, blen, head_only);
        free(body);
    } else if (is_root) {
        reply_text(c, "200 OK", "hotsock metrics: GET /metrics\n", head_only);
    } else {
        reply_text(c, "404 Not Found", "not found; try /metrics\n", head_only);
    }
}

static void metrics_close(struct hs_conn *c, const char *reason, void *arg)
{
    HS_UNUSED(c);
    HS_UNUSED(reason);
    HS_UNUSED(arg);
}

static const struct hs_conn_handler metrics_handler = {
    .on_data = metrics_data,
    .on_close = metrics_close,
};

int hs_metrics_new(struct event_base *base, const char *url, hs_metrics_cb cb, void *arg,
                   struct hs_metrics **out)
{
    struct hs_addr a;
    const char *why;
    if (hs_addr_parse(url, &a, &why) != 0 || a.scheme == HS_ADDR_UDP ||
        a.scheme == HS_ADDR_UNIXGRAM)
        return HS_EBADSPEC;
    struct hs_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    m->cb = cb;
    m->arg = arg;
    struct hs_framing f;
    hs_framing_init(&f, HS_FRAMING_RAW);
    int r = hs_admin_new(base, &a, -1, "metrics", &f, METRICS_MAX_CONNS, METRICS_IDLE_MS,
                         &metrics_handler, m, &m->admin);
    if (r != 0) {
        free(m);
        return r;
    }
    hs_log(HS_LOG_INFO, "metrics %s (GET /metrics)", hs_metrics_url(m));
    *out = m;
    return 0;
}

const char *hs_metrics_url(const struct hs_metrics *m)
{
    return hs_listener_url(hs_admin_listener(m->admin));
}

void hs_metrics_free(struct hs_metrics *m)
{
    if (m == NULL)
        return;
    hs_admin_free(m->admin);
    free(m);
}
