/* libFuzzer target for core/resp.c: Redis replies as the pub/sub link reads them from a Redis
 * server, parsed whole and then as a stream (each reply taken in turn, each resumed from its
 * prefixes as bytes arrive), which must agree. Built only with -DHOTSOCK_FUZZ=ON (clang);
 * tests/fuzz/CMakeLists.txt also replays the corpus in every build. */
#include "core/hs.h"
#include "core/resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks what a successful parse promises about its views. */
static void check(const char *buf, int r, const struct hs_resp_reply *rep)
{
    const struct hs_resp_item *items = rep->v.type == HS_RESP_ARRAY ? rep->elem : &rep->v;
    size_t n = rep->v.type == HS_RESP_ARRAY ? rep->n : 1;
    if (n > HS_RESP_MAX_ELEMS)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (items[i].type == HS_RESP_ARRAY)
            abort();
        if (items[i].str && (items[i].str < buf || items[i].str + items[i].len > buf + r))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t off = 0;
    while (off < size) {
        struct hs_resp_reply rep;
        size_t need = 0;
        int r = hs_resp_parse(buf + off, size - off, &rep, &need);
        if (r == HS_EPROTO)
            break;
        if (r == HS_AGAIN) {
            if (need <= size - off)
                abort();
            break;
        }
        if (r <= 0 || (size_t)r > size - off)
            abort();
        check(buf + off, r, &rep);
        /* Every shorter view of the same reply is incomplete, never another reply. */
        for (size_t k = 0; k < (size_t)r && k < 512; k++) {
            struct hs_resp_reply p;
            size_t pn = 0;
            if (hs_resp_parse(buf + off, k, &p, &pn) != HS_AGAIN || pn <= k)
                abort();
        }
        off += (size_t)r;
    }
    return 0;
}
