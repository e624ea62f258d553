/* `hotsock new NAME`: a starter handler and its spec, written into a directory. */
#ifndef HS_SCAFFOLD_H
#define HS_SCAFFOLD_H

#include <stddef.h>

#define HS_SCAFFOLD_NAME_MAX 64 /* bytes of a handler name */

/* Whether name can name a handler: a letter, then letters, digits, '_' or '-'. */
int hs_scaffold_name_ok(const char *name);

/* Writes DIR/NAME.lua (a commented line-protocol handler) and DIR/NAME_spec.lua (its busted
 * spec, using hotsock.testkit). Never overwrites: an existing file is -EEXIST and nothing is
 * written. Returns 0, or HS_EBADSPEC (a bad name), -EEXIST, or another negative errno, with
 * err (errlen bytes) set to a one-line reason. */
int hs_scaffold_write(const char *dir, const char *name, char *err, size_t errlen);

#endif
