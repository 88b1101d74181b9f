#!/bin/sh
# The delivery queue killed -9 mid-burst and restarted: every row reaches the
# fake service, in order in every chat, and the only duplicates are the
# documented ones (a row sent but not yet marked when the process died: the
# same row, so the same idempotency key, at most one per chat per kill).
# Twice: rows queued before the deliveries start (read back from the
# outbox), and rows queued while they run (handed over in memory, written
# open under the channel's mark, 025_outbox_mark.sql, and settled by it).
. "$(dirname "$0")/lib.sh"
DRIVER="$(dirname "$SHOPBOT")/deliver_crash"
[ -x "$DRIVER" ] || { echo "no deliver_crash driver"; exit 77; }
T=$TMP

# kills NAME KILLS CMD...: runs CMD KILLS times, each killed -9 after a
# while, then once to the end.
kills() {
  name=$1 n=$2
  shift 2
  i=0
  while [ $i -lt $n ]; do
    "$@" 2>>"$T/err" &
    pid=$!
    sleep "0.$(( (i * 37 % 5) + 1 ))5"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    echo "$name kill $i: $(wc -l < "$T/$name.log") sends logged"
    i=$((i + 1))
  done
  check "$name: the last run finishes" "$@" 2>>"$T/err"
}

# verify NAME CHATS ROWS KILLS: the log against what was queued.
verify() {
  check "$1: no row left pending" test "$("$DRIVER" pending "$T/$1.db")" = 0
  check "$1: every row, in order per chat, duplicates only of the documented kind" \
    awk -v name=$1 -v chats=$2 -v rows=$3 -v kills=$4 '
  { seen[$2]++; if (seen[$2] == 1) distinct++
    if (($1 in last) && $2 < last[$1]) { print "order broken in " $1 ": " $2 " after " last[$1]; bad = 1 }
    if (($1 in last) && $2 == last[$1]) { dup[$1]++; dups++ }
    else if (seen[$2] > 1) { print "row " $2 " sent again out of place"; bad = 1 }
    if (($1 in key) && key[$2] != "" && key[$2] != $3) { print "row " $2 " changed key"; bad = 1 }
    key[$2] = $3; last[$1] = $2 }
  END {
    for (c in dup) if (dup[c] > kills) { print c " has " dup[c] " duplicates for " kills " kills"; bad = 1 }
    if (distinct != chats * rows) { print "delivered " distinct " of " chats * rows; bad = 1 }
    printf "deliver_kill %s: %d rows, %d sends, %d duplicates over %d kills\n", name, distinct, NR, dups, kills
    exit bad }' "$T/$1.log"
}

"$DRIVER" init "$T/queued.db" 30 300 || { bad "init"; done_tests; exit 1; }
kills queued 8 "$DRIVER" run "$T/queued.db" "$T/queued.log"
verify queued 30 300 8

kills fed 6 "$DRIVER" feed "$T/fed.db" "$T/fed.log" 20 500
verify fed 20 500 6
check "fed: a clean stop leaves no row open" \
  test "$(sqlite3 "$T/fed.db" "SELECT count(*) FROM outbox_mark")" = 0
check "fed: the mark settled rows with no write of their own" \
  test "$(sqlite3 "$T/fed.db" "SELECT count(*) FROM outbox WHERE status = 'sent' AND sent_at IS NULL")" -gt 0
done_tests
