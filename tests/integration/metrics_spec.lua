-- The --metrics listener reads requests with the server's own HTTP parser: its limits and
-- refusals are the HTTP layer's, and only GET/HEAD of / and /metrics are answered.
local hs = require "hsserver"
local socket = require "socket"

local ECHO = "scripts/echo.lua"

-- Sends raw bytes to the metrics port and returns everything answered until the close.
local function exchange(port, bytes)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  assert(c:send(bytes))
  local all = hs.recv_all(c)
  c:close()
  return all
end

local function status_of(all)
  return tonumber(all:match("^HTTP/1%.1 (%d+)"))
end

describe("the metrics listener", function()
  local srv, port

  setup(function()
    srv = hs.start { ECHO, "--listen", "tcp://127.0.0.1:0", "--metrics", "tcp://127.0.0.1:0" }
    port = tonumber(srv:log():match("metrics tcp://127%.0%.0%.1:(%d+)"))
  end)
  teardown(function() srv:stop() end)

  it("answers GET /metrics and GET / and closes", function()
    local all = exchange(port, "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
    assert.are.equal(200, status_of(all))
    assert.truthy(all:find("\r\nConnection: close\r\n", 1, true))
    assert.truthy(all:find("# TYPE hotsock_connections_total counter", 1, true))
    all = exchange(port, "GET /?x=1 HTTP/1.1\r\nHost: m\r\n\r\n")
    assert.are.equal(200, status_of(all))
    assert.truthy(all:find("\r\n\r\nhotsock metrics: GET /metrics\n$"))
  end)

  it("answers HEAD with the head alone", function()
    local all = exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
    assert.are.equal(200, status_of(all))
    assert.truthy(all:find("\r\n\r\n$"), all)
  end)

  it("refuses other methods with 405 and other paths with 404", function()
    assert.are.equal(405, status_of(exchange(port, "POST /metrics HTTP/1.1\r\nHost: m\r\n"
      .. "Content-Length: 0\r\n\r\n")))
    assert.are.equal(404, status_of(exchange(port, "GET /metricsx HTTP/1.1\r\nHost: m\r\n\r\n")))
  end)

  it("refuses what the HTTP layer refuses: bare LF, no Host on 1.1, smuggling, bad versions", function()
    assert.are.equal(400, status_of(exchange(port, "GET /metrics HTTP/1.1\nHost: m\n\n")))
    assert.are.equal(400, status_of(exchange(port, "GET /metrics HTTP/1.1\r\n\r\n")))
    assert.are.equal(400, status_of(exchange(port, "GET /metrics HTTP/1.1\r\nHost: m\r\n"
      .. "Content-Length: 1\r\nContent-Length: 2\r\n\r\n")))
    assert.are.equal(505, status_of(exchange(port, "GET /metrics HTTP/2.0\r\nHost: m\r\n\r\n")))
  end)

  it("refuses a head over 8 KiB with 431 without waiting for its end", function()
    local all = exchange(port, "GET /metrics HTTP/1.1\r\nHost: m\r\nX: " .. ("a"):rep(9000))
    assert.are.equal(431, status_of(all))
  end)

  it("keeps serving the handler's own clients", function()
    local c = srv:tcp()
    c:send("still here\n")
    assert.are.equal("still here", hs.recv_line(c))
    c:close()
  end)
end)
