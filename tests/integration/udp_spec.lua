-- Datagrams both ways: hotsock.udp (udp:// and unixgram:) from handlers, and unixgram:
-- listeners with their socket file handled like unix: stream listeners'.
local kit = require "hotsock.testkit"
local socket = require "socket"
local unix = require "socket.unix"

-- A UDP peer of the spec's own: answers each datagram with "re:" and the datagram when told.
local function udp_peer()
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  u:settimeout(kit.timeout)
  local _, port = u:getsockname()
  return u, port
end

describe("udp", function()
  local srv, dir, gram

  setup(function()
    dir = kit.tmpdir()
    gram = dir .. "/gram.sock"
    -- Trusted: the leak check's "stats" command runs a full collectgarbage().
    srv = kit.start("tests/fixtures/udp_out.lua",
      { args = { "--listen", "tcp://127.0.0.1:0", "--listen", "unixgram:" .. gram,
                 "--sandbox", "trusted" } })
  end)
  teardown(function()
    assert.is_true(srv:stop())
    os.remove(dir)
  end)

  it("hotsock.udp to a udp:// peer: send, then receive the answer", function()
    local u, port = udp_peer()
    local c = srv:connect()
    c:send_line("ask udp://127.0.0.1:" .. port .. " ping 5")
    local data, ip, from = u:receivefrom()
    assert.equals("ping", data)
    assert.equals("127.0.0.1", ip)
    assert(u:sendto("re:" .. data, ip, from))
    assert.equals("got re:ping", c:line())
    -- A name goes through the resolver (localhost needs no nameserver).
    c:send_line("ask udp://localhost:" .. port .. " named 5")
    data, ip, from = u:receivefrom()
    assert.equals("named", data)
    assert(u:sendto("re:named", ip, from))
    assert.equals("got re:named", c:line())
    c:close()
    u:close()
  end)

  it("a receive times out (argument or settimeout), a closed port refuses", function()
    local u, port = udp_peer()
    local c = srv:connect()
    local t0 = socket.gettime()
    c:send_line("ask udp://127.0.0.1:" .. port .. " silent 0.1")
    assert.equals("nil timeout", c:line())
    assert.is_true(socket.gettime() - t0 < 3)
    assert.equals("silent", u:receive())
    c:send_line("settimeout udp://127.0.0.1:" .. port)
    assert.equals("nil timeout", c:line())
    u:close()
    -- Nobody at the port now: the ICMP error reaches the waiting receive.
    c:send_line("ask udp://127.0.0.1:" .. port .. " anyone 5")
    assert.equals("nil connection refused", c:line())
    c:send_line("ask udp://no-such-host.invalid:9 x 1")
    assert.equals("nil no such host", c:line())
    c:close()
  end)

  it("close wakes a receive waiting in another coroutine; a closed socket says closed",
    function()
      local u, port = udp_peer()
      local c = srv:connect()
      c:send_line("closewait udp://127.0.0.1:" .. port)
      assert.equals("true nil closed nil (closed)", c:line())
      c:close()
      u:close()
    end)

  it("a unixgram: listener answers the client's bound path with send_to", function()
    assert.equals("unixgram:" .. gram, srv:url("unixgram"))
    local d = assert(unix.dgram())
    local mine = dir .. "/client.sock"
    assert(d:bind(mine))
    d:settimeout(kit.timeout)
    assert(d:sendto("hello", gram))
    assert.equals("echo:hello@" .. mine, d:receive())
    -- A failing handler's log line names the call: the socket and the peer.
    assert(d:sendto("fail", gram))
    srv:wait_log("handler error in on_datagram %(unixgram:" .. gram:gsub("%p", "%%%0") .. " from "
      .. mine:gsub("%p", "%%%0") .. "%)")
    d:close()
    os.remove(mine)
    -- An unbound client has no address to answer: the handler hears why.
    d = assert(unix.dgram())
    assert(d:sendto("anon", gram))
    srv:wait_log("send_to unix: no peer address")
    d:close()
  end)

  it("hotsock.udp to a unixgram: path autobinds an abstract name the server answers",
    function()
      local c = srv:connect()
      c:send_line("ask unixgram:" .. gram .. " hi 5")
      assert.matches("^got echo:hi@@%x%x%x%x%x$", c:line())
      c:send_line("ask unixgram:" .. dir .. "/nobody.sock x 1")
      assert.equals("nil not found", c:line())
      c:close()
    end)

  it("a client leaving while its handler waits in receive: no leak over 2,000 cycles",
    function()
      local u, port = udp_peer()
      local url = "udp://127.0.0.1:" .. port
      local c = srv:connect()
      c:send_line("stats")
      local before = tonumber(c:line())
      local fds = srv:fd_count()
      for _ = 1, 2000 do
        local w = srv:connect()
        w:send_line("wait " .. url)
        assert.equals("waiting", w:line())
        -- A reset (not a FIN, which may be a half-close) ends the handler's wait at once.
        w.sock:setoption("linger", { on = true, timeout = 0 })
        w:close()
      end
      -- Every waiting receive was given up; its socket goes with the box's collection.
      c:send_line("stats")
      local after = tonumber(c:line())
      assert.equals(fds, srv:fd_count())
      assert.is_true(after - before < 200, ("Lua KiB %d -> %d"):format(before, after))
      c:close()
      u:close()
    end)
end)

describe("unixgram: socket files", function()
  it("replaces a stale socket file, refuses a regular file, removes its own at exit",
    function()
      local dir = kit.tmpdir()
      local path = dir .. "/stale.sock"
      -- A socket file whose owner is gone.
      local d = assert(unix.dgram())
      assert(d:bind(path))
      d:close()
      local srv = kit.start("tests/fixtures/udp_out.lua",
        { args = { "--listen", "tcp://127.0.0.1:0", "--listen", "unixgram:" .. path } })
      local c = assert(unix.dgram())
      local mine = dir .. "/c.sock"
      assert(c:bind(mine))
      c:settimeout(kit.timeout)
      assert(c:sendto("again", path))
      assert.equals("echo:again@" .. mine, c:receive())
      c:close()
      os.remove(mine)
      assert.is_true(srv:stop())
      assert.is_nil(io.open(path), "the server removed its socket file")
      -- A regular file is not ours to replace.
      kit.write(path, "keep me")
      local out, code = kit.run(kit.shquote(kit.bin) ..
        " serve tests/fixtures/udp_out.lua --listen unixgram:" .. path .. " --control none 2>&1")
      assert.is_not.equal(0, code)
      assert.matches("cannot listen on unixgram:" .. path:gsub("%p", "%%%0"), out)
      local f = assert(io.open(path))
      assert.equals("keep me", f:read("a"))
      f:close()
      os.remove(path)
      os.remove(dir)
    end)
end)
