#!/bin/sh
# tests/bench/rss.sh SHOPBOT [N] -- memory of `shopbot run` at start and
# after N conversations (default 10,000); prints figures, never pass/fail.
#
# The shop is examples/autoparts with the Vitaly flows, its own store, the
# HTTP server on a free port. N generated customers are imported
# (`shopbot import`), the retention campaign schedules a check-in for each
# (`shopbot campaign`), and the check-ins are made due now before the bot
# starts, so `shopbot run` writes to all N of them (each a conversation, a
# step with c:customer(), a reply, a timer). The figures are VmRSS of the
# process: idle after start, just after the N-th check-in (read from
# /metrics), its peak over the burst (VmHWM), and 5 s later (what the
# process gave back once idle: the caches are trimmed after a second).
set -eu
bin=$1
n=${2:-10000}
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /var/tmp/bench_rss.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/shop"
cp -r "$src/examples/autoparts/." "$tmp/shop/"
rm -rf "$tmp/shop/data"
sed -i -e "s|\"dir\": \"../../scripts/vitaly\"|\"dir\": \"$src/scripts/vitaly\"|" \
       -e 's|"listen": "127.0.0.1:8080"|"listen": "127.0.0.1:0"|' "$tmp/shop/shop.json"

# N customers who last bought 200 days ago, one in four with a Telegram id.
awk -v n="$n" 'BEGIN {
  print "Телефон;ФИО;Дата последней покупки;Telegram"
  t = systime() - 200 * 86400
  d = strftime("%d.%m.%Y", t)
  for (i = 0; i < n; i++) {
    tg = (i % 4 == 0) ? 500000000 + i : ""
    printf "+7 901 %07d;Клиент %d;%s;%s\n", i, i, d, tg
  }
}' >"$tmp/customers.csv"
"$bin" import "$tmp/shop" "$tmp/customers.csv" >/dev/null
"$bin" campaign "$tmp/shop" retention >/dev/null
rss() { awk '/VmRSS/ {print $2, $3}' "/proc/$1/status"; }
start_bot() {
  : >"$tmp/err"
  "$bin" run "$tmp/shop" >/dev/null 2>"$tmp/err" &
  pid=$!
  k=0
  while ! grep -q "msg=http" "$tmp/err" 2>/dev/null && [ $k -lt 200 ]; do sleep 0.05; k=$((k + 1)); done
  port=$(sed -n 's/.*msg=http .*port=\([0-9]*\).*/\1/p' "$tmp/err" | head -1)
}
# Idle first: the check-ins are due in working hours, days ahead maybe.
start_bot
sleep 1
echo "rss.start_idle: $(rss $pid) (autoparts shop, $n customers, $n check-ins pending)"
kill $pid
wait $pid || true
now=$(($(date +%s) * 1000))
# Check-ins already due in the idle run (the first ones fall in working
# hours right away) ran there: the second run counts only the rest. A
# check-in that ran leaves no timer and, run with its fire, no inbox row.
left=$(sqlite3 "$tmp/shop/data/shop.db" "SELECT count(*) FROM timers WHERE name LIKE 'campaign:%'")
pre=$((n - left))
sqlite3 "$tmp/shop/data/shop.db" "UPDATE timers SET due_at = $now WHERE name LIKE 'campaign:%'"
start_bot
t0=$(date +%s.%N)
done_n=0
k=0
while [ "$done_n" -lt $((n - pre)) ] && [ $k -lt 1200 ]; do
  sleep 0.1
  done_n=$(curl -s "http://127.0.0.1:$port/metrics" |
           awk '/^shopbot_events_processed_total/ {print $2}')
  done_n=${done_n:-0}
  k=$((k + 1))
done
t1=$(date +%s.%N)
echo "rss.after_convs: $(rss $pid) (after $((done_n + pre)) conversations, $pre of them in the idle run; goal <= 16 MB)"
echo "rss.peak_during_convs: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status) (VmHWM of the run: start, recovery and the burst)"
echo "rss.checkins_per_s: $(echo "$done_n $t0 $t1" | awk '{printf "%.0f", $1 / ($3 - $2)}') (in shopbot run, over /metrics)"
sleep 5
echo "rss.after_convs_idle_5s: $(rss $pid) (after the idle trim)"
echo "rss.after_convs_anon: $(awk '/RssAnon/ {print $2, $3}' /proc/$pid/status)"
kill $pid
wait $pid || true
