-- HAProxy Lua applets for the benchmark (bench/run.lua loads this with lua-load).
--
-- echo: a TCP service that sends back every byte. HAProxy 2.6's AppletTCP:receive(size)
-- waits for exactly `size` bytes (or the end of the stream) and has no "whatever has
-- arrived" form, so the service reads blocks of the workload's message size, passed as
-- the first lua-load argument. For the benchmark's fixed-size messages that is what a real
-- echo would return.
-- hello: an HTTP service answering GET /hello with a short text body.
local args = table.pack(...)
local block = tonumber(args[1]) or 64

core.register_service("echo", "tcp", function(applet)
  while true do
    local data = applet:receive(block)
    if data == nil or data == "" then return end
    applet:send(data)
  end
end)

local body = "hello from haproxy\n"
core.register_service("hello", "http", function(applet)
  applet:set_status(200)
  applet:add_header("content-type", "text/plain; charset=utf-8")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end)
