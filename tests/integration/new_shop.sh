#!/bin/sh
# shopbot new: a self-contained shop folder that check and test accept,
# from the build tree and from an install; copied examples keep working.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d="$TMP/моя лавка"
$S new "$d" --name 'Запчасти «Гайка»' >"$TMP/out" 2>"$TMP/err"
check "new succeeds" [ $? -eq 0 ]
check "new says what next" contains "$TMP/out" "shopbot check"
for f in shop.json README.md customers.csv flows/lead.lua flows/lib/say.lua tests/lead_happy.chat; do
  check "new made $f" [ -f "$d/$f" ]
done
check "shop.json points at the schema" contains "$d/shop.json" "\"\\\$schema\": \"$(cd "$RT_SOURCE_DIR" && pwd -P)/schema/shop.schema.json\""
check "shop.json is commented" contains "$d/shop.json" '"_comment"'
check "flows.dir is the shop's own" contains "$d/shop.json" '"dir": "flows"'
check "README is in Russian and names say.lua" contains "$d/README.md" 'все тексты бота'
check "the name reaches the tests" contains "$d/tests/lead_happy.chat" 'Запчасти «Гайка»'
# The persona prompt for the LLM: the persona's file as it is, its {facts}
# left for the flows to fill at each call; llm and ocr shown, switched off.
check "new made prompt.md" [ -f "$d/prompt.md" ]
check "prompt.md is the persona's, untouched" cmp -s "$d/prompt.md" "$RT_SOURCE_DIR/examples/autoparts/prompt.md"
check "prompt.md speaks Russian to the marketer" contains "$d/prompt.md" 'правки|поправили файл'
check "prompt.md has the shop's facts as placeholders" sh -c "grep -q '{shop}' '$d/prompt.md' && grep -q '{address}' '$d/prompt.md' && grep -q '{hours}' '$d/prompt.md'"
check "shop.json shows the llm section, off" contains "$d/shop.json" '"llm": { "enabled": false, "base_url": "https://api.openai.com/v1", "api_key": "\${OPENAI_API_KEY}"'
check "shop.json names prompt.md" contains "$d/shop.json" '"prompt": "prompt.md"'
check "shop.json shows the ocr section, off" contains "$d/shop.json" '"ocr": { "enabled": false }'
check "shop.json says how to turn them on" contains "$d/shop.json" 'llm — языковая модель.*"enabled\\": true'
check "README names prompt.md" contains "$d/README.md" 'prompt.md'
$S check "$d" >"$TMP/check" 2>&1
check "check passes on the new shop" [ $? -eq 0 ]
check "check uses the shop's flows" contains "$TMP/check" "flows: ok.*$d/flows"
$S test "$d" >"$TMP/test" 2>&1
check "test passes on the new shop" [ $? -eq 0 ]
check "tests ran" contains "$TMP/test" '^[1-9][0-9]* passed, 0 failed'
check "the LLM transcripts ran in the new shop" contains "$TMP/test" 'PASS .*ai_lead_question.chat'
# Switched on: the key is needed now, and the prompt is what the model gets,
# filled with the shop's facts and without the notes to the marketer.
sed 's/"llm": { "enabled": false/"llm": { "enabled": true/' "$d/shop.json" >"$TMP/on.json"
mkdir "$TMP/on" && cp -r "$d/flows" "$d/prompt.md" "$TMP/on/" && cp "$TMP/on.json" "$TMP/on/shop.json"
env -u OPENAI_API_KEY $S check "$TMP/on" >"$TMP/c_on" 2>&1
check "llm on without OPENAI_API_KEY: check says so" contains "$TMP/c_on" 'llm.api_key: environment variable OPENAI_API_KEY is not set'
cat > "$TMP/on/prompt.chat" <<'CHAT'
user: XW8ZZZ614BG012345
bot: *Какие запчасти нужны?
llm: chat ~ суббот -> Да, в субботу работаем.
user: а вы в субботу работаете?
bot: Да, в субботу работаем. Какие запчасти нужны?
expect llm ~ "op":"chat".*суббот
expect http POST https://api.openai.com/v1/chat/completions ~ "content":"Ты — Виталий, менеджер магазина. Магазин автозапчастей «Запчасти «Гайка»», город Екатеринбург.\\nАдрес магазина: Екатеринбург, ул. Малышева, 15. Телефон: \+7 \(343\) 200-10-20. Часы работы: пн–сб с 9 до 19.*Доставка: по Екатеринбургу курьером
CHAT
OPENAI_API_KEY=sk-it $S test "$TMP/on" "$TMP/on/prompt.chat" >"$TMP/t_on" 2>&1
check "llm on: the model gets prompt.md filled, notes cut" contains "$TMP/t_on" '^1 passed, 0 failed'

$S new "$d" >"$TMP/o2" 2>"$TMP/e2"
check "refuses a non-empty folder" [ $? -eq 1 ]
check "refusal says why" contains "$TMP/e2" "not an empty folder"
check "nothing overwritten" contains "$d/shop.json" 'Гайка'
mkdir "$TMP/empty"
$S new "$TMP/empty" >/dev/null 2>&1
check "an empty folder is fine" [ -f "$TMP/empty/shop.json" ]
$S new "$TMP/x" --persona nobody >/dev/null 2>"$TMP/e3"
check "unknown persona refused" [ $? -eq 1 ]
check "unknown persona lists the known" contains "$TMP/e3" 'there are: vitaly'
check "unknown persona leaves nothing" [ ! -e "$TMP/x" ]
check "no temporary folder left" [ -z "$(ls -d "$TMP"/x.new-* 2>/dev/null)" ]
$S new >/dev/null 2>&1
check "no SHOP_DIR is a usage error" [ $? -eq 2 ]

# An example copied elsewhere: its ../../scripts/vitaly is found in the data dir.
cp -r "$RT_SOURCE_DIR/examples/autoparts" "$TMP/copied"
rm -rf "$TMP/copied/data"
$S check "$TMP/copied" >"$TMP/c4" 2>&1
check "a copied example checks" [ $? -eq 0 ]
$S test "$TMP/copied" tests/lead_happy.chat >"$TMP/t4" 2>&1
check "a copied example tests" contains "$TMP/t4" '^1 passed, 0 failed'
sed 's|../../scripts/vitaly|../../scripts/nosuch|' "$TMP/copied/shop.json" >"$TMP/s" && mv "$TMP/s" "$TMP/copied/shop.json"
$S check "$TMP/copied" >"$TMP/c5" 2>&1
check "a missing flows folder fails check" [ $? -eq 1 ]
check "the error names flows.dir and the resolved path" \
  contains "$TMP/c5" 'flows.dir: the flows folder "../../scripts/nosuch" of .* is /.*scripts/nosuch, which does not exist'

# Installed: personas under the data dir, found next to the binary.
BUILD=$(dirname "$S")
if [ -f "$BUILD/cmake_install.cmake" ]; then
  cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null 2>"$TMP/ie"
  check "install succeeds" [ $? -eq 0 ]
  check "persona installed" [ -f "$TMP/prefix/share/shopbot/personas/vitaly/persona.json" ]
  env -u SHOPBOT_HOME -u RT_SOURCE_DIR "$TMP/prefix/bin/shopbot" new "$TMP/inst" >/dev/null 2>"$TMP/ie2"
  check "installed new succeeds" [ -f "$TMP/inst/flows/lead.lua" ]
  check "installed new points at the installed schema" \
    contains "$TMP/inst/shop.json" "\"\\\$schema\": \"$TMP/prefix/share/shopbot/schema/shop.schema.json\""
  env -u SHOPBOT_HOME -u RT_SOURCE_DIR "$TMP/prefix/bin/shopbot" test "$TMP/inst" >"$TMP/it" 2>&1
  check "installed test passes" contains "$TMP/it" '^[1-9][0-9]* passed, 0 failed'
fi
done_tests
