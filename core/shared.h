/* Shared dictionaries: key/value stores in shared memory, the same for every worker of a
 * server. One region (an unlinked file in /dev/shm, created by the master before the workers,
 * which inherit its descriptor) holds every dictionary of the server: "default" (hotsock.shared)
 * and the named ones of --shared NAME=SIZE. Each dictionary has its own size, lock, hash table
 * and allocator (core/arena.h), so filling one never touches another.
 *
 * Values are numbers, booleans, strings (up to the dictionary's max_value bytes) and lists of
 * strings and numbers. Memory, not an entry count, is the capacity: when a store does not fit,
 * expired entries go first, then the least recently used ones (unless the store is "safe").
 * Every operation runs under the dictionary's process-shared robust mutex; a process that dies
 * holding it leaves the dictionary possibly half-updated, so the next locker empties it (and
 * counts a recovery) rather than trust it: nobody is wedged, nothing is corrupt.
 * Plain C; the Lua face is core/lua_shared.c. */
#ifndef HS_SHARED_H
#define HS_SHARED_H

#include <stddef.h>
#include <stdint.h>

#define HS_SHARED_MAX_DICTS 32                   /* dictionaries in one server */
#define HS_SHARED_MAX_NAME 31                    /* bytes of a name: [A-Za-z0-9_] */
#define HS_SHARED_MAX_KEY 250                    /* bytes in a key */
#define HS_SHARED_DEFAULT_NAME "default"         /* the dictionary of hotsock.shared */
#define HS_SHARED_DEFAULT_SIZE (8 * 1024 * 1024) /* bytes of "default" unless given */
#define HS_SHARED_MIN_SIZE (64 * 1024)           /* bytes of the smallest dictionary */
#define HS_SHARED_MAX_SIZE (2040u * 1024 * 1024) /* bytes of the largest dictionary */
#define HS_SHARED_DEFAULT_MAX_VALUE (64 * 1024)  /* bytes of a string value unless given */
#define HS_SHARED_KEYS_DEFAULT 1024              /* keys() without a max lists this many */

/* Failures (besides -ENOENT "not found", -EEXIST "exists", -ENOMEM "no memory", -E2BIG
 * "too large", -ENOBUFS "the caller's buffer is too small"). */
#define HS_SHARED_ENOTLIST (-4201) /* a list operation on a value that is not a list */
#define HS_SHARED_ECHANGED (-4202) /* cas: the value was not the expected one */
#define HS_SHARED_EISLIST (-4203)  /* a value operation (get) on a list */
#define HS_SHARED_ENOTNUM (-4204)  /* incr on a value that is not a number */

struct hs_shared;      /* a region: every dictionary of a server */
struct hs_shared_dict; /* one dictionary, inside a region */

/* A dictionary to create. */
struct hs_shared_spec {
    char name[HS_SHARED_MAX_NAME + 1];
    size_t size;      /* bytes, HS_SHARED_MIN_SIZE..HS_SHARED_MAX_SIZE */
    size_t max_value; /* bytes of a string value; 0: the default (at most size / 4) */
};

enum hs_shared_type {
    HS_SHARED_NONE,
    HS_SHARED_NUMBER,
    HS_SHARED_STRING,
    HS_SHARED_BOOLEAN,
    HS_SHARED_LIST
};

/* A value going in (str, len) or coming out (copied into buf, cap bytes; len is set to its
 * length, and when len > cap the call returns -ENOBUFS with nothing copied or changed). */
struct hs_shared_value {
    enum hs_shared_type type;
    double num;      /* NUMBER; BOOLEAN as 0 or 1; LIST: its length (get only) */
    const char *str; /* STRING going in; not owned */
    size_t len;      /* STRING bytes */
    char *buf;       /* STRING coming out: the caller's buffer */
    size_t cap;      /* its bytes */
};

/* How hs_shared_store treats an existing key and a full dictionary. */
enum hs_shared_mode {
    HS_SHARED_SET = 0,     /* store, evicting expired then least recently used entries */
    HS_SHARED_SAFE = 1,    /* flag: never evict; -ENOMEM instead */
    HS_SHARED_ADD = 2,     /* only when absent (else -EEXIST) */
    HS_SHARED_REPLACE = 4, /* only when present (else -ENOENT) */
};

/* Counters of one dictionary. */
struct hs_shared_stats {
    size_t size;         /* bytes of the dictionary, tables included */
    size_t capacity;     /* bytes its entries may use */
    size_t used;         /* bytes its entries use now */
    size_t max_value;    /* bytes of a string value */
    uint64_t keys;       /* entries stored (expired ones not yet reclaimed included) */
    uint64_t evicted;    /* live entries removed to make room */
    uint64_t expired;    /* expired entries reclaimed */
    uint64_t recoveries; /* times it was emptied after a process died holding its lock */
};

/* Checks a dictionary name: 1..HS_SHARED_MAX_NAME bytes of [A-Za-z0-9_]. Returns 1 or 0. */
int hs_shared_name_ok(const char *name);

/* Creates a region with the n dictionaries of specs plus "default" (HS_SHARED_DEFAULT_SIZE)
 * when specs does not name it. With fd_out != NULL the region is an unlinked file in /dev/shm
 * whose descriptor (close-on-exec) is stored there, for workers to attach; else anonymous
 * shared memory. Becomes the process's region (hs_shared_region). Returns NULL with errno set
 * (EINVAL for a bad spec). The region stays mapped until hs_shared_free. */
struct hs_shared *hs_shared_create(const struct hs_shared_spec *specs, size_t n, int *fd_out);

/* Maps the region behind fd (from hs_shared_create in a master) and makes it the process's.
 * The descriptor stays the caller's. NULL on failure. */
struct hs_shared *hs_shared_attach(int fd);

/* Unmaps r (NULL is fine); when it is the process's region, there is none afterwards. */
void hs_shared_free(struct hs_shared *r);

/* The process's region (NULL before any create or attach). */
struct hs_shared *hs_shared_region(void);

/* The dictionary called name in r, or NULL. Valid while r is mapped. */
struct hs_shared_dict *hs_shared_dict(struct hs_shared *r, const char *name);

/* The i-th dictionary of r (creation order, "default" first), or NULL past the last. */
struct hs_shared_dict *hs_shared_dict_at(struct hs_shared *r, size_t i);

/* The dictionary's name (owned by the region). */
const char *hs_shared_dict_name(const struct hs_shared_dict *d);

/* Bytes of its largest string value. */
size_t hs_shared_max_value(const struct hs_shared_dict *d);

/* Reads key into *out (see struct hs_shared_value; a list gives type LIST and its length).
 * Marks the key recently used. Returns 0, -ENOENT (absent or expired), or -ENOBUFS. */
int hs_shared_get(struct hs_shared_dict *d, const char *key, size_t klen,
                  struct hs_shared_value *out);

/* Stores key = *v (NUMBER, BOOLEAN or STRING) expiring after ttl seconds (0: never), as mode
 * says. Returns 0; -E2BIG (key empty or too long, value over max_value); -EEXIST (ADD);
 * -ENOENT (REPLACE); -ENOMEM (SAFE and no room, or no room even when empty). */
int hs_shared_store(struct hs_shared_dict *d, const char *key, size_t klen,
                    const struct hs_shared_value *v, double ttl, int mode);

/* Compare and set: when key's value equals *old (type NONE: key absent) it becomes *new (type
 * NONE: deleted) with ttl as for store. Returns 0, HS_SHARED_ECHANGED, or store's errors. */
int hs_shared_cas(struct hs_shared_dict *d, const char *key, size_t klen,
                  const struct hs_shared_value *old, const struct hs_shared_value *new_value,
                  double ttl);

/* Adds n to the number at key, keeping its expiry; an absent key is created as init + n
 * expiring after ttl (0: never). Returns 0 with the new value in *result; HS_SHARED_ENOTNUM (not a
 * number); -E2BIG; -ENOMEM. */
int hs_shared_incr(struct hs_shared_dict *d, const char *key, size_t klen, double n, double init,
                   double ttl, double *result);

/* Removes key. Returns 0 (also when absent). */
int hs_shared_delete(struct hs_shared_dict *d, const char *key, size_t klen);

/* Seconds key has left in *ttl (0: no expiry). Returns 0 or -ENOENT. */
int hs_shared_ttl(struct hs_shared_dict *d, const char *key, size_t klen, double *ttl);

/* Sets key to expire ttl seconds from now (0: never). Returns 0 or -ENOENT. */
int hs_shared_expire(struct hs_shared_dict *d, const char *key, size_t klen, double ttl);

/* Removes every entry. */
void hs_shared_flush_all(struct hs_shared_dict *d);

/* Lists live keys, at most max (0: all) into buf (cap bytes), each as one length byte and its
 * bytes; *count keys, *len bytes. Returns 0, or -ENOBUFS with *len set to the bytes needed. */
int hs_shared_keys(struct hs_shared_dict *d, size_t max, char *buf, size_t cap, size_t *len,
                   size_t *count);

/* Pushes *v (NUMBER or STRING) at the head (left != 0) or tail of the list at key, creating
 * it (no expiry) when absent; an existing list keeps its expiry. Returns 0 with the new length
 * in *len; HS_SHARED_ENOTLIST; -E2BIG; -ENOMEM. */
int hs_shared_push(struct hs_shared_dict *d, const char *key, size_t klen,
                   const struct hs_shared_value *v, int left, size_t *len);

/* Pops the head (left != 0) or tail of the list at key into *out; the key goes with its last
 * element. Returns 0, -ENOENT (absent or empty), HS_SHARED_ENOTLIST, or -ENOBUFS (nothing
 * popped). */
int hs_shared_pop(struct hs_shared_dict *d, const char *key, size_t klen, int left,
                  struct hs_shared_value *out);

/* The length of the list at key in *len (0 when absent). Returns 0 or HS_SHARED_ENOTLIST. */
int hs_shared_llen(struct hs_shared_dict *d, const char *key, size_t klen, size_t *len);

/* Fills *st with the dictionary's counters. */
void hs_shared_stats(struct hs_shared_dict *d, struct hs_shared_stats *st);

/* Writes one stats line per dictionary of r into out (n bytes, NUL-terminated):
 * "dict name=N size=B capacity=B used=B free=B max_value=B keys=N evicted=N expired=N
 * recoveries=N\n". Returns the length written. */
size_t hs_shared_stats_write(struct hs_shared *r, char *out, size_t n);

/* Tests only: moves this process's clock for expiry forward by seconds. */
void hs_shared_debug_advance(double seconds);

/* Tests only: takes d's lock, then ends the process with _exit(0) while holding it. */
void hs_shared_debug_die_locked(struct hs_shared_dict *d);

#endif
