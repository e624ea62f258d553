-- Handlers suspended in bulk: N connections whose handlers all wait in conn:receive at once
-- (the memory each costs, read from RSS), and a reload while 1,000 of them wait: each finishes
-- on the version that started it, none is lost. N is 2,000 here to keep CI quick;
-- HS_SUSPENDED_N=10000 busted ... measures the figure given in docs/coroutines.md.
local kit = require "hotsock.testkit"

local N = tonumber(os.getenv("HS_SUSPENDED_N")) or 2000

-- Opens n clients of srv.
local function open(srv, n)
  local cs = {}
  for i = 1, n do cs[i] = srv:tcp() end
  return cs
end

-- How many handlers of the current version wait, and how many connections are open (the
-- asking one included), asked on a connection of its own.
local function parked(srv)
  local c = srv:tcp()
  c:send("count\n")
  local n, conns = c:receive("*l"):match("^(%d+) (%d+)$")
  c:close()
  return tonumber(n), tonumber(conns)
end

local function park_all(srv, cs)
  for _, c in ipairs(cs) do assert(c:send("park\n")) end
  kit.wait_until(function() return parked(srv) == #cs end, 30, #cs .. " handlers to wait")
end

-- Sends each client its line and checks every answer.
local function release(cs, want)
  for i, c in ipairs(cs) do assert(c:send("go" .. i .. "\n")) end
  for i, c in ipairs(cs) do
    assert.equals("go" .. i .. " " .. want, c:receive("*l"))
    c:close()
  end
end

describe("suspended handlers", function()
  it(N .. " at once: each costs a bounded few KiB, and all answer", function()
    local srv = kit.start("tests/fixtures/park.lua",
      { args = { "--max-connections", tostring(N + 100), "--max-per-peer", tostring(N + 100) } })
    local cs = open(srv, N)
    kit.wait_until(function() return select(2, parked(srv)) == N + 1 end, 30,
      "the clients to be accepted")
    collectgarbage()
    local rss0 = srv:memory()
    park_all(srv, cs)
    local rss1 = srv:memory()
    local per = (rss1 - rss0) * 1024 / N
    print(("# %d suspended handlers: RSS %d -> %d KiB, %.0f bytes each"):format(N, rss0, rss1,
      per))
    assert.is_true(per < 8192, ("%.0f bytes per suspended handler"):format(per))
    release(cs, "gen1")
    assert.equals(0, parked(srv))
    assert.is_true(srv:stop())
  end)

  it("a reload while 1,000 wait: each finishes on its own version, none lost", function()
    local dir = kit.tmpdir()
    local script = dir .. "/park.lua"
    kit.write(script, kit.read_file("tests/fixtures/park.lua"))
    local srv = kit.start(script, { args = { "--max-per-peer", "2000" } })
    local old = open(srv, 1000)
    park_all(srv, old)
    local ok, report = srv:reload()
    assert.is_true(ok, report)
    -- The new version counts only its own handlers.
    assert.equals(0, parked(srv))
    local new = open(srv, 10)
    park_all(srv, new)
    release(old, "gen1")
    release(new, "gen2")
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)
end)
