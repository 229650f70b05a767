-- One open world for the `world` loadtest scenario (asobi-loadtest world --game-dir examples/world-walk).
return {
    walk = "walk.lua",
}
