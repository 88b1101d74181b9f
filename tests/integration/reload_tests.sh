#!/bin/sh
# tests.on_reload: an edit that breaks the shop's own transcripts is not
# swapped in; one that keeps them green is.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d=$(make_shop rt)
sed -i 's/"log": {"level": "info"}/"log": {"level": "info"}, "tests": {"dir": "tests", "on_reload": true}/' "$d/shop.json"
mkdir -p "$d/tests"
printf 'user: привет\nbot: Привет, Тест!\nuser: раз\nbot: эхо 1: раз\n' > "$d/tests/echo.chat"
$S test "$d" >/dev/null; check "the shop's transcript passes" [ $? -eq 0 ]
mkfifo "$TMP/in"
$S chat "$d" --user t <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
PIDS=$!
exec 3>"$TMP/in"
echo "привет" >&3
check "greeting" wait_for "$TMP/out" "Привет, Тест!"
sed -i 's/"эхо "/"повтор "/' "$d/flows/main.lua"
check "edit that breaks a transcript is refused" wait_for "$TMP/err" "msg=reload-failed err=.*transcript tests fail.*echo.chat:4"
echo "раз" >&3
check "old flows keep serving" wait_for "$TMP/out" "^эхо 1: раз$"
sed -i 's/"повтор "/"эхо "/' "$d/flows/main.lua"
sed -i 's/c:say("прыгнул/c:say("Прыгнул/' "$d/flows/main.lua"
check "harmless edit is swapped in" wait_for "$TMP/err" "msg=reload version="
exec 3>&-
wait $PIDS
PIDS=""
done_tests
