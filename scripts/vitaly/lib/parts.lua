-- Список запчастей (или товаров) из свободного текста клиента.
--
-- «здравствуйте, вин XW8ZZZ614BG012345, нужны колодки и масляный фильтр»
--   -> {"колодки", "масляный фильтр"}
-- Как это делается:
--   1. из текста убираем VIN, номер кузова, госномер и телефон;
--   2. режем на кусочки по строкам, запятым, точкам и союзу «и»;
--   3. у каждого кусочка отрезаем слова-связки («нужны», «ещё», «вин» —
--      список в lib/words.lua);
--   4. оставляем то, что похоже на название: короткое, с буквами, и не
--      «нет» / «всё» / «спасибо».

local words = require("words")
local car = require("car")
local names = require("list")   -- общий модуль scripts/lib/list.lua

local M = {}

M.MAX_CHARS = 600        -- запчасти ищем в начале сообщения (оно и так не длиннее msg.MAX_CHARS)
M.MAX_ITEM = 60          -- длиннее 60 знаков — уже не название запчасти
M.MAX_WORDS = 8          -- и больше 8 слов тоже
M.MAX_PER_MESSAGE = 10   -- больше 10 позиций из одного сообщения не берём

-- Сколько в строке букв и цифр (русских и латинских).
function M.letters(s)
  return text.letters(s)
end

-- Слова строки списком.
local function split(s)
  local list = {}
  for w in s:gmatch("%S+") do list[#list + 1] = w end
  return list
end

-- Убирает из списка слов самую короткую цепочку подряд, для которой
-- matches(цепочка) истинно: из «вин XW8 ZZZ 614BG012345 колодки» уходит
-- сам VIN, «вин» и «колодки» остаются.
-- where(i), если задана, узнаёт, с какого места убрали.
local function remove_run(list, matches, where)
  for len = 1, math.min(#list, 17) do
    for i = 1, #list - len + 1 do
      if matches(table.concat(list, " ", i, i + len - 1)) then
        for _ = 1, len do table.remove(list, i) end
        if where then where(i) end
        return true
      end
    end
  end
  return false
end

-- Убирает из списка слов все VIN и номера кузова.
local function drop_cars(list)
  for _, found in ipairs(car.find(table.concat(list, " "))) do
    remove_run(list, function(run)
      for _, c in ipairs(car.find(run)) do
        if c.value == found.value then return true end
      end
      return false
    end)
  end
end

-- Слова, которые стоят перед номером телефона: «мой телефон 8912…».
local PHONE_WORDS = { ["мой"] = true, ["телефон"] = true, ["тел"] = true, ["номер"] = true,
                      ["телефона"] = true, ["моб"] = true, ["звоните"] = true, ["на"] = true }

-- Убирает из списка слов телефоны (вместе с «мой телефон» перед ними)
-- и госномера — не больше трёх каждого.
local function drop_phones_and_plates(list)
  for _ = 1, 3 do
    local phone = text.phone(table.concat(list, " "))
    if not phone then break end
    local at
    local removed = remove_run(list, function(run)
      return text.phone(run) == phone
    end, function(i) at = i end)
    if not removed then break end
    while at and at > 1 do
      local w = text.norm(list[at - 1]):gsub("%p+$", "")
      if not PHONE_WORDS[w] then break end
      table.remove(list, at - 1)
      at = at - 1
    end
  end
  -- text.plate читает весь текст за один проход; перебор цепочек слов
  -- нужен, только если госномер там есть.
  for _ = 1, 3 do
    if not car.has_plate(table.concat(list, " ")) then break end
    if not remove_run(list, car.is_plate) then break end
  end
end

-- Слово-связка? (сравниваем без знаков препинания по краям)
local function is_filler(w, set)
  local n = text.norm(w):gsub("^%p+", ""):gsub("%p+$", "")
  return n == "" or set[n] == true or M.letters(n) == 0
end

-- Слова строки без «нужен / нужны / надо».
local function without_need(s)
  local rest = {}
  for _, w in ipairs(split(s)) do
    if not words.need_set[text.norm(w):gsub("%p+$", "")] then rest[#rest + 1] = w end
  end
  return table.concat(rest, " ")
end

-- «теперь нужны свечи»: если «нужны» среди первых трёх слов, а до него не
-- запчасть (не «колодки нужны»), то всё до него вместе с ним — связка.
local function cut_need(list)
  for k = 1, math.min(3, #list - 1) do
    local w = text.norm(list[k]):gsub("%p+$", "")
    if words.need_set[w] then
      if k > 1 and text.is(table.concat(list, " ", 1, k - 1), "need") then return end
      for _ = 1, k do table.remove(list, 1) end
      return
    end
  end
end

-- Отрезает связки в начале и в конце кусочка.
local function trim(s)
  local list = split(s)
  while #list > 0 and is_filler(list[1], words.lead_in_set) do table.remove(list, 1) end
  cut_need(list)
  while #list > 0 and is_filler(list[1], words.lead_in_set) do table.remove(list, 1) end
  while #list > 0 and is_filler(list[#list], words.tail_set) do table.remove(list) end
  local r = table.concat(list, " ")
  r = r:gsub("^[%s,%.:;!%?%-]+", ""):gsub("[%s,%.:;!%?%-]+$", "")
  return r
end

-- Режет текст на кусочки: {text = «нужны колодки», question = false,
-- line = номер предложения}.
local function pieces(s)
  s = s:gsub("%?", "?\n"):gsub("[!;]", "\n"):gsub("%.%s", "\n"):gsub("%.$", "")
  local out = {}
  local number = 0
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    number = number + 1
    local question = line:find("?", 1, true) ~= nil
    for chunk in (line .. ","):gmatch("([^,]*),") do
      local cur = {}
      for _, w in ipairs(split(chunk)) do
        local n = text.norm(w)
        if n == "и" or n == "+" or n == "плюс" or n == "&" then
          out[#out + 1] = { text = table.concat(cur, " "), question = question, line = number }
          cur = {}
        else
          cur[#cur + 1] = w
        end
      end
      out[#out + 1] = { text = table.concat(cur, " "), question = question, line = number }
    end
  end
  return out
end

-- Похоже на рассказ о машине, а не на запчасть: «это октавия 2011»,
-- «у меня приора», «машина 2008 года».
local function about_car(s)
  local n = " " .. text.norm(s) .. " "
  if n:find("[^%d]19[5-9]%d[^%d]") or n:find("[^%d]20[0-4]%d[^%d]") then return true end
  for _, start in ipairs(words.car_talk) do
    if n:sub(1, #start + 2) == " " .. start .. " " then return true end
  end
  return false
end

-- «Нужны колодки»: слово «нужны» стоит в начале и отрезано как связка —
-- значит, дальше в этом предложении перечисляют запчасти. А в «сказали, что
-- надо менять» слово в середине — это рассказ, а не список.
local function opens_list(piece_text, item)
  return words.has_phrase(text.norm(piece_text), words.need)
     and not words.has_phrase(text.norm(item), words.need)
end

-- Явная запчасть: известное название («колодки передние») без «надо» внутри,
-- или то, что идёт после «нужны / ищу» («нужна крестовина кардана»).
local function clearly_part(item, piece, after_need)
  if after_need or opens_list(piece.text, item) then return true end
  return text.is(without_need(item), "need")
end

-- Похоже ли на название запчасти?
--   item — кусочек без связок, piece — он же со связками;
--   strict — брать только явные запчасти (см. clearly_part). Так делаем,
--   пока машины нет: иначе «марк 2» или «как дела» попадут в заявку.
--   after_need — в этом предложении раньше уже было «нужны: …».
local function looks_like_part(item, piece, strict, after_need)
  if M.letters(item) < 2 then return false end
  if words.not_items_set[text.norm(item):gsub("%p", "")] then return false end
  if utf8.len(item) > M.MAX_ITEM or #split(item) > M.MAX_WORDS then return false end
  if strict or piece.question then return clearly_part(item, piece, after_need) end
  if text.is(item, "need") then return true end
  return text.intent(item) == nil and not about_car(piece.text)
end

-- «до 5 тысяч», «цвет чёрный» — уточнение к предыдущей позиции:
-- «наушники, до 5 тысяч» -> «наушники (до 5 тысяч)».
local function refines(piece_text)
  local n = text.norm(piece_text)
  for _, m in ipairs(words.modifiers) do
    if n:sub(1, #m + 1) == m .. " " then return true end
  end
  return false
end

-- Главная функция: список запчастей из текста и был ли в нём вопрос,
-- из которого запчасть не вышла («а доставка есть?»).
function M.extract(s, strict)
  s = text.head(s or "", M.MAX_CHARS):gsub("[\r\n]+", " , ")
  local list = split(s)
  drop_cars(list)
  drop_phones_and_plates(list)
  local found, asked = {}, false
  local after_need, line = false, nil
  for _, piece in ipairs(pieces(table.concat(list, " "))) do
    if piece.line ~= line then after_need, line = false, piece.line end
    local item = trim(piece.text)
    if #found > 0 and refines(piece.text) then
      found[#found] = found[#found] .. " (" .. item .. ")"
    elseif #found < M.MAX_PER_MESSAGE and looks_like_part(item, piece, strict, after_need) then
      M.add(found, item)
    elseif piece.question and M.letters(piece.text) > 0 then
      asked = true
    end
    if opens_list(piece.text, item) then after_need = true end
  end
  return found, asked
end

-- Добавляет запчасть в список, если такой ещё нет. Возвращает true, если
-- добавил. Список через запятую: «колодки, свечи». (Общий модуль list.)
M.add = names.add
M.list = names.join

return M
