-- A flow with its own before, entered by c:switch from hooks (tests/before.chat).
return flow "hooks_in" {
  before = function(c, ev)
    c.turn.seen_in = (c.turn.seen_in or 0) + 1
  end,

  -- runs after hooks.wait switched here, in the same event: both befores ran
  -- once; switching back to hooks does not run its before again
  start = function(c, ev)
    c:say("hooks_in: before ×" .. c.turn.seen_in .. ", hooks before ×" .. c.turn.seen)
    return c:switch("hooks", "hop")
  end,
}
