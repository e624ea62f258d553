-- Reload latency: from the reload request on the control socket to the first new
-- connection answered by the new code, on a handler of a few hundred lines.
--   lua5.4 bench/reload_latency.lua [HOTSOCK_BIN] [ROUNDS]
local socket = require "socket"
local unix = require "socket.unix"

local bin = arg[1] or "build-rel/hotsock"
local rounds = tonumber(arg[2]) or 200
local dir = io.popen("mktemp -d"):read("l")
local script, ctl, log = dir .. "/big.lua", dir .. "/ctl.sock", dir .. "/log"

local BENCH_DIR = (arg[0]:match("^(.*)/[^/]*$") or ".")
local write_big = dofile(BENCH_DIR .. "/reload_script.lua")
local function write_script(gen) write_big(script, gen) end

write_script(0)
-- One process, as bench/run.lua measures it (the default is a worker per core, whose ready
-- line has no pid alone).
os.execute(("%s serve %s --listen tcp://127.0.0.1:0 --workers 1 --control %s >/dev/null 2>%s &")
  :format(bin, script, ctl, log))
local port
for _ = 1, 500 do
  local f = io.open(log)
  local text = f and f:read("a") or ""
  if f then f:close() end
  port = text:match("listening tcp://127%.0%.0%.1:(%d+)")
  if port and text:find("ready") then break end
  socket.sleep(0.01)
end
assert(port, "server did not start")
local pid = io.open(log):read("a"):match("ready %(pid (%d+)%)")

local function ask(gen)
  local c = assert(socket.connect("127.0.0.1", tonumber(port)))
  c:settimeout(2)
  c:setoption("tcp-nodelay", true)
  c:send("x\n")
  local l = c:receive("*l")
  c:close()
  return l == ("v" .. gen)
end

local samples = {}
for gen = 1, rounds do
  write_script(gen)
  local t0 = socket.gettime()
  local u = unix.stream()
  assert(u:connect(ctl))
  u:send("reload\n")
  local reply = u:receive("*a")
  u:close()
  assert(reply:match("^ok"), reply)
  while not ask(gen) do end
  samples[#samples + 1] = (socket.gettime() - t0) * 1000
end
os.execute("kill " .. pid)
os.execute("rm -rf " .. dir)
table.sort(samples)
local function pct(p) return samples[math.max(1, math.ceil(#samples * p))] end
print(("reload latency over %d reloads of a %d-line script: median %.2f ms, p90 %.2f ms, max %.2f ms")
  :format(#samples, 60 * 5 + 3, pct(0.5), pct(0.9), samples[#samples]))
