-- The cluster example's HTTP service, behind HAProxy's HTTP frontend (send-proxy-v2 to a
-- ?proxy listener, so req.ip is the client, not HAProxy):
--   GET /healthz   -> "ok" (HAProxy's health check for both backends)
--   GET /hello     -> "hello"
--   GET /who       -> "you are IP on NAME"
--   POST /incr     -> the shared counter's new value (the TCP service's "incr", same counter
--                     and same per-address limit in Redis); 429 past the limit
--   GET /counter   -> the counter's value
-- Each answer names the instance that served it in an X-Instance header.
-- --set redis=tcp://HOST:PORT  limit=N window=SECONDS (per client address)  name=ID
local shared = require "shared"
local app = shared.new(...)

-- Redis answered n, or failed (a transport error: 503; a rate limit: 429).
local function answer(res, n, err)
  if n then return res:send(n .. "\n") end
  res:status(err == "rate limited" and 429 or 503)
  res:send(err .. "\n")
end

return {
  protocol = "http",
  on_request = function(req, res)
    res:header("Content-Type", "text/plain")
    res:header("X-Instance", app.name)
    if req.path == "/healthz" then
      res:header("Cache-Control", "no-store")
      return res:send("ok\n")
    elseif req.path == "/hello" then
      return res:send("hello\n")
    elseif req.path == "/who" then
      return res:send("you are " .. req.ip .. " on " .. app.name .. "\n")
    elseif req.path == "/incr" and req.method == "POST" then
      -- Waits for Redis (twice: the limit, then the counter); other requests go on meanwhile.
      return answer(res, app.limited_incr(req.ip))
    elseif req.path == "/counter" then
      return answer(res, app.count())
    end
    res:status(404)
    res:send("not found\n")
  end,
}
