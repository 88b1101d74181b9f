-- before: one hook ahead of the steps of a flow (tests/before.chat).
-- main.echo enters it on "hooks"; hooks_in has a before of its own.
return flow "hooks" {
  before = function(c, ev)
    c.turn.seen = (c.turn.seen or 0) + 1
    c.slots.befores = (c.slots.befores or 0) + 1
    local t = ev.text or ""
    if t == "стоп" then
      c:say("before: стоп")
      return "stopped"           -- redirect by name: the waiting step does not run
    end
    if t == "прыг" then return c:go("jumped") end   -- redirect with c:go
    if t == "сломай" then error("boom in before") end
    c.turn.text = "[" .. t .. "]"   -- what the steps read
  end,

  start = function(c, ev)
    c:say("hooks: вход, before ×" .. c.turn.seen)
    return "wait"
  end,

  wait = function(c, ev)
    if ev.kind == "wake" then
      c:say("будильник, before ×" .. c.turn.seen)
      return
    end
    if ev.text == "дальше" then return c:go("hop") end
    if ev.text == "туда" then return c:switch("hooks_in") end
    if ev.text == "будильник" then c:wake("1h", "wait") c:say("через час") return end
    c:say("wait: " .. c.turn.text .. ", before ×" .. c.turn.seen)
  end,

  -- reached with c:go: this flow's before already ran for this event
  hop = function(c, ev)
    c:say("hop: " .. c.turn.text .. ", before ×" .. c.turn.seen)
    return "wait"
  end,

  jumped = function(c, ev)
    c:say("jumped: before ×" .. c.turn.seen .. ", text " .. tostring(c.turn.text))
    return "wait"
  end,

  stopped = function(c, ev)
    c:say("stopped: " .. c.turn.text)
    return "wait"
  end,
}
