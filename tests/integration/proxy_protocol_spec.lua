-- PROXY protocol listeners (?proxy) of the real binary: raw clients that write v1 and v2
-- headers byte by byte (good, malformed, absent, slow, split), the per-address limit and
-- on_accept keyed on the header's client, HTTP's req.peer/req.ip/req.proxy and the access
-- log, a Unix listener, TLS after the header (Python's ssl), and real HAProxy sending
-- send-proxy and send-proxy-v2 with health checks.
local hs = require "hotsock.testkit"
local socket = require "socket"

local sh = hs.shquote
local dir = hs.tmpdir()

local function script(name, text)
  local path = dir .. "/" .. name .. ".lua"
  hs.write(path, text)
  return path
end

-- "who" answers one line describing what the handler sees; anything else is echoed.
local WHO = script("who", [[
local function describe(conn)
  local p = conn:proxy()
  if not p then return "peer=" .. conn:peer() .. " proxy=nil" end
  local tlvs = {}
  for _, t in ipairs(p.tlvs) do tlvs[#tlvs + 1] = ("%d:%s"):format(t.type, t.value) end
  return ("peer=%s cmd=%s v=%d src=%s dst=%s uid=%s authority=%s ssl=%s tlvs=%s"):format(
    conn:peer(), p.command, p.version, tostring(p.source), tostring(p.destination),
    tostring(p.unique_id), tostring(p.authority), p.ssl and tostring(p.ssl.version) or "nil",
    table.concat(tlvs, ","))
end
return {
  framing = "line",
  on_accept = function(peer)
    hotsock.log("info", "on_accept " .. peer)
    return not peer:match("^6%.6%.6%.6:")
  end,
  on_connect = function(conn)
    local p = conn:proxy()
    if p and p.command == "local" then hotsock.log("info", "local header from " .. conn:peer()) end
  end,
  on_message = function(conn, line)
    if line == "who" then conn:send(describe(conn) .. "\n") else conn:send(line .. "\n") end
  end,
}
]])

local V2_SIG = "\r\n\r\n\0\r\nQUIT\n"

-- A v2 header: cmd 0x21 (PROXY) or 0x20 (LOCAL); family 0x11 (TCP4) with addresses.
local function v2(src, sport, dst, dport, tlvs, cmd)
  local function ip4(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
  end
  local body = ""
  local fam = 0x00
  if src then
    body = ip4(src) .. ip4(dst) .. string.pack(">I2I2", sport, dport)
    fam = 0x11
  end
  for _, t in ipairs(tlvs or {}) do
    body = body .. string.pack(">B s2", t[1], t[2])
  end
  return V2_SIG .. string.char(cmd or 0x21, fam) .. string.pack(">I2", #body) .. body
end

local function raw(srv, scheme)
  local c = srv:connect(scheme)
  c:settimeout(5)
  return c
end

local function stats_listener(srv)
  return srv:stats("listener")[1]
end

describe("?proxy listeners (raw clients)", function()
  local srv
  before_each(function()
    srv = hs.start(WHO, { listen = "tcp://127.0.0.1:0?proxy",
                          args = { "--max-per-peer", "2", "--proxy-timeout", "0.5" } })
  end)
  after_each(function() srv:stop() end)

  it("v1 TCP4 and TCP6: the handler, on_accept and conn:proxy() see the header's client", function()
    local c = raw(srv)
    c:send("PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\nwho\n")
    assert.are.equal("peer=203.0.113.7:40001 cmd=proxy v=1 src=203.0.113.7:40001 " ..
      "dst=192.0.2.1:443 uid=nil authority=nil ssl=nil tlvs=", c:line())
    c:close()
    c = raw(srv)
    c:send("PROXY TCP6 2001:db8::1 2001:db8::2 5 6\r\n", "who\n")
    assert.are.equal("peer=[2001:db8::1]:5 cmd=proxy v=1 src=[2001:db8::1]:5 " ..
      "dst=[2001:db8::2]:6 uid=nil authority=nil ssl=nil tlvs=", c:line())
    c:close()
    assert.truthy(srv:log_has("on_accept 203.0.113.7:40001"))
    assert.truthy(srv:log_has("on_accept [2001:db8::1]:5"))
  end)

  it("v2 with TLVs (authority, unique id, SSL) and v2 LOCAL (the socket's own address)", function()
    local ssl = string.char(0x01) .. string.pack(">I4", 0) .. string.pack(">B s2", 0x21, "TLSv1.3")
    local c = raw(srv)
    c:send(v2("198.51.100.9", 1234, "192.0.2.1", 80,
      { { 0x02, "example.test" }, { 0x05, "abc-123" }, { 0x20, ssl } }), "who\n")
    assert.are.equal("peer=198.51.100.9:1234 cmd=proxy v=2 src=198.51.100.9:1234 " ..
      "dst=192.0.2.1:80 uid=abc-123 authority=example.test ssl=TLSv1.3 " ..
      "tlvs=2:example.test,5:abc-123,32:" .. ssl, c:line())
    c:close()
    c = raw(srv)
    c:send(v2(nil, nil, nil, nil, nil, 0x20), "who\n")
    local line = c:line()
    assert.matches("^peer=127%.0%.0%.1:%d+ cmd=local v=2 src=nil dst=nil ", line)
    c:close()
  end)

  it("a LOCAL header whose balancer resets at once still names the balancer", function()
    -- HAProxy's health check writes its LOCAL header and resets the connection. The server
    -- is stopped so that the reset is in before it reads the header: the address must come
    -- from accept, since getpeername fails on a reset socket (it logged "?").
    srv:signal("STOP")
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv:port("tcp")))
    local _, cport = c:getsockname()
    c:send(v2(nil, nil, nil, nil, nil, 0x20))
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()
    srv:signal("CONT")
    srv:wait_log("local header from 127%.0%.0%.1:" .. cport .. "\n")
    assert.falsy(srv:log_has("local header from ?"))
  end)

  it("takes a header sent one byte at a time, and data in the header's segment", function()
    local c = raw(srv)
    local hdr = "PROXY TCP4 10.1.2.3 10.0.0.1 7 8\r\n"
    for i = 1, #hdr do
      c:send(hdr:sub(i, i))
      socket.sleep(0.005)
    end
    c:send("who\n")
    assert.matches("^peer=10%.1%.2%.3:7 ", c:line())
    c:close()
    c = raw(srv)
    c:send(v2("10.9.9.9", 1, "10.0.0.1", 2) .. "one\ntwo\nwho\n")
    assert.are.equal("one", c:line())
    assert.are.equal("two", c:line())
    assert.matches("^peer=10%.9%.9%.9:1 ", c:line())
    c:close()
  end)

  it("closes without a byte when the header is absent, malformed or late; counts each", function()
    local cases = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",              -- no header at all
      "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",         -- port out of range
      "PROXY TCP4 1.2.3.4\r\n",                         -- too few fields
      "PROXY " .. string.rep("A", 120) .. "\r\n",       -- over the 107-byte v1 bound
      V2_SIG .. "\x31\x11\0\12" .. string.rep("\0", 12), -- version 3
      V2_SIG .. "\x21\x11\x08\x01",                      -- length over 2048
    }
    for _, bytes in ipairs(cases) do
      local c = raw(srv)
      c:send(bytes)
      assert.is_true(c:closed(), ("%q"):format(bytes))
      c:close()
    end
    -- Late: half a header, then silence past --proxy-timeout (0.5 s).
    local c = raw(srv)
    c:send("PROXY TCP4 1.2.3.4 ")
    local t0 = socket.gettime()
    assert.is_true(c:closed())
    local waited = socket.gettime() - t0
    assert.is_true(waited >= 0.4 and waited < 4, "closed after " .. waited .. " s")
    c:close()
    -- Silent and gone: a port scanner.
    c = raw(srv)
    c:close()
    hs.wait_until(function() return stats_listener(srv).proxy_failures == "8" end, 5,
      "8 failures counted")
    local l = stats_listener(srv)
    assert.are.equal("0", l.accepted)
    assert.are.equal("0", l.open)
    -- At --log-level info, a scanner writes nothing.
    assert.is_false(srv:log_has("PROXY header"))
    local prom = srv:command("stats --prometheus")
    assert.matches('hotsock_listener_proxy_header_failures_total{listener="tcp://127.0.0.1:%d+",' ..
      'script="who",worker="0"} 8', prom)
  end)

  it("applies the per-address limit to the header's client, not to the balancer", function()
    local held = {}
    for i = 1, 2 do
      held[i] = raw(srv)
      held[i]:send("PROXY TCP4 192.0.2.50 10.0.0.1 " .. (1000 + i) .. " 80\r\nwho\n")
      assert.matches("^peer=192%.0%.2%.50:", held[i]:line())
    end
    -- A third from the same client: refused once its header is read.
    local c = raw(srv)
    c:send("PROXY TCP4 192.0.2.50 10.0.0.1 1003 80\r\nwho\n")
    assert.is_true(c:closed())
    c:close()
    -- Others, all through the same socket peer (127.0.0.1), are not affected.
    for i = 1, 3 do
      local o = raw(srv)
      o:send("PROXY TCP4 192.0.2." .. (60 + i) .. " 10.0.0.1 1 80\r\nwho\n")
      assert.matches("^peer=192%.0%.2%." .. (60 + i) .. ":1 ", o:line())
      o:close()
    end
    for _, h in ipairs(held) do h:close() end
    local l = stats_listener(srv)
    assert.are.equal("1", l.limited)
    assert.are.equal("0", l.proxy_failures)
  end)

  it("asks on_accept with the header's client after the header", function()
    local c = raw(srv)
    c:send("PROXY TCP4 6.6.6.6 10.0.0.1 1 80\r\nwho\n")
    assert.is_true(c:closed())
    c:close()
    assert.truthy(srv:log_has("on_accept 6.6.6.6:1"))
    assert.truthy(srv:log_has("refused 6.6.6.6:1 (on_accept)"))
    assert.are.equal("1", stats_listener(srv).refused)
  end)
end)

describe("?proxy on HTTP, Unix and TLS listeners", function()
  it("HTTP: req.peer, req.ip, req.proxy and the access log carry the client", function()
    local web = script("web", [[
return {
  protocol = "http",
  on_request = function(req, res)
    local p = req.proxy
    res:send(("%s %s %s %s"):format(req.peer, req.ip, p and p.command, p and p.source))
  end,
}
]])
    local srv = hs.start(web, { listen = "tcp://127.0.0.1:0?proxy" })
    local c = raw(srv)
    c:send("PROXY TCP4 203.0.113.40 10.0.0.1 5555 80\r\nGET /x HTTP/1.1\r\nHost: a\r\n",
      "Connection: close\r\n\r\n")
    local resp = c:all()
    assert.matches("\r\n\r\n203%.0%.113%.40:5555 203%.0%.113%.40 proxy 203%.0%.113%.40:5555$", resp)
    c:close()
    srv:wait_log('203%.0%.113%.40:5555 "GET /x HTTP/1%.1" 200')
    srv:stop()
  end)

  it("a config file's listen table takes proxy = true", function()
    local cfg = dir .. "/hotsock.lua"
    hs.write(cfg, ([[
return { services = { { script = %q, listen = { { url = "tcp://127.0.0.1:0", proxy = true } } } } }
]]):format(WHO))
    local srv = hs.start({ "--config", cfg, "--control", dir .. "/cfg.ctl" })
    local c = raw(srv)
    c:send("PROXY TCP4 192.0.2.88 10.0.0.1 88 80\r\nwho\n")
    assert.matches("^peer=192%.0%.2%.88:88 cmd=proxy v=1 ", c:line())
    c:close()
    srv:stop()
  end)

  it("unix:/path?proxy", function()
    local path = dir .. "/p.sock"
    local srv = hs.start(WHO, { listen = "unix:" .. path .. "?proxy" })
    local c = raw(srv, "unix")
    c:send("PROXY TCP4 192.0.2.77 10.0.0.1 77 80\r\nwho\n")
    assert.matches("^peer=192%.0%.2%.77:77 cmd=proxy v=1 ", c:line())
    c:close()
    -- LOCAL on a Unix socket: the peer stays the socket's.
    c = raw(srv, "unix")
    c:send(v2(nil, nil, nil, nil, nil, 0x20), "who\n")
    assert.matches("^peer=unix cmd=local v=2 ", c:line())
    c:close()
    srv:stop()
  end)

  it("tls://...?proxy: the header comes before the handshake, then TLS as usual", function()
    local cert, key = dir .. "/c.pem", dir .. "/c.key"
    local _, rc = hs.run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
      "-nodes -keyout %s -out %s -days 2 -subj /CN=localhost " ..
      "-addext subjectAltName=IP:127.0.0.1 2>&1"):format(sh(key), sh(cert)))
    assert.are.equal(0, rc)
    local srv = hs.start(WHO, { listen = ("tls://127.0.0.1:0?proxy&cert=%s&key=%s"):format(cert, key) })
    local port = srv:port("tls")
    local py = dir .. "/tlsproxy.py"
    hs.write(py, [[
import socket, ssl, sys
port, ca, header = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode().replace(b"\\r\\n", b"\r\n")
raw = socket.create_connection(("127.0.0.1", port), timeout=5)
raw.sendall(header)
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
s.sendall(b"who\n")
print(s.makefile().readline().strip())
]])
    local out, prc = hs.run(("timeout 20 python3 %s %d %s %s 2>&1"):format(
      sh(py), port, sh(cert), sh("PROXY TCP4 192.0.2.99 10.0.0.1 9 443\\r\\n")))
    assert.are.equal(0, prc, out)
    assert.matches("^peer=192%.0%.2%.99:9 cmd=proxy v=1 src=192%.0%.2%.99:9", out)
    srv:stop()
  end)
end)

-- A free loopback port: bound by the kernel, then released for HAProxy to take.
local free_port = hs.free_port

describe("behind real HAProxy", function()
  local srv, hap, hdir
  local f1, f2

  setup(function()
    srv = hs.start(WHO, { listen = "tcp://127.0.0.1:0?proxy" })
    hdir = hs.tmpdir()
    f1, f2 = free_port(), free_port()
    local port = srv:port("tcp")
    hs.write(hdir .. "/haproxy.cfg", ([[
global
  stats socket %s/admin.sock mode 600 level admin
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend v1
  bind 127.0.0.1:%d
  default_backend v1
backend v1
  server s1 127.0.0.1:%d send-proxy check inter 200ms
frontend v2
  bind 127.0.0.1:%d
  unique-id-format %%{+X}o%%ci:%%cp
  default_backend v2
backend v2
  server s2 127.0.0.1:%d send-proxy-v2 proxy-v2-options unique-id check inter 200ms
]]):format(hdir, f1, port, f2, port))
    os.execute(("sh -c %s"):format(sh(("haproxy -f %s/haproxy.cfg -db >%s/haproxy.log 2>&1 & " ..
      "echo $! >%s/haproxy.pid"):format(hdir, hdir, hdir))))
    hap = tonumber(hs.read_file(hdir .. "/haproxy.pid"))
    -- Ready when both frontends accept.
    hs.wait_until(function()
      for _, p in ipairs({ f1, f2 }) do
        local c = socket.tcp()
        c:settimeout(0.2)
        local ok = c:connect("127.0.0.1", p)
        c:close()
        if not ok then return false end
      end
      return true
    end, 10, "haproxy to listen")
  end)
  teardown(function()
    if hap then os.execute("kill " .. hap .. " 2>/dev/null") end
    srv:stop()
    os.execute("rm -rf " .. sh(hdir))
  end)

  -- A client on 127.0.0.2, so the client's address differs from HAProxy's (127.0.0.1).
  local function via(port)
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:bind("127.0.0.2", 0))
    assert(c:connect("127.0.0.1", port))
    local _, cport = c:getsockname()
    return c, cport
  end

  it("send-proxy (v1): the handler sees the client's address, not HAProxy's", function()
    local c, cport = via(f1)
    assert(c:send("who\n"))
    assert.are.equal(("peer=127.0.0.2:%s cmd=proxy v=1 src=127.0.0.2:%s dst=127.0.0.1:%d uid=nil " ..
      "authority=nil ssl=nil tlvs="):format(cport, cport, f1), c:receive("*l"))
    c:close()
    assert.truthy(srv:log_has("on_accept 127.0.0.2:" .. cport))
  end)

  it("send-proxy-v2 with the unique-id TLV", function()
    local c, cport = via(f2)
    assert(c:send("who\n"))
    local line = c:receive("*l")
    assert.matches(("^peer=127%%.0%%.0%%.2:%s cmd=proxy v=2 src=127%%.0%%.0%%.2:%s "):format(cport,
      cport), line)
    assert.matches((" uid=7F000002:%04X "):format(tonumber(cport)), line)
    c:close()
  end)

  it("health checks get through (v1 with HAProxy's own addresses, v2 as LOCAL)", function()
    -- On a timeout, say whether HAProxy is still there and what it logged.
    local function waiting_for(what)
      return function() return what .. ("\n--- haproxy (pid %d, %s):\n%s\n--- hotsock:\n%s"):format(hap,
        os.execute("kill -0 " .. hap .. " 2>/dev/null") and "running" or "gone",
        hs.read_file(hdir .. "/haproxy.log"), srv:log()) end
    end
    hs.wait_until(function() return srv:log():match("local header from 127%.0%.0%.1:%d+") end,
      10, waiting_for("a LOCAL health check"))
    -- Several rounds of both checks and no header failure among them.
    hs.wait_until(function()
      return #srv:log_lines("on_accept 127%.0%.0%.1:") >= 6
    end, 10, waiting_for("health checks"))
    assert.are.equal("0", stats_listener(srv).proxy_failures)
    local h = hs.read_file(hdir .. "/haproxy.log")
    assert.falsy(h:find("is DOWN", 1, true), h)
  end)
end)

describe("hotsock.connect(url, {proxy = conn})", function()
  it("passes the client on in a v2 header: direct clients and clients behind a PROXY header", function()
    local back = hs.start(WHO, { listen = "tcp://127.0.0.1:0?proxy" })
    local front = script("front", [[
local hotsock = require "hotsock"
local opts = ...
return {
  framing = "line",
  on_message = function(conn, line)
    local up, err = hotsock.connect(opts.upstream, { proxy = conn, framing = "line" })
    if not up then return conn:send("error " .. err .. "\n") end
    up:send(line .. "\n")
    conn:send((up:receive() or "nothing") .. "\n")
    up:close()
  end,
}
]])
    local upstream = back:url("tcp")
    local fr = hs.start(front, { listen = { "tcp://127.0.0.1:0", "tcp://127.0.0.1:0?proxy" },
                                 set = { upstream = upstream } })
    -- A direct client on 127.0.0.2: the header names it and the front's own address.
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:bind("127.0.0.2", 0))
    assert(c:connect("127.0.0.1", fr:port("tcp", 1)))
    local _, cport = c:getsockname()
    assert(c:send("who\n"))
    assert.are.equal(("peer=127.0.0.2:%s cmd=proxy v=2 src=127.0.0.2:%s dst=127.0.0.1:%d uid=nil " ..
      "authority=nil ssl=nil tlvs="):format(cport, cport, fr:port("tcp", 1)), c:receive("*l"))
    c:close()
    -- A client that came through a balancer: its header's addresses are passed on as they are.
    local p = fr:connect("tcp", 2)
    p:send("PROXY TCP6 2001:db8::5 2001:db8::80 4242 443\r\nwho\n")
    assert.are.equal("peer=[2001:db8::5]:4242 cmd=proxy v=2 src=[2001:db8::5]:4242 " ..
      "dst=[2001:db8::80]:443 uid=nil authority=nil ssl=nil tlvs=", p:line())
    p:close()
    fr:stop()
    back:stop()
  end)
end)
