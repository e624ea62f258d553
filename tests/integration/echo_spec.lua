-- echo over real sockets: TCP v4/v6, Unix, UDP, half-close, many clients, slow readers.
local hs = require "hotsock.testkit" -- the handler test kit users get
local socket = require "socket"

describe("echo", function()
  local srv
  local sock_path = os.tmpname() .. ".sock"

  setup(function()
    -- Every client here comes from 127.0.0.1: lift the per-address limit (256 by default).
    srv = hs.start { "scripts/echo.lua",
      "--listen", "tcp://127.0.0.1:0", "--listen", "tcp://[::1]:0",
      "--listen", "udp://127.0.0.1:0", "--listen", "unix:" .. sock_path, "--max-per-peer", "0" }
  end)
  teardown(function()
    assert.is_true(srv:stop())
  end)

  it("announces every listener with its real address", function()
    assert.matches("^tcp://127%.0%.0%.1:%d+$", srv:url("tcp", 1))
    assert.matches("^tcp://%[::1%]:%d+$", srv:url("tcp", 2))
    assert.matches("^udp://127%.0%.0%.1:%d+$", srv:url("udp"))
    assert.equals("unix:" .. sock_path, srv:url("unix"))
    assert.is_not.equal(0, srv:port("tcp"))
  end)

  it("echoes a single client byte for byte", function()
    local c = srv:tcp()
    assert(c:send("hello, world\n"))
    assert.equals("hello, world\n", hs.recv_exact(c, 13))
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local bin = table.concat(all):rep(4)
    assert(c:send(bin))
    assert.equals(bin, hs.recv_exact(c, #bin))
    c:close()
  end)

  it("serves two non-blocking clients with two messages each, independently", function()
    local a, b = srv:tcp(), srv:tcp()
    a:settimeout(0); b:settimeout(0)
    assert(a:send("a1")); assert(b:send("b1")); assert(a:send("a2")); assert(b:send("b2"))
    local got = { [a] = "", [b] = "" }
    hs.wait_until(function()
      local r = socket.select({ a, b }, nil, 0.1)
      for _, c in ipairs(r) do
        local d, _, partial = c:receive(64)
        got[c] = got[c] .. (d or partial or "")
      end
      return #got[a] == 4 and #got[b] == 4
    end, 5, "both echoes")
    assert.equals("a1a2", got[a])
    assert.equals("b1b2", got[b])
    a:close(); b:close()
  end)

  it("echoes over IPv6", function()
    local c = srv:tcp(2)
    assert(c:send("over v6"))
    assert.equals("over v6", hs.recv_exact(c, 7))
    c:close()
  end)

  it("echoes over a Unix stream socket", function()
    local c = srv:unix()
    assert(c:send("over unix"))
    assert.equals("over unix", hs.recv_exact(c, 9))
    c:close()
  end)

  it("answers each UDP datagram with the same bytes, up to 65,507", function()
    local u = srv:udp()
    assert(u:send("ping"))
    assert.equals("ping", u:receive())
    local big = ("0123456789abcdef"):rep(4096):sub(1, 65507)
    assert(u:send(big))
    assert.equals(big, u:receive(65535))
    u:close()
  end)

  it("sends everything owed after a half-close, then closes", function()
    local c = srv:tcp()
    local payload = ("x"):rep(3 * 1024 * 1024)
    -- Send, then shut our write side: the server must still return all of it.
    c:settimeout(10)
    local sent = 0
    local got = {}
    c:settimeout(0)
    while sent < #payload do
      local n, _, partial = c:send(payload, sent + 1)
      sent = n or partial or sent
      local d, _, p = c:receive(65536)
      got[#got + 1] = d or p
      if not n then socket.select({ c }, { c }, 0.1) end
    end
    assert(c:shutdown("send"))
    c:settimeout(10)
    local rest, err = hs.recv_all(c)
    got[#got + 1] = rest
    assert.equals("closed", err)
    local all = table.concat(got)
    assert.equals(#payload, #all)
    assert.is_true(all == payload)
    c:close()
  end)

  it("keeps memory bounded for a client that sends 200 MiB and reads slowly", function()
    local c = srv:tcp()
    c:settimeout(0)
    local chunk = ("0123456789abcdef"):rep(4096) -- 64 KiB
    local total = 200 * 1024 * 1024
    local sent, received, pending_send = 0, 0, nil
    local _, hwm_before = srv:memory()
    local deadline = socket.gettime() + 120
    local reads = 0
    while received < total do
      assert(socket.gettime() < deadline, "slow reader test ran out of time")
      if sent < total then
        local n, err, partial = c:send(chunk, (pending_send or 0) + 1)
        local done = n or partial or 0
        if done == #chunk then
          sent, pending_send = sent + #chunk, nil
        else
          pending_send = done
        end
        assert(err == nil or err == "timeout", err)
      end
      reads = reads + 1
      -- Read only every fourth round: the client is slower than the server.
      if reads % 4 == 0 or sent >= total then
        local d, err, p = c:receive(16384)
        local got = d or p or ""
        assert(got:sub(1, 1) == "" or got:sub(1, 1):match("[0-9a-f]"))
        received = received + #got
        assert(err == nil or err == "timeout", err)
        if #got == 0 then socket.select({ c }, { c }, 0.05) end
      end
    end
    assert.equals(total, received)
    local rss, hwm = srv:memory()
    -- 200 MiB went through; the server may own a few MiB of buffers, never the backlog.
    assert.is_true(hwm - hwm_before < 32 * 1024, ("peak RSS grew by %d KiB"):format(hwm - hwm_before))
    assert.is_true(rss < 64 * 1024, ("RSS is %d KiB"):format(rss))
    c:close()
  end)

  it("echoes exactly for 1,000 concurrent clients sending 1 MiB each in random chunks", function()
    local out, rc = hs.run(("%s --target %s --mode stream --conns 1000 --bytes 1048576 --duration 120 2>&1")
      :format(hs.shquote(hs.loadgen), srv:url("tcp")))
    assert.equals(0, rc, out .. "\n--- server log (tail):\n" .. srv:log():sub(-3000))
    assert.matches("errors=0", out)
    assert.matches("mismatches=0", out)
  end)
end)
