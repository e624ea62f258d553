-- The first-byte timeout cuts off a client that connects and says nothing while the server
-- waits for it, and leaves alone a client of a protocol where the server speaks first.
local hs = require "hsserver"
local socket = require "socket"

describe("--first-byte-timeout", function()
  it("closes a silent client of a protocol that waits for the client", function()
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "--first-byte-timeout", "0.2", "--log-level", "info" }
    local c = srv:tcp()
    local t0 = socket.gettime()
    local data, err = c:receive(1)
    assert.is_nil(data)
    assert.equals("closed", err)
    assert.is_true(socket.gettime() - t0 < 5)
    assert.matches("sent nothing in %d+ ms; closing", srv:log())
    c:close()
    assert.is_true(srv:stop())
  end)

  it("leaves a client alone once the server has spoken (greeting: welcome first)", function()
    local srv = hs.start { "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0",
      "--first-byte-timeout", "0.2" }
    local c = srv:tcp()
    assert.equals("welcome!", hs.recv_exact(c, 8))
    -- The client reads the welcome and thinks for longer than the timeout: time passing is
    -- the point here, so this is a sleep on purpose.
    socket.sleep(0.6)
    assert(c:send("Ann"))
    assert.equals("hello, Ann!", hs.recv_exact(c, 11))
    c:close()
    assert.is_false(srv:log():find("sent nothing", 1, true) ~= nil)
    assert.is_true(srv:stop())
  end)
end)
