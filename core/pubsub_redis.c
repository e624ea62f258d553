#include "core/pubsub_redis.h"
#include "core/addr.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/pubsub.h"
#include "core/resp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define TAG_LEN 16        /* hex digits of the instance id before each message */
#define DROP_LOG_SECS 1.0 /* at most one "not sent" line this often */

enum link_state {
    LINK_IDLE,       /* never used (a publisher before its first message) */
    LINK_CONNECTING, /* connect in progress; output waits in the bufferevent */
    LINK_UP,         /* connected */
    LINK_DOWN,       /* lost; the retry timer is armed */
};

/* One connection to Redis. */
struct link {
    struct hs_pubsub_redis *r;
    int subscriber; /* PSUBSCRIBE connection (worker 1) rather than a publisher */
    enum link_state state;
    struct bufferevent *bev;     /* NULL unless CONNECTING or UP */
    struct event *retry;         /* evtimer: reconnect after delay_ms */
    unsigned delay_ms;           /* next retry delay, HS_PUBSUB_REDIS_RETRY_MIN..MAX_MS */
    unsigned long long inflight; /* publisher: PUBLISHes written whose reply has not come */
    size_t need;                 /* bytes of input worth parsing again (hs_resp_parse) */
    int complained;              /* a failure was logged since the last connect */
};

struct hs_pubsub_redis {
    struct event_base *base;
    struct hs_pubsub *ps;
    struct sockaddr_storage ss; /* Redis, resolved at start */
    socklen_t sslen;
    char where[HS_ADDR_TEXT];                    /* HOST:PORT for the log */
    char prefix[HS_PUBSUB_REDIS_MAX_PREFIX + 1]; /* channel prefix, NUL-terminated */
    size_t prefix_len;
    char tag[TAG_LEN + 1]; /* this server's instance id in hex */
    struct link pub, sub;  /* sub is used in worker 1 only */
    struct hs_pubsub_redis_counts c;
    unsigned long long drops_logged; /* c.dropped already reported */
    double drop_logged_at;           /* monotonic seconds of the last report */
    const char *drop_why;            /* why the latest copy was dropped */
};

static struct hs_pubsub_redis *default_link;

int hs_pubsub_redis_parse(const char *url, struct hs_addr *a, char *prefix, size_t n,
                          const char **why)
{
    static const char scheme[] = "redis://";
    const char *w = NULL;
    struct hs_addr tmp;
    char tcp[HS_ADDR_MAX_URL];
    char pfx[HS_PUBSUB_REDIS_MAX_PREFIX + 1] = HS_PUBSUB_REDIS_DEFAULT_PREFIX;
    if (a == NULL)
        a = &tmp;
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        w = "a pub/sub URL must start with redis://";
        goto bad;
    }
    size_t base = hs_addr_base_len(url) - (sizeof scheme - 1);
    if (base + 7 >= sizeof tcp) {
        w = "the pub/sub URL is too long";
        goto bad;
    }
    snprintf(tcp, sizeof tcp, "tcp://%.*s", (int)base, url + sizeof scheme - 1);
    if (hs_addr_parse(tcp, a, &w) != 0)
        goto bad;
    if (a->host[0] == '\0' || a->port == 0) {
        w = "a pub/sub URL needs a host and a port: redis://HOST:PORT";
        goto bad;
    }
    const char *cur = hs_addr_query(url);
    char key[32], val[HS_ADDR_MAX_OPT];
    int r;
    while ((r = hs_addr_option_next(&cur, key, sizeof key, val, sizeof val)) == 1) {
        if (strcmp(key, "prefix") != 0) {
            w = "the only pub/sub URL option is prefix=NAME";
            goto bad;
        }
        size_t vl = strlen(val);
        if (vl == 0 || vl > HS_PUBSUB_REDIS_MAX_PREFIX) {
            w = "the pub/sub prefix must be 1 to 64 bytes";
            goto bad;
        }
        memcpy(pfx, val, vl + 1);
    }
    if (r != 0) {
        w = "malformed option in the pub/sub URL";
        goto bad;
    }
    if (prefix && n)
        snprintf(prefix, n, "%s", pfx);
    return 0;
bad:
    if (why)
        *why = w ? w : "bad pub/sub URL";
    return HS_EBADSPEC;
}

static void link_connect(struct link *l);

/* Reports drops at most once a second, so a Redis outage under load logs a line a second. */
static void note_drops(struct hs_pubsub_redis *r, unsigned long long n, const char *why)
{
    r->c.dropped += n;
    r->drop_why = why;
    if (!hs_log_due(&r->drop_logged_at, DROP_LOG_SECS))
        return;
    hs_log(HS_LOG_WARN,
           "pubsub: %llu message(s) not sent to Redis at %s (%s); local delivery unaffected "
           "(%llu in all)",
           r->c.dropped - r->drops_logged, r->where, r->drop_why, r->c.dropped);
    r->drops_logged = r->c.dropped;
}

/* Drops the connection and arms the retry. What was written and not acknowledged is counted
 * as lost: Redis may or may not have passed it on. */
static void link_lost(struct link *l, const char *why)
{
    struct hs_pubsub_redis *r = l->r;
    if (!l->complained) {
        hs_log(HS_LOG_WARN, "pubsub: Redis at %s %s: %s; retrying", r->where,
               l->subscriber ? "(subscriber)" : "(publisher)", why);
        l->complained = 1;
    }
    if (l->bev)
        bufferevent_free(l->bev);
    l->bev = NULL;
    if (l->inflight)
        note_drops(r, l->inflight, "connection lost");
    l->inflight = 0;
    l->need = 0;
    l->state = LINK_DOWN;
    struct timeval tv = {l->delay_ms / 1000, (l->delay_ms % 1000) * 1000};
    evtimer_add(l->retry, &tv);
    l->delay_ms = l->delay_ms * 2 > HS_PUBSUB_REDIS_RETRY_MAX_MS ? HS_PUBSUB_REDIS_RETRY_MAX_MS
                                                                 : l->delay_ms * 2;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    HS_UNUSED(fd);
    HS_UNUSED(what);
    link_connect(arg);
}

/* A pmessage from the subscriber: another server's message, for this server's workers. */
static void on_pmessage(struct hs_pubsub_redis *r, const struct hs_resp_reply *rep)
{
    const struct hs_resp_item *ch = &rep->elem[2], *data = &rep->elem[3];
    if (ch->type != HS_RESP_BULK || data->type != HS_RESP_BULK || ch->len <= r->prefix_len ||
        memcmp(ch->str, r->prefix, r->prefix_len) != 0 || data->len < TAG_LEN)
        return; /* not one of ours: someone else publishing under the prefix */
    if (memcmp(data->str, r->tag, TAG_LEN) == 0)
        return; /* our own, delivered here already */
    const char *name = ch->str + r->prefix_len;
    size_t nlen = ch->len - r->prefix_len;
    int st = hs_pubsub_publish(r->ps, name, nlen, data->str + TAG_LEN, data->len - TAG_LEN);
    if (st == -E2BIG)
        hs_log(HS_LOG_WARN,
               "pubsub: a %zu-byte message from Redis on '%.*s' is over "
               "--max-publish; not delivered",
               data->len - TAG_LEN, (int)(nlen > 64 ? 64 : nlen), name);
    else
        r->c.received++;
}

/* One reply. Returns 0, or -1 when the connection must go (it was dropped here). */
static int on_reply(struct link *l, const struct hs_resp_reply *rep)
{
    struct hs_pubsub_redis *r = l->r;
    if (rep->v.type == HS_RESP_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "it answered %.*s", (int)(rep->v.len > 120 ? 120 : rep->v.len),
                 rep->v.str);
        if (l->subscriber) {
            link_lost(l, why);
            return -1;
        }
        /* A refused PUBLISH (a read-only replica, an ACL): that message is lost. */
        if (l->inflight)
            l->inflight--;
        note_drops(r, 1, "Redis refused it");
        return 0;
    }
    if (!l->subscriber) {
        if (l->inflight)
            l->inflight--;
        l->delay_ms = HS_PUBSUB_REDIS_RETRY_MIN_MS;
        return 0;
    }
    if (rep->v.type != HS_RESP_ARRAY || rep->n < 3 || rep->elem[0].type != HS_RESP_BULK)
        return 0;
    const struct hs_resp_item *kind = &rep->elem[0];
    if (rep->n == 4 && kind->len == 8 && memcmp(kind->str, "pmessage", 8) == 0) {
        on_pmessage(r, rep);
    } else if (kind->len == 10 && memcmp(kind->str, "psubscribe", 10) == 0) {
        l->delay_ms = HS_PUBSUB_REDIS_RETRY_MIN_MS;
        l->complained = 0;
        hs_log(HS_LOG_INFO, "pubsub: subscribed to %s* at Redis %s", r->prefix, r->where);
    }
    return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0 || len < l->need)
            return;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
        struct hs_resp_reply rep;
        int n = hs_resp_parse(p, len, &rep, &l->need);
        if (n == HS_AGAIN)
            return;
        if (n < 0) {
            link_lost(l, "it sent a reply hotsock cannot read");
            return;
        }
        l->need = 0;
        /* The reply's strings point into the buffer: drain only after handling it. */
        int gone = on_reply(l, &rep);
        if (gone)
            return;
        evbuffer_drain(in, (size_t)n);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct link *l = arg;
    struct hs_pubsub_redis *r = l->r;
    HS_UNUSED(bev);
    if (what & BEV_EVENT_CONNECTED) {
        l->state = LINK_UP;
        bufferevent_set_timeouts(l->bev, NULL, NULL);
        if (!l->subscriber) {
            if (l->complained)
                hs_log(HS_LOG_INFO, "pubsub: publishing to Redis at %s again", r->where);
            l->complained = 0;
        }
        return;
    }
    char why[128];
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "no answer within %d ms", HS_PUBSUB_REDIS_CONNECT_TIMEOUT_MS);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "connection closed");
    else
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    link_lost(l, why);
}

static void link_connect(struct link *l)
{
    struct hs_pubsub_redis *r = l->r;
    l->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (l->bev == NULL) {
        link_lost(l, "out of memory");
        return;
    }
    bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
    struct timeval tv = {HS_PUBSUB_REDIS_CONNECT_TIMEOUT_MS / 1000,
                         (HS_PUBSUB_REDIS_CONNECT_TIMEOUT_MS % 1000) * 1000};
    bufferevent_set_timeouts(l->bev, NULL, &tv);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    l->state = LINK_CONNECTING;
    l->need = 0;
    if (l->subscriber) {
        /* Queued now, written once connected. */
        evbuffer_add_printf(bufferevent_get_output(l->bev),
                            "*2\r\n$10\r\nPSUBSCRIBE\r\n$%zu\r\n%s*\r\n", r->prefix_len + 1,
                            r->prefix);
    }
    if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&r->ss, (int)r->sslen) != 0)
        link_lost(l, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

struct hs_pubsub_redis *hs_pubsub_redis_start(struct event_base *base, const char *url,
                                              struct hs_pubsub *ps, char *err, size_t n)
{
    struct hs_addr a;
    const char *why;
    struct hs_pubsub_redis *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (hs_pubsub_redis_parse(url, &a, r->prefix, sizeof r->prefix, &why) != 0) {
        snprintf(err, n, "--pubsub %s: %s", url, why);
        free(r);
        return NULL;
    }
    if (hs_addr_resolve(&a, &r->ss, &r->sslen) != 0) {
        snprintf(err, n, "--pubsub %s: cannot resolve %s", url, a.host);
        free(r);
        return NULL;
    }
    r->base = base;
    r->ps = ps;
    r->prefix_len = strlen(r->prefix);
    hs_addr_format((struct sockaddr *)&r->ss, r->sslen, r->where, sizeof r->where);
    snprintf(r->tag, sizeof r->tag, "%016" PRIx64, hs_pubsub_instance(ps));
    struct link *ls[2] = {&r->pub, &r->sub};
    for (int i = 0; i < 2; i++) {
        ls[i]->r = r;
        ls[i]->subscriber = i == 1;
        ls[i]->delay_ms = HS_PUBSUB_REDIS_RETRY_MIN_MS;
        ls[i]->retry = evtimer_new(base, retry_cb, ls[i]);
        if (ls[i]->retry == NULL) {
            snprintf(err, n, "out of memory");
            hs_pubsub_redis_free(r);
            return NULL;
        }
    }
    if (hs_pubsub_self(ps) == 1)
        link_connect(&r->sub);
    default_link = r;
    return r;
}

void hs_pubsub_redis_free(struct hs_pubsub_redis *r)
{
    if (r == NULL)
        return;
    struct link *ls[2] = {&r->pub, &r->sub};
    for (int i = 0; i < 2; i++) {
        if (ls[i]->bev)
            bufferevent_free(ls[i]->bev);
        if (ls[i]->retry)
            event_free(ls[i]->retry);
    }
    if (default_link == r)
        default_link = NULL;
    free(r);
}

struct hs_pubsub_redis *hs_pubsub_redis_default(void)
{
    return default_link;
}

void hs_pubsub_redis_publish(struct hs_pubsub_redis *r, const char *channel, size_t chlen,
                             const void *msg, size_t len)
{
    if (r == NULL)
        return;
    struct link *l = &r->pub;
    if (l->state == LINK_IDLE)
        link_connect(l);
    if (l->state == LINK_DOWN) {
        note_drops(r, 1, "Redis unreachable");
        return;
    }
    struct evbuffer *out = bufferevent_get_output(l->bev);
    if (evbuffer_get_length(out) > HS_PUBSUB_REDIS_MAX_OUTPUT) {
        note_drops(r, 1, "output to Redis over its limit");
        return;
    }
    evbuffer_add_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s", r->prefix_len + chlen, r->prefix);
    evbuffer_add(out, channel, chlen);
    evbuffer_add_printf(out, "\r\n$%zu\r\n%s", TAG_LEN + len, r->tag);
    evbuffer_add(out, msg, len);
    evbuffer_add(out, "\r\n", 2);
    l->inflight++;
    r->c.sent++;
}

void hs_pubsub_redis_counts(const struct hs_pubsub_redis *r, struct hs_pubsub_redis_counts *c)
{
    *c = r->c;
    c->connected = r->pub.state == LINK_UP || r->sub.state == LINK_UP;
}
