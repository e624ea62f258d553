-- bench/static_calls.lua: sends exactly N keep-alive GET requests for PATH over one
-- connection, one at a time, reading each response whole (Content-Length), and checks the
-- status and body length. A fixed amount of work, so that an instruction count of the server
-- (valgrind --tool=callgrind) over it can be divided by N; bench/static_calls.sh drives it.
--
--   lua5.4 bench/static_calls.lua PORT PATH N [EXPECT_LEN]
local socket = require "socket"

local port, path, n, expect = tonumber(arg[1]), arg[2], tonumber(arg[3]), tonumber(arg[4])
if not (port and path and n) then
  io.stderr:write("usage: lua5.4 bench/static_calls.lua PORT PATH N [EXPECT_LEN]\n")
  os.exit(2)
end

local c = assert(socket.connect("127.0.0.1", port))
c:settimeout(30)
c:setoption("tcp-nodelay", true)
local request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: static_calls\r\n\r\n"):format(path)
for i = 1, n do
  assert(c:send(request))
  local status = assert(c:receive("*l"))
  local code = tonumber(status:match("^HTTP/1%.1 (%d+)"))
  local len = 0
  while true do
    local line = assert(c:receive("*l"))
    if line == "" then break end
    local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
    if v then len = tonumber(v) end
  end
  if len > 0 then assert(c:receive(len)) end
  if code ~= 200 or (expect and len ~= expect) then
    io.stderr:write(("request %d: status %s, %d bytes\n"):format(i, status, len))
    os.exit(1)
  end
end
c:close()
