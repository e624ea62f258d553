-- A client for scripts/upload.lua with the ack extension: each file goes up as a header
-- frame and a content frame streamed in 64 KiB pieces, and the server's sha256 is checked
-- against one computed here.
--   lua5.4 examples/upload_client.lua [--host H] [--port P] [--message TEXT]... FILE...
-- Files and messages are sent in the order given. A progress bar (percent, rate, ETA) is
-- drawn when stdout is a terminal; otherwise one line per file. Exit status 0 when every
-- file was stored with a matching sha256 (and every message acknowledged), else 1.
local socket = require "socket"
local ok_cjson, json = pcall(require, "cjson")
if not ok_cjson then json = require "dkjson" end

local PIECE = 64 * 1024
local MAX_FRAME = 0x7fffffff -- a frame's length is a signed 32-bit integer
local TIMEOUT = 60           -- seconds any single send or receive may take

local function usage(status)
  io.stderr:write("usage: lua5.4 examples/upload_client.lua [--host H] [--port P]"
    .. " [--message TEXT]... FILE...\n")
  os.exit(status or 1)
end

local host, port, jobs = "127.0.0.1", 7003, {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--host" or a == "--port" or a == "--message" then
      if arg[i + 1] == nil then usage() end
      if a == "--host" then host = arg[i + 1]
      elseif a == "--port" then port = tonumber(arg[i + 1]) or usage()
      else jobs[#jobs + 1] = { message = arg[i + 1] } end
      i = i + 2
    elseif a == "-h" or a == "--help" then
      usage(0)
    else
      jobs[#jobs + 1] = { path = a }
      i = i + 1
    end
  end
end
if #jobs == 0 then usage() end

local tty = os.execute("test -t 1") == true

local function shquote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function basename(path)
  return path:match("([^/]*)/*$")
end

local function human(n)
  local units, u = { "B", "KiB", "MiB", "GiB" }, 1
  while n >= 1024 and u < #units do n, u = n / 1024, u + 1 end
  return u == 1 and ("%d %s"):format(math.floor(n), units[u]) or ("%.1f %s"):format(n, units[u])
end

local function clock(secs)
  secs = math.floor(secs + 0.5)
  return ("%d:%02d"):format(secs // 60, secs % 60)
end

-- The file's sha256 from sha256sum, or nil and a reason.
local function sha256_file(path)
  local p = io.popen("sha256sum -b -- " .. shquote(path) .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  local hex = out:match("^(%x+)")
  if not hex or #hex ~= 64 then return nil, "sha256sum failed" end
  return hex
end

-- Sends all of data (a blocking send with a timeout), or returns nil and the socket error.
local function send_all(c, data)
  local n, err = c:send(data)
  if n ~= #data then return nil, err or "short send" end
  return true
end

local function send_frame(c, data)
  return send_all(c, string.pack("<i4", #data) .. data)
end

-- Reads one reply frame and decodes it; nil and a reason when that fails.
local function read_reply(c)
  local hdr, err = c:receive(4)
  if not hdr then return nil, "no reply (" .. err .. ")" end
  local n = string.unpack("<i4", hdr)
  if n < 0 or n > 1024 * 1024 then return nil, "bad reply length " .. n end
  local body, err2 = c:receive(n)
  if not body then return nil, "short reply (" .. err2 .. ")" end
  local reply = json.decode(body)
  if type(reply) ~= "table" then return nil, "reply is not JSON: " .. body end
  return reply
end

local function draw(name, done, size, started)
  local now = socket.gettime()
  local elapsed = math.max(now - started, 1e-6)
  local rate = done / elapsed
  local frac = size > 0 and done / size or 1
  local width = 30
  local fill = math.floor(frac * width + 0.5)
  local eta = rate > 0 and (size - done) / rate or 0
  io.stdout:write(("\r%-24.24s [%s%s] %3d%%  %9s/s  ETA %s "):format(name,
    ("#"):rep(fill), ("."):rep(width - fill), math.floor(frac * 100), human(rate), clock(eta)))
  io.stdout:flush()
end

-- Uploads one file; returns true when the server stored it and the hashes match.
local function upload(c, path)
  local name = basename(path)
  local f, oerr = io.open(path, "rb")
  -- io.open lets a directory through; read(0) is nil there (as at the end of an empty
  -- file), while its "size" is not 0.
  if f and not f:read(0) and f:seek("end") ~= 0 then
    f:close()
    f, oerr = nil, "not a regular file"
  end
  if not f then
    print(("%s: cannot open: %s"):format(path, oerr))
    return false -- nothing was sent: the session is still in step
  end
  local size = f:seek("end")
  f:seek("set")
  if size > MAX_FRAME then
    f:close()
    print(("%s: %s is too large: the protocol's signed 32-bit length allows at most %d bytes")
      :format(path, human(size), MAX_FRAME))
    return false
  end
  local hdr = '{"msg_type": "file", "file_name": ' .. json.encode(name) .. ', "ack": true}'
  -- The header frame and the content's length go out in one write.
  local ok, err = send_all(c, string.pack("<i4", #hdr) .. hdr .. string.pack("<i4", size))
  local sent, started, drawn = 0, socket.gettime(), 0
  while ok and sent < size do
    local piece = f:read(math.min(PIECE, size - sent))
    if not piece then
      -- The file shrank while we sent it: the frame can no longer be completed.
      f:close()
      if tty then io.stdout:write("\n") end
      print(("%s: file shrank while sending; giving up on this connection"):format(path))
      return false, "fatal"
    end
    ok, err = send_all(c, piece)
    sent = sent + #piece
    if tty and (socket.gettime() - drawn > 0.1 or sent == size) then
      draw(name, sent, size, started)
      drawn = socket.gettime()
    end
  end
  f:close()
  if tty then
    if size == 0 then draw(name, 0, 0, started) end
    io.stdout:write("\n")
  end
  if not ok then
    print(("%s: connection failed while sending: %s"):format(path, err))
    return false, "fatal"
  end
  -- The server flushes the file to disk now; hash our copy meanwhile.
  local local_sha, serr = sha256_file(path)
  local reply, rerr = read_reply(c)
  if not reply then
    print(("%s: %s"):format(path, rerr))
    return false, "fatal"
  end
  local secs = socket.gettime() - started
  if reply.ok ~= true then
    print(("%s: refused by the server: %s"):format(path, tostring(reply.error)))
    return false
  end
  if not local_sha then
    print(("%s: stored %d bytes, but the local sha256 failed: %s"):format(path, reply.bytes, serr))
    return false
  end
  if reply.sha256 == local_sha and reply.bytes == size then
    print(("%s: stored as %s, %d bytes in %.2f s (%s/s), sha256 matches (%s)"):format(path,
      tostring(reply.file_name), size, secs, human(size / math.max(secs, 1e-6)), local_sha))
    return true
  end
  print(("%s: MISMATCH: sent %d bytes, sha256 %s; server stored %s bytes, sha256 %s"):format(
    path, size, local_sha, tostring(reply.bytes), tostring(reply.sha256)))
  return false
end

local function message(c, text)
  local hdr = '{"msg_type": "msg", "ack": true}'
  local ok, err = send_all(c, string.pack("<i4", #hdr) .. hdr .. string.pack("<i4", #text) .. text)
  if not ok then
    print("message: connection failed: " .. err)
    return false, "fatal"
  end
  local reply, rerr = read_reply(c)
  if not reply then
    print("message: " .. rerr)
    return false, "fatal"
  end
  if reply.ok ~= true then
    print("message refused: " .. tostring(reply.error))
    return false
  end
  print(("message sent (%d bytes)"):format(#text))
  return true
end

local c, cerr = socket.connect(host, port)
if not c then
  io.stderr:write(("cannot connect to %s:%s: %s\n"):format(host, port, cerr))
  os.exit(1)
end
c:settimeout(TIMEOUT)
-- Each command ends with a small write and then waits for the reply: no Nagle delay.
c:setoption("tcp-nodelay", true)

local all_ok = true
for _, job in ipairs(jobs) do
  local ok, fatal
  if job.message then
    ok, fatal = message(c, job.message)
  else
    ok, fatal = upload(c, job.path)
  end
  all_ok = all_ok and ok
  if fatal then break end
end
-- Every reply has been read, so closing leaves nothing unread on either side.
send_frame(c, "close")
c:close()
os.exit(all_ok and 0 or 1)
