-- chat_tcp: a line-based chat room for many users, whichever worker each one lands on.
--   nc 127.0.0.1 7006      the first line is your nickname; every line after it is said
--                          to the room ("* NAME joined", "NAME: text", "* NAME left")
-- Every worker subscribes to the "chat" channel when the script loads; a line published by
-- any worker reaches every worker, and each sends it to its own users (hotsock.broadcast),
-- named or not yet: the room is visible while one picks a name.
-- Nicknames are claimed in the shared dictionary, so two users never share one.
local hotsock = require "hotsock"

hotsock.subscribe("chat", function(line)
  hotsock.broadcast(line .. "\n")
end)

return {
  name = "chat",
  listen = "tcp://127.0.0.1:7006",
  framing = { "line", max = 1024 },

  on_connect = function(conn)
    conn:send("nickname?\n")
  end,

  on_message = function(conn, line)
    local nick = conn.ctx.nick
    if nick then
      hotsock.publish("chat", nick .. ": " .. line)
      return
    end
    nick = line:match("^%s*([%w_%-]+)%s*$")
    if not nick or hotsock.shared.incr("nick:" .. nick, 1) ~= 1 then
      conn:send("nickname taken or not a word, another?\n")
      return
    end
    conn.ctx.nick = nick
    hotsock.publish("chat", "* " .. nick .. " joined")
  end,

  on_close = function(conn)
    local nick = conn.ctx.nick
    if nick then
      hotsock.shared.set("nick:" .. nick, nil)
      hotsock.publish("chat", "* " .. nick .. " left")
    end
  end,
}
