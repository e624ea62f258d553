-- Error paths the manual promises, each one a single-line mutation of the core that once
-- passed every test (tests/mutate.sh applies them and checks these tests catch each):
-- the output cap on conn:send's path (tests/unit/test_conn.c, test_sendv_full), UDP send_to
-- over 65,507 bytes, an on_reload that raises, a callback that is not a function, is_closed
-- on a closing conn, the upload sink's fsync before rename, shared.incr on a string.
local hs = require "hsserver"

local bin = hs.shquote(hs.bin)

describe("error paths seen from a script", function()
  local srv
  before_each(function()
    srv = hs.start("tests/fixtures/errpaths.lua",
      { listen = { "tcp://127.0.0.1:0", "udp://127.0.0.1:0" } })
  end)
  after_each(function() assert.is_true(srv:stop()) end)

  it("UDP send_to refuses 65,508 bytes and sends 65,507", function()
    local u = srv:udp()
    assert(u:send("65507"))
    assert.equals(65507, #assert(u:receive(65535))) -- the datagram itself, then the verdict
    assert.equals("sent", u:receive())
    assert(u:send("65508"))
    local reply = u:receive()
    assert.matches("^raised: .*datagram over 65507 bytes", reply)
    assert(u:send("not a socket"))
    assert.equals("false bad argument #1 to 'sock:send_to' (hotsock.udp expected, got table)",
      u:receive())
    u:close()
  end)

  it("an on_datagram that raises is logged with its socket and its peer", function()
    local u = srv:udp()
    local _, from = u:getsockname()
    assert(u:send("raise"))
    local url = srv:url("udp"):gsub("%p", "%%%0")
    srv:wait_log("handler error in on_datagram %(" .. url .. " from 127%.0%.0%.1:" .. from
      .. "%): .*datagram handler raised")
    -- After a wait too: the name is kept while the call waits.
    assert(u:send("wait, raise"))
    srv:wait_log("handler error in on_datagram %(" .. url .. " from 127%.0%.0%.1:" .. from
      .. "%), after waiting in hotsock.sleep at tests/fixtures/errpaths.lua:%d+: "
      .. ".*datagram handler raised after a wait")
    -- The socket still answers.
    assert(u:send("1"))
    assert.equals("x", u:receive())
    assert.equals("sent", u:receive())
    u:close()
  end)

  it("shared.incr on a string returns nil and an error, and leaves the string", function()
    local c = srv:connect()
    c:send_line("incr")
    assert.equals("nil not a number text", c:line())
    c:close()
  end)

  it("conn:is_closed() is true from close on, while the output still drains", function()
    local holder = srv:tcp()
    holder:setoption("keepalive", true)
    assert(holder:send("hold\n")) -- and never read: 32 MiB stay queued
    local asker = srv:connect()
    local at_once, later, pending
    hs.wait_until(function()
      asker:send_line("ask")
      at_once, later, pending = asker:line():match("^(%S+) (%S+) (%d+)$")
      return at_once ~= "nil"
    end, 10, "the hold command to have run")
    assert.equals("true", at_once)
    assert.equals("true", later)
    assert.is_true(tonumber(pending) > 0, "the closing conn still has output queued")
    asker:close()
    holder:close()
  end)
end)

describe("reload and check refuse what the manual refuses", function()
  it("an error raised by on_reload fails the reload (exit 1) and keeps the old version", function()
    local dir = hs.tmpdir()
    local script = dir .. "/v.lua"
    local v1 = [[
return { framing = "line", on_message = function(c, m) c:send("v1\n") end }
]]
    hs.write(script, v1)
    local srv = hs.start(script)
    hs.write(script, [[
return {
  framing = "line",
  on_message = function(c, m) c:send("v2\n") end,
  on_reload = function(old) error("cannot take over the state") end,
}
]])
    local ok, report = srv:reload()
    assert.is_false(ok, report)
    assert.matches("^error .*cannot take over the state", report)
    local c = srv:connect()
    c:send_line("x")
    assert.equals("v1", c:line())
    c:close()
    assert.matches("reload failed, keeping generation 1", srv:log(), 1, true)
    assert.is_true(srv:stop())
    os.execute("rm -rf " .. hs.shquote(dir))
  end)

  it("check refuses a known callback that is not a function", function()
    local out, rc = hs.run(bin .. " check tests/fixtures/not_a_function.lua 2>&1")
    assert.equals(1, rc, out)
    assert.matches("not_a_function.lua:%d+: on_message: must be a function", out)
  end)
end)

describe("the upload sink", function()
  it("fsyncs the temporary file before renaming it into place", function()
    local dir = hs.tmpdir()
    local trace = dir .. "/trace"
    -- strace -y prints each descriptor's path, so the fsync is tied to the file renamed.
    local srv = hs.start("scripts/http.lua", {
      set = { upload_dir = dir },
      prefix = ("strace -f -qq -y -e trace=fsync,fdatasync,rename,renameat,renameat2 -o %s")
        :format(hs.shquote(trace)),
    })
    local c = srv:tcp()
    assert(c:send("PUT /upload/a.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"))
    assert.matches("^HTTP/1.1 201", hs.recv_line(c))
    c:close()
    assert.is_true(srv:stop())
    assert.equals("hello", hs.read_file(dir .. "/a.txt"))
    local lines = {}
    for l in hs.read_file(trace):gmatch("[^\n]+") do lines[#lines + 1] = l end
    local renamed, synced
    for i, l in ipairs(lines) do
      local from = l:match('rename%w*%(.-"([^"]*%.hs%-upload%-[^"]*)"')
      if from and l:find("/a.txt", 1, true) then renamed = renamed or { i, from } end
    end
    assert.is_truthy(renamed, "a rename of the temporary file to a.txt in:\n" .. table.concat(lines, "\n"))
    for i = 1, renamed[1] - 1 do
      local path = lines[i]:match("f?d?a?t?a?sync%(%d+<([^>]*)>%) = 0")
      if path == renamed[2] then synced = true end
    end
    assert.is_true(synced == true, "an fsync of " .. renamed[2] .. " before its rename in:\n"
      .. table.concat(lines, "\n"))
    os.execute("rm -rf " .. hs.shquote(dir))
  end)
end)
