#!/bin/sh
# A full or read-only disk under the store: a clear error, no lost or
# duplicated message, no corruption; the bot catches up once space is back.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
d=$(make_shop disk)
mkdir -p "$d/data"
mount -t tmpfs -o size=1m tmpfs "$d/data" 2>/dev/null || { echo "cannot mount tmpfs (not root?): skipped"; exit 77; }
db="$d/data/shop.db"

mkfifo "$TMP/in"
$S chat "$d" --user f <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
BOT=$!
PIDS=$BOT
exec 3>"$TMP/in"
echo "привет" >&3
check "greeting" wait_for "$TMP/out" "Привет, Тест!"
dd if=/dev/zero of="$d/data/filler" bs=4k 2>/dev/null
for i in 1 2 3 4 5; do echo "сообщение $i" >&3; done
check "disk full is reported clearly" wait_for "$TMP/err" "msg=store-error err=.*(full|disk)"
sleep 0.5
check "the bot stays up" kill -0 $BOT
rm -f "$d/data/filler"
check "after space is back, every message is answered" wait_for "$TMP/out" "^эхо 5: сообщение 5$" 15
check "in order, once each" sh -c "grep '^эхо' '$TMP/out' | tr '\n' '|' | grep -qx 'эхо 1: сообщение 1|эхо 2: сообщение 2|эхо 3: сообщение 3|эхо 4: сообщение 4|эхо 5: сообщение 5|'"
check "recovery logged" contains "$TMP/err" "msg=store-recovered"

# (a read-only remount of a filesystem with open files is refused by the
# kernel, so read-only is tested at start below)
exec 3>&-
wait $BOT
check "clean exit" [ $? -eq 0 ]
PIDS=""
check "store intact" sh -c "[ \"\$(sqlite3 '$db' 'PRAGMA integrity_check')\" = ok ]"
check "no duplicate replies" sh -c "[ \$(sqlite3 '$db' \"SELECT count(*) FROM outbox\") -eq \$(sqlite3 '$db' \"SELECT count(DISTINCT payload) FROM outbox\") ]"

mount -o remount,ro "$d/data"
$S chat "$d" --user f </dev/null >/dev/null 2>"$TMP/err2"
check "start on a read-only store refuses" [ $? -eq 1 ]
check "with a clear message" contains "$TMP/err2" "data/(shopbot.lock|shop.db).*(Read-only|readonly)"
done_tests
