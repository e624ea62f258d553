-- The error tokens: the core's table (core/errtok.c), the manual's table
-- (docs/lua-api.md#error-tokens) and the LuaCATS alias (lua/types/hotsock.lua) list the same
-- tokens in the same order; no Lua binding pushes a failure string of its own; shipped
-- scripts and modules compare only listed tokens; and a few failures seen from a real
-- script, among them the ones where two mappers used to disagree.
local kit = require "hotsock.testkit"

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

-- The tokens in order of first appearance, each once.
local function unique(list)
  local seen, out = {}, {}
  for _, t in ipairs(list) do
    if not seen[t] then
      seen[t] = true
      out[#out + 1] = t
    end
  end
  return out
end

local function c_table()
  local src = read("core/errtok.c")
  local body = assert(src:match("static const struct errtok table%[%] = (%b{})"), "no table in errtok.c")
  local list = {}
  for code, tok in body:gmatch("{%s*([%w_%-]+)%s*,%s*\"([^\"]*)\"%s*}") do
    assert(code:match("^%-?[A-Z][A-Z0-9_]*$"), "odd code " .. code)
    list[#list + 1] = tok
  end
  return unique(list), #list
end

local function doc_table()
  local doc = read("docs/lua-api.md")
  local sec = assert(doc:match("\n## Error tokens\n(.-)\n## "), "no '## Error tokens' section")
  local list = {}
  for tok in sec:gmatch("\n| `\"([^\"]+)\"` |") do list[#list + 1] = tok end
  return list
end

local function types_alias()
  local text = read("lua/types/hotsock.lua")
  local alias = assert(text:match("%-%-%-@alias hotsock%.ErrorToken\n(.-)\n\n"), "no hotsock.ErrorToken")
  local list = {}
  for tok in alias:gmatch("%-%-%-| \"([^\"]+)\"") do list[#list + 1] = tok end
  return list
end

describe("error tokens", function()
  it("are the same list in the core, the manual and the types", function()
    local c, entries = c_table()
    assert.is_true(entries >= #c and #c >= 30, "the C table looks empty")
    assert.are.same(c, doc_table())
    assert.are.same(c, types_alias())
  end)

  it("reach Lua only through the table", function()
    local bad = {}
    for path in io.popen("ls core/*.c core/*.h"):lines() do
      local src = read(path)
      -- nil followed by a literal string: a token that bypasses core/errtok.c.
      -- (lua_pushfstring's messages, json's, are documented as messages, not tokens.)
      for fn, lit in src:gmatch("luaL_pushfail%([^)]*%);%s*lua_push(%a+)%([^,]+,%s*(\"[^\"]*\")") do
        if fn ~= "fstring" then bad[#bad + 1] = path .. ": " .. lit end
      end
      -- hs_strerror's words (the C library's for an errno) handed to a script.
      for line in src:gmatch("[^\n]*lua_push%a*%([^\n]*hs_strerror[^\n]*") do
        bad[#bad + 1] = path .. ": " .. line
      end
    end
    assert.are.same({}, bad)
  end)

  it("are the only ones shipped scripts and modules compare", function()
    local known = {}
    for _, t in ipairs((c_table())) do known[t] = true end
    known["system error"] = true -- err:match("^system error")
    local paths = {}
    local files = io.popen("ls scripts/*.lua lua/hotsock/*.lua examples/*.lua examples/*/*.lua 2>/dev/null")
    for path in files:lines() do paths[#paths + 1] = path end
    files:close()
    -- A token a shipped Lua file returns itself (`return nil, "rate limited"`) is that
    -- module's own, documented with it; comparing it is the module's business.
    for _, path in ipairs(paths) do
      for tok in read(path):gmatch("return nil, \"([^\"]+)\"") do known[tok] = true end
    end
    local bad = {}
    for _, path in ipairs(paths) do
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        -- err == "x", e ~= "x", perr == "x": a variable named like an error result.
        for var, tok in line:gmatch("([%w_]*err[%w_]*)%s*[=~]=%s*\"([^\"]*)\"") do
          if not known[tok] then bad[#bad + 1] = ("%s:%d: %s == %q"):format(path, n, var, tok) end
        end
        for tok in line:gmatch("%f[%w_]e%s*[=~]=%s*\"([^\"]*)\"") do
          if not known[tok] then bad[#bad + 1] = ("%s:%d: e == %q"):format(path, n, tok) end
        end
      end
    end
    assert.are.same({}, bad)
  end)

  describe("seen from a script", function()
    local srv, c, dir
    setup(function()
      dir = kit.tmpdir()
      srv = kit.start("tests/fixtures/errtok.lua")
      c = srv:connect()
    end)
    teardown(function()
      if c then c:close() end
      if srv then srv:stop() end
      if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    local function ask(line)
      c:send_line(line)
      return c:line()
    end

    it("name one cause with one token, whichever call meets it", function()
      -- A missing Unix socket was "no such file" for connect and udp, "not found" for a file
      -- or a key: one errno, one token.
      assert.are.equal("not found", ask("connect_unix " .. dir))
      assert.are.equal("not found", ask("udp_unix " .. dir))
      assert.are.equal("not a number", ask("incr_string"))
      assert.are.equal("is a list", ask("get_list"))
      assert.are.equal("too large", ask("publish_big"))
    end)

    it("say closed on a conn kept past its connection", function()
      local k = srv:connect()
      k:send_line("keep")
      assert.are.equal("kept", k:line())
      k:close()
      -- Until the server has seen the close, the send still succeeds ("ok").
      kit.wait_until(function() return ask("send_kept") ~= "ok" end, 5, "the kept conn to close")
      assert.are.equal("closed", ask("send_kept"))
    end)
  end)
end)
