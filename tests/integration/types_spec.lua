-- The LuaCATS definitions (lua/types/hotsock.lua) against the API the running core really
-- registers: no name missing on either side.
local hs = require "hsserver"

local TYPES = "lua/types/hotsock.lua"

-- Which dump kind each documented class stands for.
local KIND = {
  ["hotsock"] = "module", ["hotsock.shared"] = "shared", ["hotsock.Timer"] = "timer",
  ["hotsock.File"] = "file", ["hotsock.Conn"] = "conn", ["hotsock.UdpSocket"] = "udp",
  ["hotsock.UdpClient"] = "udp_client",
  ["hotsock.Request"] = "req", ["hotsock.WebSocket"] = "ws", ["hotsock.Response"] = "res", ["hotsock.Handler"] = "handler",
  ["hotsock.Subscription"] = "subscription", ["hotsock.Task"] = "task",
  ["hotsock.json"] = "json", ["hotsock.ErrorResponse"] = "error_res",
}

-- Names per kind, from the definitions: functions and methods of a class's local table, and
-- its ---@field lines.
local function documented()
  local f = assert(io.open(TYPES))
  local text = f:read("a")
  f:close()
  assert(text:match("^%-%-%-@meta hotsock\n"), "the file must start with ---@meta hotsock")
  local found, class, var_class = {}, nil, {}
  local function add(cls, name)
    local kind = KIND[cls]
    if kind then
      found[kind] = found[kind] or {}
      found[kind][name] = true
    end
  end
  for line in text:gmatch("[^\n]*") do
    local c = line:match("^%-%-%-@class ([%w%._]+)")
    if c then class = c end
    local var = line:match("^local (%w+) = {}")
    if var and class then var_class[var] = class end
    local field = line:match("^%-%-%-@field ([%a_][%w_]*)%??%s")
    if field and class then add(class, field) end
    local v, fn = line:match("^function (%w+)[%.:]([%w_]+)%(")
    if v then add(var_class[v] or "?", fn) end
  end
  return found
end

-- Names per kind, from the running server.
local function registered()
  -- Trusted: the dump reads the registry through the debug library.
  local srv = hs.start { "tests/fixtures/api_dump.lua", "--listen", "tcp://127.0.0.1:0",
                         "--control", "none", "--sandbox", "trusted" }
  local c = srv:tcp()
  c:send("GET /x?a=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
  local all = hs.recv_all(c)
  c:close()
  srv:stop()
  local body = assert(all:match("\r\n\r\n(.*)$"), all)
  local found = {}
  for kind, name in body:gmatch("(%S+) (%S+)\n") do
    found[kind] = found[kind] or {}
    found[kind][name] = true
  end
  -- The handler callbacks the loader accepts: its error for an unknown one lists them.
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write("return { on_nothing = function() end }\n")
  f:close()
  local out = hs.run(hs.shquote(hs.bin) .. " check " .. hs.shquote(tmp) .. " 2>&1")
  os.remove(tmp)
  local list = assert(out:match("known: ([%w_, ]+)%)"), out)
  found.handler = {}
  for name in list:gmatch("[%w_]+") do found.handler[name] = true end
  return found
end

local function sorted(set)
  local t = {}
  for k in pairs(set or {}) do t[#t + 1] = k end
  table.sort(t)
  return t
end

describe("LuaCATS definitions", function()
  local doc, reg = documented(), registered()

  it("document every function, method and field the core registers", function()
    for kind, names in pairs(reg) do
      local missing = {}
      for name in pairs(names) do
        if not (doc[kind] and doc[kind][name]) then missing[#missing + 1] = name end
      end
      table.sort(missing)
      assert.are.same({}, missing, "undocumented " .. kind .. " names")
    end
  end)

  it("document nothing the core does not register", function()
    for kind, names in pairs(doc) do
      local extra = {}
      for name in pairs(names) do
        -- conn.ctx is served by __index; the handler's non-callback fields are read by the
        -- loader, not registered; req.tls exists only on requests over TLS (tls_spec), and
        -- req.proxy only on ?proxy listeners (proxy_protocol_spec).
        local special = ((kind == "conn" or kind == "ws") and name == "ctx") or
                        (kind == "req" and (name == "tls" or name == "proxy")) or
                        (kind == "handler" and not name:match("^on_"))
        if not special and not (reg[kind] and reg[kind][name]) then
          extra[#extra + 1] = name
        end
      end
      table.sort(extra)
      assert.are.same({}, extra, "documented but not registered " .. kind .. " names")
    end
  end)

  it("cover every kind of object, with the names a handler writer reaches first", function()
    assert.are.same({ "conn", "error_res", "file", "handler", "json", "module", "req", "res",
                      "shared", "subscription", "task", "timer", "udp", "udp_client", "ws" }, sorted(reg))
    for _, n in ipairs { "log", "after", "every", "now", "create_file", "check_filename",
                         "version", "shared", "subscribe", "publish", "worker", "workers",
                         "conns", "broadcast", "dict", "json" } do
      assert.is_true(doc.module[n], n)
    end
    for _, n in ipairs { "send", "close", "peer", "set_framing", "pipe_frame" } do
      assert.is_true(doc.conn[n], n)
    end
    for _, n in ipairs { "name", "listen", "framing", "protocol", "http", "stream_body" } do
      assert.is_true(doc.handler[n], n)
    end
  end)

  it("load as Lua (LuaLS reads them as plain Lua files)", function()
    local chunk = assert(loadfile(TYPES))
    local m = chunk()
    assert.are.equal("table", type(m))
  end)
end)
