-- The handler every reload measurement reloads (bench/run.lua, reload_latency.lua,
-- reload_instructions.lua): about 300 lines of ordinary code, so compiling is part of what is
-- measured, whose on_message answers "v<gen>". write(path, gen) replaces path atomically (a
-- rename), so the server never reads half a file.
--   local write_script = dofile(BENCH_DIR .. "/reload_script.lua")
return function(path, gen)
  local parts = { "local M = { framing = 'line' }" }
  for i = 1, 60 do
    parts[#parts + 1] = ([[
function M.helper%d(s, n)
  local out = {}
  for k = 1, n do out[#out + 1] = s:upper() .. k end
  return table.concat(out, ",")
end]]):format(i)
  end
  parts[#parts + 1] = ("function M.on_message(c, m) c:send('v%d\\n') end"):format(gen)
  parts[#parts + 1] = "return M"
  local f = assert(io.open(path .. ".new", "w"))
  f:write(table.concat(parts, "\n"))
  f:close()
  assert(os.rename(path .. ".new", path))
end
