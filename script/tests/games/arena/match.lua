-- Arena: players move on a grid and pick up coins. The first player to reach the target
-- score wins; when the time limit runs out, the highest score wins.
--
-- Client input:  { action = "move", dx = -1|0|1, dy = -1|0|1 }  or  { action = "stop" }
-- Broadcasts:    match.player_joined, match.player_left, match.coin_taken
-- Direct:        game.send(player, { kind = "score", score = n }) when a player scores

match_size = 2
max_players = 16
strategy = "fill"
tick_rate = 100
bots = { script = "bots/chaser.lua", min_players = 2 }

local rules = require("rules")

local function count(t)
  local n = 0
  for _ in pairs(t) do
    n = n + 1
  end
  return n
end

function init(config)
  return {
    width = config.width or 32,
    height = config.height or 32,
    target = config.target or 5,
    time_limit = config.time_limit or 600,
    seed = config.seed or 7,
    tick = 0,
    players = {},
    order = {}, -- player ids in join order: a stable, sort-free order for get_state
    coins = {},
  }
end

function join(player_id, state, ctx)
  if count(state.players) >= max_players then
    return nil, "arena_full"
  end
  local slot = count(state.players)
  state.players[player_id] = {
    x = (slot * 7) % state.width,
    y = (slot * 3) % state.height,
    dx = 0,
    dy = 0,
    score = 0,
    name = ctx.name or player_id,
  }
  state.order[#state.order + 1] = player_id
  game.broadcast("player_joined", { id = player_id, players = count(state.players) })
  return state
end

function leave(player_id, state)
  state.players[player_id] = nil
  for i, id in ipairs(state.order) do
    if id == player_id then
      table.remove(state.order, i)
      break
    end
  end
  game.broadcast("player_left", { id = player_id })
  return state
end

function handle_input(player_id, input, state)
  local p = state.players[player_id]
  if not p then
    return state
  end
  if input.action == "move" then
    p.dx = rules.clamp(input.dx or 0, -1, 1)
    p.dy = rules.clamp(input.dy or 0, -1, 1)
  elseif input.action == "stop" then
    p.dx, p.dy = 0, 0
  end
  return state
end

local function spawn_coin(state)
  local x, y
  state.seed, x = rules.random(state.seed, state.width)
  state.seed, y = rules.random(state.seed, state.height)
  state.coins[#state.coins + 1] = { x = x, y = y }
end

local function finish(state, reason)
  local best, best_score = nil, -1
  for id, p in pairs(state.players) do
    if p.score > best_score or (p.score == best_score and id < best) then
      best, best_score = id, p.score
    end
  end
  state._finished = true
  state._result = { status = "completed", reason = reason, winner = best, score = best_score, ticks = state.tick }
end

function tick(state)
  state.tick = state.tick + 1
  if state.tick % 5 == 1 and #state.coins < 8 then
    spawn_coin(state)
  end
  for _, id in ipairs(state.order) do
    local p = state.players[id]
    p.x = rules.clamp(p.x + p.dx, 0, state.width - 1)
    p.y = rules.clamp(p.y + p.dy, 0, state.height - 1)
    for i = #state.coins, 1, -1 do
      local c = state.coins[i]
      if c.x == p.x and c.y == p.y then
        table.remove(state.coins, i)
        p.score = p.score + 1
        game.broadcast("coin_taken", { by = id, x = c.x, y = c.y })
        game.send(id, { kind = "score", score = p.score })
      end
    end
    if p.score >= state.target then
      finish(state, "target")
      return state
    end
  end
  if state.tick >= state.time_limit then
    finish(state, "time")
  end
  return state
end

function get_state(player_id, state)
  local others = {}
  for i, id in ipairs(state.order) do
    local p = state.players[id]
    others[i] = { id = id, x = p.x, y = p.y, score = p.score }
  end
  local me = state.players[player_id]
  return {
    tick = state.tick,
    you = me and { x = me.x, y = me.y, score = me.score } or nil,
    players = others,
    coins = state.coins,
  }
end
