/* Scripts and their versions on a real Lua state: the first load, reloads that publish a new
 * generation, failures that leave the current one in place, prepare/discard/commit, the
 * versions connections hold outliving their script, options, and on_reload. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/hs.h"
#include "core/log.h"
#include "core/lua_api.h"
#include "core/script.h"
#include "tests/unit/lua_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <lua.h>

struct fx {
    struct event_base *base;
    struct hs_conns *set;
    struct hs_lua *hl;
    char dir[64];
    char path[128];
    char err[2048];
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/hs-test-reload-XXXXXX");
    if (lua_fx_open(&fx->base, &fx->set, &fx->hl) != 0 || mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/h.lua", fx->dir);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    lua_fx_close(fx->base, fx->set, fx->hl);
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

static void write_script(struct fx *fx, const char *text)
{
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Calls the current version's `answer` field (a function returning a string). */
static const char *answer(struct fx *fx, struct hs_version *v, char *buf, size_t n)
{
    lua_State *L = hs_lua_state(fx->hl);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs_version_table_ref(v));
    lua_getfield(L, -1, "answer");
    assert_int_equal(lua_pcall(L, 0, 1, 0), LUA_OK);
    snprintf(buf, n, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return buf;
}

#define SCRIPT(word)                                                                               \
    "local opts = ...\n"                                                                           \
    "return { name = 'h', listen = 'tcp://127.0.0.1:0',\n"                                         \
    "  on_message = function() end,\n"                                                             \
    "  answer = function() return '" word "' .. (opts.suffix or '') end }\n"

static void test_load_and_reload(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    unsigned base = hs_version_live_count();
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    assert_int_equal(hs_script_generation(s), 1);
    assert_string_equal(hs_script_decl(s)->name, "h");
    assert_string_equal(hs_script_decl(s)->protocol, "stream");
    assert_int_equal(hs_script_decl(s)->n_listen, 1);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one");

    /* A connection holds version 1 across the reload. */
    struct hs_version *held = hs_script_current(s);
    hs_version_ref(held);
    write_script(fx, SCRIPT("two"));
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_int_equal(hs_script_generation(s), 2);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "two");
    assert_string_equal(answer(fx, held, buf, sizeof buf), "one");
    assert_int_equal(hs_version_generation(held), 1);
    assert_int_equal(hs_version_live_count(), base + 2);
    hs_version_unref(held); /* its last connection closed */
    assert_int_equal(hs_version_live_count(), base + 1);

    double when;
    int ok;
    const char *error;
    hs_script_last_reload(s, &when, &ok, &error);
    assert_true(ok);
    assert_true(when > 0);
    assert_string_equal(error, "");
    hs_script_free(s);
    assert_int_equal(hs_version_live_count(), base);
}

static void test_failed_reload_changes_nothing(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    unsigned live = hs_version_live_count();
    static const char *const broken[] = {
        "return {\n  on_message = function( end }\n",         /* syntax */
        "local x = nil\nreturn x.y\n",                        /* runtime error at load */
        "return 42\n",                                        /* not a table */
        "return { on_mesage = function() end }\n",            /* unknown callback */
        "return { on_message = 42 }\n",                       /* not a function */
        "return { on_message = print, framing = 'nope' }\n",  /* bad framing */
        "return { on_message = print, listen = 'tcp://' }\n", /* bad listen address */
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        write_script(fx, broken[i]);
        fx->err[0] = '\0';
        if (hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err) == 0)
            fail_msg("case %zu was accepted: %s", i, broken[i]);
        if (strstr(fx->err, "h.lua") == NULL)
            fail_msg("case %zu: the error does not name the file: %s", i, fx->err);
        assert_int_equal(hs_script_generation(s), 1);
        assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one");
        assert_int_equal(hs_version_live_count(), live);
        double when;
        int ok;
        const char *error;
        hs_script_last_reload(s, &when, &ok, &error);
        assert_false(ok);
        assert_string_equal(error, fx->err);
    }
    hs_script_free(s);
}

static void test_prepare_discard_commit(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    struct hs_script_pending *p;
    char buf[64];
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    write_script(fx, SCRIPT("two"));
    assert_int_equal(hs_script_prepare(s, NULL, 0, &p, fx->err, sizeof fx->err), 0);
    assert_int_equal(hs_script_pending_decl(p)->n_listen, 1);
    /* Prepared is not published. */
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one");
    hs_script_discard(p);
    assert_int_equal(hs_script_generation(s), 1);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one");
    assert_int_equal(hs_script_prepare(s, NULL, 0, &p, fx->err, sizeof fx->err), 0);
    hs_script_commit(p);
    assert_int_equal(hs_script_generation(s), 2);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "two");
    hs_script_free(s);
}

static void test_options(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    struct hs_script_option o1 = {"suffix", "!"}, o2 = {"suffix", "?"};
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, &o1, 1, &s, fx->err, sizeof fx->err), 0);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one!");
    /* A reload without options keeps the ones in force; with options, replaces them. */
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one!");
    assert_int_equal(hs_script_reload(s, &o2, 1, fx->err, sizeof fx->err), 0);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "one?");
    hs_script_free(s);
}

static void test_on_reload(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    write_script(fx,
                 "return { on_message = print, count = 1, answer = function() return '1' end }\n");
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    /* The new version sees the old table and carries state over. */
    write_script(fx, "local t = { on_message = print }\n"
                     "function t.on_reload(old) t.count = old.count + 1 end\n"
                     "function t.answer() return tostring(t.count) end\n"
                     "return t\n");
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "2");
    /* An error in on_reload fails the reload: the running version stays. */
    write_script(fx, "return { on_message = print, answer = function() return 'x' end,\n"
                     "  on_reload = function(old) error('refusing ' .. old.count) end }\n");
    assert_int_not_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_non_null(strstr(fx->err, "h.lua:2: refusing 2"));
    assert_int_equal(hs_script_generation(s), 2);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "2");
    hs_script_free(s);
}

static void test_version_outlives_script(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    unsigned base = hs_version_live_count();
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    struct hs_version *v = hs_script_current(s);
    hs_version_ref(v);
    hs_script_free(s);
    assert_null(hs_version_script(v));
    assert_string_equal(answer(fx, v, buf, sizeof buf), "one");
    assert_int_equal(hs_version_live_count(), base + 1);
    hs_version_unref(v);
    assert_int_equal(hs_version_live_count(), base);
}

/* What watchers were told, in order: "N-" for retired, "N+" for freed (N: generation). */
struct watch_log {
    char text[128];
};

static void watch_cb(struct hs_version *v, int freed, void *arg)
{
    struct watch_log *w = arg;
    size_t len = strlen(w->text);
    snprintf(w->text + len, sizeof w->text - len, "%u%c ", hs_version_generation(v),
             freed ? '+' : '-');
}

/* The version module tells its watchers, in the order they registered, when a version
 * retires (a reload, the script freed) and when it is freed (its last reference). */
static void test_watchers_told_when_versions_go(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    struct watch_log log = {""};
    struct hs_version_watcher wa = {watch_cb, &log, NULL}, wb = {watch_cb, &log, NULL};
    write_script(fx, SCRIPT("one"));
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    hs_version_watch(&wa);
    hs_version_watch(&wb);
    struct hs_version *held = hs_script_current(s);
    hs_version_ref(held);
    write_script(fx, SCRIPT("two"));
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_string_equal(log.text, "1- 1- "); /* retired, still held: not freed */
    hs_version_unref(held);
    assert_string_equal(log.text, "1- 1- 1+ 1+ ");
    /* A failed reload retires nothing; the version it made (3) is freed. */
    write_script(fx, "return 42\n");
    assert_int_not_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_string_equal(log.text, "1- 1- 1+ 1+ 3+ 3+ ");
    hs_version_unwatch(&wb);
    hs_script_free(s);
    assert_string_equal(log.text, "1- 1- 1+ 1+ 3+ 3+ 2- 2+ ");
    hs_version_unwatch(&wa);
    hs_version_unwatch(&wa); /* not registered any more: nothing */
}

/* Timers a version's top level starts go when it retires; the new load's stay. */
static void test_load_timers_follow_versions(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    unsigned base = hs_lua_timer_count(fx->hl);
    write_script(fx, "local hotsock = require 'hotsock'\n"
                     "hotsock.after(100, print)\n"
                     "return { on_message = print }\n");
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    assert_int_equal(hs_lua_timer_count(fx->hl), base + 1);
    write_script(fx, "local hotsock = require 'hotsock'\n"
                     "hotsock.after(100, print)\n"
                     "hotsock.every(100, print)\n"
                     "return { on_message = print }\n");
    struct hs_version *held = hs_script_current(s);
    hs_version_ref(held); /* held or not, a retired version's load timers go */
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    assert_int_equal(hs_lua_timer_count(fx->hl), base + 2);
    hs_version_unref(held);
    assert_int_equal(hs_lua_timer_count(fx->hl), base + 2);
    hs_script_free(s);
    assert_int_equal(hs_lua_timer_count(fx->hl), base);
}

/* A reload copies only the listen URLs a version declares (the decl's 16 KiB array is never
 * copied whole) and sizes the callback snapshot from the running version's: a version with
 * fewer addresses, or many more functions, must still come out exact. */
static void test_decl_follows_reloads(void **state)
{
    struct fx *fx = *state;
    struct hs_script *s;
    char buf[64];
    write_script(fx,
                 "return { name = 'a', protocol = 'http', on_request = function() end,\n"
                 "  listen = { 'tcp://127.0.0.1:1', 'tcp://127.0.0.1:2', 'tcp://[::1]:3' } }\n");
    assert_int_equal(hs_script_load(fx->hl, fx->path, NULL, 0, &s, fx->err, sizeof fx->err), 0);
    const struct hs_script_decl *d = hs_script_decl(s);
    assert_int_equal(d->n_listen, 3);
    assert_string_equal(d->listen[2], "tcp://[::1]:3");
    assert_int_equal(d->n_snapshot, 1);

    /* Fewer addresses, a shorter URL in the first slot, 40 more functions. */
    char text[4096];
    int used = snprintf(text, sizeof text, "local M = { listen = 'udp://127.0.0.1:9' }\n");
    for (int i = 0; i < 40; i++)
        used += snprintf(text + used, sizeof text - (size_t)used,
                         "function M.f%d() return 'f%d' end\n", i, i);
    snprintf(text + used, sizeof text - (size_t)used,
             "M.answer = function() return M.f39() end\n"
             "function M.on_datagram() end\nreturn M\n");
    write_script(fx, text);
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    d = hs_script_decl(s);
    assert_string_equal(d->name, "h");
    assert_string_equal(d->protocol, "stream");
    assert_int_equal(d->has_framing, 0);
    assert_int_equal(d->n_listen, 1);
    assert_string_equal(d->listen[0], "udp://127.0.0.1:9");
    assert_int_equal(d->n_snapshot, 42);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "f39");

    /* And back to a small one: the hint of 42 does not leak into what it declares. */
    write_script(fx, SCRIPT("three"));
    assert_int_equal(hs_script_reload(s, NULL, 0, fx->err, sizeof fx->err), 0);
    d = hs_script_decl(s);
    assert_int_equal(d->n_listen, 1);
    assert_string_equal(d->listen[0], "tcp://127.0.0.1:0");
    assert_int_equal(d->n_snapshot, 2);
    assert_string_equal(answer(fx, hs_script_current(s), buf, sizeof buf), "three");
    hs_script_free(s);
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    hs_log_set_level(HS_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        FX_TEST(test_load_and_reload),
        FX_TEST(test_failed_reload_changes_nothing),
        FX_TEST(test_prepare_discard_commit),
        FX_TEST(test_options),
        FX_TEST(test_on_reload),
        FX_TEST(test_version_outlives_script),
        FX_TEST(test_watchers_told_when_versions_go),
        FX_TEST(test_load_timers_follow_versions),
        FX_TEST(test_decl_follows_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
