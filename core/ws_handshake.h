/* The opening handshake of RFC 6455 (§4.2) seen from a server: checks the request's fields,
 * computes Sec-WebSocket-Accept and reads comma-separated token lists. Pure: no sockets, no
 * Lua, no allocation. */
#ifndef HS_WS_HANDSHAKE_H
#define HS_WS_HANDSHAKE_H

#include <stddef.h>

#define HS_WS_ACCEPT_LEN 28 /* characters of a Sec-WebSocket-Accept value (base64 of SHA-1) */

/* The fields of an upgrade request that matter; a NULL pointer is an absent field. */
struct hs_ws_request {
    const char *method; /* "GET" */
    size_t method_len;
    int minor;           /* HTTP/1.minor */
    int has_body;        /* Content-Length > 0 or chunked */
    const char *upgrade; /* Upgrade: must list "websocket" */
    size_t upgrade_len;
    const char *connection; /* Connection: must list "upgrade" */
    size_t connection_len;
    const char *key; /* Sec-WebSocket-Key: base64 of 16 bytes */
    size_t key_len;
    const char *version; /* Sec-WebSocket-Version: "13" */
    size_t version_len;
};

/* Checks r against RFC 6455 §4.2.1. Returns 0 when it is a valid handshake; 426 when only the
 * version is wrong or missing (the answer must then carry Sec-WebSocket-Version: 13); 400
 * otherwise. *why is set to a static text for the log whenever the result is not 0. */
int hs_ws_handshake_check(const struct hs_ws_request *r, const char **why);

/* Writes the Sec-WebSocket-Accept value of key (key_len bytes, as received) into out, which
 * must hold HS_WS_ACCEPT_LEN + 1 bytes (NUL-terminated). Returns 0, or -EIO when the digest
 * failed (libcrypto). */
int hs_ws_accept_key(const char *key, size_t key_len, char *out);

/* 1 when the field value list[0..len), a comma-separated list, holds token (tlen bytes),
 * compared without case; 0 otherwise. */
int hs_ws_list_has(const char *list, size_t len, const char *token, size_t tlen);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int hs_ws_utf8_valid(const unsigned char *s, size_t n);

#endif
