-- The control socket seen from the command line: one socket per instance by default,
-- `hotsock reload`/`stats` finding theirs by the serve arguments, never guessing between
-- several, saying in words when no server runs, and the exit status rule of --help.
local hs = require "hsserver"

local bin = hs.shquote(hs.bin)

-- Runs `hotsock ARGS` with XDG_RUNTIME_DIR set to xdg; returns output (stdout and stderr)
-- and the exit status.
local function cli(xdg, args)
  return hs.run(("XDG_RUNTIME_DIR=%s %s %s 2>&1"):format(hs.shquote(xdg), bin, args))
end

-- Starts `hotsock serve ARGS...` with the default control socket under xdg.
local function serve(xdg, args, opts)
  opts = opts or {}
  opts.prefix = "XDG_RUNTIME_DIR=" .. hs.shquote(xdg)
  return hs.start(args, opts)
end

-- A copy of scripts/echo.lua under dir, named name, so instances have files of their own.
local function script(dir, name)
  local path = dir .. "/" .. name
  hs.write(path, hs.read_file("scripts/echo.lua"))
  return path
end

-- Log lines without their timestamp and worker tag.
local function messages(text, pattern)
  local found = {}
  for l in text:gmatch("[^\n]+") do
    local m = l:match("^%S+ %a+%s+(.*)$") or l
    m = m:gsub("^w%d+ ", "")
    if m:match(pattern) then found[#found + 1] = m end
  end
  return found
end

describe("with no server running", function()
  local xdg
  before_each(function() xdg = hs.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. hs.shquote(xdg)) end)

  it("reload and stats say so, naming the socket they looked for (exit 1)", function()
    local out, rc = cli(xdg, "reload")
    assert.equals(1, rc, out)
    assert.equals(("hotsock reload: no hotsock is running here (no control socket in %s/hotsock)\n")
      :format(xdg), out)
    out, rc = cli(xdg, "stats scripts/echo.lua")
    assert.equals(1, rc, out)
    assert.matches("^hotsock stats: no hotsock is running here %(no control socket at " ..
      xdg:gsub("%p", "%%%0") .. "/hotsock/echo%-%x+%.ctl%)\n$", out)
    out, rc = cli(xdg, "reload --control " .. hs.shquote(xdg .. "/x.ctl"))
    assert.equals(1, rc, out)
    assert.equals(("hotsock reload: no hotsock is running here (no control socket at %s/x.ctl)\n")
      :format(xdg), out)
    assert.not_matches("need more input", out, 1, true)
  end)
end)

describe("one control socket per instance", function()
  local xdg, dir, running
  before_each(function()
    xdg, dir, running = hs.tmpdir(), hs.tmpdir(), {}
  end)
  after_each(function()
    for _, srv in ipairs(running) do srv:stop() end
    os.execute("rm -rf " .. hs.shquote(xdg) .. " " .. hs.shquote(dir))
  end)
  local function start(args, opts)
    local srv = serve(xdg, args, opts)
    running[#running + 1] = srv
    return srv
  end

  it("reload SCRIPT reaches that script's server, and no other", function()
    local a, b = script(dir, "alpha.lua"), script(dir, "beta.lua")
    local sa = start { a, "--listen", "tcp://127.0.0.1:0" }
    local sb = start { b, "--listen", "tcp://127.0.0.1:0" }
    for _, srv in ipairs { sa, sb } do
      assert.is_false(srv:log_has("no control socket"), srv:log())
    end
    local out, rc = cli(xdg, "reload " .. hs.shquote(b))
    assert.equals(0, rc, out)
    assert.matches("^ok " .. b:gsub("%p", "%%%0") .. " generation 2 %(%d+%.%d+ ms%)\n$", out)
    assert.is_true(sb:log_has("reload requested on the control socket"))
    assert.is_false(sa:log_has("reload requested on the control socket"))
    -- The same arguments as serve's, options and all, find it too.
    out, rc = cli(xdg, "stats --raw " .. hs.shquote(a) .. " --listen tcp://127.0.0.1:0 --log-level warn")
    assert.equals(0, rc, out)
    assert.matches("script service=1 name=echo path=" .. a:gsub("%p", "%%%0"), out)
  end)

  it("with no argument: the only instance, or a list of all of them and exit 2", function()
    local a, b = script(dir, "alpha.lua"), script(dir, "beta.lua")
    local sa = start { a, "--listen", "tcp://127.0.0.1:0" }
    local out, rc = cli(xdg, "reload")
    assert.equals(0, rc, out)
    assert.matches("^ok " .. a:gsub("%p", "%%%0") .. " generation 2", out)
    local sb = start { b, "--listen", "tcp://127.0.0.1:0" }
    out, rc = cli(xdg, "reload")
    assert.equals(2, rc, out)
    assert.matches("2 hotsock instances are running here; name one", out, 1, true)
    assert.matches("pid " .. sa.pid .. "  " .. a, out, 1, true)
    assert.matches("pid " .. sb.pid .. "  " .. b, out, 1, true)
    -- Neither was reloaded by the ambiguous request.
    assert.is_false(sb:log_has("reload requested"))
    assert.equals(1, #sa:log_lines("reload requested"))
  end)

  it("two servers of one script get a socket each; naming the script lists both", function()
    local a = script(dir, "alpha.lua")
    local s1 = start { a, "--listen", "tcp://127.0.0.1:0" }
    local s2 = start({ a, "--listen", "tcp://127.0.0.1:0" }, { workers = 2 })
    assert.is_false(s2:log_has("no control socket"), s2:log())
    local out, rc = cli(xdg, "reload " .. hs.shquote(a))
    assert.equals(2, rc, out)
    assert.matches("pid " .. s1.pid .. "  " .. a, out, 1, true)
    assert.matches("pid " .. s2.pid .. "  " .. a, out, 1, true)
    -- Each by its own socket; the multi-worker one reports as a single process does.
    local ctl2 = s2:log():match("control socket (%S+)")
    out, rc = cli(xdg, "reload --control " .. hs.shquote(ctl2))
    assert.equals(0, rc, out)
    assert.matches("^ok " .. a:gsub("%p", "%%%0") .. " generation 2 %(%d+%.%d+ ms%)\n$", out)
  end)

  it("a socket left by a killed server is named as such, then taken over", function()
    local a = script(dir, "alpha.lua")
    local s1 = start { a, "--listen", "tcp://127.0.0.1:0" }
    local ctl = s1:log():match("control socket (%S+)")
    s1:kill()
    s1:wait_exit()
    local out, rc = cli(xdg, "reload " .. hs.shquote(a))
    assert.equals(1, rc, out)
    assert.equals(("hotsock reload: no hotsock is running here (%s is left by a server that is gone)\n")
      :format(ctl), out)
    local s2 = start { a, "--listen", "tcp://127.0.0.1:0" }
    assert.equals(ctl, s2:log():match("control socket (%S+)"))
    out, rc = cli(xdg, "reload " .. hs.shquote(a))
    assert.equals(0, rc, out)
  end)

  it("warns, and fails, alike with one process and with workers", function()
    local a = script(dir, "alpha.lua")
    -- The default place cannot be had (a file where the directory should be): a warning.
    local notdir = dir .. "/notdir"
    hs.write(notdir, "")
    local warned = {}
    for _, workers in ipairs { 1, 2 } do
      local srv = serve(notdir, { a, "--listen", "tcp://127.0.0.1:0" }, { workers = workers })
      running[#running + 1] = srv
      warned[workers] = messages(srv:log(), "control socket")
    end
    assert.equals(1, #warned[1])
    assert.matches("^no control socket %(.*%); reload with SIGHUP$", warned[1][1])
    assert.same(warned[1], warned[2])
    -- An explicit --control that another server holds: exit 1 with the same words.
    local held = dir .. "/held.ctl"
    start { a, "--listen", "tcp://127.0.0.1:0", "--control", held }
    local said = {}
    for _, workers in ipairs { 1, 2 } do
      -- (Bounded: a server that carries on without its socket must fail the test, not hang it.)
      local out, rc = hs.run(("timeout 20 %s serve %s --listen tcp://127.0.0.1:0 --control %s "
        .. "--workers %d 2>&1"):format(bin, hs.shquote(a), hs.shquote(held), workers))
      assert.equals(1, rc, out)
      said[workers] = out:match("hotsock: ([^\n]*)")
    end
    assert.equals("cannot use control socket " .. held .. ": another hotsock answers there", said[1])
    assert.equals(said[1], said[2])
  end)
end)

describe("the exit status rule", function()
  it("is one for scripts and config files, and --help states it", function()
    local out, rc = hs.run(bin .. " serve tests/fixtures/no-such-file.lua 2>&1")
    assert.equals(1, rc, out)
    out, rc = hs.run(bin .. " serve --config tests/fixtures/no-such-file.lua 2>&1")
    assert.equals(1, rc, out)
    assert.matches("no-such-file.lua", out, 1, true)
    out, rc = hs.run(bin .. " serve scripts/echo.lua --no-such-option 2>&1")
    assert.equals(2, rc, out)
    out = hs.run(bin .. " --help")
    assert.matches("Exit status: 0 success; 1 a failure at run time", out, 1, true)
  end)

  it("--help names every callback the core knows", function()
    local src = hs.read_file("core/script_decl.c")
    local list = src:match("known_callbacks%[%]%s*=%s*(%b{})") or src:match("\"on_accept\",.-NULL")
    assert.is_truthy(list, "the callback list in core/script_decl.c")
    local help = hs.run(bin .. " --help"):gsub("%s+", " ")
    local n = 0
    for name in list:gmatch("\"(on_[%w_]+)\"") do
      n = n + 1
      assert.matches(name .. "[,)]", help, nil, false)
    end
    assert.is_true(n >= 8)
  end)
end)
