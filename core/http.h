/* HTTP/1.x request heads, chunked bodies and request paths. Pure code over a caller's bytes:
 * no sockets, no event loop, no Lua, no allocation. Every pointer a result holds points into
 * the caller's buffer (or at a static string where noted) and is valid only while that buffer
 * is. Used by conn.c / lua_api.c; tested by tests/unit/test_http.c. */
#ifndef HS_HTTP_H
#define HS_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Default limits (struct hs_http_limits), and the fixed ones of the body decoder. */
#define HS_HTTP_MAX_REQUEST_LINE (8 * 1024)  /* bytes in the request line, CRLF excluded */
#define HS_HTTP_MAX_HEADER_BYTES (32 * 1024) /* bytes of field lines (CRLFs in, blank line out) */
#define HS_HTTP_MAX_HEADERS 100              /* field lines in one head */
#define HS_HTTP_MAX_CONTENT_LENGTH (INT64_C(1) << 53) /* largest Content-Length or chunk size */
#define HS_HTTP_MAX_CHUNK_LINE 1024          /* bytes in a chunk-size line (size + extensions) */
#define HS_HTTP_MAX_TRAILER_BYTES (4 * 1024) /* bytes of trailer field lines, CRLFs included */

/* Size limits and rules for one request head. A zero field means the default above. */
struct hs_http_limits {
    size_t max_request_line; /* bytes, CRLF excluded; over it: 414 */
    size_t max_header_bytes; /* bytes of all field lines with their CRLFs; over it: 431 */
    size_t max_headers;      /* field lines; over it: 431 */
    int allow_get_body;      /* 1: GET and HEAD may carry a body; 0 (default): they get 400 */
};

/* One header field line: views into the caller's buffer. The value has its leading and
 * trailing whitespace (SP, HTAB) removed; it may be empty. */
struct hs_http_header {
    const char *name; /* field name as received (compare case-insensitively) */
    size_t name_len;  /* >= 1 */
    const char *value;
    size_t value_len; /* may be 0 */
};

/* A parsed request head. The caller sets `headers` and `headers_cap` before parsing; every
 * other field is output, written by hs_http_parse_request (views only valid on success). */
struct hs_http_request {
    struct hs_http_header *headers; /* in: caller's array for the field lines, or NULL */
    size_t headers_cap;             /* in: entries in `headers` (ignored when NULL) */
    size_t num_headers;             /* out: field lines stored in `headers` */

    const char *method; /* token, case as received ("GET") */
    size_t method_len;
    const char *target; /* request-target exactly as received */
    size_t target_len;
    const char *path; /* target up to '?': "/..." (or "*"); for absolute-form the path part,
                       * or the static string "/" when the URI has none */
    size_t path_len;
    const char *query; /* after the first '?', excluding it; empty when there is none */
    size_t query_len;
    const char *host; /* Host field value, or NULL when absent */
    size_t host_len;
    int minor_version; /* 0 or 1 (HTTP/1.0, HTTP/1.1) */

    int64_t content_length; /* Content-Length, or -1 when absent (then no body unless chunked) */
    int chunked;            /* 1: body is chunked (Transfer-Encoding: chunked, HTTP/1.1 only) */
    int conn_close;         /* 1: a Connection field lists "close" */
    int conn_keep_alive;    /* 1: a Connection field lists "keep-alive" */
    int keep_alive;      /* 1: connection persists after this exchange (1.1 unless close; 1.0 only
                          * with keep-alive and without close) */
    int expect_continue; /* 1: "Expect: 100-continue" on an HTTP/1.1 request */

    int status;      /* 0, or on HS_EPROTO the status to answer with: 400 414 431 501 505 */
    const char *why; /* NULL, or on HS_EPROTO a short static reason for the log */
};

/* Parses the request head at the front of buf[0..len): the request line, the field lines and
 * the blank line. One CRLF before the request line is skipped (and counted as consumed).
 * `last_len` is 0 on the first call for a request and otherwise the `len` of the previous
 * call, which returned HS_AGAIN for the same (grown) buffer; only the bytes from there on are
 * scanned again, until the head is complete and is parsed once. `limits` may be NULL for the
 * defaults. The caller owns buf, limits, req and req->headers; nothing is retained.
 * Returns the length of the head (> 0): the body or the next request starts at buf + result,
 * and req is filled in.
 * Returns HS_AGAIN when the head is incomplete and within the limits so far.
 * Returns HS_EPROTO when the head must be refused, as soon as the bytes received show it;
 * req->status is then 400 (malformed, including smuggling risks: duplicate or invalid
 * Content-Length, Content-Length with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a
 * name that is one of those two but for '_' or extra '-', a body on GET or HEAD unless
 * limits->allow_get_body, bare LF, obsolete line folding, missing or repeated Host on 1.1), 414
 * (request line over the limit), 431 (header bytes or count over the limit, or more than
 * headers_cap fields), 501 (a transfer coding other than chunked) or 505 (HTTP/1.x with x not 0 or
 * 1, or a major version other than 1), and req->why a static reason. The connection must close
 * after the error response. On HS_AGAIN, req->status is 0 and the other outputs are unspecified. */
int hs_http_parse_request(const char *buf, size_t len, size_t last_len,
                          const struct hs_http_limits *limits, struct hs_http_request *req);

/* Decoder state for one chunked body. Zero it with hs_http_chunked_init before the body. */
struct hs_http_chunked {
    uint64_t size;   /* bytes left in the current chunk's data (or the size being read) */
    uint64_t total;  /* data bytes decoded so far (for the caller's body limit) */
    size_t line;     /* bytes of the current size line, or of the trailer section so far */
    int state;       /* private decoder state */
    const char *why; /* NULL, or after HS_EPROTO a short static reason */
};

/* Prepares *st (caller-owned) to decode a new body. */
void hs_http_chunked_init(struct hs_http_chunked *st);

/* Decodes the chunked body at the front of buf[0..len) (caller-owned; never modified). Each
 * call starts where the previous one's *consumed ended: the caller drains (or skips) exactly
 * *consumed bytes after every call and passes what follows next time, so nothing is scanned
 * twice. Framing bytes are absorbed into *st as they are seen, so any split of the input works.
 * Returns 1: buf[*data_off .. *data_off + *data_len) is body data (*data_len >= 1) and
 *   *consumed == *data_off + *data_len.
 * Returns 0: the body is complete (last chunk and trailers, which are skipped); *consumed
 *   counts up to its final CRLF and the bytes after it belong to the next message. Further
 *   calls return 0 and consume nothing.
 * Returns HS_AGAIN: all of buf was absorbed (*consumed == len); more input is needed.
 * Returns HS_EPROTO: malformed (bad hex digit, chunk size over HS_HTTP_MAX_CONTENT_LENGTH,
 *   size line over HS_HTTP_MAX_CHUNK_LINE, missing CRLF after the data, bare LF or control
 *   byte, trailers over HS_HTTP_MAX_TRAILER_BYTES); st->why says which. Further calls return
 *   HS_EPROTO. *consumed is then unspecified; the connection must close.
 * On returns other than 1, *data_off and *data_len are 0. */
int hs_http_chunked_next(struct hs_http_chunked *st, const char *buf, size_t len, size_t *consumed,
                         size_t *data_off, size_t *data_len);

/* Turns a request path (req->path: starts with '/', no query) into the path of a file under a
 * document root: percent-decodes it, then resolves "." and ".." segments and collapses runs of
 * '/'. A trailing '/' is kept ("/a/" stays a directory); a decoded "%2F" separates segments
 * like '/'. Writes the result, which starts with '/', NUL-terminated into out (caller-owned,
 * out_size bytes; in_len + 1 always suffices).
 * Returns the length of the result, excluding the NUL.
 * Returns HS_EPROTO when in does not start with '/', has an invalid % escape, decodes to a
 * NUL, a control byte, DEL or a backslash, or a ".." would climb above the root.
 * Returns HS_ETOOBIG when out is too small; out is then unspecified. */
int hs_http_path_normalize(const char *in, size_t in_len, char *out, size_t out_size);

#endif
