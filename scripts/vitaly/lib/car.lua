-- Машина клиента: VIN, номер кузова, госномер.
-- VIN и номер кузова находит встроенный text.cars (с пробелами, дефисами,
-- русскими буквами вместо латинских). Здесь — то, чего он не делает:
-- узнать госномер и красиво назвать машину в ответе.

local M = {}

-- Русские буквы, которые пишут в госномерах, и их латинские двойники.
local PLATE_LETTERS = {
  ["а"] = "A", ["в"] = "B", ["е"] = "E", ["к"] = "K", ["м"] = "M", ["н"] = "H",
  ["о"] = "O", ["р"] = "P", ["с"] = "C", ["т"] = "T", ["у"] = "Y", ["х"] = "X",
}

-- Приводит кусок текста к виду «A123BC96»: латиница, без пробелов и дефисов.
local function plate_form(s)
  local out = {}
  for _, cp in utf8.codes(text.norm(s)) do
    local ch = utf8.char(cp)
    ch = PLATE_LETTERS[ch] or ch:upper()
    if ch ~= " " and ch ~= "-" then out[#out + 1] = ch end
  end
  return table.concat(out)
end

-- Это госномер целиком? «А123ВС96», «а 123 вс 196 rus».
function M.is_plate(s)
  local p = plate_form(s):gsub("^[%p]+", ""):gsub("[%p]+$", ""):gsub("RUS$", "")
  return p:find("^[ABEKMHOPCTYX]%d%d%d[ABEKMHOPCTYX][ABEKMHOPCTYX]%d%d%d?$") ~= nil
end

-- Есть ли в тексте госномер (ищем среди соседних слов, до 5 подряд).
function M.has_plate(s)
  local words = {}
  for w in s:gmatch("%S+") do words[#words + 1] = w end
  for i = 1, #words do
    for j = i, math.min(#words, i + 4) do
      if M.is_plate(table.concat(words, " ", i, j)) then return true end
    end
  end
  return false
end

-- Все VIN и номера кузова в тексте: список {kind, value, check_ok, north_american}.
function M.find(s)
  return text.cars(s)
end

-- Как назвать машину клиенту и менеджеру.
function M.describe(value, kind)
  if kind == "vin" then return "VIN " .. value end
  if kind == "frame" then return "номер кузова " .. value end
  return value
end

-- VIN с неверной контрольной цифрой, который стоит перепроверить: только
-- у машин Северной Америки (VIN с 1–5) эта цифра обязательна.
function M.suspicious(found)
  return found.kind == "vin" and found.north_american and not found.check_ok
end

return M
