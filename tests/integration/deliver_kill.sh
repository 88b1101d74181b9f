#!/bin/sh
# The delivery queue killed -9 mid-burst and restarted: every row reaches the
# fake service, in order in every chat, and the only duplicates are the
# documented ones (a row sent but not yet marked when the process died: the
# same row, so the same idempotency key, at most one per chat per kill).
. "$(dirname "$0")/lib.sh"
DRIVER="$(dirname "$SHOPBOT")/deliver_crash"
[ -x "$DRIVER" ] || { echo "no deliver_crash driver"; exit 77; }
T=$TMP
CHATS=30 ROWS=300 KILLS=8
"$DRIVER" init "$T/db" $CHATS $ROWS || { bad "init"; done_tests; exit 1; }
i=0
while [ $i -lt $KILLS ]; do
  "$DRIVER" run "$T/db" "$T/log" 2>>"$T/err" &
  pid=$!
  sleep "0.$(( (i * 37 % 5) + 1 ))5"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  echo "kill $i: $(wc -l < "$T/log") sends logged"
  i=$((i + 1))
done
check "the last run finishes" "$DRIVER" run "$T/db" "$T/log" 2>>"$T/err"
check "no row left pending" test "$("$DRIVER" pending "$T/db")" = 0
check "every row, in order per chat, duplicates only of the documented kind" awk -v chats=$CHATS -v rows=$ROWS -v kills=$KILLS '
  { seen[$2]++; if (seen[$2] == 1) distinct++
    if (($1 in last) && $2 < last[$1]) { print "order broken in " $1 ": " $2 " after " last[$1]; bad = 1 }
    if (($1 in last) && $2 == last[$1]) { dup[$1]++; dups++ }
    else if (seen[$2] > 1) { print "row " $2 " sent again out of place"; bad = 1 }
    if (($1 in key) && key[$2] != "" && key[$2] != $3) { print "row " $2 " changed key"; bad = 1 }
    key[$2] = $3; last[$1] = $2 }
  END {
    for (c in dup) if (dup[c] > kills) { print c " has " dup[c] " duplicates for " kills " kills"; bad = 1 }
    if (distinct != chats * rows) { print "delivered " distinct " of " chats * rows; bad = 1 }
    printf "deliver_kill: %d rows, %d sends, %d duplicates over %d kills\n", distinct, NR, dups, kills
    exit bad }' "$T/log"
done_tests
