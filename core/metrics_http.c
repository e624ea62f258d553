#include "core/metrics_http.h"
#include "core/addr.h"
#include "core/conn.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define METRICS_HEAD_MAX 8192          /* bytes of a request head */
#define METRICS_BODY_MAX (1024 * 1024) /* bytes of one exposition */

struct hs_metrics {
    struct hs_conns *set; /* metrics connections, apart from served ones */
    struct hs_listener *listener;
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

static void metrics_data(struct hs_conn *c, struct evbuffer *in, int eof, void *arg)
{
    struct hs_metrics *m = arg;
    if (hs_conn_is_closing(c))
        return;
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        end = evbuffer_search(in, "\n\n", 2, NULL);
    if (end.pos < 0) {
        if (eof || evbuffer_get_length(in) > METRICS_HEAD_MAX) {
            static const char bad[] = "bad request\n";
            reply(c, "400 Bad Request", "text/plain", bad, sizeof bad - 1, 0);
        }
        return;
    }
    char line[512];
    size_t len =
        evbuffer_get_length(in) < sizeof line - 1 ? evbuffer_get_length(in) : sizeof line - 1;
    evbuffer_copyout(in, line, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    evbuffer_drain(in, evbuffer_get_length(in));
    char method[16], target[400];
    if (sscanf(line, "%15s %399s", method, target) != 2) {
        static const char bad[] = "bad request\n";
        reply(c, "400 Bad Request", "text/plain", bad, sizeof bad - 1, 0);
        return;
    }
    int head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head_only) {
        static const char no[] = "only GET and HEAD\n";
        reply(c, "405 Method Not Allowed", "text/plain", no, sizeof no - 1, 0);
        return;
    }
    target[strcspn(target, "?")] = '\0';
    if (strcmp(target, "/metrics") == 0) {
        char *body = malloc(METRICS_BODY_MAX);
        if (body == NULL) {
            hs_conn_abort(c, "out of memory");
            return;
        }
        size_t blen = m->cb(body, METRICS_BODY_MAX, m->arg);
        reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, blen, head_only);
        free(body);
    } else if (strcmp(target, "/") == 0) {
        static const char home[] = "hotsock metrics: GET /metrics\n";
        reply(c, "200 OK", "text/plain", home, sizeof home - 1, head_only);
    } else {
        static const char nf[] = "not found; try /metrics\n";
        reply(c, "404 Not Found", "text/plain", nf, sizeof nf - 1, head_only);
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
    if (hs_addr_parse(url, &a, &why) != 0 || a.scheme == HS_ADDR_UDP)
        return HS_EBADSPEC;
    struct hs_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    m->cb = cb;
    m->arg = arg;
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    limits.max_connections = 64;
    limits.idle_timeout_ms = 10000;
    m->set = hs_conns_new(base, &limits);
    struct hs_framing f;
    hs_framing_init(&f, HS_FRAMING_RAW);
    int r = m->set ? hs_listener_new(base, m->set, &a, "metrics", &f, &metrics_handler, m, NULL,
                                     &m->listener)
                   : -ENOMEM;
    if (r != 0) {
        hs_conns_free(m->set);
        free(m);
        return r;
    }
    hs_log(HS_LOG_INFO, "metrics %s (GET /metrics)", hs_listener_url(m->listener));
    *out = m;
    return 0;
}

const char *hs_metrics_url(const struct hs_metrics *m)
{
    return hs_listener_url(m->listener);
}

void hs_metrics_free(struct hs_metrics *m)
{
    if (m == NULL)
        return;
    hs_listener_free(m->listener);
    hs_conns_free(m->set);
    free(m);
}
