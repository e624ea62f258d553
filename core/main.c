/* The hotsock executable: command line, then wiring (server.c does the work). */
#include "core/addr.h"
#include "core/config.h"
#include "core/control.h"
#include "core/heap.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/lua_sandbox.h"
#include "core/master.h"
#include "core/pubsub.h"
#include "core/script.h"
#include "core/scaffold.h"
#include "core/server.h"
#include "core/shared.h"
#include "core/stats_text.h"
#include "core/supervisor.h"
#include "core/tls.h"
#include "core/upgrade.h"
#include "core/worker_chan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/event.h>

static const char usage[] =
    "usage: hotsock serve SCRIPT [--listen URL]... [--set KEY=VALUE]... [--framing SPEC]\n"
    "                    [--sandbox PROFILE] [SCRIPT [...]]... [OPTIONS]\n"
    "       hotsock serve --config FILE [OPTIONS]\n"
    "       hotsock check SCRIPT... [--listen URL]... (TLS: checks each cert/key pair)\n"
    "       hotsock reload [SCRIPT... | --config FILE | --control PATH]\n"
    "       hotsock stats [SCRIPT... | --config FILE | --control PATH] [--prometheus | --raw]\n"
    "       hotsock upgrade [SCRIPT... | --config FILE | --control PATH]\n"
    "       hotsock new NAME\n"
    "       hotsock --help | --version\n"
    "\n"
    "Runs Lua handler scripts on a libevent loop. Each SCRIPT returns a table of callbacks\n"
    "(on_accept, on_connect, on_message, on_close, on_datagram, on_request, on_upgrade,\n"
    "on_reload, on_http_error). --listen, --set, --framing and --sandbox apply to the\n"
    "SCRIPT named before them (or the first, if given before any).\n"
    "\n"
    "  --listen URL          tcp://HOST:PORT, udp://HOST:PORT, unix:/path, unixgram:/path\n"
    "                        (Unix datagrams, to on_datagram); HOST may be\n"
    "                        empty or * (all addresses), [::1] for IPv6; PORT 0 picks one;\n"
    "                        tls://HOST:PORT?cert=PEM&key=PEM encrypts (TLS 1.2/1.3; more\n"
    "                        cert=&key= pairs are chosen by SNI; reloads re-read them)\n"
    "                        ?proxy (tcp, tls, unix): each connection starts with a PROXY\n"
    "                        v1/v2 header (HAProxy send-proxy) naming the client\n"
    "  --set KEY=VALUE       a script option (the script reads it from its options table)\n"
    "  --framing SPEC        raw | line[:max=N] | length:i32le[:max=N] | fixed:N ...\n"
    "  --sandbox PROFILE     standard (default): no os.exit, debug, bytecode, C modules\n"
    "                        but allowed ones; strict: also no io, os.execute/getenv...;\n"
    "                        trusted: the full standard library (see docs/sandbox.md)\n"
    "  --allow-module NAME   a C module standard scripts may require (repeatable; cjson is\n"
    "                        always allowed)\n"
    "  --config FILE         a Lua file returning {services = {{script=..., listen=...}}}\n"
    "  --log-level LEVEL     debug | info | warn | error (default info)\n"
    "  --max-connections N   open connections at once (default 10000)\n"
    "  --idle-timeout SECS   close connections idle this long (default 300, 0 = never)\n"
    "  --grace SECS          on SIGTERM/SIGINT, time open connections get (default 10)\n"
    "  --watch               reload a script when it or a module it required changes\n"
    "  --control PATH        control socket for `hotsock reload` and `stats` (default: one\n"
    "                        per instance in $XDG_RUNTIME_DIR/hotsock/ or /tmp/hotsock-UID/,\n"
    "                        named after the config file or first SCRIPT; none: off)\n"
    "  --metrics URL         serve Prometheus text at http://HOST:PORT/metrics (tcp://HOST:PORT)\n"
    "  --pubsub URL          redis://HOST:PORT[?prefix=NAME]: hotsock.publish reaches the\n"
    "                        subscribers of every server using the same Redis, through\n"
    "                        channels NAME* (default hotsock:)\n"
    "  --workers N           worker processes sharing the listeners (default: one per\n"
    "                        core; 1: a single process, no supervisor)\n"
    "  --shared NAME=SIZE[:MAX_VALUE]  a shared dictionary for hotsock.dict(NAME), SIZE bytes\n"
    "                        (64k..2040m), values up to MAX_VALUE (default 64k); \"default\"\n"
    "                        sizes hotsock.shared (default 8m)\n"
    "\n"
    "Limits (sizes take k, m, g; seconds take decimals; 0 disables):\n";

/* After the limits, which hs_config_print_limits writes from the table that parses them. */
static const char usage_tail[] =
    "\n"
    "Signals: SIGTERM/SIGINT stop accepting and drain, SIGHUP reloads every script, SIGUSR2\n"
    "upgrades (as hotsock upgrade).\n"
    "hotsock upgrade starts the binary at the server's path again with the same arguments and\n"
    "hands it every listening socket and the control socket; once the new process has loaded\n"
    "every script (and started its workers) the old one stops accepting and drains its\n"
    "connections with --grace. If the new one fails, the old keeps serving and upgrade prints\n"
    "why and exits 1.\n"
    "hotsock reload asks the server on the control socket to reload, prints the outcome\n"
    "per script, and exits 0 when every script reloaded, 1 otherwise. reload and stats find\n"
    "the server by the same SCRIPT or --config FILE arguments as serve (other serve options\n"
    "are accepted and ignored); with none, the only hotsock running here (several: a list).\n"
    "hotsock stats prints live counters per listener and script version (summed over\n"
    "workers), reload state and Lua memory per worker; --prometheus prints the metrics text.\n"
    "hotsock new NAME writes NAME.lua (a line-protocol starter handler) and NAME_spec.lua\n"
    "(its busted spec, using the hotsock.testkit module) into the current directory.\n"
    "\n"
    "Exit status: 0 success; 1 a failure at run time (a script or config file that is missing\n"
    "or does not load, an address that cannot be bound, a reload that failed, no server to\n"
    "ask); 2 a usage error (unknown command or option, a bad value, no SCRIPT, several\n"
    "servers to choose from).\n";

static void print_usage(FILE *out)
{
    fputs(usage, out);
    hs_config_print_limits(out);
    fputs(usage_tail, out);
}

/* hotsock check: load each script as serve would, report, exit 0 or 1. */
static int cmd_check(struct hs_config *cfg)
{
    struct event_base *base = event_base_new();
    struct hs_conn_limits limits;
    hs_conn_limits_default(&limits);
    struct hs_conns *set = hs_conns_new(base, &limits);
    struct hs_lua *hl = hs_lua_new(base, set);
    int status = 0;
    for (size_t i = 0; i < cfg->n_allow_modules; i++)
        hs_lua_allow_module(hl, cfg->allow_modules[i]);
    hs_lua_set_limits(hl, cfg->lua_memory, cfg->lua_time_ms);
    for (size_t i = 0; i < cfg->n_services; i++) {
        struct hs_script *script;
        char err[2048];
        const struct hs_service_spec *sp = &cfg->services[i];
        if (hs_script_load_sandboxed(hl, sp->script, sp->opts, sp->n_opts, sp->sandbox, &script,
                                     err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            status = 1;
            continue;
        }
        const struct hs_script_decl *d = hs_script_decl(script);
        printf("%s: ok (%s", sp->script, d->name);
        /* The addresses it would serve: the command line's or config's, else its own. */
        const char *first = sp->n_listen ? sp->listen[0] : d->listen[0];
        size_t n_listen = sp->n_listen ? sp->n_listen : d->n_listen;
        if (n_listen)
            printf(", listens on %.*s%s", (int)hs_addr_base_len(first), first,
                   n_listen > 1 ? " ..." : "");
        printf(", sandbox %s)\n", hs_sandbox_name(hs_script_sandbox(script)));
        /* TLS listeners: every cert/key pair loaded and matched as serve would, and what
         * each certificate says (subject, names, expiry). */
        for (size_t j = 0; j < n_listen; j++) {
            const char *url = sp->n_listen ? sp->listen[j] : d->listen[j];
            struct hs_addr a;
            if (hs_addr_parse(url, &a, NULL) != 0 || a.scheme != HS_ADDR_TLS)
                continue;
            static char info[8192];
            if (hs_tls_describe(url, info, sizeof info) != 0) {
                fprintf(stderr, "%s: %.*s: %s\n", sp->script, (int)hs_addr_base_len(url), url,
                        info);
                status = 1;
                continue;
            }
            printf("  %.*s\n%s", (int)hs_addr_base_len(url), url, info);
        }
        hs_script_free(script);
    }
    hs_conns_free(set);
    hs_lua_free(hl);
    event_base_free(base);
    return status;
}

/* The control socket `hotsock reload`/`stats` talk to: --control PATH, else the default socket
 * of the instance that the same SCRIPT or --config FILE arguments as serve's name, else the
 * only instance running here. Never guesses between several. Returns 0 with path, else the
 * exit status (the reason printed). */
static int find_control(const char *cmd, int argc, char **argv, char *path, size_t n)
{
    struct hs_config cfg;
    char err[2048];
    hs_config_init(&cfg);
    if (hs_config_parse_args(&cfg, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "hotsock %s: %s\n", cmd, err);
        hs_config_free(&cfg);
        return 2;
    }
    int st = 0;
    if (cfg.control_path && strcmp(cfg.control_path, "none") == 0) {
        fprintf(stderr, "hotsock %s: --control none names no socket\n", cmd);
        st = 2;
    } else if (cfg.control_path) {
        snprintf(path, n, "%s", cfg.control_path);
    } else {
        const char *key =
            cfg.config_path || cfg.n_services ? hs_supervisor_instance_key(&cfg) : NULL;
        char msg[8192];
        st = hs_control_find(key, path, n, msg, sizeof msg);
        if (st != 0)
            fprintf(stderr, "hotsock %s: %s%s", cmd, msg, st == 1 ? "\n" : "");
    }
    hs_config_free(&cfg);
    return st;
}

/* A control request that failed: which server was not there, in words. */
static void control_failed(const char *cmd, const char *path, int r)
{
    if (r == -ENOENT)
        fprintf(stderr, "hotsock %s: no hotsock is running here (no control socket at %s)\n", cmd,
                path);
    else if (r == -ECONNREFUSED)
        fprintf(stderr,
                "hotsock %s: no hotsock is running here (%s is left by a server that "
                "is gone)\n",
                cmd, path);
    else
        fprintf(stderr, "hotsock %s: no answer on %s: %s\n", cmd, path, hs_strerror(r));
}

/* hotsock reload: ask a running server over its control socket. */
static int cmd_reload(int argc, char **argv)
{
    char path[HS_ADDR_MAX_PATH];
    int st = find_control("reload", argc, argv, path, sizeof path);
    if (st != 0)
        return st;
    static char reply[16384];
    int r = hs_control_request(path, "reload", reply, sizeof reply, 30000);
    if (r != 0) {
        control_failed("reload", path, r);
        return 1;
    }
    fputs(reply, stdout);
    /* Every line must say ok. */
    int ok = reply[0] != '\0';
    for (const char *line = reply; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "")
        if (strncmp(line, "ok", 2) != 0)
            ok = 0;
    return ok ? 0 : 1;
}

/* hotsock upgrade: the running server starts the binary again and hands over its sockets. */
static int cmd_upgrade(int argc, char **argv)
{
    char path[HS_ADDR_MAX_PATH];
    int st = find_control("upgrade", argc, argv, path, sizeof path);
    if (st != 0)
        return st;
    char reply[4096];
    /* The old server waits for the new one to be ready, at most HS_UPGRADE_READY_MS. */
    int r = hs_control_request(path, "upgrade", reply, sizeof reply, HS_UPGRADE_READY_MS + 5000);
    if (r != 0) {
        control_failed("upgrade", path, r);
        return 1;
    }
    if (strncmp(reply, "ok", 2) != 0) {
        fprintf(stderr, "hotsock upgrade: %s", reply);
        return 1;
    }
    fputs(reply, stdout);
    return 0;
}

/* hotsock stats: a snapshot from a running server, as a table, Prometheus text or raw. */
static int cmd_stats(int argc, char **argv)
{
    int format = 0; /* 0 table, 1 prometheus, 2 raw */
    char *rest[256];
    int n_rest = 0;
    for (int i = 0; i < argc && n_rest < 256; i++) {
        if (strcmp(argv[i], "--prometheus") == 0)
            format = 1;
        else if (strcmp(argv[i], "--raw") == 0)
            format = 2;
        else
            rest[n_rest++] = argv[i];
    }
    char path[HS_ADDR_MAX_PATH];
    int st = find_control("stats", n_rest, rest, path, sizeof path);
    if (st != 0)
        return st;
    static char snap[HS_SERVER_STATS_MAX], out[4 * HS_SERVER_STATS_MAX];
    int r = hs_control_request(path, "stats", snap, sizeof snap, 30000);
    if (r != 0) {
        control_failed("stats", path, r);
        return 1;
    }
    if (strncmp(snap, "error", 5) == 0) {
        fprintf(stderr, "hotsock stats: %s", snap);
        return 1;
    }
    if (format == 2)
        fputs(snap, stdout);
    else if (format == 1)
        fwrite(out, 1, hs_stats_render_prometheus(snap, out, sizeof out), stdout);
    else
        fwrite(out, 1, hs_stats_render_table(snap, out, sizeof out), stdout);
    return 0;
}

/* hotsock new NAME: a starter handler and its spec in the current directory. */
static int cmd_new(int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: hotsock new NAME\n");
        return 2;
    }
    char err[8192];
    int r = hs_scaffold_write(".", argv[0], err, sizeof err);
    if (r != 0) {
        fprintf(stderr, "hotsock new: %s\n", err);
        return r == HS_EBADSPEC ? 2 : 1;
    }
    printf("wrote %s.lua and %s_spec.lua\n"
           "  serve it:  hotsock serve %s.lua\n"
           "  try it:    printf 'PING\\nQUIT\\n' | nc 127.0.0.1 7100\n"
           "  test it:   busted --lua=lua5.4 %s_spec.lua\n",
           argv[0], argv[0], argv[0], argv[0]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("hotsock %s (%s, libevent %s)\n", HOTSOCK_VERSION, "Lua 5.4", event_get_version());
        return 0;
    }
    if (strcmp(argv[1], "reload") == 0)
        return cmd_reload(argc - 2, argv + 2);
    if (strcmp(argv[1], "stats") == 0)
        return cmd_stats(argc - 2, argv + 2);
    if (strcmp(argv[1], "upgrade") == 0)
        return cmd_upgrade(argc - 2, argv + 2);
    if (strcmp(argv[1], "new") == 0)
        return cmd_new(argc - 2, argv + 2);
    int serve = strcmp(argv[1], "serve") == 0;
    if (!serve && strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "hotsock: unknown command '%s'\n\n", argv[1]);
        print_usage(stderr);
        return 2;
    }
    struct hs_config cfg;
    char err[2048];
    hs_config_init(&cfg);
    /* A bad command line is a usage error (2); a config file that is missing or does not
     * load is a failure at run time (1), as a SCRIPT that is missing or does not load is. */
    if (hs_config_parse_args(&cfg, argc - 2, argv + 2, err, sizeof err) != 0) {
        fprintf(stderr, "hotsock: %s\n", err);
        hs_config_free(&cfg);
        return 2;
    }
    if (cfg.config_path && hs_config_load_file(&cfg, cfg.config_path, err, sizeof err) != 0) {
        fprintf(stderr, "hotsock: %s\n", err);
        hs_config_free(&cfg);
        return 1;
    }
    if (cfg.n_services == 0) {
        fprintf(stderr, "hotsock: no SCRIPT given\n\n");
        print_usage(stderr);
        hs_config_free(&cfg);
        return 2;
    }
    hs_log_set_level(cfg.log_level);
    if (!serve) {
        /* A script sees at load what serve gives it: the same dictionaries (empty). */
        if (hs_shared_create(cfg.shared, cfg.n_shared, NULL) == NULL) {
            fprintf(stderr, "hotsock: cannot create the shared dictionaries: %s\n",
                    strerror(errno));
            hs_config_free(&cfg);
            return 1;
        }
        int st = cmd_check(&cfg);
        hs_config_free(&cfg);
        return st;
    }
    /* Every serving process, master and workers (core/heap.c says why). */
    hs_heap_tune();
    /* The process an upgrade started: the old one's sockets instead of binding. */
    hs_upgrade_init(argv);
    static char adopted[HS_WORKER_CHAN_SOCKETS_MAX];
    int upgraded = hs_upgrade_import(adopted, sizeof adopted);
    /* A worker started by a master: same command line, plus its channel and sockets. */
    int chan = -1;
    static char sockets[HS_WORKER_CHAN_SOCKETS_MAX];
    int worker = hs_worker_chan_import(&chan, sockets, sizeof sockets);
    if (worker > 0) {
        const char *sfd = getenv("HOTSOCK_SHARED_FD");
        if (sfd == NULL || hs_shared_attach(atoi(sfd)) == NULL) {
            fprintf(stderr, "hotsock: worker %d cannot attach the shared dictionary\n", worker);
            return 1;
        }
        fcntl(atoi(sfd), F_SETFD, FD_CLOEXEC);
        unsetenv("HOTSOCK_SHARED_FD");
        const char *pse = getenv(HS_PUBSUB_ENV);
        struct hs_pubsub *ps;
        if (pse == NULL || hs_pubsub_attach(pse, &ps) != 0 ||
            hs_pubsub_claim(ps, (unsigned)worker) != 0) {
            fprintf(stderr, "hotsock: worker %d cannot attach the pub/sub queues\n", worker);
            return 1;
        }
        unsetenv(HS_PUBSUB_ENV);
    } else {
        worker = 0;
        int n = cfg.workers > 0 ? cfg.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n > 1) {
            int st = hs_master_run(&cfg, n, argv, upgraded ? adopted : NULL);
            hs_config_free(&cfg);
            return st;
        }
    }
    if (!worker && hs_shared_create(cfg.shared, cfg.n_shared, NULL) == NULL) {
        fprintf(stderr, "hotsock: cannot create the shared dictionaries: %s\n", strerror(errno));
        return 1;
    }
    /* A single process is worker 1 of 1: publish/subscribe takes the same path. */
    struct hs_pubsub *single = NULL;
    if (!worker && (hs_pubsub_create(1, cfg.publish_queue, cfg.max_publish, &single) != 0 ||
                    hs_pubsub_claim(single, 1) != 0)) {
        fprintf(stderr, "hotsock: cannot create the pub/sub queue\n");
        return 1;
    }
    struct hs_server *s = hs_server_new(&cfg);
    if (s == NULL) {
        fprintf(stderr, "hotsock: out of memory\n");
        return 1;
    }
    if (worker)
        hs_server_set_worker(s, worker, sockets, chan);
    else if (upgraded)
        hs_server_adopt(s, adopted);
    int status;
    if (hs_server_start(s, err, sizeof err) != 0) {
        hs_log(HS_LOG_ERROR, "%s", err);
        fprintf(stderr, "hotsock: %s\n", err);
        hs_upgrade_failed(err);
        status = 1;
    } else {
        status = hs_server_run(s);
    }
    hs_server_free(s);
    hs_pubsub_free(single);
    hs_config_free(&cfg);
    return status;
}
