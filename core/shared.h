/* A small dictionary in shared memory, the same for every worker of a server: atomic get,
 * set, incr and delete with optional expiry, under one process-shared robust mutex (a worker
 * that dies holding it cannot wedge the others). Fixed-size slots, no allocation after
 * creation. Plain C; the Lua face is hotsock.shared (lua_api.c). */
#ifndef HS_SHARED_H
#define HS_SHARED_H

#include <stddef.h>

#define HS_SHARED_SIZE (4 * 1024 * 1024) /* bytes of the region: 8,192 slots */
#define HS_SHARED_MAX_KEY 128            /* bytes in a key */
#define HS_SHARED_MAX_VALUE 352          /* bytes in a string value */

struct hs_shared;

enum hs_shared_type { HS_SHARED_NONE, HS_SHARED_NUMBER, HS_SHARED_STRING, HS_SHARED_BOOLEAN };

/* A value read out of the dictionary (strings are copied into `str`). */
struct hs_shared_value {
    enum hs_shared_type type;
    double num;                    /* NUMBER; BOOLEAN as 0 or 1 */
    size_t len;                    /* STRING */
    char str[HS_SHARED_MAX_VALUE]; /* STRING */
};

/* Creates a region of `size` bytes, backed by an unlinked file in /dev/shm. With
 * fd_out != NULL its descriptor (close-on-exec) is stored there, for workers to attach.
 * Returns NULL on failure. */
struct hs_shared *hs_shared_create(size_t size, int *fd_out);

/* Maps the region behind fd (from hs_shared_create in a master). NULL on failure. */
struct hs_shared *hs_shared_attach(int fd);

/* The process's region, set by the last create/attach (NULL before). */
struct hs_shared *hs_shared_default(void);

/* Reads key. Returns 0 and *out, or -ENOENT (absent or expired). */
int hs_shared_get(struct hs_shared *d, const char *key, size_t klen, struct hs_shared_value *out);

/* Stores key = *v, expiring after ttl seconds (0: never). Returns 0, -E2BIG for a key or
 * value too long, -ENOSPC when every slot is taken. */
int hs_shared_set(struct hs_shared *d, const char *key, size_t klen,
                  const struct hs_shared_value *v, double ttl);

/* Adds n to the number at key, creating it as init + n (expiring after ttl, 0: never) when
 * absent. Returns 0 with the new value in *result, -EINVAL when the value is not a number,
 * -E2BIG, -ENOSPC. */
int hs_shared_incr(struct hs_shared *d, const char *key, size_t klen, double n, double init,
                   double ttl, double *result);

/* Removes key. Returns 0 (also when absent). */
int hs_shared_delete(struct hs_shared *d, const char *key, size_t klen);

/* Number of live (unexpired) keys, and the capacity in slots. */
void hs_shared_counts(struct hs_shared *d, size_t *used, size_t *capacity);

#endif
