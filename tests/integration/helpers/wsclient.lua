-- A raw WebSocket client for the specs (lua-socket): the opening handshake, frames built byte
-- by byte (any opcode, reserved bits, mask or none, any length encoding), and frames read back.
-- It checks nothing itself, so specs can send what a real client never would.
local socket = require "socket"

local M = {}

M.KEY = "dGhlIHNhbXBsZSBub25jZQ==" -- RFC 6455's sample nonce
M.ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" -- and its Sec-WebSocket-Accept

--- The bytes of one frame. opts: fin (default true), rsv (0..7), mask (default true),
--- key (4 bytes), form (7, 16 or 64: the length encoding; default the shortest),
--- len (the length written, default #payload).
function M.frame(op, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local b0 = (opts.fin == false and 0 or 0x80) | ((opts.rsv or 0) << 4) | op
  local n = opts.len or #payload
  local form = opts.form or (n < 126 and 7 or n < 65536 and 16 or 64)
  local mbit = opts.mask == false and 0 or 0x80
  local hdr
  if form == 7 then
    hdr = string.char(b0, mbit | n)
  elseif form == 16 then
    hdr = string.char(b0, mbit | 126) .. string.pack(">I2", n)
  else
    hdr = string.char(b0, mbit | 127) .. string.pack(">I8", n)
  end
  if opts.mask == false then return hdr .. payload end
  local key = opts.key or "\55\250\33\61"
  local k1, k2, k3, k4 = key:byte(1, 4)
  local ks = { k1, k2, k3, k4 }
  local out, i = {}, 1
  while i <= #payload do
    local chunk = { payload:byte(i, math.min(i + 3999, #payload)) }
    for j = 1, #chunk do chunk[j] = chunk[j] ~ ks[(i + j - 2) % 4 + 1] end
    out[#out + 1] = string.char(table.unpack(chunk))
    i = i + 4000
  end
  return hdr .. key .. table.concat(out)
end

--- A close frame's bytes: code (nil: no payload) and reason.
function M.close_frame(code, reason, opts)
  local payload = code and (string.pack(">I2", code) .. (reason or "")) or ""
  return M.frame(8, payload, opts)
end

local Client = {}
Client.__index = Client

--- Sends the request head (path, extra header lines) and returns the client and the response
--- head (status line and headers, lowercased names) without checking them.
function M.open(port, path, extra, opts)
  opts = opts or {}
  local sock = assert(socket.tcp())
  sock:settimeout(opts.timeout or 5)
  assert(sock:connect("127.0.0.1", port))
  sock:setoption("tcp-nodelay", true)
  local req = opts.request or (("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" ..
    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n")
    :format(path or "/ws", M.KEY, extra or ""))
  assert(sock:send(req))
  local c = setmetatable({ sock = sock }, Client)
  local status = assert(sock:receive("*l"))
  local headers = {}
  while true do
    local l = assert(sock:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  return c, tonumber(status:match("^HTTP/1%.1 (%d+)")), headers
end

--- Opens a WebSocket and checks the 101 answer.
function M.connect(port, path, extra, opts)
  local c, status, headers = M.open(port, path, extra, opts)
  assert(status == 101, "expected 101, got " .. tostring(status))
  assert(headers["sec-websocket-accept"] == M.ACCEPT, "bad Sec-WebSocket-Accept")
  return c, headers
end

--- Sends bytes; how = nil (at once), "octets" (one send per byte) or a chunk size.
function Client:send(data, how)
  if how == nil then
    assert(self.sock:send(data))
    return self
  end
  local size = how == "octets" and 1 or how
  for i = 1, #data, size do
    local ok, err = self.sock:send(data:sub(i, i + size - 1))
    if not ok then return nil, err end
  end
  return self
end

--- One frame from the server: {fin = bool, rsv = n, op = n, masked = bool, payload = s}, or nil
--- and "closed" / "timeout".
function Client:read()
  local h, err = self.sock:receive(2)
  if not h then return nil, err end
  local b0, b1 = h:byte(1, 2)
  local n = b1 & 127
  if n == 126 then
    n = string.unpack(">I2", assert(self.sock:receive(2)))
  elseif n == 127 then
    n = string.unpack(">I8", assert(self.sock:receive(8)))
  end
  local masked = b1 & 128 ~= 0
  if masked then assert(self.sock:receive(4)) end
  local payload = n > 0 and assert(self.sock:receive(n)) or ""
  return { fin = b0 & 128 ~= 0, rsv = (b0 >> 4) & 7, op = b0 & 15, masked = masked,
           payload = payload }
end

--- Reads a close frame: its code (nil when it had none) and reason; errors on anything else.
function Client:read_close()
  local f, err = self:read()
  assert(f, "wanted a close frame, got " .. tostring(err))
  assert(f.op == 8, ("wanted a close frame, got opcode %d %q"):format(f.op, f.payload))
  if #f.payload >= 2 then return string.unpack(">I2", f.payload), f.payload:sub(3) end
  return nil, ""
end

--- Whether the server closed the TCP connection (nothing more arrives before end of stream).
function Client:eof()
  local data, err, partial = self.sock:receive("*a")
  return (data ~= nil and data == "") or (err == "closed" and partial == ""), data or partial
end

function Client:settimeout(t)
  self.sock:settimeout(t)
end

function Client:close()
  self.sock:close()
end

return M
