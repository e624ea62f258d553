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
    -- The HTTPS listener's certificate, as demo.sh makes it on its first run.
    assert.equals(0, select(2, run("bash examples/demo-cert.sh")))
    local out, rc = run(hs.shquote(hs.bin) .. " check --config examples/demo.lua")
    assert.equals(0, rc, out)
    assert.truthy(out:find("cert /tmp/hotsock-demo-tls/cert.pem: subject /CN=localhost", 1, true),
      out)
    local ports = {}
    for name, port in out:gmatch("ok %(([%w_]+), listens on %a+://127%.0%.0%.1:(%d+)") do
      ports[#ports + 1] = name .. ":" .. port
    end
    assert.same({ "echo:7000", "greeting:7001", "greeting:7002", "upload:7003", "udp_ack:7004",
      "hear_me:7005", "chat:7006", "webchat:8081", "http:8080" }, ports)
    local banner = read_file("examples/demo.sh")
    for _, want in ipairs { "tcp 7000", "udp 7000", "tcp 7001", "tcp 7002", "tcp 7003",
      "udp 7004", "hear_me   tcp 7005", "chat      tcp 7006", "webchat   tcp 8081", "8080",
      "https 8443" } do
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

describe("examples/chat_tcp.lua", function()
  -- The number of connections each worker holds, from the stats.
  local function per_worker(srv)
    local n = {}
    for _, r in ipairs(srv:stats("process")) do n[tonumber(r.worker)] = tonumber(r.connections) end
    return n
  end

  it("is a chat room for 6 users spread over 2 workers", function()
    local srv = hs.start("examples/chat_tcp.lua", { workers = 2, prefix = "HOTSOCK_REUSEPORT=1" })
    -- Three users on each worker: a connection that lands on a full worker is closed before
    -- it says anything.
    local users, count = {}, { 0, 0 }
    for _ = 1, 200 do
      local before = per_worker(srv)
      local c = srv:connect()
      assert.equals("nickname?", c:line())
      local now = per_worker(srv)
      local w = now[1] > before[1] and 1 or 2
      if count[w] < 3 then
        count[w] = count[w] + 1
        users[#users + 1] = c
      else
        c:close()
        hs.wait_until(function() return per_worker(srv)[w] == before[w] end)
      end
      if #users == 6 then break end
    end
    assert.same({ 3, 3 }, count)
    -- Each joins in turn; every connected user sees it (the room is visible before one has
    -- picked a name), the newcomer included.
    for i, c in ipairs(users) do
      c:send_line("user" .. i)
      for _, u in ipairs(users) do assert.equals("* user" .. i .. " joined", u:line()) end
    end
    -- A taken nickname is refused.
    local late = srv:connect()
    assert.equals("nickname?", late:line())
    late:send_line("user2")
    assert.equals("nickname taken or not a word, another?", late:line())
    late:close()
    -- Everyone talks at once: each sees all six lines, each sender's in its order.
    for i, c in ipairs(users) do
      c:send_line("hi from " .. i)
      c:send_line("bye from " .. i)
    end
    for _, c in ipairs(users) do
      local seen = {}
      for _ = 1, 12 do seen[#seen + 1] = c:line() end
      for i = 1, 6 do
        local hi, bye
        for k, l in ipairs(seen) do
          if l == "user" .. i .. ": hi from " .. i then hi = k end
          if l == "user" .. i .. ": bye from " .. i then bye = k end
        end
        assert.truthy(hi and bye and hi < bye, table.concat(seen, "\n"))
      end
    end
    -- One leaves: the others are told, and the nickname is free again.
    users[3]:close()
    for i, c in ipairs(users) do
      if i ~= 3 then assert.equals("* user3 left", c:line()) end
    end
    local again = srv:connect()
    assert.equals("nickname?", again:line())
    again:send_line("user3")
    assert.equals("* user3 joined", again:line())
    again:close()
    for i, c in ipairs(users) do if i ~= 3 then c:close() end end
    assert.is_true(srv:stop())
  end)
end)
