-- hotsock.spawn's task: task:wait joins the spawned function (its values, its error, a
-- timeout, several waiters), task:done, where waiting is impossible, and what forgotten tasks
-- cost.
local kit = require "hotsock.testkit"

describe("spawn: the task", function()
  local srv

  setup(function()
    srv = kit.start("tests/fixtures/spawn.lua")
  end)
  teardown(function()
    assert.is_true(srv:stop())
  end)

  local function ask(cmd, nlines)
    local c = srv:connect()
    c:send(cmd .. "\n")
    local lines = {}
    for i = 1, nlines or 1 do lines[i] = c:line() end
    c:close()
    return table.unpack(lines)
  end

  it("wait returns true and the function's values once it returned; again at once", function()
    local a, b = ask("values", 2)
    assert.equals("false true x nil 3", a)
    assert.equals("true true x nil 3", b)
  end)

  it("wait on a task that ended already answers at once", function()
    assert.equals("true true now", ask("finished"))
  end)

  it("a task that raised: nil and its message, and the error is logged as before", function()
    local a, b = ask("raises", 2)
    assert.matches("^nil tests/fixtures/spawn.lua:%d+: late boom$", a)
    assert.equals("true nil (error object is a table value)", b)
    srv:wait_log("handler error in spawned function, after waiting in hotsock.sleep at "
      .. "tests/fixtures/spawn.lua:%d+: tests/fixtures/spawn.lua:%d+: late boom")
  end)

  it("a timeout: nil, \"timeout\", and the task goes on to its end", function()
    local a, b, c = ask("timeout", 3)
    assert.equals("nil timeout", a)
    assert.equals("false nil timeout", b)
    assert.equals("true late", c)
  end)

  it("two waiters on one task both resume with its values", function()
    local a, b = ask("two", 2)
    assert.equals("this true v", a)
    assert.equals("other true v", b)
  end)

  it("the waiting handler's client leaves: nil, \"closed\", and the task goes on", function()
    local c = srv:connect()
    c:send("leave\n")
    assert.equals("waiting", c:line())
    -- A reset: a plain close would be a half-close, which a handler may still answer.
    c.sock:setoption("linger", { on = true, timeout = 0 })
    c:close()
    srv:wait_log("leave: nil closed false")
  end)

  it("a task cannot wait for itself", function()
    assert.matches("^true false task:wait: a task cannot wait for itself$",
      ask("self"))
  end)

  it("10,000 spawned-and-forgotten tasks leave Lua's memory flat after a collect", function()
    local line = ask("forget 10000")
    local m0, m1, m2 = line:match("^(%d+) (%d+) (%d+)$")
    m0, m1, m2 = tonumber(m0), tonumber(m1), tonumber(m2)
    assert.truthy(m2, line)
    -- The second round costs nothing over the first; the first at most the pool and the
    -- registry's grown arrays (bounded, not per task kept).
    assert.is_true(m2 - m1 < 16, line)
    assert.is_true(m1 - m0 < 512, line)
  end)
end)

describe("spawn: on_accept", function()
  it("task:wait cannot wait inside on_accept: the clear error", function()
    local srv = kit.start("tests/fixtures/spawn.lua", { set = { accept_waits = "1" } })
    local c = srv:connect()
    local rest, how = c:all()
    assert.equals("", rest)
    assert.equals("closed", how)
    srv:wait_log("task:wait cannot wait inside on_accept %(it must answer at once%)")
    c:close()
    assert.is_true(srv:stop())
  end)
end)
