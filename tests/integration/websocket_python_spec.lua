-- A real client: Python's websockets library (Debian python3-websockets) against
-- tests/fixtures/ws_echo.lua — its handshake (subprotocol), text and binary up to max_message,
-- ping/pong, the close handshake either way, 1009 past max_message, and a refused Origin.
local hs = require "hotsock.testkit"

local PY = "/usr/bin/python3"

describe("WebSocket with Python's websockets", function()
  local ok = hs.run(PY .. " -c 'import websockets' 2>/dev/null; echo $?"):match("^0")
  if not ok then
    pending("python3-websockets is not installed: apt-get install python3-websockets")
    return
  end

  it("talks to the server: handshake, messages, ping, closes, limits", function()
    local srv = hs.start("tests/fixtures/ws_echo.lua")
    local out, rc = hs.run(("timeout 60 %s tests/fixtures/ws_client.py %d 2>&1"):format(PY, srv:port()))
    assert.are.equal(0, rc, out)
    assert.are.equal(table.concat({
      "subprotocol: chat",
      "text: héllo",
      "binary: bytes 1048576 True",
      "pong: ok",
      "client close: 4001 client done",
      "server close: 4000 bye now",
      "too big: 1009",
      "origin refused: 403",
    }, "\n") .. "\n", out)
    srv:stop()
  end)
end)
