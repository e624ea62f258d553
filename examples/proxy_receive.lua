-- A TCP proxy written with conn:receive, conn:send and conn:flush: the way to go when the
-- script must look at the bytes (log them, rewrite them, pick the upstream from the first
-- line). examples/proxy.lua does the same with conn:pipe, which moves the bytes in C with no
-- script call per read, and is about twice as cheap per message; prefer it for a plain proxy.
-- Each client gets its own upstream connection, and bytes flow both ways with flow control.
-- Each direction is a receive-driven loop that reads from one side only while the other
-- side's unsent output is at its low-water mark (256 KiB by default) or under: conn:flush()
-- waits for that. A slow reader on either end thus makes the proxy stop reading from the other
-- (whose kernel buffers then fill and slow the sender down) instead of buffering without
-- bound. Memory per connection pair: at most the mark plus one read.
--   build/hotsock serve scripts/echo.lua --listen tcp://127.0.0.1:7000 &
--   build/hotsock serve examples/proxy_receive.lua --set upstream=tcp://127.0.0.1:7000
--   nc 127.0.0.1 7011          (each line typed comes back through the upstream)
local hotsock = require "hotsock"
local opts = ...
local upstream = (opts or {}).upstream or "tcp://127.0.0.1:7000"

-- Copies from src to dst until src ends or fails; then closes dst after its pending output.
local function pump(src, dst)
  while true do
    if not dst:flush() then return src:close() end -- dst closed: nowhere to copy to
    local data = src:receive()
    if not data then break end
    if not dst:send(data) then break end
  end
  dst:close()
end

return {
  listen = "tcp://127.0.0.1:7011",
  framing = "raw",
  handle = function(conn)
    local up, err = hotsock.connect(upstream)
    if not up then
      hotsock.log("warn", "upstream " .. upstream .. ": " .. err)
      return
    end
    hotsock.spawn(pump, up, conn) -- upstream -> client, in a coroutine of its own
    pump(conn, up)                -- client -> upstream, in this one
  end,
}
