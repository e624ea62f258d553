-- What both services of the cluster example share: the true client address, the shared
-- counter and the per-client rate limit, all kept in Redis through lua/hotsock/redis.lua so
-- that every worker of every instance, TCP or HTTP, sees the same numbers.
local redis = require "hotsock.redis"

local M = {}

-- opts: the script's --set options (redis=tcp://HOST:PORT, limit=N, window=SECONDS, name=ID,
-- pool=N: Redis connections kept per worker, default 128; keep it at least the number of
-- requests a worker serves at once, or the surplus ones connect to Redis anew each time).
function M.new(opts)
  opts = opts or {}
  local url = opts.redis or "tcp://127.0.0.1:6379"
  local limit = math.tointeger(tonumber(opts.limit or "")) or 100
  local window = math.tointeger(tonumber(opts.window or "")) or 1
  local pool = math.tointeger(tonumber(opts.pool or "")) or 128
  local self = { name = opts.name or "hotsock" }

  -- "IP:PORT" or "[IPv6]:PORT" (conn:peer(), with ?proxy the client from the header) -> IP.
  function self.ip(peer)
    return peer:match("^%[(.*)%]:%d+$") or peer:match("^(.*):%d+$") or peer
  end

  -- Runs f(r) on a pooled Redis connection; a transport failure closes it instead.
  local function with_redis(f)
    local r, err = redis.connect(url)
    if not r then return nil, err end
    local res, ferr = f(r)
    if res == nil and ferr ~= nil and not ferr:match("^ERR") then r:close() else r:keepalive(60, pool) end
    return res, ferr
  end

  -- Counts one hit for ip in the current window; true while within limit per window.
  function self.allow(ip)
    return with_redis(function(r)
      local key = "cluster:rate:" .. ip
      -- SET NX starts a window only when none runs; INCR counts in the running one.
      local res, err = r:pipeline({ { "SET", key, 0, "EX", window, "NX" }, { "INCR", key } })
      if not res then return nil, err end
      local n = res[2]
      if type(n) ~= "number" then return nil, "protocol error" end
      return n <= limit
    end)
  end

  -- The shared counter's new value.
  function self.incr()
    return with_redis(function(r) return r:incr("cluster:counter") end)
  end

  -- The shared counter's value (0 before the first incr).
  function self.count()
    return with_redis(function(r)
      local v, err = r:get("cluster:counter")
      if v == nil then return nil, err end
      return v == redis.null and 0 or math.tointeger(tonumber(v))
    end)
  end

  -- Counts one increment for ip: the counter's new value; or nil, "rate limited" past the
  -- limit; or nil and Redis's error.
  function self.limited_incr(ip)
    local ok, err = self.allow(ip)
    if ok == nil then return nil, err end
    if not ok then return nil, "rate limited" end
    return self.incr()
  end

  return self
end

return M
