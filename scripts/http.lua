-- http: a static site plus a few dynamic routes (contract: docs/protocols.md). Copy it to
-- start your own.
--
-- The C core does the HTTP/1.x work: parsing and refusing bad requests (400, 413, 414, 431,
-- 501, 505), keep-alive and pipelining, timeouts (408), chunked encoding, HEAD, 100-continue
-- and the access log. This script only decides what each request gets:
--   GET/HEAD  /...           files under `root` (`/` and `dir/` serve index.html)
--   GET       /hello         a line of text
--   POST      /echo          the request body back
--   PUT       /upload/NAME   the body streamed into `upload_dir` as NAME; 201 with JSON
--
-- Options (--set KEY=VALUE): root (default examples/www, relative to the working directory),
-- upload_dir (default files), max_upload (bytes, default 2 GiB - 1), and the HTTP layer's
-- max_body (bytes read whole for on_request, default 8 MiB), header_timeout (seconds,
-- default 10), body_timeout (30) and keepalive_timeout (60).
local hotsock = require "hotsock"

local opts = ... or {}
local root = opts.root or "examples/www"
local upload_dir = opts.upload_dir or "files"
local max_upload = math.tointeger(tonumber(opts.max_upload)) or 0x7fffffff

local mime = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  xml = "application/xml", csv = "text/csv; charset=utf-8",
  jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png", gif = "image/gif",
  svg = "image/svg+xml", ico = "image/x-icon", webp = "image/webp", avif = "image/avif",
  bmp = "image/bmp", wasm = "application/wasm", pdf = "application/pdf",
  mp4 = "video/mp4", webm = "video/webm", mp3 = "audio/mpeg", ogg = "audio/ogg",
  wav = "audio/wav", woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf",
  otf = "font/otf", zip = "application/zip", gz = "application/gzip",
  tar = "application/x-tar",
}

-- Content-Type by extension, remembered per path: finding the extension with a pattern costs
-- more than the rest of a static request's Lua. The memo is emptied at 1,000 paths, so
-- requests for endless distinct paths cannot grow it.
local types, ntypes = {}, 0
local function content_type(path)
  local t = types[path]
  if t then return t end
  local ext = path:match("%.(%w+)$")
  t = ext and (mime[ext] or mime[ext:lower()]) or "application/octet-stream"
  if ntypes >= 1000 then types, ntypes = {}, 0 end
  types[path], ntypes = t, ntypes + 1
  return t
end

-- A short plain-text answer. (200 is the default status; no table is made when there are no
-- extra headers: /hello takes this path on every request.)
local function text(res, status, body, headers)
  if status ~= 200 then res:status(status) end
  res:header("Content-Type", "text/plain; charset=utf-8")
  if headers then
    for k, v in pairs(headers) do res:header(k, v) end
  end
  res:send(body)
end

-- send_file's options, made once rather than per request.
local file_opts = { root = root }

-- GET and HEAD of files under root. req.path is already percent-decoded and normalized by the
-- core (a path climbing out of the root never gets here: it is a 400); the root option of
-- send_file refuses symbolic links that lead outside the root.
local function static(req, res)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return text(res, 405, "method not allowed\n", { Allow = "GET, HEAD" })
  end
  local path = req.path
  if path:sub(-1) == "/" then path = path .. "index.html" end
  res:header("Content-Type", content_type(path))
  local ok, err = res:send_file(root .. path, file_opts)
  if ok or err == "closed" then return end
  if err == "is a directory" then
    -- /dir → /dir/, so that relative links inside its index.html work.
    local query = req.query ~= "" and "?" .. req.query or ""
    return text(res, 301, "moved\n", { Location = req.path .. "/" .. query })
  end
  if err == "permission denied" then return text(res, 403, "forbidden\n") end
  text(res, 404, "not found\n")
end

local function upload(req, res, name)
  local file, err = hotsock.create_file(upload_dir, name)
  if not file then
    hotsock.log("warn", ("%s: refused upload %q: %s"):format(req.peer, name, err))
    return text(res, 400, err .. "\n")
  end
  local ok, perr = req:pipe_body(file, function(bytes, berr)
    local sha
    if bytes then bytes, sha = file:commit() end
    if not bytes then
      file:abort()
      local e = berr or sha
      hotsock.log("warn", ("%s: upload %q not stored: %s"):format(req.peer, name, e))
      return text(res, e == "body too large" and 413 or 500, e .. "\n")
    end
    hotsock.log("info", ("%s: stored %q (%d bytes, sha256 %s)"):format(req.peer, name, bytes, sha))
    res:status(201)
    res:header("Content-Type", "application/json")
    res:send(('{"bytes": %d, "sha256": "%s"}\n'):format(bytes, sha))
  end, max_upload)
  if not ok then
    file:abort()
    text(res, perr == "body too large" and 413 or 500, perr .. "\n")
  end
end

-- Dynamic routes: method → exact path → handler(req, res). Add yours here.
local routes = {
  GET = {
    ["/hello"] = function(req, res)
      text(res, 200, "hello from hotsock\n")
    end,
  },
  POST = {
    ["/echo"] = function(req, res)
      res:header("Content-Type", req.headers["content-type"] or "application/octet-stream")
      res:send(req.body)
    end,
  },
}

-- Which method each dynamic path takes, for 405 answers.
local allow = {}
for method, paths in pairs(routes) do
  for path in pairs(paths) do
    if method == "GET" then method = "GET, HEAD" end
    allow[path] = allow[path] and allow[path] .. ", " .. method or method
  end
end

local function upload_name(req)
  return req.path:match("^/upload/([^/]+)$")
end

return {
  name = "http",
  protocol = "http",
  listen = "tcp://127.0.0.1:8080",

  http = {
    max_body = tonumber(opts.max_body),
    header_timeout = tonumber(opts.header_timeout),
    body_timeout = tonumber(opts.body_timeout),
    keepalive_timeout = tonumber(opts.keepalive_timeout),
  },

  -- Bodies are read whole into req.body before on_request, except where this says true:
  -- then on_request runs at once and reads the body itself (req:pipe_body), any size.
  stream_body = function(req)
    return req.method == "PUT" and upload_name(req) ~= nil
  end,

  on_request = function(req, res)
    -- The exact routes first: no pattern is matched on their way. /upload/ paths are none.
    local method, path = req.method, req.path
    local handler = routes[method] and routes[method][path]
      or method == "HEAD" and routes.GET[path] -- HEAD is GET without the body
    if handler then return handler(req, res) end
    local name = upload_name(req)
    if name then
      if method ~= "PUT" then return text(res, 405, "method not allowed\n", { Allow = "PUT" }) end
      return upload(req, res, name)
    end
    if allow[req.path] then
      return text(res, 405, "method not allowed\n", { Allow = allow[req.path] })
    end
    static(req, res)
  end,
}
