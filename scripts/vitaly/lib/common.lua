-- Общие помощники для всех сценариев Виталия: отписка, фото, телефон,
-- передача менеджеру, напоминание, итоги рассылок, даты словами.
-- msg, ru, dates, list — общие модули всех магазинов (scripts/lib).

local say = require("say")
local words = require("words")
local parts = require("parts")
local msg = require("msg")
local dates = require("dates")

local M = {}

-- Все будильники, которые ставят сценарии. При отписке отменяем их все.
M.TIMERS = { "lead.remind", "inquiry.remind", "gifts.remind", "retention.silent",
             "retention.remind", "retention.offer_expired", "gifts.silent" }

-- Забыть всё о прошлом разговоре (новая заявка, новая рассылка).
function M.reset(c)
  for k in pairs(c.slots) do c.slots[k] = nil end
end

-- «/start», «/start@бот»: клиент хочет начать сначала.
function M.restarts(t)
  return text.is(t or "", "restart")
end

-- Клиент просит не писать: «стоп», «не пишите», «отпишитесь».
function M.wants_stop(t)
  return text.is(t or "", "stop")
end

-- Итоги, которые пишутся вдобавок к главному и его не занимают: вопрос
-- («кто это?») — клиент ещё ответит по делу.
local EXTRA_OUTCOMES = { optout = true, accessory_interest = true, question = true }

-- Записать итог рассылки для статистики. Итог у контакта один — первый;
-- отписка записывается всегда, интерес к аксессуарам — вдобавок к «ok»,
-- вопрос — вдобавок к тому, что клиент ответит потом.
function M.outcome(c, name, extra)
  local campaign = c.slots.campaign
  if not campaign then return end
  local first = c.slots.outcome == nil and name ~= "question"
  if first or EXTRA_OUTCOMES[name] then
    local data = { campaign = campaign, outcome = name }
    for k, v in pairs(extra or {}) do data[k] = v end
    c:record("outcome", data)
  end
  if first then c.slots.outcome = name end
end

-- Клиент отписался: говорим один раз и больше не пишем.
function M.optout(c)
  c:optout()
  c:say(say.text("optout"))
  M.outcome(c, "optout")
  for _, name in ipairs(M.TIMERS) do c:cancel(name) end
  c.slots.optout = true
  return "stopped"
end

-- Запоминаем фото (их номера уйдут в заявку) и благодарим.
function M.keep_photos(c, ev, reply)
  c.slots.photos = c.slots.photos or {}
  for _, p in ipairs(ev.photos or {}) do
    if type(p) == "table" and p.id then parts.add(c.slots.photos, tostring(p.id)) end
  end
  say.add(reply, say.text("photo_thanks"))
end

-- Номер варианта в ответе «какой из них?»: «2», «второй», «первая».
function M.choice_number(t)
  local n = text.norm(t or "")
  local digit = n:match("^%D*(%d)%D*$")
  if digit then return tonumber(digit) end
  if n:find("перв") then return 1 end
  if n:find("втор") then return 2 end
  if n:find("трет") then return 3 end
  return nil
end

-- Общее начало каждого шага, где ждём ответа клиента: отписка, телефон,
-- фото. reply — список кусков ответа (туда добавится «спасибо за фото»).
-- Возвращает "stopped", если клиент отписался (шаг должен вернуть это).
function M.pre(c, ev, reply)
  local t = msg.text(ev)
  if M.wants_stop(t) then return M.optout(c) end
  -- Два разных номера в одном сообщении — не угадываем, спрашиваем какой.
  local phones = text.phones(t)
  local phone = #phones == 1 and phones[1] or nil
  if #phones > 1 then
    c.slots.phone_choices = phones
    local list = {}
    for i, p in ipairs(phones) do list[i] = i .. ") " .. p end
    say.add(reply, say.text("which_phone", { list = table.concat(list, " ") }))
  elseif #phones == 0 and c.slots.phone_choices then
    -- ответ на «какой номер записать?»: «первый», «2»
    local pick = c.slots.phone_choices[M.choice_number(t) or 0]
    if pick then
      phone = pick
      say.add(reply, say.text("phone_saved", { phone = pick }))
      if c.turn then c.turn.text = "" end
    end
  end
  if phone then c.slots.phone_choices = nil end
  if not phone and #phones == 0 and type(ev.contact) == "table" and ev.contact.phone then
    phone = text.phone(tostring(ev.contact.phone))
  end
  if phone then c.phone = phone end
  if ev.kind == "photo" then M.keep_photos(c, ev, reply) end
  return nil
end

-- before для сценария: before = common.before { "start", "done", "stopped" }.
-- Перед шагом, который ждёт ответа клиента, делает M.pre и кладёт в
-- c.turn.reply куски ответа (там уже может быть «спасибо за фото»), а в
-- c.turn.text — текст сообщения (msg.text). Отписался — шаг не запускается,
-- разговор переходит в stopped. Шаги из списка разбирают сообщение сами
-- (start — после того, как забыл прошлый разговор; stopped молчит даже на
-- «стоп»; done отдаёт сообщение start). Будильники (ev.kind == "wake") не
-- сообщения клиента: для них ничего не делает.
function M.before(own_steps)
  local own = {}
  for _, s in ipairs(own_steps or {}) do own[s] = true end
  return function(c, ev)
    if ev.kind == "wake" then return nil end
    -- «/start» посреди разговора (привычка Telegram) — начать сначала.
    if M.restarts(msg.text(ev)) and c.step ~= "start" then
      M.reset(c)
      return c:switch(shop.flows.start, "start")
    end
    if own[c.step] then return nil end
    local reply = {}
    c.turn.reply, c.turn.text = reply, msg.text(ev)
    return M.pre(c, ev, reply)
  end
end

-- Шаг после отписки: молчим. Если клиент сам пришёл за покупкой
-- (прислал VIN или написал, что нужно), начинаем заново.
function M.stopped(c, ev)
  local t = msg.text(ev)
  if ev.kind ~= "wake" and not M.wants_stop(t) and (#text.cars(t) > 0 or text.is(t, "need")) then
    c.slots.optout = nil
    return c:switch(shop.flows.start)
  end
  return "stopped"
end

-- ---- Даты словами -----------------------------------------------------------

-- Когда ответит менеджер: «сегодня с 9:00», «завтра с 9:00»,
-- «в понедельник, 9 марта, с 9:00».
function M.when(t)
  local now = time.now()
  if dates.same_day(t, now) then return say.text("when_today", { time = dates.hhmm(t) }) end
  if dates.same_day(t, now + 86400) then
    return say.text("when_tomorrow", { time = dates.hhmm(t) })
  end
  local weekday = say.WEEKDAYS[time.split(t).wday]
  return say.text("when_later", { weekday = weekday, date = dates.human(t), time = dates.hhmm(t) })
end

-- ---- Имя клиента --------------------------------------------------------------

-- Как обратиться: «Иванов Иван Петрович» -> «Иван Петрович»,
-- «Иванов Иван» -> «Иван», «Анна» -> «Анна», «Громов Илья (сын)» -> «Илья».
-- Организация («ООО "Уралтранс"») или пусто — nil, тогда без имени.
function M.call_name(full)
  if type(full) ~= "string" then return nil end
  full = full:gsub("%b()", " ")
  if full:find('"', 1, true) or full:find("«", 1, true) then return nil end
  local list = {}
  for w in full:gmatch("%S+") do list[#list + 1] = w end
  if #list == 0 or words.company_set[text.norm(list[1])] then return nil end
  if #list >= 3 then return list[2] .. " " .. list[3] end
  if #list == 2 then
    local first = text.norm(list[1])
    for _, ending in ipairs(words.surname_endings) do
      if first:sub(-#ending) == ending then return list[2] end
    end
  end
  return list[1]
end

-- Приветствие: «Здравствуйте, Иван Петрович!» или просто «Здравствуйте!».
function M.hi(full_name)
  local name = M.call_name(full_name)
  if name then return say.text("hi_name", { name = name }) end
  return say.text("hi")
end

-- ---- Передача менеджеру ---------------------------------------------------

-- Кто клиент, одной строкой для менеджера: «Иван, +79121234567». Имя —
-- из мессенджера или из базы клиентов.
function M.who(c)
  local list = {}
  local customer = c:customer()
  local name = c.name or (customer and customer.name) or nil
  if name then list[#list + 1] = name end
  if c.phone then list[#list + 1] = c.phone end
  if #list == 0 then return "имя и телефон не указаны" end
  return table.concat(list, ", ")
end

-- Строки карточки для менеджеров: «Поле: значение» (пустые пропускаем),
-- затем кто клиент и где его чат.
function M.card(c, fields)
  local lines = {}
  for _, f in ipairs(fields) do
    if f[2] ~= nil and f[2] ~= "" then lines[#lines + 1] = f[1] .. ": " .. tostring(f[2]) end
  end
  lines[#lines + 1] = "Клиент: " .. M.who(c)
  lines[#lines + 1] = "Чат: " .. c.channel .. ":" .. c.chat
  return table.concat(lines, "\n")
end

-- Что сказать клиенту о том, когда ответит менеджер. open_key — текст для
-- рабочего времени (по умолчанию handoff_open).
function M.manager_when(open_key)
  if time.is_open() then
    local text_open = say.text(open_key or "handoff_open")
    if open_key == "handoff_help_open" and shop.shop.phone then
      text_open = text_open .. " " .. say.text("call_us")
    end
    return text_open
  end
  return say.text("handoff_closed", { when = M.when(time.next_open()) })
end

-- Фото клиента для чата менеджеров: идут сразу за карточкой. Номер фото
-- годится только в том же мессенджере (фото из Telegram можно переслать
-- в группу Telegram), из другого канала — только счёт «Фото: N шт.».
function M.photos_for_managers(c)
  local m = shop.managers
  if not c.slots.photos or type(m) ~= "table" or m.channel ~= c.channel then return nil end
  return c.slots.photos
end

-- Передать разговор менеджеру: карточка в чат менеджеров (title — имя
-- заголовка в say.lua, card — строки из M.card) и будильник remind_step
-- через handoff.remind_after из shop.json. Клиенту пишет сам сценарий.
function M.handoff(c, reason, title, card, remind_step)
  c.slots.card = card
  c:handoff(reason)
  c:notify(say.text(title) .. "\n" .. card, { photos = M.photos_for_managers(c) })
  c:wake(shop.handoff.remind_after, remind_step)
  return "done"
end

-- Шаг-будильник после передачи менеджеру (lead.remind и т. п.).
-- Если менеджер так и не взял разговор и магазин открыт — извиняемся перед
-- клиентом и напоминаем менеджерам. Если закрыт — переносим на открытие.
function M.remind(c, ev)
  if c.mode ~= "handoff" then return "done" end
  if not time.is_open() then
    c:wake(time.next_open(), c.flow .. "." .. c.step)
    return "done"
  end
  c:say(say.text("hold"))
  local head = say.text("card_remind", { after = dates.duration(shop.handoff.remind_after) })
  c:notify(head .. "\n" .. (c.slots.card or ("Чат: " .. c.channel .. ":" .. c.chat)))
  return "done"
end

-- Шаг done: разговор у менеджера. Сюда попадает только следующее
-- сообщение после того, как менеджер вернул разговор боту, — начинаем
-- сначала.
function M.done(c, ev)
  return c:switch(shop.flows.start)
end

return M
