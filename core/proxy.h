/* The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header a load
 * balancer puts before a client's bytes to say who the client is. Pure code over a caller's
 * bytes: no sockets, no event loop, no allocation; the parser never reads past len and
 * resumes by being called again with the grown buffer. Tested by tests/unit/test_proxy.c and
 * fuzzed by tests/fuzz/fuzz_proxy.c. */
#ifndef HS_PROXY_H
#define HS_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HS_PROXY_V1_MAX 107        /* bytes of a v1 line with its CRLF (the spec's bound) */
#define HS_PROXY_V2_MIN 16         /* bytes of the fixed v2 part: signature, command, length */
#define HS_PROXY_V2_MAX_LEN 2048   /* bytes of v2 addresses + TLVs we accept after those 16 */
#define HS_PROXY_V2_SIG_LEN 12     /* bytes of the v2 signature */
#define HS_PROXY_V2_HEADER_MAX 232 /* bytes hs_proxy_build_v2 may write (UNIX addresses) */

/* TLV types of v2 (the spec's PP2_TYPE_*). */
#define HS_PROXY_TLV_ALPN 0x01
#define HS_PROXY_TLV_AUTHORITY 0x02
#define HS_PROXY_TLV_CRC32C 0x03
#define HS_PROXY_TLV_NOOP 0x04
#define HS_PROXY_TLV_UNIQUE_ID 0x05
#define HS_PROXY_TLV_SSL 0x20
#define HS_PROXY_TLV_NETNS 0x30

/* A parsed header. Addresses are copied; tlvs points into the caller's buffer. */
struct hs_proxy_header {
    int version;                 /* 1 or 2 */
    int local;                   /* 1: v2 LOCAL, or v1 UNKNOWN / v2 UNSPEC family: no client
                                  * address given, use the socket's own */
    int socktype;                /* SOCK_STREAM or SOCK_DGRAM (v2), SOCK_STREAM (v1), or 0 */
    struct sockaddr_storage src; /* the client, when !local */
    struct sockaddr_storage dst; /* the address the client reached, when !local */
    socklen_t src_len, dst_len;  /* 0 when local */
    const unsigned char *tlvs;   /* v2 TLVs after the addresses (NULL, 0 when none) */
    size_t tlvs_len;
    const char *why; /* NULL, or after HS_EPROTO a short static reason */
};

/* Parses the header at the front of buf[0..len) (caller-owned). Either version is accepted,
 * told apart by the first bytes. Returns the header's length (> 0): the client's own bytes
 * start at buf + result. Returns HS_AGAIN while buf is a proper prefix of a header that may
 * still be valid, or HS_EPROTO (h->why set) when it cannot be one: no PROXY signature, a v1
 * line over HS_PROXY_V1_MAX or malformed (addresses that do not parse or do not match the
 * family, ports out of range or with leading zeros), a v2 version other than 2, an unknown
 * command, family or transport, a length over HS_PROXY_V2_MAX_LEN or too short for the
 * family's addresses, or malformed TLVs. */
int hs_proxy_parse(const unsigned char *buf, size_t len, struct hs_proxy_header *h);

/* Walks the TLVs of a v2 header: call with *p = h->tlvs and *left = h->tlvs_len; each call
 * returns 1 with *type, *value (into the buffer) and *value_len for the next TLV and advances
 * *p and *left, or 0 at the end. hs_proxy_parse has already checked they are well formed. */
int hs_proxy_tlv_next(const unsigned char **p, size_t *left, unsigned *type,
                      const unsigned char **value, size_t *value_len);

/* Writes a v2 PROXY header for a stream from src to dst (both AF_INET, both AF_INET6, or
 * both AF_UNIX) into out (cap bytes; HS_PROXY_V2_HEADER_MAX always suffices). With src NULL
 * it writes a LOCAL header. Returns the length written, or HS_EPROTO when the families
 * differ or are unsupported, or HS_ETOOBIG when cap is too small. */
int hs_proxy_build_v2(const struct sockaddr *src, socklen_t src_len, const struct sockaddr *dst,
                      socklen_t dst_len, unsigned char *out, size_t cap);

#endif
