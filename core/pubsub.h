/* Publish/subscribe between the workers of one server: a shared-memory region, made by the
 * master before any worker starts, holding one bounded queue (a byte ring) per worker and an
 * eventfd per worker to wake it. A publisher copies the message into the queue of every worker
 * that has a subscriber to the channel (its own included) and signals it; each worker drains
 * its queue from its loop. Producers of one queue serialise on a process-shared robust mutex
 * (a publisher that dies holding it cannot wedge the others); the consumer takes messages with
 * a compare-and-swap on the queue head and never locks, so a dead or stuck consumer only fills
 * its own queue, after which publishes to it are dropped and counted, never blocked.
 * Plain C, no Lua, no libevent: the Lua face is core/lua_pubsub.c. */
#ifndef HS_PUBSUB_H
#define HS_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HS_PUBSUB_MAX_CHANNEL 255      /* bytes in a channel name */
#define HS_PUBSUB_MAX_WORKERS 256      /* queues in one region */
#define HS_PUBSUB_ENV "HOTSOCK_PUBSUB" /* how workers find the region: "FD,EFD1,EFD2,..." */

struct hs_pubsub;

/* One message taken from a queue. The pointers are into a buffer of the region handle, valid
 * until the next hs_pubsub_next. */
struct hs_pubsub_msg {
    const char *channel;
    size_t channel_len;
    const char *data;
    size_t len;
    unsigned from; /* worker that published it (1..N) */
};

/* Counters of this process for stats. */
struct hs_pubsub_counts {
    unsigned long long published; /* publish calls that queued the message somewhere */
    unsigned long long delivered; /* messages taken from this worker's queue */
    unsigned long long dropped;   /* messages lost because this worker's queue was full */
    unsigned long long queued;    /* bytes waiting in this worker's queue now */
    size_t capacity;              /* bytes of each queue */
};

/* Creates a region for `workers` queues (1..HS_PUBSUB_MAX_WORKERS) of at least queue_size
 * bytes each (rounded up to a power of two, and to at least twice the largest message), for
 * messages of up to max_message bytes. Backed by an unlinked file in /dev/shm; it and the
 * eventfds are close-on-exec. The process is no worker yet (see hs_pubsub_claim). Returns 0 and
 * *out (also the process default, hs_pubsub_default), -EINVAL for a bad count or size, or a
 * negated errno. */
int hs_pubsub_create(unsigned workers, size_t queue_size, size_t max_message,
                     struct hs_pubsub **out);

/* Writes the region's descriptors as text for HS_PUBSUB_ENV into buf (n bytes). Returns 0, or
 * -ENOSPC when buf is too small. */
int hs_pubsub_export(const struct hs_pubsub *ps, char *buf, size_t n);

/* In a child about to exec a worker: clears close-on-exec on the region's descriptors. */
void hs_pubsub_keep_across_exec(const struct hs_pubsub *ps);

/* In a worker: maps the region described by text (from hs_pubsub_export), making it the
 * process default, and sets its descriptors close-on-exec again. Returns 0 and *out, or
 * -EINVAL (malformed text, not a region), or a negated errno. */
int hs_pubsub_attach(const char *text, struct hs_pubsub **out);

/* Makes this process the consumer of queue `index` (1..N): what was waiting there (for a
 * previous, dead worker) is dropped, its channel filter cleared and its counters reset. A
 * process that was the queue's consumer before stops taking from it. Returns 0 or -EINVAL. */
int hs_pubsub_claim(struct hs_pubsub *ps, unsigned index);

/* In the master, after worker `index` (process pid) ended: publishers stop queueing for it
 * until a new worker claims the queue. Nothing happens if another process claimed it since. */
void hs_pubsub_release(struct hs_pubsub *ps, unsigned index, pid_t pid);

/* Unmaps the region and closes the descriptors. NULL is fine. Clears the process default if
 * it was ps. */
void hs_pubsub_free(struct hs_pubsub *ps);

/* The process's region (the last created or attached), or NULL. */
struct hs_pubsub *hs_pubsub_default(void);

/* This process's worker number (1..N), 0 when it claimed no queue (a master). */
unsigned hs_pubsub_self(const struct hs_pubsub *ps);

/* The number of queues (workers). */
unsigned hs_pubsub_workers(const struct hs_pubsub *ps);

/* A random number made with the region: the same in every worker of this server, different
 * on other servers (core/pubsub_redis.c tags what it sends to Redis with it). */
uint64_t hs_pubsub_instance(const struct hs_pubsub *ps);

/* The largest message accepted, in bytes. */
size_t hs_pubsub_max_message(const struct hs_pubsub *ps);

/* Queues a copy of msg (len bytes) on channel (chlen bytes, 1..HS_PUBSUB_MAX_CHANNEL) for
 * every worker with a subscriber to the channel, this one included, and wakes them. Never
 * blocks on a consumer. A process without a queue of its own (the master) publishes nothing.
 * Returns the number of workers it was queued for (0 when nobody subscribes), -E2BIG when
 * len is over the maximum or chlen out of range, or HS_EQUEUE when at least one worker's queue
 * was full: that worker's copy is dropped and counted there, the others got theirs. (Codes of
 * their own, not HS_ETOOBIG/-ENOBUFS, so that each reaches Lua as its documented token.) */
int hs_pubsub_publish(struct hs_pubsub *ps, const char *channel, size_t chlen, const void *msg,
                      size_t len);

/* The eventfd that becomes readable when this worker's queue has messages, or -1 when the
 * process consumes none. Owned by ps. */
int hs_pubsub_wake_fd(const struct hs_pubsub *ps);

/* Call when the wake fd was readable, before draining with hs_pubsub_next: re-arms the wake
 * so a message queued after this call signals again. */
void hs_pubsub_wake_reset(struct hs_pubsub *ps);

/* Takes the next message of this worker's queue into *m. Returns 1, or 0 when the queue is
 * empty or this process is not (or no longer) its consumer. */
int hs_pubsub_next(struct hs_pubsub *ps, struct hs_pubsub_msg *m);

/* Adjusts this worker's interest in channel by delta (+1 for a new subscriber, -1 for one
 * gone): publishers skip the queues of workers with no subscriber to a channel (a filter of
 * hashed channel bits, so a worker may still get a message of a channel nobody of its own
 * wants, which the caller ignores). A no-op in a process without a queue. */
void hs_pubsub_interest(struct hs_pubsub *ps, const char *channel, size_t chlen, int delta);

/* Fills *c with this process's counters. */
void hs_pubsub_counts(const struct hs_pubsub *ps, struct hs_pubsub_counts *c);

#endif
