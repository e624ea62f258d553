-- A TCP proxy written with conn:receive, conn:send and conn:flush: the way to go when the
-- script must look at the bytes (log them, rewrite them, pick the upstream from the first
-- line). examples/proxy.lua does the same with conn:pipe, which moves the bytes in C with no
-- script call per read, and is about twice as cheap per message; prefer it for a plain proxy.
-- Each client gets its own upstream connection, and bytes flow both ways with flow control.
-- Each direction is a receive-driven loop that reads from one side only while the other
-- side's unsent output is at its low-water mark (256 KiB by default) or under: conn:flush()
-- waits for that. A slow reader on either end thus makes the proxy stop reading from the other
-- (whose kernel buffers then fill and slow the sender down) instead of buffering without
-- bound. Memory per connection pair: at most the mark plus one read. A half-close is passed
-- on as in examples/proxy.lua: at one side's end of stream the other is shut down after its
-- pending output (conn:shutdown) and its answer still flows back; a failure closes both.
--   build/hotsock serve scripts/echo.lua --listen tcp://127.0.0.1:7000 &
--   build/hotsock serve examples/proxy_receive.lua --set upstream=tcp://127.0.0.1:7000
--   nc 127.0.0.1 7011          (each line typed comes back through the upstream)
local hotsock = require "hotsock"
local opts = ...
local upstream = (opts or {}).upstream or "tcp://127.0.0.1:7000"

-- Copies from src to dst until src ends or fails. At src's end of stream (src still open)
-- dst is shut down after its pending output; otherwise both close. Returns true at the end
-- of stream.
local function pump(src, dst)
  while dst:flush() do -- false: dst closed, nowhere to copy to
    local data, _, partial = src:receive()
    if not data then
      if not src:is_closed() and (partial == "" or dst:send(partial)) then
        dst:shutdown()
        return true
      end
      break
    end
    if not dst:send(data) then break end
  end
  src:close()
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
    local client = hotsock.spawn(pump, conn, up) -- client -> upstream, in a coroutine of its own
    -- upstream -> client, in this one; after the upstream's end the client may still send
    -- until it ends too, which this coroutine waits for. The client conn closes after its
    -- pending output when handle returns.
    if pump(up, conn) then
      client:wait()
    end
    up:close()
  end,
}
