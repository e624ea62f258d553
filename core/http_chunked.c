/* HTTP/1.1 chunked request bodies: a resumable decoder over the bytes as they come (see
 * http.h for the contract). Pure: no allocation, no I/O. */
#include "core/http.h"
#include "core/http_internal.h"

#include "core/hs.h"

#include <limits.h>
#include <string.h>

/* Chunked decoder states; CH_SIZE_FIRST is 0 so a zeroed struct is ready. */
enum {
    CH_SIZE_FIRST,  /* first hex digit of a chunk size */
    CH_SIZE,        /* further hex digits */
    CH_EXT_BWS,     /* whitespace after the size: only ';' may follow */
    CH_EXT,         /* after ';': BWS, then an extension name */
    CH_EXT_NAME,    /* inside an extension name */
    CH_EXT_EQ,      /* BWS after a name: '=', ';' or CR may follow */
    CH_EXT_VAL,     /* BWS after '=', then a token or a quoted string */
    CH_EXT_TOKEN,   /* inside a token value */
    CH_EXT_QUOTED,  /* inside a quoted value */
    CH_EXT_QPAIR,   /* after a backslash in a quoted value */
    CH_EXT_END,     /* BWS after a value: ';' or CR may follow */
    CH_SIZE_LF,     /* LF ending the size line */
    CH_DATA,        /* chunk data, st->size bytes left */
    CH_DATA_CR,     /* CR after the data */
    CH_DATA_LF,     /* LF after the data */
    CH_TRAILER_BOL, /* start of a trailer line or of the final blank line */
    CH_TRAILER,     /* inside a trailer line, skipped */
    CH_TRAILER_LF,  /* LF ending a trailer line */
    CH_END_LF,      /* LF of the final blank line */
    CH_DONE,
    CH_ERROR,
};

void hs_http_chunked_init(struct hs_http_chunked *st)
{
    memset(st, 0, sizeof(*st));
    st->state = CH_SIZE_FIRST;
}

static int chunk_fail(struct hs_http_chunked *st, const char *why)
{
    st->state = CH_ERROR;
    st->why = why;
    return HS_EPROTO;
}

/* Bytes allowed inside extensions and trailer lines: HTAB, SP..'~', obs-text. */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* One byte c (text or CR) of the chunk extensions: *( BWS ";" BWS name [ BWS "=" BWS
 * ( token / quoted-string ) ] ) (RFC 9112 7.1.1), checked rather than skipped. A quote left
 * open at the end of the line is malformed: a parser that lets quotes hide the CRLF would
 * frame the body differently from us. Returns 0, or HS_EPROTO with st->why set. */
static int chunk_ext(struct hs_http_chunked *st, unsigned char c)
{
    int ows = is_ows((char)c), t = is_tchar(c);

    switch (st->state) {
    case CH_EXT:
        if (t)
            st->state = CH_EXT_NAME;
        else if (!ows)
            return chunk_fail(st, "invalid chunk extension");
        return 0;
    case CH_EXT_QUOTED:
        if (c == '\r')
            return chunk_fail(st, "unterminated quoted string in chunk extension");
        if (c == '"')
            st->state = CH_EXT_END;
        else if (c == '\\')
            st->state = CH_EXT_QPAIR;
        return 0;
    case CH_EXT_QPAIR:
        if (c == '\r')
            return chunk_fail(st, "unterminated quoted string in chunk extension");
        st->state = CH_EXT_QUOTED;
        return 0;
    case CH_EXT_VAL:
        if (c == '"')
            st->state = CH_EXT_QUOTED;
        else if (t)
            st->state = CH_EXT_TOKEN;
        else if (!ows)
            return chunk_fail(st, "invalid chunk extension");
        return 0;
    default: /* CH_EXT_NAME, CH_EXT_EQ, CH_EXT_TOKEN, CH_EXT_END */
        break;
    }
    if (c == '\r')
        st->state = CH_SIZE_LF;
    else if (c == ';')
        st->state = CH_EXT;
    else if (c == '=' && (st->state == CH_EXT_NAME || st->state == CH_EXT_EQ))
        st->state = CH_EXT_VAL;
    else if (ows)
        st->state = st->state == CH_EXT_NAME    ? CH_EXT_EQ
                    : st->state == CH_EXT_TOKEN ? CH_EXT_END
                                                : st->state;
    else if (!t || st->state == CH_EXT_EQ || st->state == CH_EXT_END)
        return chunk_fail(st, "invalid chunk extension");
    return 0;
}

int hs_http_chunked_next(struct hs_http_chunked *st, const char *buf, size_t len, size_t *consumed,
                         size_t *data_off, size_t *data_len)
{
    size_t i;

    *consumed = 0;
    *data_off = 0;
    *data_len = 0;
    if (st->state == CH_DONE)
        return 0;
    if (st->state == CH_ERROR)
        return HS_EPROTO;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        int d;

        switch (st->state) {
        case CH_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > st->size)
                n = (size_t)st->size;
            st->size -= n;
            st->total += n;
            if (st->size == 0)
                st->state = CH_DATA_CR;
            *data_off = i;
            *data_len = n;
            *consumed = i + n;
            return 1;
        }
        case CH_SIZE_FIRST:
        case CH_SIZE:
            if (c != '\r' && ++st->line > HS_HTTP_MAX_CHUNK_LINE)
                return chunk_fail(st, "chunk size line too long");
            d = hexval(c);
            if (d >= 0) {
                st->size = st->size * 16 + (uint64_t)d; /* size <= 2^53: cannot wrap */
                if (st->size > (uint64_t)HS_HTTP_MAX_CONTENT_LENGTH)
                    return chunk_fail(st, "chunk size too large");
                st->state = CH_SIZE;
            } else if (st->state == CH_SIZE_FIRST) {
                return chunk_fail(st, c == '\n' ? "bare LF" : "invalid chunk size");
            } else if (c == '\r') {
                st->state = CH_SIZE_LF;
            } else if (c == ';') {
                st->state = CH_EXT;
            } else if (is_ows((char)c)) {
                st->state = CH_EXT_BWS;
            } else {
                return chunk_fail(st, c == '\n' ? "bare LF" : "invalid chunk size");
            }
            break;
        case CH_EXT_BWS:
            if (++st->line > HS_HTTP_MAX_CHUNK_LINE)
                return chunk_fail(st, "chunk size line too long");
            if (c == ';')
                st->state = CH_EXT;
            else if (!is_ows((char)c))
                return chunk_fail(st, "invalid chunk size");
            break;
        case CH_EXT:
        case CH_EXT_NAME:
        case CH_EXT_EQ:
        case CH_EXT_VAL:
        case CH_EXT_TOKEN:
        case CH_EXT_QUOTED:
        case CH_EXT_QPAIR:
        case CH_EXT_END:
            if (c != '\r' && ++st->line > HS_HTTP_MAX_CHUNK_LINE)
                return chunk_fail(st, "chunk size line too long");
            if (c == '\n')
                return chunk_fail(st, "bare LF");
            if (c != '\r' && !is_text(c))
                return chunk_fail(st, "control byte in chunk extension");
            if (chunk_ext(st, c) != 0)
                return HS_EPROTO;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return chunk_fail(st, "CR not followed by LF");
            st->line = 0;
            st->state = st->size > 0 ? CH_DATA : CH_TRAILER_BOL;
            break;
        case CH_DATA_CR:
            if (c != '\r')
                return chunk_fail(st, "missing CRLF after chunk data");
            st->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return chunk_fail(st, "missing CRLF after chunk data");
            st->state = CH_SIZE_FIRST;
            break;
        case CH_TRAILER_BOL:
        case CH_TRAILER:
            if (c == '\r' && st->state == CH_TRAILER_BOL) {
                st->state = CH_END_LF;
                break;
            }
            if (++st->line > HS_HTTP_MAX_TRAILER_BYTES)
                return chunk_fail(st, "trailers too large");
            if (c == '\r')
                st->state = CH_TRAILER_LF;
            else if (c == '\n')
                return chunk_fail(st, "bare LF");
            else if (!is_text(c))
                return chunk_fail(st, "control byte in trailer");
            else
                st->state = CH_TRAILER;
            break;
        case CH_TRAILER_LF:
            if (++st->line > HS_HTTP_MAX_TRAILER_BYTES)
                return chunk_fail(st, "trailers too large");
            if (c != '\n')
                return chunk_fail(st, "CR not followed by LF");
            st->state = CH_TRAILER_BOL;
            break;
        case CH_END_LF:
            if (c != '\n')
                return chunk_fail(st, "CR not followed by LF");
            st->state = CH_DONE;
            *consumed = i + 1;
            return 0;
        default:
            return chunk_fail(st, "decoder misuse");
        }
    }
    *consumed = len;
    return HS_AGAIN;
}
