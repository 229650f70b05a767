-- A minimal game for the `rpc` load scenario (asobi-loadtest rpc): one trivial mode, and the
-- RPCs in rpc.lua.
return { plain = "plain.lua" }
