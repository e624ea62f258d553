/* The error-token table (see errtok.h). Kept as one flat array, one entry per line, so that
 * tests/integration/errtok_spec.lua can read it from this file and hold it against the manual
 * and the LuaCATS types. A code appears at most once (the unit test checks); two codes may
 * share a token (EACCES and EPERM both mean "permission denied" to a script). Plain C, no Lua,
 * so the pure modules (framing) take their reasons from here too; the Lua side of it is
 * core/lua_errtok.c. */
#include "core/errtok.h"
#include "core/hs.h"
#include "core/shared.h"

#include <errno.h>
#include <stdio.h>

struct errtok {
    int code;          /* negative: HS_E*, a module's own code, or a negated errno */
    const char *token; /* short, lowercase, fixed: what scripts compare */
};

/* clang-format off */
static const struct errtok table[] = {
    /* Connections and sockets. */
    {HS_ECLOSED, "closed"},
    {HS_EFULL, "output buffer full"},
    {-ETIMEDOUT, "timeout"},
    {-ECONNREFUSED, "connection refused"},
    {-ECONNRESET, "connection reset"},
    {HS_ENOHOST, "no such host"},
    {-ENETUNREACH, "network unreachable"},
    {-EHOSTUNREACH, "host unreachable"},
    {-EADDRNOTAVAIL, "address not available"},
    {-EACCES, "permission denied"},
    {-EPERM, "permission denied"},
    {-ENOENT, "not found"},
    {-EAGAIN, "buffer full"},
    {-ENOBUFS, "buffer full"},
    {-ENOMEM, "no memory"},
    {-EBUSY, "busy"},
    {HS_EUNREAD, "unread data"},
    {HS_ENOPEER, "no peer address"},
    {HS_EPROXYADDR, "proxy: no client address"},
    {HS_ETLSCTX, "tls context failed"},
    {HS_EUPGRADED, "tls upgraded"},
    {HS_EPROTO, "protocol error"},
    /* Framing (conn:receive; the same words are on_close reasons). */
    {HS_ELINE, "line too long"},
    {HS_EFRAME, "frame too large"},
    {HS_ENEGLEN, "negative length"},
    {HS_EMALFORMED, "malformed frame"},
    {HS_EBADSPEC, "bad framing"},
    /* HTTP and WebSocket. */
    {HS_ETOOBIG, "body too large"},
    {-ECANCELED, "canceled"},
    {-ENOSPC, "disk full"},
    {-EDQUOT, "disk full"},
    {-EFBIG, "file too large"},
    {-EISDIR, "is a directory"},
    {HS_EHANDSHAKE, "bad handshake"},
    {HS_EWSVERSION, "unsupported version"},
    /* Shared dictionaries and publish/subscribe. */
    {-E2BIG, "too large"},
    {-EEXIST, "exists"},
    {HS_SHARED_ENOTNUM, "not a number"},
    {HS_SHARED_ENOTLIST, "not a list"},
    {HS_SHARED_EISLIST, "is a list"},
    {HS_SHARED_ECHANGED, "changed"},
    {HS_EQUEUE, "queue full"},
};
/* clang-format on */

#define TABLE_LEN (sizeof table / sizeof table[0])

const char *hs_errtok(int code)
{
    /* A linear scan: about 40 entries, and only on a failure path. */
    for (size_t i = 0; i < TABLE_LEN; i++)
        if (table[i].code == code)
            return table[i].token;
    return NULL;
}

const char *hs_errtok_text(int code, char *buf, size_t len)
{
    const char *t = hs_errtok(code);
    if (t != NULL)
        return t;
    /* The number, not strerror's words: those differ between C libraries and releases, and a
     * script must be able to rely on the text it compares. */
    if (code < 0 && code > -HS_ERRNO_MAX)
        snprintf(buf, len, "system error (errno %d)", -code);
    else
        snprintf(buf, len, "internal error (code %d)", code);
    return buf;
}

const char *hs_errtok_at(size_t i, int *code)
{
    if (i >= TABLE_LEN)
        return NULL;
    *code = table[i].code;
    return table[i].token;
}
