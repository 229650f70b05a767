-- Arena bot: walks toward the first coin it can see. `state` is what get_state sends
-- this bot; bots get no `game` table.
names = { "Spark", "Blitz", "Volt" }

local function sign(v)
  if v > 0 then
    return 1
  elseif v < 0 then
    return -1
  end
  return 0
end

function think(bot_id, state)
  local me, coin = state.you, state.coins and state.coins[1]
  if not me or not coin then
    return { action = "stop" }
  end
  return { action = "move", dx = sign(coin.x - me.x), dy = sign(coin.y - me.y) }
end
