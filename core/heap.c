/* The process heap's thresholds.
 *
 * Why: a large read becomes a Lua string in a block of its own (lua_rx_block.c), 64 KiB for a
 * client that sends fast, and the collector frees such strings many at a time. With glibc's
 * defaults a free that leaves more than 128 KiB free at the top of the heap gives that memory
 * back to the kernel, and the next reads take it again, a page fault per 4 KiB touched.
 * Whether the freed blocks reach the top depends on where earlier blocks landed, so a run of
 * the 4 KiB pipelined echo was either fast or a quarter slower with 100 page faults per 1,000
 * messages, decided when the process started (bench/results/rerun-tcp4k-slow-runs.md).
 * glibc's own dynamic threshold would raise both limits after the first large block it
 * unmapped, which a server may or may not ever do; fixed values make the heap behave the
 * same in every process: blocks under 1 MiB are reused from the heap, and a worker keeps at
 * most 4 MiB of free memory it does not use. nginx and HAProxy keep memory the same way, in
 * pools of their own. */
#include "core/heap.h"

#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>

/* The environment names this threshold (a tunable, or the older MALLOC_*_ variable). */
static int env_sets(const char *tunable, const char *var)
{
    const char *t = getenv("GLIBC_TUNABLES");
    return (t != NULL && strstr(t, tunable) != NULL) || getenv(var) != NULL;
}
#endif

void hs_heap_tune(void)
{
#ifdef __GLIBC__
    if (!env_sets("glibc.malloc.mmap_threshold", "MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, HS_HEAP_MMAP_THRESHOLD);
    if (!env_sets("glibc.malloc.trim_threshold", "MALLOC_TRIM_THRESHOLD_"))
        mallopt(M_TRIM_THRESHOLD, HS_HEAP_TRIM_THRESHOLD);
#endif
}
