/* What to run: the command line and the optional Lua config file, turned into one plan. */
#ifndef HS_CONFIG_H
#define HS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/conn.h"
#include "core/lua_sandbox.h"
#include "core/script.h"
#include "core/shared.h"

#define HS_CONFIG_MAX_SERVICES 32 /* scripts in one process */

/* One script and where it serves. Strings are owned by the config. */
struct hs_service_spec {
    char *script;                       /* path as given (resolved against the
                                           config file's directory for a config) */
    char *listen[HS_SCRIPT_MAX_LISTEN]; /* URLs; none means the script's own */
    size_t n_listen;
    char *framing;                                       /* spec string, or NULL for the script's */
    struct hs_script_option opts[HS_SCRIPT_MAX_OPTIONS]; /* --set key=value */
    size_t n_opts;
    int sandbox; /* enum hs_sandbox: --sandbox, `sandbox` (default standard) */
};

struct hs_config {
    int log_level;                  /* enum hs_log_level */
    unsigned max_connections;       /* open TCP/Unix connections */
    unsigned idle_timeout_ms;       /* 0 disables */
    unsigned grace_ms;              /* SIGTERM: time open connections get to finish */
    int workers;                    /* worker processes; 0 = one per core; 1 = a single loop */
    size_t max_line;                /* default max for line framing */
    size_t max_frame;               /* default max for length framing */
    unsigned max_per_peer;          /* open connections from one address; 0: no limit */
    unsigned first_byte_timeout_ms; /* accept to first byte; 0 disables */
    unsigned frame_timeout_ms;      /* receive window of a frame in progress; 0 disables */
    unsigned send_timeout_ms;       /* send window of waiting output; 0 disables */
    size_t min_rate;                /* bytes/s each window must carry (at most 1 GiB) */
    size_t lua_memory;              /* bytes one Lua state may hold; 0: no limit */
    unsigned lua_time_ms;           /* one call into Lua may run this long; 0: no limit */
    size_t max_publish;             /* bytes of one hotsock.publish message */
    size_t publish_queue;           /* bytes of messages waiting for each worker */
    char *config_path;              /* --config FILE, or NULL */
    unsigned cli_set;               /* bit per setting given on the command line */
    char *control_path;             /* --control PATH ("none" disables), or NULL for the default */
    char *pubsub_url;  /* --pubsub redis://HOST:PORT: pub/sub across servers, or NULL */
    char *metrics_url; /* --metrics URL: Prometheus text over HTTP there, or NULL */
    int watch;         /* --watch: reload scripts when their files change */
    unsigned tls_handshake_timeout_ms; /* accept to a finished TLS handshake */
    unsigned tls_max_handshakes;       /* TLS handshakes in progress per process; 0: no limit */
    unsigned proxy_timeout_ms;         /* accept to a complete PROXY header (?proxy listeners) */
    struct hs_service_spec services[HS_CONFIG_MAX_SERVICES];
    size_t n_services;
    struct hs_shared_spec shared[HS_SHARED_MAX_DICTS]; /* --shared NAME=SIZE[:MAX_VALUE] */
    size_t n_shared;
    char *allow_modules[HS_SANDBOX_MAX_MODULES]; /* --allow-module NAME, `allow_modules` */
    size_t n_allow_modules;
};

/* Fills cfg with defaults and no services. */
void hs_config_init(struct hs_config *cfg);

/* Parses the arguments after "serve" or "check" (argv[0] is the first of them). Per-script
 * options (--listen, --set, --framing) apply to the script named last before them, or to the
 * first script when given before any. Returns 0, or -1 with err (errlen bytes) set. */
int hs_config_parse_args(struct hs_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Reads a Lua config file (it returns a table; see docs/operations.md) and appends its services and
 * global settings; settings already given on the command line win. Returns 0, or -1 with
 * err set (file:line for Lua errors). */
int hs_config_load_file(struct hs_config *cfg, const char *path, char *err, size_t errlen);

/* Fills *l with the connection limits the config asks for (the HS_DEFAULT_* values for the
 * rest). */
void hs_config_conn_limits(const struct hs_config *cfg, struct hs_conn_limits *l);

/* Writes one --help line per limit flag, with its default. */
void hs_config_print_limits(FILE *out);

/* Frees every string the config owns and empties it. */
void hs_config_free(struct hs_config *cfg);

#endif
