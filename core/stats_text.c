#include "core/stats_text.h"
#include "core/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REC_MAX_FIELDS 16 /* key=value pairs on one line */

/* One parsed line: its kind, the worker of the process line before it, its fields. The
 * strings point into a private copy of the snapshot. */
struct rec {
    const char *kind;
    const char *worker;
    const char *key[REC_MAX_FIELDS];
    const char *val[REC_MAX_FIELDS];
    int n;
};

struct snap {
    char *text;
    struct rec *recs;
    size_t n;
};

/* A growing output buffer that never overflows out. */
struct outbuf {
    char *p;
    size_t n, used;
};

static void emit(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct outbuf *o, const char *fmt, ...)
{
    if (o->n == 0 || o->used >= o->n - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->p + o->used, o->n - o->used, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    o->used += (size_t)w;
    if (o->used >= o->n)
        o->used = o->n - 1;
}

static int snap_parse(const char *snapshot, struct snap *s)
{
    memset(s, 0, sizeof *s);
    s->text = strdup(snapshot);
    size_t lines = 1;
    for (const char *p = snapshot; *p; p++)
        lines += *p == '\n';
    s->recs = calloc(lines, sizeof *s->recs);
    if (s->text == NULL || s->recs == NULL)
        return -1;
    const char *worker = "0";
    char *save = NULL;
    for (char *line = strtok_r(s->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        struct rec *r = &s->recs[s->n];
        char *tsave = NULL;
        char *tok = strtok_r(line, " ", &tsave);
        if (tok == NULL)
            continue;
        r->kind = tok;
        while ((tok = strtok_r(NULL, " ", &tsave)) != NULL && r->n < REC_MAX_FIELDS) {
            char *eq = strchr(tok, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            hs_stats_unescape(eq + 1);
            r->key[r->n] = tok;
            r->val[r->n] = eq + 1;
            r->n++;
        }
        if (strcmp(r->kind, "process") == 0) {
            for (int i = 0; i < r->n; i++)
                if (strcmp(r->key[i], "worker") == 0)
                    worker = r->val[i];
        }
        r->worker = worker;
        s->n++;
    }
    return 0;
}

static void snap_free(struct snap *s)
{
    free(s->text);
    free(s->recs);
}

static const char *get(const struct rec *r, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return r->val[i];
    return "";
}

static unsigned long long num(const struct rec *r, const char *key)
{
    return strtoull(get(r, key), NULL, 10);
}

static int is(const struct rec *r, const char *kind)
{
    return strcmp(r->kind, kind) == 0;
}

/* 1536 -> "1.5 KiB". */
static void human_bytes(unsigned long long b, char *buf, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%llu B", b);
    else
        snprintf(buf, n, "%.1f %s", v, unit[u]);
}

static void utc_time(double t, char *buf, size_t n)
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Whether an earlier record of the same kind has the same values of k1 and k2: such a record
 * was printed already with the sum over workers. */
static int seen_before(const struct snap *s, size_t i, const char *k1, const char *k2)
{
    for (size_t j = 0; j < i; j++)
        if (is(&s->recs[j], s->recs[i].kind) &&
            strcmp(get(&s->recs[j], k1), get(&s->recs[i], k1)) == 0 &&
            (k2 == NULL || strcmp(get(&s->recs[j], k2), get(&s->recs[i], k2)) == 0))
            return 1;
    return 0;
}

/* The sum of key over every record of the kind of record i with the same k1 and k2. */
static unsigned long long sum_of(const struct snap *s, size_t i, const char *k1, const char *k2,
                                 const char *key)
{
    unsigned long long t = 0;
    for (size_t j = 0; j < s->n; j++)
        if (is(&s->recs[j], s->recs[i].kind) &&
            strcmp(get(&s->recs[j], k1), get(&s->recs[i], k1)) == 0 &&
            (k2 == NULL || strcmp(get(&s->recs[j], k2), get(&s->recs[i], k2)) == 0))
            t += num(&s->recs[j], key);
    return t;
}

/* A version or script record's service: its "service" field, or for a snapshot without one
 * (an older worker) its path, so rows still group. */
static const char *service_key(const struct rec *r)
{
    const char *sv = get(r, "service");
    return *sv ? sv : get(r, "path");
}

/* Whether an earlier version record has the same service and generation. */
static int seen_version(const struct snap *s, size_t i)
{
    const struct rec *r = &s->recs[i];
    for (size_t j = 0; j < i; j++)
        if (is(&s->recs[j], "version") && strcmp(service_key(&s->recs[j]), service_key(r)) == 0 &&
            num(&s->recs[j], "generation") == num(r, "generation"))
            return 1;
    return 0;
}

/* The sum of key over the version records (every worker's) of record i's service and
 * generation. */
static unsigned long long sum_version(const struct snap *s, size_t i, const char *key)
{
    const struct rec *r = &s->recs[i];
    unsigned long long t = 0;
    for (size_t j = 0; j < s->n; j++)
        if (is(&s->recs[j], "version") && strcmp(service_key(&s->recs[j]), service_key(r)) == 0 &&
            num(&s->recs[j], "generation") == num(r, "generation"))
            t += num(&s->recs[j], key);
    return t;
}

/* The current generation of a service, from its "script" line (0 if none). */
static unsigned long long current_generation(const struct snap *s, const char *service)
{
    for (size_t j = 0; j < s->n; j++)
        if (is(&s->recs[j], "script") && strcmp(service_key(&s->recs[j]), service) == 0)
            return num(&s->recs[j], "generation");
    return 0;
}

/* Whether version record a is listed before b: by service (in config order), then
 * generation. */
static int version_before(const struct rec *a, const struct rec *b)
{
    unsigned long long sa = num(a, "service"), sb = num(b, "service");
    if (sa != sb)
        return sa < sb;
    int c = strcmp(get(a, "path"), get(b, "path"));
    if (c != 0)
        return c < 0;
    return num(a, "generation") < num(b, "generation");
}

/* The SCRIPT column: the name, and when another service of the snapshot runs a script of
 * that name too, the service's place in the config ("greeting[3]"). */
static void script_label(const struct snap *s, const struct rec *r, char *out, size_t n)
{
    const char *name = get(r, "name");
    for (size_t j = 0; j < s->n; j++) {
        const struct rec *o = &s->recs[j];
        if ((is(o, "script") || is(o, "version")) && strcmp(get(o, "name"), name) == 0 &&
            strcmp(service_key(o), service_key(r)) != 0 && *get(r, "service")) {
            snprintf(out, n, "%s[%s]", name, get(r, "service"));
            return;
        }
    }
    snprintf(out, n, "%s", name);
}

/* The shared dictionaries ("dict" lines, written once per server), when there are any. */
static void render_dicts(struct outbuf *o, const struct snap *s)
{
    int header = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct rec *r = &s->recs[i];
        if (!is(r, "dict"))
            continue;
        if (!header) {
            emit(o, "\n%-16s %10s %10s %10s %9s %9s %9s %10s\n", "DICTIONARY", "SIZE", "USED",
                 "FREE", "KEYS", "EVICTED", "EXPIRED", "MAX VALUE");
            header = 1;
        }
        char size[32], used[32], fr[32], maxv[32];
        human_bytes(num(r, "size"), size, sizeof size);
        human_bytes(num(r, "used"), used, sizeof used);
        human_bytes(num(r, "free"), fr, sizeof fr);
        human_bytes(num(r, "max_value"), maxv, sizeof maxv);
        emit(o, "%-16s %10s %10s %10s %9llu %9llu %9llu %10s\n", get(r, "name"), size, used, fr,
             num(r, "keys"), num(r, "evicted"), num(r, "expired"), maxv);
    }
}

size_t hs_stats_render_table(const char *snapshot, char *out, size_t n)
{
    struct outbuf o = {out, n, 0};
    struct snap s;
    if (n)
        out[0] = '\0';
    if (snap_parse(snapshot, &s) != 0) {
        snap_free(&s);
        return 0;
    }
    emit(&o, "%-32s %-16s %10s %8s %8s %6s %10s %10s %10s %7s %8s %10s\n", "LISTENER", "SCRIPT",
         "ACCEPTED", "REFUSED", "LIMITED", "OPEN", "BYTES IN", "BYTES OUT", "MESSAGES", "ERRORS",
         "TLS FAIL", "PROXY FAIL");
    for (size_t i = 0; i < s.n; i++) {
        const struct rec *r = &s.recs[i];
        if (!is(r, "listener") || seen_before(&s, i, "url", NULL))
            continue;
        char bin[32], bout[32];
        human_bytes(sum_of(&s, i, "url", NULL, "bytes_in"), bin, sizeof bin);
        human_bytes(sum_of(&s, i, "url", NULL, "bytes_out"), bout, sizeof bout);
        emit(&o, "%-32s %-16s %10llu %8llu %8llu %6llu %10s %10s %10llu %7llu %8llu %10llu\n",
             get(r, "url"), get(r, "name"), sum_of(&s, i, "url", NULL, "accepted"),
             sum_of(&s, i, "url", NULL, "refused"), sum_of(&s, i, "url", NULL, "limited"),
             sum_of(&s, i, "url", NULL, "open"), bin, bout, sum_of(&s, i, "url", NULL, "messages"),
             sum_of(&s, i, "url", NULL, "errors"), sum_of(&s, i, "url", NULL, "tls_failures"),
             sum_of(&s, i, "url", NULL, "proxy_failures"));
    }
    emit(&o, "\n%-16s %4s %-8s %6s %8s %10s %10s %10s %7s %8s\n", "SCRIPT", "GEN", "STATE", "OPEN",
         "TOTAL", "BYTES IN", "BYTES OUT", "MESSAGES", "ERRORS", "HANDLER");
    /* One row per (service, generation), summed over workers, in version_before order. */
    size_t *order = calloc(s.n ? s.n : 1, sizeof *order), nv = 0;
    for (size_t i = 0; order && i < s.n; i++) {
        if (!is(&s.recs[i], "version") || seen_version(&s, i))
            continue;
        size_t k = nv++;
        while (k > 0 && version_before(&s.recs[i], &s.recs[order[k - 1]])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    for (size_t v = 0; v < nv; v++) {
        size_t i = order[v];
        const struct rec *r = &s.recs[i];
        char bin[32], bout[32], label[96];
        human_bytes(sum_version(&s, i, "bytes_in"), bin, sizeof bin);
        human_bytes(sum_version(&s, i, "bytes_out"), bout, sizeof bout);
        script_label(&s, r, label, sizeof label);
        int current = current_generation(&s, service_key(r)) == num(r, "generation");
        emit(&o, "%-16s %4s %-8s %6llu %8llu %10s %10s %10llu %7llu %8llu\n", label,
             get(r, "generation"), current ? "current" : "old", sum_version(&s, i, "open"),
             sum_version(&s, i, "total"), bin, bout, sum_version(&s, i, "messages"),
             sum_version(&s, i, "errors"), sum_version(&s, i, "handler_errors"));
    }
    free(order);
    emit(&o, "\n%-16s %4s %7s  %-22s %s\n", "SCRIPT", "GEN", "RELOADS", "LAST RELOAD (UTC)",
         "RESULT");
    for (size_t i = 0; i < s.n; i++) {
        const struct rec *r = &s.recs[i];
        if (!is(r, "script"))
            continue;
        double t = strtod(get(r, "reload_time"), NULL);
        char when[32] = "never";
        if (t > 0)
            utc_time(t, when, sizeof when);
        const char *result = t <= 0 ? "-" : num(r, "reload_ok") ? "ok" : "failed";
        char label[96];
        script_label(&s, r, label, sizeof label);
        emit(&o, "%-16s %4s %7s  %-22s %s%s%s\n", label, get(r, "generation"), get(r, "reloads"),
             when, result, t > 0 && !num(r, "reload_ok") ? ": " : "",
             t > 0 && !num(r, "reload_ok") ? get(r, "reload_error") : "");
    }
    emit(&o, "\n%-8s %8s %12s %12s %7s\n", "WORKER", "PID", "CONNECTIONS", "LUA MEMORY", "TIMERS");
    for (size_t i = 0; i < s.n; i++) {
        const struct rec *r = &s.recs[i];
        if (!is(r, "process"))
            continue;
        char mem[32];
        human_bytes(num(r, "lua_memory"), mem, sizeof mem);
        emit(&o, "%-8s %8s %12s %12s %7s\n", get(r, "worker"), get(r, "pid"), get(r, "connections"),
             mem, get(r, "timers"));
    }
    /* Publish/subscribe, one row per worker, when the processes have queues. */
    int pubsub_header = 0;
    for (size_t i = 0; i < s.n; i++) {
        const struct rec *r = &s.recs[i];
        if (!is(r, "pubsub"))
            continue;
        if (!pubsub_header++)
            emit(&o, "\n%-8s %13s %10s %10s %8s %10s %10s %9s\n", "PUBSUB", "SUBSCRIPTIONS",
                 "PUBLISHED", "DELIVERED", "DROPPED", "QUEUED", "REMOTE", "RDROPPED");
        char queued[32];
        human_bytes(num(r, "queued"), queued, sizeof queued);
        emit(&o, "%-8s %13s %10s %10s %8s %10s %10s %9s\n", r->worker, get(r, "subscriptions"),
             get(r, "published"), get(r, "delivered"), get(r, "dropped"), queued,
             get(r, "remote_sent"), get(r, "remote_dropped"));
    }
    render_dicts(&o, &s);
    snap_free(&s);
    return o.used;
}

/* A label value with \, " and newline escaped as the exposition format wants. */
static void label(struct outbuf *o, const char *name, const char *value, int first)
{
    emit(o, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            emit(o, "\\%c", *p);
        else if (*p == '\n')
            emit(o, "\\n");
        else
            emit(o, "%c", *p);
    }
    emit(o, "\"");
}

struct family {
    const char *kind;   /* records it comes from */
    const char *key;    /* their field */
    const char *metric; /* hotsock_... */
    const char *type;   /* counter or gauge */
    const char *help;
};

static const struct family families[] = {
    {"version", "open", "hotsock_connections_open", "gauge", "Connections open now."},
    {"version", "total", "hotsock_connections_total", "counter", "Connections accepted."},
    {"version", "bytes_in", "hotsock_bytes_in_total", "counter", "Bytes received."},
    {"version", "bytes_out", "hotsock_bytes_out_total", "counter", "Bytes sent."},
    {"version", "messages", "hotsock_messages_total", "counter",
     "Messages (frames, requests, datagrams) handed to the script."},
    {"version", "errors", "hotsock_errors_total", "counter",
     "Connections closed for a protocol error, a timeout or a limit."},
    {"version", "handler_errors", "hotsock_handler_errors_total", "counter",
     "Script callbacks that raised an error."},
    {"listener", "accepted", "hotsock_listener_accepted_total", "counter",
     "Connections accepted by the listener."},
    {"listener", "refused", "hotsock_listener_refused_total", "counter",
     "Connections refused by on_accept."},
    {"listener", "limited", "hotsock_listener_limited_total", "counter",
     "Connections refused at the connection or per-address limit."},
    {"listener", "open", "hotsock_listener_connections_open", "gauge",
     "Connections of the listener open now."},
    {"listener", "bytes_in", "hotsock_listener_bytes_in_total", "counter",
     "Bytes received on the listener's connections."},
    {"listener", "bytes_out", "hotsock_listener_bytes_out_total", "counter",
     "Bytes sent on the listener's connections."},
    {"listener", "messages", "hotsock_listener_messages_total", "counter",
     "Messages (frames, requests) from the listener's connections."},
    {"listener", "errors", "hotsock_listener_errors_total", "counter",
     "The listener's connections closed for a protocol error, a timeout or a limit."},
    {"listener", "tls_failures", "hotsock_listener_tls_handshake_failures_total", "counter",
     "TLS handshakes on the listener that failed or timed out."},
    {"listener", "proxy_failures", "hotsock_listener_proxy_header_failures_total", "counter",
     "Connections to a PROXY listener closed for a missing, malformed or late header."},
    {"process", "lua_memory", "hotsock_lua_memory_bytes", "gauge", "Lua memory in use."},
    {"process", "connections", "hotsock_worker_connections", "gauge",
     "Open connections of the process."},
    {"process", "timers", "hotsock_lua_timers", "gauge", "Live Lua timers."},
    {"pubsub", "subscriptions", "hotsock_pubsub_subscriptions", "gauge",
     "Live hotsock.subscribe subscriptions of the worker."},
    {"pubsub", "published", "hotsock_pubsub_published_total", "counter",
     "Messages the worker published."},
    {"pubsub", "delivered", "hotsock_pubsub_delivered_total", "counter",
     "Messages taken from the worker's queue."},
    {"pubsub", "dropped", "hotsock_pubsub_dropped_total", "counter",
     "Messages dropped because the worker's queue was full."},
    {"pubsub", "remote_sent", "hotsock_pubsub_remote_sent_total", "counter",
     "Messages the worker sent to Redis for other servers (--pubsub)."},
    {"pubsub", "remote_received", "hotsock_pubsub_remote_received_total", "counter",
     "Messages of other servers the worker took from Redis and queued here (--pubsub)."},
    {"pubsub", "remote_dropped", "hotsock_pubsub_remote_dropped_total", "counter",
     "Copies for other servers lost: Redis down or its output over the limit (--pubsub)."},
    {"pubsub", "queued", "hotsock_pubsub_queued_bytes", "gauge",
     "Bytes waiting in the worker's queue."},
    {"script", "generation", "hotsock_script_generation", "gauge",
     "Generation of the script's current version."},
    {"script", "reloads", "hotsock_reloads_total", "counter", "Reload attempts."},
    {"script", "reload_time", "hotsock_last_reload_timestamp_seconds", "gauge",
     "Time of the last reload attempt (0: none)."},
    {"script", "reload_ok", "hotsock_last_reload_success", "gauge",
     "Whether the last reload attempt succeeded."},
    {"dict", "size", "hotsock_shared_dict_size_bytes", "gauge",
     "Bytes of the shared dictionary, tables included."},
    {"dict", "used", "hotsock_shared_dict_used_bytes", "gauge", "Bytes its entries use."},
    {"dict", "free", "hotsock_shared_dict_free_bytes", "gauge", "Bytes its entries may still use."},
    {"dict", "keys", "hotsock_shared_dict_keys", "gauge", "Entries stored."},
    {"dict", "evicted", "hotsock_shared_dict_evicted_total", "counter",
     "Live entries removed to make room."},
    {"dict", "expired", "hotsock_shared_dict_expired_total", "counter",
     "Expired entries reclaimed."},
};

size_t hs_stats_render_prometheus(const char *snapshot, char *out, size_t n)
{
    struct outbuf o = {out, n, 0};
    struct snap s;
    if (n)
        out[0] = '\0';
    if (snap_parse(snapshot, &s) != 0) {
        snap_free(&s);
        return 0;
    }
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        const struct family *fam = &families[f];
        emit(&o, "# HELP %s %s\n# TYPE %s %s\n", fam->metric, fam->help, fam->metric, fam->type);
        for (size_t i = 0; i < s.n; i++) {
            const struct rec *r = &s.recs[i];
            if (!is(r, fam->kind))
                continue;
            emit(&o, "%s{", fam->metric);
            if (is(r, "version")) {
                /* service keeps two services of one script apart (one series each). */
                label(&o, "script", get(r, "name"), 1);
                label(&o, "service", get(r, "service"), 0);
                label(&o, "path", get(r, "path"), 0);
                label(&o, "generation", get(r, "generation"), 0);
                label(&o, "worker", r->worker, 0);
            } else if (is(r, "listener")) {
                label(&o, "listener", get(r, "url"), 1);
                label(&o, "script", get(r, "name"), 0);
                label(&o, "worker", r->worker, 0);
            } else if (is(r, "process") || is(r, "pubsub")) {
                label(&o, "worker", r->worker, 1);
            } else if (is(r, "dict")) {
                label(&o, "dict", get(r, "name"), 1);
            } else {
                label(&o, "script", get(r, "name"), 1);
                label(&o, "service", get(r, "service"), 0);
                label(&o, "path", get(r, "path"), 0);
            }
            const char *v = get(r, fam->key);
            emit(&o, "} %s\n", *v ? v : "0");
        }
    }
    snap_free(&s);
    return o.used;
}
