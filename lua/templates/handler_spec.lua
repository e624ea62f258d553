-- Specs of NAME.lua, run against the real server by the hotsock test kit:
--   busted --lua=lua5.4 NAME_spec.lua
-- (with hotsock installed; from a source tree, set HOTSOCK_BIN=path/to/hotsock and
-- LUA_PATH="path/to/hotsock/lua/?.lua;;").
local kit = require "hotsock.testkit"

-- The handler next to this spec, wherever busted runs from.
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local SCRIPT = here .. "NAME.lua"

describe("NAME", function()
  local srv

  before_each(function()
    -- An ephemeral port on 127.0.0.1 instead of the script's own listen address.
    srv = kit.start(SCRIPT)
  end)
  after_each(function()
    srv:stop()
  end)

  it("greets, then answers PING and ECHO", function()
    local c = srv:connect()
    assert.are.equal("hello from NAME", c:line())
    c:send_line("PING")
    assert.are.equal("PONG", c:line())
    c:send_line("ECHO hi there")
    assert.are.equal("hi there", c:line())
    c:close()
  end)

  it("counts this connection's commands, however they are split into packets", function()
    local c = srv:connect()
    c:line()
    c:send("PI")
    c:send("NG\nCOU")
    c:send("NT\n")
    assert.are.equal("PONG", c:line())
    assert.are.equal("2", c:line())
    c:close()
  end)

  it("says BYE and closes on QUIT", function()
    local c = srv:connect()
    c:line()
    c:send_line("QUIT")
    assert.are.equal("BYE", c:line())
    assert.is_true(c:closed())
    c:close()
  end)

  it("refuses an unknown command and logs it", function()
    local c = srv:connect()
    c:line()
    c:send_line("DANCE")
    assert.are.equal("ERR unknown command", c:line())
    srv:wait_log("unknown command from .* DANCE")
    c:close()
  end)

  it("takes its greeting from an option", function()
    local other = kit.start(SCRIPT, { set = { greeting = "hi" } })
    local c = other:connect()
    assert.are.equal("hi", c:line())
    c:close()
    other:stop()
  end)
end)
