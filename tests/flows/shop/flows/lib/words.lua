-- a shared module: flows load it with require("words")
local M = {}
function M.greeting(name) return "Привет, " .. name .. "!" end
return M
