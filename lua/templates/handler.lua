-- NAME: a line protocol handler for hotsock (started with `hotsock new NAME`).
--
-- Serve it:   hotsock serve NAME.lua              (listens on tcp://127.0.0.1:7100)
-- Try it:     printf 'PING\nECHO hi\nQUIT\n' | nc 127.0.0.1 7100
-- Test it:    busted --lua=lua5.4 NAME_spec.lua
-- Change it while it runs: edit, save, then `hotsock reload NAME.lua` (or serve with
-- --watch); `hotsock stats NAME.lua` shows each generation's connections and messages.
--
-- Protocol: one command per line; replies are lines.
--   PING          -> PONG
--   ECHO <text>   -> <text>
--   COUNT         -> how many commands this connection has sent
--   QUIT          -> BYE, then the server closes
--   anything else -> ERR unknown command

local hotsock = require "hotsock" -- the server's API (types: share/hotsock/types)

-- Options come from the command line: hotsock serve NAME.lua --set greeting=hi
local opts = ... or {}
local greeting = opts.greeting or "hello from NAME"

---@type hotsock.Handler
local handler = {
  name = "NAME",
  listen = "tcp://127.0.0.1:7100", -- used when the command line gives no --listen
  framing = "line",                -- the core splits input into lines (max 64 KiB each)
}

-- A client connected: conn.ctx is a table for this connection's own state.
function handler.on_connect(conn)
  conn.ctx.count = 0
  conn:send(greeting, "\n")
end

-- One line arrived, without its "\n" (and without a "\r" before it).
function handler.on_message(conn, line)
  conn.ctx.count = conn.ctx.count + 1
  local cmd, arg = line:match("^(%S*)%s?(.*)$")
  if cmd == "PING" then
    conn:send("PONG\n")
  elseif cmd == "ECHO" then
    conn:send(arg, "\n")
  elseif cmd == "COUNT" then
    conn:send(conn.ctx.count, "\n")
  elseif cmd == "QUIT" then
    conn:send("BYE\n")
    conn:close() -- after BYE has been sent
  else
    hotsock.log("warn", "unknown command from", conn:peer(), cmd)
    conn:send("ERR unknown command\n")
  end
end

-- The connection is gone: reason is "peer closed", "closed", "idle timeout", ...
function handler.on_close(conn, reason)
  hotsock.log("debug", conn, "closed:", reason)
end

return handler
