-- The examples a user runs first: the demo config and its banner, the tutorial clients, the
-- UDP acknowledger, and --log-level as the demo's log shows it.
local hs = require "hsserver"

local read_file = hs.read_file

-- Runs a shell command; returns its output (stderr too) and exit status.
local function run(cmd)
  return hs.run(cmd .. " 2>&1")
end

describe("the demo", function()
  it("config loads every script, on the ports the banner of demo.sh promises", function()
    local out, rc = run(hs.shquote(hs.bin) .. " check --config examples/demo.lua")
    assert.equals(0, rc, out)
    local ports = {}
    for name, port in out:gmatch("ok %(([%w_]+), listens on %a+://127%.0%.0%.1:(%d+)") do
      ports[#ports + 1] = name .. ":" .. port
    end
    assert.same({ "echo:7000", "greeting:7001", "greeting:7002", "upload:7003", "udp_ack:7004",
      "hear_me:7005", "http:8080" }, ports)
    local banner = read_file("examples/demo.sh")
    for _, want in ipairs { "tcp 7000", "udp 7000", "tcp 7001", "tcp 7002", "tcp 7003",
      "udp 7004", "hear_me   tcp 7005", "8080" } do
      assert.truthy(banner:find(want, 1, true), "demo.sh banner lacks " .. want)
    end
  end)
end)

describe("examples/greeting_client.lua", function()
  it("prints the welcome and one reply per name, as the tutorial client does", function()
    local srv = hs.start { "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0" }
    local out, rc = run(("lua5.4 examples/greeting_client.lua --port %d Alice 世界")
      :format(srv:port()))
    assert.equals(0, rc, out)
    assert.equals("welcome!\nhello, Alice!\nhello, 世界!\n", out)
    assert.is_true(srv:stop())
  end)
end)

describe("examples/hear_me.lua", function()
  it("answers the tutorial client's question with Yes and closes", function()
    local srv = hs.start { "examples/hear_me.lua", "--listen", "tcp://127.0.0.1:0" }
    -- The tutorial's client: connect, sendall, one recv(1024), close.
    local out, rc = run(("lua5.4 examples/hear_me_client.lua --port %d"):format(srv:port()))
    assert.equals(0, rc, out)
    assert.equals("Yes\n", out)
    srv:wait_log('asks "can you hear me%?"')
    assert.is_true(srv:stop())
  end)

  it("waits for the whole question, sends exactly Yes, then the close", function()
    local srv = hs.start { "examples/hear_me.lua", "--listen", "tcp://127.0.0.1:0" }
    local c = srv:tcp()
    assert(c:send("can you "))
    c:settimeout(0.1)
    assert.same({ nil, "timeout", "" }, { c:receive(1) }) -- half a question: no answer yet
    c:settimeout(5)
    assert(c:send("hear me?"))
    assert.same({ "Yes", "closed" }, { hs.recv_all(c) })
    c:close()
    assert.is_true(srv:stop())
  end)
end)

describe("examples/udp_ack.lua", function()
  it("answers every datagram with the acknowledgement, and logs what it got", function()
    local srv = hs.start { "examples/udp_ack.lua", "--listen", "udp://127.0.0.1:0" }
    local u = srv:udp()
    assert(u:send("hi"))
    assert.equals("好的", u:receive())
    assert(u:send("again"))
    assert.equals("好的", u:receive())
    srv:wait_log('says "again"')
    u:close()
    assert.is_true(srv:stop())
  end)

  it("takes its text as an option", function()
    local srv = hs.start { "examples/udp_ack.lua", "--listen", "udp://127.0.0.1:0",
      "--set", "text=ok" }
    local u = srv:udp()
    assert(u:send("hi"))
    assert.equals("ok", u:receive())
    u:close()
    assert.is_true(srv:stop())
  end)
end)

describe("--log-level", function()
  -- A connection's open and close are debug lines: there at debug, absent at info.
  local function opens_logged(level)
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "--log-level", level }
    local c = srv:tcp()
    assert(c:send("x\n"))
    assert.equals("x", hs.recv_line(c))
    c:close()
    -- The close is logged at debug after the echo; at info, the stop line is the marker.
    assert.is_true(srv:stop())
    return srv:log():find(" open %(") ~= nil, srv:log()
  end

  it("debug shows each connection's open, info does not", function()
    local at_debug, log = opens_logged("debug")
    assert.is_true(at_debug, log)
    local at_info, log2 = opens_logged("info")
    assert.is_false(at_info, log2)
  end)

  it("rejects a level it does not know as a usage error (status 2), saying what it takes", function()
    local out, rc = run(hs.shquote(hs.bin) .. " serve scripts/echo.lua --log-level loud")
    assert.equals(2, rc, out)
    assert.equals("hotsock: --log-level must be debug, info, warn or error\n", out)
  end)
end)
