-- examples/cluster/ for real: run.sh starts redis-server, three hotsock instances (2 workers
-- each, ?proxy listeners, --pubsub redis://) and HAProxy (send-proxy-v2, health checks on
-- /healthz); this spec drives it through HAProxy from clients bound to 127.0.0.2 and up. The
-- handlers see the true client address; the Redis counter is exact after 3 x 1,000
-- increments spread over the instances, and the rate limit is per client address, over TCP
-- and over HTTP alike; a message published on any instance reaches subscribers on all three;
-- roll.sh (upgrade, then restart) under continuous connect/echo/close load refuses nothing;
-- kill -9 of one instance loses only the connections it held and HAProxy takes it out within
-- its check interval.
local hs = require "hotsock.testkit"
local socket = require "socket"

local sh = hs.shquote
local CHECK_MS = 300

local dir, run_pid, env

local function cluster_env(path)
  local t = {}
  for k, v in hs.read_file(path):gmatch("([%w_]+)='?([^'\n]*)'?\n") do t[k] = tonumber(v) or v end
  return t
end

-- A client bound to ip, through HAProxy's TCP (or HTTP) frontend.
local function client(ip, port)
  local c = socket.tcp()
  c:settimeout(10)
  assert(c:bind(ip, 0))
  assert(c:connect("127.0.0.1", port or env.TCP_PORT))
  return c
end

local function who(c)
  assert(c:send("who\n"))
  local line = assert(c:receive("*l"))
  local instance = line:match(" on (i%d)$")
  assert(instance, line)
  return instance, line
end

-- One connection on each instance: clients through HAProxy (from 127.0.0.(base + k)), each
-- kept if it landed on an instance that has none yet. { i1 = conn, i2 = conn, i3 = conn }.
local function one_per_instance(base)
  local on, k = {}, 0
  while not (on.i1 and on.i2 and on.i3) do
    k = k + 1
    assert(k <= 30, "30 connections and not every instance reached")
    local c = client("127.0.0." .. (base + k))
    local instance = who(c)
    if on[instance] then c:close() else on[instance] = c end
  end
  return on
end

-- Sends reqs ({"POST /incr", ...}) pipelined on the keep-alive connection c; reads the
-- responses: a list of { status = 200, body = "...", instance = "i2" (X-Instance) }.
local function http(c, reqs)
  local out = {}
  for i, r in ipairs(reqs) do
    out[i] = r .. " HTTP/1.1\r\nHost: cluster\r\nContent-Length: 0\r\n\r\n"
  end
  assert(c:send(table.concat(out)))
  local res = {}
  for i = 1, #reqs do
    local status = assert(c:receive("*l"))
    local r = { status = tonumber(status:match("^HTTP/1%.1 (%d%d%d) ")) }
    assert(r.status, status)
    local len = 0
    while true do
      local h = assert(c:receive("*l"))
      if h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.-)%s*$")
      k = k:lower()
      if k == "content-length" then len = tonumber(v) elseif k == "x-instance" then r.instance = v end
    end
    r.body = len > 0 and assert(c:receive(len)) or ""
    res[i] = r
  end
  return res
end

local function hap(cmd)
  return hs.run(("printf '%%s\\n' %s | nc -U -N %s"):format(sh(cmd), sh(dir .. "/haproxy.sock")))
end

-- The connections HAProxy has opened to the instances of its HTTP backend so far.
local function http_connects()
  local col
  for line in hap("show stat"):gmatch("[^\n]+") do
    local f = {}
    for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    if not col then
      for i, name in ipairs(f) do if name == "connect" then col = i end end
    elseif f[1] == "http_back" and f[2] == "BACKEND" then
      return tonumber(f[col])
    end
  end
end

-- HAProxy's status of server name in the TCP backend: "UP", "DOWN", ...
local function status(name)
  for line in hap("show stat"):gmatch("[^\n]+") do
    local f = {}
    for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    if f[1] == "tcp_back" and f[2] == name then return f[18] end
  end
end

-- The pids of an instance: its supervisor (the last "ready (pid N" of its log: an upgrade
-- replaces it) and its workers (from its control socket).
local function pids(i)
  local log = hs.read_file(dir .. "/i" .. i .. ".log")
  local master
  for p in log:gmatch(" ready %(pid (%d+)") do master = tonumber(p) end
  local list = { (assert(master, "no ready line in i" .. i .. ".log")) }
  local raw = hs.run(("%s stats --control %s --raw"):format(sh(env.HOTSOCK), sh(dir .. "/i" .. i .. ".sock")))
  for p in raw:gmatch("process worker=%d+ pid=(%d+)") do list[#list + 1] = tonumber(p) end
  return list
end

-- Background load: N Lua processes each connecting through HAProxy in a loop (connect, one
-- echo, close) until the stop file appears; each writes "ok failed" when done.
local LOADER = [[
local socket = require "socket"
local port, stop, out, ip = tonumber(arg[1]), arg[2], arg[3], arg[4]
local ok, failed, n = 0, 0, 0
local deadline = socket.gettime() + 90
while socket.gettime() < deadline do
  local f = io.open(stop)
  if f then f:close() break end
  n = n + 1
  local c = socket.tcp()
  c:settimeout(10)
  c:bind(ip, 0)
  local good = c:connect("127.0.0.1", port) and c:send("ping " .. n .. "\n")
    and c:receive("*l") == "ping " .. n
  c:close()
  if good then ok = ok + 1 else failed = failed + 1 end
end
local f = io.open(out, "w")
f:write(ok, " ", failed, "\n")
f:close()
]]

local function start_load(n)
  local path = dir .. "/loader.lua"
  hs.write(path, LOADER)
  os.remove(dir .. "/stop")
  for i = 1, n do
    os.remove(dir .. "/load" .. i)
    os.execute(("lua5.4 %s %d %s %s 127.0.0.%d >/dev/null 2>&1 &"):format(sh(path), env.TCP_PORT,
      sh(dir .. "/stop"), sh(dir .. "/load" .. i), 20 + i))
  end
  return function()
    hs.write(dir .. "/stop", "")
    local ok, failed = 0, 0
    for i = 1, n do
      hs.wait_until(function()
        local f = io.open(dir .. "/load" .. i)
        if f then f:close() end
        return f ~= nil
      end, 20, "loader " .. i .. " to finish")
      local a, b = hs.read_file(dir .. "/load" .. i):match("(%d+) (%d+)")
      ok, failed = ok + tonumber(a), failed + tonumber(b)
    end
    return ok, failed
  end
end

-- Subscribers and publishers on channel ch, one of each on every instance (clients from
-- 127.0.0.(base + 1) up): each publisher's message reaches every subscriber exactly once. No
-- waiting for subscriptions to spread: a subscription is in place once it is answered, and
-- every instance's link to Redis was up before (run.sh and roll.sh wait for it).
local function check_pubsub(ch, base)
  local subs, pubs = one_per_instance(base), {}
  finally(function()
    for _, c in pairs(subs) do c:close() end
    for _, c in pairs(pubs) do c:close() end
  end)
  for _, c in pairs(subs) do
    assert(c:send("sub " .. ch .. "\n"))
    assert.are.equal("subscribed " .. ch, c:receive("*l"))
  end
  -- A message, then an end marker behind it: one publisher's messages keep their order
  -- everywhere, so a subscriber that has the three end markers has everything.
  pubs = one_per_instance(base + 30)
  for name, c in pairs(pubs) do
    assert(c:send(("pub %s hello from %s\npub %s end %s\n"):format(ch, name, ch, name)))
    assert.are.equal("published", c:receive("*l"))
    assert.are.equal("published", c:receive("*l"))
  end
  for name, c in pairs(subs) do
    local from, ends = {}, 0
    while ends < 3 do
      local line = assert(c:receive("*l"))
      local what, p = line:sub(#ch + 3):match("^(.*) (i%d)$")
      assert(line:sub(1, #ch + 2) == ch .. ": " and what, name .. " got " .. line)
      if what == "end" then
        ends = ends + 1
      else
        assert.are.equal("hello from", what, line)
        assert.is_nil(from[p], name .. " got " .. p .. "'s message twice")
        from[p] = true
      end
    end
    assert.are.same({ i1 = true, i2 = true, i3 = true }, from, "subscriber on " .. name)
  end
end

describe("examples/cluster: HAProxy + 3 hotsock + Redis", function()
  setup(function()
    dir = hs.tmpdir()
    run_pid = tonumber(hs.run(("HOTSOCK=%s WORKERS=2 LIMIT=1000 WINDOW=60 CHECK_MS=%d GRACE=3 " ..
      "examples/cluster/run.sh --dir %s --for 240 >%s 2>&1 & echo $!"):format(sh(hs.bin), CHECK_MS,
      sh(dir), sh(dir .. "/run.out"))):match("%d+"))
    hs.wait_until(function()
      local f = io.open(dir .. "/cluster.env")
      if f then f:close() end
      return f ~= nil
    end, 30, "run.sh to bring the cluster up")
    env = cluster_env(dir .. "/cluster.env")
  end)

  teardown(function()
    if run_pid then
      os.execute("kill " .. run_pid)
      hs.wait_until(function() return not hs.run("kill -0 " .. run_pid .. " 2>&1; echo $?"):match("^0") end,
        20, "run.sh to clean up")
    end
  end)

  it("prints how to try it", function()
    local out = hs.read_file(dir .. "/run.out")
    assert.matches("hotsock cluster up: 3 instances x 2 workers behind HAProxy", out, 1, true)
    assert.matches("nc -q1 127.0.0.1 " .. env.TCP_PORT, out, 1, true)
  end)

  it("handlers see the true client address (TCP and HTTP)", function()
    local seen = {}
    for i = 1, 6 do
      local ip = "127.0.0." .. (1 + i)
      local c = client(ip)
      local _, port = c:getsockname()
      local instance, line = who(c)
      assert.are.equal(("you are %s:%d on %s"):format(ip, port, instance), line)
      seen[instance] = true
      c:close()
      local h = client(ip, env.HTTP_PORT)
      h:send("GET /who HTTP/1.0\r\n\r\n")
      local resp = h:receive("*a")
      h:close()
      assert.matches("^HTTP/1%.1 200 ", resp)
      assert.matches("\r\n\r\nyou are " .. ip:gsub("%.", "%%.") .. " on i%d\n$", resp)
    end
    assert.are.same({ i1 = true, i2 = true, i3 = true }, seen)
  end)

  it("keeps one exact counter in Redis across the instances; rate limits per client address", function()
    -- 3 client addresses x 10 connections x 100 pipelined increments = 3,000.
    local got, per_instance = {}, {}
    for a = 2, 4 do
      for _ = 1, 10 do
        local c = client("127.0.0." .. a)
        local instance = who(c)
        per_instance[instance] = (per_instance[instance] or 0) + 100
        assert(c:send(string.rep("incr\n", 100)))
        for _ = 1, 100 do
          local n = assert(math.tointeger(tonumber(assert(c:receive("*l")))))
          assert.is_nil(got[n], "count " .. n .. " answered twice")
          got[n] = true
        end
        c:close()
      end
    end
    for n = 1, 3000 do assert.is_true(got[n], "count " .. n .. " missing") end
    assert.are.equal(1000, per_instance.i1)
    assert.are.equal(1000, per_instance.i2)
    assert.are.equal(1000, per_instance.i3)
    -- 127.0.0.2 spent its 1,000 of this window; 127.0.0.5 has its own.
    local c = client("127.0.0.2")
    c:send("incr\n")
    assert.are.equal("ERR rate limited", c:receive("*l"))
    c:close()
    c = client("127.0.0.5")
    c:send("incr\n")
    assert.are.equal("3001", c:receive("*l"))
    c:close()
  end)

  it("counts exactly through the HTTP frontend, with the same counter and limit as TCP", function()
    local a, b = client("127.0.0.6", env.HTTP_PORT), client("127.0.0.7", env.HTTP_PORT)
    finally(function()
      a:close()
      b:close()
    end)
    local first = http(a, { "GET /counter" })[1]
    assert.are.equal(200, first.status, first.body)
    local c0 = assert(math.tointeger(tonumber(first.body)))
    -- 127.0.0.6 spends its 1,000 of the window, 127.0.0.7 500 of its own: 100 pipelined
    -- POST /incr a batch on one keep-alive connection each, which HAProxy spreads (round
    -- robin per request) over the instances.
    local got, served = {}, {}
    local function incr(c, n)
      local reqs = {}
      for i = 1, n do reqs[i] = "POST /incr" end
      for _, r in ipairs(http(c, reqs)) do
        assert.are.equal(200, r.status, r.body)
        local v = assert(math.tointeger(tonumber(r.body)), r.body)
        assert.is_nil(got[v], "count " .. v .. " answered twice")
        got[v] = true
        served[r.instance] = (served[r.instance] or 0) + 1
      end
    end
    for _ = 1, 10 do incr(a, 100) end
    for _ = 1, 5 do incr(b, 100) end
    for n = c0 + 1, c0 + 1500 do assert.is_true(got[n], "count " .. n .. " missing") end
    assert.are.equal(1500, (served.i1 or 0) + (served.i2 or 0) + (served.i3 or 0))
    for _, i in ipairs({ "i1", "i2", "i3" }) do
      assert.is_true((served[i] or 0) > 0, i .. " served no /incr")
    end
    -- The 1,001st from 127.0.0.6 is refused, on HTTP and on TCP (one limit per address);
    -- 127.0.0.7 still counts.
    local r = http(a, { "POST /incr" })[1]
    assert.are.equal(429, r.status)
    assert.are.equal("rate limited\n", r.body)
    local t = client("127.0.0.6")
    t:send("incr\n")
    assert.are.equal("ERR rate limited", t:receive("*l"))
    t:close()
    r = http(b, { "POST /incr", "GET /counter" })
    assert.are.equal(tostring(c0 + 1501) .. "\n", r[1].body)
    assert.are.equal(tostring(c0 + 1501) .. "\n", r[2].body)
  end)

  it("HAProxy opens one server connection per HTTP client and instance, not per request", function()
    -- Two rounds of 10 keep-alive clients x 30 pipelined requests (round robin: 10 on each
    -- instance). Each server connection starts with its client's PROXY header, so it can
    -- serve only that client: each round must open its own 30 and then reuse them, whatever
    -- earlier clients left behind (haproxy.cfg's "http-reuse never"; with HAProxy's default
    -- "safe", earlier clients' connections filled the idle pool, where no one else can use
    -- them, and HAProxy opened one per request: 300).
    for round = 1, 2 do
      local before = http_connects()
      local cs = {}
      for k = 1, 10 do
        cs[k] = client("127.0.0." .. (140 + 10 * round + k), env.HTTP_PORT)
        local reqs = {}
        for i = 1, 30 do reqs[i] = "GET /hello" end
        for _, r in ipairs(http(cs[k], reqs)) do assert.are.equal("hello\n", r.body) end
      end
      for _, c in ipairs(cs) do c:close() end
      local opened = http_connects() - before
      assert.is_true(opened <= 30, ("round %d: 300 requests opened %d server connections")
        :format(round, opened))
    end
  end)

  it("delivers a message published on any instance to the subscribers on all three", function()
    check_pubsub("news", 60)
  end)

  it("rolls every instance (upgrade, then drain and restart) under load, refusing nothing", function()
    local stop = start_load(3)
    local before = {}
    for i = 1, 3 do before[i] = pids(i)[1] end
    local out = hs.run(("examples/cluster/roll.sh %s upgrade 2>&1; echo rc=$?"):format(sh(dir)))
    assert.matches("rc=0\n$", out)
    out = hs.run(("examples/cluster/roll.sh %s restart 2>&1; echo rc=$?"):format(sh(dir)))
    assert.matches("rc=0\n$", out)
    local ok, failed = stop()
    assert.are.equal(0, failed)
    assert.is_true(ok > 100, "only " .. ok .. " echoes during the roll")
    for i = 1, 3 do
      assert.are_not.equal(before[i], pids(i)[1])
      assert.are.equal("UP", status("i" .. i))
    end
    -- The new processes are subscribed at Redis (roll.sh waits for it).
    check_pubsub("after-roll", 180)
  end)

  it("kill -9 of one instance loses only its connections; HAProxy routes around it", function()
    local held, mine = {}, 0
    for k = 1, 12 do
      local c = client("127.0.0." .. (30 + k))
      held[k] = { c = c, instance = who(c) }
      if held[k].instance == "i1" then mine = mine + 1 end
    end
    assert.is_true(mine > 0 and mine < 12)
    local t0 = socket.gettime()
    local victims = table.concat(pids(1), " ")
    os.execute("kill -9 " .. victims)
    for _, h in ipairs(held) do
      h.c:send("still there\n")
      local line, err = h.c:receive("*l")
      if h.instance == "i1" then
        assert.is_nil(line, "i1 after kill -9 " .. victims .. "\n" .. hs.run("ps -eo pid,ppid,args | grep '[h]otsock serve' | cut -c1-100"))
        assert.is_truthy(err == "closed" or err:match("reset"), err)
      else
        assert.are.equal("still there", line, h.instance .. " after kill -9 " .. victims)
      end
      h.c:close()
    end
    hs.wait_until(function() return status("i1") == "DOWN" end, 5, "HAProxy to mark i1 down")
    local took = socket.gettime() - t0
    -- One check interval, plus the check's own timeout on a loaded machine.
    assert.is_true(took < (CHECK_MS / 1000) * 2 + 1, ("i1 marked down after %.2f s"):format(took))
    for k = 1, 30 do
      local c = client("127.0.0." .. (50 + k))
      assert.are_not.equal("i1", (who(c)))
      c:close()
    end
  end)
end)
