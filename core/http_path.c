/* Request paths: percent-decoding and dot-segment removal before a script or the file
 * server sees them (see http.h for the contract). Pure: no allocation, no I/O. */
#include "core/http.h"
#include "core/http_internal.h"

#include "core/hs.h"

#include <limits.h>
#include <string.h>

HS_HOT int hs_http_path_normalize(const char *in, size_t in_len, char *out, size_t out_size)
{
    size_t i = 1, o = 1, seg = 1; /* seg: where the current segment starts in out */

    if (in_len == 0 || in[0] != '/')
        return HS_EPROTO;
    if (in_len > INT_MAX)
        return HS_ETOOBIG;
    if (out_size < 2)
        return HS_ETOOBIG;
    out[0] = '/';
    /* Decoding comes first, so an encoded ".." or "/" is resolved exactly like a plain one. */
    for (;;) {
        int last = i >= in_len;
        unsigned char c = 0;

        if (!last) {
            c = (unsigned char)in[i++];
            if (c == '%') {
                int hi, lo;
                if (in_len - i < 2)
                    return HS_EPROTO;
                hi = hexval((unsigned char)in[i]);
                lo = hexval((unsigned char)in[i + 1]);
                if (hi < 0 || lo < 0)
                    return HS_EPROTO;
                c = (unsigned char)(hi * 16 + lo);
                i += 2;
            }
            if (c < 0x20 || c == 0x7f || c == '\\')
                return HS_EPROTO;
        }
        if (last || c == '/') {
            size_t n = o - seg;
            if (n == 1 && out[seg] == '.') {
                o = seg;
            } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
                /* out[seg - 1] is a '/'; a segment before it exists iff seg > 1. */
                if (seg == 1)
                    return HS_EPROTO;
                o = seg - 1;
                while (out[o - 1] != '/')
                    o--;
            } else if (n > 0 && !last) {
                if (o + 1 >= out_size)
                    return HS_ETOOBIG;
                out[o++] = '/';
            }
            if (last)
                break;
            seg = o;
            continue;
        }
        if (o + 1 >= out_size)
            return HS_ETOOBIG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}
