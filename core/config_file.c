/* Config files (core/config.h): a Lua file, run as text in a state of its own with no
 * libraries, returns a table of services, listeners, limits and shared dicts; this reads it
 * into the same struct hs_config the command line fills. The command line wins for every
 * setting it gave. Flags, defaults and the limits table are core/config.c. */
#include "core/config.h"
#include "core/config_internal.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/pubsub_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Resolves a path from the config file against the file's directory. */
static char *resolve(const char *cfg_path, const char *p)
{
    const char *slash = strrchr(cfg_path, '/');
    if (p[0] == '/' || slash == NULL)
        return strdup(p);
    size_t dl = (size_t)(slash - cfg_path);
    char *out = malloc(dl + strlen(p) + 2);
    if (out)
        sprintf(out, "%.*s/%s", (int)dl, cfg_path, p);
    return out;
}

static int cfg_fail(char *err, size_t errlen, const char *path, const char *msg)
{
    snprintf(err, errlen, "%s: %s", path, msg);
    return -1;
}

/* Appends "&key=VALUE" (or "?key=..." as the first option) to url, VALUE %-encoded. */
static int url_add_option(char *url, size_t n, const char *key, const char *value)
{
    size_t used = strlen(url);
    int w = snprintf(url + used, n - used, "%c%s=", strchr(url, '?') ? '&' : '?', key);
    if (w < 0 || used + (size_t)w >= n)
        return -1;
    used += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("/._~-+:,@", *p);
        if (used + 4 >= n)
            return -1;
        used += (size_t)(plain ? snprintf(url + used, n - used, "%c", *p)
                               : snprintf(url + used, n - used, "%%%02X", *p));
    }
    return 0;
}

/* A listen entry given as a table, {url = "tls://...", cert = PATH, key = PATH, proxy = true}
 * (cert and key may be lists, paired in order, for certificates chosen by SNI; proxy is the
 * ?proxy flag), on top of the stack:
 * written as the URL with options that --listen takes, paths resolved against the config
 * file's directory. Returns 0, or -1 with err set. */
static int listen_table_url(lua_State *L, const char *path, char *url, size_t n, char *err,
                            size_t errlen)
{
    if (lua_getfield(L, -1, "url") != LUA_TSTRING) {
        lua_pop(L, 1);
        return cfg_fail(err, errlen, path, "a listen table needs url = \"tls://HOST:PORT\"");
    }
    snprintf(url, n, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    static const char *const keys[] = {"cert", "key"};
    for (size_t k = 0; k < 2; k++) {
        int t = lua_getfield(L, -1, keys[k]);
        lua_Integer count = t == LUA_TTABLE ? luaL_len(L, -1) : t == LUA_TSTRING ? 1 : 0;
        for (lua_Integer i = 1; i <= count; i++) {
            if (t == LUA_TTABLE)
                lua_rawgeti(L, -1, i);
            else
                lua_pushvalue(L, -1);
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            char *full = v ? resolve(path, v) : NULL;
            int bad = full == NULL || url_add_option(url, n, keys[k], full) != 0;
            free(full);
            lua_pop(L, 1);
            if (bad) {
                lua_pop(L, 1);
                return cfg_fail(err, errlen, path,
                                v ? "listen URL with its options too long"
                                  : "cert and key must be paths or lists of paths");
            }
        }
        lua_pop(L, 1);
    }
    /* proxy = true: the ?proxy flag. */
    int proxy = lua_getfield(L, -1, "proxy") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    size_t used = strlen(url);
    if (proxy &&
        snprintf(url + used, n - used, "%cproxy", strchr(url, '?') ? '&' : '?') >= (int)(n - used))
        return cfg_fail(err, errlen, path, "listen URL with its options too long");
    return 0;
}

/* Reads one services[i] table on top of the stack. */
static int read_service(lua_State *L, struct hs_config *cfg, const char *path, char *err,
                        size_t errlen)
{
    if (lua_getfield(L, -1, "script") != LUA_TSTRING)
        return cfg_fail(err, errlen, path, "each service needs script = \"path.lua\"");
    char *script = resolve(path, lua_tostring(L, -1));
    lua_pop(L, 1);
    struct hs_service_spec *s = hs__config_add_service(cfg, script);
    free(script);
    if (s == NULL)
        return cfg_fail(err, errlen, path, "too many services");
    int t = lua_getfield(L, -1, "listen");
    if (t == LUA_TSTRING) {
        if (hs__config_apply_listen(s, lua_tostring(L, -1), err, errlen) != 0)
            return -1;
    } else if (t == LUA_TTABLE && lua_getfield(L, -1, "url") != LUA_TNIL) {
        lua_pop(L, 1); /* one {url = ...} table rather than a list of entries */
        char url[HS_ADDR_MAX_URL];
        if (listen_table_url(L, path, url, sizeof url, err, errlen) != 0 ||
            hs__config_apply_listen(s, url, err, errlen) != 0)
            return -1;
    } else if (t == LUA_TTABLE) {
        lua_pop(L, 1);
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            char url[HS_ADDR_MAX_URL];
            if (lua_istable(L, -1) && listen_table_url(L, path, url, sizeof url, err, errlen) != 0)
                return -1;
            const char *u = lua_istable(L, -1) ? url : lua_tostring(L, -1);
            if (u == NULL || hs__config_apply_listen(s, u, err, errlen) != 0)
                return u ? -1
                         : cfg_fail(err, errlen, path,
                                    "listen entries must be URL strings or {url = ...} tables");
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "framing") == LUA_TSTRING &&
        hs__config_apply_framing(s, lua_tostring(L, -1), err, errlen) != 0)
        return -1;
    lua_pop(L, 1);
    t = lua_getfield(L, -1, "sandbox");
    if (t != LUA_TNIL &&
        (t != LUA_TSTRING || hs__config_apply_sandbox(s, lua_tostring(L, -1), err, errlen) != 0))
        return cfg_fail(err, errlen, path,
                        "sandbox must be \"standard\", \"strict\" or \"trusted\"");
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "options") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return cfg_fail(err, errlen, path, "option names must be strings");
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            const char *v = luaL_tolstring(L, -1, NULL);
            if (hs__config_add_option(s, k, kl, v) != 0)
                return cfg_fail(err, errlen, path, "too many options");
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
    return 0;
}

/* shared = { NAME = "64m", OTHER = { size = "1g", max_value = "1m" } } */
static int read_shared(lua_State *L, struct hs_config *cfg, const char *path, char *err,
                       size_t errlen)
{
    char what[300];
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return cfg_fail(err, errlen, path, "shared: names must be strings");
        size_t nl;
        const char *name = lua_tolstring(L, -2, &nl);
        int top = lua_gettop(L); /* the value; the name is under it */
        snprintf(what, sizeof what, "%s: shared.%s", path, name);
        const char *size_s = NULL, *max_s = NULL;
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "size");
            lua_getfield(L, -2, "max_value");
            size_s = lua_tostring(L, -2);
            max_s = lua_tostring(L, -1);
        } else {
            size_s = lua_tostring(L, -1);
        }
        size_t size = 0, max_value = 0;
        if (size_s == NULL || hs__config_parse_size(size_s, &size) != 0 ||
            (max_s && hs__config_parse_size(max_s, &max_value) != 0)) {
            snprintf(err, errlen,
                     "%s: wants a size like \"64m\" or {size = \"64m\", max_value = \"1m\"}", what);
            return -1;
        }
        if (hs__config_add_shared(cfg, name, nl, size, max_value, 0, what, err, errlen) != 0)
            return -1;
        lua_settop(L, top - 1);
    }
    return 0;
}

static int read_config_table(lua_State *L, struct hs_config *cfg, const char *path, char *err,
                             size_t errlen)
{
    if (!lua_istable(L, -1))
        return cfg_fail(err, errlen, path, "the config file must return a table");
    if (lua_getfield(L, -1, "log_level") == LUA_TSTRING && !(cfg->cli_set & SET_LOG_LEVEL)) {
        int l = hs_log_level_parse(lua_tostring(L, -1));
        if (l < 0)
            return cfg_fail(err, errlen, path, "log_level must be debug, info, warn or error");
        cfg->log_level = l;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "max_connections") == LUA_TNUMBER &&
        !(cfg->cli_set & SET_MAX_CONNECTIONS))
        cfg->max_connections = (unsigned)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "idle_timeout") == LUA_TNUMBER && !(cfg->cli_set & SET_IDLE_TIMEOUT))
        cfg->idle_timeout_ms = (unsigned)(lua_tonumber(L, -1) * 1000);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "pubsub") == LUA_TSTRING && cfg->pubsub_url == NULL) {
        const char *why;
        if (hs_pubsub_redis_parse(lua_tostring(L, -1), NULL, NULL, 0, &why) != 0)
            return cfg_fail(err, errlen, path, why);
        cfg->pubsub_url = strdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "metrics") == LUA_TSTRING && cfg->metrics_url == NULL)
        cfg->metrics_url = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "workers") == LUA_TNUMBER && !(cfg->cli_set & SET_WORKERS))
        cfg->workers = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "grace") == LUA_TNUMBER && !(cfg->cli_set & SET_GRACE))
        cfg->grace_ms = (unsigned)(lua_tonumber(L, -1) * 1000);
    lua_pop(L, 1);
    for (size_t i = 0; i < N_LIMITS; i++) {
        int t = lua_getfield(L, -1, hs__config_limits[i].key);
        if (t != LUA_TNIL && !(cfg->cli_set & LIMIT_BIT(i))) {
            const char *v = t == LUA_TNUMBER || t == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            char name[64];
            snprintf(name, sizeof name, "%s: %s", path, hs__config_limits[i].key);
            if (hs__config_set_limit(cfg, i, v, name, err, errlen) != 0)
                return -1;
        }
        lua_pop(L, 1);
    }
    int st = lua_getfield(L, -1, "shared");
    if (st == LUA_TTABLE) {
        if (read_shared(L, cfg, path, err, errlen) != 0)
            return -1;
    } else if (st != LUA_TNIL) {
        return cfg_fail(err, errlen, path, "shared must be a table of NAME = \"SIZE\"");
    }
    lua_pop(L, 1);
    int am = lua_getfield(L, -1, "allow_modules");
    if (am == LUA_TSTRING) {
        if (hs__config_add_allowed_module(cfg, lua_tostring(L, -1), err, errlen) != 0)
            return cfg_fail(err, errlen, path, "bad allow_modules");
    } else if (am == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti(L, -1, i) != LUA_TSTRING ||
                hs__config_add_allowed_module(cfg, lua_tostring(L, -1), err, errlen) != 0)
                return cfg_fail(err, errlen, path, "allow_modules must be module names");
            lua_pop(L, 1);
        }
    } else if (am != LUA_TNIL) {
        return cfg_fail(err, errlen, path, "allow_modules must be a name or a list of names");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "services") != LUA_TTABLE)
        return cfg_fail(err, errlen, path, "the config needs services = { {script = ...}, ... }");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TTABLE)
            return cfg_fail(err, errlen, path, "each service must be a table");
        if (read_service(L, cfg, path, err, errlen) != 0)
            return -1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* What read_protected works on. */
struct config_job {
    struct hs_config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int r; /* read_config_table's result */
};

/* Runs the file and reads the table it returns, in protected mode: the file is the
 * operator's, but a metamethod in it (a raising __index, __len or __tostring) must be an
 * error with file:line, not a Lua panic. */
static int read_protected(lua_State *L)
{
    struct config_job *j = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (luaL_loadfilex(L, j->path, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    j->r = read_config_table(L, j->cfg, j->path, j->err, j->errlen);
    return 0;
}

int hs_config_load_file(struct hs_config *cfg, const char *path, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return cfg_fail(err, errlen, path, "out of memory");
    luaL_openlibs(L);
    struct config_job job = {cfg, path, err, errlen, -1};
    lua_pushcfunction(L, read_protected);
    lua_pushlightuserdata(L, &job);
    int r = job.r;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "error in the config file");
    } else {
        r = job.r;
    }
    lua_close(L);
    return r;
}
