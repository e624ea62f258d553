-- The fault battery: clients that reset, stall, trickle, half-close or flood, a server out of
-- descriptors, and SIGTERM in the middle of uploads, all against the real binary over
-- loopback. Where a defence has a switch (a limit or window at 0), the same case is run with
-- it off too, to show the test fails without it. Timeouts are set short by flag so every case
-- takes well under a second or two.
local hs = require "hsserver"
local socket = require "socket"

local q = hs.shquote

local tmpdir = hs.tmpdir

local function ls(dir)
  local names = {}
  local p = io.popen("ls -A " .. q(dir) .. " 2>/dev/null")
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

local function frame(s)
  return string.pack("<i4", #s) .. s
end

local function file_header(name, ack)
  return frame(('{"msg_type": "file", "file_name": "%s"%s}'):format(name,
    ack and ', "ack": true' or ""))
end

-- Reads one reply frame of the upload protocol.
local function read_frame(c)
  local len = hs.recv_exact(c, 4)
  return hs.recv_exact(c, string.unpack("<i4", len))
end

-- Closes with a reset: SO_LINGER on with a zero timeout.
local function reset(c)
  c:setoption("linger", { on = true, timeout = 0 })
  c:close()
end

-- A client socket bound to a given loopback source address.
local function tcp_from(src, port)
  local c = socket.tcp()
  c:settimeout(5)
  assert(c:bind(src, 0))
  assert(c:connect("127.0.0.1", port))
  return c
end

-- Whether the server has closed c: true once the FIN is seen (reading c with no wait).
local function is_closed(c)
  c:settimeout(0)
  local _, err = c:receive(1)
  c:settimeout(5)
  return err == "closed"
end

-- ---------------------------------------------------------------------------------------
describe("abrupt resets in every state of every protocol", function()
  local srv, files, www, base_fds
  setup(function()
    files, www = tmpdir(), tmpdir()
    write_file(www .. "/big.bin", ("0123456789abcdef"):rep(256 * 1024)) -- 4 MiB
    srv = hs.start {
      "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0", "--framing", "line",
      "scripts/upload.lua", "--listen", "tcp://127.0.0.1:0", "--set", "dir=" .. files,
      "scripts/http.lua", "--listen", "tcp://127.0.0.1:0", "--set", "root=" .. www,
      "--set", "upload_dir=" .. files, "--control", "none",
    }
    -- One file served first: the static site keeps its root directory open (refreshed
    -- every second), and that descriptor belongs in the baseline.
    local h = srv:tcp(1, "http")
    assert(h:send("HEAD /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert.matches("^HTTP/1.1 200 OK\r\n", (hs.recv_all(h)))
    h:close()
    base_fds = srv:fd_count()
  end)
  teardown(function()
    if srv then assert.is_true(srv:stop()) end
    os.execute("rm -rf " .. q(files) .. " " .. q(www))
  end)

  local function client(name) return srv:tcp(1, name) end

  -- Every protocol still answers exactly, on fresh connections.
  local function all_serve()
    local e = client("echo")
    assert(e:send("ping"))
    assert.equals("ping", hs.recv_exact(e, 4))
    e:close()
    local g = client("greeting")
    assert.equals("welcome!", hs.recv_exact(g, 8))
    assert(g:send("Ann\n"))
    assert.equals("hello, Ann!", hs.recv_line(g))
    g:close()
    local u = client("upload")
    assert(u:send(file_header("check.txt", true) .. frame("ok") .. frame("close")))
    assert.matches('"ok": true', read_frame(u))
    u:close()
    os.remove(files .. "/check.txt")
    local h = client("http")
    assert(h:send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert.matches("^HTTP/1.1 200 OK\r\n.*hello from hotsock", (hs.recv_all(h)))
    h:close()
  end

  -- After each reset: the server lives, serves everyone, and gives back every descriptor
  -- and every temporary file.
  local function after_reset()
    assert.is_true(srv:alive())
    all_serve()
    hs.wait_until(function() return srv:fd_count() == base_fds end, 5,
      "descriptors back to " .. base_fds)
    hs.wait_until(function() return #ls(files) == 0 end, 5, "no files left in the upload dir")
  end

  local cases = {
    { "echo", "connected, nothing sent", function(c) end },
    { "echo", "with output pending", function(c)
      c:settimeout(0.5)
      c:send(("x"):rep(4 * 1024 * 1024))
    end },
    { "greeting", "welcome unread", function(c) end },
    { "greeting", "mid-line", function(c)
      hs.recv_exact(c, 8)
      assert(c:send("Bo"))
    end },
    { "upload", "mid length header", function(c) assert(c:send("\5\0")) end },
    { "upload", "mid header frame", function(c) assert(c:send("\50\0\0\0{\"msg_type\"")) end },
    { "upload", "between header and content", function(c)
      assert(c:send(file_header("r1.bin", true)))
    end },
    { "upload", "mid content", function(c)
      assert(c:send(file_header("r2.bin", true) .. string.pack("<i4", 1024 * 1024)
        .. ("y"):rep(100 * 1024)))
      hs.wait_until(function() return #ls(files) == 1 end, 5, "the temporary file")
    end },
    { "upload", "ack unread", function(c)
      assert(c:send(file_header("r3.bin", true) .. frame("zzz")))
      hs.wait_until(function()
        local names = ls(files)
        return #names == 1 and names[1] == "r3.bin"
      end, 5, "r3.bin stored")
      os.remove(files .. "/r3.bin")
    end },
    { "http", "mid request line", function(c) assert(c:send("GET /hel")) end },
    { "http", "mid header fields", function(c)
      assert(c:send("GET / HTTP/1.1\r\nHost: t\r\nX-A: "))
    end },
    { "http", "mid streamed body (PUT /upload)", function(c)
      assert(c:send("PUT /upload/r4.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"
        .. ("z"):rep(100 * 1024)))
      hs.wait_until(function() return #ls(files) == 1 end, 5, "the temporary file")
    end },
    { "http", "mid response (4 MiB file, 1 byte read)", function(c)
      assert(c:send("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"))
      hs.recv_exact(c, 1)
    end },
    { "http", "pipelined requests unread", function(c)
      assert(c:send(("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"):rep(20)))
    end },
    { "http", "idle keep-alive after a response", function(c)
      assert(c:send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
      local head = hs.recv_exact(c, 17)
      assert.equals("HTTP/1.1 200 OK\r\n", head)
    end },
  }
  for _, case in ipairs(cases) do
    local name, state, act = case[1], case[2], case[3]
    it(("%s: %s"):format(name, state), function()
      local c = client(name)
      act(c)
      reset(c)
      after_reset()
    end)
  end

  it("the interrupted uploads left nothing behind and the log says so", function()
    assert.is_true(#srv:log_lines('file "r2%.bin" not stored') >= 1)
    assert.same({}, ls(files))
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("a stalled or trickling frame", function()
  local function start(window)
    local dir = tmpdir()
    local srv = hs.start { "scripts/upload.lua", "--listen", "tcp://127.0.0.1:0",
      "--set", "dir=" .. dir, "--frame-timeout", window, "--min-rate", "1k",
      "--control", "none" }
    return srv, dir
  end

  it("part of a length header, then silence: cut by --frame-timeout", function()
    local srv, dir = start("0.3")
    local c = srv:tcp()
    local t0 = socket.gettime()
    assert(c:send("\7\0"))
    local data, err = hs.recv_all(c)
    local took = socket.gettime() - t0
    assert.equals("", data)
    assert.equals("closed", err)
    assert.is_true(took >= 0.25 and took < 3, "cut after " .. took .. " s")
    srv:wait_log("too slow: 0 bytes in %d+ ms with a frame in progress")
    c:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. q(dir))
  end)

  it("a content frame trickled a byte at a time: cut by the minimum rate, nothing stored",
    function()
      local srv, dir = start("0.3")
      local c = srv:tcp()
      assert(c:send(file_header("slow.bin", true) .. string.pack("<i4", 1000)))
      local t0, sent = socket.gettime(), 0
      -- A byte every 20 ms is a sign of life far more often than any window, but 50 B/s.
      while not is_closed(c) and socket.gettime() - t0 < 5 do
        c:send("s")
        sent = sent + 1
        socket.sleep(0.02)
      end
      local took = socket.gettime() - t0
      assert.is_true(took < 3, "still open after " .. took .. " s")
      assert.is_true(sent >= 5, "only " .. sent .. " bytes sent")
      srv:wait_log("too slow: %d+ bytes in %d+ ms with a frame in progress")
      hs.wait_until(function() return #ls(dir) == 0 end, 5, "no temporary file left")
      c:close()
      assert.is_true(srv:stop())
      os.execute("rm -rf " .. q(dir))
    end)

  it("an HTTP body trickled a byte at a time: cut by the same window and rate", function()
    local srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0",
      "--frame-timeout", "0.3", "--min-rate", "1k", "--control", "none" }
    local c = srv:tcp()
    assert(c:send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"))
    local t0, sent = socket.gettime(), 0
    while not is_closed(c) and socket.gettime() - t0 < 5 do
      c:send("b")
      sent = sent + 1
      socket.sleep(0.02)
    end
    local took = socket.gettime() - t0
    assert.is_true(took < 3, "still open after " .. took .. " s")
    assert.is_true(sent >= 5, "only " .. sent .. " bytes sent")
    srv:wait_log("too slow: %d+ bytes in %d+ ms with a frame in progress")
    c:close()
    assert.is_true(srv:stop())
  end)

  it("without the window (--frame-timeout 0) the same stall is kept open", function()
    local srv, dir = start("0")
    local c = srv:tcp(nil, nil, 1.5)
    assert(c:send("\7\0"))
    local data, err = c:receive(1)
    assert.is_nil(data)
    assert.equals("timeout", err)
    c:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. q(dir))
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("a client that reads one byte at a time", function()
  -- The client's own receive buffer hides the cut from it for a while, so the server's log
  -- line (written as it aborts) is the signal; the client keeps reading until it appears.
  local function slow_reader(window)
    local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "--send-timeout", window, "--min-rate", "4k", "--control", "none" }
    local c = srv:tcp()
    -- Fill every buffer between us: the server's output queue holds the rest.
    c:settimeout(0.2)
    local chunk, pushed = ("r"):rep(256 * 1024), 0
    for _ = 1, 64 do
      local n, _, partial = c:send(chunk)
      pushed = pushed + (n or partial or 0)
      if not n then break end
    end
    c:settimeout(5)
    local t0, got, cut = socket.gettime(), 0, nil
    while socket.gettime() - t0 < 2.5 do
      if srv:log_has("too slow: read") then
        cut = socket.gettime() - t0
        break
      end
      if not c:receive(1) then break end
      got = got + 1
      socket.sleep(0.01)
    end
    return srv, c, cut, got, pushed
  end

  it("is cut off by --send-timeout and --min-rate however long it keeps reading", function()
    local srv, c, cut, got, pushed = slow_reader("0.4")
    assert.is_true(pushed > 1024 * 1024, "pushed " .. pushed)
    assert.is_truthy(cut and cut < 2.4, "not cut while reading " .. got .. " bytes")
    srv:wait_log("too slow: read %d+ bytes in %d+ ms with %d+ waiting %(minimum 4096 bytes/s%)")
    c:close()
    assert.is_true(srv:stop())
  end)

  it("an HTTP client reading a large file a byte at a time is cut off too", function()
    local www = tmpdir()
    write_file(www .. "/big.bin", ("0123456789abcdef"):rep(512 * 1024)) -- 8 MiB
    local srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0",
      "--set", "root=" .. www, "--send-timeout", "0.4", "--min-rate", "4k",
      "--control", "none" }
    local c = srv:tcp()
    assert(c:send("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"))
    local t0, got, cut = socket.gettime(), 0, nil
    while socket.gettime() - t0 < 5 do
      if srv:log_has("too slow: read") then
        cut = socket.gettime() - t0
        break
      end
      if not c:receive(1) then break end
      got = got + 1
      socket.sleep(0.01)
    end
    assert.is_truthy(cut and cut < 3, "not cut while reading " .. got .. " bytes")
    c:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. q(www))
  end)

  it("without the window (--send-timeout 0) it is served as slowly as it likes", function()
    local srv, c, cut, got = slow_reader("0")
    assert.is_nil(cut)
    assert.is_true(got > 50, got .. " bytes read")
    c:close()
    assert.is_true(srv:stop())
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("half-closed sockets", function()
  local srv, files
  setup(function()
    files = tmpdir()
    srv = hs.start {
      "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
      "scripts/greeting.lua", "--listen", "tcp://127.0.0.1:0", "--framing", "line",
      "scripts/upload.lua", "--listen", "tcp://127.0.0.1:0", "--set", "dir=" .. files,
      "scripts/http.lua", "--listen", "tcp://127.0.0.1:0", "--control", "none",
    }
  end)
  teardown(function()
    if srv then assert.is_true(srv:stop()) end
    os.execute("rm -rf " .. q(files))
  end)

  it("echo: what was sent comes back, then the close", function()
    local c = srv:tcp(1, "echo")
    assert(c:send("abc"))
    c:shutdown("send")
    assert.same({ "abc", "closed" }, { hs.recv_all(c) })
    c:close()
  end)

  it("greeting: an unterminated last line is still answered, then the close", function()
    local c = srv:tcp(1, "greeting")
    assert.equals("welcome!", hs.recv_exact(c, 8))
    assert(c:send("Zed"))
    c:shutdown("send")
    assert.same({ "hello, Zed!\n", "closed" }, { hs.recv_all(c) })
    c:close()
  end)

  it("upload: the file is stored and acked after the client's half-close", function()
    local c = srv:tcp(1, "upload")
    assert(c:send(file_header("half.txt", true) .. frame("half-closed")))
    c:shutdown("send")
    local all, err = hs.recv_all(c)
    assert.equals("closed", err)
    assert.matches('"ok": true, "file_name": "half.txt", "bytes": 11', all)
    assert.equals("half-closed", hs.read_file(files .. "/half.txt"))
    c:close()
  end)

  it("upload: a half-close inside a frame leaves no file", function()
    local c = srv:tcp(1, "upload")
    assert(c:send(file_header("cut.txt", true) .. string.pack("<i4", 100) .. "only part"))
    c:shutdown("send")
    local all, err = hs.recv_all(c)
    assert.is_truthy(err == "closed" or err:match("reset"), err)
    assert.equals("", all)
    hs.wait_until(function() return #ls(files) == 1 end, 5, "only half.txt left")
    assert.same({ "half.txt" }, ls(files))
  end)

  it("http: the response comes in full after the request and a half-close", function()
    local c = srv:tcp(1, "http")
    assert(c:send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
    c:shutdown("send")
    local all, err = hs.recv_all(c)
    assert.equals("closed", err)
    assert.matches("^HTTP/1.1 200 OK\r\n.*\r\n\r\nhello from hotsock", all)
    c:close()
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("a flood of connections", function()
  local function echo_ok(c, text)
    assert(c:send(text))
    return c:receive(#text) == text
  end

  it("beyond --max-per-peer and --max-connections is refused at once, then recovers",
    function()
      local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
        "--max-per-peer", "5", "--max-connections", "8", "--control", "none" }
      local port = srv:port("tcp")
      local held = {}
      for i = 1, 5 do
        held[i] = tcp_from("127.0.0.1", port)
        assert.is_true(echo_ok(held[i], "h" .. i))
      end
      -- A flood from the same address: every one closed at once, no byte answered.
      local t0 = socket.gettime()
      for _ = 1, 200 do
        local c = tcp_from("127.0.0.1", port)
        c:send("x")
        local data, err = c:receive(1)
        assert.is_nil(data)
        assert.is_truthy(err == "closed" or err:match("reset"), err)
        c:close()
      end
      -- Other addresses are still let in, up to the global limit.
      for i = 6, 8 do
        held[i] = tcp_from("127.0.0." .. i - 4, port)
        assert.is_true(echo_ok(held[i], "h" .. i))
      end
      local over = tcp_from("127.0.0.9", port)
      over:send("x")
      assert.is_nil((over:receive(1)))
      over:close()
      -- The open ones were never touched, and the log stayed short.
      for i = 1, 8 do assert.is_true(echo_ok(held[i], "again" .. i)) end
      -- 201 refusals: at most a line a second in the log.
      local lines = #srv:log_lines("limit %(%d%) reached; refusing")
      assert.is_true(lines <= socket.gettime() - t0 + 2, lines .. " refusal lines")
      -- Recovery: once two close, their address gets in again.
      held[1]:close()
      held[2]:close()
      hs.wait_until(function()
        local c = tcp_from("127.0.0.1", port)
        local ok = echo_ok(c, "back")
        c:close()
        return ok
      end, 5, "a new connection from 127.0.0.1 to be served")
      for i = 3, 8 do held[i]:close() end
      assert.is_true(srv:stop())
    end)

  it("without the per-address cap (--max-per-peer 0) the sixth connection is served",
    function()
      local srv = hs.start { "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
        "--max-per-peer", "0", "--control", "none" }
      local held = {}
      for i = 1, 6 do
        held[i] = srv:tcp()
        assert.is_true(echo_ok(held[i], "h" .. i))
      end
      for _, c in ipairs(held) do c:close() end
      assert.is_true(srv:stop())
    end)
end)

-- ---------------------------------------------------------------------------------------
describe("out of descriptors (ulimit -n)", function()
  it("accept pauses instead of spinning on EMFILE, and everyone is served once fds free up",
    function()
      local srv = hs.start({ "scripts/echo.lua", "--listen", "tcp://127.0.0.1:0",
        "--control", "none" }, { prefix = "ulimit -n 40;" })
      local room = 40 - srv:fd_count()
      local clients = {}
      -- Ten more than fit: the kernel completes their handshakes; accept(2) gets EMFILE.
      for i = 1, room + 10 do clients[i] = srv:tcp() end
      srv:wait_log("accept failed: Too many open files; pausing accepts")
      for i = 1, room - 2 do
        assert(clients[i]:send("a"))
        assert.equals("a", hs.recv_exact(clients[i], 1))
      end
      -- While descriptors are short the server must idle, not spin on the readable listener.
      local cpu0, t0 = srv:cpu_seconds(), socket.gettime()
      socket.sleep(1) -- measuring what the server does meanwhile: time passing is the point
      local cpu = srv:cpu_seconds() - cpu0
      local wall = socket.gettime() - t0
      assert.is_true(cpu < 0.3 * wall, ("%.2f s of CPU in %.2f s"):format(cpu, wall))
      -- ...and log the shortage once, not once per 100 ms pause.
      local _, pauses = srv:log():gsub("pausing accepts", "")
      assert.equals(1, pauses)
      -- Free twenty: the waiting ten are accepted and served, and new clients too.
      for i = 1, 20 do clients[i]:close() end
      for i = 21, room + 10 do
        assert(clients[i]:send("b"))
        assert.equals("b", hs.recv_exact(clients[i], 1))
      end
      srv:wait_log("accepting again")
      local fresh = srv:tcp()
      assert(fresh:send("c"))
      assert.equals("c", hs.recv_exact(fresh, 1))
      fresh:close()
      for i = 21, room + 10 do clients[i]:close() end
      assert.is_true(srv:stop())
    end)
end)

-- ---------------------------------------------------------------------------------------
describe("SIGTERM during uploads", function()
  it("completed uploads are complete, one finishing in the grace period completes, "
    .. "an interrupted one leaves nothing", function()
    local dir = tmpdir()
    local srv = hs.start { "scripts/upload.lua", "--listen", "tcp://127.0.0.1:0",
      "--set", "dir=" .. dir, "--grace", "3", "--control", "none" }
    local done_data = ("d"):rep(300 * 1024)
    local a = srv:tcp()
    assert(a:send(file_header("done.bin", true) .. frame(done_data)))
    assert.matches('"ok": true', read_frame(a))
    assert(a:send(frame("close")))
    assert.equals("closed", select(2, hs.recv_all(a)))
    -- b stops half-way and stays silent; c is half-way when the signal comes, then finishes.
    local b, c = srv:tcp(), srv:tcp()
    local half = ("h"):rep(128 * 1024)
    assert(b:send(file_header("cut.bin", true) .. string.pack("<i4", 2 * #half) .. half))
    assert(c:send(file_header("late.bin", true) .. string.pack("<i4", 2 * #half) .. half))
    -- Both headers are in once their temporary files exist.
    hs.wait_until(function() return #ls(dir) == 3 end, 5, "two temporary files")
    srv:signal("TERM")
    srv:wait_log("SIGTERM: no longer accepting; 2 connection%(s%) get 3000 ms to finish")
    assert(c:send(half))
    assert.matches('"ok": true, "file_name": "late.bin", "bytes": 262144', read_frame(c))
    assert(c:send(frame("close")))
    assert.equals(0, srv:wait_exit(10))
    assert.matches("grace period over: closing 1 connection", srv:log())
    assert.same({ "done.bin", "late.bin" }, ls(dir))
    assert.equals(done_data, hs.read_file(dir .. "/done.bin"))
    assert.equals(half .. half, hs.read_file(dir .. "/late.bin"))
    b:close()
    c:close()
    os.execute("rm -rf " .. q(dir))
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("size limits from the command line", function()
  it("--max-line applies to line framing that does not set its own max", function()
    local srv = hs.start { "tests/fixtures/hostile.lua", "--listen", "tcp://127.0.0.1:0",
      "--max-line", "10", "--control", "none" }
    local c = srv:tcp()
    assert(c:send("0123456789\n"))
    assert.equals("0123456789", hs.recv_line(c))
    assert(c:send("0123456789a\n"))
    assert.same({ "", "closed" }, { hs.recv_all(c) })
    srv:wait_log("protocol error: line too long; closing")
    c:close()
    assert.is_true(srv:stop())
  end)

  it("--max-frame applies to length framing that does not set its own max", function()
    local srv = hs.start { "tests/fixtures/hostile.lua", "--listen", "tcp://127.0.0.1:0",
      "--framing", "length:u32", "--max-frame", "8", "--control", "none" }
    local c = srv:tcp()
    assert(c:send(string.pack(">I4", 8) .. "12345678"))
    assert.equals("12345678", hs.recv_line(c))
    assert(c:send(string.pack(">I4", 9) .. "123456789"))
    local rest, err = hs.recv_all(c)
    assert.equals("", rest)
    assert.is_truthy(err == "closed" or err:match("reset"), err)
    srv:wait_log("protocol error: frame too large; closing")
    c:close()
    assert.is_true(srv:stop())
  end)
end)

-- ---------------------------------------------------------------------------------------
describe("a full disk during an HTTP upload", function()
  -- The upload protocol's case is in upload_spec; this is PUT /upload/NAME of scripts/http.lua.
  local function mount_small(dir)
    return os.execute("mount -t tmpfs -o size=1m tmpfs " .. q(dir) .. " 2>/dev/null")
  end
  local probe = tmpdir()
  local can_mount = mount_small(probe)
  if can_mount then os.execute("umount " .. q(probe)) end
  os.execute("rm -rf " .. q(probe))
  if not can_mount then
    pending("mount -t tmpfs is not permitted here (needs root): no small disk to fill")
    return
  end

  it("answers 500 with the reason, leaves no partial or temporary file, serves the next",
    function()
      local disk = tmpdir()
      assert(mount_small(disk))
      local srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0",
        "--set", "upload_dir=" .. disk, "--control", "none" }
      finally(function()
        srv:stop()
        os.execute("umount " .. q(disk) .. " || umount -l " .. q(disk))
        os.execute("rm -rf " .. q(disk))
      end)
      local c = srv:tcp(nil, nil, 10)
      local big = ("F"):rep(2 * 1024 * 1024)
      c:settimeout(10)
      assert(c:send(("PUT /upload/big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n")
        :format(#big)))
      c:send(big) -- the server may answer and close before it has all of it
      local all = hs.recv_all(c)
      assert.matches("^HTTP/1.1 500 ", all)
      -- The stable token (core/errtok.c), not strerror's words, which differ between C libraries.
      assert.matches("\r\n\r\ndisk full\n$", all)
      c:close()
      assert.same({}, ls(disk))
      local d = srv:tcp()
      assert(d:send("PUT /upload/small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
        .. "Connection: close\r\n\r\nfits"))
      assert.matches("^HTTP/1.1 201 ", (hs.recv_all(d)))
      d:close()
      assert.same({ "small.txt" }, ls(disk))
      assert.equals("fits", hs.read_file(disk .. "/small.txt"))
    end)
end)
