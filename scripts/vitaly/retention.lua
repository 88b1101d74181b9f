-- Возврат постоянных клиентов (сценарий retention).
--
-- Рассылка (shopbot campaign retention) будит разговор в шаге checkin.
-- Виталий благодарит клиента за покупки и спрашивает, не нужны ли
-- запчасти. Итоги для статистики (c:record "outcome"):
--   need     — нужны: переходим к заявке (lead), заявка помечается рассылкой
--   later    — «позже»: договариваемся о дате и напоминаем в этот день
--   declined — ничего не нужно: говорим про бонусы и предлагаем скидку
--   silent   — не ответил за retention.silent_after (3 дня)
--   problem  — жалоба: передаём менеджеру
--   optout   — «стоп»: больше не пишем
-- Итог у контакта один (первый), кроме отписки. Дополнительно пишутся
-- contacted, later_kept (после напоминания всё-таки что-то нужно), offer,
-- offer_accepted, offer_expired.
--
-- Шаги:
--   checkin       — будильник рассылки: первое сообщение
--   answer        — ждём ответа (и после напоминания тоже)
--   when          — клиент сказал «позже», спросили когда
--   later_wait    — дата назначена, ждём её
--   remind        — будильник: назначенный день настал
--   silent        — будильник: клиент так и не ответил
--   offer         — предложили скидку, ждём «хочу»
--   offer_expired — будильник: срок скидки вышел
--   hold          — будильник: менеджер не ответил на жалобу за полчаса
--   done, stopped — у менеджера / клиент отписался

local say = require("say")
local common = require("common")
local words = require("words")
local msg = require("msg")
local ru = require("ru")
local dates = require("dates")
local parts = require("parts")
local ai = require("ai")

local CAMPAIGN = "retention"

-- Приветствие по имени из базы клиентов, если оно там есть.
local function hi(c)
  local customer = c:customer()
  return common.hi(customer and customer.name)
end

-- Настройки для text.date: дни зарплаты и конец новогодних праздников из
-- shop.json, напоминаем в 11:00.
local function date_opts()
  local paydays = {}
  for i = 1, math.min(#shop.payday, 4) do paydays[i] = shop.payday[i] end
  return { payday = paydays, hour = 11, new_year_until = shop.new_year_holidays_until }
end

-- Дата из ответа («через две недели», «после зарплаты», «15-го»),
-- сдвинутая в рабочее время магазина, или nil.
local function date_in(t)
  local at = text.date(t, time.now(), shop.timezone, date_opts())
  if at then return time.next_open(at) end
  return nil
end

-- Через две недели в 11:00 (или ближайшее рабочее время после).
local function two_weeks()
  local d = time.split(time.now() + 14 * 86400)
  return time.next_open(time.make(d.year, d.month, d.day, 11, 0))
end

-- Клиент что-то ответил по делу: будильник «молчит» больше не нужен.
local function answered(c)
  c:cancel("retention.silent")
end

-- Договорились о дате: будильник и ответ клиенту.
local function schedule(c, at, key)
  answered(c)
  c:wake(at, "retention.remind")
  common.outcome(c, "later", { at = time.format(at) })
  c:say(say.text(key, { date = dates.human(at) }))
  return "later_wait"
end

-- Клиенту что-то нужно: переходим к заявке с этим же сообщением
-- («да, нужны колодки» — колодки уже будут в заявке).
local function to_lead(c)
  answered(c)
  c:cancel("retention.remind")
  if c.slots.reminded then
    c:record("later_kept", { campaign = CAMPAIGN })
    c.slots.reminded = nil
  end
  common.outcome(c, "need")
  c.slots.intro = say.text("ret_need")
  return c:switch("lead", "intake")
end

-- Сколько бонусов на счёте, словами: «350 бонусов», или nil.
local function bonus_text(c)
  local customer = c:customer()
  local bonus = customer and tonumber(customer.bonus_balance)
  if not bonus or bonus < 1 then return nil end
  bonus = math.floor(bonus)
  local w = say.BONUS_WORDS
  return ru.number(bonus) .. " " .. ru.plural(bonus, w[1], w[2], w[3])
end

-- Ничего не нужно: благодарим, напоминаем про бонусы, предлагаем скидку
-- на retention.offer_valid (24 часа).
local function declined(c, reply)
  answered(c)
  c:cancel("retention.remind")
  common.outcome(c, "declined")
  say.add(reply, say.text("ret_declined"))
  local bonus = bonus_text(c)
  if bonus then say.add(reply, say.text("ret_bonus", { bonus = bonus })) end
  local percent = shop.retention.discount_percent
  if percent and percent > 0 then
    local valid = shop.retention.offer_valid
    c.slots.offer_until = time.now() + time.duration(valid)
    c.slots.offer_percent = percent
    c:record("offer", { campaign = CAMPAIGN, percent = percent, valid = valid })
    c:wake(valid, "retention.offer_expired")
    say.add(reply, say.text("ret_offer", { till = dates.day_time(c.slots.offer_until),
                                           percent = ru.number(percent) }))
  end
  c:say(say.join(reply))
  return "offer"
end

-- Передать менеджеру: жалоба или вопрос, который бот не понял. ev — то
-- сообщение: оно идёт в карточку.
local function to_manager(c, reply, ev, key, title, reason)
  answered(c)
  c:cancel("retention.remind")
  say.add(reply, say.text(key))
  say.add(reply, common.manager_when("handoff_help_open"))
  c:say(say.join(reply))
  local card = common.card(c, { { "Рассылка", say.CAMPAIGNS.retention },
                                { "Сообщение", msg.quote(ev, say.text("quote_cut")) } })
  return common.handoff(c, reason, title, card, "retention.hold")
end

-- Жалоба на товар или магазин? Слова из списка жалоб («треснул») не
-- жалоба, если клиенту нужна запчасть («треснуло лобовое») или машины
-- больше нет («разбил машину»).
local function complains(t)
  if text.is(t, "problem") then return true end
  return words.has_phrase(text.norm(t), words.problem) and not text.is(t, "need")
     and not text.is(t, "circumstance")
end

-- Согласие: «да», «давайте», «хочу», «нужны колодки».
local function agrees(t)
  return text.is(t, "yes") or text.is(t, "need") or words.has_phrase(text.norm(t), words.accept)
end

-- Отказ: «нет», «ничего не нужно», «спасибо, не надо».
local function refuses(t)
  return text.is(t, "declined") or text.is(t, "no") or text.is(t, "done")
end

-- Правила ответа не поняли: спрашиваем модель (если она настроена в
-- shop.json) и проверяем её ответ теми же правилами: намерение — из
-- известных, дата — должна читаться (text.date). Возвращает шаг или nil
-- (тогда как раньше: переспросить, потом менеджеру).
local function ask_model(c, reply, ev, t)
  local v = ai.retention_reply(t)
  if not v then return nil end
  c:record("llm_used", { campaign = CAMPAIGN, step = "answer", intent = v.intent })
  if v.intent == "later" then
    local at = type(v.when) == "string" and date_in(v.when)
    if at then return schedule(c, at, "ret_later_ok") end
    answered(c)
    say.add(reply, say.text("ret_when"))
    c:say(say.join(reply))
    return "when"
  elseif v.intent == "need" then
    c.slots.parts = c.slots.parts or {}
    for _, p in ipairs(v.parts or {}) do
      if type(p) == "string" and p ~= "" then parts.add(c.slots.parts, p) end
    end
    return to_lead(c)
  elseif v.intent == "declined" then
    return declined(c, reply)
  elseif v.intent == "problem" then
    common.outcome(c, "problem")
    return to_manager(c, reply, ev, "ret_problem", "card_complaint", "retention-problem")
  elseif v.intent == "stop" then
    return common.optout(c)
  end
  return nil
end

-- Ответ на рассылку, который понимают правила: шаг или nil (тогда
-- спрашиваем модель, а без неё переспрашиваем).
local function by_rules(c, reply, ev, t)
  -- «Кто это?», «откуда мой номер?», «вы бот?» — честно отвечаем и
  -- спрашиваем снова; итог question не мешает записать ответ потом.
  if text.is(t, "who") and not text.is(t, "need") then
    common.outcome(c, "question")
    say.add(reply, say.text("ret_who"))
    c:say(say.join(reply))
    return "answer"
  end
  -- Просто «ок», «👍» — ни да, ни нет: коротко уточняем.
  if text.is(t, "ack") then
    say.add(reply, say.text("ret_ack"))
    c:say(say.join(reply))
    return "answer"
  end
  -- «всё хорошо», «машина в порядке» — значит, ничего не нужно
  if text.is(t, "fine") and not text.is(t, "need") and not complains(t) then
    return declined(c, reply)
  end
  local intent = text.intent(t)
  if intent == "later" then
    local at = date_in(t)
    if at then return schedule(c, at, "ret_later_ok") end
    answered(c)
    say.add(reply, say.text("ret_when"))
    c:say(say.join(reply))
    return "when"
  end
  if complains(t) then
    common.outcome(c, "problem")
    return to_manager(c, reply, ev, "ret_problem", "card_complaint", "retention-problem")
  end
  if intent == "declined" then return declined(c, reply) end
  if agrees(t) and not text.is(t, "no") then return to_lead(c) end
  if refuses(t) or text.is(t, "thanks") then return declined(c, reply) end
  return nil
end

return flow "retention" {
  version = 1,

  -- Перед каждым сообщением клиента (кроме шагов из списка — они читают
  -- сообщение сами): отписка, телефон, фото; шаги берут готовые
  -- c.turn.reply и c.turn.text. См. common.before.
  before = common.before { "done", "stopped" },

  -- Сюда попадают, только если шаг разговора потерялся: считаем ответом.
  start = function(c, ev)
    if ev.kind == "wake" then return "answer" end
    return c:go("answer")
  end,

  -- Будильник рассылки: первое сообщение клиенту.
  checkin = function(c, ev)
    if c.slots.optout then return "stopped" end
    common.reset(c)
    c.slots.campaign = CAMPAIGN
    c:record("contacted", { campaign = CAMPAIGN })
    c:say(say.text("ret_checkin", { hi = hi(c) }))
    c:wake(shop.retention.silent_after, "retention.silent")
    return "answer"
  end,

  -- Ответ на первое сообщение или на напоминание.
  answer = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local step = by_rules(c, reply, ev, t)
    if step then
      ai.saved(c, "rules", "retention_reply")
      return step
    end
    step = ask_model(c, reply, ev, t)
    if step then return step end
    -- Непонятно: переспрашиваем один раз, потом зовём менеджера.
    if c.slots.unclear then
      return to_manager(c, reply, ev, "pass_question", "card_question", "retention-question")
    end
    c.slots.unclear = true
    say.add(reply, say.text("ret_unclear"))
    c:say(say.join(reply))
    return "answer"
  end,

  -- Спросили, когда напомнить. Не поняли дату — напомним через две недели.
  when = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local at = date_in(t)
    if at then return schedule(c, at, "ret_later_ok") end
    if text.is(t, "declined") or text.is(t, "no") then return declined(c, reply) end
    if text.is(t, "need") then return to_lead(c) end
    return schedule(c, two_weeks(), "ret_later_default")
  end,

  -- Дата назначена. «Спасибо», «ок» — не отвечаем; новая дата — переносим;
  -- понадобилось раньше — заявка; вопрос — менеджеру.
  later_wait = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local at = date_in(t)
    if at then return schedule(c, at, "ret_later_ok") end
    if text.is(t, "need") then return to_lead(c) end
    if t:find("?", 1, true) then
      return to_manager(c, reply, ev, "pass_question", "card_question", "retention-question")
    end
    if #reply > 0 then c:say(say.join(reply)) end
    return "later_wait"
  end,

  -- Будильник: клиент просил напомнить — напоминаем.
  remind = function(c, ev)
    if c.slots.optout then return "stopped" end
    if c.mode ~= "bot" then return "done" end
    c.slots.reminded = true
    c.slots.unclear = nil
    c:say(say.text("ret_remind", { hi = hi(c) }))
    return "answer"
  end,

  -- Будильник: клиент не ответил. Ничего не пишем, только итог «silent».
  silent = function(c, ev)
    common.outcome(c, "silent")
    return "answer"
  end,

  -- Предложили скидку. «Хочу» / «давайте» в срок — заявка со скидкой,
  -- после срока — заявка без скидки.
  offer = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local valid = c.slots.offer_until ~= nil and time.now() < c.slots.offer_until
    local percent = ru.number(c.slots.offer_percent or shop.retention.discount_percent)
    if agrees(t) and not refuses(t) then
      if valid then
        c:cancel("retention.offer_expired")
        c:record("offer_accepted", { campaign = CAMPAIGN, percent = c.slots.offer_percent })
        c.slots.discount = c.slots.offer_percent
        c.slots.offer_until = nil
        c.slots.intro = say.text("ret_offer_taken", { percent = percent })
      else
        c.slots.intro = say.text("ret_offer_over")
      end
      return c:switch("lead", "intake")
    end
    if valid and not refuses(t) and not text.is(t, "thanks") then
      say.add(reply, say.text("ret_offer_hint", { percent = percent,
                                                  till = dates.day_time(c.slots.offer_until) }))
    else
      say.add(reply, say.text("ret_bye"))
    end
    c:say(say.join(reply))
    return "offer"
  end,

  -- Будильник: срок скидки вышел. Клиенту не пишем.
  offer_expired = function(c, ev)
    if c.slots.offer_until and not c.slots.discount then
      c:record("offer_expired", { campaign = CAMPAIGN })
    end
    c.slots.offer_until = nil
    return "offer"
  end,

  hold = common.remind,
  done = common.done,
  stopped = common.stopped,
}
