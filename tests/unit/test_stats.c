/* Stats tests: the per-process row table (pins, recycling, counting rules), the escaping of
 * tokens, and the two renderings of a snapshot from several workers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/stats.h"
#include "core/stats_text.h"

#include <stdio.h>
#include <string.h>

static int reset(void **state)
{
    (void)state;
    hs_stats_reset();
    return 0;
}

static void test_counts_and_write(void **state)
{
    (void)state;
    struct hs_stats_row *r = hs_stats_row_get(1, "a b.lua", "svc", 1);
    assert_non_null(r);
    assert_ptr_equal(r, hs_stats_row_get(1, "a b.lua", "svc", 1));
    hs_stats_conn_open(r);
    hs_stats_conn_open(r);
    hs_stats_message(r, 0);
    hs_stats_message(r, 5); /* a datagram */
    hs_stats_handler_error(r);
    hs_stats_conn_closed(r, "peer closed", 10, 20);
    hs_stats_conn_closed(r, "line too long", 1, 0);
    hs_stats_conn_open(r);
    hs_stats_live_reset();
    hs_stats_live_add(r, 100, 200);
    hs_stats_bytes_out(r, 3);
    char out[1024];
    size_t n = hs_stats_write(out, sizeof out);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "version service=1 name=svc path=a%20b.lua generation=1 open=1 "
                             "total=3 bytes_in=116 bytes_out=223 messages=2 errors=1 "
                             "handler_errors=1\n");
    /* Orderly reasons, a close by either side, are not errors: a client's reset is one. */
    const char *orderly[] = {"closed",        "shutdown", "idle timeout", "keep-alive timeout",
                             "handler error", "reset",    "peer closed"};
    for (size_t i = 0; i < sizeof orderly / sizeof orderly[0]; i++) {
        hs_stats_conn_open(r);
        hs_stats_conn_closed(r, orderly[i], 0, 0);
    }
    hs_stats_write(out, sizeof out);
    assert_non_null(strstr(out, " errors=1 "));
}

static void test_move_and_null(void **state)
{
    (void)state;
    struct hs_stats_row *a = hs_stats_row_get(1, "s.lua", "s", 1);
    struct hs_stats_row *b = hs_stats_row_get(1, "s.lua", "s", 2);
    hs_stats_conn_open(a);
    hs_stats_message(a, 0);
    /* Adopted after 10 bytes in and 20 out: those stay with generation 1, as its message
     * does; generation 2 gets what follows (5 in, 6 out), live and at the close. */
    hs_stats_conn_move(a, b, 10, 20);
    hs_stats_message(b, 0);
    char out[1024];
    hs_stats_live_reset();
    hs_stats_live_add(b, 15, 26);
    hs_stats_write(out, sizeof out);
    assert_non_null(
        strstr(out, "generation=1 open=0 total=1 bytes_in=10 bytes_out=20 messages=1 "));
    assert_non_null(strstr(out, "generation=2 open=1 total=0 bytes_in=5 bytes_out=6 messages=1 "));
    hs_stats_live_reset();
    hs_stats_conn_closed(b, "closed", 15, 26);
    hs_stats_write(out, sizeof out);
    assert_non_null(
        strstr(out, "generation=1 open=0 total=1 bytes_in=10 bytes_out=20 messages=1 "));
    assert_non_null(strstr(out, "generation=2 open=0 total=0 bytes_in=5 bytes_out=6 messages=1 "));
    /* Every counting function takes NULL (a full table). */
    hs_stats_conn_open(NULL);
    hs_stats_conn_move(NULL, NULL, 1, 1);
    hs_stats_conn_closed(NULL, "reset", 1, 1);
    hs_stats_message(NULL, 1);
    hs_stats_handler_error(NULL);
    hs_stats_row_release(NULL);
}

static void test_recycling(void **state)
{
    (void)state;
    char path[32];
    struct hs_stats_row *first = hs_stats_row_get(1, "0.lua", "x", 1);
    hs_stats_row_release(first); /* unpinned: may be reused, oldest first */
    for (int i = 1; i < HS_STATS_MAX_ROWS; i++) {
        snprintf(path, sizeof path, "%d.lua", i);
        assert_non_null(hs_stats_row_get((unsigned)i + 1, path, "x", 1));
    }
    /* Full: the unpinned oldest row is reused, then nothing is left. */
    assert_ptr_equal(first, hs_stats_row_get(1000, "new.lua", "x", 1));
    assert_null(hs_stats_row_get(1001, "more.lua", "x", 1));
}

/* Rows are keyed by service: two services running one file count apart. They are written by
 * service, then generation, whatever order they were first counted in. */
static void test_services_and_order(void **state)
{
    (void)state;
    struct hs_stats_row *a2 = hs_stats_row_get(1, "echo.lua", "echo", 2);
    struct hs_stats_row *b1 = hs_stats_row_get(2, "echo.lua", "echo", 1);
    struct hs_stats_row *a1 = hs_stats_row_get(1, "echo.lua", "echo", 1);
    assert_ptr_not_equal(a1, b1);
    hs_stats_conn_open(a1);
    hs_stats_conn_open(b1);
    hs_stats_conn_open(b1);
    hs_stats_conn_open(a2);
    char out[2048];
    hs_stats_write(out, sizeof out);
    const char *p1 = strstr(out, "version service=1 name=echo path=echo.lua generation=1 open=1 ");
    const char *p2 = strstr(out, "version service=1 name=echo path=echo.lua generation=2 open=1 ");
    const char *p3 = strstr(out, "version service=2 name=echo path=echo.lua generation=1 open=2 ");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(p3);
    assert_true(p1 < p2 && p2 < p3);
}

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    hs_stats_escape("a b=c%\n\xc3\xa9", out, sizeof out);
    assert_string_equal(out, "a%20b%3Dc%25%0A%C3%A9");
    hs_stats_unescape(out);
    assert_string_equal(out, "a b=c%\n\xc3\xa9");
    hs_stats_escape("abcdef", out, 5); /* truncated whole escapes, terminated */
    assert_string_equal(out, "ab");    /* room kept for a whole escape and the NUL */
}

static const char snapshot[] =
    "script service=1 name=chat path=chat.lua generation=2 reloads=1 reload_time=0.000 "
    "reload_ok=1 reload_error=\n"
    "script service=2 name=echo path=echo.lua generation=1 reloads=0 reload_time=0.000 "
    "reload_ok=0 reload_error=\n"
    "script service=3 name=echo path=echo.lua generation=1 reloads=0 reload_time=0.000 "
    "reload_ok=0 reload_error=\n"
    "process worker=1 pid=11 lua_memory=2048 connections=1 timers=0\n"
    "version service=1 name=chat path=chat.lua generation=2 open=1 total=1 bytes_in=1 "
    "bytes_out=2 messages=1 errors=0 handler_errors=0\n"
    "version service=3 name=echo path=echo.lua generation=1 open=0 total=7 bytes_in=0 "
    "bytes_out=0 messages=0 errors=0 handler_errors=0\n"
    "version service=1 name=chat path=chat.lua generation=1 open=0 total=3 bytes_in=10 "
    "bytes_out=20 messages=4 errors=1 handler_errors=0\n"
    "listener url=tcp://127.0.0.1:7000 name=chat accepted=4 refused=0 limited=0 open=1 "
    "bytes_in=11 bytes_out=22 messages=5 errors=1 proxy_failures=2\n"
    "listener url=udp://127.0.0.1:7001 name=echo accepted=0 refused=0 limited=0 open=0 "
    "bytes_in=5 bytes_out=5 messages=1 errors=0\n"
    "process worker=2 pid=12 lua_memory=4096 connections=2 timers=1\n"
    "version service=2 name=echo path=echo.lua generation=1 open=0 total=5 bytes_in=0 "
    "bytes_out=0 messages=0 errors=0 handler_errors=0\n"
    "version service=1 name=chat path=chat.lua generation=2 open=2 total=5 bytes_in=3 "
    "bytes_out=4 messages=6 errors=0 handler_errors=2\n"
    "listener url=tcp://127.0.0.1:7000 name=chat accepted=5 refused=1 limited=2 open=2 "
    "bytes_in=3 bytes_out=4 messages=6 errors=0 proxy_failures=1\n";

static void test_table(void **state)
{
    (void)state;
    char out[4096];
    hs_stats_render_table(snapshot, out, sizeof out);
    /* Summed over workers, one row per version and per listener. */
    assert_non_null(strstr(out, "\ntcp://127.0.0.1:7000             chat                      9"
                                "        1        2      3       14 B       26 B         11"
                                "       1        0          3\n"));
    assert_non_null(strstr(out, "\nudp://127.0.0.1:7001             echo                      0"
                                "        0        0      0        5 B        5 B          1"
                                "       0        0          0\n"));
    /* Versions by service then generation; two services of one name told apart. */
    const char *g1 = strstr(out, "\nchat                1 old           0        3       10 B"
                                 "       20 B          4       1        0\n");
    const char *g2 = strstr(out, "\nchat                2 current       3        6        4 B"
                                 "        6 B          7       0        2\n");
    const char *e2 = strstr(out, "\necho[2]             1 current       0        5 ");
    const char *e3 = strstr(out, "\necho[3]             1 current       0        7 ");
    assert_non_null(g1);
    assert_non_null(g2);
    assert_non_null(e2);
    assert_non_null(e3);
    assert_true(g1 < g2 && g2 < e2 && e2 < e3);
    assert_non_null(strstr(out, "\nchat                2       1  never                  -\n"));
    assert_non_null(strstr(out, "\necho[3]             1       0  never                  -\n"));
    assert_non_null(strstr(out, "\n1              11            1      2.0 KiB       0\n"));
    assert_non_null(strstr(out, "\n2              12            2      4.0 KiB       1\n"));
}

static void test_prometheus(void **state)
{
    (void)state;
    char out[16384];
    hs_stats_render_prometheus(snapshot, out, sizeof out);
    assert_non_null(strstr(out, "# TYPE hotsock_connections_open gauge\n"
                                "hotsock_connections_open{script=\"chat\",service=\"1\","
                                "path=\"chat.lua\",generation=\"2\",worker=\"1\"} 1\n"));
    assert_non_null(strstr(out, "hotsock_handler_errors_total{script=\"chat\",service=\"1\","
                                "path=\"chat.lua\",generation=\"2\",worker=\"2\"} 2\n"));
    assert_non_null(strstr(out, "hotsock_connections_total{script=\"echo\",service=\"3\","
                                "path=\"echo.lua\",generation=\"1\",worker=\"1\"} 7\n"));
    assert_non_null(strstr(out, "hotsock_listener_limited_total{listener=\"tcp://127.0.0.1:7000\","
                                "script=\"chat\",worker=\"2\"} 2\n"));
    assert_non_null(strstr(out, "hotsock_listener_proxy_header_failures_total{listener=\"tcp://"
                                "127.0.0.1:7000\",script=\"chat\",worker=\"1\"} 2\n"));
    assert_non_null(strstr(out, "hotsock_lua_memory_bytes{worker=\"2\"} 4096\n"));
    assert_non_null(
        strstr(out, "hotsock_script_generation{script=\"chat\",service=\"1\",path=\"chat.lua\"} "
                    "2\n"));
    /* Each family once: its TYPE line appears a single time. */
    const char *t = strstr(out, "# TYPE hotsock_messages_total counter\n");
    assert_non_null(t);
    assert_null(strstr(t + 1, "# TYPE hotsock_messages_total"));
    /* Label values are escaped. */
    hs_stats_render_prometheus("script name=a%22b path=x generation=1 reloads=0 reload_time=0 "
                               "reload_ok=0 reload_error=\n",
                               out, sizeof out);
    assert_non_null(strstr(out, "{script=\"a\\\"b\",service=\"\",path=\"x\"}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counts_and_write, reset),
        cmocka_unit_test_setup(test_move_and_null, reset),
        cmocka_unit_test_setup(test_recycling, reset),
        cmocka_unit_test_setup(test_services_and_order, reset),
        cmocka_unit_test_setup(test_escape, reset),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_prometheus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
