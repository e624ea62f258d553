-- http_proxy: an HTTP front whose /proxy/... route fetches from an upstream HTTP server with
-- the client in lua/hotsock/http_client.lua (run with LUA_PATH='lua/?.lua;;' from the source
-- tree), e.g. in front of scripts/http.lua:
--
--   hotsock scripts/http.lua --listen tcp://127.0.0.1:8080 &
--   LUA_PATH='lua/?.lua;;' hotsock examples/http_proxy.lua --listen tcp://127.0.0.1:8081 \
--     --set upstream=http://127.0.0.1:8080
--   curl http://127.0.0.1:8081/proxy/hello        # scripts/http.lua's /hello
--
-- GET /proxy/P (and HEAD, POST with its body) is sent upstream as P with the same query; the
-- answer's status, Content-Type and body come back. When the upstream cannot be reached, does
-- not answer within `timeout` seconds or answers something malformed, the client gets a 502
-- and the reason goes to the log. Other paths get 404. Options (--set KEY=VALUE): upstream
-- (default http://127.0.0.1:8080; https://HOST:PORT fetches over TLS, checked against the
-- system's CAs or against `ca`), timeout (seconds, default 5), ca (a PEM file of CAs for an
-- https:// upstream).
local hotsock = require "hotsock"
local http = require "hotsock.http_client"

local opts = ... or {}
local upstream = (opts.upstream or "http://127.0.0.1:8080"):gsub("/+$", "")
local timeout = tonumber(opts.timeout) or 5
local ca = opts.ca

-- Request fields passed on to the upstream, and answer fields passed back.
local PASS_UP = { "content-type", "accept", "range" }
local PASS_DOWN = { "content-type", "content-range", "last-modified", "etag", "location" }

local function text(res, status, body)
  res:status(status)
  res:header("Content-Type", "text/plain; charset=utf-8")
  res:send(body)
end

return {
  name = "http_proxy",
  protocol = "http",
  listen = "tcp://127.0.0.1:8081",

  on_request = function(req, res)
    local rest = req.path:match("^/proxy(/.*)$")
    if not rest then return text(res, 404, "not found\n") end
    if req.method ~= "GET" and req.method ~= "HEAD" and req.method ~= "POST" then
      res:header("Allow", "GET, HEAD, POST")
      return text(res, 405, "method not allowed\n")
    end
    local headers = {}
    for _, name in ipairs(PASS_UP) do headers[name] = req.headers[name] end
    local url = upstream .. rest .. (req.query ~= "" and "?" .. req.query or "")
    local up, err, detail = http.request(url, {
      method = req.method, headers = headers, timeout = timeout, ca = ca,
      body = req.method == "POST" and req.body or nil,
    })
    if not up then
      hotsock.log("warn", ("%s: %s %s -> %s: %s%s"):format(req.peer, req.method, req.path, url,
        err, detail and " (" .. detail .. ")" or ""))
      return text(res, 502, "bad gateway: " .. err .. "\n")
    end
    res:status(up.status)
    for _, name in ipairs(PASS_DOWN) do
      if up.headers[name] then res:header(name, up.headers[name]) end
    end
    res:send(up.body)
  end,
}
