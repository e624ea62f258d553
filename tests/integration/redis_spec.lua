-- lua/hotsock/redis.lua against a real redis-server started here (a free loopback port, no
-- persistence), and examples/counter.lua: 20 clients x 50 INCR over two workers with a reload
-- in the middle end at exactly 1000, every count answered once.
local kit = require "hotsock.testkit"
local socket = require "socket"

local LUA_PATH = "LUA_PATH=" .. kit.shquote("lua/?.lua;;")

local free_port = kit.free_port

local redis_pid, redis_url, redis_dir

local function start_redis()
  local port = free_port()
  redis_dir = kit.tmpdir()
  local out = kit.run(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--dir %s --daemonize no >%s/log 2>&1 & echo $!"):format(port, kit.shquote(redis_dir),
    kit.shquote(redis_dir)))
  redis_pid = tonumber(out:match("%d+"))
  redis_url = "tcp://127.0.0.1:" .. port
  kit.wait_until(function()
    local c = socket.connect("127.0.0.1", port)
    if not c then return false end
    c:settimeout(1)
    c:send("PING\r\n")
    local l = c:receive("*l")
    c:close()
    return l == "+PONG"
  end, 10, "redis-server to answer")
end

local function stop_redis()
  if redis_pid then os.execute("kill " .. redis_pid) end
  redis_pid = nil
end

describe("hotsock.redis", function()
  local srv

  setup(function()
    start_redis()
    srv = kit.start("tests/fixtures/redis_cmds.lua",
      { set = { redis = redis_url }, prefix = LUA_PATH })
  end)
  teardown(function()
    if srv then assert.is_true(srv:stop()) end
    stop_redis()
  end)

  it("commands: status, bulk, integer, nil, and an error as nil, \"ERR ...\"", function()
    local c = srv:connect()
    c:send_line("SET k hello")
    assert.equals("OK", c:line())
    c:send_line("GET k")
    assert.equals("hello", c:line())
    c:send_line("GET nothing")
    assert.equals("null", c:line())
    c:send_line("INCR n")
    assert.equals("1", c:line())
    c:send_line("INCR k")
    assert.equals("nil ERR value is not an integer or out of range", c:line())
    c:send_line("NOSUCHCOMMAND x")
    assert.truthy(c:line():match("^nil ERR unknown command"))
    c:close()
  end)

  it("a command of few arguments and one of many (sent as pieces, and joined)", function()
    local c = srv:connect()
    c:send_line("DEL l")
    assert.truthy(c:line():match("^%d$"))
    c:send_line("RPUSH l a b c d e f g h i j")
    assert.equals("10", c:line())
    c:send_line("LRANGE l 0 -1")
    assert.equals("[a,b,c,d,e,f,g,h,i,j]", c:line())
    c:send_line("RPUSH l " .. string.rep("x", 5000))
    assert.equals("11", c:line())
    c:send_line("STRLEN nothing")
    assert.equals("0", c:line())
    c:close()
  end)

  it("pipelines several commands in one write, an error reply among them", function()
    local c = srv:connect()
    c:send_line("pipe")
    local l = c:line()
    local head = "[0,2,[a,b],error:ERR unknown command 'NOSUCH'"
    local tail = ",null,error:WRONGTYPE Operation against a key holding the wrong kind of value]"
    assert.equals(head, l:sub(1, #head))
    assert.equals(tail, l:sub(-#tail))
    c:close()
  end)

  it("keepalive: requests share one pooled Redis connection", function()
    local c = srv:connect()
    c:send_line("pooled")
    local id = c:line()
    assert.truthy(id:match("^%d+$"), id)
    for _ = 1, 5 do
      c:send_line("pooled")
      assert.equals(id, c:line())
    end
    c:close()
  end)

  it("a Redis that is gone: connection refused", function()
    local s2 = kit.start("tests/fixtures/redis_cmds.lua",
      { set = { redis = "tcp://127.0.0.1:" .. free_port() }, prefix = LUA_PATH })
    local c = s2:connect()
    c:send_line("GET k")
    assert.equals("nil connection refused", c:line())
    c:close()
    assert.is_true(s2:stop())
  end)
end)

describe("examples/counter.lua", function()
  setup(start_redis)
  teardown(stop_redis)

  it("20 clients x 50 INCR over 2 workers and a reload end at exactly 1000", function()
    local srv = kit.start("examples/counter.lua", { set = { redis = redis_url }, workers = 2,
      prefix = LUA_PATH })
    local clients = {}
    for i = 1, 20 do clients[i] = srv:connect() end
    local batch = string.rep("INCR visits\n", 25)
    for _, c in ipairs(clients) do c:send(batch) end
    srv:reload()
    for _, c in ipairs(clients) do c:send(batch) end
    local seen, max = {}, 0
    for _, c in ipairs(clients) do
      for _ = 1, 50 do
        local n = tonumber(c:line())
        assert.is_nil(seen[n], "count " .. tostring(n) .. " answered twice")
        seen[n] = true
        if n > max then max = n end
      end
      c:close()
    end
    assert.equals(1000, max)
    for n = 1, 1000 do assert.is_true(seen[n], "count " .. n .. " never answered") end
    assert.is_true(srv:stop())
  end)

  -- Redis's count of the connections it accepted so far.
  local function redis_connections()
    local c = assert(socket.connect("127.0.0.1", tonumber(redis_url:match("%d+$"))))
    c:settimeout(5)
    c:send("INFO stats\r\n")
    local len = tonumber(assert(c:receive("*l")):match("^%$(%d+)"))
    local body = assert(c:receive(len + 2))
    c:close()
    return tonumber(body:match("total_connections_received:(%d+)"))
  end

  it("40 clients in step reuse their Redis connections: the pool holds them all", function()
    -- Each round has all 40 requests in flight at once, then all 40 Redis connections back
    -- in the pool: a pool of fewer would close the surplus and connect anew every round.
    local srv = kit.start("examples/counter.lua", { set = { redis = redis_url },
      prefix = LUA_PATH })
    local clients = {}
    for i = 1, 40 do clients[i] = srv:connect() end
    local before = redis_connections()
    for _ = 1, 10 do
      for _, c in ipairs(clients) do c:send("INCR instep\n") end
      for _, c in ipairs(clients) do assert.truthy(tonumber(c:line())) end
    end
    local opened = redis_connections() - before - 1 -- the first count's own
    for _, c in ipairs(clients) do c:close() end
    assert.is_true(srv:stop())
    assert.is_true(opened <= 40, opened .. " Redis connections for 40 clients")
  end)
end)
