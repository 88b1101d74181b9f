-- Фото и непонятные ответы: сначала правила и распознавание на своей
-- машине (бесплатно), языковая модель — только там, где они не уверены.
--
-- Модули ocr и llm есть, только если они включены в shop.json ("ocr":
-- {"enabled": true}, "llm": {"base_url": ...}). Без них функции ниже
-- возвращают nil, и сценарии работают по правилам, как раньше.
-- Ответ модели всегда проверяется теми же правилами, что и текст клиента:
-- VIN — как VIN, дата — как дата, намерение — из известных.

local M = {}

-- Модуль провайдера или nil, если он не настроен. Обращение к имени,
-- которого нет, — ошибка сценария, поэтому через pcall.
local function provider(name)
  local ok, m = pcall(function() return _ENV[name] end) -- luacheck: ignore 113
  if ok then return m end
  return nil
end

-- Есть ли у фото файл (его сохранил мессенджер): только такое можно прочесть.
local function readable(photo)
  return type(photo) == "table" and type(photo.path) == "string"
end

-- Прочитать VIN или номер кузова на фото (СТС, табличка). Возвращает
-- машину {value, kind, check_ok, north_american} или nil.
function M.car_on_photo(photo)
  local ocr = provider("ocr")
  if not ocr or not readable(photo) then return nil end
  local r = ocr.read(photo)
  local found = r and r.cars and r.cars[1]
  if not found then return nil end
  return { value = found.value, kind = found.kind, check_ok = found.check_ok,
           north_american = found.north_american }
end

-- Что на фото, по мнению модели: {kind = "part"|"vin_plate"|"document"|
-- "other", vin, part_name}. VIN модели проверяется правилами (text.cars):
-- в ответе он есть, только если это настоящий VIN.
function M.photo_triage(photo)
  local llm = provider("llm")
  if not llm or not readable(photo) then return nil end
  local v = llm.extract {
    schema = "photo_triage",
    text = "Что на фото клиента магазина автозапчастей? Если видна табличка или "
      .. "документ с VIN, перепиши VIN. Если это деталь, назови её по-русски.",
    images = { photo },
  }
  if not v then return nil end
  local cars = type(v.vin) == "string" and text.cars(v.vin) or {}
  v.car = cars[1]
  if type(v.part_name) ~= "string" or v.part_name == "" then v.part_name = nil end
  return v
end

-- Намерения, которые понимает рассылка.
local INTENTS = { need = true, later = true, declined = true, problem = true, stop = true }

-- Ответ на рассылку, который правила не поняли: {intent, when, parts} или
-- nil. intent — только из известных; when — слова клиента о дате (их
-- прочтёт text.date); parts — названия запчастей.
function M.retention_reply(t)
  local llm = provider("llm")
  if not llm then return nil end
  local v = llm.extract { schema = "retention_reply", text = t }
  if not v or not INTENTS[v.intent] then return nil end
  return v
end

return M
