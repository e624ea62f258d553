-- lua/hotsock/http_client.lua on core/http_response.c, through examples/http_proxy.lua: a
-- front hotsock whose /proxy/... route fetches from a second hotsock serving scripts/http.lua
-- (byte-exact answers, pooled connections), and from a raw upstream
-- (tests/fixtures/http_upstream_raw.lua) for chunked, close-delimited and interim answers and
-- for the faults: refused, no answer, malformed, closed mid-body -> 502 with the reason logged.
local kit = require "hotsock.testkit"
local socket = require "socket"

local LUA_PATH = "LUA_PATH=" .. kit.shquote("lua/?.lua;;")

local free_port = kit.free_port

-- One request over a fresh connection; returns status, headers (lowercase), body.
local function fetch(srv, method, target, body)
  local c = srv:tcp()
  c:send(("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n%s"):format(method, target,
    body and "Content-Length: " .. #body .. "\r\n" or "", body or ""))
  local all = kit.recv_all(c)
  c:close()
  local head, rest = all:match("^(.-\r\n)\r\n(.*)$")
  assert(head, "no response head in: " .. all)
  local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\n([^:\r\n]+): ([^\r\n]*)") do headers[name:lower()] = value end
  return status, headers, rest
end

local function front(upstream, timeout, ca)
  return kit.start("examples/http_proxy.lua", {
    set = { upstream = upstream, timeout = timeout or 5, ca = ca }, prefix = LUA_PATH })
end

describe("examples/http_proxy.lua in front of scripts/http.lua", function()
  local up, fr

  setup(function()
    up = kit.start("scripts/http.lua")
    fr = front("http://127.0.0.1:" .. up:port())
  end)
  teardown(function()
    if fr then assert.is_true(fr:stop()) end
    if up then assert.is_true(up:stop()) end
  end)

  it("GET /proxy/hello answers what the upstream answers, byte for byte", function()
    local s1, h1, b1 = fetch(up, "GET", "/hello")
    local s2, h2, b2 = fetch(fr, "GET", "/proxy/hello")
    assert.equals(200, s1)
    assert.equals(s1, s2)
    assert.equals("hello from hotsock\n", b2)
    assert.equals(b1, b2)
    assert.equals(h1["content-type"], h2["content-type"])
  end)

  it("a binary file and a 200 KiB POST body come through unchanged", function()
    local f = assert(io.open("examples/www/test.jpg", "rb"))
    local jpg = f:read("a")
    f:close()
    local s, h, b = fetch(fr, "GET", "/proxy/test.jpg")
    assert.equals(200, s)
    assert.equals("image/jpeg", h["content-type"])
    assert.equals(#jpg, #b)
    assert.is_true(jpg == b)
    local t = {}
    for i = 1, 200 * 1024 do t[i] = string.char((i * 7) % 256) end
    local body = table.concat(t)
    local s2, _, b2 = fetch(fr, "POST", "/proxy/echo", body)
    assert.equals(200, s2)
    assert.is_true(b2 == body)
  end)

  it("passes the upstream's status on (404, 405)", function()
    assert.equals(404, (fetch(fr, "GET", "/proxy/nothing-here")))
    assert.equals(405, (fetch(fr, "POST", "/proxy/hello", "x")))
    assert.equals(404, (fetch(fr, "GET", "/elsewhere")))
  end)
end)

describe("hotsock.http_client against a raw upstream", function()
  local raw, fr

  setup(function()
    raw = kit.start("tests/fixtures/http_upstream_raw.lua")
    fr = front("http://127.0.0.1:" .. raw:port(), 1)
  end)
  teardown(function()
    if fr then assert.is_true(fr:stop()) end
    if raw then assert.is_true(raw:stop()) end
  end)

  it("reuses one pooled upstream connection for consecutive requests", function()
    local _, _, first = fetch(fr, "GET", "/proxy/id")
    assert.truthy(first:match("^conn %d+$"))
    for _ = 1, 5 do assert.equals(first, select(3, fetch(fr, "GET", "/proxy/id"))) end
  end)

  it("decodes a chunked body with extensions and trailers", function()
    local s, h, b = fetch(fr, "GET", "/proxy/chunked")
    assert.equals(200, s)
    assert.equals("text/x-test", h["content-type"])
    assert.equals("hello chunks", b)
  end)

  it("reads a body delimited by the close, and skips an interim 100", function()
    assert.equals("until the close", select(3, fetch(fr, "GET", "/proxy/close")))
    local s, _, b = fetch(fr, "GET", "/proxy/interim")
    assert.equals(201, s)
    assert.equals("ok", b)
  end)

  local faults = {
    { "/bad", "bad response", "(bare LF)" },
    { "/badcl", "bad response", "(conflicting content-length)" },
    { "/short", "closed", "/short -> http://127.0.0.1:%d+/short: closed" },
    { "/silent", "timeout", "/silent -> http://127.0.0.1:%d+/silent: timeout" },
  }
  for _, f in ipairs(faults) do
    it(("answers 502 for %s (%s) and logs why"):format(f[1], f[2]), function()
      local t0 = socket.gettime()
      local s, _, b = fetch(fr, "GET", "/proxy" .. f[1])
      assert.equals(502, s)
      assert.equals("bad gateway: " .. f[2] .. "\n", b)
      assert.is_true(socket.gettime() - t0 < 4)
      assert.truthy(fr:wait_log((f[3]:gsub("[%(%)%-]", "%%%0"))))
    end)
  end
end)

describe("hotsock.http_client when the upstream is not there", function()
  it("answers 502 connection refused and logs it", function()
    local fr = front("http://127.0.0.1:" .. free_port())
    local s, _, b = fetch(fr, "GET", "/proxy/x")
    assert.equals(502, s)
    assert.equals("bad gateway: connection refused\n", b)
    assert.truthy(fr:wait_log("GET /proxy/x %-> http://127%.0%.0%.1:%d+/x: connection refused"))
    assert.is_true(fr:stop())
  end)
end)

describe("on_request that waits", function()
  local srv
  setup(function() srv = kit.start("tests/fixtures/http_wait.lua") end)
  teardown(function() if srv then assert.is_true(srv:stop()) end end)

  it("answers when it is done, not 500 at its first wait", function()
    local s, _, b = fetch(srv, "GET", "/sleep")
    assert.equals(200, s)
    assert.equals("slept\n", b)
  end)

  it("closes the connection when it fails after the wait, and logs where", function()
    local c = srv:tcp()
    c:send("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equals("", kit.recv_all(c))
    c:close()
    assert.truthy(srv:wait_log("handler error in on_request %(conn#%d+ [^)]*%), after waiting "
      .. "in hotsock%.sleep at [^\n]*http_wait%.lua:8: [^\n]*failed after a wait"))
  end)
end)

describe("hotsock.http_client over https://", function()
  local dir = kit.tmpdir()
  local up, fr
  setup(function()
    local out, rc = kit.run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
      "-nodes -keyout %s/up.key -out %s/up.pem -days 2 -subj /CN=localhost " ..
      "-addext subjectAltName=DNS:localhost 2>&1"):format(dir, dir))
    assert(rc == 0, out)
    up = kit.start("scripts/http.lua", {
      listen = ("tls://127.0.0.1:0?cert=%s/up.pem&key=%s/up.key"):format(dir, dir) })
  end)
  teardown(function()
    if fr then assert.is_true(fr:stop()) end
    if up then assert.is_true(up:stop()) end
  end)

  it("fetches through TLS, the certificate checked against ca, byte for byte", function()
    fr = front("https://localhost:" .. up:port("tls"), 5, dir .. "/up.pem")
    local status, headers, body = fetch(fr, "GET", "/proxy/hello")
    assert.equals(200, status)
    assert.equals("hello from hotsock\n", body)
    assert.equals("text/plain; charset=utf-8", headers["content-type"])
    -- A second request takes the kept TLS connection back from the pool.
    local status2, _, body2 = fetch(fr, "GET", "/proxy/hello")
    assert.equals(200, status2)
    assert.equals("hello from hotsock\n", body2)
    assert.is_true(fr:stop())
    fr = nil
  end)

  it("without the CA the upstream's certificate is refused: 502 with OpenSSL's reason", function()
    fr = front("https://localhost:" .. up:port("tls"), 5)
    local status, _, body = fetch(fr, "GET", "/proxy/hello")
    assert.equals(502, status)
    assert.equals("bad gateway: certificate verify failed: self-signed certificate\n", body)
    assert.is_true(fr:stop())
    fr = nil
  end)
end)
