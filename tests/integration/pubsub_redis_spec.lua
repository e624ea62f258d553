-- Publish/subscribe across servers (--pubsub redis://HOST:PORT): a real redis-server on a free
-- loopback port and three hotsock instances on it (A with two workers, B and C single), driven
-- by tests/fixtures/pubsub.lua. A message published on any instance reaches every subscriber
-- on every instance exactly once, in its publisher's order; with Redis stopped, local delivery
-- goes on and the remote copies are counted as dropped; once Redis is back, remote delivery
-- resumes.
local kit = require "hotsock.testkit"
local socket = require "socket"

local FIXTURE = "tests/fixtures/pubsub.lua"

local free_port = kit.free_port

local redis_port, redis_pid, redis_dir

local function start_redis()
  redis_dir = redis_dir or kit.tmpdir()
  local out = kit.run(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--dir %s --daemonize no >>%s/log 2>&1 & echo $!"):format(redis_port,
    kit.shquote(redis_dir), kit.shquote(redis_dir)))
  redis_pid = tonumber(out:match("%d+"))
end

-- One inline command to Redis; its reply line (a bulk reply's body), or nil while Redis does
-- not answer.
local function redis(cmd)
  local c = socket.connect("127.0.0.1", redis_port)
  if not c then return nil end
  c:settimeout(1)
  c:send(cmd .. "\r\n")
  local l = c:receive("*l")
  local n = l and tonumber(l:match("^%$(%d+)$"))
  if n then l = c:receive(n + 2) end
  c:close()
  return l
end

local function stop_redis()
  if redis_pid then
    os.execute("kill " .. redis_pid)
    kit.wait_until(function() return redis("PING") == nil end, 10, "redis-server to stop")
  end
  redis_pid = nil
end

-- The readiness signal: every instance's subscriber connection has its pattern at Redis
-- (PUBSUB NUMPAT counts distinct patterns, one here: the clients holding one are counted).
local function wait_subscribed(n)
  kit.wait_until(function()
    local list = redis("CLIENT LIST TYPE pubsub") or ""
    local k = 0
    for _ in list:gmatch("psub=1") do k = k + 1 end
    return k == n
  end, 15, n .. " instances subscribed at Redis")
end

local servers, clients = {}, {}

local function connect(srv)
  local c = srv:connect()
  clients[#clients + 1] = c
  return c
end

local function sub(c, ch)
  c:send_line("sub " .. ch)
  return tonumber(c:line():match("^subscribed (%d+)$"))
end

-- A subscriber on each of A's two workers (clients until both are held), and one on B and C.
local function subscribers(ch)
  local subs, seen = {}, {}
  for _ = 1, 200 do
    local c = connect(servers.A)
    local w = sub(c, ch)
    if not seen[w] then
      seen[w] = true
      subs[#subs + 1] = c
    end
    if seen[1] and seen[2] then break end
  end
  assert.is_true(seen[1] and seen[2], "a subscriber on each of A's workers")
  for _, name in ipairs({ "B", "C" }) do
    local c = connect(servers[name])
    sub(c, ch)
    subs[#subs + 1] = c
  end
  return subs
end

local function sum(srv, field)
  local n = 0
  for _, r in ipairs(srv:stats("pubsub")) do n = n + tonumber(r[field]) end
  return n
end

describe("pub/sub across servers through Redis", function()
  setup(function()
    redis_port = free_port()
    start_redis()
    kit.wait_until(function() return redis("PING") == "+PONG" end, 10, "redis-server to answer")
    local url = "redis://127.0.0.1:" .. redis_port
    servers.A = kit.start(FIXTURE, { workers = 2, prefix = "HOTSOCK_REUSEPORT=1",
      args = { "--pubsub", url } })
    servers.B = kit.start(FIXTURE, { args = { "--pubsub", url } })
    servers.C = kit.start(FIXTURE, { args = { "--pubsub", url } })
    wait_subscribed(3)
  end)
  teardown(function()
    for _, c in ipairs(clients) do c:close() end
    for _, srv in pairs(servers) do srv:stop() end
    stop_redis()
  end)

  it("delivers a message published on any instance to every subscriber once, in order", function()
    local subs = subscribers("news")
    local N = 20
    local pubs = {}
    for _, name in ipairs({ "A", "B", "C" }) do
      local p = connect(servers[name])
      p:send_line(("pub news %d %s"):format(N, name))
      assert.equals(("published %d failed 0 "):format(N), p:line())
      pubs[name] = p
    end
    -- Then an end marker from the same connections: behind every copy of their messages.
    for name, p in pairs(pubs) do
      p:send_line("pub news 1 end" .. name)
      p:line()
    end
    for i, c in ipairs(subs) do
      local next_of, ends = { A = 1, B = 1, C = 1 }, 0
      while ends < 3 do
        local l = c:line()
        local tag, k = l:match("^news (%u):(%d+)$")
        if tag then
          assert.equals(next_of[tag], tonumber(k), ("subscriber %d, from %s"):format(i, tag))
          next_of[tag] = next_of[tag] + 1
        else
          assert.truthy(l:match("^news end%u:1$"), l)
          ends = ends + 1
        end
      end
      assert.same({ A = N + 1, B = N + 1, C = N + 1 }, next_of, "subscriber " .. i)
    end
    -- Every instance sent its messages and took the others'.
    for name, srv in pairs(servers) do
      assert.equals(N + 1, sum(srv, "remote_sent"), name)
      assert.equals(2 * (N + 1), sum(srv, "remote_received"), name)
      assert.equals(0, sum(srv, "remote_dropped"), name)
    end
  end)

  it("keeps local delivery while Redis is down, counts the drops, resumes after", function()
    local subs = subscribers("alerts")
    local p = connect(servers.B)
    stop_redis()
    p:send_line("pub alerts 5 down")
    assert.equals("published 5 failed 0 ", p:line())
    -- B's own subscriber (the 3rd) gets all five; the others get none (their next line
    -- below is the first message after Redis is back).
    for k = 1, 5 do assert.equals("alerts down:" .. k, subs[3]:line()) end
    kit.wait_until(function() return sum(servers.B, "remote_dropped") >= 5 end, 10,
      "B to count the remote copies as dropped")
    assert.truthy(servers.B:log_has("not sent to Redis"))

    start_redis()
    wait_subscribed(3)
    -- Publishers reconnect on their own retry timer: probe on a channel of its own until a
    -- copy crosses from B to C, then check a fresh sequence exactly.
    local probe = connect(servers.C)
    sub(probe, "probe")
    probe:settimeout(0.2)
    kit.wait_until(function()
      p:send_line("pub probe 1 p")
      p:line()
      local l = probe.sock:receive("*l")
      return l ~= nil
    end, 15, "B's copies to reach C again")
    p:send_line("pub alerts 3 up")
    assert.equals("published 3 failed 0 ", p:line())
    for i, c in ipairs(subs) do
      for k = 1, 3 do assert.equals("alerts up:" .. k, c:line(), "subscriber " .. i) end
    end
  end)
end)
