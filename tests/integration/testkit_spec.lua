-- The handler test kit's own helpers (lua/hotsock/testkit.lua), where a spec found them wrong.
local kit = require "hotsock.testkit"

describe("kit.read_file", function()
  it("reads a file whole, and a missing one as empty", function()
    local dir = kit.tmpdir()
    kit.write(dir .. "/f", "a\0b")
    assert.equals("a\0b", kit.read_file(dir .. "/f"))
    assert.equals("", kit.read_file(dir .. "/missing"))
  end)

  -- upgrade_spec once failed on a /proc/PID/stat whose process was reaped between the open and
  -- the read; a directory fails the same way: it opens, and the read fails.
  it("reads a file that opens but cannot be read as empty", function()
    assert.equals("", kit.read_file(kit.tmpdir()))
  end)
end)
