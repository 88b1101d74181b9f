-- Подарки (сценарий gifts).
--
-- Рассылка (shopbot campaign gifts) будит разговор в шаге checkin через
-- gifts.after_days после покупки в подарок. Пишем получателю подарка, если
-- до него можно достучаться (рассылка сама выбирает чат), иначе покупателю.
-- Спрашиваем, всё ли в порядке, и предлагаем аксессуары из
-- gifts.accessories в shop.json для категории товара.
-- Итоги для статистики (c:record "outcome", campaign = gifts):
--   ok                 — всё хорошо
--   problem            — что-то не так: передаём менеджеру
--   accessory_interest — хотят аксессуар: заявка и менеджер (вдобавок к ok)
--   silent             — не ответили за retention.silent_after
--   optout             — «стоп»
--
-- Шаги:
--   checkin   — будильник рассылки: первое сообщение
--   answer    — ждём ответа «всё ли в порядке»
--   accessory — предложили аксессуары
--   closed    — всё обсудили
--   silent    — будильник: не ответили
--   remind    — будильник: менеджер не ответил за полчаса
--   done, stopped

local say = require("say")
local common = require("common")
local parts = require("parts")
local words = require("words")
local msg = require("msg")

local CAMPAIGN = "gifts"

-- Аксессуары для категории товара (gifts.accessories в shop.json).
local function accessories_for(category)
  local all = shop.gifts.accessories
  if all == nil or category == nil then return {} end
  local want = text.norm(category)
  for name, list in pairs(all) do
    if text.norm(name) == want then
      local out = {}
      for i = 1, #list do out[i] = list[i] end
      return out
    end
  end
  return {}
end

-- Начало слова, по которому узнаём аксессуар в ответе клиента:
-- «чехол» -> «чех» (подойдёт «чехлы»), «зарядка» -> «заряд».
local function stem(word)
  local n = utf8.len(word)
  local keep = n <= 5 and 3 or n - 2
  return word:sub(1, utf8.offset(word, keep + 1) - 1)
end

-- Какие аксессуары из списка клиент назвал: есть ли в тексте слово,
-- которое начинается с начала слова из названия аксессуара.
local function mentioned(t, list)
  local said = " " .. text.plain(t) .. " "
  local out = {}
  for _, item in ipairs(list) do
    local hit = false
    for w in text.plain(item):gmatch("%S+") do
      if utf8.len(w) >= 4 and said:find(" " .. stem(w), 1, true) then hit = true end
    end
    if hit then out[#out + 1] = item end
  end
  return out
end

-- Название товара внутри фразы: «Смартфон Samsung» -> «смартфон Samsung»
-- («iPhone», «JBL» не трогаем).
local function product_name(p)
  if type(p) ~= "string" or p == "" then return "товар" end
  local first = utf8.codepoint(p, 1)
  local second_at = utf8.offset(p, 2)
  local second = second_at and second_at <= #p and utf8.codepoint(p, second_at) or 0
  if first >= 0x410 and first <= 0x42F and second >= 0x430 and second <= 0x44F then
    return utf8.char(first + 0x20) .. p:sub(second_at)
  end
  return p
end

-- Что-то не так с подарком: «не работает», «не заряжается», «нет».
local function complains(t)
  if text.is(t, "problem") or words.has_phrase(text.norm(t), words.problem) then return true end
  return text.is(t, "no") and not text.is(t, "yes")
end

-- Кто это: получатель подарка или покупатель (для карточки менеджеру).
local function role(c)
  if c.slots.recipient then return "получатель подарка" end
  return "покупатель подарка"
end

-- Строки карточки для менеджеров про этот подарок.
local function gift_card(c, extra)
  local fields = {
    { "Товар", c.slots.product },
    { "Заказ", c.slots.order_id },
    { "Кто пишет", role(c) .. (c.slots.person and (", " .. c.slots.person) or "") },
  }
  for _, f in ipairs(extra) do fields[#fields + 1] = f end
  return common.card(c, fields)
end

-- Клиент хочет аксессуары: заявка и передача менеджеру.
local function interest(c, reply, items)
  c:cancel("gifts.silent")
  common.outcome(c, "ok")
  common.outcome(c, "accessory_interest", { items = parts.list(items) })
  say.add(reply, say.text("gift_interest", { items = parts.list(items) }))
  say.add(reply, common.manager_when())
  c:say(say.join(reply))
  c:lead({ parts = items, name = c.name or c.slots.person, phone = c.phone,
           product = c.slots.product, order_id = c.slots.order_id })
  local card = gift_card(c, { { "Аксессуары", parts.list(items) }, { "Рассылка", say.CAMPAIGNS.gifts } })
  return common.handoff(c, "gift-accessory", "card_lead", card, "gifts.remind")
end

-- С подарком что-то не так: извиняемся и зовём менеджера. ev — то
-- сообщение: оно идёт в карточку.
local function problem(c, reply, ev)
  c:cancel("gifts.silent")
  common.outcome(c, "problem")
  say.add(reply, say.text("gift_problem"))
  say.add(reply, common.manager_when("handoff_help_open"))
  c:say(say.join(reply))
  local card = gift_card(c, { { "Сообщение", msg.quote(ev, say.text("quote_cut")) } })
  return common.handoff(c, "gift-problem", "card_gift_problem", card, "gifts.remind")
end

-- Вопрос, который бот не понял: к менеджеру.
local function question(c, reply, ev)
  c:cancel("gifts.silent")
  say.add(reply, say.text("pass_question"))
  say.add(reply, common.manager_when("handoff_help_open"))
  c:say(say.join(reply))
  local card = gift_card(c, { { "Сообщение", msg.quote(ev, say.text("quote_cut")) } })
  return common.handoff(c, "gift-question", "card_question", card, "gifts.remind")
end

return flow "gifts" {
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

  -- Будильник рассылки. ev.data: order_id, product, category,
  -- recipient (пишем получателю?), recipient_name.
  checkin = function(c, ev)
    if c.slots.optout then return "stopped" end
    common.reset(c)
    local d = ev.data or {}
    c.slots.campaign = CAMPAIGN
    c.slots.order_id = d.order_id
    c.slots.product = product_name(d.product)
    c.slots.category = d.category
    c.slots.recipient = d.recipient == true
    local key
    if c.slots.recipient then
      c.slots.person = d.recipient_name
      key = "gift_recipient"
    else
      local customer = c:customer()
      c.slots.person = customer and customer.name or nil
      key = "gift_buyer"
    end
    c:record("contacted", { campaign = CAMPAIGN, order_id = d.order_id })
    c:say(say.text(key, { hi = common.hi(c.slots.person), product = c.slots.product }))
    c:wake(shop.retention.silent_after, "gifts.silent")
    return "answer"
  end,

  -- Ответ на «всё ли в порядке?».
  answer = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    if msg.blank(t) then
      say.add(reply, say.text("gift_unclear"))
      c:say(say.join(reply))
      return "answer"
    end
    if complains(t) then return problem(c, reply, ev) end
    local list = accessories_for(c.slots.category)
    local picked = mentioned(t, list)
    if #picked > 0 then return interest(c, reply, picked) end
    if t:find("?", 1, true) then return question(c, reply, ev) end
    c:cancel("gifts.silent")
    common.outcome(c, "ok")
    if #list == 0 then
      say.add(reply, say.text("gift_ok"))
      c:say(say.join(reply))
      return "closed"
    end
    say.add(reply, say.text("gift_offer", { list = parts.list(list) }))
    c:say(say.join(reply))
    return "accessory"
  end,

  -- Предложили аксессуары: какие интересны?
  accessory = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local list = accessories_for(c.slots.category)
    local picked = mentioned(t, list)
    if #picked == 0 and words.has_phrase(text.norm(t), words.all) then picked = list end
    if #picked > 0 then return interest(c, reply, picked) end
    if complains(t) and not text.is(t, "declined") then return problem(c, reply, ev) end
    if text.is(t, "declined") or text.is(t, "no") or text.is(t, "done") then
      say.add(reply, say.text("gift_no"))
      c:say(say.join(reply))
      return "closed"
    end
    local wants = text.is(t, "yes") or text.is(t, "need") or words.has_phrase(text.norm(t), words.accept)
    if wants and c.slots.asked_which then return interest(c, reply, list) end
    if t:find("?", 1, true) then return question(c, reply, ev) end
    if wants or not text.is(t, "thanks") then
      c.slots.asked_which = true
      say.add(reply, say.text("gift_which", { list = parts.list(list) }))
      c:say(say.join(reply))
      return "accessory"
    end
    say.add(reply, say.text("gift_no"))
    c:say(say.join(reply))
    return "closed"
  end,

  -- Всё обсудили. «Спасибо» — не отвечаем, новый вопрос — к обычному подбору.
  closed = function(c, ev)
    local reply, t = c.turn.reply, c.turn.text
    local picked = mentioned(t, accessories_for(c.slots.category))
    if #picked > 0 then return interest(c, reply, picked) end
    if msg.blank(t) or text.is(t, "thanks") or text.is(t, "yes") then
      if #reply > 0 then c:say(say.join(reply)) end
      return "closed"
    end
    return c:switch(shop.flows.start)
  end,

  -- Будильник: на первое сообщение так и не ответили.
  silent = function(c, ev)
    common.outcome(c, "silent")
    return "answer"
  end,

  remind = common.remind,
  done = common.done,
  stopped = common.stopped,
}
