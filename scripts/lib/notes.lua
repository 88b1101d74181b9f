-- Записки менеджерам от самого бота (не от сценария): когда бот
-- остановился в чате — шаг сломался или сообщение отложено после сбоев;
-- кто из менеджеров взял чат; сообщения клиента, пока чат у менеджера;
-- ответ на /stats; название темы клиента.
-- Общий модуль для всех магазинов (scripts/lib). Свой текст персона
-- задаёт своим модулем notes в lib/ своих сценариев — он главнее этого.
--
-- stopped(f) получает факты:
--   f.chat  — канал и чат («telegram:12345»);
--   f.flow, f.step — где бот был («lead», «ask_car»);
--   f.where — файл и строка сценария («lead.lua:42») или nil;
--   f.msg   — что случилось (текст ошибки).
-- Возвращает текст записки.

local M = {}

function M.stopped(f)
  local where = f.where and (", " .. f.where) or ""
  return "Бот остановился в чате " .. f.chat .. " (шаг " .. f.flow .. "." .. f.step .. where
    .. "): " .. f.msg .. ". Ответьте клиенту, пожалуйста."
end

-- taken(f): менеджер f.who ответил клиенту и взял чат (f.chat).
function M.taken(f)
  return "Чат взял(а) " .. f.who .. "."
end

-- owned(f): f.who ответил(а) клиенту, которого уже ведёт f.owner; его
-- сообщение клиенту не ушло. f.what: «say» — ответ, «release» — /bot.
function M.owned(f)
  if f.what == "release" then
    return f.who .. ", этот чат ведёт " .. f.owner .. ": вернуть его боту может только "
      .. f.owner .. "."
  end
  return f.who .. ", этот чат уже ведёт " .. f.owner .. ": ваше сообщение клиенту не ушло."
end

-- topic(f): название темы клиента в форуме менеджеров (managers.topics):
-- f.name — имя клиента, f.phone — телефон (любое может быть nil).
-- Telegram принимает до 128 символов; nil — темы не будет, записка уйдёт
-- в общий чат группы.
function M.topic(f)
  local parts = {}
  if f.name and f.name ~= "" then parts[#parts + 1] = f.name end
  if f.phone and f.phone ~= "" then parts[#parts + 1] = f.phone end
  if #parts == 0 then return nil end
  return table.concat(parts, ", ")
end

-- relayed(f): сообщение клиента, пока чат ведёт менеджер, пересылается в
-- чат менеджеров. f.who — имя клиента (или номер чата), f.msg — его текст
-- (nil, если текста нет), f.what — «text», «photo» (фото без подписи) или
-- «empty».
function M.relayed(f)
  if f.msg then return f.who .. ": " .. f.msg end
  if f.what == "photo" then return f.who .. ": (фото)" end
  return f.who .. ": (без текста)"
end

-- Названия исходов рассылок для /stats.
local OUTCOMES = {
  { "need", "нужны запчасти" }, { "later", "позже" }, { "ok", "всё хорошо" },
  { "problem", "проблема" }, { "declined", "отказ" }, { "optout", "отписались" },
  { "silent", "молчат" },
}

local function plural(n, one, few, many)
  local m10, m100 = n % 10, n % 100
  if m10 == 1 and m100 ~= 11 then return one end
  if m10 >= 2 and m10 <= 4 and (m100 < 12 or m100 > 14) then return few end
  return many
end

-- stats(f): ответ на /stats в чате менеджеров — цифры за сегодня.
--   f.figures.leads    — заявок сегодня;
--   f.figures.waiting  — передано менеджерам и ещё никем не взято (сейчас);
--   f.figures.campaigns — рассылки, что шли сегодня: { name, contacted,
--     leads, outcomes = { need = n, later = n, ... } }.
function M.stats(f)
  local g = f.figures or {}
  local lines = {
    "Сегодня:",
    "заявок — " .. (g.leads or 0),
    "ждут менеджера — " .. (g.waiting or 0) .. " " ..
      plural(g.waiting or 0, "чат", "чата", "чатов"),
  }
  for _, c in ipairs(g.campaigns or {}) do
    local parts = {}
    for _, o in ipairs(OUTCOMES) do
      local n = c.outcomes and c.outcomes[o[1]] or 0
      if n > 0 then parts[#parts + 1] = o[2] .. " " .. n end
    end
    local line = "рассылка «" .. c.name .. "»: написали " .. (c.contacted or 0)
    if #parts > 0 then line = line .. "; " .. table.concat(parts, ", ") end
    if (c.leads or 0) > 0 then line = line .. "; заявок " .. c.leads end
    lines[#lines + 1] = line
  end
  if #(g.campaigns or {}) == 0 then lines[#lines + 1] = "рассылки сегодня не шли" end
  return table.concat(lines, "\n")
end

return M
