/* Publish/subscribe across servers through Redis (--pubsub redis://HOST:PORT): extends the
 * shared-memory pub/sub of one server (core/pubsub.h) so that a message published on any
 * instance reaches the subscribers of every instance.
 *
 * Worker 1 of each server (or the single process) holds the one subscriber connection,
 * `PSUBSCRIBE <prefix>*`, and republishes what it receives into the local queues, for every
 * local worker, without sending it back to Redis. Every worker has its own publisher
 * connection, opened at its first publish: after the local publish, `PUBLISH <prefix><channel>
 * <tag><message>` goes to Redis, where tag is the server's instance id (hs_pubsub_instance) in
 * 16 hex digits, so a server drops its own messages when they come back (each is delivered
 * locally once, by the shared-memory path). One connection per publisher keeps its messages in
 * order. Local delivery never waits for Redis: while Redis is unreachable, or a publisher's
 * unsent output is over HS_PUBSUB_REDIS_MAX_OUTPUT, remote copies are dropped and counted.
 * Lost connections are retried with a growing delay (HS_PUBSUB_REDIS_RETRY_MIN..MAX). */
#ifndef HS_PUBSUB_REDIS_H
#define HS_PUBSUB_REDIS_H

#include <stddef.h>

#define HS_PUBSUB_REDIS_MAX_PREFIX 64                 /* bytes of the channel prefix */
#define HS_PUBSUB_REDIS_DEFAULT_PREFIX "hotsock:"     /* when the URL names none */
#define HS_PUBSUB_REDIS_MAX_OUTPUT ((size_t)16 << 20) /* unsent bytes of one publisher */
#define HS_PUBSUB_REDIS_RETRY_MIN_MS 100              /* first delay before reconnecting */
#define HS_PUBSUB_REDIS_RETRY_MAX_MS 2000             /* longest delay between attempts */
#define HS_PUBSUB_REDIS_CONNECT_TIMEOUT_MS 2000       /* a connect (and first reply) deadline */

struct event_base;
struct hs_pubsub;
struct hs_addr;
struct hs_pubsub_redis;

/* Counters of this process. */
struct hs_pubsub_redis_counts {
    unsigned long long sent;     /* messages written to Redis (PUBLISH) */
    unsigned long long received; /* messages of other servers republished here (worker 1) */
    unsigned long long dropped;  /* remote copies lost: Redis down, output over the limit */
    int connected;               /* 1 while the publisher (or, in worker 1, the subscriber) is up */
};

/* Checks a --pubsub URL: redis://HOST:PORT with an optional ?prefix=NAME (1 to
 * HS_PUBSUB_REDIS_MAX_PREFIX bytes). Fills *a (may be NULL) and prefix (n bytes, may be NULL).
 * Pure. Returns 0, or HS_EBADSPEC with *why (if why != NULL) set to a static reason. */
int hs_pubsub_redis_parse(const char *url, struct hs_addr *a, char *prefix, size_t n,
                          const char **why);

/* Starts the link of this process on base for ps: resolves the URL's host (a name may block
 * briefly, once, here), opens the subscriber connection when this process is worker 1 of ps,
 * and becomes the process default (hs_pubsub_redis_default). Connection failures are not
 * errors: they are logged and retried. Returns the link (freed by hs_pubsub_redis_free), or
 * NULL with a reason in err (n bytes) for a bad URL, a name that does not resolve, or no
 * memory. */
struct hs_pubsub_redis *hs_pubsub_redis_start(struct event_base *base, const char *url,
                                              struct hs_pubsub *ps, char *err, size_t n);

/* Closes the connections (unsent output is dropped) and frees r. NULL is fine. Clears the
 * process default if it was r. */
void hs_pubsub_redis_free(struct hs_pubsub_redis *r);

/* The link started in this process, or NULL when there is none. */
struct hs_pubsub_redis *hs_pubsub_redis_default(void);

/* Sends msg (len bytes) on channel (chlen bytes) to the other servers, after the caller has
 * published it locally: queued on the publisher connection (opened now if it is not), or
 * dropped and counted when the connection is down or its output is over the limit. Never
 * blocks. r may be NULL (no link: nothing happens). */
void hs_pubsub_redis_publish(struct hs_pubsub_redis *r, const char *channel, size_t chlen,
                             const void *msg, size_t len);

/* Fills *c with this process's counters. */
void hs_pubsub_redis_counts(const struct hs_pubsub_redis *r, struct hs_pubsub_redis_counts *c);

#endif
