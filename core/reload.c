#include "core/reload.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hs_version {
    unsigned refs;            /* the script's "current" slot plus one per connection */
    unsigned generation;      /* 1, 2, ... per script */
    int table_ref;            /* registry reference of the handler table */
    struct hs_script *script; /* NULL once the script is freed */
    struct hs_lua *hl;
};

struct hs_script {
    struct hs_lua *hl;
    char *path;
    struct hs_version *current;
    unsigned generation;
    struct hs_script_decl decl;
    size_t n_opts;
    char **opt_keys, **opt_values; /* copies of the options in force */
};

static unsigned versions_alive;

static const char *const known_callbacks[] = {
    "on_accept", "on_connect", "on_message", "on_close", "on_datagram", "on_request", NULL,
};

/* Best effort at a line number for a field of the returned table: the first line of the file
 * that assigns it. Good enough to point a user at `framing = "bogus"`. */
static int find_field_line(const char *path, const char *field)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    char line[1024];
    int n = 0, found = 0;
    size_t fl = strlen(field);
    while (!found && fgets(line, sizeof line, fp)) {
        n++;
        for (char *p = strstr(line, field); p; p = strstr(p + 1, field)) {
            char *q = p + fl;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=' && q[1] != '=' && (p == line || !(p[-1] == '_' || p[-1] == '.'))) {
                found = n;
                break;
            }
        }
    }
    fclose(fp);
    return found;
}

static int decl_error(const char *path, const char *field, char *err, size_t errlen,
                      const char *what, const char *why)
{
    int line = find_field_line(path, field);
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s: %s", path, line, what, why);
    else
        snprintf(err, errlen, "%s: %s: %s", path, what, why);
    return HS_ESCRIPT;
}

/* Checks the handler table on top of the stack and fills *decl. */
static int check_table(lua_State *L, const char *path, struct hs_script_decl *decl, char *err,
                       size_t errlen)
{
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) {
        snprintf(err, errlen, "%s: the script must return a table of callbacks (got %s)", path,
                 luaL_typename(L, t));
        return HS_ESCRIPT;
    }
    int callbacks = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        const char *k = lua_tostring(L, -1);
        if (strncmp(k, "on_", 3) != 0)
            continue;
        int known = 0;
        for (int i = 0; known_callbacks[i]; i++)
            known |= strcmp(k, known_callbacks[i]) == 0;
        if (!known) {
            lua_pop(L, 1);
            return decl_error(path, k, err, errlen, k,
                              "unknown callback (known: on_accept, on_connect, on_message, "
                              "on_close, on_datagram, on_request)");
        }
        lua_pushvalue(L, -1);
        if (lua_gettable(L, t) != LUA_TFUNCTION) {
            char what[64];
            snprintf(what, sizeof what, "%s", k);
            lua_pop(L, 2);
            return decl_error(path, what, err, errlen, what, "must be a function");
        }
        lua_pop(L, 1);
        callbacks++;
    }
    if (callbacks == 0) {
        snprintf(err, errlen, "%s: the returned table has no on_* callback", path);
        return HS_ESCRIPT;
    }

    memset(decl, 0, sizeof *decl);
    const char *base = strrchr(path, '/');
    snprintf(decl->name, sizeof decl->name, "%s", base ? base + 1 : path);
    char *dot = strrchr(decl->name, '.');
    if (dot && strcmp(dot, ".lua") == 0)
        *dot = '\0';
    if (lua_getfield(L, t, "name") == LUA_TSTRING)
        snprintf(decl->name, sizeof decl->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);

    snprintf(decl->protocol, sizeof decl->protocol, "stream");
    int pt = lua_getfield(L, t, "protocol");
    if (pt != LUA_TNIL) {
        const char *p = lua_tostring(L, -1);
        if (pt != LUA_TSTRING || (strcmp(p, "stream") != 0 && strcmp(p, "http") != 0)) {
            lua_pop(L, 1);
            return decl_error(path, "protocol", err, errlen, "bad protocol",
                              "must be \"stream\" or \"http\"");
        }
        snprintf(decl->protocol, sizeof decl->protocol, "%s", p);
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "framing") != LUA_TNIL) {
        const char *why = "bad framing";
        if (hs__lua_to_framing(L, -1, &decl->framing, &why) != 0) {
            lua_pop(L, 1);
            return decl_error(path, "framing", err, errlen, "bad framing", why);
        }
        decl->has_framing = 1;
    }
    lua_pop(L, 1);

    int lt = lua_getfield(L, t, "listen");
    if (lt == LUA_TSTRING) {
        lua_newtable(L);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    } else if (lt != LUA_TNIL && lt != LUA_TTABLE) {
        lua_pop(L, 1);
        return decl_error(path, "listen", err, errlen, "bad listen",
                          "must be a URL string or a list of them");
    }
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *url = lua_tostring(L, -1);
            struct hs_addr a;
            const char *why = "not a string";
            if (url == NULL || hs_addr_parse(url, &a, &why) != 0 ||
                decl->n_listen >= HS_SCRIPT_MAX_LISTEN) {
                if (decl->n_listen >= HS_SCRIPT_MAX_LISTEN)
                    why = "too many listen addresses";
                char what[128];
                snprintf(what, sizeof what, "bad listen address '%s'", url ? url : "?");
                lua_pop(L, 2);
                return decl_error(path, "listen", err, errlen, what, why);
            }
            snprintf(decl->listen[decl->n_listen++], sizeof decl->listen[0], "%s", url);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return 0;
}

/* Makes require() find modules next to the script. */
static void add_script_dir_to_path(lua_State *L, const char *path)
{
    const char *slash = strrchr(path, '/');
    char entry[1100];
    if (slash)
        snprintf(entry, sizeof entry, "%.*s/?.lua;", (int)(slash - path), path);
    else
        snprintf(entry, sizeof entry, "./?.lua;");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *cur = lua_tostring(L, -1);
    if (cur && strstr(cur, entry) == NULL) {
        lua_pushfstring(L, "%s%s", entry, cur);
        lua_setfield(L, -3, "path");
    }
    lua_pop(L, 2);
}

/* Loads a new version of the script with its current options; on success *out. */
static int load_version(struct hs_script *s, struct hs_version **out, struct hs_script_decl *decl,
                        char *err, size_t errlen)
{
    lua_State *L = hs_lua_state(s->hl);
    int top = lua_gettop(L);
    add_script_dir_to_path(L, s->path);
    if (luaL_loadfilex(L, s->path, "t") != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return HS_ESCRIPT;
    }
    /* A fresh environment per version: globals a script sets never leak into another
     * script or into its own next version; reads fall through to the shared globals. */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    lua_createtable(L, 0, (int)s->n_opts);
    for (size_t i = 0; i < s->n_opts; i++) {
        lua_pushstring(L, s->opt_values[i]);
        lua_setfield(L, -2, s->opt_keys[i]);
    }
    if (hs__lua_pcall(L, 1, 1, err, errlen) != 0) {
        lua_settop(L, top);
        return HS_ESCRIPT;
    }
    if (check_table(L, s->path, decl, err, errlen) != 0) {
        lua_settop(L, top);
        return HS_ESCRIPT;
    }
    struct hs_version *v = calloc(1, sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        lua_settop(L, top);
        return HS_ESCRIPT;
    }
    v->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    v->script = s;
    v->hl = s->hl;
    v->refs = 1;
    lua_settop(L, top);
    versions_alive++;
    *out = v;
    return 0;
}

static void free_options(struct hs_script *s)
{
    for (size_t i = 0; i < s->n_opts; i++) {
        free(s->opt_keys[i]);
        free(s->opt_values[i]);
    }
    free(s->opt_keys);
    free(s->opt_values);
    s->opt_keys = s->opt_values = NULL;
    s->n_opts = 0;
}

static int copy_options(struct hs_script *s, const struct hs_script_option *opts, size_t n)
{
    s->opt_keys = calloc(n + 1, sizeof *s->opt_keys);
    s->opt_values = calloc(n + 1, sizeof *s->opt_values);
    if (!s->opt_keys || !s->opt_values)
        return -1;
    for (size_t i = 0; i < n; i++) {
        s->opt_keys[i] = strdup(opts[i].key);
        s->opt_values[i] = strdup(opts[i].value);
        s->n_opts = i + 1;
        if (!s->opt_keys[i] || !s->opt_values[i])
            return -1;
    }
    return 0;
}

int hs_script_load(struct hs_lua *hl, const char *path, const struct hs_script_option *opts,
                   size_t n, struct hs_script **out, char *err, size_t errlen)
{
    struct hs_script *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(path)) == NULL || copy_options(s, opts, n) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        if (s)
            free_options(s);
        free(s ? s->path : NULL);
        free(s);
        return HS_ESCRIPT;
    }
    s->hl = hl;
    struct hs_script_decl decl;
    if (load_version(s, &s->current, &decl, err, errlen) != 0) {
        free_options(s);
        free(s->path);
        free(s);
        return HS_ESCRIPT;
    }
    s->decl = decl;
    s->generation = 1;
    s->current->generation = 1;
    *out = s;
    return 0;
}

int hs_script_reload(struct hs_script *s, const struct hs_script_option *opts, size_t n, char *err,
                     size_t errlen)
{
    size_t old_n = s->n_opts;
    char **old_keys = s->opt_keys, **old_values = s->opt_values;
    if (opts) {
        s->n_opts = 0;
        if (copy_options(s, opts, n) != 0) {
            free_options(s);
            s->n_opts = old_n;
            s->opt_keys = old_keys;
            s->opt_values = old_values;
            snprintf(err, errlen, "%s: out of memory", s->path);
            return HS_ESCRIPT;
        }
    }
    struct hs_version *v;
    struct hs_script_decl decl;
    if (load_version(s, &v, &decl, err, errlen) != 0) {
        if (opts) {
            free_options(s);
            s->n_opts = old_n;
            s->opt_keys = old_keys;
            s->opt_values = old_values;
        }
        return HS_ESCRIPT;
    }
    if (opts) {
        struct hs_script tmp = {0};
        tmp.n_opts = old_n;
        tmp.opt_keys = old_keys;
        tmp.opt_values = old_values;
        free_options(&tmp);
    }
    v->generation = ++s->generation;
    struct hs_version *old = s->current;
    s->current = v;
    s->decl = decl;
    hs_version_unref(old);
    return 0;
}

void hs_script_free(struct hs_script *s)
{
    if (s == NULL)
        return;
    s->current->script = NULL;
    hs_version_unref(s->current);
    free_options(s);
    free(s->path);
    free(s);
}

const struct hs_script_decl *hs_script_decl(const struct hs_script *s)
{
    return &s->decl;
}

const char *hs_script_path(const struct hs_script *s)
{
    return s->path;
}

unsigned hs_script_generation(const struct hs_script *s)
{
    return s->generation;
}

struct hs_version *hs_script_current(struct hs_script *s)
{
    return s->current;
}

struct hs_lua *hs_script_lua(const struct hs_script *s)
{
    return s->hl;
}

void hs_version_ref(struct hs_version *v)
{
    v->refs++;
}

void hs_version_unref(struct hs_version *v)
{
    if (v == NULL || --v->refs > 0)
        return;
    luaL_unref(hs_lua_state(v->hl), LUA_REGISTRYINDEX, v->table_ref);
    versions_alive--;
    free(v);
}

int hs_version_table_ref(const struct hs_version *v)
{
    return v->table_ref;
}

unsigned hs_version_generation(const struct hs_version *v)
{
    return v->generation;
}

struct hs_script *hs_version_script(const struct hs_version *v)
{
    return v->script;
}

unsigned hs_version_live_count(void)
{
    return versions_alive;
}
