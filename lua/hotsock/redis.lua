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
---
--- Every command is sent in one write (its pieces uncopied when few); the argument framing of
--- sizes already seen is cached, and each command method is made once.
local hotsock = require "hotsock"

local byte, sub, concat, unpack = string.byte, string.sub, table.concat, table.unpack
local select, tonumber, tostring, type = select, tonumber, tostring, type
local tointeger = math.tointeger

local M = {}

--- The value of a nil reply (GET of a missing key): hotsock.json.null, a light userdata.
M.null = hotsock.json.null

local Redis = {}

-- "*N\r\n" and "$N\r\n" for the counts and lengths met so far (up to 4096 of each): a
-- command's framing costs no number formatting once its sizes were seen.
local function header_cache(mark)
  return setmetatable({}, {
    __index = function(t, n)
      local s = mark .. n .. "\r\n"
      if n <= 4096 then t[n] = s end
      return s
    end,
  })
end
local COUNT, LEN = header_cache("*"), header_cache("$")

-- One argument's framing into buf after position k; returns the new end.
local function put_arg(buf, k, a)
  if type(a) ~= "string" then a = tostring(a) end
  buf[k + 1], buf[k + 2], buf[k + 3] = LEN[#a], a, "\r\n"
  return k + 3
end

-- The encoding of one command given as a list of n arguments, into buf after k.
local function put_list(buf, k, cmd, n)
  buf[k + 1] = COUNT[n]
  k = k + 1
  for i = 1, n do k = put_arg(buf, k, cmd[i]) end
  return k
end

-- The encoding of one command whose n arguments are the varargs, into buf after k: a few
-- read in place, more (where select would copy them over and over) through a table.
local function put_command(buf, k, n, ...)
  if n > 8 then return put_list(buf, k, { ... }, n) end
  buf[k + 1] = COUNT[n]
  k = k + 1
  for i = 1, n do k = put_arg(buf, k, (select(i, ...))) end
  return k
end

-- Commands are encoded into this one table and joined before anything can wait, so the
-- coroutines of one state may share it; send empties it (it keeps no argument alive).
local scratch = {}

-- Sends buf[1..k] in one write and empties buf: a few pieces as they are (conn:send writes
-- up to 16 at once, uncopied), more joined first.
local function send(conn, buf, k)
  local ok, err
  if k <= 16 then
    ok, err = conn:send(unpack(buf, 1, k))
  else
    ok, err = conn:send(concat(buf, "", 1, k))
  end
  for i = 1, k do buf[i] = nil end
  return ok, err
end

-- One reply from conn: value, or false, "ERR ..." for an error reply, or nil, err.
local function read_reply(conn)
  local line, err = conn:receive("*l")
  if not line then return nil, err end
  local kind = byte(line, 1)
  if kind == 58 then -- ":"
    local n = tointeger(tonumber(sub(line, 2)))
    if not n then return nil, "protocol error" end
    return n
  elseif kind == 43 then -- "+"
    return sub(line, 2)
  elseif kind == 36 then -- "$"
    local n = tointeger(tonumber(sub(line, 2)))
    if not n then return nil, "protocol error" end
    if n < 0 then return M.null end
    local data, derr = conn:receive(n + 2)
    if not data then return nil, derr end
    return sub(data, 1, n)
  elseif kind == 45 then -- "-"
    return false, sub(line, 2)
  elseif kind == 42 then -- "*"
    local n = tointeger(tonumber(sub(line, 2)))
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

--- Sends one command (its arguments) and waits for its reply.
function Redis:command(...)
  local conn = self.conn
  if not conn then return nil, "closed" end
  local ok, err = send(conn, scratch, put_command(scratch, 0, select("#", ...), ...))
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
  local k = 0
  for i = 1, #cmds do k = put_list(scratch, k, cmds[i], #cmds[i]) end
  local ok, err = send(conn, scratch, k)
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

Redis.__index = Redis
Redis.__close = Redis.close

--- Any other method is the Redis command of that name: r:incr("k") sends INCR k. (The
--- fields conn and url are always set, false once closed, so they never reach here.) The
--- method of a name is made once and kept in Redis (for the first 1024 names; past that, it
--- is made per use).
local made = 0
setmetatable(Redis, {
  __index = function(_, name)
    if type(name) ~= "string" then return nil end
    local cmd = name:upper()
    local function method(self, ...) return self:command(cmd, ...) end
    if made < 1024 then
      made = made + 1
      rawset(Redis, name, method)
    end
    return method
  end,
})

--- Connects (or takes a kept connection back) to url ("tcp://host:port" or "unix:/path").
--- opts: timeout (seconds, for the connect and each reply; default: the connect's 10 s and
--- none per reply).
function M.connect(url, opts)
  local timeout = opts and opts.timeout
  local conn, err
  if timeout then
    conn, err = hotsock.connect(url, { timeout = timeout })
  else
    conn, err = hotsock.connect(url)
  end
  if not conn then return nil, err end
  if timeout then conn:settimeout(timeout) end
  return setmetatable({ conn = conn, url = url }, Redis)
end

return M
