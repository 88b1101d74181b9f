-- Сообщение клиента — так, как его читают сценарии.
--
-- Сценарии читают текст клиента только через msg.text(ev): это начало
-- сообщения не длиннее msg.MAX_CHARS знаков. Слово, которое граница
-- разрезала бы пополам, в начало не входит, так что половина VIN не
-- прочтётся как VIN. Поэтому разбор сообщения стоит одинаково мало,
-- пришли клиент хоть мегабайт текста: VIN, запчасти, телефон, «стоп» и
-- вопрос ищутся в этом начале. Что дальше — Виталий не читает; если VIN
-- там не нашёлся, он просит прислать VIN отдельным сообщением.
--
-- Менеджеру в карточку идёт msg.quote(ev): сообщение целиком, если оно не
-- длиннее msg.QUOTE_CHARS знаков (столько помещается в одно сообщение
-- мессенджера), иначе его начало с пометкой. Всё сообщение менеджер видит
-- в переписке с клиентом.

local say = require("say")

local M = {}

M.MAX_CHARS = 4096
M.QUOTE_CHARS = 3000

local function raw(ev)
  local t = type(ev) == "table" and ev.text or nil
  if type(t) ~= "string" then return "" end
  return t
end

-- Начало сообщения для разбора и было ли сообщение длиннее.
function M.text(ev)
  return text.head(raw(ev), M.MAX_CHARS)
end

-- Сообщение для карточки менеджеру.
function M.quote(ev)
  local head, cut = text.head(raw(ev), M.QUOTE_CHARS)
  if cut then return head .. " … " .. say.text("quote_cut") end
  return head
end

return M
