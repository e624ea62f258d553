-- echo: every byte received goes back unchanged, in order (TCP, Unix), and every datagram
-- is answered with the same bytes (UDP). The core handles flow control: a client that
-- reads slowly stops being read from until it catches up.
return {
  name = "echo",
  listen = { "tcp://127.0.0.1:7000", "udp://127.0.0.1:7000" },

  on_message = function(conn, data)
    conn:send(data)
  end,

  on_datagram = function(sock, data, peer)
    sock:send_to(peer, data)
  end,
}
