-- SVG plots for bench/run.lua: line charts (a value by a numeric x) and grouped bar charts.
-- Written by hand so the bench needs no plotting package; the layout measures its labels
-- (12 px sans-serif is about 7 px a character) and puts the legend in rows under the plot,
-- so long server names are never cut.
local M = {}

local CHAR_W, FONT = 7, 12

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

local function nice_max(v)
  if v <= 0 then return 1 end
  local p = 10 ^ math.floor(math.log(v, 10))
  for _, m in ipairs { 1, 2, 2.5, 5, 10 } do if v <= m * p then return m * p end end
  return 10 * p
end

-- Legend entries laid out in rows of the plot's width: returns the SVG pieces and the height.
local function legend(series, x0, y0, width)
  local out, x, y = {}, x0, y0
  for _, se in ipairs(series) do
    local w = 18 + #se.label * CHAR_W + 16
    if x + w > x0 + width and x > x0 then x, y = x0, y + 20 end
    out[#out + 1] = ([[<rect x="%d" y="%d" width="12" height="12" fill="%s"/>]]):format(x, y, se.color)
    out[#out + 1] = ([[<text x="%d" y="%d">%s</text>]]):format(x + 17, y + 11, esc(se.label))
    x = x + w
  end
  return out, y - y0 + 20
end

-- The frame: title, y axis with 5 grid lines, the legend under the plot area.
-- o: { title, ylabel, xlabel, series = { {label, color, values = {...}} }, fmt = f(v) }
local function frame(o, ymax)
  local W = o.width or 720
  local left, right, top = 70, 20, 36
  local plot_w = W - left - right
  local leg, leg_h = legend(o.series, left, 0, plot_w)
  local plot_h = o.height or 260
  local H = top + plot_h + 48 + leg_h + 10
  local s = {}
  s[#s + 1] = ([[<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ]]
    .. [[font-family="sans-serif" font-size="%d">]]):format(W, H, FONT)
  s[#s + 1] = ([[<rect width="%d" height="%d" fill="white"/>]]):format(W, H)
  s[#s + 1] = ([[<text x="%d" y="22" text-anchor="middle" font-size="14">%s</text>]])
    :format(W // 2, esc(o.title))
  s[#s + 1] = ([[<text transform="translate(14,%d) rotate(-90)" text-anchor="middle">%s</text>]])
    :format(top + plot_h // 2, esc(o.ylabel))
  for i = 0, 5 do
    local y = top + plot_h - plot_h * i / 5
    s[#s + 1] = ([[<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>]])
      :format(left, left + plot_w, y, y)
    s[#s + 1] = ([[<text x="%d" y="%.1f" text-anchor="end">%s</text>]])
      :format(left - 5, y + 4, esc(o.fmt(ymax * i / 5)))
  end
  if o.xlabel then
    s[#s + 1] = ([[<text x="%d" y="%d" text-anchor="middle">%s</text>]])
      :format(left + plot_w // 2, top + plot_h + 38, esc(o.xlabel))
  end
  local legend_y = top + plot_h + 48
  for _, piece in ipairs(leg) do
    s[#s + 1] = piece:gsub('y="(%d+)"', function(y) return ('y="%d"'):format(tonumber(y) + legend_y) end)
  end
  return s, { left = left, top = top, w = plot_w, h = plot_h }
end

local function max_of(series)
  local m = 0
  for _, se in ipairs(series) do
    for _, v in pairs(se.values) do if v > m then m = v end end
  end
  return nice_max(m)
end

-- A line per series over o.xlabels (evenly spaced).
function M.lines(o)
  local ymax = max_of(o.series)
  local s, a = frame(o, ymax)
  local n = #o.xlabels
  local function X(i) return a.left + 30 + (a.w - 60) * (n > 1 and (i - 1) / (n - 1) or 0.5) end
  local function Y(v) return a.top + a.h - a.h * v / ymax end
  for i, l in ipairs(o.xlabels) do
    s[#s + 1] = ([[<text x="%.1f" y="%d" text-anchor="middle">%s</text>]]):format(X(i), a.top + a.h + 18, esc(l))
  end
  for _, se in ipairs(o.series) do
    local d = {}
    for i = 1, n do
      local v = se.values[i]
      if v then
        d[#d + 1] = ("%s%.1f,%.1f"):format(#d == 0 and "M" or "L", X(i), Y(v))
        s[#s + 1] = ([[<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>]]):format(X(i), Y(v), se.color)
      end
    end
    s[#s + 1] = ([[<path d="%s" fill="none" stroke="%s" stroke-width="2"/>]])
      :format(table.concat(d, " "), se.color)
  end
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n") .. "\n"
end

-- A group of bars per x label, one bar per series, each with its value above it.
function M.bars(o)
  local ymax = max_of(o.series)
  local s, a = frame(o, ymax)
  local n, k = #o.xlabels, #o.series
  local gw = a.w / n
  local bw = gw * 0.8 / k
  for i, l in ipairs(o.xlabels) do
    s[#s + 1] = ([[<text x="%.1f" y="%d" text-anchor="middle">%s</text>]])
      :format(a.left + gw * (i - 0.5), a.top + a.h + 18, esc(l))
  end
  for j, se in ipairs(o.series) do
    for i = 1, n do
      local v = se.values[i]
      if v then
        local x = a.left + gw * (i - 1) + gw * 0.1 + bw * (j - 1)
        local h = a.h * v / ymax
        s[#s + 1] = ([[<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>]])
          :format(x, a.top + a.h - h, math.max(bw - 2, 1), h, se.color)
        if bw >= 24 then
          s[#s + 1] = ([[<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>]])
            :format(x + (bw - 2) / 2, a.top + a.h - h - 3, esc(o.fmt(v)))
        end
      end
    end
  end
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n") .. "\n"
end

return M
