-- Заявка в четыре сообщения — тот же диалог, что у ботов-соседей в бенчмарке
-- (../shared/bench/peers/README.md): /start → VIN → запчасти → «нет».

-- VIN: 17 знаков без I, O, Q; или номер кузова вида GX110-6012345.
local function vin_ok(t)
  t = t:upper()
  if #t == 17 and not t:find("[^A-HJ-NPR-Z0-9]") then return true end
  return t:match("^[A-Z0-9]+%-%d+$") ~= nil
end

return flow "lead" {
  version = 1,

  start = function(c, ev)
    c:say("Здравствуйте! Я помогу подобрать детали для вашего автомобиля. "
          .. "Пришлите, пожалуйста, VIN или номер кузова (рамы).")
    return "vin"
  end,

  vin = function(c, ev)
    local t = (ev.text or ""):gsub("^%s+", ""):gsub("%s+$", "")
    if not vin_ok(t) then
      c:say("Не похоже на VIN. Пришлите, пожалуйста, 17 знаков VIN или номер кузова.")
      return "vin"
    end
    c.slots.vin = t:upper()
    c.slots.parts = {}
    c:say("Спасибо, записал: " .. c.slots.vin .. ". Какие запчасти нужны? Перечислите через запятую.")
    return "parts"
  end,

  parts = function(c, ev)
    local t = ev.text or ""
    if t:lower() == "нет" and #c.slots.parts > 0 then
      c:say("Заявка принята.\nVIN: " .. c.slots.vin .. "\nЗапчасти: "
            .. table.concat(c.slots.parts, ", ") .. "\nМенеджер ответит вам в ближайшее время.")
      return "done"
    end
    table.insert(c.slots.parts, t)
    c:say("Записал: " .. t .. ". Нужно что-нибудь ещё? Напишите, что добавить, или «нет».")
    return "parts"
  end,

  -- Разговор окончен; новое сообщение начинает его сначала.
  done = function(c, ev)
    return c:go("start")
  end,
}
