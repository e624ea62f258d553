-- `hotsock new NAME`: the starter handler and its spec are written, the handler loads, and
-- the generated spec passes under busted against the real binary.
local kit = require "hotsock.testkit"

local function in_dir(dir, cmd)
  return kit.run(("cd %s && %s 2>&1"):format(kit.shquote(dir), cmd))
end

-- The repository's absolute path (the spec runs from it) for LUA_PATH to find the kit.
local ROOT = (kit.run("pwd"):gsub("%s+$", ""))
local BIN = kit.bin:sub(1, 1) == "/" and kit.bin or ROOT .. "/" .. kit.bin

describe("hotsock new", function()
  local dir

  before_each(function() dir = kit.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. kit.shquote(dir)) end)

  it("writes NAME.lua and NAME_spec.lua, and the spec passes", function()
    local out, rc = in_dir(dir, kit.shquote(BIN) .. " new chat")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("wrote chat.lua and chat_spec.lua", 1, true))
    local handler = kit.read_file(dir .. "/chat.lua")
    local spec = kit.read_file(dir .. "/chat_spec.lua")
    assert.truthy(handler:find('name = "chat"', 1, true))
    assert.truthy(handler:find("---@type hotsock.Handler", 1, true))
    assert.truthy(spec:find('require "hotsock.testkit"', 1, true))
    assert.is_nil(handler:find("NAME", 1, true))
    assert.is_nil(spec:find("NAME", 1, true))

    out, rc = in_dir(dir, kit.shquote(BIN) .. " check chat.lua")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("chat.lua: ok (chat, listens on tcp://127.0.0.1:7100, sandbox standard)", 1, true), out)

    -- What the user runs, from another directory to prove the spec finds its handler.
    out, rc = kit.run(("cd / && HOTSOCK_BIN=%s LUA_PATH=%s lua5.4 /usr/bin/busted -o TAP %s 2>&1")
      :format(kit.shquote(BIN), kit.shquote(ROOT .. "/lua/?.lua;;"),
              kit.shquote(dir .. "/chat_spec.lua")))
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("\n1..5", 1, true), out)
    assert.is_nil(out:find("not ok", 1, true), out)
  end)

  it("never overwrites, and refuses names that are not plain identifiers", function()
    local out, rc = in_dir(dir, kit.shquote(BIN) .. " new svc")
    assert.are.equal(0, rc, out)
    kit.write(dir .. "/svc.lua", "-- mine\n")
    out, rc = in_dir(dir, kit.shquote(BIN) .. " new svc")
    assert.are.equal(1, rc)
    assert.truthy(out:find("exists already; not overwriting", 1, true), out)
    assert.are.equal("-- mine\n", kit.read_file(dir .. "/svc.lua"))
    for _, bad in ipairs { "a/b", "../x", "1abc", "", "-x" } do
      out, rc = in_dir(dir, kit.shquote(BIN) .. " new " .. kit.shquote(bad))
      assert.are.equal(2, rc, bad .. ": " .. out)
    end
    out = in_dir(dir, "ls")
    assert.are.equal("svc.lua\nsvc_spec.lua\n", out)
  end)
end)
