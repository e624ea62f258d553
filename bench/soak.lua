-- Soak: mixed traffic against one hotsock process, a reload every few seconds, for a chosen
-- time; reports client-side errors, server RSS and open descriptors over time.
--
--   lua5.4 bench/soak.lua [--bin build/hotsock] [--loadgen build/bench/hs_loadgen]
--                         [--duration 600] [--reload-every 3] [--sample-every 10]
--                         [--tsv FILE]
--   bash bench/soak.sh [DURATION]            # builds build-soak/ (RelWithDebInfo) first
--
-- One server (--workers 1) runs echo, greeting (line framing), upload and http, each on an
-- ephemeral loopback port. The client here cycles through, checking every byte:
--   echo      a new connection, a random payload up to 64 KiB, the same bytes back
--   greeting  "welcome!", a name, "hello, NAME!", "exit", the server's close
--   upload    a file (random size up to 256 KiB) with ack; the file on disk must equal it
--   http      GET /hello, POST /echo and PUT /upload/NAME on a kept-alive connection,
--             which is replaced now and then, so requests run across many versions
-- plus a few long-lived echo and greeting connections that stay on old versions, and about
-- every 15 s a 3 s burst of hs_loadgen (32 connections, echo ping-pong, every byte checked),
-- started right after a sample (so with --sample-every 4 or more).
-- Reloads go through the control socket (`hotsock reload`), which must answer ok.
-- Exit status 0 when there were no errors and neither RSS nor descriptors grew past the
-- bounds printed at the end; 1 otherwise.
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/../lua/?.lua;" .. here .. "/../tests/integration/helpers/?.lua;" .. package.path
local socket = require "socket"
local hs = require "hsserver"

local opt = {
  bin = "build/hotsock", loadgen = "build/bench/hs_loadgen", duration = 600,
  ["reload-every"] = 3, ["sample-every"] = 10, tsv = nil,
}
do
  local i = 1
  while i <= #arg do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or opt[k] == nil and k ~= "tsv" or arg[i + 1] == nil then
      io.stderr:write("usage: lua5.4 bench/soak.lua [--bin B] [--loadgen L] [--duration S]"
        .. " [--reload-every S] [--sample-every S] [--tsv FILE]\n")
      os.exit(2)
    end
    opt[k] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 2
  end
end
hs.bin = opt.bin

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. hs.shquote(dir .. "/files")))
local control = dir .. "/ctl"

local srv = hs.start({
  "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
  "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0", "--framing", "line",
  "scripts/upload.lua", "--listen", "tcp://127.0.0.1:0", "--set", "dir=" .. dir .. "/files",
  "scripts/http.lua", "--listen", "tcp://127.0.0.1:0", "--set", "upload_dir=" .. dir .. "/files",
  "--control", control,
})
local function port_of(name) return srv:port("tcp", 1, name) end
local ports = { echo = port_of("echo"), greeting = port_of("greeting"),
  upload = port_of("upload"), http = port_of("http") }

-- ---- client operations: each returns true or raises with what went wrong ----

math.randomseed(7)
local noise = {}
for i = 1, 4096 do noise[i] = string.char(math.random(0, 255)) end
noise = table.concat(noise)
local function payload(n)
  local parts, left = {}, n
  while left > 0 do
    local k = math.min(left, #noise)
    local off = math.random(1, #noise - k + 1)
    parts[#parts + 1] = noise:sub(off, off + k - 1)
    left = left - k
  end
  return table.concat(parts)
end

local function connect(port)
  local c = socket.tcp()
  c:settimeout(5)
  local ok, err = c:connect("127.0.0.1", port)
  if not ok then error("connect: " .. tostring(err), 0) end
  return c
end

local function expect(c, n, want, what)
  local got, err, partial = c:receive(n)
  if got ~= want then
    error(("%s: wanted %q, got %q (%s)"):format(what, tostring(want):sub(1, 40),
      tostring(got or partial):sub(1, 40), tostring(err)), 0)
  end
end

local function sendall(c, data, what)
  local ok, err = c:send(data)
  if not ok then error(what .. ": send " .. tostring(err), 0) end
end

local ops = {}

function ops.echo()
  local c = connect(ports.echo)
  local data = payload(math.random(1, 64 * 1024))
  sendall(c, data, "echo")
  expect(c, #data, data, "echo")
  c:close()
end

local function greet(c, name, what)
  sendall(c, name .. "\n", what)
  expect(c, "*l", "hello, " .. name .. "!", what)
end

function ops.greeting()
  local c = connect(ports.greeting)
  expect(c, 8, "welcome!", "greeting")
  greet(c, "soak" .. math.random(1, 1e6), "greeting")
  sendall(c, "exit\n", "greeting")
  local rest, err, partial = c:receive("*a")
  rest = rest or (err == "closed" and partial)
  if rest ~= "" then error("greeting: after exit: " .. tostring(rest or err), 0) end
  c:close()
end

local uploads = 0
local function frame(s) return string.pack("<i4", #s) .. s end
function ops.upload()
  uploads = uploads + 1
  local name = ("soak-%d.bin"):format(uploads)
  local data = payload(math.random(0, 256 * 1024))
  local c = connect(ports.upload)
  sendall(c, frame(('{"msg_type": "file", "file_name": "%s", "ack": true}'):format(name))
    .. frame(data), "upload")
  local len = assert(c:receive(4), "upload: no ack")
  local ack = c:receive(string.unpack("<i4", len))
  if not ack or not ack:find('"ok": true', 1, true)
      or not ack:find('"bytes": ' .. #data, 1, true) then
    error("upload: ack " .. tostring(ack), 0)
  end
  sendall(c, frame("close"), "upload")
  c:receive("*a")
  c:close()
  local path = dir .. "/files/" .. name
  if hs.read_file(path) ~= data then error("upload: stored file differs", 0) end
  os.remove(path)
end

-- HTTP on a kept-alive connection; a response is read by its Content-Length.
local http_conn
local function http(req, what)
  if not http_conn or math.random() < 0.05 then
    if http_conn then http_conn:close() end
    http_conn = connect(ports.http)
  end
  local c = http_conn
  local ok, err = c:send(req)
  if not ok then http_conn = nil error(what .. ": send " .. tostring(err), 0) end
  local status = c:receive("*l")
  if not status then http_conn = nil error(what .. ": no status line", 0) end
  local len = 0
  while true do
    local l = c:receive("*l")
    if not l then http_conn = nil error(what .. ": head cut short", 0) end
    if l == "" then break end
    local v = l:lower():match("^content%-length:%s*(%d+)")
    if v then len = tonumber(v) end
  end
  local body = len > 0 and c:receive(len) or ""
  if not body then http_conn = nil error(what .. ": body cut short", 0) end
  return status, body
end

function ops.http()
  local st, body = http("GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n", "GET /hello")
  if not st:find(" 200 ") or not body:find("hello from hotsock") then
    error("GET /hello: " .. st .. " " .. body:sub(1, 40), 0)
  end
  local data = payload(math.random(1, 32 * 1024))
  st, body = http(("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n%s")
    :format(#data, data), "POST /echo")
  if not st:find(" 200 ") or body ~= data then error("POST /echo: " .. st, 0) end
  uploads = uploads + 1
  local name = ("soak-http-%d.bin"):format(uploads)
  data = payload(math.random(0, 128 * 1024))
  st, body = http(("PUT /upload/%s HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n%s")
    :format(name, #data, data), "PUT /upload")
  if not st:find(" 201 ") then error("PUT /upload: " .. st .. " " .. body, 0) end
  local path = dir .. "/files/" .. name
  if hs.read_file(path) ~= data then error("PUT /upload: stored file differs", 0) end
  os.remove(path)
end

-- Long-lived connections: each is used a little every round and replaced now and then.
local long = {}
local function long_use(i)
  local l = long[i]
  if l and math.random() < 0.02 then l.c:close() l = nil end
  if not l then
    local kind = i % 2 == 0 and "echo" or "greeting"
    l = { kind = kind, c = connect(ports[kind]) }
    long[i] = l
    if kind == "greeting" then expect(l.c, 8, "welcome!", "long greeting") end
  end
  local ok, err = pcall(function()
    if l.kind == "echo" then
      local data = payload(math.random(1, 4096))
      sendall(l.c, data, "long echo")
      expect(l.c, #data, data, "long echo")
    else
      greet(l.c, "long" .. i, "long greeting")
    end
  end)
  if not ok then long[i] = nil l.c:close() error(err, 0) end
end
for i = 1, 8 do ops["long" .. i] = function() long_use(i) end end

-- ---- the run ----

local function sample()
  local rss = srv:memory()
  return rss, srv:fd_count()
end

local function reload()
  local out, rc = hs.run(("timeout 20 %s reload --control %s 2>&1"):format(
    hs.shquote(opt.bin), hs.shquote(control)))
  if rc ~= 0 then error("reload: " .. out:gsub("\n", " | "), 0) end
end

local loadgen_out = dir .. "/loadgen.out"
local function loadgen_start()
  os.execute(("%s --target tcp://127.0.0.1:%d --mode pingpong --conns 32 --size 256"
    .. " --duration 3 >>%s 2>&1 &"):format(hs.shquote(opt.loadgen), ports.echo,
    hs.shquote(loadgen_out)))
end

local counts, errors, first_errors = {}, 0, {}
local reloads = 0
local samples = {}
local tsv = opt.tsv and assert(io.open(opt.tsv, "w"))
if tsv then tsv:write("seconds\trss_kib\tfds\tops\terrors\treloads\n") end

local names = { "echo", "greeting", "upload", "http" }
for i = 1, 8 do names[#names + 1] = "long" .. i end

local t0 = socket.gettime()
local next_reload, next_sample, next_burst = t0 + opt["reload-every"], t0, t0 + 5
local total_ops = 0
print(("soak: %d s, reload every %s s, server pid %d, ports echo %d greeting %d upload %d "
  .. "http %d"):format(opt.duration, opt["reload-every"], srv.pid, ports.echo,
  ports.greeting, ports.upload, ports.http))
print("  time      rss KiB   fds      ops   errors  reloads")
while true do
  local now = socket.gettime()
  if now >= next_sample then
    local rss, fds = sample()
    local s = { t = now - t0, rss = rss, fds = fds }
    samples[#samples + 1] = s
    local line = ("%6.0f s %10d %5d %8d %8d %8d"):format(s.t, rss or -1, fds or -1,
      total_ops, errors, reloads)
    print(line)
    io.stdout:flush()
    if tsv then
      tsv:write(("%.0f\t%d\t%d\t%d\t%d\t%d\n"):format(s.t, rss or -1, fds or -1, total_ops,
        errors, reloads))
      tsv:flush()
    end
    next_sample = next_sample + opt["sample-every"]
    -- Bursts start right after a sample and end before the next, so every sample sees the
    -- server between bursts and the descriptor count compares like with like.
    if now >= next_burst and opt["sample-every"] >= 4 then
      loadgen_start()
      next_burst = now + 15
    end
  end
  if now - t0 >= opt.duration then break end
  if not srv:alive() then
    errors = errors + 1
    first_errors[#first_errors + 1] = "server exited"
    break
  end
  local name
  if now >= next_reload then
    name = "reload"
    next_reload = now + opt["reload-every"]
  else
    name = names[math.random(#names)]
  end
  local ok, err = pcall(name == "reload" and reload or ops[name])
  counts[name] = (counts[name] or 0) + 1
  if name == "reload" then reloads = reloads + 1 else total_ops = total_ops + 1 end
  if not ok then
    errors = errors + 1
    if #first_errors < 10 then first_errors[#first_errors + 1] = tostring(err) end
  end
end
local elapsed = socket.gettime() - t0

-- Let the last burst finish, then close our connections and look at the server at rest.
socket.sleep(3.5)
for _, l in pairs(long) do l.c:close() end
if http_conn then http_conn:close() end
socket.sleep(0.5)
local rss_end, fds_end = sample()

-- hs_loadgen lines: every byte was checked there.
local bursts, burst_errors, burst_msgs = 0, 0, 0
for line in hs.read_file(loadgen_out):gmatch("[^\n]+") do
  if line:match("^mode=") then
    bursts = bursts + 1
    local e, m = tonumber(line:match(" errors=(%d+)")), tonumber(line:match(" mismatches=(%d+)"))
    burst_errors = burst_errors + (e or 1) + (m or 1)
    burst_msgs = burst_msgs + (tonumber(line:match(" messages=(%d+)")) or 0)
  else
    burst_errors = burst_errors + 1
    if #first_errors < 10 then first_errors[#first_errors + 1] = "loadgen: " .. line end
  end
end
errors = errors + burst_errors

local log = srv:log()
local log_errors = 0
for _ in log:gmatch("%d%dZ error") do log_errors = log_errors + 1 end
srv:stop()

-- Flat means: after the first minute (or the first quarter of a short run) the RSS never
-- went more than 10 % + 2 MiB above its level then, and descriptors stayed within 8 of it.
local base
for _, s in ipairs(samples) do
  if s.t >= math.min(60, opt.duration / 4) then base = s break end
end
base = base or samples[1]
local rss_max, fds_max, fds_min = 0, 0, math.huge
for _, s in ipairs(samples) do
  if s.t >= base.t then
    rss_max = math.max(rss_max, s.rss or 0)
    fds_max = math.max(fds_max, s.fds or 0)
    fds_min = math.min(fds_min, s.fds or 0)
  end
end
local rss_bound = math.floor(base.rss * 1.1 + 2048)
local fds_bound = base.fds + 8

print(("\nsoak done: %.0f s, %d client operations, %d reloads, %d loadgen bursts"
  .. " (%d messages)"):format(elapsed, total_ops, reloads, bursts, burst_msgs))
local kinds = {}
for k, n in pairs(counts) do kinds[#kinds + 1] = ("%s %d"):format(k, n) end
table.sort(kinds)
print("  by kind: " .. table.concat(kinds, ", "))
print(("  errors: %d (client %d, loadgen %d); error lines in the server log: %d"):format(
  errors, errors - burst_errors, burst_errors, log_errors))
for _, e in ipairs(first_errors) do print("    " .. e) end
print(("  RSS KiB: first %d, at %.0f s %d, max after that %d (bound %d), at rest %d"):format(
  samples[1].rss, base.t, base.rss, rss_max, rss_bound, rss_end or -1))
print(("  fds: first %d, at %.0f s %d, range after that %d-%d (bound %d), at rest %d"):format(
  samples[1].fds, base.t, base.fds, fds_min, fds_max, fds_bound, fds_end or -1))
os.execute("rm -rf " .. hs.shquote(dir))
local ok = errors == 0 and log_errors == 0 and rss_max <= rss_bound and fds_max <= fds_bound
print(ok and "PASS" or "FAIL")
os.exit(ok and 0 or 1)
