#include "core/stats.h"

#include <stdio.h>
#include <string.h>

#define STATS_NAME_MAX 64
#define STATS_PATH_MAX 512

struct hs_stats_row {
    int used;                   /* the slot holds a row */
    unsigned pins;              /* versions pointing here; a pinned row is never recycled */
    uint64_t seq;               /* creation order, for recycling the oldest */
    unsigned service;           /* the service's place in the config, from 1 (the key) */
    char path[STATS_PATH_MAX];  /* the script's path */
    char name[STATS_NAME_MAX];  /* its label */
    unsigned generation;        /* 1, 2, ... */
    uint64_t open;              /* connections open now */
    uint64_t total;             /* connections ever opened */
    uint64_t bytes_in;          /* bytes of closed connections and datagrams received; an adopted
                                 * connection's bytes before its move are subtracted (modulo 2^64)
                                 * until it closes, see hs_stats_conn_move */
    uint64_t bytes_out;         /* the same, sent */
    uint64_t messages;          /* frames, requests and datagrams handed to the script */
    uint64_t errors;            /* connections that ended for a reason other than an orderly one */
    uint64_t handler_errors;    /* callbacks that raised */
    uint64_t live_in, live_out; /* bytes of open connections, filled for a snapshot */
};

/* One table per process: a process has one event loop and one Lua state. */
static struct hs_stats_row rows[HS_STATS_MAX_ROWS];
static uint64_t next_seq;

struct hs_stats_row *hs_stats_row_get(unsigned service, const char *path, const char *name,
                                      unsigned generation)
{
    struct hs_stats_row *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < HS_STATS_MAX_ROWS; i++) {
        struct hs_stats_row *r = &rows[i];
        if (!r->used) {
            if (free_slot == NULL)
                free_slot = r;
            continue;
        }
        if (r->generation == generation && r->service == service) {
            r->pins++;
            return r;
        }
        if (r->pins == 0 && (oldest == NULL || r->seq < oldest->seq))
            oldest = r;
    }
    struct hs_stats_row *r = free_slot ? free_slot : oldest;
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof *r);
    r->used = 1;
    r->pins = 1;
    r->seq = next_seq++;
    r->service = service;
    snprintf(r->path, sizeof r->path, "%s", path);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->generation = generation;
    return r;
}

void hs_stats_row_release(struct hs_stats_row *r)
{
    if (r && r->pins > 0)
        r->pins--;
}

void hs_stats_conn_open(struct hs_stats_row *r)
{
    if (r == NULL)
        return;
    r->open++;
    r->total++;
}

void hs_stats_conn_move(struct hs_stats_row *from, struct hs_stats_row *to, uint64_t bytes_in,
                        uint64_t bytes_out)
{
    if (from == to)
        return;
    /* The bytes so far stay with the version that moved them, as its messages do: from gets
     * them now, and to gets back what its share at the close (or live count) would add. The
     * subtraction wraps while the connection is open; the sum printed is always right. */
    if (from) {
        if (from->open > 0)
            from->open--;
        from->bytes_in += bytes_in;
        from->bytes_out += bytes_out;
    }
    if (to) {
        to->open++;
        to->bytes_in -= bytes_in;
        to->bytes_out -= bytes_out;
    }
}

int hs_stats_reason_orderly(const char *reason)
{
    /* A reset is the client's way of closing: neither a protocol error, nor a timeout, nor a
     * limit of ours. */
    static const char *const ok[] = {
        "peer closed",        "closed",        "shutdown", "idle timeout",
        "keep-alive timeout", "handler error", "reset",    NULL};
    for (size_t i = 0; ok[i]; i++)
        if (strcmp(reason, ok[i]) == 0)
            return 1;
    return 0;
}

void hs_stats_conn_closed(struct hs_stats_row *r, const char *reason, uint64_t bytes_in,
                          uint64_t bytes_out)
{
    if (r == NULL)
        return;
    if (r->open > 0)
        r->open--;
    r->bytes_in += bytes_in;
    r->bytes_out += bytes_out;
    if (reason && !hs_stats_reason_orderly(reason))
        r->errors++;
}

void hs_stats_message(struct hs_stats_row *r, uint64_t bytes_in)
{
    if (r == NULL)
        return;
    r->messages++;
    r->bytes_in += bytes_in;
}

void hs_stats_bytes_out(struct hs_stats_row *r, uint64_t bytes)
{
    if (r)
        r->bytes_out += bytes;
}

void hs_stats_handler_error(struct hs_stats_row *r)
{
    if (r)
        r->handler_errors++;
}

void hs_stats_live_reset(void)
{
    for (size_t i = 0; i < HS_STATS_MAX_ROWS; i++)
        rows[i].live_in = rows[i].live_out = 0;
}

void hs_stats_live_add(struct hs_stats_row *r, uint64_t bytes_in, uint64_t bytes_out)
{
    if (r == NULL)
        return;
    r->live_in += bytes_in;
    r->live_out += bytes_out;
}

void hs_stats_escape(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (n == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 <= n; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '%' || *p == '=') {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void hs_stats_unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Row order: by service, then generation, so a script's versions are listed together and in
 * order whatever the order they were first counted in. */
static int row_before(const struct hs_stats_row *a, const struct hs_stats_row *b)
{
    if (a->service != b->service)
        return a->service < b->service;
    return a->generation < b->generation;
}

size_t hs_stats_write(char *out, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return 0;
    out[0] = '\0';
    const struct hs_stats_row *last = NULL;
    for (;;) {
        const struct hs_stats_row *r = NULL;
        for (size_t i = 0; i < HS_STATS_MAX_ROWS; i++)
            if (rows[i].used && (last == NULL || row_before(last, &rows[i])) &&
                (r == NULL || row_before(&rows[i], r)))
                r = &rows[i];
        if (r == NULL)
            break;
        last = r;
        char name[3 * STATS_NAME_MAX], path[3 * STATS_PATH_MAX];
        hs_stats_escape(r->name, name, sizeof name);
        hs_stats_escape(r->path, path, sizeof path);
        int w = snprintf(
            out + used, n - used,
            "version service=%u name=%s path=%s generation=%u open=%llu total=%llu "
            "bytes_in=%llu bytes_out=%llu messages=%llu errors=%llu "
            "handler_errors=%llu\n",
            r->service, name, path, r->generation, (unsigned long long)r->open,
            (unsigned long long)r->total, (unsigned long long)(r->bytes_in + r->live_in),
            (unsigned long long)(r->bytes_out + r->live_out), (unsigned long long)r->messages,
            (unsigned long long)r->errors, (unsigned long long)r->handler_errors);
        if (w < 0 || used + (size_t)w >= n)
            break;
        used += (size_t)w;
    }
    return used;
}

void hs_stats_reset(void)
{
    memset(rows, 0, sizeof rows);
    next_seq = 0;
}
