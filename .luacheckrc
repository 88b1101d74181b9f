-- luacheck configuration: the environment flows run in, and nothing more.
--
-- It mirrors the sandbox runtime/host.lua builds (`base` there): the safe
-- base functions, read-only string/table/math/utf8, the host modules
-- (text, time, json, log, http, their functions from runtime/lapi_*.c;
-- the providers ocr and llm, from plugins/*/*.c),
-- `shop`, `flow`, `require` and `print`. Everything is read-only: a flow
-- that assigns a global fails at run time ("global ... is not allowed"),
-- so luacheck reports it first. When the host gives flows a new name or a
-- module a new function, add it here too.
-- Run by tests/integration/luacheck.sh (ctest it.luacheck).

local function fields(list)
  local t = {}
  for _, name in ipairs(list) do t[name] = {} end
  return { fields = t }
end

stds.shopbot = {
  read_globals = {
    -- base functions the sandbox keeps (no load, dofile, rawget, rawset,
    -- collectgarbage, os, io, debug, package)
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
    "tonumber", "tostring", "type", "rawequal", "rawlen", "setmetatable",
    "getmetatable", "unpack", "_VERSION", "print", "require", "flow",
    -- shop.json as flows see it: any key
    shop = { other_fields = true },
    string = fields { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                      "match", "pack", "packsize", "rep", "reverse", "sub", "unpack",
                      "upper" },   -- no string.dump
    table = fields { "concat", "insert", "move", "pack", "remove", "sort", "unpack" },
    math = fields { "abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log",
                    "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad",
                    "random", "randomseed", "sin", "sqrt", "tan", "tointeger", "type",
                    "ult", "acos", "asin", "atan" },
    utf8 = fields { "char", "charpattern", "codepoint", "codes", "len", "offset" },
    text = fields { "norm", "plain", "head", "letters", "plate", "cars", "car", "vin",
                    "frame", "phone", "date", "intent", "is", "vocab", "ru", "phones" },
    time = fields { "now", "split", "local", "make", "duration", "is_open", "next_open",
                    "format" },
    json = fields { "encode", "decode" },
    log = fields { "info", "warn", "error" },
    http = fields { "request", "get", "post" },
    -- Providers (runtime/integration.h), present only when shop.json turns
    -- them on ("ocr": {"enabled": true}, "llm": {"base_url": ...}); their
    -- functions are the <name>_ops table of plugins/<name>/<name>.c.
    ocr = fields { "read" },
    llm = fields { "chat", "extract" },
  },
}

std = "shopbot"
-- Flows may not set globals; a flow file's top level is no exception.
allow_defined = false
allow_defined_top = false
max_line_length = 120
-- Step functions all take (c, ev); a step that does not read ev is normal.
unused_args = false

-- The persona's texts are one per line so marketers find and edit them.
files["scripts/*/lib/say.lua"] = { max_line_length = false }
-- The vocabulary's patterns too: one pattern per line, however long.
files["scripts/*/lib/words.lua"] = { max_line_length = false }
files["scripts/*/lib/goods.lua"] = { max_line_length = false }
files["examples/*/lib/goods.lua"] = { max_line_length = false }

-- Deliberately broken flows that tests feed to the loader.
exclude_files = { "tests/flows/shop/tests/fixtures/broken/**", "build*/**" }
