-- Same name as scripts/lib/list.lua: the shop's own module wins (tests/libs.chat).
local M = {}
M.owner = "shop"
function M.join(l) return table.concat(l, " + ") end
return M
