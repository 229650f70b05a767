-- Two modes share the arena rules (arena.lua) and differ in size and in how state is sent.
return {
    duel = "duel.lua",
    brawl = "brawl.lua",
}
