-- Lua objects that outlive the C objects behind them: a UDP socket a reload unbound, an HTTP
-- response whose client left. Methods that act answer nil, "closed"; queries keep answering.
-- Under the Asan build a use of freed memory aborts the server, so these fail there too.
local kit = require "hotsock.testkit"

-- v1 listens on TCP and UDP and keeps the UDP socket; its TCP connections use it later.
local V1 = [[
local M = { name = "keeper", framing = "line",
            listen = { "tcp://127.0.0.1:0", "udp://127.0.0.1:0" } }
local sock, peer
function M.on_datagram(s, data, from)
  sock, peer = s, from
  s:send_to(from, "kept " .. data)
end
function M.on_message(conn, msg)
  if msg ~= "use" then return end
  local ok, err = sock:send_to(peer, "late")
  conn:send(("%s %s | %s | %s\n"):format(tostring(ok), tostring(err), sock:url(),
    tostring(sock)))
end
return M
]]

-- v2 drops the UDP address: the reload frees that socket.
local V2 = [[
return { name = "keeper", framing = "line", listen = { "tcp://127.0.0.1:0" },
         on_message = function(conn) conn:send("v2\n") end }
]]

describe("a UDP socket unbound by a reload", function()
  it("answers nil, \"closed\" to send_to and still tells its URL", function()
    local dir = kit.tmpdir()
    local script = dir .. "/keeper.lua"
    kit.write(script, V1)
    local srv = kit.start({ script, "--control", dir .. "/ctl.sock" })
    local udp_url = srv:url("udp")
    local c = srv:connect() -- runs v1 until it closes
    local u = srv:udp()
    assert(u:send("hi"))
    assert.equals("kept hi", u:receive())

    kit.write(script, V2)
    local out, rc = kit.run(("%s reload --control %s 2>&1"):format(kit.shquote(kit.bin),
      kit.shquote(dir .. "/ctl.sock")))
    assert.equals(0, rc, out) -- the reply comes after the old socket was freed

    c:send_line("use")
    assert.equals(("nil closed | %s | udp %s (closed)"):format(udp_url, udp_url), c:line())
    u:settimeout(0.2)
    assert.is_nil(u:receive()) -- nothing went out through a freed socket
    c:close()
    u:close()
    assert.is_true(srv:stop())
    assert.is_nil(srv:log():find("AddressSanitizer", 1, true))
    os.execute("rm -rf " .. kit.shquote(dir))
  end)
end)

describe("an HTTP response whose client has gone", function()
  it("answers nil, \"closed\" to status, header and write", function()
    local dir = kit.tmpdir()
    local script = dir .. "/late.lua"
    kit.write(script, [[
local hotsock = require "hotsock"
local pending
return {
  protocol = "http",
  on_request = function(req, res)
    if req.path == "/wait" then
      pending = res
      hotsock.log("info", "holding the response")
      return
    end
    -- The second client's request runs once the first one has left.
    local r = {}
    for _, f in ipairs {
      function() return pending:status(201) end,
      function() return pending:header("X-Late", "1") end,
      function() return pending:write("late") end,
    } do
      local ok, err = f()
      r[#r + 1] = tostring(ok) .. " " .. tostring(err)
    end
    res:send(table.concat(r, ", ") .. " | " .. tostring(pending))
  end,
}
]])
    local srv = kit.start(script)
    local c = srv:tcp()
    assert(c:send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"))
    srv:wait_log("holding the response")
    c:close() -- a client that gives up: its end of stream, no reset
    kit.wait_until(function() return srv:stats("version")[1].open == "0" end, 5,
      "the server to see the client go")
    local d = srv:tcp()
    assert(d:send("GET /ask HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    local all = kit.recv_all(d)
    d:close()
    assert.matches("\r\n\r\nnil closed, nil closed, nil closed | http response 200 %(closed%)$",
      all)
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)
end)

-- res:header and res:send know the latest response by its address (check_res): a response
-- of an earlier request, and a value that is no response, must still be told apart.
describe("res methods on a kept-alive connection", function()
  it("refuse an earlier request's response and a value that is no response", function()
    local dir = kit.tmpdir()
    local script = dir .. "/prev.lua"
    kit.write(script, [[
local prev
return {
  protocol = "http",
  on_request = function(req, res)
    local a = { pcall(res.header, req, "X-A", "1") }
    local b = prev and { pcall(prev.header, prev, "X-B", "1") } or { "none" }
    local c = prev and { pcall(prev.send, prev, "again") } or { "none" }
    prev = res
    res:send(("%s %s | %s %s | %s %s\n"):format(tostring(a[1]), tostring(a[2]),
      tostring(b[1]), tostring(b[2]), tostring(c[1]), tostring(c[2])))
  end,
}
]])
    local srv = kit.start(script)
    local c = srv:tcp()
    local function ask()
      assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
      local head = assert(c:receive("*l"))
      assert.equals("HTTP/1.1 200 OK\r", head .. "\r")
      local len
      repeat
        local l = assert(c:receive("*l"))
        len = len or tonumber(l:match("^Content%-Length: (%d+)"))
      until l == "" or l == "\r"
      return assert(c:receive(len))
    end
    local bad = "false [^|]*bad argument #1 to 'res:header' %(hotsock.http.response expected, got hotsock.http.request%)"
    assert.matches("^" .. bad .. " | none nil | none nil\n$", ask())
    assert.matches("^" .. bad .. " | false [^|]*response already finished | "
      .. "false [^|]*response already finished\n$", ask())
    c:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)
end)
