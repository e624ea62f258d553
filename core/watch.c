#include "core/watch.h"
#include "core/clock.h"
#include "core/hs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

struct file_sig {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    long long mtime_ns;
};

struct watched {
    size_t tag;
    char *path;
    struct file_sig sig; /* as last seen */
};

struct hs_watch {
    struct event *timer;
    unsigned settle_ms;
    hs_watch_cb cb;
    void *arg;
    struct watched *files;
    size_t n_files, cap_files;
    size_t *dirty_tags;     /* tags with an unsettled change */
    long long *dirty_since; /* monotonic ms of their last change */
    size_t n_dirty, cap_dirty;
};

static struct file_sig sig_of(const char *path)
{
    struct file_sig s;
    struct stat st;
    memset(&s, 0, sizeof s);
    if (stat(path, &st) != 0)
        return s;
    s.exists = 1;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    return s;
}

static int sig_equal(const struct file_sig *a, const struct file_sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

static void mark_dirty(struct hs_watch *w, size_t tag, long long now)
{
    for (size_t i = 0; i < w->n_dirty; i++) {
        if (w->dirty_tags[i] == tag) {
            w->dirty_since[i] = now;
            return;
        }
    }
    if (w->n_dirty == w->cap_dirty) {
        size_t cap = w->cap_dirty ? w->cap_dirty * 2 : 8;
        size_t *t = realloc(w->dirty_tags, cap * sizeof *t);
        if (t == NULL)
            return;
        w->dirty_tags = t;
        long long *d = realloc(w->dirty_since, cap * sizeof *d);
        if (d == NULL)
            return;
        w->dirty_since = d;
        w->cap_dirty = cap;
    }
    w->dirty_tags[w->n_dirty] = tag;
    w->dirty_since[w->n_dirty++] = now;
}

static int tag_files_exist(const struct hs_watch *w, size_t tag)
{
    for (size_t i = 0; i < w->n_files; i++)
        if (w->files[i].tag == tag && !w->files[i].sig.exists)
            return 0;
    return 1;
}

static void watch_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hs_watch *w = arg;
    HS_UNUSED(fd);
    HS_UNUSED(what);
    long long now = (long long)(hs_clock_mono() * 1000);
    for (size_t i = 0; i < w->n_files; i++) {
        struct file_sig s = sig_of(w->files[i].path);
        if (!sig_equal(&s, &w->files[i].sig)) {
            w->files[i].sig = s;
            mark_dirty(w, w->files[i].tag, now);
        }
    }
    for (size_t i = 0; i < w->n_dirty;) {
        size_t tag = w->dirty_tags[i];
        if (now - w->dirty_since[i] < (long long)w->settle_ms || !tag_files_exist(w, tag)) {
            i++;
            continue;
        }
        w->dirty_tags[i] = w->dirty_tags[w->n_dirty - 1];
        w->dirty_since[i] = w->dirty_since[w->n_dirty - 1];
        w->n_dirty--;
        /* The callback may call hs_watch_set for this tag: nothing is held across it. */
        w->cb(w, tag, w->arg);
    }
}

struct hs_watch *hs_watch_new(struct event_base *base, unsigned poll_ms, unsigned settle_ms,
                              hs_watch_cb cb, void *arg)
{
    struct hs_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->settle_ms = settle_ms;
    w->cb = cb;
    w->arg = arg;
    w->timer = event_new(base, -1, EV_PERSIST, watch_poll_cb, w);
    if (w->timer == NULL) {
        free(w);
        return NULL;
    }
    struct timeval tv = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    event_add(w->timer, &tv);
    return w;
}

int hs_watch_set(struct hs_watch *w, size_t tag, const char *const *paths, size_t n)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->n_files; i++) {
        if (w->files[i].tag == tag)
            free(w->files[i].path);
        else
            w->files[keep++] = w->files[i];
    }
    w->n_files = keep;
    if (w->n_files + n > w->cap_files) {
        size_t cap = (w->n_files + n) * 2;
        struct watched *f = realloc(w->files, cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        w->files = f;
        w->cap_files = cap;
    }
    for (size_t i = 0; i < n; i++) {
        char *p = strdup(paths[i]);
        if (p == NULL)
            return -ENOMEM;
        w->files[w->n_files].tag = tag;
        w->files[w->n_files].path = p;
        w->files[w->n_files].sig = sig_of(p);
        w->n_files++;
    }
    return 0;
}

void hs_watch_free(struct hs_watch *w)
{
    if (w == NULL)
        return;
    event_free(w->timer);
    for (size_t i = 0; i < w->n_files; i++)
        free(w->files[i].path);
    free(w->files);
    free(w->dirty_tags);
    free(w->dirty_since);
    free(w);
}
