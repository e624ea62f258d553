/* CLOCK_MONOTONIC_COARSE is Linux: GNU. */
#define _GNU_SOURCE

#include "core/file_cache.h"
#include "core/hs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* An entry: the public view first, then the cache's bookkeeping, then (one allocation) the
 * key and, for a file kept in memory, its contents. */
struct entry {
    struct hs_file_entry pub;
    struct hs_file_cache *fc; /* NULL once dropped from the cache */
    unsigned refs;            /* the cache's own (while in it), each user's, and its segment's */
    /* The open file as a libevent file segment, made on first use and shared by every output
     * that sends from it (hs_file_entry_segment). This is the entry's own reference to it,
     * held while the entry can still hand it out; the segment holds one of the entry's. */
    struct evbuffer_file_segment *seg;
    uint32_t hash;             /* of the key */
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* use order: head most recent */
    long long checked_ms;      /* last time the path was found to name this file */
    long long used_ms;         /* last hs_file_cache_get that returned it */
    size_t path_len;           /* key: path, NUL, root (when has_root) */
    size_t root_len;
    int has_root;
    char *key; /* path_len + 1 + root_len + 1 bytes, inside this allocation */
};

struct hs_file_cache {
    struct hs_file_cache_limits lim;
    struct entry **buckets;
    size_t nbuckets;     /* a power of two */
    unsigned entries;    /* in the cache */
    unsigned fds;        /* entries in the cache holding a descriptor */
    size_t bytes;        /* contents held by entries in the cache */
    struct entry *head;  /* most recently used */
    struct entry *tail;  /* least recently used */
    struct event *sweep; /* drops idle entries while there are any; NULL without a base */
    int sweeping;        /* sweep is pending */
};

long long hs_file_cache_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t key_hash(const char *path, size_t pn, const char *root, size_t rn)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < pn; i++)
        h = (h ^ (unsigned char)path[i]) * 16777619u;
    h = (h ^ (root ? 1u : 0u)) * 16777619u;
    for (size_t i = 0; i < rn; i++)
        h = (h ^ (unsigned char)root[i]) * 16777619u;
    return h;
}

static void entry_free(struct entry *e)
{
    if (e->pub.f.fd >= 0)
        close(e->pub.f.fd);
    free(e);
}

/* Gives back one reference of e. When all that is left is its segment's hold and nothing can
 * hand the segment out again (e is out of the cache and no user holds it), the entry lets go
 * of the segment too: the segment is freed, and e with it, when the last output that still
 * sends from it is done (segment_gone). */
static void entry_release(struct entry *e)
{
    if (--e->refs == 0) {
        entry_free(e);
        return;
    }
    if (e->refs == 1 && e->fc == NULL && e->seg != NULL) {
        struct evbuffer_file_segment *seg = e->seg;
        e->seg = NULL;
        evbuffer_file_segment_free(seg);
    }
}

/* libevent freed the segment (no output and no entry holds it): its hold on the entry goes. */
static void segment_gone(struct evbuffer_file_segment const *seg, int flags, void *arg)
{
    HS_UNUSED(seg);
    HS_UNUSED(flags);
    entry_release(arg);
}

static void lru_unlink(struct hs_file_cache *fc, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        fc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        fc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct hs_file_cache *fc, struct entry *e)
{
    e->prev = NULL;
    e->next = fc->head;
    if (fc->head)
        fc->head->prev = e;
    fc->head = e;
    if (fc->tail == NULL)
        fc->tail = e;
}

/* Takes e out of the cache; it is freed now or with its last user's reference. */
static void drop(struct hs_file_cache *fc, struct entry *e)
{
    struct entry **pp = &fc->buckets[e->hash & (fc->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(fc, e);
    fc->entries--;
    if (e->pub.f.fd >= 0)
        fc->fds--;
    if (e->pub.data)
        fc->bytes -= (size_t)e->pub.f.size;
    e->fc = NULL;
    entry_release(e);
}

static struct entry *find(struct hs_file_cache *fc, uint32_t hash, const char *path, size_t pn,
                          const char *root, size_t rn)
{
    for (struct entry *e = fc->buckets[hash & (fc->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == hash && e->path_len == pn && e->has_root == (root != NULL) &&
            e->root_len == rn && memcmp(e->key, path, pn) == 0 &&
            (rn == 0 || memcmp(e->key + pn + 1, root, rn) == 0))
            return e;
    return NULL;
}

/* 1 when f (just opened) is the file e was made from, unchanged. */
static int same_file(const struct hs_http_file *a, const struct hs_http_file *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Reads the whole of f (f->size bytes) into dst. Returns 0, or -1 when the file did not read
 * as f describes it (shorter, or changed meanwhile): then it is served from its descriptor. */
static int read_whole(const struct hs_http_file *f, char *dst)
{
    size_t got = 0, size = (size_t)f->size;
    while (got < size) {
        ssize_t n = pread(f->fd, dst + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    /* A write between the open's fstat and the read would leave contents newer than the
     * validators: look again, and keep the copy only if nothing moved. */
    struct hs_http_file now;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return -1;
    now = *f;
    now.size = (uint64_t)st.st_size;
    now.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    now.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    return same_file(&now, f) ? 0 : -1;
}

/* Evicts least recently used entries until one more entry (and, when fd, one more descriptor)
 * fits. */
static void make_room(struct hs_file_cache *fc, int fd)
{
    while (fc->entries >= fc->lim.entries && fc->tail)
        drop(fc, fc->tail);
    if (!fd)
        return;
    for (struct entry *e = fc->tail; e && fc->fds >= fc->lim.fds;) {
        struct entry *prev = e->prev;
        if (e->pub.f.fd >= 0)
            drop(fc, e);
        e = prev;
    }
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg);

static void sweep_arm(struct hs_file_cache *fc)
{
    if (fc->sweep == NULL || fc->sweeping)
        return;
    /* A quarter of idle_ms: an unused entry goes between idle_ms and 1.25 times that. */
    long long ms = fc->lim.idle_ms / 4 > 0 ? fc->lim.idle_ms / 4 : 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    fc->sweeping = event_add(fc->sweep, &tv) == 0;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    HS_UNUSED(fd);
    HS_UNUSED(what);
    struct hs_file_cache *fc = arg;
    fc->sweeping = 0;
    if (hs_file_cache_sweep(fc, hs_file_cache_now()) > 0)
        sweep_arm(fc);
}

/* Makes the entry for f (just opened; its descriptor is taken over) and puts it in the cache
 * when it fits the limits. Returns it with one reference for the caller, or NULL (ENOMEM; fd
 * closed). */
static struct entry *make(struct hs_file_cache *fc, uint32_t hash, const char *path, size_t pn,
                          const char *root, size_t rn, struct hs_http_file *f, long long now)
{
    int small = f->size <= fc->lim.small;
    size_t data = small ? (size_t)f->size : 0;
    struct entry *e = malloc(sizeof *e + pn + rn + 2 + data);
    if (e == NULL) {
        close(f->fd);
        return NULL;
    }
    memset(e, 0, sizeof *e);
    e->pub.f = *f;
    e->key = (char *)(e + 1);
    memcpy(e->key, path, pn);
    e->key[pn] = '\0';
    if (rn)
        memcpy(e->key + pn + 1, root, rn);
    e->key[pn + 1 + rn] = '\0';
    e->path_len = pn;
    e->root_len = rn;
    e->has_root = root != NULL;
    e->hash = hash;
    e->checked_ms = e->used_ms = now;
    if (small) {
        char *dst = e->key + pn + rn + 2;
        if (read_whole(f, dst) == 0) {
            close(f->fd);
            e->pub.f.fd = -1;
            e->pub.data = dst;
        }
    }
    int n = snprintf(e->pub.headers, sizeof e->pub.headers,
                     "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n", f->last_modified,
                     f->etag);
    e->pub.headers_len = n > 0 && (size_t)n < sizeof e->pub.headers ? (size_t)n : 0;
    e->refs = 1;
    make_room(fc, e->pub.f.fd >= 0);
    if (fc->entries >= fc->lim.entries || (e->pub.f.fd >= 0 && fc->fds >= fc->lim.fds))
        return e; /* every slot is held by entries in use: serve this one uncached */
    e->fc = fc;
    e->refs++;
    struct entry **b = &fc->buckets[hash & (fc->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(fc, e);
    fc->entries++;
    if (e->pub.f.fd >= 0)
        fc->fds++;
    if (e->pub.data)
        fc->bytes += (size_t)f->size;
    sweep_arm(fc);
    return e;
}

struct hs_file_cache *hs_file_cache_new(struct event_base *base,
                                        const struct hs_file_cache_limits *limits)
{
    struct hs_file_cache *fc = calloc(1, sizeof *fc);
    if (fc == NULL)
        return NULL;
    if (limits)
        fc->lim = *limits;
    if (fc->lim.entries == 0)
        fc->lim.entries = HS_FILE_CACHE_ENTRIES;
    if (fc->lim.fds == 0)
        fc->lim.fds = HS_FILE_CACHE_FDS;
    if (fc->lim.small == 0)
        fc->lim.small = HS_FILE_CACHE_SMALL;
    if (fc->lim.valid_ms <= 0)
        fc->lim.valid_ms = HS_FILE_CACHE_VALID_MS;
    if (fc->lim.idle_ms <= 0)
        fc->lim.idle_ms = HS_FILE_CACHE_IDLE_MS;
    fc->nbuckets = 16;
    while (fc->nbuckets < 2 * (size_t)fc->lim.entries)
        fc->nbuckets <<= 1;
    fc->buckets = calloc(fc->nbuckets, sizeof *fc->buckets);
    if (base)
        fc->sweep = event_new(base, -1, 0, sweep_cb, fc);
    if (fc->buckets == NULL || (base && fc->sweep == NULL)) {
        hs_file_cache_free(fc);
        return NULL;
    }
    return fc;
}

void hs_file_cache_free(struct hs_file_cache *fc)
{
    if (fc == NULL)
        return;
    while (fc->head)
        drop(fc, fc->head);
    if (fc->sweep)
        event_free(fc->sweep);
    free(fc->buckets);
    free(fc);
}

int hs_file_cache_get(struct hs_file_cache *fc, const char *path, const char *root,
                      long long now_ms, struct hs_file_entry **out)
{
    size_t pn = strlen(path), rn = root ? strlen(root) : 0;
    uint32_t hash = key_hash(path, pn, root, rn);
    struct entry *e = find(fc, hash, path, pn, root, rn);
    if (e && now_ms - e->checked_ms < fc->lim.valid_ms && now_ms >= e->checked_ms) {
        e->used_ms = now_ms;
        if (fc->head != e) {
            lru_unlink(fc, e);
            lru_push(fc, e);
        }
        e->refs++;
        *out = &e->pub;
        return 0;
    }
    /* A miss, or an entry due for a check: open the path again under the same rules, so a
     * link swapped or a root moved is judged as on a first request. */
    struct hs_http_file f;
    int r = hs_http_file_open(path, root, &f);
    if (r != 0) {
        if (e)
            drop(fc, e);
        return r;
    }
    if (e && same_file(&f, &e->pub.f)) {
        close(f.fd);
        e->checked_ms = e->used_ms = now_ms;
        lru_unlink(fc, e);
        lru_push(fc, e);
        e->refs++;
        *out = &e->pub;
        return 0;
    }
    if (e)
        drop(fc, e);
    e = make(fc, hash, path, pn, root, rn, &f, now_ms);
    if (e == NULL)
        return -ENOMEM;
    *out = &e->pub;
    return 0;
}

void hs_file_entry_unref(struct hs_file_entry *pub)
{
    entry_release((struct entry *)pub);
}

struct evbuffer_file_segment *hs_file_entry_segment(struct hs_file_entry *pub)
{
    struct entry *e = (struct entry *)pub;
    if (e->pub.f.fd < 0)
        return NULL;
    if (e->seg == NULL) {
        /* Not closed on free: the descriptor is the entry's, closed with it. No lock: one
         * thread. Never mapped: sent by sendfile, or under TLS read with pread from the
         * descriptor (hs_conn_send_file), so a file truncated in place cannot raise SIGBUS. */
        e->seg = evbuffer_file_segment_new(e->pub.f.fd, 0, (ev_off_t)e->pub.f.size,
                                           EVBUF_FS_DISABLE_LOCKING);
        if (e->seg == NULL)
            return NULL;
        e->refs++;
        evbuffer_file_segment_add_cleanup_cb(e->seg, segment_gone, e);
    }
    return e->seg;
}

unsigned hs_file_cache_sweep(struct hs_file_cache *fc, long long now_ms)
{
    while (fc->tail && now_ms - fc->tail->used_ms >= fc->lim.idle_ms)
        drop(fc, fc->tail);
    return fc->entries;
}

void hs_file_cache_counts(const struct hs_file_cache *fc, unsigned *entries, unsigned *fds,
                          size_t *bytes)
{
    if (entries)
        *entries = fc->entries;
    if (fds)
        *fds = fc->fds;
    if (bytes)
        *bytes = fc->bytes;
}
