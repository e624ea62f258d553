-- Publish/subscribe across workers, worker identity and the connection registry
-- (hotsock.subscribe/publish/worker/workers/conns/broadcast), over two workers with a socket
-- each (HOTSOCK_REUSEPORT=1) so clients land on both, and over one process.
local kit = require "hotsock.testkit"

local FIXTURE = "tests/fixtures/pubsub.lua"

-- Every client a test opens is closed before its server stops, so the stop does not wait out
-- the grace period for them.
local clients = {}

local function start(opts)
  opts = opts or {}
  opts.workers = opts.workers or 2
  opts.prefix = "HOTSOCK_REUSEPORT=1"
  local srv = kit.start(opts.script or FIXTURE, opts)
  local connect, stop = srv.connect, srv.stop
  srv.connect = function(self, ...)
    local c = connect(self, ...)
    clients[#clients + 1] = c
    return c
  end
  srv.stop = function(self, ...)
    for _, c in ipairs(clients) do c:close() end
    clients = {}
    return stop(self, ...)
  end
  return srv
end

-- Clients until every worker holds `per` of them: { [1] = {c, c}, [2] = {c, c} }.
local function spread(srv, per, workers)
  workers = workers or 2
  local by, extra = {}, {}
  for w = 1, workers do by[w] = {} end
  for _ = 1, 400 do
    local c = srv:connect()
    c:send_line("who")
    local w = tonumber(c:line():match("^(%d+)"))
    if #by[w] < per then
      table.insert(by[w], c)
    else
      extra[#extra + 1] = c -- kept open: closing it would free the port for the next connect
    end
    local full = true
    for i = 1, workers do full = full and #by[i] == per end
    if full then break end
  end
  for _, c in ipairs(extra) do c:close() end
  for w = 1, workers do assert.equals(per, #by[w], "clients on worker " .. w) end
  return by
end

local function sub(c, ch, how)
  c:send_line((how or "sub") .. " " .. ch)
  return tonumber(c:line():match("^subscribed (%d+)$"))
end

local function stats_of(srv, kind)
  local by = {}
  local worker
  local out = srv:command("stats --raw")
  for line in out:gmatch("[^\n]+") do
    worker = line:match("^process worker=(%d+)") or worker
    if line:match("^" .. kind .. " ") then
      local r = {}
      for k, v in line:gmatch("(%S+)=(%S*)") do r[k] = tonumber(v) or v end
      by[tonumber(worker)] = r
    end
  end
  return by
end

describe("hotsock.publish and hotsock.subscribe across two workers", function()
  local srv
  after_each(function() if srv then srv:stop() end srv = nil end)

  it("delivers 12,000 publishes from both workers to 4 subscribers, none lost, in order", function()
    srv = start()
    local by = spread(srv, 3)
    local subscribers = { by[1][1], by[1][2], by[2][1], by[2][2] }
    assert.same({ 1, 1, 2, 2 }, { sub(subscribers[1], "t"), sub(subscribers[2], "t"),
      sub(subscribers[3], "t"), sub(subscribers[4], "t") })
    -- One publisher on each worker, 6,000 messages each, at the same time.
    by[1][3]:send_line("pub t 6000 A")
    by[2][3]:send_line("pub t 6000 B")
    assert.equals("published 6000 failed 0 ", by[1][3]:line())
    assert.equals("published 6000 failed 0 ", by[2][3]:line())
    for i, c in ipairs(subscribers) do
      local next = { A = 1, B = 1 }
      for _ = 1, 12000 do
        local tag, n = c:line():match("^t (%u):(%d+)$")
        assert.equals(next[tag], tonumber(n), "subscriber " .. i .. " publisher " .. tag)
        next[tag] = next[tag] + 1
      end
      assert.same({ A = 6001, B = 6001 }, next)
    end
    local st = stats_of(srv, "pubsub")
    -- Each worker took 12,000 messages from its queue (one copy per worker, not per
    -- subscriber) and dropped none.
    for w = 1, 2 do
      assert.equals(12000, st[w].delivered)
      assert.equals(6000, st[w].published)
      assert.equals(0, st[w].dropped)
      assert.equals(2, st[w].subscriptions)
    end
  end)

  it("knows which worker it is, and delivers on the publisher's own worker too", function()
    srv = start()
    local by = spread(srv, 1)
    by[1][1]:send_line("who")
    assert.equals("1 2", by[1][1]:line())
    by[2][1]:send_line("who")
    assert.equals("2 2", by[2][1]:line())
    sub(by[1][1], "self")
    by[1][1]:send_line("pub self 1 me")
    -- The subscriber's message and the command's answer may come in either order.
    local got = { by[1][1]:line(), by[1][1]:line() }
    table.sort(got)
    assert.same({ "published 1 failed 0 ", "self me:1" }, got)
  end)

  it("keeps a message of up to --max-publish bytes whole, refuses a larger one", function()
    srv = start { args = { "--max-publish", "100k" } }
    local by = spread(srv, 1)
    sub(by[2][1], "big", "rawsub")
    local pub = by[1][1]
    pub:send_line("pubsize big 102400")
    assert.equals("true nil", pub:line())
    assert.equals("big 102400", by[2][1]:line())
    local data = by[2][1]:receive(102400)
    for i = 0, 102399, 997 do
      assert.equals(i % 251, data:byte(i + 1), "byte " .. i)
    end
    pub:send_line("pubsize big 102401")
    assert.equals("nil too large", pub:line())
  end)

  it("refuses more than 64 KiB by default", function()
    srv = start { workers = 1 }
    local c = srv:connect()
    c:send_line("pubsize x 65536")
    assert.equals("true nil", c:line())
    c:send_line("pubsize x 65537")
    assert.equals("nil too large", c:line())
  end)

  it("stops delivering after cancel(), which says whether it was live", function()
    srv = start()
    local by = spread(srv, 1)
    local a, b = by[1][1], by[2][1]
    sub(a, "c")
    sub(b, "marker")
    a:send_line("pub c 1 before")
    local got = { a:line(), a:line() }
    table.sort(got)
    assert.same({ "c before:1", "published 1 failed 0 " }, got)
    a:send_line("unsub")
    assert.equals("cancelled true false", a:line())
    -- Published after the cancel, then a marker: the marker arrives, the other does not.
    b:send_line("pub c 1 after")
    assert.equals("published 1 failed 0 ", b:line())
    sub(a, "marker")
    b:send_line("pub marker 1 m")
    got = { b:line(), b:line() }
    table.sort(got)
    assert.same({ "marker m:1", "published 1 failed 0 " }, got)
    assert.equals("marker m:1", a:line())
    assert.equals(1, stats_of(srv, "pubsub")[1].subscriptions)
  end)

  it("logs a failing subscriber with file:line, and the others still get the message", function()
    srv = start()
    local by = spread(srv, 2)
    sub(by[1][1], "e", "failsub")
    sub(by[1][2], "e")
    sub(by[2][1], "e")
    by[2][2]:send_line("pub e 3 x")
    assert.equals("published 3 failed 0 ", by[2][2]:line())
    for i = 1, 3 do
      assert.equals("e x:" .. i, by[1][2]:line())
      assert.equals("e x:" .. i, by[2][1]:line())
    end
    srv:wait_log("w1 handler error in subscriber of channel 'e': [^\n]*pubsub%.lua:%d+: "
      .. "subscriber failed on x:3")
    -- The failing subscriber's connection was not touched.
    by[1][1]:send_line("who")
    assert.equals("1 2", by[1][1]:line())
  end)

  it("drops and counts what a slow worker cannot take, without blocking or growing", function()
    -- A 64 KiB queue (--max-publish 8k lets it be that small).
    srv = start { args = { "--publish-queue", "64k", "--max-publish", "8k" } }
    local by = spread(srv, 1)
    local slow, pub = by[1][1], by[2][1]
    sub(slow, "big 5", "slowsub") -- 5 ms per message: 200 a second at most
    local pids = srv:workers()
    local function rss(pid)
      local st = kit.read_file("/proc/" .. pid .. "/status")
      return tonumber(st:match("VmRSS:%s*(%d+)"))
    end
    -- Warm up (Lua strings, the queue's pages), then measure.
    pub:send_line("pubn big 100 8192")
    local failed = tonumber(pub:line():match("^published 100 failed (%d+)"))
    local before = rss(pids[1])
    for _ = 1, 100 do
      pub:send_line("pubn big 100 8192")
      local line = pub:line()
      local f = tonumber(line:match("^published 100 failed (%d+)"))
      assert.truthy(f == 0 or line:match(" queue full$"), line)
      failed = failed + f
    end
    -- 80 MB went out; the slow worker's queue holds 64 KiB. Most was dropped, publishing
    -- never blocked (each round answered), and the publisher was told of each drop.
    assert.is_true(failed > 5000, "failed " .. failed)
    local st
    kit.wait_until(function()
      st = stats_of(srv, "pubsub")
      return st[1].queued == 0 and st[1].delivered + st[1].dropped == 10100
    end, 30, "the slow worker to catch up")
    assert.equals(failed, st[1].dropped)
    assert.equals(0, st[2].dropped)
    assert.equals(65536, st[1].capacity)
    local grown = rss(pids[1]) - before
    assert.is_true(grown < 16 * 1024, "worker 1 grew by " .. grown .. " KiB")
    srv:wait_log("w1 pubsub: worker 1 fell behind: %d+ message%(s%) dropped, its queue %(65536 bytes%) was full")
    -- The table and the metrics show the drops too.
    local table_out = srv:command("stats")
    assert.truthy(table_out:find("PUBSUB   SUBSCRIPTIONS  PUBLISHED  DELIVERED  DROPPED     QUEUED",
      1, true), table_out)
    local prom = srv:command("stats --prometheus")
    assert.truthy(prom:find('hotsock_pubsub_dropped_total{worker="1"} ' .. st[1].dropped, 1, true),
      prom)
  end)
end)

describe("load-time subscriptions and reload", function()
  local srv, dir
  after_each(function()
    if srv then srv:stop() end
    if dir then os.execute("rm -rf " .. kit.shquote(dir)) end
    srv, dir = nil, nil
  end)

  local SCRIPT = [[
local hotsock = require "hotsock"
local _, info = ...
hotsock.subscribe("ann", function(m)
  hotsock.broadcast("gen" .. info.generation .. " " .. m .. "\n")
end)
%s
return {
  framing = "line",
  on_message = function(conn, msg)
    if msg == "who" then conn:send(hotsock.worker(), "\n") return end
    conn:send(tostring(hotsock.publish("ann", msg)), "\n")
  end,
}
]]

  it("swaps the old version's subscriptions for the new one's, and keeps them on a failed reload",
    function()
      dir = kit.tmpdir()
      local path = dir .. "/ann.lua"
      kit.write(path, SCRIPT:format("-- v1"))
      srv = start { script = path }
      local by = spread(srv, 1)
      local a, b = by[1][1], by[2][1]
      a:send_line("one")
      -- Each worker's subscription broadcasts to its own clients, the publisher included.
      local got = { a:line(), a:line() }
      table.sort(got)
      assert.same({ "gen1 one", "true" }, got)
      assert.equals("gen1 one", b:line())
      kit.write(path, SCRIPT:format("-- v2"))
      local ok, out = srv:reload()
      assert.is_true(ok, out)
      b:send_line("two")
      got = { b:line(), b:line() }
      table.sort(got)
      assert.same({ "gen2 two", "true" }, got)
      assert.equals("gen2 two", a:line())
      -- A version that subscribes and then fails to load leaves generation 2 alone.
      -- Worker 2 fails (the master, worker 0, and worker 1 load it fine): no worker changes,
      -- and worker 1 drops the subscription its discarded version made.
      kit.write(path, SCRIPT:format("if hotsock.worker() == 2 then error('broken after "
        .. "subscribing') end"))
      ok, out = srv:reload()
      assert.is_false(ok)
      assert.truthy(out:find("worker 2: [^\n]*broken after subscribing"), out)
      a:send_line("three")
      got = { a:line(), a:line() }
      table.sort(got)
      assert.same({ "gen2 three", "true" }, got)
      assert.equals("gen2 three", b:line())
      -- Exactly one line per worker: a marker shows nothing else came first.
      b:send_line("four")
      got = { b:line(), b:line() }
      table.sort(got)
      assert.same({ "gen2 four", "true" }, got)
      assert.equals("gen2 four", a:line())
      local st = stats_of(srv, "pubsub")
      assert.equals(1, st[1].subscriptions)
      assert.equals(1, st[2].subscriptions)
    end)
end)

describe("a worker that dies", function()
  it("neither wedges publishers nor keeps its replacement from subscribing", function()
    local srv = start()
    local by = spread(srv, 1)
    local a = by[1][1]
    sub(a, "d")
    sub(by[2][1], "d")
    local old = srv:workers()[2]
    kit.run("kill -9 " .. old)
    srv:wait_log("worker 2 %(pid " .. old .. "%) killed by signal 9")
    -- Worker 2 is gone (or restarting): publishing goes on, nothing is dropped for it.
    for i = 1, 3 do
      a:send_line("pub d 1 gone" .. i)
      local got = { a:line(), a:line() }
      table.sort(got)
      assert.same({ "d gone" .. i .. ":1", "published 1 failed 0 " }, got)
    end
    kit.wait_until(function()
      local now = srv:workers()[2]
      return now and now ~= old
    end, 10, "worker 2 to restart")
    -- The new worker 2 subscribes afresh and gets what worker 1 publishes.
    local b = spread(srv, 1)[2][1]
    sub(b, "d")
    a:send_line("pub d 1 back")
    assert.equals("d back:1", b:line())
    assert.equals(0, stats_of(srv, "pubsub")[2].dropped)
    assert.is_true(srv:stop())
  end)
end)

describe("one process (--workers 1)", function()
  it("is worker 1 of 1 and delivers to itself through the same path", function()
    local srv = start { workers = 1 }
    local a, b = srv:connect(), srv:connect()
    a:send_line("who")
    assert.equals("1 1", a:line())
    sub(a, "solo")
    b:send_line("pub solo 500 s")
    assert.equals("published 500 failed 0 ", b:line())
    for i = 1, 500 do assert.equals("solo s:" .. i, a:line()) end
    local st = stats_of(srv, "pubsub")
    assert.equals(500, st[0].delivered)
    assert.is_true(srv:stop())
  end)
end)

describe("hotsock.conns and hotsock.broadcast", function()
  it("list and reach the calling script's open conns on this worker only", function()
    local srv = start()
    local by = spread(srv, 3)
    by[1][1]:send_line("conns")
    assert.equals("3", by[1][1]:line())
    by[2][1]:send_line("conns pubsub")
    assert.equals("3", by[2][1]:line())
    by[2][1]:send_line("conns nosuchscript")
    assert.equals("0", by[2][1]:line())
    by[1][1]:send_line("bc hello")
    assert.equals("reached 2", by[1][1]:line())
    assert.equals("hello", by[1][2]:line())
    assert.equals("hello", by[1][3]:line())
    -- Worker 2's clients got nothing: their next line is the answer to a question.
    by[2][2]:send_line("who")
    assert.equals("2 2", by[2][2]:line())
    by[1][3]:close()
    kit.wait_until(function()
      by[1][1]:send_line("conns")
      return by[1][1]:line() == "2"
    end, 5, "the closed conn to leave the list")
    assert.is_true(srv:stop())
  end)

  it("skips a conn whose output buffer is full and reaches the others", function()
    local srv = start { workers = 1 }
    local stuck = srv:connect()
    local others = { srv:connect(), srv:connect() }
    for _, c in ipairs(others) do
      c:send_line("who")
      c:line()
    end
    stuck:send_line("who")
    stuck:line()
    -- stuck never reads: broadcast 1 MiB lines until its output passes the 64 MiB limit,
    -- reading the others' as we go.
    local reached
    local big = string.rep("z", 1000 * 1000)
    for _ = 1, 200 do
      others[1]:send_line("bc " .. big)
      reached = tonumber(others[1]:line():match("^reached (%d+)$"))
      assert.equals(big, others[2]:line())
      if reached == 1 then break end
    end
    assert.equals(1, reached)
    assert.is_true(srv:stop())
  end)
end)
