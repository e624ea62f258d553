-- The manual cannot drift: every fenced code block of README.md and docs/*.md carries a
-- "<!-- sample: NAME KIND -->" comment, and each is checked by its kind against the real
-- binary. Kinds:
--   handler   a whole script: served on an ephemeral port (its own ports replaced by 0) and
--             poked by POKE[NAME] when there is one; "-- scripts/X.lua" on its first line
--             means it must match that file, comments and spacing aside
--   config    a config file: served (relative paths resolve against a scripts/ link)
--   load      Lua code that runs at a script's load, in a real server
--   fragment  Lua that must compile (as a chunk, or as fields of a table)
--   spec      a busted spec using hotsock.testkit: run, must pass
--   json      must parse; a workspace.library must name the installed types directory
--   output    sample output of `hotsock stats` (headers) or --prometheus (metric names and
--             label sets), compared with the real thing
--   usage, shell  every `hotsock` command's subcommand and flags exist in `hotsock --help`
--   tree      every directory named exists
-- Indented command lines (4 spaces) starting with hotsock or build/hotsock are checked like
-- shell blocks.
local kit = require "hotsock.testkit"
local cjson = require "cjson"

-- The front page and every chapter of the manual.
local function manual_files()
  local files = { "README.md" }
  local list = kit.run("ls docs/*.md 2>/dev/null")
  for f in list:gmatch("[^\n]+") do files[#files + 1] = f end
  return files
end
local ROOT = (kit.run("pwd"):gsub("%s+$", ""))
local BIN = kit.bin:sub(1, 1) == "/" and kit.bin or ROOT .. "/" .. kit.bin

local function samples(file)
  local text = kit.read_file(file)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local found, unmarked, indented = {}, {}, {}
  local i = 1
  while i <= #lines do
    local lang = lines[i]:match("^```(%S*)%s*$")
    if lang then
      local start = i
      local body = {}
      i = i + 1
      while i <= #lines and not lines[i]:match("^```%s*$") do
        body[#body + 1] = lines[i]
        i = i + 1
      end
      local name, kind = (lines[start - 1] or ""):match("^<!%-%- sample: (%S+) (%S+) %-%->$")
      if name then
        found[#found + 1] = { name = name, kind = kind, lang = lang, line = start,
                              code = table.concat(body, "\n") .. "\n" }
      else
        unmarked[#unmarked + 1] = start
      end
    elseif lines[i]:match("^    %S") and (lines[i - 1] == "" or lines[i - 1]:match("^    ")) then
      indented[#indented + 1] = { line = i, text = lines[i] }
    end
    i = i + 1
  end
  return found, unmarked, indented
end

local HELP = kit.run(kit.shquote(BIN) .. " --help")
local SUBCOMMANDS = { serve = true, check = true, reload = true, stats = true, new = true }

-- Checks one command line: a known subcommand, and each --flag documented in --help.
local function check_command(line, where)
  local cmd = line:gsub("^%$%s*", ""):gsub("#.*$", "")
  local sub = cmd:match("^%s*[%w_./]*hotsock%s+(%S+)")
  if not sub then return 0 end
  if not (SUBCOMMANDS[sub] or sub:match("^%-%-")) then return 0 end
  local n = 0
  for flag in cmd:gmatch("%s(%-%-[%w%-]+)") do
    assert.truthy(HELP:find(flag, 1, true), where .. ": " .. flag .. " is not in hotsock --help")
    n = n + 1
  end
  if not sub:match("^%-%-") then
    assert.truthy(HELP:find("hotsock " .. sub, 1, true), where .. ": no subcommand " .. sub)
  end
  return n + 1
end

local function zero_ports(code)
  return (code:gsub("(127%.0%.0%.1):%d+", "%1:0"))
end

local function strip(code)
  return (code:gsub("%-%-[^\n]*", ""):gsub("%s+", ""))
end

local function write_tmp(dir, name, code)
  local path = dir .. "/" .. name
  kit.write(path, code)
  return path
end

-- What each served handler sample must do.
local POKE = {
  ["echo-handler"] = function(srv)
    local c = srv:connect()
    c:send("hi there")
    assert.are.equal("hi there", c:receive(8))
    c:close()
  end,
  ["http-hello"] = function(srv)
    local c = srv:connect()
    c:send("GET /a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local all = c:all()
    assert.truthy(all:match("^HTTP/1%.1 200 OK\r\n"), all)
    assert.truthy(all:find("Content-Type: text/plain\r\n", 1, true), all)
    assert.are.equal("hello /a/b\n", all:match("\r\n\r\n(.*)$"))
    c:close()
  end,
  -- The kit gives a served sample one TCP listener of its own; this one needs its unixgram: too.
  ["unixgram-upper"] = function(_, path)
    local srv = kit.start(path, { listen = { "tcp://127.0.0.1:0",
                                             "unixgram:/tmp/hotsock-manual-upper.sock" } })
    local c = srv:connect()
    c:send_line("hello")
    assert.are.equal("HELLO", c:line())
    c:close()
    assert.is_true(srv:stop())
  end,
  ["health-check"] = function(srv)
    local c = srv:connect()
    c:send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    local head = c:receive(17)
    assert.are.equal("HTTP/1.1 200 OK\r\n", head)
    c:close()
    c = srv:connect()
    c:send("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
    assert.are.equal("hello from 203.0.113.9\n", c:all():match("\r\n\r\n(.*)$"))
    c:close()
  end,
}

local CHECK = {}

function CHECK.handler(s, dir)
  local first = s.code:match("^%-%- (scripts/[%w_]+%.lua)")
  if first then
    assert.are.equal(strip(kit.read_file(first)), strip(s.code),
      s.name .. " differs from " .. first)
  end
  local path = write_tmp(dir, s.name .. ".lua", zero_ports(s.code))
  local srv = kit.start(path)
  if POKE[s.name] then POKE[s.name](srv, path) end
  assert.is_true(srv:stop())
end

function CHECK.config(s, dir)
  os.execute(("mkdir -p %s/conf && ln -s %s/scripts %s/scripts"):format(kit.shquote(dir),
    kit.shquote(ROOT), kit.shquote(dir)))
  local path = write_tmp(dir .. "/conf", "config.lua", zero_ports(s.code))
  local srv = kit.start({ "--config", path, "--control", dir .. "/ctl" })
  local n = 0
  for url in s.code:gmatch('"(%a+://127%.0%.0%.1:%d+)"') do n = n + 1 end
  assert.are.equal(n, #srv.urls, srv:log())
  assert.is_true(srv:stop())
end

function CHECK.load(s, dir)
  local path = write_tmp(dir, s.name .. ".lua", s.code ..
    "\nreturn { on_message = function() end }\n")
  local srv = kit.start(path)
  assert.is_true(srv:stop())
end

function CHECK.fragment(s)
  local ok = load(s.code, s.name, "t")
  if not ok then
    assert(load("return {\n" .. s.code .. "\n}", s.name, "t"), s.name .. " does not compile")
  end
end

function CHECK.spec(s, dir)
  local path = write_tmp(dir, s.name .. "_spec.lua", s.code)
  local out, rc = kit.run(("HOTSOCK_BIN=%s LUA_PATH=%s lua5.4 /usr/bin/busted -o TAP %s 2>&1")
    :format(kit.shquote(BIN), kit.shquote(ROOT .. "/lua/?.lua;;"), kit.shquote(path)))
  assert.are.equal(0, rc, out)
  assert.is_nil(out:find("not ok", 1, true), out)
end

function CHECK.json(s)
  local t = cjson.decode(s.code)
  local lib = t["workspace.library"]
  if lib then
    local cmake = kit.read_file("CMakeLists.txt")
    assert.truthy(cmake:find("DESTINATION share/hotsock/types", 1, true))
    for _, dir in ipairs(lib) do
      assert.truthy(dir:find("share/hotsock/types$"), dir)
    end
  end
end

-- The real stats of a small server, for the output samples.
local real_table, real_prom
local function real_stats(dir)
  if real_table then return end
  local path = write_tmp(dir, "chat.lua",
    "return { name = 'chat', framing = 'line', on_message = function(c, m) c:send(m, '\\n') end }\n")
  local srv = kit.start(path)
  local c = srv:connect()
  c:send_line("x")
  c:line()
  real_table = srv:command("stats")
  real_prom = srv:command("stats --prometheus")
  c:close()
  assert.is_true(srv:stop())
end

function CHECK.output(s, dir)
  real_stats(dir)
  if s.code:find("^hotsock_") then
    local n = 0
    for metric, labels in s.code:gmatch("(hotsock_[%w_]+)(%b{})") do
      local keys = labels:gsub('="[^"]*"', "")
      local pattern = "\n" .. metric .. "{"
      local at = real_prom:find(pattern, 1, true)
      assert.truthy(at, metric .. " is not in the real output")
      local real_labels = real_prom:match("%b{}", at)
      assert.are.equal(real_labels:gsub('="[^"]*"', ""), keys, metric)
      n = n + 1
    end
    assert.is_true(n > 10)
  else
    local headers = 0
    for line in s.code:gmatch("[^\n]+") do
      if line:match("^[A-Z][A-Z ()]+$") or line:match("^[A-Z]+%s+[A-Z]") then
        assert.truthy(real_table:find(line, 1, true), "header not in real output: " .. line)
        headers = headers + 1
      end
    end
    assert.are.equal(4, headers)
  end
end

function CHECK.usage(s)
  local n = 0
  for line in s.code:gmatch("[^\n]+") do
    n = n + check_command(line, s.name)
    for flag in line:gmatch("%-%-[%w%-]+") do
      assert.truthy(HELP:find(flag, 1, true), s.name .. ": " .. flag)
    end
  end
  assert.is_true(n > 0)
end

function CHECK.shell(s)
  for line in s.code:gsub("\\\n", " "):gmatch("[^\n]+") do
    check_command(line, s.name)
  end
end

function CHECK.tree(s)
  for line in s.code:gmatch("[^\n]+") do
    local dir = line:match("^([%w._-]+)/%s")
    local _, rc = kit.run("test -d " .. kit.shquote(dir or "."))
    if dir then assert.are.equal(0, rc, "no directory " .. dir) end
  end
end

-- Every relative link of a manual file names a file that exists, and its #anchor a heading
-- there (GitHub's anchor rules: lowercase, punctuation dropped, spaces to dashes).
local function anchors(file)
  local set = {}
  for h in kit.read_file(file):gmatch("\n#+ ([^\n]+)") do
    local a = h:lower():gsub("[^%w%- _]", ""):gsub(" ", "-")
    set[a] = true
  end
  return set
end

local function check_links(file)
  local bad = {}
  local dir = file:match("^(.*)/") or "."
  for target in kit.read_file(file):gmatch("%]%(([^)%s]+)%)") do
    if not target:match("^%a+:") then
      local path, anchor = target:match("^([^#]*)#?(.*)$")
      local full = path == "" and file or (dir .. "/" .. path)
      local _, rc = kit.run("test -e " .. kit.shquote(full))
      if rc ~= 0 then
        bad[#bad + 1] = target .. " (no such file)"
      elseif anchor ~= "" and full:match("%.md$") and not anchors(full)[anchor] then
        bad[#bad + 1] = target .. " (no such heading)"
      end
    end
  end
  return bad
end

for _, file in ipairs(manual_files()) do
  describe(file .. " samples", function()
    local found, unmarked, indented = samples(file)

    it("are all marked with a sample comment", function()
      assert.are.same({}, unmarked, "fenced blocks without <!-- sample: NAME KIND --> (lines)")
    end)

    it("link only to files and headings that exist", function()
      assert.are.same({}, check_links(file))
    end)

    for _, s in ipairs(found) do
      it(("%s (%s, %s:%d)"):format(s.name, s.kind, file, s.line), function()
        assert.truthy(CHECK[s.kind], "unknown sample kind " .. s.kind)
        local dir = kit.tmpdir()
        local ok, err = pcall(CHECK[s.kind], s, dir)
        os.execute("rm -rf " .. kit.shquote(dir))
        if not ok then error(err, 0) end
      end)
    end

    it("indented command lines use real subcommands and flags", function()
      for _, l in ipairs(indented) do
        check_command(l.text:gsub("\\$", ""), file .. ":" .. l.line)
      end
    end)
  end)
end

describe("the manual as a whole", function()
  it("has at least 15 tested samples", function()
    local n = 0
    for _, file in ipairs(manual_files()) do n = n + #(samples(file)) end
    assert.is_true(n >= 15)
  end)
end)
