-- `hotsock upgrade` (and SIGUSR2): the binary starts again with the same arguments and the
-- old process's listening sockets and control socket; the old one drains once the new one
-- is ready, and keeps serving when it is not. Under connect/echo/close load from 50 clients
-- no connection is refused or reset and no byte is lost.
local hs = require "hsserver"
local socket = require "socket"
local unix = require "socket.unix"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local alive = hs.pid_alive

local function upgrade(ctl)
  return hs.run(("%s upgrade --control %s 2>&1"):format(hs.shquote(hs.bin), hs.shquote(ctl)))
end

for _, workers in ipairs { 1, 2 } do
  describe(("upgrade with %d process(es) serving"):format(workers), function()
    it("20 upgrades in a row under 50 churning clients: nothing refused, reset or lost", function()
      local dir = hs.tmpdir()
      local ctl = dir .. "/ctl.sock"
      local srv = hs.start({ "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0", "--control", ctl,
        "--grace", "10", "--workers", tostring(workers) })
      local host, port = hs.split_url(srv:url("tcp"))
      local stop, out = dir .. "/stop", dir .. "/churn.out"
      os.execute(("lua5.4 %s %s %d 50 %s %s >%s.err 2>&1 &"):format(
        hs.shquote(here .. "/helpers/churn.lua"), host, port, hs.shquote(stop), hs.shquote(out),
        hs.shquote(out)))
      local function echoed()
        local n = 0
        for p in hs.read_file(out):gmatch("progress (%d+)") do n = tonumber(p) end
        return n
      end
      hs.wait_until(function() return echoed() > 200 end, 30, "the clients to get going")
      local pid = srv.pid
      local ready, drain = {}, {}
      for i = 1, 20 do
        local before = echoed()
        local text, rc = upgrade(ctl)
        assert.equals(0, rc, text)
        local old, new, ms = text:match("ok upgraded: pid (%d+) %-> (%d+) %(ready in ([%d.]+) ms%)")
        assert.equals(pid, tonumber(old), text)
        ready[#ready + 1] = tonumber(ms)
        -- The old process drains its connections and exits; the new one serves.
        local t0 = socket.gettime()
        hs.wait_until(function() return not alive(pid) end, 15, "the old process to exit")
        drain[#drain + 1] = (socket.gettime() - t0) * 1000
        pid = tonumber(new)
        assert.equals(pid, srv:serving_pid())
        hs.wait_until(function() return echoed() > before + 50 end, 30,
          "round " .. i .. ": clients served by the new process")
      end
      hs.write(stop, "")
      local result = hs.wait_until(function()
        return hs.read_file(out):match("done [^\n]*")
      end, 30, "the clients to finish")
      assert.matches("errors=0 ", result)
      assert.is_true(tonumber(result:match("echoed=(%d+)")) > 1000, result)
      table.sort(ready)
      table.sort(drain)
      print(("\nupgrade, %d process(es): ready in %.1f ms median (max %.1f); "
        .. "old process gone %.0f ms median (max %.0f) after; %s"):format(workers,
        ready[10], ready[20], drain[10], drain[20], result))
      assert.is_true(srv:stop()) -- the process the last upgrade started
      os.execute("rm -rf " .. hs.shquote(dir))
    end)
  end)
end

describe("upgrade", function()
  it("keeps UDP and Unix sockets (the old process leaves the socket file) and the control socket", function()
    local dir = hs.tmpdir()
    local ctl, path = dir .. "/ctl.sock", dir .. "/echo.sock"
    local gram = dir .. "/gram.sock"
    local srv = hs.start({ "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0", "--listen",
      "udp://127.0.0.1:0", "--listen", "unix:" .. path, "--listen", "unixgram:" .. gram,
      "--control", ctl })
    local text, rc = upgrade(ctl)
    assert.equals(0, rc, text)
    local new = tonumber(text:match("%-> (%d+)"))
    assert.equals(0, srv:wait_exit(15))
    -- The same sockets, now the new process's.
    local c = srv:connect("unix")
    c:send("via unix\n")
    assert.equals("via unix\n", c:receive(9))
    c:close()
    local u = srv:udp()
    u:send("datagram")
    assert.equals("datagram", u:receive())
    u:close()
    -- The unixgram: socket too: the old process left its file.
    local d = assert(unix.dgram())
    assert(d:bind(dir .. "/client.sock"))
    d:settimeout(hs.timeout)
    assert(d:sendto("unix datagram", gram))
    assert.equals("unix datagram", d:receive())
    d:close()
    local t = srv:connect()
    t:send("via tcp\n")
    assert.equals("via tcp\n", t:receive(8))
    t:close()
    assert.equals(new, srv:serving_pid())
    -- The new process owns the socket file now: its stop removes it.
    assert.is_true(srv:stop())
    assert.is_nil(io.open(path))
    assert.is_nil(io.open(gram))
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  it("SIGUSR2 upgrades as the command does", function()
    local dir = hs.tmpdir()
    local ctl = dir .. "/ctl.sock"
    local srv = hs.start({ "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0", "--control", ctl })
    srv:signal("USR2")
    assert.equals(0, srv:wait_exit(15))
    local new = srv:serving_pid()
    assert.is_not.equals(srv.pid, new)
    local t = srv:connect()
    t:send("after USR2\n")
    assert.equals("after USR2\n", t:receive(11))
    t:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  for _, workers in ipairs { 1, 2 } do
    it(("that fails leaves the old process serving and says why (%d process(es))"):format(workers),
      function()
        local dir = hs.tmpdir()
        local ctl, script = dir .. "/ctl.sock", dir .. "/echo.lua"
        local good = hs.read_file("scripts/echo.lua")
        hs.write(script, good)
        local srv = hs.start({ script, "--listen", "tcp://127.0.0.1:0", "--control", ctl,
          "--workers", tostring(workers) })
        -- A script that no longer loads: the new process says where.
        hs.write(script, good .. "\nthis is not lua\n")
        local text, rc = upgrade(ctl)
        assert.equals(1, rc)
        assert.matches("^hotsock upgrade: error upgrade failed: .*echo%.lua:%d+:", text)
        assert.is_true(srv:alive())
        assert.equals(srv.pid, srv:serving_pid())
        local t = srv:connect()
        t:send("still here\n")
        assert.equals("still here\n", t:receive(11))
        t:close()
        -- Fixed, the upgrade goes through.
        hs.write(script, good)
        text, rc = upgrade(ctl)
        assert.equals(0, rc, text)
        assert.equals(0, srv:wait_exit(15))
        assert.is_true(srv:stop())
        os.execute("rm -rf " .. hs.shquote(dir))
      end)
  end

  it("to a binary that cannot run leaves the old process serving and says why", function()
    local dir = hs.tmpdir()
    local ctl = dir .. "/ctl.sock"
    local srv = hs.start({ "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0", "--control", ctl },
      { prefix = "HOTSOCK_BINARY=" .. hs.shquote(dir .. "/no-such-hotsock") })
    local text, rc = upgrade(ctl)
    assert.equals(1, rc)
    assert.matches("cannot run " .. dir:gsub("%p", "%%%0") .. "/no%-such%-hotsock: No such file",
      text)
    assert.is_true(srv:alive())
    local t = srv:connect()
    t:send("still here\n")
    assert.equals("still here\n", t:receive(11))
    t:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)
end)
