/* hs_loadgen's command line, shared by loadgen.c (the engine) and loadgen_cli.c (parsing). */
#ifndef HS_BENCH_LOADGEN_H
#define HS_BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LG_MAX_DEPTH 1024 /* upper bound for --depth */
#define LG_MAX_UDP 65507  /* largest UDP payload over IPv4 */

enum lg_kind { LG_TCP, LG_UDP, LG_UNIX };
enum lg_mode { LG_PINGPONG, LG_PIPELINE, LG_STREAM, LG_IDLE, LG_UPLOAD };

struct lg_opts {
    const char *target;           /* --target as given (borrowed from argv) */
    enum lg_kind kind;            /* from the target's scheme */
    struct sockaddr_storage addr; /* resolved target */
    socklen_t addrlen;            /* bytes of addr in use */
    enum lg_mode mode;            /* --mode */
    int conns;                    /* --conns, 1..1000000 */
    int depth;                    /* messages in flight per connection: --depth, or 1 */
    double duration;              /* seconds measured (stream, idle: the whole run) */
    double warmup;                /* seconds run before measuring (pingpong, pipeline, udp) */
    double udp_timeout;           /* seconds before a datagram counts as lost */
    uint64_t size;                /* message, datagram or line size in bytes */
    uint64_t bytes;               /* stream: bytes per connection; upload: file size */
    uint64_t max_chunk;           /* stream: largest single write in bytes */
    uint64_t messages;            /* per-connection message cap, 0 for none */
    uint64_t seed;                /* --seed, default 1 */
    int strict;                   /* udp: a lost datagram is an error */
    int line;                     /* --payload line: printable, '\n' ending every size bytes */
};

/* Fills *o from argv, defaults first, and resolves the target. Any bad or inconsistent
 * option prints one line to stderr and exits with status 1; never returns an error. */
void lg_opts_parse(struct lg_opts *o, int argc, char **argv);

/* Copies bytes [off, off + n) of the pattern of key into buf (loadgen.c). */
void lg_pattern_fill(uint64_t key, uint64_t off, unsigned char *buf, size_t n);

/* The pattern key of connection id under the current --seed (loadgen.c). */
uint64_t lg_conn_key(int id);

/* --mode upload (loadgen_upload.c): sends one file of o->bytes over the framed upload
 * protocol, waits for the ack, checks its byte count and SHA-256, prints the result line.
 * Returns the exit status (0 or 1). */
int lg_upload_run(const struct lg_opts *o);

/* Prints "hs_loadgen: <message>" to stderr and exits with status 1. */
__attribute__((format(printf, 1, 2), noreturn)) void lg_die(const char *fmt, ...);

#endif
