--- A small Redis client (RESP2) for hotsock handlers, built only on hotsock.connect and
--- conn:receive: every call waits in the handler's coroutine, so it works wherever a handler
--- may wait.
---
---   local redis = require "hotsock.redis"
---   local r, err = redis.connect("tcp://127.0.0.1:6379")
---   local n, err = r:incr("hits")          -- any command, by name
---   local v = r:get("missing")             -- redis.null for a nil reply
---   local res = r:pipeline({ { "SET", "a", 1 }, { "INCR", "a" } })
---   r:keepalive()                          -- back to the pool; redis.connect takes it again
---
--- A command's error reply comes back as nil, "ERR ..." (the text Redis sent); a transport
--- failure as nil, "closed" / "timeout" / ..., after which the client is closed (its stream is
--- no longer in step). Replies: status -> string, integer -> integer, bulk -> string,
--- array -> table, nil bulk or array -> redis.null.
local hotsock = require "hotsock"

local M = {}

--- The value of a nil reply (GET of a missing key): hotsock.json.null, a light userdata.
M.null = hotsock.json.null

local Redis = {}

local function encode(out, cmd)
  out[#out + 1] = "*" .. #cmd .. "\r\n"
  for i = 1, #cmd do
    local a = tostring(cmd[i])
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
end

-- One reply from conn: value, or false, "ERR ..." for an error reply, or nil, err.
local function read_reply(conn)
  local line, err = conn:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then
    return rest
  elseif kind == "-" then
    return false, rest
  elseif kind == ":" then
    local n = math.tointeger(tonumber(rest))
    if not n then return nil, "protocol error" end
    return n
  elseif kind == "$" then
    local n = math.tointeger(tonumber(rest))
    if not n then return nil, "protocol error" end
    if n < 0 then return M.null end
    local data, derr = conn:receive(n + 2)
    if not data then return nil, derr end
    return data:sub(1, n)
  elseif kind == "*" then
    local n = math.tointeger(tonumber(rest))
    if not n then return nil, "protocol error" end
    if n < 0 then return M.null end
    local arr = {}
    for i = 1, n do
      local v, verr = read_reply(conn)
      if v == nil then return nil, verr end
      arr[i] = v == false and { false, verr } or v
    end
    return arr
  end
  return nil, "protocol error"
end

-- A transport failure leaves the stream out of step: the client is done.
local function broken(self, err)
  if self.conn then self.conn:close() end
  self.conn = false
  return nil, err
end

--- Sends one command (a list of arguments) and waits for its reply.
function Redis:command(...)
  local conn = self.conn
  if not conn then return nil, "closed" end
  local out = {}
  encode(out, { ... })
  local ok, err = conn:send(table.concat(out))
  if not ok then return broken(self, err) end
  local v, rerr = read_reply(conn)
  if v == nil then return broken(self, rerr) end
  if v == false then return nil, rerr end
  return v
end

--- Sends every command of cmds (a list of argument lists) in one write, then reads their
--- replies in order. Returns the list of replies, an error reply being { false, "ERR ..." };
--- or nil, err when the transport failed.
function Redis:pipeline(cmds)
  local conn = self.conn
  if not conn then return nil, "closed" end
  local out = {}
  for _, cmd in ipairs(cmds) do encode(out, cmd) end
  local ok, err = conn:send(table.concat(out))
  if not ok then return broken(self, err) end
  local results = {}
  for i = 1, #cmds do
    local v, rerr = read_reply(conn)
    if v == nil then return broken(self, rerr) end
    results[i] = v == false and { false, rerr } or v
  end
  return results
end

--- Puts the connection back into the pool for its URL (see conn:keepalive); the client is
--- closed for the caller. Returns true, or nil, err (the connection is then closed).
function Redis:keepalive(idle_s, pool_size)
  local conn = self.conn
  if not conn then return nil, "closed" end
  self.conn = false
  local ok, err = conn:keepalive(idle_s, pool_size)
  if not ok then conn:close() end
  return ok, err
end

function Redis:close()
  local conn = self.conn
  if not conn then return nil, "closed" end
  self.conn = false
  return conn:close()
end

--- Any other method is the Redis command of that name: r:incr("k") sends INCR k. (The
--- fields conn and url are always set, false once closed, so they never reach here.)
Redis.__index = function(_, name)
  local m = rawget(Redis, name)
  if m then return m end
  local cmd = name:upper()
  return function(self, ...) return self:command(cmd, ...) end
end
Redis.__close = Redis.close

--- Connects (or takes a kept connection back) to url ("tcp://host:port" or "unix:/path").
--- opts: timeout (seconds, for the connect and each reply; default: the connect's 10 s and
--- none per reply).
function M.connect(url, opts)
  opts = opts or {}
  local conn, err = hotsock.connect(url, { timeout = opts.timeout })
  if not conn then return nil, err end
  if opts.timeout then conn:settimeout(opts.timeout) end
  local self = setmetatable({ conn = conn, url = url }, Redis)
  return self
end

return M
