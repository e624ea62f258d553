-- Slowloris against HTTP with a real attacker tool (Debian's slowhttptest): 300 connections
-- from 127.0.0.1 that send a header line every second and never finish their request, while
-- a normal client on 127.0.0.2 keeps asking. With the request-head deadline the attackers are
-- answered 408 and dropped within a second or two and the client is answered throughout (the
-- per-address cap, tested in faults_spec, keeps such an attacker under 256 connections at
-- once, whatever -c says). With the deadline pushed to 30 s
-- the same attack holds its connections to the end, which is what the first case would see
-- without the defence.
local hs = require "hsserver"
local socket = require "socket"

local q = hs.shquote
local have_tool = os.execute("command -v slowhttptest >/dev/null 2>&1")

local function get_hello(port)
  local c = socket.tcp()
  c:settimeout(5)
  assert(c:bind("127.0.0.2", 0))
  local t0 = socket.gettime()
  assert(c:connect("127.0.0.1", port))
  assert(c:send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
  local all = hs.recv_all(c)
  c:close()
  assert.matches("^HTTP/1.1 200 OK\r\n.*hello from hotsock", all)
  return socket.gettime() - t0
end

-- Runs slowhttptest for `seconds` against srv while a normal client asks every 50 ms.
-- Returns the tool's output, the worst answer time and the number of answers.
local function attack(srv, seconds)
  local port = srv:port("tcp")
  local out = os.tmpname()
  local base = srv:fd_count()
  os.execute(("timeout %d slowhttptest -c 300 -H -i 1 -r 300 -t GET -u http://127.0.0.1:%d/ "
    .. "-x 24 -p 2 -l %d >%s 2>&1 &"):format(seconds + 15, port, seconds, q(out)))
  -- Under way once the server holds a good part of the attack.
  hs.wait_until(function() return srv:fd_count() >= base + 100 end, 10, "the attack to connect")
  local worst, answers, t0 = 0, 0, socket.gettime()
  while not hs.read_file(out):find("Exit status") and socket.gettime() - t0 < seconds + 10 do
    worst = math.max(worst, get_hello(port))
    answers = answers + 1
    socket.sleep(0.05)
  end
  local text = hs.read_file(out)
  os.remove(out)
  return text, worst, answers
end

describe("slowloris (slowhttptest)", function()
  if not have_tool then
    pending("slowhttptest is not installed (Debian package slowhttptest, in .ci/setup)")
    return
  end

  it("attackers get 408 within the header deadline; a normal client is answered throughout",
    function()
      local srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0",
        "--set", "header_timeout=1", "--control", "none" }
      local text, worst, answers = attack(srv, 8)
      assert.matches("No open connections left", text)
      assert.is_true(worst < 0.5, ("a normal request took %.3f s"):format(worst))
      assert.is_true(answers >= 5, "only " .. answers .. " answers")
      assert.is_true(#srv:log_lines(" 408 .*request head timeout") >= 100)
      assert.equals(get_hello(srv:port("tcp")) < 0.5, true)
      assert.is_true(srv:stop())
    end)

  it("with the deadline at 30 s the attack holds its connections to the end", function()
    local srv = hs.start { "scripts/http.lua", "--listen", "tcp://127.0.0.1:0",
      "--set", "header_timeout=30", "--control", "none" }
    local text = attack(srv, 3)
    assert.matches("Hit test time limit", text)
    assert.equals(0, #srv:log_lines(" 408 "))
    assert.is_true(srv:stop())
  end)
end)
