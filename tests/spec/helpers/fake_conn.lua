-- A pure-Lua double of hotsock's conn object and `hotsock` module for handler unit specs.
-- Same methods and the same closed-state behaviour as the real ones (see docs/lua-api.md):
-- I/O on a closed conn returns nil, "closed"; queries keep answering.
local M = {}

local Conn = {}
Conn.__index = Conn
Conn.__tostring = function(c)
  return c.closed and ("conn#%d (closed)"):format(c._id) or ("conn#%d %s"):format(c._id, c._peer)
end

local next_id = 0

function M.new(opts)
  opts = opts or {}
  next_id = next_id + 1
  return setmetatable({
    _id = next_id,
    _peer = opts.peer or "127.0.0.1:50000",
    _framing = opts.framing or "raw",
    ctx = {},
    sent = {},       -- every string passed to send, in order
    closed = false,
    close_reason = nil,
    paused = false,
    pipe = nil,      -- { file = f, done = fn, max = n } while a pipe_frame is armed
  }, Conn)
end

function Conn:send(...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if type(v) ~= "string" and type(v) ~= "number" then
      error(("bad argument #%d to 'send' (string expected, got %s)"):format(i, type(v)), 2)
    end
  end
  if self.closed or self.shut then return nil, "closed" end
  for i = 1, n do self.sent[#self.sent + 1] = tostring((select(i, ...))) end
  return true
end

-- Everything sent so far, as one string.
function Conn:output()
  return table.concat(self.sent)
end

function Conn:close()
  if self.closed then return nil, "closed" end
  self.closed, self.close_reason = true, "closed"
  return true
end

function Conn:abort()
  if self.closed then return nil, "closed" end
  self.closed, self.close_reason = true, "aborted"
  return true
end

-- Half-close: later sends fail with "closed"; the conn stays open.
function Conn:shutdown()
  if self.closed then return nil, "closed" end
  self.shut = true
  return true
end

function Conn:peer() return self._peer end
function Conn:id() return self._id end
function Conn:is_closed() return self.closed end
function Conn:pending() return 0 end
function Conn:generation() return 1 end

function Conn:set_framing(spec)
  if type(spec) ~= "string" and type(spec) ~= "table" then
    error("bad argument #1 to 'set_framing' (framing must be a string or a table)", 2)
  end
  if self.closed then return nil, "closed" end
  self._framing = type(spec) == "table" and spec[1] or spec
  return true
end

function Conn:framing()
  if self.closed then return nil, "closed" end
  return self._framing
end

function Conn:pause()
  if self.closed then return nil, "closed" end
  self.paused = true
  return true
end

function Conn:resume()
  if self.closed then return nil, "closed" end
  self.paused = false
  return true
end

function Conn:pipe_frame(file, done, max)
  assert(type(done) == "function", "bad argument #2 to 'pipe_frame' (function expected)")
  if self.closed then return nil, "closed" end
  assert(self.pipe == nil, "pipe_frame needs length or fixed framing and no pipe pending")
  self.pipe = { file = file, done = done, max = max }
  return true
end

-- Test side: deliver a piped frame's payload (as the core would) and run its callback.
function Conn:feed_pipe(payload)
  local p = assert(self.pipe, "no pipe armed")
  self.pipe = nil
  local err
  if p.file then
    local ok, e = p.file:write(payload)
    if not ok then err = e end
  end
  if err then return p.done(self, nil, err) end
  return p.done(self, #payload)
end

-- A stand-in for the `hotsock` module: log lines are collected, timers run on demand.
function M.hotsock()
  local hs = { logs = {}, timers = {}, version = "test" }
  function hs.log(level, ...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    hs.logs[#hs.logs + 1] = level .. " " .. table.concat(parts, " ")
  end
  function hs.now() return os.time() end
  function hs.monotonic() return os.clock() end
  function hs.after(_, fn)
    local t = { fn = fn, cancel = function(self) self.cancelled = true return true end }
    hs.timers[#hs.timers + 1] = t
    return t
  end
  hs.every = hs.after
  function hs.connections() return 0 end
  function hs.check_filename(name)
    if name == "" or name == "." or name == ".." or name:find("[/\\%z]") or #name > 255
      or not utf8.len(name) then
      return nil, "bad file name"
    end
    return true
  end
  -- Files go through io; commit renames and hashes with sha256sum.
  function hs.create_file(dir, name)
    local ok, err = hs.check_filename(name)
    if not ok then return nil, err end
    os.execute("mkdir -p '" .. dir .. "'")
    local tmp = dir .. "/.hs-upload-test" .. tostring(math.random(1e9))
    local fh = assert(io.open(tmp, "wb"))
    local f = { size_ = 0, state = "open" }
    function f:write(data)
      if self.state ~= "open" then return nil, "closed" end
      fh:write(data)
      self.size_ = self.size_ + #data
      return true
    end
    function f:commit()
      if self.state ~= "open" then return nil, "closed" end
      fh:close()
      local final = dir .. "/" .. name
      assert(os.rename(tmp, final))
      self.state = "committed"
      local p = io.popen("sha256sum '" .. final .. "'")
      local sha = p:read("a"):match("^(%x+)")
      p:close()
      return self.size_, sha
    end
    function f:abort()
      if self.state == "open" then fh:close() os.remove(tmp) end
      self.state = "aborted"
      return true
    end
    function f:path() return dir .. "/" .. name end
    function f:size() return self.size_ end
    return f
  end
  return hs
end

-- Loads a handler script the way the core does: the chunk gets its options table.
-- The fake hotsock module is what `require "hotsock"` returns meanwhile.
function M.load_script(path, opts, hotsock)
  hotsock = hotsock or M.hotsock()
  package.loaded.hotsock = hotsock
  local chunk = assert(loadfile(path, "t"))
  local handler = chunk(opts or {})
  package.loaded.hotsock = nil
  return handler, hotsock
end

return M
