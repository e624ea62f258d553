#include "core/admin.h"
#include "core/hs.h"
#include "core/listener.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

struct hs_admin {
    struct hs_conns *set; /* its connections, apart from served ones */
    struct hs_listener *listener;
};

int hs_admin_new(struct event_base *base, const struct hs_addr *addr, int fd, const char *name,
                 const struct hs_framing *framing, unsigned max_connections,
                 unsigned idle_timeout_ms, const struct hs_conn_handler *handler, void *arg,
                 struct hs_admin **out)
{
    struct hs_admin *a = calloc(1, sizeof *a);
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    limits.max_connections = max_connections;
    limits.idle_timeout_ms = idle_timeout_ms;
    if (a == NULL || (a->set = hs_conns_new(base, &limits)) == NULL) {
        if (fd >= 0)
            close(fd);
        free(a);
        return -ENOMEM;
    }
    /* hs_listener_adopt_fd owns fd from here, whether it succeeds or not. */
    int r = fd >= 0 ? hs_listener_adopt_fd(base, a->set, fd, addr, name, framing, handler, arg,
                                           NULL, &a->listener)
                    : hs_listener_new(base, a->set, addr, name, framing, handler, arg, NULL,
                                      &a->listener);
    if (r != 0) {
        hs_conns_free(a->set);
        free(a);
        return r;
    }
    *out = a;
    return 0;
}

struct hs_listener *hs_admin_listener(const struct hs_admin *a)
{
    return a->listener;
}

unsigned hs_admin_busy(const struct hs_admin *a)
{
    return hs_conns_count(a->set);
}

void hs_admin_free(struct hs_admin *a)
{
    if (a == NULL)
        return;
    hs_listener_free(a->listener);
    hs_conns_free(a->set);
    free(a);
}
