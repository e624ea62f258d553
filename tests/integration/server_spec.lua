-- The core seen from outside: CLI, load errors, handler errors, framing, limits, signals.
local hs = require "hsserver"
local socket = require "socket"

local function probe(extra, opts)
  local args = { "tests/fixtures/probe.lua", "--listen", "tcp://127.0.0.1:0" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return hs.start(args, opts)
end

local line = hs.recv_line

describe("hotsock CLI", function()
  it("prints help and version", function()
    local out, rc = hs.run(hs.shquote(hs.bin) .. " --help")
    assert.equals(0, rc)
    assert.matches("usage: hotsock serve SCRIPT", out, 1, true)
    out, rc = hs.run(hs.shquote(hs.bin) .. " --version")
    assert.equals(0, rc)
    assert.matches("^hotsock %d+%.%d+%.%d+", out)
  end)

  it("check accepts a good script and names file:line for bad ones", function()
    local out, rc = hs.run(hs.shquote(hs.bin) .. " check scripts/echo.lua 2>&1")
    assert.equals(0, rc)
    assert.matches("scripts/echo.lua: ok", out, 1, true)
    local cases = {
      { "tests/fixtures/broken_syntax.lua", "broken_syntax.lua:4:" },
      { "tests/fixtures/error_at_load.lua", "error_at_load.lua:2:" },
      { "tests/fixtures/missing_cb.lua", "missing_cb.lua:3: on_mesage: unknown callback" },
      { "tests/fixtures/bad_framing.lua", "bad_framing.lua:3: bad framing" },
    }
    for _, case in ipairs(cases) do
      out, rc = hs.run(hs.shquote(hs.bin) .. " check " .. case[1] .. " 2>&1")
      assert.equals(1, rc, out)
      assert.matches(case[2], out, 1, true)
    end
  end)

  it("does not start with a script that fails to load (exit 1, file:line)", function()
    local out, rc = hs.run(hs.shquote(hs.bin) ..
      " serve tests/fixtures/error_at_load.lua --listen tcp://127.0.0.1:0 2>&1")
    assert.equals(1, rc)
    assert.matches("error_at_load.lua:2:", out, 1, true)
  end)

  it("exits 1 naming the address and the reason when it cannot bind", function()
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0" }
    local url = srv:url("tcp")
    local out, rc = hs.run(hs.shquote(hs.bin) .. " serve scripts/echo.lua --listen " .. url .. " 2>&1")
    assert.equals(1, rc)
    assert.matches("cannot listen on " .. url .. ": Address already in use", out, 1, true)
    out, rc = hs.run(hs.shquote(hs.bin) .. " serve scripts/echo.lua --listen tcp://no-such-host.invalid:1 2>&1")
    assert.equals(1, rc)
    assert.matches("cannot listen on tcp://no-such-host.invalid:1", out, 1, true)
    out, rc = hs.run(hs.shquote(hs.bin) .. " serve scripts/echo.lua --listen tcp://127.0.0.1 2>&1")
    assert.equals(2, rc)
    assert.matches("missing :PORT", out, 1, true)
    assert.is_true(srv:stop())
  end)

  it("finds scripts and their modules from any working directory", function()
    local root = hs.run("pwd"):gsub("%s+$", "")
    local bin = hs.bin:sub(1, 1) == "/" and hs.bin or root .. "/" .. hs.bin
    local out, rc = hs.run("cd /tmp && " .. hs.shquote(bin) .. " check " .. root .. "/tests/fixtures/probe.lua 2>&1")
    assert.equals(0, rc, out)
  end)
end)

describe("handlers", function()
  local srv
  setup(function() srv = probe { "--set", "colour=blue" } end)
  teardown(function() assert.is_true(srv:stop()) end)

  it("get options from --set and per-connection state in conn.ctx", function()
    local c = srv:tcp()
    assert(c:send("opt colour\nopt missing\ncount\n"))
    assert.equals("blue", line(c))
    assert.equals("nil", line(c))
    assert.equals("3", line(c))
    c:close()
  end)

  it("require modules next to the script", function()
    local c = srv:tcp()
    assert(c:send("helper hi\n"))
    assert.equals("HI!", line(c))
    c:close()
  end)

  it("a handler error closes only that connection, logged with file:line, traceback and peer", function()
    local other = srv:tcp()
    local c = srv:tcp()
    assert(c:send("boom\n"))
    local rest, err = hs.recv_all(c)
    assert.equals("", rest)
    assert.equals("closed", err)
    local l = srv:wait_log("[^\n]*boom from probe[^\n]*")
    assert.matches("handler error in on_message %(conn#%d+ 127%.0%.0%.1:%d+%)", l)
    assert.matches("probe.lua:25: boom from probe", l, 1, true)
    assert.matches("stack traceback", l, 1, true)
    assert(other:send("still here\n"))
    assert.equals("echo:still here", line(other))
    other:close()
  end)

  it("switch framing mid-stream, and an oversize frame closes with a logged reason", function()
    local c = srv:tcp()
    assert(c:send("switch\n" .. string.pack(">I2", 5) .. "hello" .. string.pack(">I2", 0)))
    assert.equals("len=5 hellolen=0 ", hs.recv_exact(c, 17))
    assert(c:send(string.pack(">I2", 101) .. ("x"):rep(101)))
    local _, err = hs.recv_all(c)
    assert.equals("closed", err)
    srv:wait_log("protocol error: frame too large")
  end)

  it("timers call back into live connections", function()
    local c = srv:tcp()
    assert(c:send("after 20\n"))
    assert.equals("tick", line(c))
    c:close()
  end)

  it("a conn object used after its close answers nil, 'closed' and still knows its id and peer", function()
    local c = srv:tcp()
    local _, port = c:getsockname()
    assert(c:send("keep\n"))
    assert.equals("kept", line(c))
    local _, err = hs.recv_all(c)
    assert.equals("closed", err)
    local d = srv:tcp()
    assert(d:send("poke\n"))
    assert.matches("^nil closed nil closed conn#%d+ %(closed%) true %d+ 127%.0%.0%.1:" .. port .. "$",
      line(d))
    assert(d:send("misuse\n"))
    assert.matches("^false .*bad argument #2 to .* %(string expected, got table%)", line(d))
    assert(d:send("loop_close\n"))
    assert.equals("bye", line(d))
    d:close()
  end)
end)

describe("limits", function()
  it("on_accept can refuse a peer", function()
    local srv = probe { "--set", "refuse=all" }
    local c = srv:tcp()
    local _, err = c:receive(1)
    assert.equals("closed", err)
    srv:wait_log("refused 127.0.0.1:%d+ %(on_accept%)")
    assert.is_true(srv:stop())
  end)

  it("closes connections beyond --max-connections at once, existing ones unaffected", function()
    local srv = probe { "--max-connections", "2" }
    local a, b = srv:tcp(), srv:tcp()
    assert(a:send("count\n")); assert.equals("1", line(a))
    assert(b:send("count\n")); assert.equals("1", line(b))
    local c = srv:tcp()
    local _, err = c:receive(1)
    assert.equals("closed", err)
    srv:wait_log("connection limit %(2%) reached")
    assert(a:send("count\n")); assert.equals("2", line(a))
    a:close(); b:close()
    assert.is_true(srv:stop())
  end)

  it("closes idle connections after --idle-timeout", function()
    local srv = probe { "--idle-timeout", "0.2" }
    local c = srv:tcp()
    local t0 = socket.gettime()
    local _, err = c:receive(1)
    assert.equals("closed", err)
    assert.is_true(socket.gettime() - t0 >= 0.15)
    srv:wait_log("idle for %d+ ms; closing")
    assert.is_true(srv:stop())
  end)

  it("backs off when accept runs out of descriptors, then recovers", function()
    local srv = probe({}, { prefix = "ulimit -n 32;" })
    local held = {}
    for i = 1, 40 do
      local c = socket.tcp()
      c:settimeout(2)
      assert(c:connect("127.0.0.1", srv:port()))
      held[i] = c
    end
    srv:wait_log("accept failed: Too many open files; pausing accepts")
    for _, c in ipairs(held) do c:close() end
    -- Once descriptors are free again new clients are served.
    hs.wait_until(function()
      local c = srv:tcp()
      c:settimeout(1)
      local ok = c:send("count\n") and c:receive("*l") == "1"
      c:close()
      return ok
    end, 10, "service after descriptor exhaustion")
    assert.is_true(srv:alive())
    assert.is_true(srv:stop())
  end)
end)

describe("signals", function()
  it("SIGTERM stops accepting, lets open connections finish, exits 0", function()
    local srv = probe { "--grace", "5" }
    local c = srv:tcp()
    assert(c:send("count\n")); assert.equals("1", line(c))
    srv:signal("TERM")
    srv:wait_log("SIGTERM: no longer accepting; 1 connection")
    -- The open connection is still served during the grace period...
    assert(c:send("count\n")); assert.equals("2", line(c))
    -- ...new ones are not accepted.
    local d = socket.tcp()
    d:settimeout(0.5)
    local ok = d:connect("127.0.0.1", srv:port())
    if ok then
      local _, err = d:receive(1)
      assert.is_not.equal(nil, err)
    end
    d:close()
    assert.is_nil(srv:exit_status())
    c:close()
    assert.equals(0, srv:wait_exit(5))
  end)

  it("SIGTERM with connections that never finish exits 0 after the grace period", function()
    local srv = probe { "--grace", "0.3" }
    local c = srv:tcp()
    assert(c:send("count\n")); assert.equals("1", line(c))
    srv:signal("INT")
    assert.equals(0, srv:wait_exit(5))
    assert.matches("grace period over: closing 1 connection", srv:log(), 1, true)
    c:close()
  end)
end)

describe("a config file", function()
  it("runs several scripts on their own listeners in one process", function()
    local cfg = os.tmpname() .. ".lua"
    local root = hs.run("pwd"):gsub("%s+$", "")
    local f = assert(io.open(cfg, "w"))
    f:write(([[
      return {
        log_level = "info",
        services = {
          { script = "%s/scripts/echo.lua", listen = { "tcp://127.0.0.1:0" } },
          { script = "%s/scripts/greeting.lua", listen = "tcp://127.0.0.1:0",
            framing = "line", options = { welcome = "hey" } },
        },
      }]]):format(root, root))
    f:close()
    local srv = hs.start { "--config", cfg }
    local e = srv:tcp(1, "echo")
    assert(e:send("abc")); assert.equals("abc", hs.recv_exact(e, 3))
    local g = srv:tcp(1, "greeting")
    assert.equals("hey", hs.recv_exact(g, 3))
    assert(g:send("Ann\n")); assert.equals("hello, Ann!", line(g))
    e:close(); g:close()
    assert.is_true(srv:stop())
    os.remove(cfg)
  end)
end)
