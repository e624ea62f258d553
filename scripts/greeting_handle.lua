-- greeting, written as one function per connection: handle(conn) runs in a coroutine, reads
-- with conn:receive() (the next message under the conn's framing) and the connection closes
-- when it returns. Same behaviour, options and tests as scripts/greeting.lua.
local opts = ... or {}
local welcome = opts.welcome or "welcome!"
local greeting = opts.greeting or "hello"

return {
  name = "greeting",
  listen = "tcp://127.0.0.1:7001",

  handle = function(conn)
    conn:send(welcome)
    local line_mode = (conn:framing() or ""):sub(1, 4) == "line"
    while true do
      local msg = conn:receive()
      if not msg then return end -- the client left
      if not line_mode then
        -- A raw chunk typed into nc ends in a newline; the tutorial client sends none.
        msg = msg:gsub("\r?\n$", "")
      end
      if msg == "exit" then return end
      conn:send(greeting, ", ", msg, line_mode and "!\n" or "!")
    end
  end,
}
