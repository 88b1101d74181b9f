return flow "other" {
  start = function(c, ev)
    c:say("другой поток")
    return "main.echo"
  end,
}
