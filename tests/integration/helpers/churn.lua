-- Connect/echo/close load: lua5.4 churn.lua HOST PORT CLIENTS STOPFILE OUTFILE
-- CLIENTS connections at a time, each connecting, sending one line, reading the same line
-- back and closing, over and over, until STOPFILE exists. Every refusal, reset, early close,
-- timeout or wrong byte counts as an error. Writes "progress N" lines while it runs, then
-- "done echoed=N errors=E first=REASON" to OUTFILE.
local socket = require "socket"

local host, port, n, stopfile, outfile = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4],
  arg[5]
local STEP_TIMEOUT = 10 -- seconds one step (connect, echo) may take

local echoed, errors, first = 0, 0, nil
local slots = {}

local function fail(slot, why)
  errors = errors + 1
  first = first or why
  if slot.sock then slot.sock:close() end
  slot.sock = nil
end

local function open(slot)
  local c = socket.tcp()
  c:settimeout(0)
  local ok, err = c:connect(host, port)
  slot.sock, slot.since, slot.got = c, socket.gettime(), ""
  slot.seq = slot.seq + 1
  slot.msg = ("client %d message %d %s\n"):format(slot.id, slot.seq, ("x"):rep(slot.seq % 200))
  if ok or err == "timeout" then
    slot.state = "connecting"
  else
    fail(slot, "connect: " .. tostring(err))
  end
end

for i = 1, n do slots[i] = { id = i, seq = 0 } end

local function exists(path)
  local f = io.open(path)
  if f then f:close() return true end
  return false
end

local out = assert(io.open(outfile, "w"))
local last_report = 0
while not exists(stopfile) do
  local rd, wr, by = {}, {}, {}
  for _, s in ipairs(slots) do
    if not s.sock then open(s) end
    if s.sock then
      if s.state == "connecting" then wr[#wr + 1] = s.sock else rd[#rd + 1] = s.sock end
      by[s.sock] = s
    end
  end
  local r, w = socket.select(rd, wr, 0.2)
  for _, c in ipairs(w) do
    local s = by[c]
    local ok, err = c:connect(host, port)
    if ok or err == "already connected" then
      c:settimeout(1)
      local sent, serr = c:send(s.msg)
      if sent == #s.msg then
        c:settimeout(0)
        s.state = "echo"
      else
        fail(s, "send: " .. tostring(serr))
      end
    elseif err ~= "timeout" then
      fail(s, "connect: " .. tostring(err))
    end
  end
  for _, c in ipairs(r) do
    local s = by[c]
    local data, err, partial = c:receive(#s.msg - #s.got)
    s.got = s.got .. (data or partial or "")
    if s.got == s.msg then
      echoed = echoed + 1
      c:close()
      s.sock = nil
    elseif #s.got >= #s.msg or s.msg:sub(1, #s.got) ~= s.got then
      fail(s, "wrong bytes")
    elseif err and err ~= "timeout" then
      fail(s, "receive: " .. err)
    end
  end
  local now = socket.gettime()
  for _, s in ipairs(slots) do
    if s.sock and now - s.since > STEP_TIMEOUT then fail(s, "timeout in " .. s.state) end
  end
  if now - last_report > 0.2 then
    out:write(("progress %d\n"):format(echoed))
    out:flush()
    last_report = now
  end
end
-- Connections still open finish their echo (bounded), so none is counted half done.
local deadline = socket.gettime() + STEP_TIMEOUT
for _, s in ipairs(slots) do
  while s.sock and socket.gettime() < deadline do
    s.sock:settimeout(0.5)
    if s.state == "connecting" then
      s.sock:close()
      s.sock = nil
    else
      local data, err, partial = s.sock:receive(#s.msg - #s.got)
      s.got = s.got .. (data or partial or "")
      if s.got == s.msg then
        echoed = echoed + 1
        s.sock:close()
        s.sock = nil
      elseif err ~= "timeout" then
        fail(s, "receive: " .. tostring(err))
      end
    end
  end
end
out:write(("done echoed=%d errors=%d first=%s\n"):format(echoed, errors, first or "none"))
out:close()
