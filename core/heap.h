/* The process heap's thresholds (glibc's malloc), set once when a server process starts. */
#ifndef HS_HEAP_H
#define HS_HEAP_H

/* Blocks under this many bytes come from the heap, larger ones are mapped on their own. */
#define HS_HEAP_MMAP_THRESHOLD (1024 * 1024)
/* Free memory at the top of the heap goes back to the kernel only past this many bytes. */
#define HS_HEAP_TRIM_THRESHOLD (4 * 1024 * 1024)

/* Sets both thresholds, except one the environment sets (GLIBC_TUNABLES's glibc.malloc.*,
 * or MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_): the user's choice wins. Does nothing
 * on a C library other than glibc. */
void hs_heap_tune(void);

#endif
