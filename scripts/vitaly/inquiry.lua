-- Подбор товара (сценарий inquiry) — для магазинов без VIN, например
-- электроники. Виталий здоровается, спрашивает, что клиент ищет, собирает
-- список («Что-нибудь ещё?»), показывает итог и передаёт менеджеру.
--
-- Шаги:
--   start   — первое сообщение: приветствие и разбор сообщения
--   items   — ждём, что клиент ищет
--   more    — спросили «Что-нибудь ещё?»
--   done    — заявка у менеджера
--   remind  — будильник: менеджер не ответил за полчаса
--   stopped — клиент попросил не писать

local say = require("say")
local common = require("common")
local parts = require("parts")
local msg = require("msg")

-- Дописывает в список всё, что клиент назвал. Возвращает, сколько нового
-- и был ли вопрос.
local function read_items(c, t, reply)
  local found, asked = parts.extract(t, false)
  local added = {}
  c.slots.items = c.slots.items or {}
  for _, item in ipairs(found) do
    if parts.add(c.slots.items, item) then added[#added + 1] = item end
  end
  if #added > 0 then say.add(reply, say.text("saved", { what = parts.list(added) })) end
  return #added, asked
end

-- Клиент закончил: «нет», «всё», «спасибо».
local function finished(t)
  return text.is(t, "done") or text.is(t, "no") or text.is(t, "declined") or text.is(t, "thanks")
end

-- Итог, заявка и передача менеджеру.
local function finish(c, reply)
  local list = c.slots.items or {}
  if #list > 0 then
    say.add(reply, say.text("inq_summary", { items = parts.list(list) }))
  else
    say.add(reply, say.text("inq_summary_empty"))
  end
  say.add(reply, common.manager_when())
  c:say(say.join(reply))
  c:lead({ parts = list, name = c.name, phone = c.phone, photos = c.slots.photos })
  local card = common.card(c, { { "Ищет", #list > 0 and parts.list(list) or "не сказал" } })
  return common.handoff(c, "inquiry", "card_lead", card, "inquiry.remind")
end

-- Общий разбор ответа в шагах items и more.
local function step(c, ev, waiting)
  local reply, t = c.turn.reply, c.turn.text
  local added, asked = read_items(c, t, reply)
  if added == 0 and finished(t) and (waiting == "more" or not text.is(t, "thanks")) then
    return finish(c, reply)
  end
  if asked then say.add(reply, say.text("question_later")) end
  if added > 0 or #c.slots.items > 0 then
    if added == 0 and text.is(t, "yes") then
      say.add(reply, say.text("inq_more_which"))
    elseif added == 0 and not asked and ev.kind ~= "photo" then
      say.add(reply, say.text("blank_more"))
    else
      say.add(reply, say.text("ask_more"))
    end
    c:say(say.join(reply))
    return "more"
  end
  if msg.blank(t) and ev.kind ~= "photo" then
    say.add(reply, say.text("inq_blank"))
  else
    say.add(reply, say.text("inq_ask"))
  end
  c:say(say.join(reply))
  return "items"
end

return flow "inquiry" {
  version = 1,

  -- Перед каждым сообщением клиента (кроме шагов из списка — они читают
  -- сообщение сами): отписка, телефон, фото; шаги берут готовые
  -- c.turn.reply и c.turn.text. См. common.before.
  before = common.before { "start", "done", "stopped" },

  -- Первое сообщение: забываем прошлый разговор, здороваемся. before здесь
  -- не работает: сначала забываем, потом разбираем сообщение.
  start = function(c, ev)
    common.reset(c)
    c:cancel("inquiry.remind")
    local reply = { say.text("hello") }
    local stop = common.pre(c, ev, reply)
    if stop then return stop end
    local added, asked = read_items(c, msg.text(ev), reply)
    if asked then say.add(reply, say.text("question_later")) end
    if added > 0 then
      say.add(reply, say.text("ask_more"))
      c:say(say.join(reply))
      return "more"
    end
    say.add(reply, say.text("inq_ask"))
    c:say(say.join(reply))
    return "items"
  end,

  items = function(c, ev) return step(c, ev, "items") end,
  more = function(c, ev) return step(c, ev, "more") end,

  remind = common.remind,
  done = common.done,
  stopped = common.stopped,
}
