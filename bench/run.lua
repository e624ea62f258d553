-- The benchmark driver: every workload against every server, in turn, for several rounds;
-- medians into a Markdown table and SVG plots. Started by bench/run.sh, which installs the
-- peers and builds build-bench/ first (run that, not this).
--
--   lua5.4 bench/run.lua [--quick] [--rounds N] [--duration S] [--warmup S]
--                        [--only ID,ID...] [--servers NAME,NAME...] [--no-readme] [--list]
--
-- Every server runs pinned to core 0 and every client (and this driver) to core 1 when the
-- machine has two cores. Every client run is bounded with timeout(1). CPU time per message is
-- read from /proc/PID/stat (utime + stime) of the server and all its descendants, before and
-- after the measured run. See bench/README.md for what each workload does.
local socket = require "socket"

-- Options ----------------------------------------------------------------------------------

local opt = {
  quick = false, rounds = 3, duration = 5, warmup = 1, only = nil, servers = nil,
  readme = true, build = "build-bench", upload_bytes = 1 << 30, idle_conns = 10000,
  reloads = 200, nginx_reloads = 50, results = "bench/results",
}
local function usage()
  io.stderr:write([[
usage: lua5.4 bench/run.lua [--quick] [--rounds N] [--duration S] [--warmup S]
                            [--only ID,...] [--servers NAME,...] [--no-readme] [--list]
  --quick      1 round, 1 s runs, 256 MiB upload, 50 reloads; writes bench/results/raw/quick.md
  --only       workload ids (see --list); --servers: server names (see --list)
  --no-readme  do not put the table into bench/RESULTS.md (a full run does by default)
]])
  os.exit(2)
end
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local function val()
      i = i + 1
      return arg[i] or usage()
    end
    if a == "--quick" then
      opt.quick, opt.rounds, opt.duration, opt.warmup = true, 1, 1, 0.3
      opt.upload_bytes, opt.reloads, opt.nginx_reloads = 256 << 20, 50, 20
    elseif a == "--rounds" then opt.rounds = tonumber(val()) or usage()
    elseif a == "--duration" then opt.duration = tonumber(val()) or usage()
    elseif a == "--warmup" then opt.warmup = tonumber(val()) or usage()
    elseif a == "--only" then opt.only = val()
    elseif a == "--servers" then opt.servers = val()
    elseif a == "--no-readme" then opt.readme = false
    elseif a == "--list" then opt.list = true
    else usage() end
    i = i + 1
  end
end
local partial = opt.quick or opt.only or opt.servers

-- Small utilities ---------------------------------------------------------------------------

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function readf(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local function writef(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end
local function capture(cmd)
  local f = assert(io.popen(cmd))
  local s = f:read("a")
  f:close()
  return s
end
local function exists(p) return readf(p) ~= nil end
local function log(fmt, ...) io.stderr:write(os.date("%H:%M:%S "), fmt:format(...), "\n") end
local now, sleep = socket.gettime, socket.sleep
local function median(t)
  local s = {}
  for _, v in ipairs(t) do if v == v then s[#s + 1] = v end end
  if #s == 0 then return nil end
  table.sort(s)
  local m = (#s + 1) // 2
  return #s % 2 == 1 and s[m] or (s[m] + s[m + 1]) / 2
end
local function pct(sorted, p) return sorted[math.max(1, math.ceil(#sorted * p))] end

local ROOT = capture("pwd"):match("[^\n]+")
local B = ROOT .. "/" .. opt.build
local HOTSOCK, LOADGEN = B .. "/hotsock", B .. "/bench/hs_loadgen"
local PEERS = ROOT .. "/bench/peers"
-- Not nproc: this driver runs pinned to one core, and nproc counts only the cores it may use.
local CORES = tonumber(capture("getconf _NPROCESSORS_ONLN")) or 1
local TWO_CORES = CORES >= 2
local PIN_SERVER = TWO_CORES and "taskset -c 0 " or ""
local PIN_CLIENT = TWO_CORES and "taskset -c 1 " or ""
local CLK = tonumber(capture("getconf CLK_TCK")) or 100
local TMP = capture("mktemp -d /tmp/hsbench.XXXXXX"):match("[^\n]+")
local PY = "/usr/bin/python3"

-- Processes: spawn, tree, CPU and memory accounting, stop. ------------------------------------

-- Starts cmd in the background with stdout+stderr to logfile; returns its pid. The command's
-- first word is exec'ed by sh, so the pid is the server's own.
local function spawn(cmd, logfile)
  local f = assert(io.popen(("%s > %s 2>&1 < /dev/null & echo $!"):format(cmd, q(logfile))))
  local pid = tonumber(f:read("l"))
  f:close()
  return pid
end

local function stat_fields(pid)
  local s = readf("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("%) (.*)$")
  local t = {}
  for w in rest:gmatch("%S+") do t[#t + 1] = w end
  return t -- t[1] state, t[2] ppid, t[8] minflt, t[12] utime, t[13] stime
end

local function alive(pid)
  local t = stat_fields(pid)
  return t ~= nil and t[1] ~= "Z" and t[1] ~= "X"
end

-- pid and all its descendants.
local function tree(root)
  local parent = {}
  for pid in capture("ls /proc"):gmatch("%d+") do
    local t = stat_fields(pid)
    if t then parent[tonumber(pid)] = tonumber(t[2]) end
  end
  local out, i = { root }, 1
  while i <= #out do
    for p, pp in pairs(parent) do
      if pp == out[i] then out[#out + 1] = p end
    end
    i = i + 1
  end
  return out
end

-- CPU ticks (utime + stime), minor page faults and user ticks (utime) of pids, summed.
local function cpu_ticks(pids)
  local sum, faults, user = 0, 0, 0
  for _, pid in ipairs(pids) do
    local t = stat_fields(pid)
    if t then
      sum = sum + tonumber(t[12]) + tonumber(t[13])
      faults = faults + tonumber(t[8])
      user = user + tonumber(t[12])
    end
  end
  return sum, faults, user
end

-- Sum over pids of a /proc/PID/status field in KiB (VmRSS, VmHWM).
local function mem_kib(pids, field)
  local sum = 0
  for _, pid in ipairs(pids) do
    local s = readf("/proc/" .. pid .. "/status")
    local v = s and s:match(field .. ":%s*(%d+) kB")
    if v then sum = sum + tonumber(v) end
  end
  return sum
end

local function wait_gone(pids, secs)
  local deadline = now() + secs
  repeat
    local any = false
    for _, p in ipairs(pids) do any = any or alive(p) end
    if not any then return true end
    sleep(0.02)
  until now() > deadline
  return false
end

-- SIGTERM to the server, then SIGKILL to whatever of its tree is left after 5 s.
local function stop_tree(pid)
  if not pid then return end
  local pids = tree(pid)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  if not wait_gone(pids, 5) then
    for _, p in ipairs(pids) do
      if alive(p) then os.execute("kill -KILL " .. p .. " 2>/dev/null") end
    end
    wait_gone(pids, 2)
  end
end

-- A free TCP port whose UDP twin is free too.
local function free_port()
  for _ = 1, 50 do
    local t = socket.tcp()
    t:setoption("reuseaddr", true)
    assert(t:bind("127.0.0.1", 0))
    local _, port = t:getsockname()
    t:close()
    local u = socket.udp()
    local ok = u:setsockname("127.0.0.1", port)
    u:close()
    if ok then return tonumber(port) end
  end
  error("no free port")
end

local function tcp_ready(port, secs)
  local deadline = now() + secs
  repeat
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then
      c:close()
      return true
    end
    c:close()
    sleep(0.02)
  until now() > deadline
  return false
end

-- Busy ticks per CPU from /proc/stat: user, nice, system, irq and softirq; or, with
-- tasks_only, user, nice and system, the time that processes are charged for. Loopback
-- traffic is processed in softirq, which this kernel accounts apart from any process, so the
-- noise measure leaves it out: it belongs to the benchmark's own traffic.
local function cpu_busy(tasks_only)
  local t = {}
  for id, rest in (readf("/proc/stat") or ""):gmatch("\ncpu(%d+) ([^\n]*)") do
    local f = {}
    for n in rest:gmatch("%d+") do f[#f + 1] = tonumber(n) end
    t[tonumber(id)] = f[1] + f[2] + f[3] + (tasks_only and 0 or f[6] + f[7])
  end
  return t
end

-- Steal time per core (ticks): time the hypervisor ran something else while this guest's
-- vCPU had work. No process in the guest is charged for it, so cpu_busy cannot see it, yet
-- a server that loses a share of its core that way loses that share of its rate.
local function cpu_steal()
  local t = {}
  for id, rest in (readf("/proc/stat") or ""):gmatch("\ncpu(%d+) ([^\n]*)") do
    local f = {}
    for n in rest:gmatch("%d+") do f[#f + 1] = tonumber(n) end
    t[tonumber(id)] = f[8] or 0
  end
  return t
end

-- The machine is shared: before a measured run, wait (up to 20 s, at most 2 minutes in all)
-- until the cores are quiet, i.e. under 10% of a core busy over 0.3 s while our servers idle.
-- Returns the seconds waited; runs that started on a busy machine are counted in the report.
local wait_budget, noisy_starts = 120, 0
local function wait_quiet()
  local t0 = now()
  while true do
    local a = cpu_busy()
    sleep(0.3)
    local b, busy = cpu_busy(), 0
    for id, v in pairs(b) do busy = busy + v - (a[id] or v) end
    if busy / CLK / 0.3 < 0.10 then break end
    if now() - t0 > 20 or wait_budget <= 0 then
      noisy_starts = noisy_starts + 1
      break
    end
    wait_budget = wait_budget - 0.3
  end
  return now() - t0
end

-- Where the host has put the two cores. On a virtual machine the host places the guest's
-- vCPUs and moves them: with cores 0 and 1 close together (a cache line there and back in
-- 50-110 ns here) every echo server, the C ceiling included, runs about twice as fast as with
-- them apart (330-410 ns), for as long as the host leaves them so (bench/results/placement.md).
-- hs_core_distance measures it once a second through each measured run (a few milliseconds of
-- both cores each time). The cells of a row must compare runs made in the same placement, so
-- each row has a target: "near" while the wait budget lasts, and once it is spent (the host
-- can keep the cores apart for many minutes) whichever placement the row's first whole run
-- had, near or far. A run not in its row's placement throughout is made again, as a noisy one
-- is, after waiting (bounded) for the cores to be placed so.
local FAR_NS, placement_budget, placement_waited = 200, 600, 0
local row_target -- "near", "far", or nil: the row's next run that stays put decides
local DISTANCE = B .. "/bench/hs_core_distance"
local function core_distance()
  if not TWO_CORES then return nil end
  return tonumber((capture(q(DISTANCE)) or ""):match("%d+"))
end
local function placed_wrong(d)
  if d == nil or row_target == nil then return false end
  return (row_target == "near") == (d >= FAR_NS)
end
-- Waits (at most 30 s at a time, and placement_budget in all) for the row's placement.
local function wait_placed()
  local t0, d = now(), core_distance()
  while placed_wrong(d) and placement_budget > 0 and now() - t0 < 30 do
    sleep(1)
    placement_budget = placement_budget - 1
    d = core_distance()
  end
  placement_waited = placement_waited + (now() - t0)
end
-- A new row: near while the budget lasts, else its first run that stays put decides.
local function row_start()
  row_target = placement_budget > 0 and "near" or nil
end
-- Starts measuring the distance once a second for up to secs; placement_end stops it and
-- returns "near" (every measurement near), "far" (every one apart) or "moved", and the range
-- seen in ns ("min-max").
local function placement_start(secs)
  if not TWO_CORES then return nil end
  local out = TMP .. "/distance.out"
  os.remove(out)
  return { out = out, pid = spawn(("%s --count %d --every 1000"):format(q(DISTANCE),
    math.ceil(secs) + 2), out) }
end
local function placement_end(w)
  if not w then return nil end
  os.execute("kill -TERM " .. w.pid .. " 2>/dev/null")
  while alive(w.pid) do sleep(0.01) end
  local lo, hi
  for v in (readf(w.out) or ""):gmatch("%d+") do
    v = tonumber(v)
    lo, hi = math.min(lo or v, v), math.max(hi or v, v)
  end
  if not lo then return nil end
  local where = hi < FAR_NS and "near" or (lo >= FAR_NS and "far" or "moved")
  return where, ("%d-%d"):format(lo, hi)
end

-- Runs a client command pinned to the client core, bounded by limit seconds; returns
-- (exit code, output).
local function run_client(cmd, limit)
  local out = TMP .. "/client.out"
  local ok, _, code = os.execute(("timeout -k 2 %d %s%s > %s 2>&1"):format(
    math.ceil(limit), PIN_CLIENT, cmd, q(out)))
  return ok and 0 or code, readf(out) or ""
end

-- key=value pairs of the last result line of hs_loadgen or of bench/peers/wrk_report.lua.
local function parse_result(text)
  local line
  for l in text:gmatch("[^\n]+") do
    if l:match("^mode=") or l:match("^wrk ") then line = l end
  end
  if not line then return nil end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

-- Static content and scratch space. ------------------------------------------------------------

local WWW = TMP .. "/www"
os.execute(("chmod 755 %s && mkdir -p %s"):format(q(TMP), q(WWW))) -- nginx workers run as nobody
os.execute(("head -c 1024 /dev/urandom > %s/1k.bin && head -c 102400 /dev/urandom > %s/100k.bin")
  :format(q(WWW), q(WWW)))
local HAVE_HTTP = exists(ROOT .. "/scripts/http.lua")

-- Servers -------------------------------------------------------------------------------------
-- Each server gives, for a workload, the command that starts it on port P (UDP, where used, on
-- the same number), or nil and the reason it cannot run that workload. Baselines that do not
-- apply to a workload return nil without a reason and are left out silently.

-- Every client connects from 127.0.0.1, so the per-address connection cap (256 by default)
-- is lifted; 10,000 idle connections need --max-connections above 10,000.
local function hs(script, port, extra, level)
  return ("%s serve %s --listen tcp://127.0.0.1:%d %s --workers 1 --control none "
    .. "--log-level %s --max-connections 12000 --max-per-peer 0 --grace 1"):format(
    HOTSOCK, q(ROOT .. "/scripts/" .. script), port, extra or "", level or "warn")
end

local NO_STREAM_LUA = "Debian 12's nginx-extras has no stream Lua module (ngx_stream_lua), so "
  .. "nginx cannot run a Lua TCP/UDP handler"

local SERVERS = {
  { name = "hotsock", label = "hotsock (Lua)", cmd = function(w, p, dir)
      if w.kind == "tcp" or w.kind == "udp" or w.kind == "idle" then
        return hs("echo.lua", p, ("--listen udp://127.0.0.1:%d"):format(p))
      elseif w.kind == "http" then
        if not HAVE_HTTP then return nil, "hotsock HTTP not available yet (no scripts/http.lua)" end
        return hs("http.lua", p, "--set root=" .. q(WWW))
      elseif w.kind == "upload" then
        return hs("upload.lua", p, "--set dir=" .. q(dir), "info")
      end
    end },
  { name = "raw", label = "C raw reads (hs_echo_raw)", baseline = true, cmd = function(w, p)
      if w.kind == "tcp" or w.kind == "udp" or w.kind == "idle" then
        return ("%s/bench/hs_echo_raw --listen 127.0.0.1:%d --udp 127.0.0.1:%d"):format(B, p, p)
      end
    end },
  { name = "bev", label = "C bufferevents (hs_echo_bev)", baseline = true, cmd = function(w, p)
      if w.kind == "tcp" or w.kind == "idle" then
        return ("%s/bench/hs_echo_bev --listen 127.0.0.1:%d"):format(B, p)
      end
    end },
  { name = "cfile", label = "C read+write+fsync (hs_upload_raw)", baseline = true,
    cmd = function(w, p, dir)
      if w.kind == "upload" then
        return ("%s/bench/hs_upload_raw --listen 127.0.0.1:%d --dir %s"):format(B, p, q(dir))
      end
    end },
  { name = "nginx", label = "nginx + Lua / static", cmd = function(w, p, dir)
      if w.kind == "http" then
        local conf = readf(PEERS .. "/nginx.conf.in"):gsub("@(%u+)@", {
          DIR = dir, ROOT = WWW, LISTEN = "127.0.0.1:" .. p, BODY = "hello from nginx" })
        writef(dir .. "/nginx.conf", conf)
        return ("nginx -c %s/nginx.conf -p %s -e %s/error.log"):format(q(dir), q(dir), q(dir))
      elseif w.kind == "upload" then
        return nil, NO_STREAM_LUA .. " (the upload protocol is not HTTP)"
      else
        return nil, NO_STREAM_LUA
      end
    end },
  { name = "haproxy", label = "HAProxy Lua applets", cmd = function(w, p, dir)
      if w.kind == "udp" then return nil, "HAProxy 2.6 has no UDP services" end
      if w.kind == "upload" then
        return nil, "not written: an AppletTCP cannot write files without blocking HAProxy's loop"
      end
      if w.kind == "http" and w.path ~= "/hello" then
        return nil, "HAProxy is not a file server (http-request return file must fit one buffer)"
      end
      local tcp, http = "127.0.0.1:" .. p, "127.0.0.1:" .. free_port()
      if w.kind == "http" then tcp, http = "127.0.0.1:" .. free_port(), "127.0.0.1:" .. p end
      local conf = readf(PEERS .. "/haproxy.cfg.in"):gsub("@(%u+)@", {
        DIR = PEERS, TCP = tcp, HTTP = http, BLOCK = tostring(w.size or 64) })
      writef(dir .. "/haproxy.cfg", conf)
      return ("haproxy -db -f %s/haproxy.cfg"):format(q(dir))
    end },
  { name = "tarantool", label = "Tarantool socket", cmd = function(w, p)
      if w.kind == "tcp" or w.kind == "udp" or w.kind == "idle" then
        return ("tarantool %s/tarantool_echo.lua %d %d"):format(q(PEERS), p, p)
      elseif w.kind == "http" then
        return nil, "Tarantool's HTTP server is the http rock, which Debian 12 does not package"
      else
        return nil, "not written (the socket module has no file streaming of its own)"
      end
    end },
  { name = "python", label = "Python asyncio", cmd = function(w, p, dir)
      local py = ("%s %s/py_asyncio.py "):format(PY, q(PEERS))
      if w.kind == "tcp" or w.kind == "udp" or w.kind == "idle" then
        return py .. ("echo %d %d"):format(p, p)
      elseif w.kind == "http" then
        return py .. ("http %d %s"):format(p, q(WWW))
      elseif w.kind == "upload" then
        return py .. ("upload %d %s"):format(p, q(dir))
      end
    end },
}
local SERVER = {}
for _, s in ipairs(SERVERS) do SERVER[s.name] = s end

-- Workloads -----------------------------------------------------------------------------------

-- The echo rows get at least five rounds (min_rounds): on this machine they are bimodal for
-- every server, the C ceiling included (4 KiB pipelined: ~1.3 or ~2.8 µs of CPU per message;
-- 64 B at 50 conns: ~5.3 or ~7.7), decided per client run, with the same system calls per
-- message: the server's kernel time per message changes (bench/results/rerun-echo.md). With
-- five, one run in the other mode does not decide the median.
local WORKLOADS = {
  { id = "tcp64_1", kind = "tcp", size = 64, min_rounds = 5, title = "TCP echo 64 B ping-pong, 1 conn",
    args = "--mode pingpong --size 64 --conns 1" },
  { id = "tcp64_50", kind = "tcp", size = 64, min_rounds = 5, title = "TCP echo 64 B ping-pong, 50 conns",
    args = "--mode pingpong --size 64 --conns 50" },
  { id = "tcp64_500", kind = "tcp", size = 64, min_rounds = 5, title = "TCP echo 64 B ping-pong, 500 conns",
    args = "--mode pingpong --size 64 --conns 500" },
  { id = "tcp4k_pipe", kind = "tcp", size = 4096, min_rounds = 5,
    title = "TCP echo 4 KiB pipelined (depth 16), 50 conns",
    args = "--mode pipeline --size 4096 --depth 16 --conns 50" },
  { id = "udp64", kind = "udp", size = 64, min_rounds = 5, title = "UDP echo 64 B, 50 sockets",
    args = "--size 64 --conns 50" },
  { id = "http_hello", kind = "http", path = "/hello", title = "HTTP GET /hello (Lua), 50 conns" },
  { id = "http_1k", kind = "http", path = "/1k.bin", title = "HTTP GET 1 KiB static file, 50 conns" },
  { id = "http_100k", kind = "http", path = "/100k.bin",
    title = "HTTP GET 100 KiB static file, 50 conns" },
  { id = "upload", kind = "upload", title = "Upload of one file over the framed protocol" },
  { id = "idle", kind = "idle", size = 64, title = "Memory per idle connection" },
  { id = "reload", kind = "reload", title = "Reload latency" },
  { id = "reload_tp", kind = "reload_tp", title = "TCP echo 64 B ping-pong, 50 conns, during reloads" },
}

if opt.list then
  for _, w in ipairs(WORKLOADS) do print(w.id, w.title) end
  for _, s in ipairs(SERVERS) do print(s.name, s.label) end
  os.exit(0)
end
local function wanted(list, name)
  if not list then return true end
  for x in list:gmatch("[^,]+") do if x == name then return true end end
  return false
end

-- Server instances ----------------------------------------------------------------------------

local instances = {} -- every started instance, so a failure still stops them all

local function start(s, w)
  local dir = capture("mktemp -d " .. q(TMP .. "/" .. s.name .. ".XXXX")):match("[^\n]+")
  local port = free_port()
  local cmd, why = s.cmd(w, port, dir)
  if not cmd then return nil, why end
  local inst = { s = s, port = port, dir = dir, log = dir .. "/server.log" }
  inst.pid = spawn(PIN_SERVER .. cmd, inst.log)
  instances[inst] = true
  if not tcp_ready(port, 10) then
    local text = readf(inst.log) or ""
    stop_tree(inst.pid)
    instances[inst] = nil
    return nil, "did not start: " .. (text:match("[^\n]*\n?[^\n]*$") or "?"), true
  end
  return inst
end

local function stop(inst)
  if not inst then return end
  stop_tree(inst.pid)
  instances[inst] = nil
  os.execute("rm -rf " .. q(inst.dir))
end

-- Results -------------------------------------------------------------------------------------

local results = {}  -- results[wid][server] = { runs = {...}, na = reason }
-- One TSV line per measured run, written as it is made, so a run cut short by its time
-- bound still leaves its data behind.
os.execute("mkdir -p " .. q(opt.results .. "/raw"))
local stamp = os.date("!%Y%m%dT%H%M%SZ")
local raw_path = ("%s/raw/runs-%s.tsv"):format(opt.results, stamp)
local raw_file = assert(io.open(raw_path, "w"))
local function slot(wid, sname)
  results[wid] = results[wid] or {}
  results[wid][sname] = results[wid][sname] or { runs = {}, wid = wid }
  return results[wid][sname]
end
-- The placement each row ended up comparing in (row_target when its last run was recorded).
local row_placement = {}
local function record(w, s, round, r)
  local sl = slot(w.id, s.name)
  r.round = round
  sl.runs[#sl.runs + 1] = r
  row_placement[w.id] = row_target
  local kv = {}
  for k, v in pairs(r) do kv[#kv + 1] = k .. "=" .. tostring(v) end
  table.sort(kv)
  raw_file:write(table.concat({ w.id, s.name, round, table.concat(kv, " ") }, "\t"), "\n")
  raw_file:flush()
  if r.err then
    log("  %-10s %-10s round %d: FAILED %s", w.id, s.name, round, r.err)
  else
    log("  %-10s %-10s round %d: %s", w.id, s.name, round, r.summary or "")
  end
end

-- Throughput runs (hs_loadgen, wrk) -----------------------------------------------------------

-- Fetches url and checks the status and body, so a fast wrong answer cannot win.
local function http_check(inst, w)
  local out = inst.dir .. "/check.body"
  local code = capture(("curl -s -o %s -w '%%{http_code}' --max-time 5 http://127.0.0.1:%d%s")
    :format(q(out), inst.port, w.path))
  local body = readf(out) or ""
  if code ~= "200" then return "GET " .. w.path .. " answered " .. code end
  if w.path == "/hello" then
    if not body:match("^hello") then return "GET /hello answered " .. ("%q"):format(body) end
  elseif body ~= readf(WWW .. w.path) then
    return "GET " .. w.path .. " body differs from the file"
  end
end

local function client_cmd(w, inst, secs)
  if w.kind == "http" then
    return ("wrk -t1 -c50 -d%ds --timeout 5s -s %s/wrk_report.lua http://127.0.0.1:%d%s")
      :format(math.max(1, math.floor(secs + 0.5)), q(PEERS), inst.port, w.path)
  end
  local scheme = w.kind == "udp" and "udp" or "tcp"
  return ("%s --target %s://127.0.0.1:%d %s --duration %g"):format(LOADGEN, scheme, inst.port,
    w.args, secs)
end

-- CPU ticks of this driver and every client it has waited for (utime, stime, cutime, cstime
-- of /proc/self/stat): run_client's timeout(1) waits for the client and the shell waits for
-- timeout, so a client's CPU time lands in cutime/cstime when it ends.
local function client_ticks()
  local t = stat_fields("self")
  return tonumber(t[12]) + tonumber(t[13]) + tonumber(t[14]) + tonumber(t[15])
end

local function measure_once(w, inst)
  if not alive(inst.pid) then return { err = "server exited: " .. (readf(inst.log) or ""):sub(-300) } end
  if w.kind == "http" then
    local bad = http_check(inst, w)
    if bad then return { err = bad } end
  end
  wait_quiet()
  wait_placed()
  if opt.warmup > 0 then run_client(client_cmd(w, inst, opt.warmup), opt.warmup + 20) end
  local pids = tree(inst.pid)
  local watch = placement_start(opt.duration)
  local c0, f0, u0 = cpu_ticks(pids)
  local t0, k0, l0, s0 = now(), cpu_busy(true), client_ticks(), cpu_steal()
  local code, text = run_client(client_cmd(w, inst, opt.duration), opt.duration + 30)
  local c1, f1, u1 = cpu_ticks(pids)
  local t1, k1, l1, s1 = now(), cpu_busy(true), client_ticks(), cpu_steal()
  local where, range = placement_end(watch)
  local r = parse_result(text)
  if not r then return { err = "no result (exit " .. tostring(code) .. "): " .. text:sub(-200) } end
  local msgs = r.messages or r.requests
  local errs = (r.errors or 0) + (r.mismatches or 0) + (r.errors_connect or 0) +
    (r.errors_read or 0) + (r.errors_write or 0) + (r.errors_status or 0) + (r.errors_timeout or 0)
  local res = {
    rate = r.msg_per_s or r.req_per_s, mbps = r.mb_per_s, p50 = r.p50_us, p99 = r.p99_us,
    p999 = r.p999_us, msgs = msgs, lost = r.lost, cpu_s = (c1 - c0) / CLK,
    placement = where, cores_ns = range,
  }
  res.cpu_us = msgs > 0 and res.cpu_s * 1e6 / msgs or nil
  -- The user part of it: a run slow in the kernel (placement, the loopback) and one slow in
  -- the server's own code look alike in CPU/op (bench/results/rerun-http-hello.md).
  res.user_us = msgs > 0 and (u1 - u0) / CLK * 1e6 / msgs or nil
  -- Minor page faults per 1,000 operations: a server that gives memory back to the kernel and
  -- takes it again (an allocator cache, a malloc trim) shows here before it shows in time.
  res.faults_kop = msgs > 0 and (f1 - f0) * 1000 / msgs or nil
  res.cpu_util = res.cpu_s / (t1 - t0)
  -- Busy time on the server's core that was not the server's, and on the client's core that
  -- was not the client's (or this driver's): other tenants of this shared machine. The larger
  -- of the two, as a share of one core, is the run's noise.
  local wall = (t1 - t0) * CLK
  res.foreign = math.max(0, ((k1[0] or 0) - (k0[0] or 0) - (c1 - c0)) / wall)
  res.foreign_client = TWO_CORES and math.max(0, ((k1[1] or 0) - (k0[1] or 0) - (l1 - l0)) / wall) or 0
  -- The hypervisor's steal from each core counts as that core's noise too.
  res.steal = ((s1[0] or 0) - (s0[0] or 0)) / wall
  res.steal_client = TWO_CORES and ((s1[1] or 0) - (s0[1] or 0)) / wall or 0
  res.noise = math.max(res.foreign + res.steal, res.foreign_client + res.steal_client)
  if code ~= 0 or errs > 0 then
    res.err = ("exit %s, %d errors: %s"):format(tostring(code), errs,
      (text:match("hs_loadgen: [^\n]*") or text:sub(-200)))
  end
  res.summary = ("%.0f/s p99 %s us, %.2f us CPU each (%.2f user), %.2f faults/kop, CPU %.0f%%, "
    .. "noise %.0f%% (steal %.0f%%/%.0f%%), cores %s (%s ns)"):format(res.rate or 0, tostring(res.p99),
    res.cpu_us or 0, res.user_us or 0, res.faults_kop or 0, res.cpu_util * 100, res.noise * 100,
    res.steal * 100, res.steal_client * 100, res.placement or "?", res.cores_ns or "?")
  return res
end

-- The machine is shared with other engineers' builds and tests, which are not pinned: a run
-- during which they took more than NOISY of a core (server's or client's) is repeated, up to
-- twice, and the quietest attempt is kept. The table reports each cell's median noise. Repeats
-- are bounded too (RETRY_BUDGET in all), so a machine that stays busy cannot stretch the run
-- past its time bound.
-- A run made out of its row's placement (row_target), or while the host moved the cores, is
-- repeated too, from a budget of its own; of the attempts, a well-placed one is kept before a
-- quiet one. is_placed fixes an undecided row's placement from the first run that stays put.
-- 10%: the goals are decided within a few percent, and a run that lost a tenth of a core to
-- others is not a comparison at that scale.
local NOISY, retries, RETRY_BUDGET = 0.10, 0, 60
-- Placement repeats have a budget of their own: the host can move the cores every few seconds
-- for many minutes, and a shared budget spent on that left the later rows unrepeated.
local placement_retries, PLACEMENT_RETRY_BUDGET = 0, 150
local function is_placed(r)
  if r.placement == nil then return true end
  if row_target == nil and r.placement ~= "moved" then row_target = r.placement end
  return r.placement == row_target
end
local function better(a, b)
  if is_placed(a) ~= is_placed(b) then return is_placed(a) end
  return a.noise < b.noise
end
-- Makes a measured run with one(), up to three times for noise and five for placement, and
-- returns the best attempt.
local function attempts(name, one)
  local best
  for attempt = 1, 5 do
    local r = one()
    if r.err then return r end
    if not best or better(r, best) then best = r end
    local noisy, placed = r.noise > NOISY, is_placed(r)
    if not noisy and placed then break end
    if noisy and (attempt >= 3 or retries >= RETRY_BUDGET) then break end
    if not noisy and (attempt >= 5 or placement_retries >= PLACEMENT_RETRY_BUDGET) then break end
    if noisy then
      retries = retries + 1
      log("  %s noisy run (%.0f%% of a core taken by others), again", name, r.noise * 100)
    else
      placement_retries = placement_retries + 1
      log("  %s cores %s (%s ns), the row runs %s: again", name, r.placement, r.cores_ns,
        row_target or "where it first stays")
    end
  end
  return best
end
local function measure(w, inst)
  return attempts(("%-10s %-10s"):format(w.id, inst.s.name), function() return measure_once(w, inst) end)
end

-- Each measured run gets a freshly started server, and only that server is running: a peer
-- left busy by the previous run (HAProxy 2.6's Lua echo applet keeps a core busy after the
-- pipelined run's connections close) must not share the server core with the next one.
local function run_throughput(w, list)
  local skip = {}
  local rounds = opt.quick and opt.rounds or math.max(opt.rounds, w.min_rounds or 0)
  for round = 1, rounds do
    for _, s in ipairs(list) do
      if not skip[s.name] then
        local inst, why = start(s, w)
        if inst then
          record(w, s, round, measure(w, inst))
          stop(inst)
        else
          slot(w.id, s.name).na = why
          skip[s.name] = true
        end
      end
    end
  end
end

-- Upload ---------------------------------------------------------------------------------------

local function run_upload(w, list)
  for round = 1, opt.rounds do
    for _, s in ipairs(list) do
      local inst, why = start(s, w)
      if not inst then
        slot(w.id, s.name).na = why
      else
        os.execute("sync")
        wait_quiet()
        wait_placed()
        local pids = tree(inst.pid)
        local c0, watch = cpu_ticks(pids), placement_start(300)
        local code, text = run_client(("%s --target tcp://127.0.0.1:%d --mode upload --bytes %d "
          .. "--duration 300"):format(LOADGEN, inst.port, opt.upload_bytes), 320)
        local c1 = cpu_ticks(pids)
        local where, range = placement_end(watch)
        local hwm = mem_kib(tree(inst.pid), "VmHWM")
        local r = parse_result(text)
        local res
        if not r or code ~= 0 then
          res = { err = "exit " .. tostring(code) .. ": " .. text:sub(-300) }
        else
          res = { mbps = r.mb_per_s, secs = r.duration, ack_ms = r.ack_ms, rss_mib = hwm / 1024,
            cpu_s = (c1 - c0) / CLK, placement = where, cores_ns = range }
          res.summary = ("%.0f MB/s, %.2f s (ack %.0f ms after the last byte), peak RSS %.1f MiB, "
            .. "CPU %.2f s, cores %s (%s ns)"):format(res.mbps, res.secs, res.ack_ms, res.rss_mib,
            res.cpu_s, res.placement or "?", res.cores_ns or "?")
        end
        record(w, s, round, res)
        stop(inst)
      end
    end
  end
end

-- Idle connections --------------------------------------------------------------------------

local function run_idle(w, list)
  local n = opt.idle_conns
  for round = 1, opt.rounds do
    for _, s in ipairs(list) do
      local inst, why = start(s, w)
      if not inst then
        slot(w.id, s.name).na = why
      else
        wait_quiet()
        -- One short echo first, so the baseline includes whatever a first connection touches.
        run_client(("%s --target tcp://127.0.0.1:%d --conns 1 --messages 10 --duration 2")
          :format(LOADGEN, inst.port), 10)
        sleep(0.3)
        local rss0 = mem_kib(tree(inst.pid), "VmRSS")
        local out = TMP .. "/idle.out"
        os.remove(out)
        local lg = spawn(("timeout -k 2 90 %s%s --target tcp://127.0.0.1:%d --mode idle --conns %d "
          .. "--size 64 --duration 80"):format(PIN_CLIENT, LOADGEN, inst.port, n), out)
        local deadline = now() + 60
        local ready
        repeat
          sleep(0.1)
          ready = (readf(out) or ""):find("connected " .. n, 1, true) ~= nil
        until ready or now() > deadline or not alive(lg)
        local res
        if ready then
          sleep(1) -- let the server settle (deferred frees, the last callbacks)
          local rss1 = mem_kib(tree(inst.pid), "VmRSS")
          res = { rss0_mib = rss0 / 1024, rss1_mib = rss1 / 1024,
            per_conn = (rss1 - rss0) * 1024 / n }
          res.summary = ("RSS %.1f -> %.1f MiB: %.0f bytes per connection"):format(
            res.rss0_mib, res.rss1_mib, res.per_conn)
        else
          res = { err = "connections not ready: " .. (readf(out) or ""):sub(-300) }
        end
        os.execute("kill -TERM " .. lg .. " 2>/dev/null")
        wait_gone({ lg }, 10)
        record(w, s, round, res)
        stop(inst)
      end
    end
  end
end

-- Reload latency and throughput during reloads ------------------------------------------------

-- The handler of about 300 lines every reload measurement uses (bench/reload_script.lua).
local big_script = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/reload_script.lua")

local function ask_line(port, gen)
  local c = socket.tcp()
  c:settimeout(2)
  if not c:connect("127.0.0.1", port) then c:close() return false end
  c:setoption("tcp-nodelay", true)
  c:send("x\n")
  local l = c:receive("*l")
  c:close()
  return l == "v" .. gen
end

local function ask_http(port, gen)
  local c = socket.tcp()
  c:settimeout(2)
  if not c:connect("127.0.0.1", port) then c:close() return false end
  c:send("GET /hello HTTP/1.0\r\nHost: bench\r\n\r\n")
  local all = c:receive("*a") or ""
  c:close()
  return all:match("\r\n\r\n(.*)$") == "v" .. gen .. "\n"
end

-- kill(2) from this process (bench/signal_lua.c): the signal is pending in the server when
-- the clock has started, with no shell in between (a shell kept open for its builtin kill ran
-- only once the driver blocked on its first ask, so its wake-up and that ask's round trip were
-- measured too, and half the first asks met the old version).
local sigmod
local function signal(pid, sig)
  sigmod = sigmod or assert(package.loadlib(B .. "/bench/hs_bench_signal.so",
    "luaopen_hs_bench_signal"))()
  sigmod.kill(pid, sig)
end

-- Latency of n reloads: from kill(pid, SIGHUP) to the first reply of the new version, on a
-- new connection opened at once (its handshake overlaps the reload; it is served when the
-- reload is done). A reply of the old version (the signal not yet taken) asks again; asks
-- counts every ask, so asks / reloads above 1 says how often that happened.
local function reload_samples(inst, n, write_version, ask)
  local samples, failed, asks = {}, 0, 0
  for gen = 2, n + 1 do
    write_version(gen)
    local t0 = now()
    signal(inst.pid, "HUP")
    local ok
    repeat
      ok = ask(inst.port, gen)
      asks = asks + 1
    until ok or now() - t0 > 5
    if ok then samples[#samples + 1] = (now() - t0) * 1000 else failed = failed + 1 end
  end
  table.sort(samples)
  return samples, failed, asks
end

local function run_reload(w, list)
  for round = 1, opt.rounds do
    for _, s in ipairs(list) do
      local res
      if s.name == "hotsock" then
        local dir = capture("mktemp -d " .. q(TMP .. "/reload.XXXX")):match("[^\n]+")
        local script, port = dir .. "/big.lua", free_port()
        big_script(script, 1)
        local pid = spawn(("%s%s serve %s --listen tcp://127.0.0.1:%d --workers 1 --control none "
          .. "--log-level warn --grace 1"):format(PIN_SERVER, HOTSOCK, q(script), port), dir .. "/log")
        local inst = { s = s, pid = pid, port = port, dir = dir }
        instances[inst] = true
        if tcp_ready(port, 10) then
          wait_quiet()
          local samples, failed, asks = reload_samples(inst, opt.reloads,
            function(gen) big_script(script, gen) end, ask_line)
          res = { n = #samples, failed = failed, p50 = median(samples), p90 = pct(samples, 0.9),
            max = samples[#samples], asks = asks / opt.reloads,
            what = "SIGHUP to a 303-line script" }
        else
          res = { err = "did not start: " .. (readf(dir .. "/log") or "") }
        end
        stop(inst)
      elseif s.name == "nginx" then
        local inst, why = start(s, { kind = "http", path = "/hello" })
        if not inst then
          slot(w.id, s.name).na = why
        else
          wait_quiet()
          local conf = inst.dir .. "/nginx.conf"
          local base = readf(conf)
          local samples, failed, asks = reload_samples(inst, opt.nginx_reloads, function(gen)
            writef(conf .. ".new", (base:gsub("hello from nginx", "v" .. gen)))
            os.rename(conf .. ".new", conf)
          end, ask_http)
          res = { n = #samples, failed = failed, p50 = median(samples), p90 = pct(samples, 0.9),
            max = samples[#samples], asks = asks / opt.nginx_reloads,
            what = "SIGHUP to the master (nginx -s reload)" }
          stop(inst)
        end
      end
      if res then
        if not res.err and res.n == 0 then res.err = "no reload completed" end
        if not res.err then
          res.summary = ("%d reloads: median %.2f ms, p90 %.2f ms, max %.2f ms, %d failed, "
            .. "%.2f asks per reload"):format(res.n, res.p50, res.p90, res.max, res.failed, res.asks)
        end
        record(w, s, round, res)
      end
    end
  end
end

local function run_reload_tp(w)
  local s = SERVER.hotsock
  local lw = { kind = "tcp", args = "--mode pingpong --size 64 --conns 50" }
  local inst, why = start({ name = "hotsock", cmd = function(_, p)
    return hs("echo.lua", p, nil, "info")
  end }, lw)
  if not inst then slot(w.id, "hotsock").na = why return end
  inst.s = s
  local function reloads_so_far()
    local n = 0
    for _ in (readf(inst.log) or ""):gmatch("reloaded [^\n]*generation") do n = n + 1 end
    return n
  end
  local function one(variant)
    wait_quiet()
    wait_placed()
    if opt.warmup > 0 then run_client(client_cmd(lw, inst, opt.warmup), opt.warmup + 20) end
    local pids = tree(inst.pid)
    local watch = placement_start(opt.duration)
    local c0, r0, t0, k0, s0 = cpu_ticks(pids), reloads_so_far(), now(), cpu_busy(true), cpu_steal()
    local out = TMP .. "/reload_tp.out"
    local lg = spawn(("timeout -k 2 %d %s%s"):format(math.ceil(opt.duration + 30), PIN_CLIENT,
      client_cmd(lw, inst, opt.duration)), out)
    local sent, lg_ticks, tl = 0, 0, t0
    while alive(lg) do
      sleep(0.1)
      -- The client's CPU so far (it runs detached, so it is sampled, not read at its end).
      local lt = cpu_ticks(tree(lg))
      if lt > 0 then lg_ticks, tl = lt, now() end
      if variant == "reload" and alive(lg) then
        signal(inst.pid, "HUP")
        sent = sent + 1
      end
    end
    local c1, t1, k1, s1 = cpu_ticks(pids), now(), cpu_busy(true), cpu_steal()
    local where, range = placement_end(watch)
    sleep(0.2) -- the last reload's log line
    local r = parse_result(readf(out) or "")
    if not r or (r.errors or 0) + (r.mismatches or 0) > 0 then
      return { err = "loadgen failed: " .. (readf(out) or ""):sub(-300) }
    end
    local wall = (t1 - t0) * CLK
    local res = { variant = variant, rate = r.msg_per_s, p99 = r.p99_us,
      reloads = reloads_so_far() - r0, signals = sent, cpu_us = (c1 - c0) / CLK * 1e6 / r.messages,
      noise = math.max(0, ((k1[0] or 0) - (k0[0] or 0) - (c1 - c0)) / wall)
        + ((s1[0] or 0) - (s0[0] or 0)) / wall,
      placement = where, cores_ns = range }
    if TWO_CORES and tl > t0 then
      -- Client core: its busy time less the client's own, over the part of the run sampled.
      local client = math.max(0, ((k1[1] or 0) - (k0[1] or 0) - lg_ticks) / wall - (t1 - tl) / (t1 - t0))
      res.noise = math.max(res.noise, client + ((s1[1] or 0) - (s0[1] or 0)) / wall)
    end
    res.summary = ("%s: %.0f msg/s, p99 %d us, %d reloads done, noise %.0f%%, cores %s (%s ns)")
      :format(variant, res.rate, res.p99, res.reloads, res.noise * 100, res.placement or "?",
        res.cores_ns or "?")
    return res
  end
  for round = 1, opt.rounds do
    for _, variant in ipairs { "steady", "reload" } do
      local best = attempts(("reload_tp  %-10s"):format(variant), function() return one(variant) end)
      record(w, { name = "hotsock_" .. variant }, round, best)
    end
  end
  stop(inst)
end

-- Run everything ------------------------------------------------------------------------------

local started = now()
local machine = {
  date = os.date("!%Y-%m-%d %H:%M UTC"),
  kernel = capture("uname -r"):match("[^\n]+"),
  cores = CORES,
  cpu = (readf("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?",
  mem = math.floor(tonumber((readf("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)") or 0) / 1048576 + 0.5),
  commit = capture("git rev-parse --short HEAD 2>/dev/null"):match("%w+") or "?",
  dirty = capture("git status --porcelain -- core scripts 2>/dev/null") ~= "",
}
local command = "bash bench/run.sh" .. (#arg > 0 and " " .. table.concat(arg, " ") or "")
log("bench: %s, %d cores, kernel %s; %d round(s), %gs runs; scratch %s", machine.cpu,
  machine.cores, machine.kernel, opt.rounds, opt.duration, TMP)

local ok, err = pcall(function()
  for _, w in ipairs(WORKLOADS) do
    if wanted(opt.only, w.id) then
      log("%s: %s", w.id, w.title)
      local list = {}
      for _, s in ipairs(SERVERS) do
        if wanted(opt.servers, s.name) then
          local cmd, why = s.cmd(w, 1, TMP)
          if cmd or w.kind == "reload" then
            list[#list + 1] = s
          elseif why then
            slot(w.id, s.name).na = why
          end
        end
      end
      row_start()
      if w.kind == "upload" then run_upload(w, list)
      elseif w.kind == "idle" then run_idle(w, list)
      elseif w.kind == "reload" then
        local l = {}
        for _, s in ipairs(list) do
          if s.name == "hotsock" or s.name == "nginx" then l[#l + 1] = s end
        end
        run_reload(w, l)
      elseif w.kind == "reload_tp" then
        if wanted(opt.servers, "hotsock") then run_reload_tp(w) end
      else run_throughput(w, list) end
    end
  end
end)
for inst in pairs(instances) do stop(inst) end
if not ok then log("bench: aborted: %s", tostring(err)) end
local elapsed = now() - started

-- Report ----------------------------------------------------------------------------------------

-- The runs of a slot a figure is made from: its successful runs with field, in its row's
-- placement; of those, the quiet ones when there are any; all of them when none was in the
-- placement (the repeats ran out while the host kept the cores elsewhere). A run still over
-- NOISY after its repeats (attempts kept the quietest of three) is left out when the cell has
-- quieter runs: one run that lost half a core to others moved a three-round median by 20% (the
-- reload-throughput row, 2026-12-07 11:46). It stays in the raw runs and the log.
local function kept_runs(sl, field)
  local want = row_placement[sl.wid]
  local placed, calm, all = {}, {}, {}
  for _, r in ipairs(sl.runs) do
    if not r.err and r[field] then
      all[#all + 1] = r
      if want == nil or r.placement == nil or r.placement == want then
        placed[#placed + 1] = r
        if (r.noise or 0) <= NOISY then calm[#calm + 1] = r end
      end
    end
  end
  return #calm > 0 and calm or #placed > 0 and placed or all
end
local function med(sl, field)
  if not sl then return nil end
  local v = {}
  for _, r in ipairs(kept_runs(sl, field)) do v[#v + 1] = r[field] end
  return median(v)
end
local function nok(sl)
  local n, f = 0, 0
  for _, r in ipairs(sl.runs) do if r.err then f = f + 1 else n = n + 1 end end
  return n, f
end
local function fmt_rate(v)
  if not v then return "–" end
  if v >= 1e6 then return ("%.2fM"):format(v / 1e6) end
  if v >= 1e4 then return ("%.0fk"):format(v / 1e3) end
  if v >= 1e3 then return ("%.1fk"):format(v / 1e3) end
  return ("%.0f"):format(v)
end
local function fmt(v, f) return v and (f or "%.0f"):format(v) or "–" end

local md = {}
local function add(s) md[#md + 1] = s end
local nas = {}

add(("Measured %s on %d cores (%s), %d GiB, Linux %s, commit %s%s; %d round(s) per cell, each "
  .. "cell the median; %s s measured runs after %s s of warm-up; server pinned to core 0, "
  .. "clients to core 1 (the echo rows: at least 5 rounds). Made by `%s` (%.0f min).%s")
  :format(machine.date, machine.cores, machine.cpu, machine.mem, machine.kernel, machine.commit,
    machine.dirty and " + uncommitted changes" or "", opt.rounds, fmt(opt.duration, "%g"),
    fmt(opt.warmup, "%g"), command, elapsed / 60, noisy_starts > 0 and (" The machine is "
    .. "shared: %d run(s) had to start while other processes kept it busy."):format(noisy_starts) or ""))
add("")
add("CPU/op is the server's user + system CPU time (all its processes, from /proc/PID/stat) "
  .. "over the measured run, divided by the operations done; CPU% is that time over the run's "
  .. "wall time (100% = one core). faults/kop is the server's minor page faults (minflt of "
  .. "/proc/PID/stat) per 1,000 operations: memory given back to the kernel and taken again "
  .. "shows there. Ratios compare with the C baseline in the same group. "
  .. ("Noise is the share of a core (the server's or the client's, whichever is larger) that "
  .. "other processes on this shared machine took during the run (their user + system time; "
  .. "softirq time, where the kernel moves loopback traffic outside any process, is counted "
  .. "neither as noise nor in CPU/op), plus the time the hypervisor stole from that core (steal "
  .. "in /proc/stat); a run with more than %d%% "
  .. "was repeated (up to twice, the quietest kept): %d repeat(s) in this run; a run still over "
  .. "that after its repeats is left out of its cell's median and of the per-round ratios when "
  .. "the cell has quieter runs. ")
  :format(NOISY * 100, retries)
  .. ("Cores near: of a cell's runs, how many had the server's and the client's cores close "
  .. "together throughout (a cache line there and back under %d ns, by `hs_core_distance` once a "
  .. "second through the run; the host of this virtual machine moves them, and every server runs about twice "
  .. "as fast near as apart, see bench/results/placement.md). The cells of a row compare runs "
  .. "made in one placement: near while a wait budget of 10 minutes lasts, and after that the "
  .. "placement of the row's first run, near or far (a row of 0/N ran with the cores apart "
  .. "throughout). A run out of its row's placement was repeated (up to four times), after "
  .. "waiting for the cores to be placed so (%d repeat(s) and %.0f s waited in this run), and a "
  .. "cell's median is taken over its runs in the row's placement (over all of them only when "
  .. "none was).")
  :format(FAR_NS, placement_retries, placement_waited))
add("")

local function throughput_table(title, ids, base, unit)
  local any = false
  for _, id in ipairs(ids) do
    for _, sl in pairs(results[id] or {}) do any = any or #sl.runs > 0 end
  end
  if not any then return end
  add("### " .. title)
  add("")
  add(("| workload | server | %s | MB/s | p50 µs | p99 µs | p99.9 µs | CPU/op µs | faults/kop "
    .. "| CPU%% | vs %s | noise %% | cores near |"):format(unit, base))
  add("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
  for _, id in ipairs(ids) do
    local w
    for _, x in ipairs(WORKLOADS) do if x.id == id then w = x end end
    local row = results[id] or {}
    local bsl = base and row[base]
    for _, s in ipairs(SERVERS) do
      local sl = row[s.name]
      if sl and not sl.na then
        local n, f = nok(sl)
        local rate = med(sl, "rate")
        local ratio = bsl and med(bsl, "rate") and rate and ("%.2f"):format(rate / med(bsl, "rate")) or "–"
        local cpu, near, placed = {}, 0, 0
        for _, r in ipairs(sl.runs) do
          if not r.err then
            cpu[#cpu + 1] = r.cpu_util
            if r.placement then placed = placed + 1 end
            if r.placement == "near" then near = near + 1 end
          end
        end
        add(("| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(w.title, s.label,
          fmt_rate(rate), f > 0 and (" (%d of %d runs failed)"):format(f, n + f) or "",
          fmt(med(sl, "mbps"), "%.1f"), fmt(med(sl, "p50")), fmt(med(sl, "p99")),
          fmt(med(sl, "p999")), fmt(med(sl, "cpu_us"), "%.2f"), fmt(med(sl, "faults_kop"), "%.2f"),
          fmt(median(cpu) and median(cpu) * 100, "%.0f"), ratio,
          fmt(med(sl, "noise") and med(sl, "noise") * 100, "%.0f"),
          placed > 0 and ("%d/%d"):format(near, placed) or "–"))
      end
    end
  end
  add("")
end

throughput_table("TCP and UDP echo", { "tcp64_1", "tcp64_50", "tcp64_500", "tcp4k_pipe", "udp64" },
  "raw", "msg/s")
throughput_table("HTTP (wrk, keep-alive, one thread, 50 connections)",
  { "http_hello", "http_1k", "http_100k" }, "nginx", "req/s")

local function simple_section(title, id, header, rowf)
  local row = results[id]
  if not row then return end
  add("### " .. title)
  add("")
  add(header)
  for _, s in ipairs(SERVERS) do
    local sl = row[s.name]
    if sl and not sl.na then
      local n, f = nok(sl)
      add(rowf(s, sl, f > 0 and (" (%d of %d runs failed)"):format(f, n + f) or ""))
    end
  end
  add("")
end

simple_section(("Upload of %d MiB (framed protocol, ack after fsync + rename + directory fsync)")
  :format(opt.upload_bytes >> 20), "upload",
  "| server | MB/s | seconds | ack after last byte, ms | peak RSS MiB | CPU s |\n|---|--:|--:|--:|--:|--:|",
  function(s, sl, f)
    return ("| %s | %s%s | %s | %s | %s | %s |"):format(s.label, fmt(med(sl, "mbps")), f,
      fmt(med(sl, "secs"), "%.2f"), fmt(med(sl, "ack_ms")), fmt(med(sl, "rss_mib"), "%.1f"),
      fmt(med(sl, "cpu_s"), "%.2f"))
  end)
simple_section(("Memory per idle connection (%d connections, each has echoed 64 B once)")
  :format(opt.idle_conns), "idle",
  "| server | RSS before MiB | RSS with all open MiB | bytes per connection |\n|---|--:|--:|--:|",
  function(s, sl, f)
    return ("| %s | %s | %s | %s%s |"):format(s.label, fmt(med(sl, "rss0_mib"), "%.1f"),
      fmt(med(sl, "rss1_mib"), "%.1f"), fmt(med(sl, "per_conn")), f)
  end)
simple_section("Reload latency (signal to the first new connection answered by the new version)",
  "reload", "| server | trigger | reloads | median ms | p90 ms | max ms |\n|---|---|--:|--:|--:|--:|",
  function(s, sl, f)
    local what = sl.runs[1] and sl.runs[1].what or "?"
    local n = 0
    for _, r in ipairs(sl.runs) do n = n + (r.n or 0) end
    return ("| %s | %s | %d | %s%s | %s | %s |"):format(s.label, what, n, fmt(med(sl, "p50"), "%.2f"), f,
      fmt(med(sl, "p90"), "%.2f"), fmt(med(sl, "max"), "%.2f"))
  end)
do
  local row = results.reload_tp
  local st, rl = row and row.hotsock_steady, row and row.hotsock_reload
  if st and rl then
    add("### Throughput during reloads (hotsock, scripts/echo.lua, 64 B ping-pong, 50 conns)")
    add("")
    add("| variant | msg/s | p99 µs | CPU/op µs | reloads done per run | noise % |\n|---|--:|--:|--:|--:|--:|")
    for _, v in ipairs { { "no reload", st }, { "SIGHUP every 100 ms", rl } } do
      add(("| %s | %s | %s | %s | %s | %s |"):format(v[1], fmt_rate(med(v[2], "rate")), fmt(med(v[2], "p99")),
        fmt(med(v[2], "cpu_us"), "%.2f"), fmt(med(v[2], "reloads")),
        fmt(med(v[2], "noise") and med(v[2], "noise") * 100, "%.0f")))
    end
    add("")
  end
end

-- Goals. They are issue 19's: every echo row and UDP at least 0.9x the C raw server's msg/s
-- and at most 1.15x its CPU per message, ahead of every peer; HTTP at least nginx's rate (and
-- for the Lua route no more CPU); and nothing else worse than the figures of commit 6df7ab1
-- (upload 1.2x C, 6.5 MiB RSS; idle 1,013 B; reload 0.37 ms).
--
-- A comparison of two servers is judged by the median of its per-round ratios: each round runs
-- every server of a row one after the other, so a round's ratio compares runs made within a
-- minute, and the median of those cancels what this shared machine drifts by over a row's
-- rounds (up to ±5% between full runs with every cell near and quiet; RESULTS.md). The ratio
-- of the cells' medians is shown beside it, and how many rounds met the line on their own.
local goals = {}
local function goal(name, value, pass, detail)
  goals[#goals + 1] = ("| %s | %s | %s |"):format(name, detail or "–",
    value == nil and "not measured" or (pass and "met" or "**missed**"))
end
local function r_of(id, s, f) return results[id] and med(results[id][s], f) end
-- A server's field by round, from the runs med uses.
local function by_round(sl, field)
  local t = {}
  for _, r in ipairs(kept_runs(sl, field)) do
    if r.round then t[r.round] = r[field] end
  end
  return t
end
-- The ratios of a's field to b's in the rounds where both ran, sorted; nil when none did.
local function round_ratios(id, a, b, field)
  local sa, sb = results[id] and results[id][a], results[id] and results[id][b]
  if not sa or not sb then return nil end
  local ta, tb = by_round(sa, field), by_round(sb, field)
  local ratios = {}
  for round, va in pairs(ta) do
    if tb[round] and tb[round] > 0 then ratios[#ratios + 1] = va / tb[round] end
  end
  if #ratios == 0 then return nil end
  table.sort(ratios)
  return ratios
end
-- A goal on a's field against b's: met when the median per-round ratio passes line(ratio).
-- what formats the two medians for the detail ("157k vs 167k").
local function ratio_goal(name, id, a, b, field, line, what)
  local ratios = round_ratios(id, a, b, field)
  local ma, mb = r_of(id, a, field), r_of(id, b, field)
  if not ratios then
    goal(name, nil)
    return
  end
  local m, met = median(ratios), 0
  for _, x in ipairs(ratios) do if line(x) then met = met + 1 end end
  goal(name, m, line(m), ("%.2f (rounds %.2f-%.2f, %d of %d met); medians %.2f: %s"):format(m,
    ratios[1], ratios[#ratios], met, #ratios, ma / mb, what(ma, mb)))
end
local function rates(x, y) return ("%s vs %s"):format(fmt_rate(x), fmt_rate(y)) end
local function micros(x, y) return ("%.2f vs %.2f µs"):format(x, y) end
-- The peer (not hotsock, not a C baseline) hotsock is least ahead of in a row, by the median
-- of the per-round rate ratios: its name and label, or nil when no peer ran.
local function closest_peer(id)
  local low, name, label
  for _, s in ipairs(SERVERS) do
    local ratios = not s.baseline and s.name ~= "hotsock" and round_ratios(id, "hotsock", s.name, "rate")
    if ratios and (not low or median(ratios) < low) then low, name, label = median(ratios), s.name, s.label end
  end
  return name, label
end
local ECHO_ROWS = { { "tcp64_1", "TCP echo 64 B, 1 conn" }, { "tcp64_50", "TCP echo 64 B, 50 conns" },
  { "tcp64_500", "TCP echo 64 B, 500 conns" }, { "tcp4k_pipe", "TCP echo 4 KiB pipelined" },
  { "udp64", "UDP echo 64 B" } }
for _, row in ipairs(ECHO_ROWS) do
  local id, label = row[1], row[2]
  ratio_goal(label .. ": msg/s >= 0.9 of C raw", id, "hotsock", "raw", "rate",
    function(x) return x >= 0.9 end, rates)
  ratio_goal(label .. ": CPU/msg <= 1.15x C raw", id, "hotsock", "raw", "cpu_us",
    function(x) return x <= 1.15 end, micros)
  local pname, pl = closest_peer(id)
  if pname then
    ratio_goal(label .. ": ahead of every peer (closest: " .. pl .. ")", id, "hotsock", pname, "rate",
      function(x) return x > 1 end, rates)
  else
    goal(label .. ": ahead of every peer", nil)
  end
end
do
  ratio_goal("HTTP /hello (Lua): req/s >= nginx + Lua", "http_hello", "hotsock", "nginx", "rate",
    function(x) return x >= 1 end, rates)
  ratio_goal("HTTP /hello (Lua): CPU/request <= nginx + Lua", "http_hello", "hotsock", "nginx",
    "cpu_us", function(x) return x <= 1 end, micros)
  for _, id in ipairs { "http_1k", "http_100k" } do
    ratio_goal(("HTTP static %s: req/s >= nginx"):format(id == "http_1k" and "1 KiB" or "100 KiB"),
      id, "hotsock", "nginx", "rate", function(x) return x >= 1 end, rates)
  end
  ratio_goal("Upload: >= 1.2x C read+write+fsync (not worse than 6df7ab1)", "upload", "hotsock",
    "cfile", "mbps", function(x) return x >= 1.2 end,
    function(x, y) return ("%.0f vs %.0f MB/s"):format(x, y) end)
  local h = r_of("upload", "hotsock", "rss_mib")
  goal(("Upload: peak RSS <= 6.5 MiB for %d MiB"):format(opt.upload_bytes >> 20), h, h and h <= 6.5,
    h and ("%.1f MiB"):format(h))
  h = r_of("idle", "hotsock", "per_conn")
  goal(("Idle: <= 1,013 B per connection at %d"):format(opt.idle_conns), h, h and h <= 1013,
    h and ("%.0f bytes"):format(h))
  h = r_of("reload", "hotsock", "p50")
  goal("Reload: median <= 0.37 ms", h, h and h <= 0.37, h and ("%.2f ms"):format(h))
  -- By its per-round ratios, as every other comparison: a round runs both variants within a
  -- minute of each other.
  ratio_goal("Throughput with a reload every 100 ms within 10% of without", "reload_tp",
    "hotsock_reload", "hotsock_steady", "rate", function(x) return x >= 0.9 end, rates)
end
add("### Goals")
add("")
add("| goal | measured | verdict |")
add("|---|---|---|")
for _, g in ipairs(goals) do add(g) end
add("")
-- Peers that could not run a workload, grouped by server and reason.
for _, s in ipairs(SERVERS) do
  local by_reason, order = {}, {}
  for _, w in ipairs(WORKLOADS) do
    local sl = results[w.id] and results[w.id][s.name]
    if sl and sl.na and w.kind ~= "reload_tp" then
      if not by_reason[sl.na] then by_reason[sl.na], order[#order + 1] = {}, sl.na end
      table.insert(by_reason[sl.na], w.id)
    end
  end
  for _, why in ipairs(order) do
    nas[#nas + 1] = ("- %s, %s: %s"):format(s.label, table.concat(by_reason[why], ", "), why)
  end
end
if #nas > 0 then
  add("### Not run")
  add("")
  for _, l in ipairs(nas) do add(l) end
  add("")
end

-- Plots (SVG, bench/plot.lua) -----------------------------------------------------------------

local plot = dofile("bench/plot.lua")
local COLORS = { hotsock = "#d62728", raw = "#1f77b4", bev = "#17becf", haproxy = "#2ca02c",
  tarantool = "#9467bd", python = "#8c564b", nginx = "#ff7f0e", cfile = "#1f77b4" }

-- One series per server with a value for any of ids (the median of field).
local function collect(ids, field)
  local series = {}
  for _, s in ipairs(SERVERS) do
    local values, any = {}, false
    for i, id in ipairs(ids) do
      local v = results[id] and results[id][s.name] and med(results[id][s.name], field)
      values[i] = v
      any = any or v ~= nil
    end
    if any then
      series[#series + 1] = { label = s.label, color = COLORS[s.name] or "black", values = values }
    end
  end
  return series
end

-- Every section of the table gets a plot: { file, kind, title, ylabel, xlabel, ids, xlabels,
-- field, fmt }.
local PLOTS = {
  { file = "echo_connections.svg", kind = "lines", field = "rate", fmt = fmt_rate,
    title = "TCP echo, 64 B ping-pong: messages/s by connections", ylabel = "messages per second",
    xlabel = "connections", ids = { "tcp64_1", "tcp64_50", "tcp64_500" }, xlabels = { "1", "50", "500" } },
  { file = "echo_pipelined.svg", kind = "bars", field = "rate", fmt = fmt_rate,
    title = "TCP echo, 4 KiB pipelined, 50 connections: messages/s", ylabel = "messages per second",
    ids = { "tcp4k_pipe" }, xlabels = { "4 KiB, 16 deep" } },
  { file = "udp.svg", kind = "bars", field = "rate", fmt = fmt_rate,
    title = "UDP echo, 64 B, 50 sockets: datagrams/s", ylabel = "datagrams per second",
    ids = { "udp64" }, xlabels = { "64 B" } },
  { file = "http.svg", kind = "bars", field = "rate", fmt = fmt_rate,
    title = "HTTP, 50 keep-alive connections: requests/s", ylabel = "requests per second",
    ids = { "http_hello", "http_1k", "http_100k" }, xlabels = { "GET /hello (Lua)", "1 KiB file", "100 KiB file" } },
  { file = "upload.svg", kind = "bars", field = "mbps", fmt = function(v) return ("%.0f"):format(v) end,
    title = "Upload of one file: MiB/s", ylabel = "MiB per second", ids = { "upload" }, xlabels = { "upload" } },
  { file = "idle.svg", kind = "bars", field = "per_conn", fmt = function(v) return ("%.0f"):format(v) end,
    title = "Memory per idle connection (lower is better)", ylabel = "bytes per connection",
    ids = { "idle" }, xlabels = { "10,000 idle connections" } },
}

local function write_plots()
  local links = {}
  for _, p in ipairs(PLOTS) do
    local series = collect(p.ids, p.field)
    if #series > 0 then
      writef(opt.results .. "/" .. p.file, plot[p.kind]({ title = p.title, ylabel = p.ylabel,
        xlabel = p.xlabel, xlabels = p.xlabels, series = series, fmt = p.fmt }))
      links[#links + 1] = ("![%s](bench/results/%s)"):format(p.title, p.file)
    end
  end
  return links
end

-- Output ----------------------------------------------------------------------------------------

raw_file:close()
local body = table.concat(md, "\n")
if partial then
  writef(opt.results .. "/raw/quick.md", body)
  log("bench: partial run; table in %s/raw/quick.md (results/ and bench/RESULTS.md untouched)", opt.results)
else
  local plots = write_plots()
  local full = body .. "\n" .. table.concat(plots, "\n") .. "\n"
  writef(opt.results .. "/latest.md", "# Latest benchmark results\n\n" .. full:gsub("%(bench/results/", "("))
  log("bench: table in %s/latest.md, plots in %s/", opt.results, opt.results)
  if opt.readme then
    local readme = readf("bench/RESULTS.md")
    local a, b = readme:find("<!%-%- bench:begin %-%->"), select(2, readme:find("<!%-%- bench:end %-%->"))
    if a and b then
      -- bench/RESULTS.md sits beside results/: its links are relative to bench/.
      writef("bench/RESULTS.md", readme:sub(1, a - 1) .. "<!-- bench:begin -->\n"
        .. full:gsub("%(bench/results/", "(results/") .. "<!-- bench:end -->" .. readme:sub(b + 1))
      log("bench: bench/RESULTS.md table updated")
    else
      log("bench: bench/RESULTS.md has no <!-- bench:begin --> / <!-- bench:end --> markers; not updated")
    end
  end
end
io.write(body, "\n")
os.execute("rm -rf " .. q(TMP))
