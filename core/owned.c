#include "core/owned.h"

#include <stddef.h>

/* A version went: release what it owns in l (only what its top level made when it retired;
 * everything when it is freed). */
static void owned_version_gone(struct hs_version *v, int freed, void *arg)
{
    struct hs_owned_list *l = arg;
    for (struct hs_owned *o = l->head, *next; o; o = next) {
        next = o->next;
        if (o->owner == v && (o->at_load || freed))
            l->release(o, l->arg);
    }
}

void hs_owned_list_start(struct hs_owned_list *l, hs_owned_release_cb release, void *arg)
{
    l->head = NULL;
    l->n = 0;
    l->release = release;
    l->arg = arg;
    l->watch.cb = owned_version_gone;
    l->watch.arg = l;
    hs_version_watch(&l->watch);
}

void hs_owned_list_stop(struct hs_owned_list *l)
{
    hs_version_unwatch(&l->watch);
}

void hs_owned_add(struct hs_owned_list *l, struct hs_owned *o, struct hs_version *owner,
                  int at_load)
{
    o->owner = owner;
    o->at_load = at_load;
    o->prev = NULL;
    o->next = l->head;
    if (l->head)
        l->head->prev = o;
    l->head = o;
    l->n++;
}

void hs_owned_remove(struct hs_owned_list *l, struct hs_owned *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        l->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->prev = o->next = NULL;
    l->n--;
}
