/* MAP_ANONYMOUS is outside POSIX. */
#define _DEFAULT_SOURCE
#include "core/shared.h"
#include "core/arena.h"
#include "core/shared_internal.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REGION_MAGIC 0x68736432u /* "hsd2" */
#define DICT_MAGIC 0x68736464u   /* "hsdd" */
#define PAGE 4096u

static struct hs_shared *process_region;
static double clock_skew; /* tests move time forward (hs_shared_debug_advance) */

double hs__shared_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + clock_skew;
}

void hs_shared_debug_advance(double seconds)
{
    clock_skew += seconds;
}

struct hs_arena *hs__shared_arena(struct hs_shared_dict *d)
{
    return (struct hs_arena *)(void *)((char *)d + d->arena_off);
}

static uint32_t random_seed(void)
{
    uint32_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s)
            s = 0;
        close(fd);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return s ^ (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
}

/* ---- the lock ---- */

void hs__shared_reset(struct hs_shared_dict *d)
{
    memset(d->buckets, 0, d->nbuckets * sizeof d->buckets[0]);
    hs_arena_reset(hs__shared_arena(d));
    d->lru_head = d->lru_tail = 0;
    d->items = 0;
    d->next_expiry = HUGE_VAL;
}

void hs__shared_lock(struct hs_shared_dict *d)
{
    if (pthread_mutex_lock(&d->lock) == EOWNERDEAD) {
        /* The holder died. If it was inside an operation, lists and chains may be half
         * linked; following them could loop or crash, so the contents go. */
        if (d->dirty) {
            hs__shared_reset(d);
            d->recoveries++;
            hs_log(HS_LOG_WARN, "shared dictionary %s emptied: a process died while updating it",
                   d->name);
        }
        pthread_mutex_consistent(&d->lock);
    }
    d->dirty = 1;
}

void hs__shared_unlock(struct hs_shared_dict *d)
{
    d->dirty = 0;
    pthread_mutex_unlock(&d->lock);
}

void hs_shared_debug_die_locked(struct hs_shared_dict *d)
{
    hs__shared_lock(d);
    _exit(0);
}

/* ---- the region ---- */

int hs_shared_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > HS_SHARED_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static size_t round_page(size_t n)
{
    return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

static int dict_init(struct hs_shared_dict *d, const struct hs_shared_spec *sp, size_t size)
{
    memset(d, 0, sizeof *d);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init(&d->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (r != 0)
        return -r;
    /* Names are checked against the limit when parsed; copy at most what fits. */
    size_t name_len = strnlen(sp->name, sizeof d->name - 1);
    memcpy(d->name, sp->name, name_len);
    d->name[name_len] = '\0';
    d->size = size;
    /* About one bucket per 256 bytes: chains stay short for entries of typical size. */
    uint32_t nb = 64;
    while ((size_t)nb * 256 < size && nb < (1u << 24))
        nb <<= 1;
    d->nbuckets = nb;
    d->arena_off = (uint32_t)((sizeof *d + nb * sizeof(uint32_t) + 7) & ~(size_t)7);
    if (hs_arena_init((char *)d + d->arena_off, size - d->arena_off) == NULL)
        return -EINVAL;
    size_t cap = hs_arena_capacity(hs__shared_arena(d));
    d->max_value = sp->max_value ? sp->max_value : HS_SHARED_DEFAULT_MAX_VALUE;
    if (d->max_value > cap / 4)
        d->max_value = cap / 4;
    d->seed = random_seed();
    d->next_expiry = HUGE_VAL;
    d->magic = DICT_MAGIC;
    return 0;
}

struct hs_shared *hs_shared_create(const struct hs_shared_spec *specs, size_t n, int *fd_out)
{
    struct hs_shared_spec all[HS_SHARED_MAX_DICTS];
    size_t count = 0;
    /* "default" first, with its given size or the default one. */
    memset(&all[0], 0, sizeof all[0]);
    snprintf(all[0].name, sizeof all[0].name, "%s", HS_SHARED_DEFAULT_NAME);
    all[0].size = HS_SHARED_DEFAULT_SIZE;
    count = 1;
    for (size_t i = 0; i < n; i++) {
        if (!hs_shared_name_ok(specs[i].name) || specs[i].size < HS_SHARED_MIN_SIZE ||
            specs[i].size > HS_SHARED_MAX_SIZE) {
            errno = EINVAL;
            return NULL;
        }
        size_t j = 0;
        while (j < count && strcmp(all[j].name, specs[i].name) != 0)
            j++;
        if (j == count) {
            if (count == HS_SHARED_MAX_DICTS) {
                errno = EINVAL;
                return NULL;
            }
            count++;
        }
        all[j] = specs[i];
    }
    size_t total = round_page(sizeof(struct hs_shared));
    for (size_t i = 0; i < count; i++)
        total += round_page(all[i].size);
    void *p = MAP_FAILED;
    int fd = -1;
    if (fd_out) {
        /* An unlinked file in /dev/shm: shared with workers through its descriptor. */
        char path[] = "/dev/shm/hotsock-XXXXXX";
        fd = mkstemp(path);
        if (fd < 0)
            return NULL;
        unlink(path);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (ftruncate(fd, (off_t)total) == 0)
            p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } else {
        p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (p == MAP_FAILED) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return NULL;
    }
    struct hs_shared *r = p;
    r->size = total;
    r->n = (uint32_t)count;
    uint64_t off = round_page(sizeof *r);
    for (size_t i = 0; i < count; i++) {
        size_t sz = round_page(all[i].size);
        int e = dict_init((struct hs_shared_dict *)(void *)((char *)p + off), &all[i], sz);
        if (e != 0) {
            munmap(p, total);
            if (fd >= 0)
                close(fd);
            errno = -e;
            return NULL;
        }
        size_t name_len = strnlen(all[i].name, sizeof r->dir[i].name - 1);
        memcpy(r->dir[i].name, all[i].name, name_len);
        r->dir[i].name[name_len] = '\0';
        r->dir[i].offset = off;
        off += sz;
    }
    r->magic = REGION_MAGIC;
    if (fd_out)
        *fd_out = fd;
    process_region = r;
    return r;
}

struct hs_shared *hs_shared_attach(int fd)
{
    struct hs_shared head;
    if (pread(fd, &head, sizeof head, 0) != (ssize_t)sizeof head || head.magic != REGION_MAGIC)
        return NULL;
    void *p = mmap(NULL, head.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    process_region = p;
    return p;
}

void hs_shared_free(struct hs_shared *r)
{
    if (r == NULL)
        return;
    if (r == process_region)
        process_region = NULL;
    munmap(r, r->size);
}

struct hs_shared *hs_shared_region(void)
{
    return process_region;
}

struct hs_shared_dict *hs_shared_dict_at(struct hs_shared *r, size_t i)
{
    if (r == NULL || i >= r->n)
        return NULL;
    return (struct hs_shared_dict *)(void *)((char *)r + r->dir[i].offset);
}

struct hs_shared_dict *hs_shared_dict(struct hs_shared *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (strcmp(r->dir[i].name, name) == 0)
            return hs_shared_dict_at(r, i);
    return NULL;
}

const char *hs_shared_dict_name(const struct hs_shared_dict *d)
{
    return d->name;
}

size_t hs_shared_max_value(const struct hs_shared_dict *d)
{
    return (size_t)d->max_value;
}

/* ---- stats ---- */

void hs_shared_stats(struct hs_shared_dict *d, struct hs_shared_stats *st)
{
    hs__shared_lock(d);
    st->size = (size_t)d->size;
    st->capacity = hs_arena_capacity(hs__shared_arena(d));
    st->used = hs_arena_used(hs__shared_arena(d));
    st->max_value = (size_t)d->max_value;
    st->keys = d->items;
    st->evicted = d->evicted;
    st->expired = d->expired;
    st->recoveries = d->recoveries;
    hs__shared_unlock(d);
}

size_t hs_shared_stats_write(struct hs_shared *r, char *out, size_t n)
{
    size_t used = 0;
    if (n)
        out[0] = '\0';
    struct hs_shared_dict *d;
    for (size_t i = 0; (d = hs_shared_dict_at(r, i)) != NULL; i++) {
        struct hs_shared_stats st;
        hs_shared_stats(d, &st);
        if (used + 1 >= n)
            break;
        int w = snprintf(out + used, n - used,
                         "dict name=%s size=%zu capacity=%zu used=%zu free=%zu max_value=%zu "
                         "keys=%llu evicted=%llu expired=%llu recoveries=%llu\n",
                         d->name, st.size, st.capacity, st.used, st.capacity - st.used,
                         st.max_value, (unsigned long long)st.keys, (unsigned long long)st.evicted,
                         (unsigned long long)st.expired, (unsigned long long)st.recoveries);
        if (w < 0 || (size_t)w >= n - used) {
            out[used] = '\0';
            break;
        }
        used += (size_t)w;
    }
    return used;
}
