/* Objects a script version owns: Lua timers and subscriptions are made while a version's code
 * runs and belong to it. Those its top level (or on_reload) made go when the version retires,
 * so a reload swaps the old load's timers for the new one's; the others go when the version
 * is freed. One list per kind of object and per Lua state; the list registers itself with the
 * version module (core/script.h, hs_version_watch), which tells it when a version goes. Plain
 * C: no Lua here. */
#ifndef HS_OWNED_H
#define HS_OWNED_H

#include <stddef.h>

#include "core/script.h"

struct hs_owned;

/* Releases o, which it normally takes out of the list (hs_owned_remove). It may remove o
 * and no other object: the walk that calls it has already stepped past o. */
typedef void (*hs_owned_release_cb)(struct hs_owned *o, void *arg);

/* A node embedded in the owned object; its fields are this module's. */
struct hs_owned {
    struct hs_version *owner;     /* version whose code made it (not referenced) */
    int at_load;                  /* made by that version's top level or on_reload */
    struct hs_owned *prev, *next; /* the list while it is in one */
};

/* A list of owned objects of one kind. Owned (embedded) by the caller; fields are this
 * module's but n, which callers may read. */
struct hs_owned_list {
    struct hs_owned *head;           /* the most recently added first */
    unsigned n;                      /* objects in the list */
    hs_owned_release_cb release;     /* what a going version's objects get */
    void *arg;                       /* release's last argument */
    struct hs_version_watcher watch; /* its registration with the version module */
};

/* Makes l empty and registers it: from now on, when a version goes, release(o, arg) is called
 * for each of its objects in l (its load-time ones when it retires, all when it is freed).
 * l must stay in place until hs_owned_list_stop. Cannot fail. */
void hs_owned_list_start(struct hs_owned_list *l, hs_owned_release_cb release, void *arg);

/* Unregisters l; objects still in it are left as they are (the caller frees them). */
void hs_owned_list_stop(struct hs_owned_list *l);

/* Adds o to l, owned by version owner (NULL: by none, never released by a version going);
 * at_load: made by the version's top level or on_reload. */
void hs_owned_add(struct hs_owned_list *l, struct hs_owned *o, struct hs_version *owner,
                  int at_load);

/* Takes o out of l (it must be in it). */
void hs_owned_remove(struct hs_owned_list *l, struct hs_owned *o);

/* The object that embeds node p as its member field. */
#define HS_OWNED_OBJECT(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

#endif
