-- Several worker processes: spread, supervision, reload in step, drain on SIGTERM.
local hs = require "hsserver"
local socket = require "socket"

local function write(path, text)
  local f = assert(io.open(path .. ".new", "w"))
  f:write(text)
  f:close()
  assert(os.rename(path .. ".new", path))
end

local tmpdir = hs.tmpdir

local function loadgen(url, args, out)
  os.execute(("%s --target %s %s >%s 2>&1 &"):format(hs.shquote(hs.loadgen), url, args, out))
end

local function loadgen_result(out, timeout)
  return hs.wait_until(function()
    local text = hs.read_file(out)
    return text:find("mode=") and text
  end, timeout or 120, "the load generator")
end

describe("workers", function()
  it("spread connections over both workers, each echoing exact bytes", function()
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0", "--workers", "2",
      "--log-level", "debug", "--control", "none" }
    assert.matches("ready %(pid %d+, 2 workers%)", srv:log())
    local out, rc = hs.run(("%s --target %s --mode stream --conns 200 --bytes 262144 --duration 60 2>&1")
      :format(hs.shquote(hs.loadgen), srv:url("tcp")))
    assert.equals(0, rc, out)
    assert.matches("errors=0 mismatches=0", out)
    local function opens()
      local log = srv:log()
      local _, w1 = log:gsub("w1 conn#%d+ [^\n]* open", "")
      local _, w2 = log:gsub("w2 conn#%d+ [^\n]* open", "")
      return w1, w2
    end
    local w1, w2 = opens()
    assert.equals(200, w1 + w2)
    -- One shared accept queue: a burst may all go to the worker that woke first (on a busy
    -- machine the other may not run at all meanwhile). Connections that stay open while
    -- more arrive land on both; up to 10 batches of 20 are opened until both hold some.
    local held = {}
    for _ = 1, 10 do
      for _ = 1, 20 do held[#held + 1] = srv:tcp() end
      for i = #held - 19, #held do
        assert(held[i]:send("x\n"))
        assert.equals("x", hs.recv_line(held[i]))
      end
      local a, b = opens()
      if a > w1 and b > w2 then break end
    end
    local a, b = opens()
    assert.is_true(a > w1 and b > w2, ("held connections: w1=%d w2=%d"):format(a - w1, b - w2))
    for _, c in ipairs(held) do c:close() end
    assert.is_true(srv:stop())
    assert.equals(0, srv:exit_status())
  end)

  it("replace a worker killed with -9 within a second while the other keeps serving", function()
    local srv = hs.start { "tests/fixtures/whoami.lua", "--listen", "tcp://127.0.0.1:0",
      "--workers", "2", "--control", "none" }
    local pids = srv:workers()
    -- Open connections until both workers hold some.
    local by_pid = { [pids[1]] = {}, [pids[2]] = {} }
    for _ = 1, 200 do
      local c = srv:tcp()
      assert(c:send("who\n"))
      local list = by_pid[tonumber(hs.recv_line(c))]
      list[#list + 1] = c
      if #by_pid[pids[1]] >= 5 and #by_pid[pids[2]] >= 5 then break end
    end
    assert.is_true(#by_pid[pids[2]] > 0 and #by_pid[pids[1]] > 0)
    hs.run("kill -9 " .. pids[2])
    local t0 = socket.gettime()
    srv:wait_log("worker 2 %(pid " .. pids[2] .. "%) killed by signal 9 %(Killed%); restarting")
    hs.wait_until(function()
      local now = srv:workers()
      return now[2] and now[2] ~= pids[2]
    end, 1, "worker 2 restarted within a second")
    assert.is_true(socket.gettime() - t0 < 1)
    -- Worker 1's clients go on undisturbed; worker 2's were cut.
    for i, c in ipairs(by_pid[pids[1]]) do
      assert(c:send("still " .. i .. "\n"))
      assert.equals("still " .. i, hs.recv_line(c))
    end
    for _, c in ipairs(by_pid[pids[2]]) do
      local _, err = c:receive("*l")
      assert.is_not_nil(err)
    end
    -- New connections succeed, and some land on the new worker 2.
    local new2 = srv:workers()[2]
    local seen = {}
    for _ = 1, 100 do
      local c = srv:tcp()
      assert(c:send("who\n"))
      seen[tonumber(hs.recv_line(c))] = true
      c:close()
      if seen[new2] then break end
    end
    assert.is_true(seen[new2])
    for _, list in pairs(by_pid) do for _, c in ipairs(list) do c:close() end end
    assert.is_true(srv:stop())
  end)

  it("does not restart a worker that keeps dying at start in a tight loop", function()
    local dir = tmpdir()
    local script = dir .. "/fragile.lua"
    -- Loads fine in the master; a worker started after the flag file exists dies at once
    -- (os.exit: trusted scripts only).
    write(script, ([[
local f = io.open(%q)
if f then f:close(); os.exit(3) end
return { on_message = function(c, m) c:send(m) end }
]]):format(dir .. "/die"))
    local srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--workers", "2", "--control", "none",
                           "--sandbox", "trusted" }
    write(dir .. "/die", "1")
    hs.run("kill -9 " .. srv:workers()[2])
    srv:wait_log("worker 2 %(pid %d+%) exited with status 3 %d+ ms after start %(2 time%(s%) in a row%); restarting in 200 ms", 10)
    -- Worker 1 still serves.
    local c = srv:tcp()
    assert(c:send("hi")); assert.equals("hi", hs.recv_exact(c, 2))
    c:close()
    os.remove(dir .. "/die")
    srv:wait_log("worker 2 restarted", 10)
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  it("reload switches every worker together under load, or none when it fails", function()
    local dir = tmpdir()
    local script, ctl = dir .. "/echo.lua", dir .. "/ctl.sock"
    local echo = "local _, info = ...\nreturn { framing = 'raw', on_message = function(c, m)\n"
      .. "  if m == 'gen?' then c:send('gen' .. info.generation) else c:send(m) end end } -- v%d\n"
    write(script, echo:format(0))
    local srv = hs.start { script, "--listen", "tcp://127.0.0.1:0", "--workers", "2", "--control", ctl }
    loadgen(srv:url("tcp"), "--mode stream --conns 50 --bytes 33554432 --duration 120", dir .. "/lg.out")
    local reload = ("%s reload --control %s 2>&1"):format(hs.shquote(hs.bin), hs.shquote(ctl))
    for i = 1, 100 do
      write(script, echo:format(i))
      local out, rc = hs.run(reload)
      assert.equals(0, rc, out)
      -- Whichever worker takes a new connection runs the new generation.
      for _ = 1, 2 do
        local c = srv:tcp()
        assert(c:send("gen?"))
        local want = "gen" .. (i + 1)
        assert.equals(want, hs.recv_exact(c, #want))
        c:close()
      end
    end
    write(script, "return { on_message = function( end }\n")
    local out, rc = hs.run(reload)
    assert.equals(1, rc)
    assert.matches("echo.lua:1:", out)
    local c = srv:tcp()
    assert(c:send("gen?")); assert.equals("gen101", hs.recv_exact(c, 6))
    c:close()
    local lg = loadgen_result(dir .. "/lg.out", 150)
    assert.matches("errors=0 mismatches=0", lg)
    assert.matches("connected=50", lg)
    assert.is_true(srv:stop())
    assert.equals(0, srv:exit_status())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  it("give each of two services on port 0 its own socket in every worker", function()
    -- Both declare tcp://127.0.0.1:0: the workers must adopt the master's two sockets in
    -- order, not the first one twice (the second service would then never be served).
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "examples/hear_me.lua", "--listen", "tcp://127.0.0.1:0", "--workers", "2",
      "--control", "none" }
    for _ = 1, 6 do
      local e = srv:tcp(1)
      assert(e:send("ping\n"))
      assert.are.equal("ping", hs.recv_line(e))
      e:close()
      local h = srv:tcp(2)
      assert(h:send("can you hear me?"))
      assert.are.equal("Yes", (h:receive("*a"))) -- then it closes
      h:close()
    end
    srv:stop()
  end)

  it("SIGTERM drains every worker and exits 0", function()
    local srv = hs.start { "tests/fixtures/probe.lua", "--listen", "tcp://127.0.0.1:0",
      "--workers", "2", "--grace", "5", "--control", "none" }
    local c = srv:tcp()
    assert(c:send("count\n")); assert.equals("1", hs.recv_line(c))
    srv:signal("TERM")
    srv:wait_log("stopping 2 worker")
    assert(c:send("count\n")); assert.equals("2", hs.recv_line(c))
    c:close()
    assert.equals(0, srv:wait_exit(10))
  end)
end)

describe("hotsock.shared across workers", function()
  it("adds up concurrent increments from both workers exactly, and expires keys", function()
    local srv = hs.start { "tests/fixtures/shared.lua", "--listen", "tcp://127.0.0.1:0",
      "--workers", "2", "--control", "none" }
    local pids = srv:workers()
    -- Four connections per worker.
    local conns, count = {}, { [pids[1]] = 0, [pids[2]] = 0 }
    for _ = 1, 400 do
      local c = srv:tcp(nil, nil, 60)
      assert(c:send("who\n"))
      local pid = tonumber(hs.recv_line(c))
      if count[pid] < 4 then
        count[pid] = count[pid] + 1
        conns[#conns + 1] = c
      else
        c:close()
      end
      if #conns == 8 then break end
    end
    assert.equals(8, #conns)
    -- Every connection asks for 20,000 increments at once; both workers run concurrently.
    for _, c in ipairs(conns) do assert(c:send("incr hits 20000\n")) end
    for _, c in ipairs(conns) do hs.recv_line(c) end
    assert(conns[1]:send("get hits\n"))
    assert.equals("160000", hs.recv_line(conns[1]))
    assert(conns[8]:send("get hits\n"))
    assert.equals("160000", hs.recv_line(conns[8]))
    -- A value set in one worker is seen by the other, and goes after its ttl.
    assert(conns[1]:send("set greeting hi 0.2\n")); assert.equals("true", hs.recv_line(conns[1]))
    assert(conns[8]:send("get greeting\n")); assert.equals("hi", hs.recv_line(conns[8]))
    hs.wait_until(function()
      assert(conns[8]:send("get greeting\n"))
      return hs.recv_line(conns[8]) == "nil"
    end, 5, "the key to expire")
    for _, c in ipairs(conns) do c:close() end
    assert.is_true(srv:stop())
  end)
end)
