#!/bin/sh
# A burst of wake-ups (a campaign's check-ins) killed -9 again and again,
# with the WAL kept small so that kills also land in the loop's
# checkpoints: every wake-up fires once, every chat gets its reply, and the
# only repeats are the documented ones (a message sent but not yet marked
# when the process died: the same outbox row again, at most once per chat
# per kill).
. "$(dirname "$0")/lib.sh"
DRIVER="$(dirname "$SHOPBOT")/wake_crash"
[ -x "$DRIVER" ] || { echo "no wake_crash driver"; exit 77; }
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
T=$TMP
N=6000 KILLS=6
: >"$T/log"
"$DRIVER" init "$T/shop" $N || { bad "init"; done_tests; exit 1; }
db="$T/shop/data/shop.db"
i=0
while [ $i -lt $KILLS ]; do
  "$DRIVER" run "$T/shop" "$T/log" 64 2>>"$T/err" &
  pid=$!
  # Killed once the log holds its share of the burst (a fixed sleep let a
  # fast run finish before the last kills): the i-th kill after about
  # (i + 1) / (KILLS + 1) of the chats, polled every 10 ms, 30 s at most.
  want=$(( (i + 1) * N / (KILLS + 1) ))
  w=0
  while [ "$(wc -l < "$T/log" 2>/dev/null || echo 0)" -lt $want ] && [ $w -lt 3000 ] &&
        kill -0 $pid 2>/dev/null; do
    sleep 0.01
    w=$((w + 1))
  done
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  echo "kill $i: $(wc -l < "$T/log") replies logged"
  i=$((i + 1))
done
before=$(awk '{print $1}' "$T/log" | sort -u | wc -l)
check "the kills landed mid-burst ($before of $N chats answered)" [ "$before" -lt $N ]
check "the last run finishes" "$DRIVER" run "$T/shop" "$T/log" 64 2>>"$T/err"
check "no wake-up left" [ "$(sqlite3 "$db" 'SELECT COUNT(*) FROM timers')" = 0 ]
# A wake-up that ran in the transaction that fired it has no inbox row
# (its timer's delete is the record); one stored first (after a kill, while
# the recovery runs events one by one) has one row, done.
check "no wake-up stored twice or left undone" \
  [ "$(sqlite3 "$db" "SELECT (COUNT(*) - COUNT(DISTINCT ext_id)) || ' ' || COALESCE(SUM(status <> 'done'), 0) FROM inbox WHERE kind = 'wake'")" = "0 0" ]
check "one reply per chat in the store, all sent" \
  [ "$(sqlite3 "$db" "SELECT COUNT(*) || ' ' || COUNT(DISTINCT chat_id) || ' ' || SUM(status = 'sent') FROM outbox")" = "$N $N $N" ]
check "every chat got its reply; repeats only of the same row" awk -v n=$N -v kills=$KILLS '
  { if ($3 != "woke" || $4 != $1) { print "unexpected: " $0; bad = 1 }
    if ($1 in row && row[$1] != $2) { print $1 " got two different replies"; bad = 1 }
    if ($1 in row) { dup[$1]++; dups++ }
    else chats++
    row[$1] = $2 }
  END {
    if (chats != n) { print "replies reached " chats " of " n " chats"; bad = 1 }
    for (c in dup) if (dup[c] > kills) { print c " has " dup[c] " repeats for " kills " kills"; bad = 1 }
    printf "wake_kill: %d chats, %d sends, %d repeats over %d kills\n", chats, NR, dups, kills
    exit bad }' "$T/log"
check "store intact" [ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ]
done_tests
