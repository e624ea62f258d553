-- SIGTERM drains the way a load balancer needs (one process and with workers): every
-- listener closes at once, so a connect is refused rather than left in the backlog; idle
-- keep-alive connections close at once; requests in flight are answered with
-- Connection: close; the process exits as soon as the last connection is done, not after
-- the whole --grace. A WebSocket has no idle point: it is sent a close frame with 1001, and the
-- process exits as soon as the last close handshake is over.
local hs = require "hsserver"
local socket = require "socket"
local ws = require "wsclient"

-- The pids with a listening TCP socket on port (ss -ltnp).
local function listening_pids(port)
  local pids = {}
  for pid in hs.run(("ss -Hltnp 'sport = :%d'"):format(port)):gmatch("pid=(%d+)") do
    pids[tonumber(pid)] = true
  end
  return pids
end

-- Reads one HTTP response (head and a Content-Length body) from c; returns head, body.
local function response(c)
  local lines = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    lines[#lines + 1] = l
  end
  local head = table.concat(lines, "\n")
  local len = tonumber(head:match("\n[Cc]ontent%-[Ll]ength: (%d+)")) or 0
  return head, len > 0 and hs.recv_exact(c, len) or ""
end

for _, workers in ipairs { 1, 2 } do
  describe(("SIGTERM with %d process(es) serving"):format(workers), function()
    it("refuses connects, closes idle keep-alive, answers in flight with close, exits early", function()
      local srv = hs.start("tests/fixtures/drain.lua",
        { workers = workers, args = { "--grace", "60", "--control", "none" } })
      local host, port = hs.split_url(srv:url("tcp"))
      -- An idle keep-alive client: one exchange done, the connection persists.
      local idle = srv:tcp()
      assert(idle:send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
      local head, body = response(idle)
      assert.equals("ok\n", body)
      assert.not_matches("Connection: close", head, 1, true)
      -- A request in flight, held by the script until /release.
      local busy = srv:tcp()
      assert(busy:send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"))
      srv:wait_log("holding a request")
      -- A request whose head is still arriving.
      local late = srv:tcp()
      assert(late:send("GET /release HTTP/1.1\r\nHost: a\r\n"))

      srv:signal("TERM")
      hs.wait_until(function()
        return #srv:log_lines("SIGTERM: no longer accepting") == workers
      end, 10, "every process to start draining")
      -- No listener is left: the connect is refused, not queued. Under a parallel ctest the
      -- freed port can be taken at once by another test's process (examples/cluster/run.sh
      -- reserves ports and releases them for its servers): then none of ours may hold it.
      local ours = { [srv.pid] = true }
      for _, pid in pairs(srv:workers()) do ours[pid] = true end
      local others = listening_pids(port)
      if next(others) == nil then
        local c = socket.tcp()
        c:settimeout(2)
        local ok, err = c:connect(host, port)
        c:close()
        assert.is_nil(ok)
        assert.equals("connection refused", err)
      end
      for pid in pairs(others) do assert.is_nil(ours[pid], "still listening: pid " .. pid) end
      -- The idle keep-alive connection was closed at once.
      idle:settimeout(5)
      local data, rerr = idle:receive(1)
      assert.is_nil(data)
      assert.equals("closed", rerr)
      -- The request being received is answered, with Connection: close, then the close.
      assert(late:send("\r\n"))
      head, body = response(late)
      assert.equals("released\n", body)
      assert.matches("Connection: close", head, 1, true)
      assert.equals("closed", select(2, late:receive(1)))
      -- The held request is answered likewise.
      head, body = response(busy)
      assert.equals("held done\n", body)
      assert.matches("Connection: close", head, 1, true)
      assert.equals("closed", select(2, busy:receive(1)))
      -- The last connection is done: exit now, not 60 s from now.
      local t0 = socket.gettime()
      assert.equals(0, srv:wait_exit(15))
      assert.is_true(socket.gettime() - t0 < 15)
      assert.is_false(srv:log_has("grace period over"))
      idle:close(); late:close(); busy:close()
    end)
  end)
end

for _, workers in ipairs { 1, 2 } do
  describe(("SIGTERM with WebSockets open, %d process(es)"):format(workers), function()
    it("sends 1001, finishes each close handshake and exits at the last close", function()
      local srv = hs.start("tests/fixtures/ws_echo.lua",
        { workers = workers, args = { "--grace", "60", "--control", "none" } })
      local a = ws.connect(srv:port(), "/ws")
      local b = ws.connect(srv:port(), "/ws")
      for _, c in ipairs { a, b } do
        c:send(ws.frame(1, "up"))
        assert.equals("up", c:read().payload)
      end
      srv:signal("TERM")
      assert.are.same({ 1001, "server shutting down" }, { a:read_close() })
      assert.are.same({ 1001, "server shutting down" }, { b:read_close() })
      -- The first answer closes its connection; the other one keeps the process up.
      a:send(ws.close_frame(1001))
      assert.is_true(a:eof())
      assert.is_true(srv:alive())
      b:send(ws.close_frame(1001))
      assert.is_true(b:eof())
      assert.equals(0, srv:wait_exit(15))
      assert.is_false(srv:log_has("grace period over"))
      assert.equals(2, #srv:log_lines('ws closed .* 1001 ""'))
      a:close(); b:close()
    end)
  end)
end
