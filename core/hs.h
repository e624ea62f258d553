/* Shared error codes, limits and tiny helpers used by every core module. */
#ifndef HS_HS_H
#define HS_HS_H

#include <stddef.h>

/* Error codes. A failure is a negative int: either a negated errno (-EADDRINUSE, -ENOENT, ...)
 * or one of the core's own HS_E* codes, which all lie at or below -HS_ERRNO_MAX so the two
 * spaces never meet (C libraries number errno from 1 to a few hundred; Linux stops at 133).
 * hs_strerror tells them apart by range alone. Callers compare with the names, never with
 * literal numbers.
 *
 * Parsers and framers return bytes consumed (or 1 for "found") on success and HS_AGAIN or
 * HS_EPROTO otherwise, picohttpparser's contract under the core's own numbers. */
#define HS_ERRNO_MAX 4000 /* every negated errno is above -HS_ERRNO_MAX */

#define HS_EPROTO (-4101) /* malformed input: the connection concerned must be closed */
#define HS_AGAIN (-4102)  /* need more input */

#define HS_ETOOBIG (-4001)  /* input over a configured limit */
#define HS_EBADSPEC (-4002) /* a framing spec or listener URL that does not parse */
#define HS_ECLOSED (-4003)  /* operation on a connection that is closed or closing */
#define HS_EFULL (-4004)    /* output buffer over its hard limit */
#define HS_ESCRIPT (-4005)  /* a Lua script failed to load or to run */
#define HS_ENOHOST (-4006)  /* a host name that does not resolve (hotsock.connect/resolve) */
/* Codes that exist to name one error token each (core/errtok.h): runtime failures a script
 * sees that have no errno of their own. */
#define HS_ENOPEER (-4007)    /* a datagram peer with no address to answer */
#define HS_EUNREAD (-4008)    /* bytes arrived that nobody has read (keepalive, tls_handshake) */
#define HS_EUPGRADED (-4009)  /* conn:tls_handshake on a conn that is TLS already */
#define HS_ETLSCTX (-4010)    /* a TLS client context could not be made */
#define HS_EQUEUE (-4011)     /* a worker's pub/sub queue was full: its copy was dropped */
#define HS_EHANDSHAKE (-4012) /* a WebSocket upgrade request that is not one */
#define HS_EWSVERSION (-4013) /* a WebSocket upgrade for a version other than 13 */
#define HS_ELINE (-4014)      /* a line over its framing max */
#define HS_EFRAME (-4015)     /* a length frame over its framing max */
#define HS_ENEGLEN (-4016)    /* a signed length header below zero */
#define HS_EMALFORMED (-4017) /* a frame the framer refused for another reason */
#define HS_EPROXYADDR (-4018) /* a PROXY header asked for on a conn without a client address */

/* Default limits. Each is overridable from the command line or config (see docs/limits.md). */
#define HS_DEFAULT_MAX_LINE (64 * 1024)         /* bytes in one line, delimiter excluded */
#define HS_DEFAULT_MAX_FRAME (16 * 1024 * 1024) /* bytes in one buffered length frame */
#define HS_DEFAULT_MAX_RAW_CHUNK (256 * 1024)   /* bytes handed to Lua in one raw message */
#define HS_DEFAULT_MAX_CONNECTIONS 10000        /* open TCP/Unix connections per process */
#define HS_DEFAULT_OUT_HIGH (1024 * 1024)       /* pause reading above this many unsent bytes */
#define HS_DEFAULT_OUT_LOW (256 * 1024)         /* resume reading below this */
#define HS_DEFAULT_OUT_HARD (64 * 1024 * 1024)  /* conn:send refuses above this */
#define HS_DEFAULT_IDLE_TIMEOUT_MS (300 * 1000) /* no bytes either way for this long: close */
#define HS_DEFAULT_CLOSE_TIMEOUT_MS (30 * 1000) /* flushing before a close may take this long */
#define HS_DEFAULT_GRACE_MS (10 * 1000)         /* SIGTERM: how long open conns may finish */
#define HS_DEFAULT_MAX_PER_PEER 256             /* open conns from one address (IPv6: /64) */
#define HS_DEFAULT_FIRST_BYTE_TIMEOUT_MS (60 * 1000) /* accept to the client's first byte */
#define HS_DEFAULT_PROXY_TIMEOUT_MS (5 * 1000)       /* accept to a complete PROXY header */
#define HS_DEFAULT_FRAME_TIMEOUT_MS                                                                \
    (30 * 1000) /* window in which a frame in progress must                                        \
                 * complete or bring min_rate bytes/s */
#define HS_DEFAULT_SEND_TIMEOUT_MS                                                                 \
    (30 * 1000)                                   /* window in which waiting output must drain     \
                                                   * at min_rate bytes/s */
#define HS_DEFAULT_MIN_RATE 512                   /* bytes/s a stalled transfer must keep up */
#define HS_DEFAULT_LUA_MEMORY (256 * 1024 * 1024) /* bytes one Lua state may hold */
#define HS_DEFAULT_LUA_TIME_MS 1000               /* one call into Lua may run this long */
#define HS_DEFAULT_WS_MAX_MESSAGE (1024 * 1024)   /* bytes of one WebSocket message */
#define HS_WS_MAX_MESSAGE_LIMIT 2147483647        /* the largest max_message a script may set */
#define HS_WS_INBOX_MAX 64       /* messages ws:receive has not taken yet before reading pauses */
#define HS_READ_SIZE (64 * 1024) /* bytes asked of one read(2) */
#define HS_MAX_DATAGRAM 65535    /* largest UDP payload we receive */

/* Publish/subscribe between workers (core/pubsub.h). */
#define HS_DEFAULT_MAX_PUBLISH (64 * 1024) /* bytes of one message */
#define HS_DEFAULT_PUBLISH_QUEUE (4 << 20) /* bytes waiting for one worker */

#define HS_UNUSED(x) ((void)(x))

/* A function every TCP message, UDP datagram or HTTP request runs through. GCC places such
 * functions together (.text.hot), so the per-message code is ~28 KiB in a row instead of
 * lines scattered over 470 KiB, several of which can fall on one set of the 8-way
 * instruction cache and evict each other at every message (bench/results/instructions.md,
 * "fifth part"). */
#define HS_HOT __attribute__((hot))

/* Returns a static description of any code above or of a negated errno ("unknown error" for
 * a code in neither space), for logs and the command line. Never NULL. Scripts never see it:
 * they get the fixed tokens of core/errtok.h. */
const char *hs_strerror(int code);

#endif
