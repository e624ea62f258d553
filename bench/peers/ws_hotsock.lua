-- hotsock's side of bench/ws.sh: /ws echoes every message as it came; a text message starting
-- with "bcast:" goes to every WebSocket of this worker instead (hotsock.broadcast).
local hotsock = require "hotsock"

local function on_message(ws, data, kind)
  if kind == "text" and data:sub(1, 6) == "bcast:" then
    hotsock.broadcast(data)
  elseif kind == "text" then
    ws:send(data)
  else
    ws:send_binary(data)
  end
end

return {
  protocol = "http",
  on_request = function(req, res)
    if req.path ~= "/ws" then return res:send("ws bench\n") end
    req:websocket { on_message = on_message, max_message = 1 << 20 }
  end,
}
