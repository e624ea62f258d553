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
    struct hs_stats_row *r = hs_stats_row_get("a b.lua", "svc", 1);
    assert_non_null(r);
    assert_ptr_equal(r, hs_stats_row_get("a b.lua", "svc", 1));
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
    assert_string_equal(out, "version name=svc path=a%20b.lua generation=1 open=1 total=3 "
                             "bytes_in=116 bytes_out=223 messages=2 errors=1 handler_errors=1\n");
    /* Orderly reasons are not errors. */
    const char *orderly[] = {"closed", "shutdown", "idle timeout", "keep-alive timeout",
                             "handler error"};
    for (size_t i = 0; i < 5; i++) {
        hs_stats_conn_open(r);
        hs_stats_conn_closed(r, orderly[i], 0, 0);
    }
    hs_stats_write(out, sizeof out);
    assert_non_null(strstr(out, " errors=1 "));
}

static void test_move_and_null(void **state)
{
    (void)state;
    struct hs_stats_row *a = hs_stats_row_get("s.lua", "s", 1);
    struct hs_stats_row *b = hs_stats_row_get("s.lua", "s", 2);
    hs_stats_conn_open(a);
    hs_stats_conn_move(a, b);
    hs_stats_conn_closed(b, "closed", 0, 0);
    char out[1024];
    hs_stats_write(out, sizeof out);
    assert_non_null(strstr(out, "generation=1 open=0 total=1 "));
    assert_non_null(strstr(out, "generation=2 open=0 total=0 "));
    /* Every counting function takes NULL (a full table). */
    hs_stats_conn_open(NULL);
    hs_stats_conn_move(NULL, NULL);
    hs_stats_conn_closed(NULL, "reset", 1, 1);
    hs_stats_message(NULL, 1);
    hs_stats_handler_error(NULL);
    hs_stats_row_release(NULL);
}

static void test_recycling(void **state)
{
    (void)state;
    char path[32];
    struct hs_stats_row *first = hs_stats_row_get("0.lua", "x", 1);
    hs_stats_row_release(first); /* unpinned: may be reused, oldest first */
    for (int i = 1; i < HS_STATS_MAX_ROWS; i++) {
        snprintf(path, sizeof path, "%d.lua", i);
        assert_non_null(hs_stats_row_get(path, "x", 1));
    }
    /* Full: the unpinned oldest row is reused, then nothing is left. */
    assert_ptr_equal(first, hs_stats_row_get("new.lua", "x", 1));
    assert_null(hs_stats_row_get("more.lua", "x", 1));
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
    "script name=chat path=chat.lua generation=2 reloads=1 reload_time=0.000 reload_ok=1 "
    "reload_error=\n"
    "process worker=1 pid=11 lua_memory=2048 connections=1 timers=0\n"
    "version name=chat path=chat.lua generation=1 open=0 total=3 bytes_in=10 bytes_out=20 "
    "messages=4 errors=1 handler_errors=0\n"
    "version name=chat path=chat.lua generation=2 open=1 total=1 bytes_in=1 bytes_out=2 "
    "messages=1 errors=0 handler_errors=0\n"
    "listener url=tcp://127.0.0.1:7000 name=chat accepted=4 refused=0 limited=0 open=1 "
    "bytes_in=11 bytes_out=22 messages=5 errors=1\n"
    "process worker=2 pid=12 lua_memory=4096 connections=2 timers=1\n"
    "version name=chat path=chat.lua generation=2 open=2 total=5 bytes_in=3 bytes_out=4 "
    "messages=6 errors=0 handler_errors=2\n"
    "listener url=tcp://127.0.0.1:7000 name=chat accepted=5 refused=1 limited=2 open=2 "
    "bytes_in=3 bytes_out=4 messages=6 errors=0\n";

static void test_table(void **state)
{
    (void)state;
    char out[4096];
    hs_stats_render_table(snapshot, out, sizeof out);
    /* Summed over workers, one row per version and per listener. */
    assert_non_null(strstr(out, "\ntcp://127.0.0.1:7000             chat                      9"
                                "        1        2      3       14 B       26 B         11"
                                "       1\n"));
    assert_non_null(strstr(out, "\nchat                1 old           0        3       10 B"
                                "       20 B          4       1        0\n"));
    assert_non_null(strstr(out, "\nchat                2 current       3        6        4 B"
                                "        6 B          7       0        2\n"));
    assert_non_null(strstr(out, "\nchat                2       1  never                  -\n"));
    assert_non_null(strstr(out, "\n1              11            1      2.0 KiB       0\n"));
    assert_non_null(strstr(out, "\n2              12            2      4.0 KiB       1\n"));
}

static void test_prometheus(void **state)
{
    (void)state;
    char out[16384];
    hs_stats_render_prometheus(snapshot, out, sizeof out);
    assert_non_null(strstr(out, "# TYPE hotsock_connections_open gauge\n"
                                "hotsock_connections_open{script=\"chat\",path=\"chat.lua\","
                                "generation=\"1\",worker=\"1\"} 0\n"));
    assert_non_null(strstr(out, "hotsock_handler_errors_total{script=\"chat\",path=\"chat.lua\","
                                "generation=\"2\",worker=\"2\"} 2\n"));
    assert_non_null(strstr(out, "hotsock_listener_limited_total{listener=\"tcp://127.0.0.1:7000\","
                                "script=\"chat\",worker=\"2\"} 2\n"));
    assert_non_null(strstr(out, "hotsock_lua_memory_bytes{worker=\"2\"} 4096\n"));
    assert_non_null(
        strstr(out, "hotsock_script_generation{script=\"chat\",path=\"chat.lua\"} 2\n"));
    /* Each family once: its TYPE line appears a single time. */
    const char *t = strstr(out, "# TYPE hotsock_messages_total counter\n");
    assert_non_null(t);
    assert_null(strstr(t + 1, "# TYPE hotsock_messages_total"));
    /* Label values are escaped. */
    hs_stats_render_prometheus("script name=a%22b path=x generation=1 reloads=0 reload_time=0 "
                               "reload_ok=0 reload_error=\n",
                               out, sizeof out);
    assert_non_null(strstr(out, "{script=\"a\\\"b\",path=\"x\"}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counts_and_write, reset),
        cmocka_unit_test_setup(test_move_and_null, reset),
        cmocka_unit_test_setup(test_recycling, reset),
        cmocka_unit_test_setup(test_escape, reset),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_prometheus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
