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
