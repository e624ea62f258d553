-- Names through the real resolver path (libevent's evdns, not the shortcuts for localhost and
-- .invalid): the server runs in a user and mount namespace of its own whose /etc/resolv.conf
-- names a nameserver on loopback that answers NXDOMAIN (a second hotsock,
-- tests/fixtures/dns_nxdomain.lua), one that never answers, or none listening. Each lookup
-- ends with "no such host" or "timeout" within its bound. Skipped where unprivileged user
-- namespaces are not allowed (`unshare -rm` fails).
local kit = require "hotsock.testkit"
local socket = require "socket"

local USERNS = os.execute("unshare -rm true 2>/dev/null") == true

local function free_udp_port()
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  local _, port = u:getsockname()
  return u, port
end

-- The outbound fixture served with `nameserver 127.0.0.1:PORT` as its resolv.conf.
local function start_with(port)
  local dir = kit.tmpdir()
  kit.write(dir .. "/resolv.conf", ("nameserver 127.0.0.1:%d\noptions timeout:1 attempts:1\n")
    :format(port))
  local wrap = ("unshare -rm sh -c %s"):format(kit.shquote(
    "mount --bind " .. dir .. "/resolv.conf /etc/resolv.conf && exec \"$0\" \"$@\""))
  return kit.start("tests/fixtures/outbound.lua",
    { args = { "--sandbox", "trusted" }, prefix = wrap }), dir
end

local function ask(srv, line)
  local c = srv:connect()
  local t0 = socket.gettime()
  c:send_line(line)
  local answer = c:line()
  c:close()
  return answer, socket.gettime() - t0
end

local maybe = USERNS and describe or pending

maybe("names through evdns", function()
  it("a nameserver that answers NXDOMAIN: no such host, and it was asked", function()
    local dns = kit.start("tests/fixtures/dns_nxdomain.lua", { listen = "udp://127.0.0.1:0" })
    local srv, dir = start_with(dns:port("udp"))
    local answer, took = ask(srv, "connect tcp://nothing.example:80 5")
    assert.equals("nil no such host", answer)
    assert.is_true(took < 4, took)
    assert.equals("nil no such host", (ask(srv, "resolve nothing.example")))
    assert.truthy(dns:wait_log("dns query nothing.example"))
    assert.is_true(srv:stop())
    assert.is_true(dns:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)

  it("a nameserver that never answers: timeout at the connect's deadline", function()
    local silent, port = free_udp_port()
    local srv, dir = start_with(port)
    local answer, took = ask(srv, "connect tcp://nothing.example:80 1")
    assert.equals("nil timeout", answer)
    assert.is_true(took >= 0.9 and took < 3, took)
    silent:close()
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)

  it("no nameserver listening: no such host or timeout, within the bound", function()
    local u, port = free_udp_port()
    u:close()
    local srv, dir = start_with(port)
    local answer, took = ask(srv, "connect tcp://nothing.example:80 3")
    assert.truthy(answer == "nil no such host" or answer == "nil timeout", answer)
    assert.is_true(took < 4, took)
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. kit.shquote(dir))
  end)
end)
