-- udp_ack: answers every datagram with a fixed acknowledgement, as the tutorials' UDP
-- server does ("好的", "all right"), to show a UDP handler that is not echo.
-- Option: text (default "好的").
local hotsock = require "hotsock"
local opts = ... or {}
local text = opts.text or "好的"

return {
  name = "udp_ack",
  listen = "udp://127.0.0.1:7004",

  on_datagram = function(sock, data, peer)
    hotsock.log("info", ("%s says %q"):format(peer, data))
    sock:send_to(peer, text)
  end,
}
