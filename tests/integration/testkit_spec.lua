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

-- Whether pid has exited (a zombie nobody has reaped yet has).
local function gone(pid)
  local state = kit.read_file("/proc/" .. pid .. "/stat"):match("^%d+ %b() (%a)")
  return state == nil or state == "Z"
end

describe("srv:stop()", function()
  -- A failed upgrade spec once left a re-executed master and its two workers running for
  -- minutes: the kit stopped only the process it had started.
  it("after `hotsock upgrade` stops the process that serves now, workers and all", function()
    local srv = kit.start("scripts/echo.lua", { workers = 2 })
    local text = kit.run(("%s upgrade --control %s 2>&1"):format(kit.shquote(kit.bin),
      kit.shquote(srv.control)))
    local new = tonumber(text:match("ok upgraded: pid %d+ %-> (%d+)"))
    assert.is_not_nil(new, text)
    local workers = kit.run("pgrep -P " .. new)
    assert.truthy(workers:match("%d+"), "the new master's workers")
    assert.is_true(srv:stop())
    assert.is_true(gone(new), "the new master")
    for pid in workers:gmatch("%d+") do
      kit.wait_until(function() return gone(pid) end, 10, "worker " .. pid .. " to exit")
    end
  end)
end)
