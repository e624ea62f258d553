/* HTTP/1.x request heads (chunked bodies are core/http_chunked.c, request paths
 * core/http_path.c). See http.h for the contracts.
 *
 * The head parser works in two steps, as picohttpparser does. While the head is incomplete,
 * each call looks only at the bytes that arrived since the previous call (from last_len - 1,
 * because a CR at the old end could not yet be checked against its successor): it refuses
 * bad bytes (NUL, controls, bare LF, CR without LF) at once, looks for the blank line, and
 * refuses a head that has passed a size limit without one. Bytes past the point where a
 * limit is exceeded are never examined, so a head gives the same answer however it is split
 * across calls. Once the blank line has arrived the whole head is parsed a single time. */
#include "core/http.h"
#include "core/http_internal.h"

#include "core/hs.h"

#include <limits.h>
#include <string.h>

static int fail(struct hs_http_request *req, int status, const char *why)
{
    req->status = status;
    req->why = why;
    return HS_EPROTO;
}

/* Case-insensitive comparison of s[0..n) with lit, which must be lowercase. */
static int ci_eq(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if (lit[i] == '\0' || c != (unsigned char)lit[i])
            return 0;
    }
    return lit[n] == '\0';
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Calls fn for each element of a comma-separated list value with its OWS trimmed, empty
 * elements included. Stops at, and returns, the first nonzero fn result. */
static int list_each(const char *v, size_t n, int (*fn)(const char *, size_t, void *), void *arg)
{
    const char *end = v + n;

    for (;;) {
        const char *e = memchr(v, ',', (size_t)(end - v));
        const char *s = v, *t = e != NULL ? e : end;
        int rc;

        while (s < t && is_ows(*s))
            s++;
        while (t > s && is_ows(t[-1]))
            t--;
        rc = fn(s, (size_t)(t - s), arg);
        if (rc != 0 || e == NULL)
            return rc;
        v = e + 1;
    }
}

/* Per-head bookkeeping of the fields whose semantics the parser checks. */
struct head_state {
    int cl_seen;    /* Content-Length lines */
    int host_seen;  /* Host lines */
    int te_seen;    /* Transfer-Encoding lines */
    int te_chunked; /* "chunked" elements over all Transfer-Encoding lines */
    int te_other;   /* elements other than "chunked" */
    int expect_100; /* Expect: 100-continue seen */
};

static int te_element(const char *s, size_t n, void *arg)
{
    struct head_state *hs = arg;

    if (ci_eq(s, n, "chunked"))
        hs->te_chunked++;
    else if (n == 0)
        return 1;
    else
        hs->te_other++;
    return 0;
}

static int conn_element(const char *s, size_t n, void *arg)
{
    struct hs_http_request *req = arg;

    if (ci_eq(s, n, "close"))
        req->conn_close = 1;
    else if (ci_eq(s, n, "keep-alive"))
        req->conn_keep_alive = 1;
    return 0;
}

/* Host = uri-host [ ":" port ]: reg-name, IPv4 or an IP literal in brackets. This only
 * refuses bytes that can appear in none of them (space, '/', '@', quotes, obs-text...). */
static int host_valid(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("-._~%!$&'()*+,;=:[]", c) == NULL || c == '\0')
            return 0;
    }
    return 1;
}

/* Strict Content-Length: 1*DIGIT, at most HS_HTTP_MAX_CONTENT_LENGTH. A list ("5, 5"), a
 * sign or anything else is refused rather than interpreted. */
static int parse_content_length(struct hs_http_request *req, const char *v, size_t n)
{
    int64_t x = 0;
    size_t i;

    if (n == 0)
        return fail(req, 400, "invalid Content-Length");
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(req, 400, "invalid Content-Length");
        x = x * 10 + (v[i] - '0');
        if (x > HS_HTTP_MAX_CONTENT_LENGTH)
            return fail(req, 400, "Content-Length too large");
    }
    req->content_length = x;
    return 0;
}

/* Whether name, with every '-' and '_' left out, is lit (lowercase, no dashes). A gateway
 * that maps '_' to '-' (CGI does) or squeezes dashes reads such a name as the real field. */
static int squeezed_eq(const char *name, size_t n, const char *lit)
{
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '-' || c == '_')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if (lit[j] == '\0' || c != (unsigned char)lit[j])
            return 0;
        j++;
    }
    return lit[j] == '\0';
}

/* Applies the semantics of one field line. Returns 0 or HS_EPROTO (req->status set). */
static int field_semantics(struct hs_http_request *req, struct head_state *hs,
                           const struct hs_http_header *h)
{
    const char *n = h->name, *v = h->value;
    size_t nl = h->name_len, vl = h->value_len;

    /* Transfer_Encoding, Content--Length...: we would ignore them, a server behind us might
     * not, and the two would then disagree on where the body ends. */
    if (squeezed_eq(n, nl, "transferencoding") && !ci_eq(n, nl, "transfer-encoding"))
        return fail(req, 400, "Transfer-Encoding lookalike");
    if (squeezed_eq(n, nl, "contentlength") && !ci_eq(n, nl, "content-length"))
        return fail(req, 400, "Content-Length lookalike");
    if (ci_eq(n, nl, "content-length")) {
        /* Equal duplicates are refused too: an intermediary may have picked either line. */
        if (hs->cl_seen++)
            return fail(req, 400, "duplicate Content-Length");
        return parse_content_length(req, v, vl);
    }
    if (ci_eq(n, nl, "transfer-encoding")) {
        hs->te_seen++;
        if (list_each(v, vl, te_element, hs) != 0)
            return fail(req, 400, "invalid Transfer-Encoding");
        return 0;
    }
    if (ci_eq(n, nl, "host")) {
        if (hs->host_seen++)
            return fail(req, 400, "duplicate Host");
        if (!host_valid(v, vl))
            return fail(req, 400, "invalid Host");
        req->host = v;
        req->host_len = vl;
        return 0;
    }
    if (ci_eq(n, nl, "connection"))
        return list_each(v, vl, conn_element, req);
    if (ci_eq(n, nl, "expect") && ci_eq(v, vl, "100-continue"))
        hs->expect_100 = 1;
    return 0;
}

/* Splits the request-target into path and query. Origin-form "/p?q", asterisk-form "*" (for
 * OPTIONS only) and absolute-form "http[s]://authority/p?q" are accepted; authority-form
 * (CONNECT) and anything else is refused since hotsock is not a proxy. */
static int parse_target(struct hs_http_request *req)
{
    const char *t = req->target, *end = t + req->target_len, *p = t, *q;

    if (req->target_len == 1 && t[0] == '*') {
        if (!(req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0))
            return fail(req, 400, "asterisk target without OPTIONS");
        req->path = t;
        req->path_len = 1;
        req->query = end;
        req->query_len = 0;
        return 0;
    }
    if (t[0] != '/') {
        size_t skip;
        const char *a;

        if (req->target_len >= 7 && ci_eq(t, 7, "http://"))
            skip = 7;
        else if (req->target_len >= 8 && ci_eq(t, 8, "https://"))
            skip = 8;
        else
            return fail(req, 400, "invalid target");
        a = p = t + skip;
        while (p < end && *p != '/' && *p != '?')
            p++;
        if (p == a)
            return fail(req, 400, "empty authority");
        if (memchr(a, '@', (size_t)(p - a)) != NULL)
            return fail(req, 400, "userinfo in target");
    }
    q = memchr(p, '?', (size_t)(end - p));
    if (q == NULL)
        q = end;
    if (q == p) {
        req->path = "/"; /* absolute-form without a path */
        req->path_len = 1;
    } else {
        req->path = p;
        req->path_len = (size_t)(q - p);
    }
    req->query = q < end ? q + 1 : end;
    req->query_len = (size_t)(end - req->query);
    return 0;
}

/* Request line: method SP target SP "HTTP/" DIGIT "." DIGIT, exactly. The scan has already
 * refused controls other than HTAB, which falls out below as an invalid byte. */
static int parse_request_line(struct hs_http_request *req, const char *p, const char *end)
{
    const char *s = p;

    if (p == end)
        return fail(req, 400, "empty request line");
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == s || p == end || *p != ' ')
        return fail(req, 400, "invalid method");
    req->method = s;
    req->method_len = (size_t)(p - s);

    s = ++p;
    while (p < end && *p != ' ') {
        unsigned char c = (unsigned char)*p++;
        if (c < 0x21 || c == 0x7f)
            return fail(req, 400, "invalid byte in target");
    }
    if (p == s)
        return fail(req, 400, "empty target");
    if (p == end)
        return fail(req, 400, "invalid version");
    req->target = s;
    req->target_len = (size_t)(p - s);

    p++;
    if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return fail(req, 400, "invalid version");
    if (p[5] != '1' || p[7] > '1')
        return fail(req, 505, "unsupported version");
    req->minor_version = p[7] - '0';
    return parse_target(req);
}

/* Parses one field line [p, end): name ":" OWS value OWS. */
static int parse_field(struct hs_http_request *req, const char *p, const char *end,
                       struct hs_http_header *h)
{
    const char *s = p;

    if (is_ows(*p))
        return fail(req, 400, "obsolete line folding");
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == end)
        return fail(req, 400, "missing colon");
    if (*p != ':') {
        if (is_ows(*p))
            return fail(req, 400, "whitespace before colon");
        return fail(req, 400, "invalid field name");
    }
    if (p == s)
        return fail(req, 400, "empty field name");
    h->name = s;
    h->name_len = (size_t)(p - s);
    p++;
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    h->value = p;
    h->value_len = (size_t)(end - p);
    return 0;
}

/* Parses the complete head [0, head_len): request line [skip, rl_end), field lines from
 * hdr_start up to the blank line. Returns head_len or HS_EPROTO. */
static int parse_head(const char *buf, size_t skip, size_t rl_end, size_t hdr_start,
                      size_t head_len, const struct hs_http_limits *lim,
                      struct hs_http_request *req)
{
    struct head_state hs;
    const char *p, *end;
    size_t n = 0, max = lim->max_headers;
    int rc;

    memset(&hs, 0, sizeof(hs));
    req->num_headers = 0;
    req->host = NULL;
    req->host_len = 0;
    req->content_length = -1;
    req->chunked = 0;
    req->conn_close = 0;
    req->conn_keep_alive = 0;
    req->keep_alive = 0;
    req->expect_continue = 0;

    rc = parse_request_line(req, buf + skip, buf + rl_end);
    if (rc < 0)
        return rc;

    if (req->headers != NULL && req->headers_cap < max)
        max = req->headers_cap;
    /* Every CR was checked to be followed by LF, and the field section ends with one. */
    p = buf + hdr_start;
    end = buf + head_len - 2;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        struct hs_http_header tmp, *h = &tmp;

        if (n >= max)
            return fail(req, 431, "too many headers");
        if (req->headers != NULL)
            h = &req->headers[n];
        rc = parse_field(req, p, eol, h);
        if (rc < 0)
            return rc;
        rc = field_semantics(req, &hs, h);
        if (rc < 0)
            return rc;
        n++;
        p = eol + 2;
    }
    if (req->headers != NULL)
        req->num_headers = n;

    if (hs.te_seen) {
        /* Checked in this order so that a smuggling attempt is always a 400. */
        if (req->minor_version == 0)
            return fail(req, 400, "Transfer-Encoding in HTTP/1.0");
        if (hs.cl_seen)
            return fail(req, 400, "both Content-Length and Transfer-Encoding");
        if (hs.te_other)
            return fail(req, 501, "unsupported transfer coding");
        if (hs.te_chunked > 1)
            return fail(req, 400, "chunked applied twice");
        req->chunked = 1;
    }
    /* GET and HEAD have no defined body semantics (RFC 9110 9.3.1): a body there is read by
     * some servers and left as the next request by others: the desync that hardened proxies
     * refuse. An API that needs one says so (allow_get_body). */
    if (!lim->allow_get_body && (req->chunked || req->content_length > 0) &&
        ((req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) ||
         (req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0)))
        return fail(req, 400, "body in a GET or HEAD request");
    if (req->minor_version == 1 && !hs.host_seen)
        return fail(req, 400, "missing Host");
    /* RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored. */
    req->expect_continue = hs.expect_100 && req->minor_version == 1;
    if (req->minor_version == 1)
        req->keep_alive = !req->conn_close;
    else
        req->keep_alive = req->conn_keep_alive && !req->conn_close;
    return (int)head_len;
}

/* The first index from i on (at most end, and within 8 bytes of a byte that is not plain)
 * where 8 bytes at a time stop being all plain: each >= 0x20 and not DEL, the bytes scan's
 * loop passes over. Word-at-a-time tests for a byte under 0x20 and for a byte equal to 0x7f,
 * exact for presence (Mycroft's zero-byte test): about a sixth of the loop's cost. */
static size_t skip_plain(const char *buf, size_t i, size_t end)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    while (end - i >= 8) {
        uint64_t x, del;
        memcpy(&x, buf + i, 8);
        del = x ^ (0x7f * ones);
        if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & high)
            break;
        i += 8;
    }
    return i;
}

/* Checks buf[from, end) byte by byte (plain runs a word at a time): controls other than
 * HTAB/CR/LF, DEL, CR not followed by LF and LF not preceded by CR are refused. Stops at the
 * first CRLFCRLF and stores the head length. Returns 1 (head complete), 0 (not yet) or
 * HS_EPROTO. */
HS_HOT static int scan(const char *buf, size_t from, size_t end, struct hs_http_request *req,
                       size_t *head_len)
{
    size_t i = from;

    while (i < end) {
        i = skip_plain(buf, i, end);
        size_t stop = end - i > 8 ? i + 8 : end;
        for (; i < stop; i++) {
            unsigned char c = (unsigned char)buf[i];

            if (c >= 0x20 && c != 0x7f)
                continue;
            if (c == '\r') {
                if (i + 1 < end && buf[i + 1] != '\n')
                    return fail(req, 400, "CR not followed by LF");
            } else if (c == '\n') {
                if (i == 0 || buf[i - 1] != '\r')
                    return fail(req, 400, "bare LF");
                if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
                    *head_len = i + 1;
                    return 1;
                }
            } else if (c != '\t') {
                return fail(req, 400, c == 0 ? "NUL byte" : "control character");
            }
        }
    }
    return 0;
}

HS_HOT int hs_http_parse_request(const char *buf, size_t len, size_t last_len,
                                 const struct hs_http_limits *limits, struct hs_http_request *req)
{
    struct hs_http_limits lim = {HS_HTTP_MAX_REQUEST_LINE, HS_HTTP_MAX_HEADER_BYTES,
                                 HS_HTTP_MAX_HEADERS, 0};
    size_t skip = 0, from, limit, head_len = 0, rl_end;
    const char *cr;
    int rc;

    if (limits != NULL) {
        if (limits->max_request_line != 0)
            lim.max_request_line = limits->max_request_line;
        if (limits->max_header_bytes != 0)
            lim.max_header_bytes = limits->max_header_bytes;
        if (limits->max_headers != 0)
            lim.max_headers = limits->max_headers;
        lim.allow_get_body = limits->allow_get_body;
        /* The head length is returned as an int; this also keeps the sums below from wrapping. */
        lim.max_request_line = min_size(lim.max_request_line, INT_MAX / 4);
        lim.max_header_bytes = min_size(lim.max_header_bytes, INT_MAX / 4);
    }
    req->status = 0;
    req->why = NULL;
    if (last_len > len)
        last_len = 0;
    from = last_len > 0 ? last_len - 1 : 0;
    if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
        skip = 2;

    /* Where the request line ends decides how far the head may go. Searching for it again
     * costs at most the request line, itself bounded, and memchr stops at the CR. */
    limit = skip + lim.max_request_line + 1;
    cr = memchr(buf + skip, '\r', min_size(len, limit) - skip);
    if (cr == NULL) {
        rc = scan(buf, from, min_size(len, limit), req, &head_len);
        if (rc < 0)
            return rc;
        if (len >= limit)
            return fail(req, 414, "request line too long");
        return HS_AGAIN;
    }
    rl_end = (size_t)(cr - buf);
    limit = rl_end + 2 + lim.max_header_bytes + 2;
    rc = scan(buf, from, min_size(len, limit), req, &head_len);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        /* With limit - 1 bytes and no blank line yet, the head still fits only if the field
         * lines are exactly max_header_bytes long and the blank line's CR is the last byte. */
        if (len >= limit || (len == limit - 1 && buf[limit - 2] != '\r'))
            return fail(req, 431, "header section too large");
        return HS_AGAIN;
    }
    return parse_head(buf, skip, rl_end, rl_end + 2, head_len, &lim, req);
}
