-- greeting over real sockets, exactly as the tutorial client and nc users see it, written
-- with the handler test kit (lua/hotsock/testkit.lua) as a user would.
local kit = require "hotsock.testkit"

-- scripts/greeting_handle.lua is the same behaviour written as handle(conn) with
-- conn:receive(): it must pass every test here too.
for _, script_file in ipairs { "scripts/greeting.lua", "scripts/greeting_handle.lua" } do
  describe("greeting (" .. script_file .. ")", function()
    local raw, line

    setup(function()
      raw = kit.start(script_file)
      line = kit.start(script_file, { framing = "line" })
    end)
    teardown(function()
      assert.is_true(raw:stop())
      assert.is_true(line:stop())
    end)

    it("raw: welcome, then one reply per name sent one at a time, exit closes silently", function()
      local c = raw:connect()
      assert.equals("welcome!", c:receive(8))
      for _, name in ipairs { "Alice", "Bob", "世界" } do
        c:send(name)
        local want = "hello, " .. name .. "!"
        assert.equals(want, c:receive(#want))
      end
      c:send("exit")
      assert.is_true(c:closed())
      c:close()
    end)

    it("raw: a name typed into nc loses its newline", function()
      local c = raw:connect()
      assert.equals("welcome!", c:receive(8))
      c:send_line("Carol")
      assert.equals("hello, Carol!", c:receive(13))
      c:close()
    end)

    it("line: several lines in one packet get one reply each, CRLF accepted", function()
      local c = line:connect()
      assert.equals("welcome!", c:receive(8))
      c:send("Alice\nBob\r\nCarol\n")
      assert.equals("hello, Alice!", c:line())
      assert.equals("hello, Bob!", c:line())
      assert.equals("hello, Carol!", c:line())
      c:send("Da")
      c:send("ve\nexit\nignored\n")
      local rest, how = c:all()
      assert.equals("hello, Dave!\n", rest)
      assert.equals("closed", how)
      c:close()
    end)

    it("takes its texts from options", function()
      local srv = kit.start(script_file, { set = { welcome = "hi there",
                                                             greeting = "bonjour" } })
      local c = srv:connect()
      assert.equals("hi there", c:receive(8))
      c:send("Zoe")
      assert.equals("bonjour, Zoe!", c:receive(13))
      c:close()
      assert.is_true(srv:stop())
    end)

    it("a reload changes the texts for new connections; the stats show both generations",
      function()
        local dir = kit.tmpdir()
        local script = dir .. "/greeting.lua"
        local src = kit.read_file(script_file)
        kit.write(script, src)
        local srv = kit.start(script, { framing = "line" })
        local old = srv:connect()
        assert.equals("welcome!", old:receive(8))
        kit.write(script, (src:gsub('"welcome!"', '"bienvenue!"')))
        local ok, report = srv:reload()
        assert.is_true(ok, report)
        assert.truthy(report:find("generation 2", 1, true), report)
        local new = srv:connect()
        assert.equals("bienvenue!", new:receive(10))
        new:send_line("Ann")
        assert.equals("hello, Ann!", new:line())
        srv:wait_log("reloaded .*greeting.lua: generation 2")
        local gens = {}
        for _, v in ipairs(srv:stats("version")) do gens[tonumber(v.generation)] = v.open end
        assert.are.same({ "1", "1" }, gens)
        old:close()
        new:close()
        assert.is_true(srv:stop())
        os.execute("rm -rf " .. kit.shquote(dir))
      end)
  end)
end
