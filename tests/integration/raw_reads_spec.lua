-- Raw framing read by read: a small read with nothing buffered skips the input buffer
-- (core/conn.c); receive, set_framing, pause and close inside on_message, and a raw max below
-- one read's size (which takes the buffered path), must behave as documented.
local kit = require "hotsock.testkit"

describe("raw reads", function()
  local srv, small

  setup(function()
    srv = kit.start("tests/fixtures/raw_reads.lua", { framing = "raw" })
    small = kit.start("tests/fixtures/raw_reads.lua", { framing = "raw:max=4" })
  end)
  teardown(function()
    assert.is_true(srv:stop())
    assert.is_true(small:stop())
  end)

  it("one read is one message, byte for byte", function()
    local c = srv:connect()
    c:send("hello")
    assert.equals("[hello]", c:receive(7))
    c:send("\0\1\255 bytes\r\n")
    assert.equals("[\0\1\255 bytes\r\n]", c:receive(13))
    c:close()
  end)

  it("receive inside on_message gets the bytes after the message", function()
    local c = srv:connect()
    c:send("read 6")
    assert.equals("ready", c:line())
    c:send("abc")
    c:send("def")
    assert.equals("got abcdef", c:line())
    c:send("again")
    assert.equals("[again]", c:receive(7))
    c:close()
  end)

  it("set_framing inside on_message applies to the next read", function()
    local c = srv:connect()
    c:send("line")
    assert.equals("now line", c:line())
    c:send("x\ny\n")
    assert.equals("[x][y]", c:receive(6))
    c:close()
  end)

  it("a pause inside on_message holds what comes until resume", function()
    local c = srv:connect()
    c:send("pause")
    assert.equals("paused", c:line())
    c:send("later")
    assert.equals("resumed", c:line())
    assert.equals("[later]", c:receive(7))
    c:close()
  end)

  it("conn.ctx is per connection and kept between messages", function()
    local a, b = srv:connect(), srv:connect()
    a:send("count")
    assert.equals("n=1", a:line())
    a:send("count")
    assert.equals("n=2", a:line())
    b:send("count")
    assert.equals("n=1", b:line())
    a:close()
    b:close()
  end)

  it("close inside on_message flushes the reply first", function()
    local c = srv:connect()
    c:send("bye")
    assert.equals("bye", c:line())
    assert.is_true(c:closed())
    c:close()
  end)

  -- Large reads go into the block that becomes the message string (core/lua_rx_block.c): the
  -- bytes must arrive whole and in order, and the state's memory count must stay true, or the
  -- memory limit would trip (or never trip) on data that is long gone.

  -- The fixture echoes a message of digits as "[digits]": reads the replies of ndigits sent
  -- digits and returns the digits and the largest message (one read's bytes).
  local function echoed(c, ndigits)
    local got, largest, buf = {}, 0, ""
    local n, deadline = 0, os.time() + 30
    c:settimeout(0.05) -- a poll interval: the loop reads on until every digit came back
    while n < ndigits and os.time() < deadline do
      local data, _, partial = c.sock:receive(65536)
      buf = buf .. (data or partial or "")
      while true do
        local chunk, rest = buf:match("^%[(%d*)%](.*)$")
        if not chunk then break end
        got[#got + 1], buf = chunk, rest
        n, largest = n + #chunk, math.max(largest, #chunk)
      end
    end
    c:settimeout(kit.timeout)
    return table.concat(got), largest
  end

  it("large reads arrive whole and unchanged", function()
    local c = srv:connect()
    local parts = {}
    for i = 1, 40000 do parts[i] = ("%05d"):format((i * 7919) % 100000) end
    local sent = table.concat(parts) -- 200,000 digits
    c:send(sent)
    local got, largest = echoed(c, #sent)
    assert.equals(sent, got)
    -- Over loopback most reads are large: the hand-over (16 KiB and more) was used.
    assert.is_true(largest >= 16384, "largest read " .. largest)
    c:close()
  end)

  it("the memory limit counts large reads' strings as they come and go", function()
    local tight = kit.start("tests/fixtures/raw_reads.lua",
      { framing = "raw", args = { "--lua-memory", "4m" } })
    local c = tight:connect()
    local block = ("7"):rep(256 * 1024)
    for _ = 1, 128 do
      c:send(block)
      assert.equals(#block, #(echoed(c, #block)))
    end
    -- 32 MiB went through a state allowed 4 MiB, and it still answers.
    c:send("count")
    assert.equals("n=1", c:line())
    c:close()
    assert.is_true(tight:stop())
    assert.is_nil(tight:log():match("memory limit"))
  end)

  it("a raw max under one read's size cuts the read into messages of max bytes", function()
    local c = small:connect()
    c:send("abcdefghij")
    assert.equals("[abcd][efgh][ij]", c:receive(16))
    c:close()
  end)
end)
