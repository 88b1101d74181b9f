-- Тестовый сценарий канала Telegram (tests/integration/telegram.py):
-- каждая команда проверяет одну возможность канала.
return flow "main" {
  version = 1,

  start = function(c, ev)
    if ev.source then
      c:say("Здравствуйте! Источник: " .. ev.source)
    else
      c:say("Здравствуйте!")
    end
    return "echo"
  end,

  echo = function(c, ev)
    local t = ev.text or ""
    if ev.kind == "photo" and ev.photos and #ev.photos > 1 then
      -- альбом: одно событие, фото по порядку
      local sizes = {}
      for _, p in ipairs(ev.photos) do sizes[#sizes + 1] = tostring(p.size) end
      c:say("альбом " .. #ev.photos .. ": " .. table.concat(sizes, " ") .. " " .. t)
      return
    end
    if ev.kind == "photo" and t == "для заявки" then
      -- фото к будущей заявке: уйдут менеджерам за карточкой
      c.slots.photos = c.slots.photos or {}
      for _, p in ipairs(ev.photos or {}) do table.insert(c.slots.photos, p.id) end
      c:say("фото сохранено " .. #c.slots.photos)
      return
    end
    if ev.kind == "photo" then
      local p = ev.photos and ev.photos[1] or {}
      c:say("фото " .. tostring(p.size) .. " " .. tostring(p.path ~= nil))
      return
    end
    if ev.kind == "contact" then
      c:say("телефон " .. tostring(ev.phone))
      return
    end
    if ev.kind == "button" then
      c:say("нажато " .. t)
      return
    end
    if t == "кнопки" then
      c:say("Подходит?", { buttons = { "Да", "Нет" } })
      return
    end
    if t == "длинно" or t == "длинно 3" then
      -- 120 абзацев — два сообщения Telegram, 190 — три
      local parts = {}
      for i = 1, (t == "длинно" and 120 or 190) do
        parts[#parts + 1] = "Абзац " .. i .. ". Длинный ответ, который не влезает в одно сообщение."
      end
      c:say(table.concat(parts, "\n\n"))
      return
    end
    if t == "менеджер" then
      c:notify("Заявка от " .. tostring(c.name) .. ": нужен менеджер")
      c:handoff("asked")
      c:say("Зову менеджера")
      return
    end
    if t == "заявка" then
      -- карточка, за ней фото клиента; через 2 с напоминание (ответом на карточку)
      c:lead({ name = c.name })
      c:notify("Заявка от " .. tostring(c.name), { photos = c.slots.photos })
      c:handoff("lead")
      c:wake("2s", "remind")
      c:say("Заявка передана")
      return
    end
    if t == "рассылка" then
      -- как будто клиенту написала рассылка и он ответил «нужны запчасти»
      c:record("contacted", { campaign = "retention" })
      c:record("outcome", { campaign = "retention", outcome = "need" })
      c:say("учтено")
      return
    end
    if t == "медленно" then
      -- медленный внешний сервис: клиент тем временем видит «печатает…»
      local r = http.get(shop.shop.slow_url)
      c:say("медленный ответ " .. tostring(r and r.status))
      return
    end
    local n = t:match("^много (%d+)$")
    if n then
      for i = 1, tonumber(n) do c:say("ответ " .. i) end
      return
    end
    c:say("эхо: " .. t)
  end,

  remind = function(c, ev)
    if c.mode ~= "handoff" then return "echo" end
    c:notify("Напоминание: заявку от " .. tostring(c.name) .. " никто не взял")
    return "echo"
  end,
}
