/* Small blocks a Lua state freed, kept for its next allocations of the same size class.
 *
 * Why: a script's state allocates and frees small blocks at a high rate (a 64 B echo makes a
 * string per message; an HTTP request a table, a box and several strings), and glibc's malloc
 * and free cost ~190 instructions a pair for them: the collector frees a cycle's garbage in
 * bursts, which overflow glibc's per-thread cache of 7 blocks a size into its slower bins. A
 * list per size class costs a few instructions a block each way.
 *
 * How: the classes are 16-byte granules of (request + 8), the rounding glibc itself applies,
 * so a class holds blocks of one malloc chunk size and costs no memory there. Every small
 * block is requested from malloc (or realloc) at its class's largest size, so that any block
 * of a class fits any request of it whatever the malloc. At most HS_LUA_BLOCKS_MAX bytes are
 * kept per state, beyond that blocks go back to free(): 1.5 MiB, what a small heap allocates
 * between two collections (LUA_GC_MIN_GARBAGE, lua_limits.c, 1 MiB as Lua counts it) at the
 * classes' sizes (a 64 B message's string is 89 bytes, a block of 112), so that one cycle's
 * garbage serves the next one's allocations (a cap of 256 KiB caught a third of the 64 B
 * echo's; one of 1 MiB sent a quarter of them to malloc and free, ~50 instructions a message).
 * The blocks stay malloc's own, so realloc and free take them as they are. */
#ifndef HS_LUA_BLOCKS_H
#define HS_LUA_BLOCKS_H

#include <stddef.h>

/* A kept block is free memory to the checkers too: the Asan build poisons it past its link
 * (and the part of a taken block past the request), and a debug build under valgrind marks it
 * so, so that a use after free of a Lua object is still reported though free() was not
 * called. */
#if defined(__SANITIZE_ADDRESS__)
#define HS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang's way of saying it */
#define HS_ASAN 1
#endif
#endif
#if defined(HS_ASAN)
#include <sanitizer/asan_interface.h>
#define HS_BLOCK_NOACCESS(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define HS_BLOCK_UNDEFINED(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define HS_BLOCK_DEFINED(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif !defined(NDEBUG) && defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HS_BLOCK_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define HS_BLOCK_UNDEFINED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define HS_BLOCK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#endif
#endif
#ifndef HS_BLOCK_NOACCESS
#define HS_BLOCK_NOACCESS(p, n) ((void)(p), (void)(n))
#define HS_BLOCK_UNDEFINED(p, n) ((void)(p), (void)(n))
#define HS_BLOCK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define HS_LUA_BLOCK_CLASSES 33             /* classes 1..32: requests up to 504 bytes */
#define HS_LUA_BLOCK_SMALL (16 * 32 - 8)    /* the largest request kept */
#define HS_LUA_BLOCKS_MAX ((size_t)3 << 19) /* bytes kept per state */

struct hs__block {
    struct hs__block *next;
};

struct hs__blocks {
    struct hs__block *free[HS_LUA_BLOCK_CLASSES];
    size_t bytes; /* kept, counted at their class size */
};

/* The class of a request of n bytes (1 <= n <= HS_LUA_BLOCK_SMALL). */
static inline unsigned hs__block_class(size_t n)
{
    return (unsigned)((n + 8 + 15) >> 4);
}

/* What malloc is asked for a block of class k: the most any request of k needs. */
static inline size_t hs__block_size(unsigned k)
{
    return ((size_t)k << 4) - 8;
}

/* A kept block of class k for a request of n bytes, or NULL. */
static inline void *hs__blocks_take(struct hs__blocks *bl, unsigned k, size_t n)
{
    struct hs__block *b = bl->free[k];
    if (b != NULL) {
        HS_BLOCK_DEFINED(b, sizeof *b);
        bl->free[k] = b->next;
        bl->bytes -= (size_t)k << 4;
        HS_BLOCK_UNDEFINED(b, n);
    }
    return b;
}

/* Keeps p, a block of class k; returns 0 when full (the caller frees it). */
static inline int hs__blocks_keep(struct hs__blocks *bl, void *p, unsigned k)
{
    if (bl->bytes + ((size_t)k << 4) > HS_LUA_BLOCKS_MAX)
        return 0;
    struct hs__block *b = p;
    HS_BLOCK_UNDEFINED(b, sizeof *b); /* a request under 8 bytes left the rest no-access */
    b->next = bl->free[k];
    bl->free[k] = b;
    bl->bytes += (size_t)k << 4;
    /* The link stays readable: LeakSanitizer does not look for pointers in poisoned memory,
     * and would take every block after the first of a list for a leak. */
    HS_BLOCK_NOACCESS(b + 1, hs__block_size(k) - sizeof *b);
    return 1;
}

/* Frees every kept block. */
void hs__blocks_free(struct hs__blocks *bl);

#endif
