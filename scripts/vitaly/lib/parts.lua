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
local goods = require("goods")
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

-- Слово без знаков по краям, в нормальной форме.
local function bare(w)
  return (text.norm(w):gsub("^%p+", ""):gsub("%p+$", ""))
end

-- Убирает из списка слов все VIN и номера кузова, а с ними и «на», «для»,
-- «под» перед номером: «колодки на XW8…» -> «колодки».
local function drop_cars(list)
  for _, found in ipairs(car.find(table.concat(list, " "))) do
    remove_run(list, function(run)
      for _, c in ipairs(car.find(run)) do
        if c.value == found.value then return true end
      end
      return false
    end, function(i)
      if i > 1 and words.for_car_set[bare(list[i - 1])] then table.remove(list, i - 1) end
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

local function starts_any(w, stems)
  for _, stem in ipairs(stems) do
    if w:sub(1, #stem) == stem then return true end
  end
  return false
end

-- «передние», «левый»: слово места или стороны.
local function is_position(w)
  return starts_any(bare(w), words.position)
end

-- Прилагательное по окончанию: «воздушный», «задние», «левая».
local function is_adjective(w)
  local n = bare(w)
  for _, e in ipairs({ "ый", "ий", "ой", "ая", "яя", "ое", "ее", "ые", "ие", "ую", "юю" }) do
    if #n > #e + 2 and n:sub(-#e) == e then return true end
  end
  return false
end

-- Сленг -> стандартное название (lib/goods.lua, M.slang).
local function unslang(list)
  for i, w in ipairs(list) do
    local n = bare(w)
    for _, pair in ipairs(goods.slang or {}) do
      local whole = pair[1]:sub(1, 1) == "="
      if (whole and n == pair[1]:sub(2)) or (not whole and n:sub(1, #pair[1]) == pair[1]) then
        local std = pair[2]
        local last = std:match("(%S+)$")
        local next_word = list[i + 1] and bare(list[i + 1]) or ""
        -- «шаровые опоры» уже названы полностью
        if not (last and next_word:sub(1, 4) == last:sub(1, 4)) then list[i] = std end
        break
      end
    end
  end
end

-- Глагол по окончанию: «заехал», «застучало», «брать», «едет».
local function verb_like(w)
  local n = bare(w)
  if (utf8.len(n) or 0) < 4 then return false end
  for _, e in ipairs({ "ал", "ял", "ил", "ел", "ыл", "ала", "яла", "ила", "ела", "ало", "ило",
                       "ели", "али", "или", "ать", "ять", "ить", "еть", "уть", "ться", "ает",
                       "яет", "ует", "ит", "ут", "ют", "ешь", "ишь", "ался", "ился" }) do
    if n:sub(-#e) == e then return true end
  end
  return false
end

-- «колодки на гранту передние» -> «колодки передние»: после «на», «для»,
-- «под» идёт машина, двигатель, год — их в запчасть не пишем; слова места
-- после машины оставляем. «масло в коробку», «на 5 литров» не трогаем.
local function cut_car(list)
  for k = 2, #list - 1 do
    if words.for_car_set[bare(list[k])] then
      local nxt = bare(list[k + 1])
      local is_volume = nxt:match("^%d") ~= nil and list[k + 2] ~= nil
        and bare(list[k + 2]):match("^[лш]") ~= nil
      -- машина — это несколько слов без глаголов: «на сервис там сказали» — рассказ
      local tail_ok = #list - k <= 5
      for j = k + 1, #list do tail_ok = tail_ok and not verb_like(list[j]) end
      if tail_ok and not is_position(list[k + 1]) and not is_volume and not text.is(nxt, "part") then
        local keep = {}
        for j = 1, k - 1 do keep[#keep + 1] = list[j] end
        for j = k + 1, #list do
          if is_position(list[j]) then keep[#keep + 1] = list[j] end
        end
        return keep
      end
    end
  end
  return list
end

-- Отрезает связки в начале и в конце кусочка, машину после «на», сленг
-- заменяет стандартным названием.
local function trim(s)
  local list = split(s)
  while #list > 0 and is_filler(list[1], words.lead_in_set) do table.remove(list, 1) end
  cut_need(list)
  while #list > 0 and is_filler(list[1], words.lead_in_set) do table.remove(list, 1) end
  while #list > 0 and is_filler(list[#list], words.tail_set) do table.remove(list) end
  list = cut_car(list)
  unslang(list)
  local r = table.concat(list, " ")
  r = r:gsub("^[%s,%.:;!%?%-]+", ""):gsub("[%s,%.:;!%?%-]+$", "")
  return r
end

-- Режет текст на кусочки: {text = «нужны колодки», question = false,
-- line = номер предложения, chunk = номер куска между запятыми}.
-- «фильтры» -> «фильтр», «датчики» -> «датчик»: голова списка через
-- двоеточие в единственном числе. Только надёжные окончания.
local function singular(w)
  if utf8.len(w) and utf8.len(w) >= 6 and w:find("[рнлтд]ы$") then return (w:gsub("ы$", "")) end
  if w:find("[аеиоуы][кгх]и$") then return (w:gsub("и$", "")) end
  return w
end

-- «фильтры: воздушный, салонный» -> «фильтр воздушный, фильтр салонный»;
-- «нужно: колодки, диски» -> «нужно, колодки, диски».
local function colon_list(line)
  local at = line:find(":", 1, true)
  if not at then return line end
  local before, rest = line:sub(1, at - 1), line:sub(at + 1)
  local lead, head = before:match("^(.-)(%S+)%s*$")
  if not head then return line end
  local items, all_adj = {}, true
  for item in (rest .. ","):gmatch("([^,]*),") do
    for one in (" " .. item .. " "):gsub("%s+и%s+", ","):gmatch("[^,]+") do
      one = one:match("^%s*(.-)%s*$")
      if one ~= "" then
        items[#items + 1] = one
        all_adj = all_adj and is_adjective(one:match("^(%S+)"))
      end
    end
  end
  if #items > 0 and all_adj and text.is(head, "part") then
    local h = singular(text.norm(head))
    for i, one in ipairs(items) do items[i] = h .. " " .. one end
    return lead .. table.concat(items, ", ")
  end
  return before .. ", " .. rest
end

local function colon_lists(s)
  if not s:find(":", 1, true) then return s end
  local out = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = colon_list(line) end
  return table.concat(out, "\n")
end

local function pieces(s)
  s = colon_lists(s)
  -- «колодки+диски», «1) колодки 2) диски»
  s = s:gsub("%+", " + "):gsub("%f[%d](%d+)%)%s*", "\n"):gsub("^%s*%d+%.%s+", "\n")
       :gsub("\n%s*%d+%.%s+", "\n")
  s = s:gsub("%?", "?\n"):gsub("[!;]", "\n"):gsub("%.%s", "\n"):gsub("%.$", "")
  local out = {}
  local number, chunks = 0, 0
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    number = number + 1
    local question = line:find("?", 1, true) ~= nil
    for chunk in (line .. ","):gmatch("([^,]*),") do
      chunks = chunks + 1
      local cur = {}
      for _, w in ipairs(split(chunk)) do
        local n = text.norm(w)
        if n == "и" or n == "+" or n == "плюс" or n == "&" then
          out[#out + 1] = { text = table.concat(cur, " "), question = question, line = number,
                            chunk = chunks }
          cur = {}
        else
          cur[#cur + 1] = w
        end
      end
      out[#out + 1] = { text = table.concat(cur, " "), question = question, line = number,
                        chunk = chunks }
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

-- Незнакомое название без «нужна» перед ним: короткое и без глаголов
-- («крестовина кардана» — да, «заехал, еду я по трассе» — нет). Известное
-- название (lib/goods.lua) — всегда.
local function plausible(item)
  if text.is(item, "part") then return true end
  local ws = split(item)
  if #ws > 3 then return false end
  for _, w in ipairs(ws) do
    if verb_like(w) then return false end
  end
  return true
end

-- Явная запчасть: известное название («колодки передние») без «надо» внутри,
-- или то, что идёт после «нужны / ищу» («нужна крестовина кардана»).
local function clearly_part(item, piece, after_need)
  if after_need or opens_list(piece.text, item) then
    -- после «нужны» — перечень, а не рассказ
    return plausible(item)
  end
  return text.is(without_need(item), "need")
end

-- Похоже ли на название запчасти?
--   item — кусочек без связок, piece — он же со связками;
--   strict — брать только явные запчасти (см. clearly_part). Так делаем,
--   пока машины нет: иначе «марк 2» или «как дела» попадут в заявку.
--   after_need — в этом предложении раньше уже было «нужны: …».
-- Слово, которое не называет товар: вежливость, «жду», «оформляйте».
local function not_part_word(w)
  local n = bare(w)
  if n == "" or words.not_part_set[n] or words.lead_in_set[n] then return true end
  -- повелительное: «отправляйте», «перезвоните», «считайте»
  return utf8.len(n) ~= nil and utf8.len(n) >= 6 and (n:find("йте$") or n:find("ите$")) ~= nil
end

-- Позиция заявки называет товар: в ней есть слово, которое не связка,
-- не вежливость и не глагол «оформляйте».
local function names_something(item)
  for _, w in ipairs(split(item)) do
    if not not_part_word(w) then return true end
  end
  return false
end

local function looks_like_part(item, piece, strict, after_need)
  if M.letters(item) < 2 then return false end
  if not names_something(item) then return false end
  if words.not_items_set[text.norm(item):gsub("%p", "")] then return false end
  if utf8.len(item) > M.MAX_ITEM or #split(item) > M.MAX_WORDS then return false end
  if strict or piece.question then return clearly_part(item, piece, after_need) end
  if text.is(item, "need") then return true end
  return text.intent(item) == nil and not about_car(piece.text) and plausible(item)
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
-- Сообщение латиницей («kolodki perednie»): читаем по-русски. Только
-- если в нём совсем нет кириллицы — название бренда латиницей в русском
-- тексте так и остаётся.
local function russian_reading(s)
  if s:find("[\208\209]") or not s:find("%a") then return s end
  local ru = text.ru(s)
  -- «no», «ok» — английские слова, а не русские латиницей
  if text.is(ru, "part") or text.is(ru, "need") then return ru end
  return s
end

-- «диски и колодки задние» -> «диски задние», «колодки задние»: слова
-- места в конце последней позиции относятся ко всем голым позициям перед
-- ней. «фильтр салонный и воздушный» -> «фильтр воздушный»: позиция из
-- одних прилагательных берёт название у предыдущей. «стойки передние левая
-- и правая» — одна позиция.
local function share(items)
  local out = {}
  for _, it in ipairs(items) do
    local ws = split(it)
    local prev = out[#out]
    local all_adj = #ws > 0
    for _, w in ipairs(ws) do all_adj = all_adj and (is_adjective(w) or is_position(w)) end
    if prev and all_adj and not text.is(it, "part") then
      local pw = split(prev)
      if starts_any(bare(ws[1]), { "лев", "прав" }) and starts_any(bare(pw[#pw]), { "лев", "прав" }) then
        out[#out] = prev .. " и " .. it
      elseif is_adjective(pw[1]) and #pw > 1 then
        out[#out] = prev
        out[#out + 1] = it .. " " .. table.concat(pw, " ", 2)
      else
        out[#out + 1] = pw[1] .. " " .. it
      end
    else
      out[#out + 1] = it
    end
  end
  -- общие слова места: у последней позиции есть, у голых перед ней нет
  local last = split(out[#out] or "")
  local tail = {}
  for k = #last, 2, -1 do
    if is_position(last[k]) then table.insert(tail, 1, last[k]) else break end
  end
  if #tail > 0 and #out > 1 then
    for k = #out - 1, 1, -1 do
      local ws = split(out[k])
      if #ws ~= 1 or not text.is(ws[1], "part") then break end
      out[k] = out[k] .. " " .. table.concat(tail, " ")
    end
  end
  return out
end

function M.extract(s, strict)
  s = text.head(s or "", M.MAX_CHARS):gsub("[\r\n]+", "\n")
  local lines = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    local list = split(line)
    drop_cars(list)
    drop_phones_and_plates(list)
    lines[#lines + 1] = russian_reading(table.concat(list, " "))
  end
  local found, asked = {}, false
  local after_need, line, chunk = false, nil, nil
  local run = {}   -- позиции одного куска между запятыми: для общих слов места
  local function flush()
    for _, it in ipairs(share(run)) do
      if #found < M.MAX_PER_MESSAGE then M.add(found, it) end
    end
    run = {}
  end
  for _, piece in ipairs(pieces(table.concat(lines, "\n"))) do
    if piece.chunk ~= chunk then
      flush()
      chunk = piece.chunk
    end
    if piece.line ~= line then after_need, line = false, piece.line end
    local item = trim(piece.text)
    if (#run > 0 or #found > 0) and refines(piece.text) then
      if #run > 0 then run[#run] = run[#run] .. " (" .. item .. ")"
      else found[#found] = found[#found] .. " (" .. item .. ")" end
    elseif #found + #run < M.MAX_PER_MESSAGE and looks_like_part(item, piece, strict, after_need) then
      run[#run + 1] = item
    elseif piece.question and M.letters(piece.text) > 0 then
      asked = true
    end
    if opens_list(piece.text, item) then after_need = true end
  end
  flush()
  return found, asked
end

-- Добавляет запчасть в список, если такой ещё нет. Возвращает true, если
-- добавил. Список через запятую: «колодки, свечи». (Общий модуль list.)
M.add = names.add
M.list = names.join

return M
