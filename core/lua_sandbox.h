/* Sandbox profiles for handler scripts (docs/sandbox.md). Each script runs in an environment
 * of its own built from one of three profiles; the watchdog (the time and memory limits of
 * core/lua_api.h) is on in all three. Does not include lua.h. */
#ifndef HS_LUA_SANDBOX_H
#define HS_LUA_SANDBOX_H

#include <stddef.h>

struct hs_lua;

enum hs_sandbox {
    HS_SANDBOX_STANDARD = 0, /* the default: nothing that can crash, stop or take over */
    HS_SANDBOX_STRICT = 1,   /* also no io, no process or file access outside hotsock's API */
    HS_SANDBOX_TRUSTED = 2,  /* the full standard library (the watchdog stays on) */
};

#define HS_SANDBOX_MAX_MODULES 32 /* --allow-module names per process */
#define HS_LUA_MAX_STRING                                                                          \
    (64 * 1024 * 1024) /* bytes of a string built by string.rep,                                   \
                          table.concat or string.gsub */

/* The C modules a standard script may require when no --allow-module is given: what the
 * shipped scripts use. NULL-terminated. */
extern const char *const hs_sandbox_default_modules[];

/* The profile named name ("standard", "strict", "trusted"), or -1. */
int hs_sandbox_parse(const char *name);

/* The name of a profile (a static string). */
const char *hs_sandbox_name(int profile);

/* Adds name to the C modules standard scripts of hl may require (name and its submodules
 * "name.x"), besides hs_sandbox_default_modules. name is copied. Returns 0, or HS_ETOOBIG
 * past HS_SANDBOX_MAX_MODULES names in all. */
int hs_lua_allow_module(struct hs_lua *hl, const char *name);

#endif
