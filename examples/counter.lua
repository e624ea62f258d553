-- A line protocol whose every "INCR name" answers the new count, kept in Redis: any number of
-- workers (and reloads) share one count. Each request takes a pooled Redis connection and puts
-- it back.
--   redis-server --port 6379 --save '' --appendonly no &
--   LUA_PATH='lua/?.lua;;' build/hotsock serve examples/counter.lua --workers 2
--   printf 'INCR visits\nINCR visits\n' | nc -q1 127.0.0.1 7010        -> 1, 2
-- --set redis=tcp://HOST:PORT names another Redis; --set pool=N the Redis connections kept
-- (default 128): as many as requests may be in flight at once (one per client connection),
-- or the surplus is closed when it comes back and a later request connects anew.
local redis = require "hotsock.redis"
local opts = ...
local url = (opts or {}).redis or "tcp://127.0.0.1:6379"
local pool = math.tointeger(tonumber((opts or {}).pool)) or 128

return {
  listen = "tcp://127.0.0.1:7010",
  framing = "line",
  on_message = function(conn, msg)
    local name = msg:match("^INCR (%S+)$")
    if not name then return conn:send("ERR usage: INCR name\n") end
    local r, err = redis.connect(url)
    if not r then return conn:send("ERR ", err, "\n") end
    local n, ierr = r:incr(name)
    if not n then
      r:close()
      return conn:send("ERR ", ierr, "\n")
    end
    r:keepalive(60, pool)
    conn:send(n, "\n")
  end,
}
