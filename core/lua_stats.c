/* The Lua side's part of a stats snapshot: which version each open connection runs, so the
 * bytes it has moved so far are counted with that version. */
#include "core/hs.h"
#include "core/lua_api.h"
#include "core/lua_internal.h"
#include "core/script.h"
#include "core/stats.h"

static void live_one(struct hs_conn *c, void *arg)
{
    struct hs_version *v = NULL;
    HS_UNUSED(arg);
    if (hs_conn_handler_of(c) == &hs_lua_conn_handler) {
        struct hs__conn_box *box = hs_conn_data(c);
        v = box ? box->v : NULL;
    } else if (hs_conn_handler_of(c) == &hs_lua_http_handler) {
        /* The version of its last request: the one its move (hs_stats_conn_move) went to. */
        v = hs__http_conn_version(c);
    }
    if (v != NULL)
        hs_stats_live_add(hs_version_stats(v), hs_conn_bytes_in(c), hs_conn_bytes_out(c));
}

void hs_lua_stats_live(struct hs_conns *set)
{
    hs_stats_live_reset();
    hs_conns_foreach(set, live_one, NULL);
}
