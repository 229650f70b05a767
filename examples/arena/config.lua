-- Three modes share the arena rules (arena.lua) and differ in size, teams and how state is sent.
return {
    duel = "duel.lua",
    brawl = "brawl.lua",
    squad = "squad.lua",
}
