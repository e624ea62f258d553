-- The cluster example's line protocol, behind HAProxy's TCP frontend (send-proxy-v2 to a
-- ?proxy listener, so conn:peer() is the client, not HAProxy):
--   who        -> "you are IP:PORT on NAME"
--   incr       -> the shared counter's new value, or "ERR rate limited" past the limit
--   anything else is echoed back.
-- --set redis=tcp://HOST:PORT  limit=N window=SECONDS (per client address)  name=ID
local shared = require "shared"
local app = shared.new(...)

return {
  framing = "line",
  on_message = function(conn, line)
    if line == "who" then
      return conn:send("you are ", conn:peer(), " on ", app.name, "\n")
    elseif line == "incr" then
      local ok, err = app.allow(app.ip(conn:peer()))
      if ok == nil then return conn:send("ERR ", err, "\n") end
      if not ok then return conn:send("ERR rate limited\n") end
      local n, ierr = app.incr()
      if not n then return conn:send("ERR ", ierr, "\n") end
      return conn:send(n, "\n")
    end
    conn:send(line, "\n")
  end,
}
