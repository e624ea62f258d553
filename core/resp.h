/* RESP2, the Redis protocol, as much of it as hotsock's Redis pub/sub link reads: one reply
 * (a simple string, an error, an integer, a bulk string, a nil, or an array of those scalars)
 * parsed from bytes. Pure: no sockets, no allocation; the reply's strings point into the
 * caller's buffer. Nested arrays are not needed by PSUBSCRIBE/PUBLISH replies and are refused
 * as malformed. */
#ifndef HS_RESP_H
#define HS_RESP_H

#include <stddef.h>

#define HS_RESP_MAX_ELEMS 8                         /* elements of one array reply */
#define HS_RESP_MAX_LINE 65536                      /* bytes of a +, -, :, $ or * line */
#define HS_RESP_MAX_BULK (((size_t)64 << 20) + 512) /* one bulk string: a publish and its tag */

enum hs_resp_type {
    HS_RESP_SIMPLE,  /* +OK: str, len */
    HS_RESP_ERROR,   /* -ERR ...: str, len */
    HS_RESP_INTEGER, /* :12: integer */
    HS_RESP_BULK,    /* $3 abc: str, len */
    HS_RESP_NIL,     /* $-1 or *-1 */
    HS_RESP_ARRAY,   /* *N: n elements in elem */
};

/* A scalar: an array element, or the reply itself. */
struct hs_resp_item {
    enum hs_resp_type type;
    const char *str;   /* into the parsed buffer; NULL for integers and nils */
    size_t len;        /* bytes at str */
    long long integer; /* HS_RESP_INTEGER's value */
};

struct hs_resp_reply {
    struct hs_resp_item v;                       /* the reply (type HS_RESP_ARRAY for an array) */
    size_t n;                                    /* elements of an array, 0..HS_RESP_MAX_ELEMS */
    struct hs_resp_item elem[HS_RESP_MAX_ELEMS]; /* the first n are set */
};

/* Parses one reply from buf (len bytes) into *out (whose pointers then point into buf).
 * Returns the bytes it took, HS_AGAIN when buf holds a proper prefix of a reply (with *need,
 * if need != NULL, set to the least total length worth trying again with: more than len, and
 * the whole reply's length once a bulk header has said it, so a caller never rescans a long
 * payload as it arrives), or HS_EPROTO for bytes that are no reply this parser reads: an
 * unknown type byte, a line over HS_RESP_MAX_LINE, a bad number, a bulk over
 * HS_RESP_MAX_BULK, a bulk not ended by CRLF, a nested or over-long array. */
int hs_resp_parse(const char *buf, size_t len, struct hs_resp_reply *out, size_t *need);

#endif
