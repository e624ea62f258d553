/* libFuzzer target for core/http.c: the request-head parser (whole, and resumed byte by byte
 * with last_len, which must agree), the chunked body decoder (whole and split) and the path
 * normalizer. Built only with -DHOTSOCK_FUZZ=ON (clang); see tests/fuzz/CMakeLists.txt. */
#include "core/hs.h"
#include "core/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT (64 * 1024) /* longer inputs are cut: the limits are far below */
#define FUZZ_MAX_TRICKLE 4096      /* heads also fed byte by byte up to this length */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];

static int parse(const char *buf, size_t len, size_t last_len, struct hs_http_request *req)
{
    memset(req, 0, sizeof *req);
    req->headers = hdrs;
    req->headers_cap = HS_HTTP_MAX_HEADERS;
    return hs_http_parse_request(buf, len, last_len, NULL, req);
}

/* The parser must not care how the bytes arrive: feeding prefixes with last_len gives the
 * result of parsing everything at once, at the first prefix where that result is decided. */
static void fuzz_head(const char *buf, size_t len)
{
    struct hs_http_request whole, part;
    int r = parse(buf, len, 0, &whole);
    if (r > 0) {
        if ((size_t)r > len || whole.method_len == 0 || whole.target_len == 0)
            abort();
        char *out = malloc(whole.path_len + 1);
        if (out != NULL && whole.path[0] == '/')
            hs_http_path_normalize(whole.path, whole.path_len, out, whole.path_len + 1);
        free(out);
    }
    if (len > FUZZ_MAX_TRICKLE)
        return;
    size_t last = 0;
    int p = HS_AGAIN;
    for (size_t n = 1; n <= len && p == HS_AGAIN; n++) {
        p = parse(buf, n, last, &part);
        last = n;
    }
    if (p != r)
        abort();
    if (r == HS_EPROTO && part.status != whole.status)
        abort();
}

/* Decodes buf as a chunked body in one piece and in pieces of 1..7 bytes; both must agree. */
static void fuzz_chunked(const char *buf, size_t len)
{
    struct hs_http_chunked a, b;
    size_t used, off, dlen, pos = 0;
    uint64_t data_a = 0, data_b = 0;
    int ra, rb = HS_AGAIN;

    hs_http_chunked_init(&a);
    do {
        ra = hs_http_chunked_next(&a, buf + pos, len - pos, &used, &off, &dlen);
        if (used > len - pos)
            abort();
        if (ra == 1)
            data_a += dlen;
        pos += ra == HS_EPROTO ? 0 : used;
    } while (ra == 1);

    hs_http_chunked_init(&b);
    size_t step = len % 7 + 1;
    pos = 0;
    while (pos < len) {
        size_t end = pos + step < len ? pos + step : len, at = pos;
        do {
            rb = hs_http_chunked_next(&b, buf + at, end - at, &used, &off, &dlen);
            if (rb == 1)
                data_b += dlen;
            at += rb == HS_EPROTO ? 0 : used;
        } while (rb == 1 && at < end);
        if (rb == 0 || rb == HS_EPROTO)
            break;
        pos = at;
    }
    if (rb == 1)
        rb = HS_AGAIN; /* the last piece ended inside chunk data: more input needed */
    if (ra == 0 && (rb != 0 || data_a != data_b))
        abort();
    if ((ra == HS_EPROTO || ra == HS_AGAIN) && rb != ra)
        abort();
}

static void fuzz_path(const char *buf, size_t len)
{
    char out[FUZZ_MAX_INPUT + 1];
    int r = hs_http_path_normalize(buf, len, out, len + 1);
    if (r >= 0 && ((size_t)r > len || out[0] != '/' || out[r] != '\0' || strstr(out, "/../")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The first byte picks the target, so one corpus covers all three. */
    const char *buf = (const char *)data + 1;
    size_t len = size - 1 < FUZZ_MAX_INPUT ? size - 1 : FUZZ_MAX_INPUT;
    switch (data[0] % 3) {
    case 0:
        fuzz_head(buf, len);
        break;
    case 1:
        fuzz_chunked(buf, len);
        break;
    default:
        fuzz_path(buf, len);
        break;
    }
    return 0;
}
