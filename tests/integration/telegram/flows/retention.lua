-- Рассылка для теста канала (tests/integration/telegram.py, campaign):
-- будильник рассылки пишет клиенту одно сообщение и ждёт ответа.
return flow "retention" {
  version = 1,

  start = function(c, ev)
    return "answer"
  end,

  checkin = function(c, ev)
    c:record("contacted", { campaign = "retention" })
    c:say("Давно не виделись! Нужны запчасти?")
    return "answer"
  end,

  answer = function(c, ev)
    c:say("Спасибо за ответ")
    return "answer"
  end,
}
