/* HTTP/1.x responses (core/http_conn.h): the status line and the framing of a response the
 * app writes (Content-Length, chunked, HEAD), files, upgrades, and the access log line each
 * exchange ends with. The request side is core/http_conn.c. */
#include "core/http_conn.h"
#include "core/http_conn_internal.h"
#include "core/http_file.h"
#include "core/hs.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

void hs__http_access_log(struct hs_http_conn *h, int status, uint64_t bytes, const char *why)
{
    if (HS_LOG_INFO < hs__log_level)
        return; /* the access log is off: skip the clock and the formatting too */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - h->t_start.tv_sec) * 1e3 +
                (double)(now.tv_nsec - h->t_start.tv_nsec) / 1e6;
    if (!h->active)
        ms = 0;
    char line[sizeof h->method + sizeof h->target + 16] = "-";
    if (strcmp(h->method, "-") != 0)
        snprintf(line, sizeof line, "%s %s HTTP/1.%d", h->method, h->target, h->minor);
    hs_log(HS_LOG_INFO, "conn#%llu %s \"%s\" %d %llu %.1fms%s%s%s",
           h->c ? (unsigned long long)hs_conn_id(h->c) : 0ULL, h->c ? hs_conn_peer(h->c) : "-",
           line, status, (unsigned long long)bytes, ms, why ? " (" : "", why ? why : "",
           why ? ")" : "");
}

int hs__http_send_pend(struct hs_http_conn *h)
{
    if (evbuffer_get_length(h->pend) == 0)
        return 0;
    return hs_conn_send_buffer(h->c, h->pend);
}

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
};

const char *hs_http_reason(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Unknown";
}

/* The Date field value, formatted once per second, and with it the start of a 200 response
 * up to the end of its Date line (most responses begin so: one copy instead of the status
 * line and the field put together piece by piece). One loop per process: a static cache. */
#define OK_START "HTTP/1.1 200 OK\r\nDate: "
static char ok_head[sizeof OK_START - 1 + 29 + 2];

const char *hs__http_now(struct hs_http_conn *h)
{
    static char buf[30];
    static time_t at = -1;
    struct timeval tv;
    event_base_gettimeofday_cached(h->base, &tv);
    if (tv.tv_sec != at) {
        at = tv.tv_sec;
        hs_http_date_format(at, buf);
        memcpy(ok_head, OK_START, sizeof OK_START - 1);
        memcpy(ok_head + sizeof OK_START - 1, buf, 29);
        memcpy(ok_head + sizeof OK_START - 1 + 29, "\r\n", 2);
    }
    return buf;
}

/* 1 when the caller's header block has a field called name (lowercase, with the colon). */
static int has_field(const char *hdrs, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i + n <= len;) {
        if (strncasecmp(hdrs + i, name, n) == 0)
            return 1;
        const char *nl = memchr(hdrs + i, '\n', len - i);
        if (nl == NULL)
            break;
        i = (size_t)(nl - hdrs) + 1;
    }
    return 0;
}

/* Appends n bytes at p; returns the end. */
static char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define put_lit(p, lit) put_mem((p), (lit), sizeof(lit) - 1)

/* Appends the decimal digits of v (at most 20) at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Checks a response may start and records how it is framed; 0, HS_ECLOSED or -EINVAL. */
HS_HOT static int resp_begin(struct hs_http_conn *h, int status, int64_t length, int close)
{
    if (http_dead(h))
        return HS_ECLOSED;
    if (!h->active || h->resp != RESP_NONE || status < 200 || status > 599)
        return -EINVAL;
    h->status = status;
    h->length = length;
    h->no_body = h->head_req || status == 204 || status == 304;
    h->chunked_out = 0;
    if (close || !h->keep)
        h->close_after = 1;
    /* A body left unread may not be skippable: then the connection must end with this. */
    if (h->bstate == BODY_WAIT || h->bstate == BODY_PIPE)
        if (h->chunked || h->body_left > h->set.max_body || (h->expect && !h->sent_continue))
            h->close_after = 1;
    if (length < 0 && status != 204 && status != 304) {
        if (h->minor >= 1)
            h->chunked_out = 1;
        else
            h->close_after = 1; /* HTTP/1.0: the end of the body is the end of the connection */
    }
    return 0;
}

/* The head is assembled with memcpy, not by printf (on a small static file that was a tenth
 * of the request's instructions), in one stack buffer when the caller's lines fit beside the
 * two small pieces around them. HEAD_TAIL_MAX bounds the piece after the lines. */
enum { HEAD_MAX = 512, HEAD_TAIL_MAX = 96 };

/* The status line and Date, at line (HEAD_MAX bytes); returns the end. */
HS_HOT static char *head_first(struct hs_http_conn *h, int status, const char *headers, size_t len,
                               char *line)
{
    int date = headers == NULL || !has_field(headers, len, "date:");
    if (status == 200 && date) {
        hs__http_now(h); /* brings ok_head up to this second */
        return put_mem(line, ok_head, sizeof ok_head);
    }
    char *p = put_lit(line, "HTTP/1.1 ");
    const char *reason = hs_http_reason(status);
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put_mem(p, reason, strlen(reason));
    p = put_lit(p, "\r\n");
    if (date) {
        p = put_lit(p, "Date: ");
        p = put_mem(p, hs__http_now(h), 29);
        p = put_lit(p, "\r\n");
    }
    return p;
}

/* Whether len bytes of the caller's lines fit after the first piece, which ends at p. */
static int head_fits(const char *line, const char *p, size_t len)
{
    return len <= HEAD_MAX - HEAD_TAIL_MAX - (size_t)(p - line);
}

/* The framing fields and the blank line, at p; returns the end. */
HS_HOT static char *head_last(const struct hs_http_conn *h, char *p)
{
    if (h->status != 204 && h->status != 304) {
        if (h->length >= 0) {
            p = put_lit(p, "Content-Length: ");
            p = put_u64(p, (uint64_t)h->length);
            p = put_lit(p, "\r\n");
        } else if (h->chunked_out) {
            p = put_lit(p, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (h->close_after)
        p = put_lit(p, "Connection: close\r\n");
    else if (h->minor == 0)
        p = put_lit(p, "Connection: keep-alive\r\n");
    return put_lit(p, "\r\n");
}

/* The rest of a head that fits the stack buffer: the caller's lines at p (they fit:
 * head_fits), the framing fields and the blank line. Marks the response started; returns the
 * end. */
static char *head_rest(struct hs_http_conn *h, char *p, const char *headers, size_t len)
{
    if (len > 0)
        p = put_mem(p, headers, len);
    h->resp = RESP_STARTED;
    return head_last(h, p);
}

/* Queues the head begun at line (its first piece ends at p), the caller's lines and the
 * framing fields into h->pend, and marks the response started. */
static void head_queue(struct hs_http_conn *h, char *line, char *p, const char *headers, size_t len)
{
    if (!head_fits(line, p, len)) {
        /* Each evbuffer_add is ~120 instructions: pieces only for a head this large. */
        evbuffer_add(h->pend, line, (size_t)(p - line));
        evbuffer_add(h->pend, headers, len);
        p = line;
        len = 0;
    }
    p = head_rest(h, p, headers, len);
    evbuffer_add(h->pend, line, (size_t)(p - line));
}

int hs_http_conn_start(struct hs_http_conn *h, int status, const char *headers, size_t len,
                       int64_t length, int close)
{
    int r = resp_begin(h, status, length, close);
    if (r != 0)
        return r;
    char line[HEAD_MAX];
    head_queue(h, line, head_first(h, status, headers, len, line), headers, len);
    return 0;
}

HS_HOT int hs_http_conn_send(struct hs_http_conn *h, int status, const char *headers, size_t len,
                             const void *body, size_t blen, int close)
{
    int r = resp_begin(h, status, (int64_t)blen, close);
    if (r != 0)
        return r;
    char line[HEAD_MAX], *p = head_first(h, status, headers, len, line);
    /* The head and the body go to the connection as one send of two pieces, which writes
     * them through at once when nothing is queued (no copy into an output buffer, no flush
     * later), unless output is pending here or a pipelined request waits behind this one:
     * then the response is queued as start + write queue it, and a batch goes out together
     * at its end. A head too large for the stack buffer is queued in pieces the same way. */
    if (evbuffer_get_length(h->pend) > 0 || evbuffer_get_length(h->in) > 0 ||
        !head_fits(line, p, len)) {
        head_queue(h, line, p, headers, len);
        return hs_http_conn_write(h, body, blen);
    }
    p = head_rest(h, p, headers, len);
    h->written = blen;
    struct iovec iov[2] = {{line, (size_t)(p - line)}, {(void *)(uintptr_t)body, blen}};
    h->refs++;
    r = hs_conn_sendv(h->c, iov, h->no_body || blen == 0 ? 1 : 2);
    if (r == HS_EFULL)
        h->written = 0; /* nothing of it was queued */
    hs__http_release(h);
    return r;
}

static int check_write(struct hs_http_conn *h, uint64_t len)
{
    if (http_dead(h))
        return HS_ECLOSED;
    if (!h->active || h->resp != RESP_STARTED)
        return -EINVAL;
    if (h->length >= 0 && h->written + len > (uint64_t)h->length)
        return -EINVAL;
    return 0;
}

int hs_http_conn_write(struct hs_http_conn *h, const void *data, size_t len)
{
    int r = check_write(h, len);
    if (r != 0)
        return r;
    h->written += len;
    if (h->no_body || len == 0) /* a zero-size chunk would end a chunked body */
        return 0;
    if (hs_conn_pending(h->c) + evbuffer_get_length(h->pend) + len > HS_DEFAULT_OUT_HARD) {
        h->written -= len;
        return HS_EFULL;
    }
    if (h->chunked_out)
        evbuffer_add_printf(h->pend, "%zx\r\n", len);
    evbuffer_add(h->pend, data, len);
    if (h->chunked_out)
        evbuffer_add(h->pend, "\r\n", 2);
    h->refs++;
    r = hs__http_send_pend(h);
    hs__http_release(h);
    return r;
}

int hs_http_conn_write_file(struct hs_http_conn *h, struct evbuffer_file_segment *seg, int fd,
                            uint64_t offset, uint64_t len)
{
    int r = check_write(h, len);
    if (r == 0 && h->length < 0)
        r = -EINVAL;
    if (r != 0 || h->no_body || len == 0) {
        if (r == 0)
            h->written += len;
        return r;
    }
    h->refs++;
    /* The head (and anything else pending) goes out with the file's first bytes, not alone. */
    r = evbuffer_get_length(h->pend) > 0 ? hs_conn_send_before_file(h->c, h->pend) : 0;
    if (r == 0 && !http_gone(h)) {
        h->written += len;
        r = hs_conn_send_file(h->c, seg, fd, offset, len);
    } else {
        r = r ? r : HS_ECLOSED;
    }
    hs__http_release(h);
    return r;
}

HS_HOT int hs_http_conn_finish(struct hs_http_conn *h)
{
    if (http_dead(h))
        return HS_ECLOSED;
    if (!h->active || h->resp != RESP_STARTED)
        return -EINVAL;
    h->refs++;
    if (h->chunked_out && !h->no_body)
        evbuffer_add(h->pend, "0\r\n\r\n", 5);
    int r = hs__http_send_pend(h);
    int short_body = h->length >= 0 && h->written < (uint64_t)h->length;
    h->resp = RESP_DONE;
    hs__http_access_log(h, h->status, h->no_body ? 0 : h->written,
                        short_body ? "short body" : NULL);
    if (http_gone(h)) {
        r = HS_ECLOSED;
    } else if (r != 0 || short_body) {
        h->active = 0;
        hs_conn_close(h->c, short_body ? "short response" : "output buffer full");
    } else if (h->close_after) {
        hs__http_close_after(h, "closed");
    } else if (h->running == 0) {
        http_kick(h); /* the next request may be waiting already */
    }
    hs__http_release(h);
    return r;
}

int hs_http_conn_is_open(const struct hs_http_conn *h)
{
    return !http_dead(h);
}

struct hs_conn *hs_http_conn_upgrade(struct hs_http_conn *h, const char *headers, size_t len)
{
    if (http_dead(h) || !h->active || h->resp != RESP_NONE || h->bstate != BODY_NONE)
        return NULL;
    struct hs_conn *c = h->c;
    h->refs++;
    evbuffer_add_printf(h->pend, "HTTP/1.1 101 Switching Protocols\r\n");
    if (len > 0)
        evbuffer_add(h->pend, headers, len);
    evbuffer_add(h->pend, "\r\n", 2);
    h->resp = RESP_DONE;
    hs__http_access_log(h, 101, 0, NULL);
    if (hs__http_send_pend(h) != 0 || http_gone(h)) {
        hs__http_release(h);
        return NULL;
    }
    /* From here the connection is not HTTP's: no timer, no reading state, no data. */
    h->active = 0;
    h->closed = 1;
    event_del(h->timer);
    event_del(h->kick);
    h->app->on_close(h, "upgraded", h->app_data);
    h->c = NULL;
    hs_conn_set_data(c, NULL);
    hs__http_release(h);
    return c;
}

int hs_http_conn_is_head(const struct hs_http_conn *h)
{
    return h->head_req;
}
