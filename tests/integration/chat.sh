#!/bin/sh
# shopbot chat: scripted in a pipe, continues across runs, picks up flow
# edits while it runs, and a broken edit keeps the old flows serving.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d=$(make_shop chat)

printf 'привет\nраз\nдва\n' | $S chat "$d" --user u1 >"$TMP/o1" 2>"$TMP/e1"
check "pipe chat exits 0" [ $? -eq 0 ]
check "greeting" contains "$TMP/o1" "^Привет, Тест!$"
check "replies in order" sh -c "sed -n 2,3p '$TMP/o1' | tr '\n' '|' | grep -q 'эхо 1: раз|эхо 2: два|'"
check "one log line per event" contains "$TMP/e1" "msg=start"

printf 'три\n' | $S chat "$d" --user u1 >"$TMP/o2" 2>/dev/null
check "conversation continues across runs" contains "$TMP/o2" "^эхо 3: три$"
printf 'привет\n' | $S chat "$d" --user u2 >"$TMP/o3" 2>/dev/null
check "another user starts fresh" contains "$TMP/o3" "^Привет, Тест!$"
printf 'notify\n' | $S chat "$d" --user u2 >"$TMP/o4" 2>/dev/null
check "messages to managers are marked" contains "$TMP/o4" "^\[to managers\] менеджерам: u2$"

printf 'мой номер +7 912 345-67-89\n' | $S chat "$d" --user 89123456789 >/dev/null 2>"$TMP/e5"
check "phone numbers are masked in logs" contains "$TMP/e5" "chat=8\*+89 "
check "no phone number in clear in logs" sh -c "! grep -Eq '89123456789|912 345' '$TMP/e5'"

printf 'привет\n\377\376битый\300 текст\n\n' | $S chat "$d" --user bad >"$TMP/o6" 2>"$TMP/e6"
check "broken UTF-8 does not break the chat" [ $? -eq 0 ]
check "its readable part reaches the flow" contains "$TMP/o6" "^эхо 1: .*битый.* текст$"
check "an empty line is a message too" contains "$TMP/o6" "^эхо 2: $"

# Live: a FIFO keeps chat running while we edit the flow.
mkfifo "$TMP/in"
$S chat "$d" --user live <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
PIDS="$!"
exec 3>"$TMP/in"
echo "первое" >&3
check "live: greeting" wait_for "$TMP/out" "Привет, Тест!"
echo "второе" >&3
check "live: echo before edit" wait_for "$TMP/out" "^эхо 1: второе$"
sed -i 's/"эхо "/"ЭХО-2 "/' "$d/flows/main.lua"
check "live: reload logged" wait_for "$TMP/err" "msg=reload version="
echo "третье" >&3
check "live: new wording on the next message" wait_for "$TMP/out" "^ЭХО-2 2: третье$"
printf 'return flow "main" {\n  start = function(c)\n' > "$d/flows/broken.lua"
check "live: broken edit reported" wait_for "$TMP/err" "msg=reload-failed err=.*broken.lua"
echo "четвёртое" >&3
check "live: old flows keep serving" wait_for "$TMP/out" "^ЭХО-2 3: четвёртое$"
rm "$d/flows/broken.lua"
check "live: fixed, reload ok again" sh -c "sleep 0.5; grep -c 'msg=reload version=' '$TMP/err' | grep -q '^2$'"
exec 3>&-
wait $!
check "live: end of input ends chat with 0" [ $? -eq 0 ]
PIDS=""
done_tests
