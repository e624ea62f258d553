-- Static files leave by sendfile(2): a large file arrives whole through a full socket, and a
-- file that shrinks while it is being sent ends that response instead of spinning the loop.
local hs = require "hsserver"
local socket = require "socket"

local tmpdir = hs.tmpdir

describe("static files by sendfile", function()
  local dir, srv
  local size = 16 * 1024 * 1024
  before_each(function()
    dir = tmpdir()
    local f = assert(io.open(dir .. "/big.bin", "wb"))
    local block = ("0123456789abcdef"):rep(4096)
    for _ = 1, size // #block do f:write(block) end
    f:close()
    srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0", "--set", "root=" .. dir,
      "--control", "none" }
  end)
  after_each(function()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  local function request(c)
    assert(c:send("GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    local head = {}
    repeat
      local line = assert(c:receive("*l"))
      head[#head + 1] = line
    until line == ""
    return table.concat(head, "\n")
  end

  it("sends a 16 MiB file whole to a client that reads it in pieces, with pauses", function()
    local c = srv:tcp()
    c:settimeout(10)
    assert.matches("Content%-Length: " .. size, request(c))
    local got, n = 0, 0
    while got < size do
      local chunk = assert(c:receive(math.min(1 << 20, size - got)))
      got = got + #chunk
      n = n + 1
      -- A short pause now and then lets the socket fill, so sendfile meets a full socket.
      if n % 4 == 0 then socket.sleep(0.02) end
    end
    assert.equals(size, got)
    local _, err = c:receive(1)
    assert.equals("closed", err)
    c:close()
  end)

  it("ends the response when the file shrinks under it, without spinning", function()
    local c = srv:tcp()
    c:settimeout(10)
    request(c)
    assert(c:receive(1 << 20)) -- the transfer is under way; the socket is full behind it
    os.execute("truncate -s 2097152 " .. hs.shquote(dir .. "/big.bin"))
    local cpu0 = srv:cpu_seconds()
    local got = 1 << 20
    while true do
      local chunk, err, partial = c:receive(1 << 16)
      got = got + #(chunk or partial or "")
      if not chunk then
        assert.equals("closed", err)
        break
      end
    end
    assert.is_true(got < size, "the whole file arrived after it was cut")
    assert.is_true(srv:cpu_seconds() - cpu0 < 1, "the server spun")
    srv:wait_log("a file being sent ended early %(truncated in place%? replace served files by rename%)", 5)
    c:close()
    -- The others are served.
    local d = srv:tcp()
    assert(d:send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert.matches("hello from hotsock", (hs.recv_all(d)))
    d:close()
  end)
end)
