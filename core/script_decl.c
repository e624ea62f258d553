/* What a script declares, read from the table its chunk returned: the known callbacks (a
 * typo in an on_* name is a load error), `name`, `protocol`, `framing`, `listen`, and the
 * `http` settings, with the line of the file a bad field was set on. The other half of
 * core/script.c, which loads and publishes versions. */
#include "core/script.h"
#include "core/addr.h"
#include "core/hs.h"
#include "core/lua_internal.h"
#include "core/script_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const known_callbacks[] = {
    "on_accept",  "on_connect", "on_message", "on_close",      "on_datagram",
    "on_request", "on_upgrade", "on_reload",  "on_http_error", NULL,
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

/* The value on top, a setting read from the script's `http` table, made plain: numbers,
 * strings and booleans stay; anything else becomes false (logged and defaulted per
 * connection by lua_http.c, as before). */
static void plain_setting(lua_State *L)
{
    int type = lua_type(L, -1);
    if (type != LUA_TNUMBER && type != LUA_TSTRING && type != LUA_TBOOLEAN) {
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
    }
}

/* Copies the script's `http` table (field of the table at t), when it has one, into a plain
 * table set as field "http" of the snapshot at snap: connections read it later, outside any
 * protected call, so they must find no metamethod there. Every field is copied; the settings
 * hotsock knows are read once more through the metamethods (an inherited one counts, a
 * raising __index is a load error). */
static void snapshot_http(lua_State *L, int t, int snap)
{
    static const char *const keys[] = {"max_body",          "header_timeout", "body_timeout",
                                       "keepalive_timeout", "allow_get_body", NULL};
    if (lua_getfield(L, t, "http") == LUA_TTABLE) {
        int http = lua_gettop(L);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, http) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                plain_setting(L);
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, http + 1);
            } else {
                lua_pop(L, 1);
            }
        }
        for (int i = 0; keys[i]; i++) {
            if (lua_getfield(L, http, keys[i]) == LUA_TNIL) {
                lua_pop(L, 1);
                continue;
            }
            plain_setting(L);
            lua_setfield(L, http + 1, keys[i]);
        }
        lua_setfield(L, snap, "http");
    }
    lua_pop(L, 1);
}

/* A raising __index or __len on the returned table is an error like any other: the caller
 * runs this in protected mode (core/script_internal.h). */
int hs__script_check(lua_State *L, const char *path, unsigned size_hint,
                     struct hs_script_decl *decl, char *err, size_t errlen)
{
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) {
        snprintf(err, errlen, "%s: the script must return a table of callbacks (got %s)", path,
                 luaL_typename(L, t));
        return HS_ESCRIPT;
    }
    /* Typos first: an on_* key we do not know. Every function field goes into the snapshot
     * (stream_body of HTTP scripts, for one); the known callbacks are then read again through
     * the metamethods, so one inherited through __index counts too. */
    lua_createtable(L, 0, size_hint > 8 && size_hint < 4096 ? (int)size_hint + 1 : 8);
    int snap = lua_gettop(L);
    unsigned n_snapshot = 0;
    unsigned long seen = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (++seen % 4096 == 0)
            hs__lua_check_time(L);
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -1) == LUA_TFUNCTION) {
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, snap);
            n_snapshot++;
        }
        lua_pop(L, 1);
        const char *k = lua_tostring(L, -1);
        /* handle(conn) is the one callback without the prefix: a whole connection's code. */
        int handle = strcmp(k, "handle") == 0;
        if (strncmp(k, "on_", 3) != 0 && !handle)
            continue;
        int known = 0;
        for (int i = 0; known_callbacks[i]; i++)
            known |= strcmp(k, known_callbacks[i]) == 0;
        known |= handle;
        if (!known) {
            char what[64];
            snprintf(what, sizeof what, "%s", k);
            lua_settop(L, t);
            return decl_error(path, what, err, errlen, what,
                              "unknown callback (known: on_accept, on_connect, on_message, "
                              "on_close, on_datagram, on_request, on_upgrade, on_reload, "
                              "on_http_error)");
        }
    }
    int callbacks = 0;
    for (int i = 0; i == 0 || known_callbacks[i - 1]; i++) {
        const char *name = known_callbacks[i] ? known_callbacks[i] : "handle";
        int type = lua_getfield(L, t, name);
        if (type == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (type != LUA_TFUNCTION) {
            lua_settop(L, t);
            return decl_error(path, name, err, errlen, name, "must be a function");
        }
        lua_setfield(L, snap, name);
        callbacks++;
    }
    if (callbacks == 0) {
        lua_settop(L, t);
        snprintf(err, errlen, "%s: the returned table has no on_* callback (nor handle)", path);
        return HS_ESCRIPT;
    }
    snapshot_http(L, t, snap);

    /* Not the listen array (16 KiB): entries past n_listen are never read. */
    memset(decl, 0, offsetof(struct hs_script_decl, listen));
    decl->n_snapshot = n_snapshot;
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
            lua_settop(L, t);
            return decl_error(path, "protocol", err, errlen, "bad protocol",
                              "must be \"stream\" or \"http\"");
        }
        snprintf(decl->protocol, sizeof decl->protocol, "%s", p);
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "framing") != LUA_TNIL) {
        const char *why = "bad framing";
        if (hs__lua_to_framing(L, -1, &decl->framing, &why) != 0) {
            lua_settop(L, t);
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
        lua_settop(L, t);
        return decl_error(path, "listen", err, errlen, "bad listen",
                          "must be a URL string or a list of them");
    }
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            const char *url = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            struct hs_addr a;
            const char *why = "not a string";
            if (url == NULL || hs_addr_parse(url, &a, &why) != 0 ||
                decl->n_listen >= HS_SCRIPT_MAX_LISTEN) {
                if (decl->n_listen >= HS_SCRIPT_MAX_LISTEN)
                    why = "too many listen addresses";
                char what[128];
                snprintf(what, sizeof what, "bad listen address '%s'", url ? url : "?");
                lua_settop(L, t);
                return decl_error(path, "listen", err, errlen, what, why);
            }
            snprintf(decl->listen[decl->n_listen++], sizeof decl->listen[0], "%s", url);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return 0;
}
