-- The tutorial's first client, in Lua: connect, send the question with one sendall, read
-- the answer with one recv(1024), close, and print what came back.
--   lua5.4 examples/hear_me_client.lua [--host H] [--port P] [QUESTION]
local socket = require "socket"

local host, port, question = "127.0.0.1", 7005, "can you hear me?"
local i = 1
while i <= #arg do
  if arg[i] == "--host" then host, i = arg[i + 1], i + 2
  elseif arg[i] == "--port" then port, i = tonumber(arg[i + 1]), i + 2
  else question, i = arg[i], i + 1 end
end

local c = assert(socket.connect(host, port))
c:settimeout(5)
assert(c:send(question)) -- luasocket's send is sendall: it returns once every byte is out
-- One recv(1024): the server answers and closes, so the read ends with what it sent.
local data, err, partial = c:receive(1024)
c:close()
local answer = data or partial
if err and err ~= "closed" then
  io.stderr:write("no answer: ", err, "\n")
  os.exit(1)
end
io.write(answer, "\n")
