/* Placeholder until the HTTP layer lands: refuses connections with a log line. */
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"

static void http_open(struct hs_conn *c, void *arg)
{
    HS_UNUSED(arg);
    hs_log(HS_LOG_ERROR, "conn#%llu %s: HTTP is not built yet", (unsigned long long)hs_conn_id(c),
           hs_conn_peer(c));
    hs_conn_abort(c, "http unavailable");
}

const struct hs_conn_handler hs_lua_http_handler = {
    .on_open = http_open,
};
