#include "core/shared.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SHARED_MAGIC 0x68736431u /* "hsd1" */
#define SLOT_SIZE 512

enum { SLOT_EMPTY, SLOT_USED, SLOT_DELETED };

struct slot {
    uint32_t state; /* SLOT_* */
    uint32_t hash;
    uint8_t type; /* enum hs_shared_type */
    uint8_t klen;
    uint16_t vlen;
    double expires; /* CLOCK_MONOTONIC seconds (system-wide), 0 = never */
    double num;
    char data[SLOT_SIZE - 32]; /* key, then a string value */
};

struct hs_shared {
    uint32_t magic;
    uint32_t nslots;
    pthread_mutex_t lock; /* process-shared, robust */
    size_t size;          /* of the whole mapping */
    struct slot slots[];
};

static struct hs_shared *default_region;

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t hash_key(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

static void lock(struct hs_shared *d)
{
    /* A worker killed while holding the lock leaves it "owner dead": the slot it was
     * writing may be half-written, which at worst loses that one key. */
    if (pthread_mutex_lock(&d->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&d->lock);
}

static void unlock(struct hs_shared *d)
{
    pthread_mutex_unlock(&d->lock);
}

static int init_region(struct hs_shared *d, size_t size)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init(&d->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (r != 0)
        return -r;
    d->size = size;
    d->nslots = (uint32_t)((size - sizeof *d) / sizeof(struct slot));
    d->magic = SHARED_MAGIC;
    return 0;
}

struct hs_shared *hs_shared_create(size_t size, int *fd_out)
{
    /* An unlinked file in /dev/shm: shared with workers through its descriptor. */
    char path[] = "/dev/shm/hotsock-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || fd_out == NULL)
        close(fd);
    if (p == MAP_FAILED)
        return NULL;
    if (fd_out)
        *fd_out = fd;
    if (init_region(p, size) != 0) {
        munmap(p, size);
        return NULL;
    }
    default_region = p;
    return p;
}

struct hs_shared *hs_shared_attach(int fd)
{
    struct hs_shared head;
    if (pread(fd, &head, sizeof head, 0) != (ssize_t)sizeof head || head.magic != SHARED_MAGIC)
        return NULL;
    void *p = mmap(NULL, head.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    default_region = p;
    return p;
}

struct hs_shared *hs_shared_default(void)
{
    return default_region;
}

static int live(const struct slot *s, double now)
{
    return s->state == SLOT_USED && (s->expires == 0 || s->expires > now);
}

/* Finds key's slot, or (want_free) the first reusable slot on its probe path. Under lock. */
static struct slot *find(struct hs_shared *d, const char *key, size_t klen, int want_free)
{
    uint32_t h = hash_key(key, klen);
    double now = now_mono();
    struct slot *reuse = NULL;
    for (uint32_t i = 0; i < d->nslots; i++) {
        struct slot *s = &d->slots[(h + i) % d->nslots];
        if (s->state == SLOT_EMPTY)
            return want_free ? (reuse ? reuse : s) : NULL;
        if (s->state == SLOT_USED && s->hash == h && s->klen == klen &&
            memcmp(s->data, key, klen) == 0) {
            if (live(s, now))
                return s;
            s->state = SLOT_DELETED; /* expired: reclaim it */
        }
        if (reuse == NULL && !live(s, now))
            reuse = s;
    }
    return want_free ? reuse : NULL;
}

int hs_shared_get(struct hs_shared *d, const char *key, size_t klen, struct hs_shared_value *out)
{
    if (klen > HS_SHARED_MAX_KEY)
        return -ENOENT;
    lock(d);
    struct slot *s = find(d, key, klen, 0);
    if (s == NULL || s->state != SLOT_USED) {
        unlock(d);
        return -ENOENT;
    }
    out->type = s->type;
    out->num = s->num;
    out->len = s->vlen;
    if (s->type == HS_SHARED_STRING)
        memcpy(out->str, s->data + s->klen, s->vlen);
    unlock(d);
    return 0;
}

static void fill(struct slot *s, const char *key, size_t klen, const struct hs_shared_value *v,
                 double ttl)
{
    s->state = SLOT_USED;
    s->hash = hash_key(key, klen);
    s->klen = (uint8_t)klen;
    memcpy(s->data, key, klen);
    s->type = (uint8_t)v->type;
    s->num = v->num;
    s->vlen = v->type == HS_SHARED_STRING ? (uint16_t)v->len : 0;
    if (v->type == HS_SHARED_STRING)
        memcpy(s->data + klen, v->str, v->len);
    s->expires = ttl > 0 ? now_mono() + ttl : 0;
}

int hs_shared_set(struct hs_shared *d, const char *key, size_t klen,
                  const struct hs_shared_value *v, double ttl)
{
    if (klen == 0 || klen > HS_SHARED_MAX_KEY ||
        (v->type == HS_SHARED_STRING && v->len > HS_SHARED_MAX_VALUE))
        return -E2BIG;
    lock(d);
    struct slot *s = find(d, key, klen, 0);
    if (s == NULL)
        s = find(d, key, klen, 1);
    if (s == NULL) {
        unlock(d);
        return -ENOSPC;
    }
    fill(s, key, klen, v, ttl);
    unlock(d);
    return 0;
}

int hs_shared_incr(struct hs_shared *d, const char *key, size_t klen, double n, double init,
                   double ttl, double *result)
{
    if (klen == 0 || klen > HS_SHARED_MAX_KEY)
        return -E2BIG;
    lock(d);
    struct slot *s = find(d, key, klen, 0);
    if (s != NULL) {
        if (s->type != HS_SHARED_NUMBER) {
            unlock(d);
            return -EINVAL;
        }
        s->num += n;
        *result = s->num;
        unlock(d);
        return 0;
    }
    s = find(d, key, klen, 1);
    if (s == NULL) {
        unlock(d);
        return -ENOSPC;
    }
    struct hs_shared_value v = {.type = HS_SHARED_NUMBER, .num = init + n};
    fill(s, key, klen, &v, ttl);
    *result = v.num;
    unlock(d);
    return 0;
}

int hs_shared_delete(struct hs_shared *d, const char *key, size_t klen)
{
    if (klen > HS_SHARED_MAX_KEY)
        return 0;
    lock(d);
    struct slot *s = find(d, key, klen, 0);
    if (s)
        s->state = SLOT_DELETED;
    unlock(d);
    return 0;
}

void hs_shared_counts(struct hs_shared *d, size_t *used, size_t *capacity)
{
    double now = now_mono();
    size_t n = 0;
    lock(d);
    for (uint32_t i = 0; i < d->nslots; i++)
        n += live(&d->slots[i], now);
    unlock(d);
    *used = n;
    *capacity = d->nslots;
}
