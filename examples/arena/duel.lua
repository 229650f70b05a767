-- duel: two players, each gets its own view of the state (per_player).
match_size = 2
max_players = 2
strategy = "fill"
tick_rate = 100
-- A dropped player keeps their seat for 30 s (asobi's default: a disconnect is a leave).
reconnect = { grace_period = 30000 }

local arena = require("arena")

function init(config) return arena.init(config) end
function join(player_id, state) return arena.join(player_id, state) end
function leave(player_id, state) return arena.leave(player_id, state) end
function handle_input(player_id, input, state) return arena.handle_input(player_id, input, state) end
function tick(state) return arena.tick(state) end
function get_state(player_id, state) return arena.view(state) end
