-- The tutorial's greeting client, in Lua: connect, read the welcome, send each name and
-- print the reply, then say exit.
--   lua5.4 examples/greeting_client.lua [--host H] [--port P] NAME...
local socket = require "socket"

local host, port, names = "127.0.0.1", 7001, {}
local i = 1
while i <= #arg do
  if arg[i] == "--host" then host, i = arg[i + 1], i + 2
  elseif arg[i] == "--port" then port, i = tonumber(arg[i + 1]), i + 2
  else names[#names + 1], i = arg[i], i + 1 end
end
if #names == 0 then names = { "world" } end

local c = assert(socket.connect(host, port))
c:settimeout(5)
local function recv()
  -- One reply is one chunk in raw framing, as recv(1024) in the tutorial.
  local data, err = c:receive(1)
  if not data then return nil, err end
  c:settimeout(0.05)
  local rest, _, p = c:receive(1023)
  c:settimeout(5)
  return data .. (rest or p or "")
end

print(assert(recv()))
for _, name in ipairs(names) do
  assert(c:send(name))
  print(assert(recv()))
end
assert(c:send("exit"))
c:close()
