#include "core/arena.h"

#include <string.h>

/* Block layout. Every block starts with an 8-byte tag: its whole size (a multiple of 8,
 * header included) and flags. A free block also holds its free-list links right after the tag
 * and repeats its size in its last 4 bytes (the footer), so the block after it can find its
 * start when merging backwards; PREV_USED in a tag says whether that footer is there.
 *
 *   used:  [size|flags] payload ...
 *   free:  [size|flags] [next] [prev] ... [size]
 *
 * A zero-payload used block (the end sentinel) closes the arena so merging forwards stops. */
#define F_USED 1u
#define F_PREV_USED 2u
#define MIN_BLOCK 24u
#define NBINS 112 /* four classes per power of two from 16 bytes to 2 GiB */

struct tag {
    uint32_t size;  /* bytes of the whole block */
    uint32_t flags; /* F_* */
};

struct free_links {
    uint32_t next, prev; /* offsets of free blocks' tags in the same class, 0: none */
};

struct hs_arena {
    uint32_t first; /* offset of the first block's tag */
    uint32_t end;   /* offset of the end sentinel's tag */
    uint64_t used;  /* bytes in used blocks, tags included, sentinel excluded */
    uint32_t bins[NBINS];
};

#define HEAD_SIZE ((sizeof(struct hs_arena) + 7u) & ~7u)

static struct tag *tag_at(struct hs_arena *a, uint32_t off)
{
    return (struct tag *)(void *)((char *)a + off);
}

static struct free_links *links_at(struct hs_arena *a, uint32_t off)
{
    return (struct free_links *)(void *)((char *)a + off + sizeof(struct tag));
}

static void set_footer(struct hs_arena *a, uint32_t off, uint32_t size)
{
    memcpy((char *)a + off + size - 4, &size, 4);
}

static unsigned log2u(uint32_t v)
{
    unsigned l = 0;
    while (v >>= 1)
        l++;
    return l;
}

/* The class of a block size: four per power of two (sizes [2^l, 2^(l+1)) split in quarters). */
static unsigned bin_of(uint32_t size)
{
    unsigned l = log2u(size);
    if (l < 4)
        return 0;
    unsigned b = (l - 4) * 4 + ((size >> (l - 2)) & 3);
    return b < NBINS ? b : NBINS - 1;
}

static void bin_insert(struct hs_arena *a, uint32_t off)
{
    unsigned b = bin_of(tag_at(a, off)->size);
    struct free_links *l = links_at(a, off);
    l->prev = 0;
    l->next = a->bins[b];
    if (l->next)
        links_at(a, l->next)->prev = off;
    a->bins[b] = off;
}

static void bin_remove(struct hs_arena *a, uint32_t off)
{
    struct free_links *l = links_at(a, off);
    if (l->prev)
        links_at(a, l->prev)->next = l->next;
    else
        a->bins[bin_of(tag_at(a, off)->size)] = l->next;
    if (l->next)
        links_at(a, l->next)->prev = l->prev;
}

/* Makes [off, off + size) one free block (prev_used: the flag for its own tag), tells the
 * block after it, and files it. */
static void make_free(struct hs_arena *a, uint32_t off, uint32_t size, uint32_t prev_used)
{
    struct tag *t = tag_at(a, off);
    t->size = size;
    t->flags = prev_used;
    set_footer(a, off, size);
    tag_at(a, off + size)->flags &= ~F_PREV_USED;
    bin_insert(a, off);
}

struct hs_arena *hs_arena_init(void *mem, size_t size)
{
    if (size < HS_ARENA_MIN_SIZE || size > HS_ARENA_MAX_SIZE || ((uintptr_t)mem & 7u) != 0)
        return NULL;
    struct hs_arena *a = mem;
    memset(a, 0, sizeof *a);
    a->first = (uint32_t)HEAD_SIZE;
    a->end = (uint32_t)((size - sizeof(struct tag)) & ~(size_t)7u);
    hs_arena_reset(a);
    return a;
}

void hs_arena_reset(struct hs_arena *a)
{
    memset(a->bins, 0, sizeof a->bins);
    a->used = 0;
    struct tag *end = tag_at(a, a->end);
    end->size = 0;
    end->flags = F_USED;
    make_free(a, a->first, a->end - a->first, F_PREV_USED);
}

uint32_t hs_arena_alloc(struct hs_arena *a, size_t n)
{
    if (n > a->end - a->first)
        return 0;
    uint32_t need = (uint32_t)((n + sizeof(struct tag) + 7u) & ~(size_t)7u);
    if (need < MIN_BLOCK)
        need = MIN_BLOCK;
    /* Its own class may hold blocks smaller than need: look through it; any block of a
     * higher class is large enough, so the first one found there is taken. */
    uint32_t found = 0;
    unsigned b = bin_of(need);
    for (uint32_t off = a->bins[b]; off; off = links_at(a, off)->next) {
        if (tag_at(a, off)->size >= need) {
            found = off;
            break;
        }
    }
    for (unsigned i = b + 1; found == 0 && i < NBINS; i++)
        found = a->bins[i];
    if (found == 0)
        return 0;
    bin_remove(a, found);
    struct tag *t = tag_at(a, found);
    uint32_t size = t->size;
    if (size - need >= MIN_BLOCK) {
        /* Split: the tail stays free. */
        t->size = need;
        make_free(a, found + need, size - need, F_PREV_USED);
        size = need;
    } else {
        tag_at(a, found + size)->flags |= F_PREV_USED;
    }
    t->flags |= F_USED;
    a->used += size;
    return found + (uint32_t)sizeof(struct tag);
}

void hs_arena_free(struct hs_arena *a, uint32_t off)
{
    if (off == 0)
        return;
    uint32_t start = off - (uint32_t)sizeof(struct tag);
    struct tag *t = tag_at(a, start);
    uint32_t size = t->size;
    uint32_t prev_used = t->flags & F_PREV_USED;
    a->used -= size;
    struct tag *next = tag_at(a, start + size);
    if (!(next->flags & F_USED)) {
        bin_remove(a, start + size);
        size += next->size;
    }
    if (!prev_used) {
        uint32_t psize;
        memcpy(&psize, (char *)a + start - 4, 4);
        start -= psize;
        bin_remove(a, start);
        size += psize;
        prev_used = tag_at(a, start)->flags & F_PREV_USED;
    }
    make_free(a, start, size, prev_used);
}

void *hs_arena_ptr(struct hs_arena *a, uint32_t off)
{
    return off ? (char *)a + off : NULL;
}

size_t hs_arena_block_size(struct hs_arena *a, uint32_t off)
{
    return tag_at(a, off - (uint32_t)sizeof(struct tag))->size - sizeof(struct tag);
}

size_t hs_arena_used(const struct hs_arena *a)
{
    return (size_t)a->used;
}

size_t hs_arena_capacity(const struct hs_arena *a)
{
    return a->end - a->first;
}

size_t hs_arena_largest_free(const struct hs_arena *a)
{
    struct hs_arena *m = (struct hs_arena *)(uintptr_t)a;
    for (unsigned i = NBINS; i-- > 0;) {
        uint32_t best = 0;
        for (uint32_t off = a->bins[i]; off; off = links_at(m, off)->next)
            if (tag_at(m, off)->size > best)
                best = tag_at(m, off)->size;
        if (best)
            return best - sizeof(struct tag);
    }
    return 0;
}

int hs_arena_check(struct hs_arena *a)
{
    uint64_t used = 0;
    size_t nfree = 0;
    uint32_t prev_used = F_PREV_USED;
    uint32_t off = a->first;
    while (off < a->end) {
        struct tag *t = tag_at(a, off);
        if (t->size < MIN_BLOCK || t->size % 8 || off + t->size > a->end)
            return -1;
        if ((t->flags & F_PREV_USED) != prev_used)
            return -1;
        if (t->flags & F_USED) {
            used += t->size;
        } else {
            uint32_t foot;
            memcpy(&foot, (char *)a + off + t->size - 4, 4);
            if (foot != t->size || !prev_used)
                return -1; /* two free blocks in a row were not merged */
            nfree++;
        }
        prev_used = t->flags & F_USED ? F_PREV_USED : 0;
        off += t->size;
    }
    if (off != a->end || (tag_at(a, a->end)->flags & F_PREV_USED) != prev_used || used != a->used)
        return -1;
    size_t listed = 0;
    for (unsigned b = 0; b < NBINS; b++) {
        uint32_t prev = 0;
        for (uint32_t f = a->bins[b]; f; f = links_at(a, f)->next) {
            if (tag_at(a, f)->flags & F_USED || bin_of(tag_at(a, f)->size) != b ||
                links_at(a, f)->prev != prev || ++listed > nfree)
                return -1;
            prev = f;
        }
    }
    return listed == nfree ? 0 : -1;
}
