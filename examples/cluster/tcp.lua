-- The cluster example's line protocol, behind HAProxy's TCP frontend (send-proxy-v2 to a
-- ?proxy listener, so conn:peer() is the client, not HAProxy):
--   who             -> "you are IP:PORT on NAME"
--   incr            -> the shared counter's new value, or "ERR rate limited" past the limit
--   sub CHANNEL     -> "subscribed CHANNEL"; then every message published on CHANNEL, on any
--                      instance (run.sh starts each with --pubsub redis://...), arrives as
--                      "CHANNEL: MESSAGE"
--   pub CHANNEL MESSAGE -> publishes MESSAGE to the subscribers of every instance; "published"
--   anything else is echoed back.
-- --set redis=tcp://HOST:PORT  limit=N window=SECONDS (per client address)  name=ID
local hotsock = require "hotsock"
local shared = require "shared"
local app = shared.new(...)

return {
  framing = "line",
  on_message = function(conn, line)
    local cmd, rest = line:match("^(%l+) ?(.*)$")
    if line == "who" then
      return conn:send("you are ", conn:peer(), " on ", app.name, "\n")
    elseif line == "incr" then
      local n, err = app.limited_incr(app.ip(conn:peer()))
      return conn:send(n or ("ERR " .. err), "\n")
    elseif cmd == "sub" and rest:match("^%S+$") and #rest <= 255 then
      local subs = conn.ctx.subs or {}
      conn.ctx.subs = subs
      subs[#subs + 1] = hotsock.subscribe(rest, function(msg, channel)
        conn:send(channel, ": ", msg, "\n")
      end)
      return conn:send("subscribed ", rest, "\n")
    elseif cmd == "pub" then
      local channel, msg = rest:match("^(%S+) (.*)$")
      if channel and #channel <= 255 then
        local ok, err = hotsock.publish(channel, msg)
        return conn:send(ok and "published" or ("ERR " .. err), "\n")
      end
    end
    conn:send(line, "\n")
  end,
  on_close = function(conn)
    for _, s in ipairs(conn.ctx.subs or {}) do s:cancel() end
  end,
}
