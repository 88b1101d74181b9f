-- Заявка на запчасти (сценарий lead).
--
-- Виталий здоровается, просит VIN или номер кузова, собирает запчасти
-- («Что-нибудь ещё?»), пока клиент не скажет «всё», показывает итог и
-- передаёт заявку менеджеру. Все тексты — в lib/say.lua.
--
-- Шаги (где ждём следующее сообщение клиента):
--   start     — первое сообщение разговора: приветствие и разбор сообщения
--   intake    — то же без приветствия (сюда переходят из рассылок)
--   car       — ждём VIN или номер кузова
--   check_vin — в VIN, похоже, опечатка: ждём «да» или исправленный
--   which_car — в сообщении два разных VIN: ждём, какой из них
--   photo_car — на фото прочитали VIN: ждём «да» или VIN текстом
--   photo_part — на фото, похоже, деталь: ждём «да» или её название
--   parts     — машина есть, ждём список запчастей
--   more      — спросили «Что-нибудь ещё?»
--   done      — заявка у менеджера
--   remind    — будильник: менеджер не ответил за полчаса
--   stopped   — клиент попросил не писать

local say = require("say")
local common = require("common")
local parts = require("parts")
local car = require("car")
local words = require("words")
local msg = require("msg")
local ru = require("ru")
local ai = require("ai")

-- Сколько сообщений без VIN терпим, прежде чем передать заявку менеджеру как есть.
local CAR_TRIES = 3

-- ---- Машина ----------------------------------------------------------------

-- Запомнить машину. Новая — в список «Записал: …», замена — отдельной фразой.
local function save_car(c, found, reply, saved)
  local changed = c.slots.car ~= nil and c.slots.car ~= found.value
  c.slots.car, c.slots.car_kind = found.value, found.kind
  c.slots.vin_check, c.slots.choices = nil, nil
  local name = car.describe(found.value, found.kind)
  if changed then
    say.add(reply, say.text("car_changed", { car = name }))
  else
    table.insert(saved, 1, name)
  end
end

-- Принять найденную машину. Если это VIN Северной Америки с неверной
-- контрольной цифрой, сначала просим проверить (второй раз тот же VIN —
-- принимаем). Возвращает "check_vin", если переспросили.
local function take_car(c, found, reply, saved)
  if car.suspicious(found) and c.slots.vin_check ~= found.value then
    c.slots.vin_check = found.value
    return "check_vin"
  end
  save_car(c, found, reply, saved)
  return nil
end

-- Несколько машин в одном сообщении: спрашиваем, какая.
local function ask_which(c, cars, reply)
  c.slots.choices = {}
  local list = {}
  for i, found in ipairs(cars) do
    c.slots.choices[i] = { value = found.value, kind = found.kind,
                           suspicious = car.suspicious(found) }
    list[i] = i .. ") " .. car.describe(found.value, found.kind)
  end
  say.add(reply, say.text("which_car", { list = table.concat(list, " ") }))
  return "which_car"
end

-- ---- Разбор сообщения ---------------------------------------------------------

-- Читает из сообщения машину и запчасти, дописывает в reply/saved, что
-- записали. Возвращает {next = шаг, если надо переспросить про машину,
-- cars = сколько машин, parts = сколько новых запчастей, asked = был вопрос}.
local function read_message(c, t, reply, saved)
  local cars = car.find(t)
  -- Пока машины нет, берём только явные запчасти («нужна ...», «колодки»).
  local strict = c.slots.car == nil
  local found, asked = parts.extract(t, strict)
  -- Список сплошным текстом, который правила не разделили, раскладывает
  -- модель (если она есть); текст с VIN модели не уходит.
  local by_model = not strict and #cars == 0 and ai.parts_in_prose(c, t, found)
  if by_model then
    found = by_model
  elseif #found > 0 or #cars > 0 then
    ai.saved(c, "rules", "parts_list")
  end
  local added = {}
  c.slots.parts = c.slots.parts or {}
  for _, p in ipairs(found) do
    if parts.add(c.slots.parts, p) then added[#added + 1] = p end
  end
  local m = { cars = #cars, parts = #added, asked = asked, text = t }
  if #cars == 1 then m.next = take_car(c, cars[1], reply, saved) end
  for _, p in ipairs(added) do saved[#saved + 1] = p end
  if #saved > 0 then say.add(reply, say.text("saved", { what = parts.list(saved) })) end
  if #cars > 1 then m.next = ask_which(c, cars, reply) end
  if m.next == "check_vin" then say.add(reply, say.text("check_vin", { car = c.slots.vin_check })) end
  return m
end

-- Клиент закончил перечислять: «нет», «всё», «больше ничего», «спасибо», «no».
local function finished(t)
  return text.is(t, "done") or text.is(t, "no") or text.is(t, "declined") or text.is(t, "thanks")
end

-- ---- Итог и передача менеджеру ------------------------------------------------

-- Заявка готова: итог клиенту, заявка в базу, карточка менеджерам.
-- question — вопрос клиента, заданный вместе с «всё» («всё, когда можно
-- забрать?»): он уходит менеджеру в карточке.
local function finish(c, reply, question)
  local list = c.slots.parts or {}
  local car_name = car.describe(c.slots.car, c.slots.car_kind)
  if c.slots.car_kind == "text" then
    say.add(reply, say.text("no_car_handoff"))
    car_name = "со слов клиента: «" .. c.slots.car .. "»"
  elseif #list > 0 then
    say.add(reply, say.text("summary", { car = car_name, parts = parts.list(list) }))
  else
    say.add(reply, say.text("summary_no_parts", { car = car_name }))
  end
  if c.slots.discount then
    say.add(reply, say.text("discount_kept", { discount = ru.number(c.slots.discount) }))
  end
  if question then say.add(reply, say.text("question_with_lead")) end
  say.add(reply, common.manager_when())
  c:say(say.join(reply))

  c:lead({ car = c.slots.car, car_kind = c.slots.car_kind, parts = list, name = c.name,
           phone = c.phone, discount = c.slots.discount, photos = c.slots.photos,
           question = question })
  local photos = c.slots.photos and #c.slots.photos or 0
  local card = common.card(c, {
    { "Авто", car_name },
    { "Запчасти", #list > 0 and parts.list(list) or "не названы" },
    { "Фото", photos > 0 and (photos .. " шт.") or nil },
    { "Скидка", c.slots.discount and (ru.number(c.slots.discount) .. "%") or nil },
    { "Рассылка", c.slots.campaign and (say.CAMPAIGNS[c.slots.campaign] or c.slots.campaign) },
    { "Вопрос", question },
  })
  return common.handoff(c, "lead", "card_lead", card, "lead.remind")
end

-- Машины так и нет: берём то, что клиент написал о машине, и передаём.
local function finish_without_car(c, reply)
  c.slots.car = table.concat(c.slots.car_notes or {}, "; ")
  c.slots.car_kind = "text"
  return finish(c, reply)
end

-- ---- Следующий вопрос ---------------------------------------------------------

-- Машина есть: спрашиваем запчасти или «Что-нибудь ещё?».
local function after_car(c, reply, m)
  -- Вопрос, на который у правил ответа нет: отвечает модель с промптом
  -- персоны (без цен, наличия и сроков), без модели — «подскажет менеджер».
  if m.asked then say.add(reply, ai.answer(c, m.text) or say.text("question_later")) end
  if #(c.slots.parts or {}) == 0 then
    say.add(reply, say.text("ask_parts"))
    c:say(say.join(reply))
    return "parts"
  end
  say.add(reply, say.text("ask_more"))
  c:say(say.join(reply))
  return "more"
end

-- Машины нет: просим VIN — с подсказкой, почему не подошло то, что прислали.
local function ask_car(c, ev, reply, m, first)
  local t, long = msg.text(ev)
  if text.phone(t) and m.parts == 0 then
    say.add(reply, say.text("not_vin_phone"))
  elseif car.has_plate(t) then
    say.add(reply, say.text("not_vin_plate"))
  elseif long then
    say.add(reply, say.text("long_no_car"))
  elseif first or m.parts > 0 then
    say.add(reply, say.text("ask_car"))
  elseif ev.kind == "photo" then
    say.add(reply, say.text("car_as_text"))
  elseif msg.blank(t) then
    say.add(reply, say.text("blank_car"))
  elseif m.asked or words.has_phrase(text.norm(t), words.vin_help) then
    say.add(reply, say.text("car_where"))
  else
    c.slots.car_tries = (c.slots.car_tries or 0) + 1
    c.slots.car_notes = c.slots.car_notes or {}
    table.insert(c.slots.car_notes, (text.head(t, 100)))
    if c.slots.car_tries >= CAR_TRIES then return finish_without_car(c, reply) end
    if c.slots.car_tries == CAR_TRIES - 1 then
      say.add(reply, say.text("no_car_last"))
    else
      say.add(reply, say.text("no_car"))
    end
  end
  c:say(say.join(reply))
  return "car"
end

-- ---- Фото -------------------------------------------------------------------

-- Фото без VIN в подписи: сначала читаем сами (распознавание на своей
-- машине, бесплатно), модель — только если не прочли. Что прочли — просим
-- подтвердить. Возвращает шаг, если спросили клиента, иначе nil (как без
-- распознавания: «Спасибо за фото, менеджер посмотрит»). VIN, который
-- клиент написал сам, модели не отправляется.
local function look_at_photo(c, ev, reply)
  if ev.kind ~= "photo" or #car.find(c.turn.text or msg.text(ev)) > 0 then return nil end
  for _, photo in ipairs(ev.photos or {}) do
    local found = not c.slots.car and ai.car_on_photo(photo)
    if found then ai.saved(c, "ocr", "photo_triage") end
    local v = not found and ai.photo_triage(photo)
    if v and not c.slots.car and v.car then found = v.car end
    if found then
      c.slots.photo_car = { value = found.value, kind = found.kind }
      say.add(reply, say.text("photo_car", { car = car.describe(found.value, found.kind) }))
      c:say(say.join(reply))
      return "photo_car"
    end
    if v and v.kind == "part" and v.part_name then
      c.slots.photo_part = v.part_name
      say.add(reply, say.text("photo_part", { part = v.part_name }))
      c:say(say.join(reply))
      return "photo_part"
    end
  end
  return nil
end

-- Разобрать сообщение, пока ждём машину (и в самом первом сообщении).
-- reply — куски ответа, которые уже есть (приветствие, «спасибо за фото»).
local function intake(c, ev, reply, first)
  c.turn.text = c.turn.text or msg.text(ev)
  local asked = look_at_photo(c, ev, reply)
  if asked then return asked end
  local saved = {}
  local m = read_message(c, msg.text(ev), reply, saved)
  if m.next then
    c:say(say.join(reply))
    return m.next
  end
  if c.slots.car then return after_car(c, reply, m) end
  return ask_car(c, ev, reply, m, first)
end

-- Номер варианта в ответе на «для какой машины?»: «2», «второй», «первая».
local function choice_number(t)
  local n = text.norm(t)
  local digit = n:match("^%D*(%d)%D*$")
  if digit then return tonumber(digit) end
  if n:find("перв") then return 1 end
  if n:find("втор") then return 2 end
  if n:find("трет") then return 3 end
  return nil
end

return flow "lead" {
  version = 1,

  -- Перед каждым сообщением клиента (кроме шагов из списка — они читают
  -- сообщение сами): отписка, телефон, фото; шаги берут готовые
  -- c.turn.reply и c.turn.text. См. common.before.
  before = common.before { "start", "done", "stopped" },

  -- Первое сообщение: забываем прошлый разговор, здороваемся, читаем сообщение.
  -- before здесь не работает: сначала забываем, потом разбираем сообщение.
  start = function(c, ev)
    common.reset(c)
    c:cancel("lead.remind")
    local reply = { say.text("hello") }
    local stop = common.pre(c, ev, reply)
    if stop then return stop end
    return intake(c, ev, reply, true)
  end,

  -- Вход из рассылки: без приветствия и с тем, что уже записано (скидка,
  -- рассылка). c.slots.intro — фраза перед ответом, если рассылка её задала.
  intake = function(c, ev)
    local intro = c.slots.intro
    c.slots.intro = nil
    local reply = c.turn.reply
    if intro ~= nil and intro ~= "" then table.insert(reply, 1, intro) end
    return intake(c, ev, reply, true)
  end,

  -- Ждём VIN или номер кузова.
  car = function(c, ev)
    return intake(c, ev, c.turn.reply, false)
  end,

  -- В VIN опечатка? Ждём «да» или исправленный VIN.
  check_vin = function(c, ev)
    local reply, saved, t = c.turn.reply, {}, c.turn.text
    if #car.find(t) == 0 and text.is(t, "yes") then
      save_car(c, { value = c.slots.vin_check, kind = "vin" }, reply, saved)
      say.add(reply, say.text("saved", { what = parts.list(saved) }))
      return after_car(c, reply, {})
    end
    local m = read_message(c, t, reply, saved)
    if m.next then
      c:say(say.join(reply))
      return m.next
    end
    if m.cars > 0 then return after_car(c, reply, m) end
    say.add(reply, say.text("check_vin_again", { car = c.slots.vin_check }))
    c:say(say.join(reply))
    return "check_vin"
  end,

  -- Два VIN в одном сообщении: ждём номер варианта или сам VIN.
  which_car = function(c, ev)
    local reply, saved, t = c.turn.reply, {}, c.turn.text
    if #car.find(t) > 0 then return intake(c, ev, reply, false) end
    local pick = c.slots.choices and c.slots.choices[choice_number(t) or 0]
    if not pick then
      local list = {}
      for i, ch in ipairs(c.slots.choices or {}) do
        list[i] = i .. ") " .. car.describe(ch.value, ch.kind)
      end
      say.add(reply, say.text("which_car", { list = table.concat(list, " ") }))
      c:say(say.join(reply))
      return "which_car"
    end
    local found = { value = pick.value, kind = pick.kind,
                    north_american = pick.suspicious, check_ok = not pick.suspicious }
    if take_car(c, found, reply, saved) then
      say.add(reply, say.text("check_vin", { car = c.slots.vin_check }))
      c:say(say.join(reply))
      return "check_vin"
    end
    say.add(reply, say.text("saved", { what = parts.list(saved) }))
    return after_car(c, reply, {})
  end,

  -- На фото прочитали VIN: «да» — записываем, иначе разбираем ответ как
  -- обычно (исправленный VIN, запчасти).
  photo_car = function(c, ev)
    local reply, t, read = c.turn.reply, c.turn.text, c.slots.photo_car
    c.slots.photo_car = nil
    if read and #car.find(t) == 0 and text.is(t, "yes") then
      local saved = {}
      save_car(c, read, reply, saved)
      say.add(reply, say.text("saved", { what = parts.list(saved) }))
      return after_car(c, reply, {})
    end
    return intake(c, ev, reply, false)
  end,

  -- На фото, похоже, деталь: «да» — записываем её, иначе разбираем ответ
  -- как обычно (клиент написал, что это).
  photo_part = function(c, ev)
    local reply, t, guess = c.turn.reply, c.turn.text, c.slots.photo_part
    c.slots.photo_part = nil
    if guess and #car.find(t) == 0 and text.is(t, "yes") then
      c.slots.parts = c.slots.parts or {}
      parts.add(c.slots.parts, guess)
      say.add(reply, say.text("saved", { what = guess }))
      if c.slots.car then return after_car(c, reply, {}) end
      say.add(reply, say.text("ask_car"))
      c:say(say.join(reply))
      return "car"
    end
    return intake(c, ev, reply, false)
  end,

  -- Машина есть, запчастей ещё нет.
  parts = function(c, ev)
    local reply, saved, t = c.turn.reply, {}, c.turn.text
    local asked = look_at_photo(c, ev, reply)
    if asked then return asked end
    local m = read_message(c, t, reply, saved)
    if m.next then
      c:say(say.join(reply))
      return m.next
    end
    local nothing = m.parts == 0 and m.cars == 0
    if nothing and finished(t) then return finish(c, reply) end
    if nothing and msg.blank(t) and ev.kind ~= "photo" then
      say.add(reply, say.text("blank_parts"))
      c:say(say.join(reply))
      return "parts"
    end
    return after_car(c, reply, m)
  end,

  -- «Что-нибудь ещё?»
  more = function(c, ev)
    local reply, saved, t = c.turn.reply, {}, c.turn.text
    local asked = look_at_photo(c, ev, reply)
    if asked then return asked end
    local m = read_message(c, t, reply, saved)
    if m.next then
      c:say(say.join(reply))
      return m.next
    end
    -- «всё, когда можно забрать?» — список закрыт, вопрос идёт с заявкой
    if m.parts == 0 and m.cars == 0 and m.asked and finished(t) then
      return finish(c, reply, text.head(t, 300))
    end
    if m.parts > 0 or m.cars > 0 or m.asked then return after_car(c, reply, m) end
    -- «ок», «👍» на «Что-нибудь ещё?» — больше ничего
    if finished(t) or text.is(t, "ack") then return finish(c, reply) end
    if text.is(t, "yes") then
      say.add(reply, say.text("more_which"))
    elseif ev.kind == "photo" then
      say.add(reply, say.text("ask_more"))
    else
      say.add(reply, say.text("blank_more"))
    end
    c:say(say.join(reply))
    return "more"
  end,

  done = common.done,
  remind = common.remind,
  stopped = common.stopped,
}
