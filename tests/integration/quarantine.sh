#!/bin/sh
# A poison message: one that takes the process down whenever it runs (here
# a preloaded shim aborts when its text is parsed). After an unclean stop
# the left-over events run one at a time, each counted first; the one that
# was running alone at two crashes is quarantined: recorded with a reason,
# its chat handed to a manager (the managers hear), and the rest of the
# queue goes on. A clean start afterwards runs nothing again.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
[ -n "${CRASH_ON_LIB:-}" ] && [ -f "$CRASH_ON_LIB" ] || { echo "CRASH_ON_LIB not built"; exit 77; }
S=$SHOPBOT
d="$TMP/q"
mkdir -p "$d/flows"
printf '{"name":"T","persona":{},"flows":{"dir":"flows","start":"main"},"http":{"enabled":false},"log":{"level":"info"}}' >"$d/shop.json"
cat >"$d/flows/main.lua" <<'LUA'
return flow "main" { start = function(c, ev) c:say("ok " .. #ev.text) end }
LUA
db="$d/data/shop.db"
echo hello | $S chat "$d" --user init >/dev/null 2>&1
check "shop set up" [ -f "$db" ]
# Three chats with work queued: u's poison first, then v's and u's next.
sqlite3 "$db" "insert into conversations(channel,chat_id,created_at,updated_at) values('console','u',0,0),('console','v',0,0);
 insert into inbox(channel,ext_id,chat_id,kind,payload,received_at) values
 ('console','p1','u','text','{\"kind\":\"text\",\"text\":\"POISON-PILL\"}',0),
 ('console','p2','v','text','{\"kind\":\"text\",\"text\":\"hi from v\"}',0),
 ('console','p3','u','text','{\"kind\":\"text\",\"text\":\"after\"}',0);"

run() { # one start with the shim; prints its exit status
  ( ulimit -c 0
    CRASH_ON=POISON-PILL LD_PRELOAD="$CRASH_ON_LIB" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
      $S chat "$d" --user init </dev/null >>"$TMP/out" 2>>"$TMP/err" ); echo $?
}
crashes=0
rc=$(run)
while [ "$rc" -ne 0 ] && [ $crashes -lt 6 ]; do
  crashes=$((crashes + 1))
  rc=$(run)
done
echo "crashes before the quarantine: $crashes"
check "the bot stops crashing by itself" [ "$rc" -eq 0 ]
check "three crashes: one with everything running, two with the poison alone" [ "$crashes" -eq 3 ]
q() { sqlite3 "$db" "$1"; }
check "the poison is quarantined, with a reason" \
  sh -c "[ \"\$(sqlite3 '$db' \"select status || ':' || (attempts >= 2) || ':' || (reason like '%quarantined%') from inbox where ext_id = 'p1'\")\" = quarantined:1:1 ]"
check "the other chat's message ran" [ "$(q "select status from inbox where ext_id = 'p2'")" = done ]
check "its reply is queued" [ "$(q "select count(*) from outbox where chat_id = 'v' and payload like '%ok 9%'")" = 1 ]
check "u is handed to a manager" [ "$(q "select mode from conversations where chat_id = 'u'")" = handoff ]
check "u's next message waits for the manager" [ "$(q "select status from inbox where ext_id = 'p3'")" = skipped ]
check "the managers hear about u" \
  [ "$(q "select count(*) from outbox where chat_id = 'managers' and payload like '%console:u%quarantined%'")" = 1 ]
check "a statistics event" [ "$(q "select count(*) from events where kind = 'quarantined'")" = 1 ]
check "the log names it" contains "$TMP/err" "msg=quarantined conv=[0-9]+ inbox=[0-9]+ attempts=2"
check "the quarantined event's text is not in the log" sh -c "! grep -q POISON-PILL '$TMP/err'"
# A clean stop clears the mark: the next start runs nothing again.
$S chat "$d" --user init </dev/null >"$TMP/out2" 2>"$TMP/err2"
check "clean start after" [ $? -eq 0 ]
check "no unclean-stop recovery on it" sh -c "! grep -q unclean-stop '$TMP/err2'"
check "store intact" [ "$(q 'PRAGMA integrity_check')" = ok ]
done_tests
