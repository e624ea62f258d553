/* Shared by core/script.c (loading and publishing versions) and core/script_decl.c (checking
 * what a script returned) only. Includes lua.h. */
#ifndef HS_SCRIPT_INTERNAL_H
#define HS_SCRIPT_INTERNAL_H

#include <stddef.h>

#include <lua.h>

#include "core/script.h"

/* Checks the handler table on top of the stack of L (what the script at path returned) and
 * fills *decl; on success pushes the callback snapshot: a plain table of the known callbacks
 * and the `http` settings, which is what dispatch reads (raw, never reachable by the script).
 * size_hint: how many function fields the snapshot will likely hold (the running version's
 * decl.n_snapshot; 0 if none), so it is made at its size instead of grown field by field.
 * The table is read through its metamethods, so the caller runs this in protected mode.
 * Returns 0, or HS_ESCRIPT with err (errlen bytes) set to the reason, with file:line when a
 * field can be found in the file (nothing pushed). */
int hs__script_check(lua_State *L, const char *path, unsigned size_hint,
                     struct hs_script_decl *decl, char *err, size_t errlen);

#endif
