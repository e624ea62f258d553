-- The handler test kit's own helpers (lua/hotsock/testkit.lua), where a spec found them wrong.
local kit = require "hotsock.testkit"

describe("kit.read_file", function()
  it("reads a file whole, and a missing one as empty", function()
    local dir = kit.tmpdir()
    kit.write(dir .. "/f", "a\0b")
    assert.equals("a\0b", kit.read_file(dir .. "/f"))
    assert.equals("", kit.read_file(dir .. "/missing"))
  end)

  -- upgrade_spec once failed on a /proc/PID/stat whose process was reaped between the open and
  -- the read; a directory fails the same way: it opens, and the read fails.
  it("reads a file that opens but cannot be read as empty", function()
    assert.equals("", kit.read_file(kit.tmpdir()))
  end)
end)

local function gone(pid) return not kit.pid_alive(pid) end

describe("srv:stop()", function()
  -- A failed upgrade spec once left a re-executed master and its two workers running for
  -- minutes: the kit stopped only the process it had started.
  it("after `hotsock upgrade` stops the process that serves now, workers and all", function()
    local srv = kit.start("scripts/echo.lua", { workers = 2 })
    local text = kit.run(("%s upgrade --control %s 2>&1"):format(kit.shquote(kit.bin),
      kit.shquote(srv.control)))
    local new = tonumber(text:match("ok upgraded: pid %d+ %-> (%d+)"))
    assert.is_not_nil(new, text)
    -- Its workers may still be starting when the upgrade answers.
    local workers
    kit.wait_until(function()
      workers = kit.run("pgrep -P " .. new)
      return workers:match("%d+")
    end, 10, "the new master's workers")
    assert.is_true(srv:stop())
    assert.is_true(gone(new), "the new master")
    for pid in workers:gmatch("%d+") do
      kit.wait_until(function() return gone(pid) end, 10, "worker " .. pid .. " to exit")
    end
  end)
end)

describe("srv:wait_log()", function()
  -- proxy_protocol_spec's HAProxy test once failed showing a log that ended before the wait
  -- began: the message was built then, and hid the lines that explained the failure.
  it("shows the log as it is at the timeout", function()
    local dir = kit.tmpdir()
    -- The line is written 1 s after a message, not after the script's load: a start slowed by
    -- a loaded machine once took longer than 0.3 s, and the line was there before the wait.
    -- 0.3 s after the message was still too short for a full parallel suite.
    kit.write(dir .. "/late.lua", [[
local hotsock = require "hotsock"
return { on_message = function(conn, m)
  hotsock.after(1, function() hotsock.log("info", "written during the wait") end)
  conn:send(m)
end }
]])
    local srv = kit.start(dir .. "/late.lua")
    local c = srv:connect()
    c:send("go")
    assert.equals("go", c:receive(2))
    assert.falsy(srv:log_has("written during the wait"))
    local ok, err = pcall(srv.wait_log, srv, "never logged", 3)
    assert.is_false(ok)
    assert.matches("written during the wait", err)
    c:close()
    srv:stop()
  end)
end)
