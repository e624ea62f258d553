-- conn:shutdown, the half-close: on an inbound conn the client gets the bytes sent before it,
-- then its end of stream, and may still send (the handler receives it); a send after it
-- fails with "closed"; on an outbound conn the upstream sees the end of stream and its answer
-- is still received; on a closed conn it returns nil, "closed"; over TLS the client gets a
-- close_notify after the bytes and may still send. (The proxies' use of it is in proxy_spec.)
local kit = require "hotsock.testkit"
local socket = require "socket"

describe("conn:shutdown", function()
  local dir = kit.tmpdir()
  local script = dir .. "/shut.lua"
  kit.write(script, [[
local hotsock = require "hotsock"
local opts = ...
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  return table.concat(t, " ", 1, t.n)
end
return {
  framing = "line",
  handle = function(conn)
    local what = conn:receive("*l")
    if what == "inbound" then
      conn:send(string.rep("b", 300000), "\n") -- more than a socket takes at once
      local ok = conn:shutdown()
      hotsock.log("warn", "shutdown: " .. show(ok) .. "; again: " .. show(conn:shutdown()) ..
        "; send after: " .. show(conn:send("x")))
      hotsock.log("warn", "received after: " .. show(conn:receive("*l")))
      hotsock.log("warn", "then: " .. show(conn:receive("*l")))
    elseif what == "outbound" then
      local up = assert(hotsock.connect(opts.upstream))
      up:send("request")
      local ok = up:shutdown()
      local s1, s2 = up:send("late")
      conn:send(show("shutdown", ok, "send", s1, s2, "answer", up:receive("*a")), "\n")
      up:close()
    elseif what == "closed" then
      conn:close()
      hotsock.log("warn", "closed: " .. show(conn:shutdown()))
    end
  end,
}
]])

  local p, up, url
  setup(function()
    up = assert(socket.tcp())
    assert(up:bind("127.0.0.1", 0))
    assert(up:listen(4))
    up:settimeout(kit.timeout)
    local _, port = up:getsockname()
    url = "tcp://127.0.0.1:" .. port
    p = kit.start(script, { set = { upstream = url } })
  end)
  teardown(function()
    up:close()
    assert.is_true(p:stop())
  end)

  it("inbound: the client gets what was sent, then the end of stream, and may still send",
    function()
      local c = p:connect("tcp")
      c:send_line("inbound")
      local data, err = c:all()
      assert.equals(string.rep("b", 300000) .. "\n", data)
      assert.equals("closed", err)
      p:wait_log("shutdown: true; again: true; send after: nil closed")
      c:send_line("after-the-shutdown")
      p:wait_log("received after: after%-the%-shutdown")
      c:shutdown()
      p:wait_log("then: nil closed")
      c:close()
    end)

  it("outbound: the upstream sees the end of stream and its answer is received", function()
    local c = p:connect("tcp")
    c:send_line("outbound")
    local u = assert(up:accept())
    u:settimeout(kit.timeout)
    -- "*a" returns only at the end of stream (a timeout gives nil).
    assert.equals("request", u:receive("*a"))
    assert(u:send("the answer"))
    u:close()
    assert.equals("shutdown true send nil closed answer the answer", c:line())
    c:close()
  end)

  it("a closed conn: nil, closed", function()
    local c = p:connect("tcp")
    c:send_line("closed")
    p:wait_log("closed: nil closed")
    c:close()
  end)

  it("over TLS: the bytes, then a close_notify; the client may still send", function()
    local out, rc = kit.run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
      "-nodes -keyout %s/k.pem -out %s/c.pem -days 2 -subj /CN=localhost " ..
      "-addext subjectAltName=IP:127.0.0.1 2>&1"):format(dir, dir))
    assert(rc == 0, out)
    local t = kit.start(script, {
      listen = ("tls://127.0.0.1:0?cert=%s/c.pem&key=%s/k.pem"):format(dir, dir) })
    kit.write(dir .. "/client.py", [[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1", suppress_ragged_eofs=False)
s.settimeout(20)
s.sendall(b"inbound\n")
got = bytearray()
while True:
    b = s.recv(65536)  # b"" only at a close_notify (a bare FIN raises)
    if not b:
        break
    got.extend(b)
print(len(got), got == b"b" * 300000 + b"\n")
s.sendall(b"after-the-shutdown\n")
sys.stdout.flush()
s.unwrap()
]])
    out, rc = kit.run(("timeout 60 python3 %s/client.py %d %s/c.pem 2>&1")
      :format(dir, t:port("tls"), dir))
    assert(rc == 0, out)
    assert.equals("300001 True\n", out)
    t:wait_log("shutdown: true; again: true; send after: nil closed")
    t:wait_log("received after: after%-the%-shutdown")
    t:wait_log("then: nil closed")
    assert.is_true(t:stop())
  end)
end)
