-- squad: a 4v4 of parties and solos. The matchmaker keeps each party on one team, rates a
-- party by its members' mean skill, and matches by skill; `init` gets the teams it dealt.
match_size = 8
max_players = 8
teams = 2
party_rating = "mean"
strategy = "skill_based"
tick_rate = 100
reconnect = { grace_period = 30000 }
state_strategy = "shared"

local arena = require("arena")

function init(config) return arena.init(config) end
function join(player_id, state) return arena.join(player_id, state) end
function leave(player_id, state) return arena.leave(player_id, state) end
function handle_input(player_id, input, state) return arena.handle_input(player_id, input, state) end
function tick(state) return arena.tick(state) end
function get_state(state) return arena.view(state) end
