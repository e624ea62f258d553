/* HTTP/1.x response heads, for the client side: what an upstream server sends back to a
 * handler's request. Pure code over a caller's bytes, like the request parser in http.h: no
 * sockets, no event loop, no Lua, no allocation; every view points into the caller's buffer and
 * is valid only while that buffer is. Used by lua_http_client.c; tested by
 * tests/unit/test_http_response.c and tests/fuzz/fuzz_http_response.c. */
#ifndef HS_HTTP_RESPONSE_H
#define HS_HTTP_RESPONSE_H

#include "core/http.h"

#include <stddef.h>
#include <stdint.h>

/* Default limits of a response head (a zero field of struct hs_http_response_limits). */
#define HS_HTTP_MAX_STATUS_LINE 1024                  /* bytes in the status line, CRLF excluded */
#define HS_HTTP_MAX_RESPONSE_HEADER_BYTES (64 * 1024) /* bytes of field lines, CRLFs included */

/* How the body that follows a response head is delimited (RFC 9112 section 6.3). */
enum hs_http_body {
    HS_HTTP_BODY_NONE = 0, /* no body: HEAD request, 1xx, 204, 304 */
    HS_HTTP_BODY_LENGTH,   /* exactly content_length bytes */
    HS_HTTP_BODY_CHUNKED,  /* chunked: decode with hs_http_chunked_next */
    HS_HTTP_BODY_CLOSE,    /* everything until the server closes the connection */
};

/* Size limits of one response head. A zero field means the default above. */
struct hs_http_response_limits {
    size_t max_status_line;  /* bytes, CRLF excluded */
    size_t max_header_bytes; /* bytes of all field lines with their CRLFs */
    size_t max_headers;      /* field lines (default HS_HTTP_MAX_HEADERS) */
};

/* A parsed response head. The caller sets `headers` and `headers_cap` before parsing; every
 * other field is output, written by hs_http_parse_response (views valid only on success). */
struct hs_http_response {
    struct hs_http_header *headers; /* in: caller's array for the field lines */
    size_t headers_cap;             /* in: entries in `headers` */
    size_t num_headers;             /* out: field lines stored in `headers` */

    int minor_version;  /* 0..9 (HTTP/1.0, HTTP/1.1, ...) */
    int status;         /* 100..999 */
    const char *reason; /* reason phrase as received; may be empty */
    size_t reason_len;

    int64_t content_length; /* Content-Length, or -1 when absent */
    int chunked;            /* 1: Transfer-Encoding ends with chunked */
    int conn_close;         /* 1: a Connection field lists "close" */
    int keep_alive;         /* 1: the connection may carry another request once the body is read */
    enum hs_http_body body; /* how the body is delimited */

    const char *why; /* NULL, or on HS_EPROTO a short static reason for the log */
};

/* Parses the response head at the front of buf[0..len): the status line, the field lines and
 * the blank line. `last_len` is 0 on the first call for a response and otherwise the `len` of
 * the previous call, which returned HS_AGAIN for the same (grown) buffer; only the bytes from
 * there on are scanned, until the head is complete and is parsed once. `head_request` is 1 when
 * the request was HEAD (its response has no body whatever its fields say). `limits` may be NULL
 * for the defaults. The caller owns buf, limits, res and res->headers; nothing is retained.
 * Returns the length of the head (> 0): the body starts at buf + result, and res is filled in.
 * An interim response (1xx) is returned like any other, with body HS_HTTP_BODY_NONE: the
 * caller skips it and parses the next head.
 * Returns HS_AGAIN when the head is incomplete and within the limits so far.
 * Returns HS_EPROTO when the head is malformed, as soon as the bytes received show it for the
 * limits and bare LFs, otherwise once it is complete: a status line that is not
 * "HTTP/1.d NNN[ reason]", a bare LF, a control byte, obsolete line folding, a field line
 * without a colon or with an invalid name, an invalid or conflicting Content-Length,
 * Content-Length with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a limit exceeded or more
 * than headers_cap fields. res->why is then a static reason, and the connection must close. */
int hs_http_parse_response(const char *buf, size_t len, size_t last_len, int head_request,
                           const struct hs_http_response_limits *limits,
                           struct hs_http_response *res);

#endif
