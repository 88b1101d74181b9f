-- Числа по-русски. Общий модуль для всех магазинов (scripts/lib):
-- require("ru").

local M = {}

-- 5 -> «5», 7.5 -> «7,5», 2100 -> «2 100».
function M.number(n)
  local s
  if n == math.floor(n) then s = string.format("%d", math.floor(n))
  else s = string.format("%.1f", n):gsub("%.", ",") end
  local int, rest = s:match("^(%d+)(.*)$")
  if int and #int > 3 then
    int = int:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", "")
    s = int .. rest
  end
  return s
end

-- Слово после числа: plural(5, "бонус", "бонуса", "бонусов") -> «бонусов».
function M.plural(n, one, few, many)
  if n ~= math.floor(n) then return few end
  local n10, n100 = n % 10, n % 100
  if n10 == 1 and n100 ~= 11 then return one end
  if n10 >= 2 and n10 <= 4 and (n100 < 12 or n100 > 14) then return few end
  return many
end

-- Месяцы в родительном падеже: «16 марта».
M.months_gen = { "января", "февраля", "марта", "апреля", "мая", "июня",
                 "июля", "августа", "сентября", "октября", "ноября", "декабря" }

return M
