/* A general-purpose allocator inside one fixed block of memory that may be mapped at a
 * different address in each process: every reference is a 32-bit offset from the arena's
 * start, never a pointer. Boundary tags and segregated free lists (four size classes per
 * power of two), first fit within a class, split on allocation, merge with both neighbours on
 * free, so the free space never fragments into more pieces than the used blocks allow.
 * No locking: the caller (core/shared.c) serializes. Plain C, no allocation of its own. */
#ifndef HS_ARENA_H
#define HS_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define HS_ARENA_MIN_SIZE 4096        /* bytes of the smallest arena */
#define HS_ARENA_MAX_SIZE 0x7ffff000u /* bytes of the largest arena (32-bit offsets) */
#define HS_ARENA_OVERHEAD 8           /* bytes of header per allocated block */
#define HS_ARENA_ALIGN 8              /* every payload offset is a multiple of this */

struct hs_arena;

/* Formats size bytes at mem (aligned to 8) as an empty arena and returns it (== mem). The
 * memory stays the caller's. Returns NULL when size is under HS_ARENA_MIN_SIZE or over
 * HS_ARENA_MAX_SIZE. */
struct hs_arena *hs_arena_init(void *mem, size_t size);

/* Allocates n payload bytes. Returns the payload's offset from the arena start (a multiple of
 * 8, never 0), or 0 when no free block is large enough. */
uint32_t hs_arena_alloc(struct hs_arena *a, size_t n);

/* Frees the block whose payload is at off (from hs_arena_alloc). */
void hs_arena_free(struct hs_arena *a, uint32_t off);

/* The payload at off (NULL for off 0). */
void *hs_arena_ptr(struct hs_arena *a, uint32_t off);

/* Payload bytes of the block at off (at least what was asked). */
size_t hs_arena_block_size(struct hs_arena *a, uint32_t off);

/* Bytes in allocated blocks (headers included), and the bytes blocks can use in all. */
size_t hs_arena_used(const struct hs_arena *a);
size_t hs_arena_capacity(const struct hs_arena *a);

/* The largest n that hs_arena_alloc could satisfy now (0 when full). */
size_t hs_arena_largest_free(const struct hs_arena *a);

/* Frees every block at once. */
void hs_arena_reset(struct hs_arena *a);

/* Walks every block and checks the tags, the free lists and the used count against each
 * other. Returns 0, or -1 at the first inconsistency (tests). */
int hs_arena_check(struct hs_arena *a);

#endif
