-- Arena rules shared by every mode of this example game.
--
-- Players walk a square grid and race for the coin. Picking it up scores a point and drops a
-- new coin somewhere else; the first player to TARGET_SCORE wins. Every input may carry a `seq`
-- number; the state echoes the last one applied per player, so a client can measure how long
-- its input took to show up in `match.state`.
--
-- Edit a value below and save: live matches pick up the change on their next callback, and
-- their state (positions, scores) is kept.

local RULES_VERSION = 1
local STEP = 1
local SIZE = 20
local TARGET_SCORE = 10

local M = {}

local function next_coin(state)
    -- A small LCG keeps coin placement deterministic for a given match.
    state.seed = (state.seed * 1103515245 + 12345) % 2147483648
    state.coin = { x = state.seed % SIZE, y = (state.seed // SIZE) % SIZE }
end

local function clamp(v)
    if v < 0 then return 0 end
    if v > SIZE - 1 then return SIZE - 1 end
    return v
end

function M.init(config)
    -- In a mode with teams the matchmaker says who plays with whom (`config.teams`, one list
    -- of player ids per team); players without a team (other modes, late joiners) get none.
    local team_of = {}
    for i, team in ipairs(config.teams or {}) do
        for _, id in ipairs(team) do team_of[id] = i end
    end
    local state = { tick = 0, players = {}, seed = 7, team_of = team_of }
    next_coin(state)
    return state
end

function M.join(player_id, state)
    local n = 0
    for _ in pairs(state.players) do n = n + 1 end
    state.players[player_id] = {
        x = (n * 5) % SIZE, y = 0, score = 0, seq = 0, team = (state.team_of or {})[player_id],
    }
    game.send(player_id, { welcome = "you are player " .. (n + 1) })
    return state
end

function M.leave(player_id, state)
    state.players[player_id] = nil
    return state
end

local function sign(v)
    if type(v) ~= "number" then return 0 end
    if v > 0 then return 1 elseif v < 0 then return -1 else return 0 end
end

function M.handle_input(player_id, input, state)
    local p = state.players[player_id]
    if p == nil then return state end
    if input.action == "move" then
        p.x = clamp(p.x + sign(input.dx) * STEP)
        p.y = clamp(p.y + sign(input.dy) * STEP)
    end
    if math.type(input.seq) == "integer" then p.seq = input.seq end
    return state
end

function M.tick(state)
    state.tick = state.tick + 1
    for id, p in pairs(state.players) do
        if p.x == state.coin.x and p.y == state.coin.y then
            p.score = p.score + 1
            game.broadcast("coin", { player_id = id, score = p.score })
            next_coin(state)
            if p.score >= TARGET_SCORE then
                state._finished = true
                state._result = { winner = id }
            end
        end
    end
    return state
end

function M.view(state)
    return { tick = state.tick, rules = RULES_VERSION, coin = state.coin, players = state.players }
end

return M
