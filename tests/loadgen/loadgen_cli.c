/* hs_loadgen command-line parsing: long options, "--name value" or "--name=value". */
#include "tests/loadgen/loadgen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/un.h>

#include "tests/loadgen/addr.h"

void lg_die(const char *fmt, ...)
{
    va_list ap;

    fputs("hs_loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage(void)
{
    fputs("usage: hs_loadgen --target tcp://HOST:PORT|udp://HOST:PORT|unix:/path\n"
          "  [--mode pingpong|pipeline|stream|idle|upload] [--conns N] [--duration S]\n"
          "  [--warmup S] [--size N] [--depth D] [--messages N] [--bytes N] [--max-chunk N]\n"
          "  [--seed N] [--udp-timeout S] [--strict] [--payload random|line]\n"
          "sizes take k/m/g (binary) suffixes; see bench/README.md\n",
          stderr);
    exit(1);
}

static uint64_t parse_size(const char *name, const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || s[0] == '-')
        lg_die("bad number for %s: %s", name, s);
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    else if (*end == 'g' || *end == 'G')
        v <<= 30, end++;
    if (*end != '\0')
        lg_die("bad number for %s: %s", name, s);
    return v;
}

static int parse_int(const char *name, const char *s, int min, int max)
{
    uint64_t v = parse_size(name, s);

    if (v < (uint64_t)min || v > (uint64_t)max)
        lg_die("%s must be %d..%d", name, min, max);
    return (int)v;
}

static double parse_secs(const char *name, const char *s)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= 0) || v > 1e6)
        lg_die("bad seconds for %s: %s", name, s);
    return v;
}

static void parse_target(struct lg_opts *o, const char *t)
{
    const char *err;

    if (strncmp(t, "unix:", 5) == 0) {
        struct sockaddr_un *su = (struct sockaddr_un *)&o->addr;

        if (strlen(t + 5) == 0 || strlen(t + 5) >= sizeof(su->sun_path))
            lg_die("bad unix socket path: %s", t + 5);
        o->kind = LG_UNIX;
        su->sun_family = AF_UNIX;
        strcpy(su->sun_path, t + 5);
        o->addrlen = sizeof(*su);
        return;
    }
    if (strncmp(t, "tcp://", 6) == 0)
        o->kind = LG_TCP;
    else if (strncmp(t, "udp://", 6) == 0)
        o->kind = LG_UDP;
    else
        lg_die("bad --target %s (want tcp://HOST:PORT, udp://HOST:PORT or unix:/path)", t);
    if (bench_addr_parse(t + 6, o->kind == LG_UDP ? SOCK_DGRAM : SOCK_STREAM, &o->addr, &o->addrlen,
                         &err) != 0)
        lg_die("bad --target %s: %s", t, err);
}

void lg_opts_parse(struct lg_opts *o, int argc, char **argv)
{
    const char *mode = "pingpong";
    int depth_set = 0;

    memset(o, 0, sizeof(*o));

    o->conns = 1;
    o->duration = 5;
    o->size = 64;
    o->depth = 16;
    o->bytes = 1u << 20;
    o->max_chunk = 65536;
    o->seed = 1;
    o->udp_timeout = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const char *eq = strchr(a, '=');
        char name[32];

        if (strncmp(a, "--", 2) != 0)
            usage();
        if (eq && (size_t)(eq - a) < sizeof(name)) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            v = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a);
            v = NULL;
        }
        if (strcmp(name, "--strict") == 0) {
            o->strict = 1;
            continue;
        }
        if (strcmp(name, "--help") == 0)
            usage();
        if (!v && i + 1 >= argc)
            lg_die("%s needs a value", name);
        if (!v)
            v = argv[++i];
        if (strcmp(name, "--target") == 0)
            o->target = v;
        else if (strcmp(name, "--mode") == 0)
            mode = v;
        else if (strcmp(name, "--conns") == 0)
            o->conns = parse_int(name, v, 1, 1000000);
        else if (strcmp(name, "--duration") == 0)
            o->duration = parse_secs(name, v);
        else if (strcmp(name, "--warmup") == 0)
            o->warmup = parse_secs(name, v);
        else if (strcmp(name, "--udp-timeout") == 0)
            o->udp_timeout = parse_secs(name, v);
        else if (strcmp(name, "--size") == 0)
            o->size = parse_size(name, v);
        else if (strcmp(name, "--depth") == 0)
            o->depth = parse_int(name, v, 1, LG_MAX_DEPTH), depth_set = 1;
        else if (strcmp(name, "--messages") == 0)
            o->messages = parse_size(name, v);
        else if (strcmp(name, "--bytes") == 0)
            o->bytes = parse_size(name, v);
        else if (strcmp(name, "--max-chunk") == 0)
            o->max_chunk = parse_size(name, v);
        else if (strcmp(name, "--seed") == 0)
            o->seed = parse_size(name, v);
        else if (strcmp(name, "--payload") == 0 && (!strcmp(v, "random") || !strcmp(v, "line")))
            o->line = strcmp(v, "line") == 0;
        else
            lg_die("unknown option or value: %s %s", name, v);
    }
    if (!o->target)
        lg_die("--target is required");
    parse_target(o, o->target);
    if (strcmp(mode, "pingpong") == 0)
        o->mode = LG_PINGPONG;
    else if (strcmp(mode, "pipeline") == 0)
        o->mode = LG_PIPELINE;
    else if (strcmp(mode, "stream") == 0)
        o->mode = LG_STREAM;
    else if (strcmp(mode, "idle") == 0)
        o->mode = LG_IDLE;
    else if (strcmp(mode, "upload") == 0)
        o->mode = LG_UPLOAD;
    else
        lg_die("bad --mode %s", mode);
    if (o->mode != LG_PIPELINE) {
        if (depth_set && o->depth != 1 && o->mode != LG_STREAM)
            lg_die("--depth applies to --mode pipeline only");
        o->depth = 1;
    }
    if (o->kind == LG_UDP && o->mode != LG_PINGPONG)
        lg_die("udp targets support --mode pingpong only");
    if (o->kind == LG_UDP && (o->size < 1 || o->size > LG_MAX_UDP))
        lg_die("--size must be 1..%d for udp", LG_MAX_UDP);
    if ((o->mode == LG_PINGPONG || o->mode == LG_PIPELINE || o->line) && o->size < 1)
        lg_die("--size must be at least 1");
    if (o->mode == LG_UPLOAD && (o->kind != LG_TCP || o->conns != 1 || o->bytes > 0x7fffffff))
        lg_die("--mode upload wants a tcp:// target, --conns 1 and --bytes up to 2G - 1");
    if (o->mode == LG_STREAM && (o->bytes < 1 || o->max_chunk < 1))
        lg_die("--bytes and --max-chunk must be at least 1");
    if (o->duration <= 0)
        lg_die("--duration must be positive");
}
