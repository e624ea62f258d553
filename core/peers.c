#include "core/peers.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define PEERS_MIN_CAP 64 /* slots of a new table; always a power of two */

struct slot {
    struct hs_peer_key key; /* family 0: the slot is free */
    unsigned count;         /* open connections, >= 1 while the slot is used */
};

struct hs_peers {
    struct slot *slots;
    size_t cap;    /* power of two */
    size_t used;   /* slots holding a key; kept at or below cap / 2 */
    uint64_t seed; /* per table, so a client cannot aim its addresses at one chain */
};

int hs_peers_key(const struct sockaddr *sa, socklen_t len, struct hs_peer_key *key)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(key, 0, sizeof *key);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->family = 4;
        memcpy(key->addr, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
            key->family = 4;
            memcpy(key->addr, a + 12, 4);
        } else {
            key->family = 6;
            memcpy(key->addr, a, 8);
        }
        return 0;
    }
    return -1;
}

static uint64_t peers_hash(const struct hs_peers *p, const struct hs_peer_key *key)
{
    uint64_t v = 0;
    memcpy(&v, key->addr, 8);
    v ^= p->seed ^ ((uint64_t)key->family << 56);
    /* splitmix64's finalizer: every input bit reaches every output bit. */
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
    return v ^ (v >> 31);
}

static int key_eq(const struct hs_peer_key *a, const struct hs_peer_key *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

struct hs_peers *hs_peers_new(void)
{
    struct hs_peers *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cap = PEERS_MIN_CAP;
    p->slots = calloc(p->cap, sizeof *p->slots);
    if (p->slots == NULL) {
        free(p);
        return NULL;
    }
    if (getrandom(&p->seed, sizeof p->seed, GRND_NONBLOCK) != (ssize_t)sizeof p->seed)
        p->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
    return p;
}

void hs_peers_free(struct hs_peers *p)
{
    if (p == NULL)
        return;
    free(p->slots);
    free(p);
}

/* The slot holding key, or the free slot where it would go. */
static struct slot *peers_find(const struct hs_peers *p, const struct hs_peer_key *key)
{
    size_t mask = p->cap - 1;
    size_t i = (size_t)peers_hash(p, key) & mask;
    /* used <= cap / 2, so a free slot always ends the probe. */
    while (p->slots[i].key.family != 0 && !key_eq(&p->slots[i].key, key))
        i = (i + 1) & mask;
    return &p->slots[i];
}

static int peers_grow(struct hs_peers *p)
{
    struct hs_peers bigger = *p;
    bigger.cap = p->cap * 2;
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (bigger.slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].key.family != 0)
            *peers_find(&bigger, &p->slots[i].key) = p->slots[i];
    free(p->slots);
    *p = bigger;
    return 0;
}

unsigned hs_peers_count(const struct hs_peers *p, const struct hs_peer_key *key)
{
    if (key->family == 0)
        return 0;
    return peers_find(p, key)->count;
}

int hs_peers_add(struct hs_peers *p, const struct hs_peer_key *key)
{
    if (key->family == 0)
        return 0;
    struct slot *s = peers_find(p, key);
    if (s->key.family != 0) {
        s->count++;
        return 0;
    }
    if ((p->used + 1) * 2 > p->cap) {
        if (peers_grow(p) != 0)
            return -ENOMEM;
        s = peers_find(p, key);
    }
    s->key = *key;
    s->count = 1;
    p->used++;
    return 0;
}

void hs_peers_remove(struct hs_peers *p, const struct hs_peer_key *key)
{
    if (key->family == 0)
        return;
    struct slot *s = peers_find(p, key);
    if (s->key.family == 0 || --s->count > 0)
        return;
    /* Backward-shift deletion: move later members of the probe run into the hole so that
     * lookups never need tombstones. */
    size_t mask = p->cap - 1;
    size_t hole = (size_t)(s - p->slots), i = hole;
    for (;;) {
        i = (i + 1) & mask;
        if (p->slots[i].key.family == 0)
            break;
        size_t home = (size_t)peers_hash(p, &p->slots[i].key) & mask;
        /* Slot i may fill the hole when its home is not cyclically in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            p->slots[hole] = p->slots[i];
            hole = i;
        }
    }
    memset(&p->slots[hole], 0, sizeof p->slots[hole]);
    p->used--;
}
