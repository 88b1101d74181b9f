-- Сообщение клиента — так, как его читают сценарии. Общий модуль для всех
-- магазинов (scripts/lib): require("msg").
--
-- Сценарии читают текст клиента только через msg.text(ev): это начало
-- сообщения не длиннее msg.MAX_CHARS знаков. Слово, которое граница
-- разрезала бы пополам, в начало не входит, так что половина VIN не
-- прочтётся как VIN. Поэтому разбор сообщения стоит одинаково мало,
-- пришли клиент хоть мегабайт текста: VIN, товары, телефон, «стоп» и
-- вопрос ищутся в этом начале.
--
-- Менеджеру в карточку идёт msg.quote(ev, пометка): сообщение целиком, если
-- оно не длиннее msg.QUOTE_CHARS знаков (столько помещается в одно
-- сообщение мессенджера), иначе его начало и пометка (её текст — у
-- персонажа, например say.text("quote_cut")). Всё сообщение менеджер видит
-- в переписке с клиентом.

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

-- Сообщение для карточки менеджеру; note — пометка, что это только начало.
function M.quote(ev, note)
  local head, cut = text.head(raw(ev), M.QUOTE_CHARS)
  if cut then return head .. " … " .. (note or "") end
  return head
end

-- Пустое сообщение: ни букв, ни цифр, ни понятного смайлика вроде 👍.
function M.blank(t)
  return text.letters(t or "") == 0 and text.intent(t or "") == nil
end

return M
