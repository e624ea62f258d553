/* The error tokens: the one table from a core error code to the short fixed string a script
 * sees in `nil, token` (docs/lua-api.md#error-tokens lists them, lua/types/hotsock.lua has
 * them as the alias hotsock.ErrorToken; tests/integration/errtok_spec.lua keeps the three
 * equal). Every place that returns a runtime failure to Lua takes its token from here, so one
 * failure reads the same from every call, and a token never depends on the C library's text.
 */
#ifndef HS_ERRTOK_H
#define HS_ERRTOK_H

#include <stddef.h>

struct lua_State;

/* The longest token hs_errtok_text can produce, NUL included. */
#define HS_ERRTOK_MAX 48

/* The token of code (a negative HS_E* code, a negated errno, or a module's own code such as
 * HS_SHARED_ENOTLIST), a static string; NULL when the table has no entry for code. */
const char *hs_errtok(int code);

/* As hs_errtok, but never NULL: a code without an entry gets the fixed fallback, written into
 * buf (len bytes, at least HS_ERRTOK_MAX): "system error (errno N)" for a negated errno N,
 * "internal error (code N)" for any other code. Returns the static token or buf. */
const char *hs_errtok_text(int code, char *buf, size_t len);

/* The i-th entry of the table (0-based) in *code and the result; NULL past the last entry.
 * For the unit test, which checks the table itself. */
const char *hs_errtok_at(size_t i, int *code);

/* Pushes fail (nil) and the token of code (hs_errtok_text) on L. Returns 2, the count of
 * values pushed, so an l_ function can end with `return hs__lua_fail(L, code);`. Defined in
 * core/lua_errtok.c, which keeps errtok.c free of Lua. */
int hs__lua_fail(struct lua_State *L, int code);

#endif
