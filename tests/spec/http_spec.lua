-- scripts/http.lua's routes against a pure-Lua double of req and res (the real ones are C:
-- core/lua_http.c). The double keeps the same rules: one finish per response, misuse raises,
-- send_file returns nil, "not found" | "is a directory" without starting the response.
local fake = require "fake_conn"

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

local Res = {}
Res.__index = Res

local function new_res()
  return setmetatable({ code = 200, headers = {}, finished = false }, Res)
end

function Res:check()
  if self.finished then error("response already finished", 3) end
end

function Res:status(code)
  self:check()
  assert(math.type(code) == "integer" and code >= 200 and code <= 599, "status must be 200..599")
  self.code = code
  return true
end

function Res:header(name, value)
  self:check()
  assert(name:lower() ~= "content-length", "set by hotsock")
  self.headers[name:lower()] = value
  return true
end

function Res:send(body)
  self:check()
  self.body, self.finished = body or "", true
  return true
end

function Res:send_file(path, opts)
  self:check()
  assert(opts and opts.root, "the script always passes its root")
  local f = io.open(path, "rb")
  if not f then return nil, "not found" end
  local data, _, code = f:read("a")
  f:close()
  if not data and code == 21 then return nil, "is a directory" end
  self.body, self.file, self.finished = data, path, true
  return true
end

local function new_req(method, path, fields)
  local req = { method = method, path = path, target = path, query = "", version = "1.1",
    headers = {}, body = "", peer = "127.0.0.1:50000" }
  for k, v in pairs(fields or {}) do req[k] = v end
  function req:pipe_body(file, done, max)
    assert(type(done) == "function")
    self.piped = { file = file, done = done, max = max }
    return true
  end
  return req
end

describe("scripts/http.lua", function()
  local root, uploads, http, hs
  setup(function()
    root, uploads = tmpdir(), tmpdir()
    os.execute("cp -R examples/www/. '" .. root .. "' && mkdir '" .. root .. "/sub'")
    http, hs = fake.load_script("scripts/http.lua", { root = root, upload_dir = uploads,
      header_timeout = "2", max_body = "1000" })
  end)
  teardown(function() os.execute("rm -rf '" .. root .. "' '" .. uploads .. "'") end)

  local function run(method, path, fields)
    local req, res = new_req(method, path, fields), new_res()
    http.on_request(req, res)
    return res, req
  end

  it("declares HTTP on 127.0.0.1:8080 and passes its limits to the core", function()
    assert.equals("http", http.protocol)
    assert.equals("tcp://127.0.0.1:8080", http.listen)
    assert.equals(2, http.http.header_timeout)
    assert.equals(1000, http.http.max_body)
    assert.is_nil(http.http.body_timeout)
  end)

  it("serves / as index.html and picks Content-Type by extension", function()
    local res = run("GET", "/")
    assert.equals(root .. "/index.html", res.file)
    assert.equals("text/html; charset=utf-8", res.headers["content-type"])
    assert.equals("image/jpeg", run("GET", "/test.jpg").headers["content-type"])
    assert.equals("image/x-icon", run("HEAD", "/favicon.ico").headers["content-type"])
  end)

  it("404 for a missing file, 301 to the slash for a directory, 405 with Allow", function()
    local res = run("GET", "/missing.txt")
    assert.equals(404, res.code)
    assert.equals("text/plain; charset=utf-8", res.headers["content-type"])
    res = run("GET", "/sub", { query = "a=1" })
    assert.equals(301, res.code)
    assert.equals("/sub/?a=1", res.headers.location)
    res = run("DELETE", "/index.html")
    assert.equals(405, res.code)
    assert.equals("GET, HEAD", res.headers.allow)
    res = run("GET", "/echo")
    assert.equals("POST", res.headers.allow)
    assert.equals("PUT", run("POST", "/upload/a").headers.allow)
  end)

  it("GET and HEAD /hello, POST /echo", function()
    assert.equals("hello from hotsock\n", run("GET", "/hello").body)
    assert.equals("hello from hotsock\n", run("HEAD", "/hello").body) -- the core drops it
    local res = run("POST", "/echo", { body = "ping", headers = { ["content-type"] = "text/x" } })
    assert.equals("ping", res.body)
    assert.equals("text/x", res.headers["content-type"])
  end)

  it("streams only PUT /upload/NAME bodies", function()
    assert.is_true(http.stream_body(new_req("PUT", "/upload/a.txt")))
    assert.is_false(http.stream_body(new_req("POST", "/echo")))
    assert.is_false(http.stream_body(new_req("PUT", "/upload/a/b")))
  end)

  it("PUT /upload/NAME pipes the body into a safe file and answers 201 with JSON", function()
    local res, req = run("PUT", "/upload/note.txt", { body = nil })
    assert.is_false(res.finished)
    assert.equals(0x7fffffff, req.piped.max)
    assert(req.piped.file:write("hello"))
    req.piped.done(5)
    assert.equals(201, res.code)
    assert.equals("application/json", res.headers["content-type"])
    assert.equals('{"bytes": 5, "sha256": ' ..
      '"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}\n', res.body)
    local f = assert(io.open(uploads .. "/note.txt", "rb"))
    assert.equals("hello", f:read("a"))
    f:close()
  end)

  it("a failed or refused upload leaves no file", function()
    local res, req = run("PUT", "/upload/cut.txt", { body = nil })
    req.piped.file:write("par")
    req.piped.done(nil, "closed")
    assert.equals(500, res.code)
    assert.is_nil(io.open(uploads .. "/cut.txt", "rb"))
    res, req = run("PUT", "/upload/big.bin", { body = nil })
    req.piped.done(nil, "body too large")
    assert.equals(413, res.code)
    res = run("PUT", "/upload/..", { body = nil })
    assert.equals(400, res.code)
    assert.matches("bad file name", hs.logs[#hs.logs], 1, true)
  end)
end)
