-- Live stats: the counters `hotsock stats` and the --metrics listener report, checked against
-- exactly what the spec did over real sockets, in one process and across workers.
local hs = require "hsserver"
local socket = require "socket"

local function write(path, text)
  local tmp = path .. ".new"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, path))
end

local tmpdir = hs.tmpdir

local function hotsock(args)
  return hs.run(hs.shquote(hs.bin) .. " " .. args .. " 2>&1")
end

-- The raw snapshot as records: { {kind=..., key=value...}, ... }.
local function raw_stats(ctl)
  local out, rc = hotsock("stats --raw --control " .. hs.shquote(ctl))
  assert.are.equal(0, rc, out)
  local recs = {}
  for line in out:gmatch("[^\n]+") do
    local kind, rest = line:match("^(%S+)%s*(.*)$")
    local r = { kind = kind }
    for k, v in rest:gmatch("(%S+)=(%S*)") do
      r[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    end
    recs[#recs + 1] = r
  end
  return recs
end

local function find(recs, kind, match)
  local found = {}
  for _, r in ipairs(recs) do
    local ok = r.kind == kind
    for k, v in pairs(match or {}) do ok = ok and r[k] == tostring(v) end
    if ok then found[#found + 1] = r end
  end
  return found
end

local function http_get(port, path)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
  local all = hs.recv_all(c)
  c:close()
  local status = tonumber(all:match("^HTTP/1%.1 (%d+)"))
  local head, body = all:match("^(.-)\r\n\r\n(.*)$")
  return status, body, head
end

local SCRIPT = [[
return {
  name = "counter",
  framing = "line:max=16",
  on_message = function(conn, msg)
    if msg == "boom" then error("boom") end
    conn:send(msg .. "\n")
  end,
}
]]

describe("hotsock stats", function()
  local dir, script, ctl, srv

  before_each(function()
    dir = tmpdir()
    script = dir .. "/counter.lua"
    ctl = dir .. "/ctl.sock"
    write(script, SCRIPT)
  end)
  after_each(function()
    if srv then assert.is_true(srv:stop()) end
    srv = nil
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  it("counts connections, bytes, messages, errors and handler errors per version", function()
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--control", ctl,
                     "--metrics", "tcp://127.0.0.1:0" }
    -- Client 1: two messages, then it leaves (6 bytes in, 6 out).
    local c1 = srv:tcp()
    c1:send("ab\ncd\n")
    assert.are.equal("ab", hs.recv_line(c1))
    assert.are.equal("cd", hs.recv_line(c1))
    c1:close()
    -- Client 2: a handler error (5 bytes in, nothing out; closed by the server).
    local c2 = srv:tcp()
    c2:send("boom\n")
    assert.are.equal("closed", select(2, hs.recv_all(c2)))
    c2:close()
    -- Client 3: a line over the limit: a protocol error (20 bytes in).
    local c3 = srv:tcp()
    c3:send(("x"):rep(19) .. "\n")
    assert.are.equal("closed", select(2, hs.recv_all(c3)))
    c3:close()
    -- Client 4 stays open with one message (3 in, 3 out), counted live.
    local c4 = srv:tcp()
    c4:send("hi\n")
    assert.are.equal("hi", hs.recv_line(c4))
    srv:wait_log("handler error in on_message")
    srv:wait_log("too long")

    local recs
    hs.wait_until(function()
      recs = raw_stats(ctl)
      local v = find(recs, "version", { generation = 1 })[1]
      return v and v.open == "1" and v.total == "4"
    end, 5, "three connections closed")
    local v = find(recs, "version", { name = "counter", generation = 1 })
    assert.are.equal(1, #v)
    assert.are.same({
      kind = "version", service = "1", name = "counter", path = script, generation = "1", open = "1",
      total = "4", bytes_in = tostring(6 + 5 + 20 + 3), bytes_out = tostring(6 + 3),
      messages = "4", errors = "1", handler_errors = "1",
    }, v[1])
    local l = find(recs, "listener")
    assert.are.equal(1, #l)
    assert.are.equal(srv:url("tcp"), l[1].url)
    assert.are.equal("4", l[1].accepted)
    -- One listener: its connections are the version's, counted the same way.
    assert.are.same({ "1", "34", "9", "4", "1" },
      { l[1].open, l[1].bytes_in, l[1].bytes_out, l[1].messages, l[1].errors })
    local s = find(recs, "script")[1]
    assert.are.equal("1", s.generation)
    assert.are.equal("0", s.reloads)
    local p = find(recs, "process")[1]
    assert.are.equal("0", p.worker)
    assert.are.equal(tostring(srv.pid), p.pid)
    assert.are.equal("1", p.connections)
    assert.is_true(tonumber(p.lua_memory) > 1000)

    -- The same numbers as Prometheus text on the metrics listener.
    local mport = tonumber(srv:log():match("metrics tcp://127%.0%.0%.1:(%d+)"))
    local status, body, head = http_get(mport, "/metrics")
    assert.are.equal(200, status)
    assert.truthy(head:find("Content-Type: text/plain; version=0.0.4", 1, true))
    local labels = ('{script="counter",service="1",path="%s",generation="1",worker="0"}')
      :format(script)
    assert.truthy(body:find("\nhotsock_connections_open" .. labels .. " 1\n", 1, true), body)
    assert.truthy(body:find("\nhotsock_connections_total" .. labels .. " 4\n", 1, true))
    assert.truthy(body:find("\nhotsock_bytes_in_total" .. labels .. " 34\n", 1, true))
    assert.truthy(body:find("\nhotsock_messages_total" .. labels .. " 4\n", 1, true))
    assert.truthy(body:find("\nhotsock_errors_total" .. labels .. " 1\n", 1, true))
    assert.truthy(body:find("\nhotsock_handler_errors_total" .. labels .. " 1\n", 1, true))
    assert.truthy(body:find("# TYPE hotsock_connections_total counter\n", 1, true))
    assert.truthy(body:find(('\nhotsock_listener_connections_open{listener="%s",script="counter",'
      .. 'worker="0"} 1\n'):format(srv:url("tcp")), 1, true), body)
    assert.truthy(body:find('\nhotsock_listener_bytes_in_total{listener="' .. srv:url("tcp")
      .. '",script="counter",worker="0"} 34\n', 1, true), body)
    assert.are.equal(404, (http_get(mport, "/nope")))
    c4:close()
  end)

  it("shows each generation and the last reload, ok or failed with its error", function()
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--control", ctl }
    local old = srv:tcp()
    old:send("one\n")
    assert.are.equal("one", hs.recv_line(old))
    write(script, SCRIPT:gsub('name = "counter"', 'name = "counter2"'))
    local out, rc = hotsock("reload --control " .. hs.shquote(ctl))
    assert.are.equal(0, rc, out)
    local new = srv:tcp()
    new:send("two\nthree\n")
    assert.are.equal("two", hs.recv_line(new))
    assert.are.equal("three", hs.recv_line(new))

    local recs = raw_stats(ctl)
    local g1 = find(recs, "version", { generation = 1 })[1]
    local g2 = find(recs, "version", { generation = 2 })[1]
    assert.are.equal("1", g1.open)
    assert.are.equal("1", g1.messages)
    assert.are.equal("1", g2.open)
    assert.are.equal("2", g2.messages)
    assert.are.equal("counter2", g2.name)
    local s = find(recs, "script")[1]
    assert.are.equal("2", s.generation)
    assert.are.equal("1", s.reloads)
    assert.are.equal("1", s.reload_ok)
    local t = tonumber(s.reload_time)
    assert.is_true(math.abs(t - os.time()) < 60)

    -- A failed reload: generation stays 2, the error is kept.
    write(script, "return {\n")
    out, rc = hotsock("reload --control " .. hs.shquote(ctl))
    assert.are.equal(1, rc, out)
    s = find(raw_stats(ctl), "script")[1]
    assert.are.equal("2", s.generation)
    assert.are.equal("2", s.reloads)
    assert.are.equal("0", s.reload_ok)
    assert.truthy(s.reload_error:find("counter.lua:2:", 1, true), s.reload_error)

    -- The human table says the same.
    local table_out
    table_out, rc = hotsock("stats --control " .. hs.shquote(ctl))
    assert.are.equal(0, rc)
    assert.truthy(table_out:find("\ncounter%s+1 old%s+1%s+1 "), table_out)
    assert.truthy(table_out:find("\ncounter2%s+2 current%s+1%s+1 "), table_out)
    assert.truthy(table_out:find("failed: " .. script .. ":2:", 1, true), table_out)
    old:close()
    new:close()
  end)

  it("gathers every worker's counters, summed in the table and labelled in Prometheus", function()
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--control", ctl, "--workers", "2",
                     "--metrics", "tcp://127.0.0.1:0" }
    local clients = {}
    for i = 1, 12 do
      local c = srv:tcp()
      c:send("m" .. i .. "\n")
      assert.are.equal("m" .. i, hs.recv_line(c))
      clients[i] = c
    end
    local recs = raw_stats(ctl)
    local procs = find(recs, "process")
    assert.are.equal(2, #procs)
    local workers = srv:workers()
    local open, total, messages = 0, 0, 0
    for _, p in ipairs(procs) do
      assert.are.equal(tostring(workers[tonumber(p.worker)]), p.pid)
    end
    for _, v in ipairs(find(recs, "version", { generation = 1 })) do
      open = open + tonumber(v.open)
      total = total + tonumber(v.total)
      messages = messages + tonumber(v.messages)
    end
    assert.are.equal(12, open)
    assert.are.equal(12, total)
    assert.are.equal(12, messages)
    local table_out = hotsock("stats --control " .. hs.shquote(ctl))
    assert.truthy(table_out:find("\ncounter%s+1 current%s+12%s+12 "), table_out)
    local mport = tonumber(srv:log():match("metrics tcp://127%.0%.0%.1:(%d+)"))
    local status, body = http_get(mport, "/metrics")
    assert.are.equal(200, status)
    local sum = 0
    for w, n in body:gmatch('\nhotsock_connections_total{[^}]*worker="(%d)"} (%d+)') do
      assert.truthy(w == "1" or w == "2")
      sum = sum + tonumber(n)
    end
    assert.are.equal(12, sum)
    assert.truthy(body:find('\nhotsock_lua_memory_bytes{worker="1"} %d+\n'))
    assert.truthy(body:find('\nhotsock_lua_memory_bytes{worker="2"} %d+\n'))
    for _, c in ipairs(clients) do c:close() end
  end)

  it("moves an adopted connection to the new generation", function()
    local src = SCRIPT .. "-- v1\n"
    write(script, src)
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--control", ctl }
    local c = srv:tcp()
    c:send("a\n")
    assert.are.equal("a", hs.recv_line(c))
    write(script, SCRIPT:gsub("return {", "return {\n  on_upgrade = function(conn) end,"))
    local out, rc = hotsock("reload --control " .. hs.shquote(ctl))
    assert.are.equal(0, rc, out)
    c:send("b\n")
    assert.are.equal("b", hs.recv_line(c))
    local recs = raw_stats(ctl)
    local g1 = find(recs, "version", { generation = 1 })[1]
    local g2 = find(recs, "version", { generation = 2 })[1]
    -- Its bytes stay with the version that moved them, like its messages: "a\n" both ways
    -- under generation 1, "b\n" under generation 2 (live, then at the close).
    assert.are.same({ "0", "1", "1", "2", "2" },
      { g1.open, g1.total, g1.messages, g1.bytes_in, g1.bytes_out })
    assert.are.same({ "1", "0", "1", "2", "2" },
      { g2.open, g2.total, g2.messages, g2.bytes_in, g2.bytes_out })
    c:close()
    hs.wait_until(function()
      recs = raw_stats(ctl)
      return find(recs, "version", { generation = 2 })[1].open == "0"
    end, 5, "the close")
    g1 = find(recs, "version", { generation = 1 })[1]
    g2 = find(recs, "version", { generation = 2 })[1]
    assert.are.same({ "2", "2", "2", "2" }, { g1.bytes_in, g1.bytes_out, g2.bytes_in, g2.bytes_out })
  end)

  it("keeps two services of one script apart, lists versions by script then generation", function()
    local other = dir .. "/other.lua"
    write(other, 'return { name = "other", on_message = function(c, m) c:send(m) end }\n')
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", script, "--listen",
                     "tcp://127.0.0.1:0", other, "--listen", "tcp://127.0.0.1:0", "--control", ctl }
    local a = srv:tcp(1)
    local b1, b2 = srv:tcp(2), srv:tcp(2)
    for _, c in ipairs { a, b1, b2 } do
      c:send("x\n")
      assert.are.equal("x", hs.recv_line(c))
    end
    local recs = raw_stats(ctl)
    local v = find(recs, "version", { name = "counter", generation = 1 })
    assert.are.equal(2, #v)
    assert.are.same({ "1", "1" }, { v[1].service, v[1].open })
    assert.are.same({ "2", "2" }, { v[2].service, v[2].open })
    -- Reload twice: every script gets generations 2 and 3, each counted (a snapshot shows
    -- the current ones) after generation 1 of all.
    for _ = 1, 2 do
      local out, rc = hotsock("reload --control " .. hs.shquote(ctl))
      assert.are.equal(0, rc, out)
      raw_stats(ctl)
    end
    local table_out = hotsock("stats --control " .. hs.shquote(ctl))
    local rows = {}
    for line in table_out:match("\nSCRIPT +GEN STATE[^\n]*\n(.-)\n\n"):gmatch("[^\n]+") do
      rows[#rows + 1] = line:match("^(%S+%s+%d+)"):gsub("%s+", " ")
    end
    assert.are.same({ "counter[1] 1", "counter[1] 2", "counter[1] 3", "counter[2] 1",
      "counter[2] 2", "counter[2] 3", "other 1", "other 2", "other 3" }, rows)
    for _, c in ipairs { a, b1, b2 } do c:close() end
  end)

  it("counts a client's reset as a close, not an error", function()
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--control", ctl }
    local c = srv:tcp()
    c:send("hi\n")
    assert.are.equal("hi", hs.recv_line(c))
    assert(c:setoption("linger", { on = true, timeout = 0 }))
    c:close() -- an RST, not a FIN
    local recs
    hs.wait_until(function()
      recs = raw_stats(ctl)
      return find(recs, "version")[1].open == "0"
    end, 5, "the reset to be seen")
    assert.are.equal("1", find(recs, "version")[1].total)
    assert.are.equal("0", find(recs, "version")[1].errors)
    assert.are.equal("0", find(recs, "listener")[1].errors)
  end)

  it("prints a config's script paths without dot-dot segments", function()
    os.execute("mkdir -p " .. hs.shquote(dir .. "/conf"))
    local conf = dir .. "/conf/demo.lua"
    write(conf, ('return { services = { { script = "../counter.lua", listen = "tcp://127.0.0.1:0" } } }\n'))
    srv = hs.start { "--config", conf, "--control", ctl }
    assert.are.equal(script, find(raw_stats(ctl), "script")[1].path)
    assert.are.equal(script, find(raw_stats(ctl), "version")[1].path)
    assert.truthy(srv:output():find(" " .. script .. "\n", 1, true), srv:output())
  end)

  it("counts HTTP requests and UDP datagrams as messages", function()
    write(script, [[
return {
  name = "web",
  protocol = "http",
  on_request = function(req, res)
    if req.path == "/boom" then error("boom") end
    res:send("ok")
  end,
}
]])
    local udp_script = dir .. "/udp.lua"
    write(udp_script, [[
return { name = "dgram", on_datagram = function(s, d, p) s:send_to(p, d .. "!") end }
]])
    srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", udp_script, "--listen",
                     "udp://127.0.0.1:0", "--control", ctl }
    -- Three requests on one keep-alive connection, then one that raises (answered 500).
    local c = srv:tcp()
    local req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    c:send(req .. req .. req)
    for _ = 1, 3 do
      local head = hs.recv_exact(c, 17)
      assert.are.equal("HTTP/1.1 200 OK\r\n", head)
      local rest = c:receive("*l")
      while rest ~= "" do rest = c:receive("*l") end
      assert.are.equal("ok", hs.recv_exact(c, 2))
    end
    c:send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal("HTTP/1.1 500", hs.recv_exact(c, 12))
    c:close()
    local u = srv:udp()
    u:send("ping")
    assert.are.equal("ping!", u:receive())
    u:send("pong")
    assert.are.equal("pong!", u:receive())
    u:close()

    local recs
    hs.wait_until(function()
      recs = raw_stats(ctl)
      local w = find(recs, "version", { name = "web" })[1]
      return w and w.open == "0"
    end, 5, "the HTTP connection to close")
    local web = find(recs, "version", { name = "web" })[1]
    assert.are.equal("1", web.total)
    assert.are.equal("4", web.messages)
    assert.are.equal("1", web.handler_errors)
    local dgram = find(recs, "version", { name = "dgram" })[1]
    assert.are.equal("2", dgram.messages)
    assert.are.equal("0", dgram.total)
    assert.are.equal("8", dgram.bytes_in)
    assert.are.equal("10", dgram.bytes_out)
    -- The UDP listener has its row too: datagrams are its messages.
    local ul = find(recs, "listener", { url = srv:url("udp") })
    assert.are.equal(1, #ul)
    assert.are.same({ "dgram", "0", "0", "8", "10", "2", "0" },
      { ul[1].name, ul[1].accepted, ul[1].open, ul[1].bytes_in, ul[1].bytes_out, ul[1].messages,
        ul[1].errors })
    local table_out = hotsock("stats --control " .. hs.shquote(ctl))
    assert.truthy(table_out:find("\n" .. srv:url("udp") .. "%s+dgram%s+0%s+0%s+0%s+0%s+8 B%s+10 B%s+2%s+0%s+0%s+0\n"),
      table_out)
  end)

  it("says so when no server answers", function()
    local out, rc = hotsock("stats --control " .. hs.shquote(dir .. "/none.sock"))
    assert.are.equal(1, rc)
    assert.truthy(out:find("no hotsock is running here (no control socket at " .. dir .. "/none.sock)", 1, true))
  end)
end)
