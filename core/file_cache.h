/* A short-lived cache of files being served (res:send_file), after nginx's open_file_cache:
 * per (path, root) it keeps what hs_http_file_open found (the validators), the header lines
 * they give, and either the whole file in memory (small files) or its open descriptor. An entry
 * is trusted for valid_ms: after that the next use opens the path again under the same rules
 * (hs_http_file_open) and keeps the entry only if it is still the same file, unchanged (device,
 * inode, size, modification and change times); otherwise the entry is rebuilt or, when the file
 * is gone, dropped. So a file replaced, rewritten, truncated or deleted is served as it was for
 * at most valid_ms. Entries and open descriptors are bounded (least recently used go first), and
 * an entry unused for idle_ms is dropped, closing its descriptor (a deleted file's space is not
 * held). Failures (not found, forbidden) are not cached. Single-threaded: one per process. */
#ifndef HS_FILE_CACHE_H
#define HS_FILE_CACHE_H

#include <stddef.h>

#include "core/http_file.h"

struct event_base;
struct evbuffer_file_segment;
struct hs_file_cache;

/* Defaults of struct hs_file_cache_limits. */
#define HS_FILE_CACHE_ENTRIES 256         /* files remembered at once */
#define HS_FILE_CACHE_FDS 64              /* of which holding an open descriptor */
#define HS_FILE_CACHE_SMALL (16 * 1024)   /* bytes: files up to this are kept in memory */
#define HS_FILE_CACHE_VALID_MS 1000       /* an entry is trusted this long, then checked */
#define HS_FILE_CACHE_IDLE_MS (10 * 1000) /* an entry unused this long is dropped */
#define HS_FILE_CACHE_HEADERS 192         /* bytes of an entry's header lines, NUL included */

/* Limits of a cache; a zero field means its default. */
struct hs_file_cache_limits {
    unsigned entries;   /* files remembered at once */
    unsigned fds;       /* entries holding an open descriptor, at most entries */
    size_t small;       /* bytes: a file this size or smaller is read into memory */
    long long valid_ms; /* an entry is trusted this long after it was last checked */
    long long idle_ms;  /* an entry not used for this long is dropped */
};

/* What a cache entry gives its user. Valid while the user holds the entry (a reference). */
struct hs_file_entry {
    struct hs_http_file f; /* validators; f.fd is the entry's descriptor, or -1 when in memory */
    const char *data;      /* the whole file (f.size bytes) when it is in memory, else NULL */
    char headers[HS_FILE_CACHE_HEADERS]; /* "Last-Modified: …\r\nETag: …\r\n" and
                                          * "Accept-Ranges: bytes\r\n", NUL-terminated */
    size_t headers_len;                  /* bytes of headers, NUL excluded */
};

/* Makes a cache with limits (copied; NULL: all defaults). When base is not NULL, a timer on it
 * drops idle entries while there are any (otherwise only hs_file_cache_sweep does). Returns NULL
 * when memory runs out. */
struct hs_file_cache *hs_file_cache_new(struct event_base *base,
                                        const struct hs_file_cache_limits *limits);

/* Drops every entry and frees the cache; entries still referenced live on until unreferenced.
 * NULL is ignored. */
void hs_file_cache_free(struct hs_file_cache *fc);

/* The entry for path (NUL-terminated) opened under root (NULL: no root), as
 * hs_http_file_open(path, root) would open it, found or made at time now_ms (milliseconds of
 * hs_file_cache_now). On success returns 0 and *out, a reference the caller gives back with
 * hs_file_entry_unref. Otherwise returns hs_http_file_open's negated errno (-ENOENT, -EISDIR,
 * -EACCES, ...) or -ENOMEM. Whatever the path was in the cache for is dropped when it fails. */
int hs_file_cache_get(struct hs_file_cache *fc, const char *path, const char *root,
                      long long now_ms, struct hs_file_entry **out);

/* Gives back a reference from hs_file_cache_get; an entry no longer in the cache is freed (and
 * its descriptor closed) with its last reference. */
void hs_file_entry_unref(struct hs_file_entry *e);

/* The entry's open file, whole, as a libevent file segment for evbuffer_add_file_segment: made on
 * first use and shared by every response that sends it, so that no descriptor is duplicated
 * and closed per response (nginx's open_file_cache shares its descriptors the same way). Every
 * output it is added to holds it, and it holds the entry: the descriptor stays open until the
 * last byte sent from it is out, even after the entry leaves the cache. Valid while the
 * caller holds the entry; the caller does not free it. NULL when the entry is in memory or
 * memory runs out. */
struct evbuffer_file_segment *hs_file_entry_segment(struct hs_file_entry *e);

/* Drops the entries unused since now_ms - idle_ms. Returns the count of entries left. */
unsigned hs_file_cache_sweep(struct hs_file_cache *fc, long long now_ms);

/* Counts, for tests and stats: entries in the cache, of which holding a descriptor, and bytes
 * of file contents held in memory. Any pointer may be NULL. */
void hs_file_cache_counts(const struct hs_file_cache *fc, unsigned *entries, unsigned *fds,
                          size_t *bytes);

/* The clock of the cache: CLOCK_MONOTONIC_COARSE in milliseconds (a few ms of resolution,
 * cheap enough per request). */
long long hs_file_cache_now(void);

#endif
