#include "core/resp.h"
#include "core/hs.h"

#include <limits.h>
#include <string.h>

/* Finds the CRLF ending the line that starts at p (n bytes available). Returns the line's
 * length without CRLF, HS_AGAIN when it is not complete yet, HS_EPROTO when it is over the
 * limit or holds a bare CR or LF. */
static long line_end(const char *p, size_t n)
{
    size_t max = n < HS_RESP_MAX_LINE + 2 ? n : HS_RESP_MAX_LINE + 2;
    for (size_t i = 0; i < max; i++) {
        if (p[i] == '\n')
            return HS_EPROTO;
        if (p[i] == '\r') {
            if (i + 1 == n)
                return HS_AGAIN;
            return p[i + 1] == '\n' ? (long)i : HS_EPROTO;
        }
    }
    return n < HS_RESP_MAX_LINE + 2 ? HS_AGAIN : HS_EPROTO;
}

/* A decimal integer: an optional '-', then 1..19 digits, the whole of p..p+n. */
static int parse_int(const char *p, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (n > 0 && p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 19)
        return HS_EPROTO;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return HS_EPROTO;
        v = v * 10 + (unsigned long long)(p[i] - '0');
    }
    if (v > (unsigned long long)LLONG_MAX)
        return HS_EPROTO;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

/* Parses one scalar at buf[off]. Returns the offset after it, HS_AGAIN (with *need) or
 * HS_EPROTO; *is_array is set instead, with the count in it->integer, for a '*' header. */
static long parse_item(const char *buf, size_t len, size_t off, struct hs_resp_item *it,
                       int *is_array, size_t *need)
{
    memset(it, 0, sizeof *it);
    *is_array = 0;
    *need = len + 1;
    if (off >= len)
        return HS_AGAIN;
    const char *p = buf + off + 1;
    long l = line_end(p, len - off - 1);
    if (l < 0)
        return l;
    size_t after = off + 1 + (size_t)l + 2;
    switch (buf[off]) {
    case '+':
    case '-':
        it->type = buf[off] == '+' ? HS_RESP_SIMPLE : HS_RESP_ERROR;
        it->str = p;
        it->len = (size_t)l;
        return (long)after;
    case ':':
        it->type = HS_RESP_INTEGER;
        return parse_int(p, (size_t)l, &it->integer) == 0 ? (long)after : HS_EPROTO;
    case '$':
    case '*': {
        long long n;
        if (parse_int(p, (size_t)l, &n) != 0 || n < -1)
            return HS_EPROTO;
        if (n == -1) {
            it->type = HS_RESP_NIL;
            return (long)after;
        }
        if (buf[off] == '*') {
            if (n > HS_RESP_MAX_ELEMS)
                return HS_EPROTO;
            *is_array = 1;
            it->type = HS_RESP_ARRAY;
            it->integer = n;
            return (long)after;
        }
        if ((size_t)n > HS_RESP_MAX_BULK)
            return HS_EPROTO;
        size_t end = after + (size_t)n + 2;
        if (len < end) {
            /* A CRLF already in view must be where the length says. */
            if (len > after + (size_t)n && buf[after + (size_t)n] != '\r')
                return HS_EPROTO;
            *need = end;
            return HS_AGAIN;
        }
        if (buf[end - 2] != '\r' || buf[end - 1] != '\n')
            return HS_EPROTO;
        it->type = HS_RESP_BULK;
        it->str = buf + after;
        it->len = (size_t)n;
        return (long)end;
    }
    default:
        return HS_EPROTO;
    }
}

int hs_resp_parse(const char *buf, size_t len, struct hs_resp_reply *out, size_t *need)
{
    size_t dummy;
    if (need == NULL)
        need = &dummy;
    memset(out, 0, sizeof *out);
    int is_array;
    long off = parse_item(buf, len, 0, &out->v, &is_array, need);
    if (off < 0 || !is_array)
        return (int)off;
    size_t n = (size_t)out->v.integer;
    out->v.integer = 0;
    for (size_t i = 0; i < n; i++) {
        off = parse_item(buf, len, (size_t)off, &out->elem[i], &is_array, need);
        if (off < 0)
            return (int)off;
        if (is_array)
            return HS_EPROTO;
    }
    out->n = n;
    return (int)off;
}
