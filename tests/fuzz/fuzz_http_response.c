/* libFuzzer target for core/http_response.c: response heads as a handler's HTTP client reads
 * them from an upstream, whole and resumed byte by byte with last_len (which must agree), and
 * the chunked body after a chunked head through hs_http_chunked_next. Built only with
 * -DHOTSOCK_FUZZ=ON (clang); tests/fuzz/CMakeLists.txt also replays the corpus in every build. */
#include "core/hs.h"
#include "core/http.h"
#include "core/http_response.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT (96 * 1024) /* longer inputs are cut: the limits are below */
#define FUZZ_MAX_TRICKLE 4096      /* heads also fed byte by byte up to this length */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hs_http_header hdrs[HS_HTTP_MAX_HEADERS];

static int parse(const char *buf, size_t len, size_t last_len, int head,
                 struct hs_http_response *res)
{
    memset(res, 0, sizeof *res);
    res->headers = hdrs;
    res->headers_cap = HS_HTTP_MAX_HEADERS;
    return hs_http_parse_response(buf, len, last_len, head, NULL, res);
}

/* Checks what a successful parse promises about its views. */
static void check(const char *buf, size_t len, int r, const struct hs_http_response *res)
{
    if ((size_t)r > len || res->status < 100 || res->status > 999 || res->why != NULL)
        abort();
    if (res->reason < buf || res->reason + res->reason_len > buf + r)
        abort();
    for (size_t i = 0; i < res->num_headers; i++) {
        const struct hs_http_header *h = &res->headers[i];
        if (h->name_len == 0 || h->name < buf || h->value + h->value_len > buf + r)
            abort();
    }
    if (res->body == HS_HTTP_BODY_LENGTH && res->content_length < 0)
        abort();
    if (res->body == HS_HTTP_BODY_CLOSE && res->keep_alive)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_http_response whole, part;
    if (size == 0)
        return 0;
    /* The first byte says whether the request was HEAD. */
    int head = data[0] & 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1 < FUZZ_MAX_INPUT ? size - 1 : FUZZ_MAX_INPUT;

    int r = parse(buf, len, 0, head, &whole);
    if (r > 0) {
        check(buf, len, r, &whole);
        if (whole.body == HS_HTTP_BODY_CHUNKED) {
            struct hs_http_chunked st;
            size_t pos = (size_t)r, used, off, dlen;
            int c;
            hs_http_chunked_init(&st);
            do {
                c = hs_http_chunked_next(&st, buf + pos, len - pos, &used, &off, &dlen);
                if (c != HS_EPROTO && used > len - pos)
                    abort();
                if (c != HS_EPROTO)
                    pos += used;
            } while (c == 1);
        }
    } else if (r == HS_EPROTO && whole.why == NULL) {
        abort();
    }
    if (len > FUZZ_MAX_TRICKLE)
        return 0;
    size_t last = 0;
    int p = HS_AGAIN;
    for (size_t n = 1; n <= len && p == HS_AGAIN; n++) {
        p = parse(buf, n, last, head, &part);
        last = n;
    }
    if (p != r)
        abort();
    if (r > 0 && (part.status != whole.status || part.body != whole.body ||
                  part.keep_alive != whole.keep_alive))
        abort();
    return 0;
}
