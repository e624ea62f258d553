#include "core/pubsub.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PUBSUB_MAGIC 0x68737031u /* "hsp1" */
#define FILTER_BITS 1024         /* channel filter of one queue */
#define FILTER_WORDS (FILTER_BITS / 64)
#define MIN_QUEUE 4096 /* bytes; smaller queue sizes are raised to this */

/* A message in a queue: this header, the channel, the payload; no padding, the ring copies
 * across its end in two pieces. */
struct record {
    uint32_t total; /* header + channel + payload bytes */
    uint16_t chlen;
    uint16_t from; /* publishing worker */
    uint32_t len;  /* payload bytes */
    uint32_t zero;
};

/* One worker's queue. head and tail are byte offsets that only grow (64 bits never wrap);
 * data[off & (cap - 1)] is where offset off lives. */
struct queue {
    _Alignas(64) _Atomic uint64_t head;    /* consumer side: advanced by compare-and-swap */
    _Alignas(64) _Atomic uint64_t tail;    /* producers, under lock: end of the last message */
    _Atomic uint64_t dropped;              /* messages refused because the queue was full */
    _Atomic int32_t owner;                 /* pid of the consuming worker, 0: none (skip it) */
    _Atomic uint32_t signalled;            /* the eventfd was written since the consumer woke */
    pthread_mutex_t lock;                  /* process-shared, robust: producers of this queue */
    _Atomic uint64_t filter[FILTER_WORDS]; /* bit (hash % FILTER_BITS): a subscriber may want it */
};

/* The shared region: this header, then `workers` queues, each followed by its ring. */
struct region {
    uint32_t magic;
    uint32_t workers;
    uint64_t size;     /* of the mapping */
    uint64_t cap;      /* bytes of each ring, a power of two */
    uint64_t max_msg;  /* bytes of one payload */
    uint64_t stride;   /* bytes from one queue to the next */
    uint64_t first;    /* offset of queue 1 */
    uint64_t instance; /* random: names this server (all its workers) to other instances */
};

/* A process's handle on the region. */
struct hs_pubsub {
    struct region *r;
    int fd;                         /* the region's file */
    int efd[HS_PUBSUB_MAX_WORKERS]; /* wake-up eventfd of each worker */
    unsigned self;                  /* queue this process consumes (1..N), 0: none */
    pid_t pid;                      /* this process, as owner of that queue */
    unsigned counts[FILTER_BITS];   /* subscribers of this worker per filter bit */
    unsigned long long published;   /* publish calls that queued something */
    unsigned long long delivered;   /* messages taken from our queue */
    char *buf;                      /* one record, copied out for hs_pubsub_next */
};

static struct hs_pubsub *default_ps;

static struct queue *queue_of(const struct hs_pubsub *ps, unsigned index)
{
    return (struct queue *)((char *)ps->r + ps->r->first + (index - 1) * ps->r->stride);
}

static char *ring_of(struct queue *q)
{
    return (char *)q + sizeof *q;
}

static uint32_t hash_channel(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

static void lock(struct queue *q)
{
    /* A publisher killed while holding the lock never advanced tail (it does so last), so
     * the half-written message is invisible and simply overwritten. */
    if (pthread_mutex_lock(&q->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&q->lock);
}

static void unlock(struct queue *q)
{
    pthread_mutex_unlock(&q->lock);
}

static void ring_put(char *ring, uint64_t cap, uint64_t off, const void *src, size_t n)
{
    size_t at = (size_t)(off & (cap - 1));
    size_t first = n < cap - at ? n : (size_t)(cap - at);
    memcpy(ring + at, src, first);
    memcpy(ring, (const char *)src + first, n - first);
}

static void ring_get(const char *ring, uint64_t cap, uint64_t off, void *dst, size_t n)
{
    size_t at = (size_t)(off & (cap - 1));
    size_t first = n < cap - at ? n : (size_t)(cap - at);
    memcpy(dst, ring + at, first);
    memcpy((char *)dst + first, ring, n - first);
}

static size_t record_max(uint64_t max_msg)
{
    return sizeof(struct record) + HS_PUBSUB_MAX_CHANNEL + (size_t)max_msg;
}

static int handle_init(struct hs_pubsub *ps)
{
    ps->buf = malloc(record_max(ps->r->max_msg));
    return ps->buf ? 0 : -ENOMEM;
}

static int init_queue(struct queue *q)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init(&q->lock, &a);
    pthread_mutexattr_destroy(&a);
    return -r;
}

/* 64 random bits; a clock and the pid when the kernel has no randomness to give, which still
 * tells apart instances started at different moments or with different pids. */
static uint64_t new_instance_id(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v || v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    return v;
}

int hs_pubsub_create(unsigned workers, size_t queue_size, size_t max_message,
                     struct hs_pubsub **out)
{
    if (workers < 1 || workers > HS_PUBSUB_MAX_WORKERS || max_message > ((size_t)1 << 30))
        return -EINVAL;
    uint64_t want = queue_size > MIN_QUEUE ? queue_size : MIN_QUEUE;
    if (want < 2 * record_max(max_message))
        want = 2 * record_max(max_message);
    uint64_t cap = 1;
    while (cap < want)
        cap <<= 1;
    uint64_t stride = (sizeof(struct queue) + cap + 63) & ~(uint64_t)63;
    uint64_t first = (sizeof(struct region) + 63) & ~(uint64_t)63;
    uint64_t size = first + stride * workers;

    struct hs_pubsub *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < HS_PUBSUB_MAX_WORKERS; i++)
        ps->efd[i] = -1;
    /* An unlinked file in /dev/shm, like the shared dictionary: workers map it through its
     * descriptor. Pages are only backed once a message touches them. */
    char path[] = "/dev/shm/hotsock-pubsub-XXXXXX";
    ps->fd = mkstemp(path);
    int err = 0;
    if (ps->fd < 0) {
        err = -errno;
        free(ps);
        return err;
    }
    unlink(path);
    fcntl(ps->fd, F_SETFD, FD_CLOEXEC);
    void *p = MAP_FAILED;
    if (ftruncate(ps->fd, (off_t)size) == 0)
        p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, ps->fd, 0);
    if (p == MAP_FAILED) {
        err = -errno;
        close(ps->fd);
        free(ps);
        return err;
    }
    ps->r = p;
    ps->r->workers = workers;
    ps->r->size = size;
    ps->r->cap = cap;
    ps->r->max_msg = max_message;
    ps->r->instance = new_instance_id();
    ps->r->stride = stride;
    ps->r->first = first;
    for (unsigned i = 1; i <= workers && err == 0; i++) {
        err = init_queue(queue_of(ps, i));
        ps->efd[i - 1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (err == 0 && ps->efd[i - 1] < 0)
            err = -errno;
    }
    if (err == 0)
        err = handle_init(ps);
    if (err != 0) {
        hs_pubsub_free(ps);
        return err;
    }
    ps->r->magic = PUBSUB_MAGIC;
    default_ps = ps;
    *out = ps;
    return 0;
}

int hs_pubsub_export(const struct hs_pubsub *ps, char *buf, size_t n)
{
    size_t used = 0;
    int w = snprintf(buf, n, "%d", ps->fd);
    if (w < 0 || (size_t)w >= n)
        return -ENOSPC;
    used = (size_t)w;
    for (unsigned i = 0; i < ps->r->workers; i++) {
        w = snprintf(buf + used, n - used, ",%d", ps->efd[i]);
        if (w < 0 || used + (size_t)w >= n)
            return -ENOSPC;
        used += (size_t)w;
    }
    return 0;
}

void hs_pubsub_keep_across_exec(const struct hs_pubsub *ps)
{
    fcntl(ps->fd, F_SETFD, 0);
    for (unsigned i = 0; i < ps->r->workers; i++)
        fcntl(ps->efd[i], F_SETFD, 0);
}

int hs_pubsub_attach(const char *text, struct hs_pubsub **out)
{
    struct hs_pubsub *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < HS_PUBSUB_MAX_WORKERS; i++)
        ps->efd[i] = -1;
    char *end;
    long fd = strtol(text, &end, 10);
    struct region head;
    if (end == text || fd < 0 || pread((int)fd, &head, sizeof head, 0) != (ssize_t)sizeof head ||
        head.magic != PUBSUB_MAGIC || head.workers < 1 || head.workers > HS_PUBSUB_MAX_WORKERS) {
        free(ps);
        return -EINVAL;
    }
    /* Only descriptors we were handed are ours to close on failure. */
    ps->fd = (int)fd;
    for (unsigned i = 0; i < head.workers; i++) {
        const char *p = end;
        long e = *p == ',' ? strtol(p + 1, &end, 10) : -1;
        if (e < 0 || end == p + 1) {
            free(ps);
            return -EINVAL;
        }
        ps->efd[i] = (int)e;
    }
    void *p = mmap(NULL, (size_t)head.size, PROT_READ | PROT_WRITE, MAP_SHARED, ps->fd, 0);
    if (p == MAP_FAILED) {
        int err = -errno;
        free(ps);
        return err;
    }
    ps->r = p;
    if (handle_init(ps) != 0) {
        munmap(p, (size_t)head.size);
        free(ps);
        return -ENOMEM;
    }
    /* Scripts may start programs: they should not inherit our descriptors. */
    fcntl(ps->fd, F_SETFD, FD_CLOEXEC);
    for (unsigned i = 0; i < head.workers; i++)
        fcntl(ps->efd[i], F_SETFD, FD_CLOEXEC);
    default_ps = ps;
    *out = ps;
    return 0;
}

int hs_pubsub_claim(struct hs_pubsub *ps, unsigned index)
{
    if (index < 1 || index > ps->r->workers)
        return -EINVAL;
    struct queue *q = queue_of(ps, index);
    /* Under the producers' lock tail stands still: emptying means head = tail. A previous
     * consumer still draining (a worker being replaced) sees the owner change and stops; its
     * compare-and-swap on head fails if it raced with this. */
    lock(q);
    atomic_store(&q->owner, (int32_t)getpid());
    atomic_store(&q->head, atomic_load(&q->tail));
    atomic_store(&q->dropped, 0);
    for (unsigned i = 0; i < FILTER_WORDS; i++)
        atomic_store(&q->filter[i], 0);
    atomic_store(&q->signalled, 0);
    unlock(q);
    uint64_t junk;
    while (read(ps->efd[index - 1], &junk, sizeof junk) > 0)
        ;
    ps->self = index;
    ps->pid = getpid();
    memset(ps->counts, 0, sizeof ps->counts);
    ps->published = ps->delivered = 0;
    return 0;
}

void hs_pubsub_release(struct hs_pubsub *ps, unsigned index, pid_t pid)
{
    if (index < 1 || index > ps->r->workers)
        return;
    struct queue *q = queue_of(ps, index);
    int32_t expected = (int32_t)pid;
    atomic_compare_exchange_strong(&q->owner, &expected, 0);
}

void hs_pubsub_free(struct hs_pubsub *ps)
{
    if (ps == NULL)
        return;
    unsigned n = ps->r ? ps->r->workers : 0;
    for (unsigned i = 0; i < n; i++)
        if (ps->efd[i] >= 0)
            close(ps->efd[i]);
    if (ps->r)
        munmap(ps->r, (size_t)ps->r->size);
    close(ps->fd);
    free(ps->buf);
    if (default_ps == ps)
        default_ps = NULL;
    free(ps);
}

struct hs_pubsub *hs_pubsub_default(void)
{
    return default_ps;
}

unsigned hs_pubsub_self(const struct hs_pubsub *ps)
{
    return ps->self;
}

unsigned hs_pubsub_workers(const struct hs_pubsub *ps)
{
    return ps->r->workers;
}

uint64_t hs_pubsub_instance(const struct hs_pubsub *ps)
{
    return ps->r->instance;
}

size_t hs_pubsub_max_message(const struct hs_pubsub *ps)
{
    return (size_t)ps->r->max_msg;
}

static int wants(struct queue *q, uint32_t h)
{
    uint32_t bit = h % FILTER_BITS;
    return (atomic_load(&q->filter[bit / 64]) >> (bit % 64)) & 1;
}

/* Copies one record into q. Returns 0, or -ENOBUFS (counted) when it does not fit. */
static int enqueue(struct hs_pubsub *ps, struct queue *q, const struct record *rec,
                   const char *channel, const void *msg)
{
    char *ring = ring_of(q);
    uint64_t cap = ps->r->cap;
    lock(q);
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (cap - (tail - head) < rec->total) {
        unlock(q);
        atomic_fetch_add(&q->dropped, 1);
        return -ENOBUFS;
    }
    ring_put(ring, cap, tail, rec, sizeof *rec);
    ring_put(ring, cap, tail + sizeof *rec, channel, rec->chlen);
    ring_put(ring, cap, tail + sizeof *rec + rec->chlen, msg, rec->len);
    /* Publishing tail last makes the message visible whole, or not at all. */
    atomic_store_explicit(&q->tail, tail + rec->total, memory_order_release);
    unlock(q);
    return 0;
}

int hs_pubsub_publish(struct hs_pubsub *ps, const char *channel, size_t chlen, const void *msg,
                      size_t len)
{
    if (len > ps->r->max_msg || chlen < 1 || chlen > HS_PUBSUB_MAX_CHANNEL)
        return -E2BIG;
    if (ps->self == 0)
        return 0;
    struct record rec = {(uint32_t)(sizeof rec + chlen + len), (uint16_t)chlen, (uint16_t)ps->self,
                         (uint32_t)len, 0};
    uint32_t h = hash_channel(channel, chlen);
    int queued = 0, full = 0;
    for (unsigned i = 1; i <= ps->r->workers; i++) {
        struct queue *q = queue_of(ps, i);
        if (atomic_load(&q->owner) == 0 || !wants(q, h))
            continue;
        if (enqueue(ps, q, &rec, channel, msg) != 0) {
            full = 1;
            continue;
        }
        queued++;
        /* One wake-up per sleep of the consumer, not one per message: it clears signalled
         * (hs_pubsub_wake_reset) before it drains, so a message queued after that clear
         * writes the eventfd again. */
        if (atomic_exchange(&q->signalled, 1) == 0) {
            uint64_t one = 1;
            ssize_t w;
            do
                w = write(ps->efd[i - 1], &one, sizeof one);
            while (w < 0 && errno == EINTR);
        }
    }
    if (queued)
        ps->published++;
    return full ? HS_EQUEUE : queued;
}

int hs_pubsub_wake_fd(const struct hs_pubsub *ps)
{
    return ps->self ? ps->efd[ps->self - 1] : -1;
}

void hs_pubsub_wake_reset(struct hs_pubsub *ps)
{
    if (ps->self == 0)
        return;
    uint64_t junk;
    while (read(ps->efd[ps->self - 1], &junk, sizeof junk) > 0)
        ;
    atomic_store(&queue_of(ps, ps->self)->signalled, 0);
}

int hs_pubsub_next(struct hs_pubsub *ps, struct hs_pubsub_msg *m)
{
    if (ps->self == 0)
        return 0;
    struct queue *q = queue_of(ps, ps->self);
    const char *ring = ring_of(q);
    uint64_t cap = ps->r->cap;
    size_t max = record_max(ps->r->max_msg);
    for (;;) {
        if (atomic_load(&q->owner) != (int32_t)ps->pid)
            return 0;
        uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (head == tail)
            return 0;
        struct record rec;
        ring_get(ring, cap, head, &rec, sizeof rec);
        /* A record that makes no sense can only be one read while a new consumer took the
         * queue over (and producers reused the space): look again. */
        if (rec.total != sizeof rec + rec.chlen + rec.len || rec.total > tail - head ||
            rec.total > max)
            continue;
        ring_get(ring, cap, head, ps->buf, rec.total);
        /* The copy is ours only if nobody moved head meanwhile. */
        if (!atomic_compare_exchange_strong(&q->head, &head, head + rec.total))
            continue;
        m->channel = ps->buf + sizeof rec;
        m->channel_len = rec.chlen;
        m->data = ps->buf + sizeof rec + rec.chlen;
        m->len = rec.len;
        m->from = rec.from;
        ps->delivered++;
        return 1;
    }
}

void hs_pubsub_interest(struct hs_pubsub *ps, const char *channel, size_t chlen, int delta)
{
    if (ps->self == 0)
        return;
    uint32_t bit = hash_channel(channel, chlen) % FILTER_BITS;
    unsigned before = ps->counts[bit];
    if (delta < 0 && before == 0)
        return;
    ps->counts[bit] = delta > 0 ? before + 1 : before - 1;
    struct queue *q = queue_of(ps, ps->self);
    if (atomic_load(&q->owner) != (int32_t)ps->pid)
        return;
    uint64_t mask = (uint64_t)1 << (bit % 64);
    if (before == 0 && delta > 0)
        atomic_fetch_or(&q->filter[bit / 64], mask);
    else if (before == 1 && delta < 0)
        atomic_fetch_and(&q->filter[bit / 64], ~mask);
}

void hs_pubsub_counts(const struct hs_pubsub *ps, struct hs_pubsub_counts *c)
{
    memset(c, 0, sizeof *c);
    c->published = ps->published;
    c->delivered = ps->delivered;
    c->capacity = (size_t)ps->r->cap;
    if (ps->self == 0)
        return;
    struct queue *q = queue_of(ps, ps->self);
    c->dropped = atomic_load(&q->dropped);
    c->queued = atomic_load(&q->tail) - atomic_load(&q->head);
}
