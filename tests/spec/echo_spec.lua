local fake = require "fake_conn"

describe("scripts/echo.lua", function()
  local echo = fake.load_script("scripts/echo.lua")

  it("sends every message back unchanged", function()
    local c = fake.new()
    echo.on_message(c, "abc")
    echo.on_message(c, "\0\255")
    assert.equals("abc\0\255", c:output())
  end)

  it("answers a datagram to its sender", function()
    local sent = {}
    local sock = { send_to = function(_, peer, data) sent[#sent + 1] = { peer, data } return true end }
    echo.on_datagram(sock, "ping", "127.0.0.1:9")
    assert.same({ { "127.0.0.1:9", "ping" } }, sent)
  end)

  it("declares its default listeners", function()
    assert.same({ "tcp://127.0.0.1:7000", "udp://127.0.0.1:7000" }, echo.listen)
  end)
end)
