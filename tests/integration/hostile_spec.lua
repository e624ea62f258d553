-- Handlers that throw, loop forever or eat memory, over real connections: the connection
-- concerned is closed with a log line naming script:line, and every other client is served.
-- The last cases turn each limit off (flag at 0) and show the same script then takes the
-- server down with it, so these tests fail without their defence.
local hs = require "hsserver"
local socket = require "socket"

local SCRIPT = "tests/fixtures/hostile.lua"

local function start(...)
  return hs.start { SCRIPT, "--listen", "tcp://127.0.0.1:0", "--control", "none", ... }
end

local function ping(c, text)
  assert(c:send(text .. "\n"))
  return c:receive("*l")
end

-- Sends a command and expects the server to close the connection without an answer.
local function expect_closed(c, cmd)
  assert(c:send(cmd .. "\n"))
  local data, err, partial = c:receive("*a")
  assert.equals("", data or partial)
  assert.is_true(data ~= nil or err == "closed", "connection still open: " .. tostring(err))
end

describe("hostile handlers", function()
  local srv, other
  setup(function()
    srv = start("--lua-time-limit", "0.3", "--lua-memory", "16m")
    other = srv:tcp()
    assert.equals("before", ping(other, "before"))
  end)
  teardown(function()
    if other then other:close() end
    if srv then assert.is_true(srv:stop()) end
  end)

  it("a throw closes that connection, logged with script:line and peer", function()
    local c = srv:tcp()
    expect_closed(c, "throw")
    srv:wait_log("handler error in on_message %(conn#%d+ 127%.0%.0%.1:%d+%): "
      .. "tests/fixtures/hostile%.lua:9: thrown on purpose")
    assert.equals("still", ping(other, "still"))
    c:close()
  end)

  it("an endless loop is interrupted after the time limit, naming the loop's line", function()
    local c = srv:tcp()
    local t0 = socket.gettime()
    expect_closed(c, "loop")
    local took = socket.gettime() - t0
    assert.is_true(took < 3, "took " .. took .. " s")
    srv:wait_log("tests/fixtures/hostile%.lua:11: time limit exceeded %(300 ms%)")
    assert.equals("after loop", ping(other, "after loop"))
    c:close()
  end)

  it("other clients wait at most about the time limit while a loop runs", function()
    local c = srv:tcp()
    assert(c:send("loop\n"))
    local t0 = socket.gettime()
    assert.equals("meanwhile", ping(other, "meanwhile"))
    assert.is_true(socket.gettime() - t0 < 2)
    c:close()
  end)

  it("a memory bomb fails at the ceiling with script:line; the server's memory comes back",
    function()
      -- Its own server with a long time limit: filling 16 MiB under ASan on a busy machine
      -- can take longer than the 0.3 s above, and this case is about the memory limit.
      local msrv = start("--lua-time-limit", "20", "--lua-memory", "16m")
      local bystander = msrv:tcp()
      assert.equals("hi", ping(bystander, "hi"))
      local c = msrv:tcp(nil, nil, 30)
      expect_closed(c, "grow 100000")
      msrv:wait_log("tests/fixtures/hostile%.lua:15: memory limit exceeded %(16 MiB%)")
      assert.equals("after bomb", ping(bystander, "after bomb"))
      -- Within the ceiling the same code works, on a fresh connection, at once.
      local d = msrv:tcp(nil, nil, 30)
      assert.equals("grew 8", ping(d, "grow 8"))
      d:close()
      c:close()
      bystander:close()
      assert.is_true(msrv:stop())
    end)

  it("a timer that loops is interrupted too; its connection and the others go on", function()
    local c = srv:tcp()
    assert.equals("armed", ping(c, "timer"))
    srv:wait_log("handler error in timer: tests/fixtures/hostile%.lua:18: time limit exceeded")
    assert.equals("same conn", ping(c, "same conn"))
    assert.equals("other conn", ping(other, "other conn"))
    c:close()
  end)

  it("keeps serving after many hostile connections in a row", function()
    for i = 1, 10 do
      local c = srv:tcp()
      expect_closed(c, ({ "throw", "loop", "grow 100000" })[i % 3 + 1])
      c:close()
    end
    assert.equals("last", ping(other, "last"))
    local fresh = srv:tcp()
    assert.equals("fresh", ping(fresh, "fresh"))
    fresh:close()
  end)
end)

describe("hostile handlers without the limits", function()
  it("--lua-time-limit 0: a loop holds the whole server (the defence is what saves it)",
    function()
      local srv = start("--lua-time-limit", "0")
      local other = srv:tcp()
      assert.equals("x", ping(other, "x"))
      local c = srv:tcp()
      assert(c:send("loop\n"))
      srv:wait_log("looping")
      other:settimeout(1)
      local line, err = ping(other, "y")
      assert.is_nil(line)
      assert.equals("timeout", err)
      srv:kill()
      srv:wait_exit()
      c:close()
      other:close()
    end)

  it("--lua-memory 0: the same bomb size that was refused is allowed", function()
    -- A generous time limit: under ASan on a busy machine 48 MiB may take over a second.
    local srv = start("--lua-memory", "0", "--lua-time-limit", "20")
    local c = srv:tcp(nil, nil, 30)
    assert.equals("grew 48", ping(c, "grow 48"))
    c:close()
    assert.is_true(srv:stop())
  end)
end)
