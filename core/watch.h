/* Watches files for changes by polling stat(2) on the event loop: robust to editors that
 * save by writing a new file and renaming it over the old one, and to files that vanish
 * for a moment in between. Changes are debounced: the callback runs once a tag's files
 * have stayed unchanged (and present) for the settle time. */
#ifndef HS_WATCH_H
#define HS_WATCH_H

#include <stddef.h>

struct event_base;
struct hs_watch;

/* Called once per settled change of any file registered under tag. */
typedef void (*hs_watch_cb)(struct hs_watch *w, size_t tag, void *arg);

/* Starts polling every poll_ms; a change settles after settle_ms. Returns NULL when memory
 * runs out. */
struct hs_watch *hs_watch_new(struct event_base *base, unsigned poll_ms, unsigned settle_ms,
                              hs_watch_cb cb, void *arg);

/* Replaces the files watched under tag with paths[0..n) (copied), taking their current
 * state as the baseline. Returns 0 or -ENOMEM. */
int hs_watch_set(struct hs_watch *w, size_t tag, const char *const *paths, size_t n);

/* Stops watching and frees w. */
void hs_watch_free(struct hs_watch *w);

#endif
