-- greeting over real sockets, exactly as the tutorial client and nc users see it.
local hs = require "hsserver"

describe("greeting", function()
  local raw, line

  setup(function()
    raw = hs.start { "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0" }
    line = hs.start { "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0", "--framing", "line" }
  end)
  teardown(function()
    assert.is_true(raw:stop())
    assert.is_true(line:stop())
  end)

  it("raw: welcome, then one reply per name sent one at a time, exit closes silently", function()
    local c = raw:tcp()
    assert.equals("welcome!", hs.recv_exact(c, 8))
    for _, name in ipairs { "Alice", "Bob", "世界" } do
      assert(c:send(name))
      local want = "hello, " .. name .. "!"
      assert.equals(want, hs.recv_exact(c, #want))
    end
    assert(c:send("exit"))
    local rest, err = hs.recv_all(c)
    assert.equals("", rest)
    assert.equals("closed", err)
    c:close()
  end)

  it("raw: a name typed into nc loses its newline", function()
    local c = raw:tcp()
    assert.equals("welcome!", hs.recv_exact(c, 8))
    assert(c:send("Carol\n"))
    assert.equals("hello, Carol!", hs.recv_exact(c, 13))
    c:close()
  end)

  it("line: several lines in one packet get one reply each, CRLF accepted", function()
    local c = line:tcp()
    assert.equals("welcome!", hs.recv_exact(c, 8))
    assert(c:send("Alice\nBob\r\nCarol\n"))
    local want = "hello, Alice!\nhello, Bob!\nhello, Carol!\n"
    assert.equals(want, hs.recv_exact(c, #want))
    assert(c:send("Da"))
    assert(c:send("ve\nexit\nignored\n"))
    local rest, err = hs.recv_all(c)
    assert.equals("hello, Dave!\n", rest)
    assert.equals("closed", err)
    c:close()
  end)

  it("takes its texts from options", function()
    local srv = hs.start { "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0",
      "--set", "welcome=hi there", "--set", "greeting=bonjour" }
    local c = srv:tcp()
    assert.equals("hi there", hs.recv_exact(c, 8))
    assert(c:send("Zoe"))
    assert.equals("bonjour, Zoe!", hs.recv_exact(c, 13))
    c:close()
    assert.is_true(srv:stop())
  end)
end)
