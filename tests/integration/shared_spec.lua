-- Shared dictionaries over two workers (HOTSOCK_REUSEPORT=1 spreads clients): every call, a
-- full named dictionary leaving the default one and other scripts untouched, compare-and-set
-- with one winner per round under 8 clients, LRU order, TTL rules, stats; what top-level code
-- sees and how often it runs; a module shared by two scripts across a reload.
local hs = require "hsserver"
local cjson = require "cjson"

-- One JSON call on a connection: dict.fn(...) -> the array of its results (JSON text).
local function call(c, ...)
  assert(c:send(cjson.encode({ ... }) .. "\n"))
  return hs.recv_line(c)
end

-- A server of tests/fixtures/dict.lua on 2 workers, and one connection to each worker.
local function start(extra)
  local args = { "tests/fixtures/dict.lua", "--listen", "tcp://127.0.0.1:0", "--workers", "2",
    "--max-line", "256k" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local ctl = hs.tmpdir()
  args[#args + 1] = "--control"
  args[#args + 1] = ctl .. "/ctl"
  local srv = hs.start(args, { prefix = "HOTSOCK_REUSEPORT=1" })
  srv.tmp = ctl -- removed by srv:stop()
  local by_pid, conns = {}, {}
  for _ = 1, 400 do
    local c = srv:tcp()
    assert(c:send("who\n"))
    local pid = hs.recv_line(c)
    if not by_pid[pid] then
      by_pid[pid] = c
      conns[#conns + 1] = c
    else
      c:close()
    end
    if #conns == 2 then break end
  end
  assert(#conns == 2, "could not reach both workers")
  return srv, conns[1], conns[2]
end

describe("shared dictionaries over two workers", function()
  local srv, a, b
  setup(function()
    srv, a, b = start { "--shared", "small=64k:4k", "--shared", "other=256k" }
  end)
  teardown(function()
    a:close()
    b:close()
    srv:stop()
  end)

  it("get, set, add, replace, safe_set, delete across workers", function()
    assert.equals("[true]", call(a, "default", "set", "k", "v1"))
    assert.equals('["v1"]', call(b, "default", "get", "k"))
    assert.equals('[null,"exists"]', call(b, "default", "add", "k", "v2"))
    assert.equals("[true]", call(b, "default", "add", "k2", 42))
    assert.equals("[42]", call(a, "default", "get", "k2"))
    assert.equals('[null,"not found"]', call(a, "default", "replace", "nope", 1))
    assert.equals("[true]", call(a, "default", "replace", "k2", false))
    assert.equals("[false]", call(b, "default", "get", "k2"))
    assert.equals("[true]", call(b, "default", "safe_set", "k3", "s"))
    assert.equals("[true]", call(a, "default", "delete", "k3"))
    assert.equals("[null]", call(b, "default", "get", "k3"))
    assert.equals("[true]", call(a, "default", "set", "k", cjson.null)) -- nil deletes
    assert.equals("[null]", call(b, "default", "get", "k"))
    assert.equals('[null,"too large"]', call(a, "small", "set", "big", ("x"):rep(4097)))
    assert.equals("[true]", call(a, "small", "set", "big", ("x"):rep(4096)))
    assert.equals(cjson.encode({ ("x"):rep(4096) }), call(b, "small", "get", "big"))
    -- The default dictionary takes values of 64 KiB.
    local v = ("y"):rep(65536)
    assert.equals("[true]", call(a, "default", "set", "big", v))
    assert.equals(cjson.encode({ v }), call(b, "default", "get", "big"))
    assert.equals('[null,"too large"]', call(a, "default", "set", "big", v .. "y"))
    assert.equals("[true]", call(a, "default", "flush_all"))
    assert.equals("[[]]", call(b, "default", "keys"))
  end)

  it("both call styles, and an unknown dictionary raises", function()
    assert.equals("[\"default\"]", call(a, "default", "name"))
    assert.equals('["error: no shared dictionary \'nope\' (give it with --shared nope=SIZE)"]',
      call(a, "nope", "get", "x"))
  end)

  it("incr, cas, keys, ttl, expire", function()
    assert.equals("[5]", call(a, "default", "incr", "n", 5))
    assert.equals("[7]", call(b, "default", "incr", "n", 2))
    assert.equals("[101]", call(b, "default", "incr", "fresh", 1, 100))
    assert.equals("[true]", call(a, "default", "set", "s", "text"))
    assert.equals('[null,"not a number"]', call(a, "default", "incr", "s", 1))
    assert.equals("[true]", call(a, "default", "cas", "s", "text", "new"))
    assert.equals('[null,"changed"]', call(b, "default", "cas", "s", "text", "other"))
    assert.equals('[null,"changed"]', call(b, "default", "cas", "s", cjson.null, "other"))
    assert.equals("[true]", call(b, "default", "cas", "absent", cjson.null, 1))
    assert.equals("[true]", call(a, "default", "cas", "absent", 1, cjson.null))
    assert.equals("[null]", call(a, "default", "get", "absent"))
    -- keys: most recently used first, at most max.
    assert.equals('[["s","fresh"]]', call(a, "default", "keys", 2))
    assert.equals("[0]", call(a, "default", "ttl", "s"))
    assert.equals('[null,"not found"]', call(a, "default", "ttl", "absent"))
    assert.equals("[true]", call(a, "default", "expire", "s", 100))
    local ttl = cjson.decode(call(b, "default", "ttl", "s"))[1]
    assert.is_true(ttl > 99 and ttl <= 100, tostring(ttl))
    assert.equals('[null,"not found"]', call(b, "default", "expire", "absent", 1))
    assert.equals("[true]", call(a, "default", "flush_all"))
  end)

  it("keeps the TTL rules of the manual", function()
    -- set replaces the expiry, and without a ttl there is none.
    assert.equals("[true]", call(a, "default", "set", "t", 1, 50))
    assert.equals("[true]", call(b, "default", "set", "t", 2))
    assert.equals("[0]", call(a, "default", "ttl", "t"))
    -- incr: the ttl counts only when it creates the key.
    assert.equals("[1]", call(a, "default", "incr", "c", 1, 0, 50))
    assert.equals("[2]", call(b, "default", "incr", "c", 1, 0, 1000))
    local ttl = cjson.decode(call(a, "default", "ttl", "c"))[1]
    assert.is_true(ttl > 0 and ttl <= 50, tostring(ttl))
    -- Pushing to a list keeps its expiry.
    assert.equals("[1]", call(a, "default", "rpush", "l", "x"))
    assert.equals("[true]", call(a, "default", "expire", "l", 50))
    assert.equals("[2]", call(b, "default", "rpush", "l", "y"))
    ttl = cjson.decode(call(a, "default", "ttl", "l"))[1]
    assert.is_true(ttl > 0 and ttl <= 50, tostring(ttl))
    -- An entry goes when its time is up (seen from the other worker).
    assert.equals("[true]", call(a, "default", "set", "short", "v", 0.2))
    hs.wait_until(function() return call(b, "default", "get", "short") == "[null]" end, 5,
      "the entry to expire")
    assert.equals('[null,"not found"]', call(b, "default", "ttl", "short"))
    assert.equals("[true]", call(a, "default", "flush_all"))
  end)

  it("lists across workers", function()
    assert.equals("[1]", call(a, "default", "rpush", "q", "one"))
    assert.equals("[2]", call(b, "default", "rpush", "q", 2))
    assert.equals("[3]", call(a, "default", "lpush", "q", "zero"))
    assert.equals("[3]", call(b, "default", "llen", "q"))
    assert.equals('["zero"]', call(b, "default", "lpop", "q"))
    assert.equals("[2]", call(a, "default", "rpop", "q"))
    assert.equals('[null,"is a list"]', call(a, "default", "get", "q"))
    assert.equals('["one"]', call(a, "default", "lpop", "q"))
    assert.equals("[null]", call(b, "default", "lpop", "q"))
    assert.equals("[0]", call(b, "default", "llen", "q"))
    assert.equals("[true]", call(a, "default", "set", "str", "x"))
    assert.equals('[null,"not a list"]', call(a, "default", "lpush", "str", "y"))
    assert.equals('[null,"not a list"]', call(b, "default", "rpop", "str"))
    assert.equals('[null,"not a list"]', call(b, "default", "llen", "str"))
    assert.equals("[true]", call(a, "default", "flush_all"))
  end)

  it("evicts the least recently used entry first, and safe_set never evicts", function()
    local function evicted()
      for _, d in ipairs(srv:stats("dict")) do
        if d.name == "small" then return tonumber(d.evicted) end
      end
    end
    assert.equals("[true]", call(a, "small", "flush_all"))
    local before = evicted()
    local v = ("v"):rep(1000)
    local n = 0
    repeat
      assert.equals("[true]", call(a, "small", "set", "k" .. n, v))
      n = n + 1
    until evicted() > before
    assert.is_true(n > 40, tostring(n))
    assert.equals("[null]", call(b, "small", "get", "k0"))
    -- Reading k1 makes it recent: the next store evicts k2.
    assert.equals(cjson.encode({ v }), call(b, "small", "get", "k1"))
    assert.equals("[true]", call(a, "small", "set", "more", v))
    assert.equals("[null]", call(b, "small", "get", "k2"))
    assert.equals(cjson.encode({ v }), call(b, "small", "get", "k1"))
    local answers = {}
    for i = 1, 5 do answers[#answers + 1] = call(a, "small", "safe_set", "safe" .. i, v) end
    assert.equals('[null,"no memory"]', answers[#answers])
    assert.equals("[true]", call(a, "small", "flush_all"))
  end)

  it("reports size, used, free and evicted per dictionary in stats and metrics", function()
    assert.equals("[true]", call(a, "other", "set", "x", ("z"):rep(5000)))
    local other
    for _, d in ipairs(srv:stats("dict")) do if d.name == "other" then other = d end end
    assert.equals("262144", other.size)
    assert.is_true(tonumber(other.used) >= 5000)
    assert.equals(tonumber(other.capacity) - tonumber(other.used), tonumber(other.free))
    assert.equals("0", other.evicted)
    assert.equals("1", other.keys)
    local table_text = srv:command("stats")
    assert.matches("DICTIONARY%s+SIZE%s+USED%s+FREE%s+KEYS%s+EVICTED%s+EXPIRED%s+MAX VALUE",
      table_text)
    assert.matches("\nother%s+256.0 KiB ", table_text)
    local prom = srv:command("stats --prometheus")
    assert.matches('hotsock_shared_dict_size_bytes{dict="other"} 262144\n', prom, 1, true)
    assert.matches('hotsock_shared_dict_evicted_total{dict="small"} %d+\n', prom)
    assert.equals("[true]", call(a, "other", "flush_all"))
  end)
end)

describe("a full named dictionary", function()
  it("leaves the default dictionary and another script's state untouched", function()
    -- Two addresses that differ: with HOTSOCK_REUSEPORT=1, workers given two listeners of the
    -- same URL "tcp://127.0.0.1:0" both bind the first one's port (a bug of its own).
    local srv = hs.start({ "tests/fixtures/dict.lua", "--listen", "tcp://127.0.0.1:0",
      "tests/fixtures/shared.lua", "--listen", "tcp://127.0.0.2:0",
      "--workers", "2", "--shared", "small=64k", "--control", hs.tmpdir() .. "/ctl" },
      { prefix = "HOTSOCK_REUSEPORT=1" })
    local d = srv:tcp(1)
    local counter = srv:tcp(2)
    assert(counter:send("incr hits 10\n"))
    assert.equals("10", hs.recv_line(counter))
    assert.equals("[true]", call(d, "default", "set", "keep", "me"))
    -- Fill small far past its size, with and without safe_set.
    local v = ("f"):rep(2000)
    local nomem = 0
    for i = 1, 200 do
      assert.equals("[true]", call(d, "small", "set", "f" .. i, v))
      if call(d, "small", "safe_set", "s" .. i, v) == '[null,"no memory"]' then
        nomem = nomem + 1
      end
    end
    assert.is_true(nomem > 150, tostring(nomem))
    assert.equals('["me"]', call(d, "default", "get", "keep"))
    assert(counter:send("incr hits 5\n"))
    assert.equals("15", hs.recv_line(counter))
    for _, st in ipairs(srv:stats("dict")) do
      if st.name == "default" then assert.equals("0", st.evicted) end
      if st.name == "small" then assert.is_true(tonumber(st.evicted) > 100) end
    end
    d:close()
    counter:close()
    assert.is_true(srv:stop())
  end)
end)

describe("compare-and-set under 8 concurrent clients", function()
  it("gives exactly one winner per round", function()
    local srv = hs.start({ "tests/fixtures/dict.lua", "--listen", "tcp://127.0.0.1:0",
      "--workers", "2" }, { prefix = "HOTSOCK_REUSEPORT=1" })
    local clients = {}
    for i = 1, 8 do
      clients[i] = srv:tcp(nil, nil, 60)
      assert(clients[i]:send("who\n"))
      assert.truthy(hs.recv_line(clients[i])) -- connected and answered by a worker
    end
    local rounds = 300
    -- Every client sends every round at once; the workers race on each key.
    for i, c in ipairs(clients) do
      local lines = {}
      for r = 1, rounds do
        lines[r] = cjson.encode({ "default", "cas", "round" .. r, cjson.null, i })
      end
      assert(c:send(table.concat(lines, "\n") .. "\n"))
    end
    local wins = {}
    for _, c in ipairs(clients) do
      for r = 1, rounds do
        local ans = hs.recv_line(c)
        if ans == "[true]" then
          wins[r] = (wins[r] or 0) + 1
        else
          assert.equals('[null,"changed"]', ans)
        end
      end
    end
    for r = 1, rounds do assert.equals(1, wins[r], "round " .. r) end
    -- And the value is the winner's.
    local winners = {}
    for r = 1, rounds do
      winners[tonumber(cjson.decode(call(clients[1], "default", "get", "round" .. r))[1])] = true
    end
    local n = 0
    for _ in pairs(winners) do n = n + 1 end
    assert.is_true(n >= 1)
    for _, c in ipairs(clients) do c:close() end
    assert.is_true(srv:stop())
  end)
end)

describe("load time", function()
  local tmp
  before_each(function() tmp = hs.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. hs.shquote(tmp)) end)

  it("hotsock check runs a script that uses the dictionaries at load", function()
    hs.write(tmp .. "/boot.lua", [[
local hotsock = require "hotsock"
hotsock.shared.incr("loads", 1)
assert(hotsock.dict("cache").add("config", "v1"))
return { on_message = function() end }
]])
    local out, rc = hs.run(hs.shquote(hs.bin) .. " check " .. tmp .. "/boot.lua --shared cache=1m 2>&1")
    assert.equals(0, rc, out)
    assert.matches("boot.lua: ok", out)
    -- Without the dictionary, the script's own error is what check reports.
    out, rc = hs.run(hs.shquote(hs.bin) .. " check " .. tmp .. "/boot.lua 2>&1")
    assert.equals(1, rc)
    assert.matches("no shared dictionary 'cache'", out)
  end)

  it("runs top-level code in the master and in each worker, again on each reload", function()
    hs.write(tmp .. "/count.lua", [[
local hotsock = require "hotsock"
hotsock.shared.incr("loads", 1)
return { framing = "line", on_message = function(conn)
  conn:send(tostring(hotsock.shared.get("loads")), "\n")
end }
]])
    local srv = hs.start { tmp .. "/count.lua", "--listen", "tcp://127.0.0.1:0", "--workers", "2",
      "--control", tmp .. "/ctl" }
    local c = srv:tcp()
    assert(c:send("x\n"))
    assert.equals("3", hs.recv_line(c)) -- the master's validation copy, then two workers
    c:close()
    local ok, report = srv:reload()
    assert.is_true(ok, report)
    c = srv:tcp()
    assert(c:send("x\n"))
    assert.equals("6", hs.recv_line(c))
    c:close()
    assert.is_true(srv:stop())
  end)

  it("shares a module between two scripts in a process; a reload runs it afresh", function()
    hs.write(tmp .. "/counter.lua", [[
local M = { n = 0, loaded = 0 }
M.loaded = M.loaded + 1
function M.next() M.n = M.n + 1 return M.n end
return M
]])
    local script = [[
local counter = require "counter"
return { framing = "line", on_message = function(conn)
  conn:send(tostring(counter.next()), "\n")
end }
]]
    hs.write(tmp .. "/a.lua", script)
    hs.write(tmp .. "/b.lua", script)
    local srv = hs.start { tmp .. "/a.lua", "--listen", "tcp://127.0.0.1:0",
      tmp .. "/b.lua", "--listen", "tcp://127.0.0.1:0", "--control", tmp .. "/ctl" }
    local function ask(n)
      local c = srv:tcp(n)
      assert(c:send("x\n"))
      local v = hs.recv_line(c)
      c:close()
      return v
    end
    assert.equals("1", ask(1))
    assert.equals("2", ask(2)) -- one module table for both scripts
    assert.equals("3", ask(1))
    local ok, report = srv:reload()
    assert.is_true(ok, report)
    assert.equals("1", ask(2)) -- its state did not survive the reload...
    assert.equals("2", ask(1)) -- ...and both scripts share the new copy
    assert.is_true(srv:stop())
  end)
end)
