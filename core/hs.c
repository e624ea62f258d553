#include "core/hs.h"

#include <string.h>

const char *hs_strerror(int code)
{
    switch (code) {
    case HS_EPROTO:
        return "protocol error";
    case HS_AGAIN:
        return "need more input";
    case HS_ETOOBIG:
        return "over the configured limit";
    case HS_EBADSPEC:
        return "bad specification";
    case HS_ECLOSED:
        return "closed";
    case HS_EFULL:
        return "output buffer full";
    case HS_ESCRIPT:
        return "script error";
    case HS_ENOHOST:
        return "no such host";
    default:
        break;
    }
    if (code < 0 && code > -HS_ERRNO_MAX)
        return strerror(-code);
    if (code < 0)
        return "unknown error";
    return "success";
}
