-- The quick-start room of asobi's seed README, as written there: no `get_state` (every player
-- receives the whole state) and no `leave`.
match_size = 2

function init(config)
    return { players = {} }
end

function join(player_id, state)
    state.players[player_id] = { x = 0, y = 0 }
    return state
end

function handle_input(player_id, input, state)
    local p = state.players[player_id]
    if input.right then p.x = p.x + 5 end
    if input.shoot then
        game.broadcast("shot", { by = player_id, at = input.aim })
    end
    return state
end

function tick(state)
    return state
end
