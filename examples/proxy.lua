-- A TCP proxy: each client gets its own upstream connection, and bytes flow both ways through
-- conn:pipe, which moves them in C (written to the other side at once from the block they were
-- read into, or that block moves to its output) with no script call per read, as HAProxy's
-- TCP mode and nginx's stream proxy do. Flow control is the pipe's: while one side's unsent
-- output is over the high-water mark (1 MiB by default) the pipe stops reading from the other
-- side (whose kernel buffers then fill and slow its sender down), and reads again once that
-- output falls to the low-water mark (256 KiB). Memory per connection pair: at most the high
-- mark plus one read (64 KiB) each way. examples/proxy_receive.lua is the same proxy written
-- with receive/send/flush, for a script that must look at the bytes.
-- A half-close is passed on, as those proxies do: when one side ends its sending (a client
-- that sends a request and then shuts down its write side, `printf ... | nc -N`), the other
-- side is shut down after its pending output (conn:shutdown) and its answer keeps flowing back
-- until it ends too. A reset or failure on either side closes both.
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
    -- client -> upstream, in a coroutine of its own: at the client's end of stream the
    -- upstream is shut down after its pending output (it still answers); on a failure both
    -- close.
    local client = hotsock.spawn(function()
      if conn:pipe(up) then
        up:shutdown()
      else
        up:close()
        conn:close()
      end
    end)
    -- upstream -> client, in this one: at the upstream's end of stream the client is shut
    -- down likewise and may still send until it ends too, which this coroutine waits for
    -- (only a half-closed pair waits here). The client conn closes after its pending output
    -- when handle returns.
    if up:pipe(conn) and not client:done() then
      conn:shutdown()
      client:wait()
    end
    up:close()
  end,
}
