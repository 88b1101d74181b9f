-- Core test flow: every runtime feature a transcript can poke at.
local words = require("words")
local list = require("list")   -- the shop's lib/list.lua, over scripts/lib/list.lua
local ru = require("ru")       -- scripts/lib, shared by every shop
local dates = require("dates")

return flow "main" {
  version = 1,

  start = function(c, ev)
    c.slots.count = 0
    c:say(words.greeting(shop.persona.name))
    return "echo"
  end,

  echo = function(c, ev)
    local t = ev.text or ""
    c.slots.count = (c.slots.count or 0) + 1
    if t == "raise" then error("boom from the flow") end
    if t == "loop" then while true do end end
    if t == "pcall loop" then while true do pcall(function() while true do end end) end end
    -- the sandbox must stop these two: luacheck is told they are on purpose
    if t == "memory" then local s = {} for i = 1, 1e9 do s[i] = string.rep("x", 1000000) .. i end end -- luacheck: ignore
    if t == "global" then x = 1 end -- luacheck: ignore
    if t == "bad state" then c.slots.f = function() end end
    if t == "badstep" then return "nowhere" end
    if t == "wake" then c:wake("2h", "woken") c:say("жду 2 часа") return end
    if t == "quote" then
      c:say('он сказал "да" \\ C:\\путь\nвторая строка\tтаб') c:notify('менеджерам "тоже"') return
    end
    if t == "ping" then c:wake("1h", "ping") c:say("пингану через час") return end
    if t == "later" then
      local at = text.date("через две недели", time.now(), shop.timezone)
      c:wake(at, "woken", { why = "later" }, "later")
      c:say("напишу " .. dates.human(at))
      return
    end
    if t == "http" then
      local r, err = http.get("http://127.0.0.1:1/price?q=1")
      if r then c:say("цена " .. tostring(r.json and r.json.price)) else c:say("нет связи: " .. err) end
      return
    end
    if t == "slow" then
      local r, err = http.get(shop.shop.slow_url)
      c:say("медленный ответ: " .. (r and r.body or tostring(err)))
      return
    end
    if t == "handoff" then c:say("зову менеджера") c:handoff("asked") return end
    if t == "notify" then c:notify("менеджерам: " .. c.chat) c:say("сообщил") return end
    if t == "lead" then
      c:lead({ car = "XW8ZZZ614BG012345", car_kind = "vin", parts = { "колодки" } })
      c:say("заявка принята")
      return
    end
    if t == "go" then return c:go("jumped") end
    if t == "sub" then return "other.start" end
    if t == "hooks" then return c:switch("hooks") end
    if t == "libs" then c:say(list.join({ "a", "b" }) .. ", " .. ru.number(2100)) return end
    if t == "stop" then c:optout() c:say("отписал") return end
    c:say("эхо " .. c.slots.count .. ": " .. t)
  end,

  jumped = function(c, ev)
    c:say("прыгнул с «" .. ev.text .. "»")
    return "echo"
  end,

  -- returns nothing: the chat goes back to the step it was waiting in
  ping = function(c, ev)
    c:say("пинг")
  end,

  woken = function(c, ev)
    c:say("проснулся: " .. ev.name)
    return "echo"
  end,
}
