/* HTTP/1.x response heads (see http_response.h). The head is first found by scanning only the
 * bytes that arrived since the last call (checking each LF for its CR and the limits on the
 * way), then parsed once, whole. */
#include "core/http_response.h"
#include "core/hs.h"

#include <string.h>

static int fail(struct hs_http_response *res, const char *why)
{
    res->why = why;
    return HS_EPROTO;
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values and reason phrases: HTAB, SP, VCHAR and obs-text. */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int ci_eq(const char *s, size_t n, const char *lit)
{
    size_t i;
    if (n != strlen(lit))
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

/* Semantics gathered from the field lines. */
struct fields {
    int te;           /* a Transfer-Encoding field was seen */
    int last_chunked; /* its last element (so far) is "chunked" */
    int conn_keep;    /* a Connection field lists "keep-alive" */
};

/* Walks the comma-separated list v[0..n), trimming OWS around each element and skipping empty
 * ones, and records what the Connection or Transfer-Encoding field says. */
static void list_scan(struct hs_http_response *res, struct fields *f, const char *v, size_t n,
                      int is_te)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e == s)
            continue;
        if (is_te)
            f->last_chunked = ci_eq(v + s, e - s, "chunked");
        else if (ci_eq(v + s, e - s, "close"))
            res->conn_close = 1;
        else if (ci_eq(v + s, e - s, "keep-alive"))
            f->conn_keep = 1;
    }
}

static int content_length(struct hs_http_response *res, const char *v, size_t n)
{
    int64_t cl = 0;
    size_t i;
    if (n == 0)
        return fail(res, "invalid content-length");
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(res, "invalid content-length");
        cl = cl * 10 + (v[i] - '0');
        if (cl > HS_HTTP_MAX_CONTENT_LENGTH)
            return fail(res, "content-length too large");
    }
    if (res->content_length >= 0 && res->content_length != cl)
        return fail(res, "conflicting content-length");
    res->content_length = cl;
    return 0;
}

/* "HTTP/1.d NNN[ reason]" in p[0..n). */
static int status_line(struct hs_http_response *res, const char *p, size_t n)
{
    size_t i;
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
        return fail(res, "bad status line");
    if (p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return fail(res, "bad status code");
    if (n > 12 && p[12] != ' ')
        return fail(res, "bad status code");
    for (i = 13; i < n; i++) {
        if (!is_text((unsigned char)p[i]))
            return fail(res, "control byte in reason");
    }
    res->minor_version = p[7] - '0';
    res->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    res->reason = n > 12 ? p + 13 : p + 12;
    res->reason_len = n > 12 ? n - 13 : 0;
    return 0;
}

/* One field line p[0..n) (CRLF excluded). */
static int field_line(struct hs_http_response *res, struct fields *f, const char *p, size_t n,
                      size_t max_headers)
{
    size_t i = 0, vs, ve;
    if (is_ows(p[0]))
        return fail(res, "obsolete line folding");
    while (i < n && p[i] != ':') {
        if (!is_tchar((unsigned char)p[i]))
            return fail(res, "invalid field name");
        i++;
    }
    if (i == 0 || i == n)
        return fail(res, "invalid field line");
    vs = i + 1;
    while (vs < n && is_ows(p[vs]))
        vs++;
    ve = n;
    while (ve > vs && is_ows(p[ve - 1]))
        ve--;
    for (size_t k = vs; k < ve; k++) {
        if (!is_text((unsigned char)p[k]))
            return fail(res, "control byte in field value");
    }
    if (res->num_headers >= res->headers_cap || res->num_headers >= max_headers)
        return fail(res, "too many header fields");
    struct hs_http_header *h = &res->headers[res->num_headers++];
    h->name = p;
    h->name_len = i;
    h->value = p + vs;
    h->value_len = ve - vs;
    if (ci_eq(p, i, "content-length"))
        return content_length(res, h->value, h->value_len);
    if (ci_eq(p, i, "transfer-encoding")) {
        f->te = 1;
        list_scan(res, f, h->value, h->value_len, 1);
    } else if (ci_eq(p, i, "connection")) {
        list_scan(res, f, h->value, h->value_len, 0);
    }
    return 0;
}

/* Parses the complete head buf[0..end) (end is just past its blank line's LF; every LF in it
 * is known to follow a CR). */
static int parse_head(const char *buf, size_t end, int head_request, size_t max_sl, size_t max_hb,
                      size_t max_headers, struct hs_http_response *res)
{
    struct fields f = {0, 0, 0};
    const char *lf = memchr(buf, '\n', end);
    size_t sl = (size_t)(lf - buf) - 1, pos;
    int rc;

    if (sl > max_sl)
        return fail(res, "status line too long");
    if ((rc = status_line(res, buf, sl)) < 0)
        return rc;
    pos = sl + 2;
    if (end - pos - 2 > max_hb)
        return fail(res, "response head too large");
    while (pos < end - 2) {
        const char *eol = memchr(buf + pos, '\n', end - pos);
        size_t n = (size_t)(eol - (buf + pos)) - 1;
        if ((rc = field_line(res, &f, buf + pos, n, max_headers)) < 0)
            return rc;
        pos += n + 2;
    }
    if (f.te && res->content_length >= 0)
        return fail(res, "content-length with transfer-encoding");
    if (f.te && res->minor_version == 0)
        return fail(res, "transfer-encoding in HTTP/1.0");
    res->chunked = f.te && f.last_chunked;
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304)
        res->body = HS_HTTP_BODY_NONE;
    else if (f.te)
        res->body = res->chunked ? HS_HTTP_BODY_CHUNKED : HS_HTTP_BODY_CLOSE;
    else if (res->content_length >= 0)
        res->body = HS_HTTP_BODY_LENGTH;
    else
        res->body = HS_HTTP_BODY_CLOSE;
    if (res->minor_version >= 1)
        res->keep_alive = !res->conn_close;
    else
        res->keep_alive = f.conn_keep && !res->conn_close;
    if (res->body == HS_HTTP_BODY_CLOSE)
        res->keep_alive = 0;
    return (int)end;
}

int hs_http_parse_response(const char *buf, size_t len, size_t last_len, int head_request,
                           const struct hs_http_response_limits *limits,
                           struct hs_http_response *res)
{
    size_t max_sl =
        limits && limits->max_status_line ? limits->max_status_line : HS_HTTP_MAX_STATUS_LINE;
    size_t max_hb = limits && limits->max_header_bytes ? limits->max_header_bytes
                                                       : HS_HTTP_MAX_RESPONSE_HEADER_BYTES;
    size_t max_headers = limits && limits->max_headers ? limits->max_headers : HS_HTTP_MAX_HEADERS;
    size_t i = last_len >= 3 ? last_len - 3 : 0;

    res->num_headers = 0;
    res->status = 0;
    res->minor_version = 0;
    res->reason = NULL;
    res->reason_len = 0;
    res->content_length = -1;
    res->chunked = 0;
    res->conn_close = 0;
    res->keep_alive = 0;
    res->body = HS_HTTP_BODY_NONE;
    res->why = NULL;
    if (last_len > len)
        i = 0;

    /* Only the new bytes (and the three before them, which may start the blank line's CRLF
     * CRLF) are looked at; each LF must follow a CR, so a head with bare LFs is refused as
     * soon as one arrives. The head cannot be over INT_MAX: the limits are far below. */
    for (;;) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (lf == NULL)
            break;
        i = (size_t)(lf - buf);
        if (i == 0 || buf[i - 1] != '\r')
            return fail(res, "bare LF");
        if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return parse_head(buf, i + 1, head_request, max_sl, max_hb, max_headers, res);
        i++;
    }
    /* Incomplete: refuse once the bytes so far cannot start a head within the limits. The
     * status line is looked for once, when len first passes its limit. */
    if (last_len < max_sl + 2 && len >= max_sl + 2 && memchr(buf, '\n', max_sl + 2) == NULL)
        return fail(res, "status line too long");
    if (len > max_sl + max_hb + 4)
        return fail(res, "response head too large");
    return HS_AGAIN;
}
