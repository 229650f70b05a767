-- The sandbox of every asobi-rs VM. Run once per fresh Lua state, before any game code.
-- `H` holds Rust helpers; it is reachable only through the upvalues of the functions
-- defined here (there is no `debug` library), never from game code.
local H = ...

-- Bounded library (strlib.rs): no library call may run unbounded in C, where the budget
-- hook never fires. Pattern functions, `string.rep` and `table.concat` are Rust, charged
-- step by step; the rest are the stock functions with their size charged around the call.
do
  local FAIL, DEFER, ABORT = H.fail, H.defer, H.abort_message
  local BPS = H.bytes_per_step
  local charge = H.charge
  local error, type, select, rawequal = error, type, select, rawequal
  local tointeger, log = math.tointeger, math.log
  local ssub, sbyte, unpack = string.sub, string.byte, table.unpack
  local str_find, str_match, str_gmatch, str_gsub = H.str_find, H.str_match, H.str_gmatch, H.str_gsub
  local next_match, str_rep, tbl_concat = H.next_match, H.str_rep, H.tbl_concat

  -- Rust helpers answer `FAIL, message` instead of raising, so errors stay plain strings.
  local function check(...)
    if rawequal((...), FAIL) then
      error((select(2, ...)), 0)
    end
    return ...
  end

  local function spend(n)
    if charge(n) then
      error(ABORT, 0)
    end
  end

  local function spend_len(s)
    if type(s) == "string" and #s > BPS then
      spend(#s // BPS)
    end
    return s
  end

  local function spend_count(...)
    local n = select("#", ...)
    if n > BPS then
      spend(n // BPS)
    end
    return ...
  end

  function string.find(...) return check(str_find(...)) end
  function string.match(...) return check(str_match(...)) end
  function string.rep(...) return check(str_rep(...)) end
  function table.concat(...) return check(tbl_concat(...)) end

  function string.gmatch(...)
    local it = check(str_gmatch(...))
    return function()
      return check(it())
    end
  end

  -- gsub with a function or table: the loop runs here, so the replacement is metered Lua.
  local function gsub_dynamic(s, p, repl, max_n)
    local is_fn = type(repl) == "function"
    local anchor = sbyte(p, 1) == 94
    local out, k, pos, last, count, changed = {}, 0, 0, -1, 0, false
    while count < max_n do
      local st, e, nc, caps = check(next_match(s, p, pos, last))
      if st == nil then
        break
      end
      if st > pos then
        k = k + 1
        out[k] = ssub(s, pos + 1, st)
      end
      count = count + 1
      local v
      if is_fn then
        v = repl(unpack(caps, 1, nc))
      else
        v = repl[caps[1]]
      end
      k = k + 1
      if not v then
        out[k] = ssub(s, st + 1, e)
      else
        local tv = type(v)
        if tv ~= "string" and tv ~= "number" then
          error("invalid replacement value (a " .. tv .. ")", 0)
        end
        out[k] = v
        changed = true
      end
      pos, last = e, e
      if anchor then
        break
      end
    end
    if not changed then
      return s, count
    end
    out[k + 1] = ssub(s, pos + 1)
    return (check(tbl_concat(out))), count
  end

  function string.gsub(...)
    local a, s, p, max_n = str_gsub(...)
    if rawequal(a, FAIL) then
      error(s, 0)
    elseif rawequal(a, DEFER) then
      return gsub_dynamic(s, p, (select(3, ...)), max_n)
    end
    return a, s
  end

  -- Functions that loop over a count the script picks: charge the count first. The
  -- originals are called as locals of their own name, so argument errors read as in stock
  -- Lua ("bad argument #2 to 'insert'").
  do
    local insert = table.insert
    function table.insert(t, ...)
      if select("#", ...) >= 2 and type(t) == "table" then
        local pos, n = tointeger((...)), tointeger(#t)
        if pos and n and n > pos then
          spend(n - pos)
        end
      end
      insert(t, ...)
    end
  end
  do
    local remove = table.remove
    function table.remove(t, ...)
      if select("#", ...) >= 1 and type(t) == "table" then
        local pos, n = tointeger((...)), tointeger(#t)
        if pos and n and n > pos then
          spend(n - pos)
        end
      end
      return (remove(t, ...))
    end
  end
  do
    local move = table.move
    function table.move(a1, f, e, t, a2)
      local fi, ei = tointeger(f), tointeger(e)
      if fi and ei and ei > fi then
        spend(ei - fi)
      end
      return (move(a1, f, e, t, a2))
    end
  end
  do
    local sort = table.sort
    function table.sort(t, cmp)
      if type(t) == "table" then
        local n = tointeger(#t)
        if n and n > 1 then
          spend(n * log(n, 2))
        end
      end
      sort(t, cmp)
    end
  end
  do
    local unpack_ = table.unpack
    function table.unpack(...)
      return spend_count(unpack_(...))
    end
  end

  -- Functions linear in a string's length: charge the bytes they produce or read.
  do
    local upper = string.upper
    function string.upper(...) return spend_len((upper(...))) end
  end
  do
    local lower = string.lower
    function string.lower(...) return spend_len((lower(...))) end
  end
  do
    local reverse = string.reverse
    function string.reverse(...) return spend_len((reverse(...))) end
  end
  do
    local sub = string.sub
    function string.sub(...) return spend_len((sub(...))) end
  end
  do
    local format = string.format
    function string.format(...) return spend_len((format(...))) end
  end
  do
    local pack = string.pack
    function string.pack(...) return spend_len((pack(...))) end
  end
  do
    local byte = string.byte
    function string.byte(...) return spend_count(byte(...)) end
  end
  do
    local unpack_s = string.unpack
    function string.unpack(fmt, s, ...)
      spend_len(s)
      return unpack_s(fmt, s, ...)
    end
  end
  do
    local len, codepoint, offset = utf8.len, utf8.codepoint, utf8.offset
    function utf8.len(s, ...)
      spend_len(s)
      return len(s, ...)
    end
    function utf8.codepoint(...) return spend_count(codepoint(...)) end
    function utf8.offset(s, ...)
      spend_len(s)
      return offset(s, ...)
    end
  end
  do
    local date = os.date
    function os.date(fmt, ...)
      spend_len(fmt)
      return spend_len((date(fmt, ...)))
    end
  end
  do
    -- Compiling costs far more per byte than copying.
    local raw_load = load
    function load(chunk, ...)
      if type(chunk) == "string" then
        spend(#chunk * 4 // BPS)
      elseif type(chunk) == "function" then
        local reader = chunk
        chunk = function()
          local piece = reader()
          if type(piece) == "string" then
            spend(#piece * 4 // BPS)
          end
          return piece
        end
      end
      return raw_load(chunk, ...)
    end
  end
  do
    local gc, count_kb = collectgarbage, nil
    function collectgarbage(opt, ...)
      if opt == nil or opt == "collect" or opt == "step" then
        count_kb = gc("count")
        spend(count_kb * 1024 // BPS)
      end
      return gc(opt, ...)
    end
  end
end

local error, type, select, rawget, tostring, next = error, type, select, rawget, tostring, next
local raw_pcall, raw_load, raw_setmetatable = pcall, load, setmetatable
local raw_collectgarbage = collectgarbage
local mtype, floor, ceil, huge = math.type, math.floor, math.ceil, math.huge
local raw_random, raw_sqrt = math.random, math.sqrt
local sort = table.sort
local exhausted = H.exhausted

-- Escape hatches asobi removes, plus `warn` (writes to stderr) and `string.dump`.
dofile, loadfile, print, warn = nil, nil, nil, nil
string.dump = nil
os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }

-- A budget abort must not be swallowed: once the meter is spent, whatever a protected
-- call caught is raised again.
local function pass(ok, ...)
  if not ok and exhausted() then
    error((...), 0)
  end
  return ok, ...
end

function pcall(f, ...)
  return pass(raw_pcall(f, ...))
end

-- The message handler runs after the stack unwound rather than at the error point. It has
-- to: Lua runs a message handler with hooks disabled when the error comes from the budget
-- hook, so a handler looping there could never be stopped. Without the debug library a
-- script cannot observe the difference.
local function handled(handler, ok, ...)
  if ok then
    return ok, ...
  end
  if exhausted() then
    error((...), 0)
  end
  return false, select(2, pass(raw_pcall(handler, (...))))
end

function xpcall(f, handler, ...)
  return handled(handler, raw_pcall(f, ...))
end

-- Text chunks only. `env` is forwarded only when given: an explicit nil would become the
-- chunk's environment.
function load(chunk, name, _mode, ...)
  if select("#", ...) > 0 then
    return raw_load(chunk, name, "t", ...)
  end
  return raw_load(chunk, name, "t")
end

-- Finalizers would run at arbitrary points, outside any callback's budget.
function setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not supported", 2)
  end
  return raw_setmetatable(t, mt)
end

local gc_allowed = { count = true, collect = true, step = true, isrunning = true }
function collectgarbage(opt, ...)
  if opt == nil then
    opt = "collect"
  end
  if not gc_allowed[opt] then
    error("collectgarbage('" .. tostring(opt) .. "') is not allowed", 2)
  end
  return raw_collectgarbage(opt, ...)
end

-- asobi's math quirks: non-integer bounds are truncated toward zero; sqrt of a negative
-- number is 0.0.
local function toward_zero(x)
  if mtype(x) == "float" and x == x and x ~= huge and x ~= -huge then
    if x >= 0 then
      return floor(x)
    end
    return ceil(x)
  end
  return x
end

function math.random(m, n)
  if m == nil then
    return raw_random()
  elseif n == nil then
    return raw_random(toward_zero(m))
  end
  return raw_random(toward_zero(m), toward_zero(n))
end

function math.sqrt(x)
  if type(x) == "number" and x < 0 then
    return 0.0
  end
  return raw_sqrt(x)
end

-- bit32 (Lua 5.2), which asobi scripts may use, on top of 5.4's integer operators.
do
  local MASK = 0xFFFFFFFF
  local tointeger = math.tointeger
  local function u32(x)
    local i = tointeger(x)
    if i == nil then
      if type(x) ~= "number" then
        error("bad argument to bit32 function (number expected, got " .. type(x) .. ")", 3)
      end
      i = tointeger(floor(x)) or 0
    end
    return i & MASK
  end
  local function shift(x, disp)
    x, disp = u32(x), tointeger(disp) or 0
    if disp <= -32 or disp >= 32 then
      return 0
    elseif disp >= 0 then
      return (x << disp) & MASK
    end
    return x >> -disp
  end
  local function fold(op, init)
    return function(...)
      local r = init
      for i = 1, select("#", ...) do
        r = op(r, u32((select(i, ...))))
      end
      return r & MASK
    end
  end
  local function field_args(f, w)
    f, w = tointeger(f) or -1, tointeger(w or 1) or -1
    if f < 0 then
      error("bad argument to bit32 field (field cannot be negative)", 3)
    elseif w <= 0 then
      error("bad argument to bit32 field (width must be positive)", 3)
    elseif f + w > 32 then
      error("trying to access non-existent bits", 3)
    end
    return f, w
  end
  local band = fold(function(a, b) return a & b end, MASK)
  bit32 = {
    band = band,
    bor = fold(function(a, b) return a | b end, 0),
    bxor = fold(function(a, b) return a ~ b end, 0),
    btest = function(...) return band(...) ~= 0 end,
    bnot = function(x) return (~u32(x)) & MASK end,
    lshift = shift,
    rshift = function(x, disp) return shift(x, -(tointeger(disp) or 0)) end,
    arshift = function(x, disp)
      x, disp = u32(x), tointeger(disp) or 0
      if disp < 0 or (x & 0x80000000) == 0 then
        return shift(x, -disp)
      elseif disp >= 32 then
        return MASK
      end
      return ((x >> disp) | ~(MASK >> disp)) & MASK
    end,
    lrotate = function(x, disp)
      x, disp = u32(x), (tointeger(disp) or 0) % 32
      return ((x << disp) | (x >> (32 - disp))) & MASK
    end,
    rrotate = function(x, disp)
      x, disp = u32(x), (-(tointeger(disp) or 0)) % 32
      return ((x << disp) | (x >> (32 - disp))) & MASK
    end,
    extract = function(n, f, w)
      f, w = field_args(f, w)
      return (u32(n) >> f) & ~(MASK << w) & MASK
    end,
    replace = function(n, v, f, w)
      f, w = field_args(f, w)
      local m = ~(MASK << w) & MASK
      return ((u32(n) & ~(m << f)) | ((u32(v) & m) << f)) & MASK
    end,
  }
end

-- require: modules come from the game's precompiled module table, never the file system.
local LOADING = {}
local loaded = {}
function require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local value = loaded[name]
  if value == LOADING then
    error("loop or previous error loading module '" .. name .. "'", 2)
  elseif value ~= nil then
    return value
  end
  local chunk, err = H.fetch_module(name)
  if not chunk then
    error(err, 2)
  end
  loaded[name] = LOADING
  value = chunk(name)
  if value == nil then
    value = true
  end
  loaded[name] = value
  return value
end

-- game.* ---------------------------------------------------------------------------------

local function shape_error(msg)
  return { error = msg }
end

local function unavailable(name)
  return function()
    return shape_error(name .. " is not available in this runtime")
  end
end

-- Calls answered by a service outside the VM (service.rs): the callback's coroutine yields
-- and the runtime resumes it with the reply. Where yielding is impossible (inside a C
-- function such as a `table.sort` comparator), the call answers an error at once.
local service_call, isyieldable, yield = H.service_call, coroutine.isyieldable, coroutine.yield
coroutine = nil
local function service(ns, op, shown)
  local name = shown or (ns == op and ("game." .. op) or ("game." .. ns .. "." .. op))
  return function(...)
    if not isyieldable() then
      return shape_error(name .. " cannot wait for an answer here")
    end
    local r = service_call(ns, op, ...)
    if r ~= true then
      return r
    end
    return (yield())
  end
end
local function service_table(ns)
  local t = {}
  for _, op in next, H.services[ns] do
    t[op] = service(ns, op)
  end
  return t
end

-- The zone a world callback runs for (`zone_tick`, `handle_input`), set by the runtime
-- (world.rs) around those calls and nil otherwise: `entities` (the table the callback was
-- handed), `templates` (spawnable template ids) and the `spawns`/`despawns` it queued; with a
-- border band, `neighbours()` (the touching zones' band copies) and `apply(id, event)`.
local zone_ctx = nil
-- Spawns or despawns one zone callback may queue: a script looping on game.zone.spawn must
-- not turn one tick into an unbounded entity flood.
local MAX_ZONE_REQUESTS = 256

local spatial = {}
do
  local function coords(e)
    if type(e) ~= "table" then
      return nil
    end
    local x, y = rawget(e, "x"), rawget(e, "y")
    if type(x) ~= "number" or type(y) ~= "number" then
      return nil
    end
    return x, y
  end

  local function as_set(v, what)
    if type(v) == "string" then
      return { [v] = true }
    elseif type(v) == "table" then
      local set, any = {}, false
      for _, item in next, v do
        if type(item) == "string" then
          set[item], any = true, true
        end
      end
      if not any then
        return nil, "opts." .. what .. " must be a string or a list of strings"
      end
      return set
    end
    return nil, "opts." .. what .. " must be a string or a list of strings"
  end

  local function parse_opts(opts)
    if opts == nil then
      return {}
    elseif type(opts) ~= "table" then
      return nil, "opts must be a table"
    end
    local parsed = {}
    for k, v in next, opts do
      if k == "type" or k == "exclude" then
        local set, err = as_set(v, k)
        if not set then
          return nil, err
        end
        parsed[k] = set
      elseif k == "max_results" then
        if type(v) ~= "number" or v < 0 then
          return nil, "opts.max_results must be a non-negative number"
        end
        parsed.max_results = floor(v)
      elseif k == "sort" then
        if v ~= "nearest" and v ~= "farthest" then
          return nil, "opts.sort must be \"nearest\" or \"farthest\""
        end
        parsed.sort = v
      else
        return nil, "unknown option opts." .. tostring(k)
      end
    end
    return parsed
  end

  local function hits(entities, x, y, radius, opts)
    local out = {}
    for id, e in next, entities do
      local ex, ey = coords(e)
      if ex then
        local dx, dy = ex - x, ey - y
        local d = raw_sqrt(dx * dx + dy * dy)
        local keep = radius == nil or d <= radius
        if keep and opts.type then
          keep = opts.type[rawget(e, "type")] == true
        end
        if keep and opts.exclude then
          keep = not opts.exclude[id]
        end
        if keep then
          out[#out + 1] = { id = id, entity = e, distance = d }
        end
      end
    end
    if opts.sort == "farthest" then
      sort(out, function(a, b) return a.distance > b.distance end)
    else
      sort(out, function(a, b) return a.distance < b.distance end)
    end
    local cap = opts.max_results
    if cap and #out > cap then
      for i = #out, cap + 1, -1 do
        out[i] = nil
      end
    end
    return out
  end

  -- The zone forms answer `{id, x, y}` per hit over the calling zone's own entities.
  local function zone_hits(found)
    local out = {}
    for i = 1, #found do
      local h = found[i]
      out[i] = { id = h.id, x = rawget(h.entity, "x"), y = rawget(h.entity, "y") }
    end
    return out
  end

  function spatial.query_radius(entities, x, y, radius, opts)
    if type(entities) == "number" then
      if not zone_ctx then
        return shape_error("query_radius(x, y, radius) requires zone context")
      end
      x, y, radius, opts = entities, x, y, radius
      if type(x) ~= "number" or type(y) ~= "number" or type(radius) ~= "number" then
        return shape_error("query_radius requires (x, y, radius[, opts])")
      end
      local parsed, err = parse_opts(opts)
      if not parsed then
        return shape_error(err)
      end
      return zone_hits(hits(zone_ctx.entities, x, y, radius, parsed))
    end
    if type(entities) ~= "table" or type(x) ~= "number" or type(y) ~= "number"
        or type(radius) ~= "number" then
      return shape_error("query_radius requires (entities, x, y, radius[, opts])")
    end
    local parsed, err = parse_opts(opts)
    if not parsed then
      return shape_error(err)
    end
    return hits(entities, x, y, radius, parsed)
  end

  function spatial.nearest(entities, x, y, n, opts)
    if type(entities) ~= "table" or type(x) ~= "number" or type(y) ~= "number"
        or type(n) ~= "number" then
      return shape_error("nearest requires (entities, x, y, n[, opts])")
    end
    local parsed, err = parse_opts(opts)
    if not parsed then
      return shape_error(err)
    end
    local cap = floor(n)
    if parsed.max_results == nil or parsed.max_results > cap then
      parsed.max_results = cap
    end
    return hits(entities, x, y, nil, parsed)
  end

  function spatial.distance(a, b)
    local ax, ay = coords(a)
    local bx, by = coords(b)
    if not ax or not bx then
      return shape_error("distance requires (entity_a, entity_b) with numeric x and y")
    end
    local dx, dy = ax - bx, ay - by
    return raw_sqrt(dx * dx + dy * dy)
  end

  function spatial.in_range(a, b, range)
    local d = spatial.distance(a, b)
    if type(d) ~= "number" or type(range) ~= "number" then
      return shape_error("in_range requires (entity_a, entity_b, range)")
    end
    return d <= range
  end

  -- Calls `f(id, entity, x, y)` for each entity of `entities` inside the rectangle with
  -- corners (x1, y1) and (x2, y2), in either order.
  local function each_in_rect(entities, x1, y1, x2, y2, f)
    local lx, hx = x1, x2
    if hx < lx then lx, hx = hx, lx end
    local ly, hy = y1, y2
    if hy < ly then ly, hy = hy, ly end
    for id, e in next, entities do
      local ex, ey = coords(e)
      if ex and ex >= lx and ex <= hx and ey >= ly and ey <= hy then
        f(id, e, ex, ey)
      end
    end
  end

  function spatial.query_rect(x1, y1, x2, y2)
    if not zone_ctx then
      return shape_error("query_rect requires zone context")
    end
    if type(x1) ~= "number" or type(y1) ~= "number" or type(x2) ~= "number"
        or type(y2) ~= "number" then
      return shape_error("query_rect requires (x1, y1, x2, y2)")
    end
    local out = {}
    each_in_rect(zone_ctx.entities, x1, y1, x2, y2, function(id, _, ex, ey)
      out[#out + 1] = { id = id, x = ex, y = ey }
    end)
    sort(out, function(a, b) return tostring(a.id) < tostring(b.id) end)
    return out
  end

  -- Copies of what the eight touching zones publish in their border band (`border_band`),
  -- never the calling zone's own entities; built once per zone step by the runtime's
  -- `zone_ctx.neighbours()` and shared by the queries of that step. No band: nothing.
  local function neighbour_entities()
    local cached = zone_ctx.neighbour_cache
    if cached then
      return cached
    end
    local fetch = zone_ctx.neighbours
    cached = fetch and fetch() or {}
    zone_ctx.neighbour_cache = cached
    return cached
  end

  function spatial.neighbours_radius(x, y, radius, opts)
    if not zone_ctx then
      return shape_error("neighbours_radius requires zone context")
    end
    if type(x) ~= "number" or type(y) ~= "number" or type(radius) ~= "number" then
      return shape_error("neighbours_radius requires (x, y, radius[, opts])")
    end
    local parsed, err = parse_opts(opts)
    if not parsed then
      return shape_error(err)
    end
    return hits(neighbour_entities(), x, y, radius, parsed)
  end

  function spatial.neighbours_rect(x1, y1, x2, y2, opts)
    if not zone_ctx then
      return shape_error("neighbours_rect requires zone context")
    end
    if type(x1) ~= "number" or type(y1) ~= "number" or type(x2) ~= "number"
        or type(y2) ~= "number" then
      return shape_error("neighbours_rect requires (x1, y1, x2, y2[, opts])")
    end
    local parsed, err = parse_opts(opts)
    if not parsed then
      return shape_error(err)
    end
    if parsed.sort then
      return shape_error("neighbours_rect takes no opts.sort")
    end
    local out = {}
    each_in_rect(neighbour_entities(), x1, y1, x2, y2, function(id, e)
      local keep = true
      if parsed.type then
        keep = parsed.type[rawget(e, "type")] == true
      end
      if keep and parsed.exclude then
        keep = not parsed.exclude[id]
      end
      if keep then
        out[#out + 1] = { id = id, entity = e }
      end
    end)
    sort(out, function(a, b) return tostring(a.id) < tostring(b.id) end)
    local cap = parsed.max_results
    if cap and #out > cap then
      for i = #out, cap + 1, -1 do
        out[i] = nil
      end
    end
    return out
  end
end

game = {
  id = H.id,
  log = H.log,
  broadcast = H.broadcast,
  send = H.send,
  match = { set_joinable = H.set_joinable },
  bots = { add = H.bot_add, remove = H.bot_remove },
  spatial = spatial,
  economy = service_table("economy"),
  leaderboard = service_table("leaderboard"),
  storage = service_table("storage"),
  notify = service("notify", "notify"),
  notify_many = service("notify", "notify_many"),
  emit = service("emit", "emit"),
  chat = service_table("chat"),
  tournament = service_table("tournament"),
  zone = {
    spawn = function(template_id, x, y, overrides)
      if not zone_ctx then
        return shape_error("game.zone.spawn requires zone context")
      end
      if type(template_id) ~= "string" or type(x) ~= "number" or type(y) ~= "number"
          or (overrides ~= nil and type(overrides) ~= "table") then
        return shape_error("game.zone.spawn requires (template_id, x, y[, overrides])")
      end
      local spawns = zone_ctx.spawns
      if zone_ctx.templates[template_id] == nil or #spawns >= MAX_ZONE_REQUESTS then
        return false
      end
      spawns[#spawns + 1] = { template = template_id, x = x, y = y, overrides = overrides }
      return true
    end,
    despawn = function(entity_id)
      if not zone_ctx then
        return shape_error("game.zone.despawn requires zone context")
      end
      if type(entity_id) ~= "string" then
        return shape_error("game.zone.despawn requires (entity_id)")
      end
      local despawns = zone_ctx.despawns
      if #despawns < MAX_ZONE_REQUESTS then
        despawns[#despawns + 1] = entity_id
      end
      return true
    end,
    -- Asks the zone that owns `entity_id` (found in the border rows this zone can read) to
    -- apply `event` in its own tick, through its `handle_effects`. `false` when no touching
    -- zone publishes the entity, or past the limits (4 KB per event, 64 sends per tick).
    apply = function(entity_id, event)
      if not zone_ctx then
        return shape_error("game.zone.apply requires zone context")
      end
      if type(entity_id) ~= "string" or type(event) ~= "table" then
        return shape_error("game.zone.apply requires (entity_id, event_table)")
      end
      local send = zone_ctx.apply
      if not send then
        return false
      end
      return send(entity_id, event)
    end,
  },
  terrain = {
    get_chunk = unavailable("game.terrain.get_chunk (world mode only)"),
    preload = unavailable("game.terrain.preload (world mode only)"),
  },
}

-- `game.<namespace>.<fn>` of the game's extensions (ext.rs): each one a service call the
-- engine runs in the extension's own VM. Reinstalled on every (re)load, so a namespace an
-- edit removed goes away; a core name is never replaced (the loader refuses those anyway).
local installed_extensions = {}

-- Internals the runtime calls; not reachable from game code.
return {
  clear_require_cache = function()
    loaded = {}
  end,
  install_extensions = function(spec)
    for ns in next, installed_extensions do
      game[ns] = nil
    end
    installed_extensions = {}
    for ns, fns in next, spec do
      if rawget(game, ns) == nil then
        local t = {}
        for _, fn in next, fns do
          t[fn] = service("ext", ns .. "." .. fn, "game." .. ns .. "." .. fn)
        end
        game[ns] = t
        installed_extensions[ns] = true
      end
    end
  end,
  set_zone = function(ctx)
    zone_ctx = ctx
  end,
}
