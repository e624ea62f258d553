-- Instructions of one reload, counted by callgrind (deterministic on a loaded machine, unlike
-- bench/reload_latency.lua's wall clock). The server (--workers 1, sandbox at its defaults)
-- runs under valgrind --tool=callgrind twice, doing R1 and then R2 rounds of: rewrite the
-- 303-line script of bench/reload_latency.lua, `reload` on the control socket, one new
-- connection answered by the new version. (I(R2) - I(R1)) / (R2 - R1) is one round with
-- start-up and shutdown cancelled out. Results: bench/results/reload.md.
--   lua5.4 bench/reload_instructions.lua [HOTSOCK_BIN] [R1] [R2] [KEEP_PREFIX]
local socket = require "socket"
local unix = require "socket.unix"

local bin = arg[1] or "build-rel/hotsock"
local r1, r2 = tonumber(arg[2]) or 50, tonumber(arg[3]) or 150
local keep = arg[4]

local BENCH_DIR = (arg[0]:match("^(.*)/[^/]*$") or ".")
local write_script = dofile(BENCH_DIR .. "/reload_script.lua")

local function ask(port, gen)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(60)
  c:send("x\n")
  local l = c:receive("*l")
  c:close()
  return l == "v" .. gen
end

-- Runs the server under callgrind for `rounds` rounds; returns its instruction total.
local function run(rounds)
  local dir = io.popen("mktemp -d /tmp/hsreload.XXXXXX"):read("l")
  local script, ctl, out = dir .. "/big.lua", dir .. "/ctl.sock", dir .. "/cg.out"
  write_script(script, 0)
  local s0 = assert(socket.bind("127.0.0.1", 0))
  local _, port = s0:getsockname()
  s0:close()
  port = tonumber(port)
  os.execute(("valgrind --tool=callgrind --callgrind-out-file=%s %s serve %s --listen "
    .. "tcp://127.0.0.1:%d --workers 1 --log-level warn --control %s >/dev/null 2>%s/log & echo $! >%s/pid")
    :format(out, bin, script, port, ctl, dir, dir))
  local pid = io.open(dir .. "/pid"):read("l")
  local up = false
  for _ = 1, 3000 do
    local c = socket.tcp()
    c:settimeout(1)
    up = c:connect("127.0.0.1", port) and os.execute("test -S " .. ctl)
    c:close()
    if up then break end
    socket.sleep(0.02)
  end
  assert(up, "server did not start")
  assert(ask(port, 0))
  for gen = 1, rounds do
    write_script(script, gen)
    local u = unix.stream()
    assert(u:connect(ctl))
    u:settimeout(60)
    u:send("reload\n")
    local reply = u:receive("*a")
    u:close()
    assert(reply and reply:match("^ok"), reply)
    assert(ask(port, gen), "the new version did not answer")
  end
  os.execute("kill " .. pid)
  for _ = 1, 3000 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    socket.sleep(0.02)
  end
  local text = io.open(out):read("a")
  local total = tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)"))
  if keep then os.rename(out, ("%s.%d.out"):format(keep, rounds)) end
  os.execute("rm -rf " .. dir)
  return total
end

local i1, i2 = run(r1), run(r2)
print(("%s: %d instructions per reload (reload + one connection answered by the new version; "
  .. "%d and %d rounds: %d, %d)"):format(bin, (i2 - i1) // (r2 - r1), r1, r2, i1, i2))
