-- upload over real sockets: framed files and messages, exact ack replies, silence towards
-- the tutorial client, refused names, disconnects, a full disk, protocol errors, 1 GiB with
-- bounded memory, and examples/upload_client.lua.
local hs = require "hotsock.testkit" -- the handler test kit users get
local socket = require "socket"
local cjson = require "cjson"

local q = hs.shquote

-- Runs a shell command that must succeed; returns its stdout.
local function sh(cmd)
  local out, rc = hs.run(cmd)
  assert(rc == 0, ("command failed (%s): %s\n%s"):format(tostring(rc), cmd, out))
  return out
end

local function mktemp_dir()
  return (sh("mktemp -d /tmp/hs-upload-spec.XXXXXX"):gsub("%s+$", ""))
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (sh("pwd"):gsub("%s+$", "")) .. "/" .. p
end

-- Every entry of dir, dotfiles included, sorted; {} when dir is missing.
local function ls(dir)
  local names = {}
  for name in hs.run("ls -A " .. q(dir) .. " 2>/dev/null"):gmatch("[^\n]+") do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

-- SHA-256 hex of a file or a string (openssl is several times faster than sha256sum here).
local hash_cmd = os.execute("command -v openssl >/dev/null 2>&1") and "openssl dgst -sha256 -r"
  or "sha256sum -b"
local function sha256_file(path)
  return sh(hash_cmd .. " < " .. q(path)):match("^(%x+)")
end
local function sha256(data)
  local tmp = os.tmpname()
  write_file(tmp, data)
  local hex = sha256_file(tmp)
  os.remove(tmp)
  return hex
end

local function frame(s)
  return hs.frame(s, "length:i32le")
end

-- A file header with the name JSON-encoded as given (bytes pass through unchanged).
local function file_header(name, ack)
  local tail = ack and ', "ack": true}' or "}"
  return '{"msg_type": "file", "file_name": ' .. cjson.encode(name) .. tail
end

local function file_cmd(name, data, ack)
  return frame(file_header(name, ack)) .. frame(data)
end

local function msg_cmd(text, ack)
  return frame(ack and '{"msg_type": "msg", "ack": true}' or '{"msg_type": "msg"}') .. frame(text)
end

-- A blocking send: all of data goes, or the client's timeout fails the test.
local function send_all(c, data)
  local n, err, last = c:send(data)
  assert(n == #data, ("send failed after %d of %d bytes: %s"):format(last or 0, #data, err))
end

-- One reply frame: its raw bytes and the decoded JSON.
local function read_reply(c)
  local n = string.unpack("<i4", hs.recv_exact(c, 4))
  local body = hs.recv_exact(c, n)
  return body, cjson.decode(body)
end

local function ok_body(name, data)
  return ('{"ok": true, "file_name": "%s", "bytes": %d, "sha256": "%s"}'):format(name, #data,
    sha256(data))
end

-- Nothing has arrived from the server so far (a non-blocking read finds no byte).
local function expect_silence(c)
  c:settimeout(0)
  local data, err, partial = c:receive(1)
  c:settimeout(10)
  assert.is_nil(data)
  assert.equals("timeout", err)
  assert.equals("", partial)
end

-- Waits for the server to close without reading anything, then one non-blocking read: no
-- byte was ever sent and the close was orderly (a reset reads as an error, not "closed").
local function expect_clean_close(c, timeout)
  local readable = socket.select({ c }, nil, timeout or 10)
  assert.equals(1, #readable, "the server did not close the connection")
  c:settimeout(0)
  local data, err, partial = c:receive(1)
  assert.is_nil(data, "the server sent data")
  assert.equals("closed", err)
  assert.equals("", partial)
  c:close()
end

-- The local port of a client, which the server logs as the peer's.
local function peer_of(c)
  local _, port = c:getsockname()
  return "127.0.0.1:" .. port
end

local function plain(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- Deterministic test data: n bytes covering every byte value, varied by seed.
local function data_of(n, seed)
  local block = {}
  for i = 0, 255 do block[#block + 1] = string.char((i * 167 + seed * 31) % 256) end
  local s = table.concat(block)
  return s:rep(n // 256 + 1):sub(1, n)
end

local bin = abspath(hs.bin)
local script = abspath("scripts/upload.lua")

-- Starts upload.lua with its working directory in cwd (so a stray write would show there).
local function start_upload(cwd, sets, prefix)
  local args = { script, "--listen", "tcp://127.0.0.1:0" }
  for _, kv in ipairs(sets) do
    args[#args + 1] = "--set"
    args[#args + 1] = kv
  end
  local saved = hs.bin
  hs.bin = bin
  local ok, srv = pcall(hs.start, args, { prefix = (prefix or "") .. "cd " .. q(cwd) .. " && " })
  hs.bin = saved
  assert(ok, srv)
  return srv
end

describe("upload", function()
  local work, up, srv

  setup(function()
    work = mktemp_dir()
    up = work .. "/up"
    srv = start_upload(work, { "dir=" .. up })
  end)
  teardown(function()
    assert.is_true(srv:stop())
    sh("rm -rf " .. q(work))
  end)
  before_each(function()
    sh("rm -rf " .. q(up) .. " && mkdir " .. q(up))
  end)

  local function connect()
    local c = srv:tcp(nil, nil, 10)
    c:setoption("tcp-nodelay", true)
    return c
  end

  local sizes = { 0, 1, 1024 * 1024 }

  it("stores files of 0 B, 1 B and 1 MiB byte for byte, silently and with ack", function()
    -- Tutorial mode: frames, "close", never a byte back.
    local c = connect()
    for i, n in ipairs(sizes) do send_all(c, file_cmd("plain-" .. n, data_of(n, i))) end
    send_all(c, frame("close"))
    expect_clean_close(c)
    for i, n in ipairs(sizes) do
      assert.is_true(hs.read_file(up .. "/plain-" .. n) == data_of(n, i), "plain-" .. n)
    end
    -- Ack mode: one exact reply per file, sent once the file is stored.
    c = connect()
    for i, n in ipairs(sizes) do
      local name, data = "ack-" .. n, data_of(n, i + 10)
      send_all(c, file_cmd(name, data, true))
      assert.equals(ok_body(name, data), (read_reply(c)))
      assert.is_true(hs.read_file(up .. "/" .. name) == data, name)
      assert.equals(sha256(data), sha256_file(up .. "/" .. name))
    end
    send_all(c, frame("close"))
    expect_clean_close(c)
    assert.same({ "ack-0", "ack-1", "ack-1048576", "plain-0", "plain-1", "plain-1048576" }, ls(up))
  end)

  it("logs messages of 0 B, 1 B and 1 MiB with the peer, acknowledging on request", function()
    local c = connect()
    local peer = peer_of(c)
    local texts = { "", "!", ("0123456789abcdef"):rep(65536) }
    for _, text in ipairs(texts) do
      send_all(c, msg_cmd(text, true))
      assert.equals(('{"ok": true, "bytes": %d}'):format(#text), (read_reply(c)))
      -- A long message is logged by its first 2 KiB and its size (a log line holds 4 KiB).
      local logged = #text <= 2048 and text
        or text:sub(1, 2048) .. ("... [%d bytes in all]"):format(#text)
      srv:wait_log("message from " .. plain(peer) .. ": " .. plain(logged) .. "\n")
    end
    send_all(c, msg_cmd("quiet one"))
    srv:wait_log("message from " .. plain(peer) .. ": quiet one\n")
    expect_silence(c)
    send_all(c, frame("close"))
    expect_clean_close(c)
    assert.same({}, ls(up))
  end)

  it("refuses a message over the default 16 MiB limit (a 1 GiB one) by closing", function()
    -- Messages are held whole, so their size is capped; only files stream. The header alone
    -- decides: the 1 GiB never has to be sent.
    local c = connect()
    local peer = peer_of(c)
    send_all(c, frame('{"msg_type": "msg"}') .. string.pack("<i4", 1024 * 1024 * 1024))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: frame too large; closing")
  end)

  it("replies with exact frames in ack mode, one per command that asked", function()
    local c = connect()
    send_all(c, file_cmd("a.txt", "abc", true))
    local body = '{"ok": true, "file_name": "a.txt", "bytes": 3, "sha256": '
      .. '"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}'
    assert.equals(string.pack("<i4", #body) .. body, hs.recv_exact(c, 4 + #body))
    send_all(c, msg_cmd("hi", true))
    assert.equals(string.pack("<i4", 24) .. '{"ok": true, "bytes": 2}', hs.recv_exact(c, 28))
    -- Commands without ack in between get nothing.
    send_all(c, file_cmd("b.txt", "bee") .. msg_cmd("no ack"))
    srv:wait_log("message from " .. plain(peer_of(c)) .. ": no ack\n")
    expect_silence(c)
    assert.equals("bee", hs.read_file(up .. "/b.txt"))
    send_all(c, frame("close"))
    expect_clean_close(c)
  end)

  it("stores many files from one tutorial session and never sends a byte", function()
    local files = {}
    for i = 1, 40 do
      files[i] = { name = ("many-%02d.bin"):format(i), data = data_of((i * 7919) % 300000, i) }
    end
    files[7].data = ""
    -- A client that keeps its socket open: it can see that nothing came and how it closed.
    local c = connect()
    for _, f in ipairs(files) do send_all(c, file_cmd(f.name, f.data)) end
    send_all(c, frame("close"))
    expect_clean_close(c)
    for _, f in ipairs(files) do
      assert.is_true(hs.read_file(up .. "/" .. f.name) == f.data, f.name)
    end
    assert.equals(40, #ls(up))
    -- The tutorial client proper: send everything, say close, close at once, never read.
    sh("rm -f " .. q(up) .. "/*")
    c = connect()
    for _, f in ipairs(files) do send_all(c, file_cmd(f.name, f.data)) end
    send_all(c, frame("close"))
    c:close()
    -- 40 stored files, not 39 and the last one's temporary file (ls -A lists .hs-upload-*).
    hs.wait_until(function()
      local names = ls(up)
      return #names == 40 and not names[1]:find("^%.hs%-upload%-")
    end, 10, "40 stored files")
    for _, f in ipairs(files) do
      assert.is_true(hs.read_file(up .. "/" .. f.name) == f.data, f.name)
    end
    assert.is_true(srv:alive())
  end)

  it("refuses unsafe names, writes nothing anywhere, and stays in step", function()
    local etc_x_before = io.open("/etc/x", "rb")
    if etc_x_before then etc_x_before:close() end
    local names = { "..", ".", "/etc/x", "a/b", "a\\b", "", "a\0b", ("n"):rep(256), "a\255b",
      "\192\175", "\237\160\128" }
    -- file_name values that are not strings, and a header without one.
    local raw = { "5", "null", "true", '{"x": 1}', '["a"]' }
    local headers = {}
    for _, name in ipairs(names) do
      headers[#headers + 1] = function(ack) return file_header(name, ack) end
    end
    for _, v in ipairs(raw) do
      headers[#headers + 1] = function(ack)
        return '{"msg_type": "file", "file_name": ' .. v .. (ack and ', "ack": true' or "") .. "}"
      end
    end
    headers[#headers + 1] = function(ack)
      return '{"msg_type": "file"' .. (ack and ', "ack": true' or "") .. "}"
    end

    local stored = {}
    -- With ack: an error reply, then the next file in the same session is stored.
    local c = connect()
    for i, header in ipairs(headers) do
      local name = ("after-ack-%02d"):format(i)
      send_all(c, frame(header(true)) .. frame("SECRET " .. i)
        .. file_cmd(name, "good " .. i, true))
      local body, reply = read_reply(c)
      assert.matches('^{"ok": false, ', body)
      assert.is_false(reply.ok)
      assert.is_string(reply.error)
      assert.is_true(#reply.error > 0)
      assert.equals(ok_body(name, "good " .. i), (read_reply(c)))
      stored[#stored + 1] = name
    end
    send_all(c, frame("close"))
    expect_clean_close(c)
    -- Without ack: silence, and still in step.
    c = connect()
    for i, header in ipairs(headers) do
      local name = ("after-quiet-%02d"):format(i)
      send_all(c, frame(header(false)) .. frame("SECRET " .. i) .. file_cmd(name, "good " .. i))
      stored[#stored + 1] = name
    end
    send_all(c, frame("close"))
    expect_clean_close(c)

    table.sort(stored)
    assert.same(stored, ls(up))
    for _, name in ipairs(stored) do
      assert.equals("good " .. tonumber(name:match("%d+$")), hs.read_file(up .. "/" .. name))
    end
    -- Nothing beside the upload directory either: not in the server's working directory (its
    -- parent), not at /etc/x.
    assert.same({ "up" }, ls(work))
    if not etc_x_before then assert.is_nil(io.open("/etc/x", "rb")) end
    local _, refused = srv:log():gsub("refused file", "")
    assert.is_true(refused >= 2 * #headers)
  end)

  it("accepts the longest and non-ASCII names", function()
    local c = connect()
    local names = { ("n"):rep(255), "h\195\169llo w\195\182rld \226\156\147.txt", ".hidden", "..." }
    for i, name in ipairs(names) do
      send_all(c, file_cmd(name, "v" .. i, true))
      assert.equals(ok_body(name, "v" .. i), (read_reply(c)))
      assert.equals("v" .. i, hs.read_file(up .. "/" .. name))
    end
    send_all(c, frame("close"))
    expect_clean_close(c)
  end)

  it("leaves no file and no temporary file when a client disconnects mid-file", function()
    local keeper = connect()
    local function gone(name)
      hs.wait_until(function() return #ls(up) == 0 end, 10, "an empty upload directory")
      srv:wait_log('file "' .. plain(name) .. '" not stored')
    end
    -- After the header only.
    local c = connect()
    send_all(c, frame(file_header("cut-1.bin")))
    hs.wait_until(function() return #ls(up) == 1 end, 10, "the temporary file")
    c:close()
    gone("cut-1.bin")
    -- Inside the content frame's length.
    c = connect()
    send_all(c, frame(file_header("cut-2.bin")) .. "\0\0")
    hs.wait_until(function() return #ls(up) == 1 end, 10, "the temporary file")
    c:close()
    gone("cut-2.bin")
    -- Inside the content, closed normally and then reset: while it streams, only a
    -- temporary file exists, never the name.
    for i, reset in ipairs { false, true } do
      local name = "cut-" .. (i + 2) .. ".bin"
      c = connect()
      send_all(c, frame(file_header(name)) .. string.pack("<i4", 1024 * 1024)
        .. data_of(300 * 1024, i))
      hs.wait_until(function()
        local e = ls(up)
        return #e == 1 and e[1]:match("^%.hs%-upload%-") and
          tonumber(sh("stat -c %s " .. q(up .. "/" .. e[1]))) == 300 * 1024
      end, 10, "300 KiB in the temporary file")
      if reset then c:setoption("linger", { on = true, timeout = 0 }) end
      c:close()
      gone(name)
    end
    -- Everyone else is still served.
    send_all(keeper, file_cmd("after.txt", "still here", true))
    assert.equals(ok_body("after.txt", "still here"), (read_reply(keeper)))
    assert.same({ "after.txt" }, ls(up))
    send_all(keeper, frame("close"))
    expect_clean_close(keeper)
  end)

  it("reports a full disk, leaves no partial or temporary file, and keeps working", function()
    local disk = mktemp_dir()
    -- Without mount rights a file size limit gives the same failure (EFBIG rather than
    -- ENOSPC); SIGXFSZ must be ignored or it would kill the server. HS_NO_MOUNT=1 forces
    -- that fallback where mount works.
    local mounted = not os.getenv("HS_NO_MOUNT")
      and os.execute("mount -t tmpfs -o size=1m tmpfs " .. q(disk) .. " 2>/dev/null")
    local prefix = not mounted and "trap '' XFSZ; ulimit -f 1024; " or nil
    local srv2
    finally(function()
      if srv2 then srv2:stop() end
      if mounted then os.execute("umount " .. q(disk) .. " || umount -l " .. q(disk)) end
      os.execute("rm -rf " .. q(disk))
    end)
    srv2 = start_upload(work, { "dir=" .. disk }, prefix)
    local big = data_of(2 * 1024 * 1024, 3)
    local c = srv2:tcp(nil, nil, 10)
    send_all(c, file_cmd("big.bin", big, true))
    local body, reply = read_reply(c)
    assert.matches('^{"ok": false, "file_name": "big.bin", "error": ', body)
    assert.is_false(reply.ok)
    if mounted then assert.equals("disk full", reply.error) end
    assert.same({}, ls(disk))
    -- The same session goes on.
    send_all(c, file_cmd("small.txt", "fits", true))
    assert.equals(ok_body("small.txt", "fits"), (read_reply(c)))
    send_all(c, frame("close"))
    expect_clean_close(c)
    -- The tutorial client: a full disk is still no reason to send it anything.
    c = srv2:tcp(nil, nil, 10)
    send_all(c, file_cmd("big2.bin", big) .. file_cmd("small2.txt", "fits too") .. frame("close"))
    expect_clean_close(c)
    assert.same({ "small.txt", "small2.txt" }, ls(disk))
    assert.equals("fits too", hs.read_file(disk .. "/small2.txt"))
    srv2:wait_log('file "big2.bin" not stored')
    assert.is_true(srv2:alive())
  end)
end)

describe("upload protocol errors", function()
  local work, up, srv

  setup(function()
    work = mktemp_dir()
    up = work .. "/up"
    srv = start_upload(work, { "dir=" .. up, "max_message=1024", "max_file=65536" })
  end)
  teardown(function()
    assert.is_true(srv:stop())
    sh("rm -rf " .. q(work))
  end)

  local function connect()
    local c = srv:tcp(nil, nil, 10)
    c:setoption("tcp-nodelay", true)
    return c
  end

  -- The keeper still gets its message acknowledged.
  local function still_serving(keeper, text)
    send_all(keeper, msg_cmd(text, true))
    assert.equals(('{"ok": true, "bytes": %d}'):format(#text), (read_reply(keeper)))
  end

  it("closes only the connection that sends a negative length, and logs why", function()
    local keeper = connect()
    local c = connect()
    local peer = peer_of(c)
    send_all(c, string.pack("<i4", -1))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: negative length; closing")
    still_serving(keeper, "one")
    -- As a file's content length: no file, no temporary file.
    c = connect()
    peer = peer_of(c)
    send_all(c, frame(file_header("neg.bin", true)) .. string.pack("<i4", -5))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: negative length; closing")
    srv:wait_log('file "neg.bin" not stored')
    assert.same({}, ls(up))
    still_serving(keeper, "two")
    keeper:close()
  end)

  it("closes only the connection whose header or message passes max_message", function()
    local keeper = connect()
    local c = connect()
    send_all(c, msg_cmd(("m"):rep(1024), true))
    assert.equals('{"ok": true, "bytes": 1024}', (read_reply(c)))
    local peer = peer_of(c)
    send_all(c, frame('{"msg_type": "msg"}') .. string.pack("<i4", 1025))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: frame too large; closing")
    still_serving(keeper, "three")
    c = connect()
    peer = peer_of(c)
    send_all(c, string.pack("<i4", 1025))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: frame too large; closing")
    still_serving(keeper, "four")
    keeper:close()
  end)

  it("streams files past max_message up to max_file, and closes on a larger one", function()
    local keeper = connect()
    local c = connect()
    local data = data_of(65536, 5)
    send_all(c, file_cmd("max.bin", data, true))
    assert.equals(ok_body("max.bin", data), (read_reply(c)))
    local peer = peer_of(c)
    send_all(c, frame(file_header("over.bin", true)) .. string.pack("<i4", 65537))
    expect_clean_close(c)
    srv:wait_log(plain(peer) .. " protocol error: frame too large; closing")
    srv:wait_log('file "over.bin" not stored')
    assert.same({ "max.bin" }, ls(up))
    assert.is_true(hs.read_file(up .. "/max.bin") == data)
    still_serving(keeper, "five")
    keeper:close()
  end)
end)

describe("upload of 1 GiB", function()
  it("stores it exactly while server memory stays bounded", function()
    local work = mktemp_dir()
    local up = work .. "/up"
    local srv = start_upload(work, { "dir=" .. up })
    local sums = os.tmpname()
    finally(function()
      srv:stop()
      sh("rm -rf " .. q(work))
      os.remove(sums)
    end)
    -- 1024 chunks of 1 MiB, each stamped with its index, and a 3-byte tail: no two chunks
    -- alike, so a lost, doubled or reordered chunk changes the hash.
    local base = data_of(1024 * 1024, 9)
    local chunks, tail = 1024, "end"
    local total = chunks * #base + #tail
    local hasher = io.popen(hash_cmd .. " > " .. q(sums), "w")
    local c = srv:tcp(nil, nil, 30)
    local rss0, hwm0 = srv:memory()
    local peak = rss0
    local deadline = socket.gettime() + 240
    send_all(c, frame(file_header("big.bin", true)) .. string.pack("<i4", total))
    for i = 1, chunks do
      local chunk = string.pack("<I8", i) .. base:sub(9)
      send_all(c, chunk)
      hasher:write(chunk)
      if i % 16 == 0 then
        peak = math.max(peak, (srv:memory()))
        assert(socket.gettime() < deadline, "1 GiB upload ran out of time")
      end
    end
    send_all(c, tail)
    hasher:write(tail)
    hasher:close()
    local want = hs.read_file(sums):match("^(%x+)")
    local body = read_reply(c)
    local _, hwm = srv:memory()
    assert.equals(('{"ok": true, "file_name": "big.bin", "bytes": %d, "sha256": "%s"}')
      :format(total, want), body)
    assert.equals(total, tonumber(sh("stat -c %s " .. q(up .. "/big.bin"))))
    assert.equals(want, sha256_file(up .. "/big.bin"))
    assert.same({ "big.bin" }, ls(up))
    -- The whole GiB went through a server whose memory barely moved.
    local limit = 64 * 1024
    assert.is_true(peak - rss0 < limit, ("RSS grew by %d KiB"):format(peak - rss0))
    assert.is_true(hwm - hwm0 < limit, ("peak RSS grew by %d KiB"):format(hwm - hwm0))
    send_all(c, frame("close"))
    expect_clean_close(c)
  end)
end)

describe("upload memory", function()
  -- The server's digest is part of its footprint: OpenSSL's EVP interface loads the default
  -- provider on first use, ~2 MiB of libcrypto's pages that stay resident (bench/results/
  -- upload.md); SHA256_Update reaches the same code touching ~0.25 MiB. The first stored
  -- file (a fresh server, 256 KiB) must grow its peak RSS by under 1 MiB all in all.
  it("grows the peak RSS by under 1 MiB for the first stored file", function()
    local work = mktemp_dir()
    local up = work .. "/up"
    local srv = start_upload(work, { "dir=" .. up })
    finally(function()
      srv:stop()
      sh("rm -rf " .. q(work))
    end)
    local c = srv:tcp(nil, nil, 10)
    local _, hwm0 = srv:memory()
    local data = data_of(256 * 1024, 5)
    send_all(c, file_cmd("first.bin", data, true))
    assert.equals(ok_body("first.bin", data), (read_reply(c)))
    local _, hwm = srv:memory()
    assert.is_true(hwm - hwm0 < 1024, ("peak RSS grew by %d KiB"):format(hwm - hwm0))
    send_all(c, frame("close"))
    expect_clean_close(c)
  end)
end)

describe("examples/upload_client.lua", function()
  local work, up, srv

  setup(function()
    work = mktemp_dir()
    up = work .. "/up"
    srv = start_upload(work, { "dir=" .. up })
  end)
  teardown(function()
    assert.is_true(srv:stop())
    sh("rm -rf " .. q(work))
  end)

  local function client(args)
    return hs.run(("lua5.4 %s --port %d %s 2>&1"):format(q(abspath("examples/upload_client.lua")),
      srv:port(), args))
  end

  it("uploads files and a message and reports that the hashes match", function()
    local src = work .. "/src"
    sh("mkdir " .. q(src))
    local data = data_of(300 * 1024 + 17, 4)
    write_file(src .. "/photo.bin", data)
    write_file(src .. "/empty.txt", "")
    local out, rc = client(("--message %s %s %s"):format(q("hello there"),
      q(src .. "/photo.bin"), q(src .. "/empty.txt")))
    assert.equals(0, rc, out)
    assert.matches("message sent %(11 bytes%)", out)
    assert.matches("photo%.bin: stored as photo%.bin, 307217 bytes .* sha256 matches %(" ..
      sha256(data) .. "%)", out)
    assert.matches("empty%.txt: stored as empty%.txt, 0 bytes .* sha256 matches", out)
    assert.is_true(hs.read_file(up .. "/photo.bin") == data)
    assert.equals("", hs.read_file(up .. "/empty.txt"))
    srv:wait_log("message from 127%.0%.0%.1:%d+: hello there\n")
  end)

  it("fails for a missing file and refuses one over 2 GiB - 1 without sending it", function()
    local sparse = work .. "/huge.bin"
    sh("truncate -s 2147483648 " .. q(sparse))
    local out, rc = client(q(sparse) .. " " .. q(work .. "/missing.bin"))
    assert.equals(1, rc, out)
    assert.matches("huge%.bin: 2%.0 GiB is too large", out)
    assert.matches("missing%.bin: cannot open", out)
    assert.is_nil(srv:log():match('"huge%.bin"'))
    assert.is_nil(io.open(up .. "/huge.bin", "rb"))
    os.remove(sparse)
  end)
end)
