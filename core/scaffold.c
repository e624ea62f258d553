#include "core/scaffold.h"
#include "core/hs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The starter handler; NAME is replaced by the name given. Kept in step with the kit's API by
 * tests/integration/new_spec.lua, which runs the generated spec. */
static const char handler_template[] =
    "-- NAME: a line protocol handler for hotsock (started with `hotsock new NAME`).\n"
    "--\n"
    "-- Serve it:   hotsock serve NAME.lua              (listens on tcp://127.0.0.1:7100)\n"
    "-- Try it:     printf 'PING\\nECHO hi\\nQUIT\\n' | nc 127.0.0.1 7100\n"
    "-- Test it:    busted --lua=lua5.4 NAME_spec.lua\n"
    "-- Change it while it runs: edit, save, then `hotsock reload` (or serve with --watch);\n"
    "-- `hotsock stats` shows each generation's connections and messages.\n"
    "--\n"
    "-- Protocol: one command per line; replies are lines.\n"
    "--   PING          -> PONG\n"
    "--   ECHO <text>   -> <text>\n"
    "--   COUNT         -> how many commands this connection has sent\n"
    "--   QUIT          -> BYE, then the server closes\n"
    "--   anything else -> ERR unknown command\n"
    "\n"
    "local hotsock = require \"hotsock\" -- the server's API (types: share/hotsock/types)\n"
    "\n"
    "-- Options come from the command line: hotsock serve NAME.lua --set greeting=hi\n"
    "local opts = ... or {}\n"
    "local greeting = opts.greeting or \"hello from NAME\"\n"
    "\n"
    "---@type hotsock.Handler\n"
    "local handler = {\n"
    "  name = \"NAME\",\n"
    "  listen = \"tcp://127.0.0.1:7100\", -- used when the command line gives no --listen\n"
    "  framing = \"line\",                -- the core splits input into lines (max 64 KiB each)\n"
    "}\n"
    "\n"
    "-- A client connected: conn.ctx is a table for this connection's own state.\n"
    "function handler.on_connect(conn)\n"
    "  conn.ctx.count = 0\n"
    "  conn:send(greeting, \"\\n\")\n"
    "end\n"
    "\n"
    "-- One line arrived, without its \"\\n\" (and without a \"\\r\" before it).\n"
    "function handler.on_message(conn, line)\n"
    "  conn.ctx.count = conn.ctx.count + 1\n"
    "  local cmd, arg = line:match(\"^(%S*)%s?(.*)$\")\n"
    "  if cmd == \"PING\" then\n"
    "    conn:send(\"PONG\\n\")\n"
    "  elseif cmd == \"ECHO\" then\n"
    "    conn:send(arg, \"\\n\")\n"
    "  elseif cmd == \"COUNT\" then\n"
    "    conn:send(conn.ctx.count, \"\\n\")\n"
    "  elseif cmd == \"QUIT\" then\n"
    "    conn:send(\"BYE\\n\")\n"
    "    conn:close() -- after BYE has been sent\n"
    "  else\n"
    "    hotsock.log(\"warn\", \"unknown command from\", conn:peer(), cmd)\n"
    "    conn:send(\"ERR unknown command\\n\")\n"
    "  end\n"
    "end\n"
    "\n"
    "-- The connection is gone: reason is \"peer closed\", \"closed\", \"idle timeout\", ...\n"
    "function handler.on_close(conn, reason)\n"
    "  hotsock.log(\"debug\", conn, \"closed:\", reason)\n"
    "end\n"
    "\n"
    "return handler\n";

/* Its spec, using the test kit (lua/hotsock/testkit.lua). */
static const char spec_template[] =
    "-- Specs of NAME.lua, run against the real server by the hotsock test kit:\n"
    "--   busted --lua=lua5.4 NAME_spec.lua\n"
    "-- (with hotsock installed; from a source tree, set HOTSOCK_BIN=path/to/hotsock and\n"
    "-- LUA_PATH=\"path/to/hotsock/lua/?.lua;;\").\n"
    "local kit = require \"hotsock.testkit\"\n"
    "\n"
    "-- The handler next to this spec, wherever busted runs from.\n"
    "local here = debug.getinfo(1, \"S\").source:match(\"^@(.*[/\\\\])\") or \"./\"\n"
    "local SCRIPT = here .. \"NAME.lua\"\n"
    "\n"
    "describe(\"NAME\", function()\n"
    "  local srv\n"
    "\n"
    "  before_each(function()\n"
    "    -- An ephemeral port on 127.0.0.1 instead of the script's own listen address.\n"
    "    srv = kit.start(SCRIPT)\n"
    "  end)\n"
    "  after_each(function()\n"
    "    srv:stop()\n"
    "  end)\n"
    "\n"
    "  it(\"greets, then answers PING and ECHO\", function()\n"
    "    local c = srv:connect()\n"
    "    assert.are.equal(\"hello from NAME\", c:line())\n"
    "    c:send_line(\"PING\")\n"
    "    assert.are.equal(\"PONG\", c:line())\n"
    "    c:send_line(\"ECHO hi there\")\n"
    "    assert.are.equal(\"hi there\", c:line())\n"
    "    c:close()\n"
    "  end)\n"
    "\n"
    "  it(\"counts this connection's commands, however they are split into packets\", function()\n"
    "    local c = srv:connect()\n"
    "    c:line()\n"
    "    c:send(\"PI\")\n"
    "    c:send(\"NG\\nCOU\")\n"
    "    c:send(\"NT\\n\")\n"
    "    assert.are.equal(\"PONG\", c:line())\n"
    "    assert.are.equal(\"2\", c:line())\n"
    "    c:close()\n"
    "  end)\n"
    "\n"
    "  it(\"says BYE and closes on QUIT\", function()\n"
    "    local c = srv:connect()\n"
    "    c:line()\n"
    "    c:send_line(\"QUIT\")\n"
    "    assert.are.equal(\"BYE\", c:line())\n"
    "    assert.is_true(c:closed())\n"
    "    c:close()\n"
    "  end)\n"
    "\n"
    "  it(\"refuses an unknown command and logs it\", function()\n"
    "    local c = srv:connect()\n"
    "    c:line()\n"
    "    c:send_line(\"DANCE\")\n"
    "    assert.are.equal(\"ERR unknown command\", c:line())\n"
    "    srv:wait_log(\"unknown command from .* DANCE\")\n"
    "    c:close()\n"
    "  end)\n"
    "\n"
    "  it(\"takes its greeting from an option\", function()\n"
    "    local other = kit.start(SCRIPT, { set = { greeting = \"hi\" } })\n"
    "    local c = other:connect()\n"
    "    assert.are.equal(\"hi\", c:line())\n"
    "    c:close()\n"
    "    other:stop()\n"
    "  end)\n"
    "end)\n";

int hs_scaffold_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > HS_SCAFFOLD_NAME_MAX)
        return 0;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* The template with every NAME replaced by name, in a new string (caller frees), or NULL. */
static char *expand(const char *tpl, const char *name)
{
    size_t count = 0, nl = strlen(name);
    for (const char *p = tpl; (p = strstr(p, "NAME")) != NULL; p += 4)
        count++;
    size_t len = strlen(tpl) + count * nl;
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const char *p = tpl; *p;) {
        if (strncmp(p, "NAME", 4) == 0) {
            memcpy(o, name, nl);
            o += nl;
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Creates path exclusively and writes text. Returns 0 or a negative errno. */
static int write_new(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int r = -errno;
            close(fd);
            unlink(path);
            return r;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        int r = -errno;
        unlink(path);
        return r;
    }
    return 0;
}

int hs_scaffold_write(const char *dir, const char *name, char *err, size_t errlen)
{
    char hpath[4096], spath[4096];
    if (!hs_scaffold_name_ok(name)) {
        snprintf(err, errlen,
                 "'%s' is not a handler name: a letter, then letters, digits, '_' or '-' "
                 "(at most %d)",
                 name, HS_SCAFFOLD_NAME_MAX);
        return HS_EBADSPEC;
    }
    snprintf(hpath, sizeof hpath, "%s/%s.lua", dir, name);
    snprintf(spath, sizeof spath, "%s/%s_spec.lua", dir, name);
    if (access(hpath, F_OK) == 0 || access(spath, F_OK) == 0) {
        snprintf(err, errlen, "%s or %s exists already; not overwriting", hpath, spath);
        return -EEXIST;
    }
    char *h = expand(handler_template, name);
    char *s = expand(spec_template, name);
    int r = (h && s) ? 0 : -ENOMEM;
    if (r == 0 && (r = write_new(hpath, h)) != 0)
        snprintf(err, errlen, "cannot write %s: %s", hpath, strerror(-r));
    if (r == 0 && (r = write_new(spath, s)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", spath, strerror(-r));
        unlink(hpath);
    }
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(h);
    free(s);
    return r;
}
