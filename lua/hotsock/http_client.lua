--- A small HTTP/1.1 client for hotsock handlers, built on hotsock.connect, conn:receive and the
--- core's response parser (hotsock.parse_response): every call waits in the handler's
--- coroutine, so it works wherever a handler may wait.
---
---   local http = require "hotsock.http_client"
---   local res, err = http.request("http://127.0.0.1:8080/hello", { timeout = 2 })
---   if res then print(res.status, res.headers["content-type"], res.body) end
---   local res2 = http.request("http://127.0.0.1:8080/echo", { method = "POST", body = "hi" })
---   local res3 = http.request("https://localhost:8443/hello", { ca = "ca.pem" })
---
--- https:// URLs go over hotsock.connect("tls://...") with the options verify (default
--- true: the certificate is checked against the system store, or against ca), ca and sni
--- (default: the URL's host name); a failed check is err "certificate verify failed: REASON".
--- Results: a table { status, reason, version, headers (lowercase names; repeated fields
--- joined with ", "), body } or nil, err, detail. err is a short token: hotsock.connect's
--- ("connection refused", "timeout", "no such host", ...), "timeout" (no answer in time),
--- "closed" (the server closed before a complete response), "bad response" (detail: what was
--- wrong, e.g. "bare LF" or "bad chunk size"), "body too large", "unsupported url".
--- The connection goes back to the pool for its host (conn:keepalive) after a complete
--- response that allows it, so the next request to the same host reuses it.
local hotsock = require "hotsock"

local M = {}

local DEFAULT_TIMEOUT = 10            -- seconds: the connect, and each wait for the server
local DEFAULT_MAX_BODY = 8 * 1024 * 1024 -- bytes of a response body
local MAX_CHUNK_LINE = 1024           -- bytes of a chunk-size line
local MAX_TRAILER = 4096              -- bytes of trailer fields

-- Methods that may be sent again when a kept connection turns out closed before any answer.
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

--- Splits "http://host[:port][/path]" (or https://) into the upstream's tcp:// (tls://) URL,
--- the Host field and the request target. Returns nil for anything else.
function M.parse_url(url)
  local scheme, authority, target = url:match("^([hH][tT][tT][pP][sS]?)://([^/?#]+)([^#]*)")
  if not authority then return nil end
  local tls = #scheme == 5
  local default_port = tls and "443" or "80"
  local host, port = authority:match("^(%[[%x:.]+%])(.*)$")
  if not host then host, port = authority:match("^([^:%[%]]+)(.*)$") end
  if not host then return nil end
  if port == "" then
    port = default_port
  else
    port = port:match("^:(%d+)$")
    if not port or tonumber(port) < 1 or tonumber(port) > 65535 then return nil end
  end
  if target == "" then target = "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  local host_field = port == default_port and host or host .. ":" .. port
  return (tls and "tls://" or "tcp://") .. host .. ":" .. port, host_field, target
end

-- Buffered reads over conn: bytes already received wait in self.buf.
local Reader = {}
Reader.__index = Reader

-- Appends the next bytes the server sends. Returns true, or nil, err ("closed", "timeout").
function Reader:fill()
  local data, err = self.conn:receive()
  if not data then return nil, err end
  self.buf = self.buf .. data
  return true
end

-- Takes exactly n bytes.
function Reader:take(n)
  while #self.buf < n do
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
  local s = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return s
end

-- Takes one CRLF-terminated line (without its CRLF), at most max bytes.
function Reader:line(max)
  local from = 1
  while true do
    local at = self.buf:find("\r\n", from, true)
    if at then
      local s = self.buf:sub(1, at - 1)
      self.buf = self.buf:sub(at + 2)
      if #s > max then return nil, "bad response", "line too long" end
      return s
    end
    if #self.buf > max + 1 then return nil, "bad response", "line too long" end
    from = math.max(1, #self.buf)
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- The head of the response (interim 1xx responses are skipped). Returns res, or nil, err,
-- detail.
local function read_head(r, head_request)
  local last = 0
  while true do
    local n, res = hotsock.parse_response(r.buf, last, head_request)
    if n == nil then return nil, "bad response", res end
    if n > 0 then
      r.buf = r.buf:sub(n + 1)
      last = 0
      if res.status >= 200 or res.status == 101 then return res end
    else
      last = #r.buf
      local ok, err = r:fill()
      if not ok then return nil, err end
      r.got = true
    end
  end
end

local function read_chunked(r, max_body)
  local parts, total = {}, 0
  while true do
    local line, err, detail = r:line(MAX_CHUNK_LINE)
    if not line then return nil, err, detail end
    local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)$")
    if not hex or #hex > 13 then return nil, "bad response", "bad chunk size" end
    local size = tonumber(hex, 16)
    if size == 0 then break end
    total = total + size
    if total > max_body then return nil, "body too large" end
    local data, derr = r:take(size + 2)
    if not data then return nil, derr end
    if data:sub(-2) ~= "\r\n" then return nil, "bad response", "no CRLF after chunk data" end
    parts[#parts + 1] = data:sub(1, -3)
  end
  local trailer = 0
  while true do
    local line, err, detail = r:line(MAX_TRAILER)
    if not line then return nil, err, detail end
    if line == "" then break end
    trailer = trailer + #line + 2
    if trailer > MAX_TRAILER then return nil, "bad response", "trailers too large" end
  end
  return table.concat(parts)
end

local function read_body(r, res, max_body)
  if res.body == "none" then return "" end
  if res.body == "length" then
    if res.length > max_body then return nil, "body too large" end
    return r:take(res.length)
  end
  if res.body == "chunked" then return read_chunked(r, max_body) end
  -- Delimited by the close.
  while true do
    if #r.buf > max_body then return nil, "body too large" end
    local ok, err = r:fill()
    if not ok then
      if err == "closed" then
        local body = r.buf
        r.buf = ""
        return body
      end
      return nil, err
    end
  end
end

local function check_field(s, what)
  if s:find("[\r\n\0]") then
    error(("bad %s %q: CR, LF or NUL"):format(what, s), 4)
  end
end

-- The request's bytes.
local function encode(method, host, target, opts)
  local out = { method, " ", target, " HTTP/1.1\r\n" }
  local have = {}
  for name, value in pairs(opts.headers or {}) do
    name, value = tostring(name), tostring(value)
    check_field(name, "header name")
    check_field(value, "header value")
    have[name:lower()] = true
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  if not have.host then out[#out + 1] = "Host: " .. host .. "\r\n" end
  if not have["user-agent"] then out[#out + 1] = "User-Agent: hotsock\r\n" end
  if opts.keepalive == false and not have.connection then
    out[#out + 1] = "Connection: close\r\n"
  end
  local body = opts.body
  if not have["content-length"] and
    (body or method == "POST" or method == "PUT" or method == "PATCH") then
    out[#out + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  return table.concat(out)
end

-- One exchange on a fresh or kept connection. The fourth result is true when the connection
-- turned out closed before any byte of an answer (a kept connection the server had dropped).
local function exchange(upstream, host, target, method, opts)
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local copts = { timeout = timeout }
  if upstream:sub(1, 6) == "tls://" then
    copts.verify, copts.ca, copts.sni = opts.verify, opts.ca, opts.sni
  end
  local conn, err = hotsock.connect(upstream, copts)
  if not conn then return nil, err end
  conn:settimeout(timeout)
  local ok, serr = conn:send(encode(method, host, target, opts))
  if not ok then
    conn:close()
    return nil, serr, nil, serr == "closed"
  end
  local r = setmetatable({ conn = conn, buf = "", got = false }, Reader)
  local res, herr, detail = read_head(r, method == "HEAD")
  if not res then
    conn:close()
    return nil, herr, detail, herr == "closed" and not r.got and r.buf == ""
  end
  local body, berr, bdetail = read_body(r, res, opts.max_body or DEFAULT_MAX_BODY)
  if not body then
    conn:close()
    return nil, berr, bdetail
  end
  res.body = body
  res.length = nil
  -- Bytes after the response mean the two sides are out of step: never reuse that.
  if res.keep_alive and opts.keepalive ~= false and r.buf == "" then
    if not conn:keepalive(opts.keepalive_idle, opts.pool_size) then conn:close() end
  else
    conn:close()
  end
  res.keep_alive = nil
  return res
end

--- Sends one request and reads its response. url: "http[s]://host[:port][/path][?query]".
--- opts: method (default "GET", or "POST" when there is a body), headers (name -> value),
--- body (string), timeout (seconds for the connect and for each wait; default 10),
--- max_body (bytes; default 8 MiB), keepalive (false: close after the response),
--- keepalive_idle and pool_size (as for conn:keepalive); for https://, verify, ca and sni (as
--- for hotsock.connect).
--- Returns the response table, or nil, err, detail (see the top of this file).
function M.request(url, opts)
  if type(url) ~= "string" then error("bad argument #1 to 'request' (string expected)", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'request' (table expected)", 2) end
  if opts.body ~= nil and type(opts.body) ~= "string" then
    error("bad option 'body' to 'request' (string expected)", 2)
  end
  local upstream, host, target = M.parse_url(url)
  if not upstream then return nil, "unsupported url", url end
  local method = opts.method or (opts.body and "POST" or "GET")
  if not method:match("^[%w!#$%%&'*+.^_`|~-]+$") then
    error(("bad method %q"):format(method), 2)
  end
  local res, err, detail, stale = exchange(upstream, host, target, method, opts)
  if not res and stale and IDEMPOTENT[method] then
    res, err, detail = exchange(upstream, host, target, method, opts)
  end
  return res, err, detail
end

return M
