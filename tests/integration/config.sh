#!/bin/sh
# Bad shop.json, missing flows, Lua errors at start: clear errors, exit 1.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d=$(make_shop cfg)

$S check "$d" >"$TMP/o" 2>&1; check "good shop checks" [ $? -eq 0 ]
check "check lists flows" contains "$TMP/o" "main \(flows/main.lua\): .*echo"

printf '{ "name": "x",\n  "persona": {}\n  "http": {} }\n' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "malformed JSON -> 1" [ $? -eq 1 ]
check "malformed JSON names line:col" contains "$TMP/e" "shop.json:3:"

printf '{ "name": "x", "persona": {}, "http": {"listen": 8080}, "flows": {"start": "main"} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "wrong type -> 1" [ $? -eq 1 ]
check "wrong type names the JSON path" contains "$TMP/e" '\$\.http\.listen: expected string, got number'

printf '{ "name": "x", "persona": {}, "htp": {}, "flows": {"start": "main"} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "unknown key -> 1" [ $? -eq 1 ]
check "unknown key named" contains "$TMP/e" 'unknown key "htp"'

printf '{ "persona": {} }' > "$d/shop.json"
$S run "$d" 2>"$TMP/e"; check "missing required -> run refuses" [ $? -eq 1 ]
check "missing required named" contains "$TMP/e" 'missing required key "name"'

printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "channels": {"telegram": {"token": "${IT_SECRET_TOKEN}"}} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "unset env var -> 1" [ $? -eq 1 ]
check "unset env var named" contains "$TMP/e" "IT_SECRET_TOKEN is not set"
IT_SECRET_TOKEN=s3cr3t-value $S check "$d" --print-config >"$TMP/o" 2>&1
check "env var filled" [ $? -eq 0 ]
check "secret never printed" sh -c "! grep -q s3cr3t-value '$TMP/o'"
check "secret shown as ***" contains "$TMP/o" '"token": "\*\*\*"'

printf '{ "name": "x", "persona": {}, "flows": {"dir": "nope", "start": "main"}, "http": {"enabled": false} }' > "$d/shop.json"
$S run "$d" 2>"$TMP/e" </dev/null; check "missing flows folder -> refuse" [ $? -eq 1 ]
check "missing flows folder named" contains "$TMP/e" "flows.dir: the flows folder \"nope\" of .* is /.*/nope, which does not exist"

printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "http": {"enabled": false} }' > "$d/shop.json"
printf 'return flow "main" {\n  start = function(c, ev)\n    c:say("hi"\n  end,\n}\n' > "$d/flows/main.lua"
$S run "$d" 2>"$TMP/e" </dev/null; check "Lua syntax error at start -> refuse" [ $? -eq 1 ]
check "syntax error names file and line" contains "$TMP/e" "flows/main.lua:4:"
$S check "$d" 2>"$TMP/e"; check "check reports the syntax error" contains "$TMP/e" "flows/main.lua:4:"

printf 'return flow "main" { hello = function() end }\n' > "$d/flows/main.lua"
$S check "$d" 2>"$TMP/e"; check "flow without start -> error" contains "$TMP/e" "has no 'start' step"
printf 'while true do end\n' > "$d/flows/main.lua"
$S check "$d" 2>"$TMP/e"; check "endless loop at load -> error" contains "$TMP/e" "instruction budget"
done_tests
