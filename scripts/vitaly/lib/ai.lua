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


-- ---- Свободный ответ и список сплошным текстом ----------------------------

-- Факты магазина из shop.json для промпта персоны (prompt.md в папке
-- магазина: {shop}, {persona}, {role}, {address}, {phone}, {hours},
-- {site}, {city}, {delivery}). Поля, которого в shop.json нет, модель
-- не выдумывает: вместо него она видит «уточнит менеджер».
local UNKNOWN_FACT = "уточнит менеджер"

local function fact(v)
  if type(v) == "string" and v ~= "" then return v end
  return UNKNOWN_FACT
end

local function shop_vars()
  local s = shop.shop or {}
  local p = shop.persona or {}
  return { shop = fact(shop.name), persona = fact(p.name), role = fact(p.role),
           address = fact(s.address), phone = fact(s.phone), hours = fact(s.hours_text),
           site = fact(s.site), city = fact(s.city), delivery = fact(s.delivery_text) }
end

-- Что просим у модели сверх промпта персоны.
local ANSWER_RULES = "Ответь на вопрос клиента одной-двумя короткими фразами. "
  .. "Цены, наличие и сроки доставки не называй: их скажет менеджер, когда получит заявку. "
  .. "Не обещай того, чего нет в промпте."

-- Ответ на вопрос клиента, на который у правил ответа нет («вы в субботу
-- работаете?», «где вы находитесь?»). Модель отвечает с промптом персоны;
-- фактов о ценах, наличии и доставке мы ей не даём, поэтому ответ, где они
-- есть, модуль llm не пропустит. Возвращает текст или nil — тогда, как
-- без модели: «Это подскажет менеджер».
function M.answer(c, t)
  local llm = provider("llm")
  if not llm then return nil end
  local r = llm.chat { text = t, vars = shop_vars(), facts = {}, instructions = ANSWER_RULES }
  if not r or type(r.text) ~= "string" or r.text == "" then return nil end
  c:record("llm_used", { flow = "lead", what = "answer" })
  return (text.head(r.text, 600))
end

-- Сколько слов в тексте.
local function words_in(t)
  local n = 0
  for _ in text.norm(t):gmatch("%S+") do n = n + 1 end
  return n
end

-- Правила не смогли разделить список: ничего не нашли в длинном тексте или
-- нашли «запчасть» из пяти слов и больше (кусок фразы, а не название).
local function unsplit(t, found)
  if words_in(t) < 6 then return false end
  if #found == 0 then return true end
  for _, p in ipairs(found) do
    if words_in(p) >= 5 then return true end
  end
  return false
end

-- Запчасти из текста, который правила не разделили («стучит что-то справа,
-- наверное стойка, и масло поменять бы с фильтром»). Модель раскладывает его
-- по схеме parts_list; названия проверены схемой (2–80 знаков). Возвращает
-- список или nil (тогда — что нашли правила). Текст с VIN или телефоном
-- модели не отправляем: их разбирают только правила.
function M.parts_in_prose(c, t, found)
  local llm = provider("llm")
  if not llm or not unsplit(t, found) then return nil end
  if #text.cars(t) > 0 or text.phone(t) then return nil end
  if text.is(t, "yes") or text.is(t, "no") or text.is(t, "done") or text.is(t, "thanks") then return nil end
  local v = llm.extract { schema = "parts_list", text = t }
  if not v or type(v.parts) ~= "table" or #v.parts == 0 then return nil end
  local list = {}
  for _, p in ipairs(v.parts) do
    if type(p) == "string" and p ~= "" then list[#list + 1] = text.norm(p) end
  end
  if #list == 0 then return nil end
  c:record("llm_used", { flow = "lead", what = "parts" })
  return list
end

-- ---- Сколько сэкономили правила и распознавание ------------------------------

-- Сколько токенов стоил бы запрос к модели, которого не было: тот же запрос,
-- что отправил бы модуль llm (промпт, схема, текст; фото — 85 токенов),
-- посчитанный так же, как в tests/bench/bench_tokens (байты / 4).
local SAVED = { photo_triage = 470, retention_reply = 340, parts_list = 250 }

-- Записать, что сообщение прочли правила или распознавание (by = "rules"
-- или "ocr") и запрос schema к модели не понадобился. Только в магазинах
-- с моделью: там это видно в shopbot stats («сэкономлено»).
function M.saved(c, by, schema)
  if not provider("llm") then return end
  c:record("llm_saved", { by = by, schema = schema, tokens = SAVED[schema] or 0 })
end

return M
