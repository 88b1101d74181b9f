#!/bin/sh
# kill -9 in the middle of an event: after restart the event is processed
# once and its reply sent once.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
printf '[{"method":"GET","path":"/slow","delay_ms":2500,"body":"готово"}]' >"$TMP/script.json"
"$FAKE_HTTP" --port 0 --script "$TMP/script.json" --log "$TMP/fake.jsonl" --port-file "$TMP/port" --max-seconds 120 >/dev/null &
PIDS="$!"
FAKE=$!
check "fake server up" wait_for "$TMP/port" "[0-9]"
port=$(cat "$TMP/port")
d=$(make_shop crash)
sed -i "s|\"name\": \"it\",|\"name\": \"it\", \"shop\": {\"slow_url\": \"http://127.0.0.1:$port/slow\"},|" "$d/shop.json"
db="$d/data/shop.db"

mkfifo "$TMP/in"
$S chat "$d" --user k <"$TMP/in" >"$TMP/out1" 2>"$TMP/err1" &
BOT=$!
PIDS="$FAKE $BOT"
exec 3>"$TMP/in"
echo "привет" >&3
check "greeting" wait_for "$TMP/out1" "Привет, Тест!"
echo "slow" >&3
check "step is waiting on the slow server" wait_for "$TMP/fake.jsonl" '"/slow"'
kill -9 $BOT
wait $BOT 2>/dev/null
exec 3>&-
check "no reply before the crash" sh -c "! grep -q 'медленный' '$TMP/out1'"
check "the event was received (inbox, not applied)" \
  sh -c "[ \"\$(sqlite3 '$db' \"SELECT status FROM inbox WHERE payload LIKE '%slow%'\")\" = new ]"

$S chat "$d" --user k </dev/null >"$TMP/out2" 2>"$TMP/err2"
check "restart exits 0" [ $? -eq 0 ]
check "reply after restart" contains "$TMP/out2" "^медленный ответ: готово$"
check "reply sent once" sh -c "[ \$(grep -c 'медленный' '$TMP/out2') -eq 1 ]"
check "event processed once" \
  sh -c "[ \"\$(sqlite3 '$db' \"SELECT status || count(*) FROM inbox WHERE payload LIKE '%slow%'\")\" = done1 ]"
check "one outbox row, sent" \
  sh -c "[ \"\$(sqlite3 '$db' \"SELECT status || count(*) FROM outbox WHERE payload LIKE '%медленный%'\")\" = sent1 ]"
$S chat "$d" --user k </dev/null >"$TMP/out3" 2>/dev/null
check "nothing is sent twice on a later start" [ ! -s "$TMP/out3" ]
check "store intact" sh -c "[ \"\$(sqlite3 '$db' 'PRAGMA integrity_check')\" = ok ]"
done_tests
