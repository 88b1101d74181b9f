#!/bin/sh
# Very long customer messages to the Vitaly flows (autoparts) cost a bounded
# step: 32 K and 1 M characters are answered normally (no step failure, no
# hand-off), a VIN is taken from the head of the message, and text.* on a
# long string in a loop runs out of the step budget instead of stalling.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
ap="$TMP/ap"
mkdir -p "$ap"
cp -r "$RT_SOURCE_DIR/examples/autoparts" "$ap/shop"
cp -r "$RT_SOURCE_DIR/scripts/vitaly" "$ap/vitaly"
sed -i 's|"../../scripts/vitaly"|"../vitaly"|; s|127.0.0.1:8080|127.0.0.1:0|' "$ap/shop/shop.json"
rm -f "$ap/shop/tests/"*.chat

# python3 writes the long lines; the transcripts check the answers.
python3 - "$ap/shop/tests" <<'PY'
import sys
d = sys.argv[1]
def rep(unit, chars):
    return (unit * (chars // len(unit) + 1))[:chars]
k32 = rep("колодки ", 32768)
m1 = rep("еду я по трассе, и тут что-то застучало спереди справа. ", 1 << 20)
with open(d + "/long_32k.chat", "w") as f:
    f.write("user: " + k32 + "\n"
            "bot ~ ^Здравствуйте!.{1,80}Сообщение очень длинное.{1,300}$\n"
            "expect mode bot\nexpect step lead.car\nexpect no lead\n"
            "user: XW8ZZZ614BG012345\n"
            "bot: Записал: VIN XW8ZZZ614BG012345. Какие запчасти нужны?\n"
            "user: нужны колодки. " + k32 + "\n"
            "bot: Записал: колодки. Что-нибудь ещё?\n"
            "expect slot parts ~ ^\\[\"колодки\"\\]$\n"
            "expect mode bot\n")
with open(d + "/long_1m.chat", "w") as f:
    f.write("user: " + m1 + " вин XW8ZZZ614BG012345\n"
            "bot ~ ^Здравствуйте!.{1,80}Сообщение очень длинное.{1,300}$\n"
            "expect mode bot\nexpect no slot car\n"
            "user: XW8ZZZ614BG012345, нужны колодки. " + m1 + "\n"
            "bot: Записал: VIN XW8ZZZ614BG012345, колодки. Что-нибудь ещё?\n"
            "user: нужен фильтр. " + m1 + "\n"
            # the story's first sentences may be taken as items too (as
            # in a short message); the 1 M rest is not read
            "bot ~ ^Записал: фильтр.{0,300}Что-нибудь ещё\\?$\n"
            "user: всё\n"
            "bot: Заявка готова*\n"
            "managers: *колодки, фильтр*\n"
            "expect lead ~ \"parts\":\\[\"колодки\",\"фильтр\"\n"
            "expect mode handoff\n")
with open(d + "/../big.txt", "w") as f:   # $ap/shop/big.txt
    f.write(m1 + "\n" + k32 + "\n")
PY
$S test "$ap/shop" >"$TMP/t" 2>&1
check "32 K and 1 M character messages: transcripts pass" contains "$TMP/t" "^2 passed, 0 failed$"
grep -E '^(FAIL|  )' "$TMP/t" | cut -c1-300

# The same through `shopbot chat`, as the review drove it: no step failure,
# nothing handed to managers.
timeout 120 $S chat "$ap/shop" --user h1 <"$ap/shop/big.txt" >"$TMP/o" 2>"$TMP/e"
check "chat with 1 M and 32 K lines exits 0" [ $? -eq 0 ]
check "no step failed" sh -c "! grep -q 'step-failed' '$TMP/e'"
check "nothing handed to managers" sh -c "! grep -q 'to managers' '$TMP/o'"
check "two answers asking for the VIN" sh -c "[ \$(grep -c 'VIN' '$TMP/o') -ge 2 ]"

# Flows read ev.text only through lib/msg.lua, which bounds it.
check "no flow reads ev.text around lib/msg.lua" \
  sh -c "! grep -rn 'ev\.text' '$RT_SOURCE_DIR/scripts/vitaly' | grep -v 'lib/msg.lua'"

# text.* charge the step budget for what they read: a loop over a long
# string ends in a budget error, not in a stalled loop.
mkdir -p "$TMP/loop/flows"
printf '{"name":"T","persona":{},"flows":{"dir":"flows","start":"main"},"http":{"enabled":false},"limits":{"step_timeout_ms":60000}}' >"$TMP/loop/shop.json"
cat >"$TMP/loop/flows/main.lua" <<'LUA'
return flow "main" { start = function(c, ev)
  local a, b = string.rep("нет, ", 200000), string.rep("да, ", 200000)
  for i = 1, 100000 do text.intent(i % 2 == 0 and a or b) end
  c:say("done")
end }
LUA
start=$(date +%s)
echo hi | timeout 120 $S chat "$TMP/loop" --user u >"$TMP/lo" 2>"$TMP/le"
check "text.* in a loop: budget error" contains "$TMP/le" "step-failed.*code=budget"
check "text.* in a loop: stopped within seconds" [ $(( $(date +%s) - start )) -lt 60 ]
done_tests
