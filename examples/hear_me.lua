-- hear_me: the first request/reply server of the socket tutorials. The client connects and
-- asks "can you hear me?"; the server says "Yes" and closes the connection.
--
-- The tutorial's client sends its question with one sendall and no newline, and reads the
-- answer with one recv(1024). TCP may still cut the question in two, so the pieces are kept
-- until the question is whole (its "?") or as long as one recv(1024) could be. A question
-- typed into nc ends with a newline; that is accepted too.
local hotsock = require "hotsock"

local MAX = 1024

return {
  name = "hear_me",
  listen = "tcp://127.0.0.1:7005",

  on_message = function(conn, chunk)
    local heard = (conn.ctx.heard or "") .. chunk
    conn.ctx.heard = heard
    if not heard:find("?", 1, true) and #heard < MAX then return end
    hotsock.log("info", ("%s asks %q"):format(conn:peer(), (heard:gsub("\r?\n$", ""))))
    conn:send("Yes")
    conn:close()
  end,
}
