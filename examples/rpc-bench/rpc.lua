-- RPCs served to clients through rpc.call and POST /api/v1/rpc/:method.
-- A handler takes (params, ctx) and returns a result table, or nil and a declared code.

codes = {
  ["bench.missing"] = { status = 404, message = "The benchmark object is missing." },
}

rpc = {}

-- Trivial: answers at once.
rpc["bench.ping"] = function(params, ctx)
  return { pong = true }
end

-- Reads one storage object through game.storage (a database read per call). The object is
-- written by the first call that finds it missing.
rpc["bench.read"] = function(params, ctx)
  local r = game.storage.get("bench", "config")
  if r.ok == nil then
    local w = game.storage.set("bench", "config", { motd = "hello" })
    if w.error then return nil, "bench.missing" end
    return { motd = "hello" }
  end
  return { motd = r.ok.motd }
end

-- The `leaderboard` scenario: 50 scores per call to board "bench" through
-- game.leaderboard.submit, each by a player drawn at random from 1,000,000 ids (so the board
-- grows toward 1M entries and most submits later move an existing entry). Answers how many the
-- owning shard recorded.
local LB_BATCH = 50
local LB_PLAYERS = 1000000
rpc["bench.lb_submit"] = function(params, ctx)
  local ok = 0
  for _ = 1, LB_BATCH do
    local id = "p" .. math.random(1, LB_PLAYERS)
    if game.leaderboard.submit("bench", id, math.random(0, 10000000)) then
      ok = ok + 1
    end
  end
  return { submitted = ok }
end
