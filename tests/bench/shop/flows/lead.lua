-- The peers' benchmark dialog: VIN, parts, "anything else?", summary.
return flow "lead" {
  start = function(c, ev)
    c:say("Здравствуйте! Я помогу подобрать детали. Пришлите, пожалуйста, VIN или номер кузова.")
    return "vin"
  end,
  vin = function(c, ev)
    local car = text.car(ev.text or "")
    if not car then c:say("Не вижу VIN, пришлите 17 знаков.") return "vin" end
    c.slots.car = car.value
    c.slots.parts = {}
    c:say("Спасибо, записал: " .. car.value .. ". Какие запчасти нужны?")
    return "parts"
  end,
  parts = function(c, ev)
    if text.is(ev.text or "", "done") then
      c:say("Заявка принята.\nVIN: " .. c.slots.car .. "\nЗапчасти: " ..
            table.concat(c.slots.parts, ", ") .. "\nМенеджер ответит вам в ближайшее время.")
      c:lead({ car = c.slots.car, parts = c.slots.parts })
      return "start"
    end
    table.insert(c.slots.parts, ev.text)
    c:say("Записал: " .. ev.text .. ". Нужно что-нибудь ещё?")
    return "parts"
  end,
}
