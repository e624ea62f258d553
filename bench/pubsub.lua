-- Publish/subscribe across workers, beside Redis PUBLISH on the same machine.
--   lua5.4 bench/pubsub.lua [--bin build-bench/hotsock] [--samples 2000] [--messages 200000]
--                           [--size 64] [--no-redis]
-- Measures, with 2 workers (one socket each, HOTSOCK_REUSEPORT=1):
--   e2e     client -> worker 1 (hotsock.publish) -> worker 2 (subscriber) -> client, one
--           message at a time, p50/p99; Redis: PUBLISH on one connection, SUBSCRIBE on another
--   inside  hotsock.publish in worker 1 -> the subscriber callback in worker 2 (CLOCK_MONOTONIC
--           is one clock for every process), one message every 2 ms, p50/p99
--   rate    worker 1 publishes --messages messages of --size bytes, 1,000 per loop turn, to a
--           subscriber in worker 2: published/s, delivered/s, dropped; Redis: redis-benchmark
--           PUBLISH (50 connections, pipelined 16 deep) with one subscriber draining
-- Starts its own servers on free loopback ports (redis-server with --save '' --appendonly no)
-- and stops them. Needs luasocket; redis-server, redis-cli and redis-benchmark for the anchor.
local socket = require "socket"

local opts = { bin = "build-bench/hotsock", samples = 2000, messages = 200000, size = 64,
               redis = true }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--no-redis" then
      opts.redis = false
    elseif a:match("^%-%-") and arg[i + 1] then
      local k = a:sub(3)
      opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
      i = i + 1
    else
      error("unknown argument " .. a)
    end
    i = i + 1
  end
end

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local dir = sh("mktemp -d"):gsub("%s+$", "")

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function percentile(t, p)
  table.sort(t)
  return t[math.max(1, math.ceil(#t * p))]
end

local function connect(port)
  for _ = 1, 500 do
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:settimeout(10)
      c:setoption("tcp-nodelay", true)
      return c
    end
    socket.sleep(0.01)
  end
  error("nothing listens on port " .. port)
end

-- The handler under test: line commands.
--   who                  -> worker number
--   sub                  -> this conn gets every "e2e" message back; "lat" and "rate"
--                           messages are measured in this worker
--   pub MSG              -> publishes MSG on "e2e"
--   lat N                -> publishes N timestamps on "lat", one every 2 ms; "done"
--   rate N SIZE          -> publishes N messages of SIZE bytes on "rate", 1,000 per loop
--                           turn; "published N in S failed F"
--   report               -> "lat P50 P99 N rate RECEIVED FIRST LAST" (seconds)
local HANDLER = [[
local hotsock = require "hotsock"
local lat, got, first, last = {}, 0, 0, 0
return {
  framing = "line",
  on_message = function(conn, line)
    local cmd, a, b = line:match("^(%S+)%s*(%S*)%s*(%S*)")
    if cmd == "who" then
      conn:send(hotsock.worker(), "\n")
    elseif cmd == "sub" then
      conn.ctx.subs = {
        hotsock.subscribe("e2e", function(m) conn:send(m, "\n") end),
        hotsock.subscribe("lat", function(m)
          lat[#lat + 1] = hotsock.monotonic() - tonumber(m)
        end),
        hotsock.subscribe("rate", function()
          got = got + 1
          local now = hotsock.monotonic()
          if got == 1 then first = now end
          last = now
        end),
      }
      conn:send("ok\n")
    elseif cmd == "pub" then
      hotsock.publish("e2e", a)
    elseif cmd == "lat" then
      local left = tonumber(a)
      hotsock.every(0.002, function(t)
        hotsock.publish("lat", string.format("%.9f", hotsock.monotonic()))
        left = left - 1
        if left == 0 then t:cancel() conn:send("done\n") end
      end)
    elseif cmd == "rate" then
      local n, msg, sent, failed = tonumber(a), string.rep("x", tonumber(b)), 0, 0
      local t0 = hotsock.monotonic()
      local function batch()
        for _ = 1, math.min(1000, n - sent) do
          if not hotsock.publish("rate", msg) then failed = failed + 1 end
          sent = sent + 1
        end
        if sent < n then
          hotsock.after(0, batch)
        else
          conn:send(("published %d in %.6f failed %d\n"):format(n, hotsock.monotonic() - t0, failed))
        end
      end
      batch()
    elseif cmd == "report" then
      table.sort(lat)
      local function p(q) return lat[math.max(1, math.ceil(#lat * q))] or 0 end
      conn:send(("lat %.9f %.9f %d rate %d %.6f %.6f\n"):format(p(0.5), p(0.99), #lat, got, first,
        last))
    end
  end,
}
]]

local function hotsock_bench()
  local script = dir .. "/bench_pubsub.lua"
  local f = assert(io.open(script, "w"))
  f:write(HANDLER)
  f:close()
  local port = free_port()
  local log = dir .. "/hotsock.log"
  os.execute(("HOTSOCK_REUSEPORT=1 %s serve %s --listen tcp://127.0.0.1:%d --workers 2 "
    .. "--control none --log-level warn >/dev/null 2>%s & echo $! > %s/hotsock.pid")
    :format(opts.bin, script, port, log, dir))
  -- One connection on each worker.
  local on = {}
  local spare = {}
  for _ = 1, 200 do
    local c = connect(port)
    c:send("who\n")
    local w = tonumber(assert(c:receive("*l")))
    if on[w] then spare[#spare + 1] = c else on[w] = c end
    if on[1] and on[2] then break end
  end
  for _, c in ipairs(spare) do c:close() end
  assert(on[1] and on[2], "could not reach both workers")
  local pub, sub = on[1], on[2]
  sub:send("sub\n")
  assert(sub:receive("*l") == "ok")
  -- e2e: client -> worker 1 -> worker 2 -> client.
  local e2e = {}
  for i = 1, opts.samples do
    local t0 = socket.gettime()
    pub:send("pub " .. i .. "\n")
    assert(sub:receive("*l") == tostring(i))
    e2e[#e2e + 1] = socket.gettime() - t0
  end
  -- inside: publish -> callback in the other worker.
  pub:send(("lat %d\n"):format(opts.samples))
  assert(pub:receive("*l") == "done")
  -- rate.
  pub:send(("rate %d %d\n"):format(opts.messages, opts.size))
  local n, secs, failed = assert(pub:receive("*l")):match("^published (%d+) in (%S+) failed (%d+)")
  local report
  for _ = 1, 100 do
    sub:send("report\n")
    report = sub:receive("*l")
    local got = tonumber(report:match(" rate (%d+)"))
    if got + tonumber(failed) >= tonumber(n) then break end
    socket.sleep(0.05)
  end
  local p50, p99, nlat, got, first, last =
    report:match("^lat (%S+) (%S+) (%d+) rate (%d+) (%S+) (%S+)")
  pub:close()
  sub:close()
  os.execute(("kill %s"):format(sh("cat " .. dir .. "/hotsock.pid"):gsub("%s+$", "")))
  return {
    e2e50 = percentile(e2e, 0.5), e2e99 = percentile(e2e, 0.99),
    in50 = tonumber(p50), in99 = tonumber(p99), in_n = tonumber(nlat),
    pub_rate = tonumber(n) / tonumber(secs), failed = tonumber(failed),
    got = tonumber(got),
    deliver_rate = tonumber(got) / math.max(tonumber(last) - tonumber(first), 1e-9),
  }
end

-- Redis RESP over luasocket.
local function resp(...)
  local parts = { "*" .. select("#", ...) }
  for _, a in ipairs { ... } do
    a = tostring(a)
    parts[#parts + 1] = "$" .. #a
    parts[#parts + 1] = a
  end
  return table.concat(parts, "\r\n") .. "\r\n"
end

-- One pub/sub push: *3 $7 message $CH CH $N DATA.
local function read_push(c)
  local out = {}
  local head = assert(c:receive("*l"))
  local n = tonumber(head:match("^%*(%d+)"))
  for i = 1, n do
    local l = assert(c:receive("*l"))
    local len = tonumber(l:match("^%$(%d+)"))
    if len then
      out[i] = c:receive(len)
      c:receive(2)
    else
      out[i] = l:sub(2)
    end
  end
  return out
end

local function redis_bench()
  local port = free_port()
  os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log"):format(port, dir, dir))
  local sub = connect(port)
  sub:send(resp("SUBSCRIBE", "e2e"))
  read_push(sub)
  local pub = connect(port)
  local e2e = {}
  for i = 1, opts.samples do
    local t0 = socket.gettime()
    pub:send(resp("PUBLISH", "e2e", i))
    local m = read_push(sub)
    assert(m[3] == tostring(i))
    e2e[#e2e + 1] = socket.gettime() - t0
    assert(pub:receive("*l")) -- :1 (receivers)
  end
  sub:close()
  pub:close()
  -- Rate: redis-benchmark PUBLISH with one subscriber draining into /dev/null.
  os.execute(("redis-cli -p %d subscribe bench >/dev/null 2>&1 & echo $! > %s/rcli.pid")
    :format(port, dir))
  socket.sleep(0.2)
  local out = sh(("redis-benchmark -p %d -c 50 -P 16 -n %d -q PUBLISH bench %s 2>&1")
    :format(port, opts.messages, string.rep("x", opts.size)))
  local rps = tonumber(out:match("([%d%.]+) requests per second"))
  os.execute(("kill $(cat %s/rcli.pid) 2>/dev/null; kill $(cat %s/redis.pid)"):format(dir, dir))
  return { e2e50 = percentile(e2e, 0.5), e2e99 = percentile(e2e, 0.99), pub_rate = rps, raw = out }
end

local function us(s) return s and ("%.1f us"):format(s * 1e6) or "-" end
local function rate(r) return r and ("%.0f/s"):format(r) or "-" end

local h = hotsock_bench()
local r = opts.redis and redis_bench() or nil
print(("pub/sub, 2 hotsock workers, %d latency samples, %d messages of %d B for the rate")
  :format(opts.samples, opts.messages, opts.size))
print(("%-46s %12s %12s"):format("", "p50", "p99"))
print(("%-46s %12s %12s"):format("hotsock e2e (client->w1->w2->client)", us(h.e2e50), us(h.e2e99)))
if r then
  print(("%-46s %12s %12s"):format("redis e2e (PUBLISH -> SUBSCRIBE client)", us(r.e2e50),
    us(r.e2e99)))
end
print(("%-46s %12s %12s"):format("hotsock inside (publish w1 -> callback w2)", us(h.in50),
  us(h.in99)))
print(("hotsock publish rate (in-script loop):  %s published, %s delivered, %d dropped")
  :format(rate(h.pub_rate), rate(h.deliver_rate), h.failed))
if r then
  print(("redis PUBLISH rate (redis-benchmark -c 50 -P 16): %s"):format(rate(r.pub_rate)))
end
os.execute("rm -rf " .. dir)
