-- hotsock.json in a real HTTP script, req.ip over IPv4 and IPv6, and on_http_error shaping
-- the core's own 400/413/431/500 answers (exact bytes but the Date line).
local hs = require "hsserver"

local function exchange(srv, n, request)
  local c = srv:tcp(n)
  assert(c:send(request))
  local all = hs.recv_all(c)
  c:close()
  return (all:gsub("Date: [^\r]*\r\n", ""))
end

local function json_response(status, body)
  local reason = ({ [200] = "OK", [400] = "Bad Request", [413] = "Content Too Large",
                    [431] = "Request Header Fields Too Large",
                    [500] = "Internal Server Error" })[status]
  return ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" ..
          "Connection: close\r\n\r\n%s"):format(status, reason, #body, body)
end

local function post(path, body)
  return ("POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
    :format(path, #body, body)
end

local function get(path)
  return ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"):format(path)
end

describe("JSON API", function()
  local srv
  setup(function()
    srv = hs.start { "tests/fixtures/json_api.lua", "--listen", "tcp://127.0.0.1:0",
      "--listen", "tcp://[::1]:0", "--control", "none" }
  end)
  teardown(function() srv:stop() end)

  it("round-trips JSON: keys sorted, empty arrays kept, null kept, '/' not escaped", function()
    assert.equals(json_response(200, '{"a":"x/y","b":[],"e":{},"n":null,"u":"é😀\\n"}'),
      exchange(srv, 1, post("/echo", '{"n":null,"b":[],"a":"x\\/y","e":{},"u":"\\u00e9\\ud83d\\ude00\\n"}')))
    assert.equals(json_response(200, '[1,-2.5,1e+300,9223372036854775807,true,false]'),
      exchange(srv, 1, post("/echo", '[1, -2.5, 1e300, 9223372036854775807, true, false]')))
    assert.equals(json_response(200, '[[]]'), exchange(srv, 1, post("/echo", ' [ [ ] ] ')))
  end)

  it("answers decode errors with what and where", function()
    local cases = {
      { "[1,]", "json: unexpected character at byte 4" },
      { '{"a" 1}', "json: expected ':' at byte 6" },
      { "01", "json: leading zero in number at byte 1" },
      { '"\\ud800"', "json: lone surrogate in \\\\u escape at byte 2" },
      { '"\255"', "json: invalid UTF-8 in string at byte 2" },
      { "[1] x", "json: trailing characters at byte 5" },
      { "", "json: unexpected end at byte 1" },
      { ("["):rep(201), "json: too deeply nested at byte 201" },
      { "1e999", "json: number out of range at byte 1" },
    }
    for _, case in ipairs(cases) do
      assert.equals(json_response(400, ('{"error":"%s"}'):format(case[2])),
        exchange(srv, 1, post("/echo", case[1])))
    end
  end)

  it("refuses to encode cycles, NaN and functions", function()
    assert.equals(json_response(200, '{"error":"json: cycle in table","text":null}'),
      exchange(srv, 1, get("/bad?what=cycle")))
    assert.equals(json_response(200, '{"error":"json: cannot encode NaN","text":null}'),
      exchange(srv, 1, get("/bad?what=nan")))
    assert.equals(json_response(200, '{"error":"json: cannot encode a function","text":null}'),
      exchange(srv, 1, get("/bad?what=function")))
  end)

  it("gives req.ip without the port, over IPv4 and IPv6", function()
    assert.equals(json_response(200, '{"ip":"127.0.0.1"}'), exchange(srv, 1, get("/ip")))
    assert.equals(json_response(200, '{"ip":"::1"}'), exchange(srv, 2, get("/ip")))
  end)

  it("lets on_http_error shape the core's 400, 413, 431 and 500 answers", function()
    assert.equals(json_response(400, '{"error":400,"ip":"127.0.0.1","path":null}'),
      exchange(srv, 1, "NOT HTTP\r\n\r\n"))
    assert.equals(json_response(413, '{"error":413,"ip":"127.0.0.1","path":"/echo"}'),
      exchange(srv, 1, post("/echo", ("x"):rep(2000))))
    local many = {}
    for i = 1, 200 do many[i] = "X-H" .. i .. ": v\r\n" end
    assert.equals(json_response(431, '{"error":431,"ip":"::1","path":null}'),
      exchange(srv, 2, "GET / HTTP/1.1\r\nHost: t\r\n" .. table.concat(many) .. "\r\n"))
    assert.equals(json_response(500, '{"error":500,"ip":"127.0.0.1","path":"/boom"}'),
      exchange(srv, 1, get("/boom")))
    assert.is_true(srv:alive())
  end)

  it("keeps the default answer when on_http_error sends nothing", function()
    assert.equals("HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n" ..
      "Content-Length: 18\r\nConnection: close\r\n\r\nContent Too Large\n",
      exchange(srv, 1, post("/plain-errors", ("x"):rep(2000))))
  end)
end)
