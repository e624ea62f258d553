-- luacheck (Debian lua-check) over every Lua file of ours: zero warnings, as for the C.
std = "lua54"
max_line_length = 120

-- The handler API's callbacks take arguments a given handler may not use.
unused_args = false

exclude_files = {
  "build*/**",
  -- LuaCATS declarations for editors: stubs, never run.
  "lua/types/**",
  -- Deliberately broken scripts that tests feed to the loader.
  "tests/fixtures/broken_syntax.lua",
  "tests/fixtures/error_at_load.lua",
}

-- Specs run under busted.
-- Specs carry whole requests and log patterns as one literal line each.
files["tests/**/*_spec.lua"] = { std = "+busted", max_line_length = 140 }
files["tests/integration/helpers/**"] = { std = "+busted" }
files["tests/spec/helpers/**"] = { std = "+busted" }
files["lua/templates/handler_spec.lua"] = { std = "+busted" }

-- Peers' scripts run inside HAProxy and wrk, which provide or read these globals.
files["bench/peers/haproxy_*.lua"] = { read_globals = { "core" } }
files["bench/peers/wrk_*.lua"] = { globals = { "done", "request", "response", "setup", "init" } }

-- The hostile handler does on purpose what luacheck warns of (an unused require, a write to a
-- library table, a table only filled): those are what the sandbox spec tests.
files["tests/fixtures/sandbox.lua"] = { ignore = { "211", "142", "241" } }
