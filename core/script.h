/* Scripts and their versions. A script is a handler file plus its options; loading it
 * produces a version (the handler table it returned). Loading is all-or-nothing: a new version
 * is compiled, run and validated completely before it becomes current, and a failure leaves
 * the current version in place. Connections hold a reference to the version they started
 * with; a version is freed when it is no longer current and its last connection is gone. */
#ifndef HS_SCRIPT_H
#define HS_SCRIPT_H

#include <stddef.h>

#include "core/addr.h"
#include "core/framing.h"

struct hs_lua;
struct hs_script;
struct hs_version;

#define HS_SCRIPT_MAX_LISTEN 16  /* default listener URLs a script may declare */
#define HS_SCRIPT_MAX_OPTIONS 64 /* --set key=value pairs per script */

/* One --set key=value option. Strings are owned by the caller. */
struct hs_script_option {
    const char *key;
    const char *value;
};

/* What a script declares about itself, read from the table it returns. */
struct hs_script_decl {
    char name[64];             /* `name` field, or the file's base name */
    char protocol[16];         /* "stream" (default) or "http" */
    int has_framing;           /* `framing` field present */
    struct hs_framing framing; /* its value */
    unsigned n_snapshot;       /* function fields in the callback snapshot (sizes the next one's) */
    unsigned n_listen;         /* `listen` entries */
    /* Their URLs, options included. Last, and only the first n_listen are set: the array is
     * 16 KiB, which a reload neither clears nor copies whole. */
    char listen[HS_SCRIPT_MAX_LISTEN][HS_ADDR_MAX_URL];
};

/* Loads path (text only) into a fresh environment of sandbox profile `sandbox` (enum
 * hs_sandbox, core/lua_sandbox.h; every version of the script gets the same), calls the
 * chunk with a table of the options and a table {generation, path}, and checks what it
 * returned: a table whose on_* fields are functions, a valid `framing` and `listen`. All of
 * it runs in protected mode under the Lua limits: an error anywhere, a raising metamethod
 * included, is a load error. The callbacks are read once, here. Returns 0 and *out (the
 * script, with version 1 current), or HS_ESCRIPT with err (size errlen) set to the reason
 * with file:line. opts (n of them) are copied. */
int hs_script_load_sandboxed(struct hs_lua *hl, const char *path,
                             const struct hs_script_option *opts, size_t n, int sandbox,
                             struct hs_script **out, char *err, size_t errlen);

/* hs_script_load_sandboxed with the standard profile. */
int hs_script_load(struct hs_lua *hl, const char *path, const struct hs_script_option *opts,
                   size_t n, struct hs_script **out, char *err, size_t errlen);

/* The sandbox profile the script runs under (enum hs_sandbox). */
int hs_script_sandbox(const struct hs_script *s);

/* A version loaded and validated but not yet current (see hs_script_prepare). */
struct hs_script_pending;

/* Loads the script's file again as a new version, with new options when opts != NULL
 * (otherwise the ones it had), without publishing it: nothing changes for the running
 * version. Modules the script required from outside the system directories are loaded
 * afresh. The new version's on_reload(old_table) hook, if any, runs last (an error there
 * fails the prepare). Returns 0 and *out, or HS_ESCRIPT with err set (file:line). */
int hs_script_prepare(struct hs_script *s, const struct hs_script_option *opts, size_t n,
                      struct hs_script_pending **out, char *err, size_t errlen);

/* What the pending version declares (listen, framing, ...). */
const struct hs_script_decl *hs_script_pending_decl(const struct hs_script_pending *p);

/* Publishes the pending version: it becomes current for new connections, and the retired
 * version's watchers are told (hs_version_watch: its load-time timers are cancelled). Cannot
 * fail. Frees p. */
void hs_script_commit(struct hs_script_pending *p);

/* Drops a pending version; the current one stays. Frees p. */
void hs_script_discard(struct hs_script_pending *p);

/* prepare + commit in one step. */
int hs_script_reload(struct hs_script *s, const struct hs_script_option *opts, size_t n, char *err,
                     size_t errlen);

/* The files behind the current version: the script first, then project modules it
 * required. Returns the i-th path (owned by s) or NULL past the end. */
const char *hs_script_file(const struct hs_script *s, size_t i);

/* The time of the last reload attempt (wall clock seconds, 0 if none), whether it
 * succeeded, and its error text ("" on success). */
void hs_script_last_reload(const struct hs_script *s, double *when, int *ok, const char **error);

/* Frees the script. Versions still held by connections live on until those close. */
void hs_script_free(struct hs_script *s);

/* The script's declarations as of its current version. */
const struct hs_script_decl *hs_script_decl(const struct hs_script *s);

/* The path it was loaded from (as given). */
const char *hs_script_path(const struct hs_script *s);

/* Sets, and reads, the script's place among the services of the config (from 1; 0 until
 * set). Its versions' stats rows are keyed by it, so two services running one file count
 * apart. Set it right after hs_script_load. */
void hs_script_set_service(struct hs_script *s, unsigned service);
unsigned hs_script_service(const struct hs_script *s);

/* The generation of the current version: 1 for the first load, +1 per successful reload. */
unsigned hs_script_generation(const struct hs_script *s);

/* The current version; take a reference for as long as you use it. */
struct hs_version *hs_script_current(struct hs_script *s);

/* The Lua state the script lives in. */
struct hs_lua *hs_script_lua(const struct hs_script *s);

/* Reference counting of versions: a connection refs the version it runs. */
void hs_version_ref(struct hs_version *v);
void hs_version_unref(struct hs_version *v);

/* The registry reference of the version's callbacks: a plain table (no metatable, out of the
 * script's reach) of the on_* functions and the `http` settings it returned at load. */
int hs_version_table_ref(const struct hs_version *v);

/* The version's generation. */
unsigned hs_version_generation(const struct hs_version *v);

/* The script the version belongs to (NULL once the script was freed). */
struct hs_script *hs_version_script(const struct hs_version *v);

/* The version's counters (core/stats.h), made on first use; NULL when the table is full or
 * the script is gone. Owned by the version. */
struct hs_stats_row;
struct hs_stats_row *hs_version_stats(struct hs_version *v);

/* Number of versions alive (current or held by connections), across all scripts. */
unsigned hs_version_live_count(void);

/* Told when a version goes: once when it retires (it stops being current: a reload published
 * another, or its script was freed; freed = 0) and once when it is freed (its last reference
 * went; freed = 1). The runtime's objects a version owns (timers, subscriptions: core/owned.h)
 * are released there, so this module never calls up into the Lua runtime. v is valid for the
 * call; the callback must not free a script or unref a version. */
typedef void (*hs_version_gone_cb)(struct hs_version *v, int freed, void *arg);

/* A registration for hs_version_watch. The caller owns it (usually embedded in what it
 * watches for), fills cb and arg, and keeps it in place until hs_version_unwatch. */
struct hs_version_watcher {
    hs_version_gone_cb cb;
    void *arg;
    struct hs_version_watcher *next; /* this module's link */
};

/* Adds w to those told when versions go, after those added before (they are told in that
 * order). Cannot fail. */
void hs_version_watch(struct hs_version_watcher *w);

/* Removes w (nothing when it is not registered). */
void hs_version_unwatch(struct hs_version_watcher *w);

#endif
