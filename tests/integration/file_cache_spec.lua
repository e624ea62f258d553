-- The file cache behind res:send_file (core/file_cache.c) seen from a client of
-- scripts/http.lua: a file is served as it was for at most a second after it changes (renamed
-- over, rewritten, truncated, grown, deleted, swapped for a link leading out), conditionals,
-- HEAD and Range answer from the cache as from the file, and a directory of many files holds a
-- bounded number of descriptors. The waits are the cache's validity (1 s), the behaviour
-- under test, not a readiness guess.
local hs = require "hotsock.testkit"
local socket = require "socket"

local VALID = 1.2 -- seconds: HS_FILE_CACHE_VALID_MS and the coarse clock's few milliseconds

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Replaces path through a new file renamed over it (a new inode), as deployments do.
local function replace(path, data)
  write_file(path .. ".new", data)
  assert(os.rename(path .. ".new", path))
end

-- One response from c: status, headers (lowercase names), body (by Content-Length; none for
-- HEAD and 304).
local function response(c, head)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local r = { status = tonumber(line:match("^HTTP/1%.1 (%d+)")), headers = {} }
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    r.headers[k:lower()] = v
  end
  local n = tonumber(r.headers["content-length"]) or 0
  if head or r.status == 304 or n == 0 then
    r.body = ""
  else
    local body, berr, partial = c:receive(n)
    r.body, r.err = body or partial, berr
  end
  return r
end

local function get(srv, path, headers, method)
  local c = srv:tcp()
  c:settimeout(10)
  local h = ""
  for k, v in pairs(headers or {}) do h = h .. k .. ": " .. v .. "\r\n" end
  assert(c:send(("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n"):format(
    method or "GET", path, h)))
  local r = assert(response(c, method == "HEAD"))
  c:close()
  return r
end

local function fill(ch, n) return ch:rep(n) end

describe("http file cache", function()
  local root, outside, srv
  before_each(function()
    root, outside = hs.tmpdir(), hs.tmpdir()
    srv = hs.start("scripts/http.lua", { set = { root = root } })
  end)
  after_each(function()
    assert.is_true(srv:stop())
    assert.equals(0, srv:wait_exit(5), srv:log())
    assert.not_matches("Sanitizer", srv:log())
    hs.run("rm -rf " .. hs.shquote(root) .. " " .. hs.shquote(outside))
  end)

  it("serves a file renamed over, rewritten, truncated, grown or deleted as it is now, a second on",
    function()
      -- small.bin is kept in memory, large.bin (over 16 KiB) as an open descriptor.
      local sizes = { ["small.bin"] = 1024, ["large.bin"] = 100 * 1024 }
      for name, n in pairs(sizes) do write_file(root .. "/" .. name, fill("a", n)) end
      local last = {}
      for name, n in pairs(sizes) do
        local r = get(srv, "/" .. name)
        assert.equals(200, r.status)
        assert.equals(fill("a", n), r.body)
        last[name] = r.headers.etag
      end
      local steps = {
        { "renamed over", function(p, n) replace(p, fill("b", n)) return fill("b", n) end },
        { "rewritten in place", function(p, n) write_file(p, fill("c", n)) return fill("c", n) end },
        { "truncated", function(p, n)
            assert(hs.run(("truncate -s %d %s"):format(n // 2, hs.shquote(p))))
            return fill("c", n // 2)
          end },
        { "grown", function(p, n)
            local f = assert(io.open(p, "ab"))
            f:write(fill("d", n))
            f:close()
            return fill("c", n // 2) .. fill("d", n)
          end },
      }
      for _, step in ipairs(steps) do
        local want = {}
        for name, n in pairs(sizes) do want[name] = step[2](root .. "/" .. name, n) end
        socket.sleep(VALID)
        for name in pairs(sizes) do
          local r = get(srv, "/" .. name)
          assert.equals(200, r.status, step[1] .. " " .. name)
          assert.equals(#want[name], tonumber(r.headers["content-length"]), step[1] .. " " .. name)
          assert.is_true(r.body == want[name], step[1] .. " " .. name .. ": wrong body")
          assert.are_not.equal(last[name], r.headers.etag, step[1] .. " " .. name)
          last[name] = r.headers.etag
        end
      end
      for name in pairs(sizes) do assert(os.remove(root .. "/" .. name)) end
      socket.sleep(VALID)
      for name in pairs(sizes) do assert.equals(404, get(srv, "/" .. name).status, name) end
    end)

  it("within the second, a small file renamed over is served whole, old or new, never mixed",
    function()
      write_file(root .. "/f.txt", fill("a", 1000))
      assert.equals(fill("a", 1000), get(srv, "/f.txt").body)
      replace(root .. "/f.txt", fill("b", 2000))
      local r = get(srv, "/f.txt")
      assert.is_true(r.body == fill("a", 1000) or r.body == fill("b", 2000))
      assert.equals(#r.body, tonumber(r.headers["content-length"]))
    end)

  it("answers HEAD, Range and conditionals from the cache on one kept-alive connection", function()
    for _, n in ipairs { 1024, 100 * 1024 } do
      local body = {}
      for i = 1, n // 8 do body[i] = ("%07d\n"):format(i) end
      body = table.concat(body)
      write_file(root .. "/r.bin", body)
      socket.sleep(VALID) -- the previous round's entry is checked again
      local c = srv:tcp()
      c:settimeout(10)
      local function ask(method, headers)
        local h = ""
        for k, v in pairs(headers or {}) do h = h .. k .. ": " .. v .. "\r\n" end
        assert(c:send(("%s /r.bin HTTP/1.1\r\nHost: t\r\n%s\r\n"):format(method, h)))
        return assert(response(c, method == "HEAD"))
      end
      local full = ask("GET")
      assert.equals(body, full.body)
      local head = ask("HEAD")
      assert.equals(200, head.status)
      assert.equals(tostring(n), head.headers["content-length"])
      assert.equals(full.headers.etag, head.headers.etag)
      assert.equals(full.headers["last-modified"], head.headers["last-modified"])
      local part = ask("GET", { Range = "bytes=8-23" })
      assert.equals(206, part.status)
      assert.equals(("bytes 8-23/%d"):format(n), part.headers["content-range"])
      assert.equals(body:sub(9, 24), part.body)
      local tail = ask("GET", { Range = "bytes=-5" })
      assert.equals(body:sub(-5), tail.body)
      assert.equals(416, ask("GET", { Range = ("bytes=%d-"):format(n) }).status)
      assert.equals(304, ask("GET", { ["If-None-Match"] = full.headers.etag }).status)
      assert.equals(304, ask("GET", { ["If-Modified-Since"] = full.headers["last-modified"] }).status)
      assert.equals(200, ask("GET", { ["If-None-Match"] = '"other"' }).status)
      c:close()
    end
  end)

  it("refuses a file swapped for a link leading out of the root, a second on", function()
    write_file(outside .. "/secret.txt", "TOP SECRET\n")
    write_file(root .. "/page.txt", "page\n")
    assert.equals("page\n", get(srv, "/page.txt").body)
    assert(os.remove(root .. "/page.txt"))
    assert(hs.run(("ln -s %s %s"):format(hs.shquote(outside .. "/secret.txt"),
      hs.shquote(root .. "/page.txt"))))
    socket.sleep(VALID)
    local r = get(srv, "/page.txt")
    assert.equals(403, r.status)
    assert.not_matches("SECRET", r.body)
  end)

  it("closes the descriptor of a file unused for 10 s, so a deleted file's space is freed", function()
    write_file(root .. "/big.bin", fill("z", 50000))
    assert.equals(50000, #get(srv, "/big.bin").body)
    assert(os.remove(root .. "/big.bin"))
    local deleted = function()
      return hs.run("ls -l /proc/" .. srv.pid .. "/fd 2>/dev/null"):find("big.bin", 1, true)
    end
    assert.truthy(deleted())
    -- HS_FILE_CACHE_IDLE_MS (10 s), swept every quarter of it.
    hs.wait_until(function()
      socket.sleep(0.2) -- a look costs a process: not more than five a second
      return not deleted()
    end, 15, "the deleted file's descriptor to close")
  end)

  it("holds a bounded number of descriptors for a directory of many files", function()
    local large, small = 300, 300
    for i = 1, large do write_file(("%s/l%03d.bin"):format(root, i), fill(string.char(65 + i % 26), 20000)) end
    for i = 1, small do write_file(("%s/s%03d.txt"):format(root, i), ("small %d\n"):format(i)) end
    local before = srv:fd_count()
    local c = srv:tcp()
    c:settimeout(10)
    for i = 1, large do
      assert(c:send(("GET /l%03d.bin HTTP/1.1\r\nHost: t\r\n\r\n"):format(i)))
      local r = assert(response(c))
      assert.equals(200, r.status)
      assert.is_true(r.body == fill(string.char(65 + i % 26), 20000), "body of l" .. i)
    end
    -- The cache keeps at most 64 descriptors (HS_FILE_CACHE_FDS); the client's connection and
    -- the root directory (opened once a second for openat2) are two more.
    local held = srv:fd_count() - before
    assert.is_true(held <= 64 + 2, "descriptors held: " .. held)
    assert.is_true(held > 1, "descriptors held: " .. held)
    -- Small files are kept in memory: they take the place of the large ones, not more fds.
    for i = 1, small do
      assert(c:send(("GET /s%03d.txt HTTP/1.1\r\nHost: t\r\n\r\n"):format(i)))
      assert.equals(("small %d\n"):format(i), assert(response(c)).body)
    end
    assert.is_true(srv:fd_count() - before <= held)
    c:close()
  end)

  it("puts the script's header lines, none, one or several, before the file's", function()
    write_file(root .. "/h.txt", "hello\n")
    local script = root .. "/../headers.lua"
    write_file(script, [[
      local root = (...).root
      local opts = { root = root }
      return {
        protocol = "http", listen = "tcp://127.0.0.1:0",
        on_request = function(req, res)
          local n = tonumber(req.path:match("^/(%d)/"))
          if n >= 1 then res:header("Content-Type", "text/plain") end
          if n >= 2 then res:header("Cache-Control", "max-age=60") res:header("X-Two", "2") end
          res:send_file(root .. req.path:sub(3), opts)
        end,
      }]])
    local hsrv = hs.start(script, { set = { root = root } })
    for n = 0, 2 do
      local r = get(hsrv, ("/%d/h.txt"):format(n))
      assert.equals(200, r.status)
      assert.equals("hello\n", r.body)
      assert.equals(n >= 1 and "text/plain" or nil, r.headers["content-type"])
      assert.equals(n >= 2 and "max-age=60" or nil, r.headers["cache-control"])
      assert.equals(n >= 2 and "2" or nil, r.headers["x-two"])
      assert.truthy(r.headers.etag)
      assert.truthy(r.headers["last-modified"])
      assert.equals("6", r.headers["content-length"])
    end
    assert.is_true(hsrv:stop())
    os.remove(script)
  end)
end)
