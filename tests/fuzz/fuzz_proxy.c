/* libFuzzer target for core/proxy.c: the PROXY protocol header parser (v1 and v2) over any
 * bytes, in a buffer of exactly their size so a read past the end shows. A header that parses
 * must not claim more bytes than it was given, must give HS_AGAIN for the prefix one byte
 * shorter, must walk its TLVs to exactly their length, and, when it carries IP addresses,
 * must survive a round trip through hs_proxy_build_v2. Built only with -DHOTSOCK_FUZZ=ON
 * (clang); its corpus is replayed in every build. */
#include "core/hs.h"
#include "core/proxy.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *exact = malloc(size ? size : 1);
    if (exact == NULL)
        return 0;
    memcpy(exact, data, size);
    struct hs_proxy_header h, back;
    int r = hs_proxy_parse(exact, size, &h);
    if (r == HS_EPROTO && h.why == NULL)
        abort();
    if (r != HS_EPROTO && r != HS_AGAIN && (r <= 0 || (size_t)r > size))
        abort();
    if (r > 0) {
        if (hs_proxy_parse(exact, (size_t)r - 1, &back) != HS_AGAIN)
            abort();
        const unsigned char *p = h.tlvs, *v;
        size_t left = h.tlvs_len, vl, walked = 0;
        unsigned type;
        while (hs_proxy_tlv_next(&p, &left, &type, &v, &vl))
            walked += 3 + vl;
        if (walked != h.tlvs_len)
            abort();
        int fam = h.src.ss_family;
        if (!h.local && (fam == AF_INET || fam == AF_INET6)) {
            unsigned char out[HS_PROXY_V2_HEADER_MAX];
            int n = hs_proxy_build_v2((struct sockaddr *)&h.src, h.src_len,
                                      (struct sockaddr *)&h.dst, h.dst_len, out, sizeof out);
            if (n <= 0 || hs_proxy_parse(out, (size_t)n, &back) != n || back.src_len != h.src_len ||
                memcmp(&back.src, &h.src, h.src_len) != 0 ||
                memcmp(&back.dst, &h.dst, h.dst_len) != 0)
                abort();
        }
    }
    free(exact);
    return 0;
}
