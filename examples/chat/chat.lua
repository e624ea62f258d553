-- chat: a browser chat room over WebSocket, whichever worker each browser lands on.
--   open http://127.0.0.1:8081/ in two browser windows, pick a name in each, and talk
-- GET / serves index.html (next to this file); GET /ws?name=NAME upgrades to a WebSocket.
-- Every line a browser sends is published on the "webchat" channel; every worker subscribes
-- and broadcasts what it hears to its own browsers (hotsock.broadcast), so all of them see
-- every line. Who is online
-- lives in the shared dictionary (one key per name), so every worker lists the same names.
-- Messages to the browsers are JSON: {type = "msg", from, text}, {type = "who", names},
-- {type = "hello", name, worker} and {type = "error", text}.
local hotsock = require "hotsock"

local opts, info = ...
opts = opts or {}
-- The directory of this file (the second argument says where it was loaded from; the
-- debug library is not in the default sandbox, docs/sandbox.md).
local here = (info and info.path or ""):match("^(.*)/[^/]*$") or "."
local root = opts.root or here
local PREFIX = "webchat:user:"

local function who()
  local names = {}
  for _, key in ipairs(hotsock.shared.keys(1000)) do
    local name = key:sub(1, #PREFIX) == PREFIX and key:sub(#PREFIX + 1)
    if name then names[#names + 1] = name end
  end
  table.sort(names)
  return hotsock.json.encode { type = "who", names = hotsock.json.array(names) }
end

-- Load-time subscriptions last as long as this version: each worker hears every line.
-- Every worker gets every line and sends it to its own WebSockets: hotsock.broadcast reaches
-- the open ones of this script (one whose output is full is skipped; the send timeout closes it).
hotsock.subscribe("webchat", function(msg)
  hotsock.broadcast(msg == "who" and who() or msg)
end)

local function on_message(ws, text)
  hotsock.log("info", ("chat %s: %s"):format(ws.ctx.name, text))
  local ok, err = hotsock.publish("webchat", hotsock.json.encode {
    type = "msg", from = ws.ctx.name, text = text:sub(1, 500) })
  if not ok then ws:send(hotsock.json.encode { type = "error", text = err }) end
end

local function on_close(ws)
  if ws.ctx.name then
    hotsock.shared.delete(PREFIX .. ws.ctx.name)
    hotsock.publish("webchat", "who")
  end
end

return {
  name = "webchat",
  listen = "tcp://127.0.0.1:8081",
  protocol = "http",

  on_request = function(req, res)
    if req.path == "/" or req.path == "/index.html" then
      return res:send_file(root .. "/index.html", { root = root })
    elseif req.path ~= "/ws" then
      res:status(404)
      return res:send("not found\n")
    end
    local name = req:query_param("name") or ""
    if not name:match("^[%w_%-]+$") or #name > 20 then
      res:status(400)
      return res:send("a name is 1 to 20 letters, digits, - or _\n")
    end
    local ws = req:websocket { on_message = on_message, on_close = on_close }
    if not ws then return end
    if not hotsock.shared.add(PREFIX .. name, 1) then
      ws:send(hotsock.json.encode { type = "error", text = "name taken" })
      return ws:close(4001, "name taken")
    end
    ws.ctx.name = name
    ws:send(hotsock.json.encode { type = "hello", name = name, worker = hotsock.worker() })
    hotsock.publish("webchat", "who")
  end,

  -- After a reload the live WebSockets take this version's callbacks (and its broadcasts).
  on_upgrade = function()
    return { on_message = on_message, on_close = on_close }
  end,
}
