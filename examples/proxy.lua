-- A TCP proxy: each client gets its own upstream connection, and bytes flow both ways through
-- conn:pipe, which moves them in C (written to the other side at once from the block they were
-- read into, or that block moves to its output) with no script call per read, as HAProxy's
-- TCP mode and nginx's stream proxy do. Flow control is the pipe's: while one side's unsent
-- output is over the high-water mark (1 MiB by default) the pipe stops reading from the other
-- side (whose kernel buffers then fill and slow its sender down), and reads again once that
-- output falls to the low-water mark (256 KiB). Memory per connection pair: at most the high
-- mark plus one read (64 KiB) each way. examples/proxy_receive.lua is the same proxy written
-- with receive/send/flush, for a script that must look at the bytes.
--   build/hotsock serve scripts/echo.lua --listen tcp://127.0.0.1:7000 &
--   build/hotsock serve examples/proxy.lua --set upstream=tcp://127.0.0.1:7000
--   nc 127.0.0.1 7011          (each line typed comes back through the upstream)
local hotsock = require "hotsock"
local opts = ...
local upstream = (opts or {}).upstream or "tcp://127.0.0.1:7000"

return {
  listen = "tcp://127.0.0.1:7011",
  framing = "raw",
  handle = function(conn)
    local up, err = hotsock.connect(upstream)
    if not up then
      hotsock.log("warn", "upstream " .. upstream .. ": " .. err)
      return
    end
    -- upstream -> client, in a coroutine of its own: when the upstream closes (or fails), the
    -- client is closed after its pending output.
    hotsock.spawn(function()
      up:pipe(conn)
      conn:close()
    end)
    -- client -> upstream, in this one: when the client closes (or leaves), so does the upstream
    -- (after its pending output); the client conn closes as handle returns.
    conn:pipe(up)
    up:close()
  end,
}
