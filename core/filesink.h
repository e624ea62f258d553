/* Files written from the network safely: a plain-name check, a temporary file in the target
 * directory, streaming writes with a running SHA-256, then fsync + rename + directory fsync
 * so the final name never shows a partial file. Plain C, no Lua. */
#ifndef HS_FILESINK_H
#define HS_FILESINK_H

#include <stddef.h>
#include <stdint.h>

#define HS_FILENAME_MAX 255                /* bytes in an uploaded file's name */
#define HS_FILESINK_FLUSH_AFTER (8u << 20) /* bytes written before their write-back is started */

struct hs_filesink;

/* Checks that name (len bytes, not necessarily NUL-terminated) is a plain file name: not
 * empty, not "." or "..", no '/', '\\' or NUL, at most HS_FILENAME_MAX bytes, valid UTF-8
 * (no overlongs, no surrogates), and not starting with ".hs-upload-" (our temporary
 * files). Returns 0, or HS_EPROTO with *why set to a static reason. */
int hs_filename_check(const char *name, size_t len, const char **why);

/* Creates the directory dir (and its parents) if missing, checks name, and opens a new
 * temporary file in dir for it. Returns 0 and *out, HS_EPROTO for a bad name (*why set), or a
 * negated errno (*why set to strerror). */
int hs_filesink_open(const char *dir, const char *name, size_t name_len, struct hs_filesink **out,
                     const char **why);

/* Appends len bytes; each time another HS_FILESINK_FLUSH_AFTER bytes are complete, starts
 * their write-back to disk without waiting for it. On the first failure (for example -ENOSPC) the
 * temporary file is removed at once and every later call returns the same error. */
int hs_filesink_write(struct hs_filesink *f, const void *data, size_t len);

/* Flushes the file to disk, renames it to its name and flushes the directory. Returns 0 and
 * fills bytes and sha256_hex (65 bytes with the NUL), or a negated errno (nothing is left
 * behind). A sink can be committed once. */
int hs_filesink_commit(struct hs_filesink *f, uint64_t *bytes, char sha256_hex[65]);

/* Removes the temporary file unless committed. Idempotent. */
void hs_filesink_abort(struct hs_filesink *f);

/* Aborts if needed and frees f. */
void hs_filesink_free(struct hs_filesink *f);

/* Bytes written so far; the final path (dir/name). */
uint64_t hs_filesink_size(const struct hs_filesink *f);
const char *hs_filesink_path(const struct hs_filesink *f);

/* 1 once committed, -1 once failed or aborted, 0 while open. */
int hs_filesink_state(const struct hs_filesink *f);

#endif
