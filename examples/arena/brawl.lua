-- brawl: eight players matched by skill; one state for everyone, encoded once per tick.
match_size = 8
max_players = 8
strategy = "skill_based"
tick_rate = 100
-- Quick-play lobbies start with two players; the matchmaker fills all eight.
min_players = 2
reconnect = { grace_period = 30000 }
state_strategy = "shared"
-- A drop-in lobby: `match.find_or_create` may place players here (off by default, as in asobi).
quick_play = true

local arena = require("arena")

function init(config) return arena.init(config) end
function join(player_id, state) return arena.join(player_id, state) end
function leave(player_id, state) return arena.leave(player_id, state) end
function handle_input(player_id, input, state) return arena.handle_input(player_id, input, state) end
function tick(state) return arena.tick(state) end
function get_state(state) return arena.view(state) end
