-- The README's quick start as one flow, the way a new user runs it: hotsock new, busted on the
-- generated spec, serve, edit, reload by script name (the default per-instance control
-- socket, no --control), and stats by script name showing both generations.
local kit = require "hotsock.testkit"

local ROOT = (kit.run("pwd"):gsub("%s+$", ""))
local BIN = kit.bin:sub(1, 1) == "/" and kit.bin or ROOT .. "/" .. kit.bin

local function in_dir(dir, cmd)
  return kit.run(("cd %s && %s 2>&1"):format(kit.shquote(dir), cmd))
end

describe("the quick start", function()
  local dir, srv

  before_each(function() dir = kit.tmpdir() end)
  after_each(function()
    if srv then srv:stop() end
    os.execute("rm -rf " .. kit.shquote(dir))
  end)

  it("runs new -> busted -> serve -> edit -> reload -> stats", function()
    local out, rc = in_dir(dir, kit.shquote(BIN) .. " new chat")
    assert.are.equal(0, rc, out)

    out, rc = in_dir(dir, ("HOTSOCK_BIN=%s LUA_PATH=%s busted --lua=lua5.4 chat_spec.lua")
      :format(kit.shquote(BIN), kit.shquote(ROOT .. "/lua/?.lua;;")))
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("5 successes / 0 failures / 0 errors", 1, true), out)

    -- Served as the README says, on an ephemeral port instead of 7100, with the default
    -- control socket of this instance.
    local script = dir .. "/chat.lua"
    srv = kit.start({ script, "--workers", "1", "--listen", "tcp://127.0.0.1:0" })
    local old = srv:tcp()
    assert.are.equal("hello from chat", kit.recv_line(old))
    assert(old:send("PING\n"))
    assert.are.equal("PONG", kit.recv_line(old))

    -- Make it yours: edit, save, reload by name.
    local text = kit.read_file(script)
    local edited, n = text:gsub('conn:send%("PONG\\n"%)', 'conn:send("PONG, edited\\n")')
    assert.are.equal(1, n, "the starter's PING answer moved; update this spec")
    kit.write(script, edited)
    out, rc = in_dir(dir, kit.shquote(BIN) .. " reload chat.lua")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("generation 2", 1, true), out)

    -- New connections run the new code; the live one keeps its version.
    local new = srv:tcp()
    assert.are.equal("hello from chat", kit.recv_line(new))
    assert(new:send("PING\n"))
    assert.are.equal("PONG, edited", kit.recv_line(new))
    assert(old:send("PING\n"))
    assert.are.equal("PONG", kit.recv_line(old))

    out, rc = in_dir(dir, kit.shquote(BIN) .. " stats chat.lua")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("\nchat%s+2 current%s+1%s+1 "), out)
    assert.truthy(out:find("\nchat%s+1 old%s+1%s+1 "), out)
    old:close()
    new:close()
  end)
end)
