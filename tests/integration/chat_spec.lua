-- examples/chat: the browser chat over WebSocket, on two workers. Raw WebSocket clients check
-- the protocol (every line reaches every browser, whichever worker holds it; who is online;
-- a taken name), then two headless Chromium pages chat with each other.
local hs = require "hotsock.testkit"
local ws = require "wsclient"
local json = require "cjson"

local function start()
  return hs.start("examples/chat/chat.lua", { workers = 2, prefix = "HOTSOCK_REUSEPORT=1" })
end

-- Reads JSON messages until one satisfies want (bounded by the socket timeout).
local function until_msg(c, want)
  for _ = 1, 50 do
    local f = assert(c:read())
    local m = json.decode(f.payload)
    if want(m) then return m end
  end
  error("no such message")
end

describe("examples/chat", function()
  it("serves its page", function()
    local srv = start()
    local c = srv:tcp()
    c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.matches("<title>hotsock chat</title>", hs.recv_all(c))
    srv:stop()
  end)

  it("gives every line to every browser, on both workers, and lists who is online", function()
    local srv = start()
    -- Connect until both workers hold someone (each has its own listening socket).
    local users, on = {}, {}
    for i = 1, 30 do
      local c = ws.connect(srv:port(), "/ws?name=u" .. i)
      local hello = until_msg(c, function(m) return m.type == "hello" end)
      users[#users + 1] = { c = c, name = "u" .. i }
      on[hello.worker] = true
      if on[1] and on[2] and #users >= 3 then break end
    end
    assert.is_true(on[1] and on[2], "every connection landed on one worker")
    for _, u in ipairs(users) do
      local who = until_msg(u.c, function(m) return m.type == "who" and #m.names == #users end)
      assert.are.equal(#users, #who.names)
    end
    users[1].c:send(ws.frame(1, "hello room"))
    for _, u in ipairs(users) do
      local m = until_msg(u.c, function(x) return x.type == "msg" end)
      assert.are.same({ "u1", "hello room" }, { m.from, m.text })
    end
    -- A taken name is refused with 4001.
    local dup = ws.connect(srv:port(), "/ws?name=u1")
    until_msg(dup, function(m) return m.type == "error" and m.text == "name taken" end)
    assert.are.equal(4001, (dup:read_close()))
    -- One leaves: the others see the shorter list.
    users[2].c:send(ws.close_frame(1000))
    users[2].c:read_close()
    local who = until_msg(users[1].c, function(m) return m.type == "who" and #m.names == #users - 1 end)
    for _, n in ipairs(who.names) do assert.are_not.equal(users[2].name, n) end
    for _, u in ipairs(users) do u.c:close() end
    srv:stop()
  end)

  local chromium = io.open("/usr/bin/chromium", "rb")
  if chromium then chromium:close() end
  if not chromium then
    pending("chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    return
  end

  it("lets two Chromium pages chat with each other", function()
    local srv = start()
    local dir = hs.tmpdir()
    for _, p in ipairs { { "alice", "bob" }, { "bob", "alice" } } do
      local url = ("http://127.0.0.1:%d/?name=%s&say=hello-from-%s&peer=%s"):format(srv:port(), p[1], p[1], p[2])
      -- The page sends "hello-from-NAME" once its peer is online and answers every line from
      -- the other page with "seen:FROM:TEXT"; the server logs both. The browser stays up (remote
      -- debugging) until killed below, or by timeout after 90 s at worst.
      local cmd = ("echo $$ > %s/%s.pid; exec timeout 90 /usr/bin/chromium --headless --no-sandbox " ..
        "--disable-gpu --disable-background-networking --disable-component-update --disable-sync " ..
        "--no-first-run --user-data-dir=%s/%s --remote-debugging-port=0 %s >%s/%s.log 2>&1")
        :format(dir, p[1], dir, p[1], hs.shquote(url), dir, p[1])
      os.execute("sh -c " .. hs.shquote(cmd) .. " &")
    end
    local ok, err = pcall(function()
      srv:wait_log("chat alice: seen:bob:hello%-from%-bob", 60)
      srv:wait_log("chat bob: seen:alice:hello%-from%-alice", 60)
    end)
    for _, n in ipairs { "alice", "bob" } do
      local pid = hs.wait_until(function() return tonumber(hs.read_file(dir .. "/" .. n .. ".pid")) end, 10)
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
    assert(ok, err)
    hs.run("rm -rf " .. hs.shquote(dir))
    srv:stop()
  end)
end)
