local fake = require "fake_conn"
local cjson = require "cjson"

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

local function frames(s)
  local out, pos = {}, 1
  while pos <= #s do
    local n
    n, pos = string.unpack("<i4", s, pos)
    out[#out + 1] = s:sub(pos, pos + n - 1)
    pos = pos + n
  end
  return out
end

describe("scripts/upload.lua", function()
  local dir, up, hs
  before_each(function()
    dir = tmpdir()
    up, hs = fake.load_script("scripts/upload.lua", { dir = dir })
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("declares signed 32-bit little-endian length framing", function()
    assert.equals("length:i32le", up.framing[1])
  end)

  it("logs a message with the peer and sends nothing without ack", function()
    local c = fake.new()
    up.on_message(c, '{"msg_type": "msg"}')
    up.on_message(c, "hi there")
    assert.equals("", c:output())
    assert.matches("message from 127.0.0.1:50000: hi there", hs.logs[1], 1, true)
  end)

  it("stores a file and acks with bytes and sha256 when asked", function()
    local c = fake.new()
    up.on_message(c, '{"msg_type": "file", "file_name": "a.txt", "ack": true}')
    c:feed_pipe("abc")
    local reply = frames(c:output())
    assert.equals(1, #reply)
    assert.equals('{"ok": true, "file_name": "a.txt", "bytes": 3, "sha256": '
      .. '"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}', reply[1])
    local f = assert(io.open(dir .. "/a.txt", "rb"))
    assert.equals("abc", f:read("a"))
    f:close()
  end)

  it("refuses a bad name, discards its content and acks the error", function()
    local c = fake.new()
    up.on_message(c, '{"msg_type": "file", "file_name": "../x", "ack": true}')
    assert.is_nil(c.pipe.file)
    c:feed_pipe("content")
    local reply = cjson.decode(frames(c:output())[1])
    assert.is_false(reply.ok)
    assert.is_string(reply.error)
  end)

  it("closes on close, on a non-JSON header and on an unknown msg_type", function()
    for _, hdr in ipairs { "close", "{not json", '{"msg_type": "nope"}' } do
      local c = fake.new()
      up.on_message(c, hdr)
      assert.is_true(c:is_closed(), hdr)
    end
  end)
end)
