#!/bin/sh
# import, campaign and stats from the command line: cp1251 and broken
# rows, two campaign runs at once contact nobody twice, stats reads it all.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
d="$TMP/shop"
mkdir -p "$d"
cp "$RT_SOURCE_DIR/examples/autoparts/shop.json" "$d/"
sed -i "s|\"dir\": \"../../scripts/vitaly\"|\"dir\": \"$RT_SOURCE_DIR/scripts/vitaly\"|" "$d/shop.json"
db="$d/data/shop.db"

# 1C writes cp1251 with ';' and Russian headers; line 3 has a bad phone,
# line 5 a bad date.
printf 'Телефон;ФИО;Дата последней покупки;Бонусы\r\n8 912 000-00-01;Иванов Иван;01.06.2026;150\r\n12345;Плохой Телефон;01.06.2026;0\r\n+7 (912) 000-00-02;Петров Пётр;15.05.2026;0\r\n89120000003;Сидоров;31.02.2026;0\r\n' \
  | iconv -f UTF-8 -t CP1251 > "$TMP/c.csv" 2>/dev/null || { echo "no iconv"; exit 77; }
$S import "$d" "$TMP/c.csv" >"$TMP/o" 2>"$TMP/e"
check "import with broken rows exits 0" [ $? -eq 0 ]
check "cp1251 detected" contains "$TMP/o" "cp1251"
check "bad phone reported with its line" contains "$TMP/e" "line 3: .*phone"
check "bad date reported with its line" contains "$TMP/e" "line 5: .*date"
check "good rows kept, names decoded" sh -c "[ \"\$(sqlite3 '$db' \"SELECT name FROM customers WHERE phone='+79120000002'\")\" = 'Петров Пётр' ]"
$S import "$d" "$TMP/c.csv" >/dev/null 2>&1
check "re-import does not duplicate" sh -c "[ \$(sqlite3 '$db' 'SELECT count(*) FROM customers') -eq 2 ]"

$S import "$d" "$RT_SOURCE_DIR/examples/autoparts/customers.csv" >/dev/null 2>&1
now="2026-11-23 10:00"
$S campaign "$d" retention --dry-run --json --now "$now" >"$TMP/dry"
check "dry run selects" contains "$TMP/dry" '"selected": [1-9]'
check "dry run writes nothing" sh -c "[ \$(sqlite3 '$db' 'SELECT count(*) FROM timers') -eq 0 ]"
$S campaign "$d" retention --json --now "$now" >"$TMP/r1" 2>"$TMP/e1" &
p1=$!
$S campaign "$d" retention --json --now "$now" >"$TMP/r2" 2>"$TMP/e2" &
p2=$!
wait $p1; wait $p2
n1=$(sed -n 's/.*"scheduled": \([0-9]*\).*/\1/p' "$TMP/r1")
n2=$(sed -n 's/.*"scheduled": \([0-9]*\).*/\1/p' "$TMP/r2")
sel=$(sed -n 's/.*"selected": \([0-9]*\).*/\1/p' "$TMP/dry")
check "two runs at once schedule each customer once ($n1 + $n2 = $sel)" [ $((${n1:-0} + ${n2:-0})) -eq "$sel" ]
check "one timer per customer" sh -c "[ \$(sqlite3 '$db' \"SELECT count(*) FROM timers WHERE name LIKE 'campaign:retention%'\") -eq $sel ]"
check "no duplicate contacts" sh -c "[ \$(sqlite3 '$db' \"SELECT count(*) - count(DISTINCT phone) FROM campaign_contacts\") -eq 0 ]"
$S campaign "$d" retention --json --now "$now" >"$TMP/r3"
check "a third run selects nobody" contains "$TMP/r3" '"selected": 0'
$S stats "$d" --json >"$TMP/s"
check "stats JSON" contains "$TMP/s" '"campaigns"'
$S stats "$d" >"$TMP/t"
check "stats table" contains "$TMP/t" "retention"
done_tests
