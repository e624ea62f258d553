/* Shared by core/shared.c (regions, locking, stats) and core/shared_ops.c (entries and
 * lists) only: the layout of a region in shared memory. */
#ifndef HS_SHARED_INTERNAL_H
#define HS_SHARED_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/shared.h"

/* The region's first page: where each dictionary lies. */
struct region_dir {
    char name[HS_SHARED_MAX_NAME + 1];
    uint64_t offset; /* of its struct hs_shared_dict from the region start */
};

struct hs_shared {
    uint32_t magic;
    uint32_t n;    /* dictionaries */
    uint64_t size; /* bytes of the whole mapping */
    struct region_dir dir[HS_SHARED_MAX_DICTS];
};

/* One dictionary: this header, its hash buckets, then its arena. Entries are referred to by
 * arena offsets (the mapping's address differs between processes). */
struct hs_shared_dict {
    uint32_t magic;
    int dirty;            /* set while the lock is held: a dead holder left it half-done */
    pthread_mutex_t lock; /* process-shared, robust */
    char name[HS_SHARED_MAX_NAME + 1];
    uint64_t size;       /* bytes of header, buckets and arena */
    uint64_t max_value;  /* bytes of a string value */
    uint32_t seed;       /* of the key hash: chains an outsider cannot predict */
    uint32_t nbuckets;   /* a power of two */
    uint32_t arena_off;  /* from the dictionary start */
    uint32_t lru_head;   /* most recently used entry, 0: none */
    uint32_t lru_tail;   /* least recently used entry */
    uint64_t items;      /* entries stored */
    uint64_t evicted;    /* live entries removed to make room */
    uint64_t expired;    /* expired entries reclaimed */
    uint64_t recoveries; /* emptied after a holder died */
    double next_expiry;  /* no entry expires before this (HUGE_VAL: none has a ttl) */
    uint32_t buckets[];  /* entry offsets, chained through hnext */
};

/* An entry: a block of the arena. */
struct item {
    uint32_t hnext;        /* next entry in the bucket */
    uint32_t lprev, lnext; /* LRU neighbours (lprev towards the head) */
    uint32_t hash;
    uint8_t type; /* enum hs_shared_type */
    uint8_t klen;
    uint16_t unused;
    uint32_t vlen;  /* STRING bytes; LIST elements */
    double expires; /* CLOCK_MONOTONIC seconds (system-wide), 0 = never */
    union {
        double num; /* NUMBER, BOOLEAN */
        struct {
            uint32_t head, tail; /* LIST nodes */
        } list;
    } u;
    char data[]; /* key, then a string value */
};

/* A list element: a block of the arena. */
struct node {
    uint32_t next, prev;
    uint32_t type; /* NUMBER or STRING */
    uint32_t vlen;
    double num;
    char data[];
};

/* CLOCK_MONOTONIC seconds (system-wide, so every worker agrees), plus the tests' skew. */
double hs__shared_now(void);

/* Takes d's lock; when its last holder died mid-operation the dictionary is emptied first. */
void hs__shared_lock(struct hs_shared_dict *d);

/* Releases d's lock. */
void hs__shared_unlock(struct hs_shared_dict *d);

/* Empties d (under its lock). */
void hs__shared_reset(struct hs_shared_dict *d);

/* d's arena. */
struct hs_arena *hs__shared_arena(struct hs_shared_dict *d);

#endif
