#include "core/script.h"
#include "core/hs.h"
#include "core/script_internal.h"
#include "core/log.h"
#include "core/lua_internal.h"
#include "core/lua_sandbox.h"
#include "core/stats.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hs_version {
    unsigned refs;            /* the script's "current" slot plus one per connection */
    unsigned generation;      /* 1, 2, ... per script */
    int table_ref;            /* registry reference of the callback snapshot (hs__script_check) */
    int script_ref;           /* registry reference of the table the script returned */
    struct hs_script *script; /* NULL once the script is freed */
    struct hs_lua *hl;
    struct hs_stats_row *stats; /* its counters (core/stats.h), made on first use */
};

#define SCRIPT_MAX_FILES 64 /* files watched per script: itself and its project modules */

struct hs_script {
    struct hs_lua *hl;
    char *path;
    unsigned service; /* its place in the config, from 1 (keys its stats rows); 0: unset */
    struct hs_version *current;
    unsigned generation;
    struct hs_script_decl decl;
    int sandbox; /* enum hs_sandbox of every version */
    size_t n_opts;
    char **opt_keys, **opt_values; /* copies of the options in force */
    char *files[SCRIPT_MAX_FILES]; /* the script, then project modules it required */
    size_t n_files;
    char *modules[SCRIPT_MAX_FILES]; /* their module names, for a fresh require on reload */
    size_t n_modules;
    double last_reload;   /* wall clock of the last attempt, 0 if none */
    int last_ok;          /* that attempt succeeded */
    char last_error[512]; /* its error, "" on success */
};

struct hs_script_pending {
    struct hs_script *s;
    struct hs_version *v;
    size_t n_opts; /* options to install on commit (when has_opts) */
    char **opt_keys, **opt_values;
    int has_opts;
    char *files[SCRIPT_MAX_FILES];
    size_t n_files;
    char *modules[SCRIPT_MAX_FILES];
    size_t n_modules;
    struct hs_script_decl decl; /* last: set by hs__script_check, listen only in part */
};

static unsigned versions_alive;

/* *dst = *src without the unused part of the 16 KiB listen array. */
static void decl_copy(struct hs_script_decl *dst, const struct hs_script_decl *src)
{
    memcpy(dst, src, offsetof(struct hs_script_decl, listen));
    for (unsigned i = 0; i < src->n_listen; i++)
        memcpy(dst->listen[i], src->listen[i], strlen(src->listen[i]) + 1);
}
static struct hs_version_watcher *watchers; /* told when a version goes, in order */

/* Tells every watcher that v retired (freed = 0) or is being freed (freed = 1). */
static void version_gone(struct hs_version *v, int freed)
{
    for (struct hs_version_watcher *w = watchers, *next; w; w = next) {
        next = w->next;
        w->cb(v, freed, w->arg);
    }
}

void hs_version_watch(struct hs_version_watcher *w)
{
    struct hs_version_watcher **at = &watchers;
    while (*at)
        at = &(*at)->next;
    w->next = NULL;
    *at = w;
}

void hs_version_unwatch(struct hs_version_watcher *w)
{
    for (struct hs_version_watcher **at = &watchers; *at; at = &(*at)->next) {
        if (*at == w) {
            *at = w->next;
            w->next = NULL;
            return;
        }
    }
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

static void free_strings(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(v[i]);
    *n = 0;
}

/* Names in package.loaded, as a set table pushed on the stack. */
static void push_loaded_names(lua_State *L)
{
    lua_newtable(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_settable(L, -5);
    }
    lua_pop(L, 1);
}

/* Records the project modules (those not from system directories) that loading added to
 * package.loaded; `before` is the index of the set push_loaded_names made before. */
static void record_modules(lua_State *L, int before, struct hs_script_pending *p)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        lua_pushvalue(L, -1);
        if (lua_rawget(L, before) != LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        const char *name = lua_tostring(L, -1);
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "searchpath");
        lua_pushstring(L, name);
        lua_getfield(L, -3, "path");
        const char *file = NULL;
        if (lua_pcall(L, 2, 1, 0) == LUA_OK)
            file = lua_tostring(L, -1);
        if (file && strncmp(file, "/usr/", 5) != 0 && p->n_files < SCRIPT_MAX_FILES &&
            p->n_modules < SCRIPT_MAX_FILES) {
            p->files[p->n_files++] = strdup(file);
            p->modules[p->n_modules++] = strdup(name);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* Forgets the script's project modules so the next require loads them afresh. Versions
 * already running keep the module tables they hold. */
static void forget_modules(lua_State *L, const struct hs_script *s)
{
    hs__sandbox_push_loaded(L, s->sandbox);
    for (size_t i = 0; i < s->n_modules; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, s->modules[i]);
    }
    lua_pop(L, 1);
}

static void free_options(char **keys, char **values, size_t n);

static void pending_free(struct hs_script_pending *p)
{
    if (p == NULL)
        return;
    if (p->v)
        hs_version_unref(p->v);
    if (p->has_opts)
        free_options(p->opt_keys, p->opt_values, p->n_opts);
    free_strings(p->files, &p->n_files);
    free_strings(p->modules, &p->n_modules);
    free(p);
}

/* Records the Lua modules a restricted version's require loaded (the files table its
 * environment came with, at index files): name -> path. */
static void record_files(lua_State *L, int files, struct hs_script_pending *p)
{
    lua_pushnil(L);
    while (lua_next(L, files) != 0) {
        const char *name = lua_tostring(L, -2), *file = lua_tostring(L, -1);
        if (name && file && strncmp(file, "/usr/", 5) != 0 && p->n_files < SCRIPT_MAX_FILES &&
            p->n_modules < SCRIPT_MAX_FILES) {
            p->files[p->n_files++] = strdup(file);
            p->modules[p->n_modules++] = strdup(name);
        }
        lua_pop(L, 1);
    }
}

/* What load_protected works on. */
struct load_job {
    struct hs_script *s;
    char **keys, **values; /* the options */
    size_t n_opts;
    struct hs_script_pending *p;
    char *err; /* a refusal found by the checks (not an error raised on the way) */
    size_t errlen;
    int refused;
};

/* Everything a load does with values the script controls, as one C function run in
 * protected mode (under the time and memory limits): compile, run the chunk in its fresh
 * environment, check what it returned and keep references. Any error a metamethod or the
 * chunk raises ends here as a load error; nothing reaches lua_atpanic. */
static int load_protected(lua_State *L)
{
    struct load_job *j = lua_touserdata(L, 1);
    struct hs_script *s = j->s;
    struct hs_version *v = j->p->v;
    lua_settop(L, 0);
    add_script_dir_to_path(L, s->path);
    if (luaL_loadfilex(L, s->path, "t") != LUA_OK) {
        snprintf(j->err, j->errlen, "%s", lua_tostring(L, -1)); /* file:line: why */
        j->refused = 1;
        return 0;
    }
    hs__sandbox_env(L, s->sandbox, s->path); /* 2: the environment, 3: its module files */
    lua_pushvalue(L, 2);
    if (lua_setupvalue(L, 1, 1) == NULL)
        lua_pop(L, 1);
    forget_modules(L, s);
    /* 4: what package.loaded holds before the chunk runs, to tell which modules it loads; only
     * a trusted version needs it (no files table at 3), the others' require records them. */
    if (lua_istable(L, 3))
        lua_pushnil(L);
    else
        push_loaded_names(L);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, (int)j->n_opts);
    for (size_t i = 0; i < j->n_opts; i++) {
        lua_pushstring(L, j->values[i]);
        lua_setfield(L, -2, j->keys[i]);
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, v->generation);
    lua_setfield(L, -2, "generation");
    lua_pushstring(L, s->path);
    lua_setfield(L, -2, "path");
    lua_call(L, 2, 1); /* 5: what the script returned */
    unsigned hint = s->current ? s->decl.n_snapshot : 0;
    if (hs__script_check(L, s->path, hint, &j->p->decl, j->err, j->errlen) != 0) {
        j->refused = 1;
        return 0;
    }
    /* 6: the callback snapshot. */
    if (lua_istable(L, 3))
        record_files(L, 3, j->p);
    else
        record_modules(L, 4, j->p);
    v->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    v->script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Loads a version of s with options (keys, values, n) into a pending record. */
static int load_version(struct hs_script *s, char **keys, char **values, size_t n_opts,
                        struct hs_script_pending *p, char *err, size_t errlen)
{
    lua_State *L = s->hl->L;
    struct hs_version *v = calloc(1, sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return HS_ESCRIPT;
    }
    v->script = s;
    v->hl = s->hl;
    v->refs = 1;
    v->table_ref = v->script_ref = LUA_NOREF;
    v->generation = s->generation + 1;
    versions_alive++;
    p->v = v;

    struct load_job job = {s, keys, values, n_opts, p, err, errlen, 0};
    int top = lua_gettop(L);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &job);
    /* Timers the chunk starts belong to this version's load (cancelled when it retires). */
    struct hs_version *was = hs__lua_set_running(s->hl, v, 1);
    int r = hs__lua_pcall(L, 1, 0, err, errlen);
    hs__lua_set_running(s->hl, was, 0);
    lua_settop(L, top);
    if (r != 0 || job.refused)
        return HS_ESCRIPT;
    return 0;
}

static int copy_options(char ***keys, char ***values, size_t *n_out,
                        const struct hs_script_option *opts, size_t n)
{
    *keys = calloc(n + 1, sizeof **keys);
    *values = calloc(n + 1, sizeof **values);
    *n_out = 0;
    if (!*keys || !*values)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*keys)[i] = strdup(opts[i].key);
        (*values)[i] = strdup(opts[i].value);
        if (!(*keys)[i] || !(*values)[i]) {
            free((*keys)[i]);
            free((*values)[i]);
            return -1;
        }
        *n_out = i + 1;
    }
    return 0;
}

static void free_options(char **keys, char **values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
}

static int run_on_reload(struct hs_script_pending *p, char *err, size_t errlen);

int hs_script_prepare(struct hs_script *s, const struct hs_script_option *opts, size_t n,
                      struct hs_script_pending **out, char *err, size_t errlen)
{
    /* Zeroed up to the decl: clearing its listen array would be most of the record. */
    struct hs_script_pending *p = malloc(sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return HS_ESCRIPT;
    }
    memset(p, 0, offsetof(struct hs_script_pending, decl.listen));
    p->s = s;
    p->files[p->n_files++] = strdup(s->path);
    if (opts) {
        p->has_opts = 1;
        if (copy_options(&p->opt_keys, &p->opt_values, &p->n_opts, opts, n) != 0) {
            pending_free(p);
            snprintf(err, errlen, "%s: out of memory", s->path);
            return HS_ESCRIPT;
        }
    }
    int r = p->has_opts ? load_version(s, p->opt_keys, p->opt_values, p->n_opts, p, err, errlen)
                        : load_version(s, s->opt_keys, s->opt_values, s->n_opts, p, err, errlen);
    if (r == 0)
        r = run_on_reload(p, err, errlen);
    if (r != 0) {
        pending_free(p);
        return r;
    }
    *out = p;
    return 0;
}

const struct hs_script_decl *hs_script_pending_decl(const struct hs_script_pending *p)
{
    return &p->decl;
}

void hs_script_discard(struct hs_script_pending *p)
{
    pending_free(p);
}

/* Runs the new version's on_reload(old_table), if any. */
static int run_on_reload(struct hs_script_pending *p, char *err, size_t errlen)
{
    struct hs_script *s = p->s;
    if (s->current == NULL)
        return 0;
    lua_State *L = s->hl->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->current->script_ref);
    struct hs__invoke iv = {.v = p->v,
                            .name = "on_reload",
                            .flags = HS__INVOKE_AT_LOAD | HS__INVOKE_NO_WAIT,
                            .err = err,
                            .errlen = errlen};
    int r = hs__lua_invoke(s->hl, &iv, 1, 0);
    return r == 1 ? 0 : r;
}

void hs_script_commit(struct hs_script_pending *p)
{
    struct hs_script *s = p->s;
    if (p->has_opts) {
        free_options(s->opt_keys, s->opt_values, s->n_opts);
        s->opt_keys = p->opt_keys;
        s->opt_values = p->opt_values;
        s->n_opts = p->n_opts;
        p->opt_keys = p->opt_values = NULL;
        p->n_opts = 0;
        p->has_opts = 0;
    }
    free_strings(s->files, &s->n_files);
    free_strings(s->modules, &s->n_modules);
    memcpy(s->files, p->files, sizeof s->files);
    memcpy(s->modules, p->modules, sizeof s->modules);
    s->n_files = p->n_files;
    s->n_modules = p->n_modules;
    p->n_files = p->n_modules = 0;

    struct hs_version *old = s->current;
    s->current = p->v;
    s->generation = p->v->generation;
    decl_copy(&s->decl, &p->decl);
    p->v = NULL;
    pending_free(p);
    if (old) {
        version_gone(old, 0);
        hs_version_unref(old);
    }
}

int hs_script_reload(struct hs_script *s, const struct hs_script_option *opts, size_t n, char *err,
                     size_t errlen)
{
    struct hs_script_pending *p;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->last_reload = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    int r = hs_script_prepare(s, opts, n, &p, err, errlen);
    if (r == 0)
        hs_script_commit(p);
    s->last_ok = r == 0;
    snprintf(s->last_error, sizeof s->last_error, "%s", r == 0 ? "" : err);
    return r;
}

int hs_script_load(struct hs_lua *hl, const char *path, const struct hs_script_option *opts,
                   size_t n, struct hs_script **out, char *err, size_t errlen)
{
    return hs_script_load_sandboxed(hl, path, opts, n, HS_SANDBOX_STANDARD, out, err, errlen);
}

int hs_script_load_sandboxed(struct hs_lua *hl, const char *path,
                             const struct hs_script_option *opts, size_t n, int sandbox,
                             struct hs_script **out, char *err, size_t errlen)
{
    struct hs_script *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(path)) == NULL ||
        copy_options(&s->opt_keys, &s->opt_values, &s->n_opts, opts, n) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        if (s) {
            free_options(s->opt_keys, s->opt_values, s->n_opts);
            free(s->path);
        }
        free(s);
        return HS_ESCRIPT;
    }
    s->hl = hl;
    s->sandbox = sandbox;
    struct hs_script_pending *p;
    if (hs_script_prepare(s, NULL, 0, &p, err, errlen) != 0) {
        free_options(s->opt_keys, s->opt_values, s->n_opts);
        free(s->path);
        free(s);
        return HS_ESCRIPT;
    }
    hs_script_commit(p);
    *out = s;
    return 0;
}

void hs_script_set_service(struct hs_script *s, unsigned service)
{
    s->service = service;
    /* A row made before the script knew its place would be keyed wrong: make it again. */
    if (s->current && s->current->stats) {
        hs_stats_row_release(s->current->stats);
        s->current->stats = NULL;
    }
}

unsigned hs_script_service(const struct hs_script *s)
{
    return s->service;
}

void hs_script_free(struct hs_script *s)
{
    if (s == NULL)
        return;
    s->current->script = NULL;
    version_gone(s->current, 0);
    hs_version_unref(s->current);
    free_options(s->opt_keys, s->opt_values, s->n_opts);
    free_strings(s->files, &s->n_files);
    free_strings(s->modules, &s->n_modules);
    free(s->path);
    free(s);
}

const char *hs_script_file(const struct hs_script *s, size_t i)
{
    return i < s->n_files ? s->files[i] : NULL;
}

void hs_script_last_reload(const struct hs_script *s, double *when, int *ok, const char **error)
{
    *when = s->last_reload;
    *ok = s->last_ok;
    *error = s->last_error;
}

const struct hs_script_decl *hs_script_decl(const struct hs_script *s)
{
    return &s->decl;
}

int hs_script_sandbox(const struct hs_script *s)
{
    return s->sandbox;
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
    version_gone(v, 1);
    hs_stats_row_release(v->stats);
    luaL_unref(v->hl->L, LUA_REGISTRYINDEX, v->table_ref);
    luaL_unref(v->hl->L, LUA_REGISTRYINDEX, v->script_ref);
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

HS_HOT struct hs_stats_row *hs_version_stats(struct hs_version *v)
{
    if (v == NULL)
        return NULL;
    if (v->stats == NULL && v->script != NULL)
        v->stats = hs_stats_row_get(v->script->service, v->script->path, v->script->decl.name,
                                    v->generation);
    return v->stats;
}

unsigned hs_version_live_count(void)
{
    return versions_alive;
}
