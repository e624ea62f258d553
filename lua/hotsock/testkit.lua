-- hotsock.testkit: test your handler scripts with busted, against the real server.
--
--   local kit = require "hotsock.testkit"
--
--   describe("my handler", function()
--     local srv
--     before_each(function() srv = kit.start("my.lua", { framing = "line" }) end)
--     after_each(function() srv:stop() end)
--
--     it("answers", function()
--       local c = srv:connect()
--       c:send_line("ping")
--       assert.are.equal("pong", c:line())
--       assert.truthy(srv:log_has("ping from"))
--     end)
--   end)
--
-- kit.start runs the `hotsock` binary (HOTSOCK_BIN, else `hotsock` on PATH, else
-- build/hotsock) on an ephemeral loopback port, reads the real address from its log
-- ("listening URL NAME" lines; "ready (pid N)" says all are bound, so no sleeps), and gives it
-- a private control socket so srv:reload() and srv:stats() reach exactly this server.
-- Needs luasocket (Debian: lua-socket). Every wait is bounded (5 s unless given).
local socket = require "socket"
local unix_ok, unix = pcall(require, "socket.unix")

local M = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function on_path(name)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    if exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
end

--- The server binary the kit runs.
M.bin = os.getenv("HOTSOCK_BIN") or on_path("hotsock") or "build/hotsock"
M.loadgen = os.getenv("HOTSOCK_LOADGEN") or "build/bench/hs_loadgen"
M.timeout = 5

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shquote = shquote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  -- nil when the read fails after the open: a /proc file of a process that went in between.
  local s = f:read("a") or ""
  f:close()
  return s
end
M.read_file = read_file

--- Writes text to path through a rename, as editors save (a reload never sees half a file).
function M.write(path, text)
  local tmp = path .. ".kit-tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, path))
end

--- Runs a shell command; returns its stdout and exit code.
function M.run(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return (out:gsub("__rc=%d+%s*$", "")), rc
end

--- The lowest port of the kernel's ephemeral range (what a bind to port 0 or a connect gets).
local function ephemeral_low()
  local range = read_file("/proc/sys/net/ipv4/ip_local_port_range")
  return tonumber(range:match("^%s*(%d+)")) or 32768
end

--- A loopback TCP port that was free a moment ago, for a server the test starts itself (Redis,
--- HAProxy): taken at random below the kernel's ephemeral range and checked by binding it.
--- Not a port the kernel hands out (bound to port 0, read back, closed): every server the kit
--- starts binds port 0, as do clients' connects, so under a parallel ctest the kernel could
--- give that port to another test between this check and its use, or right after it is freed.
function M.free_port()
  local low = ephemeral_low()
  local from = math.max(1024, low - 10000)
  for _ = 1, 100 do
    local port = math.random(from, low - 1)
    local s = socket.bind("127.0.0.1", port)
    if s then
      s:close()
      return port
    end
  end
  error(("no free port in %d-%d"):format(from, low - 1))
end

--- A fresh temporary directory (removed by srv:stop() when the kit made it for the server).
function M.tmpdir()
  return (M.run("mktemp -d"):gsub("%s+$", ""))
end

--- Polls f() until it returns a truthy value (returned) or timeout seconds pass (an error).
--- what names the condition in the error; a function is called then for a text that can say
--- what the state was at the timeout.
function M.wait_until(f, timeout, what)
  local deadline = socket.gettime() + (timeout or M.timeout * 2)
  while true do
    local v = f()
    if v then return v end
    if socket.gettime() > deadline then
      if type(what) == "function" then what = what() end
      error("timed out waiting for " .. (what or "condition"), 2)
    end
    socket.sleep(0.005)
  end
end

local function split_url(url)
  local host, port = url:match("^%a+://%[(.*)%]:(%d+)$")
  if not host then host, port = url:match("^%a+://(.*):(%d+)$") end
  return host, tonumber(port)
end
M.split_url = split_url

-- ---------------------------------------------------------------------------------------
-- Frames: the framing specs of the core, for clients.
-- ---------------------------------------------------------------------------------------

-- string.pack format of a length header: "length:i32le" -> "<i4".
local function length_format(spec)
  local sign, bits, endian = spec:match("^length:([iu])(%d+)(%a*)")
  assert(sign, "not a length spec: " .. tostring(spec))
  local n = tonumber(bits) // 8
  return (endian == "le" and "<" or ">") .. (sign == "i" and "i" or "I") .. n
end

--- The bytes of one message framed by spec: "line" (adds "\n"), "length:<i|u><8|16|32|64>[le|be]",
--- "fixed:N" (checks the size), or "raw" (as is).
function M.frame(payload, spec)
  spec = spec or "line"
  if spec:match("^line") then return payload .. "\n" end
  if spec:match("^length:") then return string.pack(length_format(spec), #payload) .. payload end
  if spec:match("^fixed:") then
    assert(#payload == tonumber(spec:match("^fixed:(%d+)")), "fixed frame of the wrong size")
  end
  return payload
end

-- ---------------------------------------------------------------------------------------
-- Clients
-- ---------------------------------------------------------------------------------------

local Client = {}
Client.__index = Client

local function new_client(sock)
  return setmetatable({ sock = sock }, Client)
end

--- Sends every argument in order (strings); errors if the connection is gone.
function Client:send(...)
  local data = table.concat({ ... })
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    if not last then
      if not partial or partial < i then error("send failed: " .. tostring(err), 2) end
      last = partial
    end
    i = last + 1
  end
  return self
end

--- Sends s followed by "\n".
function Client:send_line(s)
  return self:send(s, "\n")
end

--- Sends one message framed by spec (see kit.frame).
function Client:send_frame(payload, spec)
  return self:send(M.frame(payload, spec))
end

--- Exactly n bytes, or an error naming what arrived.
function Client:receive(n)
  local data, err, partial = self.sock:receive(n)
  if not data then
    error(("wanted %d bytes, got %d (%s): %q"):format(n, #(partial or ""), err, partial or ""), 2)
  end
  return data
end

--- One line without its "\n" (and without a "\r" before it), or an error.
function Client:line()
  local l, err, partial = self.sock:receive("*l")
  if not l then error(("wanted a line, got %s: %q"):format(err, partial or ""), 2) end
  return l
end

--- One message framed by spec ("line", "length:...", "fixed:N").
function Client:frame(spec)
  spec = spec or "line"
  if spec:match("^line") then return self:line() end
  if spec:match("^fixed:") then return self:receive(tonumber(spec:match("^fixed:(%d+)"))) end
  local fmt = length_format(spec)
  local n = string.unpack(fmt, self:receive(string.packsize(fmt)))
  return self:receive(n)
end

--- Everything until the server closes: data, "closed"; or what arrived and the error
--- ("timeout") when it did not close in time.
function Client:all()
  local data, err, partial = self.sock:receive("*a")
  if data then return data, "closed" end
  return partial, err
end

--- Whether the server closes the connection (within the timeout) without sending more.
function Client:closed()
  local data, err = self:all()
  return err == "closed" and data == "", data
end

--- Half-closes: no more bytes from us; the server sees end of stream.
function Client:shutdown()
  self.sock:shutdown("send")
  return self
end

function Client:settimeout(t)
  self.sock:settimeout(t)
  return self
end

function Client:close()
  self.sock:close()
end

-- ---------------------------------------------------------------------------------------
-- Servers
-- ---------------------------------------------------------------------------------------

local Server = {}
Server.__index = Server

-- Servers started and not yet seen to exit. A test that fails half-way leaves its server
-- running; this finalizer (busted closes the Lua state on exit) kills what is left, so no
-- orphan keeps a port, or a pipe that a test runner waits on.
-- The same finalizer removes the servers' log and status files: a spec may read a log after
-- stop().
local live, made = {}, {}
M._sentinel = setmetatable({}, { __gc = function()
  for srv in pairs(live) do
    if srv.pid and srv:alive() then srv:kill() end
    -- After `hotsock upgrade` the process serving is not the kit's child: a spec that failed
    -- before stopping it would leave it (and its workers) running.
    local pid = srv:serving_pid()
    if pid and pid ~= srv.pid then os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
  end
  for _, path in ipairs(made) do os.remove(path) end
end })

local function has(args, flag)
  for _, a in ipairs(args) do if a == flag then return true end end
  return false
end

-- kit.start("x.lua", opts) -> the argument list of `hotsock serve`.
local function args_of(script, opts)
  local args = { script }
  local listen = opts.listen or "tcp://127.0.0.1:0"
  for _, url in ipairs(type(listen) == "table" and listen or { listen }) do
    args[#args + 1] = "--listen"
    args[#args + 1] = url
  end
  local keys = {}
  for k in pairs(opts.set or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    args[#args + 1] = "--set"
    args[#args + 1] = k .. "=" .. tostring(opts.set[k])
  end
  if opts.framing then
    args[#args + 1] = "--framing"
    args[#args + 1] = opts.framing
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  if opts.workers then
    args[#args + 1] = "--workers"
    args[#args + 1] = tostring(opts.workers)
  end
  return args
end

--- Starts a server and waits until every listener is bound.
---
--- kit.start(script, opts): script is a handler file; opts (all optional):
---   listen   URL or list of URLs (default "tcp://127.0.0.1:0": an ephemeral loopback port)
---   set      table of script options (--set KEY=VALUE)
---   framing  a framing spec overriding the script's
---   workers  number of worker processes (default 1)
---   args     more command-line arguments (e.g. { "--log-level", "debug" })
---   timeout  seconds to wait for the start (default 10)
--- kit.start({ "script.lua", "--listen", URL, ... }, opts) passes the list as is.
--- The server gets its own control socket (srv.control) unless the arguments name one.
function M.start(script, opts)
  opts = opts or {}
  local args
  local tmp
  if type(script) == "table" then
    args = { table.unpack(script) }
  else
    args = args_of(script, opts)
    if not has(args, "--control") then
      tmp = M.tmpdir()
      args[#args + 1] = "--control"
      args[#args + 1] = tmp .. "/ctl.sock"
    end
  end
  local log = os.tmpname()
  local status = os.tmpname()
  os.remove(status)
  -- One process unless asked: pids, memory and limits are then one process's.
  if not has(args, "--workers") then
    args[#args + 1] = "--workers"
    args[#args + 1] = "1"
  end
  local parts = { shquote(M.bin), "serve" }
  for _, a in ipairs(args) do parts[#parts + 1] = shquote(a) end
  -- The server runs in a background subshell that records its exit status; its pid comes
  -- from its own "ready (pid N)" log line; stdout (the banner) is kept too.
  local out = os.tmpname()
  local cmd = ("{ %s %s </dev/null 2>%s >%s; echo $? >%s; } &"):format(
    opts.prefix or "", table.concat(parts, " "), shquote(log), shquote(out), shquote(status))
  os.execute("sh -c " .. shquote(cmd))
  local srv = setmetatable({ logfile = log, outfile = out, statusfile = status, urls = {},
                             tmp = tmp, args = args }, Server)
  for i, a in ipairs(args) do
    if a == "--control" then srv.control = args[i + 1] end
  end
  live[srv] = true
  made[#made + 1] = log
  made[#made + 1] = out
  made[#made + 1] = status
  local ok, err = pcall(M.wait_until, function()
    local text = read_file(log)
    local pid = text:match("hotsock %S+ ready %(pid (%d+)")
    if pid then srv.pid = tonumber(pid) return true end
    if srv:exit_status() then error("hotsock exited during start:\n" .. text) end
  end, opts.timeout or 10, "hotsock to start")
  if not ok then
    if srv.pid then srv:kill() end
    error(tostring(err) .. "\n" .. read_file(log), 2)
  end
  for url, name in read_file(log):gmatch("listening (%S+) (%S+)") do
    srv.urls[#srv.urls + 1] = { url = url, name = name }
  end
  return srv
end

--- The exit status once the server has exited, else nil.
function Server:exit_status()
  return tonumber(read_file(self.statusfile):match("%d+"))
end

--- Waits for the server to exit and returns its status.
function Server:wait_exit(timeout)
  return M.wait_until(function() return self:exit_status() end, timeout or 15, "hotsock to exit")
end

function Server:alive()
  return self:exit_status() == nil
end

--- The whole log so far (stderr of the server).
function Server:log()
  return read_file(self.logfile)
end

--- What the server printed on stdout (the start banner).
function Server:output()
  return read_file(self.outfile)
end

--- Whether the log contains text (plain text, not a pattern).
function Server:log_has(text)
  return self:log():find(text, 1, true) ~= nil
end

--- The log lines matching a Lua pattern.
function Server:log_lines(pattern)
  local found = {}
  for line in self:log():gmatch("[^\n]+") do
    if line:match(pattern) then found[#found + 1] = line end
  end
  return found
end

--- Waits until a log line matches pattern (a Lua pattern); returns the capture or match.
--- On a timeout the error shows the log as it is then, not as it was when the wait began.
function Server:wait_log(pattern, timeout)
  return M.wait_until(function() return self:log():match(pattern) end, timeout or 10,
    function() return "log line matching " .. pattern .. "\n--- log:\n" .. self:log() end)
end

--- The n-th listener URL of a scheme ("tcp", "udp", "unix"), optionally of a script name.
function Server:url(scheme, n, name)
  scheme = scheme or "tcp"
  n = n or 1
  for _, l in ipairs(self.urls) do
    if l.url:sub(1, #scheme + 1) == scheme .. ":" and (not name or l.name == name) then
      if n == 1 then return l.url end
      n = n - 1
    end
  end
  error("no " .. scheme .. " listener")
end

function Server:port(scheme, n, name)
  local _, port = split_url(self:url(scheme or "tcp", n, name))
  return port
end

--- A connected luasocket TCP client (timeout 5 s unless given).
function Server:tcp(n, name, timeout)
  local host, port = split_url(self:url("tcp", n, name))
  local c = host:find(":") and socket.tcp6() or socket.tcp()
  c:settimeout(timeout or M.timeout)
  assert(c:connect(host, port))
  return c
end

--- A luasocket UDP socket aimed at the n-th UDP listener.
function Server:udp(n, name)
  local host, port = split_url(self:url("udp", n, name))
  local u = host:find(":") and socket.udp6() or socket.udp()
  u:settimeout(M.timeout)
  assert(u:setpeername(host, port))
  return u
end

--- A connected luasocket Unix stream client.
function Server:unix(n, name)
  assert(unix_ok, "socket.unix is not available")
  local path = self:url("unix", n, name):match("^unix:(.*)$")
  local c = unix.stream()
  c:settimeout(M.timeout)
  assert(c:connect(path))
  return c
end

--- A client (with send_line, line, send_frame, frame, all, closed ...) of the first TCP
--- listener, or of scheme "unix".
function Server:connect(scheme, n, name)
  if scheme == "unix" then return new_client(self:unix(n, name)) end
  return new_client(self:tcp(n, name))
end

--- Runs `hotsock ARGS --control <this server's socket>`; returns its output and exit code.
function Server:command(args)
  assert(self.control, "this server has no control socket of the kit's")
  return M.run(("%s %s --control %s 2>&1"):format(shquote(M.bin), args, shquote(self.control)))
end

--- Reloads every script of the server (edit the file first, e.g. with kit.write). Returns
--- true or false, and the per-script report ("ok PATH generation N (..ms)" / "error ...").
function Server:reload()
  local out, rc = self:command("reload")
  return rc == 0, out
end

--- The live stats as records: { {kind = "version", name = ..., open = "1", ...}, ... }
--- (see `hotsock stats --raw`). With kind, only records of that kind.
function Server:stats(kind)
  local out, rc = self:command("stats --raw")
  assert(rc == 0, out)
  local recs = {}
  for line in out:gmatch("[^\n]+") do
    local k, rest = line:match("^(%S+)%s*(.*)$")
    if not kind or k == kind then
      local r = { kind = k }
      for key, v in rest:gmatch("(%S+)=(%S*)") do
        r[key] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      end
      recs[#recs + 1] = r
    end
  end
  return recs
end

--- Worker pids by worker number, from the "worker N serving (pid P)" lines (latest wins).
function Server:workers()
  local pids = {}
  for n, pid in self:log():gmatch("worker (%d+) serving %(pid (%d+)%)") do
    pids[tonumber(n)] = tonumber(pid)
  end
  return pids
end

function Server:signal(sig)
  M.run("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null")
end

--- VmRSS and VmHWM of the server in KiB.
function Server:memory()
  local st = read_file("/proc/" .. self.pid .. "/status")
  return tonumber(st:match("VmRSS:%s*(%d+)")), tonumber(st:match("VmHWM:%s*(%d+)"))
end

--- CPU seconds (user + system) the server process has used so far.
function Server:cpu_seconds()
  local stat = read_file("/proc/" .. self.pid .. "/stat")
  local fields = {}
  for f in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

function Server:fd_count()
  local out = M.run("ls /proc/" .. self.pid .. "/fd 2>/dev/null | wc -l")
  return tonumber(out)
end

--- The pid that answers "ping" on the server's control socket (after `hotsock upgrade`, the
--- new process's), or nil when there is no control socket or nothing answers.
function Server:serving_pid()
  if not (self.control and unix_ok) then return nil end
  local c = unix.stream()
  c:settimeout(2)
  local line
  if c:connect(self.control) and c:send("ping\n") then line = c:receive("*l") end
  c:close()
  return line and tonumber(line:match("^ok pong (%d+)"))
end

--- Whether pid still runs (a zombie nobody has reaped yet has exited).
local function pid_alive(pid)
  local state = read_file("/proc/" .. pid .. "/stat"):match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end
M.pid_alive = pid_alive

--- SIGTERM and wait for the process to go; returns true when it went in time (else it is
--- killed and the result is false). After `hotsock upgrade`, the process serving the control
--- socket now is stopped the same way. srv:log() stays readable.
function Server:stop(timeout)
  if self:alive() then
    self:signal("TERM")
    local ok = pcall(M.wait_until, function() return not self:alive() end, timeout or 15)
    if not ok then
      self:kill()
      return false
    end
  end
  local pid = self:serving_pid()
  if pid and pid ~= self.pid then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not pcall(M.wait_until, function() return not pid_alive(pid) end, timeout or 15) then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      return false
    end
  end
  live[self] = nil
  if self.tmp then
    os.execute("rm -rf " .. shquote(self.tmp))
    self.tmp = nil
  end
  return true
end

function Server:kill()
  self:signal("KILL")
end

-- ---------------------------------------------------------------------------------------
-- Plain luasocket helpers (for specs that hold raw sockets)
-- ---------------------------------------------------------------------------------------

function M.recv_exact(c, n)
  local data, err, partial = c:receive(n)
  if not data then
    error(("wanted %d bytes, got %d (%s)"):format(n, #(partial or ""), err), 2)
  end
  return data
end

function M.recv_line(c)
  local l, err = c:receive("*l")
  if not l then error("wanted a line: " .. tostring(err), 2) end
  return l
end

function M.recv_all(c)
  local data, err, partial = c:receive("*a")
  if data then return data, "closed" end
  return partial, err
end

return M
