-- An open 2,000 x 2,000 world that players walk around in: 20 x 20 zones of 100 units, each
-- player seeing the 3 x 3 zones around their own. Players spawn at a random spot and each
-- `world.input` {dx, dy} (each -1, 0 or 1) moves them one step; the world does nothing else,
-- so the load is the engine's: zone ticks, inputs, crossings, interest and `world.tick`.
game_type          = "world"
match_size         = 1
max_players        = 100000
tick_rate          = 50
grid_size          = 20
zone_size          = 100
view_radius        = 1
-- A delta every other tick: 10 per second, the rate players send input at.
broadcast_interval = 2

local SIZE = 2000
local STEP = 4

local function clamp(v, lo, hi)
  if v < lo then return lo elseif v > hi then return hi end
  return v
end

local function unit(v)
  if type(v) ~= "number" then return 0 end
  if v > 0 then return 1 elseif v < 0 then return -1 end
  return 0
end

function init(config) return { walkers = 0 } end

function join(player_id, state)
  state.walkers = state.walkers + 1
  return state
end

function leave(player_id, state)
  state.walkers = state.walkers - 1
  return state
end

function spawn_position(player_id, state)
  return { x = math.random(0, SIZE - 1), y = math.random(0, SIZE - 1) }
end

function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then
    me.x = clamp(me.x + unit(input.dx) * STEP, 0, SIZE - 1)
    me.y = clamp(me.y + unit(input.dy) * STEP, 0, SIZE - 1)
  end
  return entities
end

function post_tick(tick, state) return state end
