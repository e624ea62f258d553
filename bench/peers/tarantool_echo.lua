-- Tarantool peer for the benchmark: TCP and UDP echo with the socket module, no box.
--   tarantool tarantool_echo.lua TCP_PORT UDP_PORT     (either may be 0 to skip it)
-- One fiber per TCP connection: wait until readable, sysread what has arrived (up to
-- 64 KiB, like hotsock), write it back (write yields while the socket is full, which is
-- the flow control). UDP: one fiber, recvfrom/sendto.
local socket = require("socket")
local fiber = require("fiber")

local tcp_port, udp_port = tonumber(arg[1]) or 0, tonumber(arg[2]) or 0

local function serve(s)
  s:nonblock(true)
  s:setsockopt("SOL_TCP", "TCP_NODELAY", true)
  while true do
    local data = s:sysread(65536)
    if data == nil then
      if not s:readable() then break end -- an error other than "try again"
    elseif data == "" then
      break
    elseif not s:write(data) then
      break
    end
  end
  s:close()
end

if tcp_port > 0 then
  local server = socket.tcp_server("127.0.0.1", tcp_port, { handler = serve, backlog = 4096 })
  assert(server, "tcp_server failed: " .. tostring(socket.error))
end

if udp_port > 0 then
  local u = assert(socket("AF_INET", "SOCK_DGRAM", "udp"))
  assert(u:bind("127.0.0.1", udp_port))
  u:nonblock(true)
  fiber.create(function()
    while true do
      u:readable()
      for _ = 1, 64 do
        local msg, from = u:recvfrom(65536)
        if not msg then break end
        u:sendto(from.host, from.port, msg)
      end
    end
  end)
end
print("listening")
