-- Outbound connections: hotsock.connect (tcp, names, unix), hotsock.resolve, receive on an
-- upstream with every way it can fail, conn:keepalive's pool, __gc of a dropped conn, and a
-- client that leaves while its handler waits on an upstream. The upstreams are this spec's own
-- sockets: the server is asynchronous, so the spec can play both sides in turn.
local kit = require "hotsock.testkit"
local socket = require "socket"
local unix = require "socket.unix"

local function upstream()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  assert(s:listen(64))
  s:settimeout(kit.timeout)
  local _, port = s:getsockname()
  return s, "tcp://127.0.0.1:" .. port, port
end

-- Whether the peer closed (luasocket's "*a" says "closed" when nothing came before).
local function at_eof(u)
  local rest, err, partial = u:receive("*a")
  return rest == "" or (err == "closed" and partial == ""), tostring(err)
end

local function accept(s)
  local c = assert(s:accept())
  c:settimeout(kit.timeout)
  return c
end

describe("outbound", function()
  local srv

  setup(function()
    -- Trusted: the fixture forces full collections (collectgarbage()), which the standard
    -- sandbox does not allow (docs/sandbox.md).
    srv = kit.start("tests/fixtures/outbound.lua",
      { args = { "--max-line", "100", "--sandbox", "trusted" } })
  end)
  teardown(function()
    assert.is_true(srv:stop())
  end)

  it("connects, sends, receives a line", function()
    local up, url = upstream()
    local c = srv:connect()
    c:send_line("get " .. url .. " hello")
    -- A client that half-closes still reads the answer: its end of stream does not end the
    -- wait on the upstream.
    c:shutdown()
    local u = accept(up)
    assert.equals("hello", u:receive("*l"))
    u:send("world\r\n")
    assert.equals("got world", c:line())
    -- The handler's <close> closed the upstream conn.
    assert.is_true(at_eof(u))
    u:close()
    c:close()
    up:close()
  end)

  it("a refused connect, a name that does not exist", function()
    local up, url = upstream()
    up:close()
    local c = srv:connect()
    c:send_line("connect " .. url)
    assert.equals("nil connection refused", c:line())
    c:send_line("connect tcp://no-such-host.invalid:80")
    assert.equals("nil no such host", c:line())
    c:send_line("connect unix:/nonexistent/hotsock.sock")
    assert.equals("nil not found", c:line())
    c:close()
  end)

  it("names: localhost without a nameserver, hotsock.resolve", function()
    local up, _, port = upstream()
    local c = srv:connect()
    c:send_line("connect tcp://localhost:" .. port)
    assert.equals("ok 127.0.0.1:" .. port, c:line())
    c:send_line("resolve localhost inet")
    assert.equals("127.0.0.1", c:line())
    c:send_line("resolve localhost")
    assert.equals("127.0.0.1 ::1", c:line())
    c:send_line("resolve 2001:db8::1")
    assert.equals("2001:db8::1", c:line())
    c:send_line("resolve nothing.invalid")
    assert.equals("nil no such host", c:line())
    c:close()
    up:close()
  end)

  it("a connect that never completes times out and says so", function()
    -- A listener whose accept queue is full drops further SYNs: the connect hangs.
    local s = assert(socket.tcp())
    assert(s:bind("127.0.0.1", 0))
    assert(s:listen(0))
    local _, port = s:getsockname()
    local fill = {}
    for i = 1, 4 do
      fill[i] = socket.tcp()
      fill[i]:settimeout(0)
      fill[i]:connect("127.0.0.1", port)
    end
    local c = srv:connect()
    c:send_line("connect tcp://127.0.0.1:" .. port .. " 0.2")
    assert.equals("nil timeout", c:line())
    c:close()
    for _, f in ipairs(fill) do f:close() end
    s:close()
  end)

  it("unix: upstreams", function()
    local dir = kit.tmpdir()
    local path = dir .. "/up.sock"
    local s = assert(unix())
    assert(s:bind(path))
    assert(s:listen(8))
    s:settimeout(kit.timeout)
    local c = srv:connect()
    c:send_line("get unix:" .. path .. " ping")
    local u = accept(s)
    assert.equals("ping", u:receive("*l"))
    u:send("pong\n")
    assert.equals("got pong", c:line())
    u:close()
    s:close()
    c:close()
  end)

  it("upstream faults: silence, a reset, a close halfway through a line or a frame, a long line",
    function()
      local up, url = upstream()
      local c = srv:connect()
      -- Never answers: the receive's own timeout names itself.
      c:send_line("get " .. url .. " hi *l 0.1")
      local u = accept(up)
      assert.equals("nil timeout ", c:line())
      u:close()
      -- Closes halfway through a line: the partial bytes come with "closed".
      c:send_line("get " .. url .. " hi")
      u = accept(up)
      u:receive("*l")
      u:send("half a li")
      u:close()
      assert.equals("nil closed half a li", c:line())
      -- Exactly N bytes, the peer closing before.
      c:send_line("get " .. url .. " hi 10")
      u = accept(up)
      u:receive("*l")
      u:send("abc")
      u:close()
      assert.equals("nil closed abc", c:line())
      -- Halfway through a length frame: 2 + 3 bytes of a 10-byte frame.
      c:send_line("framed " .. url .. " hi")
      u = accept(up)
      u:receive("*l")
      u:send(string.pack(">I2", 10) .. "abc")
      u:close()
      assert.equals("nil closed 5", c:line())
      -- A length frame over its framing's max: the framer's token.
      c:send_line("framed " .. url .. " hi length:u16be:max=4")
      u = accept(up)
      u:receive("*l")
      u:send(string.pack(">I2", 10) .. "abcdefghij")
      assert.truthy(c:line():match("^nil frame too large %d+$"))
      u:close()
      -- A line over --max-line (100).
      c:send_line("get " .. url .. " hi")
      u = accept(up)
      u:receive("*l")
      u:send(string.rep("x", 150))
      local l = c:line()
      assert.equals("nil line too long " .. string.rep("x", 150), l)
      u:close()
      -- A reset mid-reply.
      c:send_line("get " .. url .. " hi")
      u = accept(up)
      u:receive("*l")
      u:send("par")
      u:setoption("linger", { on = true, timeout = 0 })
      u:close()
      assert.truthy(c:line():match("^nil closed"))
      c:close()
      up:close()
    end)

  it("keepalive: the next connect to the URL takes the conn back; one the peer closed is dropped",
    function()
      -- Its own server, logging at debug: the log says when the kept conn was dropped.
      local dsrv = kit.start("tests/fixtures/outbound.lua", { args = { "--log-level", "debug" } })
      local up, url = upstream()
      local c = dsrv:connect()
      c:send_line("pooled " .. url .. " one")
      local u = accept(up)
      assert.equals("one", u:receive("*l"))
      u:send("1\n")
      local first = c:line()
      local id = first:match("^got 1 (%d+) true nil nil closed$")
      assert.truthy(id, first)
      -- The same conn again: the upstream accepts nothing new.
      c:send_line("pooled " .. url .. " two")
      assert.equals("two", u:receive("*l"))
      u:send("2\n")
      assert.equals("got 2 " .. id .. " true nil nil closed", c:line())
      -- The peer closes the kept conn: it leaves the pool, and the next connect is a new one.
      u:close()
      dsrv:wait_log("kept%-alive conn closed by the peer; dropping it")
      c:send_line("pooled " .. url .. " three")
      u = accept(up)
      assert.equals("three", u:receive("*l"))
      u:send("3\n")
      local third = c:line()
      assert.truthy(third:match("^got 3 %d+ true"), third)
      assert.are_not.equal(id, third:match("^got 3 (%d+)"))
      u:close()
      c:close()
      up:close()
      -- A kept conn does not hold a graceful stop back.
      assert.is_true(dsrv:stop(3))
    end)

  it("keepalive pools by URL: past pool_size the oldest kept conn of the URL goes", function()
    local up1, url1 = upstream()
    local up2, url2 = upstream()
    local c = srv:connect()
    c:send_line("keepmany " .. url1 .. " " .. url2)
    local l = c:line()
    local a1, a2, a3, b1, g1, g2, g3, g4 =
      l:match("^(%d+),(%d+),(%d+),(%d+) (%d+),(%d+),(%d+),(%d+)$")
    assert.truthy(a1, l)
    -- URL2's conn is kept apart from URL1's three, which keep their two newest, newest first;
    -- the third connect to URL1 is a new conn.
    assert.equals(b1, g1)
    assert.equals(a3, g2)
    assert.equals(a2, g3)
    assert.is_true(g4 ~= a1 and g4 ~= a2 and g4 ~= a3 and g4 ~= b1, l)
    c:close()
    up1:close()
    up2:close()
  end)

  it("a conn the script lets go of is closed by the collector", function()
    local up, url = upstream()
    local c = srv:connect()
    c:send_line("drop " .. url)
    local u = accept(up)
    assert.equals("dropped", c:line())
    assert.equals("dropped", u:receive("*l"))
    assert.is_true(at_eof(u))
    u:close()
    c:close()
    up:close()
  end)

  it("conn:flush waits for an upstream's output to drain to the low-water mark", function()
    local up, url = upstream()
    local c = srv:connect()
    c:send_line("flood " .. url .. " 16384 0.2")
    local u = accept(up)
    assert.equals("pending true", c:line())
    -- Nobody reads: the flush gives up after its timeout, naming it.
    assert.equals("nil timeout", c:line())
    -- The spec reads: the next flush returns once the output is down to the mark.
    assert.equals(16384 * 1024, #assert(u:receive(16384 * 1024)))
    assert.equals("true true", c:line())
    u:close()
    c:close()
    up:close()
  end)

  it("a client that leaves while its handler waits on an upstream: the wait ends, nothing leaks",
    function()
      local up, url = upstream()
      local c = srv:connect()
      local function fds()
        return tonumber((kit.run("ls /proc/" .. srv.pid .. "/fd | wc -l"):match("%d+")))
      end
      c:send_line("stats")
      local conns0, kib0 = c:line():match("^(%d+) (%d+)$")
      local fds0 = fds()
      -- Half the clients reset (RST): the handler's wait on the upstream ends at once with
      -- nil, "closed". Half close (FIN), which may be a half-close: the handler goes on, its
      -- upstream answers, its reply goes nowhere. Either way its <close> closes the upstream.
      for i = 1, 10000 do
        local cl = srv:connect()
        cl:send_line("get " .. url .. " wait")
        local u = accept(up)
        assert.equals("wait", u:receive("*l"))
        local reset = i % 2 == 0
        if reset then cl.sock:setoption("linger", { on = true, timeout = 0 }) end
        cl:close()
        if not reset then u:send("late\n") end
        assert.is_true(at_eof(u))
        u:close()
      end
      c:send_line("stats")
      local conns1, kib1 = c:line():match("^(%d+) (%d+)$")
      assert.equals(conns0, conns1)
      assert.equals(fds0, fds())
      assert.truthy(tonumber(kib1) < tonumber(kib0) + 256, kib0 .. " KiB then " .. kib1)
      c:close()
      up:close()
    end)
end)
