-- Starts the real hotsock binary for an integration spec and talks to it.
--
--   local hs = require "hsserver"
--   local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0" }
--   local c = srv:tcp()            -- a connected luasocket client (first tcp listener)
--   srv:stop()
--
-- Readiness comes from the server's own log: every listener is announced on a
-- "listening URL NAME" line and "ready (pid N)" follows once all are bound.
local socket = require "socket"
local unix_ok, unix = pcall(require, "socket.unix")

local M = {}

M.bin = os.getenv("HOTSOCK_BIN") or "build/hotsock"
M.loadgen = os.getenv("HOTSOCK_LOADGEN") or "build/bench/hs_loadgen"

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shquote = shquote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

-- Runs a shell command, returns its stdout and exit code.
function M.run(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end

-- Polls until f() returns a truthy value or `timeout` seconds pass.
function M.wait_until(f, timeout, what)
  local deadline = socket.gettime() + (timeout or 10)
  while true do
    local v = f()
    if v then return v end
    if socket.gettime() > deadline then
      error("timed out waiting for " .. (what or "condition"), 2)
    end
    socket.sleep(0.005)
  end
end

local Server = {}
Server.__index = Server

-- Servers started and not yet seen to exit. A test that fails half-way leaves its server
-- running; the sentinel's finalizer (busted closes the state on exit) kills what is left, so
-- no orphan keeps a port, or a pipe that ctest waits on, after the spec file ends.
local live = {}
M._sentinel = setmetatable({}, { __gc = function()
  for srv in pairs(live) do
    if srv.pid and srv:alive() then srv:kill() end
  end
end })

function M.start(args, opts)
  opts = opts or {}
  local log = os.tmpname()
  local status = os.tmpname()
  os.remove(status)
  local parts = { shquote(M.bin), "serve" }
  for _, a in ipairs(args) do parts[#parts + 1] = shquote(a) end
  -- One process unless a spec asks for workers: pids, RSS and limits are then one process's.
  local has_workers = false
  for _, a in ipairs(args) do has_workers = has_workers or a == "--workers" end
  if not has_workers then
    parts[#parts + 1] = "--workers"
    parts[#parts + 1] = "1"
  end
  -- The server runs in a background subshell that records its exit status; its pid comes
  -- from its own "ready (pid N)" log line.
  local cmd = ("{ %s %s </dev/null 2>%s >/dev/null; echo $? >%s; } &"):format(
    opts.prefix or "", table.concat(parts, " "), shquote(log), shquote(status))
  os.execute("sh -c " .. shquote(cmd))
  local srv = setmetatable({ logfile = log, statusfile = status, urls = {} }, Server)
  live[srv] = true
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

-- The exit status once the server has exited, else nil.
function Server:exit_status()
  return tonumber(read_file(self.statusfile):match("%d+"))
end

-- Waits for the server to exit and returns its status.
function Server:wait_exit(timeout)
  return M.wait_until(function() return self:exit_status() end, timeout or 15, "hotsock to exit")
end

function Server:alive()
  return self:exit_status() == nil
end

function Server:log()
  return read_file(self.logfile)
end

function Server:wait_log(pattern, timeout)
  return M.wait_until(function() return self:log():match(pattern) end, timeout or 10,
    "log line matching " .. pattern .. "\n--- log:\n" .. self:log())
end

-- The n-th listener URL of a scheme ("tcp", "udp", "unix"), optionally of a script name.
function Server:url(scheme, n, name)
  n = n or 1
  for _, l in ipairs(self.urls) do
    if l.url:sub(1, #scheme) == scheme and (not name or l.name == name) then
      if n == 1 then return l.url end
      n = n - 1
    end
  end
  error("no " .. scheme .. " listener")
end

local function split_url(url)
  local host, port = url:match("^%a+://%[(.*)%]:(%d+)$")
  if not host then host, port = url:match("^%a+://(.*):(%d+)$") end
  return host, tonumber(port)
end
M.split_url = split_url

function Server:port(scheme, n, name)
  local _, port = split_url(self:url(scheme or "tcp", n, name))
  return port
end

-- A connected TCP client (luasocket), timeout 5 s unless given.
function Server:tcp(n, name, timeout)
  local url = self:url("tcp", n, name)
  local host, port = split_url(url)
  local c = host:find(":") and socket.tcp6() or socket.tcp()
  c:settimeout(timeout or 5)
  assert(c:connect(host, port))
  return c
end

function Server:udp(n, name)
  local host, port = split_url(self:url("udp", n, name))
  local u = host:find(":") and socket.udp6() or socket.udp()
  u:settimeout(5)
  assert(u:setpeername(host, port))
  return u
end

function Server:unix(n, name)
  assert(unix_ok, "socket.unix is not available")
  local path = self:url("unix", n, name):match("^unix:(.*)$")
  local c = unix.stream()
  c:settimeout(5)
  assert(c:connect(path))
  return c
end

-- Worker pids by worker number, from the "worker N serving (pid P)" log lines (latest wins).
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

-- VmRSS and VmHWM of the server in KiB.
function Server:memory()
  local st = read_file("/proc/" .. self.pid .. "/status")
  return tonumber(st:match("VmRSS:%s*(%d+)")), tonumber(st:match("VmHWM:%s*(%d+)"))
end

function Server:fd_count()
  local out = M.run("ls /proc/" .. self.pid .. "/fd 2>/dev/null | wc -l")
  return tonumber(out)
end

-- SIGTERM and wait for the process to go; returns true when it went in time.
function Server:stop(timeout)
  if not self:alive() then return true end
  self:signal("TERM")
  local ok = pcall(M.wait_until, function() return not self:alive() end, timeout or 15)
  if not ok then self:kill() end
  return ok
end

function Server:kill()
  self:signal("KILL")
end

-- Reads exactly n bytes, or fails the test with what arrived.
function M.recv_exact(c, n)
  local data, err, partial = c:receive(n)
  if not data then
    error(("wanted %d bytes, got %d (%s)"):format(n, #(partial or ""), err), 2)
  end
  return data
end

-- Reads one line (without its newline), or fails the test.
function M.recv_line(c)
  local l, err = c:receive("*l")
  if not l then error("wanted a line: " .. tostring(err), 2) end
  return l
end

-- Reads until the peer closes. Returns everything and "closed" when the peer closed,
-- or what arrived and the error ("timeout", ...) otherwise.
function M.recv_all(c)
  local data, err, partial = c:receive("*a")
  if data then return data, "closed" end
  return partial, err
end

return M
