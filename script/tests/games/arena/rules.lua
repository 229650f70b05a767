-- Small helpers shared by the arena: clamping and a deterministic generator, so a match
-- replays identically from the same seed.
local M = {}

function M.clamp(v, lo, hi)
  if type(v) ~= "number" then
    return lo < 0 and 0 or lo
  end
  v = math.floor(v)
  if v < lo then
    return lo
  elseif v > hi then
    return hi
  end
  return v
end

-- Park-Miller minimal standard generator: returns the new seed and a value in [0, n).
function M.random(seed, n)
  seed = (seed * 48271) % 2147483647
  return seed, seed % n
end

return M
