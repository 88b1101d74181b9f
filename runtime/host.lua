-- host.lua -- the trusted half of the Lua host, loaded once per bundle.
--
-- It builds the locked-down environment flow files run in, registers the
-- flows, and returns the runner that drives one turn: take the saved
-- conversation (plain data) and the event, run steps, return the effects.
-- Flow code never sees this file's locals: the conversation object's
-- metatable is hidden and its effects live in a private weak table.
local C, mods, shop_cfg, opts = ...

local FX = setmetatable({}, { __mode = "k" })    -- ctx -> effects of this turn
-- The values c:go / c:switch return, known by identity: a flow gets a fresh
-- plain table, never a host table it could change for other chats.
local JUMPS = setmetatable({}, { __mode = "k" })
local flows, modules, loaded = {}, {}, {}
local budget_msg = C.budget_marker

-- ---- read-only views -------------------------------------------------
local function readonly(t, name, deep)
  local view = {}
  if deep then
    for k, v in pairs(t) do
      if type(v) == "table" then view[k] = readonly(v, name .. "." .. tostring(k), true) end
    end
  end
  -- Reads go through tables, not a function: each read of shop.x or
  -- text.is is one more table lookup for Lua, not a Lua call. A deep view
  -- answers its nested tables' views first, then t.
  local index = t
  if deep then index = setmetatable(view, { __index = t }) end
  return setmetatable({}, {
    __index = index,
    __newindex = function(_, k)
      error(("%s.%s cannot be changed"):format(name, tostring(k)), 2)
    end,
    __pairs = function()
      local k
      return function()
        local v
        k, v = next(t, k)
        if type(v) == "table" and rawget(view, k) then v = rawget(view, k) end
        return k, v
      end
    end,
    __len = function() return #t end,
    __metatable = false,
  })
end

-- The budget error must not be swallowed by a script's own pcall.
local function rethrow(ok, ...)
  if not ok then
    local e = ...
    if type(e) == "string" and e:find(budget_msg, 1, true) then error(e, 0) end
  end
  return ok, ...
end
local function safe_pcall(f, ...) return rethrow(pcall(f, ...)) end
local function safe_xpcall(f, h, ...) return rethrow(xpcall(f, h, ...)) end

local strmt = getmetatable("")
strmt.__metatable = false

local string_safe = {}
for k, v in pairs(string) do if k ~= "dump" then string_safe[k] = v end end

local base = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = safe_pcall, xpcall = safe_xpcall, select = select,
  tonumber = tonumber, tostring = tostring, type = type, rawequal = rawequal,
  rawlen = rawlen, setmetatable = function(t, mt)
    -- Finalizers run inside the collector, where Lua turns the count hook
    -- off: a __gc loop would be an endless loop no budget stops. Lua marks
    -- a table for finalization only if its metatable has __gc when it is
    -- set, so refusing that here closes the door for good.
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("__gc is not allowed in flows (finalizers run outside the step's limits)", 2)
    end
    return setmetatable(t, mt)
  end,
  getmetatable = getmetatable,
  unpack = table.unpack, _VERSION = _VERSION,
  string = readonly(string_safe, "string"),
  table = readonly(table, "table"),
  math = readonly(math, "math"),
  utf8 = readonly(utf8, "utf8"),
}
for name, m in pairs(mods) do base[name] = readonly(m, name) end
base.print = mods.log.info   -- the same line, cut at the same length
base.shop = readonly(shop_cfg, "shop", true)

-- flow "lead" { start = function(c, ev) ... end, ... }
base.flow = function(name)
  if type(name) ~= "string" then error("flow name must be a string", 2) end
  return function(def)
    if type(def) ~= "table" then error("flow '" .. name .. "' must be a table of steps", 2) end
    def.name = name
    return def
  end
end

base.require = function(name)
  if loaded[name] ~= nil then return loaded[name] end
  local loader = modules[name]
  if not loader then error("module '" .. tostring(name) .. "' not found in the flows' lib folder", 2) end
  loaded[name] = true     -- cycles see a placeholder instead of looping
  local v = loader()
  if v == nil then v = true end
  loaded[name] = v
  return v
end

-- A flow's globals are base's names, looked up as a table (no Lua call
-- per global read); a name base lacks is an error, not nil: a typo fails
-- at its line.
setmetatable(base, {
  __index = function(_, k) error("unknown name '" .. tostring(k) .. "'", 2) end,
  __metatable = false,
})

local env_mt = {
  __index = base,
  __newindex = function(_, k)
    error("global '" .. tostring(k) .. "' is not allowed; use local or c.slots", 2)
  end,
  __metatable = false,
}

local function new_env() return setmetatable({}, env_mt) end

-- ---- the conversation object -------------------------------------------
local Ctx = {}
local ctx_mt = { __index = Ctx, __metatable = false }

local function fx(c)
  local f = FX[c]
  if not f then error("this conversation object is from another turn", 3) end
  return f
end

-- Appends to one of the turn's effect lists, made on first use: most
-- steps only say something.
local MAX_EFFECTS = 50   -- per list and step: a loop that spams a chat is a bug

local function add(f, name, item)
  local l = f[name]
  if not l then l = {}; f[name] = l end
  if #l >= MAX_EFFECTS then
    error(("one step may do at most %d of these (%s); is a loop sending them?"):format(MAX_EFFECTS, name), 3)
  end
  l[#l + 1] = item
end

local function str(v, what)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then error(what .. " must be a string", 3) end
  return v
end

-- Пишет клиенту в этот чат.
-- o.buttons: подписи кнопок; o.media = {ref = "https://...", kind = "photo"}:
-- фото или документ (text -- подпись); o.template = {name = "...", params = {...}}:
-- шаблон мессенджера (WhatsApp вне окна 24 часов).
function Ctx:say(text, o)
  local f = fx(self)
  local m = { to = "self", text = str(text, "say: text") }
  if o then
    if o.buttons then m.buttons = o.buttons end
    if o.media ~= nil then
      if type(o.media) ~= "table" or type(o.media.ref) ~= "string" then
        error("say: media must be {ref = \"url or file id\", kind = \"photo\"|\"document\"}", 2)
      end
      m.media = { ref = o.media.ref, kind = o.media.kind and str(o.media.kind, "say: media.kind") }
    end
    if o.template ~= nil then
      if type(o.template) ~= "table" or type(o.template.name) ~= "string" then
        error("say: template must be {name = \"...\", params = {...}}", 2)
      end
      m.template = { name = o.template.name, params = o.template.params }
    end
  end
  add(f, "out", m)
end

-- Пишет менеджерам магазина (managers в shop.json). o.photos — фото
-- клиента (номера из ev.photos[i].id или сами ev.photos[i]): уходят
-- менеджерам сразу за запиской, каждое ответом на неё.
local note   -- below: a note's text in the persona's words

-- managers.topics (a forum supergroup in Telegram): each note names the
-- customer's topic, in the persona's words (notes.topic), so the channel
-- can open one on the first hand-off. nil when off or without a name.
local function topic_of(c)
  local m = shop_cfg.managers
  if type(m) ~= "table" or m.topics ~= true then return nil end
  return note("topic", { name = c.name, phone = c.phone })
end

function Ctx:notify(text, o)
  local f = fx(self)
  local topic = topic_of(self)
  add(f, "out", { to = "managers", text = str(text, "notify: text"), topic = topic })
  if o == nil or o.photos == nil then return end
  if type(o.photos) ~= "table" then error("notify: photos must be a list", 2) end
  for i, p in ipairs(o.photos) do
    local ref = type(p) == "table" and p.id or p
    if type(ref) ~= "string" or ref == "" then
      error("notify: photos[" .. i .. "] must be a photo id (ev.photos[i].id)", 2)
    end
    add(f, "out", { to = "managers", text = "", media = { ref = ref, kind = "photo" },
                    topic = topic })
  end
end

-- Пишет в другой чат: c:send("telegram", "12345", "текст").
function Ctx:send(channel, chat, text)
  local f = fx(self)
  add(f, "out", { to = "chat", channel = str(channel, "send: channel"),
                  chat = str(chat, "send: chat"), text = str(text, "send: text") })
end

function Ctx:handoff(reason)
  local f = fx(self)
  f.mode = "handoff"
  add(f, "ops", { op = "handoff", reason = reason and tostring(reason) or nil })
end

function Ctx:release()
  local f = fx(self)
  f.mode = "bot"
  add(f, "ops", { op = "release" })
end

function Ctx:lead(t)
  local f = fx(self)
  if type(t) ~= "table" then error("lead: expects a table", 2) end
  add(f, "leads", { lead = t, flow = self.flow })
end

-- c:wake("3d", "silent") or c:wake(time_in_seconds, "retention.remind", {data})
function Ctx:wake(when, step, data, name)
  local f = fx(self)
  local at
  if type(when) == "number" then at = math.floor(when)
  elseif type(when) == "string" then
    local d = C.duration(when)
    if not d then error("wake: bad duration '" .. when .. "' (use 30m, 24h, 3d)", 2) end
    at = C.now() + d
  else error("wake: expects a time or a duration", 2) end
  step = str(step, "wake: step")
  add(f, "timers", { op = "set", name = name or step, at = at, step = step, data = data })
end

function Ctx:cancel(name)
  local f = fx(self)
  add(f, "timers", { op = "cancel", name = str(name, "cancel: name") })
end

-- Событие для статистики: c:record("outcome", {campaign = "retention", outcome = "later"})
function Ctx:record(kind, data)
  local f = fx(self)
  add(f, "events", { kind = str(kind, "record: kind"), data = data, flow = self.flow })
end

function Ctx:optout()
  local f = fx(self)
  add(f, "ops", { op = "optout" })
end

function Ctx:customer()
  return C.customer(self.phone, self.channel, self.chat)
end

-- return c:go("parts") runs that step now with the same message.
local function jump(step)
  local j = { step = step }
  JUMPS[j] = true
  return j
end
function Ctx:go(step) return jump(step) end
function Ctx:switch(flow, step) return jump(flow .. "." .. (step or "start")) end

-- ---- flows ---------------------------------------------------------------
-- Not steps: the flow's name and version, migrate (a saved step that no
-- longer exists), before (runs ahead of the flow's steps, see run).
local RESERVED = { name = true, version = true, migrate = true, description = true,
                   before = true }

local function register(file, def)
  if type(def) ~= "table" then
    return file .. ": a flow file must return flow \"name\" { steps }"
  end
  local name = def.name
  if name == nil then name = file:match("([^/]+)%.lua$") end
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    return file .. ": flow name must be a word (letters, digits, _)"
  end
  if flows[name] then return file .. ": flow '" .. name .. "' is defined twice" end
  if def.version ~= nil and math.type(def.version) ~= "integer" then
    return file .. ": flow '" .. name .. "': version must be an integer"
  end
  if def.migrate ~= nil and type(def.migrate) ~= "function" then
    return file .. ": flow '" .. name .. "': migrate must be a function"
  end
  if def.before ~= nil and type(def.before) ~= "function" then
    return file .. ": flow '" .. name .. "': before must be a function"
  end
  local steps, n = {}, 0
  for k, v in pairs(def) do
    if not RESERVED[k] then
      if type(v) ~= "function" then
        return file .. ": flow '" .. name .. "': step '" .. tostring(k) .. "' must be a function"
      end
      steps[k] = v
      n = n + 1
    end
  end
  if not steps.start then return file .. ": flow '" .. name .. "' has no 'start' step" end
  flows[name] = { name = name, steps = steps, version = def.version or 1,
                  migrate = def.migrate, before = def.before, file = file, nsteps = n }
  return nil
end

local function describe()
  local out = {}
  for name, f in pairs(flows) do
    local s = {}
    for k in pairs(f.steps) do s[#s + 1] = k end
    table.sort(s)
    out[#out + 1] = { name = name, version = f.version, file = f.file, steps = s }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- "flow.step" or a step of cur_flow. Split at the dot with a plain find:
-- every step's return comes here, and a pattern match was a tenth of an
-- empty step's Lua time; the names themselves are checked by the lookups.
local function resolve(cur_flow, target)
  local fname, sname = cur_flow, target
  local dot = target:find(".", 1, true)
  if dot then fname, sname = target:sub(1, dot - 1), target:sub(dot + 1) end
  local f = flows[fname]
  if not f then return nil, "unknown flow '" .. fname .. "'" end
  if not f.steps[sname] then return nil, "flow '" .. fname .. "' has no step '" .. sname .. "'" end
  return f, sname
end

-- ---- one turn --------------------------------------------------------------
-- conv is the table lvm.c makes for this turn alone (id, channel, chat,
-- user, phone, name, flow, step, mode, slots): it becomes the turn's
-- conversation object itself rather than being copied into a new one.
local function run(conv, ev, trace)
  local f = {}
  local c = conv
  c.mode = c.mode or "bot"
  c.slots = c.slots or {}
  c.turn = {}   -- this event only, never saved: what before leaves for the steps
  setmetatable(c, ctx_mt)
  FX[c] = f

  local flow = flows[conv.flow or ""]
  local step = conv.step
  local migrated
  if not flow then
    flow, step = flows[opts.start_flow], "start"
    if not flow then error("start flow '" .. tostring(opts.start_flow) .. "' does not exist", 0) end
  elseif step == nil or not flow.steps[step] then
    local old = step
    if old ~= nil and flow.migrate then
      trace.flow, trace.step = flow.name, "migrate"
      step = flow.migrate(c, old)
    end
    if type(step) ~= "string" or not flow.steps[step] then step = "start" end
    migrated = { from = old, to = step }
  end
  -- A wake-up runs the step it names; if that step returns nothing, the
  -- chat goes back to the step it was waiting in.
  local back_flow, back_step = flow, step
  local waking = false
  if ev.kind == "wake" and ev.step then
    local nf, ns = resolve(flow.name, ev.step)
    if not nf then error("wake-up names " .. ns, 0) end
    flow, step = nf, ns
    waking = true
  end

  -- before(c, ev) runs once per event in each flow the event reaches: ahead
  -- of the first step of that flow it runs (the waiting step, a wake-up's
  -- step, the step a c:switch enters), not again on c:go hops inside the
  -- flow. c.step names the step it runs ahead of. What it returns works as
  -- a step's return (a step name or c:go), and then that step does not run;
  -- nothing lets the step run.
  local hops = 0
  local before_ran   -- made when a flow has a before: most have none
  while true do
    trace.flow, trace.step = flow.name, step
    c.flow, c.step = flow.name, step
    local r
    if flow.before and not (before_ran and before_ran[flow]) then
      before_ran = before_ran or {}
      before_ran[flow] = true
      trace.step = "before"
      r = flow.before(c, ev)
      trace.step = step
    end
    if r == nil then r = flow.steps[step](c, ev) end
    if JUMPS[r] then
      hops = hops + 1
      if hops > 32 then error("steps jumped more than 32 times in one message (a loop of c:go?)", 0) end
      local nf, ns = resolve(flow.name, tostring(r.step))
      if not nf then error("c:go: " .. ns, 0) end
      flow, step = nf, ns
    else
      if r == nil and waking and hops == 0 then
        flow, step = back_flow, back_step
      elseif r ~= nil then
        if type(r) ~= "string" then
          error("a step (and before) must return the name of the next step (a string) or nothing", 0)
        end
        local nf, ns = resolve(flow.name, r)
        if not nf then error("returned " .. ns, 0) end
        flow, step = nf, ns
      end
      break
    end
  end
  FX[c] = nil
  if type(c.slots) ~= "table" then error("c.slots must stay a table", 0) end
  local campaign = c.slots.campaign
  if type(campaign) ~= "string" then campaign = nil end
  -- Thirteen values, in the order lvm.c reads them by position (R_* in
  -- turn_finish): no result table to make and look up again.
  return flow.name, step, c.slots, f.mode, campaign, c.phone, c.name,
    f.out, f.timers, f.leads, f.events, f.ops, migrated
end

-- The note to the managers when the bot stops in a chat (a failed step, a
-- quarantined message). The words are the persona's: the flows' module
-- `notes` (their lib/, else scripts/lib), function stopped(facts). If that
-- cannot build a text (no module, an error), the shop's plain line
-- (handoff.stopped_note) still tells the managers which chat to answer.
-- facts: chat, flow, step, where, msg.
-- Other kinds (taken, owned, relayed, stats: see scripts/lib/notes.lua) have no
-- plain line here: the host falls back to their bare facts.
function note(kind, facts)
  local ok, text = pcall(function()
    local m = base.require("notes")
    local f = type(m) == "table" and m[kind]
    if type(f) == "function" then return f(facts) end
    return nil
  end)
  if ok and type(text) == "string" and text ~= "" then return text end
  if kind ~= "stopped" then return nil end
  -- The shop's words (handoff.stopped_note, default in shop.schema.json);
  -- a {word} that is not chat or msg stays as it is.
  local vars = { chat = tostring(facts.chat), msg = tostring(facts.msg) }
  local h = type(shop_cfg) == "table" and shop_cfg.handoff
  local tmpl = type(h) == "table" and h.stopped_note
  if type(tmpl) ~= "string" or tmpl == "" then return vars.chat .. ": " .. vars.msg end
  return (tmpl:gsub("{(%w+)}", function(k) return vars[k] end))
end

return {
  note = note,
  new_env = new_env,
  register = register,
  add_module = function(name, loader) modules[name] = loader end,
  run = run,
  describe = describe,
  count = function() local n = 0 for _ in pairs(flows) do n = n + 1 end return n end,
}
