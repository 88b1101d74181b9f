-- Машина клиента: VIN, номер кузова, госномер.
-- VIN и номер кузова находит встроенный text.cars (с пробелами, дефисами,
-- русскими буквами вместо латинских), госномер — text.plate. Здесь — как
-- назвать машину в ответе и какой VIN стоит перепроверить.

local M = {}

-- Госномер («А123ВС96», «а 123 вс 196 rus») узнаёт встроенный text.plate:
-- за один проход по тексту, сколько бы его ни было.

-- Это госномер целиком?
function M.is_plate(s)
  return text.plate(s, true) ~= nil
end

-- Есть ли в тексте госномер (целыми словами, не больше 5 слов подряд).
function M.has_plate(s)
  return text.plate(s) ~= nil
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

-- VIN, который стоит перепроверить: с неверной контрольной цифрой (она
-- обязательна только у машин Северной Америки, VIN с 1–5) или с буквами
-- I, O, Q, которых в VIN не бывает (прочитали их как 1 и 0 — но это
-- догадка, пусть клиент проверит).
function M.suspicious(found)
  if found.kind ~= "vin" then return false end
  return found.typo == true or (found.north_american and not found.check_ok)
end

return M
