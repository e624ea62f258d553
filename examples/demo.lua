-- The demo: every shipped behaviour at once, on fixed ports of 127.0.0.1.
--   hotsock serve --config examples/demo.lua
-- Paths are relative to this file. Edit a script and send SIGHUP to reload it.
return {
  log_level = "info",
  services = {
    { script = "../scripts/echo.lua",
      listen = { "tcp://127.0.0.1:7000", "udp://127.0.0.1:7000", "unix:/tmp/hotsock-echo.sock" } },
    { script = "../scripts/greeting.lua", listen = "tcp://127.0.0.1:7001" },
    { script = "../scripts/greeting.lua", listen = "tcp://127.0.0.1:7002", framing = "line" },
    { script = "../scripts/upload.lua", listen = "tcp://127.0.0.1:7003",
      options = { dir = "/tmp/hotsock-files" } },
    { script = "udp_ack.lua", listen = "udp://127.0.0.1:7004" },
    { script = "hear_me.lua", listen = "tcp://127.0.0.1:7005" },
    { script = "chat_tcp.lua", listen = "tcp://127.0.0.1:7006" },
    { script = "chat/chat.lua", listen = "tcp://127.0.0.1:8081" },
    -- HTTPS too, with the self-signed certificate demo.sh makes (examples/demo-cert.sh).
    { script = "../scripts/http.lua",
      listen = { "tcp://127.0.0.1:8080",
                 { url = "tls://127.0.0.1:8443", cert = "/tmp/hotsock-demo-tls/cert.pem",
                   key = "/tmp/hotsock-demo-tls/key.pem" } },
      options = { upload_dir = "/tmp/hotsock-files" } },
  },
}
