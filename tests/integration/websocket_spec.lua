-- WebSocket end to end on the real binary: the opening handshake and its refusals, the ws
-- object's methods, the server's close, max_message, and the bad input of issue 18 (a 2^63
-- length, half a frame then silence, a ping flood from a client that does not read, a client
-- that never reads what is sent to it), and reloads that leave live WebSockets alone.
local hs = require "hotsock.testkit"
local ws = require "wsclient"

local FIXTURE = "tests/fixtures/ws_echo.lua"

local function start(args)
  return hs.start(FIXTURE, { args = args })
end

describe("WebSocket handshake", function()
  local srv
  setup(function() srv = start() end)
  teardown(function() srv:stop() end)

  it("answers 101 with the RFC's Sec-WebSocket-Accept for its sample key", function()
    local c, h = ws.connect(srv:port(), "/ws")
    assert.are.equal("websocket", h.upgrade:lower())
    assert.are.equal("upgrade", h.connection:lower())
    assert.is_nil(h["sec-websocket-protocol"])
    c:send(ws.frame(1, "hi"))
    assert.are.equal("hi", c:read().payload)
    c:close()
    srv:wait_log('"GET /ws HTTP/1%.1" 101')
    assert.matches('"GET /ws HTTP/1%.1" 101 0 ', srv:log())
  end)

  it("picks the first of the script's subprotocols the client offers", function()
    local c, h = ws.connect(srv:port(), "/chat", "Sec-WebSocket-Protocol: chat, superchat\r\n")
    assert.are.equal("superchat", h["sec-websocket-protocol"])
    c:send(ws.frame(1, "info"))
    assert.matches("^protocol=superchat peer=127%.0%.0%.1:%d+ id=%d+$", c:read().payload)
    c:close()
    local c2, h2 = ws.connect(srv:port(), "/chat", "Sec-WebSocket-Protocol: other\r\n")
    assert.is_nil(h2["sec-websocket-protocol"])
    c2:send(ws.frame(1, "info"))
    assert.matches("^protocol=nil ", c2:read().payload)
    c2:close()
  end)

  local function refused(request, status, extra_check)
    local c, code, h = ws.open(srv:port(), nil, nil, { request = request })
    assert.are.equal(status, code)
    if extra_check then extra_check(h) end
    c:close()
  end

  it("refuses a handshake without a key with 400", function()
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Version: 13\r\n\r\n", 400)
    assert.matches("websocket handshake refused %(400%): Sec%-WebSocket%-Key missing", srv:log())
  end)

  it("refuses a key that is not 16 bytes of base64 with 400", function()
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)
  end)

  it("refuses another version with 426 and Sec-WebSocket-Version: 13", function()
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: " .. ws.KEY .. "\r\nSec-WebSocket-Version: 8\r\n\r\n", 426,
      function(h) assert.are.equal("13", h["sec-websocket-version"]) end)
    assert.matches("websocket refused: unsupported version", srv:log())
  end)

  it("refuses POST, HTTP/1.0 and a missing Upgrade or Connection with 400", function()
    local tail = "Sec-WebSocket-Key: " .. ws.KEY .. "\r\nSec-WebSocket-Version: 13\r\n"
    refused("POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" .. tail ..
            "Content-Length: 0\r\n\r\n", 400)
    refused("GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" .. tail .. "\r\n", 400)
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n" .. tail .. "\r\n", 400)
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n" .. tail .. "\r\n", 400)
    assert.matches("websocket handshake needs GET", srv:log())
  end)

  it("leaves req.headers to the script, which may refuse by Origin", function()
    local _, code = ws.open(srv:port(), "/origin", "Origin: http://evil.example\r\n")
    assert.are.equal(403, code)
    local c = ws.connect(srv:port(), "/origin", "Origin: http://good.example\r\n")
    c:send(ws.frame(1, "ok"))
    assert.are.equal("ok", c:read().payload)
    c:close()
  end)

  it("reads frames the client sent right behind its request", function()
    local req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"):format(ws.KEY)
    local c, code = ws.open(srv:port(), nil, nil, { request = req .. ws.frame(1, "early") })
    assert.are.equal(101, code)
    assert.are.equal("early", c:read().payload)
    c:close()
  end)
end)

describe("WebSocket objects", function()
  local srv
  setup(function() srv = start() end)
  teardown(function() srv:stop() end)

  it("keep ws.ctx across messages and echo binary as binary", function()
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "count"))
    assert.are.equal("1", c:read().payload)
    c:send(ws.frame(1, "count"))
    assert.are.equal("2", c:read().payload)
    c:send(ws.frame(2, "\0\1\2"))
    local f = c:read()
    assert.are.same({ 2, "\0\1\2" }, { f.op, f.payload })
    c:send(ws.close_frame(1000, "done"))
    assert.are.same({ 1000, "done" }, { c:read_close() })
    assert.is_true(c:eof())
    srv:wait_log('ws closed .* 1000 "done"')
    assert.matches('ws closed ws#%d+ 127%.0%.0%.1:%d+ 1000 "done"', srv:log())
  end)

  it("close the connection with ws:close(code, reason) once the client answers", function()
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "bye"))
    assert.are.same({ 4000, "bye now" }, { c:read_close() })
    c:send(ws.close_frame(4000, "bye now"))
    assert.is_true(c:eof())
    srv:wait_log('ws closed .* 4000 "bye now"')
  end)

  it("fail a message over max_message with 1009, fragments counted together", function()
    local c = ws.connect(srv:port(), "/small")
    c:send(ws.frame(1, string.rep("a", 64)))
    assert.are.equal(64, #c:read().payload)
    c:send(ws.frame(1, string.rep("a", 40), { fin = false }) .. ws.frame(0, string.rep("b", 40)))
    assert.are.equal(1009, (c:read_close()))
    assert.is_true(c:eof())
    srv:wait_log("websocket protocol error: message over max_message; closing with 1009")
  end)

  it("keep plain HTTP working on the same listener", function()
    local c = srv:tcp()
    c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.matches("plain http\n$", hs.recv_all(c))
  end)
end)

describe("WebSocket memory", function()
  -- The accept key is a SHA-1: through OpenSSL's EVP interface its first use loads the
  -- default provider, ~2 MiB of libcrypto's pages that stay resident (bench/results/
  -- upload.md has the same for SHA-256). A fresh server's first handshake, after a plain
  -- HTTP request has been served, must grow its peak RSS by under 1 MiB.
  it("grows the peak RSS by under 1 MiB for the first handshake", function()
    local srv = start()
    finally(function() srv:stop() end)
    local h = srv:tcp()
    h:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.matches("plain http\n$", hs.recv_all(h))
    local _, hwm0 = srv:memory()
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "hi"))
    assert.are.equal("hi", c:read().payload)
    local _, hwm = srv:memory()
    c:close()
    assert.is_true(hwm - hwm0 < 1024, ("peak RSS grew by %d KiB"):format(hwm - hwm0))
  end)
end)

describe("WebSocket bad input", function()
  local srv
  setup(function() srv = start { "--frame-timeout", "1", "--send-timeout", "1" } end)
  teardown(function() srv:stop() end)

  it("fails a 2^63 length with 1002 and a length of 2^62 with 1009, before any payload", function()
    local c = ws.connect(srv:port(), "/ws")
    c:send(string.char(0x82, 0xff) .. string.pack(">I8", 1 << 63 | 5) .. "mask")
    assert.are.equal(1002, (c:read_close()))
    assert.is_true(c:eof())
    srv:wait_log("websocket protocol error: length with the top bit set")
    c = ws.connect(srv:port(), "/ws")
    c:send(string.char(0x82, 0xff) .. string.pack(">I8", 1 << 62) .. "mask")
    assert.are.equal(1009, (c:read_close()))
    assert.is_true(c:eof())
  end)

  it("lingers after a protocol error: a client still sending is not reset", function()
    -- The client sends a bad frame, reads the 1002 close frame, and goes on sending (as a
    -- client that wrote ahead does). A server that closed its socket at once would answer
    -- those bytes with a reset, and a reset can destroy a close frame not yet read; ours
    -- shuts its side down and drops what still comes until the client closes.
    local c = ws.connect(srv:port(), "/ws")
    c:settimeout(5)
    c:send(string.char(0x81, 0x03) .. "bad") -- unmasked
    assert.are.equal(1002, (c:read_close()))
    local chunk = ws.frame(2, ("y"):rep(16 * 1024))
    for i = 1, 8 do
      local ok, err = c.sock:send(chunk)
      assert.truthy(ok, ("send %d after the close frame: %s"):format(i, tostring(err)))
      -- Not a wait for the passing case (nothing answers these bytes): room for a reset,
      -- were one coming, to arrive before the next send.
      require("socket").sleep(0.005)
    end
    c.sock:shutdown("send")
    assert.is_true(c:eof())
    srv:wait_log("websocket protocol error")
  end)

  it("closes a client that sends half a frame and stalls (frame timeout)", function()
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, string.rep("x", 1000)):sub(1, 500))
    c:settimeout(10)
    local t0 = os.time()
    assert.is_true(c:eof())
    assert.is_true(os.time() - t0 <= 5)
    srv:wait_log('ws closed .* 1006 "receive timeout"')
  end)

  it("stops reading pings rather than queueing pongs without bound", function()
    local before = srv:memory()
    local c = ws.connect(srv:port(), "/ws")
    c:settimeout(3)
    local ping = ws.frame(9, string.rep("p", 125))
    local burst = string.rep(ping, 1000)
    local sent = 0
    for _ = 1, 200 do -- 200,000 pings (25 MB of pongs to come), none read back
      local ok = c.sock:send(burst)
      if not ok then break end
      sent = sent + 1000
    end
    -- The client blocks once the kernel's buffers and the server's output limit are full.
    assert.is_true(sent < 200000, "every ping was taken: nothing held the client back")
    assert.is_true(srv:memory() - before < 16 * 1024, "server memory grew past 16 MiB") -- KiB
    local other = ws.connect(srv:port(), "/ws")
    other:send(ws.frame(1, "still here"))
    assert.are.equal("still here", other:read().payload)
    other:close()
    c:close()
  end)

  it("bounds and closes a client that never reads what is sent to it; others go on", function()
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "flood 100000"))
    local other = ws.connect(srv:port(), "/ws")
    srv:wait_log("flood stopped after %d+: output buffer full", 30)
    other:send(ws.frame(1, "unaffected"))
    assert.are.equal("unaffected", other:read().payload)
    srv:wait_log('ws closed .* 1006 "send timeout"', 30)
    assert.is_true(srv:alive())
    other:close()
    c:close()
  end)
end)

describe("WebSockets in the connection registry", function()
  it("are listed by hotsock.conns and reached by hotsock.broadcast, text or binary", function()
    local srv = start()
    local a = ws.connect(srv:port(), "/ws")
    local b = ws.connect(srv:port(), "/ws")
    a:send(ws.frame(1, "conns"))
    assert.are.equal("conns=2 mine=true", a:read().payload)
    a:send(ws.frame(1, "broadcast hello"))
    assert.are.equal("reached 1", a:read().payload)
    assert.are.same({ 1, "hello" }, { b:read().op, "hello" })
    -- Bytes that are not UTF-8 go as a binary message.
    a:send(ws.frame(1, "broadcast \\xff"))
    assert.are.equal("reached 1", a:read().payload)
    local f = b:read()
    assert.are.same({ 2, "\xff" }, { f.op, f.payload })
    -- A client whose output is full is skipped; the others still get the message.
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "fill, broadcast again"))
    srv:wait_log("filled; broadcast reached 2")
    assert.are.equal("again", a:read().payload)
    assert.are.equal("again", b:read().payload)
    a:close(); b:close(); c:close()
    srv:stop()
  end)
end)

describe("ws:receive in a handle(ws) that waits", function()
  local srv
  setup(function() srv = start() end)
  teardown(function() srv:stop() end)

  it("returns messages in order with their kind, queued while the handler waits", function()
    local c = ws.connect(srv:port(), "/recv")
    c:send(ws.frame(1, "sleep"))
    c:send(ws.frame(1, "a"))
    c:send(ws.frame(2, "b"))
    -- More than the inbox holds: reading pauses, then resumes as they are taken.
    for i = 1, 200 do c:send(ws.frame(1, "m" .. i)) end
    assert.are.equal("text:a", c:read().payload)
    assert.are.equal("binary:b", c:read().payload)
    for i = 1, 200 do assert.are.equal("text:m" .. i, c:read().payload) end
    c:send(ws.frame(1, "wait"))
    assert.are.equal("nil timeout", c:read().payload)
    c:send(ws.close_frame(4001, "bye"))
    assert.are.same({ 4001, "bye" }, { c:read_close() })
    assert.is_true(c:eof())
    srv:wait_log('receive: closed 4001 "bye"')
  end)

  it("closes with 1000 when handle returns and 1011 when it fails", function()
    local c = ws.connect(srv:port(), "/recv")
    c:send(ws.frame(1, "done"))
    assert.are.same({ 1000, "" }, { c:read_close() })
    c:close()
    c = ws.connect(srv:port(), "/recv")
    c:send(ws.frame(1, "fail"))
    assert.are.same({ 1011, "" }, { c:read_close() })
    srv:wait_log("handler error in websocket handle .*handle failed on purpose")
    c:close()
    assert.is_true(srv:alive())
  end)
end)

describe("WebSocket and reload", function()
  it("keeps live WebSockets on their version; on_upgrade may give them new callbacks", function()
    local dir = hs.tmpdir()
    local script = dir .. "/ws.lua"
    local text = hs.read_file(FIXTURE)
    hs.write(script, text)
    local srv = hs.start(script)
    local c = ws.connect(srv:port(), "/ws")
    c:send(ws.frame(1, "count"))
    assert.are.equal("1", c:read().payload)
    hs.write(script, text:gsub("ws:send%(data%)", 'ws:send("v2:" .. data)'))
    srv:reload()
    c:send(ws.frame(1, "hi"))
    assert.are.equal("hi", c:read().payload) -- the version it was upgraded under
    local fresh = ws.connect(srv:port(), "/ws")
    fresh:send(ws.frame(1, "hi"))
    assert.are.equal("v2:hi", fresh:read().payload)
    fresh:close()
    hs.write(script, text:gsub("return {\n  protocol", [[return {
  on_upgrade = function(w)
    return { on_message = function(w2, data) w2:send("adopted:" .. data .. ":" .. w2.ctx.n) end }
  end,
  protocol]]))
    srv:reload()
    c:send(ws.frame(1, "hi"))
    assert.are.equal("adopted:hi:1", c:read().payload)
    c:close()
    srv:stop()
    hs.run("rm -rf " .. hs.shquote(dir))
  end)
end)
