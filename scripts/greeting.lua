-- greeting: "welcome!" on connect, "hello, NAME!" for each message, "exit" closes.
--
-- Options (--set key=value, or `options` in a config; a reload picks up new values):
--   welcome   text sent on connect            (default "welcome!")
--   greeting  word before the name in replies (default "hello")
--
-- Framing is chosen when listening: raw (default; each received chunk is one message and
-- replies carry no newline, for the tutorial client) or line (--framing line: each line is
-- one message and replies end in "\n", for nc and telnet users).
local opts = ... or {}
local welcome = opts.welcome or "welcome!"
local greeting = opts.greeting or "hello"

return {
  name = "greeting",
  listen = "tcp://127.0.0.1:7001",

  on_connect = function(conn)
    conn:send(welcome)
  end,

  on_message = function(conn, msg)
    local line_mode = (conn:framing() or ""):sub(1, 4) == "line"
    if not line_mode then
      -- A raw chunk typed into nc ends in a newline; the tutorial client sends none.
      msg = msg:gsub("\r?\n$", "")
    end
    if msg == "exit" then
      conn:close()
      return
    end
    conn:send(greeting, ", ", msg, line_mode and "!\n" or "!")
  end,
}
