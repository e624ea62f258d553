/* Listener URLs (tcp://HOST:PORT, tls://HOST:PORT, udp://HOST:PORT, unix:/path,
 * unixgram:/path, each with optional ?key=value&... options) and socket address text. */
#ifndef HS_ADDR_H
#define HS_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* HS_ADDR_TLS is TCP with TLS on top: every socket-level rule of TCP applies to it.
 * HS_ADDR_UNIXGRAM is a Unix datagram socket: UDP's rules on a path (path set, no host). */
enum hs_addr_scheme { HS_ADDR_TCP, HS_ADDR_UDP, HS_ADDR_UNIX, HS_ADDR_TLS, HS_ADDR_UNIXGRAM };

#define HS_ADDR_MAX_HOST 256 /* bytes of a host name or literal, NUL included */
#define HS_ADDR_MAX_PATH 108 /* bytes of a Unix socket path, NUL included (sun_path) */
#define HS_ADDR_TEXT 128     /* a formatted address, NUL included */
#define HS_ADDR_MAX_URL 1024 /* a listener URL with its options, NUL included */
#define HS_ADDR_MAX_OPT 512  /* one option's decoded value, NUL included */

struct hs_addr {
    enum hs_addr_scheme scheme;
    char host[HS_ADDR_MAX_HOST]; /* "" means every address; IPv6 literals without brackets */
    int port;                    /* 0..65535; 0 lets the kernel pick */
    char path[HS_ADDR_MAX_PATH]; /* unix: and unixgram: the socket's path */
    int proxy;                   /* ?proxy: each connection starts with a PROXY header */
};

/* Parses a listener URL. HOST may be empty or "*" (every address: IPv6 any with v4-mapped
 * accepted, falling back to IPv4 any), a name, an IPv4 literal or a bracketed IPv6 literal.
 * Options follow a '?' as key=value pairs joined by '&' (values %-encoded where they hold
 * '&', '%' or '#'); each key must be one the scheme knows (tls: cert, key, which must come
 * in pairs; tcp, tls, unix: the flag proxy, written without a value). Returns 0, or HS_EBADSPEC
 * with *why (if why != NULL) set to a static reason. Pure: no resolution and no file access happen
 * here. */
int hs_addr_parse(const char *url, struct hs_addr *out, const char **why);

/* The options of url: what follows its '?', or "" when it has none. Points into url. */
const char *hs_addr_query(const char *url);

/* Reads the next option at *cursor (start with hs_addr_query's result) into key (kn bytes)
 * and val (vn bytes, %-decoded, NUL-terminated; "" for a flag written without '=') and
 * advances *cursor. Returns 1 for an option, 0 at the end, HS_EBADSPEC for a malformed one
 * (an empty key, a bad %-escape, a key or value that does not fit). */
int hs_addr_option_next(const char **cursor, char *key, size_t kn, char *val, size_t vn);

/* The length of url without its options (the address part that names the socket). */
size_t hs_addr_base_len(const char *url);

/* Resolves a parsed TCP/UDP address for binding, numeric hosts without any lookup. Writes
 * the first result into *ss and its length into *len. Returns 0, or a negative code: -EINVAL
 * for a Unix address, HS_EBADSPEC when the name does not resolve. */
int hs_addr_resolve(const struct hs_addr *a, struct sockaddr_storage *ss, socklen_t *len);

/* Formats a socket address as "1.2.3.4:80", "[::1]:80" or the Unix path into buf (always
 * NUL-terminated). An unnamed Unix peer gives "unix"; one bound in Linux's abstract namespace
 * gives "@" and its name (what `ss` shows). Returns buf. */
char *hs_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);

/* The address part of a peer text from hs_addr_format: "1.2.3.4" for "1.2.3.4:80", "::1" for
 * "[::1]:80"; any other text (a Unix peer) is copied as it is. Writes into buf (n bytes,
 * NUL-terminated) and returns it. */
char *hs_addr_peer_ip(const char *peer, char *buf, size_t n);

/* Parses "1.2.3.4:80", "[::1]:80", "/a/unix/path" or "@abstract" (what hs_addr_format writes)
 * back into *ss. Returns 0, or HS_EBADSPEC (also for "unix", a peer that has no name to
 * answer). Used by UDP send_to. */
int hs_addr_parse_peer(const char *text, size_t text_len, struct sockaddr_storage *ss,
                       socklen_t *len);

/* Formats a bound listener as a URL ("tcp://127.0.0.1:43121", "unix:/tmp/x.sock"). */
char *hs_addr_url(enum hs_addr_scheme scheme, const struct sockaddr *sa, socklen_t len, char *buf,
                  size_t n);

/* Makes a Unix socket path free for a bind: a socket file left by a previous run is removed;
 * anything else there is refused. Returns 0, -EEXIST (not a socket) or another negated
 * errno. */
int hs_addr_clear_unix_path(const char *path);

/* Set by a master before binding: sockets get SO_REUSEPORT so that each worker can have its
 * own socket on the same address and the kernel spreads connections across them. */
extern int hs__reuseport;

/* Called with a fresh socket fd of `type` (SOCK_STREAM/SOCK_DGRAM) just before it is bound
 * to *ss. With hs__reuseport set, first checks with a plain probe bind that nobody holds the
 * address (SO_REUSEPORT alone would let a second server share it silently), fixes port 0 to
 * the port the probe got, and sets SO_REUSEPORT on fd. Otherwise does nothing. Returns 0 or
 * a negated errno (-EADDRINUSE). */
int hs_addr_prepare_bind(int fd, int type, struct sockaddr_storage *ss, socklen_t len);

/* Opens another socket bound to the same address as fd (which has SO_REUSEPORT), with the
 * same type and IPV6_V6ONLY setting, listening if it is a stream socket. Returns the new
 * non-blocking, close-on-exec descriptor or a negated errno. */
int hs_addr_clone_socket(int fd);

#endif
