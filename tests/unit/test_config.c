/* The plan the command line and a config file make: defaults, per-script options, every
 * setting's parsing and its refusals, and the rule that the command line beats the file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/hs.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
    struct hs_config cfg;
    char err[1024];
    char dir[64];
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    hs_config_init(&fx->cfg);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/hs-test-config-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    hs_config_free(&fx->cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

/* Parses a NULL-terminated argument list. */
static int parse(struct fx *fx, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, fx);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fx->err[0] = '\0';
    return hs_config_parse_args(&fx->cfg, argc, argv, fx->err, sizeof fx->err);
}

/* Writes text as DIR/name and returns its path (static buffer). */
static const char *write_file(struct fx *fx, const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_defaults(void **state)
{
    struct fx *fx = *state;
    struct hs_conn_limits l;
    assert_int_equal(fx->cfg.n_services, 0);
    assert_int_equal(fx->cfg.max_connections, HS_DEFAULT_MAX_CONNECTIONS);
    assert_null(fx->cfg.config_path);
    assert_null(fx->cfg.metrics_url);
    hs_config_conn_limits(&fx->cfg, &l);
    assert_int_equal(l.max_connections, HS_DEFAULT_MAX_CONNECTIONS);
    assert_int_equal(l.max_line, HS_DEFAULT_MAX_LINE);
    assert_int_equal(l.max_frame, HS_DEFAULT_MAX_FRAME);
}

static void test_per_script_options(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(parse(fx, "a.lua", "--listen", "tcp://127.0.0.1:1", "--set", "k=v=w", "b.lua",
                           "--framing", "line", "--listen", "udp://127.0.0.1:2", "--listen",
                           "unix:/tmp/x", NULL),
                     0);
    assert_int_equal(fx->cfg.n_services, 2);
    struct hs_service_spec *a = &fx->cfg.services[0], *b = &fx->cfg.services[1];
    assert_string_equal(a->script, "a.lua");
    assert_int_equal(a->n_listen, 1);
    assert_string_equal(a->listen[0], "tcp://127.0.0.1:1");
    assert_int_equal(a->n_opts, 1);
    assert_string_equal(a->opts[0].key, "k");
    assert_string_equal(a->opts[0].value, "v=w"); /* the first '=' splits */
    assert_null(a->framing);
    assert_string_equal(b->script, "b.lua");
    assert_string_equal(b->framing, "line");
    assert_int_equal(b->n_listen, 2);
    assert_string_equal(b->listen[1], "unix:/tmp/x");
}

static void test_global_settings(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(parse(fx, "a.lua", "--workers", "3", "--grace", "2.5", "--max-connections",
                           "7", "--max-line", "1k", "--lua-time-limit", "0.25", "--metrics",
                           "tcp://127.0.0.1:0", "--control", "/tmp/c.ctl", "--watch", NULL),
                     0);
    assert_int_equal(fx->cfg.workers, 3);
    assert_int_equal(fx->cfg.grace_ms, 2500);
    assert_int_equal(fx->cfg.max_connections, 7);
    assert_int_equal(fx->cfg.max_line, 1024);
    assert_int_equal(fx->cfg.lua_time_ms, 250);
    assert_string_equal(fx->cfg.metrics_url, "tcp://127.0.0.1:0");
    assert_string_equal(fx->cfg.control_path, "/tmp/c.ctl");
    assert_true(fx->cfg.watch);
}

/* Each refusal names what is wrong; nothing of a half-parsed plan is used by the caller. */
static void test_refusals(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        {{"a.lua", "--set", "novalue", NULL}, "--set wants key=value"},
        {{"a.lua", "--workers", "many", NULL}, "--workers"},
        {{"a.lua", "--workers", "999", NULL}, "--workers"},
        {{"a.lua", "--log-level", "loud", NULL}, "--log-level"},
        {{"a.lua", "--grace", "-1", NULL}, "--grace"},
        {{"a.lua", "--max-line", "12q", NULL}, "--max-line"},
        {{"a.lua", "--listen", NULL}, "--listen"},
        {{"a.lua", "--no-such-flag", NULL}, "--no-such-flag"},
        {{"--listen", "tcp://127.0.0.1:1", NULL}, "SCRIPT"},
        {{"a.lua", "--shared", "cache", NULL}, "--shared wants NAME=SIZE"},
        {{"a.lua", "--shared", "cache=lots", NULL}, "--shared wants NAME=SIZE"},
        {{"a.lua", "--shared", "ca-che=1m", NULL}, "dictionary name"},
        {{"a.lua", "--shared", "cache=1k", NULL}, "from 64k to 2040m"},
        {{"a.lua", "--shared", "cache=1m:512k", NULL}, "quarter of the size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[4] = {0};
        int argc = 0;
        while (argc < 4 && cases[i].args[argc])
            argc++;
        memcpy(argv, cases[i].args, sizeof(char *) * (size_t)argc);
        hs_config_free(&fx->cfg);
        hs_config_init(&fx->cfg);
        fx->err[0] = '\0';
        int r = hs_config_parse_args(&fx->cfg, argc, argv, fx->err, sizeof fx->err);
        if (r == 0 || strstr(fx->err, cases[i].says) == NULL)
            fail_msg("case %zu (%s %s): r=%d err='%s'", i, cases[i].args[0],
                     cases[i].args[1] ? cases[i].args[1] : "", r, fx->err);
    }
}

static void test_file_services_and_settings(void **state)
{
    struct fx *fx = *state;
    const char *path = write_file(fx, "conf.lua",
                                  "return {\n"
                                  "  max_connections = 99, grace = 3, workers = 2,\n"
                                  "  max_line = 2048,\n"
                                  "  services = {\n"
                                  "    { script = 'echo.lua', listen = { 'tcp://127.0.0.1:1' } },\n"
                                  "    { script = '/abs/g.lua', listen = 'tcp://127.0.0.1:2',\n"
                                  "      framing = 'line', options = { welcome = 'hi' } },\n"
                                  "  },\n"
                                  "}\n");
    assert_int_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.n_services, 2);
    assert_int_equal(fx->cfg.max_connections, 99);
    assert_int_equal(fx->cfg.grace_ms, 3000);
    assert_int_equal(fx->cfg.workers, 2);
    assert_int_equal(fx->cfg.max_line, 2048);
    /* A relative script resolves against the file's directory; an absolute one stays. */
    char want[128];
    snprintf(want, sizeof want, "%s/echo.lua", fx->dir);
    assert_string_equal(fx->cfg.services[0].script, want);
    assert_string_equal(fx->cfg.services[1].script, "/abs/g.lua");
    assert_int_equal(fx->cfg.services[1].n_listen, 1);
    assert_string_equal(fx->cfg.services[1].framing, "line");
    assert_int_equal(fx->cfg.services[1].n_opts, 1);
    assert_string_equal(fx->cfg.services[1].opts[0].key, "welcome");
    assert_string_equal(fx->cfg.services[1].opts[0].value, "hi");
}

static void test_command_line_wins(void **state)
{
    struct fx *fx = *state;
    const char *path = write_file(fx, "conf.lua",
                                  "return { max_connections = 99, workers = 4, grace = 9,\n"
                                  "  services = { { script = 'e.lua' } } }\n");
    assert_int_equal(parse(fx, "--max-connections", "5", "--workers", "1", NULL), 0);
    assert_int_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.max_connections, 5);
    assert_int_equal(fx->cfg.workers, 1);
    assert_int_equal(fx->cfg.grace_ms, 9000); /* not given on the command line: the file's */
}

static void test_file_errors_name_the_place(void **state)
{
    struct fx *fx = *state;
    const char *path = write_file(fx, "syntax.lua", "return {\n  services = {\n");
    assert_int_not_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "syntax.lua:"));

    path = write_file(fx, "throws.lua", "\nerror('no config for you')\n");
    assert_int_not_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "throws.lua:2: no config for you"));

    path = write_file(fx, "notable.lua", "return 42\n");
    assert_int_not_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "notable.lua"));

    path = write_file(fx, "noscript.lua", "return { services = { { listen = 'tcp://x:1' } } }\n");
    assert_int_not_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "script"));

    assert_int_not_equal(
        hs_config_load_file(&fx->cfg, "/nonexistent/c.lua", fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "/nonexistent/c.lua"));
}

/* --shared NAME=SIZE[:MAX_VALUE] and shared = { ... } in a file; the command line wins per
 * name. */
static void test_shared_dictionaries(void **state)
{
    struct fx *fx = *state;
    const char *path =
        write_file(fx, "conf.lua",
                   "return { shared = { cache = '2m', big = { size = '8m', max_value = '1m' } },\n"
                   "  services = { { script = 'e.lua' } } }\n");
    assert_int_equal(
        parse(fx, "a.lua", "--shared", "cache=64k", "--shared", "default=16m:128k", NULL), 0);
    assert_int_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.n_shared, 3);
    assert_string_equal(fx->cfg.shared[0].name, "cache");
    assert_int_equal(fx->cfg.shared[0].size, 64 * 1024); /* the command line's */
    assert_string_equal(fx->cfg.shared[1].name, "default");
    assert_int_equal(fx->cfg.shared[1].size, 16 << 20);
    assert_int_equal(fx->cfg.shared[1].max_value, 128 * 1024);
    assert_string_equal(fx->cfg.shared[2].name, "big");
    assert_int_equal(fx->cfg.shared[2].size, 8 << 20);
    assert_int_equal(fx->cfg.shared[2].max_value, 1 << 20);
    path = write_file(fx, "bad.lua", "return { shared = { x = 'huge' }, services = {} }\n");
    assert_int_not_equal(hs_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "shared.x"));
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    hs_log_set_level(HS_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        FX_TEST(test_defaults),
        FX_TEST(test_per_script_options),
        FX_TEST(test_global_settings),
        FX_TEST(test_refusals),
        FX_TEST(test_file_services_and_settings),
        FX_TEST(test_command_line_wins),
        FX_TEST(test_file_errors_name_the_place),
        FX_TEST(test_shared_dictionaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
