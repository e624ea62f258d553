#include "core/shared.h"
#include "core/arena.h"
#include "core/shared_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define TAIL_SCAN 32 /* expired entries looked for at the LRU tail before a full sweep */

static struct item *item_at(struct hs_shared_dict *d, uint32_t off)
{
    return hs_arena_ptr(hs__shared_arena(d), off);
}

static struct node *node_at(struct hs_shared_dict *d, uint32_t off)
{
    return hs_arena_ptr(hs__shared_arena(d), off);
}

static uint32_t hash_key(uint32_t seed, const char *k, size_t n)
{
    uint32_t h = 2166136261u ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

/* ---- entries (everything below runs under the lock) ---- */

static int live(const struct item *it, double now)
{
    return it->expires == 0 || it->expires > now;
}

static void lru_unlink(struct hs_shared_dict *d, struct item *it)
{
    if (it->lprev)
        item_at(d, it->lprev)->lnext = it->lnext;
    else
        d->lru_head = it->lnext;
    if (it->lnext)
        item_at(d, it->lnext)->lprev = it->lprev;
    else
        d->lru_tail = it->lprev;
    it->lprev = it->lnext = 0;
}

static void lru_push_head(struct hs_shared_dict *d, uint32_t off)
{
    struct item *it = item_at(d, off);
    it->lprev = 0;
    it->lnext = d->lru_head;
    if (d->lru_head)
        item_at(d, d->lru_head)->lprev = off;
    d->lru_head = off;
    if (d->lru_tail == 0)
        d->lru_tail = off;
}

static void touch(struct hs_shared_dict *d, uint32_t off)
{
    if (d->lru_head != off) {
        lru_unlink(d, item_at(d, off));
        lru_push_head(d, off);
    }
}

static void free_list_nodes(struct hs_shared_dict *d, struct item *it)
{
    uint32_t n = it->u.list.head;
    while (n) {
        uint32_t next = node_at(d, n)->next;
        hs_arena_free(hs__shared_arena(d), n);
        n = next;
    }
}

/* Unlinks and frees the entry at off. */
static void remove_item(struct hs_shared_dict *d, uint32_t off)
{
    struct item *it = item_at(d, off);
    uint32_t *link = &d->buckets[it->hash & (d->nbuckets - 1)];
    while (*link && *link != off)
        link = &item_at(d, *link)->hnext;
    if (*link)
        *link = it->hnext;
    lru_unlink(d, it);
    if (it->type == HS_SHARED_LIST)
        free_list_nodes(d, it);
    hs_arena_free(hs__shared_arena(d), off);
    d->items--;
}

/* The live entry of key, or 0; an expired one met on the way is reclaimed. */
static uint32_t find(struct hs_shared_dict *d, const char *key, size_t klen, uint32_t h)
{
    double now = 0;
    for (uint32_t off = d->buckets[h & (d->nbuckets - 1)]; off;) {
        struct item *it = item_at(d, off);
        uint32_t next = it->hnext;
        if (it->hash == h && it->klen == klen && memcmp(it->data, key, klen) == 0) {
            if (it->expires != 0 && now == 0)
                now = hs__shared_now();
            if (live(it, now))
                return off;
            remove_item(d, off);
            d->expired++;
            return 0;
        }
        off = next;
    }
    return 0;
}

/* Removes every expired entry and recomputes next_expiry. Returns how many went. */
static size_t sweep_expired(struct hs_shared_dict *d, double now)
{
    size_t n = 0;
    double next = HUGE_VAL;
    for (uint32_t off = d->lru_head; off;) {
        struct item *it = item_at(d, off);
        uint32_t following = it->lnext;
        if (!live(it, now)) {
            remove_item(d, off);
            d->expired++;
            n++;
        } else if (it->expires != 0 && it->expires < next) {
            next = it->expires;
        }
        off = following;
    }
    d->next_expiry = next;
    return n;
}

/* Allocates n bytes; when they do not fit and evict is set, makes room: expired entries near
 * the LRU tail, then (once anything at all has expired) every expired entry, then the least
 * recently used live entries, one at a time. Returns the offset or 0. */
static uint32_t alloc_room(struct hs_shared_dict *d, size_t n, int evict)
{
    for (;;) {
        uint32_t off = hs_arena_alloc(hs__shared_arena(d), n);
        if (off || !evict)
            return off;
        double now = hs__shared_now();
        size_t freed = 0;
        uint32_t cur = d->lru_tail;
        for (int i = 0; i < TAIL_SCAN && cur; i++) {
            struct item *it = item_at(d, cur);
            uint32_t prev = it->lprev;
            if (!live(it, now)) {
                remove_item(d, cur);
                d->expired++;
                freed++;
            }
            cur = prev;
        }
        if (freed)
            continue;
        if (now >= d->next_expiry && sweep_expired(d, now) > 0)
            continue;
        if (d->lru_tail == 0)
            return 0;
        remove_item(d, d->lru_tail);
        d->evicted++;
    }
}

static size_t value_bytes(const struct hs_shared_value *v)
{
    return v->type == HS_SHARED_STRING ? v->len : 0;
}

static void note_expiry(struct hs_shared_dict *d, double expires)
{
    if (expires != 0 && expires < d->next_expiry)
        d->next_expiry = expires;
}

static double expiry_of(double ttl)
{
    return ttl > 0 ? hs__shared_now() + ttl : 0;
}

/* Fills a fresh entry block and links it in. */
static void link_item(struct hs_shared_dict *d, uint32_t off, const char *key, size_t klen,
                      uint32_t h, const struct hs_shared_value *v, double expires)
{
    struct item *it = item_at(d, off);
    memset(it, 0, sizeof *it);
    it->hash = h;
    it->klen = (uint8_t)klen;
    it->type = (uint8_t)v->type;
    memcpy(it->data, key, klen);
    if (v->type == HS_SHARED_STRING) {
        it->vlen = (uint32_t)v->len;
        if (v->len)
            memcpy(it->data + klen, v->str, v->len);
    } else if (v->type != HS_SHARED_LIST) {
        it->u.num = v->num;
    }
    it->expires = expires;
    note_expiry(d, expires);
    uint32_t *b = &d->buckets[h & (d->nbuckets - 1)];
    it->hnext = *b;
    *b = off;
    lru_push_head(d, off);
    d->items++;
}

static int check_key(size_t klen)
{
    return klen == 0 || klen > HS_SHARED_MAX_KEY ? -E2BIG : 0;
}

/* Stores under the lock: key's entry (0 when absent) is at cur. */
static int store_locked(struct hs_shared_dict *d, const char *key, size_t klen, uint32_t h,
                        uint32_t cur, const struct hs_shared_value *v, double ttl, int safe)
{
    size_t need = sizeof(struct item) + klen + value_bytes(v);
    double expires = expiry_of(ttl);
    if (cur && item_at(d, cur)->type != HS_SHARED_LIST) {
        /* In place when the block fits without wasting much: no allocation can fail. */
        size_t have = hs_arena_block_size(hs__shared_arena(d), cur);
        if (have >= need && have <= 2 * need + 64) {
            struct item *it = item_at(d, cur);
            it->type = (uint8_t)v->type;
            it->vlen = (uint32_t)value_bytes(v);
            if (v->type == HS_SHARED_STRING && v->len)
                memcpy(it->data + klen, v->str, v->len);
            else
                it->u.num = v->num;
            it->expires = expires;
            note_expiry(d, expires);
            touch(d, cur);
            return 0;
        }
    }
    uint32_t off = hs_arena_alloc(hs__shared_arena(d), need);
    if (off == 0 && safe)
        return -ENOMEM;
    if (cur) {
        /* Replaced anyway: its room is the first to reuse. */
        remove_item(d, cur);
        cur = 0;
    }
    if (off == 0)
        off = alloc_room(d, need, 1);
    if (off == 0)
        return -ENOMEM;
    link_item(d, off, key, klen, h, v, expires);
    return 0;
}

int hs_shared_get(struct hs_shared_dict *d, const char *key, size_t klen,
                  struct hs_shared_value *out)
{
    if (check_key(klen) != 0)
        return -ENOENT;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t off = find(d, key, klen, h);
    int r = off ? 0 : -ENOENT;
    if (off) {
        struct item *it = item_at(d, off);
        out->type = it->type;
        out->num = it->type == HS_SHARED_LIST ? it->vlen : it->u.num;
        if (it->type == HS_SHARED_STRING) {
            out->len = it->vlen;
            if (it->vlen > out->cap)
                r = -ENOBUFS;
            else if (it->vlen)
                memcpy(out->buf, it->data + klen, it->vlen);
        }
        if (r == 0)
            touch(d, off);
    }
    hs__shared_unlock(d);
    return r;
}

int hs_shared_store(struct hs_shared_dict *d, const char *key, size_t klen,
                    const struct hs_shared_value *v, double ttl, int mode)
{
    if (check_key(klen) != 0 || value_bytes(v) > d->max_value)
        return -E2BIG;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    int r;
    if ((mode & HS_SHARED_ADD) && cur)
        r = -EEXIST;
    else if ((mode & HS_SHARED_REPLACE) && !cur)
        r = -ENOENT;
    else
        r = store_locked(d, key, klen, h, cur, v, ttl, mode & HS_SHARED_SAFE);
    hs__shared_unlock(d);
    return r;
}

/* Whether entry it holds exactly *v. */
static int same_value(struct item *it, const struct hs_shared_value *v)
{
    if (it->type != v->type || it->type == HS_SHARED_LIST)
        return 0;
    if (it->type == HS_SHARED_STRING)
        return it->vlen == v->len && memcmp(it->data + it->klen, v->str, v->len) == 0;
    return it->u.num == v->num;
}

int hs_shared_cas(struct hs_shared_dict *d, const char *key, size_t klen,
                  const struct hs_shared_value *old, const struct hs_shared_value *new_value,
                  double ttl)
{
    if (check_key(klen) != 0 || value_bytes(new_value) > d->max_value)
        return -E2BIG;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    int r = 0;
    if (old->type == HS_SHARED_NONE ? cur != 0 : (cur == 0 || !same_value(item_at(d, cur), old)))
        r = HS_SHARED_ECHANGED;
    else if (new_value->type == HS_SHARED_NONE)
        remove_item(d, cur);
    else
        r = store_locked(d, key, klen, h, cur, new_value, ttl, 0);
    hs__shared_unlock(d);
    return r;
}

int hs_shared_incr(struct hs_shared_dict *d, const char *key, size_t klen, double n, double init,
                   double ttl, double *result)
{
    if (check_key(klen) != 0)
        return -E2BIG;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    int r = 0;
    if (cur) {
        struct item *it = item_at(d, cur);
        if (it->type != HS_SHARED_NUMBER) {
            r = HS_SHARED_ENOTNUM;
        } else {
            it->u.num += n;
            *result = it->u.num;
            touch(d, cur);
        }
    } else {
        struct hs_shared_value v = {.type = HS_SHARED_NUMBER, .num = init + n};
        r = store_locked(d, key, klen, h, 0, &v, ttl, 0);
        *result = v.num;
    }
    hs__shared_unlock(d);
    return r;
}

int hs_shared_delete(struct hs_shared_dict *d, const char *key, size_t klen)
{
    if (check_key(klen) != 0)
        return 0;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    if (cur)
        remove_item(d, cur);
    hs__shared_unlock(d);
    return 0;
}

int hs_shared_ttl(struct hs_shared_dict *d, const char *key, size_t klen, double *ttl)
{
    if (check_key(klen) != 0)
        return -ENOENT;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    if (cur) {
        double e = item_at(d, cur)->expires;
        *ttl = e == 0 ? 0 : e - hs__shared_now();
        if (e != 0 && *ttl <= 0)
            *ttl = 1e-9; /* live a moment ago: not "no expiry" */
    }
    hs__shared_unlock(d);
    return cur ? 0 : -ENOENT;
}

int hs_shared_expire(struct hs_shared_dict *d, const char *key, size_t klen, double ttl)
{
    if (check_key(klen) != 0)
        return -ENOENT;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    uint32_t cur = find(d, key, klen, h);
    if (cur) {
        double e = expiry_of(ttl);
        item_at(d, cur)->expires = e;
        note_expiry(d, e);
    }
    hs__shared_unlock(d);
    return cur ? 0 : -ENOENT;
}

void hs_shared_flush_all(struct hs_shared_dict *d)
{
    hs__shared_lock(d);
    hs__shared_reset(d);
    hs__shared_unlock(d);
}

int hs_shared_keys(struct hs_shared_dict *d, size_t max, char *buf, size_t cap, size_t *len,
                   size_t *count)
{
    size_t used = 0, n = 0;
    hs__shared_lock(d);
    double now = hs__shared_now();
    /* Most recently used first. */
    for (uint32_t off = d->lru_head; off && (max == 0 || n < max);) {
        struct item *it = item_at(d, off);
        if (live(it, now)) {
            if (used + 1 + it->klen <= cap) {
                buf[used] = (char)it->klen;
                memcpy(buf + used + 1, it->data, it->klen);
            }
            used += 1 + it->klen;
            n++;
        }
        off = it->lnext;
    }
    hs__shared_unlock(d);
    *len = used;
    *count = n;
    return used > cap ? -ENOBUFS : 0;
}

/* ---- lists ---- */

int hs_shared_push(struct hs_shared_dict *d, const char *key, size_t klen,
                   const struct hs_shared_value *v, int left, size_t *len)
{
    if (check_key(klen) != 0 || value_bytes(v) > d->max_value)
        return -E2BIG;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    int r = 0;
    uint32_t cur = find(d, key, klen, h);
    if (cur && item_at(d, cur)->type != HS_SHARED_LIST) {
        r = HS_SHARED_ENOTLIST;
        goto out;
    }
    if (cur == 0) {
        /* The list entry first; made recently used, so the eviction below spares it. */
        cur = alloc_room(d, sizeof(struct item) + klen, 1);
        if (cur == 0) {
            r = -ENOMEM;
            goto out;
        }
        struct hs_shared_value lv = {.type = HS_SHARED_LIST};
        link_item(d, cur, key, klen, h, &lv, 0);
    } else {
        touch(d, cur);
    }
    uint32_t off = hs_arena_alloc(hs__shared_arena(d), sizeof(struct node) + value_bytes(v));
    if (off == 0 && d->lru_tail != cur) {
        /* Evicting must not take the list itself: lift it out of the LRU meanwhile. */
        lru_unlink(d, item_at(d, cur));
        off = alloc_room(d, sizeof(struct node) + value_bytes(v), 1);
        lru_push_head(d, cur);
    }
    struct item *it = item_at(d, cur);
    if (off == 0) {
        if (it->vlen == 0)
            remove_item(d, cur);
        r = -ENOMEM;
        goto out;
    }
    struct node *nd = node_at(d, off);
    nd->type = (uint32_t)v->type;
    nd->vlen = (uint32_t)value_bytes(v);
    nd->num = v->num;
    if (nd->vlen)
        memcpy(nd->data, v->str, nd->vlen);
    if (left) {
        nd->prev = 0;
        nd->next = it->u.list.head;
        if (it->u.list.head)
            node_at(d, it->u.list.head)->prev = off;
        it->u.list.head = off;
        if (it->u.list.tail == 0)
            it->u.list.tail = off;
    } else {
        nd->next = 0;
        nd->prev = it->u.list.tail;
        if (it->u.list.tail)
            node_at(d, it->u.list.tail)->next = off;
        it->u.list.tail = off;
        if (it->u.list.head == 0)
            it->u.list.head = off;
    }
    it->vlen++;
    *len = it->vlen;
out:
    hs__shared_unlock(d);
    return r;
}

int hs_shared_pop(struct hs_shared_dict *d, const char *key, size_t klen, int left,
                  struct hs_shared_value *out)
{
    if (check_key(klen) != 0)
        return -ENOENT;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    int r = 0;
    uint32_t cur = find(d, key, klen, h);
    struct item *it = cur ? item_at(d, cur) : NULL;
    if (it == NULL || (it->type == HS_SHARED_LIST && it->vlen == 0)) {
        r = -ENOENT;
    } else if (it->type != HS_SHARED_LIST) {
        r = HS_SHARED_ENOTLIST;
    } else {
        uint32_t off = left ? it->u.list.head : it->u.list.tail;
        struct node *nd = node_at(d, off);
        out->type = (enum hs_shared_type)nd->type;
        out->num = nd->num;
        out->len = nd->vlen;
        if (nd->type == HS_SHARED_STRING && nd->vlen > out->cap) {
            r = -ENOBUFS;
        } else {
            if (nd->type == HS_SHARED_STRING && nd->vlen)
                memcpy(out->buf, nd->data, nd->vlen);
            if (left) {
                it->u.list.head = nd->next;
                if (nd->next)
                    node_at(d, nd->next)->prev = 0;
                else
                    it->u.list.tail = 0;
            } else {
                it->u.list.tail = nd->prev;
                if (nd->prev)
                    node_at(d, nd->prev)->next = 0;
                else
                    it->u.list.head = 0;
            }
            hs_arena_free(hs__shared_arena(d), off);
            if (--it->vlen == 0)
                remove_item(d, cur);
            else
                touch(d, cur);
        }
    }
    hs__shared_unlock(d);
    return r;
}

int hs_shared_llen(struct hs_shared_dict *d, const char *key, size_t klen, size_t *len)
{
    *len = 0;
    if (check_key(klen) != 0)
        return 0;
    uint32_t h = hash_key(d->seed, key, klen);
    hs__shared_lock(d);
    int r = 0;
    uint32_t cur = find(d, key, klen, h);
    if (cur && item_at(d, cur)->type != HS_SHARED_LIST)
        r = HS_SHARED_ENOTLIST;
    else if (cur)
        *len = item_at(d, cur)->vlen;
    hs__shared_unlock(d);
    return r;
}
