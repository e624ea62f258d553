-- scripts/echo.lua's on_message with per-connection state: counts its messages in conn.ctx,
-- as a stateful handler does per message. What that state costs a message:
--   SCRIPT=bench/ctx_echo.lua bash bench/instructions.sh tcp64_50 hotsock build-bench
return {
  on_message = function(conn, data)
    local ctx = conn.ctx
    ctx.n = (ctx.n or 0) + 1
    conn:send(data)
  end,
}
