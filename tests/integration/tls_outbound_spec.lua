-- Outbound TLS: hotsock.connect("tls://...") and conn:tls_handshake against a local
-- `openssl s_server` (and a Python STARTTLS server): verified with the test CA, a wrong host,
-- a self-signed certificate, verification off. Certificates are made now (no key committed).
local hs = require "hotsock.testkit"

local dir = hs.tmpdir()

local function run_ok(cmd)
  local out, rc = hs.run(cmd .. " 2>&1")
  assert(rc == 0, cmd .. "\n" .. out)
  return out
end

-- A CA, and a server certificate it signs for localhost; a self-signed one besides.
run_ok(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
  "-keyout %s/ca.key -out %s/ca.pem -subj /CN=test-ca"):format(dir, dir))
run_ok(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s/srv.key " ..
  "-out %s/srv.csr -subj /CN=localhost"):format(dir, dir))
hs.write(dir .. "/ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
run_ok(("openssl x509 -req -in %s/srv.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial " ..
  "-days 2 -out %s/srv.pem -extfile %s/ext.cnf"):format(dir, dir, dir, dir, dir))
run_ok(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
  "-keyout %s/self.key -out %s/self.pem -subj /CN=localhost " ..
  "-addext subjectAltName=DNS:localhost"):format(dir, dir))

-- Starts `openssl s_server -www` with cert/key on an ephemeral port: its handle and port.
local function s_server(cert, key)
  local h = io.popen(("exec timeout 60 openssl s_server -accept 127.0.0.1:0 -cert %s -key %s -www " ..
    "-naccept 1 2>&1"):format(cert, key))
  for line in h:lines() do
    local port = line:match("^ACCEPT .*:(%d+)$")
    if port then return h, tonumber(port) end
  end
  error("s_server did not start")
end

describe("outbound tls", function()
  local srv
  setup(function() srv = hs.start("tests/fixtures/tls_outbound.lua") end)
  teardown(function() assert.is_true(srv:stop()) end)

  local function ask(line)
    local c = srv:connect()
    c:send_line(line)
    local answer = c:line()
    c:close()
    return answer
  end

  it("verifies against the test CA, by name and by IP address", function()
    local h, port = s_server(dir .. "/srv.pem", dir .. "/srv.key")
    local got = ask(("get tls://localhost:%d ca=%s/ca.pem"):format(port, dir))
    h:close()
    assert.matches("^ok TLSv1%.3 HTTP/1%.0 200 ok", got)
    h, port = s_server(dir .. "/srv.pem", dir .. "/srv.key")
    got = ask(("get tls://127.0.0.1:%d ca=%s/ca.pem"):format(port, dir))
    h:close()
    assert.matches("^ok TLSv1%.3 HTTP/1%.0 200 ok", got)
  end)

  it("fails a wrong host and a self-signed certificate; the system store knows neither", function()
    local h, port = s_server(dir .. "/srv.pem", dir .. "/srv.key")
    local got = ask(("get tls://127.0.0.1:%d ca=%s/ca.pem sni=other.test"):format(port, dir))
    h:close()
    assert.equals("nil certificate verify failed: hostname mismatch", got)
    h, port = s_server(dir .. "/self.pem", dir .. "/self.key")
    got = ask(("get tls://localhost:%d ca=%s/ca.pem"):format(port, dir))
    h:close()
    assert.equals("nil certificate verify failed: self-signed certificate", got)
    h, port = s_server(dir .. "/srv.pem", dir .. "/srv.key")
    got = ask(("get tls://localhost:%d"):format(port))
    h:close()
    assert.equals("nil certificate verify failed: unable to get local issuer certificate", got)
  end)

  it("verify = false accepts the self-signed certificate", function()
    local h, port = s_server(dir .. "/self.pem", dir .. "/self.key")
    local got = ask(("get tls://localhost:%d verify=false"):format(port))
    h:close()
    assert.matches("^ok TLSv1%.3 HTTP/1%.0 200 ok", got)
  end)

  it("conn:tls_handshake upgrades a plain conn (STARTTLS), verified, or fails cleanly", function()
    for _, case in ipairs {
      { ("ca=%s/ca.pem"):format(dir), "ok echo secret" },
      { ("ca=%s/ca.pem sni=other.test"):format(dir), "nil certificate verify failed: hostname mismatch" },
    } do
      local h = io.popen(("exec timeout 60 python3 tests/integration/helpers/tls_peer.py starttls " ..
        "%s/srv.pem %s/srv.key 2>&1"):format(dir, dir))
      local port = assert(h:read("l"):match("^PORT (%d+)"))
      assert.equals(case[2], ask(("starttls tcp://127.0.0.1:%s %s"):format(port, case[1])))
      h:close()
    end
  end)

  it("a kept tls:// conn goes back only to a connect with the same options", function()
    -- Two connections at once: the kept one, and the one verify = true must make.
    local h = io.popen(("exec timeout 60 python3 tests/integration/helpers/tls_peer.py serve " ..
      "%s/self.pem %s/self.key 2 2>&1"):format(dir, dir))
    local url = "tls://localhost:" .. assert(h:read("l"):match("^PORT (%d+)"))
    local kept = ask("kept " .. url .. " verify=false")
    local id = assert(kept:match("^kept (%d+)$"), kept)
    -- Verification on: the unchecked conn must not be handed back.
    assert.equals("nil certificate verify failed: self-signed certificate", ask("reuse " .. url))
    assert.equals("ok " .. id, ask("reuse " .. url .. " verify=false"))
    h:close()
  end)

  it("a conn upgraded by conn:tls_handshake cannot be kept", function()
    local h = io.popen(("exec timeout 60 python3 tests/integration/helpers/tls_peer.py starttls " ..
      "%s/srv.pem %s/srv.key 2>&1"):format(dir, dir))
    local port = assert(h:read("l"):match("^PORT (%d+)"))
    assert.equals("nil tls upgraded",
      ask(("upgrade_keep tcp://127.0.0.1:%s ca=%s/ca.pem"):format(port, dir)))
    h:close()
  end)

  it("TLS options on a plain URL raise; an unreadable ca file fails", function()
    assert.matches("verify, ca and sni are for tls:// URLs",
      ask("raises tcp://127.0.0.1:1 verify=false"), 1, true)
    assert.equals("nil tls context failed", ask(("get tls://127.0.0.1:1 ca=%s/none.pem"):format(dir)))
  end)
end)
