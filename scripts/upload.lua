-- upload: framed messages and files (contract: docs/protocols.md). Every frame is a 4-byte
-- signed little-endian length and that many bytes. A session is a series of commands, each
-- starting with a header frame:
--   close                                   end the session
--   {"msg_type": "msg"}                     the next frame is a text message, logged
--   {"msg_type": "file", "file_name": "N"}  the next frame is stored as N in the upload dir
-- Add "ack": true to a header to get one reply frame when the command is done. Without it
-- the server sends nothing at all (the tutorial client never reads).
--
-- Options: dir (default "files"), max_message (bytes, default 16 MiB), max_file (bytes,
-- default 2 GiB - 1, the largest a signed 32-bit header can give).
local hotsock = require "hotsock"
local cjson = require "cjson.safe"

local opts = ... or {}
local dir = opts.dir or "files"
local max_message = math.tointeger(tonumber(opts.max_message)) or 16 * 1024 * 1024
local max_file = math.tointeger(tonumber(opts.max_file)) or 0x7fffffff

local function reply(conn, fields)
  -- Keys in a fixed order, so the reply reads the same every time.
  local parts = {}
  for _, k in ipairs { "ok", "file_name", "bytes", "sha256", "error" } do
    if fields[k] ~= nil then
      parts[#parts + 1] = cjson.encode(k) .. ": " .. cjson.encode(fields[k])
    end
  end
  local body = "{" .. table.concat(parts, ", ") .. "}"
  conn:send(string.pack("<i4", #body), body)
end

local function receive_file(conn, hdr, ack)
  local name = hdr.file_name
  local file, err
  if type(name) ~= "string" then
    err = "file_name must be a string"
  else
    file, err = hotsock.create_file(dir, name)
  end
  if not file then
    hotsock.log("warn", ("%s: refused file %q: %s"):format(conn:peer(), tostring(name), err))
    -- Read and drop the content frame so the session stays in step.
    conn:pipe_frame(nil, function(c)
      if ack then reply(c, { ok = false, error = err }) end
    end, max_file)
    return
  end
  -- Until the content frame starts streaming, only this script knows of the temporary
  -- file: on_close removes it if the connection ends first.
  conn.ctx.file, conn.ctx.file_name = file, name
  conn:pipe_frame(file, function(c, bytes, perr)
    c.ctx.file = nil
    local sha
    if bytes then
      bytes, sha = file:commit()
      perr = sha
    end
    if not bytes then
      file:abort()
      hotsock.log("error", ("%s: file %q not stored: %s"):format(c:peer(), name, perr))
      if ack then reply(c, { ok = false, file_name = name, error = perr }) end
      return
    end
    hotsock.log("info", ("%s: stored %q (%d bytes, sha256 %s)"):format(c:peer(), name, bytes, sha))
    if ack then reply(c, { ok = true, file_name = name, bytes = bytes, sha256 = sha }) end
  end, max_file)
end

return {
  name = "upload",
  listen = "tcp://127.0.0.1:7003",
  framing = { "length:i32le", max = max_message },

  on_message = function(conn, frame)
    local st = conn.ctx
    if st.expect_message then
      st.expect_message = false
      -- A log line holds about 4 KiB: say so rather than cut a long message silently.
      local text = #frame <= 2048 and frame
        or ("%s... [%d bytes in all]"):format(frame:sub(1, 2048), #frame)
      hotsock.log("info", ("message from %s: %s"):format(conn:peer(), text))
      if st.ack then reply(conn, { ok = true, bytes = #frame }) end
      return
    end
    if frame == "close" then
      conn:close()
      return
    end
    local hdr = cjson.decode(frame)
    if type(hdr) ~= "table" then
      hotsock.log("warn", ("%s: header is neither close nor a JSON object; closing"):format(conn:peer()))
      conn:close()
      return
    end
    local ack = hdr.ack == true
    if hdr.msg_type == "msg" then
      st.expect_message, st.ack = true, ack
    elseif hdr.msg_type == "file" then
      receive_file(conn, hdr, ack)
    else
      hotsock.log("warn", ("%s: unknown msg_type %s; closing"):format(conn:peer(), tostring(hdr.msg_type)))
      if ack then reply(conn, { ok = false, error = "unknown msg_type" }) end
      conn:close()
    end
  end,

  on_close = function(conn, reason)
    local file = conn.ctx.file
    if file then
      conn.ctx.file = nil
      file:abort()
      local line = ("%s: file %q not stored: %s"):format(conn:peer(), conn.ctx.file_name, reason)
      hotsock.log("error", line)
    end
  end,
}
