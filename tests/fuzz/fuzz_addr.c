/* libFuzzer target for core/addr.c: the listener URL parser (hs_addr_parse) and the peer
 * address parser of UDP send_to (hs_addr_parse_peer). A tcp/udp URL that parses must print
 * back (scheme://HOST:PORT, brackets around IPv6) to a URL that parses to the same address; a
 * peer that parses (IP and port, a Unix path, or an @abstract name) must format
 * (hs_addr_format) back to text that parses to the same socket address. The peer text is
 * given without a NUL, in a buffer of exactly its size, so a read past its end shows. No name
 * is ever resolved. Built only with -DHOTSOCK_FUZZ=ON (clang).
 *
 * Input: byte 0 picks the parser (even: URL, odd: peer); the rest is the text. */
#include "core/addr.h"
#include "core/hs.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_TEXT 1024

static void fuzz_url(const char *text, size_t len)
{
    char url[FUZZ_MAX_TEXT + 1];
    memcpy(url, text, len);
    url[len] = '\0';
    struct hs_addr a, b;
    const char *why = NULL;
    if (hs_addr_parse(url, &a, &why) != 0) {
        if (why == NULL)
            abort();
        return;
    }
    if (a.scheme == HS_ADDR_UNIX || a.scheme == HS_ADDR_UNIXGRAM) {
        if (a.path[0] == '\0' || strnlen(a.path, sizeof a.path) == sizeof a.path)
            abort();
        return;
    }
    if (a.port < 0 || a.port > 65535 || strnlen(a.host, sizeof a.host) == sizeof a.host)
        abort();
    /* tls:// wants its options (cert, key) to parse again: its host and port are checked
     * above, the round trip is for the plain schemes. */
    if (a.scheme == HS_ADDR_TLS)
        return;
    char again[HS_ADDR_MAX_HOST + 32];
    const char *scheme = a.scheme == HS_ADDR_TCP ? "tcp" : "udp";
    if (strchr(a.host, ':'))
        snprintf(again, sizeof again, "%s://[%s]:%d", scheme, a.host, a.port);
    else
        snprintf(again, sizeof again, "%s://%s:%d", scheme, a.host, a.port);
    if (hs_addr_parse(again, &b, &why) != 0 || b.scheme != a.scheme || b.port != a.port ||
        strcmp(a.host, b.host) != 0)
        abort();
}

static void fuzz_peer(const char *text, size_t len)
{
    char *exact = malloc(len ? len : 1);
    if (exact == NULL)
        return;
    memcpy(exact, text, len);
    struct sockaddr_storage ss, back;
    socklen_t sl = 0, bl = 0;
    int r = hs_addr_parse_peer(exact, len, &ss, &sl);
    free(exact);
    if (r != 0)
        return;
    /* Unix datagram peers are a path or an @abstract name (unixgram: listeners). */
    if (sl > sizeof ss ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX))
        abort();
    char buf[HS_ADDR_TEXT];
    hs_addr_format((struct sockaddr *)&ss, sl, buf, sizeof buf);
    if (hs_addr_parse_peer(buf, strlen(buf), &back, &bl) != 0)
        abort();
    /* A v4-mapped IPv6 peer formats as plain IPv4: compare what a datagram would reach. */
    char buf2[HS_ADDR_TEXT];
    hs_addr_format((struct sockaddr *)&back, bl, buf2, sizeof buf2);
    if (strcmp(buf, buf2) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1 < FUZZ_MAX_TEXT ? size - 1 : FUZZ_MAX_TEXT;
    if (data[0] % 2 == 0)
        fuzz_url(text, len);
    else
        fuzz_peer(text, len);
    return 0;
}
