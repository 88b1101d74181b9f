-- Время и даты словами, в часовом поясе магазина. Общий модуль для всех
-- магазинов (scripts/lib): require("dates"). Фразы вроде «завтра с 9:00»
-- собирает персонаж из своих текстов.

local ru = require("ru")

local M = {}

-- «9:00»
function M.hhmm(t)
  local d = time.split(t)
  return string.format("%d:%02d", d.hour, d.min)
end

-- Тот же день?
function M.same_day(a, b)
  local x, y = time.split(a), time.split(b)
  return x.year == y.year and x.month == y.month and x.day == y.day
end

-- «16 марта»; с годом, если он не текущий: «16 марта 2027».
function M.human(t)
  local d, now = time.split(t), time.split(time.now())
  local s = d.day .. " " .. ru.months_gen[d.month]
  if d.year ~= now.year then s = s .. " " .. d.year end
  return s
end

-- «3 марта, 10:00»
function M.day_time(t)
  return M.human(t) .. ", " .. M.hhmm(t)
end

-- Длительность из shop.json словами: «30m» -> «30 минут», «2h» -> «2 часа».
function M.duration(d)
  local minutes = math.floor((time.duration(d) or 0) / 60)
  if minutes < 60 or minutes % 60 ~= 0 then
    return minutes .. " " .. ru.plural(minutes, "минуту", "минуты", "минут")
  end
  local hours = minutes // 60
  return hours .. " " .. ru.plural(hours, "час", "часа", "часов")
end

return M
