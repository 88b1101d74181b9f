-- Списки названий (товары, запчасти). Общий модуль для всех магазинов
-- (scripts/lib): require("list").

local M = {}

-- Добавляет название, если такого ещё нет (сравнивает через text.norm).
-- Возвращает true, если добавил.
function M.add(list, item)
  local n = text.norm(item)
  for _, have in ipairs(list) do
    if text.norm(have) == n then return false end
  end
  list[#list + 1] = item
  return true
end

-- Через запятую: «колодки, свечи».
function M.join(list)
  return table.concat(list, ", ")
end

return M
