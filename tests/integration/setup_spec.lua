-- The two README commands install what they say: the demo only what the server and its
-- clients need, the test command everything else, and the README names every package.
local kit = require "hotsock.testkit"

local function packages(which)
  local out, rc = kit.run("bash .ci/setup --list " .. (which or ""))
  assert.are.equal(0, rc)
  local set, list = {}, {}
  for p in out:gmatch("%S+") do
    set[p] = true
    list[#list + 1] = p
  end
  return set, list
end

describe(".ci/setup", function()
  it("installs no test tool for the demo", function()
    local demo = packages("demo")
    for _, tool in ipairs({ "libcmocka-dev", "lua-busted", "lua-check", "clang", "chromium",
                            "libfuzzer-14-dev", "slowhttptest", "valgrind", "strace" }) do
      assert.is_nil(demo[tool], tool .. " is in the demo's list")
    end
    assert.truthy(demo["libevent-dev"] and demo["liblua5.4-dev"] and demo["libssl-dev"])
  end)

  it("installs for the tests everything the demo has, and more", function()
    local demo = packages("demo")
    local all = packages()
    for p in pairs(demo) do assert.truthy(all[p], p) end
    assert.truthy(all["libcmocka-dev"] and all["lua-busted"])
  end)

  it("has every package named in README's Dependencies and why", function()
    local readme = kit.read_file("README.md")
    local deps = readme:match("## Dependencies and why(.*)$")
    local _, list = packages()
    for _, p in ipairs(list) do
      assert.truthy(deps:find("`" .. p .. "`", 1, true), p .. " is not explained in the README")
    end
  end)

  it("is what the demo runs", function()
    assert.truthy(kit.read_file("examples/demo.sh"):find("bash .ci/setup demo\n", 1, true))
    assert.truthy(kit.read_file("examples/demo.sh"):find("-DHOTSOCK_BUILD_TESTS=OFF", 1, true))
  end)
end)
