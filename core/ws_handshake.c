#include "core/ws_handshake.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* SHA-1 through OpenSSL's SHA1_Init/Update/Final, not EVP: EVP's first digest loads the default
 * provider, ~2 MiB of libcrypto pages resident for good from a server's first handshake on
 * (see core/filesink.c, which does the same for SHA-256). Deprecated in OpenSSL 3, not
 * removed: the 1.1.1 API level declares it; a library without deprecated functions gets EVP. */
#define OPENSSL_API_COMPAT 10101
#include <openssl/opensslconf.h>
#include <openssl/evp.h> /* EVP_EncodeBlock: base64, no provider */
#ifndef OPENSSL_NO_DEPRECATED
#include <openssl/sha.h>
#endif

/* The GUID every server appends to the key (RFC 6455 §1.3). */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A nonce of 16 bytes is 22 base64 digits and "==": the 22nd digit carries only 2 bits, so
 * its low 4 bits are zero (A, Q, g or w). Anything else decodes to another length. */
static int key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)k[i]))
            return 0;
    return strchr("AQgw", k[21]) != NULL;
}

int hs_ws_list_has(const char *list, size_t len, const char *token, size_t tlen)
{
    size_t i = 0;
    while (list != NULL && i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
            end--;
        if (end - start == tlen && tlen > 0 && strncasecmp(list + start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

int hs_ws_handshake_check(const struct hs_ws_request *r, const char **why)
{
    if (r->method_len != 3 || memcmp(r->method, "GET", 3) != 0) {
        *why = "websocket handshake needs GET";
        return 400;
    }
    if (r->minor < 1) {
        *why = "websocket handshake needs HTTP/1.1";
        return 400;
    }
    if (r->has_body) {
        *why = "websocket handshake with a body";
        return 400;
    }
    if (!hs_ws_list_has(r->upgrade, r->upgrade_len, "websocket", 9)) {
        *why = "no Upgrade: websocket";
        return 400;
    }
    if (!hs_ws_list_has(r->connection, r->connection_len, "upgrade", 7)) {
        *why = "no Connection: Upgrade";
        return 400;
    }
    if (r->key == NULL || !key_valid(r->key, r->key_len)) {
        *why = "Sec-WebSocket-Key missing or not 16 bytes in base64";
        return 400;
    }
    if (r->version == NULL || r->version_len != 2 || memcmp(r->version, "13", 2) != 0) {
        *why = "Sec-WebSocket-Version missing or not 13";
        return 426;
    }
    return 0;
}

int hs_ws_accept_key(const char *key, size_t key_len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
#ifdef OPENSSL_NO_DEPRECATED
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, key_len) == 1 &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
#else
    SHA_CTX ctx;
    int ok = SHA1_Init(&ctx) == 1 && SHA1_Update(&ctx, key, key_len) == 1 &&
             SHA1_Update(&ctx, ws_guid, sizeof ws_guid - 1) == 1 && SHA1_Final(md, &ctx) == 1;
#endif
    if (!ok)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

int hs_ws_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Mostly ASCII in practice: eight bytes at a time while no high bit is set. */
        uint64_t w;
        while (n - i >= 8 && (memcpy(&w, s + i, 8), (w & 0x8080808080808080ULL) == 0))
            i += 8;
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf; /* the bounds of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* past U+10FFFF */
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}
