#include "core/config.h"
#include "core/config_internal.h"
#include "core/framing.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/pubsub_redis.h"
#include "core/tls.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

const struct limit_setting hs__config_limits[] = {
    {"--max-per-peer", "max_per_peer", LIMIT_COUNT, offsetof(struct hs_config, max_per_peer), 0,
     "N", "open connections from one client address"},
    {"--first-byte-timeout", "first_byte_timeout", LIMIT_SECONDS,
     offsetof(struct hs_config, first_byte_timeout_ms), 0, "S",
     "a client silent since accept, while the server is too"},
    {"--frame-timeout", "frame_timeout", LIMIT_SECONDS,
     offsetof(struct hs_config, frame_timeout_ms), 0, "S",
     "each S, a frame in progress must bring --min-rate"},
    {"--send-timeout", "send_timeout", LIMIT_SECONDS, offsetof(struct hs_config, send_timeout_ms),
     0, "S", "each S, waiting output must drain --min-rate"},
    {"--min-rate", "min_rate", LIMIT_SIZE, offsetof(struct hs_config, min_rate), (size_t)1 << 30,
     "BYTES", "bytes/s a slow transfer must keep up"},
    {"--max-line", "max_line", LIMIT_SIZE, offsetof(struct hs_config, max_line), 0, "SIZE",
     "default maximum of line framing"},
    {"--max-frame", "max_frame", LIMIT_SIZE, offsetof(struct hs_config, max_frame), 0, "SIZE",
     "default maximum of length framing"},
    {"--lua-memory", "lua_memory", LIMIT_SIZE, offsetof(struct hs_config, lua_memory), 0, "SIZE",
     "bytes one Lua state may hold"},
    {"--lua-time-limit", "lua_time_limit", LIMIT_SECONDS, offsetof(struct hs_config, lua_time_ms),
     0, "S", "one call into Lua may run this long"},
    {"--max-publish", "max_publish", LIMIT_SIZE, offsetof(struct hs_config, max_publish),
     (size_t)64 << 20, "SIZE", "bytes of one hotsock.publish message"},
    {"--publish-queue", "publish_queue", LIMIT_SIZE, offsetof(struct hs_config, publish_queue),
     (size_t)1 << 30, "SIZE", "bytes of messages waiting for one worker"},
    {"--tls-handshake-timeout", "tls_handshake_timeout", LIMIT_SECONDS,
     offsetof(struct hs_config, tls_handshake_timeout_ms), 0, "S",
     "accept to a finished TLS handshake"},
    {"--tls-max-handshakes", "tls_max_handshakes", LIMIT_COUNT,
     offsetof(struct hs_config, tls_max_handshakes), 0, "N",
     "TLS handshakes in progress per process"},
    {"--proxy-timeout", "proxy_timeout", LIMIT_SECONDS,
     offsetof(struct hs_config, proxy_timeout_ms), 0, "S",
     "accept to a complete PROXY header (?proxy listeners)"},
};
const size_t hs__config_n_limits = sizeof hs__config_limits / sizeof hs__config_limits[0];

void hs_config_init(struct hs_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = HS_LOG_INFO;
    cfg->max_connections = HS_DEFAULT_MAX_CONNECTIONS;
    cfg->idle_timeout_ms = HS_DEFAULT_IDLE_TIMEOUT_MS;
    cfg->grace_ms = HS_DEFAULT_GRACE_MS;
    cfg->max_line = HS_DEFAULT_MAX_LINE;
    cfg->max_frame = HS_DEFAULT_MAX_FRAME;
    cfg->max_per_peer = HS_DEFAULT_MAX_PER_PEER;
    cfg->first_byte_timeout_ms = HS_DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    cfg->frame_timeout_ms = HS_DEFAULT_FRAME_TIMEOUT_MS;
    cfg->send_timeout_ms = HS_DEFAULT_SEND_TIMEOUT_MS;
    cfg->min_rate = HS_DEFAULT_MIN_RATE;
    cfg->lua_memory = HS_DEFAULT_LUA_MEMORY;
    cfg->lua_time_ms = HS_DEFAULT_LUA_TIME_MS;
    cfg->max_publish = HS_DEFAULT_MAX_PUBLISH;
    cfg->publish_queue = HS_DEFAULT_PUBLISH_QUEUE;
    cfg->tls_handshake_timeout_ms = HS_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
    cfg->tls_max_handshakes = HS_DEFAULT_TLS_MAX_HANDSHAKES;
    cfg->proxy_timeout_ms = HS_DEFAULT_PROXY_TIMEOUT_MS;
}

void hs_config_conn_limits(const struct hs_config *cfg, struct hs_conn_limits *l)
{
    hs_conn_limits_default(l);
    l->max_connections = cfg->max_connections;
    l->idle_timeout_ms = cfg->idle_timeout_ms;
    l->max_per_peer = cfg->max_per_peer;
    l->max_line = cfg->max_line;
    l->max_frame = cfg->max_frame;
    l->first_byte_timeout_ms = cfg->first_byte_timeout_ms;
    l->frame_timeout_ms = cfg->frame_timeout_ms;
    l->send_timeout_ms = cfg->send_timeout_ms;
    l->min_rate = (unsigned)cfg->min_rate; /* at most 1 GiB: set_limit checks */
    /* 0 would mean "no deadline" nowhere else: a handshake must always end. */
    l->tls_handshake_timeout_ms = cfg->tls_handshake_timeout_ms
                                      ? cfg->tls_handshake_timeout_ms
                                      : HS_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
    l->tls_max_handshakes = cfg->tls_max_handshakes;
    /* 0 would leave a silent client holding a slot forever: it means the default here. */
    l->proxy_timeout_ms =
        cfg->proxy_timeout_ms ? cfg->proxy_timeout_ms : HS_DEFAULT_PROXY_TIMEOUT_MS;
}

void hs_config_free(struct hs_config *cfg)
{
    for (size_t i = 0; i < cfg->n_services; i++) {
        struct hs_service_spec *s = &cfg->services[i];
        free(s->script);
        free(s->framing);
        for (size_t j = 0; j < s->n_listen; j++)
            free(s->listen[j]);
        for (size_t j = 0; j < s->n_opts; j++) {
            free((char *)(uintptr_t)s->opts[j].key);
            free((char *)(uintptr_t)s->opts[j].value);
        }
    }
    for (size_t i = 0; i < cfg->n_allow_modules; i++)
        free(cfg->allow_modules[i]);
    free(cfg->config_path);
    free(cfg->control_path);
    free(cfg->metrics_url);
    free(cfg->pubsub_url);
    hs_config_init(cfg);
}

static int parse_seconds(const char *s, unsigned *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < 0 || v > 4e6)
        return -1;
    *ms = (unsigned)(v * 1000.0 + 0.5);
    return 0;
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || *s == '-' || v > 100000000UL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A size: digits with an optional k, m or g suffix (powers of 1024). */
int hs__config_parse_size(const char *s, size_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift)
        end++;
    if (*end != '\0' || v > (1ULL << 40) >> shift)
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* Sets dictionary name to size bytes (and max_value, 0: the default), replacing an earlier
 * setting of the same name unless that came from the command line and this does not. */
int hs__config_add_shared(struct hs_config *cfg, const char *name, size_t nl, size_t size,
                          size_t max_value, int from_cli, const char *what, char *err,
                          size_t errlen)
{
    char n[HS_SHARED_MAX_NAME + 1];
    if (nl == 0 || nl > HS_SHARED_MAX_NAME) {
        snprintf(err, errlen, "%s: a dictionary name is 1 to %d of A-Z a-z 0-9 _", what,
                 HS_SHARED_MAX_NAME);
        return -1;
    }
    memcpy(n, name, nl);
    n[nl] = '\0';
    if (!hs_shared_name_ok(n)) {
        snprintf(err, errlen, "%s: a dictionary name is 1 to %d of A-Z a-z 0-9 _", what,
                 HS_SHARED_MAX_NAME);
        return -1;
    }
    if (size < HS_SHARED_MIN_SIZE || size > HS_SHARED_MAX_SIZE) {
        snprintf(err, errlen, "%s: a dictionary's size is from 64k to 2040m", what);
        return -1;
    }
    if (max_value && (max_value > size / 4 || max_value < 16)) {
        snprintf(err, errlen,
                 "%s: the largest value must be from 16 bytes to a quarter of the size", what);
        return -1;
    }
    size_t i = 0;
    while (i < cfg->n_shared && strcmp(cfg->shared[i].name, n) != 0)
        i++;
    if (i < cfg->n_shared && !from_cli && (cfg->cli_set & SET_SHARED))
        return 0; /* the command line's wins */
    if (i == cfg->n_shared) {
        if (cfg->n_shared + 1 >= HS_SHARED_MAX_DICTS) {
            snprintf(err, errlen, "%s: at most %d dictionaries", what, HS_SHARED_MAX_DICTS - 1);
            return -1;
        }
        cfg->n_shared++;
    }
    struct hs_shared_spec *sp = &cfg->shared[i];
    memset(sp, 0, sizeof *sp);
    memcpy(sp->name, n, nl + 1);
    sp->size = size;
    sp->max_value = max_value;
    return 0;
}

/* --shared NAME=SIZE[:MAX_VALUE] */
static int parse_shared(struct hs_config *cfg, const char *val, char *err, size_t errlen)
{
    const char *eq = strchr(val, '=');
    char sz[64];
    size_t size, max_value = 0;
    if (eq == NULL || strlen(eq + 1) >= sizeof sz) {
        snprintf(err, errlen, "--shared wants NAME=SIZE[:MAX_VALUE] (like cache=64m), got '%s'",
                 val);
        return -1;
    }
    snprintf(sz, sizeof sz, "%s", eq + 1);
    char *colon = strchr(sz, ':');
    if (colon)
        *colon = '\0';
    if (hs__config_parse_size(sz, &size) != 0 ||
        (colon && hs__config_parse_size(colon + 1, &max_value) != 0)) {
        snprintf(err, errlen, "--shared wants NAME=SIZE[:MAX_VALUE] (like cache=64m), got '%s'",
                 val);
        return -1;
    }
    return hs__config_add_shared(cfg, val, (size_t)(eq - val), size, max_value, 1, "--shared", err,
                                 errlen);
}

/* Stores text (a flag's value, or a config value turned into text) into hs__config_limits[i]'s
 * field. Returns 0, or -1 with err set. */
int hs__config_set_limit(struct hs_config *cfg, size_t i, const char *text, const char *name,
                         char *err, size_t errlen)
{
    const struct limit_setting *ls = &hs__config_limits[i];
    char *field = (char *)cfg + ls->offset;
    unsigned u;
    size_t z;
    switch (ls->kind) {
    case LIMIT_SECONDS:
        if (parse_seconds(text, &u) != 0) {
            snprintf(err, errlen, "%s wants seconds (0 disables), got '%s'", name, text);
            return -1;
        }
        memcpy(field, &u, sizeof u);
        break;
    case LIMIT_COUNT:
        if (parse_uint(text, &u) != 0) {
            snprintf(err, errlen, "%s wants a whole number (0: no limit), got '%s'", name, text);
            return -1;
        }
        memcpy(field, &u, sizeof u);
        break;
    case LIMIT_SIZE:
        if (hs__config_parse_size(text, &z) != 0 || (ls->max && z > ls->max)) {
            snprintf(err, errlen, "%s wants a size like 512, 64k or 16m, got '%s'", name, text);
            return -1;
        }
        memcpy(field, &z, sizeof z);
        break;
    }
    return 0;
}

void hs_config_print_limits(FILE *out)
{
    struct hs_config def;
    hs_config_init(&def);
    for (size_t i = 0; i < N_LIMITS; i++) {
        const struct limit_setting *ls = &hs__config_limits[i];
        const char *field = (const char *)&def + ls->offset;
        char flag[64], val[32];
        unsigned u;
        size_t z;
        snprintf(flag, sizeof flag, "%s %s", ls->flag, ls->arg);
        if (ls->kind == LIMIT_SIZE) {
            memcpy(&z, field, sizeof z);
            if (z && z % ((size_t)1 << 20) == 0)
                snprintf(val, sizeof val, "%zum", z >> 20);
            else if (z && z % 1024 == 0)
                snprintf(val, sizeof val, "%zuk", z >> 10);
            else
                snprintf(val, sizeof val, "%zu", z);
        } else {
            memcpy(&u, field, sizeof u);
            if (ls->kind == LIMIT_SECONDS)
                snprintf(val, sizeof val, "%g", u / 1000.0);
            else
                snprintf(val, sizeof val, "%u", u);
        }
        fprintf(out, "  %-21s %s (default %s)\n", flag, ls->help, val);
    }
    hs_config_free(&def);
}

/* A copy of path without "." components, repeated slashes, and "dir/.." pairs whose dir is
 * a directory rather than a symbolic link (through a link, ".." may lead elsewhere, so the
 * pair stays): "examples/../scripts/echo.lua" -> "scripts/echo.lua", as banners, logs and
 * stats then print it. NULL when memory runs out. */
static char *path_clean(const char *in)
{
    size_t n = strlen(in), o = 0;
    char *out = malloc(n + 2);
    if (out == NULL)
        return NULL;
    if (in[0] == '/')
        out[o++] = '/';
    const size_t floor = o; /* a ".." never removes the root */
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *next = p + len;
        if (len == 1 && p[0] == '.') {
            p = next;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.' && o > floor) {
            size_t start = o;
            while (start > floor && out[start - 1] != '/')
                start--;
            struct stat st;
            out[o] = '\0';
            if (!(o - start == 2 && out[start] == '.' && out[start + 1] == '.') &&
                lstat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
                o = start > floor ? start - 1 : floor;
                p = next;
                continue;
            }
        }
        if (o > floor)
            out[o++] = '/';
        memcpy(out + o, p, len);
        o += len;
        p = next;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return out;
}

struct hs_service_spec *hs__config_add_service(struct hs_config *cfg, const char *script)
{
    if (cfg->n_services >= HS_CONFIG_MAX_SERVICES)
        return NULL;
    struct hs_service_spec *s = &cfg->services[cfg->n_services++];
    memset(s, 0, sizeof *s);
    s->script = path_clean(script);
    return s;
}

int hs__config_add_option(struct hs_service_spec *s, const char *key, size_t kl, const char *value)
{
    for (size_t i = 0; i < s->n_opts; i++) {
        if (strlen(s->opts[i].key) == kl && memcmp(s->opts[i].key, key, kl) == 0) {
            free((char *)(uintptr_t)s->opts[i].value);
            s->opts[i].value = strdup(value);
            return 0;
        }
    }
    if (s->n_opts >= HS_SCRIPT_MAX_OPTIONS)
        return -1;
    s->opts[s->n_opts].key = strndup(key, kl);
    s->opts[s->n_opts].value = strdup(value);
    s->n_opts++;
    return 0;
}

/* Per-script options seen before any script wait here for the first one. */
struct pending {
    const char *listen[HS_SCRIPT_MAX_LISTEN];
    size_t n_listen;
    const char *set[HS_SCRIPT_MAX_OPTIONS];
    size_t n_set;
    const char *framing;
    const char *sandbox;
};

int hs__config_apply_listen(struct hs_service_spec *s, const char *url, char *err, size_t errlen)
{
    struct hs_addr a;
    const char *why;
    if (hs_addr_parse(url, &a, &why) != 0) {
        snprintf(err, errlen, "bad --listen '%s': %s", url, why);
        return -1;
    }
    if (s->n_listen >= HS_SCRIPT_MAX_LISTEN) {
        snprintf(err, errlen, "too many --listen for %s", s->script);
        return -1;
    }
    s->listen[s->n_listen++] = strdup(url);
    return 0;
}

static int apply_set(struct hs_service_spec *s, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        snprintf(err, errlen, "--set wants key=value, got '%s'", kv);
        return -1;
    }
    if (hs__config_add_option(s, kv, (size_t)(eq - kv), eq + 1) != 0) {
        snprintf(err, errlen, "too many --set options for %s", s->script);
        return -1;
    }
    return 0;
}

int hs__config_apply_sandbox(struct hs_service_spec *s, const char *name, char *err, size_t errlen)
{
    int p = hs_sandbox_parse(name);
    if (p < 0) {
        snprintf(err, errlen, "sandbox for %s must be standard, strict or trusted, got '%s'",
                 s->script, name);
        return -1;
    }
    s->sandbox = p;
    return 0;
}

int hs__config_add_allowed_module(struct hs_config *cfg, const char *name, char *err, size_t errlen)
{
    if (name[0] == '\0' || cfg->n_allow_modules >= HS_SANDBOX_MAX_MODULES) {
        snprintf(err, errlen, "%s", name[0] ? "too many allowed modules" : "empty module name");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_allow_modules; i++)
        if (strcmp(cfg->allow_modules[i], name) == 0)
            return 0;
    cfg->allow_modules[cfg->n_allow_modules++] = strdup(name);
    return 0;
}

int hs__config_apply_framing(struct hs_service_spec *s, const char *spec, char *err, size_t errlen)
{
    struct hs_framing f;
    const char *why = "bad framing";
    if (hs_framing_parse(spec, &f, &why) != 0) {
        snprintf(err, errlen, "bad --framing '%s': %s", spec, why);
        return -1;
    }
    free(s->framing);
    s->framing = strdup(spec);
    return 0;
}

int hs_config_parse_args(struct hs_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    struct pending pend;
    memset(&pend, 0, sizeof pend);
    struct hs_service_spec *cur = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int takes_value = strcmp(a, "--listen") == 0 || strcmp(a, "--set") == 0 ||
                          strcmp(a, "--framing") == 0 || strcmp(a, "--log-level") == 0 ||
                          strcmp(a, "--max-connections") == 0 || strcmp(a, "--idle-timeout") == 0 ||
                          strcmp(a, "--grace") == 0 || strcmp(a, "--config") == 0 ||
                          strcmp(a, "--workers") == 0 || strcmp(a, "--control") == 0 ||
                          strcmp(a, "--metrics") == 0 || strcmp(a, "--pubsub") == 0 ||
                          strcmp(a, "--shared") == 0 || strcmp(a, "--sandbox") == 0 ||
                          strcmp(a, "--allow-module") == 0;
        size_t li = 0;
        while (li < N_LIMITS && strcmp(a, hs__config_limits[li].flag) != 0)
            li++;
        takes_value = takes_value || li < N_LIMITS;
        if (takes_value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", a);
                return -1;
            }
            val = argv[++i];
        }
        if (li < N_LIMITS) {
            if (hs__config_set_limit(cfg, li, val, a, err, errlen) != 0)
                return -1;
            cfg->cli_set |= LIMIT_BIT(li);
        } else if (strcmp(a, "--listen") == 0) {
            if (cur) {
                if (hs__config_apply_listen(cur, val, err, errlen) != 0)
                    return -1;
            } else if (pend.n_listen < HS_SCRIPT_MAX_LISTEN) {
                pend.listen[pend.n_listen++] = val;
            }
        } else if (strcmp(a, "--set") == 0) {
            if (cur) {
                if (apply_set(cur, val, err, errlen) != 0)
                    return -1;
            } else if (pend.n_set < HS_SCRIPT_MAX_OPTIONS) {
                pend.set[pend.n_set++] = val;
            }
        } else if (strcmp(a, "--framing") == 0) {
            if (cur) {
                if (hs__config_apply_framing(cur, val, err, errlen) != 0)
                    return -1;
            } else {
                pend.framing = val;
            }
        } else if (strcmp(a, "--sandbox") == 0) {
            if (cur) {
                if (hs__config_apply_sandbox(cur, val, err, errlen) != 0)
                    return -1;
            } else if (hs_sandbox_parse(val) < 0) {
                snprintf(err, errlen, "--sandbox must be standard, strict or trusted");
                return -1;
            } else {
                pend.sandbox = val;
            }
        } else if (strcmp(a, "--allow-module") == 0) {
            if (hs__config_add_allowed_module(cfg, val, err, errlen) != 0)
                return -1;
        } else if (strcmp(a, "--log-level") == 0) {
            int l = hs_log_level_parse(val);
            if (l < 0) {
                snprintf(err, errlen, "--log-level must be debug, info, warn or error");
                return -1;
            }
            cfg->log_level = l;
            cfg->cli_set |= SET_LOG_LEVEL;
        } else if (strcmp(a, "--max-connections") == 0) {
            if (parse_uint(val, &cfg->max_connections) != 0) {
                snprintf(err, errlen, "--max-connections wants a whole number");
                return -1;
            }
            cfg->cli_set |= SET_MAX_CONNECTIONS;
        } else if (strcmp(a, "--idle-timeout") == 0) {
            if (parse_seconds(val, &cfg->idle_timeout_ms) != 0) {
                snprintf(err, errlen, "--idle-timeout wants seconds (0 disables)");
                return -1;
            }
            cfg->cli_set |= SET_IDLE_TIMEOUT;
        } else if (strcmp(a, "--workers") == 0) {
            unsigned w;
            if (parse_uint(val, &w) != 0 || w > 256) {
                snprintf(err, errlen, "--workers wants a number from 0 (one per core) to 256");
                return -1;
            }
            cfg->workers = (int)w;
            cfg->cli_set |= SET_WORKERS;
        } else if (strcmp(a, "--grace") == 0) {
            if (parse_seconds(val, &cfg->grace_ms) != 0) {
                snprintf(err, errlen, "--grace wants seconds");
                return -1;
            }
            cfg->cli_set |= SET_GRACE;
        } else if (strcmp(a, "--control") == 0) {
            free(cfg->control_path);
            cfg->control_path = strdup(val);
        } else if (strcmp(a, "--pubsub") == 0) {
            const char *why;
            if (hs_pubsub_redis_parse(val, NULL, NULL, 0, &why) != 0) {
                snprintf(err, errlen, "--pubsub %s: %s", val, why);
                return -1;
            }
            free(cfg->pubsub_url);
            cfg->pubsub_url = strdup(val);
        } else if (strcmp(a, "--metrics") == 0) {
            free(cfg->metrics_url);
            cfg->metrics_url = strdup(val);
        } else if (strcmp(a, "--shared") == 0) {
            if (parse_shared(cfg, val, err, errlen) != 0)
                return -1;
            cfg->cli_set |= SET_SHARED;
        } else if (strcmp(a, "--watch") == 0) {
            cfg->watch = 1;
        } else if (strcmp(a, "--config") == 0) {
            free(cfg->config_path);
            cfg->config_path = strdup(val);
        } else if (a[0] == '-' && a[1] != '\0') {
            snprintf(err, errlen, "unknown option %s (see hotsock --help)", a);
            return -1;
        } else {
            cur = hs__config_add_service(cfg, a);
            if (cur == NULL) {
                snprintf(err, errlen, "at most %d scripts", HS_CONFIG_MAX_SERVICES);
                return -1;
            }
            if (cfg->n_services == 1) {
                for (size_t j = 0; j < pend.n_listen; j++)
                    if (hs__config_apply_listen(cur, pend.listen[j], err, errlen) != 0)
                        return -1;
                for (size_t j = 0; j < pend.n_set; j++)
                    if (apply_set(cur, pend.set[j], err, errlen) != 0)
                        return -1;
                if (pend.framing && hs__config_apply_framing(cur, pend.framing, err, errlen) != 0)
                    return -1;
                if (pend.sandbox && hs__config_apply_sandbox(cur, pend.sandbox, err, errlen) != 0)
                    return -1;
            }
        }
    }
    if (cfg->n_services == 0 && (pend.n_listen || pend.n_set || pend.framing || pend.sandbox)) {
        snprintf(err, errlen, "--listen, --set, --framing and --sandbox need a SCRIPT");
        return -1;
    }
    return 0;
}
