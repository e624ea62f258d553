-- TLS end to end: tls:// listeners of the real binary against real clients (openssl s_client,
-- Python's ssl, curl, headless Chromium), certificates made now with the openssl CLI into a
-- temporary directory (no key is committed). Python drives what luasocket cannot (TLS):
-- tests/integration/helpers/tls_peer.py.
local hs = require "hotsock.testkit"

local sh = hs.shquote
local PEER = "timeout 60 python3 tests/integration/helpers/tls_peer.py"

local function run_ok(cmd)
  local out, rc = hs.run(cmd .. " 2>&1")
  assert(rc == 0, cmd .. "\n" .. out)
  return out
end

-- A self-signed certificate (its own CA) for name with the subjectAltName san; kind is
-- "ec" (P-256) or "rsa" (2048).
local function make_cert(dir, base, name, san, kind)
  local newkey = kind == "rsa" and "rsa:2048" or "ec -pkeyopt ec_paramgen_curve:P-256"
  run_ok(("openssl req -x509 -newkey %s -nodes -keyout %s/%s.key -out %s/%s.pem -days 2 " ..
    "-subj /CN=%s -addext subjectAltName=%s"):format(newkey, dir, base, dir, base, name, san))
  return dir .. "/" .. base .. ".pem", dir .. "/" .. base .. ".key"
end

local dir = hs.tmpdir()
local cert_a, key_a = make_cert(dir, "a", "localhost", "DNS:localhost,IP:127.0.0.1")
local cert_b, key_b = make_cert(dir, "b", "other.test", "DNS:other.test")
local cert_r, key_r = make_cert(dir, "r", "localhost", "DNS:localhost,IP:127.0.0.1", "rsa")

local function tls_url(pairs_)
  local opts = {}
  for _, p in ipairs(pairs_) do
    opts[#opts + 1] = "cert=" .. p[1]
    opts[#opts + 1] = "key=" .. p[2]
  end
  return "tls://127.0.0.1:0?" .. table.concat(opts, "&")
end

local function script(name, text)
  local path = dir .. "/" .. name .. ".lua"
  hs.write(path, text)
  return path
end

local echo_url = tls_url { { cert_a, key_a }, { cert_b, key_b } }

local function stats_of(srv)
  local out = srv:command("stats --raw")
  return tonumber(out:match("tls_failures=(%d+)")), out
end

describe("tls listeners", function()
  local srv
  before_each(function()
    srv = hs.start("scripts/echo.lua", { listen = echo_url })
  end)
  after_each(function() srv:stop() end)

  it("echo is byte-exact from 1 B to 4 MiB over TLS 1.3 and 1.2 (Python's ssl)", function()
    local port = srv:port("tls")
    for _, v in ipairs { "1.3", "1.2" } do
      local out = run_ok(("%s echo %d %s localhost %s 1 100 16383 16384 16385 65536 1048577 4194304")
        :format(PEER, port, cert_a, v))
      assert.matches(("ok TLSv%s 4194304"):format(v), out, 1, true)
      assert.matches(("ok TLSv%s 1\n"):format(v), out, 1, true)
    end
  end)

  it("openssl s_client completes TLS 1.2 and 1.3 handshakes, verified", function()
    for _, v in ipairs { "1_2", "1_3" } do
      local out = run_ok(("timeout 20 openssl s_client -tls%s -connect 127.0.0.1:%d -servername localhost " ..
        "-CAfile %s -verify_return_error -brief </dev/null"):format(v, srv:port("tls"), cert_a))
      assert.matches("Protocol version: TLSv" .. v:gsub("_", "."), out, 1, true)
      assert.matches("Verification: OK", out, 1, true)
    end
  end)

  it("SNI picks the certificate that covers the name, the first one otherwise", function()
    local port = srv:port("tls")
    local out = run_ok(("timeout 20 openssl s_client -connect 127.0.0.1:%d -servername other.test -CAfile %s " ..
      "-verify_return_error -brief </dev/null"):format(port, cert_b))
    assert.matches("Peer certificate: CN = other.test", out, 1, true)
    out = run_ok(("timeout 20 openssl s_client -connect 127.0.0.1:%d -servername unknown.test " ..
      "-brief </dev/null"):format(port))
    assert.matches("Peer certificate: CN = localhost", out, 1, true)
    out = run_ok(("%s echo %d %s other.test 1.3 5"):format(PEER, port, cert_b))
    assert.matches("ok TLSv1.3 5", out, 1, true)
  end)

  it("refuses renegotiation", function()
    local out = hs.run(("printf 'R\\n' | timeout 20 openssl s_client -tls1_2 -connect 127.0.0.1:%d " ..
      "-CAfile %s 2>&1"):format(srv:port("tls"), cert_a))
    assert.matches("RENEGOTIATING", out, 1, true)
    assert.matches("no renegotiation", out, 1, true)
    assert.matches("ok TLSv1.3 3", run_ok(("%s echo %d %s localhost 1.3 3")
      :format(PEER, srv:port("tls"), cert_a)), 1, true)
  end)

  it("a client's TLS alert closes only its own connection", function()
    local port = srv:port("tls")
    -- One client stays connected through the other's failure.
    local out = run_ok(("%s alert %d %s"):format(PEER, port, cert_b))
    assert.matches("ok client refused", out, 1, true)
    hs.wait_until(function() return stats_of(srv) == 1 end, 10, "the failure to be counted")
    assert.matches("ok TLSv1.3 10", run_ok(("%s echo %d %s localhost 1.3 10")
      :format(PEER, port, cert_a)), 1, true)
    assert.is_true(srv:alive())
  end)
end)

describe("tls: every framing", function()
  local path = script("framed", [[
return {
  name = "framed",
  on_message = function(conn, data) conn:send(#data .. ":" .. data .. "\n") end,
}
]])
  for _, spec in ipairs { "line", "length:u16be", "length:i32le", "fixed:7" } do
    it("carries " .. spec .. " frames cut at record boundaries", function()
      local srv = hs.start(path, { listen = echo_url, framing = spec })
      local out = run_ok(("%s frames %d %s %s"):format(PEER, srv:port("tls"), cert_a, spec))
      assert.matches("ok " .. spec, out, 1, true)
      srv:stop()
    end)
  end
end)

describe("tls: what handlers see", function()
  it("conn:tls() gives version, cipher and SNI; nil on plaintext", function()
    local path = script("tlsinfo", [[
return {
  name = "tlsinfo",
  on_connect = function(conn)
    local t = conn:tls()
    conn:send(t and (t.version .. " " .. (t.sni or "-") .. " " .. tostring(#t.cipher > 0)) or "plain", "\n")
  end,
  on_message = function() end,
}
]])
    local srv = hs.start(path, { listen = { echo_url, "tcp://127.0.0.1:0" } })
    local out = run_ok(("%s line %d %s other.test"):format(PEER, srv:port("tls"), cert_b))
    assert.equals("TLSv1.3 other.test true\n", out)
    local c = srv:connect()
    assert.equals("plain", c:line())
    srv:stop()
  end)

  it("req.tls over HTTPS, ALPN http/1.1 for HTTP scripts, also read after its connection", function()
    local path = script("reqtls", [[
local kept
return {
  name = "reqtls",
  protocol = "http",
  on_request = function(req, res)
    if req.path == "/keep" then kept = req return res:send("kept") end
    local t = (req.path == "/kept" and kept or req).tls -- kept: its connection is gone
    res:send(t and (t.version .. " " .. (t.sni or "-") .. " " .. (t.alpn or "-")) or "plain")
  end,
}
]])
    local srv = hs.start(path, { listen = echo_url })
    local function get(p)
      return run_ok(("curl -sS --cacert %s --resolve localhost:%d:127.0.0.1 https://localhost:%d%s")
        :format(cert_a, srv:port("tls"), srv:port("tls"), p))
    end
    assert.equals("TLSv1.3 localhost http/1.1", get("/"))
    assert.equals("kept", get("/keep"))
    assert.equals("TLSv1.3 localhost http/1.1", get("/kept"))
    srv:stop()
  end)
end)

describe("https: scripts/http.lua over TLS", function()
  local srv, base, upload_dir
  before_each(function()
    upload_dir = hs.tmpdir()
    srv = hs.start("scripts/http.lua", { listen = tls_url { { cert_r, key_r } },
      set = { upload_dir = upload_dir } })
    base = ("https://localhost:%d"):format(srv:port("tls"))
  end)
  after_each(function() srv:stop() end)

  local function curl(args)
    return run_ok(("curl -sS --fail --cacert %s --resolve localhost:%d:127.0.0.1 %s")
      :format(cert_r, srv:port("tls"), args))
  end

  -- Restarts srv on a root of its own holding big.bin, made by the shell command make (given
  -- the file's path); returns the root.
  local function serve_big(make)
    local root = hs.tmpdir()
    run_ok(make:format(sh(root .. "/big.bin")))
    srv:stop() -- this one serves examples/www; after_each stops the one made here
    srv = hs.start("scripts/http.lua", { listen = tls_url { { cert_r, key_r } },
      set = { root = root } })
    return root
  end

  -- A file over the in-memory size goes out from the file cache's shared descriptor, read
  -- with pread by every response over TLS (core/conn_tls_file.c).
  it("a large file comes whole twice on one connection, and a range of it", function()
    local root = serve_big("head -c 204800 /dev/urandom > %s")
    local url = ("https://localhost:%d/big.bin"):format(srv:port("tls"))
    local want = hs.read_file(root .. "/big.bin")
    assert.equals(want .. want, curl(url .. " " .. url))
    assert.equals(want:sub(1001, 2000), curl("-r 1000-1999 " .. url))
    -- Pipelined: the responses after the file wait behind it, in order.
    local sha = run_ok("sha256sum " .. root .. "/big.bin"):match("^(%x+)")
    local not_found = run_ok("printf 'not found\\n' | sha256sum"):match("^(%x+)")
    assert.equals(("HTTP/1.1 200 OK 204800 %s\nHTTP/1.1 404 Not Found 10 %s\n" ..
      "HTTP/1.1 200 OK 204800 %s\n"):format(sha, not_found, sha),
      run_ok(("%s pipelined %d %s /big.bin /none /big.bin"):format(PEER, srv:port("tls"), cert_r)))
  end)

  -- Under TLS a file is read with pread as the connection drains, never mapped: a mapping
  -- would raise SIGBUS once truncation took its pages, and kill every connection with it.
  it("a large file truncated in place under a response ends only that response", function()
    local root = serve_big("truncate -s 64M %s")
    local out = run_ok(("%s shrink %d %s /big.bin %s"):format(PEER, srv:port("tls"), cert_r,
      sh(root .. "/big.bin")))
    assert.equals("ok status HTTP/1.1 200 OK, body part of 67108864\n", out)
    srv:wait_log("a file being sent ended at byte %d+, %d+ bytes short %(truncated in place%?", 10)
    assert.truthy(srv:alive())
    hs.write(root .. "/small.txt", "still here\n")
    assert.equals("still here\n", curl(("https://localhost:%d/small.txt"):format(srv:port("tls"))))
  end)

  it("curl --cacert fetches / and /test.jpg byte for byte, and uploads", function()
    assert.equals(hs.read_file("examples/www/index.html"), curl(base .. "/"))
    local jpg = dir .. "/got.jpg"
    curl(("-o %s %s/test.jpg"):format(jpg, base))
    assert.equals(hs.read_file("examples/www/test.jpg"), hs.read_file(jpg))
    local big = dir .. "/big.bin"
    run_ok("head -c 3000000 /dev/urandom > " .. big)
    local out = curl(("-T %s %s/upload/big.bin"):format(big, base))
    local sha = run_ok("sha256sum " .. big):match("^(%x+)")
    assert.matches('"bytes": 3000000, "sha256": "' .. sha .. '"', out, 1, true)
    assert.equals(hs.read_file(big), hs.read_file(upload_dir .. "/big.bin"))
    -- Keep-alive: several requests on one TLS connection.
    out = curl(("-w '%%{num_connects}\\n' %s/hello %s/hello"):format(base, base))
    assert.equals("hello from hotsock\n1\nhello from hotsock\n0\n", out)
  end)

  it("new connections in a row: each handshake (resumed by ticket) and close waits on nothing", function()
    -- 50 cycles of handshake, GET with Connection: close and the server's close take ~0.1 s;
    -- one that waits on a timer (an event not re-armed after the handshake, the 10 s
    -- handshake timeout, the 2 s linger) or a server that stops resuming sessions fails.
    for _, v in ipairs { "1.3", "1.2" } do
      local out = run_ok(("%s cycles %d %s 50 %s"):format(PEER, srv:port("tls"), cert_r, v))
      local ms, resumed = out:match("slowest ([%d.]+) ms, (%d+) resumed")
      assert(ms and tonumber(ms) < 1500, out)
      assert.equals("49", resumed, out)
    end
  end)

  it("headless Chromium loads the page and its picture over HTTPS", function()
    local chromium = io.open("/usr/bin/chromium", "rb")
    if not chromium then
      pending("chromium is not installed (/usr/bin/chromium)")
      return
    end
    chromium:close()
    local profile = hs.tmpdir()
    local shot = profile .. "/shot.png"
    -- The test certificate is self-signed: Chromium is told to accept it with
    -- --ignore-certificate-errors (a throwaway profile; nothing else is trusted this way).
    local out = hs.run(("timeout 90 /usr/bin/chromium --headless --no-sandbox --disable-gpu " ..
      "--ignore-certificate-errors --disable-background-networking --disable-component-update " ..
      "--disable-sync --no-first-run --user-data-dir=%s --window-size=800,600 --screenshot=%s " ..
      "https://127.0.0.1:%d/ 2>&1"):format(sh(profile), sh(shot), srv:port("tls")))
    srv:wait_log('"GET /test%.jpg HTTP/1%.1" 200 %d+', 30)
    assert.matches('"GET / HTTP/1%.1" 200', srv:log())
    assert.equals("\137PNG", hs.read_file(shot):sub(1, 4), out)
  end)
end)

describe("tls: bad input", function()
  local function rss_kib(pid)
    local f = assert(io.open("/proc/" .. pid .. "/status"))
    local kib = tonumber(f:read("a"):match("VmRSS:%s+(%d+)"))
    f:close()
    return kib
  end

  it("plaintext, a stalled handshake, garbage records and a truncated close hurt only their own connection", function()
    local srv = hs.start("scripts/echo.lua", { listen = echo_url,
      args = { "--tls-handshake-timeout", "0.5" } })
    local port = srv:port("tls")
    -- Plaintext HTTP on the TLS port: the handshake fails, the socket closes.
    local host, p = "127.0.0.1", port
    local c = require("socket").tcp()
    c:settimeout(5)
    assert(c:connect(host, p))
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    -- At most an alert, never an HTTP answer; a reset may come too (our bytes went unread).
    local data, _, partial = c:receive("*a")
    assert.is_truthy(#(data or partial) < 64)
    c:close()
    local out = run_ok(("%s timeout %d"):format(PEER, port))
    local took = tonumber(out:match("closed after ([%d.]+) s"))
    assert.is_true(took >= 0.3 and took < 5, out)
    assert.matches("ok closed on a bad record", run_ok(("%s garbage %d %s"):format(PEER, port, cert_a)),
      1, true)
    assert.matches("ok closed after a truncated stream",
      run_ok(("%s truncate %d %s"):format(PEER, port, cert_a)), 1, true)
    assert.matches("ok TLSv1.3 4", run_ok(("%s echo %d %s localhost 1.3 4"):format(PEER, port, cert_a)),
      1, true)
    hs.wait_until(function() return stats_of(srv) == 2 end, 10, "two failed handshakes counted")
    local raw = srv:command("stats --prometheus")
    assert.matches('hotsock_listener_tls_handshake_failures_total{listener="tls://127.0.0.1:' ..
      port .. '"', raw, 1, true)
    -- No failed handshake is logged above debug.
    assert.same({}, srv:log_lines("handshake"))
    srv:stop()
  end)

  it("1,000 half-done handshakes: others are served, memory returns, nothing is logged", function()
    local srv = hs.start("scripts/echo.lua", { listen = echo_url,
      args = { "--max-per-peer", "0", "--tls-handshake-timeout", "30" } })
    local port = srv:port("tls")
    run_ok(("%s echo %d %s localhost 1.3 100"):format(PEER, port, cert_a)) -- warm up
    local before = rss_kib(srv.pid)
    local log_before = #srv:log()
    local out = run_ok(("%s halfdone %d 1000 %s"):format(PEER, port, cert_a))
    assert.matches("ok holding 1000 half%-done handshakes", out)
    assert.matches("ok a full client served meanwhile", out, 1, true)
    hs.wait_until(function()
      return srv:command("stats --raw"):match("listener [^\n]* open=0 ")
    end, 20, "every connection to close")
    local after = rss_kib(srv.pid)
    if os.getenv("ASAN_OPTIONS") then
      -- ASan's allocator keeps what it freed: a second flood must reuse it, not add to it.
      before = after
      run_ok(("%s halfdone %d 1000 %s"):format(PEER, port, cert_a))
      hs.wait_until(function()
        return srv:command("stats --raw"):match("listener [^\n]* open=0 ")
      end, 20, "every connection to close")
      after = rss_kib(srv.pid)
    end
    -- Freed to the allocator: a little may stay in its free lists, not 1,000 sessions' worth.
    assert.is_true(after - before < 8 * 1024, ("RSS %d KiB before, %d KiB after"):format(before, after))
    assert.equals(log_before, #srv:log())
    srv:stop()
  end)

  it("caps the handshakes in progress", function()
    local srv = hs.start("scripts/echo.lua", { listen = echo_url,
      args = { "--max-per-peer", "0", "--tls-max-handshakes", "5" } })
    local held = {}
    for i = 1, 5 do
      held[i] = require("socket").tcp()
      held[i]:settimeout(5)
      assert(held[i]:connect("127.0.0.1", srv:port("tls")))
    end
    hs.wait_until(function()
      return srv:command("stats --raw"):match("accepted=5 ")
    end, 10, "five handshakes in progress")
    local c = require("socket").tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv:port("tls")))
    local _, err = c:receive(1)
    assert.equals("closed", err) -- refused at once
    c:close()
    assert.matches("limited=1 ", srv:command("stats --raw"))
    for _, h in ipairs(held) do h:close() end
    hs.wait_until(function() return srv:command("stats --raw"):match("open=0 ") end, 10, "closes")
    assert.matches("ok TLSv1.3 2", run_ok(("%s echo %d %s localhost 1.3 2")
      :format(PEER, srv:port("tls"), cert_a)), 1, true)
    srv:stop()
  end)
end)

describe("tls: certificates reloaded", function()
  local function subject(port)
    local out = run_ok(("timeout 20 openssl s_client -connect 127.0.0.1:%d -servername localhost -brief " ..
      "</dev/null"):format(port))
    return out:match("Peer certificate: (CN = [^\n]+)")
  end

  it("a reload serves renewed files to new handshakes; a bad pair changes nothing", function()
    local rdir = hs.tmpdir()
    local cert, key = make_cert(rdir, "live", "one.test", "DNS:localhost")
    local srv = hs.start("scripts/echo.lua", { listen = tls_url { { cert, key } } })
    local port = srv:port("tls")
    assert.equals("CN = one.test", subject(port))
    -- A live session across the reloads: Python holds it and echoes at the end.
    make_cert(rdir, "live", "two.test", "DNS:localhost")
    local ok, report = srv:reload()
    assert.is_true(ok, report)
    assert.equals("CN = two.test", subject(port))
    -- A key of another certificate: the reload fails naming the file, nothing changes.
    make_cert(rdir, "other", "three.test", "DNS:localhost")
    run_ok(("cp %s/other.key %s"):format(rdir, key))
    ok, report = srv:reload()
    assert.is_false(ok)
    assert.matches(key .. ": key does not match the certificate " .. cert, report, 1, true)
    assert.equals("CN = two.test", subject(port))
    srv:stop()
  end)

  it("--watch reloads when a certificate file changes", function()
    local rdir = hs.tmpdir()
    local cert, key = make_cert(rdir, "w", "one.test", "DNS:localhost")
    local srv = hs.start("scripts/echo.lua", { listen = tls_url { { cert, key } },
      args = { "--watch" } })
    make_cert(rdir, "w", "two.test", "DNS:localhost")
    hs.wait_until(function() return subject(srv:port("tls")) == "CN = two.test" end, 10,
      "the renewed certificate to be served")
    srv:stop()
  end)

  it("a config file may give a listener as {url =, cert =, key =}, paths relative to it", function()
    local cdir = hs.tmpdir()
    make_cert(cdir, "c", "localhost", "DNS:localhost,IP:127.0.0.1")
    local cfg = cdir .. "/hotsock.lua"
    hs.write(cfg, ([[
return { services = { { script = %q,
  listen = { { url = "tls://127.0.0.1:0", cert = "c.pem", key = "c.key" } } } } }
]]):format(io.popen("pwd"):read("l") .. "/scripts/echo.lua"))
    local srv = hs.start({ "--config", cfg, "--control", cdir .. "/ctl" })
    assert.matches("ok TLSv1.2 7", run_ok(("%s echo %d %s localhost 1.2 7")
      :format(PEER, srv:port("tls"), cdir .. "/c.pem")), 1, true)
    srv:stop()
  end)

  it("hotsock check prints each certificate and fails on a bad pair", function()
    local out = run_ok(("%s check scripts/echo.lua --listen %s"):format(sh(hs.bin), sh(echo_url)))
    assert.matches("cert " .. cert_a .. ": subject /CN=localhost; SANs localhost, 127.0.0.1; expires ",
      out, 1, true)
    assert.matches("cert " .. cert_b .. ": subject /CN=other.test; SANs other.test; expires ", out, 1,
      true)
    local bad, rc = hs.run(("%s check scripts/echo.lua --listen %s 2>&1"):format(sh(hs.bin),
      sh(tls_url { { cert_a, key_b } })))
    assert.equals(1, rc)
    assert.matches(key_b .. ": key does not match the certificate " .. cert_a, bad, 1, true)
  end)
end)
