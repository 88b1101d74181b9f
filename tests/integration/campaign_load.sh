#!/bin/sh
# A large campaign beside a running bot: 300,000 customers, `shopbot
# campaign retention` while `shopbot run` serves /healthz. The campaign
# commits in chunks and the bot never sleeps in SQLite's busy handler, so
# /healthz keeps answering 200 (checked) and fast (figures printed, not
# judged: the machine may be busy). Then kill -9 in the middle of a
# campaign: whole chunks only, and a second run finishes the job, each
# customer contacted once.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
N=${RT_CAMPAIGN_N:-300000}
port=$(free_port 11)
d=$(make_shop camp "$port" true)
db="$d/data/shop.db"
# Check-ins fall a year ahead, so the running bot does not fire them.
now=$(date -d '+400 days' '+%Y-%m-%d 10:00')
python3 - "$TMP/c.csv" "$N" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("Телефон;ФИО;Дата последней покупки\n")
    for i in range(int(sys.argv[2])):
        f.write("+7912%07d;Клиент %d;01.01.2020\n" % (i, i))
PY
$S import "$d" "$TMP/c.csv" >"$TMP/imp" 2>&1
check "imported $N customers" sh -c "[ \$(sqlite3 '$db' 'SELECT count(*) FROM customers') -eq $N ]"

$S run "$d" >"$TMP/run.out" 2>"$TMP/run.err" &
BOT=$!
PIDS="$BOT"
check "the bot serves http" wait_for "$TMP/run.err" "msg=http listen=127.0.0.1:$port" 30

# Polls /healthz every 50 ms for as long as the file $TMP/go exists; writes
# "status ms" per request.
poll() {
  python3 - "$port" "$1" "$TMP/go" <<'PY' &
import os, sys, time, urllib.request, urllib.error
port, out, go = int(sys.argv[1]), open(sys.argv[2], "w"), sys.argv[3]
deadline = time.time() + 170
while os.path.exists(go) and time.time() < deadline:
    t0 = time.time()
    try:
        code = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10).status
    except urllib.error.HTTPError as e:
        code = e.code
    except Exception:
        code = 0
    out.write("%d %.1f\n" % (code, (time.time() - t0) * 1000))
    out.flush()
    time.sleep(0.05)
PY
  POLL=$!
}
figures() { # figures FILE LABEL
  python3 - "$1" "$2" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
ms = sorted(float(r[1]) for r in rows)
bad = sum(1 for r in rows if r[0] != "200")
if ms:
    print("figure %s: %d requests, %d not 200, median %.1f ms, p99 %.1f ms, max %.1f ms"
          % (sys.argv[2], len(ms), bad, ms[len(ms) // 2], ms[int(len(ms) * 0.99)], ms[-1]))
PY
}

touch "$TMP/go"
poll "$TMP/idle"
sleep 2
rm -f "$TMP/go"; wait $POLL
figures "$TMP/idle" "healthz, idle bot"

touch "$TMP/go"
poll "$TMP/busy"
t0=$(date +%s.%N)
$S campaign "$d" retention --json --now "$now" >"$TMP/r1" 2>"$TMP/e1"
rc=$?
t1=$(date +%s.%N)
rm -f "$TMP/go"; wait $POLL
echo "figure campaign of $N: $(python3 -c "print('%.2f s' % ($t1 - $t0))")"
figures "$TMP/busy" "healthz during the campaign"
check "campaign exits 0" [ $rc -eq 0 ]
sel=$(sed -n 's/.*"selected": \([0-9]*\).*/\1/p' "$TMP/r1")
sch=$(sed -n 's/.*"scheduled": \([0-9]*\).*/\1/p' "$TMP/r1")
check "every customer scheduled ($sch of $N)" sh -c "[ '${sch:-0}' -eq $N ] && [ '${sel:-0}' -eq $N ]"
check "healthz answered during the campaign" sh -c "[ \$(wc -l <'$TMP/busy') -gt 5 ]"
check "healthz was 200 throughout" sh -c "! grep -qv '^200 ' '$TMP/busy'"
check "the bot logged no store error" sh -c "! grep -q 'store-error' '$TMP/run.err'"
check "the bot is alive" kill -0 $BOT

# kill -9 in the middle of a second campaign (the first run's contacts
# removed, so they are not in cooldown).
sqlite3 "$db" "DELETE FROM timers; DELETE FROM campaign_contacts; DELETE FROM conversations;"
$S campaign "$d" retention --json --now "$now" >"$TMP/r2" 2>"$TMP/e2" &
CAMP=$!
n=0
while [ $n -lt 200 ]; do
  c=$(sqlite3 "$db" 'SELECT count(*) FROM campaign_contacts' 2>/dev/null || echo 0)
  [ "${c:-0}" -gt 0 ] && break
  sleep 0.05; n=$((n + 1))
done
kill -9 $CAMP; wait $CAMP 2>/dev/null
part=$(sqlite3 "$db" 'SELECT count(*) FROM campaign_contacts')
echo "figure killed after $part contacts"
check "killed part way ($part of $N)" sh -c "[ $part -gt 0 ] && [ $part -lt $N ]"
check "whole contacts only: a timer for each contact" \
  sh -c "[ \$(sqlite3 '$db' \"SELECT count(*) FROM timers WHERE name = 'campaign:retention'\") -eq $part ]"
check "store consistent after kill -9" sh -c "[ \"\$(sqlite3 '$db' 'PRAGMA quick_check')\" = ok ]"
$S campaign "$d" retention --json --now "$now" >"$TMP/r3" 2>"$TMP/e3"
check "a second run exits 0" [ $? -eq 0 ]
sch3=$(sed -n 's/.*"scheduled": \([0-9]*\).*/\1/p' "$TMP/r3")
check "it schedules the rest ($part + $sch3 = $N)" [ $((part + ${sch3:-0})) -eq "$N" ]
check "each customer once" sh -c "[ \$(sqlite3 '$db' 'SELECT count(DISTINCT phone) FROM campaign_contacts') -eq $N ] && [ \$(sqlite3 '$db' 'SELECT count(*) FROM campaign_contacts') -eq $N ]"
kill $BOT; wait $BOT 2>/dev/null
done_tests
