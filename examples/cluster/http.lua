-- The cluster example's HTTP service, behind HAProxy's HTTP frontend (send-proxy-v2 to a
-- ?proxy listener, so req.ip is the client, not HAProxy):
--   GET /healthz  -> "ok" (HAProxy's health check for both backends)
--   GET /hello    -> "hello"
--   GET /who      -> "you are IP on NAME"
-- The counter and the rate limit are on the TCP service (tcp.lua): an on_request that waits
-- (for Redis) is not supported yet.
-- --set name=ID
local opts = ... or {}
local name = opts.name or "hotsock"

return {
  protocol = "http",
  on_request = function(req, res)
    res:header("Content-Type", "text/plain")
    if req.path == "/healthz" then
      res:header("Cache-Control", "no-store")
      return res:send("ok\n")
    elseif req.path == "/hello" then
      return res:send("hello\n")
    elseif req.path == "/who" then
      return res:send("you are " .. req.ip .. " on " .. name .. "\n")
    end
    res:status(404)
    res:send("not found\n")
  end,
}
